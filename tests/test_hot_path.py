"""The faster market-state code keeps the old results: value conversion, the tick ring, the order book.

Each state object's hot path was rewritten for speed (ibframe.bench measures it); these tests pin
the rewritten code to straightforward reference implementations of the previous behaviour.
"""
from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ibapi.const import UNSET_DECIMAL, UNSET_DOUBLE, UNSET_INTEGER

from ibframe.market import ASK, BID, OrderBook, TickRing
from ibframe.market.quote import _TICKS, _convert


def reference_convert(kind: str, value):
    """Quote's conversion as it was written before the fast path (the specification), with issue 12's rule:
    a non-finite number (NaN, an infinity) is "not available" (None) wherever it arrives."""
    if kind == "str":
        return None if value is None else str(value)
    if kind == "rtv":
        return "rtv"
    if kind == "epoch":
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        return number if math.isfinite(number) else None
    try:
        if value is None or value == UNSET_DOUBLE or value == UNSET_DECIMAL or value == UNSET_INTEGER:
            return None
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    if kind == "quote":
        return None if number in (-1.0, 0.0) else number
    if kind == "price":
        return None if number == -1.0 else number
    if kind == "halt":
        return None if number < 0 else number > 0
    return number


RAW = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 2 ** 40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=False, allow_infinity=True, places=4),
    st.sampled_from([UNSET_DOUBLE, UNSET_DECIMAL, UNSET_INTEGER, float(UNSET_INTEGER), Decimal(UNSET_INTEGER),
                     float(UNSET_DECIMAL), Decimal("NaN"), -1, -1.0, 0, 0.0, -0.0, Decimal("-1"), "1.5", "abc",
                     "", "2147483647", "1.7976931348623157E308", 2, Decimal("0.0001")]))
KINDS = sorted({kind for _, kind, _ in _TICKS.values()} - {"rtv"})


@settings(max_examples=800, deadline=None)
@given(st.sampled_from(KINDS), RAW)
def test_quote_conversion_is_unchanged(kind, value):
    got, want = _convert(kind, value), reference_convert(kind, value)
    assert type(got) is type(want) and (got == want or (got != got and want != want)), (kind, value, got, want)


class ReferenceRing:
    """Every tick kept in plain lists; the newest `capacity` of each kind are what a TickRing holds."""

    def __init__(self, capacity):
        self.capacity = capacity
        self.kinds = {"last": [], "bid_ask": [], "midpoint": []}
        self.order = []

    def add(self, kind, row):
        self.kinds[kind].append(row)
        self.order.append((kind, row))

    def held(self, kind):
        return self.kinds[kind][-self.capacity:]


ADD = st.one_of(
    st.tuples(st.just("last"), st.floats(1, 1e4), st.integers(1, 500), st.sampled_from(["", "NYSE", "ARCA"]),
              st.booleans()),
    st.tuples(st.just("bid_ask"), st.floats(1, 1e4), st.floats(1, 1e4), st.integers(0, 900), st.booleans()),
    st.tuples(st.just("midpoint"), st.floats(1, 1e4)))


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 300), st.lists(ADD, max_size=700), st.integers(0, 3))
def test_tick_ring_keeps_the_newest_of_each_kind_through_chunked_writes(capacity, adds, reads_every):
    check_ring(capacity, adds, reads_every)


@pytest.mark.parametrize("capacity", [1, 7, 255, 256, 257, 600])
def test_tick_ring_long_interleaved_streams_wrap_correctly(capacity):
    kinds = ["bid_ask", "bid_ask", "last", "bid_ask", "midpoint"]
    adds = []
    for i in range(3000):
        kind = kinds[(i * 7) % 5]
        if kind == "last":
            adds.append((kind, 100.0 + i, i % 400 + 1, ("NYSE", "ARCA", "")[i % 3], i % 2 == 0))
        elif kind == "bid_ask":
            adds.append((kind, 99.0 + i, 101.0 + i, i % 900, i % 3 == 0))
        else:
            adds.append((kind, 100.0 + i / 2))
    check_ring(capacity, adds, reads_every=97)


