"""Parameter sweeps on Dask: real LocalCluster workers (processes) replaying checked-in recordings.

One LocalCluster (2 worker processes, 1 thread each) is shared by the module's tests; the sweeps run the
real replay path on it (tests/data/buy_on_nth_quote.jsonl.gz with replay_fixtures' config, and
recordings/ma_cross.jsonl.gz with config/ma_cross.yaml). No timing is asserted.
"""
from __future__ import annotations

import json
import math
import socket
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from ibframe import __version__
from ibframe.config import load_config
from ibframe.replay import replay
from ibframe.sweep import (ParamError, SourceError, make_grid, make_plan, parse_param, parse_values, read_metadata,
                           sweep)
from ibframe.sweep.cli import main as sweep_main
from ibframe.sweep.figures import max_drawdown, sharpe
from ibframe.sweep.task import config_for, orders_digest
from replay_fixtures import CHECKED_IN, buy_on_nth_config

ROOT = Path(__file__).resolve().parents[1]
MA_CROSS = ROOT / "config" / "ma_cross.yaml"
MA_RECORDING = ROOT / "recordings" / "ma_cross.jsonl.gz"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))                   # config/ma_cross.yaml's strategies.ma_cross


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                           silence_logs=50)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


# --- the grid ------------------------------------------------------------------------------------------------

def test_ranges_steps_lists_and_floats_parse_to_the_values_they_say():
    assert parse_param("fast=3:10") == ("fast", [3, 4, 5, 6, 7, 8, 9, 10])
    assert parse_param("slow=20:60:10") == ("slow", [20, 30, 40, 50, 60])
    assert parse_param("slow=20:55:10") == ("slow", [20, 30, 40, 50])            # the end is included when hit
    assert parse_param("fast=3,5,8") == ("fast", [3, 5, 8])
    assert parse_param(" fast = 7 ") == ("fast", [7])
    assert parse_values("0.5:2:0.5") == [0.5, 1.0, 1.5, 2.0]
    assert parse_values("0.1:0.3:0.1") == [0.1, 0.2, 0.3]                         # decimal, not 0.30000000000000004
    assert parse_values("1:2:0.5") == [1.0, 1.5, 2.0] and all(isinstance(v, float) for v in parse_values("1:2:0.5"))
    assert parse_values("-2:2:2") == [-2, 0, 2]
    assert parse_values("2.5,1e3,true,5 secs") == [2.5, 1000.0, True, "5 secs"]
    assert parse_values([20, 30]) == [20, 30] and parse_values(5) == [5]
    assert parse_param("ma-cross.fast=3") == ("ma-cross.fast", [3])
    grid = make_grid(["fast=3:4", "slow=20,30"])
    assert len(grid) == 4
    assert grid.points() == [{"fast": 3, "slow": 20}, {"fast": 3, "slow": 30}, {"fast": 4, "slow": 20},
                             {"fast": 4, "slow": 30}]
    assert make_grid({"fast": "3:4", "slow": [20]}).points() == [{"fast": 3, "slow": 20}, {"fast": 4, "slow": 20}]


@pytest.mark.parametrize("text, words", [
    ("fast", "write NAME=VALUES"),
    ("=3:5", "write NAME=VALUES"),
    ("fast=", "no values given"),
    ("fast=10:3", "the start is after the end; write 3:10"),
    ("fast=3:10:0", "the step must be positive"),
    ("fast=3:10:-1", "the step must be positive"),
    ("x=0.5:2", "a range of decimals needs a step"),
    ("fast=a:b", "a range takes numbers"),
    ("fast=1:2:3:4", "is not a range"),
    ("fast=3,,5", "an empty item"),
    ("fast=3,5,3", "3 is listed twice"),
    ("fast=nan", "not a finite number"),
    ("fast=1:inf", "must be finite"),
    ("fast=1:1000000", "more than 100,000"),
    ("9fast=3", "is not a parameter name"),
])
def test_bad_parameter_text_says_what_is_wrong_and_what_to_write(text, words):
    with pytest.raises(ParamError) as info:
        parse_param(text)
    assert words in str(info.value)
    assert str(info.value).startswith("--param")


