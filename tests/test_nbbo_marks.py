"""The NBBO at the moments TCA needs, in the journal: every order's arrival (the strategy's line, else a
snapshot the order path takes itself), every fill, and periodic marks of the live lines; late-reported
executions get none; a version-1 journal migrates.

Live tests drive an Engine against the simulator with the journal installed (the real hooks, the real
ibapi client over loopback).
"""
from __future__ import annotations

import sqlite3

import pandas as pd
import pytest

from conftest import wait_until
from ibframe.contracts import Stock
from ibframe.engine import Engine
from ibframe.journal import Journal, JournalConfig, install
from ibframe.journal.schema import SCHEMA_VERSION, TABLES, create_sql, insert_sql
from ibframe.strategy import Strategy


class Idle(Strategy):
    """Places only what the test asks for."""


@pytest.fixture
def live(make_gateway, tmp_path):
    """live(**journal_options) -> (engine, journal, strategy) against one simulator; a second call is a
    restart of the same client (same state dir, same journal)."""
    gw = make_gateway(seed=11)
    made = []

    def start(**options):
        options.setdefault("snapshot_every", 0)
        engine = Engine("127.0.0.1", gw.port, 43, state_dir=tmp_path / "var").start()
        made.append(engine)
        journal = install(engine, JournalConfig(path=str(tmp_path / "journal.sqlite"), **options))
        made.append(journal)
        instruments = {name: engine.qualify(Stock(name)) for name in ("AAPL", "MSFT")}
        strategy = Idle(engine, "marks", {}, instruments)
        engine.on_dispatch(strategy._start)
        return engine, journal, strategy
    start.gateway = gw
    yield start
    for thing in reversed(made):
        if isinstance(thing, Journal):
            thing.close()
        else:
            thing.stop()


def do(strategy: Strategy, fn):
    return strategy.engine.on_dispatch(lambda: fn(strategy))


def filled(trade) -> bool:
    return trade.done and bool(trade.fills) and all(f.commission is not None for f in trade.fills)


def quotes_of(journal: Journal, **match) -> pd.DataFrame:
    assert journal.flush()
    q = Journal(journal.path).quotes()
    for column, value in match.items():
        q = q[q[column] == value]
    return q


def test_an_order_without_a_live_line_gets_its_own_arrival_snapshot_and_its_fill_an_nbbo(live):
    engine, journal, s = live(sample_every=0)
    bought = do(s, lambda s: s.buy("MSFT", 7))
    wait_until(lambda: filled(bought) and bought.arrival_bid is not None, what="the buy, its fill and its snapshot")

    # the snapshot's NBBO reached the Trade (the run summary's figures) and the journal
    assert 0 < bought.arrival_bid <= bought.arrival_ask
    wait_until(lambda: len(quotes_of(journal, why="fill")) == len(bought.fills), what="the fill-time quotes")
    arrival = quotes_of(journal, why="arrival")
    assert len(arrival) == 1
    row = arrival.iloc[0]
    assert (row.source, row.order_id, row.client_id, row.symbol, row.strategy) == \
        ("snapshot", bought.order_id, 43, "MSFT", "marks")
    assert (row.bid, row.ask) == (bought.arrival_bid, bought.arrival_ask)
    # the order row itself had no line to carry
    order = Journal(journal.path).orders().query("order_id == @bought.order_id").iloc[0]
    assert pd.isna(order.arrival_bid) and pd.isna(order.arrival_ask)

    # TCA takes the snapshot as the arrival benchmark, and the NBBO at the fill from the journal
    tca = Journal(journal.path).tca()
    assert len(tca) == len(bought.fills) and set(tca.arrival_source) == {"snapshot"}
    for f in tca.itertuples():
        assert f.arrival_ask == bought.arrival_ask and f.far_side == bought.arrival_ask
        assert f.improvement_per_share == pytest.approx(bought.arrival_ask - f.price)
        assert 0 < f.fill_bid <= f.fill_ask
        assert f.fill_improvement_per_share == pytest.approx(f.fill_ask - f.price)
    assert Journal(journal.path).tca_daily().iloc[0].fills_without_quote == 0


def test_a_live_line_is_the_arrival_quote_and_is_sampled_on_the_timer(live):
    engine, journal, s = live(sample_every=0.05)
    q = do(s, lambda s: s.quote("AAPL"))
    wait_until(lambda: q.bid is not None and q.ask is not None, what="the AAPL line")
    sold = do(s, lambda s: s.sell("AAPL", 4))
    wait_until(lambda: filled(sold), what="the sell to fill")
    wait_until(lambda: len(quotes_of(journal, why="sample")) >= 5, what="five samples")

    assert quotes_of(journal, why="arrival").empty          # the line's quote is on the order row: no snapshot
    samples = quotes_of(journal, why="sample")
    assert set(samples.symbol) == {"AAPL"} and set(samples.source) == {"line"}
    assert (samples.bid > 0).all() and (samples.bid <= samples.ask).all()
    assert samples.time.is_monotonic_increasing
    seen = list(zip(samples.bid, samples.ask, samples["last"]))
    assert all(a != b for a, b in zip(seen, seen[1:]))          # an unchanged quote is not sampled again
    fills = quotes_of(journal, why="fill")
    assert set(fills.source) == {"line"} and set(fills.exec_id) == {f.exec_id for f in sold.fills}
    assert str(quotes_of(journal).order_id.dtype) == "Int64"         # ids stay integers beside the samples' NULLs
    assert set(fills.order_id) == {sold.order_id}

    tca = Journal(journal.path).tca()
    assert set(tca.arrival_source) == {"line"} and (tca.side == "SLD").all()
    for f in tca.itertuples():
        assert f.far_side == sold.arrival_bid                  # a sell crosses to the bid
        assert f.improvement_per_share == pytest.approx(f.price - sold.arrival_bid)
        assert f.fill_improvement_per_share == pytest.approx(f.price - f.fill_bid)


