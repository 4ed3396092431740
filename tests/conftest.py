"""Shared test fixtures: a simulated gateway on a free loopback port and the real ibapi client.

`RecordingClient` is the official `ibapi.client.EClient` with an EWrapper that records every
callback it receives as (name, args); tests wait for callbacks and assert on their values.
Nothing of ibapi is mocked: bytes cross a real socket both ways.
"""
from __future__ import annotations

import inspect
import itertools
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from ibapi.client import EClient
from ibapi.wrapper import EWrapper

from ibframe.sim import SimConfig, SimGateway
from ibframe.sim.market.hours import start_time

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURE_FRAMES = SHARED / "fixtures" / "real-tws-v176" / "frames.jsonl"

VERSIONS = (176, 178, 200, 213, 226)     # negotiated versions the simulator serves (protobuf from 201)

# Every simulator in the suite starts at a pinned instant unless a test names its own: a test passes
# at any hour, any day. Wednesday 2026-11-18 11:30 New York is inside a regular session.
MIDDAY = start_time("2026-11-18 11:30")


@dataclass(frozen=True)
class Instant:
    """A pinned simulator start and what a real TWS shows then for a US stock (New York times)."""
    name: str
    start: float
    liquid: bool                 # regular hours: market orders work
    extended: bool               # trading hours (04:00-20:00 on exchange days): outsideRth limits work
    last_trade_minute: float     # start of the last 1-min bar that traded, when closed (else the start's minute)
    last_rth_minute: float       # the same for useRTH=1
    fx: bool = True              # EUR.USD trades (IDEALPRO: Sunday 17:15 to Friday 17:00, no holidays)


# Clock-sensitive tests run at each: pre-market, the open, midday, after the close, a Saturday and a
# holiday (Thanksgiving; the Wednesday before is a full session).
INSTANTS = (
    Instant("premarket", start_time("2026-11-18 07:00"), False, True,
            start_time("2026-11-18 07:00"), start_time("2026-11-17 15:59")),
    Instant("open", start_time("2026-11-18 09:30"), True, True,
            start_time("2026-11-18 09:30"), start_time("2026-11-18 09:30")),
    Instant("midday", MIDDAY, True, True, MIDDAY, MIDDAY),
    Instant("after_close", start_time("2026-11-18 20:45"), False, False,
            start_time("2026-11-18 19:59"), start_time("2026-11-18 15:59")),
    Instant("saturday", start_time("2026-11-21 12:00"), False, False,
            start_time("2026-11-20 19:59"), start_time("2026-11-20 15:59"), fx=False),
    Instant("holiday", start_time("2026-11-26 11:30"), False, False,
            start_time("2026-11-25 19:59"), start_time("2026-11-25 15:59")),
)


def shared_fixture(path: Path) -> Path:
    """A file from ../shared: skipped on a user's clone, required in CI."""
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing in CI; the shared fixtures must be checked out beside the repo")
        pytest.skip(f"{path} not present (it ships only beside the project's CI checkout)")
    return path


class RecordingWrapper(EWrapper):
    """Records every EWrapper callback; thread-safe waits on what arrived."""

    def __init__(self):
        super().__init__()
        self.events: list[tuple[str, tuple]] = []
        self.cond = threading.Condition()

    def _record(self, name: str, args: tuple) -> None:
        with self.cond:
            self.events.append((name, args))
            self.cond.notify_all()


def _install_recorders() -> None:
    for name, fn in inspect.getmembers(EWrapper, inspect.isfunction):
        if name.startswith("_") or name in ("logAnswer",):
            continue

        def recorder(self, *args, _name=name):
            self._record(_name, args)
        setattr(RecordingWrapper, name, recorder)


_install_recorders()


