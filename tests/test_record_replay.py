"""Record a session, replay it: same frames, same router, same strategies, same orders, on a virtual clock.

Live sessions run the real Runner against ibframe.sim with `record:` set; replays run the same
Runner with the recording for a gateway. Hand-written recordings and the real TWS frames check the
format and the decoding path; damaged files check that a replay says where and why it stopped.
"""
from __future__ import annotations

import base64
import gc
import gzip
import json
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest

from conftest import FIXTURE_FRAMES, shared_fixture
from ibframe.config import ConfigError, load_config
from ibframe.dispatch import Dispatcher, VirtualClock
from ibframe.ids import REQUEST_ID_BASE
from ibframe.record import Recording, RecordingError, event_to_payload, payload_to_event, write_recording
from ibframe.replay import ReplayError, main as replay_main, parse_speed, replay
from replay_fixtures import (BUY_ON_NTH, CHECKED_IN, FIXED_EPOCH, buy_on_nth_config, record_live,  # noqa: F401
                             record_session, recorded_session, replayed_session, session_config, session_done,
                             without_rail_requests)

ROOT = Path(__file__).resolve().parents[1]
AAPL = 265598


def decisions(strategy):
    """What the strategy decided, without the times (live times are wall, replay times virtual)."""
    return [(d.what, d.quote_no, d.bid, d.ask, d.price) for d in strategy.decisions]


def order_fields(orders) -> list[list[str]]:
    return [o.fields for o in orders]


# --- the format ---------------------------------------------------------------------------------------------

def test_recording_is_documented_json_lines_with_a_full_header(replayed_session):
    recorded_session, result = replayed_session
    with gzip.open(recorded_session.path, "rt") as fh:
        lines = [json.loads(line) for line in fh]
    head = lines[0]
    assert head["type"] == "header" and head["format"] == "ibframe-recording" and head["version"] == 1
    assert head["server_version"] == 200 and head["accounts"] == ["DU1234567"]
    assert head["conn_time"].startswith("20240305 10:00:00") and head["client_id"] == 77
    assert head["ibframe"] and head["ibapi"] and head["wall"] > 0 and head["mono"] > 0
    kinds = [line["type"] for line in lines[1:]]
    assert set(kinds) == {"in", "out", "mark", "end"} and kinds[-1] == "end"
    assert lines[1]["fields"][0] == "71"                         # START_API is the first message out
    frames = [x for x in lines if x["type"] in ("in", "out")]
    assert all(("fields" in x or "raw" in x) and "wall" in x and "mono" in x for x in frames)
    assert [x["name"] for x in lines if x["type"] == "mark"] == ["journal_read", "leftovers", "started", "stop"]
    read = next(x for x in lines if x["type"] == "mark" and x["name"] == "journal_read")
    assert read["last_execution_time"] is None                       # a fresh journal: nothing to read back
    monos = [x["mono"] for x in lines[1:]]
    assert monos == sorted(monos)
    placed = [x["fields"] for x in lines if x["type"] == "out" and x["fields"][0] == "3"]
    assert [int(f[1]) for f in placed] == [t.order_id for t in recorded_session.live.trades]
    assert result.recording.complete and result.frames == sum(1 for x in lines if x["type"] == "in")
    assert decisions(result.strategy()) == decisions(recorded_session.live)


def test_payloads_round_trip_at_text_and_raw_id_versions():
    fields = ["1", "6", "1000000001", "1", "189.98", "100", "0"]
    body = b"6\x001000000001\x001\x00189.98\x00100\x000\x00"
    assert event_to_payload({"fields": fields}, 176) == b"1\x00" + body                 # text id
    assert event_to_payload({"fields": fields}, 201) == (1).to_bytes(4, "big") + body   # 4-byte id from 201
    assert payload_to_event((1).to_bytes(4, "big") + body, 201) == {"fields": fields}
    proto = (215).to_bytes(4, "big") + b"\x08\x01\x12"
    assert event_to_payload(payload_to_event(proto, 201), 201) == proto                  # protobuf: kept raw


# --- determinism ------------------------------------------------------------------------------------------

