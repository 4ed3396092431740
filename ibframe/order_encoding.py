"""A lean placeOrder encoder: the exact text ibapi's `EClient.placeOrder` sends, built in a few µs.

Owns: `encode_place_order(server_version, order_id, contract, order)`, which returns the very `msg`
text ibapi 10.50's placeOrder hands to `sendMsg(OUT.PLACE_ORDER, msg)` for the same arguments at that
server version, or None. None is always safe: the caller then calls ibapi's own placeOrder, which sends
(or refuses with an error callback) exactly as before. A text that differs from ibapi's never is, so
whenever this module is not sure, it answers None.

How: ibapi's field list is written down once below (`_SPEC`, in ibapi's order, with the server versions
that send each field). For each server version the first call generates one Python function from it
(`encoder_source(version)` shows it) and caches it. The function has two ways to build the text:

- fast: when every rarely-set field still holds the very object a fresh `Order()` / `Contract()` holds
  (an identity check per field), their text is a constant computed once per version;
- full: otherwise every field is encoded one by one with make_field's rules (bool → "1"/"0",
  None → refusal, str() of anything else; handle-empty fields map UNSET to "" and inf to "Infinity").

Both check the finished text the way ibapi checks each string field (printable ASCII, tab, LF, CR),
and count its NUL separators, so a field holding a NUL or a control character gives None.

Returns None for: server versions outside 157..202 (from 203 ibapi sends placeOrder as protobuf);
a delta-neutral contract (`contract.deltaNeutralContract`); order conditions; scale orders with a price
increment (`scalePriceIncrement`); hedge orders (`hedgeType`); VOL orders' delta-neutral leg
(`deltaNeutralOrderType`); PEG BENCH (from 102) and PEG BEST / PEG MID (from 170) order types; orders
ibapi refuses at this server version (its "It does not support …" checks); anything ibapi would refuse
with an error (None values, non-printable strings, broken containers); a non-str object whose text is not
printable ASCII (ibapi sends it unchecked); `conditions` that is not a list.

Must never: send anything, import the framework, or return a text that differs from ibapi's.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from operator import attrgetter
from typing import Callable

from ibapi.const import DOUBLE_INFINITY, UNSET_DOUBLE, UNSET_INTEGER
from ibapi.contract import Contract
from ibapi.order import Order

FIRST_VERSION = 157          # the oldest server version encoded here (REPLACE_FA_END)
LAST_VERSION = 202           # from 203 (PROTOBUF_PLACE_ORDER) placeOrder is not text any more

# the bytes ibapi's isAsciiPrintable accepts; what is left of a message without them must be its NULs
_PRINTABLE = bytes(range(32, 127)) + b"\t\n\r"


def _clean(msg: str, separators: int) -> bool:
    """Every field printable ASCII (or tab, LF, CR) and exactly `separators` NULs, as ibapi checks strings."""
    rest = msg.encode().translate(None, _PRINTABLE)
    return len(rest) == separators and rest.count(0) == separators


class Unsendable(Exception):
    """ibapi would refuse this value with an error instead of sending it."""


# --- make_field and make_field_handle_empty, value by value ------------------------------------------
def field_text(value) -> str:
    """ibapi's make_field without its NUL and without the string check (the whole text is checked)."""
    if value is None:
        raise Unsendable("None")
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "1" if value else "0"
    return str(value)


def empty_text(value) -> str:
    """ibapi's make_field_handle_empty without its NUL: UNSET → "", inf → "Infinity"."""
    if value is None:
        raise Unsendable("None")
    if UNSET_INTEGER == value or UNSET_DOUBLE == value:
        return ""
    if DOUBLE_INFINITY == value:
        return "Infinity"
    return field_text(value)


def _tag_values(items) -> tuple[str, int]:
    """A count, then tag and value of each item: algoParams and smartComboRoutingParams."""
    count = len(items) if items else 0
    parts = [str(count)]
    if count > 0:
        for item in items:
            parts.append(field_text(item.tag))
            parts.append(field_text(item.value))
    return "\0".join(parts) + "\0", len(parts)


