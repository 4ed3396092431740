"""`history()`: a long range of historical bars as one DataFrame, fetched in requests IB accepts and cached.

Owns: cutting [start, end) into chunks of the longest duration IB serves for the bar size (IB's "step
sizes", reference notes §3), sending one `engine.bars(...)` request per chunk that is not cached (through
the engine's request scheduler, so IB's pacing is obeyed), the Parquet cache under
`<state_dir>/history/`, its progress (ibframe.progress: a bar on a terminal, log lines elsewhere), and
merging the chunks into one sorted, tz-aware frame.

Chunks lie on a fixed grid in New York time (the zone `Bars` dates daily bars in), so every bar of the
bar size falls inside exactly one chunk and a later call with another range reuses the same files. A
chunk still open (its end is after the gateway's "now") is never cached.

Must never run on the dispatch thread (it waits for TWS's answers, which arrive there), and never write
a cache file that could be incomplete (open chunks, failed requests; files are written atomically).
"""
from __future__ import annotations

import logging
import os
import re
import time
from concurrent.futures import CancelledError, TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

import pandas as pd

from .contracts import label
from .market.bars import COLUMNS, parse_bar_time
from .progress import Progress, progress as show_progress
from .router import RequestError

log = logging.getLogger("ibframe.history")

GRID_TZ = ZoneInfo("America/New_York")      # chunk boundaries: midnights here (Bars dates day bars here)
DAY = 86400
MAX_OUTSTANDING = 60                        # chunk requests handed to the scheduler at once
# bar size -> (grid unit, chunk length in that unit, duration asked for); the duration covers the chunk
# with room to spare for a 25-hour day, and is the longest IB's step table allows for the bar size
CHUNKS: dict[str, tuple[str, int, str]] = {
    "1 secs": ("sec", 1800, "1800 S"), "5 secs": ("sec", 3600, "3600 S"),
    "10 secs": ("sec", 14400, "14400 S"), "15 secs": ("sec", 14400, "14400 S"),
    "30 secs": ("sec", 28800, "28800 S"), "1 min": ("sec", DAY, "86400 S"), "2 mins": ("sec", DAY, "86400 S"),
    **dict.fromkeys(("3 mins", "5 mins", "10 mins", "15 mins", "20 mins"), ("day", 6, "1 W")),
    **dict.fromkeys(("30 mins", "1 hour", "2 hours", "3 hours", "4 hours", "8 hours"), ("day", 27, "1 M")),
    "1 day": ("day", 360, "1 Y"), "1 week": ("week", 48, "1 Y"), "1 month": ("month", 12, "2 Y"),
}
ALIASES = {"1 sec": "1 secs", "1 mins": "1 min", "1 hours": "1 hour", "1 days": "1 day", "1W": "1 week",
           "1 W": "1 week", "1 weeks": "1 week", "1M": "1 month", "1 M": "1 month", "1 months": "1 month"}
BAR_WHATS = ("TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK", "HISTORICAL_VOLATILITY", "OPTION_IMPLIED_VOLATILITY",
             "FEE_RATE", "REBATE_RATE", "YIELD_BID", "YIELD_ASK", "YIELD_BID_ASK", "YIELD_LAST", "AGGTRADES")
NO_DATA = re.compile(r"no data", re.IGNORECASE)          # 162 "HMDS query returned no data": an empty chunk


class HistoryError(RuntimeError):
    """A chunk could not be fetched; the text names the instrument, the chunk and TWS's answer."""


@dataclass(slots=True, frozen=True)
class Chunk:
    start: pd.Timestamp          # UTC, inclusive
    end: pd.Timestamp            # UTC, exclusive
    duration: str                # what is asked for, ending at `end`

    def name(self) -> str:
        return f"{self.start:%Y%m%dT%H%M%S}-{self.end:%Y%m%dT%H%M%S}"


