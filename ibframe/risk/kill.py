"""The kill switch, what a halt does to working orders, and what happens to them when a run ends.

Owns:
- `Halting`: a TradingStates listener. When a scope turns HALTED, every working order of that scope is
  cancelled (GLOBAL: every open order of this client); `flatten(scope)` closes the scope's own positions
  with market orders once its cancels are confirmed. Flatten orders go through the risk gate like any
  order: they are registered with `TradingStates.exempt`, the one exception a halt makes, and still pass
  only if the gate finds that they reduce a position.
- `KillSwitch`: reachable from outside the process — SIGUSR1, a kill file polled every 0.25 s, a console
  `kill` line, and `python -m ibframe.run CONFIG --kill` (a pid file per run under `state_dir/runs/`).
  A kill halts GLOBAL, cancels every working order of this client, sends reqGlobalCancel (orders of other
  clients and TWS too, when `global_cancel`), optionally flattens, emits a RiskEvent 'kill' and confirms
  to the `--kill` command through an acknowledgement file.
- `cancel_working` / `finish_orders`: `on_stop: cancel | leave` at the end of a run.

Must never: refuse a cancel, place an order around the risk gate, block or sleep on the dispatch thread
(the signal handler and the console thread only post there; disk writes for the acknowledgement run on
a short-lived thread), or signal a process that is not an ibframe run.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from ..trading.manager import OrderRejected
from ..trading.orders import market
from ..trading.trade import Trade, quantity_text
from .base import GLOBAL, RiskEvent, TradingState
from .state import TradingStates

log = logging.getLogger("ibframe.risk.kill")

QUIET_POLL = 0.05          # seconds between looks at whether a halted scope's cancels are confirmed
QUIET_WAIT = 3.0           # how long a flatten waits for the cancels before it goes anyway
KILL_SOURCE = "kill switch"


# --- configuration -------------------------------------------------------------------------------------
@dataclass(slots=True)
class KillConfig:
    """The `risk: {kill: {...}}` YAML section."""
    flatten: bool = False           # after cancelling, close every strategy's own positions at market
    global_cancel: bool = True      # also reqGlobalCancel: orders of other clients and of TWS itself
    file: str | None = ""           # kill file; "" = STATE_DIR/KILL, None (YAML false) = no kill file
    poll: float = 0.25              # seconds between looks at the kill file
    signal: bool = True             # SIGUSR1 kills (and `python -m ibframe.run CONFIG --kill`)
    console: bool = True            # typing `kill` + Enter on the run's terminal kills

    KEYS = ("flatten", "global_cancel", "file", "poll", "signal", "console")

    @classmethod
    def from_mapping(cls, raw, fail) -> "KillConfig":
        """From the YAML mapping under `kill:`; `fail(key_path_tuple, message)` raises the config error
        (key paths relative to `kill:`, like PdtConfig and MarginConfig)."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            fail((), "must be a mapping, e.g. {flatten: false, global_cancel: true, file: var/KILL}")
        cfg = cls()
        for key, value in raw.items():
            if key not in cls.KEYS:
                fail((key,), f"unknown key; allowed: {', '.join(cls.KEYS)}")
            if key in ("flatten", "global_cancel", "signal", "console"):
                if not isinstance(value, bool):
                    fail((key,), f"must be true or false, got {value!r}")
                setattr(cfg, key, value)
            elif key == "file":
                if value is False or value is None:
                    cfg.file = None
                elif isinstance(value, str) and value.strip():
                    cfg.file = value.strip()
                else:
                    fail(("file",), f"must be a path (e.g. var/KILL) or false for no kill file, got {value!r}")
            elif key == "poll":
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.01 <= value <= 60:
                    fail(("poll",), f"must be a number of seconds between 0.01 and 60, got {value!r}")
                cfg.poll = float(value)
        return cfg

    def file_path(self, state_dir: str | Path) -> Path | None:
        if self.file is None:
            return None
        return Path(self.file) if self.file else Path(state_dir) / "KILL"


# --- cancelling a scope's working orders ----------------------------------------------------------------
def working(orders, scope: str = GLOBAL) -> list[Trade]:
    """The scope's orders not finished yet (GLOBAL: every open order this client knows)."""
    return [t for t in orders.open_trades() if scope == GLOBAL or t.strategy == scope]


