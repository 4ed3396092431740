"""`python -m ibframe.history_cli AAPL --start 2026-11-02 --end 2026-11-20` (also `ibframe history`): bars to a file.

Owns: the command line of a history download — which contract (a symbol with its options, or an instrument
of a strategy YAML), which gateway (the embedded simulator, started the way `ibframe.run` starts it, or a
TWS / IB Gateway at HOST:PORT), checking the request before anything connects, the output file (Parquet or
CSV, by its suffix) and the exit codes: 0 written, 1 the download failed part-way, 2 a request or setup
error (bad dates, bar size, contract, gateway), 130 Ctrl-C. The download itself is `ibframe.history`'s
(chunked, cached under the state folder, paced as IB requires); the gateway and the connection are
`ibframe.run`'s Runner.
Must never: place an order, or leave a half-written output file (it is written under a temporary name,
then renamed).
"""
from __future__ import annotations

import argparse
import functools
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
from ibapi.contract import Contract

from .config import ConfigError, GatewayConfig, RunConfig, gateway_option, load_config
from .contracts import ContractError, from_mapping, label
from .history import HistoryError, check_request, history, plan_chunks
from .pacing import PacingLimits
from .progress import progress, seconds_text
from .router import RequestError
from .run import Runner, RunError, prepare_process

CLIENT_ID = 91                     # default: not the 1 a strategy run usually holds, so both can connect at once
SUFFIXES = (".parquet", ".csv")
UNIT_SECONDS = {"sec": 1, "min": 60, "hour": 3600, "day": 86400, "week": 7 * 86400, "month": 30 * 86400}
CONFIG_FORM = re.compile(r"^(?P<path>.+\.ya?ml)(?::(?P<name>[^:]+))?$", re.IGNORECASE)

EXAMPLES = """\
examples:
  ibframe history AAPL --start 2026-11-02 --end 2026-11-21
      1-minute TRADES bars of AAPL (SMART, USD) for 2 to 20 November, all hours, from the embedded
      simulator, into AAPL_1min_TRADES_20261102_20261121.parquet
  ibframe history SPY --start 2026-01-01 --end 2026-07-01 --bar "1 hour" --rth --out spy.csv
  ibframe history EUR.USD --sec-type CASH --what MIDPOINT --start 2026-11-16 --end 2026-11-17 \\
      --gateway 127.0.0.1:7497
      from TWS paper trading (IB Gateway paper: 4002); TWS must be running with its API enabled
  ibframe history config/ma_cross.yaml:AAPL --start 2026-11-02 --end 2026-11-21
      the instrument AAPL of that strategy YAML, with its gateway, simulator settings and state_dir

Times are New York time unless --tz says otherwise; END is exclusive (bars that start before it), so
--start 2026-11-02 --end 2026-11-21 is 2 to 20 November. Chunks already downloaded are kept under
STATE_DIR/history/ and not asked for again. IB answers at most about 60 requests per 10 minutes, so a
long range of small bars takes a while: the progress shows chunks done and the time left.
"""


@dataclass(slots=True)
class Download:
    """What the command line asks for, checked before connecting."""
    cfg: RunConfig
    contract: Contract
    start: pd.Timestamp                # UTC
    end: pd.Timestamp                  # UTC, exclusive
    bar_size: str
    what: str
    use_rth: bool
    tz: str
    out: Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ibframe history", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        usage="ibframe history SYMBOL|CONFIG.yaml[:NAME] --start START --end END [--bar 1 min] [--what TRADES]\n"
              "                       [--rth] [--gateway sim|HOST:PORT] [--out FILE.parquet|FILE.csv] [options]",
        description="Download historical bars from TWS / IB Gateway (or the embedded simulator) into a Parquet or\n"
                    "CSV file: as many requests as IB needs for the range, paced as IB requires, and cached.")
    p.add_argument("instrument", metavar="SYMBOL|CONFIG.yaml[:NAME]",
                   help="a symbol (AAPL; EUR.USD with --sec-type CASH), or an instrument NAME of a strategy YAML "
                        "(the only one when it has one), whose gateway, sim and state_dir keys are used too")
    p.add_argument("--start", required=True, help="first time, e.g. 2026-11-02 or '2026-11-02 09:30'")
    p.add_argument("--end", required=True, help="end time, exclusive, e.g. 2026-11-21 (bars before it)")
    p.add_argument("--bar", nargs="+", default=["1 min"], metavar="SIZE",
                   help="bar size: 1 secs, 5 secs, … 1 min, 5 mins, … 1 hour, 1 day, 1 week, 1 month "
                        "(default 1 min; 5mins works too)")
    p.add_argument("--what", default="TRADES", help="whatToShow: TRADES (default), MIDPOINT, BID, ASK, BID_ASK, …")
    p.add_argument("--rth", action="store_true", help="regular trading hours only (default: all hours)")
    p.add_argument("--tz", default="America/New_York", help="time zone of --start/--end and of the file's times "
                                                            "(default America/New_York)")
    contract = p.add_argument_group("the contract, with a SYMBOL")
    contract.add_argument("--sec-type", default="STK", help="STK (default) or CASH; for futures, options and "
                                                           "more, name an instrument of a YAML instead")
    contract.add_argument("--exchange", help="default SMART (IDEALPRO for CASH)")
    contract.add_argument("--currency", default="USD", help="default USD")
    gateway = p.add_argument_group("where from")
    gateway.add_argument("--gateway", help="'sim': start the embedded simulator (the default, or the YAML's "
                                           "gateway); HOST:PORT: a running TWS (paper 7497) or IB Gateway "
                                           "(paper 4002)")
    gateway.add_argument("--client-id", type=int, default=CLIENT_ID,
                         help=f"TWS API client id (default {CLIENT_ID}, so a strategy running as client 1 "
                              f"can stay connected)")
    gateway.add_argument("--live", action="store_true", help="allow a live port (7496/4001); history only reads")
    output = p.add_argument_group("output")
    output.add_argument("--out", metavar="FILE", help="FILE.parquet or FILE.csv (default "
                                                      "SYMBOL_BAR_WHAT_START_END.parquet here)")
    output.add_argument("--state-dir", help="the cache's folder (default: the YAML's state_dir, else var)")
    output.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    output.add_argument("--no-progress", action="store_true",
                        help="no progress (default: a bar on a terminal, else a log line every 10 s and at the end)")
    return p


