"""`ibframe report`: positions, equity and drawdown by hand; the page, its escaping and its PNGs; the command
line's errors; a recording replayed into a report; and one real run whose report shows its fills.

Journals are built by hand as in test_tca.py (prepare + insert_sql), at fixed New York times.
"""
from __future__ import annotations

import base64
import datetime as dt
import io
import re
import sqlite3
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from ibframe.journal.schema import TABLES, insert_sql, prepare
from ibframe.report import ReportError, build_report
from ibframe.report.charts import all_charts, fills_chart
from ibframe.report.cli import main as report_main
from ibframe.report.data import load
from ibframe.report.equity import analyse, totals
from ibframe.run import Runner, main as run_main
from ibframe.strategy import Strategy
from replay_fixtures import BUY_ON_NTH, CHECKED_IN

NY = ZoneInfo("America/New_York")
T0 = dt.datetime(2026, 11, 18, 10, 0, tzinfo=NY).timestamp()
AAPL, ES = 265598, 495512563
PNG = b"\x89PNG\r\n\x1a\n"


# --- hand-built journals ------------------------------------------------------------------------------------------

def insert(conn, table: str, **values) -> None:
    conn.execute(insert_sql(table), [values.get(c) for c, _ in TABLES[table]])


def fill(conn, exec_id, side, shares, price, t, strategy="s1", con_id=AAPL, symbol="AAPL", sec_type="STK",
         multiplier="", commission=None, order_id=1):
    insert(conn, "executions", exec_id=exec_id, time=t, received=t, order_id=order_id, client_id=7,
           strategy=strategy, con_id=con_id, symbol=symbol, local_symbol=symbol, sec_type=sec_type,
           multiplier=multiplier, side=side, shares=shares, price=price, currency="USD")
    if commission is not None:
        insert(conn, "commissions", exec_id=exec_id, time=t, commission=commission, currency="USD")


def quote(conn, t, bid, ask, last=None, con_id=AAPL, symbol="AAPL", why="sample"):
    insert(conn, "quotes", time=t, why=why, source="line", con_id=con_id, symbol=symbol, sec_type="STK", bid=bid,
           ask=ask, last=last)


def order(conn, order_id, t, side="BUY", quantity=100, bid=None, ask=None, strategy="s1", symbol="AAPL",
          action="place", order_type="MKT"):
    insert(conn, "orders", time=t, action=action, order_id=order_id, client_id=7, strategy=strategy, con_id=AAPL,
           symbol=symbol, sec_type="STK", side=side, quantity=quantity, order_type=order_type, tif="DAY",
           arrival_bid=bid, arrival_ask=ask)


def status(conn, order_id, t, state, filled, remaining, avg, strategy="s1", reason=None):
    insert(conn, "statuses", time=t, order_id=order_id, strategy=strategy, con_id=AAPL, symbol="AAPL", status=state,
           filled=filled, remaining=remaining, avg_fill_price=avg, reason=reason)


@pytest.fixture
def journal(tmp_path):
    """journal(build) -> the path of a new journal holding what build(conn) inserted."""
    def make(build, name="j.sqlite") -> Path:
        path = tmp_path / name
        conn = sqlite3.connect(path)
        prepare(conn, "DU1")
        with conn:
            build(conn)
        conn.close()
        return path
    return make


def round_trip(c):
    """Buy 100 @ 10.00, quotes, sell 40 @ 10.30 and 60 @ 10.25 (one order, two partial fills)."""
    fill(c, "b1", "BOT", 100, 10.00, T0, commission=1.0)
    quote(c, T0 + 10, 10.10, 10.20)                 # mid 10.15
    fill(c, "s1", "SLD", 40, 10.30, T0 + 20, commission=0.5, order_id=2)
    quote(c, T0 + 25, 9.90, 10.00)                  # mid 9.95: a dip
    fill(c, "s2", "SLD", 60, 10.25, T0 + 30, commission=0.6, order_id=2)


