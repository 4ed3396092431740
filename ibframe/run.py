"""`python -m ibframe.run strategy.yaml`: run strategies against the simulator or a real TWS.

Owns: the process lifecycle — read config, start the embedded simulator when asked, connect,
qualify instruments, start strategies, run for the duration or until Ctrl-C, stop cleanly and
print what happened (the summary, then the path of the run's HTML report, ibframe.report, when the
journal is on). The only place that wires the simulator to the framework.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from .config import ConfigError, GatewayConfig, RunConfig, gateway_option, load_config, parse_duration
from .connection import ConnectError
from .contracts import ContractError, label
from . import gc_policy
from .engine import Engine
from .journal import JournalError, tca
from .journal.readback import MARK as READ_BACK_MARK
from .params import check_params
from .rails import Rails
from .record import Recorder
from .resilience import ConnectionConfig, ConnectionSupervisor
from .trading.leftovers import LeftoverPolicy, check_leftovers, leftover_summary
from .risk import kill
from .risk.kill import KillFileExists
from .strategy import Strategy
from .trading.books import multiplier
from .trading.trade import quantity_text

log = logging.getLogger("ibframe.run")


class RunError(RuntimeError):
    """A problem that stops the run before trading; printed as one line, exit code 2."""


class RunLost(RuntimeError):
    """The connection ended the run (the supervisor gave up, or reconnect is off); exit code 3."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ibframe run", description="Run ibframe strategies from a YAML file.")
    p.add_argument("config", help="strategy YAML (see config/)")
    p.add_argument("--duration", help="stop after this long, e.g. 60s, 5m (default: the config's, else Ctrl-C)")
    p.add_argument("--gateway", help="'sim' (embedded simulator) or HOST:PORT of TWS / IB Gateway")
    p.add_argument("--client-id", type=int, help="TWS API client id (default: the config's, else 1)")
    p.add_argument("--record", metavar="PATH", help="record the session to PATH (JSON Lines, gzip when it ends "
                                                    "in .gz) for python -m ibframe.replay")
    p.add_argument("--kill", action="store_true", help="kill switch: halt the running run of this config (SIGUSR1 "
                                                       "through its pid file), cancel its working orders, and exit")
    return p


def load_strategy_class(class_path: str):
    module_name, _, class_name = class_path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RunError(f"strategy class {class_path}: cannot import module {module_name!r} ({exc}); run from the "
                       f"project folder or put the module on PYTHONPATH") from None
    except Exception as exc:                   # the module itself failed: name the failure, not a traceback
        raise RunError(f"strategy class {class_path}: importing {module_name} failed: {type(exc).__name__}: "
                       f"{exc}") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise RunError(f"strategy class {class_path}: {module_name} has no Strategy subclass named {class_name!r}")
    return cls


def checked_params(cls, scfg, source: str) -> dict:
    """The strategy's params through its `Params` schema (ibframe.params), before anything connects."""
    try:
        return check_params(cls, scfg, source)
    except ConfigError as exc:
        raise RunError(str(exc)) from None


