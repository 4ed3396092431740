"""The lean placeOrder encoder sends exactly ibapi's bytes, or declines (None) and leaves it to ibapi.

Each case runs ibapi's real `EClient.placeOrder` on an EClient connected over a loopback socket to a
small recording server (it answers the handshake at the chosen server version and keeps every frame
it reads), then sends the lean text on the same connection with `sendMsg(OUT.PLACE_ORDER, text)`; the
two frames the server received must be equal. When ibapi refuses an order (an error callback, nothing
sent) the encoder must answer None; when the encoder answers None, the order must use a feature the
encoder leaves to ibapi (or hold an object whose str() is not ASCII, which ibapi sends unchecked).
Server versions: both sides of every MIN_SERVER_VER_* from 157 to 200 (so each of 157..202), and 203
where placeOrder becomes protobuf. Suite size: fuzz_scale.cases(400, 6000) generated orders.
"""
from __future__ import annotations

import enum
import inspect
import math
import queue
import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from ibapi import server_versions
from ibapi.client import EClient
from ibapi.common import PROTOBUF_MSG_ID
from ibapi.const import UNSET_DOUBLE, UNSET_INTEGER
from ibapi.contract import ComboLeg, Contract, DeltaNeutralContract
from ibapi.message import OUT
from ibapi.order import Order, OrderComboLeg
from ibapi.order_condition import PriceCondition
from ibapi.tag_value import TagValue
from ibapi.wrapper import EWrapper

from ibframe.order_encoding import encode_place_order

from fuzz_scale import cases

# the version checks placeOrder makes after 157 (test_boundaries_are_placeOrders_checks keeps this true)
BOUNDARIES = (158, 160, 162, 166, 169, 170, 177, 183, 184, 187, 189, 190, 192, 199)
# both sides of every MIN_SERVER_VER_* in 157..200, and the two text versions after it: 157..202
VERSIONS = tuple(sorted({v for name, b in vars(server_versions).items() if name.startswith("MIN_SERVER_VER_")
                         and 157 <= b <= 200 for v in (b - 1, b) if v >= 157} | {201, 202}))


# --- the recording server and one connected ibapi client per version -------------------------------
def _frame(payload: bytes) -> bytes:
    return struct.pack("!I", len(payload)) + payload


class RecordingServer:
    """Accepts one client, answers the handshake at `version`, then queues every frame it reads."""

    def __init__(self, version: int):
        self.version = version
        self.frames: queue.Queue[bytes] = queue.Queue()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True, name=f"recording-server-{version}").start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn, conn.makefile("rb") as stream:
            if stream.read(4) != b"API\0":
                return
            self._read(stream)                                    # "v100..226"
            conn.sendall(_frame(f"{self.version}\0" "20261118 11:30:00 EST\0".encode()))
            while (payload := self._read(stream)) is not None:
                self.frames.put(payload)

    @staticmethod
    def _read(stream) -> bytes | None:
        head = stream.read(4)
        if len(head) < 4:
            return None
        return stream.read(struct.unpack("!I", head)[0])

    def next_frame(self) -> bytes:
        return self.frames.get(timeout=10)

    def close(self) -> None:
        self.listener.close()


class ErrorLog(EWrapper):
    def __init__(self):
        super().__init__()
        self.errors: list[tuple] = []

    def error(self, reqId, errorTime, errorCode, errorString, advancedOrderRejectJson=""):
        self.errors.append((reqId, errorCode, errorString))


@dataclass
class Wire:
    """ibapi's EClient on a real socket to a RecordingServer at one server version."""
    version: int
    server: RecordingServer
    client: EClient
    log: ErrorLog

    @classmethod
    def open(cls, version: int) -> "Wire":
        server, log = RecordingServer(version), ErrorLog()
        client = EClient(log)
        client.connect("127.0.0.1", server.port, 0)
        assert client.isConnected() and client.serverVersion() == version
        server.next_frame()                                       # START_API
        return cls(version, server, client, log)

    def close(self) -> None:
        self.client.disconnect()
        self.server.close()