def plan(args) -> Download:
    """The checked request; ConfigError, ContractError or ValueError saying what to change."""
    try:
        ZoneInfo(args.tz)
    except (ValueError, KeyError):
        raise ValueError(f"--tz {args.tz!r} is not a time zone; e.g. America/New_York, Europe/London, UTC") from None
    first, last, size, what = check_request(args.start, args.end, " ".join(args.bar), args.what, args.tz)
    found = CONFIG_FORM.match(args.instrument)
    if found:
        cfg = load_config(found["path"])
        contract = _config_instrument(cfg, found["name"])
    else:
        cfg = RunConfig(source="ibframe history", strategies=[])
        contract = _contract(args)
    cfg.gateway = _gateway(args, cfg.gateway)
    if args.state_dir:
        cfg.state_dir = args.state_dir
    name = _default_name(contract, size, what, first, last, args.tz)
    out = Path(args.out) if args.out else Path(name)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder: give a file name in it, e.g. {out / name}")
    if out.suffix.lower() not in SUFFIXES:
        raise ValueError(f"--out {out}: the file name must end in .parquet or .csv (that picks the format)")
    return Download(cfg, contract, first, last, size, what, args.rth, args.tz, out)


def _contract(args) -> Contract:
    sec_type = args.sec_type.upper()
    symbol = args.instrument.strip()
    if sec_type == "CASH" and "." in symbol:
        spec = {"pair": symbol.upper()}
        if args.exchange:
            spec["exchange"] = args.exchange
        return from_mapping(spec)
    spec = {"secType": sec_type, "symbol": symbol.upper(), "currency": args.currency.upper(),
            "exchange": args.exchange or ("IDEALPRO" if sec_type == "CASH" else "SMART")}
    return from_mapping(spec)


def _config_instrument(cfg: RunConfig, name: str | None) -> Contract:
    instruments = {n: c for s in cfg.strategies for n, c in s.instruments.items()}
    if name is None:
        if len(instruments) == 1:
            return next(iter(instruments.values()))
        raise ValueError(f"{cfg.source} has {len(instruments)} instruments ({', '.join(instruments)}): name one, "
                         f"e.g. {cfg.source}:{next(iter(instruments), 'NAME')}")
    if name not in instruments:
        raise ValueError(f"{cfg.source} has no instrument {name!r}; its instruments: {', '.join(instruments)}")
    return instruments[name]


def _gateway(args, configured: GatewayConfig) -> GatewayConfig:
    """--gateway, else the YAML's gateway (default: the embedded simulator), connected as --client-id."""
    if args.gateway is None:
        return GatewayConfig(configured.kind, configured.host, configured.port, args.client_id,
                             configured.live or args.live)
    return gateway_option(args.gateway, args.client_id, args.live,
                          live_hint="pass --live to read history from it (this command never trades), or use a "
                                    "paper port (7497/4002)")


def _default_name(contract: Contract, size: str, what: str, first: pd.Timestamp, last: pd.Timestamp,
                  tz: str) -> str:
    name = re.sub(r"[^A-Za-z0-9.]+", "_", label(contract)).strip("_") or "bars"
    return (f"{name}_{size.replace(' ', '')}_{what}_{first.tz_convert(tz):%Y%m%d}_"
            f"{last.tz_convert(tz):%Y%m%d}.parquet")


