"""Account, position and P&L streams of the simulated gateway, seen through the official ibapi client.

Positions are made by booking fills into the ledger on the gateway's loop (what the broker does
after a match), or by real orders when the paper broker is present.
"""
from __future__ import annotations

import importlib
import json
from decimal import Decimal

import pytest
from ibapi.account_summary_tags import AccountSummaryTags
from ibapi.contract import Contract
from ibapi.message import OUT
from ibapi.order import Order

from ibframe.sim.protocol import handlers
from ibframe.sim.protocol.wire import format_field

from account_kit import AAPL, EURUSD, SPY, fill, sim  # noqa: F401 (sim is a fixture)
from conftest import FIXTURE_FRAMES, VERSIONS, shared_fixture

ALL_TAGS = AccountSummaryTags.AllTags + ",DayTradesRemainingT+1"


def summary(client, req_id: int, tags: str = ALL_TAGS) -> dict[tuple[str, str], tuple[str, str]]:
    """{(account, tag): (value, currency)} of one reqAccountSummary download."""
    client.reqAccountSummary(req_id, "All", tags)
    client.wait("accountSummaryEnd", lambda a: a[0] == req_id)
    rows = client.all("accountSummary", req_id)
    client.cancelAccountSummary(req_id)
    return {(a[1], a[2]): (a[3], a[4]) for a in rows}


def download(client, account: str) -> tuple[dict[str, str], list[tuple]]:
    """reqAccountUpdates: ({key(-currency): value}, updatePortfolio args) up to accountDownloadEnd."""
    client.reqAccountUpdates(True, account)
    client.wait("accountDownloadEnd", lambda a: a[0] == account)
    values = {}
    for key, value, ccy, acct in client.all("updateAccountValue"):
        if acct == account:
            values[key if ccy in ("", "USD") else f"{key}:{ccy}"] = value
    return values, [a for a in client.all("updatePortfolio") if a[-1] == account]


def has_broker() -> bool:
    try:
        importlib.import_module("ibframe.sim.broker.orders")        # registers the order handlers when present
    except ImportError:
        return False
    return OUT.PLACE_ORDER in handlers.HANDLERS


def stock(symbol: str = "AAPL") -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = symbol, "STK", "SMART", "USD"
    return c


def market_order(action: str, quantity: float, account: str = "") -> Order:
    o = Order()
    o.action, o.orderType, o.totalQuantity, o.account = action, "MKT", Decimal(quantity), account
    o.tif = "DAY"
    return o


# --- starting values and consistency -------------------------------------------------------------

def test_starting_account_comes_from_the_universe(sim, connect):
    gw = sim({"id": "DU200", "cash": 123_456.78}, {"id": "DU201", "cash": 10_000, "margin": "Cash"})
    client = connect(gw)
    rows = summary(client, 9001)
    assert rows[("DU200", "NetLiquidation")] == ("123456.78", "USD")
    assert rows[("DU200", "TotalCashValue")] == ("123456.78", "USD")
    assert rows[("DU200", "EquityWithLoanValue")] == ("123456.78", "USD")
    assert rows[("DU200", "GrossPositionValue")] == ("0.00", "USD")
    assert rows[("DU200", "InitMarginReq")] == ("0.00", "USD")
    assert rows[("DU200", "Cushion")] == ("1", "")
    assert rows[("DU200", "DayTradesRemaining")] == ("-1", "")
    assert rows[("DU200", "AccountType")] == ("INDIVIDUAL", "")
    assert float(rows[("DU200", "BuyingPower")][0]) == pytest.approx(4 * 123_456.78)
    assert rows[("DU201", "NetLiquidation")] == ("10000.00", "USD")
    assert float(rows[("DU201", "BuyingPower")][0]) == pytest.approx(10_000)     # cash account: no leverage
    assert client.all("managedAccounts")[0][0] == "DU200,DU201"


