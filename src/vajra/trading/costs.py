"""Brokerage, taxes and exchange charges per executed order, from dated config files.

Rates change by budget and circular (reference §1), so they live in `config/costs/*.toml`, one
file per period with an `effective_from` date (and optionally `effective_to`); the file in force
on the trade date prices the order, so a backtest of 2025 pays 2025's STT.

Two paths, one formula:
- exact (`bill`, `order_charges`, `round_trip`): rates are parsed from decimal strings into
  `Fraction`s and results are integer paise, so the worked examples in the reference come out
  to the paisa. It costs microseconds: for contract notes, reports and tests, not the hot path.
- fast (`round_trip_rate`): the same formula folded at load time into a few floats per leg, so
  the engine's Net Expected Value prices a round trip in about ten float operations.

Rounding (the rules that reproduce every worked example in the reference to the paisa):
- A bill (one order, a round trip, a day's contract note) sums each component exactly over its
  orders and rounds each sum once, to the paisa, half up. Rounding per order first does not
  reproduce the reference: in its NIFTY futures example each side's IPFT is Rs 1.625, and two
  rounded halves make 3.26 (or 3.24 rounding half-even), not the reference's 3.25.
- GST is 18% of the billed (rounded) brokerage, exchange charge, IPFT and SEBI fee, rounded the
  same way; `total` is the sum of the rounded components, as on a contract note.
- STT stays in paise by default. The reference's "STT is rounded to the rupee on the contract
  note" is a rule for a contract note's STT total; applied to each worked example it breaks
  them (the option's STT 9.75 -> 10 makes 62.86, not ~62.6; the futures' 812.5 -> 813 makes
  966.72, not ~966). So it is opt-in: `bill(..., stt_to_rupee=True)`, half up.

Thread safety: a CostModel is immutable after construction; share one across threads freely.
"""

from __future__ import annotations

import bisect
import datetime as dt
import enum
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType

from vajra.market.instruments import Segment

#: The repo's `config/costs` (this file is src/vajra/trading/costs.py).
DEFAULT_DIR = Path(__file__).resolve().parents[3] / "config" / "costs"
DEFAULT_BROKER = "zerodha"


class CostConfigError(ValueError):
    """A cost config file is missing, malformed or inconsistent; the message names the file and
    the key, because a wrong rate silently mis-prices every order."""


class Leg(enum.IntEnum):
    """What an order trades, which decides its rates. An IntEnum so it fits in shared-memory
    slots and indexes tuples; `key` is its table name in the config files."""

    INTRADAY = 0  # equity, squared off the same day
    DELIVERY = 1  # equity, delivered
    FUTURES = 2
    OPTIONS = 3  # value = premium x quantity
    OPTIONS_EXERCISE = 4  # value = intrinsic value x quantity; the holder (buy side) pays STT

    @property
    def key(self) -> str:
        return self.name.lower()


def leg_for_segment(segment: Segment, *, delivery: bool = False) -> Leg:
    """The leg an order in `segment` is charged as: cash equity is intraday unless `delivery`.

    Only NSE segments: the config files hold NSE's charges, and BSE's exchange charges differ
    (not in the reference), so BSE_EQ raises rather than being priced as NSE."""
    if segment is Segment.NSE_EQ:
        return Leg.DELIVERY if delivery else Leg.INTRADAY
    if delivery:
        raise ValueError(f"delivery applies to cash equity only, not {segment.name}")
    if segment is Segment.NFO_FUT:
        return Leg.FUTURES
    if segment is Segment.NFO_OPT:
        return Leg.OPTIONS
    raise ValueError(f"no cost table for segment {segment.name}")


@dataclass(frozen=True, slots=True)
class Execution:
    """One executed order, all its fills summed: brokerage and its Rs 20 cap are per executed
    order, not per fill."""

    leg: Leg
    buy: bool
    value: int  # paise: price x quantity (premium for options, intrinsic value for exercise)


@dataclass(frozen=True, slots=True)
class Charges:
    """A bill in paise, each component rounded once (see the module docstring)."""

    brokerage: int
    stt: int
    exchange: int
    ipft: int
    sebi: int
    stamp: int
    gst: int
    total: int = field(init=False)

    def __post_init__(self) -> None:
        total = self.brokerage + self.stt + self.exchange + self.ipft + self.sebi
        object.__setattr__(self, "total", total + self.stamp + self.gst)


@dataclass(frozen=True, slots=True)
class LegRates:
    """Exact charges per paisa of order value for one leg; exchange, IPFT and SEBI fee are
    charged on both sides, STT and stamp duty per side."""

    stt_buy: Fraction
    stt_sell: Fraction
    exchange: Fraction
    ipft: Fraction
    sebi: Fraction
    stamp_buy: Fraction
    stamp_sell: Fraction