def test_a_parameter_given_twice_or_no_parameter_is_refused():
    with pytest.raises(ParamError, match="given twice"):
        make_grid(["fast=3", "fast=4"])
    with pytest.raises(ParamError, match="no parameters to sweep"):
        make_grid([])


def test_figures_drawdown_and_the_sharpe_style_ratio_by_hand():
    assert max_drawdown([10.0, 4.0, 12.0, 1.0, 5.0]) == 11.0                     # 12 -> 1
    assert max_drawdown([-3.0, -1.0]) == 3.0                                     # the peak starts at 0
    assert max_drawdown([]) == 0.0
    # changes of [0, 1, 3, 2]: 1, 2, -1 -> mean 2/3, std (ddof 1) sqrt(7/3)
    assert sharpe([1.0, 3.0, 2.0]) == pytest.approx((2 / 3) / math.sqrt(7 / 3))
    assert math.isnan(sharpe([1.0])) and math.isnan(sharpe([0.0, 0.0, 0.0]))


# --- the plan: names, recordings -------------------------------------------------------------------------------

def _two_strategies(tmp_path) -> Path:
    entry = """  - class: strategies.ma_cross:MovingAverageCross
    name: {name}
    params: {{fast: 5, slow: 20}}
    instruments: {{AAPL: {{secType: STK, symbol: AAPL}}}}
"""
    path = tmp_path / "two.yaml"
    path.write_text("strategies:\n" + entry.format(name="a") + entry.format(name="b"))
    return path


def test_parameter_names_are_checked_against_the_strategy_before_anything_runs(tmp_path):
    plan = make_plan(MA_CROSS, {"fast": "3:4", "ma-cross.slow": "20"}, str(MA_RECORDING))
    assert plan.targets == {"fast": (0, "fast"), "ma-cross.slow": (0, "slow")} and len(plan.tasks) == 2
    assert plan.tasks[1].overrides == {0: {"fast": 4, "slow": 20}}
    with pytest.raises(ParamError) as info:
        make_plan(MA_CROSS, {"fsat": "3"}, str(MA_RECORDING))
    assert "no parameter 'fsat'" in str(info.value) and "fast, quantity, slow" in str(info.value)
    two = _two_strategies(tmp_path)
    assert load_config(two).strategies[1].name == "b"
    with pytest.raises(ParamError, match=r"has 2 strategies \(a, b\); say whose it is, e.g. a.fast"):
        make_plan(two, {"fast": "3"}, str(MA_RECORDING))
    with pytest.raises(ParamError, match="no strategy named 'c'"):
        make_plan(two, {"c.fast": "3"}, str(MA_RECORDING))
    plan = make_plan(two, {"b.fast": "3,4"}, str(MA_RECORDING))
    assert [t.overrides for t in plan.tasks] == [{1: {"fast": 3}}, {1: {"fast": 4}}]


def test_recordings_by_glob_once_each_and_what_is_not_one(tmp_path):
    plan = make_plan(MA_CROSS, {"fast": "3"}, [str(ROOT / "recordings" / "*.jsonl.gz"), str(MA_RECORDING)])
    assert [r.path for r in plan.recordings] == [str(MA_RECORDING)]                # the same file once
    ref = plan.recordings[0]
    assert ref.facts["server_version"] == 226 and ref.facts["complete"] and ref.header["format"] == "ibframe-recording"
    assert MA_RECORDING.stat().st_size < 1_000_000
    with pytest.raises(SourceError, match="matches no file; record one with: python -m ibframe.run"):
        make_plan(MA_CROSS, {"fast": "3"}, str(tmp_path / "*.jsonl.gz"))
    (tmp_path / "notes.jsonl").write_text('{"type": "in", "fields": ["1"]}\n')
    with pytest.raises(SourceError, match="not an ibframe recording"):
        make_plan(MA_CROSS, {"fast": "3"}, str(tmp_path / "notes.jsonl"))


