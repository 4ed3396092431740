"""`ibframe history` (ibframe.history_cli): a range of bars from a gateway into Parquet or CSV, and its errors.

Downloads talk to ibframe.sim over loopback with the real ibapi client: the session's gateway (clock pinned at
Wednesday 2026-11-18 11:30 New York, conftest.MIDDAY) through --gateway HOST:PORT, and the embedded simulator
(--gateway sim) started from a YAML whose `sim: start:` pins it to the same instant. Every range asked for
ends before that instant, so the bars are complete and the same at any hour, any day.
"""
from __future__ import annotations

import itertools
import logging
import socket

import pandas as pd
import pytest

from ibframe.history_cli import build_parser, main, pacing_note, plan

NY = "America/New_York"
PINNED = "2026-11-18 11:30"                       # conftest.MIDDAY
_client_ids = itertools.count(7901)


@pytest.fixture
def progress_lines(caplog):
    caplog.set_level(logging.INFO, logger="ibframe.progress")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "ibframe.progress"]


def sim_yaml(tmp_path, instrument: str = "{secType: STK, symbol: SPY}") -> str:
    """A strategy YAML whose embedded simulator starts at the pinned instant (its strategy is never loaded)."""
    path = tmp_path / "spy.yaml"
    path.write_text(f"""\
strategy:
  class: strategies.ma_cross:MovingAverageCross
  instruments:
    SPY: {instrument}
sim: {{seed: 7, start: "{PINNED}"}}
state_dir: {tmp_path / 'state'}
""")
    return str(path)


def ohlc_ok(frame: pd.DataFrame) -> bool:
    return bool(((frame.low <= frame[["open", "close"]].min(axis=1)) &
                 (frame[["open", "close"]].max(axis=1) <= frame.high)).all())


# --- downloads ----------------------------------------------------------------------------------------------------

