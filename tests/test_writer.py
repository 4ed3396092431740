"""The outgoing writer (issue 11, item 4): paced so the gateway never counts too many, orders first,
and the dispatch thread never waits on it.

First the pacing itself on a virtual clock (a property test over any submit pattern, the steady rate
of a backlog, stats and drops with a clock that only moves when told), then the frame reading over
a real socket pair with ibapi's own encoders (text ids, raw ids, protobuf), then the Engine and
ibapi against the simulator at its default 50 messages/s: a burst of 1,000 orders from one
dispatch-thread callback, a raised limit, orders overtaking queued requests, and a dropped client.
"""
from __future__ import annotations

import itertools
import logging
import math
import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ibapi import comm
from ibapi.client import EClient
from ibapi.comm import make_field
from ibapi.contract import Contract
from ibapi.message import OUT
from ibapi.order import Order
from ibapi.order_cancel import OrderCancel
from ibapi.wrapper import EWrapper

from conftest import RecordingWrapper, wait_until
from ibframe.connection import IBConnection, SocketTransport, split_frames
from ibframe.contracts import Stock
from ibframe.dispatch import Dispatcher
from ibframe.engine import Engine
from ibframe.risk.gate import DOOR
from ibframe.sim.protocol import handlers
from ibframe.writer import (NS, SKEW_ALLOWANCE, Outgoing, OutgoingWriter, PacedQueue, bucket_for, message_id,
                            order_id_of)

PLACE, CANCEL, GLOBAL_CANCEL, CURRENT_TIME = OUT.PLACE_ORDER, OUT.CANCEL_ORDER, OUT.REQ_GLOBAL_CANCEL, \
    OUT.REQ_CURRENT_TIME
_client_ids = itertools.count(700)


# --- the bucket on a virtual clock ------------------------------------------------------------------------

def run_schedule(limit: int, bursts: list[tuple[int, list[bool]]], rng=None) -> tuple[list, list, dict]:
    """Drive a PacedQueue exactly as OutgoingWriter does (the caller's fast path at each submit; the writer
    thread woken when work arrives on an idle queue or its token wait ends, late by up to 30 ms when `rng` is
    given, as a real thread may be), on a virtual nanosecond clock. Returns (submits, sends, pushed_at):
    submits as (time, is_order) by index; sends as (time, index, event number) in send order; the event
    number at which each queued message was queued."""
    pq = PacedQueue(limit)
    submits: list[tuple[int, bool]] = []
    sends: list[tuple[int, int, int]] = []
    pushed_at: dict[int, int] = {}
    event = itertools.count()
    wake: int | None = None                     # when the writer thread next looks (None: asleep until notified)

    def lag() -> int:
        return 0 if rng is None or rng.random() < 0.5 else int(rng.random() * 30_000_000)

    def writer_runs_until(until: float) -> None:
        nonlocal wake
        while wake is not None and wake <= until:
            item, wait = pq.pop_ready(wake)
            if item is not None:
                sends.append((wake, int.from_bytes(item.frame, "big"), next(event)))
            elif wait is None:
                wake = None
            else:
                wake += wait + lag()

    t = 0
    for gap, kinds in bursts:
        t += gap
        for is_order in kinds:
            writer_runs_until(t)
            index = len(submits)
            submits.append((t, is_order))
            if pq.admit_now(t):
                sends.append((t, index, next(event)))
            else:
                pushed_at[index] = next(event)
                pq.push(Outgoing(index.to_bytes(4, "big"), PLACE if is_order else CURRENT_TIME, t))
                if wake is None:
                    wake = t + lag()
    writer_runs_until(math.inf)
    return submits, sends, pushed_at


