"""10,000 mutated configs (1,000 in the suite): load_config returns a config or raises ConfigError — never
another exception, never a hang — and what it accepts is sane; the params check likewise.

Mutations start from the checked-in configs (config/*.yaml, tests/data/*.yaml) and one config that uses every
section: keys deleted, duplicated, renamed and added; values replaced by NaN, inf, -1, 0, huge numbers,
strings, lists, mappings, null, bad dates, folders, files and missing paths; the text broken as YAML.
Each case is seeded (`SEED`, case number): a failure prints its YAML, and re-running reproduces it.
"""
from __future__ import annotations

import copy
import functools
import math
import random
import time
from pathlib import Path

import pytest
import yaml
from fuzz_scale import cases

from ibframe.config import ConfigError, RunConfig, load_config
from ibframe.params import check_params

ROOT = Path(__file__).resolve().parents[1]
SEED = 12
CASES = cases(1000, 10000)
BUDGET = 5.0                       # seconds one case may take: far above the few ms a case needs; a hang is not
KNOWN_CLASSES = {"strategies.ma_cross:MovingAverageCross", "strategies.mean_reversion:MeanReversion",
                 "strategies.book_imbalance:BookImbalance", "chaos_kit:ChaosTrader"}

RICH = """\
strategies:
  - class: strategies.ma_cross:MovingAverageCross
    name: ma
    params: {fast: 5, slow: 20, quantity: 100, bar_size: 5 secs, duration: 3600 S, allow_short: false}
    instruments:
      AAPL: {secType: STK, symbol: AAPL}
      EUR: {pair: EUR.USD}
    on_disconnect: {cancel_after: 30s}
  - class: strategies.book_imbalance:BookImbalance
    name: book
    params: {levels: 5, threshold: 0.3, quantity: 100, hold_seconds: 5, rows: 10}
    instruments:
      SPREAD:
        secType: BAG
        symbol: AAPL
        legs:
          - {action: BUY, ratio: 1, secType: OPT, symbol: AAPL, expiry: 20261218, strike: 190, right: C}
          - {action: SELL, ratio: 2, conId: 687913814}
gateway: {host: 127.0.0.1, port: 7497, client_id: 3, live: false}
sim: {seed: 3, speed: 5, start: '2026-03-02 10:00', universe: config/universe.yaml}
duration: 60s
log_level: info
state_dir: var
record: var/s.jsonl.gz
orders: {ack_timeout: 10s}
on_stop: leave
risk:
  max_order_quantity: {STK: 500, '*': 100}
  price_tolerance: {percent: 5, ticks: 20, tick_size: 0.01, stop_percent: 25}
  repeated_fills: {fills: 50, within: 60s, then: HALTED}
  duplicate_window: 1s
  allowed_sec_types: [STK, OPT, BAG, CASH]
  denied_symbols: [GME]
  strategies:
    ma: {max_orders_per_second: 3}
  account: {max_gross_exposure: 250000}
  pdt: {enabled: true}
  margin: {enabled: true}
  kill: {flatten: false, file: var/KILL}
journal: {enabled: true, path: 'var/journal-{account}.sqlite', snapshot_every: 1m}
connection: {reconnect: true, initial_delay: 1s, max_delay: 30s, multiplier: 2, jitter: 0.2, give_up_after: 5,
             client_id_in_use: next, spare_client_ids: [8, 9], lag_warning: 2s}
pacing: {tick_by_tick: 3, depth: 3, market_data_lines: 100, historical: {max_requests: 60, window_seconds: 600}}
"""


@functools.cache
def seeds() -> list[tuple[str, str]]:
    found = [(p.name, p.read_text()) for p in sorted((ROOT / "config").glob("*.yaml"))]
    found += [(p.name, p.read_text()) for p in sorted((ROOT / "tests" / "data").glob("*.yaml"))]
    return found + [("rich", RICH)]