def _combo_block(contract, order) -> tuple[str, int]:
    """A BAG's combo legs, the order's per-leg prices and its smart combo routing params."""
    legs = contract.comboLegs
    count = len(legs) if legs else 0
    parts = [str(count)]
    if count > 0:
        for leg in legs:
            if not leg:                  # ibapi asserts each leg
                raise Unsendable("combo leg")
            parts += (field_text(leg.conId), field_text(leg.ratio), field_text(leg.action),
                      field_text(leg.exchange), field_text(leg.openClose), field_text(leg.shortSaleSlot),
                      field_text(leg.designatedLocation), field_text(leg.exemptCode))
    prices = order.orderComboLegs
    count = len(prices) if prices else 0
    parts.append(str(count))
    if count > 0:
        for leg in prices:
            if not leg:
                raise Unsendable("order combo leg")
            parts.append(empty_text(leg.price))
    text, params = _tag_values(order.smartComboRoutingParams)
    return "\0".join(parts) + "\0" + text, len(parts) + params


# --- ibapi's field list -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Field:
    """One field of the message: where its value comes from, how ibapi writes it, when it is sent."""
    source: str                  # an expression on c (contract), o (order), order_id; or a constant text
    kind: str                    # text / flag / number / empty (handle-empty) / price_mgmt / misc / const / block
    since: int = 0               # first server version that sends it
    until: int = 10 ** 6         # first server version that no longer sends it
    hot: bool = False            # often set: always encoded one by one


def _f(source: str, kind: str, since: int = 0, until: int = 10 ** 6, hot: bool = False) -> _Field:
    return _Field(source, kind, since, until, hot)


_CONTRACT = [_f("c.conId", "number", hot=True)] + [
    _f(f"c.{name}", kind, hot=True) for name, kind in (
        ("symbol", "text"), ("secType", "text"), ("lastTradeDateOrContractMonth", "text"), ("strike", "empty"),
        ("right", "text"), ("multiplier", "text"), ("exchange", "text"), ("primaryExchange", "text"),
        ("currency", "text"), ("localSymbol", "text"), ("tradingClass", "text"))] + [
    _f("c.secIdType", "text"), _f("c.secId", "text")]

