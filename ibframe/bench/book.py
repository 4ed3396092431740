"""Case 3: order-book updates per second, ibframe's OrderBook next to a plain list-based book.

Owns: the part "book": the same valid L2 sequence (the burst server's depth generator: sizes
updated, levels deleted and inserted, never crossed) applied to OrderBook(10) and OrderBook(20) —
positional rows, a sorted price-level view, best prices, the never-crossed rule, hooks — and to
ListBook, the least a positional book can do (two plain lists, nothing indexed or checked).
Must never: count a run whose final book differs from the reference's.
"""
from __future__ import annotations

import time

from . import Row, all_verified, values
from .wire import depth_burst

TITLE = "order book (L2 updates applied, single thread)"
LEVELS = (10, 20)


class ListBook:
    """Positional rows in two plain lists (ask, bid): insert shifts down, delete shifts up."""

    def __init__(self, num_rows: int):
        self.num_rows = num_rows
        self.sides = ([], [])

    def apply(self, position: int, operation: int, side: int, price: float, size: float, maker: str = "") -> None:
        rows = self.sides[side]
        if operation == 0:
            rows.insert(position, (price, size, maker))
            del rows[self.num_rows:]
        elif operation == 1:
            if position < len(rows):
                rows[position] = (price, size, maker)
            else:
                rows.append((price, size, maker))
        else:
            del rows[position]


def size(quick: bool) -> int:
    return 50_000 if quick else 500_000


def parts(quick: bool) -> list[str]:
    return ["book"]


def run(part: str, quick: bool) -> dict:
    from ..market.book import ASK, BID, OrderBook
    n = size(quick)
    out, problems = {}, []
    for levels in LEVELS:
        burst = depth_burst(n, books=1, rows_per_side=levels)
        updates = [(r[2][0], r[2][2], r[2][3], float(r[2][4]), float(r[2][5]), r[2][1]) for r in burst.rows]
        for name, book in (("orderbook", OrderBook(levels)), ("list", ListBook(levels))):
            apply = book.apply
            started = time.perf_counter()
            for position, operation, side, price, qty, maker in updates:
                apply(position, operation, side, price, qty, maker)
            out[f"{name}_{levels}"] = len(updates) / (time.perf_counter() - started)
            if name == "orderbook":
                ours = book
            else:
                reference = book
        if ours.updates != len(updates) or ours.ignored or ours.uncrossed:
            problems.append(f"{levels} levels: {ours.updates} applied, {ours.ignored} ignored, "
                            f"{ours.uncrossed} uncrossed of {len(updates)}")
        bids, asks = ours.depth()
        if bids != reference.sides[BID] or asks != reference.sides[ASK]:
            problems.append(f"{levels} levels: the final book differs from the list reference")
    return {"values": out, "verified": not problems, "detail": "; ".join(problems) or f"{n:,} updates per book"}


def rows(runs: dict[str, list[dict]], quick: bool) -> list[Row]:
    book = runs.get("book", [])
    ok = all_verified(book)
    out = []
    for levels in LEVELS:
        out.append(Row(f"OrderBook.apply, {levels} levels", "upd/s", values(book, f"orderbook_{levels}"), ok,
                       note=f"{size(quick):,} updates"))
        out.append(Row(f"plain list-based book, {levels} levels", "upd/s", values(book, f"list_{levels}"), ok))
    return out
