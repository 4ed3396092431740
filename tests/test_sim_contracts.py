"""Security-definition answers of the simulated gateway, through the official ibapi client:
contract details for every kind of instrument at every served version, symbol search, option
chain parameters and market rules."""
from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from ibapi.contract import Contract
from ibapi.decoder import Decoder
from ibapi.message import IN

from conftest import VERSIONS, RecordingClient, RecordingWrapper
from ibframe.sim.protocol.wire import format_field

NEW_YORK = ZoneInfo("America/New_York")
SESSION = re.compile(r"\d{8}:(\d{4}-\d{8}:\d{4}|CLOSED)")


def contract(**fields) -> Contract:
    c = Contract()
    for name, value in fields.items():
        setattr(c, name, value)
    return c


def details(c: RecordingClient, req_id: int, query: Contract, callback: str = "contractDetails") -> list:
    """Request contract details and return the ContractDetails objects received before the end marker."""
    c.reqContractDetails(req_id, query)
    c.wait("contractDetailsEnd", lambda a: a[0] == req_id)
    return [a[1] for a in c.all(callback, req_id)]


def sim_date(gw) -> dt.date:
    return dt.datetime.fromtimestamp(gw.now(), NEW_YORK).date()


def assert_hours(text: str) -> list[str]:
    sessions = text.split(";")
    assert len(sessions) >= 5, text
    for s in sessions:
        assert SESSION.fullmatch(s), f"bad session {s!r} in {text!r}"
    return sessions


class Counting(tuple):
    """Message fields that count how many the decoder pulled: every field must be consumed."""
    used = 0

    def __iter__(self):
        self.used = 0
        for value in tuple.__iter__(self):
            self.used += 1
            yield value


# --- contract details at every served version --------------------------------------------------------

def test_stock_contract_details(versioned_client: RecordingClient):
    c = versioned_client
    (cd,) = details(c, 11, contract(symbol="AAPL", secType="STK", exchange="SMART", currency="USD"))
    k = cd.contract
    assert (k.conId, k.symbol, k.secType, k.exchange, k.primaryExchange, k.currency) == \
           (265598, "AAPL", "STK", "SMART", "NASDAQ", "USD")
    assert cd.minTick == 0.01 and cd.priceMagnifier == 1
    assert cd.longName == "APPLE INC" and cd.industry == "Technology" and cd.stockType == "COMMON"
    assert cd.timeZoneId == "US/Eastern"
    trading = assert_hours(cd.tradingHours)
    liquid = assert_hours(cd.liquidHours)
    assert any(s.endswith(":CLOSED") for s in trading), "a 7-day window always holds a weekend"
    open_liquid = [s for s in liquid if not s.endswith("CLOSED")]
    assert open_liquid and all(s[9:13] == "0930" for s in open_liquid)
    exchanges = cd.validExchanges.split(",")
    assert "SMART" in exchanges and "NASDAQ" in exchanges
    assert "LMT" in cd.orderTypes.split(",") and "MKT" in cd.orderTypes.split(",")
    assert len(cd.marketRuleIds.split(",")) == len(exchanges)
    assert [(t.tag, t.value) for t in cd.secIdList] == [("ISIN", "US0378331005")]
    assert cd.minSize == 1 and cd.sizeIncrement == 1 and cd.suggestedSizeIncrement == 1
    assert cd.contract.lastTradeDateOrContractMonth == "" and cd.realExpirationDate == ""
    assert cd.ineligibilityReasonList is None


def test_sessions_start_on_the_simulated_day(gateway, client: RecordingClient):
    (cd,) = details(client, 12, contract(symbol="MSFT", secType="STK", currency="USD"))
    assert cd.tradingHours[:8] == f"{sim_date(gateway):%Y%m%d}"
    assert cd.liquidHours[:8] == f"{sim_date(gateway):%Y%m%d}"