_SPEC: list[_Field] = [_f("order_id", "number", hot=True)] + _CONTRACT + [
    _f("o.action", "text", hot=True), _f("o.totalQuantity", "number", hot=True),
    _f("o.orderType", "text", hot=True), _f("o.lmtPrice", "empty", hot=True), _f("o.auxPrice", "empty", hot=True),
    _f("o.tif", "text", hot=True), _f("o.ocaGroup", "text", hot=True), _f("o.account", "text", hot=True),
    _f("o.openClose", "text"), _f("o.origin", "number"), _f("o.orderRef", "text", hot=True),
    _f("o.transmit", "flag", hot=True), _f("o.parentId", "number", hot=True), _f("o.blockOrder", "flag"),
    _f("o.sweepToFill", "flag"), _f("o.displaySize", "number"), _f("o.triggerMethod", "number"),
    _f("o.outsideRth", "flag", hot=True), _f("o.hidden", "flag"),
    _f("combo", "block"),
    _f("", "const"),                                                   # deprecated sharesAllocation
    _f("o.discretionaryAmt", "number"), _f("o.goodAfterTime", "text", hot=True),
    _f("o.goodTillDate", "text", hot=True), _f("o.faGroup", "text"), _f("o.faMethod", "text"),
    _f("o.faPercentage", "text"),
    _f("", "const", until=177),                                        # deprecated faProfile
    _f("o.modelCode", "text"), _f("o.shortSaleSlot", "number"), _f("o.designatedLocation", "text"),
    _f("o.exemptCode", "number"), _f("o.ocaType", "number", hot=True), _f("o.rule80A", "text"),
    _f("o.settlingFirm", "text"), _f("o.allOrNone", "flag"), _f("o.minQty", "empty"),
    _f("o.percentOffset", "empty"),
    _f("0", "const"), _f("0", "const"), _f("", "const"),               # eTradeOnly, firmQuoteOnly, nbboPriceCap
    _f("o.auctionStrategy", "number"), _f("o.startingPrice", "empty"), _f("o.stockRefPrice", "empty"),
    _f("o.delta", "empty"), _f("o.stockRangeLower", "empty"), _f("o.stockRangeUpper", "empty"),
    _f("o.overridePercentageConstraints", "flag"), _f("o.volatility", "empty"), _f("o.volatilityType", "empty"),
    _f("o.deltaNeutralOrderType", "text"), _f("o.deltaNeutralAuxPrice", "empty"),
    _f("o.continuousUpdate", "flag"), _f("o.referencePriceType", "empty"),
    _f("o.trailStopPrice", "empty", hot=True), _f("o.trailingPercent", "empty", hot=True),
    _f("o.scaleInitLevelSize", "empty"), _f("o.scaleSubsLevelSize", "empty"), _f("o.scalePriceIncrement", "empty"),
    _f("o.scaleTable", "text"), _f("o.activeStartTime", "text"), _f("o.activeStopTime", "text"),
    _f("o.hedgeType", "text"), _f("o.optOutSmartRouting", "flag"), _f("o.clearingAccount", "text"),
    _f("o.clearingIntent", "text"), _f("o.notHeld", "flag"),
    _f("0", "const"),                                                  # no delta-neutral contract
    _f("o.algoStrategy", "text", hot=True), _f("algo", "block"), _f("o.algoId", "text"),
    _f("o.whatIf", "flag", hot=True), _f("misc", "misc"), _f("o.solicited", "flag"),
    _f("o.randomizeSize", "flag"), _f("o.randomizePrice", "flag"),
    _f("0", "const"),                                                  # no conditions
    _f("o.adjustedOrderType", "text"), _f("o.triggerPrice", "number"), _f("o.lmtPriceOffset", "number"),
    _f("o.adjustedStopPrice", "number"), _f("o.adjustedStopLimitPrice", "number"),
    _f("o.adjustedTrailingAmount", "number"), _f("o.adjustableTrailingUnit", "number"),
    _f("o.extOperator", "text"), _f("o.softDollarTier.name", "text"), _f("o.softDollarTier.val", "text"),
    _f("o.cashQty", "number", hot=True), _f("o.mifid2DecisionMaker", "text"), _f("o.mifid2DecisionAlgo", "text"),
    _f("o.mifid2ExecutionTrader", "text"), _f("o.mifid2ExecutionAlgo", "text"),
    _f("o.dontUseAutoPriceForHedge", "flag"), _f("o.isOmsContainer", "flag"),
    _f("o.discretionaryUpToLimitPrice", "flag"), _f("o.usePriceMgmtAlgo", "price_mgmt", hot=True),
    _f("o.duration", "number", 158), _f("o.postToAts", "number", 160), _f("o.autoCancelParent", "flag", 162),
    _f("o.advancedErrorOverride", "text", 166), _f("o.manualOrderTime", "text", 169),
    _f("ibkrats", "block", 170),
    _f("o.customerAccount", "text", 183), _f("o.professionalCustomer", "flag", 184),
    _f("", "const", 187, 190), _f(str(UNSET_INTEGER), "const", 187, 190),   # RFQ fields, sent 187..189
    _f("o.includeOvernight", "flag", 189), _f("o.manualOrderIndicator", "number", 192),
    _f("o.imbalanceOnly", "flag", 199),
]

# ibapi's "It does not support …" checks after 157: below the version, an order for which the test
# holds is refused with an error (the encoder answers None); otherwise the field is just not sent
_REFUSALS: tuple[tuple[int, str], ...] = (
    (158, "o.duration != UNSET_INTEGER"),
    (160, "o.postToAts != UNSET_INTEGER"),
    (162, "o.autoCancelParent"),
    (166, "o.advancedErrorOverride"),
    (169, "o.manualOrderTime"),
    (170, "o.minTradeQty != UNSET_INTEGER or o.minCompeteSize != UNSET_INTEGER"
          " or o.competeAgainstBestOffset != UNSET_DOUBLE or o.midOffsetAtWhole != UNSET_DOUBLE"
          " or o.midOffsetAtHalf != UNSET_DOUBLE"),
    (183, "o.customerAccount"),
    (184, "o.professionalCustomer"),
    (189, "o.includeOvernight"),
    (192, "o.manualOrderIndicator != UNSET_INTEGER"),
    (199, "o.imbalanceOnly"),
)

