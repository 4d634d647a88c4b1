"""Pieces built the same way by every runner of the trading stack from one configuration: the
engine (`vajra.engine.engine`) and the benchmark's asyncio bot (`vajra.bench.bot`), so the
benchmark compares wirings, never two copies of the setup."""

from __future__ import annotations

import datetime as _dt
import math

from vajra.engine.config import Config
from vajra.market.instruments import Instrument
from vajra.trading.budgets import BrokerProfile, Budgets, OtrBudget, RateLimiter
from vajra.trading.costs import CostModel, RoundTripRate, leg_for_segment
from vajra.venues.sim import LatencyModel, SimVenue

#: the OTR ceiling for instruments the exchange's OTR rules do not cover (a Binance or LOBSTER
#: replay): the budget still counts, nothing it counts can reach this
NO_OTR_CEILING = 1 << 40


def round_trip_rate(cfg: Config, inst: Instrument) -> tuple[RoundTripRate, str]:
    """The instrument's round-trip cost and a line saying which: the dated NSE cost model for
    NSE segments, a flat fee per side for replays of other markets (no Indian charges)."""
    b = cfg.broker
    day = _dt.date.fromisoformat(b.trade_date) if b.trade_date else _dt.date.today()
    try:
        leg = leg_for_segment(inst.segment)
    except ValueError:
        f = b.replay_fee_bps / 1e4
        rate = RoundTripRate(f, f, 0.0, math.inf, 0.0, 0.0, 0.0)
        return rate, f"costs: {b.replay_fee_bps:g} bp a side ({inst.segment} has no NSE charges)"
    return CostModel.load().round_trip_rate(leg, day), f"costs: NSE {leg.name.lower()}, {day}"


def budgets(cfg: Config, inst: Instrument) -> Budgets:
    """The broker profile's rate limiter and the OTR budget (no ceiling where no OTR regime
    covers the instrument's segment)."""
    b = cfg.broker
    limiter = RateLimiter(BrokerProfile.builtin(b.profile), margin_ns=b.limiter_margin_ns)
    otr = OtrBudget(ceiling=b.otr_ceiling)
    if otr.rules.band(inst.segment, 1, 1) < 0:  # not an NSE segment: no OTR regime applies
        otr = OtrBudget(ceiling=NO_OTR_CEILING)
    return Budgets(limiter, otr)


def sim_venue(cfg: Config, inst: Instrument) -> SimVenue:
    """The simulated NSE venue with the configured latency (build it on the thread that owns it)."""
    v = cfg.venue
    latency = LatencyModel(
        v.latency_median_ns, v.latency_sigma, v.latency_tail_prob, v.latency_tail_scale_ns
    )
    return SimVenue([inst], latency=latency, seed=cfg.feed.seed)
