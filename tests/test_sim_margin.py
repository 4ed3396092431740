"""The simulated ledger's margin model, pre-trade checks, day trades, liquidation and state.

Fills are booked straight into the ledger on the gateway's loop (`gateway.call`), the way the
broker books them; what the client sees is checked in test_sim_account.py.
"""
from __future__ import annotations

import datetime as dt

import pytest

from account_kit import AAPL, BOND, EURUSD, SPY, fill, sim  # noqa: F401 (sim is a fixture)
from ibframe.sim import SimGateway
from ibframe.sim.accounts.daytrades import DayTradeBook, window
from ibframe.sim.accounts.margin import commission, multiplier, position_requirement
from ibframe.sim.market.universe import load_universe


def check(gw: SimGateway, con_id: int, action: str, quantity: float, price: float = 0.0, account: str | None = None):
    return gw.call(lambda: gw.ledger.check_order(account or gw.ledger.default_account(),
                                                 gw.universe.get(con_id), action, quantity, price))


def valuation_now(gw: SimGateway, account: str):
    """The ledger's valuation, called on the gateway loop itself."""
    return gw.ledger.valuation(account)


def valuation(gw: SimGateway, account: str | None = None):
    return gw.call(lambda: gw.ledger.valuation(account or gw.ledger.default_account()))


# --- the model itself ---------------------------------------------------------------------------------

def test_requirements_by_asset_class():
    u = load_universe(today=dt.date(2026, 11, 18))
    aapl = u.get(AAPL)
    assert position_requirement(aapl, 100, 200.0, None, False).init == pytest.approx(10_000)
    assert position_requirement(aapl, 100, 200.0, None, False).maint == pytest.approx(5_000)
    assert position_requirement(aapl, -100, 200.0, None, False).maint == pytest.approx(6_000)
    assert position_requirement(aapl, 100, 200.0, None, True).init == pytest.approx(20_000)
    call = next(o for o in u.options_of(AAPL) if o.right == "C" and o.strike == 200.0)
    assert position_requirement(call, 2, 3.0, 190.0, False).init == 0.0          # long: premium only
    short = position_requirement(call, -2, 3.0, 190.0, False)
    # 3.00 + max(20% x 190 - 10 OTM, 10% x 190) = 31 per share, x 100 x 2
    assert short.init == pytest.approx(6_200) and short.maint == short.init
    es = next(i for i in u.instruments if i.sec_type == "FUT")
    req = position_requirement(es, 1, 6000.0, None, False)
    assert req.init == pytest.approx(0.09 * 300_000) and req.maint == pytest.approx(0.075 * 300_000)
    assert position_requirement(u.get(EURUSD), 100_000, 1.1, None, False).init == pytest.approx(3_300)
    assert multiplier(u.get(BOND)) == 10.0


def test_commissions_follow_ibs_fixed_schedule():
    u = load_universe(today=dt.date(2026, 11, 18))
    aapl = u.get(AAPL)
    assert commission(aapl, 100, 190.0) == 1.00             # minimum
    assert commission(aapl, 1000, 190.0) == 5.00            # 0.005 / share
    assert commission(aapl, 1000, 0.50) == 5.00 and commission(aapl, 1000, 0.10) == 1.00   # capped at 1 %
    call = u.options_of(AAPL)[0]
    assert commission(call, 1, 2.0) == 1.00 and commission(call, 10, 2.0) == 6.50
    es = next(i for i in u.instruments if i.sec_type == "FUT")
    assert commission(es, 2, 6000.0) == 1.70
    assert commission(u.get(EURUSD), 20_000, 1.1) == 2.00 and commission(u.get(EURUSD), 2_000_000, 1.1) == 44.0
    assert commission(u.get(BOND), 1, 100.0) == 5.00 and commission(u.get(BOND), 100, 100.0) == 100.0   # 100k face


def test_day_trade_book_counts_open_then_close_once_per_order():
    book = DayTradeBook()
    day = dt.date(2026, 11, 18)
    assert not book.record(day, AAPL, 1, 0, 100)             # open
    assert book.record(day, AAPL, 2, 100, 60)                # partial close: a day trade
    assert not book.record(day, AAPL, 2, 60, 0)              # the same order again: still one
    assert book.count(day) == 1
    # a position carried overnight and sold the next day is not a day trade
    assert not book.record(day, SPY, 3, 0, 10)
    assert not book.record(dt.date(2026, 11, 19), SPY, 4, 10, 0)
    assert book.count(dt.date(2026, 11, 19)) == 1
    # five business days later (Thanksgiving 26 Nov is no business day) the trade has left the window
    assert dt.date(2026, 11, 18) in window(dt.date(2026, 11, 24))
    assert dt.date(2026, 11, 18) not in window(dt.date(2026, 11, 25 + 2))
    assert book.remaining(day)[0] == 2