def test_replaying_twice_gives_the_same_orders_byte_for_byte_and_the_same_state():
    runs = [replay(CHECKED_IN, buy_on_nth_config(Path("unused"))) for _ in range(2)]
    a, b = (r.strategy() for r in runs)
    assert [o.payload for o in runs[0].orders] == [o.payload for o in runs[1].orders]
    assert len(runs[0].orders) == 2
    assert a.decisions == b.decisions and a.quotes == b.quotes and a.timer_times == b.timer_times
    assert a.fills == b.fills and a.statuses == b.statuses
    assert runs[0].divergences == [] and runs[0].problems == [] and runs[0].damage is None


@pytest.mark.parametrize("version", [176, 200, 226])
def test_replay_makes_the_live_sessions_decisions_and_sends_its_orders(record_session, version):
    session = record_session(max_server_version=version)
    live = session.live
    result = replay(session.path, session.cfg)
    again = result.strategy()
    assert result.recording.header.server_version == version
    assert decisions(again) == decisions(live) and len(live.decisions) == 2
    assert [q[1:] for q in again.quotes[:len(live.quotes)]] == [q[1:] for q in live.quotes]
    recorded = result.recorded_orders
    assert order_fields(result.orders) == [e.fields for e in recorded]
    assert [o.payload for o in result.orders] == [event_to_payload(e.data, version) for e in recorded]
    assert result.divergences == [] and result.problems == []
    assert [(f[0], f[1], f[2], f[3]) for f in again.fills] == [(f[0], f[1], f[2], f[3]) for f in live.fills]
    # timers fire at the recorded schedule: the same beats, each at its due (virtual) time — never later than the
    # live one by more than a few ms, and earlier only by the live beat's own lateness (a loaded machine fires a
    # live timer late; the replay does not), never by a whole beat (0.25 s)
    assert abs(len(again.timer_times) - len(live.timer_times)) <= 1
    for replayed, lived in zip(again.timer_times, live.timer_times):
        assert lived - 0.25 < replayed < lived + 0.05


@pytest.mark.parametrize("version", [200, 226])
def test_simulated_fills_answer_text_and_protobuf_orders_alike(record_session, version):
    # from server version 203 placeOrder travels as protobuf: the paper broker reads it back all the same
    session = record_session(max_server_version=version)
    result = replay(session.path, session.cfg, fills="simulated")
    s = result.strategy()
    assert result.recording.header.accounts == ["DU1234567"]          # managedAccounts, text or protobuf
    assert [t.status for t in s.trades] == ["Filled", "Filled"]
    assert all(t.fills and t.fills[0].commission == 1.0 for t in s.trades)
    assert sorted(f[1] for f in s.fills) == ["BOT", "SLD"] and result.engine.portfolio.position(AAPL) == 0.0
    assert result.synthesized > 0 and result.divergences == [] and result.problems == []


def test_a_replay_reads_back_what_the_live_run_read_from_its_journal(make_gateway, tmp_path):
    # the second live run starts with a journal holding the first one's executions: it reconciles from its last
    # one and its PDT guard counts them; the replay (an empty journal of its own) must ask and count the same
    from ibframe.replay import prepare
    from ibframe.replay.runner import run_prepared
    gw = make_gateway(seed=11, start_time=FIXED_EPOCH)
    record_live(gw, buy_on_nth_config(tmp_path), tmp_path / "first.jsonl.gz", session_done)
    second = tmp_path / "second.jsonl.gz"
    record_live(gw, buy_on_nth_config(tmp_path), second, session_done)
    read = Recording(second).mark_data["journal_read"]
    assert read["last_execution_time"] is not None

    runner = prepare(second, buy_on_nth_config(tmp_path / "elsewhere"))
    result = run_prepared(runner, None)
    assert result.divergences == [] and result.problems == []
    assert runner.rails.read_back is None                  # the replay answered from the mark, not its own journal


def test_a_finished_replay_lets_its_engine_go():
    # a sweep worker replays hundreds of times: nothing module-level may keep an engine (and its state) alive
    result = replay(CHECKED_IN, buy_on_nth_config(Path("unused")))
    engine = weakref.ref(result.engine)
    assert engine().account_feed is not None                  # the risk layer subscribed (it holds the engine)
    del result
    gc.collect()
    assert engine() is None


def test_virtual_clock_jumps_to_timers_without_waiting():
    clock = VirtualClock(1000.0)
    d = Dispatcher(clock).start()
    fired = []
    d.call_later(3600, lambda: fired.append(clock.now()))
    deadline = time.monotonic() + 5
    while not fired and time.monotonic() < deadline:
        time.sleep(0.01)
    d.stop()
    assert fired == [4600.0]


