"""`python -m ibframe.run strategy.yaml`: run strategies against the simulator or a real TWS.

Owns: the process lifecycle — read config, start the embedded simulator when asked, connect,
qualify instruments, start strategies, run for the duration or until Ctrl-C, stop cleanly and
print what happened. The only place that wires the simulator to the framework.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from .config import ConfigError, GatewayConfig, RunConfig, check_live_port, load_config, parse_duration
from .connection import ConnectError
from .contracts import ContractError, label
from .engine import Engine
from .record import Recorder
from .strategy import Strategy

log = logging.getLogger("ibframe.run")


class RunError(RuntimeError):
    """A problem that stops the run before trading; printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ibframe.run", description="Run ibframe strategies from a YAML file.")
    p.add_argument("config", help="strategy YAML (see config/)")
    p.add_argument("--duration", help="stop after this long, e.g. 60s, 5m (default: the config's, else Ctrl-C)")
    p.add_argument("--gateway", help="'sim' (embedded simulator) or HOST:PORT of TWS / IB Gateway")
    p.add_argument("--client-id", type=int, help="TWS API client id (default: the config's, else 1)")
    p.add_argument("--record", metavar="PATH", help="record the session to PATH (JSON Lines, gzip when it ends "
                                                    "in .gz) for python -m ibframe.replay")
    return p


def load_strategy_class(class_path: str):
    module_name, _, class_name = class_path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RunError(f"strategy class {class_path}: cannot import module {module_name!r} ({exc}); run from the "
                       f"project folder or put the module on PYTHONPATH") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise RunError(f"strategy class {class_path}: {module_name} has no Strategy subclass named {class_name!r}")
    return cls


class Runner:
    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.sim = None
        self.engine: Engine | None = None
        self.strategies: list[Strategy] = []
        self.stop_requested = threading.Event()
        self.recorder: Recorder | None = None

    def start_gateway(self) -> GatewayConfig:
        gw = self.cfg.gateway
        if gw.kind != "sim":
            return gw
        from .sim import SimConfig, SimGateway          # the runner alone wires the simulator in
        from .sim.hours import start_time
        from .sim.universe import UniverseError
        try:
            self.sim = SimGateway(SimConfig(port=0, seed=self.cfg.sim.seed, speed=self.cfg.sim.speed,
                                            universe=self.cfg.sim.universe,
                                            start_time=start_time(self.cfg.sim.start))).start()
        except UniverseError as exc:
            raise RunError(str(exc)) from None
        log.info("embedded simulated gateway on 127.0.0.1:%d (seed %d)", self.sim.port, self.cfg.sim.seed)
        return GatewayConfig(kind="sim", host="127.0.0.1", port=self.sim.port, client_id=gw.client_id)

    def start(self) -> None:
        classes = [load_strategy_class(s.class_path) for s in self.cfg.strategies]
        gw = self.start_gateway()
        self.engine = self.make_engine(gw)
        if self.cfg.record:
            self.recorder = Recorder(self.cfg.record).attach(self.engine.conn)
            log.info("recording the session to %s", self.cfg.record)
        try:
            self.engine.start()
        except ConnectError as exc:
            raise RunError(str(exc)) from None
        for scfg, cls in zip(self.cfg.strategies, classes):
            instruments = {}
            for name, contract in scfg.instruments.items():
                try:
                    instruments[name] = self.engine.qualify(contract)
                except (ContractError, TimeoutError) as exc:
                    why = str(exc) or "no answer from the gateway in time"
                    raise RunError(f"{self.cfg.source}: strategy {scfg.name}: instrument {name}: {why}") from None
            self.strategies.append(cls(self.engine, scfg.name, scfg.params, instruments))
        self.engine.subscribe_account()
        for strategy in self.strategies:
            try:
                self.engine.on_dispatch(strategy._start)
            except Exception as exc:
                raise RunError(f"strategy {strategy.name} failed in on_start: {type(exc).__name__}: {exc}") from None
            log.info("strategy %s started on %s", strategy.name, ", ".join(strategy.instruments))
        self.mark("started")

    def make_engine(self, gw: GatewayConfig) -> Engine:
        """The engine for this run (ibframe.replay builds one fed by a recording instead)."""
        id_file = f"order-ids-sim-{gw.client_id}.txt" if gw.kind == "sim" else None   # the sim's port is random
        return Engine(gw.host, gw.port, gw.client_id, state_dir=self.cfg.state_dir, id_file=id_file)

    def mark(self, name: str) -> None:
        """Name a point of the run in the recording, if one is being made."""
        if self.recorder is not None:
            self.recorder.mark(name)

    def settle(self) -> None:
        """Let the last fills and statuses arrive after the strategies stopped."""
        time.sleep(0.2)

    def wait(self, duration: float | None) -> None:
        deadline = None if duration is None else time.monotonic() + duration
        while not self.stop_requested.is_set():
            if self.engine.router.connection_closed.is_set():
                log.error("connection to the gateway closed; stopping")
                break
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            self.stop_requested.wait(0.2 if left is None else min(0.2, left))

    def stop(self) -> None:
        if self.engine is not None:
            self.mark("stop")
            for strategy in self.strategies:
                try:
                    self.engine.on_dispatch(strategy._stop)
                except Exception:
                    log.exception("stopping %s failed", strategy.name)
            self.settle()
            self.print_summary()
            self.engine.stop()
        if self.recorder is not None:
            self.recorder.close()
            log.info("recording written to %s", self.recorder.path)
        if self.sim is not None:
            self.sim.stop()

    def print_summary(self) -> None:
        for s in self.strategies:
            trades = s.trades
            fills = [f for t in trades for f in t.fills]
            print(f"\n== {s.name}: {len(trades)} orders, {len(fills)} fills, "
                  f"commission {sum(t.commission for t in trades):.2f}")
            for t in trades[-10:]:
                slip = t.slippage_per_share
                slip_text = f", vs NBBO at arrival {round(slip, 4) + 0.0:+.4f}/sh" if slip is not None else ""
                print(f"   order {t.order_id} {t.order.action} {t.order.totalQuantity:g} {label(t.contract)} "
                      f"{t.order.orderType}: {t.status}, filled {t.filled:g} @ {t.avg_fill_price:.4f}{slip_text}")
            for name, contract in s.instruments.items():
                pos = self.engine.portfolio.position(contract.conId)
                pnl = _fill_pnl(trades, contract, self.engine)
                print(f"   {name}: position {pos:g}" + (f", P&L {pnl:+.2f} (marked to last quote)"
                                                      if pnl is not None else ""))


