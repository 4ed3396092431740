"""Session recordings: the file format, the recorder that writes it and the reader that checks it.

The parts: format.py (constants, errors, one payload to and from one line), recorder.py (writing),
reader.py (reading and checking).

Owns: the recording format and everything that touches a recording file. The recorder is fed by
the connection's taps (every inbound frame from the reader thread, every outbound message from
whoever sends it) and writes from its own thread, so the dispatch thread only appends to a list.
Must never: decode or interpret messages (replay does that with ibapi's Decoder), import the
simulator, or block a tap on disk I/O.

Format (version 1) — JSON Lines, UTF-8, one JSON object per line; gzip-compressed when the file
name ends in ``.gz``. Line 1 is the header; every later line is an event, in the order the
recorder saw them (an outbound request is written before anything sent in answer to it):

    {"type":"header","format":"ibframe-recording","version":1,"server_version":176,
     "conn_time":"20240102 09:30:00 EST","client_id":1,"host":"127.0.0.1","port":7497,
     "accounts":["DU1234567"],"ibframe":"0.1.0","ibapi":"10.50.02",
     "wall":1704205800.0,"mono":5123.25,"started":"2024-01-02T14:30:00.000Z"}
    {"type":"out","wall":1704205800.01,"mono":5123.26,"fields":["71","2","1",""]}
    {"type":"in","wall":1704205800.02,"mono":5123.27,"fields":["15","1","DU1234567"]}
    {"type":"in","wall":...,"mono":...,"raw":"AAAA0ggB..."}
    {"type":"mark","wall":...,"mono":...,"name":"stop"}
    {"type":"end","wall":...,"mono":...,"frames_in":812,"messages_out":9}

* ``in`` — one frame from TWS. ``fields`` are its NUL-separated text fields, message id first (as
  a decimal string, also at server versions >= 201 where the wire carries the id as a 4-byte
  integer). ``raw`` (base64 of the exact frame payload, length prefix excluded) replaces
  ``fields`` for frames that are not plain text (protobuf at >= 201, invalid UTF-8).
* ``out`` — one message the client sent, in the same two shapes (``raw`` for protobuf requests).
* ``mark`` — a point the runner names: ``started`` (all strategies started) and ``stop`` (the run
  is about to stop its strategies). Replay plays up to ``stop`` before it stops the strategies.
* ``end`` — written by a clean close. A file without it was cut off (crash, kill, power loss);
  everything before the last flush is still there: the recorder flushes at least every
  ``flush_every`` seconds (0.5 by default; gzip with Z_SYNC_FLUSH, so a truncated .gz stays
  readable up to its last flush) and fsyncs at least once a second.
* Timestamps: ``wall`` is epoch seconds (time.time), ``mono`` is time.monotonic(). Replay puts an
  event at ``header.wall + (event.mono - header.mono)`` — wall time that never jumps — or at its
  ``wall`` when ``mono`` is missing, or at the previous event's time when both are missing.
* Hand-written recordings need only ``type`` and ``fields``: a header with ``server_version`` and
  events without timestamps are valid. Replay delivers an inbound frame only after it has sent
  as many requests as the recording has ``out`` lines before that frame (orders — placeOrder,
  cancelOrder, reqGlobalCancel — not counted), so a hand-written file lists one ``out`` line per
  request the strategy makes; ``fields`` on such a line are optional (when present, replay
  compares them with what it sent and reports differences). Without a ``stop`` mark, ``out``
  lines after the last ``in`` line are taken as the requests the run made while stopping.
* Unknown keys and unknown event types are ignored (forward compatible).
"""
from __future__ import annotations

from .format import (EVENT_TYPES, FORMAT, FORMAT_VERSION, HEADER_WAIT, ORDER_MESSAGES, START_API, RecordingError,
                     event_to_payload, out_message_to_event, payload_to_event)
from .reader import Event, Header, Recording, placed_order_id
from .recorder import Recorder, write_recording

__all__ = ["EVENT_TYPES", "FORMAT", "FORMAT_VERSION", "HEADER_WAIT", "ORDER_MESSAGES", "START_API", "Event", "Header",
           "Recorder", "Recording", "RecordingError", "event_to_payload", "out_message_to_event", "payload_to_event",
           "placed_order_id", "write_recording"]