# --- orders: as recorded, and simulated against the recorded quotes ------------------------------------------

def test_recorded_broker_answers_are_fed_back_through_the_router():
    result = replay(CHECKED_IN, buy_on_nth_config(Path("unused")), fills="recorded")
    s = result.strategy()
    executions = [e.fields for e in result.recording.events() if e.type == "in" and e.fields[0] == "11"]
    assert [(int(f[2]), f[18], float(f[19]), float(f[20])) for f in executions] == [f[:4] for f in s.fills]
    assert [t.status for t in s.trades] == ["Filled", "Filled"]
    assert result.skipped == 0 and result.synthesized == 0
    assert all(f.commission is not None for t in s.trades for f in t.fills)


def test_simulated_fills_use_the_recorded_far_side_and_resting_limits_wait_for_the_market():
    result = replay(CHECKED_IN, buy_on_nth_config(Path("unused")), fills="simulated")
    s = result.strategy()
    buy, sell = s.decisions
    assert result.skipped > 0 and result.synthesized > 0           # recorded answers out, simulated ones in
    (buy_fill,) = [f for f in s.fills if f[1] == "BOT"]
    assert buy_fill[3] == buy.ask and buy_fill[4] == buy.time      # market buy: the ask, at once
    crossing = [q for q in s.quotes if q[0] >= sell.time and q[1] is not None and q[1] >= sell.price
                and q is not s.quotes[sell.quote_no - 1]]
    (sell_fill,) = [f for f in s.fills if f[1] == "SLD"]
    assert sell_fill[3] == sell.price                              # resting limit: its own price...
    assert sell_fill[4] == crossing[0][0]                          # ...when the bid first reaches it
    assert [t.status for t in s.trades] == ["Filled", "Filled"]
    assert [f.commission for t in s.trades for f in t.fills] == [1.0, 1.0]
    assert result.engine.portfolio.position(AAPL) == 0.0
    again = replay(CHECKED_IN, buy_on_nth_config(Path("unused")), fills="simulated")
    assert again.strategy().fills == s.fills and again.strategy().statuses == s.statuses


# --- hand-written recordings and the real TWS frames ----------------------------------------------------------

EURUSD_DETAILS = ["10", str(REQUEST_ID_BASE), "EUR", "CASH", "", "0", "", "IDEALPRO", "USD", "EUR.USD", "EUR.USD",
                  "EUR.USD", "12087792", "0.00005", "", "LMT,MKT", "IDEALPRO", "1", "0",
                  "European Monetary Union Euro", "", "", "", "", "", "US/Eastern", "", "", "", "", "0", "4", "",
                  "", "3188", "", "", "0.01", "0.01", "0.01"]


def _eurusd_events(quotes: list[tuple[float, float]]) -> list[dict]:
    rid = str(REQUEST_ID_BASE + 1)
    events = [{"type": "out"},                                               # START_API
              {"type": "in", "fields": ["15", "1", "DU1234567"]},
              {"type": "in", "raw": base64.b64encode(b"9\x001\x0041\x00").decode()},   # nextValidId, as raw bytes
              {"type": "out"},                                               # reqContractDetails
              {"type": "in", "fields": EURUSD_DETAILS},
              {"type": "in", "fields": ["52", "1", str(REQUEST_ID_BASE)]},
              {"type": "out"}, {"type": "out"},                              # reqPositions, reqAccountUpdates
              {"type": "out"}]                                               # reqMktData from on_start
    for i, (bid, ask) in enumerate(quotes):
        events.append({"type": "in", "wall": 100.0 + i, "fields": ["1", "6", rid, "1", repr(bid), "1000000", "0"]})
        events.append({"type": "in", "wall": 100.0 + i, "fields": ["1", "6", rid, "2", repr(ask), "2000000", "0"]})
    return events


