"""The top level of a run's YAML and its strategy, gateway, sim and orders sections, as pydantic models.

Owns: which keys exist, their types, ranges and choices, and the message for each (a field's description
is the hint "must be <description>"). The `risk:`, `journal:`, `connection:` and `pacing:` sections are only
required to be mappings (or absent) here: each is validated by its own module's model.
Must never: build the result dataclasses (ibframe.config.load does), import strategy code, connect anywhere.
"""
from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from .results import LIVE_PORTS
from .types import (Port, Section, Seconds, SecondsOrOff, check_file_to_read, check_file_to_write, check_folder,
                    _text_path)

CLASS_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
START = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d)?")
FIRST_YEAR, LAST_YEAR = 1971, 2200            # the simulator's calendar (pandas) spans these comfortably
INSTRUMENTS_HINT = ("a mapping of names to contracts, e.g. AAPL: {secType: STK, symbol: AAPL}, or a combo: "
                    "{secType: BAG, legs: [{action: BUY, ratio: 1, conId: …}, …]}")
STATE_DIR_WHAT = "state_dir is the folder for order ids, the journal and history (default var)"


# --- strategy ------------------------------------------------------------------------------------------------

class CancelAfter(Section):
    cancel_after: SecondsOrOff = Field(description="a duration such as 30s (0: cancel at once after a reconnect)")


def _on_disconnect(value: Any) -> Any:
    if value is None or value == "leave":
        return None
    if isinstance(value, dict):
        return value
    raise ValueError(f"{value!r}: write leave (working orders stay at IB, the default) or {{cancel_after: 30s}} "
                     f"(cancel this strategy's working orders after a reconnect when the disconnect lasted "
                     f"longer than that)")


def _leftovers(value: Any) -> Any:
    """cancel | adopt | leave (ibframe.trading.leftovers owns the words and the message)."""
    if value is None:
        return None
    from ..trading.leftovers import parse_leftovers

    def refuse(_path, message):
        raise ValueError(message)
    return parse_leftovers(value, refuse, ())


Leftovers = Annotated[str | None, BeforeValidator(_leftovers)]


def _instrument(value: Any) -> Any:
    if isinstance(value, str) and value.strip():
        return {"symbol": value.strip(), "secType": "STK"}
    if isinstance(value, dict):
        return value
    raise ValueError(f"must be a symbol or a mapping of contract fields, got {value!r}")


def _names_as_text(value: Any) -> Any:
    """YAML reads `2024: {...}` with a number for a name; names are text."""
    if isinstance(value, dict):
        return {str(k) if isinstance(k, (int, float)) and not isinstance(k, bool) else k: v
                for k, v in value.items()}
    return value


