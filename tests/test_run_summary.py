"""The run summary tells the truth: the strategy's own fills, P&L marked to the last live quote.

A Runner runs in this process against the embedded simulator, its market frozen (speed ~0) at a pinned
instant, so the quote at the end is known exactly and differs from the last fill (a buy fills at the ask).
"""
from __future__ import annotations

import re

import pytest

from ibframe.config import ConfigError, load_config
from ibframe.run import Runner
from ibframe.strategy import Strategy
from ibframe.trading.orders import limit
from conftest import wait_until



class Nibbler(Strategy):
    """Buys 1 AAPL per timer tick (12 times), 5 MSFT without a quote, then rests a 1,000,000-share bid."""

    def on_start(self):
        self.q = self.quote("AAPL")
        self.aapl_buys = []
        self.finished = False
        self.schedule(every=0.02)

    def on_timer(self):
        if self.finished or self.q.ask is None:
            return
        if len(self.aapl_buys) < 12:
            self.aapl_buys.append(self.buy("AAPL", 1))
        elif all(t.done for t in self.aapl_buys):
            self.msft = self.buy("MSFT", 5)
            self.resting = self.place("AAPL", limit("BUY", 1_000_000, 0.01))
            self.finished = True


CONFIG = """\
strategy:
  class: test_run_summary:Nibbler
  name: nibbler
  instruments: {AAPL: AAPL, MSFT: MSFT}
sim: {seed: 3, speed: 0.000001, start: "2026-11-18 11:30"}
log_level: WARNING
state_dir: {state_dir}
risk: {enabled: false, margin: {what_if_above: off}}   # 12 identical buys and a 1,000,000-share bid on purpose
"""


def test_summary_marks_to_the_last_live_quote_and_says_what_it_left_out(tmp_path, capsys):
    state_dir = tmp_path / "fresh" / "var"
    path = tmp_path / "run.yaml"
    path.write_text(CONFIG.replace("{state_dir}", str(state_dir)))
    runner = Runner(load_config(path))
    try:
        runner.start()
        (s,) = runner.strategies
        wait_until(lambda: s.finished and s.msft.done and s.resting.status in ("Submitted", "PreSubmitted"),
                   what="12 AAPL fills, the MSFT fill and the resting bid")
        wait_until(lambda: all(f.commission for t in s.trades for f in t.fills), what="commission reports")
    finally:
        runner.stop()
    out = capsys.readouterr().out

    mid = s.q.mid                                                  # the line was cancelled at stop: its last value
    fills = [f for t in s.aapl_buys for f in t.fills]
    assert sum(f.shares for f in fills) == 12 and mid is not None
    expected = sum(f.shares * (mid - f.price) - f.commission for f in fills)
    line = next(x for x in out.splitlines() if x.strip().startswith("AAPL: position 12"))
    got = re.search(r"P&L ([+-]\d+\.\d\d) \(marked to last quote, mid (\d+\.\d{4})\)", line)
    assert got, line
    assert got.group(2) == f"{mid:.4f}" and float(got.group(1)) == pytest.approx(expected, abs=0.006)

    msft = next(x for x in out.splitlines() if x.strip().startswith("MSFT: position 5"))
    assert f"marked to last fill {s.msft.fills[-1].price:.4f}: no live quote at the end" in msft

    assert "4 more orders not shown" in out                         # 14 orders, the last 10 listed
    assert len([x for x in out.splitlines() if x.strip().startswith("order ")]) == 10
    assert f"order {s.resting.order_id} BUY 1000000 AAPL LMT" in out and "e+06" not in out
    assert "+ = filled better than the far side of the quote" in out

    # execution quality over the run: the 12 AAPL buys against the live line's NBBO at arrival, the MSFT buy
    # (no line) against the snapshot the order path took itself
    assert s.msft.arrival_bid is not None and s.msft.arrival_ask >= s.msft.arrival_bid > 0
    quality = next(x for x in out.splitlines() if "execution quality" in x)
    buys = s.aapl_buys + [s.msft]
    savings = sum((t.arrival_ask - f.price) * f.shares for t in buys for f in t.fills)
    slip = sum((f.price - (t.arrival_bid + t.arrival_ask) / 2) / ((t.arrival_bid + t.arrival_ask) / 2) * 1e4
               * f.shares for t in buys for f in t.fills) / 17
    assert f"savings vs the far side of the arrival NBBO {savings + 0.0:+.2f} (+ = better than crossing" in quality
    assert f"slippage vs the arrival mid {slip + 0.0:+.1f} bps (+ = cost)" in quality
    assert quality.endswith("over 13 fills"), quality


def test_the_state_dir_is_created_and_a_bad_one_is_named(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(CONFIG.replace("{state_dir}", str(tmp_path / "fresh" / "var")))
    Runner(load_config(path)).make_state_dir()
    assert (tmp_path / "fresh" / "var").is_dir()

    (tmp_path / "a-file").write_text("")
    path.write_text(CONFIG.replace("{state_dir}", str(tmp_path / "a-file" / "var")))
    with pytest.raises(ConfigError, match=r"run.yaml:\d+: state_dir: .*a-file is a file, so .*a-file/var cannot be "
                                          r"made a folder"):
        load_config(path)                          # refused with the config, before anything connects