@dataclass
class Outcome:
    ibapi: bytes | None          # the frame ibapi sent, None when it refused
    errors: list[tuple]          # what ibapi said when it refused
    lean: str | None             # the encoder's text
    lean_frame: bytes | None     # that text as sent by sendMsg on the same connection


def place_both(wire: Wire, order_id, contract: Contract, order: Order) -> Outcome:
    """ibapi's placeOrder, then the lean text with sendMsg, on the same connection."""
    before = len(wire.log.errors)
    wire.client.placeOrder(order_id, contract, order)
    errors = wire.log.errors[before:]
    ibapi = None if errors else wire.server.next_frame()
    lean = encode_place_order(wire.version, order_id, contract, order)
    lean_frame = None
    if lean is not None:
        wire.client.sendMsg(OUT.PLACE_ORDER, lean)
        lean_frame = wire.server.next_frame()
    return Outcome(ibapi, errors, lean, lean_frame)


def fields_of(frame: bytes, version: int) -> list[bytes]:
    """A placeOrder frame's fields after its message id."""
    body = frame[4:] if version >= 201 else frame.split(b"\0", 1)[1]
    return body.split(b"\0")[:-1]


def assert_same(out: Outcome, version: int) -> None:
    if out.ibapi == out.lean_frame:
        return
    ours, theirs = fields_of(out.lean_frame, version), fields_of(out.ibapi, version)
    at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    raise AssertionError(f"v{version}: lean text differs from ibapi's at field {at}: "
                         f"{ours[at - 2:at + 3]} != {theirs[at - 2:at + 3]} ({len(ours)} vs {len(theirs)} fields)")


@pytest.fixture(scope="module")
def wires():
    opened: dict[int, Wire] = {}

    def wire(version: int) -> Wire:
        if version not in opened:
            opened[version] = Wire.open(version)
        return opened[version]
    yield wire
    for w in opened.values():
        w.close()


# --- what a trading framework sends ------------------------------------------------------------------
def stock(symbol="AAPL", exchange="SMART") -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = symbol, "STK", exchange, "USD"
    return c


def limit(price=189.91, quantity=Decimal(100)) -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType, o.lmtPrice, o.tif = "BUY", quantity, "LMT", price, "DAY"
    return o


def tag(t, v) -> TagValue:
    return TagValue(t, v)


def leg(con_id, action="BUY", ratio=1, exchange="SMART") -> ComboLeg:
    item = ComboLeg()
    item.conId, item.ratio, item.action, item.exchange = con_id, ratio, action, exchange
    return item


class Side(str, enum.Enum):      # ibapi writes str() of it: "Side.BUY"
    BUY = "BUY"


class Unprintable:
    """Not a str: ibapi sends its str() unchecked; the encoder declines non-ASCII text."""

    def __str__(self):
        return "prix\u00e9"


EDGE_FLOATS = (UNSET_DOUBLE, 0.0, -0.0, -1.25, 1e-9, 1e15, 1e300, 2147483647.0, math.nan, math.inf, -math.inf)
EDGE_VALUES = EDGE_FLOATS + (UNSET_INTEGER, 0, -1, 2 ** 63, Decimal("0.5"), Decimal("NaN"), Decimal("Infinity"),
                             True, False)
PRINTABLE = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=10)
TEXT = st.one_of(st.just(""), PRINTABLE, st.sampled_from(["tab\there", "two\nlines", "cr\r", " x "]))
PRICE = st.one_of(st.just(UNSET_DOUBLE), st.floats(-1e6, 1e6).map(lambda x: round(x, 4)),
                  st.sampled_from(EDGE_FLOATS))
INT = st.one_of(st.just(UNSET_INTEGER), st.integers(-3, 10), st.integers(0, 2 ** 31 - 1))
QUANTITY = st.one_of(st.decimals(0, 10 ** 6, places=4, allow_nan=False), st.integers(1, 10 ** 6),
                     st.floats(0.0001, 1e6), st.just(Decimal("170141183460469231731687303715884105727")))
# values nobody should send, which ibapi still handles (refuses, or sends str() unchecked)
ODD = st.sampled_from([None, Side.BUY, Unprintable(), "caf\u00e9", "\u682a", "a\x01b", "a\0b", "\x7f",
                       *EDGE_VALUES, 7, 1.5, "x", [], ()])

