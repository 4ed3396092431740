"""Config errors name the file, the key and the line; the CLI exits 2 with one line, no traceback."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ibframe.config import ConfigError, load_config, parse_duration

ROOT = Path(__file__).resolve().parents[1]

GOOD = """\
strategy:
  class: strategies.ma_cross:MovingAverageCross
  name: demo
  params: {fast: 5, slow: 20}
  instruments:
    AAPL: {secType: STK, symbol: AAPL}
    EUR: {pair: EUR.USD}
gateway: sim
duration: 90s
"""


def write(tmp_path, text: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return p


def test_good_config_loads(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    (s,) = cfg.strategies
    assert s.class_path == "strategies.ma_cross:MovingAverageCross" and s.name == "demo"
    assert s.instruments["AAPL"].symbol == "AAPL" and s.instruments["EUR"].secType == "CASH"
    assert cfg.duration == 90 and cfg.gateway.kind == "sim"


@pytest.mark.parametrize("text, key, line, words", [
    (GOOD.replace("name: demo", "nmae: demo"), "strategy.nmae", 3, "unknown key"),
    (GOOD.replace("strategies.ma_cross:MovingAverageCross", "no_colon_here"), "strategy.class", 2, "module:ClassName"),
    (GOOD.replace("secType: STK, symbol: AAPL", "secType: XYZ, symbol: AAPL"), "strategy.instruments.AAPL.secType", 6,
     "secType"),
    (GOOD.replace("duration: 90s", "duration: soon"), "duration", 9, "not a duration"),
    (GOOD.replace("gateway: sim", "gateway: 127.0.0.1:7496"), "gateway.port", 8, "LIVE"),
    (GOOD + "colour: blue\n", "colour", 10, "unknown key"),
    (GOOD + "orders: {ack_timeout: soon}\n", "orders.ack_timeout", 10, "not a duration"),
    (GOOD + "orders: {ack: 5s}\n", "orders.ack", 10, "unknown key"),
])
def test_errors_name_key_and_line(tmp_path, text, key, line, words):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    err = info.value
    assert err.key == key and err.line == line and words in str(err)
    assert str(err).startswith(f"{tmp_path / 's.yaml'}:{line}: {key}:")


def test_order_acknowledgement_timeout(tmp_path):
    assert load_config(write(tmp_path, GOOD)).ack_timeout == 10.0
    assert load_config(write(tmp_path, GOOD + "orders: {ack_timeout: 2.5s}\n")).ack_timeout == 2.5
    assert load_config(write(tmp_path, GOOD + "orders: {ack_timeout: 0}\n")).ack_timeout == 0.0


def test_live_port_allowed_with_explicit_opt_in(tmp_path):
    text = GOOD.replace("gateway: sim", "gateway: {host: 127.0.0.1, port: 7496, live: true}")
    assert load_config(write(tmp_path, text)).gateway.live


def test_malformed_yaml_names_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"s.yaml:\d+: not valid YAML"):
        load_config(write(tmp_path, "strategy:\n  class: [unclosed\n"))


def test_durations():
    assert parse_duration("250ms") == 0.25 and parse_duration("5m") == 300 and parse_duration(3) == 3.0
    with pytest.raises(ValueError):
        parse_duration("-3s")


def test_cli_prints_one_line_and_exits_2(tmp_path):
    bad = write(tmp_path, GOOD.replace("fast: 5", "fast: 5}"))
    proc = subprocess.run([sys.executable, "-m", "ibframe.run", str(bad)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


COMBO = """\
strategy:
  class: strategies.ma_cross:MovingAverageCross
  instruments:
    SPREAD:
      secType: BAG
      symbol: AAPL
      legs:
        - {action: BUY, ratio: 1, secType: OPT, symbol: AAPL, expiry: 20261218, strike: 190, right: C}
        - {action: SELL, ratio: 2, conId: 687913814}
