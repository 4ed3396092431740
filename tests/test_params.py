"""Strategy `params:` schemas (ibframe.params): checked before the run connects, one line with file:line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import Field, model_validator

from ibframe import Strategy
from ibframe.config import ConfigError, StrategyConfig, load_config
from ibframe.params import StrategyParams, check_params
from strategies.book_imbalance import BookImbalance
from strategies.ma_cross import MovingAverageCross
from strategies.mean_reversion import MeanReversion

ROOT = Path(__file__).resolve().parents[1]

MA = """\
strategy:
  class: strategies.ma_cross:MovingAverageCross
  name: ma
  params:
    fast: 5
    slow: 20
    quantity: 100
  instruments: {AAPL: AAPL}
"""


def loaded(tmp_path, text: str) -> StrategyConfig:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    (scfg,) = load_config(path).strategies
    return scfg


def check(tmp_path, cls, text: str) -> dict:
    return check_params(cls, loaded(tmp_path, text), str(tmp_path / "run.yaml"))


def test_valid_params_come_back_with_defaults_filled(tmp_path):
    got = check(tmp_path, MovingAverageCross, MA)
    assert got == {"fast": 5, "slow": 20, "quantity": 100.0, "bar_size": "5 secs", "duration": "3600 S",
                   "allow_short": False}


@pytest.mark.parametrize("old, new, key, line, words", [
    ("quantity: 100", "quantity: -100", "quantity", 7, "positive number of shares"),
    ("quantity: 100", "quantity: 0", "quantity", 7, "positive"),
    ("quantity: 100", "quantity: .nan", "quantity", 7, "got nan"),
    ("quantity: 100", "quantity: '100'", "quantity", 7, "got '100'"),
    ("fast: 5", "fast: 5.5", "fast", 5, "whole number"),
    ("fast: 5", "fast: 0", "fast", 5, "whole number of bars from 1"),
    ("slow: 20", "slow: 3", "slow", 6, "longer than fast (5)"),
    ("slow: 20", "slow: true", "slow", 6, "got True"),
    ("quantity: 100", "quantity: 100\n    short: true", "short", 8, "unknown key; allowed: allow_short"),
    ("quantity: 100", "quantity: 100\n    allow_short: 'yes'", "allow_short", 8, "true or false"),
    ("quantity: 100", "quantity: 100\n    bar_size: 7 secs", "bar_size", 8, "IB bar size"),
])
def test_bad_params_name_file_line_and_key(tmp_path, old, new, key, line, words):
    assert old in MA
    with pytest.raises(ConfigError) as info:
        check(tmp_path, MovingAverageCross, MA.replace(old, new))
    err = info.value
    assert err.key == f"strategy.params.{key}" and err.line == line and words in err.message, str(err)
    assert str(err).startswith(f"{tmp_path / 'run.yaml'}:{line}: strategy.params.{key}: ")


def test_a_strategy_in_a_list_is_named_by_its_index(tmp_path):
    text = ("strategies:\n  - class: strategies.ma_cross:MovingAverageCross\n    name: a\n    instruments: {AAPL: AAPL}\n"
            "  - class: strategies.mean_reversion:MeanReversion\n    name: b\n    instruments: {MSFT: MSFT}\n"
            "    params: {oversold: 120}\n")
    path = tmp_path / "run.yaml"
    path.write_text(text)
    first, second = load_config(path).strategies
    assert check_params(MovingAverageCross, first, str(path))["fast"] == 10
    with pytest.raises(ConfigError) as info:
        check_params(MeanReversion, second, str(path))
    assert info.value.key == "strategies.1.params.oversold" and info.value.line == 8


def test_the_examples_long_only_strategies_cannot_be_turned_into_short_sellers(tmp_path):
    for cls, path in ((MovingAverageCross, "config/ma_cross.yaml"), (MeanReversion, "config/mean_reversion.yaml"),
                      (BookImbalance, "config/book_imbalance.yaml")):
        text = (ROOT / path).read_text()
        assert check(tmp_path, cls, text)["quantity"] > 0                      # the shipped config passes
        with pytest.raises(ConfigError, match=r"run.yaml:\d+: strategy.params.quantity: must be a positive"):
            check(tmp_path, cls, text.replace("quantity: ", "quantity: -"))
    allowed = MA.replace("quantity: 100", "quantity: 100\n    allow_short: true")
    assert check(tmp_path, MovingAverageCross, allowed)["allow_short"] is True      # short selling is opt-in


def test_book_imbalance_levels_must_fit_in_its_rows(tmp_path):
    text = (ROOT / "config/book_imbalance.yaml").read_text().replace("levels: 5", "levels: 12")
    with pytest.raises(ConfigError) as info:
        check(tmp_path, BookImbalance, text)
    assert info.value.key == "strategy.params" and "rows ≥ levels" in info.value.message


class Unchecked(Strategy):
    """No Params model: its params pass as given."""


class WithModelCheck(Strategy):
    class Params(StrategyParams):
        low: float = Field(1.0, description="a number")
        high: float = Field(2.0, description="a number")

        @model_validator(mode="after")
        def _ordered(self):
            if self.low >= self.high:
                raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")
            return self


class NotAModel(Strategy):
    Params = dict


def test_params_without_a_schema_pass_unchecked_and_model_checks_name_the_params_line(tmp_path):
    text = MA.replace("strategies.ma_cross:MovingAverageCross", "test_params:Unchecked").replace("quantity: 100",
                                                                                                 "quantity: -100")
    assert check(tmp_path, Unchecked, text) == {"fast": 5, "slow": 20, "quantity": -100}
    text = MA.replace("fast: 5\n    slow: 20\n    quantity: 100", "low: 3\n    high: 2")
    with pytest.raises(ConfigError) as info:
        check(tmp_path, WithModelCheck, text)
    assert info.value.key == "strategy.params" and info.value.line == 4 and "below high" in info.value.message
    with pytest.raises(ConfigError, match="Params must be a class deriving from ibframe.params.StrategyParams"):
        check(tmp_path, NotAModel, MA)


def test_a_strategy_built_in_code_is_checked_without_line_numbers():
    scfg = StrategyConfig("x:Y", "coded", {"quantity": -1}, {})
    with pytest.raises(ConfigError) as info:
        check_params(MovingAverageCross, scfg, "<test>")
    assert str(info.value).startswith("<test>: strategy.params.quantity: must be a positive")


def test_cli_refuses_a_negative_quantity_before_connecting(tmp_path):
    text = (ROOT / "config/ma_cross.yaml").read_text().replace("quantity: 100", "quantity: -100")
    text = text.replace("duration: 60s", f"duration: 60s\nstate_dir: {tmp_path / 'state'}")
    path = tmp_path / "short.yaml"
    path.write_text(text)
    proc = subprocess.run([sys.executable, "-m", "ibframe.run", str(path)], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (f"error: {path}:6: strategy.params.quantity: must be a positive number of shares to hold "
                           f"when long (a size: it is never negative; selling short needs allow_short: true), "
                           f"got -100\n")
    assert "simulated gateway" not in proc.stdout + proc.stderr                  # nothing was started
