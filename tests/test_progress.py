"""ibframe.progress: a bar on a terminal, rate-limited log lines elsewhere, nothing when off, never an exception.

Time is an injected clock (a list the test moves), so no test sleeps or measures wall time. The last test
replays the checked-in recording through the real command line, in a child process whose stderr is a pipe.
"""
from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ibframe.progress import BarProgress, LogProgress, Progress, follow, progress, seconds_text
from ibframe.record import Recording
from ibframe.replay import main as replay_main

ROOT = Path(__file__).resolve().parents[1]
RECORDING = ROOT / "tests" / "data" / "buy_on_nth_quote.jsonl.gz"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Broken(io.TextIOBase):
    """A terminal whose writes fail after the first `works` (a closed pipe, a detached console, a bug)."""

    def __init__(self, error: Exception, works: int = 0):
        self.error, self.works = error, works

    def isatty(self) -> bool:
        return True

    def write(self, text):
        self.works -= 1
        if self.works < 0:
            raise self.error
        return len(text)

    def flush(self):
        if self.works < 0:
            raise self.error


@pytest.fixture
def lines(caplog):
    caplog.set_level(logging.INFO, logger="ibframe.progress")

    def messages() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "ibframe.progress"]
    return messages


def test_not_a_terminal_gives_a_log_line_at_most_every_interval_and_a_last_one(lines):
    clock, stream = Clock(), io.StringIO()
    p = progress(40, "history AAPL 1 min", "chunk", stream=stream, clock=clock, every=10)
    assert isinstance(p, LogProgress)
    for _ in range(4):                                   # 4 chunks in 8 s: under the interval, no line yet
        clock.now += 2
        p.update()
    assert lines() == []
    clock.now += 2.1                                     # 10.1 s: the first line
    p.update(8)
    assert lines() == ["history AAPL 1 min: 12/40 chunks (30%), 10 s elapsed, about 24 s left"]
    for _ in range(9):                                   # 9 s more: still inside the interval
        clock.now += 1
        p.update()
    assert len(lines()) == 1
    clock.now += 1.5                                     # 10.5 s after the first line: the second
    p.update()
    assert len(lines()) == 2 and lines()[1].startswith("history AAPL 1 min: 22/40 chunks (55%), 21 s elapsed")
    clock.now += 6.4
    p.update(18)
    assert len(lines()) == 2
    p.close()
    assert lines()[-1] == "history AAPL 1 min: done, 40/40 chunks (100%) in 27 s, 1.5 chunks/s"
    p.close()                                            # twice is once
    p.update()                                           # after close: ignored
    assert len(lines()) == 3
    assert stream.getvalue() == ""                       # log lines go through logging, not the stream


def test_a_run_that_ends_early_says_where_it_stopped(lines):
    clock = Clock()
    with progress(40, "history SPY 1 hour TRADES", "chunk", stream=io.StringIO(), clock=clock) as p:
        p.update(12)
        clock.now += 8.14
    assert lines() == ["history SPY 1 hour TRADES: stopped at 12/40 chunks (30%) after 8.1 s"]


def test_unknown_total_counts_only(lines):
    clock = Clock()
    p = progress(None, "replay big.jsonl.gz", "frame", stream=io.StringIO(), clock=clock, every=10)
    clock.now += 12
    p.update(12_000)
    clock.now += 3
    p.update(3_000)
    p.close()
    assert lines() == ["replay big.jsonl.gz: 12,000 frames, 12 s elapsed",
                       "replay big.jsonl.gz: done, 15,000 frames in 15 s, 1,000 frames/s"]


def test_a_bar_on_a_terminal_or_when_forced_and_nothing_when_off(lines):
    for stream, enabled in ((Terminal(), None), (io.StringIO(), True)):
        with progress(40, "history AAPL 1 min TRADES", "chunk", stream=stream, enabled=enabled) as p:
            assert isinstance(p, BarProgress)
            p.update(40)
        drawn = stream.getvalue()
        assert "history AAPL 1 min TRADES" in drawn and "/40" in drawn
    quiet = Terminal()
    with progress(40, "history AAPL", "chunk", stream=quiet, enabled=False) as p:
        assert type(p) is Progress
        p.update(40)
    assert quiet.getvalue() == "" and lines() == []