def test_minute_bars_of_two_days_into_parquet(gateway, tmp_path, capsys, progress_lines):
    out = tmp_path / "out" / "aapl.parquet"
    code = main(["AAPL", "--start", "2026-11-16", "--end", "2026-11-18", "--bar", "1", "min",
                 "--gateway", f"127.0.0.1:{gateway.port}", "--client-id", str(next(_client_ids)),
                 "--state-dir", str(tmp_path / "state"), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["open", "high", "low", "close", "volume", "wap", "count"]
    assert str(frame.index.tz) == NY and frame.index.name == "time"
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    # Monday and Tuesday, 04:00 to 20:00 New York (all hours): 16 hours of minutes each
    assert len(frame) == 2 * 16 * 60
    assert frame.index[0] == pd.Timestamp("2026-11-16 04:00", tz=NY)
    assert frame.index[-1] == pd.Timestamp("2026-11-17 19:59", tz=NY)
    assert ohlc_ok(frame) and (frame.volume >= 0).all()
    assert "AAPL 1 min TRADES bars, all hours" in printed and ": 1,920 bars" in printed
    assert "first bar 2026-11-16 04:00:00-05:00  open " in printed
    assert "last  bar 2026-11-17 19:59:00-05:00  open " in printed
    assert f"written to {out}" in printed
    assert progress_lines()[-1].startswith("history AAPL 1 min TRADES: done, 2/2 chunks (100%) in ")
    # the same range again comes from the cache: the same bars
    again = tmp_path / "again.parquet"
    assert main(["AAPL", "--start", "2026-11-16", "--end", "2026-11-18", "--gateway", f"127.0.0.1:{gateway.port}",
                 "--client-id", str(next(_client_ids)), "--state-dir", str(tmp_path / "state"),
                 "--out", str(again), "--no-progress"]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(again), frame)
    assert len(list((tmp_path / "state" / "history").rglob("*.parquet"))) == 2


def test_regular_hours_bars_from_the_embedded_simulator_into_csv(tmp_path, capsys):
    out = tmp_path / "spy.csv"
    code = main([f"{sim_yaml(tmp_path)}:SPY", "--start", "2026-11-09", "--end", "2026-11-14", "--bar", "1hour",
                 "--rth", "--gateway", "sim", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    frame = pd.read_csv(out, index_col="time")
    frame.index = pd.to_datetime(frame.index, utc=True).tz_convert(NY)
    assert list(frame.columns) == ["open", "high", "low", "close", "volume", "wap", "count"]
    days = sorted({t.date().isoformat() for t in frame.index})
    assert days == ["2026-11-09", "2026-11-10", "2026-11-11", "2026-11-12", "2026-11-13"]     # Monday to Friday
    minutes = [t.hour * 60 + t.minute for t in frame.index]
    assert min(minutes) == 9 * 60 + 30 and max(minutes) < 16 * 60            # inside 09:30-16:00
    assert frame.groupby(frame.index.date).size().nunique() == 1              # the same bars each day
    assert ohlc_ok(frame)
    assert "SPY 1 hour TRADES bars, regular hours" in printed and f": {len(frame):,} bars" in printed
    assert f"written to {out}" in printed


# --- errors: exit code 2 and a line that says what to do --------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["--start", "2026-13-02", "--end", "2026-11-20"], "start '2026-13-02' is not a time"),
    (["--start", "2026-11-20", "--end", "2026-11-02"], "is not before end"),
    (["--start", "2026-11-02", "--end", "2026-11-20", "--bar", "7", "mins"], "unknown bar size '7 mins'; IB's bar "
                                                                               "sizes are: 1 secs"),
    (["--start", "2026-11-02", "--end", "2026-11-20", "--what", "PRICES"], "whatToShow 'PRICES' is not available"),
    (["--start", "2026-11-02", "--end", "2026-11-20", "--out", "bars.xlsx"], "must end in .parquet or .csv"),
    (["--start", "2026-11-02", "--end", "2026-11-20", "--gateway", "localhost"], "write 'sim'"),
    (["--start", "2026-11-02", "--end", "2026-11-20", "--gateway", "127.0.0.1:7496"], "LIVE trading port (TWS 7496, "
                                                                                      "IB Gateway 4001); pass --live"),
    (["--start", "2026-11-02", "--end", "2026-11-20", "--tz", "Mars/Olympus"], "--tz 'Mars/Olympus' is not a time "
                                                                                 "zone"),
    (["--start", "2026-11-02", "--end", "2026-11-20", "--sec-type", "WARRANT"], "secType 'WARRANT' is not one of"),
    (["missing.yaml:SPY", "--start", "2026-11-02", "--end", "2026-11-20"], "missing.yaml: file not found"),
])
def test_a_bad_request_is_refused_before_connecting(args, says, capsys):
    assert main(args if not args[0].startswith("-") else ["AAPL", *args]) == 2     # no symbol given: AAPL
    err = capsys.readouterr().err
    assert err.startswith("error: ") and says in err


def test_an_unknown_contract_is_error_200_from_the_simulator(tmp_path, capsys):
    yaml = sim_yaml(tmp_path, "{secType: STK, symbol: NOSUCHSYMBOL}")
    assert main([yaml, "--start", "2026-11-09", "--end", "2026-11-10", "--gateway", "sim"]) == 2
    err = capsys.readouterr().err
    assert "error: no security definition for NOSUCHSYMBOL (STK on SMART in USD)" in err
    assert "check the symbol, secType, exchange and currency" in err


def test_an_unknown_symbol_at_a_gateway(gateway, tmp_path, capsys):
    assert main(["ZZZZQ", "--start", "2026-11-09", "--end", "2026-11-10", "--gateway", f"127.0.0.1:{gateway.port}",
                 "--client-id", str(next(_client_ids)), "--state-dir", str(tmp_path)]) == 2
    assert "no security definition for ZZZZQ" in capsys.readouterr().err


def test_no_gateway_listening_says_what_to_start(tmp_path, capsys):
    with socket.socket() as probe:                 # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["AAPL", "--start", "2026-11-09", "--end", "2026-11-10", "--gateway", f"127.0.0.1:{port}",
                 "--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"could not connect to 127.0.0.1:{port}: connection refused" in err
    assert "Is TWS or IB Gateway running" in err and f"ibframe sim --port {port}" in err and "--gateway sim" in err


def test_a_yaml_instrument_that_is_not_there(tmp_path, capsys):
    assert main([f"{sim_yaml(tmp_path)}:QQQ", "--start", "2026-11-09", "--end", "2026-11-10"]) == 2
    assert "has no instrument 'QQQ'; its instruments: SPY" in capsys.readouterr().err


def test_help_explains_with_examples(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "ibframe history AAPL --start 2026-11-02 --end 2026-11-21" in text
    assert "END is exclusive" in text and "--gateway" in text and ".parquet" in text and ".csv" in text


def test_a_long_range_of_small_bars_warns_about_ibs_pacing_first():
    job = plan(build_parser().parse_args(["AAPL", "--start", "2026-09-01", "--end", "2026-11-01", "--bar", "5 secs"]))
    note = pacing_note(job)
    assert note.startswith("note: 1,464 requests for 5 secs bars over this range; IB answers at most 60 historical "
                           "requests per 10 min, so this takes about 3 h 54 min")
    minutes = plan(build_parser().parse_args(["AAPL", "--start", "2026-01-01", "--end", "2026-11-01"]))
    assert pacing_note(minutes) is None                  # 1-minute bars are not under that pacing