def test_option_details_at_every_version(versioned_client: RecordingClient):
    c = versioned_client
    found = details(c, 13, contract(symbol="AAPL", secType="OPT", exchange="SMART", currency="USD"))
    assert len(found) > 100
    cd = found[0]
    k = cd.contract
    assert k.multiplier == "100" and k.right in ("C", "P") and k.strike > 0
    assert re.fullmatch(r"\d{8}", k.lastTradeDateOrContractMonth)
    assert cd.realExpirationDate == k.lastTradeDateOrContractMonth
    assert cd.lastTradeTime == "16:00:00"
    assert cd.contractMonth == k.lastTradeDateOrContractMonth[:6]
    assert (cd.underConId, cd.underSymbol, cd.underSecType) == (265598, "AAPL", "STK")
    assert k.localSymbol.startswith("AAPL  ") and k.tradingClass == "AAPL"
    if c.serverVersion() >= 182:
        assert k.lastTradeDate == k.lastTradeDateOrContractMonth


def test_bond_details_at_every_version(versioned_client: RecordingClient):
    c = versioned_client
    (cd,) = details(c, 14, contract(secIdType="CUSIP", secId="91282CJL6", secType="BOND", exchange="SMART"),
                    "bondContractDetails")
    assert cd.contract.conId == 652386178 and cd.contract.secType == "BOND"
    assert (cd.cusip, cd.coupon, cd.maturity, cd.issueDate) == ("91282CJL6", 4.5, "20331115", "20231115")
    assert cd.bondType == "US-T" and cd.couponType == "FIXED" and cd.ratings == "AA+"
    assert cd.descAppend == "T 4.5 11/15/33" and cd.longName == "United States Treasury Note"
    assert not cd.callable and not cd.putable and not cd.convertible
    assert {(t.tag, t.value) for t in cd.secIdList} == {("CUSIP", "91282CJL6"), ("ISIN", "US91282CJL63")}
    assert len(cd.marketRuleIds.split(",")) == len(cd.validExchanges.split(","))
    if c.serverVersion() >= 188:       # bonds carry their hours only from BOND_TRADING_HOURS
        assert cd.timeZoneId == "US/Eastern"
        assert_hours(cd.tradingHours)
    else:
        assert cd.tradingHours == ""
    assert c.all("contractDetails", 14) == []


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"v{v}")
def test_every_message_is_consumed_exactly(version, make_gateway, connect):
    """No trailing or missing fields: ibapi's decoder pulls exactly the fields the simulator sent."""
    gw = make_gateway(max_server_version=version, seed=7)
    sent: list[tuple] = []
    gw.taps.append(lambda session, fields: sent.append(fields))
    c = connect(gw)
    queries = [contract(symbol="EUR", secType="CASH", currency="USD", exchange="IDEALPRO"),
               contract(symbol="SPY", secType="STK", currency="USD"),
               contract(symbol="SPY", secType="OPT", strike=590.0, right="C"),
               contract(symbol="ES", secType="FUT"),
               contract(secIdType="ISIN", secId="US91282CJL63")]
    for i, q in enumerate(queries):
        details(c, 20 + i, q, "bondContractDetails" if q.secIdType else "contractDetails")
    c.reqMatchingSymbols(30, "S")
    c.wait("symbolSamples")
    c.reqSecDefOptParams(31, "SPY", "", "STK", 756733)
    c.wait("securityDefinitionOptionParameterEnd")
    c.reqMarketRule(32)
    c.wait("marketRule")
    kinds = {IN.CONTRACT_DATA, IN.BOND_CONTRACT_DATA, IN.SYMBOL_SAMPLES, IN.MARKET_RULE,
             IN.SECURITY_DEFINITION_OPTION_PARAMETER}
    checked = 0
    for fields in gw.call(lambda: list(sent)):
        if fields[0] not in kinds:
            continue
        wire = Counting(format_field(v).encode() for v in fields[1:])
        w = RecordingWrapper()
        Decoder(w, version).interpret(wire, fields[0])
        assert len(w.events) == 1 and w.events[0][0] != "error", w.events
        assert wire.used == len(wire), f"msg {fields[0]}: decoder read {wire.used} of {len(wire)} fields"
        checked += 1
    assert checked >= 10


