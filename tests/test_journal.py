"""The compliance journal: every kind of row lands, an execution is stored once, garbage never stops the
writer, a stalled disk never stalls the dispatch thread, and the reader API and export CLI return it all.

Live tests drive an Engine against the simulator with the journal installed (the real hooks, the real
ibapi client). The reader, garbage and config tests feed the journal's record methods directly with
ibapi's own Execution / Order / Contract objects (plain data, nothing mocked).
"""
from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import sys
import tempfile
import threading
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ibapi.commission_and_fees_report import CommissionAndFeesReport
from ibapi.contract import Contract
from ibapi.execution import Execution
from ibapi.order import Order

from conftest import wait_until
from ibframe.contracts import ContractError, Stock
from ibframe.engine import Engine
from ibframe.errors import ErrorClass, IBError
from ibframe.journal import Journal, JournalConfig, JournalError, install, reconcile
from ibframe.journal.schema import SCHEMA_VERSION
from ibframe.risk.base import GLOBAL, RiskEvent
from ibframe.strategy import Strategy
from ibframe.trading.orders import limit
from ibframe.trading.trade import Fill, Trade

ROOT = Path(__file__).resolve().parents[1]


class Idle(Strategy):
    """Places only what the test asks for."""


@pytest.fixture
def live(make_gateway, tmp_path):
    """live(client_id, **install_options) -> (engine, journal, strategy) against one simulator."""
    gw = make_gateway(seed=5)
    made = []

    def start(client_id: int = 41, snapshot_every: float = 0, **options):
        engine = Engine("127.0.0.1", gw.port, client_id, state_dir=tmp_path / "var").start()
        made.append(engine)
        journal = install(engine, JournalConfig(path=str(tmp_path / "journal-{account}.sqlite"),
                                                snapshot_every=snapshot_every), **options)
        engine.subscribe_account()
        aapl = engine.qualify(Stock("AAPL"))
        strategy = Idle(engine, "rec", {}, {"AAPL": aapl})
        engine.on_dispatch(strategy._start)
        made.append(journal)
        return engine, journal, strategy
    yield start
    for thing in reversed(made):
        if isinstance(thing, Journal):
            thing.close()
        else:
            thing.stop()


def do(strategy: Strategy, fn):
    return strategy.engine.on_dispatch(lambda: fn(strategy))


