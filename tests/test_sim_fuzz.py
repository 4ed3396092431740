"""Fuzz the simulator: garbage connections and mutated valid requests while a good ibapi client streams.

The valid requests are what the official ibapi client writes (captured from a real session with a
paused twin gateway); each fuzz connection replays a few of them mutated (fields NaN / inf / -1 /
huge / non-numeric / empty, swapped, dropped, truncated, a wrong message id) or sends raw garbage
(random bytes, bad handshakes, truncated and oversized frames). Afterwards the good client's tick
stream still flows, the simulator logged no traceback and no thread died. `cases(1000, 20000)`
connections: the suite runs 1,000, `make fuzz` 20,000.
"""
from __future__ import annotations

import random
import socket
import struct
import threading
from concurrent.futures import ThreadPoolExecutor

from ibapi.order_cancel import OrderCancel
from ibapi.contract import ComboLeg, Contract
from ibapi.execution import ExecutionFilter

from conftest import wait_until
from fuzz_scale import cases
from sim_order_kit import AAPL, MSFT, by_con_id, order, stock
from raw_wire_kit import frame, ibapi_frames, recv_exactly, sim_log  # noqa: F401  (sim_log is a fixture)

CONNECTIONS = cases(1000, 20000)
WORKERS = 6
SEED = 20261118

NASTY = ("nan", "NaN", "-nan", "inf", "-inf", "Infinity", "-Infinity", "-1", "0", "-0", "1e400", "-1e308",
         "99999999999999999999999", "2147483647", "2147483648", "-2147483649", "1.7976931348623157E308",
         "abc", "", " ", "1.5", "0x10", "1_000", "9" * 400, "\x01", "BUY", "SMART", "LMT", "?", "None")


def option_contract(gw) -> Contract:
    return by_con_id(gw.universe.options_of(AAPL)[0].con_id, "SMART")


def option_by_fields(gw) -> Contract:
    """An option named by its fields (multiplier, strike, right, expiry): every contract field is on the wire."""
    inst = gw.universe.options_of(AAPL)[0]
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = "AAPL", "OPT", "SMART", "USD"
    c.lastTradeDateOrContractMonth, c.strike, c.right, c.multiplier = inst.expiry, inst.strike, inst.right, "100"
    return c