@dataclass(frozen=True, slots=True)
class BrokerageRule:
    """Per executed order: flat + min(rate x value, cap). Paise; cap None means uncapped."""

    flat: Fraction
    rate: Fraction
    cap: Fraction | None

    def on(self, value: int) -> Fraction:
        pct = self.rate * value
        if self.cap is not None and pct > self.cap:
            pct = self.cap
        return self.flat + pct


@dataclass(frozen=True, slots=True)
class Schedule:
    """One config file: the rates in force from `effective_from` (to `effective_to`, inclusive,
    or until the next file)."""

    path: Path
    effective_from: dt.date
    effective_to: dt.date | None
    gst: Fraction
    legs: Mapping[Leg, LegRates]
    brokerage: Mapping[str, Mapping[Leg, BrokerageRule]]  # broker -> leg -> rule


@dataclass(frozen=True, slots=True)
class RoundTripRate:
    """A round trip's cost as floats, GST folded in: `cost(B, S)` in paise for buy value B and
    sell value S in paise. Agrees with `CostModel.round_trip_exact` to float precision and with
    the rounded `Charges.total` within a few paise (each billed component rounds by <= 0.5)."""

    buy: float  # per paisa of buy value: STT + stamp + (exchange + IPFT + SEBI) x (1 + GST)
    sell: float  # per paisa of sell value, likewise
    brokerage_rate: float  # x (1 + GST), per order
    brokerage_cap: float  # x (1 + GST), per order; inf when uncapped
    brokerage_flat: float  # x (1 + GST), per order
    stt_buy: float  # per paisa of buy value (already inside `buy`): NEV reports STT's share
    stt_sell: float  # per paisa of sell value (already inside `sell`)

    def cost(self, buy_value: float, sell_value: float) -> float:
        r, cap = self.brokerage_rate, self.brokerage_cap
        return (
            self.buy * buy_value
            + self.sell * sell_value
            + 2.0 * self.brokerage_flat
            + min(r * buy_value, cap)
            + min(r * sell_value, cap)
        )

    def __call__(self, price: int, qty: int) -> tuple[float, float]:
        """(total, STT) in paise for `qty` units bought and sold at `price` paise: the shape
        `vajra.trading.nev.RoundTripCost` asks for (NSE units: paise, whole shares/contracts)."""
        v = float(price * qty)
        return self.cost(v, v), (self.stt_buy + self.stt_sell) * v


def round_paise(x: Fraction) -> int:
    """Half up to the paisa (charges are never negative)."""
    return math.floor(x + Fraction(1, 2))


def round_rupee(paise: int) -> int:
    """Half up to the rupee, in paise: 50 paise or more rounds up."""
    return (paise + 50) // 100 * 100