def test_a_broken_stream_never_stops_the_work(lines):
    errors = (OSError(32, "Broken pipe"), RuntimeError("a stream with a bug"), ValueError("closed file"))
    for error in errors:
        for works in (0, 1, 3):
            for enabled in (None, True):
                p = progress(1_000, "replay x", "frame", stream=Broken(error, works), enabled=enabled)
                for _ in range(1_000):
                    p.update()                           # must not raise
                p.close()
                assert p.n == 1_000
    before = sys.stdout
    p = progress(10, "x", "step", stream=Broken(RuntimeError("bug"), 1), enabled=True, console=True)
    p.update(3)
    print("still printed")
    p.close()
    assert sys.stdout is before                          # the console given back even so


def test_a_stream_that_cannot_say_whether_it_is_a_terminal_gets_log_lines(lines):
    class Closed(io.StringIO):
        def isatty(self):
            raise ValueError("I/O operation on closed file")
    with progress(2, "history AAPL", "chunk", stream=Closed()) as p:
        assert isinstance(p, LogProgress)
        p.update(2)
    assert lines()[-1].startswith("history AAPL: done, 2/2 chunks (100%)")


def test_a_command_lines_bar_keeps_printed_lines_above_it(capsys):
    stream = Terminal()
    before = sys.stdout
    with progress(3, "replay x", "frame", stream=stream, console=True) as p:
        assert sys.stdout is not before
        print("== a summary line")
        p.update(3)
    assert sys.stdout is before
    assert capsys.readouterr().out == "== a summary line\n"


def test_follow_samples_a_counter_and_ends_with_its_last_value(lines):
    done = [0]
    with follow(lambda: done[0], 500, "replay x.jsonl", "frame", stream=io.StringIO(), interval=0.01) as p:
        for _ in range(500):
            done[0] += 1
    assert p.n == 500 and p.closed
    assert lines()[-1].startswith("replay x.jsonl: done, 500/500 frames (100%)")
    with follow(lambda: None, 5, "nothing yet", "frame", stream=io.StringIO()) as p:
        pass
    assert lines()[-1].startswith("nothing yet: stopped at 0/5 frames (0%) after ")


def test_seconds_read_as_a_person_would_say_them():
    texts = [seconds_text(s) for s in (0.04, 8.14, 19.4, 59.7, 125, 600, 3725, 14400)]
    assert texts == ["0.0 s", "8.1 s", "19 s", "1 min", "2 min 05 s", "10 min", "1 h 02 min", "4 h"]


# --- the replay's command line ------------------------------------------------------------------------------------

def _replay_yaml(tmp_path) -> Path:
    path = tmp_path / "nth.yaml"
    path.write_text(f"""\
strategy:
  class: replay_fixtures:BuyOnNthQuote
  name: nth
  params: {{n: 4, qty: 100, timer: 0.25}}
  instruments:
    AAPL: {{secType: STK, symbol: AAPL}}
state_dir: {tmp_path / 'state'}
""")
    return path


def test_replay_command_on_a_pipe_logs_the_frames_played(tmp_path):
    total = Recording(RECORDING).frames_in
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{ROOT}"}
    done = subprocess.run([sys.executable, "-m", "ibframe.replay", str(RECORDING), str(_replay_yaml(tmp_path)),
                           "--fills", "simulated"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    progress_lines = [line for line in done.stderr.splitlines() if "ibframe.progress" in line]
    assert len(progress_lines) >= 1
    assert f"ibframe.progress: replay {RECORDING.name}: done, {total}/{total} frames (100%) in " in progress_lines[-1]
    assert "replayed" in done.stdout and "\r" not in done.stderr        # no bar on a pipe


def test_replay_command_without_progress(tmp_path, lines, capsys):
    assert replay_main([str(RECORDING), str(_replay_yaml(tmp_path)), "--fills", "simulated", "--no-progress"]) == 0
    assert lines() == [] and "replayed" in capsys.readouterr().out