# --- sweeps on the cluster -------------------------------------------------------------------------------------

def test_a_sweep_on_a_local_cluster_writes_parquet_with_its_metadata(client, tmp_path):
    cfg = buy_on_nth_config(tmp_path)
    out = tmp_path / "deeper" / "sweep.parquet"
    df = sweep(cfg, {"n": "3:5"}, str(CHECKED_IN), fills="simulated", client=client, out=out, progress=False)
    assert len(df) == 3 and df["ok"].all() and list(df["task"]) == [0, 1, 2]
    assert list(df["param_n"]) == [3, 4, 5] and str(df["param_n"].dtype) == "Int64"
    assert (df["orders"] == 2).all()
    assert list(df["order_messages"]) == [3, 2, 2]   # n=3: its unfilled sell is cancelled at the stop (on_stop)
    assert df["orders_digest"].nunique() == 3                      # the n-th quote differs: so do the orders
    assert (df["divergences"] == 0).all() and (df["problems"] == 0).all() and df["damage"].isna().all()
    assert list(df["fills"]) == [1, 2, 2]          # n=3: the resting sell never meets a bid at its limit
    assert list(df["open_positions"]) == [1, 0, 0] and list(df["marked_to_last_fill"]) == [0, 0, 0]
    assert list(df["commission"]) == [1.0, 2.0, 2.0] and list(df["shares"]) == [100, 200, 200]
    assert ((df["pnl"] - (df["realized_pnl"] + df["unrealized_pnl"] - df["commission"])).abs() < 1e-6).all()
    assert df.loc[0, "unrealized_pnl"] != 0 and (df.loc[1:, "unrealized_pnl"] == 0).all()
    assert (df["max_drawdown"] >= 0).all() and (df["equity_samples"] >= 0).all()
    assert df["worker"].str.startswith("tcp://").all()
    assert (df["startup_s"] > 0).all() and (df["replay_s"] > 0).all()
    assert json.loads(df["params"][0]) == {"n": 3, "qty": 100, "timer": 0.25}

    back = pd.read_parquet(out)
    expected = ["task", "set_id", "strategy", "recording", "fills_mode", "param_n", "params", "ok", "error_type",
                "error", "pnl", "realized_pnl", "unrealized_pnl", "commission", "orders", "fills", "shares",
                "max_drawdown", "sharpe", "slippage_bps", "savings", "order_messages", "orders_digest",
                "divergences", "recording_sha256", "recording_server_version", "recording_start", "startup_s",
                "replay_s"]
    assert all(c in back.columns for c in expected), set(expected) - set(back.columns)
    assert back["recording"].tolist() == [str(CHECKED_IN)] * 3
    assert back["recording_server_version"].tolist() == [200] * 3
    meta = pq.read_schema(out).metadata
    assert meta[b"ibframe.version"] == __version__.encode()
    info = read_metadata(out)
    assert info["ibframe"] == __version__ and info["sweep"]["grid"] == {"n": [3, 4, 5]}
    assert info["sweep"]["tasks"] == 3 and info["sweep"]["fills"] == "simulated" and info["sweep"]["failed_tasks"] == 0
    [rec] = info["recordings"]
    import gzip
    with gzip.open(CHECKED_IN, "rt") as fh:
        assert rec["header"] == json.loads(fh.readline())          # the header line as recorded
    assert rec["path"] == str(CHECKED_IN) and len(rec["sha256"]) == 64
    assert df.attrs["ibframe"]["tasks"] == 3