def check_ring(capacity, adds, reads_every):
    ring, ref = TickRing(capacity), ReferenceRing(capacity)
    for i, (kind, *v) in enumerate(adds):
        t = 1_700_000_000 + i
        if kind == "last":
            ring.add_last(t, v[0], Decimal(v[1]), v[2], v[3], False)
            ref.add(kind, {"time": float(t), "price": v[0], "size": float(v[1]), "exchange": v[2],
                           "special_conditions": "", "past_limit": v[3], "unreported": False})
        elif kind == "bid_ask":
            ring.add_bid_ask(t, v[0], v[1], Decimal(v[2]), float(v[2]) + 1, v[3], False)
            ref.add(kind, {"time": float(t), "bid": v[0], "ask": v[1], "bid_size": float(v[2]),
                           "ask_size": float(v[2]) + 1, "bid_past_low": v[3], "ask_past_high": False})
        else:
            ring.add_midpoint(t, v[0])
            ref.add(kind, {"time": float(t), "mid": v[0]})
        if reads_every and i % reads_every == 0:                # reads between writes see every write
            last_kind, last_row = ref.order[-1]
            assert ring.last() == {"kind": last_kind, **last_row}
            assert ring.last(last_kind) == {"kind": last_kind, **last_row}
    assert len(ring) == sum(len(ref.held(k)) for k in ref.kinds)
    for kind in ref.kinds:
        held = ref.held(kind)
        assert ring.count(kind) == len(held)
        frame = ring.to_frame(kind)
        assert [t.timestamp() for t in frame.index] == [r["time"] for r in held]
        for column in frame.columns:
            got = frame[column].astype(str if column in ("exchange", "special_conditions") else object).tolist()
            assert got == [r[column] for r in held], (kind, column)
        if held:
            assert ring.last(kind) == {"kind": kind, **held[-1]}
    assert ring.last() == ({"kind": ref.order[-1][0], **ref.order[-1][1]} if adds else None)
    ring.clear()
    assert len(ring) == 0 and ring.last() is None


def test_tick_ring_unset_values_become_nan_as_before():
    ring = TickRing(4)
    ring.add_bid_ask(1.0, UNSET_DOUBLE, 10.0, UNSET_DECIMAL, Decimal(5))
    row = ring.last("bid_ask")
    assert math.isnan(row["bid"]) and math.isnan(row["bid_size"]) and row["ask"] == 10.0 and row["ask_size"] == 5.0
    assert ring.add_midpoint(2.0, None) is False          # a midpoint with no value says nothing: refused, counted
    assert ring.rejected == 1 and ring.last()["time"] == 1.0


PRICE = st.integers(180, 220).map(lambda i: i / 2)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 8), st.lists(st.tuples(st.integers(-1, 9), st.integers(0, 3), st.sampled_from([ASK, BID]),
                                             PRICE, st.integers(0, 50).map(float)), max_size=120))
def test_order_book_best_prices_follow_the_sorted_levels(num_rows, ops):
    book = OrderBook(num_rows)
    for position, operation, side, price, size in ops:
        book.apply(position, operation, side, price, size)
        bids, asks = book.levels_view[BID], book.levels_view[ASK]
        assert book.best_bid == (bids.peekitem(-1)[0] if bids else None)
        assert book.best_ask == (asks.peekitem(0)[0] if asks else None)
        for s in (ASK, BID):                       # each level holds the rows at its price, sizes summed
            sums: dict[float, list] = {}
            for row in book.rows[s]:
                entry = sums.setdefault(row.price, [0.0, 0])
                entry[0] += row.size
                entry[1] += 1
            assert {p: lv[1] for p, lv in book.levels_view[s].items()} == {p: e[1] for p, e in sums.items()}
            for p, lv in book.levels_view[s].items():
                assert math.isclose(lv[0], sums[p][0], abs_tol=1e-9)
    book.clear()
    assert book.best_bid is None and book.best_ask is None and book.mid is None