def history(engine, contract, start, end, bar_size: str = "1 min", what: str = "TRADES", use_rth: bool = False,
            cache: bool = True, progress: bool | None | Callable[..., Progress] = None, *,
            tz: str = "America/New_York", timeout: float = 60.0) -> pd.DataFrame:
    """Bars of `contract` (qualified: conId set) from `start` (inclusive) to `end` (exclusive).

    `start`/`end`: anything pandas reads as a time (str, datetime, Timestamp); without a zone they are in
    `tz`. Returns columns open, high, low, close, volume, wap, count, indexed by the bar's start time in
    `tz`, sorted, each time once. Blocking: call it from your own thread or `Strategy.on_init`, never from
    a strategy callback. `cache`: read and write `<engine.state_dir>/history/…`; `progress` (chunks done,
    ibframe.progress): None a tqdm bar on stderr when it is a terminal, else a log line every 10 s and
    one at the end; True always the bar; False nothing; or your own `f(total, what, unit)` returning a
    `Progress` (e.g. `functools.partial(ibframe.progress.progress, console=True)`). `timeout`: seconds
    TWS may take to answer a request once it is sent (waiting in the pacing queue does not count).
    """
    if engine.dispatcher.in_dispatch_thread():
        raise RuntimeError("history() waits for TWS's answers, and strategy callbacks run on the dispatch thread "
                           "that delivers them: call it from Strategy.on_init() or your own thread")
    first, last, size, what = check_request(start, end, bar_size, what, tz)
    if not getattr(contract, "conId", 0):
        raise ValueError(f"{label(contract)} has no conId: qualify it first, e.g. contract = engine.qualify(contract) "
                         f"(the cache is keyed by conId)")
    chunks = plan_chunks(first, last, size)
    folder = _folder(engine, contract, size, what, use_rth) if cache else None
    frames = _fetch(engine, contract, chunks, size, what, use_rth, folder, _progress(progress, len(chunks),
                    f"{label(contract)} {size} {what}"), timeout)
    frame = pd.concat([f for f in frames if len(f)] or [_empty()])
    frame = frame[~frame.index.duplicated(keep="last")].sort_index()
    frame = frame[(frame.index >= first) & (frame.index < last)]
    frame.index = frame.index.tz_convert(tz)
    frame.index.name = "time"
    return frame


# --- input -------------------------------------------------------------------------------------------

def check_request(start, end, bar_size: str = "1 min", what: str = "TRADES", tz: str = "America/New_York"
                  ) -> tuple[pd.Timestamp, pd.Timestamp, str, str]:
    """(start, end in UTC, the bar size and whatToShow in IB's spelling) as history() reads its arguments,
    without connecting; ValueError saying what is wrong (a command line checks before it connects)."""
    size = _bar_size(bar_size)
    what = str(what).upper()
    if what not in BAR_WHATS:
        raise ValueError(f"whatToShow {what!r} is not available for history(); use one of {', '.join(BAR_WHATS)} "
                         f"(ADJUSTED_LAST cannot be asked for a past end date, so it cannot be fetched in chunks)")
    first, last = _when(start, tz, "start"), _when(end, tz, "end")
    if first >= last:
        raise ValueError(f"start {first} is not before end {last}: history() returns bars in [start, end)")
    return first, last, size, what


def _bar_size(text: str) -> str:
    size = re.sub(r"^(\d+)(?=[A-Za-z])", r"\1 ", " ".join(str(text).split()))      # '5mins' -> '5 mins'
    size = ALIASES.get(size, size)
    if size not in CHUNKS:
        raise ValueError(f"unknown bar size {text!r}; IB's bar sizes are: {', '.join(CHUNKS)}")
    return size


def _when(value, tz: str, name: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name} {value!r} is not a time pandas can read ({exc}); e.g. '2024-03-01 09:30'") from None
    if ts is pd.NaT:
        raise ValueError(f"{name} is missing (NaT)")
    if ts.tzinfo is None:
        ts = ts.tz_localize(tz)
    return ts.tz_convert("UTC")


# --- chunks ------------------------------------------------------------------------------------------

def _midnight(day: date) -> pd.Timestamp:
    return pd.Timestamp(datetime(day.year, day.month, day.day, tzinfo=GRID_TZ)).tz_convert("UTC")