def test_a_failing_task_is_recorded_and_the_others_complete_with_orders_equal_to_local_replays(client):
    """fast=30 is refused by MovingAverageCross.Params (slow must be longer): that task's row says so; the
    others ran, and each sent exactly the orders a local replay() of its parameters sends, byte for byte."""
    df = sweep(MA_CROSS, {"fast": "3,30,5", "slow": "20"}, str(MA_RECORDING), client=client, keep_orders=True,
               progress=False)
    assert df["ok"].tolist() == [True, False, True]
    bad = df.iloc[1]
    assert bad["error_type"] == "ConfigError" and "must be longer than fast (30)" in bad["error"]
    assert "strategy.params.slow" in bad["error"] and pd.isna(bad["pnl"]) and bad["param_fast"] == 30
    good = df[df["ok"]]
    assert (good["orders"] > 0).all() and good["orders_digest"].nunique() == 2
    assert (good["equity_samples"] > 1).all() and good["sharpe"].notna().all()
    cfg = load_config(MA_CROSS)
    for _, row in good.iterrows():
        local = replay(MA_RECORDING, config_for(cfg, {0: {"fast": int(row["param_fast"]), "slow": 20}}),
                       fills="simulated")
        assert [bytes(p) for p in row["order_payloads"]] == [o.payload for o in local.orders]
        assert list(row["order_times"]) == [o.time for o in local.orders]
        assert row["orders_digest"] == orders_digest(local.orders)
        strategy = local.strategy()
        assert row["orders"] == len(strategy.trades) and row["fills"] == sum(len(t.fills) for t in strategy.trades)


def test_recorded_fills_replay_the_live_orders_and_a_changed_set_diverges(client):
    df = sweep(MA_CROSS, {"fast": "5,4"}, str(MA_RECORDING), fills="recorded", client=client, progress=False)
    as_live, changed = df.iloc[0], df.iloc[1]
    assert as_live["ok"] and as_live["divergences"] == 0 and as_live["orders"] == as_live["recording_orders"]
    assert changed["ok"] and changed["orders_digest"] != as_live["orders_digest"]


# --- the command line -------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_runs_on_an_existing_scheduler_and_writes_the_results(client, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "var" / "sweep.parquet"
    code = sweep_main(["config/ma_cross.yaml", "--param", "fast=3:4", "--param", "slow=20,25",
                       "--recordings", "recordings/*.jsonl.gz", "--scheduler", client.scheduler.address,
                       "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "4 parameter sets × 1 recording = 4 tasks (simulated fills)" in printed
    assert f"cluster: {client.scheduler.address}, 2 workers" in printed and "dashboard:" in printed
    assert "best 4 of 4 parameter sets by P&L" in printed and f"results: {out}" in printed
    df = pd.read_parquet(out)
    assert len(df) == 4 and df["ok"].all() and set(df["param_slow"]) == {20, 25}


@pytest.mark.parametrize("args, words", [
    (["--param", "fast=3", "--recordings", "nowhere/*.jsonl.gz"],
     "--recordings 'nowhere/*.jsonl.gz' matches no file; record one with"),
    (["--param", "fats=3", "--recordings", str(MA_RECORDING)],
     "strategy ma-cross (strategies.ma_cross:MovingAverageCross) has no parameter 'fats'; its parameters: "),
    (["--param", "fast=9:3", "--recordings", str(MA_RECORDING)], "the start is after the end"),
    (["--param", "fast=3", "--recordings", str(MA_RECORDING), "--scheduler", "localhost"],
     "is not a scheduler address; write tcp://HOST:8786"),
    (["--param", "fast=3", "--recordings", str(MA_RECORDING), "--scheduler", "tcp://127.0.0.1:8786", "--workers",
      "2"], "--workers sizes the local cluster"),
    (["--param", "fast=3", "--recordings", str(MA_RECORDING), "--timeout", "soon"], "is not a duration"),
    (["--param", "fast=3", "--recordings", str(MA_RECORDING), "--out", "config"], "config is a folder"),
])
def test_cli_errors_say_what_to_fix_and_run_nothing(args, words, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert sweep_main([str(MA_CROSS), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and "Traceback" not in err


def test_cli_says_what_to_start_when_the_scheduler_is_not_there(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    address = f"tcp://127.0.0.1:{_free_port()}"
    assert sweep_main([str(MA_CROSS), "--param", "fast=3", "--recordings", str(MA_RECORDING), "--scheduler", address,
                       "--timeout", "1s"]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach the Dask scheduler at {address} within 1s" in err
    assert "start one with `dask scheduler`" in err and "dask worker tcp://HOST:8786" in err
