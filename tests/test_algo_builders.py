"""IB algo builders: every parameter is checked against IB's documented values before anything is sent.

A bad value (Twap strategyType 'Fast', Vwap maxPctVol=5, …) raises ValueError naming the algo, the
parameter, the value and what is allowed — it never reaches TWS to come back as error 441. Good values
go out and the simulator, which enforces the same catalogue, accepts them (no 439/441/442/443).
"""
from __future__ import annotations


import pytest

from ibframe.contracts import Stock
from ibframe.engine import Engine
from ibframe.strategy import Strategy
from ibframe.trading import algo_params
from ibframe.trading import orders as o
from conftest import wait_until

ALGO_ERRORS = {439, 440, 441, 442, 443}



def mkt():
    return o.market("BUY", 100)


# (what is built, the parameter named in the error, the bad value) — every parameter of every builder
BAD = [
    (lambda: o.adaptive(mkt(), priority="Fast"), "priority", "Fast"),
    (lambda: o.adaptive(mkt(), priority=1), "priority", 1),
    (lambda: o.twap(mkt(), strategy_type="Fast"), "strategy_type", "Fast"),
    (lambda: o.twap(mkt(), start_time="25:00:00 US/Eastern"), "start_time", "25:00:00 US/Eastern"),
    (lambda: o.twap(mkt(), end_time="at the close"), "end_time", "at the close"),
    (lambda: o.twap(mkt(), end_time="15:00:00 Mars/Olympus"), "end_time", "15:00:00 Mars/Olympus"),
    (lambda: o.twap(mkt(), allow_past_end_time="yes"), "allow_past_end_time", "yes"),
    (lambda: o.vwap(mkt(), max_pct_vol=5), "max_pct_vol", 5),
    (lambda: o.vwap(mkt(), max_pct_vol=0.005), "max_pct_vol", 0.005),
    (lambda: o.vwap(mkt(), max_pct_vol=0.51), "max_pct_vol", 0.51),
    (lambda: o.vwap(mkt(), max_pct_vol=float("nan")), "max_pct_vol", float("nan")),
    (lambda: o.vwap(mkt(), start_time="20261399 10:00:00"), "start_time", "20261399 10:00:00"),
    (lambda: o.vwap(mkt(), end_time=1500), "end_time", 1500),
    (lambda: o.vwap(mkt(), allow_past_end_time=2), "allow_past_end_time", 2),
    (lambda: o.vwap(mkt(), no_take_liq="1"), "no_take_liq", "1"),
    (lambda: o.vwap(mkt(), speed_up="fast"), "speed_up", "fast"),
    (lambda: o.vwap(mkt(), monetary_value=-10.0), "monetary_value", -10.0),
    (lambda: o.arrival_price("BUY", 100, max_pct_vol=0.6), "max_pct_vol", 0.6),
    (lambda: o.arrival_price("BUY", 100, max_pct_vol="0.1"), "max_pct_vol", "0.1"),
    (lambda: o.arrival_price("BUY", 100, risk_aversion="Reckless"), "risk_aversion", "Reckless"),
    (lambda: o.arrival_price("BUY", 100, start_time="9h30"), "start_time", "9h30"),
    (lambda: o.arrival_price("BUY", 100, end_time="16:00:61"), "end_time", "16:00:61"),
    (lambda: o.arrival_price("BUY", 100, allow_past_end_time="no"), "allow_past_end_time", "no"),
    (lambda: o.arrival_price("BUY", 100, force_completion=3), "force_completion", 3),
]


@pytest.mark.parametrize("build,param,value", BAD, ids=[f"{p}={v!r}" for _, p, v in BAD])
def test_every_builder_rejects_each_bad_parameter_naming_it(build, param, value):
    with pytest.raises(ValueError) as info:
        build()
    text = str(info.value)
    assert param in text and repr(value) in text and "use " in text      # what, the value, and what is allowed


def test_bad_combinations_and_order_types_are_refused():
    with pytest.raises(ValueError, match="end_time .* is not after start_time"):
        o.twap(mkt(), start_time="15:00:00 US/Eastern", end_time="10:00:00 US/Eastern")
    with pytest.raises(ValueError, match="Vwap algo works MKT or LMT orders only, not 'STP'"):
        o.vwap(o.stop("BUY", 100, 10.0))
    order = mkt()
    with pytest.raises(ValueError):
        o.vwap(order, max_pct_vol=5)
    assert order.algoStrategy == "" and order.algoParams is None      # a refused algo leaves the order untouched


