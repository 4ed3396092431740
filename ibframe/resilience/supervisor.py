"""The connection supervisor: notices every way the link to IB breaks and brings it back.

Owns: the connection's state ("connected", "down", "gave_up", "stopped"), reconnecting the socket with
exponential backoff and jitter on its own thread (TWS's 326 "client id in use" waits or moves to a spare
id), the wait for IB after TWS's 1100 / 2110 (reconnecting the socket if IB does not come back in time),
and what a recovery does, in this order on the dispatch thread: resubscribe (fresh ids, same state
objects: `Engine.resubscribe`), reconcile orders and fills (`OrderManager.after_reconnect`), and once
that reconciliation has ended, tell listeners (`reconnected_hooks`, e.g. strategies' `on_reconnected`):
they see current fills, positions and order states. Data-farm notices mark quotes and
books stale (`FarmWatch`). While the connection is down, the risk gate refuses orders (`ConnectedRule`).

Must never: block the dispatch thread (socket work happens on the supervisor's thread), queue orders to
send later, or reuse a request id (`Engine.resubscribe` takes fresh ones).
"""
from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..connection import ConnectError
from ..errors import ErrorClass, IBError
from .config import ConnectionConfig
from .farms import FarmWatch
from .rule import ConnectedRule

log = logging.getLogger("ibframe.connection")

LOST = -5                               # ibframe's own event (reqId -1, CONNECTION): the link to IB is down
BACK = -6                               # ibframe's own event (reqId -1, CONNECTION): it is back and resynced
DOWN_CODES = {1100, 2110}               # TWS is up, IB is not: wait for 1101 / 1102
RESTORED = {1101: True, 1102: False}    # code -> market data lost (resubscribe it)


@dataclass(slots=True)
class Outage:
    """One time the connection was down: when, why, how it ended."""
    start: float
    reason: str
    end: float | None = None
    attempts: int = 0                   # reconnect attempts of the socket (0: IB came back on its own)
    how: str = ""                       # "reconnected", "restored 1101", "restored 1102", "gave up"

    @property
    def duration(self) -> float | None:
        return None if self.end is None else self.end - self.start