ORDER_TYPES = ("MKT", "LMT", "STP", "STP LMT", "TRAIL", "TRAIL LIMIT", "MOC", "LOC", "MIT", "LIT", "REL",
               "PEG MKT", "PEG PRIM", "PEG MID", "PEG BEST", "MIDPRICE", "SNAP MID", "REL + LMT", "BOX TOP", "VOL")
SEC_TYPES = ("STK", "OPT", "FUT", "FOP", "CASH", "IND", "CFD", "BOND", "CMDTY", "WAR", "FUND", "CRYPTO", "IOPT",
             "BAG")
ALGOS = {"Adaptive": [("adaptivePriority", ("Urgent", "Normal", "Patient"))],
         "Twap": [("strategyType", ("Marketable", "Matching Midpoint")), ("startTime", ("09:30:00 US/Eastern",)),
                  ("allowPastEndTime", ("1", "0"))],
         "Vwap": [("maxPctVol", ("0.1", "0.25")), ("noTakeLiq", ("1",))],
         "ArrivalPx": [("maxPctVol", ("0.1",)), ("riskAversion", ("Neutral", "Aggressive")),
                       ("forceCompletion", ("0",))]}
ORDER_TEXT = ("ocaGroup", "account", "openClose", "orderRef", "goodAfterTime", "goodTillDate", "faGroup", "faMethod",
              "faPercentage", "modelCode", "designatedLocation", "rule80A", "settlingFirm", "scaleTable",
              "activeStartTime", "activeStopTime", "clearingAccount", "clearingIntent", "algoId", "adjustedOrderType",
              "extOperator", "mifid2DecisionMaker", "mifid2DecisionAlgo", "mifid2ExecutionTrader",
              "mifid2ExecutionAlgo", "advancedErrorOverride", "manualOrderTime", "customerAccount")
ORDER_FLAGS = ("transmit", "blockOrder", "sweepToFill", "outsideRth", "hidden", "allOrNone",
               "overridePercentageConstraints", "continuousUpdate", "optOutSmartRouting", "notHeld", "whatIf",
               "solicited", "randomizeSize", "randomizePrice", "dontUseAutoPriceForHedge", "isOmsContainer",
               "discretionaryUpToLimitPrice", "autoCancelParent", "professionalCustomer", "includeOvernight",
               "imbalanceOnly")
ORDER_INTS = ("parentId", "displaySize", "triggerMethod", "origin", "ocaType", "shortSaleSlot", "exemptCode",
              "auctionStrategy", "minQty", "volatilityType", "referencePriceType", "scaleInitLevelSize",
              "scaleSubsLevelSize", "adjustableTrailingUnit", "duration", "postToAts", "manualOrderIndicator",
              "minTradeQty", "minCompeteSize")
ORDER_PRICES = ("lmtPrice", "auxPrice", "percentOffset", "trailStopPrice", "trailingPercent", "discretionaryAmt",
                "startingPrice", "stockRefPrice", "delta", "stockRangeLower", "stockRangeUpper", "volatility",
                "deltaNeutralAuxPrice", "triggerPrice", "lmtPriceOffset", "adjustedStopPrice",
                "adjustedStopLimitPrice", "adjustedTrailingAmount", "cashQty", "competeAgainstBestOffset",
                "midOffsetAtWhole", "midOffsetAtHalf")
CONTRACT_TEXT = ("symbol", "lastTradeDateOrContractMonth", "right", "multiplier", "exchange", "primaryExchange",
                 "currency", "localSymbol", "tradingClass", "secIdType", "secId")
RARE = ("delta-neutral contract", "conditions", "scale increment", "hedge", "PEG BENCH", "VOL delta-neutral leg")


@dataclass
class Case:
    version: int
    order_id: int
    contract: Contract
    order: Order
    rare: list[str] = field(default_factory=list)     # features the encoder leaves to ibapi
    odd: list[tuple] = field(default_factory=list)    # (field, value) given an ODD value

    @property
    def exotic(self) -> bool:
        """An object whose str() is not ASCII: ibapi sends it unchecked, the encoder may decline."""
        return any(isinstance(value, Unprintable) for _, value in self.odd)