class CostModel:
    """The dated schedules of one venue, priced for one broker."""

    def __init__(self, schedules: Iterable[Schedule], broker: str = DEFAULT_BROKER) -> None:
        ordered = sorted(schedules, key=lambda s: s.effective_from)
        if not ordered:
            raise CostConfigError("no cost schedules given")
        for a, b in pairwise(ordered):
            if a.effective_from == b.effective_from:
                raise CostConfigError(
                    f"{a.path} and {b.path}: overlapping effective dates: both have "
                    f"effective_from = {a.effective_from}"
                )
            if a.effective_to is not None and a.effective_to >= b.effective_from:
                raise CostConfigError(
                    f"{a.path}: effective_to = {a.effective_to} overlaps {b.path}, "
                    f"effective_from = {b.effective_from}"
                )
        for s in ordered:
            if broker not in s.brokerage:
                known = ", ".join(sorted(s.brokerage)) or "none"
                raise CostConfigError(
                    f"{s.path}: brokerage.{broker}: no such brokerage profile (have: {known})"
                )
        self.broker = broker
        self._schedules = tuple(ordered)
        self._starts = [s.effective_from for s in ordered]
        self._fast = tuple(
            tuple(_fast_rate(s, s.brokerage[broker][leg], leg) for leg in Leg) for s in ordered
        )

    @classmethod
    def load(cls, directory: Path | str | None = None, broker: str = DEFAULT_BROKER) -> CostModel:
        """Every `*.toml` in `directory` (default: the repo's config/costs) is one schedule."""
        d = DEFAULT_DIR if directory is None else Path(directory)
        if not d.is_dir():
            raise CostConfigError(f"{d}: cost config directory does not exist")
        paths = sorted(d.glob("*.toml"))
        if not paths:
            raise CostConfigError(f"{d}: no *.toml cost files")
        return cls((load_schedule(p) for p in paths), broker)

    def schedule(self, trade_date: dt.date) -> Schedule:
        return self._schedules[self._index(trade_date)]

    def round_trip_rate(self, leg: Leg, trade_date: dt.date) -> RoundTripRate:
        """The fast path. Look it up once per trading day and keep it: the lookup bisects."""
        return self._fast[self._index(trade_date)][leg]

    def _index(self, trade_date: dt.date) -> int:
        i = bisect.bisect_right(self._starts, trade_date) - 1
        if i < 0:
            first = self._schedules[0]
            raise ValueError(
                f"no cost schedule in force on {trade_date}: the first, {first.path}, "
                f"has effective_from = {first.effective_from}"
            )
        s = self._schedules[i]
        if s.effective_to is not None and trade_date > s.effective_to:
            raise ValueError(
                f"no cost schedule in force on {trade_date}: {s.path} has "
                f"effective_to = {s.effective_to} and no later file starts by then"
            )
        return i

    def bill(
        self, executions: Iterable[Execution], trade_date: dt.date, *, stt_to_rupee: bool = False
    ) -> Charges:
        """Charges of orders billed together (one contract note), rounded once per component.
        `stt_to_rupee` rounds the STT total to the rupee as a contract note does: pass all of
        a day's orders then, since rounding each order's STT distorts the total."""
        s = self.schedule(trade_date)
        brk, stt, exch, ipft, sebi, stamp = (round_paise(x) for x in self._sums(s, executions))
        if stt_to_rupee:
            stt = round_rupee(stt)
        gst = round_paise(s.gst * (brk + exch + ipft + sebi))
        return Charges(brk, stt, exch, ipft, sebi, stamp, gst)

    def bill_exact(self, executions: Iterable[Execution], trade_date: dt.date) -> Fraction:
        """Total in paise with nothing rounded: what the fast path approximates."""
        s = self.schedule(trade_date)
        brk, stt, exch, ipft, sebi, stamp = self._sums(s, executions)
        return brk + stt + exch + ipft + sebi + stamp + s.gst * (brk + exch + ipft + sebi)

    def order_charges(
        self, leg: Leg, side_buy: bool, value_paise: int, trade_date: dt.date
    ) -> Charges:
        return self.bill((Execution(leg, side_buy, value_paise),), trade_date)

    def round_trip(
        self, leg: Leg, buy_value_paise: int, sell_value_paise: int, trade_date: dt.date
    ) -> Charges:
        """One buy and one sell order billed together, as in the reference's worked examples."""
        return self.bill(_pair(leg, buy_value_paise, sell_value_paise), trade_date)

    def round_trip_exact(
        self, leg: Leg, buy_value_paise: int, sell_value_paise: int, trade_date: dt.date
    ) -> Fraction:
        return self.bill_exact(_pair(leg, buy_value_paise, sell_value_paise), trade_date)

    def _sums(
        self, s: Schedule, executions: Iterable[Execution]
    ) -> tuple[Fraction, Fraction, Fraction, Fraction, Fraction, Fraction]:
        brk = stt = exch = ipft = sebi = stamp = Fraction(0)
        rules = s.brokerage[self.broker]
        for e in executions:
            if isinstance(e.value, bool) or not isinstance(e.value, int) or e.value < 0:
                raise ValueError(f"order value must be a non-negative int of paise: {e!r}")
            r, v = s.legs[e.leg], e.value
            brk += rules[e.leg].on(v)
            stt += (r.stt_buy if e.buy else r.stt_sell) * v
            exch += r.exchange * v
            ipft += r.ipft * v
            sebi += r.sebi * v
            stamp += (r.stamp_buy if e.buy else r.stamp_sell) * v
        return brk, stt, exch, ipft, sebi, stamp


def _pair(leg: Leg, buy_value: int, sell_value: int) -> tuple[Execution, Execution]:
    return Execution(leg, True, buy_value), Execution(leg, False, sell_value)


def _fast_rate(s: Schedule, rule: BrokerageRule, leg: Leg) -> RoundTripRate:
    g = 1 + s.gst
    r = s.legs[leg]
    both = (r.exchange + r.ipft + r.sebi) * g
    return RoundTripRate(
        buy=float(r.stt_buy + r.stamp_buy + both),
        sell=float(r.stt_sell + r.stamp_sell + both),
        brokerage_rate=float(rule.rate * g),
        brokerage_cap=math.inf if rule.cap is None else float(rule.cap * g),
        brokerage_flat=float(rule.flat * g),
        stt_buy=float(r.stt_buy),
        stt_sell=float(r.stt_sell),
    )


# --- loading ----------------------------------------------------------------------------------

_TOP_KEYS = {"effective_from", "effective_to", "gst", "legs", "brokerage"}
_RATE_KEYS = tuple(LegRates.__dataclass_fields__)
_RULE_KEYS = {"flat", "rate", "cap"}
_DECIMAL = re.compile(r"\d+(?:\.\d+)?")