# --- live: every kind of row ------------------------------------------------------------------------
def test_every_order_status_execution_commission_error_risk_event_and_snapshot_lands(live):
    engine, journal, s = live(snapshot_every=0.2)
    assert journal.path.name == f"journal-{engine.account}.sqlite"
    bought = do(s, lambda s: s.buy("AAPL", 10))
    wait_until(lambda: bought.done and bought.fills and all(f.commission is not None for f in bought.fills),
               what="the buy to fill with its commission")
    resting = do(s, lambda s: s.place("AAPL", limit("BUY", 3, 1.00, tif="GTC", outsideRth=True)))
    wait_until(lambda: resting.status == "Submitted", what="the bid to rest")
    do(s, lambda s: s.engine.orders.modify(resting, lmtPrice=1.50))
    wait_until(lambda: resting.order.lmtPrice == 1.50, what="the modification")
    do(s, lambda s: s.cancel(resting))
    wait_until(lambda: resting.status == "Cancelled", what="the cancel")
    with pytest.raises(ContractError):
        engine.qualify(Stock("NOSUCHSYMBOLX"))
    journal.record_risk_event(RiskEvent(engine.clock.now(), "refused", "rec", "max_order_quantity",
                                        "refused by risk rule max_order_quantity", {"limit": 1000, "value": 5000}))
    wait_until(lambda: (engine.portfolio.position(s.instruments["AAPL"].conId) == 10 and journal.flush()
                        and not Journal(journal.path).portfolio().empty
                        and (Journal(journal.path).portfolio().quantity == 10).any()),
               what="a snapshot holding the 10 shares")
    assert journal.flush()
    book = Journal(journal.path)

    orders = book.orders()
    mine = orders[orders.order_id == resting.order_id]
    assert list(mine.action) == ["place", "modify", "cancel"]
    assert list(mine.lmt_price) == [1.00, 1.50, 1.50]
    first = mine.iloc[0]
    assert (first.side, first.quantity, first.order_type, first.tif, first.outside_rth, first.symbol,
            first.sec_type, first.strategy, first.order_ref, first.client_id) == \
        ("BUY", 3, "LMT", "GTC", 1, "AAPL", "STK", "rec", "rec", 41)
    assert first.con_id == s.instruments["AAPL"].conId and first.account == engine.account
    buy = orders[orders.order_id == bought.order_id].iloc[0]
    assert (buy.action, buy.order_type, buy.quantity) == ("place", "MKT", 10)
    assert pd.isna(buy.lmt_price)                       # IB's "unset" price is stored as NULL

    statuses = book.statuses()
    assert "Filled" in set(statuses[statuses.order_id == bought.order_id].status)
    assert statuses[statuses.order_id == resting.order_id].status.iloc[-1] == "Cancelled"

    ex = book.executions()
    assert set(ex.exec_id) == {f.exec_id for f in bought.fills}
    assert ex.shares.sum() == 10 and set(ex.side) == {"BOT"} and set(ex.strategy) == {"rec"}
    assert (ex.commission > 0).all() and ex.price.tolist() == [f.price for f in bought.fills]
    assert isinstance(ex.time.iloc[0], pd.Timestamp) and str(ex.time.dt.tz) == "UTC"
    assert (ex.order_id == bought.order_id).all() and ex.perm_id.iloc[0] == bought.perm_id

    errors = book.errors()
    assert 200 in set(errors.code) and errors[errors.code == 200].subject.str.contains("NOSUCHSYMBOLX").any()
    risk = book.risk_events()
    assert risk.rule.tolist() == ["max_order_quantity"]
    assert json.loads(risk.details.iloc[0]) == {"limit": 1000, "value": 5000}
    account = book.account()
    net = account[(account.key == "NetLiquidation") & (account.currency == "USD")]
    assert not net.empty and (net.number > 0).all() and float(net.value.iloc[0]) == net.number.iloc[0]


def test_a_resent_execution_is_journaled_once(live):
    engine, journal, s = live(client_id=42)
    bought = do(s, lambda s: s.buy("AAPL", 4))
    wait_until(lambda: bought.done and bought.fills, what="the fill")
    assert journal.flush()
    exec_ids = {f.exec_id for f in bought.fills}
    before = Journal(journal.path).executions()
    assert set(before.exec_id) == exec_ids

    # a second session (a new process: its order manager has seen nothing) reconciles through reqExecutions:
    # TWS re-sends the same executions, the hooks fire again, the journal keeps one row each
    engine2, journal2, _ = live(client_id=43)
    assert journal2.path == journal.path
    wait_until(lambda: exec_ids <= set(engine2.orders.by_exec_id), what="the re-sent executions")
    reconcile(engine2, journal2)                                         # and once more, for good measure
    fill = bought.fills[0]
    journal2.record_execution(None, fill, _execution(fill.exec_id, "20261118 11:30:00 US/Eastern", "BOT", 4, 1.0))
    assert journal2.flush() and journal.flush()
    after = Journal(journal.path).executions()
    assert sorted(after.exec_id) == sorted(exec_ids)
    assert after.price.tolist() == before.price.tolist()                 # the first copy stays


def test_a_hook_returns_while_the_writer_is_stuck_on_the_disk(live, tmp_path):
    stalled, release = threading.Event(), threading.Event()

    def slow_disk():
        stalled.set()
        release.wait()

    path = tmp_path / "stalled.sqlite"
    stuck = Journal(path, write=True, before_commit=slow_disk)
    engine, _, s = live(client_id=44, journal=stuck, reconcile_now=False)
    trades = []
    for _ in range(3):
        trades.append(do(s, lambda s: s.buy("AAPL", 1)))
        wait_until(lambda: trades[-1].done, what="a fill while the journal's disk is stuck")
    wait_until(stalled.is_set, what="the writer to reach its first commit")
    assert engine.on_dispatch(lambda: "still dispatching") == "still dispatching"
    assert stuck.stats["rows"] == 0 and stuck.stats["backlog"] > 0      # nothing reached the disk yet
    assert sum(len(t.fills) for t in trades) >= 3                       # yet every fill reached the strategy
    release.set()
    assert stuck.flush()
    assert set(Journal(path).executions().exec_id) == {f.exec_id for t in trades for f in t.fills}