class RecordingClient(EClient):
    """The official ibapi EClient, run on its own thread, with a recording wrapper."""

    _ids = itertools.count(100)

    def __init__(self):
        self.w = RecordingWrapper()
        super().__init__(self.w)
        self.thread: threading.Thread | None = None

    def run(self):
        """ibapi's loop; a disconnect from the test thread can race it (serverVersion() becomes None)."""
        try:
            super().run()
        except TypeError:
            if self.isConnected():
                raise

    def start(self, port: int, client_id: int | None = None) -> "RecordingClient":
        self.connect("127.0.0.1", port, next(self._ids) if client_id is None else client_id)
        if not self.isConnected():
            raise RuntimeError("could not connect to the simulated gateway")
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        self.wait("nextValidId")
        return self

    # --- reading what arrived -------------------------------------------------------------
    def all(self, name: str, req_id: int | None = None) -> list[tuple]:
        with self.w.cond:
            return [args for n, args in self.w.events
                    if n == name and (req_id is None or (args and args[0] == req_id))]

    def errors(self, req_id: int | None = None) -> list[tuple[int, int, str]]:
        """(reqId, code, text) of every error callback."""
        return [(a[0], a[2], a[3]) for a in self.all("error") if req_id is None or a[0] == req_id]

    def wait(self, name: str, predicate=lambda args: True, timeout: float = 10.0, count: int = 1) -> list[tuple]:
        """Block until `count` callbacks `name` satisfying `predicate` arrived; return them."""
        deadline = time.monotonic() + timeout
        with self.w.cond:
            while True:
                hits = [args for n, args in self.w.events if n == name and predicate(args)]
                if len(hits) >= count:
                    return hits
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = sorted({n for n, _ in self.w.events})
                    raise AssertionError(f"timed out waiting for {count} x {name}; got {len(hits)}. "
                                         f"Callbacks seen: {seen}. Errors: {self.errors()}")
                self.w.cond.wait(left)

    def wait_error(self, req_id: int, code: int, timeout: float = 10.0) -> str:
        args = self.wait("error", lambda a: a[0] == req_id and a[2] == code, timeout)[0]
        return args[3]

    def close(self) -> None:
        self.disconnect()
        if self.thread:
            self.thread.join(5)


@pytest.fixture(params=INSTANTS, ids=lambda i: i.name)
def instant(request) -> Instant:
    """Run the test once at each of INSTANTS (start a gateway with `start_time=instant.start`)."""
    return request.param


@pytest.fixture(scope="session")
def gateway():
    """One simulated gateway for the whole run (seed 7, fast 50 ms market steps, clock pinned at MIDDAY)."""
    gw = SimGateway(SimConfig(port=0, seed=7, step_seconds=0.05, start_time=MIDDAY)).start()
    yield gw
    gw.stop()


@pytest.fixture
def make_gateway():
    """Build extra gateways with their own settings (another seed, an older server version…)."""
    made = []

    def build(**options) -> SimGateway:
        options.setdefault("port", 0)
        options.setdefault("step_seconds", 0.05)
        options.setdefault("start_time", MIDDAY)
        gw = SimGateway(SimConfig(**options)).start()
        made.append(gw)
        return gw
    yield build
    for gw in made:
        gw.stop()


@pytest.fixture
def connect():
    """connect(gateway) -> a started RecordingClient; all are disconnected after the test."""
    clients = []

    def open_client(gw: SimGateway, client_id: int | None = None) -> RecordingClient:
        c = RecordingClient().start(gw.port, client_id)
        clients.append(c)
        return c
    yield open_client
    for c in clients:
        c.close()


@pytest.fixture
def client(gateway, connect) -> RecordingClient:
    return connect(gateway)


@pytest.fixture(params=VERSIONS, ids=lambda v: f"v{v}")
def versioned_client(request, make_gateway, connect) -> RecordingClient:
    """The official client against a gateway capped at each served server version."""
    gw = make_gateway(max_server_version=request.param, seed=7)
    c = connect(gw)
    assert c.serverVersion() == request.param
    return c


def wait_until(predicate, timeout: float = 15.0, what: str = "condition") -> None:
    """Poll `predicate` until it holds; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