def plan_chunks(first: pd.Timestamp, last: pd.Timestamp, bar_size: str) -> list[Chunk]:
    """The grid chunks that cover [first, last) for this bar size, oldest first."""
    unit, length, duration = CHUNKS[bar_size]
    day = first.tz_convert(GRID_TZ).date()
    if unit == "day":
        day = date.fromordinal(day.toordinal() // length * length)
    elif unit == "week":
        day = date.fromordinal(((day.toordinal() - 1) // 7 // length * length) * 7 + 1)      # a Monday
    elif unit == "month":
        day = date(day.year // (length // 12) * (length // 12), 1, 1)
    chunks: list[Chunk] = []
    while True:
        if unit == "sec":
            following = day + timedelta(days=1)
            a, stop = _midnight(day), _midnight(following)
            edges = list(range(0, int((stop - a).total_seconds()), length)) + [int((stop - a).total_seconds())]
            pieces = [(a + pd.Timedelta(seconds=s), a + pd.Timedelta(seconds=e)) for s, e in zip(edges, edges[1:])]
        else:
            if unit == "day":
                following = day + timedelta(days=length)
            elif unit == "week":
                following = day + timedelta(weeks=length)
            else:
                following = date(day.year + length // 12, 1, 1)
            pieces = [(_midnight(day), _midnight(following))]
        chunks += [Chunk(s, e, duration) for s, e in pieces if e > first and s < last]
        if _midnight(following) >= last:
            return chunks
        day = following


# --- the cache -----------------------------------------------------------------------------------------

def _folder(engine, contract, size: str, what: str, use_rth: bool) -> Path:
    exchange = re.sub(r"[^A-Za-z0-9]+", "_", contract.exchange or "any")
    return (Path(engine.state_dir) / "history" / f"{contract.conId}-{exchange}" /
            f"{what}-{'rth' if use_rth else 'all'}-{size.replace(' ', '')}")


def _read(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        frame = pd.read_parquet(path)
        frame = frame.set_index("time")
        frame.index = pd.DatetimeIndex(frame.index).tz_convert("UTC")
        return frame
    except Exception as exc:                      # a damaged file: fetch the chunk again
        log.warning("history cache file %s unreadable (%s); fetching that chunk again", path, exc)
        return None


def _write(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.reset_index().to_parquet(tmp, index=False)
    os.replace(tmp, path)


def _empty() -> pd.DataFrame:
    frame = pd.DataFrame({name: pd.Series(dtype="int64" if name == "count" else "float64") for name in COLUMNS})
    frame.index = pd.DatetimeIndex([], tz="UTC", name="time")
    return frame


# --- fetching ----------------------------------------------------------------------------------------------

def _progress(progress, total: int, what: str) -> Progress:
    if callable(progress):
        return progress(total, f"history {what}", "chunk")
    return show_progress(total, f"history {what}", "chunk", enabled=None if progress is None else bool(progress))


def _fetch(engine, contract, chunks: list[Chunk], size: str, what: str, use_rth: bool, folder: Path | None,
           bar: Progress, timeout: float) -> list[pd.DataFrame]:
    frames: list[pd.DataFrame | None] = [_read(folder / f"{c.name()}.parquet") if folder is not None else None
                                         for c in chunks]
    todo: list[int] = []
    if any(f is None for f in frames):            # the gateway's now (a simulator's may be pinned): asked only when
        now = pd.Timestamp(engine.gateway_time(), unit="s", tz="UTC")   # something is not cached
    for i, chunk in enumerate(chunks):
        if frames[i] is not None:
            continue
        if chunk.start >= now:
            frames[i] = _empty()                  # all of it still to come
        else:
            todo.append(i)
    bar.update(len(chunks) - len(todo))
    asked: dict[int, object] = {}
    try:
        for n, i in enumerate(todo):
            while len(asked) < MAX_OUTSTANDING and n + len(asked) < len(todo):
                j = todo[n + len(asked)]
                asked[j] = _ask(engine, contract, chunks[j], size, what, use_rth, now)
            req = asked.pop(i)
            frame, complete = _answer(engine, req, contract, chunks[i], size, what, now, timeout)
            frames[i] = frame
            if folder is not None and complete:
                _write(folder / f"{chunks[i].name()}.parquet", frame)
            bar.update(1)
    finally:
        for req in asked.values():
            engine.cancel(req)
        bar.close()
    return frames


def _ask(engine, contract, chunk: Chunk, size: str, what: str, use_rth: bool, now: pd.Timestamp):
    end = "" if chunk.end > now else f"{chunk.end:%Y%m%d-%H:%M:%S}"          # open chunk: up to now
    return engine.bars(contract, size, chunk.duration, what, use_rth, keep_up_to_date=False, end=end)


def _answer(engine, req, contract, chunk: Chunk, size: str, what: str, now: pd.Timestamp,
            timeout: float) -> tuple[pd.DataFrame, bool]:
    """(the chunk's bars, whether the chunk is complete and may be cached)."""
    where = f"{label(contract)} {size} {what} bars {chunk.start} to {chunk.end}"
    try:
        bars = _wait(engine, req, timeout, where)
    except RequestError as exc:
        if exc.error.code == 162 and NO_DATA.search(exc.error.text or ""):
            return _empty(), chunk.end <= now
        raise HistoryError(f"{where}: {exc}") from None
    except CancelledError:
        raise HistoryError(f"{where}: the request was cancelled (is the engine stopping?)") from None
    frame = bars.to_frame()
    frame.index = frame.index.tz_convert("UTC")
    frame = frame[(frame.index >= chunk.start) & (frame.index < chunk.end)]
    return frame, _complete(bars, chunk, now)


def _complete(bars, chunk: Chunk, now: pd.Timestamp) -> bool:
    """Closed by our clock and, when TWS said where the answer ends, by TWS's clock too."""
    if chunk.end > now:
        return False
    try:
        answered_to = parse_bar_time(bars.load_end) if bars.load_end else None
    except ValueError:
        answered_to = None
    return answered_to is None or answered_to >= chunk.end.value


def _wait(engine, req, timeout: float, where: str):
    waiting = getattr(engine.scheduler, "waiting", None)
    sent_since = None
    while True:
        try:
            return req.future.result(0.2)
        except FutureTimeout:
            pass
        if waiting is not None and engine.on_dispatch(waiting, req) is not None:
            sent_since = None                     # still queued for pacing: that does not count
            continue
        sent_since = sent_since or time.monotonic()
        if time.monotonic() - sent_since > timeout:
            raise HistoryError(f"{where}: no answer from TWS within {timeout:g} s of sending the request; "
                               f"is the historical data farm up (notices 2105/2106)? Raise timeout= to wait longer")