# --- every kind of instrument ------------------------------------------------------------------------

def test_future_details(gateway, client: RecordingClient):
    found = details(client, 40, contract(symbol="ES", secType="FUT", exchange="CME", currency="USD"))
    assert len(found) == 2
    months = [cd.contractMonth for cd in found]
    assert months == sorted(months) and len(set(months)) == 2
    cd = found[0]
    assert cd.contract.multiplier == "50" and cd.minTick == 0.25 and cd.contract.exchange == "CME"
    assert cd.realExpirationDate == cd.contract.lastTradeDateOrContractMonth
    assert cd.timeZoneId == "US/Central"                   # CME products: Chicago time, as IB reports them
    assert cd.lastTradeTime == "08:30:00"                  # 09:30 in New York
    assert cd.underSymbol == "ES" and cd.underSecType == "IND"
    sessions = assert_hours(cd.tradingHours)
    assert any(s[9:13] == "1700" for s in sessions), "CME equity futures open at 17:00 CT the evening before"
    # the same contract by its month and by conId
    (by_month,) = details(client, 41, contract(symbol="ES", secType="FUT", exchange="CME",
                                               lastTradeDateOrContractMonth=cd.contractMonth))
    assert by_month.contract.conId == cd.contract.conId
    (by_id,) = details(client, 42, contract(conId=cd.contract.conId))
    assert by_id.contract.localSymbol == cd.contract.localSymbol


def test_forex_details(client: RecordingClient):
    (cd,) = details(client, 43, contract(symbol="EUR", secType="CASH", currency="USD", exchange="IDEALPRO"))
    k = cd.contract
    assert (k.conId, k.localSymbol, k.exchange, k.tradingClass) == (12087792, "EUR.USD", "IDEALPRO", "EUR.USD")
    assert cd.validExchanges == "IDEALPRO" and cd.marketName == "EUR.USD"
    assert cd.minTick == 0.00005 and cd.longName == "European Monetary Union Euro"
    assert cd.marketRuleIds.count(",") == 0
    # by local symbol, as clients often qualify FX
    (again,) = details(client, 44, contract(localSymbol="EUR.USD", secType="CASH"))
    assert again.contract.conId == 12087792