def _set_some(draw, target, names, values, odds: list[tuple], odd_chance: bool) -> None:
    for name in draw(st.lists(st.sampled_from(names), unique=True, max_size=4)):
        if odd_chance and draw(st.integers(0, 9)) == 5:     # (hypothesis draws 0 far more often than 1 in 10)
            setattr(target, name, draw(ODD))
            odds.append((name, getattr(target, name)))
        else:
            setattr(target, name, draw(values))


@st.composite
def contracts(draw, odds: list[tuple], odd_chance: bool) -> Contract:
    c = Contract()
    c.secType = draw(st.sampled_from(SEC_TYPES + ("BAG",) * 4))
    if draw(st.booleans()):
        c.conId = draw(st.integers(1, 2 ** 31 - 1))
    if c.conId and draw(st.booleans()):                           # conId-only
        c.exchange = draw(st.sampled_from(["SMART", "NYSE"]))
    else:
        c.symbol, c.currency = draw(st.sampled_from(["AAPL", "SPY", "ES", "EUR", "BRK B"])), "USD"
        c.exchange = draw(st.sampled_from(["SMART", "NYSE", "GLOBEX", "IDEALPRO", "IBKRATS", "CBOE"]))
        _set_some(draw, c, CONTRACT_TEXT, TEXT, odds, odd_chance)
        if draw(st.booleans()):
            c.strike = draw(PRICE)
    if c.secType == "BAG":
        c.comboLegs = [leg(draw(st.integers(1, 2 ** 31 - 1)), draw(st.sampled_from(["BUY", "SELL"])),
                           draw(st.integers(1, 5)), draw(st.sampled_from(["SMART", "CBOE", ""])))
                       for _ in range(draw(st.integers(0, 4)))]
        for item in c.comboLegs:
            _set_some(draw, item, ("openClose", "shortSaleSlot", "exemptCode"), st.integers(-1, 3), odds, odd_chance)
            _set_some(draw, item, ("designatedLocation", "action", "exchange"), TEXT, odds, odd_chance)
    return c


@st.composite
def orders(draw, contract: Contract, version: int, odds: list[tuple], rare: list[str], odd_chance: bool) -> Order:
    o = Order()
    o.action = draw(st.sampled_from(["BUY", "SELL", "SSHORT"]))
    o.totalQuantity = draw(QUANTITY)
    o.orderType = draw(st.sampled_from(ORDER_TYPES))
    o.tif = draw(st.sampled_from(["DAY", "GTC", "IOC", "GTD", "OPG", "FOK", "DTC", ""]))
    _set_some(draw, o, ORDER_PRICES, PRICE, odds, odd_chance)
    _set_some(draw, o, ORDER_TEXT, TEXT, odds, odd_chance)
    _set_some(draw, o, ORDER_FLAGS, st.booleans(), odds, odd_chance)
    _set_some(draw, o, ORDER_INTS, INT, odds, odd_chance)
    if draw(st.booleans()):
        o.usePriceMgmtAlgo = draw(st.sampled_from([None, True, False, 1, 0, "", "x"]))     # ibapi: truthiness
    if draw(st.booleans()):
        o.algoStrategy = draw(st.sampled_from(list(ALGOS)))
        o.algoParams = [tag(t, draw(st.sampled_from(values))) for t, values in ALGOS[o.algoStrategy]
                        if draw(st.booleans())] or draw(st.sampled_from([None, []]))
    if draw(st.integers(0, 4)) == 0:
        o.orderMiscOptions = [tag("opt", draw(PRINTABLE)) for _ in range(draw(st.integers(0, 2)))]
    if draw(st.integers(0, 4)) == 0:
        o.softDollarTier.name, o.softDollarTier.val = draw(TEXT), draw(TEXT)
    if contract.secType == "BAG":
        o.orderComboLegs = draw(st.sampled_from([None, []])) if draw(st.booleans()) else [
            OrderComboLeg() for _ in contract.comboLegs]
        for item in o.orderComboLegs or []:
            item.price = draw(PRICE)
        if draw(st.booleans()):
            o.smartComboRoutingParams = [tag("NonGuaranteed", draw(st.sampled_from(["1", "0"])))]
    if draw(st.integers(0, 9)) == 5:
        _add_rare(draw(st.sampled_from(RARE)), contract, o, rare)
    if version >= 170 and o.orderType in ("PEG BEST", "PEG MID"):
        rare.append(o.orderType)
    return o


