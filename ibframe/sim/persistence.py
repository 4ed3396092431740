"""State that survives a restart of the simulator: the `--state FILE` of `python -m ibframe.sim`.

Owns: the state file's format (JSON: the broker's orders, executions and order ids, and the
ledger's cash and positions, as their own `to_state()` give them, and the symbols --any-symbol
generated), reading it at startup (a damaged file is a `StateError` that names the file and says
what to do), and writing it
atomically (a temporary file beside it, then a rename) whenever something that matters changed:
a new, modified, cancelled or filled order, an order id handed out, and at shutdown.

Must never: interpret the broker's or the ledger's state (they own their formats), send anything
to a client, or write the file in place (a crash mid-write must leave the previous file intact).
Saving happens on the gateway's loop and is cheap (one JSON dump of a small dict); it is skipped
when nothing changed, so an idle market costs one tuple comparison per step.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ibapi.message import OUT

if TYPE_CHECKING:
    from .server import SimGateway

log = logging.getLogger("ibframe.sim")

FORMAT = "ibframe.sim state"
VERSION = 1
# requests after which the order book may have changed even when no counter moved (a modify)
ORDER_REQUESTS = frozenset({OUT.PLACE_ORDER, OUT.CANCEL_ORDER, OUT.REQ_GLOBAL_CANCEL, OUT.REQ_IDS})


class StateError(ValueError):
    """The state file cannot be used; the message names the file and the way out."""


def capture(gateway: "SimGateway") -> dict:
    """Everything a restart must keep, as JSON-able data."""
    return {"format": FORMAT, "version": VERSION, "saved_at": gateway.now(), "seed": gateway.config.seed,
            "next_order_id": gateway.next_order_id,
            "ledger": gateway.ledger.to_state(), "broker": gateway.broker.to_state(),
            "generated": _generated(gateway)}


def _generated(gateway: "SimGateway") -> dict:
    """The symbols --any-symbol generated (and their chains): restored first, so positions and orders on
    them re-resolve by conId. A generated conId is a function of the symbol, so it comes back the same."""
    generator = getattr(gateway.universe, "generator", None)
    return generator.to_state() if generator is not None else {"symbols": [], "chains": []}


def restore(gateway: "SimGateway", state: dict) -> None:
    """Put a captured state into the gateway's (fresh) ledger and broker."""
    generator = getattr(gateway.universe, "generator", None)
    if generator is not None and isinstance(state.get("generated"), dict):
        generator.restore(gateway.universe, state["generated"])
    gateway.ledger.load_state(state.get("ledger") or {})
    gateway.broker.load_state(state.get("broker") or {})
    gateway.next_order_id = max(gateway.next_order_id, int(state.get("next_order_id") or 1))


def _what_to_do(path: Path) -> str:
    return (f"Move {path} aside (or delete it) to start with a fresh paper account, restore it from a "
            f"backup, or pass another --state file.")


def read(path: Path) -> dict:
    """The checked content of a state file; StateError when it is not one this simulator wrote."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StateError(f"cannot read the state file {path}: {exc.strerror}. {_what_to_do(path)}") from None
    try:
        state = json.loads(text)
    except ValueError as exc:
        where = f" (line {exc.lineno}, column {exc.colno}: {exc.msg})" if hasattr(exc, "lineno") else ""
        raise StateError(f"the state file {path} is corrupt: it is not valid JSON{where}. "
                         f"{_what_to_do(path)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise StateError(f"the state file {path} is not an ibframe.sim state file (no \"format\": \"{FORMAT}\"). "
                         f"{_what_to_do(path)}")
    if state.get("version") != VERSION:
        raise StateError(f"the state file {path} has format version {state.get('version')!r}; this simulator "
                         f"reads version {VERSION}. {_what_to_do(path)}")
    for key in ("ledger", "broker"):
        if not isinstance(state.get(key), dict):
            raise StateError(f"the state file {path} is corrupt: its \"{key}\" section is missing or not an "
                             f"object. {_what_to_do(path)}")
    return state


def write(path: Path, state: dict) -> None:
    """Atomically replace `path`: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(state, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


class StateFile:
    """The gateway's `--state` file: loaded once at startup, saved after every change that matters."""

    def __init__(self, gateway: "SimGateway", path: str | Path):
        self.gateway = gateway
        self.path = Path(path).expanduser()
        self.saves = 0
        self._last: tuple | None = None
        self._pending = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)      # var/ on a clean clone
        except OSError as exc:
            raise StateError(f"the state file {self.path} cannot be written: its directory {self.path.parent} "
                             f"cannot be created ({exc.strerror}). Pass another --state file.") from None

    def load(self) -> bool:
        """Restore the file's orders, executions, positions, cash and order ids; False when there is no file."""
        if not self.path.exists():
            log.info("state file %s does not exist yet; starting with a fresh paper account", self.path)
            return False
        state = read(self.path)
        try:
            restore(self.gateway, state)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"the state file {self.path} is corrupt: {type(exc).__name__}: {exc}. "
                             f"{_what_to_do(self.path)}") from None
        self._last = self.fingerprint()
        broker = self.gateway.broker
        log.info("state restored from %s: %d open orders, %d executions, next order id %d", self.path,
                 len(broker.live), len(broker.executions), self.gateway.next_order_id)
        return True

    # --- when to save ---------------------------------------------------------------------------
    def fingerprint(self) -> tuple:
        """Cheap summary that changes with every order, fill, cancel or id (not with prices)."""
        b = self.gateway.broker
        live = tuple((lo.perm_id, lo.status, lo.phase, lo.filled) for lo in b.live.values())
        return (b.seq, b.exec_seq, b.bind_seq, len(b.completed), len(b.executions), self.gateway.next_order_id,
                live)

    def after_step(self) -> None:
        """After each market step: save if fills, triggers or expiries changed the book."""
        if self.fingerprint() != self._last:
            self.save()

    def after_request(self, msg_id: int) -> None:
        """After a client request: an order request may modify an order without moving any counter."""
        if msg_id in ORDER_REQUESTS and not self._pending and self.gateway.loop is not None:
            self._pending = True            # one save for a burst of requests handled in the same loop pass
            self.gateway.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._pending = False
        self.save()

    def save(self) -> None:
        """Write the file now (failures are logged: a full disk must not stop the market)."""
        try:
            write(self.path, capture(self.gateway))
        except (OSError, TypeError, ValueError) as exc:
            log.error("could not save the state file %s: %s", self.path, exc)
            return
        self.saves += 1
        self._last = self.fingerprint()