def load_schedule(path: Path) -> Schedule:
    """Parse one cost file; every problem raises CostConfigError naming the file and key."""
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except OSError as e:
        raise CostConfigError(f"{path}: cannot read: {e}") from e
    except tomllib.TOMLDecodeError as e:
        raise CostConfigError(f"{path}: not valid TOML: {e}") from e
    _keys(path, "", doc, required=_TOP_KEYS - {"effective_to"}, optional={"effective_to"})
    start = _date(path, "effective_from", doc["effective_from"])
    end = _date(path, "effective_to", doc["effective_to"]) if "effective_to" in doc else None
    if end is not None and end < start:
        raise CostConfigError(f"{path}: effective_to = {end} is before effective_from = {start}")
    legs_doc = _table(path, "legs", doc["legs"])
    _keys(path, "legs.", legs_doc, required={leg.key for leg in Leg})
    legs: dict[Leg, LegRates] = {}
    for leg in Leg:
        where = f"legs.{leg.key}"
        t = _table(path, where, legs_doc[leg.key])
        _keys(path, where + ".", t, required=set(_RATE_KEYS))
        legs[leg] = LegRates(*(_percent(path, f"{where}.{k}", t[k]) for k in _RATE_KEYS))
    brokers = _table(path, "brokerage", doc["brokerage"])
    brokerage: dict[str, dict[Leg, BrokerageRule]] = {}
    for name, profile in brokers.items():
        p = _table(path, f"brokerage.{name}", profile)
        _keys(path, f"brokerage.{name}.", p, required={leg.key for leg in Leg})
        brokerage[name] = {
            leg: _rule(path, f"brokerage.{name}.{leg.key}", p[leg.key]) for leg in Leg
        }
    gst = _percent(path, "gst", doc["gst"])
    frozen = {name: MappingProxyType(rules) for name, rules in brokerage.items()}
    return Schedule(path, start, end, gst, MappingProxyType(legs), MappingProxyType(frozen))


def _rule(path: Path, where: str, value: object) -> BrokerageRule:
    t = _table(path, where, value)
    _keys(path, where + ".", t, required=set(), optional=_RULE_KEYS)
    if not t:
        raise CostConfigError(f"{path}: {where}: give at least one of flat, rate, cap")
    flat = _rupees(path, f"{where}.flat", t["flat"]) if "flat" in t else Fraction(0)
    rate = _percent(path, f"{where}.rate", t["rate"]) if "rate" in t else Fraction(0)
    cap = _rupees(path, f"{where}.cap", t["cap"]) if "cap" in t else None
    return BrokerageRule(flat, rate, cap)


def _keys(
    path: Path,
    prefix: str,
    table: Mapping[str, object],
    required: set[str],
    optional: set[str] | None = None,
) -> None:
    missing = sorted(required - table.keys())
    unknown = sorted(table.keys() - required - (optional or set()))
    problems = [f"missing key {prefix}{k}" for k in missing]
    problems += [f"unknown key {prefix}{k}" for k in unknown]
    if problems:
        raise CostConfigError(f"{path}: {'; '.join(problems)}")


def _table(path: Path, where: str, value: object) -> dict[str, object]:
    if not isinstance(value, dict):
        raise CostConfigError(f"{path}: {where}: expected a table, got {value!r}")
    return value


def _date(path: Path, key: str, value: object) -> dt.date:
    if type(value) is not dt.date:  # a datetime is a date too, but a time of day means a typo
        raise CostConfigError(
            f"{path}: {key}: expected an unquoted TOML date such as 2026-04-01, got {value!r}"
        )
    return value


def _decimal(path: Path, key: str, value: object, text: str) -> Fraction:
    if not _DECIMAL.fullmatch(text):
        raise CostConfigError(f"{path}: {key}: not a non-negative decimal: {value!r}")
    return Fraction(text)


def _percent(path: Path, key: str, value: object) -> Fraction:
    """ "0.05%" -> 1/2000. The % sign is required so 0.05 and 0.05% cannot be confused."""
    if not isinstance(value, str) or not value.endswith("%"):
        raise CostConfigError(
            f'{path}: {key}: expected a percentage string such as "0.05%", got {value!r}'
        )
    return _decimal(path, key, value, value[:-1].strip()) / 100


def _rupees(path: Path, key: str, value: object) -> Fraction:
    """Rupees as a decimal string ("20") -> paise."""
    if not isinstance(value, str):
        raise CostConfigError(
            f'{path}: {key}: expected rupees as a decimal string such as "20", got {value!r}'
        )
    return _decimal(path, key, value, value.strip()) * 100