def pacing_note(job: Download) -> str | None:
    """A warning when the range takes more requests than IB's historical pacing lets through at once (the
    pacing of bars of 30 s and less, ibframe.pacing)."""
    limits = job.cfg.pacing or PacingLimits()
    count, unit = job.bar_size.split()
    seconds = int(count) * next(v for k, v in UNIT_SECONDS.items() if unit.startswith(k))
    if seconds > limits.historical_paced_bar_seconds:
        return None
    requests = len(plan_chunks(job.start, job.end, job.bar_size)) * (2 if job.what == "BID_ASK" else 1)
    if requests <= limits.historical_max:
        return None
    wait = (requests - limits.historical_max) / limits.historical_max * limits.historical_window
    return (f"note: {requests:,} requests for {job.bar_size} bars over this range; IB answers at most "
            f"{limits.historical_max} historical requests per {seconds_text(limits.historical_window)}, so this "
            f"takes about {seconds_text(wait)} unless they are cached (a larger --bar takes fewer requests)")


# --- the download --------------------------------------------------------------------------------------------

def connect(runner: Runner) -> None:
    """The gateway the way `ibframe run` starts and connects it; RunError saying what to start when nothing
    listens there."""
    gw = runner.start_gateway()
    runner.engine = runner.make_engine(gw)
    try:
        runner.connect()
    except RunError as exc:
        if "refused" in str(exc):
            raise RunError(f"{exc} Or start the simulated gateway there: ibframe sim --port {gw.port} (or use "
                           f"--gateway sim to start one inside this command)") from None
        raise


def download(job: Download, show_progress: bool, use_cache: bool) -> pd.DataFrame:
    """Connect, qualify, fetch; the runner (gateway, engine) is stopped whatever happens."""
    runner = Runner(job.cfg)
    try:
        connect(runner)
        try:
            contract = runner.engine.qualify(job.contract)
        except TimeoutError:
            raise ContractError(f"{label(job.contract)}: no answer to the contract look-up in time; is the gateway's "
                                f"security definition server up (notice 2158)?") from None
        except RequestError as exc:
            raise ContractError(f"{label(job.contract)}: {exc}") from None
        shown = functools.partial(progress, console=True) if show_progress else False
        return history(runner.engine, contract, job.start, job.end, job.bar_size, job.what, job.use_rth,
                       cache=use_cache, progress=shown, tz=job.tz)
    finally:
        runner.stop()


def write(frame: pd.DataFrame, out: Path) -> Path:
    """Parquet or CSV by the suffix, under a temporary name first, then renamed; the absolute path."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        if out.suffix.lower() == ".csv":
            frame.to_csv(tmp)
        else:
            frame.to_parquet(tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def describe(frame: pd.DataFrame, job: Download) -> list[str]:
    """What was downloaded: how many bars, the first and the last."""
    hours = "regular hours" if job.use_rth else "all hours"
    span = f"{job.start.tz_convert(job.tz):%Y-%m-%d %H:%M} to {job.end.tz_convert(job.tz):%Y-%m-%d %H:%M} {job.tz}"
    lines = [f"{label(job.contract)} {job.bar_size} {job.what} bars, {hours}, {span}: {len(frame):,} bars"]
    if len(frame):
        width = max(len(f"{t}") for t in frame.index[[0, -1]])
        for name, (when, bar) in (("first", next(frame.iterrows())), ("last ", (frame.index[-1], frame.iloc[-1]))):
            lines.append(f"{name} bar {str(when):<{width}}  open {bar.open:g}  high {bar.high:g}  low {bar.low:g}  "
                         f"close {bar.close:g}  volume {bar.volume:,.0f}")
    else:
        lines.append("no bars in that range: was the market closed then (weekend, holiday, --rth), or is the "
                     "range after the gateway's current time?")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        job = plan(args)
    except (ConfigError, ContractError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    prepare_process(job.cfg)
    long_wait = pacing_note(job)
    if long_wait:
        print(long_wait, file=sys.stderr)
    try:
        frame = download(job, not args.no_progress, not args.no_cache)
    except (RunError, ContractError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except HistoryError as exc:
        print(f"error: the download stopped: {exc}. Chunks already fetched are cached: the same command goes on "
              f"from there", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: chunks already fetched are cached; the same command goes on from there", file=sys.stderr)
        return 130
    try:
        path = write(frame, job.out)
    except OSError as exc:
        print(f"error: cannot write {job.out}: {exc.strerror or exc}; choose another --out", file=sys.stderr)
        return 2
    print("\n".join(describe(frame, job)))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
