"""`python -m ibframe.replay recording.jsonl.gz strategy.yaml`: replay a recorded session into strategies.

The parts: feeder.py (the recording on the virtual clock), connection.py (a recording instead of a
socket), paper_fills.py (--fills simulated), runner.py (the runner, replay(), prepare(), the result),
cli.py (the command line).

Owns: feeding a recording (ibframe.record) through the live path — ibapi's Decoder at the recorded
server version, the same Router, Engine, OrderManager and Strategy code — on a virtual clock, with
every outbound message captured instead of sent; and the simple paper fill model used when orders
are simulated. An entry point like ibframe.run (it subclasses the Runner, so a replay makes the
same requests in the same order as the live run), so it alone may import ibframe.sim's order codec.
Must never: open a socket, read or write a live order-id file, or wait on wall time at --speed max.

How a replay stays faithful and deterministic:

* Time. The dispatcher runs on a `VirtualClock` whose source is the `Feeder` (feeder.py). The clock
  reads the time of the event being replayed; timers due before the next recorded event fire
  first, at their due time. At --speed max nothing sleeps; at 1x/10x the feeder paces events.
* Requests before answers. An inbound frame is delivered only once the replay has sent as many
  requests (placeOrder/cancelOrder/reqGlobalCancel not counted) as the recording had sent before
  it, so an answer always finds its request registered under the same request id (ids start at
  the same base in every Engine, and the Runner makes requests in the same order). While the
  runner sets up (qualify, account, on_start) the feeder waits for it at each such point; calls
  from the runner's thread are taken only while the feeder waits, so they land at the same place
  in the stream every time, at the recorded time of the request they send (calls from other
  threads while strategies run wait for the same pause, at most 60 s). Once strategies run, a
  request the replay never makes is noted as a divergence and the frames after it still play.
  The play ends at the live run's `stop` mark (without one: at the requests after the last frame,
  or the end); the strategies are stopped there, as they were live, and the rest plays out.
* Orders. Order ids come from an in-memory allocator seeded with the recorded nextValidId (raised
  to the first order id the live run used, since a live id file may have been ahead of TWS).
  fills="recorded" (default) feeds the recorded broker answers back; fills="simulated" drops
  them and fills the strategy's orders against the recorded quotes with `PaperFills`:
  - market orders fill at once at the recorded far side (ask for buys, bid for sells) of the
    instrument's market-data line, or at its first quote when there is none yet (an order on an
    instrument the replay has no market-data line for never fills);
  - limit orders that are marketable when placed fill at the far side; resting ones fill at
    their limit price once the far side reaches it (ask <= limit for a buy, bid >= limit for a sell);
  - stop orders trigger when the far side reaches the stop (ask >= stop for a buy, bid <= stop for
    a sell) and then fill as market orders; stop-limits become limit orders;
  - the whole quantity fills at once; no queue position, no partial fills, no size limits;
  - bracket children wait for their parent's fill; the first child to fill cancels its siblings;
  - other order types are rejected (error 201); commissions: $0.005/share (min $1, max 1% of
    value) for stocks, $0.65/contract options, $0.85/contract futures, 0.2 bp (min $2) forex.
  The answers (openOrder, orderStatus, execDetails, commissionAndFeesReport, position) are encoded
  as TWS frames at the recorded server version (ibframe.sim's order codec) and decoded by the same
  Decoder into the same Router, right after the frame that caused them. Recorded order answers,
  errors naming recorded order ids, and recorded positions after the first recorded order are
  left out. ibframe.sim's paper broker matches against its own simulated book, not a recording,
  so it is not used here.
* Damage. A truncated or corrupt recording plays up to the damaged line, then stops the run as
  the live run stopped and reports the line and the reason. A frame the Decoder cannot read is
  skipped as in a live session and reported with its line number.
"""
from __future__ import annotations

from .cli import build_parser, main
from .feeder import Feeder, ReplayDispatcher, ReplayError, Sent, parse_speed
from .connection import CaptureTransport, ReplayConnection
from .paper_fills import ORDER_ANSWERS, SUPPORTED_ORDER_TYPES, PaperFills
from .runner import ReplayResult, ReplayRunner, prepare, replay

__all__ = ["CaptureTransport", "Feeder", "ORDER_ANSWERS", "PaperFills", "ReplayConnection", "ReplayDispatcher",
           "ReplayError", "ReplayResult", "ReplayRunner", "SUPPORTED_ORDER_TYPES", "Sent", "build_parser", "main",
           "parse_speed", "prepare", "replay"]