# --- garbage in, rows out --------------------------------------------------------------------------
def _execution(exec_id, time_text, side, shares, price, order_ref="", **fields) -> Execution:
    e = Execution()
    e.execId, e.time, e.side, e.shares, e.price, e.orderRef = exec_id, time_text, side, shares, price, order_ref
    e.acctNumber = "DU1"
    for k, v in fields.items():
        setattr(e, k, v)
    return e


def _contract(con_id=265598, symbol="AAPL", sec_type="STK") -> Contract:
    c = Contract()
    c.conId, c.symbol, c.secType, c.exchange, c.currency = con_id, symbol, sec_type, "SMART", "USD"
    return c


def _fill(e: Execution, contract: Contract) -> Fill:
    return Fill(e.execId, e.time, e.side, 0.0, 0.0, "", contract=contract, order_ref=e.orderRef)


ANY_NUMBER = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-2 ** 80, 2 ** 80),
                       st.decimals(allow_nan=True, allow_infinity=True), st.none(), st.booleans(),
                       st.sampled_from([Decimal(2 ** 127 - 1), sys.float_info.max, 2 ** 31 - 1]))
ANY_TEXT = st.one_of(st.text(), st.sampled_from(["\x00", "\ud800", "é€😀", "x" * 10_000]), st.none(), ANY_NUMBER)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(ANY_NUMBER, ANY_NUMBER, ANY_NUMBER, ANY_TEXT, ANY_TEXT), min_size=1, max_size=12))
def test_garbage_values_are_stored_and_never_stop_the_writer(rows):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j.sqlite"
        journal = Journal(path, write=True)
        try:
            for n, (a, b, c, t, u) in enumerate(rows):
                contract = _contract()
                contract.conId, contract.strike, contract.symbol = b, c, t
                e = _execution(f"g{n}", u, t, a, b, t, cumQty=c, permId=a, clientId=b, evMultiplier=c)
                journal.record_execution(None, _fill(e, contract), e)
                order = Order()
                order.action, order.totalQuantity, order.lmtPrice, order.auxPrice = t, a, b, c
                order.orderRef, order.parentId, order.account = u, a, t
                trade = Trade(a, contract, order, strategy=t, filled=b, remaining=c, avg_fill_price=a)
                trade.perm_id = b
                journal.record_order(trade, "place")
                journal.record_status(trade)
                report = CommissionAndFeesReport()
                report.execId, report.commissionAndFees, report.realizedPNL, report.currency = f"g{n}", a, b, t
                report.yieldRedemptionDate = c
                journal.record_commission(None, report)
                journal.record_error(IBError(a, t, b, ErrorClass.INFO, c, u, t))
                journal.record_risk_event(RiskEvent(a, t, GLOBAL, u, t, {"v": a, "w": [b, c], "t": t}))
            good = _execution("good", "20261118 11:30:00 US/Eastern", "BOT", Decimal(5), 101.25)
            journal.record_execution(None, _fill(good, _contract()), good)    # the writer still writes after it
            assert journal.flush(30)
            assert journal.writer.alive and journal.stats["dropped"] == 0
        finally:
            assert journal.close()
        book = Journal(path)
        ex = book.executions()
        assert len(ex) == len(rows) + 1 and len(book.orders()) == len(book.statuses()) == len(rows)
        assert len(book.commissions()) == len(book.errors()) == len(book.risk_events()) == len(rows)
        last = ex.iloc[-1]
        assert (last.exec_id, last.shares, last.price, last.side) == ("good", 5.0, 101.25, "BOT")
        for n, (a, *_rest) in enumerate(rows):
            stored = ex.shares.iloc[n]
            try:
                expected = float(a)
            except (TypeError, ValueError, OverflowError):
                expected = None
            if expected is None or math.isnan(expected) or expected in (sys.float_info.max, float(2 ** 127 - 1)):
                assert pd.isna(stored)
            else:
                assert stored == expected