def test_account_values_are_consistent_with_positions_and_marks(sim, connect):
    gw = sim({"id": "DU202", "cash": 1_000_000})
    client = connect(gw)
    fill(gw, AAPL, "BOT", 300)
    fill(gw, SPY, "SLD", 100)
    call = next(o for o in gw.universe.options_of(AAPL) if o.right == "C")
    fill(gw, call.con_id, "BOT", 5)
    values, portfolio = download(client, "DU202")
    by_con = {a[0].conId: a for a in portfolio}
    assert set(by_con) == {AAPL, SPY, call.con_id}
    _, aapl_pos, aapl_px, aapl_mv, aapl_avg, *_ = by_con[AAPL]
    assert aapl_pos == Decimal(300) and aapl_mv == pytest.approx(300 * aapl_px, abs=0.01)
    assert by_con[call.con_id][3] == pytest.approx(5 * 100 * by_con[call.con_id][2], abs=0.01)
    market_values = sum(a[3] for a in portfolio)
    net_liq = float(values["NetLiquidation"])
    assert net_liq == pytest.approx(float(values["TotalCashValue"]) + market_values, abs=0.05)
    assert float(values["GrossPositionValue"]) == pytest.approx(sum(abs(a[3]) for a in portfolio), abs=0.05)
    assert float(values["Cushion"]) == pytest.approx(float(values["ExcessLiquidity"]) / net_liq, abs=1e-5)
    assert float(values["ExcessLiquidity"]) == pytest.approx(
        float(values["EquityWithLoanValue"]) - float(values["MaintMarginReq"]), abs=0.02)
    assert float(values["AvailableFunds"]) == pytest.approx(
        float(values["EquityWithLoanValue"]) - float(values["InitMarginReq"]), abs=0.02)
    # long options have no loan value
    assert float(values["EquityWithLoanValue"]) == pytest.approx(net_liq - by_con[call.con_id][3], abs=0.05)
    assert float(values["NetLiquidation-S"]) == pytest.approx(net_liq, abs=0.01)
    assert values["AccountCode"] == "DU202" and values["ExchangeRate:BASE"] == "1.00"
    assert float(values["StockMarketValue"]) == pytest.approx(by_con[AAPL][3] + by_con[SPY][3], abs=0.02)
    assert client.all("updateAccountTime")[-1][0] == "10:00"


def test_positions_carry_ib_average_costs(sim, connect):
    gw = sim({"id": "DU203", "cash": 1_000_000})
    fill(gw, AAPL, "BOT", 100, 190.00)
    call = next(o for o in gw.universe.options_of(AAPL) if o.right == "C")
    fill(gw, call.con_id, "BOT", 2, 2.35)
    client = connect(gw)
    client.reqPositions()
    client.wait("positionEnd")
    rows = {a[1].conId: a for a in client.all("position")}
    account, contract, pos, avg = rows[AAPL]
    assert (account, contract.symbol, contract.secType, pos) == ("DU203", "AAPL", "STK", Decimal(100))
    assert avg == pytest.approx(190.01)
    _, opt, pos, avg = rows[call.con_id]
    assert opt.secType == "OPT" and opt.multiplier == "100" and opt.right == "C" and pos == Decimal(2)
    assert avg == pytest.approx((2 * 235 + 1.30) / 2)
    # live updates while subscribed
    fill(gw, AAPL, "SLD", 40, 191.00)
    client.wait("position", lambda a: a[1].conId == AAPL and a[2] == Decimal(60))
    client.cancelPositions()


def test_day_trades_remaining_is_reported(sim, connect):
    gw = sim({"id": "DU204", "cash": 20_000, "pdt": True}, {"id": "DU205", "cash": 20_000, "pdt": False},
             {"id": "DU206", "cash": 40_000})
    client = connect(gw)
    for account in ("DU204", "DU205", "DU206"):
        fill(gw, AAPL, "BOT", 10, order_id=1, account=account)
        fill(gw, AAPL, "SLD", 10, order_id=2, account=account)
    rows = summary(client, 9002, "DayTradesRemaining,DayTradesRemainingT+1")
    assert rows[("DU204", "DayTradesRemaining")] == ("2", "")
    assert rows[("DU205", "DayTradesRemaining")] == ("-1", "")         # PDT switched off
    assert rows[("DU206", "DayTradesRemaining")] == ("-1", "")         # 25,000 USD or more
    for n in range(2):
        fill(gw, SPY, "BOT", 1, order_id=10 + 2 * n, account="DU204")
        fill(gw, SPY, "SLD", 1, order_id=11 + 2 * n, account="DU204")
    rows = summary(client, 9003, "DayTradesRemaining")
    assert rows[("DU204", "DayTradesRemaining")] == ("0", "")


