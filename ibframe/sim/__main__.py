"""`python -m ibframe.sim`: run the simulated TWS gateway in the foreground until Ctrl-C."""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from .faults.scenarios import ScenarioError
from .market.hours import start_time
from .market.universe import UniverseError
from .persistence import StateError
from .server import MAX_REQUEST_BYTES, MAX_SEND_QUEUE_BYTES, SIM_MAX_VERSION, SIM_MIN_VERSION, SimConfig, SimGateway



def parse_text_answers(text: str) -> frozenset[int]:
    """--text-answers: 'all' or comma-separated message ids."""
    from .protocol.proto_answers import PROTO_SINCE
    if text.strip().lower() == "all":
        return frozenset(PROTO_SINCE)
    try:
        return frozenset(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give 'all' or comma-separated message ids such as 1,2") from None


def parse_start(text: str) -> float | None:
    """--start: 'now', 'open', 'YYYY-MM-DD HH:MM' (New York time) or epoch seconds."""
    try:
        return start_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ibframe sim",
                                description="A simulated TWS / IB Gateway speaking the real TWS API protocol.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7497, help="port (default 7497, TWS paper)")
    p.add_argument("--seed", type=int, default=1, help="market seed: the same seed gives the same market")
    p.add_argument("--universe", help="instruments and accounts YAML (default config/universe.yaml)")
    p.add_argument("--start", type=parse_start, help="simulated start: now (default), open (30 min into the latest regular session), 'YYYY-MM-DD HH:MM' New York time, or epoch seconds")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second")
    p.add_argument("--step", type=float, default=0.25, help="market step in simulated seconds")
    p.add_argument("--max-version", type=int, default=SIM_MAX_VERSION,
                   help=f"highest server version to negotiate ({SIM_MIN_VERSION}..{SIM_MAX_VERSION}); "
                        f"lower it to act like an older TWS build (200: every message as classic text)")
    p.add_argument("--text-answers", metavar="IDS", type=parse_text_answers, default=frozenset(),
                   help="answer these message kinds as text even where the version allows protobuf: 'all' or "
                        "comma-separated IN message ids (e.g. 1,2 for TICK_PRICE, TICK_SIZE)")
    p.add_argument("--no-pacing", action="store_true", help="switch off every pacing rule")
    p.add_argument("--state", metavar="FILE",
                   help="keep orders, executions, positions, cash and order ids in FILE across restarts "
                        "(loaded at startup when it exists, saved after every change and at shutdown)")
    p.add_argument("--faults", metavar="SCENARIO",
                   help="a YAML fault scenario: a list of {at: \"30s\", fault: <name>, ...params} run on the "
                        "simulated clock (faults: drop_client, connectivity_lost, connectivity_restored, "
                        "reject_next_orders, delay_messages, pacing_violation, restart)")
    p.add_argument("--max-send-queue", type=int, default=MAX_SEND_QUEUE_BYTES, metavar="BYTES",
                   help="disconnect a client that leaves more than BYTES unread (default %(default)s)")
    p.add_argument("--max-request", type=int, default=MAX_REQUEST_BYTES, metavar="BYTES",
                   help="close a connection that declares a request longer than BYTES (default %(default)s)")
    p.add_argument("--any-symbol", action=argparse.BooleanOptionalAction, default=True,
                   help="give an unknown US stock or ETF symbol a deterministic simulated instrument (conId, "
                        "exchange, price, volatility, option chain on request) instead of error 200 "
                        "(default: on; --no-any-symbol answers unknown symbols as a real TWS does)")
    p.add_argument("--log-level", default="INFO")
    return p


async def _serve(gateway: SimGateway) -> None:
    """Serve until Ctrl-C or SIGTERM; both end through serve()'s shutdown (which saves the --state file)."""
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, gateway.stop)
    except (NotImplementedError, RuntimeError):     # not on this platform / not the main thread
        pass
    await gateway.serve()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # the protobuf codec replays each request on a private ibapi EClient, which logs every REQUEST / SENDING at INFO
    logging.getLogger("ibapi").setLevel(max(logging.WARNING, logging.getLogger().level))
    if not SIM_MIN_VERSION <= args.max_version <= SIM_MAX_VERSION:
        print(f"--max-version must be within {SIM_MIN_VERSION}..{SIM_MAX_VERSION}", file=sys.stderr)
        return 2
    config = SimConfig(host=args.host, port=args.port, seed=args.seed, universe=args.universe,
                       start_time=args.start, speed=args.speed, step_seconds=args.step,
                       max_server_version=args.max_version, text_answers=args.text_answers,
                       state_file=args.state, faults_file=args.faults,
                       max_send_queue_bytes=args.max_send_queue, max_request_bytes=args.max_request,
                       any_symbol=args.any_symbol)
    if args.no_pacing:
        config.pace_messages = config.pace_historical = config.pace_tick_by_tick = False
    try:
        gateway = SimGateway(config)
    except (UniverseError, StateError, ScenarioError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(gateway))
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}. "
              f"Is TWS or another simulator already using it? Try --port.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
