"""The replay's runner and its Python API: `replay()`, `prepare()`, `ReplayResult`.

Owns: the live Runner with a recording for a gateway (`ReplayRunner`), running one replay on recorded
time (`run_prepared`), and what a replay reports (`ReplayResult`). Must never: reach a real gateway.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ibapi.server_versions import (MAX_CLIENT_VER, MIN_CLIENT_VER)

from ..config import GatewayConfig, RunConfig, load_config
from ..connection import ConnectError
from ..dispatch import VirtualClock
from ..engine import Engine
from ..ids import OrderIds
from ..journal import JournalConfig
from ..recorded_time import recorded_time
from ..record import START_API, Event, Recording, RecordingError
from ..run import Runner, RunError
from ..strategy import Strategy
from .connection import ReplayConnection
from .feeder import Feeder, ReplayDispatcher, ReplayError, Sent, describe_event, parse_speed
from .paper_fills import EASTERN, PaperFills



# --- the runner and the Python API -------------------------------------------------------------------------------

@dataclass
class ReplayResult:
    """What a replay did: its strategies (their trades and state), every message it sent, and what went wrong."""
    recording: Recording
    strategies: list[Strategy]
    engine: Engine
    sent: list[Sent]
    frames: int                          # recorded frames delivered
    skipped: int                         # recorded order answers left out (fills="simulated")
    synthesized: int                     # frames made by the simulated fills
    damage: RecordingError | None
    problems: list[str] = field(default_factory=list)
    divergences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def orders(self) -> list[Sent]:
        """placeOrder / cancelOrder / reqGlobalCancel messages, in order, byte for byte."""
        return [s for s in self.sent if s.is_order]

    @property
    def recorded_orders(self) -> list[Event]:
        return self.recording.orders

    def strategy(self, name: str | None = None) -> Strategy:
        if name is None:
            return self.strategies[0]
        return next(s for s in self.strategies if s.name == name)

    def report(self) -> str:
        rec = self.recording
        when = ""
        if rec.header.wall is not None:
            start = dt.datetime.fromtimestamp(rec.header.wall, EASTERN)
            when = f" (recorded {start:%Y-%m-%d %H:%M:%S} New York)"
        lines = [f"replayed {rec.path}{when}: {self.frames} frames"
                 + (f" ({self.skipped} recorded order answers left out, {self.synthesized} simulated)"
                    if self.skipped or self.synthesized else "")
                 + f", {len(self.orders)} order messages (recorded: {len(rec.orders)})"]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"divergence: {d}" for d in self.divergences]
        lines += [f"problem: {p}" for p in self.problems]
        if self.damage is not None:
            lines.append(f"damaged recording: replayed up to line {(self.damage.line or 2) - 1}, then stopped: "
                         f"{self.damage}")
        return "\n".join(lines)


class ReplayRunner(Runner):
    """The live Runner with a recording for a gateway: same setup, same requests, same stop."""

    live = False                   # rails as live (risk layer, journal in a temporary folder); no kill file or signal

    def __init__(self, cfg: RunConfig, recording: Recording, fills: str = "recorded", speed: float | None = None,
                 quiet: bool = True):
        if fills not in ("recorded", "simulated"):
            raise ValueError(f"fills must be 'recorded' or 'simulated', got {fills!r}")
        # the journal makes the same requests as live (its reqExecutions reconcile), into a throwaway file
        self.journal_dir = tempfile.TemporaryDirectory(prefix="ibframe-replay-")
        journal = cfg.journal or JournalConfig()
        if journal.enabled:
            # simulated fills happen where the live run had none: a snapshot of their NBBO would be a request
            # the recording never made (and no answer would come); the live lines' quotes still count
            journal = dataclasses.replace(journal, path=str(Path(self.journal_dir.name) / "journal.sqlite"),
                                          nbbo_snapshots=journal.nbbo_snapshots and fills == "recorded")
        super().__init__(dataclasses.replace(cfg, record=None, journal=journal))
        self.recording = recording
        self.fills_mode = fills
        self.speed = speed
        self.quiet = quiet
        self.feeder: Feeder | None = None
        self.fills: PaperFills | None = None

    def connect_replay(self, supervisor) -> None:
        """The recorded socket losses and reconnects drive the supervisor: the same resubscriptions and
        reconciliation requests go out at the same points of the session as they did live."""
        self.feeder.mark_handlers.update({"connection_lost": supervisor.socket_lost,
                                          "reconnected": supervisor.reconnected})

    def journal_past(self):
        """The live run's answers to what it read back from its journal at start (its last execution, the PDT
        window's executions), from the recording: the same reconciliation request and day-trade count. None for a
        recording made before ibframe kept them: the replay's empty journal answers, and may diverge there."""
        from ..journal.readback import MARK, Replayed
        mark = self.recording.mark_data.get(MARK)
        return Replayed(mark) if mark is not None else None

    def leftover_check_due(self) -> bool:
        """Only where the live run made it (its requests are in the recording)."""
        return "leftovers" in self.recording.marks

    def start_gateway(self) -> GatewayConfig:
        h = self.recording.header
        return GatewayConfig(kind="replay", host=h.host or "replay", port=h.port, client_id=h.client_id)

    def make_engine(self, gw: GatewayConfig) -> Engine:
        rec = self.recording
        clock = VirtualClock(rec.header.wall if rec.header.wall is not None else 0.0)
        feeder = Feeder(rec, clock, self.speed)
        clock.source = feeder
        dispatcher = ReplayDispatcher(clock, feeder)
        order_ids = OrderIds()
        if rec.first_order_id is not None:
            order_ids.seed(rec.first_order_id)
        engine = Engine.replaying(lambda router, disp: ReplayConnection(router, disp, feeder), clock, dispatcher,
                                  gw.client_id, order_ids)
        engine.host, engine.port = gw.host, gw.port
        feeder.bind(dispatcher, engine.conn, engine.router)
        if self.fills_mode == "simulated":
            self.fills = PaperFills(engine, feeder, rec)
            engine.conn.fills = self.fills
            feeder.drop, feeder.after_frame = self.fills.drops, self.fills.check_all
        self.feeder = feeder
        return engine

    def play(self, timeout: float | None = None) -> None:
        """Run the strategies through the recording, up to its stop mark or its end."""
        self.feeder.set_phase("play")
        if not self.feeder.wait_idle("play", timeout):
            raise ReplayError(f"replay of {self.recording.path} did not finish within {timeout:g}s")

    def settle(self) -> None:
        if self.feeder is not None:
            self.feeder.set_phase("drain")
            self.feeder.wait_idle("drain")

    def print_summary(self) -> None:
        if not self.quiet:
            super().print_summary()

    def result(self) -> ReplayResult:
        f = self.feeder
        rec = self.recording
        result = ReplayResult(rec, self.strategies, self.engine, list(f.sent), f.delivered, f.skipped,
                              f.synthesized, rec.damage, list(f.problems), list(f.divergences))
        recorded = rec.requests
        replayed = [s for i, s in enumerate(f.sent) if not s.is_order and not
                    (s.msg_id == START_API and any(p.msg_id == START_API for p in f.sent[:i]))]
        for i, (r, s) in enumerate(zip(recorded, replayed), 1):
            want = r.fields if r.fields is not None else (list(r.raw) if r.raw is not None else None)
            got = s.fields if r.fields is not None else list(s.payload)
            if want is not None and want != got:
                result.divergences.append(f"request #{i} differs: recorded (line {r.line}) {describe_event(r)}; "
                                          f"replay sent {s}")
                break
        if rec.damage is None and len(recorded) != len(replayed):
            result.divergences.append(f"the recording sent {len(recorded)} requests, the replay {len(replayed)}")
        if not rec.complete and rec.damage is None:
            result.notes.append("the recording has no closing 'end' line (hand-written, or cut off at a flush)")
        return result