# --- streams -----------------------------------------------------------------------------------------

def test_account_updates_follow_fills_and_refresh(sim, connect):
    gw = sim({"id": "DU207", "cash": 1_000_000})
    client = connect(gw)
    download(client, "DU207")
    assert client.all("updatePortfolio") == []
    fill(gw, AAPL, "BOT", 100)
    client.wait("updatePortfolio", lambda a: a[0].conId == AAPL and a[1] == Decimal(100))
    gw.call(lambda: setattr(gw.ledger, "refresh_seconds", 0.2))          # TWS: every 3 minutes
    seen = len([a for a in client.all("updateAccountValue") if a[0] == "NetLiquidation"])
    client.wait("updateAccountValue", lambda a: a[0] == "NetLiquidation", count=seen + 2)
    client.reqAccountUpdates(False, "DU207")
    client.reqCurrentTime()
    client.wait("currentTime")


def test_second_account_subscription_replaces_the_first(sim, connect):
    gw = sim({"id": "DU208", "cash": 100_000}, {"id": "DU209", "cash": 50_000})
    client = connect(gw)
    download(client, "DU208")
    values, _ = download(client, "DU209")
    assert "unsubscribed from account data" in client.wait_error(-1, 2100)
    assert [a[0] for a in client.all("accountDownloadEnd")] == ["DU208", "DU209"]


def test_account_summary_limits_and_ledger_tags(sim, connect):
    gw = sim({"id": "DU210", "cash": 100_000})
    client = connect(gw)
    fill(gw, EURUSD, "BOT", 20_000)
    client.reqAccountSummary(9010, "All", "NetLiquidation,$LEDGER:ALL")
    client.wait("accountSummaryEnd", lambda a: a[0] == 9010)
    rows = {(a[2], a[4]): a[3] for a in client.all("accountSummary", 9010)}
    assert rows[("CashBalance", "EUR")] == "20000.00"
    assert float(rows[("ExchangeRate", "EUR")]) > 1.0
    assert ("NetLiquidationByCurrency", "BASE") in rows and ("CashBalance", "USD") in rows
    client.reqAccountSummary(9011, "All", "$LEDGER")
    client.wait("accountSummaryEnd", lambda a: a[0] == 9011)
    assert {a[4] for a in client.all("accountSummary", 9011)} == {"USD"}
    client.reqAccountSummary(9012, "All", "NetLiquidation")
    assert "Maximum number of account summary requests exceeded" in client.wait_error(9012, 322)
    client.cancelAccountSummary(9010)
    client.reqAccountSummary(9013, "All", "NetLiquidation")
    client.wait("accountSummaryEnd", lambda a: a[0] == 9013)


def test_pnl_and_pnl_single(sim, connect):
    gw = sim({"id": "DU211", "cash": 1_000_000})
    client = connect(gw)
    fill(gw, AAPL, "BOT", 100, order_id=1)
    fill(gw, AAPL, "SLD", 50, order_id=2)
    client.reqPnL(9020, "DU211", "")
    req_id, daily, unrealized, realized = client.wait("pnl", lambda a: a[0] == 9020)[0]
    assert realized == pytest.approx(gw.ledger.accounts["DU211"].realized, abs=0.01)
    client.reqPnLSingle(9021, "DU211", "", AAPL)
    _, pos, daily1, unrealized1, realized1, value = client.wait("pnlSingle", lambda a: a[0] == 9021)[0]
    assert pos == Decimal(50)
    mark = gw.call(lambda: gw.ledger.mark(gw.universe.get(AAPL)))
    assert value == pytest.approx(50 * mark, rel=0.01)
    assert realized1 == pytest.approx(realized, abs=0.01)
    assert daily1 == pytest.approx(unrealized1 + realized1, abs=0.05)   # all of it happened today
    fill(gw, AAPL, "BOT", 25, order_id=3)
    client.wait("pnlSingle", lambda a: a[0] == 9021 and a[1] == Decimal(75))
    client.cancelPnL(9020)
    client.cancelPnLSingle(9021)
    client.reqPnL(9022, "DU999", "")
    client.wait_error(9022, 321)


