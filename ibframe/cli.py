"""The `ibframe` command (and `python -m ibframe`): one entry point in front of the tools.

Owns: the list of subcommands, what each is for in one line, and handing the rest of the command
line to that tool's own `main(argv)` (`ibframe run x.yaml` is `python -m ibframe.run x.yaml`, which
keeps working). Each tool parses and explains its own options: `ibframe run --help`.

Must never: parse a tool's options itself, or import a tool before it is asked for (the simulator
and the benchmarks are heavy to import).
"""
from __future__ import annotations

import importlib
import sys

# name -> (module whose main(argv) runs it, what it is for)
SUBCOMMANDS = {
    "run": ("ibframe.run", "run strategies from a YAML file against the embedded simulator or a TWS / IB Gateway"),
    "sim": ("ibframe.sim.__main__", "start the simulated TWS gateway that any TWS API client can connect to"),
    "replay": ("ibframe.replay", "replay a recorded session into the strategies of a YAML file"),
    "journal": ("ibframe.journal.__main__", "summarise a compliance journal or export one of its tables"),
    "report": ("ibframe.report.cli", "write an HTML report (equity, fills on the NBBO, execution quality) of a "
                                     "journal or a replayed recording"),
    "history": ("ibframe.history_cli", "download historical bars (chunked, paced, cached) into Parquet or CSV"),
    "sweep": ("ibframe.sweep.cli", "replay recordings under a grid of strategy parameters on Dask; results to Parquet"),
    "bench": ("ibframe.bench.__main__", "run the benchmarks and print their table"),
}

USAGE = "usage: ibframe {" + ",".join(SUBCOMMANDS) + "} [options]   (ibframe COMMAND --help for its options)"


def help_text() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = [USAGE, "", "ibframe: algorithmic trading on Interactive Brokers' TWS API.", "", "commands:"]
    lines += [f"  {name:<{width}}  {what}" for name, (_, what) in SUBCOMMANDS.items()]
    lines += ["", "Start with:  ibframe run config/ma_cross.yaml --duration 60s   (needs no IB account)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(help_text())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    entry = SUBCOMMANDS.get(name)
    if entry is None:
        print(f"ibframe: unknown command {name!r}; the commands are {', '.join(SUBCOMMANDS)} "
              f"(ibframe --help says what each does)", file=sys.stderr)
        return 2
    return importlib.import_module(entry[0]).main(rest) or 0
