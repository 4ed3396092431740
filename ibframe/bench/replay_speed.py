"""Case 4: replay speed — recorded frames per second through ibframe.replay at speed max.

Owns: writing a recording by hand (ibframe.record.write_recording, server version 176: a startup,
the contract details the runner's qualify asks for, then an L1 burst on EUR.USD), replaying it into
CountQuotes (a trivial strategy that reads every quote) with ibframe.replay's runner, and timing the
play phase (frames through JSON parsing, the Decoder, the Router, the Quote and the strategy) and
the whole replay (loading, setup and play). Parts: "jsonl" and "jsonl.gz" recordings.
Must never: count a replay that reported a problem, a divergence or a lost frame.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ..strategy import Strategy
from . import Row, all_verified, values

TITLE = "replay speed (ibframe.replay, speed max, recorded L1 frames)"
VERSION = 176
# contractDetails for EUR.USD at server version 176 (the layout of a real TWS's answer)
DETAILS = ["10", "1000000000", "EUR", "CASH", "", "0", "", "IDEALPRO", "USD", "EUR.USD", "EUR.USD", "EUR.USD",
           "12087792", "0.00005", "", "LMT,MKT", "IDEALPRO", "1", "0", "European Monetary Union Euro", "", "", "",
           "", "", "US/Eastern", "", "", "", "", "0", "4", "", "", "3188", "", "", "0.01", "0.01", "0.01"]


class CountQuotes(Strategy):
    """Subscribes its one instrument and reads the quote on every change."""

    def on_start(self):
        self.instrument = next(iter(self.instruments))
        self.live = self.quote(self.instrument)
        self.seen = 0
        self.mid = None

    def on_quote(self, instrument, quote):
        self.seen += 1
        self.mid = quote.mid


def size(quick: bool) -> int:
    return 20_000 if quick else 200_000


def parts(quick: bool) -> list[str]:
    return ["jsonl", "jsonl.gz"]


def write(path: Path, n: int) -> dict:
    """The recording; returns the burst's counts."""
    from ..ids import REQUEST_ID_BASE
    from ..record import write_recording
    from .wire import l1_burst
    rid = str(REQUEST_ID_BASE + 1)
    burst = l1_burst(n, instruments=1)
    events = [{"type": "out"},                                                  # startApi
              {"type": "in", "fields": ["15", "1", "DU1234567"]},
              {"type": "in", "fields": ["9", "1", "1"]},
              {"type": "out"},                                                  # reqContractDetails
              {"type": "in", "fields": DETAILS},
              {"type": "in", "fields": ["52", "1", str(REQUEST_ID_BASE)]},
              {"type": "out"}, {"type": "out"},                                 # reqPositions, reqAccountUpdates
              {"type": "out"}]                                                  # reqMktData from on_start
    events += [{"type": "in", "fields": [str(msg_id), "6", rid] + [str(f) for f in rest]}
               for msg_id, _, rest in burst.rows]
    events.append({"type": "out"})                                              # cancelMktData at stop
    write_recording(path, events, server_version=VERSION)
    return burst.counts


def run(part: str, quick: bool) -> dict:
    from ..config import RunConfig, StrategyConfig
    from ..contracts import Forex
    from ..journal import JournalConfig
    from ..risk.config import RiskConfig
    from ..replay import prepare
    n = size(quick)
    with tempfile.TemporaryDirectory(prefix="ibframe-bench-replay-") as tmp:
        folder = Path(tmp)
        path = folder / f"burst.{part}"
        counts = write(path, n)
        # the hand-written session has no rail requests (journal reconcile, account summary): switch them off
        cfg = RunConfig(source="<bench>", state_dir=str(folder / "state"),
                        strategies=[StrategyConfig("ibframe.bench.replay_speed:CountQuotes", "count", {},
                                                   {"EURUSD": Forex("EUR.USD")})],
                        journal=JournalConfig(enabled=False),
                        risk=RiskConfig.from_mapping({"margin": False, "pdt": False}))
        started = time.perf_counter()
        runner = prepare(path, cfg, speed="max")
        try:
            runner.start()
            playing = time.perf_counter()
            runner.play(timeout=600)
            played = time.perf_counter()
        finally:
            runner.stop()
        total = time.perf_counter() - started
        result = runner.result()
    strategy = result.strategy()
    frames = 4 + n                                   # managedAccounts, nextValidId, contract details (2), the burst
    want = counts["tick_price"] + counts["tick_size"] + counts["size_after_price"]
    ok = (result.frames == frames and strategy.live.updates == want and not result.problems
          and not result.divergences and result.damage is None)
    detail = (f"{result.frames:,} frames (expected {frames:,}), {strategy.live.updates:,} quote updates "
              f"(expected {want:,}), problems {result.problems[:2]}, divergences {result.divergences[:2]}")
    return {"values": {"play_frames_per_s": n / (played - playing), "total_frames_per_s": n / total},
            "verified": ok, "detail": detail}


def rows(runs: dict[str, list[dict]], quick: bool) -> list[Row]:
    out = []
    for part in parts(quick):
        r = runs.get(part, [])
        out.append(Row(f".{part}: play phase", "frames/s", values(r, "play_frames_per_s"), all_verified(r),
                       note=f"{size(quick):,} frames"))
        out.append(Row(f".{part}: whole replay (load, setup, play)", "frames/s", values(r, "total_frames_per_s"),
                       all_verified(r)))
    return out