def _fill_pnl(trades, contract, engine) -> float | None:
    """Cash flow of the fills plus the open quantity marked at the current mid, less commissions."""
    fills = [(t, f) for t in trades if t.contract.conId == contract.conId for f in t.fills]
    if not fills:
        return None
    mult = float(contract.multiplier or 1) if contract.secType in ("OPT", "FUT") else 1.0
    qty = sum(f.shares if f.side == "BOT" else -f.shares for _, f in fills)
    cash = -sum((f.shares if f.side == "BOT" else -f.shares) * f.price for _, f in fills) * mult
    req = engine._quotes.get(contract.conId)
    mark = req.quote.mid if req is not None and req.quote.mid is not None else fills[-1][1].price
    commission = sum(f.commission or 0.0 for _, f in fills)
    return cash + qty * mark * mult - commission


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
        if args.gateway and args.gateway != "sim":
            host, _, port = args.gateway.rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError("--gateway", "", None, f"{args.gateway!r}: write 'sim' or HOST:PORT")
            cfg.gateway = GatewayConfig("tws", host, int(port), cfg.gateway.client_id, cfg.gateway.live)

            def fail(_path, message):
                raise ConfigError("--gateway", "", None, message)
            check_live_port(cfg.gateway, fail)
        elif args.gateway == "sim":
            cfg.gateway = GatewayConfig(client_id=cfg.gateway.client_id)
        if args.client_id is not None:
            cfg.gateway.client_id = args.client_id
        if args.record:
            cfg.record = args.record
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    prepare_process(cfg)
    runner = Runner(cfg)
    previous = signal.signal(signal.SIGINT, lambda *_: runner.stop_requested.set())
    try:
        runner.start()
        runner.wait(cfg.duration)
    except RunError as exc:
        print(f"error: {exc}", file=sys.stderr)
        runner.stop()
        return 2
    finally:
        signal.signal(signal.SIGINT, previous)
    runner.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