def test_a_hand_written_recording_replays_with_its_broker_answers(tmp_path):
    events = _eurusd_events([(1.0871, 1.0873), (1.0872, 1.0874)])
    events += [
        {"type": "in", "wall": 102.0, "fields": ["3", "41", "Filled", "20000", "0", "1.0874", "777", "0", "1.0874",
                                                 "1", "", "0"]},
        {"type": "in", "wall": 102.0, "fields": ["11", "-1", "41", "12087792", "EUR", "CASH", "", "0.0", "", "",
                                                 "IDEALPRO", "USD", "EUR.USD", "EUR.USD", "0000e029.0001.01.01",
                                                 "20240305 10:00:02 US/Eastern", "DU1234567", "IDEALPRO", "BOT",
                                                 "20000", "1.0874", "777", "1", "0", "20000", "1.0874", "nth", "",
                                                 "", "", "2"]},
        {"type": "in", "wall": 102.0, "fields": ["59", "1", "0000e029.0001.01.01", "2.0", "USD",
                                                 "1.7976931348623157E308", "1.7976931348623157E308", ""]},
        {"type": "out", "fields": ["2", "2", str(REQUEST_ID_BASE + 1)]},      # cancelMktData at stop
    ]
    path = write_recording(tmp_path / "hand.jsonl", events, server_version=176)
    cfg = session_config(BUY_ON_NTH, {"EURUSD": {"secType": "CASH", "symbol": "EUR", "currency": "USD",
                                                 "exchange": "IDEALPRO"}}, {"n": 4, "qty": 20000}, name="nth")
    without_rail_requests(cfg)
    result = replay(path, cfg)
    s = result.strategy()
    assert s.instruments["EURUSD"].conId == 12087792
    # a price and the size that came with it are one quote update: bid+size, ask+size, bid+size, ask+size
    assert decisions(s) == [("BUY MKT", 4, 1.0872, 1.0874, None)]
    (trade,) = s.trades
    assert trade.order_id == 41 and trade.status == "Filled" and trade.avg_fill_price == 1.0874
    assert s.fills[0][:4] == (41, "BOT", 20000.0, 1.0874) and s.fills[0][4] == 102.0
    assert trade.fills[0].commission == 2.0
    assert result.damage is None and result.problems == [] and result.divergences == []
    assert any("no closing 'end' line" in n for n in result.notes)


def test_real_tws_v176_frames_decode_and_route_to_their_state_objects(tmp_path):
    frames = {}
    for line in shared_fixture(FIXTURE_FRAMES).read_text().splitlines():
        item = json.loads(line)
        frames[item["name"]] = list(item["fields"])
    details = frames["contract_details_eurusd"]
    details[1] = str(REQUEST_ID_BASE)
    ticks = [frames["tick_by_tick_bidask_1"], frames["tick_by_tick_bidask_2"]]
    for t in ticks:
        t[1] = str(REQUEST_ID_BASE + 1)
    events = [{"type": "out"}, {"type": "in", "fields": frames["managed_accounts"]},
              {"type": "in", "fields": frames["next_valid_id"]}, {"type": "in", "fields": frames["farm_status_2104"]},
              {"type": "out"}, {"type": "in", "fields": details},
              {"type": "in", "fields": ["52", "1", str(REQUEST_ID_BASE)]},
              {"type": "out"}, {"type": "out"},
              {"type": "in", "fields": frames["account_summary_netliq"]},
              {"type": "in", "fields": frames["position_crypto"]},
              {"type": "out"}]
    events += [{"type": "in", "fields": t} for t in ticks]
    events += [{"type": "in", "fields": frames[name]} for name in
               ("open_order_spy_mkt", "order_status_filled", "execution_details_eurusd", "commission_report")]
    path = write_recording(tmp_path / "real.jsonl", events, server_version=176)
    cfg = session_config("replay_fixtures:TickWatcher", {"EURUSD": {"secType": "CASH", "symbol": "EUR",
                                                                    "currency": "USD", "exchange": "IDEALPRO"}})
    without_rail_requests(cfg)
    result = replay(path, cfg)
    assert result.problems == [] and result.frames == len([e for e in events if e["type"] == "in"])
    s = result.strategy()
    assert s.instruments["EURUSD"].conId == 12087792 and s.instruments["EURUSD"].localSymbol == "EUR.USD"
    ring = s.ring
    assert len(ring) == 2
    frame = ring.to_frame("bid_ask")
    assert list(frame["bid"]) == [1.08733, 1.08732] and list(frame["ask"]) == [1.08735, 1.08735]
    engine = result.engine
    assert engine.portfolio.value("NetLiquidation", "USD") == 1057315.32
    assert engine.portfolio.position(479624278) == float(frames["position_crypto"][14])
    assert engine.router.next_valid_id == 574 and engine.account == "DU1234567"
    spy = engine.orders.trades[190]                          # an order this process did not place: kept
    assert spy.contract.symbol == "SPY" and spy.order.orderType == "MKT" and spy.perm_id == 1351823328
    assert [f.exec_id for f in engine.orders.foreign_fills] == ["0000e215.656d0000.01.01"]


