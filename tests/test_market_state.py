"""Quote, TickRing and OptionGreeks: tick-type mapping, sentinels, rings, frames."""
from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ibapi.common import TickAttrib
from ibapi.const import UNSET_DECIMAL, UNSET_DOUBLE
from ibapi.ticktype import TickTypeEnum as TT

from ibframe.market import OptionGreeks, Quote, RtVolume, TickRing

T0 = 1_700_000_000.0


# ---------------------------------------------------------------------------------- Quote
PRICE_CASES = [
    (TT.BID, "bid"), (TT.ASK, "ask"), (TT.LAST, "last"), (TT.HIGH, "high"), (TT.LOW, "low"),
    (TT.CLOSE, "close"), (TT.OPEN, "open"), (TT.LOW_13_WEEK, "low_13w"),
    (TT.HIGH_13_WEEK, "high_13w"), (TT.LOW_26_WEEK, "low_26w"), (TT.HIGH_26_WEEK, "high_26w"),
    (TT.LOW_52_WEEK, "low_52w"), (TT.HIGH_52_WEEK, "high_52w"), (TT.MARK_PRICE, "mark_price"),
]
SIZE_CASES = [
    (TT.BID_SIZE, "bid_size"), (TT.ASK_SIZE, "ask_size"), (TT.LAST_SIZE, "last_size"),
    (TT.VOLUME, "volume"), (TT.AVG_VOLUME, "avg_volume"),
    (TT.OPTION_CALL_OPEN_INTEREST, "call_open_interest"),
    (TT.OPTION_PUT_OPEN_INTEREST, "put_open_interest"),
    (TT.OPTION_CALL_VOLUME, "call_volume"), (TT.OPTION_PUT_VOLUME, "put_volume"),
]
DELAYED_CASES = [
    (TT.DELAYED_BID, "bid", "price"), (TT.DELAYED_ASK, "ask", "price"),
    (TT.DELAYED_LAST, "last", "price"), (TT.DELAYED_HIGH, "high", "price"),
    (TT.DELAYED_LOW, "low", "price"), (TT.DELAYED_CLOSE, "close", "price"),
    (TT.DELAYED_OPEN, "open", "price"), (TT.DELAYED_BID_SIZE, "bid_size", "size"),
    (TT.DELAYED_ASK_SIZE, "ask_size", "size"), (TT.DELAYED_LAST_SIZE, "last_size", "size"),
    (TT.DELAYED_VOLUME, "volume", "size"),
]


def test_tick_type_numbers_are_ibapis():
    # the mapping table is keyed by number; pin the numbers the brief relies on
    assert (TT.OPTION_HISTORICAL_VOL, TT.OPTION_IMPLIED_VOL, TT.MARK_PRICE) == (23, 24, 37)
    assert (TT.LAST_TIMESTAMP, TT.SHORTABLE, TT.RT_VOLUME, TT.HALTED) == (45, 46, 48, 49)
    assert (TT.DELAYED_BID, TT.DELAYED_OPEN, TT.DELAYED_LAST_TIMESTAMP) == (66, 76, 88)


@pytest.mark.parametrize("tick,name", PRICE_CASES)
def test_price_ticks_map_to_fields(tick, name):
    q = Quote("K")
    q.on_tick_price(tick, 101.25, TickAttrib(), T0)
    assert getattr(q, name) == 101.25
    assert q.updated == T0 and q.updates == 1 and q.delayed is False


@pytest.mark.parametrize("tick,name", SIZE_CASES)
def test_size_ticks_map_to_fields_as_float(tick, name):
    q = Quote("K")
    q.on_tick_size(tick, Decimal("1234.5"), T0)
    value = getattr(q, name)
    assert value == 1234.5 and isinstance(value, float)
    q.on_tick_size(tick, 7.0, T0)
    assert getattr(q, name) == 7.0
    q.on_tick_size(tick, UNSET_DECIMAL, T0)
    assert getattr(q, name) is None