def _add_rare(feature: str, contract: Contract, o: Order, rare: list[str]) -> None:
    rare.append(feature)
    if feature == "delta-neutral contract":
        contract.deltaNeutralContract = DeltaNeutralContract()
        contract.deltaNeutralContract.conId, contract.deltaNeutralContract.delta = 8314, 0.5
    elif feature == "conditions":
        o.conditions = [PriceCondition(0, 265598, "SMART", True, 190.0)]
    elif feature == "scale increment":
        o.scaleInitLevelSize, o.scaleSubsLevelSize, o.scalePriceIncrement = 100, 50, 0.05
    elif feature == "hedge":
        o.hedgeType, o.hedgeParam = "B", "beta=1.2"
    elif feature == "PEG BENCH":
        o.orderType, o.referenceContractId, o.referenceExchangeId = "PEG BENCH", 265598, "SMART"
    elif feature == "VOL delta-neutral leg":
        o.orderType, o.volatility, o.volatilityType, o.deltaNeutralOrderType = "VOL", 0.3, 2, "LMT"


@st.composite
def generated(draw) -> Case:
    version = draw(st.sampled_from(VERSIONS))
    odds: list[tuple] = []
    rare: list[str] = []
    odd_chance = draw(st.integers(0, 3)) == 0
    contract = draw(contracts(odds, odd_chance))
    order = draw(orders(contract, version, odds, rare, odd_chance))
    return Case(version, draw(st.integers(0, 2 ** 31 - 1)), contract, order, rare, odds)


