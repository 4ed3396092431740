"""Execution quality from a journal: hand-computed cases for buys, sells, partial fills, futures, no quote."""
from __future__ import annotations

import datetime as dt
import math
import sqlite3
from zoneinfo import ZoneInfo

import pytest

from ibframe.journal import Journal
from ibframe.journal.schema import TABLES, insert_sql, prepare

NY = ZoneInfo("America/New_York")
DAY1 = dt.datetime(2026, 11, 18, 10, 0, tzinfo=NY).timestamp()
DAY2 = dt.datetime(2026, 11, 19, 15, 59, tzinfo=NY).timestamp()


def insert(conn, table: str, **values) -> None:
    conn.execute(insert_sql(table), [values.get(c) for c, _ in TABLES[table]])


def order(conn, order_id, action="place", bid=None, ask=None, strategy="s1", sec_type="STK", multiplier="",
          client_id=7):
    insert(conn, "orders", time=DAY1, action=action, order_id=order_id, client_id=client_id, strategy=strategy,
           symbol="AAPL", sec_type=sec_type, multiplier=multiplier, arrival_bid=bid, arrival_ask=ask)


def fill(conn, exec_id, order_id, side, shares, price, t=DAY1, strategy="s1", sec_type="STK", multiplier="",
         commission=None, client_id=7):
    insert(conn, "executions", exec_id=exec_id, time=t, order_id=order_id, client_id=client_id, strategy=strategy,
           symbol="AAPL", sec_type=sec_type, multiplier=multiplier, side=side, shares=shares, price=price)
    if commission is not None:
        insert(conn, "commissions", exec_id=exec_id, time=t, commission=commission, currency="USD")


@pytest.fixture
def journal(tmp_path):
    path = tmp_path / "j.sqlite"
    conn = sqlite3.connect(path)
    prepare(conn, "DU1")

    def write(build) -> Journal:
        with conn:
            build(conn)
        conn.close()
        return Journal(path)
    return write


def test_the_seed_articles_smart_routing_savings_come_out_for_a_buy(journal):
    # the article: SMART filled at 150.02 where the ask was 150.15: 0.13 USD per share, 130 USD on 1,000 shares
    j = journal(lambda c: (order(c, 1, bid=150.05, ask=150.15), fill(c, "e1", 1, "BOT", 1000, 150.02,
                                                                      commission=1.0)))
    f = j.tca().iloc[0]
    assert f.far_side == 150.15 and f.arrival_mid == pytest.approx(150.10)
    assert f.improvement_per_share == pytest.approx(0.13) and f.improvement == pytest.approx(130.0)
    assert f.slippage_bps == pytest.approx((150.02 - 150.10) / 150.10 * 1e4)        # negative: better than mid
    assert f.notional == pytest.approx(150_020.0) and f.commission == 1.0
    d = j.tca_daily().iloc[0]
    assert (d.strategy, d.day, d.fills, d.shares) == ("s1", dt.date(2026, 11, 18), 1, 1000.0)
    assert d.savings == pytest.approx(130.0) and d.commission == 1.0 and d.fills_without_quote == 0


def test_a_sell_is_measured_from_the_bid_and_a_worse_fill_is_a_cost(journal):
    j = journal(lambda c: (order(c, 2, bid=99.90, ask=100.10), fill(c, "e2", 2, "SLD", 200, 99.85)))
    f = j.tca().iloc[0]
    assert f.far_side == 99.90
    assert f.improvement_per_share == pytest.approx(-0.05) and f.improvement == pytest.approx(-10.0)
    assert f.slippage_bps == pytest.approx((100.0 - 99.85) / 100.0 * 1e4)             # +15 bps: a cost