@pytest.mark.parametrize("tick,name,kind", DELAYED_CASES)
def test_delayed_ticks_fill_the_same_fields_and_flag_delayed(tick, name, kind):
    q = Quote("K")
    if kind == "price":
        q.on_tick_price(tick, 55.5, TickAttrib(), T0)
    else:
        q.on_tick_size(tick, Decimal(300), T0)
    assert getattr(q, name) == (55.5 if kind == "price" else 300.0)
    assert q.delayed is True


def test_live_top_tick_clears_delayed_and_market_data_type():
    q = Quote("K")
    q.on_tick_price(TT.DELAYED_BID, 10.0, None, T0)
    assert q.delayed
    q.on_tick_generic(TT.SHORTABLE, 3.0, T0)       # a non-price live tick leaves it alone
    assert q.delayed
    q.on_tick_price(TT.BID, 10.5, None, T0)
    assert not q.delayed
    q.market_data_type = 3
    assert q.market_data_type == 3 and q.delayed
    q.market_data_type = 1
    assert not q.delayed
    with pytest.raises(ValueError):
        q.market_data_type = 7


@pytest.mark.parametrize("tick", [TT.BID, TT.ASK, TT.DELAYED_BID, TT.DELAYED_ASK])
@pytest.mark.parametrize("sentinel", [-1.0, 0.0, UNSET_DOUBLE])
def test_bid_ask_sentinels_mean_no_quote(tick, sentinel):
    q = Quote("K")
    q.on_tick_price(tick, 10.0, None, T0)
    q.on_tick_price(tick, sentinel, None, T0 + 1)
    field = "bid" if tick in (TT.BID, TT.DELAYED_BID) else "ask"
    assert getattr(q, field) is None
    assert q.mid is None and q.spread is None


def test_last_minus_one_is_none_but_zero_is_a_price():
    q = Quote("K")
    q.on_tick_price(TT.LAST, -1.0, None, T0)
    assert q.last is None
    q.on_tick_price(TT.LAST, 0.0, None, T0)
    assert q.last == 0.0


def test_generic_and_string_ticks():
    q = Quote("K")
    q.on_tick_generic(TT.OPTION_HISTORICAL_VOL, 0.25, T0)
    q.on_tick_generic(TT.OPTION_IMPLIED_VOL, 0.31, T0)
    q.on_tick_generic(TT.SHORTABLE, 3.0, T0)
    q.on_tick_string(TT.LAST_TIMESTAMP, "1700000123", T0)
    assert (q.hist_vol, q.implied_vol, q.shortable, q.can_short) == (0.25, 0.31, 3.0, True)
    assert q.last_timestamp == 1_700_000_123.0
    q.on_tick_generic(TT.SHORTABLE, 1.0, T0)
    assert q.can_short is False
    q.on_tick_string(TT.DELAYED_LAST_TIMESTAMP, "1700000200", T0)
    assert q.last_timestamp == 1_700_000_200.0 and q.delayed


@pytest.mark.parametrize("raw,expected", [(-1.0, None), (0.0, False), (1.0, True), (2.0, True)])
def test_halted(raw, expected):
    q = Quote("K")
    q.on_tick_generic(TT.HALTED, raw, T0)
    assert q.halted is expected
    q2 = Quote("K")
    q2.on_tick_generic(TT.DELAYED_HALTED, raw, T0)
    assert q2.halted is expected


def test_rt_volume_parsing():
    q = Quote("K")
    q.on_tick_string(TT.RT_VOLUME, "701.28;1;1348075471534;67854;701.46918464;true", T0)
    assert q.rt_volume == RtVolume(701.28, 1.0, 1348075471.534, 67854.0, 701.46918464, True)
    q.on_tick_string(TT.RT_VOLUME, ";;1348075471600;67900;701.5;false", T0)
    assert q.rt_volume == RtVolume(None, None, 1348075471.6, 67900.0, 701.5, False)
    assert q.last is None                              # RT volume never writes `last`
    assert RtVolume.parse("garbage").price is None


def test_unknown_tick_types_are_kept_raw():
    q = Quote("K")
    q.on_tick_generic(TT.REGULATORY_IMBALANCE, 42.0, T0)
    assert q.other[TT.REGULATORY_IMBALANCE] == 42.0 and q.updates == 1