"""


def test_combo_with_legs_loads(tmp_path):
    (s,) = load_config(write(tmp_path, COMBO)).strategies
    bag = s.instruments["SPREAD"]
    assert bag.secType == "BAG" and bag.symbol == "AAPL" and bag.exchange == "SMART"
    assert [(leg.conId, leg.ratio, leg.action) for leg in bag.comboLegs] == [(0, 1, "BUY"), (687913814, 2, "SELL")]
    first, second = bag.leg_contracts
    assert (first.secType, first.lastTradeDateOrContractMonth, first.strike, first.right) == \
        ("OPT", "20261218", 190, "C")
    assert second.conId == 687913814


@pytest.mark.parametrize("old, new, key, line, words", [
    ("action: SELL", "action: HOLD", "legs.1.action", 9, "BUY or SELL"),
    ("ratio: 2", "ratio: 0", "legs.1.ratio", 9, "whole number"),
    ("ratio: 2", "ratio: 1.5", "legs.1.ratio", 9, "whole number"),
    ("strike: 190", "strik: 190", "legs.0.strik", 8, "unknown key"),
    ("strike: 190", "strike: high", "legs.0.strike", 8, "must be a number"),
    ("{action: SELL, ratio: 2, conId: 687913814}", "{action: SELL, ratio: 2}", "legs.1", 9, "conId"),
    ("{action: SELL, ratio: 2, conId: 687913814}", "AAPL", "legs.1", 9, "must be a mapping"),
    ("      secType: BAG\n", "      secType: OPT\n", "secType", 5, "BAG"),
    ("      symbol: AAPL\n", "      strike: 5\n", "strike", 6, "does not apply to a combo"),
])
def test_bad_combo_legs_name_file_key_and_line(tmp_path, old, new, key, line, words):
    assert old in COMBO
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, COMBO.replace(old, new)))
    err = info.value
    assert err.key == f"strategy.instruments.SPREAD.{key}" and err.line == line and words in err.message
    assert str(err).startswith(f"{tmp_path / 's.yaml'}:{line}: strategy.instruments.SPREAD.{key}:")


def test_combo_needs_two_legs(tmp_path):
    text = COMBO.replace("        - {action: SELL, ratio: 2, conId: 687913814}\n", "")
    with pytest.raises(ConfigError, match=r"s.yaml:7: strategy.instruments.SPREAD.legs: a combo needs a list of "
                                          r"at least two legs"):
        load_config(write(tmp_path, text))


# --- connection: and on_disconnect: (ibframe.resilience.config) -----------------------------------------

def test_connection_section_and_on_disconnect_load(tmp_path):
    text = GOOD.replace("  name: demo\n", "  name: demo\n  on_disconnect: {cancel_after: 45s}\n") + (
        "connection: {max_delay: 1m, give_up_after: 5, client_id_in_use: next, spare_client_ids: [8, 9]}\n")
    cfg = load_config(write(tmp_path, text))
    assert cfg.strategies[0].on_disconnect == 45.0
    c = cfg.connection
    assert (c.reconnect, c.max_delay, c.give_up_after, c.client_id_in_use, c.spare_client_ids) == \
        (True, 60.0, 5, "next", [8, 9])
    assert load_config(write(tmp_path, GOOD)).connection.give_up_after is None     # forever by default


@pytest.mark.parametrize("section, key, words", [
    ("connection: {retry: 3}", "connection.retry", "unknown key"),
    ("connection: {give_up_after: 0}", "connection.give_up_after", "number of attempts"),
    ("connection: {jitter: 2}", "connection.jitter", "from 0 to 1"),
    ("connection: {initial_delay: soon}", "connection.initial_delay", "not a duration"),
    ("connection: {initial_delay: 10s, max_delay: 1s}", "connection.max_delay", "shorter than initial_delay"),
    ("connection: {client_id_in_use: next}", "connection.spare_client_ids", "spare_client_ids"),
    ("connection: {reconnect: maybe}", "connection.reconnect", "true or false"),
])
def test_bad_connection_settings_say_what_to_write(tmp_path, section, key, words):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD + section + "\n"))
    assert info.value.key == key and words in str(info.value) and info.value.line == 10


def test_bad_on_disconnect_says_what_to_write(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD.replace("  name: demo\n", "  name: demo\n  on_disconnect: cancel\n")))
    assert info.value.key == "strategy.on_disconnect" and "cancel_after" in str(info.value)


def test_backoff_delays_grow_to_the_cap_with_bounded_jitter():
    import random

    from ibframe.resilience import ConnectionConfig
    cfg = ConnectionConfig(initial_delay=0.5, max_delay=4.0, multiplier=2.0, jitter=0.2, give_up_after=8)
    delays = list(cfg.delays(random.Random(1)))
    assert len(delays) == 8
    for got, base in zip(delays, [0.5, 1, 2, 4, 4, 4, 4, 4]):
        assert base * 0.8 <= got <= base * 1.2
    endless = ConnectionConfig().delays(random.Random(2))
    assert len([next(endless) for _ in range(1000)]) == 1000                    # never gives up by default


# --- values that used to end in a traceback or a hang (issue 12's mutated configs) ----------------------

@pytest.mark.parametrize("extra, key, words", [
    ("duration: .nan", "duration", "finite"),
    ("duration: .inf", "duration", "finite"),
    ("sim: {speed: .inf}", "sim.speed", "finite"),
    ("sim: {start: '2026-13-45 99:99'}", "sim.start", "not a real date"),
    ("sim: {universe: 5}", "sim.universe", "path of a universe YAML file"),
    ("gateway: {host: 127.0.0.1, port: 65536}", "gateway.port", "1-65535"),
    ("gateway: {host: 127.0.0.1, port: 0}", "gateway.port", "1-65535"),
])
def test_values_that_used_to_crash_or_hang_are_one_line_errors(tmp_path, extra, key, words):
    text = GOOD.replace("duration: 90s\n", "").replace("gateway: sim\n", "") + extra + "\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert info.value.key == key and words in str(info.value) and info.value.line


def test_paths_are_checked_before_the_run(tmp_path):
    (tmp_path / "afile").write_text("x")
    cases = [(f"record: {tmp_path}", "record", "is a folder"),
             (f"record: {tmp_path / 'afile' / 's.jsonl'}", "record", "is a file"),
             (f"state_dir: {tmp_path / 'afile'}", "state_dir", "is a file"),
             (f"sim: {{universe: {tmp_path}}}", "sim.universe", "is a folder")]
    for extra, key, words in cases:
        with pytest.raises(ConfigError) as info:
            load_config(write(tmp_path, GOOD + extra + "\n"))
        assert info.value.key == key and words in str(info.value), extra


def test_a_class_path_that_is_not_a_module_name_is_refused(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, GOOD.replace("strategies.ma_cross:MovingAverageCross", "'..:X'")))
    assert info.value.key == "strategy.class" and "package.module:ClassName" in str(info.value)


# --- more of issue 12's mutated configs: each one a ConfigError naming key and line --------------------------

@pytest.mark.parametrize("extra, key, words", [
    ("gateway: 127.0.0.1:99999", "gateway.port", "1-65535"),
    ("gateway: {host: 127.0.0.1, port: 7497, client_id: -1}", "gateway.client_id", "whole number from 0"),
    ("sim: {seed: -1}", "sim.seed", "whole number from 0"),
    ("sim: {speed: 0}", "sim.speed", "positive, finite"),
    ("sim: {start: '0001-01-01 00:00'}", "sim.start", "pick a date in between"),
    ("sim: {start: 2026-03-02}", "sim.start", "no time of day"),
    ("sim: {universe: config/no-such-universe.yaml}", "sim.universe", "no such file"),
    ("duration: " + "9" * 400 + "s", "duration", "not a duration"),
    ("log_level: LOUD", "log_level", "not one of DEBUG"),
    ("state_dir: [a, b]", "state_dir", "folder path"),
    ("journal: {snapshot_every: .inf}", "journal.snapshot_every", "finite"),
])
def test_more_values_that_used_to_slip_through_are_one_line_errors(tmp_path, extra, key, words, monkeypatch):
    monkeypatch.chdir(ROOT)
    text = GOOD.replace("duration: 90s\n", "").replace("gateway: sim\n", "") + extra + "\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert info.value.key == key and words in info.value.message and info.value.line == 8, str(info.value)


def test_an_unquoted_date_time_and_a_record_in_a_new_folder_are_accepted(tmp_path):
    text = GOOD + f"sim: {{start: 2026-03-02 10:00:00}}\nrecord: {tmp_path / 'new' / 'deeper' / 's.jsonl.gz'}\n"
    cfg = load_config(write(tmp_path, text))
    assert cfg.sim.start == "2026-03-02 10:00:00" and cfg.record.endswith("deeper/s.jsonl.gz")
    assert not (tmp_path / "new").exists()                        # loading never creates anything


def test_a_key_given_twice_is_an_error_not_a_silent_override(tmp_path):
    text = GOOD.replace("  params: {fast: 5, slow: 20}\n", "  params: {fast: 5, slow: 20}\n  params: {fast: 50}\n")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert info.value.key == "strategy.params" and info.value.line == 5 and "first on line 4" in info.value.message


@pytest.mark.parametrize("text, words", [
    ("strategy: " + "[" * 3000 + "]" * 3000 + "\n", "not valid YAML"),
    ("a: &x [*x, *x]\n" + GOOD, "unknown key"),
    ("strategy:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 80)), "nested more than"),
])
def test_absurd_yaml_is_one_error_line(tmp_path, text, words):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert words in str(info.value) and "\n" not in str(info.value)


def test_a_config_path_that_is_a_folder_or_not_text_is_one_error_line(tmp_path):
    with pytest.raises(ConfigError, match="is a folder; pass the path of a strategy YAML"):
        load_config(tmp_path)
    (tmp_path / "bin.yaml").write_bytes(b"strategy: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        load_config(tmp_path / "bin.yaml")
