"""The simulator at server versions 201–226: protobuf requests in, protobuf answers out, through the real ibapi.

* Every message a live session at 226 is sent decodes through ibapi's protobuf decoder to the same
  callbacks, field for field, as its text form at 200 (the differences ibapi itself makes between its
  two decoders aside; they are listed in protocol/proto_answers.py and applied by `_documented`).
* A client at 226 and a client at 200 on the same gateway get the same answers.
* The frames on the wire really are protobuf where the version says so, and text where a kind is
  switched to text (`SimConfig.text_answers`).
"""
from __future__ import annotations

import struct

import pytest
from ibapi.contract import Contract
from ibapi.decoder import Decoder
from ibapi.execution import ExecutionFilter
from ibapi.message import IN
from ibapi.order import Order
from ibapi.tag_value import TagValue

from ibframe.sim.protocol.proto_answers import PROTO_SINCE, ProtoAnswers
from ibframe.sim.protocol.proto_objects import Recorder
from ibframe.sim.protocol.wire import format_field
from test_sim_limits import sim_log  # noqa: F401  (fixture)
from test_sim_proto_answers import _d11, _walk, canon

ANSWERS = ProtoAnswers()


def stock(symbol="AAPL") -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = symbol, "STK", "SMART", "USD"
    return c


def order(action="BUY", qty=10, kind="MKT", limit=None, tif="DAY") -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType, o.tif = action, qty, kind, tif
    if limit is not None:
        o.lmtPrice = limit
    return o


def exercise(c, base: int) -> None:
    """A broad session: look-ups, every stream kind, history, account, orders filled and working, queries."""
    aapl = stock()
    c.reqCurrentTime()
    c.reqIds(1)
    c.reqContractDetails(base + 1, aapl)
    es = Contract()
    es.symbol, es.secType, es.exchange, es.currency = "ES", "FUT", "CME", "USD"
    c.reqContractDetails(base + 2, es)
    c.reqSecDefOptParams(base + 3, "AAPL", "", "STK", 265598)
    c.reqMatchingSymbols(base + 4, "AA")
    c.reqMarketRule(26)
    c.reqMktDepthExchanges()
    c.wait("contractDetailsEnd", lambda a: a[0] == base + 2)
    c.wait("securityDefinitionOptionParameterEnd", lambda a: a[0] == base + 3)
    c.reqMktData(base + 5, aapl, "100,101,104,106,165,233,236,258", False, False, [])
    c.reqMktDepth(base + 6, aapl, 5, True, [])          # SMART depth (aggregated, updateMktDepthL2)
    c.reqTickByTickData(base + 7, aapl, "BidAsk", 0, False)
    c.reqHistoricalData(base + 8, aapl, "", "1 D", "5 mins", "TRADES", 1, 1, False, [])
    c.reqHeadTimeStamp(base + 9, aapl, "TRADES", 1, 1)
    c.reqHistoricalTicks(base + 10, aapl, "", "20261118 11:00:00 US/Eastern", 20, "TRADES", 1, True, [])
    c.reqRealTimeBars(base + 11, aapl, 5, "TRADES", True, [])
    c.wait("historicalDataEnd", lambda a: a[0] == base + 8)
    c.wait("tickByTickBidAsk", lambda a: a[0] == base + 7)
    c.wait("updateMktDepthL2", lambda a: a[0] == base + 6)
    c.wait("tickPrice", lambda a: a[0] == base + 5)
    c.reqAccountSummary(base + 12, "All", "NetLiquidation,ExcessLiquidity,BuyingPower,$LEDGER")
    c.reqAccountUpdates(True, "")
    c.reqPositions()
    c.wait("accountSummaryEnd", lambda a: a[0] == base + 12)
    c.wait("accountDownloadEnd")
    c.wait("positionEnd")
    oid = c.wait("nextValidId")[-1][0] + 1000
    adaptive = order(kind="LMT", limit=1.0, tif="GTC")
    adaptive.algoStrategy, adaptive.algoParams = "Adaptive", [TagValue("adaptivePriority", "Normal")]
    c.placeOrder(oid, aapl, order())
    c.placeOrder(oid + 1, aapl, adaptive)
    c.wait("execDetails", lambda a: a[2].orderId == oid)
    c.wait("openOrder", lambda a: a[0] == oid + 1)
    c.cancelOrder(oid + 1, None)
    c.wait("orderStatus", lambda a: a[0] == oid + 1 and a[1] == "Cancelled")
    c.placeOrder(oid + 2, aapl, order(qty=0))          # 434: a rejected order's error
    c.wait("error", lambda a: a[0] == oid + 2)
    c.reqExecutions(base + 13, ExecutionFilter())
    c.reqOpenOrders()
    c.reqCompletedOrders(False)
    c.reqPnL(base + 14, "DU1234567", "")
    c.wait("execDetailsEnd", lambda a: a[0] == base + 13)
    c.wait("openOrderEnd")
    c.wait("completedOrdersEnd")
    c.wait("commissionAndFeesReport")
    c.wait("realtimeBar", lambda a: a[0] == base + 11, timeout=15)
    c.cancelMktData(base + 5)
    c.cancelMktDepth(base + 6, True)
    c.cancelTickByTickData(base + 7)
    c.cancelRealTimeBars(base + 11)
    c.cancelAccountSummary(base + 12)
    c.reqAccountUpdates(False, "")
    c.cancelPositions()
    c.reqCurrentTime()
    c.wait("currentTime", count=2)