def curve(eq, strategy="s1"):
    e = eq.equity[eq.equity.strategy == strategy]
    return [(round(t.timestamp() - T0, 3), round(v, 6), round(d, 6)) for t, v, d in zip(e.time, e.equity, e.drawdown)]


# --- equity arithmetic --------------------------------------------------------------------------------------------

def test_buys_partial_sells_and_commissions_give_the_hand_computed_equity_and_drawdown(journal):
    d = load(journal(round_trip))
    eq = analyse(d.executions, d.quotes, d.account_values)
    # cash: -1000 - 1 = -1001; +412 - 0.5 = -589.5; +615 - 0.6 = +24.9
    assert curve(eq) == [(0, -1.0, -1.0),                     # no quote yet: marked at the fill price, 100 × 10.00
                         (10, 14.0, 0.0),                      # -1001 + 100 × 10.15
                         (20, 28.5, 0.0),                      # -589.5 + 60 × 10.30 (the fill: newer than the quote)
                         (25, 7.5, -21.0),                     # -589.5 + 60 × 9.95, 21 below the peak of 28.5
                         (30, 24.9, -3.6)]                     # flat: the cash is the P&L, 3.6 below the peak
    c = eq.curves
    assert c.position.tolist() == [100, 100, 60, 60, 0]
    t = totals(eq).iloc[0]
    assert (t.fills, t.bought, t.sold, t.positions) == (3, 100, 100, "flat")
    assert t.commission == pytest.approx(2.1) and t.equity == pytest.approx(24.9)
    assert t.max_drawdown == pytest.approx(-21.0)


def test_a_future_counts_its_multiplier_and_strategies_and_instruments_are_kept_apart(journal):
    def build(c):
        fill(c, "f1", "BOT", 2, 6000.00, T0, con_id=ES, symbol="ESZ6", sec_type="FUT", multiplier="50",
             commission=1.70)
        fill(c, "f2", "SLD", 1, 6000.50, T0 + 1, strategy="s2", con_id=ES, symbol="ESZ6", sec_type="FUT",
             multiplier="50", commission=0.85)
        fill(c, "a1", "BOT", 10, 100.0, T0 + 2)          # s1 also trades AAPL (no quotes: its fill price marks it)
        quote(c, T0 + 3, 6001.00, 6001.50, con_id=ES, symbol="ESZ6")
        fill(c, "a2", "SLD", 10, 101.0, T0 + 4)
    d = load(journal(build))
    eq = analyse(d.executions, d.quotes)
    # s1: ES -600,001.70 cash, 2 × 50 × mark; AAPL -1,000 then +10 flat. s2: ES +300,024.15 cash, -1 × 50 × mark
    assert curve(eq, "s1") == [(0, -1.7, -1.7),           # ES marked at its own fill, 6000.00
                               (1, 48.3, 0.0),            # s2's fill at 6000.50 is the mark: 2 × 50 × 0.50 - 1.70
                               (2, 48.3, 0.0),            # AAPL bought, marked at its fill
                               (3, 123.3, 0.0),           # ES quote mid 6001.25: 2 × 50 × 1.25 - 1.70
                               (4, 133.3, 0.0)]           # AAPL sold 1.00 higher × 10
    assert curve(eq, "s2") == [(1, -0.85, -0.85), (3, -38.35, -38.35)]     # short 1 × 50 × 0.75 - 0.85
    t = totals(eq).set_index("strategy")
    assert t.loc["s1", "positions"] == "ESZ6 +2" and t.loc["s2", "positions"] == "ESZ6 -1"


