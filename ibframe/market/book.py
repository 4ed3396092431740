"""Level-2 order book for one contract, maintained from IB market-depth callbacks.

Owns: the positional rows TWS describes through ``updateMktDepth`` /
``updateMktDepthL2`` (position, operation 0 insert / 1 update / 2 delete, side 0 ask /
1 bid, price, size, market maker) and a sorted price-level view (sortedcontainers) kept
in step with the rows, for best-price and per-level queries.

Must never: take locks, do I/O, call ibapi ``EClient``, or raise on a malformed update
(TWS streams are not always self-consistent; a bad row is counted in ``ignored``).
Updated ONLY on the framework's single dispatch thread.

Positional semantics (IB's): each side is a list of at most ``num_rows`` rows.
  * insert at p (0 <= p <= len, p < num_rows): rows at p.. shift down; the row pushed past
    ``num_rows`` falls off.
  * update at p (p < len): the row is replaced. An update at p == len (< num_rows) is
    treated as an append: TWS does this when a row appears at the bottom of the book.
  * delete at p (p < len): rows below shift up.
  * anything else (negative position, unknown side/operation, a gap) is ignored and
    counted.
  * a row whose price or size is NaN or infinite, or whose size is negative or above
    MAX_SIZE, is refused (``rejected``, also counted in ``ignored``).

Never crossed: after each applied operation, if best bid >= best ask the STALE side --
the side that was NOT just updated -- loses every row that crosses the fresh side's best
price (asks <= best bid, or bids >= best ask). The fresh side is the newest information
from the exchange; the stale side's crossing rows are levels whose delete has not arrived
yet. Removed rows are counted in ``uncrossed``.

Best prices come from the sorted view (highest bid, lowest ask), so they are right even
if a stream leaves rows out of price order; they are kept as levels appear and disappear,
so reading them costs nothing. ``depth`` returns rows in IB's positional order.

``check_invariants()`` lists what breaks the book's rules (empty when fine): at most
``num_rows`` rows a side, every row a finite price and a finite size >= 0, the sorted
price-level view exactly the rows' prices (sizes summed, rows counted), the cached best
prices the view's extremes, and best bid < best ask.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from math import isfinite
from typing import Callable

import pandas as pd
from sortedcontainers import SortedDict

NAN = float("nan")

__all__ = ["OrderBook", "BookRow", "ASK", "BID", "INSERT", "UPDATE", "DELETE"]

ASK, BID = 0, 1
MAX_SIZE = 1e15          # a row size above this is impossible (and would swamp a level's float sum): refused
INSERT, UPDATE, DELETE = 0, 1, 2
_SIDE_NAMES = {ASK: "ask", BID: "bid"}


@dataclass(slots=True, frozen=True)
class BookRow:
    price: float
    size: float
    market_maker: str = ""

    def as_tuple(self) -> tuple[float, float, str]:
        return (self.price, self.size, self.market_maker)


def _side(side: int | str) -> int:
    if isinstance(side, str):
        return {"ask": ASK, "bid": BID}[side.lower()]
    return int(side)


@dataclass(slots=True, eq=False)
class OrderBook:
    """Positional L2 book (``num_rows`` per side) plus a sorted price-level view."""

    num_rows: int = 10
    rows: dict[int, list[BookRow]] = field(init=False)
    # price -> [total size, row count]; count decides when a level disappears, so float
    # rounding in the size sum can never leave a phantom level behind.
    levels_view: dict[int, SortedDict] = field(init=False, repr=False)
    ignored: int = field(default=0, init=False)
    rejected: int = field(default=0, init=False)   # rows with a non-finite or negative price/size (also ignored)
    uncrossed: int = field(default=0, init=False)
    updates: int = field(default=0, init=False)
    updated: float | None = field(default=None, init=False)
    stale: bool = field(default=False, init=False)    # its farm or the connection is down (cleared on resubscribe)
    on_change: list[Callable[["OrderBook"], None]] = field(default_factory=list, repr=False)
    # best price per side ([ASK, BID]), kept in step with levels_view: read on every update
    _best: list = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.num_rows <= 0:
            raise ValueError("num_rows must be positive")
        self.rows = {ASK: [], BID: []}
        self.levels_view = {ASK: SortedDict(), BID: SortedDict()}
        self._best = [None, None]

    # ---- updating ---------------------------------------------------------------------------
    def apply(self, position: int, operation: int, side: int, price: float,
              size: Decimal | float, market_maker: str = "", time: float | None = None) -> bool:
        """Apply one depth callback; returns False (and counts it) when it was ignored."""
        try:
            side = _side(side)
            position = int(position)
            operation = int(operation)
        except (KeyError, TypeError, ValueError):
            self.ignored += 1
            return False
        if side not in _SIDE_NAMES or position < 0 or position >= self.num_rows:
            self.ignored += 1
            return False
        rows = self.rows[side]
        n = len(rows)
        if operation == DELETE:
            if position >= n:
                self.ignored += 1
                return False
            self._unindex(side, rows.pop(position))
        elif operation == INSERT or operation == UPDATE:
            try:
                price, size = float(price), float(size)
            except (TypeError, ValueError):
                price = size = NAN
            if not (isfinite(price) and isfinite(size)) or size < 0 or size > MAX_SIZE:
                self.rejected += 1                 # NaN/inf/negative never enter: the index and rows stay in step
                self.ignored += 1
                return False
            row = BookRow(price, size, market_maker or "")
            if operation == UPDATE and position < n:
                old = rows[position]
                rows[position] = row
                if old.price == row.price:
                    self._resize(side, old, row)
                else:
                    self._unindex(side, old)
                    self._index(side, row)
            elif position <= n:                    # insert, or update-as-append at n
                rows.insert(position, row)
                self._index(side, row)             # first: _unindex sums the rows left at a shared price
                if len(rows) > self.num_rows:
                    self._unindex(side, rows.pop())
            else:
                self.ignored += 1
                return False
            # the book was not crossed before, so only the fresh row can cross the other side
            other = self._best[1 - side]
            if other is not None and (row.price >= other if side == BID else row.price <= other):
                self._uncross(fresh=side)
        else:
            self.ignored += 1
            return False
        self.updates += 1
        self.updated = time
        if self.on_change:
            for hook in tuple(self.on_change):
                hook(self)
        return True

    def _index(self, side: int, row: BookRow) -> None:
        view = self.levels_view[side]
        level = view.get(row.price)
        if level is None:
            view[row.price] = [row.size, 1]
            best = self._best[side]
            if best is None or (row.price > best if side == BID else row.price < best):
                self._best[side] = row.price
        else:
            level[0] += row.size
            level[1] += 1

    def _unindex(self, side: int, row: BookRow) -> None:
        view = self.levels_view[side]
        level = view[row.price]
        level[1] -= 1
        if level[1] == 0:
            del view[row.price]
            if row.price == self._best[side]:
                self._best[side] = (view.peekitem(-1 if side == BID else 0)[0]) if view else None
        else:
            level[0] = self._level_size(side, row.price)

    def _resize(self, side: int, old: BookRow, row: BookRow) -> None:
        """A row replaced by one at the same price: the level's size changes as _unindex + _index would change it."""
        level = self.levels_view[side][row.price]
        level[0] = row.size if level[1] == 1 else self._level_size(side, row.price)

    def _level_size(self, side: int, price: float) -> float:
        """The size of the rows at `price`, summed afresh (never by subtraction: a huge size taken out of a float
        sum would leave the others' sizes lost in rounding). At most num_rows rows: cheap."""
        return sum(r.size for r in self.rows[side] if r.price == price)

    def _uncross(self, fresh: int) -> None:
        bid, ask = self.best_bid, self.best_ask
        if bid is None or ask is None or bid < ask:
            return
        stale = ASK if fresh == BID else BID
        if stale == ASK:
            crosses = lambda p: p <= bid      # noqa: E731 - tiny local predicate
        else:
            crosses = lambda p: p >= ask      # noqa: E731
        keep: list[BookRow] = []
        for row in self.rows[stale]:
            if crosses(row.price):
                self._unindex(stale, row)
                self.uncrossed += 1
            else:
                keep.append(row)
        self.rows[stale] = keep

    def clear(self) -> None:
        """Forget every row (e.g. before re-subscribing after a reconnect)."""
        for side in (ASK, BID):
            self.rows[side].clear()
            self.levels_view[side].clear()
        self._best = [None, None]

    def check_invariants(self) -> list[str]:
        """Every way the rows, the level view and the best prices disagree or break the rules (see the
        module docstring); an empty list when the book is sound."""
        problems: list[str] = []
        for side, name in _SIDE_NAMES.items():
            rows = self.rows[side]
            if len(rows) > self.num_rows:
                problems.append(f"{name}: {len(rows)} rows, more than num_rows={self.num_rows}")
            expected: dict[float, list] = {}
            for i, row in enumerate(rows):
                if not (isfinite(row.price) and isfinite(row.size)) or row.size < 0:
                    problems.append(f"{name} row {i}: price {row.price!r} size {row.size!r}")
                level = expected.setdefault(row.price, [0.0, 0])
                level[0] += row.size
                level[1] += 1
            view = self.levels_view[side]
            keys = list(view.keys())
            if keys != sorted(keys):
                problems.append(f"{name}: price levels out of order")
            if set(keys) != set(expected):
                problems.append(f"{name}: levels {sorted(keys)} but rows hold {sorted(expected)}")
            for price, (size, count) in expected.items():
                level = view.get(price)
                if level is not None and (level[1] != count or abs(level[0] - size) > 1e-6 * max(1.0, abs(size))):
                    problems.append(f"{name} level {price}: {level} but rows give [{size}, {count}]")
            best = (max(expected) if side == BID else min(expected)) if expected else None
            if self._best[side] != best:
                problems.append(f"best {name} {self._best[side]!r} but the rows' best is {best!r}")
        if self.crossed:
            problems.append(f"crossed: best bid {self.best_bid} >= best ask {self.best_ask}")
        return problems

    # ---- reading ------------------------------------------------------------------------------
    @property
    def best_bid(self) -> float | None:
        return self._best[BID]

    @property
    def best_ask(self) -> float | None:
        return self._best[ASK]

    @property
    def mid(self) -> float | None:
        ask, bid = self._best
        return None if bid is None or ask is None else (bid + ask) / 2.0

    @property
    def spread(self) -> float | None:
        ask, bid = self._best
        return None if bid is None or ask is None else ask - bid

    @property
    def crossed(self) -> bool:
        """True if best bid >= best ask (the update rule keeps this False)."""
        ask, bid = self._best
        return bid is not None and ask is not None and bid >= ask

    def depth(self, n: int | None = None) -> tuple[list[tuple[float, float, str]],
                                                   list[tuple[float, float, str]]]:
        """(bids, asks): the first ``n`` positional rows of each side as (price, size, maker)."""
        return ([r.as_tuple() for r in self.rows[BID][:n]],
                [r.as_tuple() for r in self.rows[ASK][:n]])

    def levels(self, side: int | str, n: int | None = None) -> list[tuple[float, float]]:
        """Best ``n`` price levels of a side, best first, as (price, total size over rows)."""
        view = self.levels_view[_side(side)]
        count = len(view) if n is None else min(n, len(view))
        if _side(side) == BID:
            keys = [view.peekitem(-1 - i)[0] for i in range(count)]
        else:
            keys = [view.peekitem(i)[0] for i in range(count)]
        return [(price, view[price][0]) for price in keys]

    def total_size(self, side: int | str, n: int | None = None) -> float:
        """Size resting in the best ``n`` price levels of a side (all levels when None)."""
        return float(sum(size for _, size in self.levels(side, n)))

    def imbalance(self, n: int = 5) -> float | None:
        """(bid vol - ask vol) / (bid vol + ask vol) over the best ``n`` levels; in [-1, 1].

        None when both sides are empty (or hold zero size): there is no imbalance to report.
        """
        bids, asks = self.total_size(BID, n), self.total_size(ASK, n)
        total = bids + asks
        if total <= 0:
            return None
        return max(-1.0, min(1.0, (bids - asks) / total))

    def __len__(self) -> int:
        return len(self.rows[BID]) + len(self.rows[ASK])

    def to_frame(self) -> pd.DataFrame:
        """Bids then asks; columns side ("bid"/"ask"), position, price, size, market_maker."""
        records = [(_SIDE_NAMES[side], i, r.price, r.size, r.market_maker)
                   for side in (BID, ASK) for i, r in enumerate(self.rows[side])]
        frame = pd.DataFrame.from_records(
            records, columns=["side", "position", "price", "size", "market_maker"])
        return frame.astype({"side": "object", "position": "int64", "price": "float64",
                             "size": "float64", "market_maker": "object"})
