"""`python -m ibframe.journal FILE [--tca] [--export csv|parquet --table TABLE] [--since YYYY-MM-DD] [--out PATH]`.

Owns: exporting one table of a journal (opened read-only) to CSV (stdout by default) or Parquet, a
one-line summary of the journal's tables without --export, and execution quality (`--tca`: the table
per strategy and day, or with --export the figures per fill; arithmetic in journal/tca.py). Parquet goes through pandas and needs
the optional `pyarrow` package: without it the command says so and exits 2 (CSV always works).
Must never: write to the journal.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .journal import Journal
from .schema import TABLES, JournalError

TABLE_NAMES = tuple(TABLES)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ibframe journal", description="Read or export an ibframe journal.")
    p.add_argument("file", help="the journal, e.g. var/journal-DU1234567.sqlite")
    p.add_argument("--export", choices=("csv", "parquet"), help="write one table in this format")
    p.add_argument("--table", choices=TABLE_NAMES, default="executions", help="the table (default executions)")
    p.add_argument("--since", help="rows from this New York date or time on: YYYY-MM-DD or 'YYYY-MM-DD HH:MM'")
    p.add_argument("--strategy", help="only this strategy's rows (orders, statuses, executions)")
    p.add_argument("--tca", action="store_true",
                   help="execution quality per strategy and New York day: fills, shares, notional, slippage vs the "
                        "arrival mid (bps, + = cost), savings vs the far side of the arrival NBBO (currency), "
                        "commissions; with --export, per fill")
    p.add_argument("--out", help="output file (CSV default: stdout; Parquet default: FILE-TABLE.parquet)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        journal = Journal(args.file)
        if args.tca and not args.export:
            print(journal.tca_daily(args.since, args.strategy).to_string(index=False))
            return 0
        if not args.export:
            for name in TABLE_NAMES:
                print(f"{name:<15} {len(journal.table(name)):>9} rows")
            return 0
        frame = (journal.tca(args.since, args.strategy) if args.tca
                 else journal.table(args.table, args.since, args.strategy))
    except (JournalError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.export == "csv":
        if args.out:
            frame.to_csv(args.out, index=False)
        else:
            try:
                frame.to_csv(sys.stdout, index=False)
                sys.stdout.flush()
            except BrokenPipeError:              # `| head` stopped reading: that is the reader's choice, not an error
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _done(args.out, len(frame))
    try:
        import pyarrow  # noqa: F401  (pandas' Parquet engine)
    except ImportError:
        print("error: Parquet export needs the pyarrow package (pip install pyarrow); or export --export csv",
              file=sys.stderr)
        return 2
    out = args.out or str(Path(args.file).with_suffix("")) + f"-{args.table}.parquet"
    frame.to_parquet(out, index=False)
    return _done(out, len(frame))


def _done(out: str | None, n: int) -> int:
    if out:
        print(f"{n} rows written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
