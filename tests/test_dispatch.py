"""The dispatch thread: order, timers, calls from other threads, failures that do not kill it."""
from __future__ import annotations

import threading
import time

from ibframe.dispatch import Dispatcher


def test_everything_runs_on_one_thread_in_order():
    d = Dispatcher().start()
    seen, threads = [], set()
    for i in range(200):
        d.post(lambda i=i: (seen.append(i), threads.add(threading.current_thread().name)))
    d.call_sync(lambda: None)
    d.stop()
    assert seen == list(range(200)) and threads == {"ibframe-dispatch"}


def test_a_failing_callback_is_reported_and_the_thread_survives():
    errors = []
    d = Dispatcher(on_error=lambda exc, fn: errors.append(exc)).start()
    d.post(lambda: 1 / 0)
    assert d.call_sync(lambda: "alive") == "alive"
    d.stop()
    assert isinstance(errors[0], ZeroDivisionError)


def test_timers_fire_and_cancel():
    d = Dispatcher().start()
    fired, once = [], threading.Event()
    handle = d.call_every(0.01, lambda: fired.append(1))
    d.call_later(0.02, once.set)
    assert once.wait(5)
    deadline = time.monotonic() + 5
    while len(fired) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    handle.cancel()
    d.call_sync(lambda: None)
    count = len(fired)
    time.sleep(0.05)
    d.call_sync(lambda: None)
    d.stop()
    assert count >= 3 and len(fired) <= count + 1


def test_call_sync_returns_values_and_raises_errors():
    d = Dispatcher().start()
    assert d.call_sync(lambda a, b: a + b, 2, 3) == 5
    try:
        d.call_sync(lambda: {}["missing"])
    except KeyError:
        pass
    else:
        raise AssertionError("the KeyError should reach the calling thread")
    d.stop()