class Runner:
    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.sim = None
        self.engine: Engine | None = None
        self.strategies: list[Strategy] = []
        self.stop_requested = threading.Event()
        self.recorder: Recorder | None = None
        self.marks: dict[int, float] = {}       # conId -> mid of its live quote when the stop began
        self.rails: Rails | None = None          # journal, risk layer, kill switch (ibframe.rails)
        self.leftovers = None                     # what became of an earlier run's working orders (LeftoverReport)
        self.supervisor: ConnectionSupervisor | None = None   # reconnects (live runs only)
        self.lost: str | None = None             # why the connection ended the run (exit code 3)
        self._gc_settled = False                 # gc_policy.settle ran at start: release it at stop
        self.started_at: float | None = None     # wall time start() began: the report's window and folder name

    def start_gateway(self) -> GatewayConfig:
        gw = self.cfg.gateway
        if gw.kind != "sim":
            return gw
        from .sim import SimConfig, SimGateway          # the runner alone wires the simulator in
        from .sim.market.hours import start_time
        from .sim.market.universe import UniverseError
        try:
            self.sim = SimGateway(SimConfig(port=0, seed=self.cfg.sim.seed, speed=self.cfg.sim.speed,
                                            universe=self.cfg.sim.universe, any_symbol=True,   # any strategy's symbols
                                            start_time=start_time(self.cfg.sim.start))).start()
        except UniverseError as exc:
            raise RunError(str(exc)) from None
        log.info("embedded simulated gateway on 127.0.0.1:%d (seed %d)", self.sim.port, self.cfg.sim.seed)
        return GatewayConfig(kind="sim", host="127.0.0.1", port=self.sim.port, client_id=gw.client_id)

    def start(self) -> None:
        self.started_at = time.time()
        classes = [load_strategy_class(s.class_path) for s in self.cfg.strategies]
        params = [checked_params(cls, s, self.cfg.source) for cls, s in zip(classes, self.cfg.strategies)]
        gw = self.start_gateway()
        self.engine = self.make_engine(gw)
        if self.cfg.record:
            self.recorder = Recorder(self.cfg.record).attach(self.engine.conn)
            log.info("recording the session to %s", self.cfg.record)
        self.connect()
        for scfg, cls, checked in zip(self.cfg.strategies, classes, params):
            instruments = {}
            for name, contract in scfg.instruments.items():
                try:
                    instruments[name] = self.engine.qualify(contract)
                except (ContractError, TimeoutError) as exc:
                    why = str(exc) or "no answer from the gateway in time"
                    raise RunError(f"{self.cfg.source}: strategy {scfg.name}: instrument {name}: {why}") from None
            self.strategies.append(cls(self.engine, scfg.name, checked, instruments))
        for strategy in self.strategies:          # on this thread: blocking look-ups are allowed in on_init
            try:
                strategy.on_init()
            except Exception as exc:
                raise RunError(f"strategy {strategy.name} failed in on_init: {type(exc).__name__}: {exc}") from None
        self.install_rails()                      # journal, risk layer, kill switch: before any strategy starts
        self.install_supervisor()                 # reconnect, resubscribe, reconcile (live runs)
        self.engine.subscribe_account()
        self.check_leftovers()                    # an earlier run's working orders: before any strategy may trade
        self.before_strategies_start()
        for strategy in self.strategies:
            try:
                self.engine.on_dispatch(strategy._start)
            except Exception as exc:
                raise RunError(f"strategy {strategy.name} failed in on_start: {type(exc).__name__}: {exc}") from None
            log.info("strategy %s started on %s", strategy.name, ", ".join(strategy.instruments))
        self.mark("started")
        gc_state = gc_policy.settle(self.cfg.gc)       # start-up is done: what lives now is frozen out of the collector
        self._gc_settled = True
        log.debug("garbage collector: policy %s, %d objects frozen, thresholds %s", self.cfg.gc, gc_state.frozen,
                  gc_state.thresholds)

    def before_strategies_start(self) -> None:
        """For subclasses: the rails, the account and the leftover check are done, no strategy has started yet
        (a sweep starts its equity sampler here). Nothing by default."""

    def check_leftovers(self) -> None:
        """Working orders an earlier run left under this client id: cancelled, adopted or left by `orders:
        {leftovers: …}` (ibframe.trading.leftovers); reported in the log, the journal and the summary. A replay
        plays it where the live run did (a recording made before the check has none)."""
        if not self.leftover_check_due():
            return
        self.mark("leftovers")
        policy = LeftoverPolicy(self.cfg.leftovers, {s.name: s.leftovers for s in self.cfg.strategies if s.leftovers})
        events = [self.rails.risk.emit] if self.rails is not None else []
        self.leftovers = check_leftovers(self.engine, self.strategies, policy, on_event=events)

    def leftover_check_due(self) -> bool:
        return True

    FIRST_CONNECT_ATTEMPTS = 8                   # 326 at start: about 90 s of backoff with the default delays

    def connect(self) -> None:
        """The first connection. TWS may still hold the client id of a run that just died (326, its socket not
        yet noticed dead): a live run waits and retries as `connection.client_id_in_use` says, a bounded number
        of times; any other refusal stops the run at once (exit code 2) with what to check."""
        cfg = self.cfg.connection or ConnectionConfig()
        delays = cfg.delays()
        limit = min(cfg.give_up_after or self.FIRST_CONNECT_ATTEMPTS, self.FIRST_CONNECT_ATTEMPTS)
        spares = [i for i in cfg.spare_client_ids if i != self.engine.client_id]
        for attempt in range(1, limit + 1):
            try:
                self.engine.start()
                return
            except ConnectError as exc:
                if not self.live or "326" not in str(exc) or attempt == limit:
                    raise RunError(str(exc) + (f" (after {attempt} attempts)" if attempt > 1 else "")) from None
                used = self.engine.client_id
                if cfg.client_id_in_use == "next" and spares:
                    self.engine.client_id = spares.pop(0)
                    log.warning("client id %d is in use at %s:%d (326); trying client id %d", used,
                                self.engine.host, self.engine.port, self.engine.client_id)
                    self.engine.router.connection_opened()
                    continue
                delay = next(delays, 1.0)
                log.warning("client id %d is in use at %s:%d (326; TWS may still hold a run that just ended); "
                            "retrying in %.1fs (attempt %d of %d)", used, self.engine.host, self.engine.port,
                            delay, attempt, limit)
                time.sleep(delay)
                self.engine.router.connection_opened()

    def install_rails(self) -> None:
        """The safety rails on the connected engine (a replay overrides `live`: no journal or kill file)."""
        try:
            self.rails = Rails.install(self.engine, self.cfg, lambda: self.strategies, live=self.live,
                                       past=self.journal_past())
        except (JournalError, KillFileExists) as exc:
            raise RunError(str(exc)) from None
        if self.rails.read_back is not None:       # a replay of this recording reads back the same
            self.mark(READ_BACK_MARK, **self.rails.read_back)

    def journal_past(self):
        """What answers the start-up read-back from the journal (journal/readback.py): None, the journal itself
        (a replay gives the live run's answers)."""
        return None

    def install_supervisor(self) -> None:
        """The connection supervisor, telling each strategy (with its on_disconnect policy) what happens."""
        for strategy, scfg in zip(self.strategies, self.cfg.strategies):
            strategy.cancel_after_disconnect = scfg.on_disconnect
        self.supervisor = ConnectionSupervisor(self.engine, self.cfg.connection or ConnectionConfig())
        self.supervisor.install(reconnect_thread=self.live)      # a replay plays the recorded reconnects instead
        if self.recorder is not None:
            self.supervisor.mark = self.mark
        self.connect_replay(self.supervisor)
        self.supervisor.disconnected_hooks.append(lambda reason: [s._disconnected(reason) for s in self.strategies])
        self.supervisor.reconnected_hooks.append(lambda down_for: [s._reconnected(down_for) for s in self.strategies])

    def connect_replay(self, supervisor: ConnectionSupervisor) -> None:
        """A replay hands the recorded connection marks to the supervisor (ReplayRunner); live: nothing."""

    live = True                                   # a live run (ReplayRunner: False)

    def make_engine(self, gw: GatewayConfig) -> Engine:
        """The engine for this run (ibframe.replay builds one fed by a recording instead)."""
        self.make_state_dir()                     # the order-id file lives there
        id_file = f"order-ids-sim-{gw.client_id}.txt" if gw.kind == "sim" else None   # the sim's port is random
        connection = self.cfg.connection or ConnectionConfig()
        engine = Engine(gw.host, gw.port, gw.client_id, state_dir=self.cfg.state_dir, id_file=id_file,
                        writer_limit=connection.max_messages_per_second, pacing=self.cfg.pacing or True)
        engine.orders.ack_timeout = self.cfg.ack_timeout
        engine.conn.lag_warning = connection.lag_warning
        return engine

    def mark(self, name: str, **info) -> None:
        """Name a point of the run in the recording (with `info`, plain JSON), if one is being made."""
        if self.recorder is not None:
            self.recorder.mark(name, **info)

    def settle(self) -> None:
        """Let the last fills and statuses arrive after the strategies stopped."""
        time.sleep(0.2)

    def wait(self, duration: float | None) -> None:
        deadline = None if duration is None else time.monotonic() + duration
        while not self.stop_requested.is_set():
            if self.supervisor is not None and self.supervisor.gave_up.is_set():
                self.lost = self.supervisor.give_up_reason
                break
            if self.supervisor is None and self.engine.router.connection_closed.is_set():
                self.lost = "the connection to the gateway closed"
                break
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            self.stop_requested.wait(0.2 if left is None else min(0.2, left))

    def make_state_dir(self) -> None:
        """The state folder (order ids, by default var/) exists before anything needs it."""
        path = Path(self.cfg.state_dir)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunError(f"{self.cfg.source}: state_dir {path}: cannot create it ({exc.strerror or exc}); "
                           f"set state_dir in the YAML to a folder you can write") from None

    def stop(self) -> None:
        """Ordered: capture the live marks, stop each strategy (on_stop, its lines cancelled), let the last
        fills arrive, print the summary, then disconnect."""
        for strategy in self.strategies:
            strategy.request_stop()               # at once, from this thread: no callback but on_stop from here on
        if self.supervisor is not None:
            self.supervisor.stop()                # no reconnect while the run ends
        if self.engine is not None:
            self.mark("stop")
            if self.strategies:
                try:
                    self.marks = self.engine.on_dispatch(self.capture_marks)
                except Exception:
                    log.exception("reading the last quotes at stop failed; the summary marks to the last fills")
            for strategy in self.strategies:
                try:
                    self.engine.on_dispatch(strategy._stop)
                except Exception:
                    log.exception("stopping %s failed", strategy.name)
            if self.rails is not None:            # after the strategies stopped: nothing can place behind it
                self.rails.finish(self.engine, self.cfg.on_stop)
            self.settle()
            try:
                self.print_summary()
            except Exception:
                log.exception("printing the summary failed")
            if self.rails is not None:
                self.rails.close()
            self.engine.stop()
        if self.recorder is not None:
            self.recorder.close()
            log.info("recording written to %s", self.recorder.path)
        if self.sim is not None:
            self.sim.stop()
        if self._gc_settled:
            self._gc_settled = False
            gc_policy.release()

    def write_report(self) -> Path | None:
        """After stop (the journal closed): this run's HTML report (ibframe.report) from its journal rows since the
        start, into <state_dir>/reports/<start time>/; prints `report: PATH`. Never fails the run: a failure is a
        warning naming the journal, which holds everything the report would have shown."""
        journal = self.rails.journal if self.rails is not None else None
        if journal is None or self.started_at is None:
            return None                           # journal off (journal: false), or the run never got that far
        try:
            from .report import build_report
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))
            path = build_report(journal.path, report_dir(self.cfg.state_dir, self.started_at),
                                f"ibframe run {Path(self.cfg.source).name}, started {started} (this machine's time)",
                                since=self.started_at)
        except Exception as exc:
            log.warning("the run's report could not be built (%s: %s); the journal %s has it all: python -m "
                        "ibframe.report %s --since '%s'", type(exc).__name__, exc, journal.path, journal.path,
                        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at)))
            return None
        print(f"report: {path}")
        return path

    def capture_marks(self) -> dict[int, float]:
        """conId -> mid of every traded or configured instrument whose quote line is live right now."""
        con_ids = set()
        for s in self.strategies:
            for contract in s.instruments.values():
                con_ids.add(contract.conId)
                con_ids.update(leg.conId for leg in contract.comboLegs or [])
            con_ids.update(s.own_book.holdings())
        marks = {}
        for con_id in con_ids:
            quote = self.engine.live_quote(con_id)
            if quote is not None and quote.mid is not None:
                marks[con_id] = quote.mid
        return marks

    def print_summary(self) -> None:
        lines = self.engine.on_dispatch(self.summary_lines) if self.strategies else []
        if lines:
            print("\n".join(lines))

    def summary_lines(self) -> list[str]:
        """Per strategy: its orders (the last 10), then its own positions and P&L from its own fills."""
        out = []
        for s in self.strategies:
            out += _strategy_summary(s, self.engine, self.marks)
        return out + leftover_summary(self.leftovers) + _connection_summary(self.supervisor,
                                                                            self.engine.writer_stats())