_PEG_BENCH = ("PEG BENCH", "PEGBENCH")
_PEG_BEST_MID = ("PEG BENCH", "PEGBENCH", "PEG BEST", "PEGBEST", "PEG MID", "PEGMID")


# --- generating one version's function ----------------------------------------------------------------
_VALUE_KINDS = ("text", "flag", "number", "empty", "price_mgmt")


def _default(source: str):
    """The object a fresh Order()/Contract() holds at `source`, if every fresh one holds that same object."""
    owner, _, path = source.partition(".")
    make = {"o": Order, "c": Contract}.get(owner)
    if make is None:
        raise LookupError(source)
    get = attrgetter(path)
    first, second = get(make()), get(make())
    if first is second and type(first) in (str, bool, int, float, Decimal, type(None)):
        return first
    raise LookupError(source)


def _defaults() -> dict[str, object]:
    """Every field's shared default, by source expression (fields without one are left out)."""
    out = {}
    for source in {f.source for f in _SPEC if f.kind in _VALUE_KINDS}:
        try:
            out[source] = _default(source)
        except (LookupError, AttributeError):
            pass
    return out


def _name(source: str, prefix: str = "D_") -> str:
    """The generated function's global name for the default of `source` (T_: the default's text)."""
    return prefix + source.replace(".", "_")


def _one_by_one(f: _Field, defaults: dict) -> str:
    """The expression that encodes field `f` exactly as make_field / make_field_handle_empty would."""
    s = f.source
    if f.kind == "text":
        return f"(v if type(v := {s}) is str else field_text(v))"
    if f.kind == "flag":
        return f'("1" if (v := {s}) is True else "0" if v is False else field_text(v))'
    if f.kind == "number":
        if s in defaults:                # e.g. cashQty: UNSET_DOUBLE unless set
            return (f"({_name(s, 'T_')} if (v := {s}) is {_name(s)} "
                    "else str(v) if type(v) is int else field_text(v))")
        return f"(str(v) if type(v := {s}) is int else field_text(v))"
    if f.kind == "empty":                # a float below UNSET_INTEGER is neither UNSET nor inf: its repr
        return (f'("" if (v := {s}) is UNSET_DOUBLE or v is UNSET_INTEGER '
                f"else repr(v) if type(v) is float and v < 2147483647.0 else empty_text(v))")
    if f.kind == "price_mgmt":           # ibapi: handle_empty(UNSET_INTEGER if None else 1 if truthy else 0)
        return f'("" if (v := {s}) is None else "1" if v else "0")'
    raise ValueError(f.kind)


def _constant_text(f: _Field, value) -> str:
    """What ibapi writes for field `f` holding `value` (a default)."""
    if f.kind == "empty":
        return empty_text(value)
    if f.kind == "price_mgmt":
        return "" if value is None else "1" if value else "0"
    return field_text(value)


def _literal(text: str) -> str:
    """`text` as the literal part of a generated f'…' string (NUL as \\x00: "\\0" before a digit is octal)."""
    return (text.replace("\\", "\\\\").replace("{", "{{").replace("}", "}}").replace("'", "\\'")
            .replace("\0", "\\x00"))


def _quiet(f: _Field, defaults: dict) -> bool:
    """A constant, or a rarely-set field with a shared default: written out as a constant when unset."""
    return f.kind == "const" or (f.kind in _VALUE_KINDS and not f.hot and f.source in defaults)


def _runs(fields: list[_Field], defaults: dict) -> list[list[_Field]]:
    """The message cut into runs: one hot field or block each, or consecutive quiet fields."""
    runs: list[list[_Field]] = []
    for f in fields:
        if runs and _quiet(f, defaults) and _quiet(runs[-1][0], defaults):
            runs[-1].append(f)
        else:
            runs.append([f])
    return runs


def _text(run: list[_Field], defaults: dict, constant: bool) -> str:
    """The f-string body of a run: defaults written out (constant) or every field encoded one by one."""
    out = []
    for f in run:
        if f.kind == "const":
            out.append(_literal(f.source + "\0"))
        elif f.kind == "block":
            out.append("{" + f.source + "}")
        elif f.kind == "misc":
            out.append("{misc}\\x00")
        elif constant:
            out.append(_literal(_constant_text(f, defaults[f.source]) + "\0"))
        else:
            out.append("{" + _one_by_one(f, defaults) + "}\\x00")
    return "".join(out)