def cancel_working(orders, scope: str = GLOBAL) -> list[Trade]:
    """Send a cancel for every working order of the scope; returns them. Dispatch thread.

    A bracket child whose parent is cancelled too and has not filled is left to TWS, which cancels it with
    its parent (no 10148 'already cancelled' noise); every other order gets its own cancelOrder.
    """
    trades = working(orders, scope)
    unfilled_parents = {t.order_id for t in trades if not t.filled}
    for trade in trades:
        if trade.order.parentId and trade.order.parentId in unfilled_parents:
            continue
        try:
            orders.cancel(trade)
        except Exception:                           # one failure must not leave the rest working
            log.exception("cancelling order %d failed", trade.order_id)
    return trades


def finish_orders(orders, on_dispatch: Callable, mode: str, connected: Callable[[], bool],
                  timeout: float = 5.0) -> list[Trade]:
    """`on_stop`: at the end of a run, cancel this client's working orders and wait for TWS to confirm
    ('cancel'), or leave them working and say which ('leave'). Runner thread (never the dispatch thread).
    Returns the orders still working afterwards."""
    left = on_dispatch(working, orders, GLOBAL)
    if not left:
        return []
    names = ", ".join(f"{t.order_id} {t.order.action} {quantity_text(t.remaining)} {t.contract.symbol}"
                      for t in left[:10]) + (" …" if len(left) > 10 else "")
    if mode == "leave":
        log.warning("on_stop: leave — %d order(s) keep working at the gateway after this run: %s", len(left), names)
        return left
    if not connected():
        log.error("on_stop: cancel — the connection is closed, so %d order(s) could not be cancelled and may still "
                  "be working at the gateway: %s; cancel them in TWS", len(left), names)
        return left
    on_dispatch(cancel_working, orders, GLOBAL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = on_dispatch(lambda: [t for t in left if not t.done])
        if not left:
            log.info("on_stop: cancel — every working order of this client is cancelled")
            return []
        time.sleep(QUIET_POLL)
    log.error("on_stop: cancel — TWS did not confirm the cancel of %d order(s) within %gs: %s; check them in TWS",
              len(left), timeout, ", ".join(str(t.order_id) for t in left))
    return left


# --- what a halt does ---------------------------------------------------------------------------------------
class Halting:
    """Cancels a scope's working orders when it turns HALTED; flattens on request.

    `strategies`: objects with `name`, `own_book` (holdings()) and `place(contract, order)` (the Strategy
    API: the order is the strategy's, goes through the risk gate, and lands in its trades and book).
    `post(fn, *args)` runs work on the dispatch thread; `call_later(delay, fn)` is the dispatcher's.
    """

    def __init__(self, states: TradingStates, orders, post: Callable, call_later: Callable,
                 strategies: Callable[[], Sequence]):
        self.states = states
        self.orders = orders
        self.post = post
        self.call_later = call_later
        self.strategies = strategies
        self.cancelled: dict[str, list[Trade]] = {}     # scope -> the orders its last halt cancelled
        self.flattening: list[Trade] = []
        states.listeners.append(self.on_event)

    def on_event(self, event: RiskEvent) -> None:
        d = event.details
        if event.kind == "state" and d.get("state") == TradingState.HALTED.value \
                and d.get("previous") != TradingState.HALTED.value:
            self.post(self.halt_orders, event.scope)

    def halt_orders(self, scope: str) -> list[Trade]:
        trades = [t for t in cancel_working(self.orders, scope) if t not in self.flattening]
        self.cancelled[scope] = trades
        if trades:
            where = "every working order of this client" if scope == GLOBAL else f"strategy {scope}'s working orders"
            log.warning("halted: cancelling %s (%d): %s", where, len(trades),
                        ", ".join(str(t.order_id) for t in trades))
        return trades

    def when_quiet(self, scope: str, then: Callable[[list[Trade]], None], wait: float = QUIET_WAIT) -> None:
        """Call then(still_working) once the scope has no working order but flatten ones, or after `wait` s."""
        deadline = time.monotonic() + wait

        def look():
            left = [t for t in working(self.orders, scope) if t not in self.flattening]
            if left and time.monotonic() < deadline:
                self.call_later(QUIET_POLL, look)
                return
            then(left)
        look()

    def flatten(self, scope: str) -> list[Trade]:
        """Market orders closing the scope's own positions (GLOBAL: every strategy's). Dispatch thread.

        Each one must pass the risk gate; a halt lets it through (exempt) only if the gate sees it reduce.
        Positions the account holds outside the strategies' own books are never touched."""
        placed = []
        for strategy in self.strategies():
            if scope != GLOBAL and strategy.name != scope:
                continue
            for holding in strategy.own_book.holdings().values():
                qty = holding.quantity
                if not qty:
                    continue
                contract = copy.copy(holding.contract)
                contract.exchange = contract.exchange or "SMART"
                order = market("SELL" if qty > 0 else "BUY", abs(qty))
                self.states.exempt(order)
                try:
                    trade = strategy.place(contract, order)
                except OrderRejected as exc:
                    self.states.release(order)
                    log.error("flatten of strategy %s: %s %s not sent: %s", strategy.name, order.action,
                              contract.symbol, exc)
                    continue
                except Exception:
                    self.states.release(order)
                    log.exception("flatten of strategy %s: %s %s failed", strategy.name, order.action, contract.symbol)
                    continue
                if trade.done and not trade.order_id:      # Strategy.place returns a refused order ended
                    self.states.release(order)
                    log.error("flatten of strategy %s: %s %s not sent: %s", strategy.name, order.action,
                              contract.symbol, trade.reason)
                    continue
                self.flattening.append(trade)
                placed.append(trade)
                log.warning("flatten: strategy %s %s %s %s at market (order %d)", strategy.name, order.action,
                            quantity_text(abs(qty)), contract.symbol, trade.order_id)
        return placed


# --- the kill switch ---------------------------------------------------------------------------------------
class KillSwitch:
    """Halt everything, cancel every working order, optionally flatten; from a signal, a file or a console.

    `request(source)` is safe from any thread and from a signal handler (it only posts); `kill(source)`
    does the work on the dispatch thread. `on_done(text)` runs once per kill when its cancels (and
    flatten) are confirmed or `QUIET_WAIT` passed, on the dispatch thread (the runner writes the
    acknowledgement for `--kill` from it, on a short-lived thread).
    """

    def __init__(self, config: KillConfig, states: TradingStates, halting: Halting, post: Callable,
                 call_every: Callable, global_cancel: Callable[[], None] | None = None,
                 kill_file: Path | None = None, on_done: Callable[[str], None] | None = None):
        self.config = config
        self.states = states
        self.halting = halting
        self.post = post
        self.call_every = call_every
        self.global_cancel = global_cancel
        self.kill_file = kill_file
        self.on_done = on_done
        self.kills = 0
        self.killed_at: float | None = None
        self._timer = None

    # --- from anywhere ---------------------------------------------------------------------------------
    def request(self, source: str) -> None:
        """Ask for a kill; returns at once (signal-handler safe: one queue put)."""
        self.post(self.kill, source)

    # --- on the dispatch thread ------------------------------------------------------------------------
    def kill(self, source: str) -> None:
        self.kills += 1
        now = self.states.now()
        self.killed_at = self.killed_at or now
        log.critical("KILL SWITCH (%s): halting all trading, cancelling every working order%s%s", source,
                     " and every order of the account (reqGlobalCancel)" if self.global_cancel else "",
                     ", then flattening" if self.config.flatten else "")
        was = self.states.entry(GLOBAL).state
        self.states.set(GLOBAL, TradingState.HALTED, f"kill switch from {source}", KILL_SOURCE)
        if was is TradingState.HALTED:              # already halted (an earlier kill, a margin halt): sweep again
            self.post(self.halting.halt_orders, GLOBAL)
        self.post(self._after_cancels, source, now)

    def _after_cancels(self, source: str, at: float) -> None:
        """Runs after the halt's cancels were sent (the queue is FIFO)."""
        if self.global_cancel is not None:
            try:
                self.global_cancel()
            except Exception:
                log.exception("reqGlobalCancel failed; this client's own orders were cancelled one by one")
        cancelled = self.halting.cancelled.get(GLOBAL, [])
        text = (f"kill switch from {source}: HALTED globally, {len(cancelled)} working order(s) of this client "
                f"cancelled" + (", reqGlobalCancel sent" if self.global_cancel else "")
                + (", flattening" if self.config.flatten else ""))
        self.states.emit(RiskEvent(at, "kill", GLOBAL, "kill_switch", text,
                                   {"source": source, "cancelled": [t.order_id for t in cancelled],
                                    "global_cancel": self.global_cancel is not None,
                                    "flatten": self.config.flatten}))
        self.halting.when_quiet(GLOBAL, lambda left: self._quiet(source, at, cancelled, left))

    def _quiet(self, source: str, at: float, cancelled: list[Trade], left: list[Trade]) -> None:
        flattened = self.halting.flatten(GLOBAL) if self.config.flatten else []
        took = self.states.now() - at
        text = (f"halted by {source}: {len(cancelled) - len(left)} of {len(cancelled)} working order(s) "
                f"cancelled in {took:.3f}s")
        if left:
            text += f"; NOT confirmed yet: {', '.join(str(t.order_id) for t in left)} (check them in TWS)"
        if self.config.flatten:
            text += f"; {len(flattened)} flatten order(s) sent"
        log.critical("%s", text)
        if self.on_done is not None:
            self.on_done(text)

    def _look_for_file(self) -> None:
        if self.kill_file is not None and self.kill_file.exists() and self.killed_at is None:
            self.kill(f"kill file {self.kill_file}")

    # --- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> "KillSwitch":
        """Refuse to start over an existing kill file; watch the file; take signals and console kills."""
        if self.kill_file is not None:
            if self.kill_file.exists():
                raise KillFileExists(f"the kill file {self.kill_file} exists: a kill was asked for and not cleared. "
                                     f"Delete it when it is safe to trade again, then start the run")
            self._timer = self.call_every(self.config.poll, self._look_for_file)
        if self.config.signal:
            SIGNALS.attach(self.request)
        if self.config.console:
            start_console(SIGNALS.request)
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        SIGNALS.detach(self.request)


class KillFileExists(RuntimeError):
    """A run may not start while the kill file is there."""


def install(engine, states: TradingStates, config: KillConfig, strategies: Callable[[], Sequence],
            state_dir: str | Path, on_done: Callable[[str], None] | None = None) -> KillSwitch:
    """Wire halting and the kill switch to an engine (its order manager, dispatcher and connection) and start
    it. Raises KillFileExists when the kill file is already there."""
    from ibapi.order_cancel import OrderCancel
    halting = Halting(states, engine.orders, engine.dispatcher.post, engine.dispatcher.call_later, strategies)
    global_cancel = (lambda: engine.conn.reqGlobalCancel(OrderCancel())) if config.global_cancel else None
    switch = KillSwitch(config, states, halting, engine.dispatcher.post, engine.dispatcher.call_every,
                        global_cancel, config.file_path(state_dir), on_done or acknowledge)
    return switch.start()


# --- signals and the console: they only post --------------------------------------------------------------
class _Requests:
    """The process's kill requests (signals are per process): held until a kill switch is attached."""

    def __init__(self):
        self.target: Callable[[str], None] | None = None
        self.pending: list[str] = []

    def request(self, source: str) -> None:
        target = self.target
        if target is None:
            self.pending.append(source)
        else:
            target(source)

    def handler(self, signum, _frame) -> None:
        self.request(signal.Signals(signum).name)

    def attach(self, target: Callable[[str], None]) -> None:
        self.target = target
        pending, self.pending = self.pending, []
        for source in pending:
            target(source)

    def detach(self, target: Callable[[str], None]) -> None:
        if self.target == target:
            self.target = None


SIGNALS = _Requests()


def install_signal():
    """SIGUSR1 -> kill (main thread only); returns the previous handler for `restore_signal`."""
    if not hasattr(signal, "SIGUSR1"):
        return None
    return signal.signal(signal.SIGUSR1, SIGNALS.handler)


def restore_signal(previous) -> None:
    if previous is not None and hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, previous)


