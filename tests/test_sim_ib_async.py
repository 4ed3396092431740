"""A third-party TWS API client (ib_async 2.1, which stops at server version 178) against ibframe.sim.

ib_async waits for its whole startup sync (positions, open orders, completed orders, account
updates, executions) and checks every layout strictly; if the simulator answers anything the
way a real TWS would not, these calls time out or fail to parse.
"""
from __future__ import annotations

import pytest

ib_async = pytest.importorskip("ib_async")


@pytest.fixture
def ib(gateway):
    client = ib_async.IB()
    client.connect("127.0.0.1", gateway.port, clientId=77, timeout=10)
    yield client
    client.disconnect()


def test_connects_at_178_with_accounts(ib):
    assert ib.client.serverVersion() == 178
    assert ib.managedAccounts() == ["DU1234567"]


def test_qualify_quotes_and_history(instant, make_gateway):
    """At each of conftest.INSTANTS: quotes (the last ones when closed) and the 30 latest 1-min bars that
    traded, on whole minutes."""
    gw = make_gateway(seed=7, start_time=instant.start)
    ib = ib_async.IB()
    ib.connect("127.0.0.1", gw.port, clientId=78, timeout=10)
    try:
        stock = ib_async.Stock("AAPL", "SMART", "USD")
        (qualified,) = ib.qualifyContracts(stock)
        assert qualified.conId == 265598 and qualified.primaryExchange == "NASDAQ"
        ticker = ib.reqMktData(qualified)
        ib.sleep(0.5)
        assert 0 < ticker.bid < ticker.ask and ticker.volume > 0
        bars = ib.reqHistoricalData(qualified, "", "1800 S", "1 min", "TRADES", False, formatDate=2)
        assert len(bars) == 30 and all(b.low <= b.close <= b.high for b in bars)
        minutes = [int(b.date.timestamp()) for b in bars]
        assert all(m % 60 == 0 for m in minutes)
        if not instant.extended:
            assert minutes[-1] == instant.last_trade_minute
        ib.cancelMktData(qualified)
    finally:
        ib.disconnect()


def test_option_chain_and_greeks(ib):
    spy = ib.qualifyContracts(ib_async.Stock("SPY", "SMART", "USD"))[0]
    chains = ib.reqSecDefOptParams("SPY", "", "STK", spy.conId)
    smart = next(c for c in chains if c.exchange == "SMART")
    expiry, strike = sorted(smart.expirations)[-1], sorted(smart.strikes)[len(smart.strikes) // 2]
    (option,) = ib.qualifyContracts(ib_async.Option("SPY", expiry, strike, "P", "SMART"))
    ticker = ib.reqMktData(option)
    ib.sleep(0.5)
    assert ticker.modelGreeks is not None and -1 < ticker.modelGreeks.delta < 0


def test_account_summary(ib):
    values = {v.tag: v.value for v in ib.accountSummary()}
    assert float(values["NetLiquidation"]) > 0