def report_dir(state_dir: str | Path, started_at: float) -> Path:
    """<state_dir>/reports/<start, local time>/ (a suffix when two runs started in the same second)."""
    base = Path(state_dir) / "reports" / time.strftime("%Y-%m-%d_%H%M%S", time.localtime(started_at))
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _connection_summary(supervisor, writer) -> list[str]:
    """The link's story when it had one: outages and how they ended; messages that waited or were dropped."""
    out = []
    outages = supervisor.outages if supervisor is not None else []
    if outages:
        ended = [o.duration for o in outages if o.duration is not None]
        hows = ", ".join(f"{n} {how}" for how, n in sorted(Counter(o.how or "still down" for o in outages).items()))
        out.append(f"\n== connection: {_count(len(outages), 'outage')} ({hows})"
                   + (f", longest {max(ended):.1f}s" if ended else ""))
    if writer is not None and (writer.waited or writer.dropped):
        out.append(f"== outgoing: {writer.sent} sent, {writer.waited} waited for the pace (longest "
                   f"{writer.longest_wait:.1f}s), {writer.dropped} dropped at a disconnect")
    return out


SHOWN_ORDERS = 10
NBBO_NOTE = ("   (vs NBBO at arrival, per share: + = filled better than the far side of the quote when the order "
             "was placed, i.e. below the ask for a buy or above the bid for a sell; - = worse)")


