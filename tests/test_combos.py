"""Combos end to end: written in YAML with `legs:`, qualified leg by leg, placed, filled and reported.

The simulator answers a combo fill as TWS does: one execution per leg (its own contract, side and
price) and one for the BAG itself at the net price. The Trade keeps them apart (`fills` = the combo's,
`leg_fills` = the legs'), the strategy's book holds the legs, and the summary prints one combo line.
"""
from __future__ import annotations


import pytest

from ibframe.config import load_config
from ibframe.run import Runner
from ibframe.strategy import Strategy
from conftest import wait_until

AAPL = 265598



class SpreadBuyer(Strategy):
    def on_start(self):
        self.trade = self.buy("SPREAD", 2)


CONFIG = """\
strategy:
  class: test_combos:SpreadBuyer
  name: spreads
  instruments:
    SPREAD:
      secType: BAG
      legs:
        - {action: BUY, ratio: 1, secType: OPT, symbol: AAPL, expiry: 20261218, strike: 190, right: C}
        - {action: SELL, ratio: 1, conId: {short_leg}}
gateway: 127.0.0.1:{port}
log_level: WARNING
state_dir: {state_dir}
risk: {allow_market_without_quote: true}     # a combo at market: no quote line is open for the BAG itself
"""


def option(gw, strike: float, right: str = "C", expiry: str = "20261218") -> int:
    return next(o.con_id for o in gw.universe.options_of(AAPL)
                if o.expiry == expiry and o.strike == strike and o.right == right)


@pytest.fixture
def run(make_gateway, tmp_path, capsys):
    gw = make_gateway(seed=9, speed=1e-6, step_seconds=0.25)       # a frozen market at MIDDAY
    text = CONFIG.replace("{port}", str(gw.port)).replace("{state_dir}", str(tmp_path / "var")) \
                 .replace("{short_leg}", str(option(gw, 200)))
    (tmp_path / "combo.yaml").write_text(text)
    runner = Runner(load_config(tmp_path / "combo.yaml"))
    try:
        runner.start()
        (s,) = runner.strategies
        wait_until(lambda: s.trade.done and len(s.trade.fills) == 1 and len(s.trade.leg_fills) == 2,
                   what="the combo to fill")
        wait_until(lambda: all(f.commission is not None for f in s.trade.leg_fills), what="commission reports")
    finally:
        runner.stop()
    return gw, s, capsys.readouterr().out


def test_combo_from_yaml_qualifies_every_leg(run):
    gw, s, _ = run
    bag = s.instruments["SPREAD"]
    assert (bag.secType, bag.symbol, bag.currency, bag.exchange) == ("BAG", "AAPL", "USD", "SMART")
    assert [(leg.conId, leg.ratio, leg.action, leg.exchange) for leg in bag.comboLegs] == \
        [(option(gw, 190), 1, "BUY", "SMART"), (option(gw, 200), 1, "SELL", "SMART")]
    assert [c.conId for c in bag.leg_contracts] == [option(gw, 190), option(gw, 200)]


def test_combo_fill_records_legs_and_net_price(run):
    gw, s, out = run
    t = s.trade
    long_leg, short_leg = (f for f in t.leg_fills)
    assert (long_leg.contract.conId, long_leg.side, long_leg.shares) == (option(gw, 190), "BOT", 2)
    assert (short_leg.contract.conId, short_leg.side, short_leg.shares) == (option(gw, 200), "SLD", 2)
    (combo,) = t.fills                                          # the combo's own fill, not a third "leg"
    net = round(long_leg.price - short_leg.price, 6)
    assert (combo.contract.secType, combo.side, combo.shares) == ("BAG", "BOT", 2)
    assert combo.price == pytest.approx(net) and t.avg_fill_price == pytest.approx(net) and t.filled == 2
    assert t.commission == pytest.approx(sum(f.commission for f in t.leg_fills)) and t.commission > 0

    legs = s.own_book.holdings()
    assert legs[option(gw, 190)].quantity == 2 and legs[option(gw, 200)].quantity == -2
    assert s.position("SPREAD") == 2 and s.position(legs[option(gw, 190)].contract) == 2
    with pytest.raises(ValueError, match="combo"):
        s.account_position("SPREAD")

    assert (f"order {t.order_id} BUY 2 combo AAPL 2 legs (+1 AAPL 20261218 190C, -1 AAPL 20261218 200C) MKT: "
            f"Filled, filled 2 @ net {net:.4f}") in out
    assert "== spreads: 1 order, 1 fill," in out
    assert "SPREAD: position 2 combos" in out
    assert "AAPL 20261218 190C: position 2" in out and "AAPL 20261218 200C: position -2" in out
    assert "-399" not in out and "BUY 2 AAPL MKT" not in out


def test_qualify_errors_name_the_leg_and_read_cleanly(make_gateway, tmp_path):
    from ibframe.contracts import ContractError, Future, from_mapping
    from ibframe.engine import Engine
    gw = make_gateway(seed=9)
    eng = Engine("127.0.0.1", gw.port, 31, state_dir=tmp_path).start()
    try:
        with pytest.raises(ContractError, match=r"^ES is ambiguous \(2 matches: ") as info:
            eng.qualify(Future("ES"))
        assert "  " not in str(info.value)
        bad_leg = from_mapping({"secType": "BAG", "legs": [{"action": "BUY", "conId": option(gw, 190)},
                                                           {"action": "SELL", "conId": 1}]})
        with pytest.raises(ContractError, match=r"combo leg 2 \(SELL 1\): no security definition for conId 1 .*"
                                                r"check the conId"):
            eng.qualify(bad_leg)
        vague = from_mapping({"secType": "BAG", "legs": [{"action": "BUY", "symbol": "AAPL", "secType": "OPT",
                                                           "right": "C"}, {"action": "SELL", "conId": AAPL}]})
        with pytest.raises(ContractError, match=r"combo leg 1 \(BUY 1\): AAPL C is ambiguous"):
            eng.qualify(vague)
    finally:
        eng.stop()