def test_option_query_returns_the_whole_expiry(gateway, client: RecordingClient):
    """An option with only an expiry returns every strike and both rights, matching reqSecDefOptParams."""
    client.reqSecDefOptParams(45, "AAPL", "", "STK", 265598)
    client.wait("securityDefinitionOptionParameterEnd", lambda a: a[0] == 45)
    smart = [a for a in client.all("securityDefinitionOptionParameter", 45) if a[1] == "SMART"]
    assert len(smart) == 1
    _, _, under_con_id, trading_class, multiplier, expirations, strikes = smart[0]
    expiry = min(expirations)
    found = details(client, 46, contract(symbol="AAPL", secType="OPT", exchange="SMART", currency="USD",
                                         lastTradeDateOrContractMonth=expiry))
    assert {cd.contract.strike for cd in found} == strikes
    assert {cd.contract.right for cd in found} == {"C", "P"}
    assert len(found) == 2 * len(strikes)
    assert {cd.contract.lastTradeDateOrContractMonth for cd in found} == {expiry}
    assert len({cd.contract.conId for cd in found}) == len(found)
    # the whole chain is the product of the parameters
    everything = details(client, 47, contract(symbol="AAPL", secType="OPT", exchange="SMART", currency="USD"))
    assert len(everything) == 2 * len(strikes) * len(expirations)
    assert {cd.contract.lastTradeDateOrContractMonth for cd in everything} == expirations
    # one fully specified option
    strike = sorted(strikes)[len(strikes) // 2]
    (one,) = details(client, 48, contract(symbol="AAPL", secType="OPT", exchange="SMART", currency="USD",
                                          lastTradeDateOrContractMonth=expiry, strike=strike, right="P"))
    assert (one.contract.strike, one.contract.right) == (strike, "P")


def test_lookup_by_con_id_and_isin(client: RecordingClient):
    (spy,) = details(client, 50, contract(conId=756733, exchange="SMART"))
    assert spy.contract.symbol == "SPY" and spy.stockType == "ETF" and spy.contract.primaryExchange == "ARCA"
    (aapl,) = details(client, 51, contract(secIdType="ISIN", secId="US0378331005"))
    assert aapl.contract.conId == 265598


def test_requested_exchange_is_echoed(client: RecordingClient):
    (cd,) = details(client, 52, contract(symbol="IBM", secType="STK", exchange="NYSE", currency="USD"))
    assert cd.contract.exchange == "NYSE" and cd.contract.primaryExchange == "NYSE"


def test_no_match_is_error_200(client: RecordingClient):
    client.reqContractDetails(53, contract(symbol="NOPE", secType="STK", exchange="SMART", currency="USD"))
    assert client.wait_error(53, 200) == "No security definition has been found for the request"
    client.reqContractDetails(54, contract(symbol="AAPL", secType="OPT", lastTradeDateOrContractMonth="19990101"))
    client.wait_error(54, 200)
    client.reqContractDetails(55, contract(conId=1))
    client.wait_error(55, 200)
    assert client.all("contractDetails", 53) == [] and client.all("contractDetailsEnd", 53) == []


def test_partial_contract_is_not_ambiguous(client: RecordingClient):
    """reqContractDetails returns every match instead of complaining about ambiguity."""
    found = details(client, 56, contract(symbol="SPY"))
    kinds = {cd.contract.secType for cd in found}
    assert kinds == {"STK", "OPT"}
    assert not [e for e in client.errors(56)]


# --- symbol search, option parameters, market rules -----------------------------------------------

def test_matching_symbols(client: RecordingClient):
    client.reqMatchingSymbols(60, "AA")
    (req_id, descriptions), = client.wait("symbolSamples", lambda a: a[0] == 60)
    first = descriptions[0]
    assert (first.contract.conId, first.contract.symbol, first.contract.secType) == (265598, "AAPL", "STK")
    assert first.contract.primaryExchange == "NASDAQ" and first.contract.currency == "USD"
    assert first.derivativeSecTypes == ["OPT"]
    assert first.contract.description == "APPLE INC"

    client.reqMatchingSymbols(61, "MSFT")
    (_, found), = client.wait("symbolSamples", lambda a: a[0] == 61)
    assert found[0].contract.symbol == "MSFT" and found[0].derivativeSecTypes == ["OPT"]   # MSFT lists options

    client.reqMatchingSymbols(65, "IBM")
    (_, ibm), = client.wait("symbolSamples", lambda a: a[0] == 65)
    assert ibm[0].contract.symbol == "IBM" and ibm[0].derivativeSecTypes == []              # IBM lists none

    client.reqMatchingSymbols(62, "microsoft")            # by name, too
    (_, by_name), = client.wait("symbolSamples", lambda a: a[0] == 62)
    assert [d.contract.symbol for d in by_name] == ["MSFT"]

    client.reqMatchingSymbols(63, "EUR")
    (_, fx), = client.wait("symbolSamples", lambda a: a[0] == 63)
    assert (fx[0].contract.secType, fx[0].contract.currency, fx[0].contract.conId) == ("CASH", "USD", 12087792)

    client.reqMatchingSymbols(64, "ZZZZZ")
    (_, none), = client.wait("symbolSamples", lambda a: a[0] == 64)
    assert none == []


def _expected_spy_expiries(today: dt.date) -> set[str]:
    """universe.yaml lists SPY with 2 weeklies and 3 monthlies: the next 2 Fridays and the next 3
    third Fridays after the simulator's date (they may coincide, so the union has 3 to 5 dates)."""
    fridays = [d for d in (today + dt.timedelta(days=k) for k in range(1, 120)) if d.weekday() == 4]
    thirds = [d for d in fridays if 15 <= d.day <= 21]
    return {f"{d:%Y%m%d}" for d in fridays[:2] + thirds[:3]}


def test_sec_def_opt_params(gateway, client: RecordingClient):
    sent: list[tuple] = []

    def tap(session, fields):
        if fields[0] == IN.SECURITY_DEFINITION_OPTION_PARAMETER and fields[1] == 70:
            sent.append(fields)
    gateway.taps.append(tap)
    try:
        client.reqSecDefOptParams(70, "SPY", "", "STK", 756733)
        client.wait("securityDefinitionOptionParameterEnd", lambda a: a[0] == 70)
    finally:
        gateway.call(gateway.taps.remove, tap)
    params = client.all("securityDefinitionOptionParameter", 70)
    exchanges = [p[1] for p in params]
    assert exchanges[0] == "SMART" and len(exchanges) == len(set(exchanges)) > 3
    for _, _, con_id, trading_class, multiplier, expirations, strikes in params:
        assert (con_id, trading_class, multiplier) == (756733, "SPY", "100")
        assert expirations == params[0][5] and strikes == params[0][6]
    expirations = params[0][5]
    assert all(re.fullmatch(r"\d{8}", e) for e in expirations)
    assert expirations == _expected_spy_expiries(sim_date(gateway))
    # on the wire, expirations and strikes go out sorted (the ibapi callback turns them into sets)
    wire = sent[0]
    n_exp = wire[6]
    exps = list(wire[7:7 + n_exp])
    strikes = list(wire[8 + n_exp:])
    assert exps == sorted(exps) and strikes == sorted(strikes) and len(strikes) == wire[7 + n_exp]
    # and they are exactly the chain reqContractDetails knows
    chain = details(client, 71, contract(symbol="SPY", secType="OPT", exchange="SMART"))
    assert {cd.contract.lastTradeDateOrContractMonth for cd in chain} == expirations
    assert {cd.contract.strike for cd in chain} == params[0][6]


def test_sec_def_opt_params_unknown_underlying_ends_empty(client: RecordingClient):
    """TWS raises no error for an underlying without options; the chain simply comes back empty."""
    client.reqSecDefOptParams(72, "AAPL", "", "STK", 999)         # wrong conId
    client.reqSecDefOptParams(73, "IBM", "", "STK", 8314)         # no options listed
    client.reqSecDefOptParams(74, "IBM", "", "STK", 265598)       # symbol and conId disagree
    for req_id in (72, 73, 74):
        client.wait("securityDefinitionOptionParameterEnd", lambda a, r=req_id: a[0] == r)
        assert client.all("securityDefinitionOptionParameter", req_id) == []
        assert client.errors(req_id) == []


def test_market_rules(client: RecordingClient):
    client.reqMarketRule(26)
    (rule_id, increments), = client.wait("marketRule", lambda a: a[0] == 26)
    assert [(p.lowEdge, p.increment) for p in increments] == [(0.0, 0.01)]
    client.reqMarketRule(32)
    (_, option_rule), = client.wait("marketRule", lambda a: a[0] == 32)
    assert [(p.lowEdge, p.increment) for p in option_rule] == [(0.0, 0.01), (3.0, 0.05)]
    # every rule id a contract reports can be looked up
    (fx,) = details(client, 81, contract(symbol="EUR", secType="CASH", currency="USD"))
    fx_rule = int(fx.marketRuleIds)
    client.reqMarketRule(fx_rule)
    (_, fx_increments), = client.wait("marketRule", lambda a: a[0] == fx_rule)
    assert fx_increments[0].increment == fx.minTick


def test_unknown_market_rule_is_an_error(client: RecordingClient):
    client.reqMarketRule(987654)
    args = client.wait("error", lambda a: a[2] == 321 and "987654" in a[3])[0]
    assert args[0] == -1
    assert all(a[0] != 987654 for a in client.all("marketRule"))