# --- damaged and unreadable recordings ------------------------------------------------------------------------

def _plain_copy(tmp_path) -> Path:
    path = tmp_path / "copy.jsonl"
    path.write_bytes(gzip.decompress(CHECKED_IN.read_bytes()))
    return path


def _full_replay():
    return replay(CHECKED_IN, buy_on_nth_config(Path("unused")))


def test_a_corrupt_line_stops_the_replay_there_and_says_where_and_why(tmp_path):
    path = _plain_copy(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    bad = 150
    lines[bad - 1] = '{"type":"in","wall":1,"fields":["1",\n'
    path.write_text("".join(lines))
    result = replay(path, buy_on_nth_config(tmp_path))
    assert result.damage.line == bad and "not valid JSON" in result.damage.why
    assert result.frames == sum(1 for line in lines[1:bad - 1] if '"type":"in"' in line)
    assert f"{path}:{bad}:" in result.report()
    full = _full_replay().strategy()
    assert full.quotes[:len(result.strategy().quotes)] == result.strategy().quotes


@pytest.mark.parametrize("keep", [0.5, 0.8])
def test_a_cut_off_gzip_recording_replays_up_to_the_cut(tmp_path, keep):
    data = CHECKED_IN.read_bytes()
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[:int(len(data) * keep)])
    result = replay(path, buy_on_nth_config(tmp_path))
    assert result.damage is not None and result.damage.line > 2
    assert "cut off" in result.damage.why
    full = _full_replay()
    assert 0 < result.frames < full.frames
    cut = result.strategy()
    assert cut.quotes == full.strategy().quotes[:len(cut.quotes)]
    assert decisions(cut) == decisions(full.strategy())[:len(cut.decisions)]


