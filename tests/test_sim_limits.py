"""Per-connection memory bounds of the simulator, seen from raw sockets and the real ibapi client.

A client that subscribes and never reads is disconnected once its unread output passes
`SimConfig.max_send_queue_bytes` (logged with its clientId); a partial request's buffer is released
when its connection closes; a declared frame length over the limit closes the connection at once.
What the simulator holds is read through its public `connection_stats()`, never from RSS.
"""
from __future__ import annotations

import struct

import pytest

from conftest import wait_until
from ibframe.sim.protocol.wire import MAX_FRAME
from raw_wire_kit import closed_by_peer, ibapi_frames, raw_client, read_frame, sim_log  # noqa: F401 (fixture)
from sim_order_kit import AAPL, by_con_id, stock

TICKS = ("tickPrice", "tickSize")


def stats_of(gw, client_id):
    return [st for st in gw.connection_stats() if st.client_id == client_id]


# --- a client that never reads -------------------------------------------------------------------------

def subscriptions(c) -> None:
    for i, symbol in enumerate(("AAPL", "MSFT", "IBM", "JPM", "SPY")):
        c.reqMktData(10 + i, stock(symbol), "", False, False, [])
    for i, symbol in enumerate(("AAPL", "MSFT", "SPY")):
        c.reqTickByTickData(30 + i, stock(symbol), "BidAsk", 0, False)


def option_lines(gw, n: int):
    """Subscriptions to `n` AAPL options as well (each streams every step: a busy feed)."""
    con_ids = [i.con_id for i in gw.universe.options_of(AAPL)][:n]

    def subscribe(c) -> None:
        subscriptions(c)
        for k, con_id in enumerate(con_ids):
            c.reqMktData(100 + k, by_con_id(con_id, "SMART"), "", False, False, [])
    return subscribe


def test_a_client_that_never_reads_is_disconnected_past_the_send_queue_limit(make_gateway, connect, sim_log):
    limit = 96 * 1024
    gw = make_gateway(seed=3, step_seconds=0.02, max_send_queue_bytes=limit, pace_messages=False,
                      socket_send_buffer=32 * 1024)    # the kernel holds little: the queue is the sim's own
    # a paused twin to capture requests from, at the text version raw_client speaks
    quiet = make_gateway(seed=3, speed=1e-6, pace_messages=False, max_server_version=200)
    requests = ibapi_frames(quiet, [option_lines(quiet, 40)])       # a busy feed once replayed
    good = connect(gw, 5)
    good.reqMktData(1, stock("AAPL"), "", False, False, [])
    good.wait("tickPrice", lambda a: a[0] == 1)

    stuck = raw_client(gw.port, 77, rcvbuf=4096)
    for payload in requests:
        stuck.sendall(payload)
    wait_until(lambda: stats_of(gw, 77), timeout=10, what="client 77 registered")
    peak = [0]

    def gone() -> bool:
        mine = stats_of(gw, 77)
        if mine:
            peak[0] = max(peak[0], mine[0].send_queued)
            assert mine[0].send_queued <= limit + 64 * 1024, "the queue must never grow far past the limit"
        return not mine
    wait_until(gone, timeout=60, what="the non-reading client to be disconnected")
    cut = [m for m in sim_log.messages() if "client 77" in m and "not reading" in m]
    assert cut, sim_log.messages()
    queued = int(cut[0].split(" bytes queued")[0].rsplit(" ", 1)[1])
    assert limit < queued <= limit + 64 * 1024, cut[0]
    assert closed_by_peer(stuck)
    stuck.close()
    # everyone else goes on: the good client still streams, and its clientId 77 is free again
    n = len(good.all("tickPrice", 1)) + len(good.all("tickSize", 1))
    wait_until(lambda: len(good.all("tickPrice", 1)) + len(good.all("tickSize", 1)) > n + 5, timeout=10,
               what="ticks to the good client after the cut")
    again = connect(gw, 77)
    again.reqCurrentTime()
    again.wait("currentTime")
    assert not sim_log.tracebacks()


def test_a_slow_but_reading_client_is_not_cut(make_gateway, connect, sim_log):
    gw = make_gateway(seed=3, step_seconds=0.02, max_send_queue_bytes=96 * 1024)
    c = connect(gw, 6)
    subscriptions(c)
    wait_until(lambda: len(c.all("tickByTickBidAsk")) > 50, timeout=20, what="a busy stream to flow")
    assert stats_of(gw, 6), "a client that reads keeps its connection"
    assert not any("not reading" in m for m in sim_log.messages())


# --- partial and oversized frames --------------------------------------------------------------------------

def test_partial_frames_are_released_when_their_connections_close(make_gateway, connect, sim_log):
    gw = make_gateway(seed=3)
    size = 512 * 1024                              # under the default 1 MiB request limit
    socks = []
    for cid in (81, 82, 83):
        s = raw_client(gw.port, cid)
        s.sendall(struct.pack("!I", size) + b"x" * (size - 1))      # all but the last byte
        socks.append(s)
    wait_until(lambda: sum(st.input_buffered for st in gw.connection_stats()) >= 3 * (size - 1), timeout=15,
               what="three partial frames held")
    assert all(st.input_buffered == 4 + size - 1 for cid in (81, 82, 83) for st in stats_of(gw, cid))
    for s in socks:
        s.close()
    wait_until(lambda: not any(stats_of(gw, cid) for cid in (81, 82, 83)), timeout=10,
               what="the three connections released")
    assert sum(st.input_buffered for st in gw.connection_stats()) == 0
    c = connect(gw, 81)                              # the simulator serves on, the clientId is free
    c.reqCurrentTime()
    c.wait("currentTime")


@pytest.mark.parametrize("declared, options", [(MAX_FRAME + 1, {}), (0xFFFFFFFF, {}),
                                               (1024 * 1024 + 1, {}),
                                               (64 * 1024, {"max_request_bytes": 32 * 1024})],
                         ids=["protocol_limit", "4GiB", "default_limit", "configured_limit"])
def test_a_frame_declared_over_the_limit_closes_the_connection_at_once(make_gateway, sim_log, declared, options):
    gw = make_gateway(seed=3, **options)
    s = raw_client(gw.port, 91)
    wait_until(lambda: stats_of(gw, 91), timeout=10, what="client 91 registered")
    s.sendall(struct.pack("!I", declared) + b"y" * 1000)           # only the header and a little: no waiting
    seen = []
    s.settimeout(10)
    try:
        while True:
            fields = read_frame(s)
            seen.append(fields)
    except (ConnectionError, OSError):
        pass
    assert any(f[:1] == ["4"] and "320" in f and any("exceeds the limit" in x for x in f) for f in seen), seen
    wait_until(lambda: not stats_of(gw, 91), timeout=10, what="the connection closed")
    assert any("exceeds the limit" in m for m in sim_log.messages())
    s.close()