def test_numbers_ib_leaves_unset_are_null_and_infinities_are_kept(tmp_path):
    path = tmp_path / "j.sqlite"
    with Journal(path, write=True) as journal:
        e = _execution("x1", "garbled time", "SLD", Decimal(2 ** 127 - 1), float("nan"), evMultiplier=float("inf"),
                       permId=2 ** 70)
        journal.record_execution(None, _fill(e, _contract()), e)
    row = Journal(path).executions().iloc[0]
    assert pd.isna(row.shares) and pd.isna(row.price) and pd.isna(row.perm_id) and row.ev_multiplier == math.inf
    assert row.exec_time == "garbled time" and row.time == row.received     # unreadable time: when it arrived


# --- reading ----------------------------------------------------------------------------------------
def _fixture_journal(path: Path) -> None:
    """Two strategies, two days, a combo: what the reader and export tests read."""
    with Journal(path, write=True) as j:
        rows = [("a1", "20261117 15:00:00 US/Eastern", "BOT", 100, "alpha", _contract()),
                ("a2", "20261118 09:45:00 US/Eastern", "SLD", 100, "alpha", _contract()),
                ("b1", "20261118-15:00:00", "BOT", 7, "beta", _contract(756733, "SPY")),        # UTC: 10:00 NY
                ("c0", "20261118 10:30:00 US/Eastern", "BOT", 1, "beta", _contract(0, "SPY,QQQ", "BAG"))]
        for exec_id, when, side, shares, ref, contract in rows:
            e = _execution(exec_id, when, side, shares, 100.0, ref)
            j.record_execution(None, _fill(e, contract), e)
        j.record_snapshot({("DU1", "NetLiquidation", "USD"): "19990.5", ("DU1", "AccountType", ""): "INDIVIDUAL"},
                          [], now=1.0)


def test_reader_filters_by_time_and_strategy_and_lists_day_trades(tmp_path):
    path = tmp_path / "j.sqlite"
    _fixture_journal(path)
    book = Journal(path)
    assert list(book.executions().exec_id) == ["a1", "a2", "b1", "c0"]
    assert list(book.executions(since="2026-11-18").exec_id) == ["a2", "b1", "c0"]
    assert list(book.executions(since="2026-11-18 10:00", strategy="beta").exec_id) == ["b1", "c0"]
    assert list(book.executions(strategy="nobody").exec_id) == []
    since = pd.Timestamp("2026-11-17 16:00", tz="America/New_York")
    trades = book.day_trade_executions(since.timestamp())
    assert [(side, shares) for _, _, side, shares in trades] == [("SLD", 100), ("BOT", 7)]     # BAG left out
    assert trades[0][1] == 265598 and trades[0][0] == pd.Timestamp("2026-11-18 09:45", tz="America/New_York").timestamp()
    assert book.day_trade_executions(since.timestamp(), account="DU2") == []
    numbers = book.account().set_index("key").number
    assert numbers["NetLiquidation"] == 19990.5 and pd.isna(numbers["AccountType"])
    assert book.last_execution_time() == pd.Timestamp("2026-11-18 10:30", tz="America/New_York").timestamp()
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        book.executions(since="yesterday")


def test_a_journal_opened_for_reading_never_writes(tmp_path):
    missing = tmp_path / "nope.sqlite"
    with pytest.raises(JournalError, match="no journal at"):
        Journal(missing)
    assert not missing.exists()
    path = tmp_path / "j.sqlite"
    _fixture_journal(path)
    book = Journal(path)
    with pytest.raises(JournalError, match="opened for reading"):
        book.record_risk_event(RiskEvent(1.0, "alert", GLOBAL))
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(JournalError, match="not an ibframe journal"):
        Journal(other, write=True)


