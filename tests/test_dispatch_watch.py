"""The dispatch thread reads its socket itself (issue 13: no hand-off between threads from the kernel to the
strategy). Over a real loopback TCP connection: data reaches `on_readable` on the dispatch thread; work
posted from other threads, timers added by posted work and a stop all wake a thread asleep in select; an
unwatched or replaced socket is no longer read; `quiet_at` bounds how long data can have waited."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from ibframe.dispatch import Dispatcher
from conftest import wait_until


@pytest.fixture
def link():
    """(ours, theirs): a connected loopback TCP pair; the dispatcher reads `ours`, the test writes `theirs`."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        theirs = socket.create_connection(server.getsockname())
        ours, _ = server.accept()
    yield ours, theirs
    ours.close()
    theirs.close()


@pytest.fixture
def dispatcher():
    d = Dispatcher(name="test-dispatch").start()
    yield d
    d.stop()


def reader(d: Dispatcher, got: list, threads: list):
    def on_readable(watch):
        threads.append(threading.current_thread().name)
        data = watch.sock.recv(65536)
        got.append(data)
        if not data:
            d.unwatch(watch.sock)
    return on_readable


def test_data_is_read_on_the_dispatch_thread_in_order(dispatcher, link):
    ours, theirs = link
    got, threads = [], []
    dispatcher.watch(ours, reader(dispatcher, got, threads))
    for i in range(50):
        theirs.sendall(f"{i};".encode())
    wait_until(lambda: b"".join(got).count(b";") == 50, what="50 messages read")
    assert b"".join(got) == b"".join(f"{i};".encode() for i in range(50))
    assert set(threads) == {"test-dispatch"}


def test_posts_timers_added_by_posts_and_stop_wake_a_sleeping_thread(link):
    ours, theirs = link
    d = Dispatcher(name="test-dispatch").start()
    d.watch(ours, reader(d, [], []))
    wait_until(lambda: d.idle, what="the thread asleep in select")
    ran = []
    d.post(ran.append, "posted")                          # from this thread, while it sleeps
    wait_until(lambda: ran == ["posted"], what="the posted call")
    d.post(lambda: d.call_later(0.05, lambda: ran.append("timer")))   # a timer the posted work adds
    wait_until(lambda: ran == ["posted", "timer"], what="the timer added by posted work")
    d.stop()                                              # joins the thread: the stop woke it too
    assert not any(t.name == "test-dispatch" for t in threading.enumerate())


def test_an_unwatched_socket_is_no_longer_read(dispatcher, link):
    ours, theirs = link
    got = []
    dispatcher.watch(ours, reader(dispatcher, got, []))
    theirs.sendall(b"one")
    wait_until(lambda: got == [b"one"], what="the first read")
    dispatcher.unwatch(ours)
    dispatcher.call_sync(lambda: None)                    # the unwatch has run
    theirs.sendall(b"two")
    ran = []
    dispatcher.call_later(0.2, lambda: ran.append(True))
    wait_until(lambda: ran, what="a later timer")
    assert got == [b"one"] and ours.recv(16) == b"two"    # still in the socket, unread


def test_the_peer_closing_is_seen_as_an_empty_read(dispatcher, link):
    ours, theirs = link
    got = []
    dispatcher.watch(ours, reader(dispatcher, got, []))
    theirs.close()
    wait_until(lambda: got == [b""], what="the end of the stream")


def test_quiet_at_bounds_how_long_data_waited_behind_a_slow_callback(dispatcher, link):
    ours, theirs = link
    seen = []

    def on_readable(watch):
        seen.append((time.monotonic() - watch.quiet_at, watch.sock.recv(65536)))
    dispatcher.watch(ours, on_readable)
    theirs.sendall(b"a")
    wait_until(lambda: len(seen) == 1, what="the first read")
    dispatcher.post(time.sleep, 0.5)                      # the thread is busy 0.5 s ...
    time.sleep(0.1)
    theirs.sendall(b"b")                                  # ... while this arrives
    wait_until(lambda: len(seen) == 2, what="the second read")
    waited, data = seen[1]
    assert data == b"b" and waited >= 0.5                 # the bound covers the whole time away from the socket