def test_mid_spread_and_on_change_only_for_top_changes():
    q = Quote("K")
    seen = []
    q.on_change.append(lambda quote: seen.append((quote.bid, quote.ask, quote.last)))
    q.on_tick_price(TT.BID, 99.0, None, T0)
    q.on_tick_price(TT.ASK, 101.0, None, T0 + 1)
    assert q.mid == 100.0 and q.spread == 2.0
    q.on_tick_price(TT.ASK, 101.0, None, T0 + 2)          # same value: no call
    q.on_tick_size(TT.VOLUME, Decimal(10), T0 + 3)        # not top of book: no call
    q.on_tick_price(TT.LAST, 100.0, None, T0 + 4)
    q.on_tick_size(TT.LAST_SIZE, Decimal(5), T0 + 5)
    assert seen == [(99.0, None, None), (99.0, 101.0, None), (99.0, 101.0, 100.0),
                    (99.0, 101.0, 100.0)]
    assert q.updated == T0 + 5 and q.updates == 6


def test_price_with_its_size_is_one_update():
    q = Quote("K")
    seen = []
    q.on_change.append(lambda quote: seen.append((quote.bid, quote.bid_size, quote.last, quote.last_size)))
    q.on_price_size(TT.BID, 99.0, TickAttrib(), TT.BID_SIZE, Decimal(300), T0)
    q.on_price_size(TT.LAST, 99.5, TickAttrib(), TT.LAST_SIZE, Decimal(200), T0 + 1)
    q.on_price_size(TT.BID, 99.0, TickAttrib(), TT.BID_SIZE, Decimal(300), T0 + 2)     # nothing changed
    assert seen == [(99.0, 300.0, None, None), (99.0, 300.0, 99.5, 200.0)]
    assert q.updates == 6 and q.updated == T0 + 1 and q.prints == 1
    q.on_price_size(TT.DELAYED_ASK, 100.0, None, TT.DELAYED_ASK_SIZE, UNSET_DECIMAL, T0 + 3)
    assert q.ask == 100.0 and q.ask_size is None and q.delayed


def test_trade_prints_are_counted_once_each():
    q = Quote("K")
    q.on_tick_size(TT.LAST_SIZE, Decimal(100), T0)                # no price known yet: not a print
    assert q.prints == 0 and not q.printed
    q.on_price_size(TT.LAST, 10.0, None, TT.LAST_SIZE, Decimal(100), T0)
    assert q.prints == 1 and q.printed
    q.on_tick_size(TT.LAST_SIZE, Decimal(100), T0)                # TWS's copy of that size
    assert q.prints == 1 and not q.printed
    q.on_price_size(TT.LAST, 10.0, None, TT.LAST_SIZE, Decimal(100), T0)    # same price and size: a new print
    q.on_tick_size(TT.VOLUME, Decimal(5000), T0)
    q.on_tick_size(TT.LAST_SIZE, Decimal(100), T0)                # still the copy (only volume between)
    assert q.prints == 2
    q.on_tick_size(TT.LAST_SIZE, Decimal(300), T0)                # only the size changed: a print
    q.on_tick_size(TT.LAST_SIZE, Decimal(300), T0)                # and one more like it
    assert q.prints == 4 and q.printed and (q.last, q.last_size) == (10.0, 300.0)
    q.on_price_size(TT.LAST, 10.5, None, TT.LAST_SIZE, Decimal(200), T0)
    q.on_tick_size(TT.LAST_SIZE, Decimal(700), T0)                # a different size right after: a print
    assert q.prints == 6
    q.on_tick_price(TT.LAST, 11.0, None, T0)                      # a LAST price alone is not a print…
    assert q.prints == 6
    q.on_tick_size(TT.LAST_SIZE, Decimal(700), T0)                # …the size that follows it is
    assert q.prints == 7 and (q.last, q.last_size) == (11.0, 700.0)
    assert "prints" in q.snapshot() and not any(k.startswith("_") for k in q.snapshot())