def test_a_refused_snapshot_leaves_its_moment_without_a_quote_and_the_next_order_gets_one(live):
    # 354 (no market data permissions) for the arrival snapshot: the order still fills, TCA says it had no quote,
    # the refusal is journaled as an error, and the next order's snapshot works again
    engine, journal, s = live(sample_every=0)
    live.gateway.faults.refuse_market_data(43, n=1)
    refused = do(s, lambda s: s.buy("MSFT", 3))
    wait_until(lambda: filled(refused), what="the buy to fill")
    wait_until(lambda: journal.flush() and (Journal(journal.path).errors().code == 354).sum() == 1,
               what="the refusal journaled")
    assert refused.arrival_bid is None and quotes_of(journal, why="arrival").empty
    later = do(s, lambda s: s.buy("MSFT", 2))
    wait_until(lambda: filled(later) and later.arrival_bid is not None, what="the next buy and its snapshot")
    assert journal.flush()
    tca = Journal(journal.path).tca()
    sources = {(int(o), None if pd.isna(src) else src) for o, src in zip(tca.order_id, tca.arrival_source)}
    assert sources == {(refused.order_id, None), (later.order_id, "snapshot")}, sources
    assert Journal(journal.path).tca_daily().iloc[0].fills_without_quote == len(refused.fills)


def test_snapshots_can_be_turned_off_and_tca_then_says_the_fill_had_no_quote(live):
    engine, journal, s = live(sample_every=0, nbbo_snapshots=False)
    bought = do(s, lambda s: s.buy("MSFT", 3))
    wait_until(lambda: filled(bought), what="the buy to fill")
    assert quotes_of(journal).empty and bought.arrival_bid is None
    day = Journal(journal.path).tca_daily().iloc[0]
    assert day.fills_without_quote == day.fills == len(bought.fills)


def test_executions_reported_late_after_a_restart_get_no_fill_time_quote(live):
    engine, journal, s = live(sample_every=0)
    bought = do(s, lambda s: s.buy("MSFT", 5))
    wait_until(lambda: filled(bought), what="the buy to fill")
    wait_until(lambda: len(quotes_of(journal, why="fill")) == len(bought.fills), what="the fill-time quotes")
    journal.close()
    engine.stop()

    # a restart: the journal asks TWS for today's executions; they arrive as answers, not as they happen
    engine2, journal2, s2 = live(sample_every=0)
    wait_until(lambda: all(e in engine2.orders.by_exec_id for e in (f.exec_id for f in bought.fills)),
               what="the reconciliation to report the earlier fills")
    assert all(engine2.orders.by_exec_id[f.exec_id][1].late for f in bought.fills)
    assert len(quotes_of(journal2, why="fill")) == len(bought.fills)      # still one each, from the first run


def test_a_version_1_journal_gains_the_quotes_table_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        for table in TABLES:
            if table != "quotes":
                conn.execute(create_sql(table))
        conn.executemany("INSERT INTO meta VALUES (?, ?)", [("schema_version", "1"), ("account", "DU1")])
        conn.execute(insert_sql("executions"), [{"exec_id": "e1", "time": 1.7e9, "side": "BOT", "shares": 5,
                                                 "price": 10.0}.get(c) for c, _ in TABLES["executions"]])
    conn.close()
    old = Journal(path)                      # read-only, not migrated: TCA still reads it (no quotes: none)
    assert list(old.tca().exec_id) == ["e1"] and old.quotes().empty
    assert sqlite3.connect(path).execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "1"

    Journal(path, write=True, account="DU1").close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    conn.close()
    book = Journal(path)
    assert list(book.executions().exec_id) == ["e1"] and book.quotes().empty
    assert book.tca().iloc[0].arrival_source is None


def test_two_simulators_never_give_two_fills_one_exec_id_so_one_journal_keeps_both(make_gateway, tmp_path):
    # the same seed, start and order on two gateways: TWS's execIds are unique across sessions, the sim's too
    fills = []
    for _ in range(2):
        gw = make_gateway(seed=11)
        engine = Engine("127.0.0.1", gw.port, 44, state_dir=tmp_path / f"var-{len(fills)}").start()
        journal = install(engine, JournalConfig(path=str(tmp_path / "journal.sqlite"), snapshot_every=0,
                                                sample_every=0))
        try:
            s = Idle(engine, "twice", {}, {"AAPL": engine.qualify(Stock("AAPL"))})
            engine.on_dispatch(s._start)
            bought = do(s, lambda s: s.buy("AAPL", 1))
            wait_until(lambda: filled(bought), what="the buy to fill")
            fills += bought.fills
        finally:
            journal.close()
            engine.stop()
    assert len({f.exec_id for f in fills}) == len(fills) == 2
    assert sorted(Journal(tmp_path / "journal.sqlite").executions().exec_id) == sorted(f.exec_id for f in fills)