def test_a_mark_is_the_last_price_when_the_mid_is_unusable_and_combos_are_left_out(journal):
    def build(c):
        fill(c, "x", "BOT", 10, 5.00, T0)
        quote(c, T0 + 1, None, 5.20, last=5.10)            # one-sided: last
        quote(c, T0 + 2, 5.30, 5.20, last=5.05)            # crossed: last
        quote(c, T0 + 3, 0.0, 0.0, last=None)              # nothing usable: no point, the mark stays
        quote(c, T0 + 4, 6.00, 6.20, con_id=999, symbol="MSFT")    # another instrument: no effect
        fill(c, "bag", "BOT", 1, 0.50, T0 + 5, con_id=28812380, symbol="SPY", sec_type="BAG")
    d = load(journal(build))
    eq = analyse(d.executions, d.quotes)
    assert curve(eq) == [(0, 0.0, 0.0), (1, 1.0, 0.0), (2, 0.5, -0.5)]
    assert len(eq.trades) == 1


def test_without_quotes_fill_prices_mark_the_position(journal):
    d = load(journal(lambda c: (fill(c, "1", "BOT", 10, 5.0, T0), fill(c, "2", "BOT", 10, 6.0, T0 + 60),
                                fill(c, "3", "SLD", 5, 4.0, T0 + 120, strategy="other"))))
    eq = analyse(d.executions, d.quotes)
    assert curve(eq) == [(0, 0.0, 0.0), (60, 10.0, 0.0), (120, -30.0, -40.0)]    # -110 + 20 × 4 (other's fill)


def test_account_equity_is_netliquidation_with_its_drawdown(journal):
    def build(c):
        for i, value in enumerate([1000.0, 1010.0, 990.0, 1020.0]):
            insert(c, "account_values", time=T0 + 60 * i, account="DU1", key="NetLiquidation", currency="USD",
                   value=str(value), number=value)
            insert(c, "account_values", time=T0 + 60 * i, account="DU1", key="BuyingPower", currency="USD",
                   value="5", number=5.0)
    d = load(journal(build))
    a = analyse(d.executions, d.quotes, d.account_values).account
    assert a.equity.tolist() == [1000.0, 1010.0, 990.0, 1020.0] and a.drawdown.tolist() == [0.0, 0.0, -20.0, 0.0]


def test_since_keeps_the_executions_received_from_then_on(journal):
    path = journal(lambda c: (fill(c, "old", "BOT", 1, 1.0, T0 - 86400), fill(c, "new", "BOT", 2, 2.0, T0)))
    d = load(path, since=T0 - 1)
    assert d.executions.exec_id.tolist() == ["new"] and d.fills.exec_id.tolist() == ["new"]


def test_a_journal_from_before_the_quotes_table_still_reports(journal, tmp_path):
    path = journal(round_trip)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DROP TABLE quotes")
        conn.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    conn.close()
    html = build_report(path, tmp_path / "out").read_text()
    assert "+24.90" in html and "No quotes in the journal for AAPL: fill prices only" in html


# --- the page -------------------------------------------------------------------------------------------------------

def seed_article(c):
    """The seed article's SMART fill (bought 1,000 at 150.02 under an ask of 150.15: 130 saved), a cancelled order,
    a risk event and an error."""
    order(c, 1, T0, quantity=1000, bid=150.05, ask=150.15)
    status(c, 1, T0 + 0.5, "Filled", 1000, 0, 150.02)
    fill(c, "e1", "BOT", 1000, 150.02, T0 + 0.4, commission=1.0)
    quote(c, T0 + 0.4, 150.00, 150.10, why="fill")
    order(c, 2, T0 + 5, side="SELL", quantity=300, order_type="LMT")
    order(c, 2, T0 + 9, side="SELL", action="cancel")
    status(c, 2, T0 + 9.1, "Cancelled", 0, 300, 0, reason="cancelled by the strategy")
    insert(c, "risk_events", time=T0 + 6, kind="refused", scope="s1", rule="max_order_value",
           text="order value 1,500,000 above the limit 1,000,000")
    insert(c, "errors", time=T0 + 7, code=399, req_id=2, kind="warning", text="Order Message: warning text")


