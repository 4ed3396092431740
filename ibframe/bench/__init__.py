"""`python -m ibframe.bench [--quick] [--json FILE]`: how fast ibframe is, measured, next to a reference.

Owns: the benchmark cases and the machinery that runs them. Every part of a case runs in its own
fresh process (`python -m ibframe.bench.worker CASE PART`), is repeated, and is reported as
median / min / max; every run checks that it lost nothing (each message arrived, each update was
applied) and a run that did not is marked as failed, never averaged in. The cases, in table order:

1. throughput — market-data bursts from a loopback TWS-protocol server into the stock ibapi client,
   ib_async and ibframe's full path (Engine → dispatch → decoder → Router → state → Strategy), the last
   also with conflate=True (the delivery ib_async makes: a hook call per changed line per socket read), and the
   same bursts as protobuf at server version 226 into stock ibapi and ibframe (protobuf vs text);
2. latency    — tick-to-order round trips, ibframe (risk rules on; gc: freeze and gc: default) and ib_async,
   next to a bare-socket echo;
3. book       — OrderBook.apply on 10- and 20-level books, next to a plain list-based book;
4. replay     — recorded frames per second through ibframe.replay at speed max;
5. memory     — RSS over a long stream on 200 instruments (quotes, books, tick rings, bars);
6. historical — a year of 1-minute bars into Bars and out as a DataFrame.
7. journal_speed — executions per second into the compliance journal and each hook's cost (µs).
8. risk_gate  — what the pre-trade risk rules add to the tick → order path (all rules on vs off, µs).
9. writer_speed — the paced outgoing writer: no added latency under the limit, a burst that never trips TWS.
10. latency_load — tick → order on one instrument while 50 others stream at 50,000 msgs/s (10,000 with
    --quick; ibframe, ib_async).
11. order_encoding — ibapi's placeOrder text vs the lean encoder (µs per order).
12. sweep      — a parameter sweep's tasks on LocalCluster(2 workers) vs a sequential loop: speed-up, and per
    task start-up vs replay vs Dask's overhead.

Must never: be imported by the framework, or put a timing assertion into the test suite (the smoke
test runs --quick and checks only that every case ran and verified its counts).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field

CASES = ("throughput", "latency", "book", "replay_speed", "memory", "historical", "journal_speed", "risk_gate",
         "writer_speed", "latency_load", "order_encoding", "sweep")


@dataclass(slots=True)
class Row:
    """One line of the table: a measurement over the repeats of a case."""
    label: str
    unit: str
    samples: list[float]
    verified: bool
    note: str = ""
    digits: int = 0                 # decimals shown

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def low(self) -> float | None:
        return min(self.samples) if self.samples else None

    @property
    def high(self) -> float | None:
        return max(self.samples) if self.samples else None

    def as_dict(self) -> dict:
        return {"label": self.label, "unit": self.unit, "median": self.median, "min": self.low, "max": self.high,
                "samples": self.samples, "verified": self.verified, "note": self.note}


@dataclass(slots=True)
class CaseResult:
    """A case's rows, and what its runs said when they failed."""
    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def values(runs: list[dict], key: str) -> list[float]:
    """The `key` measurement of every run that verified."""
    return [r["values"][key] for r in runs if r.get("verified") and key in r.get("values", {})]


def all_verified(runs: list[dict]) -> bool:
    return bool(runs) and all(r.get("verified") for r in runs)
