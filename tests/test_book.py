"""OrderBook against a plain list-based reference model of IB's positional L2 semantics."""
from __future__ import annotations

from decimal import Decimal
from math import isfinite

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibframe.market import ASK, BID, OrderBook

INSERT, UPDATE, DELETE = 0, 1, 2


class ReferenceBook:
    """The brief's semantics written as directly as possible: lists and max/min."""

    def __init__(self, num_rows):
        self.num_rows = num_rows
        self.sides = {ASK: [], BID: []}
        self.ignored = 0

    def apply(self, position, operation, side, price, size, maker=""):
        if side not in (ASK, BID) or not 0 <= position < self.num_rows:
            self.ignored += 1
            return
        rows = self.sides[side]
        row = (float(price), float(size), maker)
        if operation == DELETE and position < len(rows):
            del rows[position]
            return
        if operation == UPDATE and position < len(rows):
            rows[position] = row
        elif operation in (INSERT, UPDATE) and position <= len(rows):
            rows.insert(position, row)
            del rows[self.num_rows:]
        else:
            self.ignored += 1
            return
        bids = [r[0] for r in self.sides[BID]]
        asks = [r[0] for r in self.sides[ASK]]
        if bids and asks and max(bids) >= min(asks):
            if side == BID:       # asks are stale
                self.sides[ASK] = [r for r in self.sides[ASK] if r[0] > max(bids)]
            else:
                self.sides[BID] = [r for r in self.sides[BID] if r[0] < min(asks)]

    def best(self, side):
        prices = [r[0] for r in self.sides[side]]
        if not prices:
            return None
        return max(prices) if side == BID else min(prices)

    def level_sizes(self, side):
        out = {}
        for price, size, _ in self.sides[side]:
            out[price] = out.get(price, 0.0) + size
        return sorted(out.items(), reverse=(side == BID))


def check_same(book: OrderBook, ref: ReferenceBook):
    bids, asks = book.depth()
    assert bids == ref.sides[BID]
    assert asks == ref.sides[ASK]
    assert book.best_bid == ref.best(BID)
    assert book.best_ask == ref.best(ASK)
    assert book.ignored == ref.ignored
    assert not book.crossed
    for side in (BID, ASK):
        levels = book.levels(side)
        expect = ref.level_sizes(side)
        assert [p for p, _ in levels] == [p for p, _ in expect]
        assert [s for _, s in levels] == pytest.approx([s for _, s in expect])
    imb = book.imbalance(3)
    if imb is not None:
        assert -1.0 <= imb <= 1.0
    if book.best_bid is not None and book.best_ask is not None:
        assert book.spread > 0 and book.best_bid < book.mid < book.best_ask
    assert len(book) == len(ref.sides[BID]) + len(ref.sides[ASK])


def check_frame(book: OrderBook, ref: ReferenceBook):
    frame = book.to_frame()
    rows = [("bid", i, *r) for i, r in enumerate(ref.sides[BID])]
    rows += [("ask", i, *r) for i, r in enumerate(ref.sides[ASK])]
    assert [tuple(r) for r in frame.itertuples(index=False)] == rows


PRICE = st.integers(180, 220).map(lambda i: i / 2)       # coarse grid: ties and crosses
SIZE = st.integers(0, 500).map(float)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.data())
def test_valid_tws_sequences_match_reference(num_rows, data):
    book, ref = OrderBook(num_rows), ReferenceBook(num_rows)
    for _ in range(data.draw(st.integers(0, 60), label="steps")):
        side = data.draw(st.sampled_from([ASK, BID]), label="side")
        n = len(ref.sides[side])
        ops = [INSERT]                         # always possible at 0..min(n, num_rows-1)
        if n:
            ops += [UPDATE, DELETE]
        op = data.draw(st.sampled_from(ops), label="op")
        top = min(n, num_rows - 1) if op == INSERT else n - 1
        pos = data.draw(st.integers(0, top), label="pos")
        price, size = data.draw(PRICE, label="price"), data.draw(SIZE, label="size")
        maker = data.draw(st.sampled_from(["", "MM1", "ARCA"]), label="maker")
        assert book.apply(pos, op, side, price, Decimal(int(size)), maker) is True
        ref.apply(pos, op, side, price, size, maker)
        check_same(book, ref)
    check_frame(book, ref)
    assert book.ignored == 0


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 5), st.lists(st.tuples(st.integers(-2, 7), st.integers(-1, 3),
                                             st.integers(-1, 2), PRICE, SIZE), max_size=60))