_console_started = False


def start_console(request: Callable[[str], None]) -> None:
    """When stdin is a terminal: a daemon thread reading lines; `kill` asks for a kill."""
    global _console_started
    try:
        interactive = sys.stdin is not None and sys.stdin.isatty()
    except (ValueError, OSError):
        interactive = False
    if not interactive or _console_started:
        return
    _console_started = True

    def read():
        for line in sys.stdin:
            word = line.strip().lower()
            if word == "kill":
                request("console")
            elif word:
                print("type 'kill' + Enter to halt all trading and cancel every working order (Ctrl-C stops the run)",
                      file=sys.stderr)
    threading.Thread(target=read, name="ibframe-kill-console", daemon=True).start()
    log.info("kill switch: type 'kill' + Enter here to halt and cancel everything")


# --- pid files: how `--kill` finds a run ---------------------------------------------------------------------
RUNS = "runs"
_pid_file: Path | None = None


def write_pid_file(state_dir: str | Path, config_path: str | Path, client_id: int) -> Path:
    """STATE_DIR/runs/PID.json naming this run's config; `--kill` reads it. Removed by `remove_pid_file`."""
    global _pid_file
    folder = Path(state_dir) / RUNS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{os.getpid()}.json"
    path.write_text(json.dumps({"pid": os.getpid(), "config": str(Path(config_path).resolve()),
                                "client_id": client_id, "started": time.time()}))
    _ack_path(path).unlink(missing_ok=True)
    _pid_file = path
    return path