def test_partial_fills_weight_the_days_slippage_by_shares_and_add_their_savings(journal):
    def build(c):
        order(c, 3, bid=10.00, ask=10.02)
        fill(c, "a", 3, "BOT", 100, 10.02, commission=0.35)     # at the ask: +10 bps vs mid 10.01, 0 saved
        fill(c, "b", 3, "BOT", 300, 10.00, commission=0.65)     # at the bid: -10 bps, 0.02 × 300 = 6 saved
    d = journal(build).tca_daily().iloc[0]
    assert d.fills == 2 and d.shares == 400
    want = (100 * (10.02 - 10.01) + 300 * (10.00 - 10.01)) / 10.01 * 1e4 / 400
    assert d.slippage_bps == pytest.approx(want)
    assert d.savings == pytest.approx(6.0) and d.commission == pytest.approx(1.0)


def test_a_future_counts_its_multiplier_and_days_and_strategies_are_kept_apart(journal):
    def build(c):
        order(c, 4, bid=5999.75, ask=6000.00, sec_type="FUT", multiplier="50")
        fill(c, "f", 4, "BOT", 2, 5999.75, sec_type="FUT", multiplier="50")
        order(c, 5, bid=100.0, ask=100.2, strategy="s2")
        fill(c, "g", 5, "SLD", 10, 100.2, t=DAY2, strategy="s2")
    j = journal(build)
    f = j.tca(strategy="s1").iloc[0]
    assert f.improvement == pytest.approx(0.25 * 2 * 50) and f.notional == pytest.approx(5999.75 * 100)
    d = j.tca_daily()
    assert list(zip(d.strategy, d.day)) == [("s1", dt.date(2026, 11, 18)), ("s2", dt.date(2026, 11, 19))]
    assert d.savings.tolist() == pytest.approx([25.0, 2.0])
    assert len(j.tca(since="2026-11-19")) == 1


@pytest.mark.parametrize("bid, ask", [(None, None), (0.0, 10.0), (math.nan, 10.0), (math.inf, 10.0),
                                      (-1.0, 10.0), (10.2, 10.0)], ids=["none", "zero", "nan", "inf", "negative",
                                                                        "crossed"])
def test_a_fill_without_a_usable_arrival_quote_has_no_benchmark_and_is_counted_apart(journal, bid, ask):
    def build(c):
        order(c, 6, bid=bid, ask=ask)
        fill(c, "h", 6, "BOT", 50, 10.0)
        order(c, 7, bid=9.98, ask=10.02)
        fill(c, "i", 7, "BOT", 50, 10.0)
    j = journal(build)
    f = j.tca()
    assert math.isnan(f.iloc[0].slippage_bps) and math.isnan(f.iloc[0].improvement)
    d = j.tca_daily().iloc[0]
    assert d.fills == 2 and d.fills_without_quote == 1
    assert d.slippage_bps == pytest.approx(0.0) and d.savings == pytest.approx(0.02 * 50)


def test_the_benchmark_is_the_quote_at_placement_not_at_a_later_modification(journal):
    def build(c):
        order(c, 8, bid=20.00, ask=20.04)
        order(c, 8, action="modify", bid=21.00, ask=21.04)
        fill(c, "j", 8, "BOT", 10, 20.03)
    f = journal(build).tca().iloc[0]
    assert f.far_side == 20.04 and f.improvement_per_share == pytest.approx(0.01)


def test_an_empty_journal_gives_empty_frames_with_their_columns(journal):
    j = journal(lambda c: None)
    assert j.tca().empty and "slippage_bps" in j.tca().columns
    assert j.tca_daily().empty and "savings" in j.tca_daily().columns


def test_the_journal_command_prints_the_daily_table_and_exports_the_fills(journal, tmp_path, capsys):
    from ibframe.journal.__main__ import main
    j = journal(lambda c: (order(c, 1, bid=150.05, ask=150.15), fill(c, "e1", 1, "BOT", 1000, 150.02)))
    assert main([str(j.path), "--tca"]) == 0
    out = capsys.readouterr().out
    assert "savings" in out and "130.0" in out and "2026-11-18" in out
    csv = tmp_path / "fills.csv"
    assert main([str(j.path), "--tca", "--export", "csv", "--out", str(csv)]) == 0
    text = csv.read_text()
    assert text.splitlines()[0].startswith("time,day,strategy") and "e1" in text