def encoder_source(version: int) -> str:
    """The Python source of the encoder for `version` (what `encode_place_order` runs)."""
    defaults = _defaults()
    fields = [f for f in _SPEC if f.since <= version < f.until]
    count = sum(1 for f in fields if f.kind != "block")
    refused = [test for since, test in _REFUSALS if version < since]
    lines = [f"def encode_v{version}(order_id, c, o):",
             "    if c.deltaNeutralContract is not None or o.orderType in PEG_TYPES:",
             "        return None",
             "    conditions = o.conditions",
             "    if conditions.__class__ is not list or conditions:",
             "        return None",
             "    if o.deltaNeutralOrderType or o.hedgeType or o.scalePriceIncrement is not UNSET_DOUBLE:",
             "        return None"]
    if refused:
        lines += ["    if " + " or ".join(refused) + ":",
                  "        return None"]
    lines += [f"    n = {count}",
              '    if c.secType == "BAG":',
              "        combo, k = combo_block(c, o)",
              "        n += k",
              "    else:",
              '        combo = ""',
              "    if o.algoStrategy:",
              "        algo, k = tag_values(o.algoParams)",
              "        n += k",
              "    else:",
              '        algo = ""',
              "    misc = o.orderMiscOptions",
              '    misc = "".join(map(str, misc)) if misc else ""']
    if version >= 170:
        lines += ['    if c.exchange == "IBKRATS":',
                  '        ibkrats = empty_text(o.minTradeQty) + "\\x00"',
                  "        n += 1",
                  "    else:",
                  '        ibkrats = ""']
    body = []
    for number, run in enumerate(_runs(fields, defaults)):
        names = [f.source for f in run if f.kind in _VALUE_KINDS]
        if not _quiet(run[0], defaults) or not names:        # a hot field, a block, or only constants
            body.append(_text(run, defaults, constant=not names))
            continue
        same = "\n            and ".join(f"{s} is {_name(s)}" for s in names)
        lines += [f"    if ({same}):",
                  f"        run{number} = f'{_text(run, defaults, True)}'",
                  "    else:",
                  f"        run{number} = f'{_text(run, defaults, False)}'"]
        body.append("{run%d}" % number)
    lines += [f"    msg = f'{''.join(body)}'",
              "    return msg if clean(msg, n) else None"]
    return "\n".join(lines) + "\n"


def _build(version: int) -> Callable | None:
    """Compile the encoder for `version` (None outside FIRST_VERSION..LAST_VERSION)."""
    if not FIRST_VERSION <= version <= LAST_VERSION:
        return None
    namespace = {"field_text": field_text, "empty_text": empty_text, "tag_values": _tag_values,
                 "combo_block": _combo_block, "clean": _clean, "UNSET_DOUBLE": UNSET_DOUBLE,
                 "UNSET_INTEGER": UNSET_INTEGER, "PEG_TYPES": _PEG_BEST_MID if version >= 170 else _PEG_BENCH}
    kinds = {f.source: f for f in _SPEC if f.kind in _VALUE_KINDS}
    for source, value in _defaults().items():
        namespace[_name(source)] = value
        if source in kinds:
            namespace[_name(source, "T_")] = _constant_text(kinds[source], value)
    exec(compile(encoder_source(version), f"<placeOrder encoder v{version}>", "exec"), namespace)  # noqa: S102
    return namespace[f"encode_v{version}"]


_ENCODERS: dict[int, Callable | None] = {}


def encode_place_order(server_version: int, order_id: int, contract: Contract, order: Order) -> str | None:
    """ibapi's placeOrder text for these arguments at `server_version`, or None (then use ibapi's placeOrder)."""
    encoder = _ENCODERS.get(server_version) if type(server_version) is int else None
    if encoder is None:
        if type(server_version) is not int or server_version in _ENCODERS:
            return None
        encoder = _ENCODERS[server_version] = _build(server_version)
    if encoder is None:
        return None
    try:
        return encoder(order_id, contract, order)
    except Exception:                    # whatever failed here fails in ibapi too, or ibapi says it better
        return None