def test_multi_variants(sim, connect):
    gw = sim({"id": "DU212", "cash": 1_000_000}, {"id": "DU213", "cash": 5_000})
    client = connect(gw)
    fill(gw, AAPL, "BOT", 10, account="DU212")
    client.reqPositionsMulti(9030, "DU212", "")
    client.wait("positionMultiEnd", lambda a: a[0] == 9030)
    rows = client.all("positionMulti", 9030)
    assert [(a[1], a[3].conId, a[4]) for a in rows] == [("DU212", AAPL, Decimal(10))]
    fill(gw, AAPL, "BOT", 5, account="DU212")
    client.wait("positionMulti", lambda a: a[0] == 9030 and a[4] == Decimal(15))
    client.cancelPositionsMulti(9030)
    client.reqAccountUpdatesMulti(9031, "DU213", "", True)
    client.wait("accountUpdateMultiEnd", lambda a: a[0] == 9031)
    rows = client.all("accountUpdateMulti", 9031)
    assert ("NetLiquidation", "5000.00", "USD") in [(a[3], a[4], a[5]) for a in rows]
    assert all(a[1] == "DU213" for a in rows)
    client.cancelAccountUpdatesMulti(9031)


# --- every layout at every served version -----------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"v{v}")
def test_account_messages_decode_at_each_version(version, sim, connect):
    gw = sim({"id": "DU214", "cash": 1_000_000}, max_server_version=version)
    fill(gw, AAPL, "BOT", 100)
    fill(gw, EURUSD, "SLD", 10_000)
    client = connect(gw)
    assert client.serverVersion() == version
    client.reqPositions()
    client.wait("positionEnd")
    assert {a[1].conId for a in client.all("position")} == {AAPL, EURUSD}
    values, portfolio = download(client, "DU214")
    assert {a[0].conId for a in portfolio} == {AAPL, EURUSD} and "NetLiquidation" in values
    summary(client, 9040)
    client.reqPnL(9041, "DU214", "")
    client.reqPnLSingle(9042, "DU214", "", AAPL)
    client.reqPositionsMulti(9043, "DU214", "")
    client.reqAccountUpdatesMulti(9044, "DU214", "", False)
    client.wait("pnl", lambda a: a[0] == 9041)
    client.wait("pnlSingle", lambda a: a[0] == 9042 and a[1] == Decimal(100))
    client.wait("positionMultiEnd", lambda a: a[0] == 9043)
    client.wait("accountUpdateMultiEnd", lambda a: a[0] == 9044)
    assert [e for e in client.errors() if e[1] not in (2104, 2106, 2158)] == []


