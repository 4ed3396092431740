"""Small shared helpers for proto_requests / proto_answers.

Owns: the ibapi object -> protobuf builders used by proto_answers (Contract,
Order, OrderState, Execution, ContractDetails, bars, historical ticks), generic
copying between ibapi objects (Order, Contract, ...) and the
ibapi protobuf messages whose field names match the object attributes, plus a
callback-recording EWrapper stand-in.

Must never: import the simulator, touch sockets, or mutate anything inside
the ibapi package (it only reads ibapi classes and calls its functions).
"""
from decimal import Decimal

from google.protobuf.descriptor import FieldDescriptor as _FD

from ibapi.tag_value import TagValue
from ibapi.utils import floatMaxString
from ibapi.const import UNSET_DECIMAL, UNSET_DOUBLE, UNSET_INTEGER
from ibapi.client_utils import createConditionsProto
from ibapi.protobuf import (
    Contract_pb2, ComboLeg_pb2, DeltaNeutralContract_pb2, Order_pb2, OrderState_pb2, OrderAllocation_pb2,
    Execution_pb2, ContractDetails_pb2, HistoricalDataBar_pb2, HistoricalTick_pb2, HistoricalTickBidAsk_pb2,
    HistoricalTickLast_pb2,
)

_MSG = _FD.TYPE_MESSAGE
_STR = _FD.TYPE_STRING
_BOOL = _FD.TYPE_BOOL
_DOUBLES = (_FD.TYPE_DOUBLE, _FD.TYPE_FLOAT)
_INTS = (_FD.TYPE_INT32, _FD.TYPE_INT64, _FD.TYPE_UINT32, _FD.TYPE_UINT64,
         _FD.TYPE_SINT32, _FD.TYPE_SINT64)


def _coerce_in(val, cur):
    """Proto scalar -> the Python type the ibapi object attribute holds."""
    if isinstance(cur, bool):
        return bool(val)
    if isinstance(cur, Decimal):
        return Decimal(val)
    if isinstance(cur, int) and isinstance(val, bool):
        return int(val)
    if isinstance(cur, int) and isinstance(val, float) and val.is_integer():
        return int(val)     # e.g. Order.discretionaryAmt: int default, double on the wire
    if isinstance(cur, str) and isinstance(val, float):
        return floatMaxString(val)
    return val


def proto_to_obj(msg, obj, rename=None):
    """Copy every *set* scalar field of `msg` onto the same-named attribute."""
    for fd, val in msg.ListFields():
        if fd.type == _MSG or fd.is_repeated:
            continue
        attr = rename.get(fd.name, fd.name) if rename else fd.name
        if not hasattr(obj, attr):
            continue
        setattr(obj, attr, _coerce_in(val, getattr(obj, attr)))
    return obj


_PLANS = {}


def _plan(msg, rename, skip):
    key = (type(msg), tuple(sorted(rename.items())) if rename else (), tuple(skip))
    plan = _PLANS.get(key)
    if plan is None:
        plan = []
        for fd in msg.DESCRIPTOR.fields:
            if fd.type == _MSG or fd.is_repeated or fd.name in skip:
                continue
            kind = ("s" if fd.type == _STR else "d" if fd.type in _DOUBLES else "b" if fd.type == _BOOL
                    else "i" if fd.type in _INTS else "?")
            plan.append((fd.name, rename.get(fd.name, fd.name) if rename else fd.name, kind))
        _PLANS[key] = plan
    return plan


def obj_to_proto(obj, msg, rename=None, skip=()):
    """Set every scalar field of `msg` from the same-named object attribute.

    Values are copied even when they equal the ibapi "unset" sentinels so that
    the protobuf decoder (which only overwrites defaults when HasField) ends up
    with exactly the object's values.  None and "" strings are left absent.
    """
    d = obj.__dict__
    for fname, attr, kind in _plan(msg, rename, skip):
        val = d.get(attr)
        if val is None:
            continue
        if kind == "s":
            tv = type(val)
            if tv is not str:
                if tv is bool:
                    val = "1" if val else "0"
                elif tv is float:
                    val = floatMaxString(val)
                else:
                    val = str(val)
            if val == "":
                continue
        elif kind == "d":
            if val == "":
                continue
            val = float(val)
        elif kind == "b":
            val = bool(int(val)) if isinstance(val, str) else bool(val)
        elif kind == "i":
            if val == "":
                continue
            val = int(val)
        setattr(msg, fname, val)
    return msg


def tagvalues_from_map(pmap):
    return [TagValue(k, v) for k, v in pmap.items()]


def fill_map(pmap, tagvalues):
    for tv in tagvalues or ():
        pmap[tv.tag] = tv.value