def test_the_catalogue_agrees_with_the_simulators():
    """Every tag ibframe sends exists in ibframe.sim's catalogue, and both accept and refuse the same values."""
    from ibframe.sim.broker import algos as sim
    from ibframe.sim.market.ordertime import parse_tws_time

    def sim_accepts(reader, value: str) -> bool:
        try:
            reader(value)
            return True
        except ValueError:
            return False

    def ours_accepts(algo, p, value) -> bool:
        try:
            algo_params.algo_tags(algo, **{p.name: value})
            return True
        except ValueError:
            return False

    times = ["", "09:30:00 US/Eastern", "9:30", "20261118 15:00:00 US/Eastern", "20261118-20:00:00",
             "15:00:00 EST", "15:00:00 CET", "25:00:00", "12:61:00", "tomorrow", "10:00:00 Mars/Base"]
    for algo, params in algo_params.ALGOS.items():
        spec = sim.CATALOGUE[algo]
        for p in params:
            reader = spec[p.tag]
            if p.kind == "choice":
                for value in (*p.choices, "Nonsense"):
                    assert ours_accepts(algo, p, value) == sim_accepts(reader, value), (algo, p.tag, value)
            elif p.kind in ("range", "amount"):
                probes = [0.0, 0.01, 0.1, 0.5, 0.50001, 0.009, 5.0, -1.0, 1e6]
                for value in probes:
                    assert ours_accepts(algo, p, value) == sim_accepts(reader, str(value)), (algo, p.tag, value)
            elif p.kind == "flag":
                for value, wire in ((True, "1"), (False, "0"), (1, "1"), (0, "0")):
                    assert ours_accepts(algo, p, value) and sim_accepts(reader, wire)
            elif p.kind == "time":
                for value in times:
                    sim_ok = value == "" or sim_accepts(lambda v: parse_tws_time(v, 1.79e9), value)
                    assert ours_accepts(algo, p, value) == sim_ok, (algo, p.tag, value)


class RefusedAlgo(Strategy):
    def on_start(self):
        self.errors, self.tried = [], False
        self.quote("AAPL")

    def on_quote(self, instrument, quote):
        if not self.tried:
            self.tried = True
            self.place(instrument, o.vwap(o.market("BUY", 100), max_pct_vol=5))

    def on_error(self, error):
        self.errors.append(error)


@pytest.fixture
def engine(make_gateway, tmp_path):
    gw = make_gateway(seed=9)
    eng = Engine("127.0.0.1", gw.port, 11, state_dir=tmp_path).start()
    yield eng
    eng.stop()


def test_a_refused_algo_never_reaches_tws(engine):
    s = RefusedAlgo(engine, "refused", {}, {"AAPL": engine.qualify(Stock("AAPL"))})
    engine.on_dispatch(s._start)
    wait_until(lambda: s.errors, what="the refusal to reach on_error")
    assert "max_pct_vol (maxPctVol) = 5" in s.errors[0].text
    assert engine.orders.trades == {} and s.trades == []                     # no order id spent, nothing sent
    assert not [e for e in engine.router.errors if e.code in ALGO_ERRORS]
    engine.on_dispatch(s._stop)


def test_valid_algo_orders_are_accepted_by_the_simulator(engine):
    aapl = engine.qualify(Stock("AAPL"))
    quote = engine.snapshot(aapl).future.result(10)
    far = round(quote.bid * 0.5, 2)                    # limit far below the market: the algos rest, nothing fills

    def lmt():
        return o.limit("BUY", 100, far)
    orders = [o.adaptive(lmt(), p) for p in algo_params.ADAPTIVE_PRIORITIES]
    orders += [o.twap(lmt(), strategy_type=t, end_time="15:30:00 US/Eastern", allow_past_end_time=True)
               for t in algo_params.TWAP_STRATEGY_TYPES]
    orders += [o.vwap(lmt(), max_pct_vol=v, no_take_liq=True, speed_up=True, monetary_value=1000.0)
               for v in (0.01, 0.5)]
    orders += [o.arrival_price("BUY", 100, far, max_pct_vol=0.5, risk_aversion=r, start_time="11:00:00 US/Eastern",
                               end_time="20261118 15:00:00 US/Eastern", force_completion=True)
               for r in algo_params.RISK_AVERSIONS]
    trades = [engine.on_dispatch(lambda order=order: engine.orders.place(aapl, order, "algos")) for order in orders]
    wait_until(lambda: all(t.status in ("Submitted", "PreSubmitted") or t.errors for t in trades),
               what="every algo order to be accepted or refused")
    refused = [(t.order.algoStrategy, [str(e) for e in t.errors]) for t in trades if t.errors]
    assert refused == []
    assert not [e for e in engine.router.errors if e.code in ALGO_ERRORS]
    for t in trades:
        engine.on_dispatch(lambda t=t: engine.orders.cancel(t))