def valid_requests(gw):
    """Every request family the simulator serves, as ibapi writes them."""
    opt = option_contract(gw)
    bag = Contract()
    bag.symbol, bag.secType, bag.exchange, bag.currency = "AAPL,MSFT", "BAG", "SMART", "USD"
    bag.comboLegs = []
    for con_id, action in ((AAPL, "BUY"), (MSFT, "SELL")):
        leg = ComboLeg()
        leg.conId, leg.ratio, leg.action, leg.exchange = con_id, 1, action, "SMART"
        bag.comboLegs.append(leg)

    named = option_by_fields(gw)

    def run(c) -> None:
        for k in range(3):                        # contract fields are where garbage did most harm: weigh them
            c.reqMktData(40 + k, named, "", False, False, [])
            c.reqContractDetails(43 + k, named)
            c.reqHistoricalData(46 + k, named, "", "1 D", "1 hour", "MIDPOINT", 1, 1, False, [])
            c.calculateOptionPrice(49 + k, named, 0.3, 190.0, [])
            c.placeOrder(20 + k, named, order("BUY", 1, "LMT", lmt=1.0))
        c.reqMktData(11, stock(), "233,236", False, False, [])
        c.reqMktData(12, opt, "", False, False, [])
        c.reqMktData(13, stock("MSFT"), "", True, False, [])
        c.reqContractDetails(14, stock())
        c.reqContractDetails(15, opt)
        c.reqHistoricalData(16, stock(), "", "1 D", "5 mins", "TRADES", 1, 1, False, [])
        c.reqHeadTimeStamp(17, stock(), "TRADES", 1, 1)
        c.reqHistoricalTicks(18, stock(), "", "20261118 11:00:00 US/Eastern", 20, "TRADES", 1, False, [])
        c.reqRealTimeBars(19, stock(), 5, "MIDPOINT", True, [])
        c.reqTickByTickData(20, stock(), "BidAsk", 0, False)
        c.reqMktDepth(21, stock(exchange="ISLAND"), 5, False, [])
        c.calculateImpliedVolatility(22, opt, 5.0, 190.0, [])
        c.calculateOptionPrice(23, opt, 0.3, 190.0, [])
        c.reqSecDefOptParams(24, "AAPL", "", "STK", AAPL)
        c.reqMatchingSymbols(25, "AA")
        c.reqAccountSummary(26, "All", "NetLiquidation,BuyingPower")
        c.reqPositions()
        c.reqPnL(27, "DU1234567", "")
        c.reqPnLSingle(28, "DU1234567", "", AAPL)
        c.reqAccountUpdates(True, "DU1234567")
        c.reqExecutions(29, ExecutionFilter())
        c.reqOpenOrders()
        c.reqAllOpenOrders()
        c.reqCompletedOrders(False)
        c.reqIds(1)
        c.reqMarketDataType(3)
        c.reqCurrentTime()
        c.reqMarketRule(26)
        c.reqMktDepthExchanges()
        c.reqAccountUpdatesMulti(30, "DU1234567", "", False)
        c.reqPositionsMulti(31, "DU1234567", "")
        c.placeOrder(1, stock(), order("BUY", 10))
        c.placeOrder(2, stock(), order("SELL", 10, "LMT", lmt=250.0))
        c.placeOrder(3, stock(), order("SELL", 10, "STP", aux=150.0))
        c.placeOrder(4, stock(), order("SELL", 10, "TRAIL", trailingPercent=1.0))
        c.placeOrder(5, stock(), order("BUY", 10, "STP LMT", lmt=200.0, aux=199.0, tif="GTC"))
        c.placeOrder(6, bag, order("BUY", 1, "LMT", lmt=-200.0))
        c.placeOrder(7, opt, order("BUY", 1, "LMT", lmt=1.0))
        c.placeOrder(8, stock(), order("BUY", 0, "MKT", cashQty=1000.0))
        c.placeOrder(9, stock(), order("BUY", 10, "LMT", lmt=180.0, algoStrategy="Adaptive"))
        c.cancelOrder(2, OrderCancel())
        c.cancelMktData(11)
        c.cancelHistoricalData(16)
        c.cancelTickByTickData(20)
        c.cancelMktDepth(21, False)
        c.cancelAccountSummary(26)
        c.cancelPnL(27)
    return run


# --- mutations ----------------------------------------------------------------------------------------

def payload_fields(frame_bytes: bytes) -> list[str]:
    """The fields of one captured frame (empty trailing fields kept: they are part of the layout)."""
    text = frame_bytes[4:].decode("ascii", errors="replace")
    return (text[:-1] if text.endswith("\0") else text).split("\0")


def pack(fields: list[str]) -> bytes:
    return frame("".join(f"{f}\0" for f in fields).encode("latin-1", errors="replace"))


def mutate(rng: random.Random, fields: list[str]) -> list[str]:
    f = list(fields)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if len(f) < 2:
            f.append(rng.choice(NASTY))
        how = rng.random()
        i = rng.randrange(1, len(f))
        if how < 0.55:
            f[i] = rng.choice(NASTY)
        elif how < 0.65 and len(f) > 2:
            j = rng.randrange(1, len(f))
            f[i], f[j] = f[j], f[i]
        elif how < 0.75:
            del f[rng.randrange(1, len(f)):]                  # truncated
        elif how < 0.82:
            del f[i]
        elif how < 0.88:
            f.insert(i, rng.choice(NASTY))
        elif how < 0.94:
            f[0] = str(rng.choice((-1, 0, 1000, 2**40, rng.randrange(1, 110))))
        else:
            f[i] = f[i] + rng.choice(NASTY)
    return f


def handshake(s: socket.socket, version: bytes = b"v157..200") -> None:
    s.sendall(b"API\0" + frame(version))
    size = struct.unpack("!I", recv_exactly(s, 4))[0]
    recv_exactly(s, size)


