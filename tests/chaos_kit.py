"""The chaos runs' kit (tests/test_chaos.py): a strategy that trades non-stop, the simulator's truth, the fault
plan, and the runner as a process that gets killed.

- `ChaosTrader`: trades AAPL all the time (market orders of 1-3 shares, buy and sell in turn, and resting limit
  buys 5% under the bid, the oldest cancelled), counts what the risk layer refused by rule, writes down every
  on_fill call and every piece of market data that reached it. Loaded by `python -m ibframe.run` as
  `chaos_kit:ChaosTrader` (tests/ on PYTHONPATH) and used in-process by a Runner.
- `SimTruth`: what the simulated gateway itself did for one client: its executions, its order table, and every
  error it sent (an output tap), read on the gateway's loop.
- `fault_plan`: the seeded order of the 100 scripted faults.
- `RunnerProcess`: `python -m ibframe.run` as a subprocess with its log in a file, killed with SIGKILL.

Must never: mock ibapi or a socket, or touch the framework's private state (only public attributes and hooks).
"""
from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from ibapi import server_versions as sv
from ibapi.message import IN

from ibframe.risk.base import RiskRejected
from ibframe.strategy import Strategy
from ibframe.trading.orders import limit

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = Path(__file__).with_name("data") / "chaos.yaml"
ID_ERRORS = (103, 104, 105)           # duplicate order id, modify of a filled order, a changed order: id reuse


# --- the strategy --------------------------------------------------------------------------------------------

