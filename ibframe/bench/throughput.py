"""Case 1: market-data throughput, the stock ibapi client against ibframe's full path.

Owns: the parts "<variant>/<client>" — variants l1 (tickPrice/tickSize over 8 instruments), tbt
(tick-by-tick BidAsk/AllLast/MidPoint) and depth (updateMktDepthL2 on four 10-level books); clients
stock and ibframe (see clients.py). A part starts a burst server in its own process, runs one burst
of N messages (200,000; --quick 20,000) and reports messages per second from the start sentinel to
the end sentinel; the run fails unless every message arrived where it belongs.
Must never: compare runs with different N, or count a run that lost messages.
"""
from __future__ import annotations

from . import Row, all_verified, values
from .server import ServerProcess

TITLE = "market-data throughput (burst over loopback)"
VARIANTS = {"l1": "L1 tickPrice/tickSize, 8 instruments", "tbt": "tick-by-tick, 4 subscriptions",
            "depth": "L2 depth, 4 books x 10 levels"}


def size(quick: bool) -> int:
    return 20_000 if quick else 200_000


def parts(quick: bool) -> list[str]:
    return [f"{v}/{c}" for v in VARIANTS for c in ("stock", "ibframe")]


def repeats(part: str, quick: bool) -> int | None:
    """The stock client is slow on a burst (seconds to a minute per run): fewer runs of it."""
    return 3 if part.endswith("/stock") and not quick else None


def run(part: str, quick: bool) -> dict:
    from . import clients
    variant, client = part.split("/")
    with ServerProcess("burst", variant=variant, n=size(quick)) as server:
        leg = clients.run_stock if client == "stock" else clients.run_ibframe
        result = leg(server, variant)
    rate = result["messages"] / result["seconds"] if result["seconds"] > 0 else 0.0
    return {"values": {"msgs_per_s": rate}, "verified": result["verified"], "detail": result["detail"]}


def rows(runs: dict[str, list[dict]], quick: bool) -> list[Row]:
    out = []
    for variant, title in VARIANTS.items():
        stock, ours = runs.get(f"{variant}/stock", []), runs.get(f"{variant}/ibframe", [])
        a, b = values(stock, "msgs_per_s"), values(ours, "msgs_per_s")
        out.append(Row(f"{title}: stock ibapi", "msgs/s", a, all_verified(stock)))
        out.append(Row(f"{title}: ibframe full path", "msgs/s", b, all_verified(ours),
                       note=_spread(b)))
        ratios = [y / x for x, y in zip(a, b) if x > 0]
        out.append(Row(f"{title}: ratio ibframe / stock", "x", ratios, all_verified(stock) and all_verified(ours),
                       note=f"{size(quick):,} msgs per burst", digits=1))
    return out


def _spread(samples: list[float]) -> str:
    return f"max/min {max(samples) / min(samples):.2f}" if samples and min(samples) > 0 else ""