def _strategy_summary(s: Strategy, engine: Engine, marks: dict[int, float]) -> list[str]:
    trades = s.trades
    fills = sum(len(t.fills) for t in trades)
    out = [f"\n== {s.name}: {_count(len(trades), 'order')}, {_count(fills, 'fill')}, "
           f"commission {sum(t.commission for t in trades):.2f}"]
    shown = trades[-SHOWN_ORDERS:]
    quality = _quality_line(trades)
    if quality:
        out.append(quality)
    if any(t.slippage_per_share is not None for t in shown):
        out.append(NBBO_NOTE)
    if len(trades) > len(shown):
        out.append(f"   ... {_count(len(trades) - len(shown), 'more order')} not shown (the last {len(shown)} follow)")
    out += [f"   {_order_line(t)}" for t in shown]
    holdings = s.own_book.holdings()
    seen: set[int] = set()
    for name, contract in s.instruments.items():
        if contract.secType == "BAG":
            combos = s.own_book.position(contract)
            out.append(f"   {name}: position {quantity_text(combos)} combo{'' if abs(combos) == 1 else 's'}; its legs:")
            for leg, leg_contract in zip(contract.comboLegs, getattr(contract, "leg_contracts", [])):
                seen.add(leg.conId)
                line = _position_line(label(leg_contract), holdings.get(leg.conId), leg.conId, engine, marks)
                out.append(f"     {line}")
        else:
            seen.add(contract.conId)
            out.append(f"   {_position_line(name, holdings.get(contract.conId), contract.conId, engine, marks)}")
    for con_id, holding in holdings.items():          # traded without being configured (e.g. a contract object)
        if con_id not in seen:
            out.append(f"   {_position_line(label(holding.contract), holding, con_id, engine, marks)}")
    return out