def test_a_journal_from_a_newer_ibframe_is_refused(tmp_path):
    path = tmp_path / "j.sqlite"
    _fixture_journal(path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()
    for opener in (lambda: Journal(path), lambda: Journal(path, write=True)):
        with pytest.raises(JournalError, match="newer"):
            opener()


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ibframe.journal", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_export_cli_writes_csv_and_says_what_parquet_needs(tmp_path):
    path = tmp_path / "j.sqlite"
    _fixture_journal(path)
    out = tmp_path / "ex.csv"
    done = _cli(path, "--export", "csv", "--table", "executions", "--since", "2026-11-18", "--out", out)
    assert done.returncode == 0, done.stderr
    frame = pd.read_csv(out)
    assert list(frame.exec_id) == ["a2", "b1", "c0"] and "3 rows written" in done.stderr
    done = _cli(path, "--export", "csv", "--table", "account_values")
    assert done.returncode == 0 and "NetLiquidation,USD,19990.5" in done.stdout
    summary = _cli(path)
    assert summary.returncode == 0 and "executions" in summary.stdout and " 4 rows" in summary.stdout

    pq = tmp_path / "ex.parquet"
    done = _cli(path, "--export", "parquet", "--table", "executions", "--out", pq)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        assert done.returncode == 2 and "pyarrow" in done.stderr and not pq.exists()
    else:
        assert done.returncode == 0 and list(pd.read_parquet(pq).exec_id) == ["a1", "a2", "b1", "c0"]

    bad = _cli(tmp_path / "missing.sqlite", "--export", "csv")
    assert bad.returncode == 2 and "no journal at" in bad.stderr
    bad = _cli(path, "--export", "csv", "--since", "last tuesday")
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr


# --- config -----------------------------------------------------------------------------------------
def _fail(key_path, message):
    raise ValueError(f"{'.'.join(map(str, key_path))}: {message}")


def test_journal_config_reads_the_yaml_section_and_names_bad_keys():
    assert JournalConfig.from_mapping(None, _fail) == JournalConfig()
    assert JournalConfig.from_mapping(False, _fail).enabled is False
    cfg = JournalConfig.from_mapping({"path": "var/j-{account}.sqlite", "snapshot_every": "30s"}, _fail)
    assert cfg.snapshot_every == 30 and str(cfg.path_for("var", "DU 1/2")) == "var/j-DU_1_2.sqlite"
    assert str(JournalConfig().path_for("state", "DU1234567")) == "state/journal-DU1234567.sqlite"
    assert JournalConfig.from_mapping({"snapshot_every": "off"}, _fail).snapshot_every == 0
    for raw, where in (({"pth": "x"}, "journal.pth: unknown key"), ({"enabled": "yes"}, "journal.enabled"),
                       ({"snapshot_every": "-5s"}, "journal.snapshot_every"), ({"path": ""}, "journal.path"),
                       ("on", "journal: must be a mapping")):
        with pytest.raises(ValueError, match=where):
            JournalConfig.from_mapping(raw, _fail)


def test_what_a_run_reads_back_at_start_survives_the_recording_for_a_replay(tmp_path):
    # ReadBack keeps the journal's answers as plain JSON (the recording's journal_read mark); Replayed gives them back
    from ibframe.journal.readback import ReadBack, Replayed
    path = tmp_path / "j.sqlite"
    _fixture_journal(path)
    book = Journal(path)
    live = ReadBack(book)
    last, rows = live.last_execution_time(), live.day_trade_executions("2026-11-17")
    assert last == book.last_execution_time() and len(rows) == 3          # the BAG's own execution left out
    replayed = Replayed(json.loads(json.dumps(live.seen)))
    assert replayed.last_execution_time() == last
    assert replayed.day_trade_executions("2026-11-17", "DU1") == rows
    assert Replayed({}).last_execution_time() is None and Replayed({}).day_trade_executions(0) == []
