"""`python -m ibframe.report JOURNAL|RECORDING` (also `ibframe report`): the report from the shell.

Owns: the options, telling a journal from a recording, the default output folder, replaying a
recording (ibframe.replay) into its strategies so that its journal can be reported, and the exit
codes: 0 the report was written (its path is printed), 2 bad input (the message says what to do).
Must never: hold report logic (build.py) or replay logic (ibframe.replay).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .build import ReportError, build_report

SQLITE_MAGIC = b"SQLite format 3\x00"
GZIP_MAGIC = b"\x1f\x8b"
RECORDING_ENDINGS = (".jsonl", ".jsonl.gz", ".json.gz")

DESCRIPTION = """\
Write one self-contained HTML report of a run: equity and drawdown, positions, fills on the price
with the NBBO band, slippage, execution quality per day, orders, risk events and errors. It opens in
any browser with no network (the charts are inside the page) and is written with its charts as PNG
files into one folder.

Give it either
  a JOURNAL   the SQLite file every run writes (var/journal-<account>.sqlite by default), or
  a RECORDING a session recorded with `ibframe run --record FILE` (.jsonl or .jsonl.gz), with
              --config naming the strategy YAML to replay it into; the report is the replay's
              (its journal is kept beside the report as journal.sqlite)."""

EPILOG = """\
examples:
  python -m ibframe.report var/journal-DU1234567.sqlite
  python -m ibframe.report var/journal-DU1234567.sqlite --since 2026-11-18 --out /tmp/today
  python -m ibframe.report var/session.jsonl.gz --config config/ma_cross.yaml --fills simulated

`ibframe run` writes this report by itself at the end of every run (under <state_dir>/reports/)."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ibframe report", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="JOURNAL|RECORDING", help="a run's journal (.sqlite) or a recording "
                                                               "(.jsonl / .jsonl.gz)")
    p.add_argument("--out", metavar="DIR", help="folder for report.html and the PNGs (created when missing; default "
                                                "report-<file name>/ beside the journal or recording)")
    p.add_argument("--title", help="the page's title (default: the file's name and account)")
    p.add_argument("--since", help="journal only: rows from this New York date or time on, YYYY-MM-DD or "
                                   "'YYYY-MM-DD HH:MM' (default: everything in the journal)")
    p.add_argument("--config", metavar="CFG", help="recording only, and required there: the strategy YAML to "
                                                   "replay the recording into (the one the recorded run used)")
    p.add_argument("--fills", choices=("recorded", "simulated"), help="recording only: recorded (default) feeds "
                   "back the recorded broker answers; simulated fills the strategies' orders against the recorded "
                   "quotes")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    source = Path(args.source)
    try:
        kind = kind_of(source)
        if kind == "journal":
            if args.config or args.fills:
                raise ReportError(f"{source} is a journal: it is reported as it is; --config and --fills are for a "
                                  f"recording (.jsonl / .jsonl.gz), which is replayed first")
            html = build_report(source, Path(args.out) if args.out else default_out(source), args.title,
                                since=args.since)
        else:
            if args.since:
                raise ReportError("--since is for a journal; a recording's report covers the whole replay")
            html = report_recording(source, args)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {html}")
    return 0


def kind_of(path: Path) -> str:
    """'journal' or 'recording': by the file's ending, else by its first bytes."""
    if not path.exists():
        raise ReportError(f"no such file: {path}; give a run's journal (var/journal-<account>.sqlite by default) "
                          f"or a recording (.jsonl / .jsonl.gz, made with ibframe run --record FILE)")
    name = path.name.lower()
    if name.endswith(RECORDING_ENDINGS):
        return "recording"
    if path.is_file():
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
        if not head.startswith(SQLITE_MAGIC) and (head.startswith(GZIP_MAGIC) or head.lstrip()[:1] == b"{"):
            return "recording"
    return "journal"                    # build_report says clearly when it is none


def default_out(source: Path) -> Path:
    """report-<name without its endings>/ beside the file."""
    name = source.name
    for ending in (".gz", ".jsonl", ".json", ".sqlite3", ".sqlite", ".db"):
        if name.lower().endswith(ending) and len(name) > len(ending):
            name = name[: -len(ending)]
    return source.parent / f"report-{name}"


def report_recording(recording: Path, args) -> Path:
    """Replay `recording` into the strategies of --config, then report on the replay's journal (which lives
    in a temporary folder: the report is built before that folder goes)."""
    if not args.config:
        raise ReportError(f"{recording} is a recording: add --config STRATEGY.yaml, the strategies to replay it into "
                          f"(the YAML the recorded run used), e.g. python -m ibframe.report {recording} --config "
                          f"config/ma_cross.yaml")
    from ..config import ConfigError, load_config      # the replay's machinery: imported only when needed
    from ..replay import ReplayError
    from ..replay.cli import play
    from ..replay.runner import prepare
    from ..run import prepare_process
    try:
        cfg = load_config(args.config)
    except (ConfigError, ValueError) as exc:
        raise ReportError(str(exc)) from None
    if cfg.journal is not None and not cfg.journal.enabled:
        raise ReportError(f"{args.config} turns the journal off (journal: false), and the report reads the replay's "
                          f"journal: replay with a copy of the YAML without that key (the recorded run must have "
                          f"had its journal on too, or the replay's requests differ from the recording's)")
    prepare_process(cfg)
    fills = args.fills or "recorded"
    try:
        runner = prepare(recording, cfg, fills=fills, quiet=True)
    except ReplayError as exc:
        raise ReportError(str(exc)) from None
    try:
        try:
            result = play(runner)
        except ReplayError as exc:
            raise ReportError(str(exc)) from None
        journal = runner.rails.journal if runner.rails is not None else None
        if journal is None:
            raise ReportError(f"the replay of {recording} wrote no journal; check the journal: section of "
                              f"{args.config}")
        for line in result.report().splitlines()[1:]:        # notes, divergences, problems, damage
            print(line, file=sys.stderr)
        title = args.title or f"Replay of {recording.name} into {Path(args.config).name} ({fills} fills)"
        out = Path(args.out) if args.out else default_out(recording)
        return build_report(keep_journal(journal.path, out), out, title)
    finally:
        runner.journal_dir.cleanup()


def keep_journal(journal: Path, out: Path) -> Path:
    """A copy of the replay's journal as out/journal.sqlite (SQLite's backup: one consistent file, its WAL
    folded in), so the report's facts and its export hints name a file that stays."""
    import sqlite3
    from ..journal import reader
    target = out / "journal.sqlite"
    try:
        out.mkdir(parents=True, exist_ok=True)
        for stale in (target, out / "journal.sqlite-wal", out / "journal.sqlite-shm"):
            stale.unlink(missing_ok=True)
        source = reader.connect_read_only(journal)
        try:
            copy = sqlite3.connect(target)
            try:
                source.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")       # one file, no -wal / -shm beside it
            finally:
                copy.close()
        finally:
            source.close()
    except (OSError, sqlite3.Error) as exc:
        raise ReportError(f"cannot write the replay's journal to {target} ({exc}): give --out a folder you can "
                          f"write") from None
    return target