def _quality_line(trades) -> str:
    """The run's execution quality for one strategy (journal/tca.py's arithmetic), with its signs explained."""
    q = tca.of_trades(trades, multiplier)
    if q is None:
        return ""
    if q["fills"] == q["fills_without_quote"]:
        return f"   execution quality: none of the {_count(q['fills'], 'fill')} had a quote at arrival to measure against"
    text = (f"   execution quality: slippage vs the arrival mid {q['slippage_bps'] + 0.0:+.1f} bps (+ = cost), "
            f"savings vs the far side of the arrival NBBO {q['savings'] + 0.0:+.2f} (+ = better than crossing the "
            f"quote)")
    quoted = q["fills"] - q["fills_without_quote"]
    if q["fills_without_quote"]:
        return text + f", over the {quoted} of {_count(q['fills'], 'fill')} that had a quote at arrival"
    return text + f", over {_count(q['fills'], 'fill')}"


def _order_line(t) -> str:
    head = (f"order {t.order_id} {t.order.action} {quantity_text(t.order.totalQuantity)} {label(t.contract)} "
            f"{t.order.orderType}")
    if not t.filled and not t.fills:
        return f"{head}: {t.status}"
    if t.is_combo:
        return f"{head}: {t.status}, filled {quantity_text(t.filled)} @ net {t.avg_fill_price:.4f}"
    slip = t.slippage_per_share
    slip_text = f", vs NBBO at arrival {round(slip, 4) + 0.0:+.4f}/sh" if slip is not None else ""
    return f"{head}: {t.status}, filled {quantity_text(t.filled)} @ {t.avg_fill_price:.4f}{slip_text}"