def test_frames_match_real_tws(sim, connect):
    """Field for field against frames recorded from a real TWS at version 176."""
    real = {}
    with shared_fixture(FIXTURE_FRAMES).open() as fh:
        for line in fh:
            frame = json.loads(line)
            real[frame["name"]] = frame["fields"]
    gw = sim({"id": "DU217", "cash": 1_000_000}, max_server_version=176)
    captured: list[tuple] = []
    gw.taps.append(lambda session, fields: captured.append(tuple(format_field(f) for f in fields)))
    fill(gw, EURUSD, "BOT", 20_000)
    fill(gw, EURUSD, "SLD", 20_000)                      # flat, as in the recording
    client = connect(gw)
    client.reqPositions()
    client.wait("positionEnd")
    summary(client, 9060, "NetLiquidation,Cushion")
    for name, match in (("account_summary_netliq", lambda f: f[0] == "63" and f[4] == "NetLiquidation"),
                        ("account_summary_cushion", lambda f: f[0] == "63" and f[4] == "Cushion"),
                        ("position_eurusd_flat", lambda f: f[0] == "61" and f[3] == "12087792")):
        theirs = real[name]
        ours = next(f for f in captured if match(f))
        assert len(ours) == len(theirs), f"{name}: ours {ours} real {theirs}"
        assert ours[:2] == tuple(theirs[:2])
        if name == "position_eurusd_flat":
            assert ours[3:] == tuple(theirs[3:])          # same contract block, flat position, avgCost 0.0
        else:
            assert ours[4:] == tuple(theirs[4:5]) + ours[5:6] + tuple(theirs[6:])   # tag and currency
        if name == "account_summary_cushion":
            assert ours[5] == theirs[5] == "1"               # no margin used: TWS prints a bare 1


# --- through real orders, once the paper broker is there ----------------------------------------------------

@pytest.mark.skipif(not has_broker(), reason="the paper broker (broker.py / orders.py) does not handle orders yet")
def test_oversized_order_is_rejected_with_ibs_margin_text(sim, connect):
    gw = sim({"id": "DU215", "cash": 20_000})
    client = connect(gw)
    order_id = client.wait("nextValidId")[0][0]
    client.placeOrder(order_id, stock(), market_order("BUY", 1_000, "DU215"))
    text = client.wait_error(order_id, 201)
    assert text.startswith("Order rejected - reason:We are unable to accept your order.")
    assert "your Equity with Loan Value [" in text and "must exceed the new total Initial Margin of [" in text


@pytest.mark.skipif(not has_broker(), reason="the paper broker (broker.py / orders.py) does not handle orders yet")
def test_fourth_day_trade_is_blocked_through_orders(sim, connect):
    gw = sim({"id": "DU216", "cash": 20_000, "pdt": True})
    client = connect(gw)
    order_id = client.wait("nextValidId")[0][0]
    for n in range(3):
        for action in ("BUY", "SELL"):
            client.placeOrder(order_id, stock(), market_order(action, 10, "DU216"))
            client.wait("orderStatus", lambda a, oid=order_id: a[0] == oid and a[1] == "Filled")
            order_id += 1
    client.placeOrder(order_id, stock(), market_order("BUY", 10, "DU216"))
    assert client.wait_error(order_id, 201).count("Potential Pattern Day Trade") == 1
    rows = summary(client, 9050, "DayTradesRemaining")
    assert rows[("DU216", "DayTradesRemaining")] == ("0", "")


@pytest.mark.skipif(not has_broker(), reason="the paper broker (broker.py / orders.py) does not handle orders yet")
def test_real_fill_moves_positions_and_account_values(sim, connect):
    gw = sim({"id": "DU218", "cash": 100_000})
    client = connect(gw)
    client.reqPositions()
    client.wait("positionEnd")
    client.reqPnLSingle(9070, "DU218", "", AAPL)
    order_id = client.wait("nextValidId")[0][0]
    client.placeOrder(order_id, stock(), market_order("BUY", 100, "DU218"))
    status = client.wait("orderStatus", lambda a: a[0] == order_id and a[1] == "Filled")[-1]
    fee = sum(a[0].commissionAndFees for a in client.wait("commissionAndFeesReport"))
    avg_fill = status[4]
    position = client.wait("position", lambda a: a[1].conId == AAPL and a[2] == Decimal(100))[-1]
    assert position[3] == pytest.approx(avg_fill + fee / 100, abs=1e-6)
    client.wait("pnlSingle", lambda a: a[0] == 9070 and a[1] == Decimal(100))
    values, portfolio = download(client, "DU218")
    assert float(values["TotalCashValue"]) == pytest.approx(100_000 - 100 * avg_fill - fee, abs=0.01)
    assert float(values["NetLiquidation"]) == pytest.approx(float(values["TotalCashValue"]) + portfolio[0][3], abs=0.02)