def values(tmp: Path) -> list:
    """What a careless user or an attacker writes where a value belongs."""
    return [math.nan, math.inf, -math.inf, -1, 0, 1, -0.5, 0.5, 1e308, 10 ** 30, -10 ** 30, 2 ** 63, 65536, 99999,
            "", " ", "x", "soon", "-3s", "1e999s", "9" * 400 + "s", "0s", "off", "never", "true", "NaN", "inf",
            "2026-13-45 99:99", "2026-02-30 10:00", "0001-01-01 00:00", "9999-12-31 23:59", "..:X", ":X",
            "os:path", "a" * 5000, "\x00", "é☃", "{account}", True, False, None, [], [1, "a", None], {},
            {"a": 1}, {"cancel_after": -1}, [{"b": [1, 2]}], str(tmp), str(tmp / "afile"),
            str(tmp / "afile" / "child"), str(tmp / "missing" / "deeper" / "x.yaml"), str(tmp / "ro"),
            "/proc/self/mem", "/dev/null", "127.0.0.1:7496", "127.0.0.1:99999", "host:", ":7497", "sim", "leave",
            "cancel", "next", "wait", "5%", "-5%", "STK", "BAG", "*", [["nested"]], 1.5, -7, 7496, 4001]


def paths(node, prefix=()) -> list[tuple]:
    """Every key path in a parsed YAML document (mapping keys and list indexes)."""
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append(prefix + (key,))
            out += paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.append(prefix + (i,))
            out += paths(value, prefix + (i,))
    return out


def parent_of(doc, path):
    node = doc
    for step in path[:-1]:
        node = node[step]
    return node


def mutate_structure(doc, rng: random.Random, tmp: Path):
    doc = copy.deepcopy(doc)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        found = paths(doc)
        if not found:
            return rng.choice(values(tmp))
        path = rng.choice(found)
        parent, last = parent_of(doc, path), path[-1]
        how = rng.random()
        if how < 0.45:                                            # retype / bad value
            parent[last] = rng.choice(values(tmp))
        elif how < 0.6:                                           # delete
            del parent[last]
        elif how < 0.7 and isinstance(parent, dict):              # rename (a typo)
            parent[str(last) + rng.choice(("s", "_", "x"))] = parent.pop(last)
        elif how < 0.8 and isinstance(parent, dict):              # an unknown key beside it
            parent[rng.choice(("colour", "fast", "class", "port", "risk", "1", "on"))] = rng.choice(values(tmp))
        elif how < 0.9:                                           # a mapping or list where a scalar was, or back
            parent[last] = {"x": parent[last]} if rng.random() < 0.5 else [parent[last]]
        elif isinstance(parent, list):                            # a duplicated list item
            parent.append(copy.deepcopy(parent[last]))
        else:
            parent[last] = rng.choice(values(tmp))
    return doc


def mutate_text(text: str, rng: random.Random) -> str:
    lines = text.splitlines(keepends=True) or ["\n"]
    how = rng.random()
    i = rng.randrange(len(lines))
    if how < 0.25:                                                # a duplicated line: keys given twice
        lines.insert(i, lines[i])
    elif how < 0.45:                                              # cut short
        return text[:rng.randrange(len(text) + 1)]
    elif how < 0.7:                                               # a stray YAML character
        pos = rng.randrange(len(lines[i]) + 1)
        lines[i] = lines[i][:pos] + rng.choice(":[]{}&*!|>%@`#'\"\t-?,") + lines[i][pos:]
    elif how < 0.85:                                              # indentation moved
        lines[i] = (" " * rng.randrange(1, 5) + lines[i]) if rng.random() < 0.5 else lines[i].lstrip()
    else:                                                         # aliases, tags, deep nesting
        lines.insert(i, rng.choice(("x: &a [*a, *a]\n", "bomb: &b [1, 2]\nb2: [*b, *b, *b]\n", "y: !!python/object {}\n",
                                    "z: " + "[" * 2000 + "]" * 2000 + "\n", "? [a, b]\n: c\n", "<<: {log_level: DEBUG}\n")))
    return "".join(lines)


def make_case(n: int, tmp: Path) -> str:
    rng = random.Random(f"{SEED}-{n}")
    name, text = rng.choice(seeds())
    if rng.random() < 0.3:
        return mutate_text(text, rng)
    doc = parsed(name)
    if not isinstance(doc, (dict, list)):
        return mutate_text(text, rng)
    return yaml.dump(mutate_structure(doc, rng, tmp), Dumper=DUMPER, sort_keys=False, allow_unicode=True)


DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@functools.cache
def parsed(name: str):
    return yaml.safe_load(dict(seeds())[name])