def test_arbitrary_sequences_never_raise_and_match_reference(num_rows, ops):
    book, ref = OrderBook(num_rows), ReferenceBook(num_rows)
    for pos, op, side, price, size in ops:
        book.apply(pos, op, side, price, size)
        ref.apply(pos, op, side, price, size)
        check_same(book, ref)
    check_frame(book, ref)


def test_fractional_sizes_keep_levels_exact_enough():
    book = OrderBook(5)
    for i in range(200):
        book.apply(0, INSERT, BID, 100.0, 0.1 * (i % 7 + 1))
    book.clear()
    assert book.levels(BID) == [] and book.best_bid is None and len(book) == 0


def test_insert_shift_truncate_update_delete():
    book = OrderBook(3)
    book.apply(0, INSERT, BID, 100.0, 1)
    book.apply(0, INSERT, BID, 101.0, 2)          # shifts 100 down
    book.apply(2, INSERT, BID, 99.0, 3)
    book.apply(0, INSERT, BID, 102.0, 4)          # 99 falls off the bottom
    assert [r[0] for r in book.depth()[0]] == [102.0, 101.0, 100.0]
    assert book.levels(BID) == [(102.0, 4.0), (101.0, 2.0), (100.0, 1.0)]
    book.apply(1, UPDATE, BID, 101.0, 20)
    assert book.depth(2)[0] == [(102.0, 4.0, ""), (101.0, 20.0, "")]
    book.apply(0, DELETE, BID, 0.0, 0)             # shifts up
    assert [r[0] for r in book.depth()[0]] == [101.0, 100.0]
    assert book.best_bid == 101.0 and book.best_ask is None and book.mid is None


def test_out_of_range_operations_are_counted_not_raised():
    book = OrderBook(2)
    assert book.apply(0, DELETE, ASK, 1.0, 1) is False          # nothing to delete
    assert book.apply(1, INSERT, ASK, 1.0, 1) is False          # gap
    assert book.apply(2, INSERT, ASK, 1.0, 1) is False          # beyond num_rows
    assert book.apply(-1, INSERT, ASK, 1.0, 1) is False
    assert book.apply(0, 5, ASK, 1.0, 1) is False               # unknown operation
    assert book.apply(0, INSERT, 3, 1.0, 1) is False            # unknown side
    assert book.ignored == 6 and len(book) == 0
    assert book.apply(0, UPDATE, ASK, 1.0, 1) is True           # update at len == append
    assert book.depth()[1] == [(1.0, 1.0, "")]


def test_crossing_update_removes_the_stale_side():
    book = OrderBook(5)
    for i, price in enumerate([101.0, 102.0, 103.0]):
        book.apply(i, INSERT, ASK, price, 10)
    for i, price in enumerate([100.0, 99.0]):
        book.apply(i, INSERT, BID, price, 10)
    book.apply(0, INSERT, BID, 102.0, 5)          # fresh bid lifts asks 101 and 102
    assert book.depth()[1] == [(103.0, 10.0, "")]
    assert book.best_bid == 102.0 and not book.crossed and book.uncrossed == 2
    book.apply(0, UPDATE, ASK, 99.5, 7)           # fresh ask: bids >= 99.5 are stale
    assert [r[0] for r in book.depth()[0]] == [99.0]
    assert book.best_ask == 99.5 and book.uncrossed == 4