class Recorder:
    """EWrapper stand-in: records every callback as (name, args)."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        calls = self.calls

        def _rec(*args, **kw):
            calls.append((name, args + tuple(kw.values())))
        return _rec


# ------------------------------------------------- object -> proto builders
def contract_pb(c, order=None):
    p = obj_to_proto(c, Contract_pb2.Contract(), {"primaryExch": "primaryExchange"})
    ocl = getattr(order, "orderComboLegs", None) or []
    for i, leg in enumerate(c.comboLegs or ()):
        lp = obj_to_proto(leg, ComboLeg_pb2.ComboLeg(), {"shortSalesSlot": "shortSaleSlot"}, skip=("perLegPrice",))
        if i < len(ocl) and ocl[i].price != UNSET_DOUBLE:
            lp.perLegPrice = ocl[i].price
        p.comboLegs.append(lp)
    if c.deltaNeutralContract is not None:
        p.deltaNeutralContract.CopyFrom(obj_to_proto(c.deltaNeutralContract, DeltaNeutralContract_pb2.DeltaNeutralContract()))
    return p


def order_pb(o):
    p = obj_to_proto(o, Order_pb2.Order(), skip=("usePriceMgmtAlgo", "seekPriceImprovement", "routeMarketableToBbo"))
    for name in ("usePriceMgmtAlgo", "seekPriceImprovement", "routeMarketableToBbo"):
        v = getattr(o, name)
        if v is not None and v != "" and v != UNSET_INTEGER:
            setattr(p, name, int(v))
    fill_map(p.algoParams, o.algoParams)
    fill_map(p.smartComboRoutingParams, o.smartComboRoutingParams)
    fill_map(p.orderMiscOptions, o.orderMiscOptions)
    if o.conditions:
        p.conditions.extend(createConditionsProto(o))
    t = o.softDollarTier
    if t is not None:
        sp = p.softDollarTier
        sp.SetInParent()
        if t.name: sp.name = t.name
        if t.val: sp.value = t.val
        if t.displayName: sp.displayName = t.displayName
    return p


def order_state_pb(s):
    p = obj_to_proto(s, OrderState_pb2.OrderState())
    for a in s.orderAllocations or ():
        p.orderAllocations.append(obj_to_proto(a, OrderAllocation_pb2.OrderAllocation()))
    return p


_EXEC_RENAME = {"isLiquidation": "liquidation", "isPriceRevisionPending": "pendingPriceRevision"}


def execution_pb(e):
    p = obj_to_proto(e, Execution_pb2.Execution(), _EXEC_RENAME, skip=("optExerciseOrLapseType",))
    t = getattr(e, "optExerciseOrLapseType", None)
    if t is not None and hasattr(t, "value"):
        p.optExerciseOrLapseType = t.value[0]
    return p


_CD_RENAME = {"bondNotes": "notes", "puttable": "putable",
              "fundMinimumSubsequentPurchase": "fundSubsequentMinimumPurchase"}


def contract_details_pb(cd, is_bond):
    c = cd.contract
    cp = contract_pb(c)
    if is_bond:
        ltd = cd.maturity or ""
        if cd.lastTradeTime:
            ltd += " " + cd.lastTradeTime + (" " + cd.timeZoneId if cd.timeZoneId else "")
    else:
        ltd = c.lastTradeDateOrContractMonth + (" " + cd.lastTradeTime if cd.lastTradeTime else "")
    if ltd:
        cp.lastTradeDateOrContractMonth = ltd
    else:
        cp.ClearField("lastTradeDateOrContractMonth")
    dp = obj_to_proto(cd, ContractDetails_pb2.ContractDetails(), _CD_RENAME,
                      skip=("fundDistributionPolicyIndicator", "fundAssetType"))
    for name in ("fundDistributionPolicyIndicator", "fundAssetType"):
        v = getattr(cd, name)
        if v is not None and hasattr(v, "value"):
            setattr(dp, name, v.value[0])
    fill_map(dp.secIdList, cd.secIdList)
    for r in cd.ineligibilityReasonList or ():
        rp = dp.ineligibilityReasonList.add()
        if r.id_: rp.id = str(r.id_)
        if r.description: rp.description = r.description
    return cp, dp


def bar_pb(b):
    p = HistoricalDataBar_pb2.HistoricalDataBar(date=b.date, open=b.open, high=b.high, low=b.low,
                                                close=b.close, barCount=b.barCount)
    if b.volume != UNSET_DECIMAL: p.volume = str(b.volume)
    if b.wap != UNSET_DECIMAL: p.WAP = str(b.wap)
    return p


def dec_str(v):
    """Decimal size -> proto string (absent when UNSET, decoder maps absent to UNSET_DECIMAL)."""
    return None if v == UNSET_DECIMAL else str(v)


def set_present(p, **kw):
    for k, v in kw.items():
        if v is not None:
            setattr(p, k, v)
    return p


def htick_pb(t):
    return set_present(HistoricalTick_pb2.HistoricalTick(time=t.time, price=t.price), size=dec_str(t.size))


def htick_ba_pb(t):
    p = set_present(HistoricalTickBidAsk_pb2.HistoricalTickBidAsk(time=t.time, priceBid=t.priceBid, priceAsk=t.priceAsk),
             sizeBid=dec_str(t.sizeBid), sizeAsk=dec_str(t.sizeAsk))
    a = t.tickAttribBidAsk
    p.tickAttribBidAsk.bidPastLow, p.tickAttribBidAsk.askPastHigh = a.bidPastLow, a.askPastHigh
    return p


def htick_last_pb(t):
    p = set_present(HistoricalTickLast_pb2.HistoricalTickLast(time=t.time, price=t.price,
                                                        exchange=t.exchange, specialConditions=t.specialConditions),
             size=dec_str(t.size))
    a = t.tickAttribLast
    p.tickAttribLast.pastLimit, p.tickAttribLast.unreported = a.pastLimit, a.unreported
    return p