def remove_pid_file(path: Path | None) -> None:
    global _pid_file
    if path is None:
        return
    for p in (path, _ack_path(path)):
        try:
            p.unlink(missing_ok=True)
        except OSError:
            pass
    if _pid_file == path:
        _pid_file = None


def _ack_path(pid_file: Path) -> Path:
    return pid_file.with_suffix(".killed")


def acknowledge(text: str) -> None:
    """Tell a waiting `--kill` what the kill did (written by a short-lived thread: the caller never waits)."""
    path = _pid_file
    if path is None:
        return

    def write():
        try:
            tmp = path.with_suffix(".killed.tmp")
            tmp.write_text(text)
            tmp.replace(_ack_path(path))
        except OSError as exc:
            log.error("could not write the kill acknowledgement %s: %s", _ack_path(path), exc)
    threading.Thread(target=write, name="ibframe-kill-ack", daemon=True).start()


def _is_ibframe_run(pid: int) -> bool:
    """Alive, and (where /proc tells) a Python process running ibframe: never signal a recycled pid."""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.parent.exists():
        try:
            return b"ibframe" in cmdline.read_bytes()
        except OSError:
            return False
    return True


def find_runs(state_dir: str | Path) -> list[tuple[Path, dict]]:
    """(pid file, its content) of every live ibframe run with a pid file under STATE_DIR; stale files removed."""
    folder = Path(state_dir) / RUNS
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            info = json.loads(path.read_text())
            pid = int(info["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _is_ibframe_run(pid):
            found.append((path, info))
        else:
            remove_pid_file(path)
    return found


def kill_command(state_dir: str | Path, config_path: str | Path, wait: float = 10.0) -> tuple[int, str]:
    """`python -m ibframe.run CONFIG --kill`: SIGUSR1 every live run of CONFIG, wait for each to confirm.
    Returns (exit code, message): 0 all confirmed; 1 no run found or a run did not confirm."""
    config = str(Path(config_path).resolve())
    runs = find_runs(state_dir)
    mine = [(p, i) for p, i in runs if i.get("config") == config]
    if not mine:
        others = "; ".join(f"pid {i['pid']} ({i.get('config')})" for _, i in runs)
        return 1, (f"no running ibframe run of {config_path} found (no live pid file under {Path(state_dir) / RUNS})"
                   + (f"; runs of other configs there: {others}" if others else "")
                   + ". Nothing was signalled. If a run is live elsewhere, create its kill file or send it SIGUSR1")
    started = time.monotonic()
    for path, info in mine:
        _ack_path(path).unlink(missing_ok=True)
        os.kill(int(info["pid"]), signal.SIGUSR1)
    lines, code = [], 0
    for path, info in mine:
        ack = _ack_path(path)
        while not ack.exists() and time.monotonic() - started < wait:
            time.sleep(0.02)
        if ack.exists():
            lines.append(f"run pid {info['pid']}: {ack.read_text().strip()}")
        else:
            code = 1
            lines.append(f"run pid {info['pid']} was sent SIGUSR1 but did not confirm within {wait:g}s: check its log "
                         f"and TWS for working orders")
    return code, "\n".join(lines)