def test_imbalance_total_size_hooks_and_frame():
    book = OrderBook(5)
    calls = []
    book.on_change.append(calls.append)
    assert book.imbalance() is None
    book.apply(0, INSERT, BID, 100.0, 30, "MM1")
    book.apply(1, INSERT, BID, 99.0, 10, "MM2")
    book.apply(2, INSERT, BID, 99.0, 10, "MM3")
    book.apply(0, INSERT, ASK, 101.0, 20, "MM4")
    book.apply(9, INSERT, ASK, 101.0, 20)          # ignored: no hook call
    assert len(calls) == 4 and calls[0] is book
    assert book.total_size(BID) == 50.0 and book.total_size("bid", 1) == 30.0
    assert book.levels("bid") == [(100.0, 30.0), (99.0, 20.0)]
    assert book.imbalance(1) == pytest.approx((30 - 20) / 50)
    assert book.imbalance(5) == pytest.approx((50 - 20) / 70)
    frame = book.to_frame()
    assert list(frame.columns) == ["side", "position", "price", "size", "market_maker"]
    assert frame["side"].tolist() == ["bid", "bid", "bid", "ask"]
    assert frame["position"].tolist() == [0, 1, 2, 0]
    assert frame["market_maker"].tolist() == ["MM1", "MM2", "MM3", "MM4"]
    assert str(frame["price"].dtype) == "float64"


# --- hostile values: NaN, inf, negative and huge never corrupt the book -----------------------------------

HOSTILE = st.one_of(PRICE, st.sampled_from([float("nan"), float("inf"), float("-inf"), -1.0, 1e308, 0.0]))


def assert_book_invariants(book: OrderBook) -> None:
    """The rows and the sorted price index describe the same book, and each side is in price order."""
    for side in (ASK, BID):
        rows = book.rows[side]
        assert len(rows) <= book.num_rows
        assert all(isfinite(r.price) and isfinite(r.size) and r.size >= 0 for r in rows)
        levels: dict[float, list] = {}
        for r in rows:
            level = levels.setdefault(r.price, [0.0, 0])
            level[0] += r.size
            level[1] += 1
        view = book.levels_view[side]
        assert set(view) == set(levels)
        for price, (size, count) in levels.items():
            assert view[price][1] == count and view[price][0] == pytest.approx(size)
    assert book.best_bid == (max(book.levels_view[BID]) if book.levels_view[BID] else None)
    assert book.best_ask == (min(book.levels_view[ASK]) if book.levels_view[ASK] else None)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 5), st.lists(st.tuples(st.integers(-1, 6), st.integers(0, 2), st.integers(0, 1),
                                             HOSTILE, st.one_of(SIZE, HOSTILE)), max_size=80))
def test_hostile_values_never_enter_and_the_book_stays_consistent_after_every_update(num_rows, ops):
    book = OrderBook(num_rows)
    for position, operation, side, price, size in ops:
        hostile = not (isfinite(price) and isfinite(size)) or size < 0
        before = book.rejected
        book.apply(position, operation, side, price, size)
        if hostile and operation != DELETE and 0 <= position < num_rows:
            assert book.rejected == before + 1
        assert_book_invariants(book)


def test_a_nan_row_is_refused_and_later_valid_updates_still_apply():
    book = OrderBook(5)
    assert book.apply(0, INSERT, BID, 100.0, 10)
    assert not book.apply(1, INSERT, BID, float("nan"), 10)            # the report's corrupting frame
    assert not book.apply(0, UPDATE, BID, 100.0, float("inf"))
    assert book.rejected == 2 and book.best_bid == 100.0
    assert book.apply(0, DELETE, BID, 0.0, 0)                           # its delete works: nothing half-indexed
    assert book.best_bid is None and book.levels_view[BID] == {}
    assert book.apply(0, INSERT, BID, 99.5, 3) and book.best_bid == 99.5