def text_callbacks(fields) -> list:
    """What ibapi's text decoder at 200 makes of one answer, as the simulator's text frame carries it."""
    return [(n, canon(a)) for n, a in ANSWERS.decode_text(_wire(fields))[1]]


def _wire(fields) -> tuple:
    """The answer as the simulator's frames carry it (its own field formatting, ASCII with escapes)."""
    return (int(fields[0]), *[format_field(f).encode("ascii", errors="backslashreplace") for f in fields[1:]])


def proto_callbacks(fields) -> list:
    built = ANSWERS.encode(_wire(fields))
    assert built is not None, f"no protobuf form for message {fields[0]}"
    rec = Recorder()
    Decoder(rec, 226).processProtoBuf(built[1], built[0])
    return [(n, canon(a)) for n, a in rec.calls if not n.endswith("ProtoBuf")]


def _first_difference(got, want, path="") -> str:
    """Where two canonical callback lists first differ, for a readable failure."""
    if type(got) is not type(want):
        return f"{path}: {got!r} != {want!r}"
    if isinstance(got, dict):
        for key in sorted(set(got) | set(want)):
            if got.get(key) != want.get(key):
                return _first_difference(got.get(key), want.get(key), f"{path}.{key}")
    if isinstance(got, (list, tuple)) and len(got) == len(want):
        for i, (g, w) in enumerate(zip(got, want)):
            if g != w:
                return _first_difference(g, w, f"{path}[{i}]")
    return f"{path}: {got!r} != {want!r}"


def _documented(calls: list) -> list:
    """The differences ibapi's two decoders make themselves (D2, D6, D11 in proto_answers.py)."""
    def no_list_is_an_empty_list(kind, d):                              # D11, ContractDetails.secIdList
        if kind == "ContractDetails" and d.get("secIdList") is None:
            d = dict(d, secIdList=[])
        return kind, d
    return [(n, _walk(_walk(a, _d11), no_list_is_an_empty_list)) for n, a in calls]