def test_the_page_shows_execution_quality_with_its_signs_the_orders_risk_events_and_errors(journal, tmp_path):
    html = build_report(journal(seed_article), tmp_path / "out").read_text()
    assert_well_formed(html)
    assert "+130.00" in html and "savings (USD)" in html                     # Σ (ask at arrival − fill) × shares
    assert "+ = a cost" in html and "Σ (ask at arrival − fill price) × shares × multiplier for buys" in html
    slip = (150.02 - 150.10) / 150.10 * 1e4
    assert f"{slip:+.2f}" in html and "150,020.00" in html and "2026-11-18" in html
    assert "Filled 1,000 @ 150.0200" in html and "150.0500 / 150.1500" in html
    assert "Cancelled: cancelled by the strategy" in html and html.count(">cancel<") == 1
    assert "max_order_value" in html and "order value 1,500,000 above the limit 1,000,000" in html
    assert "Order Message: warning text" in html and ">399<" in html
    assert "2026-11-18 10:00:00.400" in html                                 # New York time
    assert "account" in html and "DU1" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html


def test_hostile_text_from_tws_is_escaped_on_the_page_and_inert_in_the_charts(journal, tmp_path):
    evil = "<script>alert(1)</script>$x^2$"

    def build(c):
        fill(c, "e1", "BOT", 5, 10.0, T0, symbol=evil, strategy="<b>s</b>")
        quote(c, T0 + 1, 9.9, 10.1, symbol=evil)
        order(c, 1, T0, symbol=evil, strategy="<b>s</b>")
        insert(c, "errors", time=T0, code=200, req_id=1, kind="error", text="<script>steal()</script>",
               subject="<img src=x onerror=alert(1)>")
        insert(c, "risk_events", time=T0, kind="halt", scope="<i>", rule="r", text="</table><script>x</script>")
    out = tmp_path / "out"
    html = build_report(journal(build), out, title="<script>t</script>").read_text()
    assert_well_formed(html)
    assert "<script" not in html and "<img src=x" not in html and "<b>s</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;$x^2$" in html and "&lt;script&gt;steal()&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&lt;b&gt;s&lt;/b&gt;" in html
    assert is_png((out / "fills.png").read_bytes())


def test_an_empty_journal_gives_a_valid_page_saying_there_were_no_fills(journal, tmp_path):
    out = tmp_path / "empty"
    path = build_report(journal(lambda c: None), out)
    html = path.read_text()
    assert_well_formed(html)
    assert path == out / "report.html" and "There were no fills" in html and "No order was sent" in html
    assert "No fills in the journal: no equity curve." in html and "(the journal is empty)" in html
    assert list(out.glob("*.png")) == []


def test_the_charts_are_valid_pngs_written_beside_the_page_and_inside_it(journal, tmp_path):
    def build(c):
        seed_article(c)
        for i in range(30):
            quote(c, T0 + i, 150.00 + i / 100, 150.10 + i / 100)
        for i, value in enumerate((1e6, 1.00002e6, 0.99999e6)):
            insert(c, "account_values", time=T0 + 60 * i, account="DU1", key="NetLiquidation", currency="USD",
                   value=str(value), number=value)
    out = tmp_path / "out"
    html = build_report(journal(build), out).read_text()
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == ["account.png", "equity.png", "fills.png", "positions.png", "slippage.png"]
    embedded = [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]
    assert len(embedded) == 5
    for name in names:
        data = (out / name).read_bytes()
        assert is_png(data) and data in embedded


def test_too_few_account_snapshots_are_told_not_drawn(journal, tmp_path):
    def build(c):
        seed_article(c)
        insert(c, "account_values", time=T0, account="DU1", key="NetLiquidation", currency="USD", value="1000000",
               number=1e6)
    out = tmp_path / "out"
    html = build_report(journal(build), out).read_text()
    assert not (out / "account.png").exists()
    assert "Too few account snapshots for a curve: NetLiquidation 1,000,000.00 USD at" in html