def drain_until_closed(s: socket.socket) -> None:
    """Say we are done, then read until the simulator has answered everything and closed."""
    try:
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
    except OSError:
        pass


def one_connection(port: int, templates: list[list[str]], case: int) -> None:
    rng = random.Random(SEED * 100003 + case)
    kind = rng.random()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            if kind < 0.06:                                        # not the API at all
                s.sendall(rng.randbytes(rng.randrange(1, 300)))
            elif kind < 0.12:                                      # a broken handshake
                s.sendall(b"API\0" + frame(rng.choice((b"v", b"vabc", b"v200..100", b"v1..2", rng.randbytes(12),
                                                       b"v157..200 " + b"+" * 2000))))
            elif kind < 0.18:                                      # requests before START_API, then garbage frames
                handshake(s)
                for _ in range(rng.randrange(1, 4)):
                    s.sendall(pack(mutate(rng, rng.choice(templates))))
                s.sendall(struct.pack("!I", rng.randrange(5, 4000)) + rng.randbytes(rng.randrange(0, 64)))
            elif kind < 0.24:                                      # an oversized or truncated frame
                handshake(s)
                s.sendall(pack(["71", "2", str(10_000 + case), ""]))
                s.sendall(struct.pack("!I", rng.choice((0, 1, 0xFFFFFF + 1, 0xFFFFFFFF, 70_000)))
                          + rng.randbytes(rng.randrange(0, 200)))
            else:                                                  # mutated valid requests
                handshake(s)
                start = ["71", "2", str(10_000 + case), ""]
                s.sendall(pack(mutate(rng, start) if rng.random() < 0.1 else start))
                for _ in range(rng.randrange(1, 9)):
                    fields = rng.choice(templates)
                    s.sendall(pack(mutate(rng, fields) if rng.random() < 0.9 else fields))
                if rng.random() < 0.2:
                    s.sendall(frame(rng.randbytes(rng.randrange(1, 100))))
            drain_until_closed(s)
        except OSError:
            pass                                                   # the simulator may close on us: fine


def test_garbage_connections_and_mutated_requests_leave_the_stream_and_log_clean(make_gateway, connect, sim_log):
    # text requests are mutated field by field: both sides at 200 (protobuf bodies: test_sim_protobuf.py)
    gw = make_gateway(seed=5, step_seconds=0.05, pace_messages=False, max_server_version=200)
    quiet = make_gateway(seed=5, speed=1e-6, pace_messages=False, max_server_version=200)
    templates = [payload_fields(f) for f in ibapi_frames(quiet, [valid_requests(quiet)])]
    assert len(templates) > 40
    died: list[str] = []
    previous = threading.excepthook

    def hook(args) -> None:
        died.append(f"{args.thread.name if args.thread else '?'}: {args.exc_type.__name__}: {args.exc_value}")
        previous(args)
    threading.excepthook = hook
    try:
        good = connect(gw, 1)
        good.reqMktData(1, stock(), "", False, False, [])
        good.wait("tickPrice", lambda a: a[0] == 1)
        with ThreadPoolExecutor(WORKERS) as pool:
            for _ in pool.map(lambda k: one_connection(gw.port, templates, k), range(CONNECTIONS)):
                pass

        def ticks() -> int:
            return len(good.all("tickPrice", 1)) + len(good.all("tickSize", 1))
        after = ticks()
        wait_until(lambda: ticks() > after, timeout=20, what="the good client's ticks after the barrage")
        good.reqCurrentTime()
        good.wait("currentTime")
        late = connect(gw, 2)                                  # and the simulator still takes new clients
        late.reqMktData(2, stock("MSFT"), "", False, False, [])
        late.wait("tickPrice", lambda a: a[0] == 2)
    finally:
        threading.excepthook = previous
    tracebacks = [f"{r.getMessage()}" for r in sim_log.tracebacks()]
    assert not tracebacks, "\n".join(tracebacks[:5])
    assert not died, died
    assert not gw.supervisor.failures()