def test_every_message_of_a_live_session_at_226_decodes_as_its_text_form_does(make_gateway, connect):
    gw = make_gateway(max_server_version=226, seed=7)
    sent: list[tuple] = []
    gw.taps.append(lambda session, fields: sent.append(fields))
    c = connect(gw)
    assert c.serverVersion() == 226
    exercise(c, 100)
    assert not [e for e in c.errors() if e[1] not in (202, 434, 2104, 2106, 2158)], c.errors()
    kinds = {int(f[0]) for f in sent}
    # the session covered the streams, look-ups, history, accounts and orders
    for kind in (IN.TICK_PRICE, IN.TICK_SIZE, IN.TICK_GENERIC, IN.TICK_STRING, IN.MARKET_DEPTH_L2, IN.TICK_BY_TICK,
                 IN.HISTORICAL_DATA, IN.HISTORICAL_DATA_END, IN.HEAD_TIMESTAMP, IN.HISTORICAL_TICKS_LAST,
                 IN.REAL_TIME_BARS, IN.CONTRACT_DATA, IN.SECURITY_DEFINITION_OPTION_PARAMETER, IN.SYMBOL_SAMPLES,
                 IN.MARKET_RULE, IN.MKT_DEPTH_EXCHANGES, IN.ACCOUNT_SUMMARY, IN.ACCT_VALUE, IN.PORTFOLIO_VALUE,
                 IN.POSITION_DATA, IN.OPEN_ORDER, IN.ORDER_STATUS, IN.EXECUTION_DATA, IN.COMMISSION_AND_FEES_REPORT,
                 IN.COMPLETED_ORDER, IN.ERR_MSG, IN.NEXT_VALID_ID, IN.CURRENT_TIME, IN.PNL):
        assert kind in kinds, f"the session never produced message kind {kind}"
    checked = 0
    for fields in sent:
        if int(fields[0]) not in PROTO_SINCE:
            continue
        got, want = proto_callbacks(fields), _documented(text_callbacks(fields))
        assert got == want, (fields[:4], _first_difference(got, want))
        checked += 1
    assert checked > 200


@pytest.mark.parametrize("version", [213, 226])
def test_a_client_at_a_protobuf_version_gets_what_a_client_at_200_gets(make_gateway, connect, version):
    gw = make_gateway(max_server_version=version, seed=7)
    gw200 = make_gateway(max_server_version=200, seed=7)
    answers = []
    for g in (gw, gw200):
        c = connect(g, client_id=5)
        c.reqContractDetails(1, stock("MSFT"))
        c.reqSecDefOptParams(2, "AAPL", "", "STK", 265598)
        c.reqHistoricalData(3, stock(), "20261117 16:00:00 US/Eastern", "2 D", "1 hour", "MIDPOINT", 1, 1, False, [])
        c.reqMarketRule(32)
        c.reqAccountSummary(4, "All", "NetLiquidation,TotalCashValue,BuyingPower")
        c.wait("historicalDataEnd")
        c.wait("contractDetailsEnd")
        c.wait("securityDefinitionOptionParameterEnd")
        c.wait("marketRule")
        c.wait("accountSummaryEnd")
        c.placeOrder(c.wait("nextValidId")[0][0], stock(), order(kind="LMT", limit=5.0))   # rests, far below
        c.wait("orderStatus", lambda a: a[1] == "Submitted")
        answers.append({name: [canon(args) for args in c.all(name)]
                        for name in ("contractDetails", "securityDefinitionOptionParameter", "historicalData",
                                     "marketRule", "accountSummary")})
        answers[-1]["statuses"] = [a[1:3] for a in c.all("orderStatus")]
        answers[-1]["open"] = [(a[1].symbol, a[2].orderType, a[2].lmtPrice, a[3].status) for a in c.all("openOrder")]
        c.close()
    assert answers[0] == answers[1]
    assert answers[0]["historicalData"] and answers[0]["contractDetails"]


def frames_seen(gw, version, text_answers=frozenset()):
    """(kind, form) of what one raw socket receives after asking for AAPL's quotes at `version`."""
    import socket
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
    hello = f"v{version}..{version}".encode()
    sock.sendall(b"API\0" + struct.pack("!I", len(hello)) + hello)

    def read_frame():
        head = b""
        while len(head) < 4:
            head += sock.recv(4 - len(head))
        size = struct.unpack("!I", head)[0]
        body = b""
        while len(body) < size:
            body += sock.recv(size - len(body))
        return body

    read_frame()                                           # version and time
    from ibapi.client import EClient
    from ibapi.wrapper import EWrapper

    class Capture:
        sent = []

        def sendMsg(self, msg):
            self.sent.append(msg)

        def isConnected(self):
            return True

    client = EClient(EWrapper())
    client.conn, client.serverVersion_, client.connState, client.clientId = Capture(), version, EClient.CONNECTED, 9
    client.startApi()
    client.reqMktData(1, stock(), "", False, False, [])
    for msg in Capture.sent:
        sock.sendall(msg)
    forms = set()
    while not any(k == IN.TICK_PRICE for k, _ in forms):
        payload = read_frame()
        wire_id = int.from_bytes(payload[:4], "big")
        forms.add((wire_id - 200, "protobuf") if wire_id > 200 else (wire_id, "text"))
    sock.close()
    return forms


