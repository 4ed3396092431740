"""Request dispatch table of the simulated gateway: the msg-id → handler registry.

Owns: the registry (`@handles`; two handlers for one message id is an error at import) and
`Reject`, the refusal (an error code and TWS's text) a check hands back for the caller to send.
Request families live in the parts they serve and register here on import (the server imports
every handler module; a module nobody imports silently drops its requests).

Must never: import a part (market, broker, accounts); the contract block and instrument lookup
are the market's (`market/lookup.py`).
"""
from __future__ import annotations

from typing import Callable

from dataclasses import dataclass

from .session import Session
from .wire import FieldReader

Handler = Callable[[Session, FieldReader], None]
HANDLERS: dict[int, Handler] = {}



def handles(msg_id: int) -> Callable[[Handler], Handler]:
    """Register the function as the handler for one client→server message id."""
    def register(fn: Handler) -> Handler:
        if msg_id in HANDLERS:
            raise RuntimeError(f"two handlers for message id {msg_id}: {HANDLERS[msg_id].__name__}, {fn.__name__}")
        HANDLERS[msg_id] = fn
        return fn
    return register


@dataclass(slots=True)
class Reject:
    """A refusal in TWS's words: the caller sends it with the request's id or the order id."""
    code: int
    text: str