class ChaosTrader(Strategy):
    """Params: every (seconds between orders, 0.2), resting (limit orders kept working, 2), subscribe (of quote,
    depth, ticks, bars), trade (false: subscribe only)."""

    def on_start(self):
        p = self.params
        self.instrument = next(iter(self.instruments))
        wanted = set(p.get("subscribe", ["quote"]))
        self.quote_obj = self.quote(self.instrument)
        self.book = self.depth(self.instrument, rows=5) if "depth" in wanted else None
        self.tick_ring = self.ticks(self.instrument, "BidAsk") if "ticks" in wanted else None
        self.bars_obj = self.bars(self.instrument, "1 min", "1800 S") if "bars" in wanted else None
        self.trading = bool(p.get("trade", True))
        self.max_resting = int(p.get("resting", 2))
        self.up = True
        self.step = 0
        self.seen: collections.Counter = collections.Counter()     # data that reached the strategy, by kind
        self.fill_calls: list[str] = []                            # execId of every on_fill call, in order
        self.refused: collections.Counter = collections.Counter()  # risk refusals by rule
        self.refused_while_up: list[str] = []                      # refusals other than for a lost link
        self.resting: list = []
        self.events: list[tuple] = []
        self.schedule(float(p.get("every", 0.2)))

    # data
    def on_quote(self, instrument, quote):
        self.seen["quote"] += 1

    def on_depth(self, instrument, book):
        self.seen["depth"] += 1

    def on_tick(self, instrument, ticks):
        self.seen["ticks"] += 1

    def on_bar(self, instrument, bars):
        self.seen["bars"] += 1

    # trading
    def on_timer(self):
        q = self.quote_obj
        if not self.trading or q.bid is None or q.ask is None:
            return
        self.step += 1
        quantity = 1 + (self.step // 2) % 3
        self.attempt(self.buy if self.step % 2 else self.sell, self.instrument, quantity)
        if self.step % 3 == 0:
            self.rest()

    def rest(self):
        """One more limit buy 5% under the bid (it keeps working); over the limit, cancel the oldest."""
        self.resting = [t for t in self.resting if not t.done]
        if self.up and len(self.resting) >= self.max_resting:
            self.cancel(self.resting.pop(0))
        price = round(self.quote_obj.bid * 0.95 - 0.01 * (self.step % 40), 2)
        trade = self.attempt(self.place, self.instrument, limit("BUY", 1, price))
        if trade is not None:
            self.resting.append(trade)

    def attempt(self, fn, *args):
        try:
            return fn(*args)
        except RiskRejected as exc:
            self.refused[exc.refusal.rule] += 1
            if exc.refusal.rule not in ("connection", "stale_data"):   # down, or a farm (quotes stale) down
                self.refused_while_up.append(str(exc))
            return None

    def fire(self) -> int:
        """Orders in flight now (the test cuts the line right after): a market buy and a resting buy."""
        before = len(self.trades)
        if self.quote_obj.ask is not None:
            self.attempt(self.buy, self.instrument, 1)
            self.rest()
        return len(self.trades) - before

    def on_fill(self, trade, fill):
        self.fill_calls.append(fill.exec_id)

    def on_disconnected(self, reason):
        self.up = False
        self.events.append(("down", reason, self.now()))

    def on_reconnected(self, down_for):
        self.up = True
        self.events.append(("up", down_for, self.now()))


# --- the simulator's truth -----------------------------------------------------------------------------------

class SimTruth:
    """What the gateway did for one client. Reads run on the gateway's loop (`gw.call`); the broker object is
    looked up each time (a restart of the gateway builds a new one)."""

    def __init__(self, gw, client_id: int):
        self.gw, self.client_id = gw, client_id
        self.errors: list[tuple[int, int, str]] = []        # (reqId, code, text) the gateway sent this client
        gw.taps.append(self._tap)

    def _tap(self, session, fields) -> None:
        if session.client_id != self.client_id or not fields or fields[0] != IN.ERR_MSG:
            return
        at = 1 if session.version >= sv.MIN_SERVER_VER_ERROR_TIME else 2
        self.errors.append((int(fields[at]), int(fields[at + 1]), str(fields[at + 2])))

    def id_errors(self) -> list[tuple[int, int, str]]:
        return [e for e in self.errors if e[1] in ID_ERRORS]

    def executions(self) -> list[tuple[int, str]]:
        """(orderId, execId) of every execution the gateway made for this client, in order."""
        gw, cid = self.gw, self.client_id
        return gw.call(lambda: [(r.order.orderId, r.execution.execId) for r in gw.broker.executions
                                if r.order.clientId == cid])

    def orders(self) -> dict[int, tuple]:
        """orderId -> (status, filled, action, quantity, type, limit price) of every order the gateway accepted
        from this client (live and done)."""
        gw, cid = self.gw, self.client_id

        def read():
            out = {}
            for lo in gw.broker.orders.values():
                o = lo.order
                if o.clientId == cid:
                    if o.orderId in out:
                        raise AssertionError(f"the gateway holds order id {o.orderId} of client {cid} twice")
                    out[o.orderId] = (lo.status, float(lo.filled), o.action, float(o.totalQuantity), o.orderType,
                                      o.lmtPrice)
            return out
        return gw.call(read)

    def subscriptions(self) -> dict[str, set[int]]:
        """kind -> request ids of the streams the gateway serves this client right now."""
        gw, cid = self.gw, self.client_id

        def read():
            session = gw.sessions.get(cid)
            out: dict[str, set[int]] = collections.defaultdict(set)
            if session is not None and not session.closed:
                for kind, req_id in session.subscriptions:
                    out[kind].add(req_id)
            return dict(out)
        return gw.call(read)

    def connected(self) -> bool:
        gw, cid = self.gw, self.client_id
        return gw.call(lambda: cid in gw.sessions and not gw.sessions[cid].closed)


# --- the fault plan ------------------------------------------------------------------------------------------

# kind -> (how many, outages each); 100 outages in all
FAULT_MIX = {
    "drop": (22, 1),               # the socket is cut
    "restart": (12, 1),            # the gateway restarts (state kept, port closed for a short pause)
    "lost_1101": (13, 1),          # 1100, then 1101 (data lost: resubscribe market data)
    "lost_1102": (11, 1),          # 1100, then 1102 (data maintained: the same lines resume)
    "lost_timed": (8, 1),          # 1100 that the gateway ends itself after 0.3 s, with 1101 or 1102
    "drop_in_reconcile": (8, 2),   # a drop, and another drop the moment the reconnect's reconciliation begins
    "lost_then_drop": (6, 1),      # 1100, the socket drops while IB is away, 1101 after the reconnect
    "drop_in_flight": (7, 1),      # orders placed, the socket cut right after (before any answer)
    "restart_in_flight": (5, 1),   # orders placed, the gateway restarts right after
}


def fault_plan(seed: int) -> list[str]:
    """The faults in a seeded random order; their outages add up to 100."""
    plan = [kind for kind, (n, _) in FAULT_MIX.items() for _ in range(n)]
    random.Random(seed).shuffle(plan)
    assert sum(FAULT_MIX[k][1] for k in plan) == 100
    return plan


def median(values: list[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


# --- the runner as a process ---------------------------------------------------------------------------------

def write_config(folder: Path, name: str, port: int, client_id: int, state_dir: Path, **params) -> Path:
    """The chaos YAML (tests/data/chaos.yaml) for a gateway at 127.0.0.1:port, with strategy params changed."""
    raw = yaml.safe_load(TEMPLATE.read_text())
    raw["strategy"]["params"].update(params)
    raw["gateway"] = {"host": "127.0.0.1", "port": port, "client_id": client_id}
    raw["state_dir"] = str(state_dir)
    path = folder / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@dataclass
class RunnerProcess:
    """`python -m ibframe.run CONFIG` in its own process; stderr (the log) goes to `log_path` line by line."""
    config: Path
    log_path: Path
    proc: subprocess.Popen | None = None
    lines: list[str] = field(default_factory=list)
    started_at: float = 0.0
    _reader: threading.Thread | None = None
    _summary: threading.Thread | None = None

    def start(self) -> "RunnerProcess":
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "ibframe.run", str(self.config)], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._summary = threading.Thread(target=self.proc.stdout.read, daemon=True)   # the summary: never blocks it
        self._summary.start()
        return self

    def _read(self) -> None:
        with open(self.log_path, "w") as out:
            for line in iter(self.proc.stderr.readline, ""):
                self.lines.append(line)
                out.write(line)
                out.flush()

    def saw(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def text(self) -> str:
        return "".join(list(self.lines))

    def kill9(self) -> int:
        self.proc.send_signal(signal.SIGKILL)
        return self.finish()

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.finish()

    def finish(self, timeout: float = 60) -> int:
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
            for thread in (self._reader, self._summary):
                if thread is not None:
                    thread.join(10)
            self.proc.stdout.close()
            self.proc.stderr.close()
        return code