class ConnectionSupervisor:
    def __init__(self, engine, config: ConnectionConfig | None = None, rng: random.Random | None = None):
        self.engine = engine
        self.config = config or ConnectionConfig()
        self.rng = rng or random.Random()
        self.state = "connected"
        self.client_id = engine.client_id
        self.outages: list[Outage] = []
        self.disconnected_hooks: list[Callable[[str], None]] = []     # (reason), dispatch thread
        self.reconnected_hooks: list[Callable[[float], None]] = []    # (seconds down), dispatch thread
        self.gave_up = threading.Event()
        self.give_up_reason = ""
        self.farms = FarmWatch(engine.router)
        self.socket_down = False            # the socket itself is gone (not only IB behind TWS)
        self.saw_client_id_in_use = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._restore_timer = None
        self._announce_after_reconcile: float | None = None   # down_for, told once the reconciliation ends
        # names the socket's loss and return in a session recording ("connection_lost", "reconnected"), so a
        # replay takes the same steps at the same points (ibframe.replay drives `socket_lost` / `reconnected`)
        self.mark: Callable[[str], None] | None = None

    # --- wiring -----------------------------------------------------------------------------------
    def install(self, reconnect_thread: bool = True) -> "ConnectionSupervisor":
        """Listen to the router and the order manager; a replay installs it without the reconnecting thread."""
        router = self.engine.router
        router.closed_hooks.append(self._socket_lost)
        router.connection_hooks.append(self._notice)
        self.engine.orders.reconcile_hooks.append(self._reconciled)
        self.engine.orders.gate.add_rule(ConnectedRule(self), first=True)   # disconnected says it all
        if reconnect_thread:
            self._thread = threading.Thread(target=self._run, name="ibframe-supervisor", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """No more reconnects (the run is ending); call before the engine disconnects."""
        self._stopping.set()
        self._wake.set()
        if self.state != "gave_up":
            self.state = "stopped" if self.state == "down" else self.state
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    @property
    def down_since(self) -> float | None:
        return self.outages[-1].start if self.outages and self.outages[-1].end is None else None

    @property
    def recoveries(self) -> int:
        return sum(1 for o in self.outages if o.end is not None and o.how != "gave up")

    # --- the dispatch thread: what TWS and the socket say -------------------------------------------
    def socket_lost(self) -> None:
        """The socket is gone (a replay calls this at a recorded "connection_lost" mark)."""
        self._socket_lost()

    def reconnected(self) -> None:
        """A new socket is ready (a replay calls this at a recorded "reconnected" mark)."""
        self._recover(True, "reconnected")

    def _socket_lost(self) -> None:
        if self._stopping.is_set():
            return
        if self.mark is not None:
            self.mark("connection_lost")
        self.socket_down = True
        self._go_down(f"connection to {self.engine.host}:{self.engine.port} lost")
        self._wake.set()

    def _notice(self, err: IBError) -> None:
        if err.code == 326:
            self.saw_client_id_in_use = True
        elif err.code in DOWN_CODES:
            self._go_down(f"TWS lost its connection to IB ({err.code})")
            self._arm_restore_timer()
        elif err.code in RESTORED and self.state == "down" and not self.socket_down:
            self._recover(resubscribe_data=RESTORED[err.code], how=f"restored {err.code}")
        elif err.code == 1101 and self.state == "connected":
            # data lost while ibframe saw no outage (e.g. the socket was reconnected before IB came back):
            # TWS dropped the market data lines all the same
            log.warning("TWS reports 1101 (data lost): resubscribing market data")
            self.engine.resubscribe(data_only=True)
        self.farms.notice(err.code, err.text, connected=self.connected)

    def _go_down(self, reason: str) -> None:
        if self.state != "connected":
            return
        now = self.engine.clock.now()
        self.state = "down"
        self.outages.append(Outage(now, reason))
        self.farms.mark_all(stale=True)
        policy = ("reconnecting with backoff" if self.config.reconnect or not self.socket_down
                  else "reconnect is off (connection.reconnect: false): the run ends")
        log.warning("%s; orders are refused until it is back; %s", reason, policy)
        self.engine.router.report(IBError(LOST, f"{reason}; {policy}", -1, ErrorClass.CONNECTION, now,
                                          "connection"))
        for hook in list(self.disconnected_hooks):
            hook(reason)
        if self.socket_down and not self.config.reconnect:
            self._give_up("the connection was lost and connection.reconnect is false")

    def _arm_restore_timer(self) -> None:
        if self._restore_timer is not None:
            self._restore_timer.cancel()
        outage = self.outages[-1] if self.outages else None
        self._restore_timer = self.engine.dispatcher.call_later(self.config.restore_timeout,
                                                                lambda: self._restore_overdue(outage))

    def _restore_overdue(self, outage: Outage | None) -> None:
        """IB did not come back behind TWS in time: drop the socket and reconnect it."""
        self._restore_timer = None
        if self.state != "down" or self.socket_down or not self.outages or self.outages[-1] is not outage:
            return
        log.warning("IB has not come back within %.0fs of %s; reconnecting the socket",
                    self.config.restore_timeout, outage.reason)
        self.engine.conn.close(drain=0)
        self.socket_down = True
        self._wake.set()

    def _recover(self, resubscribe_data: bool, how: str) -> None:
        """The link is back: resubscribe, reconcile, then tell everyone (dispatch thread)."""
        if self.state != "down" or self._stopping.is_set():
            return
        if how == "reconnected" and self.mark is not None:
            self.mark("reconnected")
        if self._restore_timer is not None:
            self._restore_timer.cancel()
            self._restore_timer = None
        outage = self.outages[-1]
        end = self.engine.clock.now()
        down_for = end - outage.start
        self.state = "connected"
        self.socket_down = False
        if how == "reconnected":
            self.engine.resubscribe(data_only=False)
        elif resubscribe_data:
            self.engine.resubscribe(data_only=True)
        self.farms.mark_all(stale=False)
        outage.end, outage.how = end, how          # counted as a recovery once resubscribed (readers on other threads)
        log.warning("connection back after %.1fs (%s, %d attempt(s)); subscriptions renewed, reconciling orders",
                    down_for, how, outage.attempts)
        self.engine.router.report(IBError(BACK, f"connection back after {down_for:.1f}s ({how}); subscriptions "
                                                f"renewed, orders being reconciled", -1, ErrorClass.CONNECTION,
                                          outage.end, "connection"))
        orders = self.engine.orders
        orders.after_reconnect(outage.start, down_for)
        self._announce_after_reconcile = down_for
        if not orders.reconciling:
            self._reconciled(None)

    def _reconciled(self, summary) -> None:
        """The reconciliation after a recovery ended: fills and statuses are current, tell the listeners."""
        down_for, self._announce_after_reconcile = self._announce_after_reconcile, None
        if down_for is None or self.state != "connected":
            return
        for hook in list(self.reconnected_hooks):
            hook(down_for)

    def _give_up(self, why: str) -> None:
        if self.outages and self.outages[-1].end is None:
            self.outages[-1].end = self.engine.clock.now()
            self.outages[-1].how = "gave up"
        self.state = "gave_up"
        self.give_up_reason = why
        log.error("giving up on the connection: %s", why)
        self.gave_up.set()

    # --- the supervisor's thread: reconnecting the socket ------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stopping.is_set():
                return
            if self.socket_down and self.state == "down" and self.config.reconnect:
                self._reconnect()

    def _reconnect(self) -> None:
        outage = self.outages[-1]
        last = ""
        for delay in self.config.delays(self.rng):
            if self._stopping.wait(delay):
                return
            outage.attempts += 1
            log.info("reconnect attempt %d to %s:%d as client %d (after %.2fs)", outage.attempts,
                     self.engine.host, self.engine.port, self.client_id, delay)
            ok, last = self._attempt()
            if ok:
                self.engine.dispatcher.post(self._recover, True, "reconnected")
                return
            log.warning("reconnect attempt %d failed: %s", outage.attempts, last)
        if not self._stopping.is_set():
            self.engine.dispatcher.post(self._give_up, f"no connection to {self.engine.host}:{self.engine.port} "
                                                       f"after {outage.attempts} attempt(s) (last: {last}); check "
                                                       f"that TWS / IB Gateway is running and accepts API clients")

    def _attempt(self) -> tuple[bool, str]:
        """One connection attempt (supervisor thread): socket, handshake, then nextValidId + accounts."""
        engine = self.engine
        self.saw_client_id_in_use = False
        engine.on_dispatch(engine.router.connection_opened)
        try:
            engine.conn.open(engine.host, engine.port, self.client_id, self.config.handshake_timeout)
        except ConnectError as exc:
            return False, str(exc)
        deadline = time.monotonic() + self.config.handshake_timeout
        router = engine.router
        while not router.ready.wait(0.02):
            if self._stopping.is_set():
                return False, "stopping"
            if router.connection_closed.is_set() or time.monotonic() > deadline:
                engine.conn.close(drain=0)
                if self.saw_client_id_in_use:
                    return False, self._client_id_in_use()
                if router.connection_closed.is_set():
                    return False, "the gateway closed the connection during the handshake"
                return False, f"no nextValidId within {self.config.handshake_timeout:g}s"
        engine.client_id = self.client_id
        return True, ""

    def _client_id_in_use(self) -> str:
        """326: wait and retry the same id, or move on to the next spare one."""
        used = self.client_id
        if self.config.client_id_in_use == "next" and self.config.spare_client_ids:
            ids = [engine_id for engine_id in self.config.spare_client_ids if engine_id != used]
            order = self.config.spare_client_ids
            nxt = order[(order.index(used) + 1) % len(order)] if used in order else (ids[0] if ids else used)
            self.client_id = nxt
            return f"client id {used} is in use (326); trying client id {nxt} next"
        return f"client id {used} is in use (326); waiting for TWS to release it"