def test_corrupt_gzip_bytes_are_reported_with_a_line_number(tmp_path):
    data = bytearray(CHECKED_IN.read_bytes())
    for i in range(len(data) * 3 // 4, len(data) * 3 // 4 + 40):
        data[i] ^= 0x5A
    path = tmp_path / "corrupt.jsonl.gz"
    path.write_bytes(bytes(data))
    result = replay(path, buy_on_nth_config(tmp_path))
    assert result.damage is not None and result.damage.line > 2
    assert result.frames < _full_replay().frames


KILLED_WRITER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from ibframe.record import Recorder
class Conn:
    serverVersion_, connTime, clientId, host, port = 176, b"20240305 10:00:00 EST", 1, "127.0.0.1", 7497
rec = Recorder(sys.argv[1]).attach(Conn())
rec.inbound([b"15\\x001\\x00DU1234567\\x00"])
i = 0
while True:
    i += 1
    rec.inbound([b"1\\x006\\x001000000000\\x001\\x00" + str(i).encode() + b"\\x00100\\x000\\x00"])
    print(i, time.monotonic(), flush=True)
    time.sleep(0.01)
"""


@pytest.mark.parametrize("name", ["killed.jsonl.gz", "killed.jsonl"])
def test_a_killed_recorder_loses_at_most_the_last_second(tmp_path, name):
    path = tmp_path / name
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path), str(ROOT)], stdout=subprocess.PIPE,
                            text=True)
    tapped = []
    try:
        while len(tapped) < 200:
            i, t = proc.stdout.readline().split()
            tapped.append((int(i), float(t)))
        killed_at = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    rec = Recording(path)
    prices = [float(e.fields[4]) for e in rec.events() if e.type == "in" and e.fields[0] == "1"]
    must_have = max(i for i, t in tapped if t <= killed_at - 1.0)
    assert prices and max(prices) >= must_have
    assert prices == [float(i) for i in range(1, len(prices) + 1)]     # nothing out of order, nothing doubled
    if name.endswith(".gz"):
        assert rec.damage is not None and "cut off" in rec.damage.why


def test_an_unknown_server_version_is_refused_with_the_reason(tmp_path):
    path = write_recording(tmp_path / "future.jsonl", [{"type": "in", "fields": ["15", "1", "DU1"]}],
                           server_version=999, ibapi="12.1.1")
    with pytest.raises(ReplayError, match=r"server version 999.*decodes versions 100\.\.\d+"):
        replay(path, buy_on_nth_config(tmp_path))


def test_a_file_that_is_not_a_recording_says_so(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text('{"type":"in","fields":["15","1","DU1"]}\n')
    with pytest.raises(ReplayError, match="line 1 is a 'in' line"):
        replay(path, buy_on_nth_config(tmp_path))
    with pytest.raises(RecordingError, match="not valid JSON"):
        (tmp_path / "junk.jsonl").write_text("hello\n")
        Recording(tmp_path / "junk.jsonl")


def test_a_recording_that_ends_before_setup_fails_fast(tmp_path):
    path = write_recording(tmp_path / "short.jsonl", _eurusd_events([])[:4])
    cfg = session_config(BUY_ON_NTH, {"EURUSD": {"secType": "CASH", "symbol": "EUR", "currency": "USD"}})
    start = time.monotonic()
    with pytest.raises(ReplayError, match="recording ends"):
        replay(path, cfg)
    assert time.monotonic() - start < 5


def test_a_different_strategy_config_is_reported_as_a_divergence():
    cfg = session_config(BUY_ON_NTH, {"AAPL": {"secType": "STK", "symbol": "MSFT"}}, {"n": 4, "timer": 0.25},
                         name="nth")
    result = replay(CHECKED_IN, cfg)
    assert any("request #2 differs" in d and "MSFT" in d for d in result.divergences)


# --- command lines and config ---------------------------------------------------------------------------------

def _yaml(tmp_path, extra: str = "") -> Path:
    path = tmp_path / "nth.yaml"
    path.write_text(f"""\
strategy:
  class: {BUY_ON_NTH}
  name: nth
  params: {{n: 4, qty: 100, timer: 0.25}}
  instruments:
    AAPL: {{secType: STK, symbol: AAPL}}
state_dir: {tmp_path / 'state'}
{extra}""")
    return path


def test_record_key_in_yaml_and_its_errors(tmp_path):
    assert load_config(_yaml(tmp_path, "record: var/s.jsonl.gz\n")).record == "var/s.jsonl.gz"
    assert load_config(_yaml(tmp_path)).record is None
    with pytest.raises(ConfigError) as info:
        load_config(_yaml(tmp_path, "record: 5\n"))
    assert info.value.key == "record" and info.value.line == 8 and "path of a recording" in str(info.value)


def test_replay_cli_prints_the_summary_and_the_report(tmp_path, capsys):
    assert replay_main([str(CHECKED_IN), str(_yaml(tmp_path)), "--speed", "max", "--fills", "simulated"]) == 0
    out = capsys.readouterr().out
    assert "== nth: 2 orders, 2 fills" in out and "replayed" in out and "simulated" in out
    assert replay_main([str(CHECKED_IN), str(_yaml(tmp_path)), "--speed", "fast"]) == 2
    assert "--speed 'fast'" in capsys.readouterr().err


def test_speed_parsing_and_paced_replay_takes_recorded_time(tmp_path):
    assert parse_speed("max") is None and parse_speed("1x") == 1.0 and parse_speed("10X") == 10.0
    with pytest.raises(ValueError):
        parse_speed("-2x")
    rec = Recording(CHECKED_IN)
    span = rec.end_time - rec.header.wall
    start = time.monotonic()
    result = replay(CHECKED_IN, buy_on_nth_config(tmp_path), speed="10x")
    assert time.monotonic() - start >= span / 10 * 0.8
    assert decisions(result.strategy()) == decisions(_full_replay().strategy())


def test_run_record_flag_writes_a_replayable_session(tmp_path):
    """python -m ibframe.run --record, then python -m ibframe.replay of the file: the same decisions."""
    path = tmp_path / "cli.jsonl.gz"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{ROOT}"}
    done = subprocess.run([sys.executable, "-m", "ibframe.run", str(_yaml(tmp_path, "sim: {seed: 5, start: \"2026-11-18 11:30\"}\n")),
                           "--duration", "1.5s", "--record", str(path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    live_summary = done.stdout[done.stdout.index("== nth"):]
    result = replay(path, load_config(_yaml(tmp_path)), quiet=True)
    assert result.divergences == [] and result.damage is None and result.recording.complete
    s = result.strategy()
    assert f"== nth: {len(s.trades)} orders" in live_summary