# --- the differential property ----------------------------------------------------------------------
@settings(max_examples=cases(400, 6000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=generated())
def test_lean_text_is_ibapis_text(wires, case: Case):
    out = place_both(wires(case.version), case.order_id, case.contract, case.order)
    if out.ibapi is None:
        event("ibapi refused")
        assert out.lean is None, f"ibapi refused ({out.errors}) but the encoder produced a text"
        return
    if case.rare:
        event("rare feature: declined")
        assert out.lean is None, f"{case.rare} must be left to ibapi"
        return
    if out.lean is None:
        event("exotic value: declined")
        assert case.exotic, f"the encoder declined an order ibapi sends (odd values: {case.odd})"
        return
    event("equal texts" + (" (odd values)" if case.odd else "") + (" (BAG)" if case.contract.secType == "BAG" else ""))
    assert_same(out, case.version)


@pytest.mark.parametrize("version", VERSIONS)
def test_plain_orders_at_every_version(wires, version):
    """Market, limit, an Adaptive algo and a 2-leg combo encode (not None) and equal ibapi's frame."""
    adaptive = limit()
    adaptive.algoStrategy, adaptive.algoParams = "Adaptive", [tag("adaptivePriority", "Normal")]
    market = limit()
    market.orderType, market.lmtPrice = "MKT", UNSET_DOUBLE
    bag = stock("SPY")
    bag.secType, bag.comboLegs = "BAG", [leg(756733, "BUY"), leg(756734, "SELL")]
    combo = limit(1.25)
    combo.orderComboLegs, combo.smartComboRoutingParams = [OrderComboLeg(), OrderComboLeg()], [
        tag("NonGuaranteed", "1")]
    bracket_child = limit(180.0)
    bracket_child.action, bracket_child.orderType, bracket_child.auxPrice = "SELL", "STP", 180.0
    bracket_child.parentId, bracket_child.transmit, bracket_child.ocaGroup = 41, False, "oca-41"
    for i, (contract, order) in enumerate(((stock(), market), (stock(), limit()), (stock(), adaptive), (bag, combo),
                                           (stock(), bracket_child))):
        out = place_both(wires(version), 1000 + i, contract, order)
        assert out.ibapi is not None and out.lean is not None
        assert_same(out, version)


# --- versions: refusals below each check, and the end of the text protocol ---------------------------
GATED = [("duration", 158, 60), ("postToAts", 160, 1), ("autoCancelParent", 162, True),
         ("advancedErrorOverride", 166, "8229"), ("manualOrderTime", 169, "20261118-16:30:00"),
         ("minCompeteSize", 170, 100), ("midOffsetAtWhole", 170, 0.01), ("customerAccount", 183, "C123"),
         ("professionalCustomer", 184, True), ("includeOvernight", 189, True), ("manualOrderIndicator", 192, 1),
         ("imbalanceOnly", 199, True)]


@pytest.mark.parametrize("name,since,value", GATED, ids=[g[0] for g in GATED])
def test_fields_ibapi_refuses_below_their_version(wires, name, since, value):
    order = limit()
    setattr(order, name, value)
    below = place_both(wires(since - 1), 7, stock(), order)
    assert below.ibapi is None and below.errors and below.lean is None
    at = place_both(wires(since), 7, stock(), order)
    assert at.ibapi is not None and at.lean is not None
    assert_same(at, since)


def test_ibkrats_sends_min_trade_qty(wires):
    order = limit()
    order.minTradeQty = 200
    for version in (169, 170, 200):
        out = place_both(wires(version), 8, stock(exchange="IBKRATS"), order)
        if version < 170:
            assert out.ibapi is None and out.lean is None
        else:
            assert b"\x00200\x00" in out.ibapi
            assert_same(out, version)


def test_boundaries_are_placeOrders_checks():
    """Every server version placeOrder tests, from 158 to 202, is one this file tests on both sides."""
    names = set(re.findall(r"MIN_SERVER_VER_\w+", inspect.getsource(EClient.placeOrder)))
    checked = {getattr(server_versions, name) for name in names}
    assert {v for v in checked if 157 < v <= 202} == set(BOUNDARIES)
    assert all(v - 1 in VERSIONS and v in VERSIONS for v in BOUNDARIES)


def test_outside_the_text_versions_it_declines():
    for version in (100, 156, 203, 226, "200", 200.0, None):
        assert encode_place_order(version, 1, stock(), limit()) is None
    assert encode_place_order(157, 1, stock(), limit()) is not None


def test_from_203_ibapi_sends_protobuf(wires):
    wire = Wire.open(203)
    try:
        wire.client.placeOrder(9, stock(), limit())
        frame = wire.server.next_frame()
        assert int.from_bytes(frame[:4], "big") == OUT.PLACE_ORDER + PROTOBUF_MSG_ID
    finally:
        wire.close()
    assert encode_place_order(203, 9, stock(), limit()) is None


# --- the features left to ibapi: declined, and each really changes what ibapi sends -------------------
@pytest.mark.parametrize("version", (169, 200))
@pytest.mark.parametrize("feature", RARE + ("PEG BEST", "PEG MID"))
def test_rare_features_are_declined_and_change_ibapis_message(wires, feature, version):
    plain = place_both(wires(version), 11, stock(), limit())
    contract, order, rare = stock(), limit(), []
    if feature in ("PEG BEST", "PEG MID"):
        order.orderType = feature
        if version < 170:                 # a plain order type before PEG BEST / MID offsets (v170)
            out = place_both(wires(version), 11, contract, order)
            assert out.lean is not None
            assert_same(out, version)
            return
    else:
        _add_rare(feature, contract, order, rare)
    out = place_both(wires(version), 11, contract, order)
    assert out.lean is None
    assert out.ibapi is not None
    assert len(fields_of(out.ibapi, version)) != len(fields_of(plain.ibapi, version))


# --- edge values and strings ------------------------------------------------------------------------
def _label(value) -> str:
    """A test id that is the same in every xdist worker."""
    return "Unprintable" if isinstance(value, Unprintable) else repr(value)


@pytest.mark.parametrize("value", EDGE_VALUES + (None,), ids=_label)
@pytest.mark.parametrize("where", ("lmtPrice", "auxPrice", "trailingPercent", "cashQty", "totalQuantity",
                                   "discretionaryAmt", "minQty", "triggerPrice", "strike", "conId"))
def test_edge_values(wires, where, value):
    contract, order = stock(), limit()
    setattr(contract if where in ("strike", "conId") else order, where, value)
    out = place_both(wires(200), 12, contract, order)
    if out.ibapi is None:
        assert value is None and out.lean is None
    else:
        assert out.lean is not None
        assert_same(out, 200)


STRINGS = ("caf\u00e9", "\u682a\u5f0f", "a\x01b", "a\0b", "del\x7f", "esc\x1b", "tab\there", "two\nlines", "cr\r",
           " spaced ", "~!@#$%^&*()_+{}|:<>?", "", Side.BUY, Unprintable())


@pytest.mark.parametrize("value", STRINGS, ids=_label)
@pytest.mark.parametrize("where", ("symbol", "orderRef", "account", "algo value", "leg exchange", "misc option",
                                   "softDollarTier"))
def test_strings_as_ibapi_checks_them(wires, where, value):
    contract, order = stock(), limit()
    if where == "symbol":
        contract.symbol = value
    elif where in ("orderRef", "account"):
        setattr(order, where, value)
    elif where == "algo value":
        order.algoStrategy, order.algoParams = "Adaptive", [tag("adaptivePriority", "Normal")]
        order.algoParams[0].value = value
    elif where == "leg exchange":
        contract.secType, contract.comboLegs = "BAG", [leg(1, exchange=value), leg(2, "SELL")]
    elif where == "misc option":
        order.orderMiscOptions = [tag("x", value)]
    else:
        order.softDollarTier.name = value
    out = place_both(wires(200), 13, contract, order)
    if out.ibapi is None:
        assert out.lean is None
    elif isinstance(value, Unprintable):
        assert out.lean is None or out.lean_frame == out.ibapi
    else:
        assert out.lean is not None, f"declined a value ibapi sends: {value!r}"
        assert_same(out, 200)


def _broken(what: str) -> tuple[Contract, Order]:
    contract, order = stock(), limit()
    if what.startswith("bag"):
        contract.secType, contract.comboLegs = "BAG", [leg(1), leg(2, "SELL")]
    if what == "algo params of tuples":
        order.algoStrategy, order.algoParams = "Adaptive", [("adaptivePriority", "Normal")]
    elif what == "algo params as a tuple":
        order.algoStrategy, order.algoParams = "Twap", (tag("strategyType", "Marketable"),)
    elif what == "algo strategy without params":
        order.algoStrategy, order.algoParams = "Vwap", None
    elif what == "no soft dollar tier":
        order.softDollarTier = None
    elif what == "conditions None":
        order.conditions = None
    elif what == "conditions as an empty tuple":
        order.conditions = ()
    elif what == "bag without legs":
        contract.comboLegs = None
    elif what == "bag with a None leg":
        contract.comboLegs = [leg(1), None]
    elif what == "bag with a None leg price":
        order.orderComboLegs = [OrderComboLeg(), None]
    elif what == "bag with legs as a tuple":
        contract.comboLegs = tuple(contract.comboLegs)
    elif what == "misc options of strings":
        order.orderMiscOptions = ["a=b;", "c=d;"]
    return contract, order


# (case, what the encoder must do when ibapi sends: "equal" or "may decline")
BROKEN = [("algo params of tuples", "equal"), ("algo params as a tuple", "equal"),
          ("algo strategy without params", "equal"), ("no soft dollar tier", "equal"),
          ("conditions None", "equal"), ("conditions as an empty tuple", "may decline"),
          ("bag without legs", "equal"), ("bag with a None leg", "equal"), ("bag with a None leg price", "equal"),
          ("bag with legs as a tuple", "equal"), ("misc options of strings", "equal")]


@pytest.mark.parametrize("what,expect", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_containers(wires, what, expect):
    """Where ibapi fails with an error the encoder declines; where it sends, the texts are equal."""
    contract, order = _broken(what)
    out = place_both(wires(200), 14, contract, order)
    if out.ibapi is None:
        assert out.lean is None
    elif expect == "may decline" and out.lean is None:
        pass
    else:
        assert out.lean is not None
        assert_same(out, 200)