# --- ledger on a live gateway ------------------------------------------------------------------------------

def test_fill_bookkeeping_like_ib(sim):
    gw = sim({"id": "DU100", "cash": 100_000})
    fill(gw, AAPL, "BOT", 100, 190.00, order_id=1)
    pos = gw.ledger.accounts["DU100"].positions[AAPL]
    assert pos.quantity == 100 and pos.avg_cost == pytest.approx(190.01)      # commission in the average cost
    assert gw.ledger.accounts["DU100"].cash == pytest.approx(100_000 - 19_000 - 1.00)
    realized = fill(gw, AAPL, "SLD", 40, 191.00, order_id=2)
    assert realized == pytest.approx((191.00 - 190.01) * 40 - 1.00)
    assert pos.quantity == 60 and pos.avg_cost == pytest.approx(190.01)
    realized = fill(gw, AAPL, "SLD", 100, 189.00, order_id=3)                # closes 60, opens 40 short
    assert realized == pytest.approx((189.00 - 190.01) * 60 - 0.60)
    assert pos.quantity == -40 and pos.avg_cost == pytest.approx(189.00 - 0.40 / 40)
    # an option's average cost includes the multiplier
    call = next(o for o in gw.universe.options_of(AAPL) if o.right == "C")
    fill(gw, call.con_id, "BOT", 2, 2.35, order_id=4)
    assert gw.ledger.accounts["DU100"].positions[call.con_id].avg_cost == pytest.approx((2 * 235 + 1.30) / 2)


def test_futures_move_cash_only_by_variation_and_commission(sim):
    gw = sim({"id": "DU101", "cash": 100_000})
    es = next(i for i in gw.universe.instruments if i.sec_type == "FUT")
    fill(gw, es.con_id, "BOT", 1, 6000.00)
    acct = gw.ledger.accounts["DU101"]
    assert acct.cash == pytest.approx(100_000 - 0.85)
    realized = fill(gw, es.con_id, "SLD", 1, 6010.00)
    assert realized == pytest.approx(10 * 50 - 1.70)
    assert acct.cash == pytest.approx(100_000 + 500 - 1.70)


def test_net_liquidation_is_cash_plus_marked_positions(sim):
    gw = sim({"id": "DU102", "cash": 500_000})
    fill(gw, AAPL, "BOT", 300)
    fill(gw, SPY, "SLD", 50)
    fill(gw, EURUSD, "BOT", 100_000)
    v = valuation(gw)
    marks = {h.inst.con_id: h.mark for h in v.holdings}
    acct = gw.ledger.accounts["DU102"]
    expected = acct.cash + 300 * marks[AAPL] - 50 * marks[SPY] + 100_000 * marks[EURUSD]
    assert v.net_liq == pytest.approx(expected, abs=0.01)
    assert v.gross == pytest.approx(300 * marks[AAPL] + 50 * marks[SPY], abs=0.01)   # FX is cash, not a position
    assert v.maint == pytest.approx(0.25 * 300 * marks[AAPL] + 0.30 * 50 * marks[SPY] + 0.025 * 100_000 * marks[EURUSD])


def test_margin_rejection_uses_ibs_text_and_what_if_numbers(sim):
    gw = sim({"id": "DU103", "cash": 50_000})
    ok = check(gw, AAPL, "BUY", 100)
    assert ok.ok and ok.init_after == pytest.approx(ok.init_before + ok.init_change)
    assert ok.init_change > 0.45 * 100 * 150 and ok.commission == 1.00
    bad = check(gw, AAPL, "BUY", 2_000)
    assert not bad.ok
    assert bad.reason.startswith("We are unable to accept your order. Your Available Funds are insufficient")
    assert "In order to obtain the desired position your Equity with Loan Value [" in bad.reason
    assert "USD] must exceed the new total Initial Margin of [" in bad.reason
    # risk-reducing orders are always accepted
    fill(gw, AAPL, "BOT", 100)
    assert check(gw, AAPL, "SELL", 100).ok