def assert_sane(cfg: RunConfig) -> None:
    """What load_config accepts is usable: finite positive durations, real ports, paths of the right kind."""
    assert cfg.strategies and all(s.instruments for s in cfg.strategies)
    assert cfg.duration is None or (math.isfinite(cfg.duration) and cfg.duration > 0)
    assert math.isfinite(cfg.sim.speed) and cfg.sim.speed > 0 and cfg.sim.seed >= 0
    assert 1 <= cfg.gateway.port <= 65535
    assert math.isfinite(cfg.ack_timeout) and cfg.ack_timeout >= 0
    assert not Path(cfg.state_dir).is_file()
    assert cfg.record is None or not Path(cfg.record).is_dir()
    assert cfg.sim.universe is None or Path(cfg.sim.universe).is_file()
    c = cfg.connection
    assert 0 < c.initial_delay <= c.max_delay and math.isfinite(c.max_delay) and 0 <= c.jitter <= 1
    assert cfg.on_stop in ("cancel", "leave") and cfg.log_level in ("DEBUG", "INFO", "WARNING", "ERROR")


def load_class(class_path: str):
    import importlib
    module, _, name = class_path.partition(":")
    return getattr(importlib.import_module(module), name)


def shown(text: str) -> str:
    return "\n".join(line if len(line) <= 200 else line[:200] + f"... ({len(line)} chars)" for line in text.splitlines())


def run_case(n: int, tmp: Path) -> str:
    """One case; returns 'ok', 'config error' or 'params error'; anything else fails with the YAML."""
    text = make_case(n, tmp)
    path = tmp / "case.yaml"
    path.write_text(text)
    started = time.monotonic()
    try:
        try:
            cfg = load_config(path)
        except ConfigError as exc:
            assert str(exc).startswith(str(path)) and "\n" not in str(exc), str(exc)
            return "config error"
        assert_sane(cfg)
        outcome = "ok"
        for scfg in cfg.strategies:
            if scfg.class_path in KNOWN_CLASSES:
                try:
                    checked = check_params(load_class(scfg.class_path), scfg, str(path))
                    assert isinstance(checked, dict)
                except ConfigError as exc:
                    assert str(exc).startswith(f"{path}:") and "\n" not in str(exc), str(exc)
                    outcome = "params error"
        return outcome
    except BaseException as exc:
        pytest.fail(f"case {n} (seed {SEED}): {type(exc).__name__}: {exc}\n--- YAML ---\n{shown(text)}\n------------",
                    pytrace=True)
    finally:
        took = time.monotonic() - started
        assert took < BUDGET, f"case {n} (seed {SEED}) took {took:.1f}s (a hang?)\n--- YAML ---\n{shown(text)}"


@pytest.fixture
def fuzz_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)                        # the seeds name config/universe.yaml and strategies.*
    (tmp_path / "afile").write_text("x")
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o500)
    for name in sorted(KNOWN_CLASSES):             # imports are slow once; the per-case budget is for the case
        load_class(name)
    for _, text in seeds():
        (tmp_path / "warm.yaml").write_text(text)
        try:
            load_config(tmp_path / "warm.yaml")
        except ConfigError:
            pass
    yield tmp_path
    (tmp_path / "ro").chmod(0o700)


def test_mutated_configs_load_or_fail_with_one_config_error(fuzz_dir):
    outcomes: dict[str, int] = {}
    for n in range(CASES):
        outcome = run_case(n, fuzz_dir)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print(f"{CASES} mutated configs: {outcomes}")
    assert outcomes.get("config error", 0) > CASES // 4          # the mutations do reach the checks ...
    assert outcomes.get("ok", 0) > 0                              # ... and leave some configs valid


def test_every_seed_loads_unmutated(fuzz_dir):
    for name, text in seeds():
        if name in ("universe.yaml", "faults.example.yaml"):     # not run configs: one clean error each
            path = fuzz_dir / name
            path.write_text(text)
            with pytest.raises(ConfigError):
                load_config(path)
            continue
        path = fuzz_dir / name
        path.write_text(text)
        assert_sane(load_config(path))


def test_cases_are_reproducible(fuzz_dir):
    assert [make_case(n, fuzz_dir) for n in range(20)] == [make_case(n, fuzz_dir) for n in range(20)]