def test_snapshot_and_frame():
    q = Quote("AAPL@SMART")
    q.on_tick_price(TT.BID, 99.0, None, T0)
    q.on_tick_price(TT.ASK, 101.0, None, T0)
    q.on_tick_string(TT.LAST_TIMESTAMP, "1700000000", T0)
    snap = q.snapshot()
    assert snap["bid"] == 99.0 and snap["mid"] == 100.0 and snap["contract_key"] == "AAPL@SMART"
    assert "on_change" not in snap
    frame = q.to_frame()
    assert frame.shape[0] == 1 and frame.index[0] == "AAPL@SMART"
    assert frame["bid"].dtype == np.float64 and np.isnan(frame["last"].iloc[0])
    assert frame["last_timestamp"].iloc[0] == pd.Timestamp(T0, unit="s", tz="UTC")
    assert str(frame["updated"].dtype).endswith("UTC]")


_BID_TICKS = st.sampled_from([TT.BID, TT.DELAYED_BID])
_PRICES = st.one_of(st.sampled_from([-1.0, 0.0]), st.floats(0.01, 1e6))


@settings(deadline=None)
@given(st.lists(st.tuples(_BID_TICKS, _PRICES), min_size=1, max_size=40))
def test_bid_follows_the_last_tick_property(ticks):
    q = Quote("K")
    for i, (tick, price) in enumerate(ticks):
        q.on_tick_price(tick, price, None, T0 + i)
    tick, price = ticks[-1]
    assert q.bid == (None if price in (-1.0, 0.0) else price)
    assert q.delayed == (tick == TT.DELAYED_BID)
    assert q.updates == len(ticks)


# ------------------------------------------------------------------------------- TickRing
def test_ring_rejects_bad_capacity_and_kind():
    with pytest.raises(ValueError):
        TickRing(0)
    with pytest.raises(ValueError):
        TickRing(3).to_frame("quotes")


@settings(max_examples=60, deadline=None)     # a loaded CI box can stall one example
@given(st.integers(1, 12), st.lists(st.floats(0.01, 1e5), max_size=60))
def test_ring_wraps_keeping_newest_in_order(capacity, prices):
    ring = TickRing(capacity)
    for i, price in enumerate(prices):
        ring.add_last(T0 + i, price, Decimal(i + 1), "EX%d" % (i % 3), i % 2 == 0, False)
    frame = ring.to_frame("last")
    keep = min(capacity, len(prices))
    start = len(prices) - keep
    assert len(ring) == keep == len(frame)
    assert frame["price"].tolist() == prices[start:]
    assert frame["size"].tolist() == [float(i + 1) for i in range(start, len(prices))]
    expected_exchanges = ["EX%d" % (i % 3) for i in range(start, len(prices))]
    assert frame["exchange"].astype(str).tolist() == expected_exchanges
    assert frame["past_limit"].tolist() == [i % 2 == 0 for i in range(start, len(prices))]
    assert frame.index.is_monotonic_increasing
    if prices:
        assert ring.last()["price"] == prices[-1]


def test_ring_kinds_have_separate_capacity_and_utc_index():
    ring = TickRing(3)
    ring.add_last(T0, 10.0, 100, "ISLAND", False, True)
    for i in range(10):                       # a quote burst must not evict the trade
        ring.add_bid_ask(T0 + i, 9.9 + i, 10.1 + i, Decimal(5), Decimal(7))
    ring.add_midpoint(T0 + 20, 10.0)
    assert ring.count("last") == 1 and ring.count("bid_ask") == 3 and len(ring) == 5
    trades = ring.to_frame("AllLast")
    assert trades["unreported"].tolist() == [True]
    assert str(trades.index.tz) == "UTC" and trades.index[0] == pd.Timestamp(T0, unit="s", tz="UTC")
    quotes = ring.to_frame("bid_ask")
    assert list(quotes.columns[:4]) == ["bid", "ask", "bid_size", "ask_size"]
    assert quotes["bid"].tolist() == pytest.approx([16.9, 17.9, 18.9])
    assert ring.last() == {"kind": "midpoint", "time": T0 + 20, "mid": 10.0}
    assert ring.last("bid_ask")["ask"] == pytest.approx(19.1)
    empty = TickRing(2).to_frame("midpoint")
    assert len(empty) == 0 and str(empty.index.tz) == "UTC"
    assert TickRing(2).last() is None
    ring.clear()
    assert len(ring) == 0


