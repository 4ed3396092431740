"""`python -m ibframe.replay recording.jsonl.gz strategy.yaml` (also `ibframe replay`): the command line.

Owns: the options and the exit codes of a replay from the shell, and its progress (recorded frames played:
a bar on a terminal, a log line every 10 s and one at the end otherwise; `--no-progress`: none). The
Python API `replay()` shows none. Must never: hold replay logic.
"""
from __future__ import annotations

import argparse
import signal
import sys

from ..config import ConfigError, load_config
from ..progress import follow
from ..run import prepare_process
from .feeder import ReplayError, parse_speed
from .runner import ReplayResult, ReplayRunner, prepare, run_prepared


# --- command line ------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ibframe replay",
                                description="Replay a recorded session (python -m ibframe.run --record) into "
                                            "the strategies of a YAML file, on a virtual clock.")
    p.add_argument("recording", help="a recording (.jsonl or .jsonl.gz)")
    p.add_argument("config", help="strategy YAML (its gateway, sim, duration and record keys are ignored)")
    p.add_argument("--speed", default="max", help="max (default: as fast as possible), 1x (recorded pace), 10x, …")
    p.add_argument("--fills", choices=("recorded", "simulated"), default="recorded",
                   help="recorded: feed back the recorded broker answers (default); simulated: fill the "
                        "strategy's orders against the recorded quotes")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress (default: a bar on a terminal, else a log line every 10 s and at the end)")
    return p


def frames_played(runner: ReplayRunner):
    """Follow the replay's recorded frames, done of total (ibframe.progress), sampled off the replay's thread."""
    rec = runner.recording
    return follow(lambda: runner.feeder.frames_done if runner.feeder is not None else 0, rec.frames_in,
                  f"replay {rec.path.name}", "frame", console=True)


def play(runner: ReplayRunner, progress: bool = True) -> ReplayResult:
    """A prepared replay, run for a command line: Ctrl-C ends it where it is (the result covers that much), and
    its progress shows unless `progress` is False. Raises ReplayError as run_prepared does."""
    def interrupt(*_):
        if runner.feeder is not None:
            runner.feeder.interrupt()
    previous = _on_interrupt(interrupt)
    try:
        if not progress:
            return run_prepared(runner, None)
        with frames_played(runner):
            return run_prepared(runner, None)
    finally:
        _on_interrupt(previous)


def _on_interrupt(handler):
    """Install `handler` for SIGINT and return the one it replaces; off the main thread (where Python allows no
    signal handlers) nothing, and None."""
    if handler is None:
        return None
    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:
        return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        speed = parse_speed(args.speed)
        cfg = load_config(args.config)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    prepare_process(cfg)
    try:
        runner = prepare(args.recording, cfg, fills=args.fills, speed=speed, quiet=False)
    except ReplayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    try:
        result = play(runner, progress=not args.no_progress)
    except ReplayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n" + result.report())
    return 1 if result.damage is not None else 0