def test_the_fills_chart_draws_the_nbbo_band_from_quotes_or_says_it_has_only_fill_prices(journal):
    with_quotes = load(journal(round_trip))
    chart = fills_chart(analyse(with_quotes.executions, with_quotes.quotes), with_quotes.quotes)
    assert is_png(chart.png) and chart.note == ""
    bare = load(journal(lambda c: fill(c, "1", "BOT", 10, 5.0, T0), name="bare.sqlite"))
    chart = fills_chart(analyse(bare.executions, bare.quotes), bare.quotes)
    assert is_png(chart.png) and "No quotes in the journal for AAPL: fill prices only" in chart.note
    none = [c for c in all_charts(analyse(bare.executions, bare.quotes), bare.fills, bare.quotes) if c.png is None]
    assert {c.name for c in none} == {"slippage", "account"} and all(c.note for c in none)


def test_bad_inputs_are_report_errors_that_say_what_to_do(journal, tmp_path):
    with pytest.raises(ReportError, match="no journal at .*missing.sqlite: check the path"):
        build_report(tmp_path / "missing.sqlite", tmp_path / "out")
    (tmp_path / "notes.txt").write_text("hello, not a database\n" * 10)
    with pytest.raises(ReportError, match="not a readable SQLite journal.*journal-<account>.sqlite"):
        build_report(tmp_path / "notes.txt", tmp_path / "out")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ReportError, match="cannot write the report to .*a-file/out .*a folder you can write"):
        build_report(journal(round_trip), tmp_path / "a-file" / "out")


# --- the command line -----------------------------------------------------------------------------------------------