# ----------------------------------------------------------------------------- OptionGreeks
@pytest.mark.parametrize("tick,kind,delayed", [(10, "bid", False), (11, "ask", False),
                                               (12, "last", False), (13, "model", False),
                                               (53, "custom", False), (80, "bid", True),
                                               (81, "ask", True), (82, "last", True),
                                               (83, "model", True)])
def test_option_computation_kinds(tick, kind, delayed):
    g = OptionGreeks("OPT")
    calls = []
    g.on_change.append(calls.append)
    g.on_option_computation(tick, 1, 0.2, 0.5, 3.1, 0.0, 0.01, 0.12, -0.03, 100.0, T0)
    comp = g.get(kind)
    assert comp.implied_vol == 0.2 and comp.delta == 0.5 and comp.theta == -0.03
    assert comp.delayed is delayed and comp.tick_attrib == 1 and comp.time == T0
    assert calls == [g]


def test_option_computation_none_stays_none_and_frame():
    g = OptionGreeks("OPT")
    g.on_option_computation(TT.MODEL_OPTION, 0, None, None, 2.0, None, None, None, None, None, T0)
    g.on_option_computation(TT.BID_OPTION_COMPUTATION, 0, 0.3, 0.4, None, None, None, None,
                            None, 99.0, T0)
    assert g.model.implied_vol is None and g.model.delta is None and g.model.opt_price == 2.0
    assert g.ask is None and g.last is None
    g.on_option_computation(TT.BID, 0, 0.3, 0.4, 1, 1, 1, 1, 1, 1, T0)   # not a greeks tick
    assert g.ignored == 1 and g.updates == 2
    frame = g.to_frame()
    assert frame.index.tolist() == ["bid", "model"]
    assert np.isnan(frame.loc["model", "implied_vol"]) and frame.loc["bid", "und_price"] == 99.0
    assert frame["delta"].dtype == np.float64
    with pytest.raises(ValueError):
        g.get("theo")


# ---------------------------------------------------------------------------------- invariants (issue 12)
# Every state object says what breaks its rules (check_invariants, empty when sound) and keeps them under any
# sequence of updates, hostile values included.
from ibframe.market import Bars, OrderBook                                       # noqa: E402
from ibframe.market.book import BID, BookRow                                       # noqa: E402
from ibframe.market.greeks import OptionComputation                                # noqa: E402

HOSTILE = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(
    [-1.0, 0.0, -2.0, UNSET_DOUBLE, float("nan"), float("inf"), -float("inf"), 1e308]))
HOSTILE_SIZE = st.one_of(HOSTILE, st.sampled_from([UNSET_DECIMAL, Decimal("NaN"), Decimal("12.5"), Decimal(-3)]))
QUOTE_STEPS = st.lists(st.one_of(
    st.tuples(st.just("price"), st.sampled_from([1, 2, 4, 6, 9, 66, 67, 68, 35, 37, 999]), HOSTILE),
    st.tuples(st.just("size"), st.sampled_from([0, 3, 5, 8, 36, 69, 71, 999]), HOSTILE_SIZE),
    st.tuples(st.just("pair"), st.sampled_from([(1, 0), (2, 3), (4, 5)]), st.tuples(HOSTILE, HOSTILE_SIZE)),
    st.tuples(st.just("generic"), st.sampled_from([23, 24, 46, 49, 54, 999]), HOSTILE),
    st.tuples(st.just("string"), st.sampled_from([45, 48, 77, 32]),
              st.sampled_from(["nan;inf;1;2;3;true", "190.5;100;1700000000000;5000;190.2;true", "inf", "x",
                               ";;;;;", "1e999"]))), max_size=40)


@settings(max_examples=300, deadline=None)
@given(QUOTE_STEPS)
def test_a_quote_keeps_its_invariants_after_every_update(steps):
    q = Quote("X")
    for kind, tick, value in steps:
        if kind == "price":
            q.on_tick_price(tick, value, TickAttrib(), T0)
        elif kind == "size":
            q.on_tick_size(tick, value, T0)
        elif kind == "pair":
            q.on_price_size(tick[0], value[0], TickAttrib(), tick[1], value[1], T0)
        elif kind == "generic":
            q.on_tick_generic(tick, value, T0)
        else:
            q.on_tick_string(tick, value, T0)
        assert q.check_invariants() == []


