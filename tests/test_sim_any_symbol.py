"""`--any-symbol`: an unknown US stock or ETF symbol gets a deterministic simulated instrument that
qualifies, quotes, has history and an option chain, trades and survives a restart with --state; and
the shipped universe's new futures and FX majors look as TWS shows them. All through the official
ibapi client over loopback."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
from ibapi.contract import Contract

from ibframe.sim.__main__ import build_parser
from sim_order_kit import order, paused, place, stock, wait_status

UNKNOWN = "ZZZQ"          # in no universe file


def details(c, req_id: int, contract: Contract) -> list:
    """The ContractDetails of a reqContractDetails, or [] after its error."""
    c.reqContractDetails(req_id, contract)
    deadline = time.monotonic() + 10
    while not (c.all("contractDetailsEnd", req_id) or c.errors(req_id)):
        if time.monotonic() > deadline:
            raise AssertionError(f"no answer to reqContractDetails {req_id}")
        time.sleep(0.005)
    return [a[1] for a in c.all("contractDetails", req_id)]


def future(symbol: str, exchange: str) -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = symbol, "FUT", exchange, "USD"
    return c


def forex(pair: str) -> Contract:
    c = Contract()
    c.symbol, c.currency = pair.split(".")
    c.secType, c.exchange = "CASH", "IDEALPRO"
    return c


# --------------------------------------------------------------------------- the unknown symbol trades


def test_an_unknown_symbol_qualifies_quotes_has_history_and_an_option_chain_and_fills(make_gateway, connect):
    gw = paused(make_gateway, any_symbol=True)
    c = connect(gw)
    (d,) = details(c, 1, stock(UNKNOWN))
    k = d.contract
    assert (k.symbol, k.secType, k.currency, k.exchange) == (UNKNOWN, "STK", "USD", "SMART")
    assert 500_000_000 <= k.conId < 900_000_000
    assert k.primaryExchange in ("NASDAQ", "NYSE", "ARCA")
    assert d.longName == f"{UNKNOWN} (SIMULATED)" and d.stockType in ("COMMON", "ETF")
    assert d.marketRuleIds.split(",")[0] == "26" and d.timeZoneId == "US/Eastern" and d.minTick == 0.01
    inst = gw.call(lambda: gw.universe.get(k.conId))

    c.reqMktData(2, stock(UNKNOWN), "", False, False, [])            # quotes
    bid = c.wait("tickPrice", lambda a: a[0] == 2 and a[1] == 1)[0][2]
    ask = c.wait("tickPrice", lambda a: a[0] == 2 and a[1] == 2)[0][2]
    assert 0 < bid < ask and abs((bid + ask) / 2 / inst.price - 1) < 0.01

    c.reqHistoricalData(3, stock(UNKNOWN), "", "1 D", "1 min", "TRADES", 1, 1, False, [])
    c.wait("historicalDataEnd", lambda a: a[0] == 3)
    bars = [a[1] for a in c.all("historicalData", 3)]
    assert len(bars) >= 30 and bars[-1].close == pytest.approx(inst.price)   # history ends at the start price

    c.reqSecDefOptParams(4, UNKNOWN, "", "STK", k.conId)              # the chain, generated on request
    c.wait("securityDefinitionOptionParameterEnd", lambda a: a[0] == 4)
    chains = c.all("securityDefinitionOptionParameter", 4)
    smart = [a for a in chains if a[1] == "SMART"]
    assert smart and smart[0][2] == k.conId and smart[0][4] == "100" and len(smart[0][5]) >= 3
    strikes = sorted(smart[0][6])
    assert strikes[0] < inst.price < strikes[-1]
    opt = Contract()
    opt.symbol, opt.secType, opt.exchange, opt.currency = UNKNOWN, "OPT", "SMART", "USD"
    opt.lastTradeDateOrContractMonth, opt.strike, opt.right = sorted(smart[0][5])[0], strikes[len(strikes) // 2], "C"
    (od,) = details(c, 5, opt)
    assert od.underConId == k.conId and od.contract.multiplier == "100"

    place(c, 10, stock(UNKNOWN), order("BUY", 30))                     # a market order fills
    wait_status(c, 10, "Filled")
    c.reqPositions()
    c.wait("positionEnd")
    pos = [a for a in c.all("position") if a[1].conId == k.conId]
    assert pos and float(pos[-1][2]) == 30
    assert not [e for e in c.errors() if e[1] == 200]


def test_generated_instruments_are_deterministic(make_gateway, connect):
    def qualify(gw, symbol):
        c = connect(gw)
        (d,) = details(c, 1, stock(symbol))
        inst = gw.call(lambda: gw.universe.get(d.contract.conId))
        return d.contract.conId, d.contract.primaryExchange, inst.price, inst.vol

    a, b = paused(make_gateway, any_symbol=True), paused(make_gateway, any_symbol=True)
    other_seed = paused(make_gateway, any_symbol=True, seed=12)
    first = qualify(a, "RIVN")
    assert qualify(b, "RIVN") == first                                 # the same seed: the same instrument
    assert qualify(a, "ZZZR")[0] != first[0]                          # another symbol: another conId
    again = qualify(other_seed, "RIVN")
    assert again[:2] == first[:2] and again[2:] != first[2:]          # identity by symbol, market by seed


def test_an_option_contract_on_an_unknown_symbol_generates_its_chain(make_gateway, connect):
    gw = paused(make_gateway, any_symbol=True)
    c = connect(gw)
    opt = Contract()
    opt.symbol, opt.secType, opt.exchange, opt.currency = "QQZZ", "OPT", "SMART", "USD"
    chain = details(c, 1, opt)
    assert len(chain) > 20 and {d.contract.right for d in chain} == {"C", "P"}
    assert len({d.underConId for d in chain}) == 1


@pytest.mark.parametrize("build", [
    lambda: stock("abc$"),
    lambda: stock("TOOLONGX"),
    lambda: _with(stock(UNKNOWN), currency="EUR"),
    lambda: _with(stock(UNKNOWN), exchange="LSE"),
    lambda: _with(stock(UNKNOWN), secType="FUT"),
    lambda: _with(Contract(), conId=123456789),
], ids=["garbage", "too_long", "currency_eur", "exchange_lse", "sec_type_fut", "unknown_con_id"])
def test_anything_but_a_us_stock_symbol_stays_error_200(make_gateway, connect, build):
    gw = paused(make_gateway, any_symbol=True)
    c = connect(gw)
    assert details(c, 1, build()) == []
    assert [e[1] for e in c.errors(1)] == [200]
    assert gw.call(lambda: gw.universe.generator.symbols) == []


def _with(c: Contract, **fields) -> Contract:
    for name, value in fields.items():
        setattr(c, name, value)
    return c


def test_with_the_switch_off_an_unknown_symbol_is_error_200(make_gateway, connect):
    gw = paused(make_gateway)                                          # SimConfig's default: off
    c = connect(gw)
    assert details(c, 1, stock(UNKNOWN)) == []
    assert [e[1] for e in c.errors(1)] == [200]
    place(c, 2, stock(UNKNOWN), order("BUY", 1))
    assert 200 in [e[1] for e in c.errors(2)]


def test_a_position_on_a_generated_symbol_survives_a_restart_with_state(make_gateway, connect, tmp_path):
    path = tmp_path / "paper.json"
    gw = paused(make_gateway, any_symbol=True, state_file=str(path))
    c = connect(gw, 7)
    place(c, 1, stock(UNKNOWN), order("BUY", 40))
    wait_status(c, 1, "Filled")
    con_id = c.all("openOrder", 1)[-1][1].conId
    c.close()
    gw.stop()

    gw2 = paused(make_gateway, state_file=str(path))                   # even with the switch off
    c2 = connect(gw2, 7)
    c2.reqPositions()
    c2.wait("positionEnd")
    pos = [a for a in c2.all("position") if a[1].conId == con_id]
    assert pos and float(pos[-1][2]) == 40 and pos[-1][1].symbol == UNKNOWN
    (d,) = details(c2, 5, _with(Contract(), conId=con_id))              # the conId resolves again
    assert d.contract.symbol == UNKNOWN


def test_the_cli_switch_is_on_by_default():
    assert build_parser().parse_args([]).any_symbol is True
    assert build_parser().parse_args(["--no-any-symbol"]).any_symbol is False
    out = subprocess.run([sys.executable, "-m", "ibframe.sim", "--help"], capture_output=True, text=True, timeout=60)
    assert "--any-symbol" in out.stdout


# --------------------------------------------------------------------------- the shipped universe


@pytest.mark.parametrize("symbol, exchange, multiplier, min_tick", [
    ("ES", "CME", "50", 0.25), ("NQ", "CME", "20", 0.25), ("CL", "NYMEX", "1000", 0.01),
    ("GC", "COMEX", "100", 0.1), ("ZN", "CBOT", "1000", 0.015625),
])
def test_the_shipped_futures_trade_on_their_exchange_in_chicago(gateway, connect, symbol, exchange, multiplier,
                                                                 min_tick):
    c = connect(gateway)
    found = details(c, 1, future(symbol, exchange))
    assert len(found) >= 2
    for d in found:
        assert (d.contract.exchange, d.contract.multiplier, d.minTick) == (exchange, multiplier, min_tick)
        assert d.timeZoneId == "US/Central" and d.contract.localSymbol.startswith(symbol)
    rule = int(found[0].marketRuleIds.split(",")[0])
    c.reqMarketRule(rule)
    (_, increments), = c.wait("marketRule", lambda a: a[0] == rule)
    assert increments[0].increment == min_tick


@pytest.mark.parametrize("pair, con_id, min_tick", [("EUR.USD", 12087792, 0.00005), ("USD.JPY", 15016059, 0.005),
                                                     ("GBP.USD", 12087797, 0.00005)])
def test_fx_majors_qualify_and_quote(gateway, connect, pair, con_id, min_tick):
    c = connect(gateway)
    (d,) = details(c, 1, forex(pair))
    assert (d.contract.conId, d.contract.localSymbol, d.minTick) == (con_id, pair, min_tick)
    c.reqMktData(2, forex(pair), "", False, False, [])
    bid = c.wait("tickPrice", lambda a: a[0] == 2 and a[1] == 1)[0][2]
    assert bid > 0 and round(bid / min_tick, 6) == round(bid / min_tick)


def test_the_shipped_universe_lists_the_megacaps_the_etfs_and_their_chains(gateway):
    u = gateway.universe
    stocks = {i.symbol for i in u.instruments if i.sec_type == "STK"}
    assert {"AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "BRK B", "SPY", "QQQ", "IWM", "DIA",
            "XLK", "XLF", "XLE", "XLV", "XLI", "XLY", "XLP", "XLU", "XLB", "XLRE", "XLC"} <= stocks
    with_chains = {i.under_symbol for i in u.instruments if i.sec_type == "OPT"}
    assert with_chains == {"SPY", "QQQ", "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA"}
    assert len([i for i in u.instruments if i.sec_type == "CASH"]) == 7
    assert len([i for i in u.instruments if i.sec_type == "BOND"]) == 4