def check_version(rec: Recording) -> None:
    """ReplayError when the installed ibapi cannot decode the recording's server version."""
    v = rec.header.server_version
    if not MIN_CLIENT_VER <= v <= MAX_CLIENT_VER:
        raise ReplayError(f"{rec.path}: recorded at server version {v}, which this ibapi's Decoder does not know "
                          f"(ibapi {rec.header.ibapi or '?'} recorded it; the installed one decodes versions "
                          f"{MIN_CLIENT_VER}..{MAX_CLIENT_VER}); replay it with a matching ibapi")


def replay(recording: str | Path | Recording, config: str | Path | RunConfig, *, fills: str = "recorded",
           speed: str | float | None = "max", quiet: bool = True, timeout: float | None = None) -> ReplayResult:
    """Replay `recording` into the strategies of `config` (a YAML path or a RunConfig); see ReplayResult.

    Raises ReplayError when the recording cannot be replayed at all (no header, unknown server
    version) or the run cannot set up; damage part-way is reported in `result.damage`.
    """
    return run_prepared(prepare(recording, config, fills=fills, speed=speed, quiet=quiet), timeout)


def prepare(recording: str | Path | Recording, config: str | Path | RunConfig, *, fills: str = "recorded",
            speed: str | float | None = "max", quiet: bool = True) -> ReplayRunner:
    """The runner `replay` uses, before it starts (for callers that want to interrupt it)."""
    try:
        rec = recording if isinstance(recording, Recording) else Recording(recording)
    except RecordingError as exc:
        raise ReplayError(str(exc)) from None
    check_version(rec)
    cfg = config if isinstance(config, RunConfig) else load_config(config)
    return ReplayRunner(cfg, rec, fills, parse_speed(speed), quiet)


def run_prepared(runner: ReplayRunner, timeout: float | None) -> ReplayResult:
    """Set up, play and stop one replay; its log lines carry the recorded time (recorded_time.py)."""
    rec = runner.recording
    with recorded_time(lambda: runner.feeder.clock.now() if runner.feeder is not None else None):
        try:
            try:
                runner.start()
            except (RunError, ConnectError) as exc:
                where = f" (the recording is damaged: {rec.damage})" if rec.damage else ""
                raise ReplayError(f"replay of {rec.path} could not set up: {exc}{where}") from None
            runner.play(timeout)
        finally:
            runner.stop()
    return runner.result()
