"""A replay's log lines carry the recorded time, not today's."""
from __future__ import annotations

import logging
from pathlib import Path

from ibframe.record import Recording
from ibframe.recorded_time import RecordedTime, recorded_time
from replay_fixtures import CHECKED_IN, buy_on_nth_config


def test_log_lines_of_a_replay_carry_the_recorded_time(caplog, tmp_path):
    from ibframe.replay import replay
    recording = Recording(CHECKED_IN)                    # a session recorded on another day
    header = recording.header
    end = max(e.time for e in recording.events())
    caplog.set_level(logging.INFO)
    before = len(caplog.records)
    result = replay(CHECKED_IN, buy_on_nth_config(tmp_path))
    assert "(recorded 2026-11-30 22:38:47 New York)" in result.report().splitlines()[0]
    during = caplog.records[before:]
    assert len(during) > 5, "the replay logged too little to check"
    assert all(header.wall - 1 <= r.created <= end + 60 for r in during), \
        [(r.created, r.getMessage()[:60]) for r in during if not header.wall - 1 <= r.created <= end + 60]
    assert not any(isinstance(f, RecordedTime) for h in logging.getLogger().handlers for f in h.filters)


def test_the_stamp_leaves_a_record_alone_until_the_clock_exists_and_is_removed_after():
    handler = logging.StreamHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        clock = {"now": None}
        with recorded_time(lambda: clock["now"]) as stamp:
            record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
            created = record.created
            stamp.filter(record)
            assert record.created == created                      # no clock yet: its own time
            clock["now"] = 1_700_000_000.25
            stamp.filter(record)
            assert record.created == 1_700_000_000.25 and record.msecs == 250.0
            assert stamp in handler.filters
        assert stamp not in handler.filters
    finally:
        root.removeHandler(handler)