def test_the_wire_carries_protobuf_where_the_version_says_and_text_where_a_kind_is_switched(make_gateway):
    gw = make_gateway(max_server_version=226, seed=7)
    assert (IN.TICK_PRICE, "protobuf") in frames_seen(gw, 226)
    assert (IN.TICK_PRICE, "text") in frames_seen(gw, 205)          # market data goes protobuf at 206
    gw_text = make_gateway(max_server_version=226, seed=7, text_answers=frozenset({IN.TICK_PRICE}))
    assert (IN.TICK_PRICE, "text") in frames_seen(gw_text, 226)


def test_a_protobuf_only_request_and_a_garbled_protobuf_body_get_an_error_and_the_session_goes_on(make_gateway,
                                                                                                    connect):
    gw = make_gateway(max_server_version=226, seed=7)
    c = connect(gw)
    c.reqConfigProtoBuf(_config_request(7))
    c.conn.sendMsg(struct.pack("!II", 8, 200 + 9) + b"\xff\xff\xff\xff")      # reqContractDetails, garbled
    texts = [e[3] for e in c.wait("error", lambda a: a[2] == 320, count=2)]
    assert any("not supported by the simulated gateway" in t for t in texts), texts
    assert any("unreadable" in t for t in texts), texts
    c.reqContractDetails(3, stock())
    c.wait("contractDetailsEnd", lambda a: a[0] == 3)


def _config_request(req_id):
    from ibapi.protobuf.ConfigRequest_pb2 import ConfigRequest
    return ConfigRequest(reqId=req_id)


def test_garbled_and_bit_flipped_protobuf_requests_of_every_kind_leave_the_session_and_log_clean(make_gateway, connect,
                                                                                                    sim_log):
    """Every protobuf request id ibapi 10.50 knows, with random bytes, a truncated and a bit-flipped body of a
    real request: each is answered (an error 320 or whatever the flipped request means), never a traceback,
    and the session still answers afterwards."""
    import random

    from ibframe.sim.protocol.proto_requests import SPECS
    rng = random.Random(226)
    gw = make_gateway(max_server_version=226, seed=7, pace_messages=False)
    c = connect(gw)
    real = ExecutionFilter()
    real.symbol = "AAPL"
    sample = {}                                          # a real body per id where one is easy to make
    capture = []
    c.conn.sendMsg, send = (lambda msg: capture.append(msg)), c.conn.sendMsg
    c.reqContractDetails(1, stock())
    c.reqExecutions(2, real)
    c.reqMktData(3, stock(), "233", False, False, [])
    c.placeOrder(4, stock(), order(kind="LMT", limit=1.0))
    c.conn.sendMsg = send
    for msg in capture:
        sample[int.from_bytes(msg[4:8], "big") - 200] = msg[8:]
    frames = 0
    for msg_id in sorted(SPECS):
        body = sample.get(msg_id, rng.randbytes(24))
        flipped = bytearray(body)
        for _ in range(3):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        for garbled in (rng.randbytes(rng.randrange(1, 64)), body[:max(1, len(body) // 2)], bytes(flipped)):
            c.conn.sendMsg(struct.pack("!II", 4 + len(garbled), 200 + msg_id) + garbled)
            frames += 1
    assert frames == 3 * len(SPECS) > 200
    c.reqCurrentTime()
    c.wait("currentTime", timeout=20)
    c.reqContractDetails(99, stock("MSFT"))
    c.wait("contractDetailsEnd", lambda a: a[0] == 99, timeout=20)
    assert not sim_log.tracebacks()
    assert any(e[1] == 320 and "unreadable" in e[2] for e in c.errors())
