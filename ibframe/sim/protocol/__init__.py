"""The simulator's protocol: what every part shares to speak TWS's socket protocol.

Owns: framing and field encoding (`wire`), the handshake's version and connect-options parsing
(`wire.parse_handshake`), one client connection after its handshake (`session`), the msg-id →
handler registry (`handlers`), IB's pacing counters (`pacing`) and the connection-level requests
(`basics`: clock, managed accounts, market data type), and each session's codec (`codec`): classic
text below 201; from 201 a 4-byte msg id and, per message kind, protobuf — requests turned into the
version-200 text fields the handlers read (`proto_requests`), answers built from the version-200
text the parts write (`proto_answers`, with the object builders in `proto_objects`). The text codec
of each request family lives with the part it serves (e.g. `broker/order_requests_wire.py`).

Must never: import a part (market, broker, accounts, faults) or decide anything about orders,
prices or accounts; parts depend on the protocol, never the other way round.
"""