def _position_line(name: str, holding, con_id: int, engine: Engine, marks: dict[int, float]) -> str:
    """'AAPL: position 100, avg cost 190.1200, P&L +12.34 (marked to last quote, mid 190.2450)'."""
    account = engine.portfolio.position(con_id)
    own = holding.quantity if holding is not None else 0.0
    text = f"{name}: position {quantity_text(own)}"
    if account != own:
        text += f" (the account holds {quantity_text(account)})"
    if holding is None:
        return text + ", no fills"
    if own:
        text += f", avg cost {holding.avg_cost:.4f}"
    pnl = _fill_pnl(holding, marks.get(con_id))
    if not own:
        return text + f", P&L {pnl:+.2f} (closed)"
    if con_id in marks:
        return text + f", P&L {pnl:+.2f} (marked to last quote, mid {marks[con_id]:.4f})"
    return text + f", P&L {pnl:+.2f} (marked to last fill {holding.last_price:.4f}: no live quote at the end)"


def _fill_pnl(holding, mark: float | None) -> float:
    """Realized P&L plus the open quantity marked at `mark` (else the last fill), less commissions."""
    return holding.pnl(mark, multiplier(holding.contract))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def prepare_process(cfg: RunConfig) -> None:
    """Logging as configured (ibapi's per-message INFO chatter off) and strategies importable from cwd."""
    logging.basicConfig(level=cfg.log_level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    logging.getLogger("ibapi").setLevel(logging.WARNING)
    sys.path.insert(0, str(Path.cwd()))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config)
        if args.duration:
            cfg.duration = parse_duration(args.duration)
        if args.gateway:
            cfg.gateway = gateway_option(args.gateway, cfg.gateway.client_id, cfg.gateway.live)
        if args.client_id is not None:
            cfg.gateway.client_id = args.client_id
        if args.record:
            cfg.record = args.record
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.kill:
        code, message = kill.kill_command(cfg.state_dir, args.config)
        print(message, file=sys.stdout if code == 0 else sys.stderr)
        return code
    prepare_process(cfg)
    runner = Runner(cfg)
    previous = signal.signal(signal.SIGINT, lambda *_: runner.stop_requested.set())
    previous_usr1 = kill.install_signal()            # SIGUSR1 only posts a kill to the dispatch thread
    try:
        pid_file = kill.write_pid_file(cfg.state_dir, args.config, cfg.gateway.client_id)
    except OSError as exc:
        print(f"error: {cfg.source}: state_dir {cfg.state_dir}: cannot write the run's pid file ({exc}); set "
              f"state_dir in the YAML to a folder you can write", file=sys.stderr)
        signal.signal(signal.SIGINT, previous)
        kill.restore_signal(previous_usr1)
        return 2
    try:
        try:
            runner.start()
            runner.wait(cfg.duration)
            if runner.lost is not None:
                raise RunLost(runner.lost)
        except RunLost as exc:
            print(f"error: {exc}; the run stopped (exit code 3). Working orders stay at IB unless on_stop: cancel "
                  f"reached them; check TWS / IB Gateway, then start the run again (it reconciles on start)",
                  file=sys.stderr)
            runner.stop()
            runner.write_report()
            return 3
        except RunError as exc:
            print(f"error: {exc}", file=sys.stderr)
            runner.stop()
            runner.write_report()
            return 2
        finally:
            signal.signal(signal.SIGINT, previous)
        runner.stop()
        runner.write_report()                      # after the summary and the journal's close
    finally:
        kill.remove_pid_file(pid_file)
        kill.restore_signal(previous_usr1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