def most_in_window(times: list[int], window_ns: int) -> int:
    """The most of `times` (sorted) inside any half-open window [t, t + window), as TWS's MessageRate counts."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window_ns:
            start += 1
        best = max(best, end - start + 1)
    return best


BURSTS = st.lists(st.tuples(st.integers(0, 1_500_000_000), st.lists(st.booleans(), min_size=1, max_size=120)),
                  min_size=1, max_size=30)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(limit=st.integers(1, 300), bursts=BURSTS, rng=st.randoms(use_true_random=False))
def test_no_submit_pattern_puts_more_than_the_limit_in_any_gateway_second(limit, bursts, rng):
    submits, sends, pushed_at = run_schedule(limit, bursts, rng)
    times = [t for t, _, _ in sends]
    assert sorted(i for _, i, _ in sends) == list(range(len(submits))), "every message is sent exactly once"
    assert times == sorted(times)
    assert all(t >= submits[i][0] for t, i, _ in sends), "nothing leaves before it was submitted"

    # our own clock: 0.9 * limit (the margin) for every limit TWS could have
    if limit >= 10:
        assert most_in_window(times, NS) <= 0.9 * limit
    # the gateway's clock: the sends squeezed by up to SKEW_ALLOWANCE still fit under the limit ...
    assert most_in_window(times, NS + int(SKEW_ALLOWANCE * NS)) <= limit
    # ... as do arrivals delayed by any amount up to SKEW_ALLOWANCE each (TCP keeps their order)
    arrivals, last = [], 0
    for t in times:
        last = max(last, t + int(rng.random() * SKEW_ALLOWANCE * NS))
        arrivals.append(last)
    assert most_in_window(arrivals, NS) <= limit

    # FIFO within each class, and orders first: no other message leaves while an earlier order waits
    for is_order in (True, False):
        sent = [i for _, i, _ in sends if submits[i][1] is is_order]
        assert sent == sorted(sent)
    sent_event = {i: e for _, i, e in sends}
    waiting_orders = [(pushed_at[i], sent_event[i]) for i in pushed_at if submits[i][1]]
    for _, i, e in sends:
        if not submits[i][1]:
            assert not any(p < e < s for p, s in waiting_orders), f"message {i} overtook a waiting order"


def test_a_backlog_drains_at_the_steady_rate_after_the_burst():
    """1,000 at once at the default limit: 5 at once (the burst), then one each 28.6 ms (35/s), never slower."""
    submits, sends, _ = run_schedule(50, [(0, [True] * 1000)])
    bucket = bucket_for(50)
    assert bucket.interval_ns == math.ceil(NS / 35)
    expected = [max(0, i - 4) * bucket.interval_ns for i in range(1000)]
    assert [t for t, _, _ in sends] == expected
    assert most_in_window([t for t, _, _ in sends], NS) == 39


def test_limits_below_one_or_not_whole_are_refused_with_advice():
    for bad in (0, -5, 2.5):
        with pytest.raises(ValueError, match="TWS's is 50"):
            bucket_for(bad)


# --- the writer's thread, stats and drops on a clock that moves only when told -----------------------------

class VirtualNs:
    """A nanosecond clock for the writer that moves only when the test says so."""

    def __init__(self):
        self.now = 0

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * NS)


def text_frame(msg_id: int, *fields) -> bytes:
    return comm.make_msg(msg_id, False, "".join(make_field(f) for f in fields))


def test_stats_waits_warnings_and_drops(caplog):
    clock, sent = VirtualNs(), []
    writer = OutgoingWriter(sent.append, limit=10, server_version=176, clock=clock)     # 7/s, burst 1
    first, second, third = (text_frame(CURRENT_TIME, 1, n) for n in (1, 2, 3))
    place_11, place_12 = text_frame(PLACE, 11, 0, "AAPL"), text_frame(PLACE, 12, 0, "AAPL")
    with caplog.at_level(logging.WARNING, logger="ibframe.writer"):
        writer.submit(first)                       # a token is free and nothing waits: sent on this thread
        assert sent == [first]
        for frame in (second, place_11, place_12, third):
            writer.submit(frame)                   # no token: queued, and submit returned at once
        s = writer.stats()
        assert (s.sent, s.waited, s.queued_orders, s.queued_other, s.dropped, s.running) == (1, 0, 2, 2, 0, True)
        assert s.current_wait == 0 and s.longest_wait == 0

        clock.advance(0.5)
        wait_until(lambda: writer.stats().sent == 2, 5, "the next token")
        assert sent[1] == place_11, "orders and cancels go before other messages queued earlier"
        s = writer.stats()
        assert (s.sent, s.waited, s.queued_orders, s.queued_other) == (2, 1, 1, 2)
        assert s.longest_wait == 0.5 and s.current_wait == 0.5
        assert not caplog.records

        clock.advance(1.1)                         # 1.6 s: order 12 has waited over a second
        wait_until(lambda: writer.stats().sent == 3, 5, "order 12")
        clock.advance(0.143)                       # 1.743 s: the next one too, but the warning is not repeated
        wait_until(lambda: writer.stats().sent == 4, 5, "the second request")
        assert sent[2:] == [place_12, second]
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "waited 1.6s" in warnings[0].getMessage()
        assert writer.stats().longest_wait == 1.743

    writer.close()
    assert writer.join(5)
    assert writer.dropped() == [(CURRENT_TIME, None)]
    writer.submit(text_frame(CANCEL, 1, 12))      # after close: dropped too, never sent
    clock.advance(10)
    time.sleep(0.05)
    assert sent == [first, place_11, place_12, second]
    assert writer.dropped() == [(CURRENT_TIME, None), (CANCEL, 12)]
    s = writer.stats()
    assert (s.sent, s.dropped, s.queued, s.running) == (4, 2, 0, False)


def test_a_failing_socket_drops_the_frame_and_everything_queued_and_reports_them():
    clock, reported = VirtualNs(), []

    def send(frame: bytes) -> None:
        raise BrokenPipeError(32, "Broken pipe")
    writer = OutgoingWriter(send, limit=10, server_version=176, clock=clock)
    writer.on_dropped = reported.append
    writer.submit(text_frame(PLACE, 5, 0))        # inline, and the socket fails
    writer.submit(text_frame(PLACE, 6, 0))        # the writer is closed: not sent either
    assert writer.join(5) and writer.closed
    assert writer.dropped() == [(PLACE, 5), (PLACE, 6)]
    assert reported == [[(PLACE, 5)], [(PLACE, 6)]]


# --- reading frames as ibapi builds them, over a real socket pair ----------------------------------------

class Recorder(EWrapper):
    def __init__(self):
        super().__init__()
        self.errors = []

    def error(self, reqId, errorTime, errorCode, errorString, advancedOrderRejectJson=""):
        self.errors.append((reqId, errorCode, errorString))


def client_on(sock: socket.socket, version: int, limit: int) -> EClient:
    """The stock ibapi EClient at a negotiated `version`, writing through a SocketTransport to `sock`."""
    client = EClient(Recorder())
    client.serverVersion_ = version
    client.conn = SocketTransport(sock, limit, version)
    client.setConnState(EClient.CONNECTED)
    return client


def receive(sock: socket.socket, count: int) -> list[bytes]:
    buffer, frames = bytearray(), []
    sock.settimeout(10)
    while len(frames) < count:
        buffer += sock.recv(65536)
        got, used = split_frames(buffer)
        del buffer[:used]
        frames += got
    return frames


def receive_until_closed(sock: socket.socket) -> list[bytes]:
    buffer = bytearray()
    sock.settimeout(10)
    while chunk := sock.recv(65536):
        buffer += chunk
    frames, used = split_frames(buffer)
    assert used == len(buffer)
    return frames


def limit_order(action: str = "BUY") -> tuple[Contract, Order]:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = "AAPL", "STK", "SMART", "USD"
    o = Order()
    o.action, o.orderType, o.totalQuantity, o.lmtPrice = action, "LMT", 1, 1.0
    return c, o


@pytest.mark.parametrize("version", [176, 200, 226], ids=["text-v176", "text-v200", "protobuf-v226"])
def test_ids_of_ibapi_frames_in_every_framing(version):
    """ibapi frames text ids below MIN_SERVER_VER_PROTOBUF (201), binary ids from it, and protobuf place/cancel
    from 203: the writer classes each correctly (orders first) and reads the order id of what it drops."""
    ours, peer = socket.socketpair()
    try:
        client = client_on(ours, version, limit=10)
        contract, o = limit_order()
        client.reqCurrentTime()                   # the one free token: sent at once
        client.reqCurrentTime()
        client.placeOrder(41, contract, o)
        client.cancelOrder(41, OrderCancel())
        client.reqGlobalCancel(OrderCancel())
        client.placeOrder(42, contract, o)
        assert not client.wrapper.errors
        frames = receive(peer, 6)
        raw = version >= 201
        ids = [message_id(len(f).to_bytes(4, "big") + f, raw) for f in frames]
        assert ids == [CURRENT_TIME, PLACE, CANCEL, GLOBAL_CANCEL, PLACE, CURRENT_TIME]
        assert [order_id_of(len(f).to_bytes(4, "big") + f, version) for f in frames] == \
            [None, 41, 41, None, 42, None]

        for order_id in range(43, 53):            # queued behind the exhausted bucket (8/s) ...
            client.placeOrder(order_id, contract, o)
        client.cancelOrder(43, OrderCancel())
        client.reqCurrentTime()
        client.conn.disconnect()                  # ... and what is still queued is dropped, with its order ids
        dropped = client.conn.dropped()
        assert dropped[-2:] == [(CANCEL, 43), (CURRENT_TIME, None)]
        first = dropped[0][1]
        assert len(dropped) >= 7 and dropped[:-2] == [(PLACE, i) for i in range(first, 53)]
        assert client.conn.stats().running is False
        late = receive_until_closed(peer)
        assert [order_id_of(len(f).to_bytes(4, "big") + f, version) for f in late] == list(range(43, first)), \
            "only what left before the close arrived; nothing queued was sent after it"
    finally:
        ours.close()
        peer.close()


def test_without_pacing_the_transport_sends_directly():
    ours, peer = socket.socketpair()
    try:
        client = client_on(ours, 176, limit=None)
        for _ in range(200):
            client.reqCurrentTime()
        assert client.conn.writer is None and client.conn.stats() is None
        assert len(receive(peer, 200)) == 200      # all of them already in the socket: no queue to wait on
    finally:
        ours.close()
        peer.close()


# --- against the simulator -----------------------------------------------------------------------------

@pytest.fixture
def gateway_orders(monkeypatch):
    """Every placeOrder the simulator handles, in handling order: (monotonic time, client id, order id)."""
    from ibframe.sim.broker import orders  # noqa: F401  (registers the placeOrder handler)
    seen: list[tuple[float, int, int]] = []
    handle = handlers.HANDLERS[PLACE]

    def tap(session, r):
        seen.append((time.monotonic(), session.client_id, int(r.fields[r.pos])))
        handle(session, r)
    monkeypatch.setitem(handlers.HANDLERS, PLACE, tap)
    return seen


def most_per_second(times: list[float]) -> int:
    return most_in_window([int(t * NS) for t in sorted(times)], NS)


@pytest.fixture
def start_engine(tmp_path):
    engines = []

    def start(gw, limit: int | None = None) -> Engine:
        eng = Engine("127.0.0.1", gw.port, next(_client_ids), state_dir=tmp_path)
        if limit is not None:
            eng.conn.writer_limit = limit
        codes: list[int] = []
        eng.router.on_error_hooks.append(lambda err: codes.append(err.code))
        eng.orders.ack_timeout = 300            # the burst's last orders wait ~28 s to leave (see the report)
        engines.append(eng.start())
        return eng, codes
    yield start
    for eng in engines:
        eng.stop()


def far_limit_buy() -> Order:
    o = Order()
    o.action, o.orderType, o.totalQuantity, o.lmtPrice, o.tif = "BUY", "LMT", 1, 1.0, "DAY"
    return o


def burst(eng: Engine, contract: Contract, count: int, seen: dict) -> list:
    """From one callback on the dispatch thread: place `count` orders; note the writer's queue as the
    callback returns and when a timer posted by it runs."""
    trades: list = []
    transport = eng.conn.conn

    def timer():
        seen["timer"] = transport.stats()

    def callback():
        for _ in range(count):
            trades.append(eng.orders.place(contract, far_limit_buy(), "burst"))
        eng.dispatcher.call_later(0.0, timer)
        seen["returned"] = transport.stats()
    eng.dispatcher.post(callback)
    wait_until(lambda: "returned" in seen, 30, "the burst callback")
    return trades


def test_a_thousand_orders_from_one_callback_at_the_default_limit(make_gateway, start_engine, gateway_orders,
                                                                  caplog):
    gw = make_gateway(seed=7, step_seconds=0.25)
    assert gw.config.max_messages_per_second == 50
    eng, codes = start_engine(gw)
    aapl = eng.qualify(Stock("AAPL"))
    seen: dict = {}
    with caplog.at_level(logging.WARNING, logger="ibframe.writer"):
        trades = burst(eng, aapl, 1000, seen)

        # the dispatch thread was free while the burst waited: the callback returned with most of it queued
        # (it can only have sent 5 + 35/s while placing), and a timer it posted ran while hundreds still were
        assert seen["returned"].queued_orders >= 500
        wait_until(lambda: "timer" in seen, 10, "the timer posted by the callback")
        assert seen["timer"].queued_orders >= 400

        wait_until(lambda: all(t.acknowledged for t in trades), 60, "openOrder/orderStatus for all 1,000")
    assert not eng.router.connection_closed.is_set() and eng.conn.isConnected()
    assert 100 not in codes, "error 100: the gateway counted too many messages in a second"
    assert all(t.status in ("Submitted", "PreSubmitted") for t in trades)

    ours = [(t, oid) for t, cid, oid in gateway_orders if cid == eng.client_id]
    ids = [oid for _, oid in ours]
    assert ids == sorted(ids) and len(ids) == 1000 and set(ids) == {t.order_id for t in trades}
    by_perm = sorted(trades, key=lambda t: t.perm_id)
    assert [t.order_id for t in by_perm] == sorted(t.order_id for t in trades), "in id order at the gateway"
    peak = most_per_second([t for t, _ in ours])
    assert peak <= 50
    print(f"\n1,000 orders: {ours[-1][0] - ours[0][0]:.1f}s at the gateway, at most {peak} in any second there")

    s = eng.conn.conn.stats()
    assert (s.queued, s.dropped, s.current_wait) == (0, 0, 0.0) and s.running
    assert s.waited >= 995 and s.sent >= 1000 + 1
    assert s.longest_wait >= 20, "the last order waited for the pace: (1000 - 5) / 35 = 28.4 s"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "ibframe.writer"]
    assert 1 <= len(warnings) <= 7, "waits over 1 s are logged, at most once per 5 s"


def test_a_raised_limit_sends_faster_and_still_without_error_100(make_gateway, start_engine, gateway_orders):
    # the account's limit a little under the gateway's: on a loaded test machine the in-process simulator's loop
    # can stall for more than the writer's 0.1 s skew allowance and then count a backlog inside one second
    gw = make_gateway(seed=7, step_seconds=0.25, max_messages_per_second=200)
    eng, codes = start_engine(gw, limit=170)
    aapl = eng.qualify(Stock("AAPL"))
    trades = burst(eng, aapl, 400, {})
    wait_until(lambda: all(t.acknowledged for t in trades), 30, "all 400 acknowledged")
    assert 100 not in codes and eng.conn.isConnected()
    times = [t for t, cid, _ in gateway_orders if cid == eng.client_id]
    assert len(times) == 400
    peak = most_per_second(times)
    assert 50 < peak <= 200, f"at most 45 a second can go at the default limit; at 200 the gateway saw {peak}"


def test_an_order_overtakes_hundreds_of_queued_requests(make_gateway):
    """Raw ibapi calls through IBConnection: 200 reqCurrentTime queued, then one placeOrder; the gateway
    handles the order before nearly all of them (its answers come back in handling order)."""
    gw = make_gateway(seed=7)
    wrapper, dispatcher = RecordingWrapper(), Dispatcher()
    dispatcher.start()
    conn = IBConnection(wrapper, dispatcher)
    try:
        conn.open("127.0.0.1", gw.port, next(_client_ids))
        wait_until(lambda: any(n == "nextValidId" for n, _ in wrapper.events), 10, "nextValidId")
        order_id = next(a[0] for n, a in wrapper.events if n == "nextValidId")
        contract, o = limit_order()
        contract.conId = 265598

        def callback():
            for _ in range(200):
                conn.reqCurrentTime()
            DOOR.approve(conn, order_id, o)
            conn.placeOrder(order_id, contract, o)
        dispatcher.post(callback)
        wait_until(lambda: sum(n == "currentTime" for n, _ in wrapper.events) == 200, 20, "200 currentTime")
        with wrapper.cond:
            names = [n for n, a in wrapper.events if n == "currentTime" or (n == "openOrder" and a[0] == order_id)]
        before = names.index("openOrder")
        assert before <= 10, f"{before} requests queued before the order went ahead of it"
        assert not [a for n, a in wrapper.events if n == "error" and a[2] == 100]
    finally:
        conn.close()
        dispatcher.stop()


def test_a_dropped_client_drops_the_queue_and_sends_none_of_it_later(make_gateway, start_engine,
                                                                      gateway_orders):
    gw = make_gateway(seed=7, step_seconds=0.25)
    eng, codes = start_engine(gw)
    aapl = eng.qualify(Stock("AAPL"))
    transport = eng.conn.conn
    trades = burst(eng, aapl, 300, {})
    wait_until(lambda: transport.stats().sent >= 40, 10, "some of the burst sent")
    assert gw.faults.drop_client(eng.client_id)
    wait_until(lambda: not transport.stats().running, 10, "the writer thread to end")

    s = transport.stats()
    dropped = transport.dropped()
    dropped_ids = [oid for msg_id, oid in dropped if msg_id == PLACE]
    assert s.queued == 0 and s.dropped == len(dropped) and dropped_ids
    assert dropped_ids == sorted(dropped_ids) == [t.order_id for t in trades[-len(dropped_ids):]]

    # a new connection with the same client id: its own writer; the old queue never reaches the gateway
    again = Engine("127.0.0.1", gw.port, eng.client_id, state_dir=eng.state_dir).start()
    try:
        fresh = again.on_dispatch(lambda: again.orders.place(aapl, far_limit_buy(), "after"))
        wait_until(lambda: fresh.acknowledged, 10, "the new connection's order")
        at_gateway = {oid for _, cid, oid in gateway_orders if cid == eng.client_id}
        assert fresh.order_id in at_gateway
        assert not at_gateway & set(dropped_ids), "a dropped order reached the gateway"
        burst_ids = {t.order_id for t in trades}
        assert (at_gateway - {fresh.order_id}) <= burst_ids
        lost_in_flight = burst_ids - at_gateway - set(dropped_ids)
        assert len(lost_in_flight) <= 3, "only frames being written as the socket died are neither seen nor dropped"
        assert fresh.order_id > max(dropped_ids), "ids are never reused, even for orders never sent"
    finally:
        again.stop()
