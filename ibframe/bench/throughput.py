"""Case 1: market-data throughput, the stock ibapi client and ib_async next to ibframe's full path.

Owns: the parts "<variant>/<client>" — variants l1 (tickPrice/tickSize over 8 instruments), tbt
(tick-by-tick BidAsk/AllLast/MidPoint) and depth (updateMktDepthL2 on four 10-level books); clients
stock, ib_async and ibframe (clients.py, peer_ib_async.py), all against the same burst server with the
same stream. A part starts a burst server in its own process, runs one burst of N messages (200,000;
--quick 20,000) and reports messages per second from the server's stamp just before the start sentinel
to the client's handling of the end sentinel (one rule for all three); the run fails unless every
message arrived where it belongs. The parts of a variant alternate within each repeat (__main__).

What each client's code sees per message (the same reads are done on each delivery):
  * stock ibapi — one wrapper callback per message (tickPrice with a size: tickPrice, then tickSize);
    the wrapper only counts;
  * ibframe — on_quote per message that changed bid/ask/last or their sizes (volume-only ticks update the
    Quote silently), on_tick / on_depth per message; each reads bid/ask/mid/last/volume, the last tick,
    or the best bid/ask/mid;
  * ibframe-conflated — the same strategy with conflate=True on every line (not the sentinel): a hook call per
    changed line per pass of the dispatch queue (one socket read), every update still applied to the state;
  * ib_async — one ticker.updateEvent per changed ticker per socket read (all of the read's ticks listed
    on the Ticker); the same reads on each. Its "updates" value says how many deliveries that was.

The same three bursts as protobuf — variants l1-pb, tbt-pb, depth-pb — are served at server version 226 (4-byte
message ids; TICK_PRICE, TICK_SIZE, TICK_BY_TICK, MARKET_DEPTH_L2 as protobuf, as a TWS sends market data from
206) to the two clients that speak it, stock ibapi (its Decoder.processProtoBuf) and ibframe (its protobuf fast
decoder, ibframe/decoding_proto.py); the "protobuf@226 / text@200" rows pair each with its text run of the same
repeat: what protobuf costs on the wire-to-strategy path.
Must never: compare runs with different N, or count a run that lost messages.
"""
from __future__ import annotations

import statistics

from . import Row, all_verified, values
from .server import ServerProcess
from .wire import PROTOBUF_VERSION

TITLE = "market-data throughput (burst over loopback)"
VARIANTS = {"l1": "L1 tickPrice/tickSize, 8 instruments", "tbt": "tick-by-tick, 4 subscriptions",
            "depth": "L2 depth, 4 books x 10 levels",
            "l1-pb": f"L1 as protobuf @{PROTOBUF_VERSION}", "tbt-pb": f"tick-by-tick as protobuf @{PROTOBUF_VERSION}",
            "depth-pb": f"L2 depth as protobuf @{PROTOBUF_VERSION}"}
CLIENTS = ("stock", "ib_async", "ibframe", "ibframe-conflated")
PROTO_CLIENTS = ("stock", "ibframe")          # ib_async speaks up to 178: no protobuf


def clients_of(variant: str) -> tuple[str, ...]:
    return PROTO_CLIENTS if variant.endswith("-pb") else CLIENTS


def size(quick: bool) -> int:
    return 20_000 if quick else 200_000


def parts(quick: bool) -> list[str]:
    return [f"{v}/{c}" for v in VARIANTS for c in clients_of(v)]


def repeats(part: str, quick: bool) -> int | None:
    """The stock client is slow on a burst (seconds to a minute per run): fewer runs of it."""
    return 3 if part.endswith("/stock") and not quick else None


def run(part: str, quick: bool) -> dict:
    variant, client = part.split("/")
    proto = variant.endswith("-pb")
    variant = variant.removesuffix("-pb")
    more = {"version": PROTOBUF_VERSION, "proto": True} if proto else {}
    with ServerProcess("burst", variant=variant, n=size(quick), **more) as server:
        if client == "ib_async":
            from .peer_ib_async import run_burst as leg
        else:
            from . import clients
            if client == "stock":
                leg = clients.run_stock
            else:
                def leg(server, variant):
                    return clients.run_ibframe(server, variant, conflate=client == "ibframe-conflated")
        result = leg(server, variant)
    rate = result["messages"] / result["seconds"] if result["seconds"] > 0 else 0.0
    return {"values": {"msgs_per_s": rate, "updates": float(result.get("updates", 0))},
            "verified": result["verified"], "detail": result["detail"]}


DELIVERED = {"stock": "a callback per msg (2 for price+size)",
             "ib_async": "an update per changed ticker per socket read",
             "ibframe": "on_quote per top change, on_tick/on_depth per msg",
             "ibframe-conflated": "conflate=True: a hook call per changed line per socket read, as ib_async"}


def rows(runs: dict[str, list[dict]], quick: bool) -> list[Row]:
    out = []
    for variant, title in VARIANTS.items():
        clients = clients_of(variant)
        got = {c: runs.get(f"{variant}/{c}", []) for c in clients}
        rates = {c: values(got[c], "msgs_per_s") for c in clients}
        for client in clients:
            updates = values(got[client], "updates")
            note = (f"{DELIVERED[client]}: {statistics.median(updates):,.0f} deliveries" if updates
                    else DELIVERED[client])
            if client.startswith("ibframe"):
                note = f"{_spread(rates[client])}; {note}" if rates[client] else note
            out.append(Row(f"{title}: {client if client != 'stock' else 'stock ibapi'}", "msgs/s", rates[client],
                           all_verified(got[client]), note=note))
        if variant.endswith("-pb"):
            text = variant.removesuffix("-pb")
            for client in clients:
                plain = values(runs.get(f"{text}/{client}", []), "msgs_per_s")
                ratios = [y / x for x, y in zip(plain, rates[client]) if x > 0]
                label = client if client != "stock" else "stock ibapi"
                out.append(Row(f"{title}: {label} protobuf@{PROTOBUF_VERSION} / text@200", "x", ratios,
                               all_verified(got[client]) and all_verified(runs.get(f"{text}/{client}", [])),
                               note="msgs/s ratio; runs paired by repeat", digits=2))
        for ours, peer in (("ibframe", "ib_async"), ("ibframe", "stock"), ("ibframe-conflated", "ib_async")):
            if ours not in clients or peer not in clients:
                continue
            ratios = [y / x for x, y in zip(rates[peer], rates[ours]) if x > 0]
            out.append(Row(f"{title}: ratio {ours} / {peer}", "x", ratios,
                           all_verified(got[peer]) and all_verified(got[ours]),
                           note=f"{size(quick):,} msgs per burst; runs paired by repeat", digits=2))
    return out


def _spread(samples: list[float]) -> str:
    return f"max/min {max(samples) / min(samples):.2f}" if samples and min(samples) > 0 else ""