def test_the_command_writes_beside_the_journal_by_default_and_prints_the_path(journal, capsys):
    path = journal(round_trip)
    assert report_main([str(path)]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == f"report: {path.parent / 'report-j' / 'report.html'}"
    assert "P&amp;L" in (path.parent / "report-j" / "report.html").read_text()


def test_the_commands_errors_name_the_problem_and_exit_2(journal, tmp_path, capsys):
    assert report_main([str(tmp_path / "nowhere.sqlite")]) == 2
    assert "no such file:" in capsys.readouterr().err
    (tmp_path / "x.txt").write_text("not sqlite at all, just text\n")
    assert report_main([str(tmp_path / "x.txt")]) == 2
    assert "is not a readable SQLite journal" in capsys.readouterr().err
    other = sqlite3.connect(tmp_path / "other.sqlite")
    other.execute("CREATE TABLE t (x)")
    other.close()
    assert report_main([str(tmp_path / "other.sqlite")]) == 2
    assert "not an ibframe journal" in capsys.readouterr().err
    assert report_main([str(CHECKED_IN)]) == 2
    err = capsys.readouterr().err
    assert "is a recording: add --config STRATEGY.yaml" in err and "the strategies to replay it into" in err
    assert report_main([str(journal(round_trip)), "--config", "x.yaml"]) == 2
    assert "--config and --fills are for a recording" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        report_main(["--help"])
    assert info.value.code == 0 and "JOURNAL|RECORDING" in capsys.readouterr().out


def test_a_recording_is_replayed_into_its_strategies_and_reported(tmp_path, capsys):
    cfg = tmp_path / "nth.yaml"
    cfg.write_text(f"strategy:\n  class: {BUY_ON_NTH}\n  name: nth\n  params: {{n: 4, qty: 100}}\n"
                   f"  instruments:\n    AAPL: {{secType: STK, symbol: AAPL}}\nstate_dir: {tmp_path / 'state'}\n"
                   f"log_level: WARNING\n")
    out = tmp_path / "replayed"
    assert report_main([str(CHECKED_IN), "--config", str(cfg), "--fills", "simulated", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().endswith(f"report: {out / 'report.html'}")
    html = (out / "report.html").read_text()
    assert "Replay of buy_on_nth_quote.jsonl.gz into nth.yaml (simulated fills)" in html
    assert html.count("Filled 100 @ ") == 2 and str(out / "journal.sqlite") in html
    assert len(load(out / "journal.sqlite").executions) == 2                # the replay's journal, kept


# --- ibframe run writes the report ---------------------------------------------------------------------------------

class RoundTrip(Strategy):
    """Buys 10 AAPL twice, then sells 5 and 15 (flat at the end); remembers itself for the test."""
    seen: list["RoundTrip"] = []

    def on_start(self):
        RoundTrip.seen.append(self)
        self.q = self.quote("AAPL")
        self.steps = [("BUY", 10), ("BUY", 10), ("SELL", 5), ("SELL", 15)]
        self.schedule(every=0.05)

    def on_timer(self):
        if self.steps and self.q.ask is not None and all(t.done for t in self.trades):
            side, qty = self.steps.pop(0)
            (self.buy if side == "BUY" else self.sell)("AAPL", qty)


RUN = """\
strategy:
  class: test_report:RoundTrip
  name: round_trip
  instruments: {AAPL: AAPL}
sim: {seed: 5, speed: 0.000001, start: "2026-11-18 11:30"}
log_level: WARNING
state_dir: STATE
risk: {enabled: false, margin: {what_if_above: off}}
"""


def test_a_run_prints_the_path_of_its_report_and_the_report_shows_its_fills(tmp_path, capsys):
    state = tmp_path / "var"
    cfg = tmp_path / "run.yaml"
    cfg.write_text(RUN.replace("STATE", str(state)))
    RoundTrip.seen.clear()
    assert run_main([str(cfg), "--duration", "3s"]) == 0
    out = capsys.readouterr().out
    (strategy,) = RoundTrip.seen
    fills = [(t.order_id, f) for t in strategy.trades for f in t.fills]
    assert len(fills) == 4, out
    line = out.strip().splitlines()[-1]                  # after the summary
    assert line.startswith("report: ") and "== round_trip: 4 orders, 4 fills" in out
    page = Path(line.removeprefix("report: "))
    assert page.parent.parent == state / "reports" and page.name == "report.html"
    html = page.read_text()
    assert_well_formed(html)
    for order_id, f in fills:
        assert re.search(rf'<td class="n">{order_id}</td>.*?Filled {f.shares:g} @ {f.price:.4f}', html), order_id
    assert "<tr><th>fills</th><td>4</td></tr>" in html and "<td>round_trip</td>" in html and ">flat<" in html
    assert all((page.parent / f"{name}.png").exists() for name in ("equity", "positions", "fills", "slippage"))


def test_a_report_that_cannot_be_built_is_a_warning_and_the_run_goes_on(tmp_path, caplog, capsys):
    (tmp_path / "broken.sqlite").write_text("not a journal")
    fake = SimpleNamespace(rails=SimpleNamespace(journal=SimpleNamespace(path=tmp_path / "broken.sqlite")),
                           started_at=T0, cfg=SimpleNamespace(state_dir=str(tmp_path / "var"), source="run.yaml"))
    assert Runner.write_report(fake) is None
    assert "the run's report could not be built" in caplog.text and "broken.sqlite" in caplog.text
    assert "report:" not in capsys.readouterr().out
    fake.rails.journal = None                            # journal: false: no report, nothing said
    assert Runner.write_report(fake) is None


# --- helpers --------------------------------------------------------------------------------------------------------

def is_png(data: bytes) -> bool:
    if not data.startswith(PNG):
        return False
    Image.open(io.BytesIO(data)).verify()               # raises on a broken file
    return True


VOID = {"meta", "img", "br", "hr", "link", "input"}


def assert_well_formed(text: str) -> None:
    """A complete HTML page whose elements all close in order, with no script."""
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")

    class Checker(HTMLParser):
        stack: list[str] = []

        def handle_starttag(self, tag, attrs):
            assert tag != "script"
            if tag not in VOID:
                self.stack.append(tag)

        def handle_endtag(self, tag):
            assert self.stack and self.stack[-1] == tag, (tag, self.stack[-3:])
            self.stack.pop()
    checker = Checker()
    checker.stack = []
    checker.feed(text)
    checker.close()
    assert checker.stack == []