def _name(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Instrument = Annotated[dict[str, Any], BeforeValidator(_instrument)]


class StrategySection(Section):
    class_path: str = Field(alias="class", description="'package.module:ClassName', e.g. "
                                                       "strategies.ma_cross:MovingAverageCross")
    name: Annotated[str | None, BeforeValidator(_name)] = Field(
        None, min_length=1, max_length=200, description="a short name for the strategy, e.g. ma-cross")
    params: dict[str, Any] | None = Field(None, description="a mapping of parameter names to values")
    instruments: Annotated[dict[str, Instrument], BeforeValidator(_names_as_text)] = Field(
        min_length=1, description=INSTRUMENTS_HINT)
    on_disconnect: Annotated[CancelAfter | None, BeforeValidator(_on_disconnect)] = Field(
        None, description="leave (the default) or {cancel_after: 30s}")
    leftovers: Leftovers = None

    @field_validator("class_path")
    @classmethod
    def _class_path(cls, value: str) -> str:
        if not CLASS_PATH.fullmatch(value):
            raise ValueError(f"must be 'package.module:ClassName', got {value!r}")
        return value


# --- gateway, sim, orders --------------------------------------------------------------------------------------

class GatewaySection(Section):
    host: str = Field("127.0.0.1", min_length=1, max_length=255,
                      description="a host name or IP address, e.g. 127.0.0.1")
    live: bool = Field(False, description="true or false (true: a live port may be used, real money)")
    port: Port = 7497
    client_id: int = Field(1, ge=0, le=2**31 - 1, description="a whole number from 0 (the TWS API client id)")

    @field_validator("port")
    @classmethod
    def _paper_unless_live(cls, port: int, info: ValidationInfo) -> int:
        if port in LIVE_PORTS and info.data.get("live") is not True:
            raise ValueError(f"{port} is a LIVE trading port (TWS 7496, IB Gateway 4001); use a paper port "
                             f"(7497/4002) or set 'live: true' under gateway to trade real money")
        return port


def _gateway(value: Any) -> Any:
    """'sim' (or nothing): the embedded simulator (None); 'HOST:PORT'; or a mapping."""
    if value is None or value == "sim":
        return None
    if isinstance(value, str):
        host, _, port = value.strip().rpartition(":")
        if not host or not port.isdigit() or len(port) > 9:
            raise ValueError(f"{value!r}: write 'sim', 'HOST:PORT' or a mapping with host/port/client_id")
        return {"host": host, "port": int(port)}
    if isinstance(value, dict):
        return value
    raise ValueError(f"{value!r}: write 'sim', 'HOST:PORT' or a mapping with host/port/client_id/live")


def _universe(value: Any) -> Any:
    what = "a universe YAML file (e.g. config/universe.yaml)"
    return check_file_to_read(_text_path(value, f"the path of {what}"), what)


def _start(value: Any) -> Any:
    """now, open, or 'YYYY-MM-DD HH:MM[:SS]' (YAML reads an unquoted date-time as a datetime)."""
    if isinstance(value, datetime):
        value = value.strftime("%Y-%m-%d %H:%M:%S")
    elif isinstance(value, date):
        raise ValueError(f"{value.isoformat()} has no time of day: write 'YYYY-MM-DD HH:MM' in New York time, "
                         f"e.g. '{value.isoformat()} 10:00'")
    text = str(value).strip() if isinstance(value, str) else None
    if text in ("now", "open"):
        return text
    if text is None or not START.fullmatch(text):
        raise ValueError(f"{value!r}: use now, open (30 min into the latest regular session) or "
                         f"'YYYY-MM-DD HH:MM' in New York time")
    try:
        when = datetime.fromisoformat(text.replace(" ", "T"))
    except ValueError:
        raise ValueError(f"{text!r} is not a real date and time: write 'YYYY-MM-DD HH:MM' in New York time") from None
    if not FIRST_YEAR <= when.year <= LAST_YEAR:
        raise ValueError(f"{text!r}: the simulator runs from {FIRST_YEAR} to {LAST_YEAR}; pick a date in between")
    return text


class SimSection(Section):
    seed: int = Field(1, ge=0, le=2**32 - 1, description="a whole number from 0 (the market's random seed)")
    speed: float = Field(1.0, gt=0, le=10_000, description="a positive, finite number up to 10000 (1 = real "
                                                          "time, 10 = ten times faster)")
    universe: Annotated[str | None, BeforeValidator(lambda v: None if v is None else _universe(v))] = None
    start: Annotated[str, BeforeValidator(_start)] = "now"


class OrdersSection(Section):
    ack_timeout: SecondsOrOff = Field(10.0, description="a duration such as 10s (0 waits for TWS forever)")
    leftovers: Leftovers = None


# --- the whole file --------------------------------------------------------------------------------------------

def _record(value: Any) -> Any:
    if value is None:
        return None
    what = "the path of a recording file, e.g. var/session.jsonl.gz (JSON Lines; gzip when it ends in .gz)"
    return check_file_to_write(_text_path(value, what), "session.jsonl.gz")


def _state_dir(value: Any) -> Any:
    return check_folder(_text_path(value, f"a folder path; {STATE_DIR_WHAT}"), STATE_DIR_WHAT)


LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_level(value: Any) -> Any:
    level = value.strip().upper() if isinstance(value, str) else value
    if level not in LEVELS:
        raise ValueError(f"{level!r} is not one of {', '.join(LEVELS)}")
    return level


def _on_stop(value: Any) -> Any:
    if value not in ("cancel", "leave"):
        raise ValueError(f"{value!r}: write cancel (cancel this client's working orders when the run ends, the "
                         f"default) or leave (they keep working at the gateway)")
    return value


def _gc(value: Any) -> Any:
    if value not in ("freeze", "default"):
        raise ValueError(f"{value!r}: write freeze (collect, then freeze what start-up made so later collections are "
                         f"short; the default) or default (Python's own collector settings)")
    return value


def _empty_is_default(value: Any) -> Any:
    return {} if value is None else value


class RunSection(Section):
    strategy: StrategySection | None = Field(None, description="a mapping with class, name, params, instruments")
    strategies: list[StrategySection] | None = Field(None, min_length=1, description="a non-empty list of "
                                                                                     "strategy sections")
    gateway: Annotated[GatewaySection | None, BeforeValidator(_gateway)] = None
    sim: Annotated[SimSection, BeforeValidator(_empty_is_default)] = Field(
        default_factory=SimSection, description="a mapping with seed/speed/universe/start")
    duration: Seconds | None = None
    log_level: Annotated[str, BeforeValidator(_log_level)] = "INFO"
    state_dir: Annotated[str, BeforeValidator(_state_dir)] = "var"
    record: Annotated[str | None, BeforeValidator(_record)] = None
    orders: Annotated[OrdersSection, BeforeValidator(_empty_is_default)] = Field(
        default_factory=OrdersSection, description="a mapping, e.g. {ack_timeout: 10s}")
    on_stop: Annotated[str, BeforeValidator(_on_stop)] = "cancel"
    gc: Annotated[str, BeforeValidator(_gc)] = "freeze"
    risk: Any = None                          # each of these four is validated by its own module's model
    journal: Any = None
    connection: Any = None
    pacing: Any = None