def test_a_crossed_quote_is_flagged_and_a_corrupted_one_is_reported():
    q = Quote("X")
    q.on_tick_price(1, 10.0)
    q.on_tick_price(2, 9.5)
    assert q.crossed and q.crossings == 1 and q.check_invariants() == []
    q.on_tick_price(2, 10.5)
    assert not q.crossed and q.check_invariants() == []
    q.bid = float("nan")                                  # written past the update path: caught
    assert any("bid" in p for p in q.check_invariants())


BAR = st.tuples(st.integers(0, 40), HOSTILE, HOSTILE, HOSTILE, HOSTILE, HOSTILE, HOSTILE,
                st.integers(-5, 10 ** 6))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["rt", "update"]), BAR), max_size=40))
def test_bars_keep_their_invariants_and_count_what_they_refuse(steps):
    bars = Bars("1 min", tz="UTC")
    refused = 0
    for kind, (slot, o, h, lo, c, v, w, n) in steps:
        before = (len(bars), bars.rejected)
        if kind == "rt":
            bars.on_realtime_bar(1_700_000_000 + 5 * slot, o, h, lo, c, v, w, n)
        else:
            bar = type("BarData", (), {})()
            bar.date, bar.open, bar.high, bar.low, bar.close = str(1_700_000_000 + 60 * slot), o, h, lo, c
            bar.volume, bar.wap, bar.barCount = v, w, n
            bars.on_update(bar)
        finite = all(np.isfinite(x) for x in (o, h, lo, c))
        if not finite or h < max(o, c, lo) or lo > min(o, c, h):
            assert bars.rejected == before[1] + 1 and len(bars) == before[0]
            refused += 1
        assert bars.check_invariants() == []
    assert bars.rejected >= refused


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([10, 11, 12, 13, 53, 80, 99]), st.lists(HOSTILE, min_size=8, max_size=8),
                          st.sampled_from([None, 0, 1, "x"])), max_size=20))
def test_greeks_are_finite_or_none_whatever_arrives(steps):
    g = OptionGreeks("X")
    for tick, values, attrib in steps:
        g.on_option_computation(tick, attrib, *values, T0)
        assert g.check_invariants() == []


def test_greek_sentinels_read_as_none_and_a_corrupted_value_is_reported():
    g = OptionGreeks("X")
    g.on_option_computation(13, 0, -1.0, -2.0, -1.0, -1.0, -2.0, -2.0, -2.0, -1.0)
    assert all(getattr(g.model, name) is None for name in ("implied_vol", "delta", "opt_price", "pv_dividend",
                                                           "gamma", "vega", "theta", "und_price"))
    g.on_option_computation(13, 0, UNSET_DOUBLE, float("inf"), 3.2, 0.0, 0.05, 0.1, -0.02, 190.0)
    assert g.model.implied_vol is None and g.model.delta is None and g.model.opt_price == 3.2
    g.model = OptionComputation(delta=float("nan"))
    assert g.check_invariants() == ["model.delta = nan is neither a finite float nor None"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["last", "bid_ask", "mid"]), HOSTILE, HOSTILE, HOSTILE_SIZE), max_size=60))
def test_a_tick_ring_refuses_non_finite_ticks_and_keeps_its_invariants(steps):
    ring = TickRing(8)
    for i, (kind, a, b, size) in enumerate(steps):
        if kind == "last":
            ok = ring.add_last(T0 + i, a, size, "X")
        elif kind == "bid_ask":
            ok = ring.add_bid_ask(T0 + i, a, b, size, size)
        else:
            ok = ring.add_midpoint(T0 + i, a)
        if not np.isfinite(a):
            assert not ok
        assert ring.check_invariants() == []


def test_a_corrupted_book_is_reported():
    book = OrderBook(2)
    book.apply(0, 0, BID, 10.0, 100)
    assert book.check_invariants() == []
    book.rows[BID].append(BookRow(float("nan"), 5.0))
    book.rows[BID].append(BookRow(9.0, 5.0))
    problems = book.check_invariants()
    assert any("more than num_rows" in p for p in problems) and any("nan" in p for p in problems)