def test_cash_account_has_no_leverage_and_no_shorts(sim):
    gw = sim({"id": "DU104", "cash": 20_000, "margin": "Cash"})
    mark = gw.call(lambda: gw.ledger.mark(gw.universe.get(AAPL)))
    assert check(gw, AAPL, "BUY", int(19_000 // mark)).ok
    assert not check(gw, AAPL, "BUY", int(21_000 // mark)).ok
    short = check(gw, AAPL, "SELL", 10)
    assert not short.ok and short.reason == "Short stock positions can only be held in a margin account"
    es = next(i for i in gw.universe.instruments if i.sec_type == "FUT")
    assert not check(gw, es.con_id, "BUY", 1).ok
    v = valuation(gw)
    assert v.available == pytest.approx(20_000)


def test_pdt_blocks_the_fourth_day_trade_under_25k(sim):
    gw = sim({"id": "DU105", "cash": 20_000, "pdt": True}, {"id": "DU106", "cash": 20_000, "pdt": False})
    for account in ("DU105", "DU106"):
        for n in range(3):
            fill(gw, AAPL, "BOT", 10, order_id=10 * n + 1, account=account)
            fill(gw, AAPL, "SLD", 10, order_id=10 * n + 2, account=account)
    assert gw.call(lambda: gw.ledger.day_trades_remaining(gw.ledger.accounts["DU105"]))[0] == 0
    assert gw.call(lambda: gw.ledger.day_trades_remaining(gw.ledger.accounts["DU106"]))[0] == -1
    blocked = check(gw, AAPL, "BUY", 10, account="DU105")
    assert not blocked.ok and blocked.reason.startswith("Potential Pattern Day Trade.")
    assert check(gw, AAPL, "BUY", 10, account="DU106").ok                    # switched off
    assert check(gw, EURUSD, "BUY", 20_000, account="DU105").ok               # FX is not a US security


def test_pdt_does_not_apply_at_25k_or_more(sim):
    gw = sim({"id": "DU107", "cash": 30_000})
    for n in range(4):
        fill(gw, AAPL, "BOT", 10, order_id=2 * n + 1)
        fill(gw, AAPL, "SLD", 10, order_id=2 * n + 2)
    assert gw.call(lambda: gw.ledger.day_trades_remaining(gw.ledger.accounts["DU107"])) == [-1] * 5
    assert check(gw, AAPL, "BUY", 10).ok


def test_liquidation_below_maintenance(sim, connect):
    gw = sim({"id": "DU108", "cash": 20_000, "pdt": False})
    client = connect(gw)
    calls = []
    broker_liquidate = getattr(gw.broker, "liquidate", None)

    def spy(account, con_id, quantity, reason):
        calls.append((account, con_id, quantity, reason))
        if broker_liquidate is not None:
            broker_liquidate(account, con_id, quantity, reason)
    gw.call(lambda: setattr(gw.broker, "liquidate", spy))
    fill(gw, AAPL, "BOT", 200, 190.00)

    before = []

    def crash():                      # AAPL halves: equity 200 x 95 - 18,000 is far below 25 % maintenance
        m = gw.market.get(AAPL)
        m.mid = 95.0
        m._build_book()
        before.append(valuation_now(gw, "DU108"))
    gw.call(crash)
    text = client.wait_error(-1, 2148)
    assert "below its maintenance margin" in text and "liquidated" in text
    gw.call(lambda: None)             # the notice goes out before the loop calls liquidate: let it finish
    assert calls and calls[0][0] == "DU108" and calls[0][1] == AAPL
    assert 0 < calls[0][2] <= 200 and "Margin deficit" in calls[0][3]
    # what was asked for cures the deficit at today's prices: the rest's maintenance fits the equity
    sold = calls[0][2]
    v = valuation(gw)
    if broker_liquidate is None:                  # nothing filled: the position is still whole
        mark = v.holdings[0].mark
        assert sold == int(sold) and (200 - sold) * mark * 0.25 <= v.elv
    else:                                         # the paper broker sells at market: the position shrinks
        client.reqPositions()
        client.wait("position", lambda a: a[1].conId == AAPL and 0 <= a[2] < 200)
        v = valuation(gw)
        deficit_before = before[0].maint - before[0].elv
        assert deficit_before > 0
        # liquidation works in rounds (the next one after 30 simulated seconds): each round must shrink
        # the deficit; selling into the bids can leave a small remainder for the next round
        assert v.maint - v.elv < deficit_before
    assert gw.ledger.accounts["DU108"].liquidations >= 1


def test_state_round_trip(sim):
    gw = sim({"id": "DU109", "cash": 100_000})
    fill(gw, AAPL, "BOT", 100, 190.0, order_id=1)
    fill(gw, AAPL, "SLD", 50, 191.0, order_id=2)
    state = gw.call(gw.ledger.to_state)
    other = sim({"id": "DU109", "cash": 100_000})
    gw2 = other
    gw2.call(lambda: gw2.ledger.load_state(state))
    a, b = gw.ledger.accounts["DU109"], gw2.ledger.accounts["DU109"]
    assert b.cash == pytest.approx(a.cash) and b.realized == pytest.approx(a.realized)
    assert b.positions[AAPL].quantity == 50 and b.positions[AAPL].avg_cost == pytest.approx(a.positions[AAPL].avg_cost)
    assert b.day_trades.trades == a.day_trades.trades
    assert gw2.call(lambda: gw2.ledger.valuation("DU109").daily) == pytest.approx(0.0, abs=1e-6)
