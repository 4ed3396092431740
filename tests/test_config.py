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
    (GOOD.replace("secType: STK, symbol: AAPL", "secType: XYZ, symbol: AAPL"), "strategy.instruments.AAPL", 6, "secType"),
    (GOOD.replace("duration: 90s", "duration: soon"), "duration", 9, "not a duration"),
    (GOOD.replace("gateway: sim", "gateway: 127.0.0.1:7496"), "gateway.port", 8, "LIVE"),
    (GOOD + "colour: blue\n", "colour", 10, "unknown key"),
])
def test_errors_name_key_and_line(tmp_path, text, key, line, words):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    err = info.value
    assert err.key == key and err.line == line and words in str(err)
    assert str(err).startswith(f"{tmp_path / 's.yaml'}:{line}: {key}:")


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
