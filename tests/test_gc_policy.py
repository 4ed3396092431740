"""The collector's policy for long runs (issue 13): freeze what start-up made, collect the young less often,
undo it all when the run ends; `gc: default` leaves Python's collector alone; a bad value is a config error."""
from __future__ import annotations

import gc

import pytest
import yaml

from chaos_kit import write_config
from ibframe import gc_policy
from ibframe.config import ConfigError, load_config
from ibframe.run import Runner


@pytest.fixture
def python_defaults():
    """Each test starts and ends with the collector as the test session had it."""
    before = gc.get_threshold()
    yield before
    gc.unfreeze()
    gc.set_threshold(*before)


def test_settle_freezes_the_start_up_heap_and_release_gives_it_back(python_defaults):
    made_at_start_up = [object() for _ in range(1000)]
    state = gc_policy.settle("freeze")
    # frozen objects freed since (by any thread) leave the permanent generation, so the count only shrinks
    assert state.frozen >= 1000 and 0 < gc.get_freeze_count() <= state.frozen
    assert state.thresholds == gc_policy.FREEZE_THRESHOLDS == gc.get_threshold()
    gc_policy.release()
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == python_defaults
    assert made_at_start_up                                   # still alive: release only unfreezes


def test_a_cycle_made_after_settle_is_still_collected(python_defaults):
    gc_policy.settle("freeze")

    class Node:
        pass
    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b
    assert gc.collect() >= 2                                  # the collector is on: cycles do not leak
    gc_policy.release()


def test_default_changes_nothing_and_a_bad_policy_says_what_to_write(python_defaults):
    state = gc_policy.settle("default")
    assert state.frozen == 0 and gc.get_threshold() == python_defaults
    gc_policy.release()                                       # nothing to undo
    assert gc.get_threshold() == python_defaults
    with pytest.raises(ValueError, match="freeze, default"):
        gc_policy.settle("off")


def test_the_yaml_key_is_validated_with_file_and_line(tmp_path):
    path = write_config(tmp_path, "run.yaml", 4102, 1, tmp_path / "var")
    raw = yaml.safe_load(path.read_text())
    raw["gc"] = "never"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(ConfigError, match=r"run.yaml:\d+: gc: 'never': write freeze"):
        load_config(path)
    raw["gc"] = "default"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert load_config(path).gc == "default"
    del raw["gc"]
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert load_config(path).gc == "freeze"


@pytest.mark.parametrize("policy", ["freeze", "default"])
def test_a_run_applies_its_policy_after_start_up_and_undoes_it_at_stop(make_gateway, tmp_path, python_defaults,
                                                                      policy):
    gw = make_gateway(seed=3)
    path = write_config(tmp_path, "run.yaml", gw.port, 4100, tmp_path / "var")
    raw = yaml.safe_load(path.read_text())
    raw["gc"] = policy
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    runner = Runner(load_config(path))
    runner.start()
    try:
        during = (gc.get_freeze_count(), gc.get_threshold())
    finally:
        runner.stop()
    if policy == "freeze":
        assert during[0] > 0 and during[1] == gc_policy.FREEZE_THRESHOLDS
    else:
        assert during == (0, python_defaults)
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == python_defaults
