"""Instruments: tick size, lot size, freeze quantity, price bands and segment, in integer units.

Prices and quantities never become floats inside Vajra. Each instrument fixes two integer scales:
`price_decimals` (price units per currency unit = 10**price_decimals: 2 -> paise) and
`qty_decimals` (quantity units per instrument unit: 3 -> 0.001 BTC). Tick, lot, freeze quantity
and bands are stored in those units, and `parse_scaled` turns a venue's decimal string into
them exactly, refusing digits the scale cannot hold (that is an off-grid price, not a rounding).

Sources: a Kite-style instruments CSV (the broker's master: prefer it over tables) and config
tables (`[[instruments]]` in TOML) for replays and the synthetic market.
"""

from __future__ import annotations

import csv
import enum
import io
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field


class Segment(enum.StrEnum):
    NSE_EQ = "NSE"
    BSE_EQ = "BSE"
    NFO_FUT = "NFO-FUT"
    NFO_OPT = "NFO-OPT"
    INDEX = "INDICES"
    CDS = "CDS"
    MCX = "MCX"
    CRYPTO = "CRYPTO"  # replays of Binance captures
    US_EQ = "US-EQ"  # replays of LOBSTER samples

    @property
    def derivative(self) -> bool:
        return self in (Segment.NFO_FUT, Segment.NFO_OPT)


class InstrumentError(ValueError):
    """Bad instrument data (config or master file); the message names the field and the row."""


def parse_scaled(text: str, decimals: int) -> int:
    """Exact decimal string -> integer units of 10**-decimals ("123.45", 2 -> 12345).

    Raises ValueError for garbage, or for non-zero digits beyond `decimals` (the value is not
    representable on this instrument's grid; rounding it would hide a bad price).
    """
    s = text.strip()
    neg = s.startswith("-")
    if neg or s.startswith("+"):
        s = s[1:]
    whole, dot, frac = s.partition(".")
    if not whole and not frac:
        raise ValueError(f"not a number: {text!r}")
    if not s.isascii() or not (whole or "0").isdigit() or (dot and frac and not frac.isdigit()):
        raise ValueError(f"not a decimal number: {text!r}")
    if len(frac) > decimals:
        extra = frac[decimals:]
        if extra.strip("0"):
            raise ValueError(f"{text!r} has more than {decimals} decimals")
        frac = frac[:decimals]
    scale: int = 10**decimals
    units = int(whole or "0") * scale + (int(frac.ljust(decimals, "0")) if decimals else 0)
    return -units if neg else units


def format_scaled(units: int, decimals: int) -> str:
    if decimals == 0:
        return str(units)
    sign = "-" if units < 0 else ""
    q, r = divmod(abs(units), 10**decimals)
    return f"{sign}{q}.{r:0{decimals}d}"


@dataclass(frozen=True, slots=True)
class Instrument:
    token: int
    symbol: str
    exchange: str
    segment: Segment
    price_decimals: int
    tick: int  # price units
    qty_decimals: int = 0
    lot: int = 1  # quantity units
    freeze_qty: int = 0  # quantity units per order; 0 = no freeze limit known
    band_low: int = 0  # price units; 0 = unknown
    band_high: int = 0
    name: str = ""
    expiry: str = ""
    strike: int = 0  # price units
    option_type: str = ""  # CE / PE for options
    price_scale: int = field(init=False, repr=False)
    qty_scale: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        where = f"instrument {self.symbol!r} (token {self.token})"
        if self.tick <= 0:
            raise InstrumentError(f"{where}: tick must be > 0, got {self.tick}")
        if self.lot <= 0:
            raise InstrumentError(f"{where}: lot must be > 0, got {self.lot}")
        if not 0 <= self.price_decimals <= 9 or not 0 <= self.qty_decimals <= 9:
            raise InstrumentError(f"{where}: decimals must be within 0..9")
        if self.freeze_qty < 0 or (self.freeze_qty and self.freeze_qty < self.lot):
            raise InstrumentError(f"{where}: freeze quantity {self.freeze_qty} below one lot")
        if self.band_low and self.band_high and self.band_low >= self.band_high:
            raise InstrumentError(f"{where}: price band low >= high")
        object.__setattr__(self, "price_scale", 10**self.price_decimals)
        object.__setattr__(self, "qty_scale", 10**self.qty_decimals)

    def price_units(self, text: str) -> int:
        return parse_scaled(text, self.price_decimals)

    def qty_units(self, text: str) -> int:
        return parse_scaled(text, self.qty_decimals)

    def on_grid(self, price_units: int) -> bool:
        return price_units % self.tick == 0

    def format_price(self, price_units: int) -> str:
        return format_scaled(price_units, self.price_decimals)

    def format_qty(self, qty_units: int) -> str:
        return format_scaled(qty_units, self.qty_decimals)


def nse_equity_tick(price_paise: int) -> int:
    """NSE cash/stock-futures tick (paise) by price band, since 2025-04-15 (reference §5).
    Prefer the broker's instrument master; this is for config without a master."""
    rupees = price_paise / 100
    for limit, tick in ((250, 1), (1_000, 5), (5_000, 10), (10_000, 50), (20_000, 100)):
        if rupees < limit:
            return tick
    return 500


_KITE_SEGMENTS = {
    ("NSE", "EQ"): Segment.NSE_EQ,
    ("BSE", "EQ"): Segment.BSE_EQ,
    ("NFO", "FUT"): Segment.NFO_FUT,
    ("NFO", "CE"): Segment.NFO_OPT,
    ("NFO", "PE"): Segment.NFO_OPT,
    ("CDS", "FUT"): Segment.CDS,
    ("MCX", "FUT"): Segment.MCX,
}

#: Kite CSV columns this loader needs.
KITE_COLUMNS = (
    "instrument_token",
    "tradingsymbol",
    "name",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "segment",
    "exchange",
)


class InstrumentMaster:
    """Instruments by token and by (exchange, symbol)."""

    def __init__(self, instruments: Iterable[Instrument] = ()) -> None:
        self._by_token: dict[int, Instrument] = {}
        self._by_symbol: dict[tuple[str, str], Instrument] = {}
        for i in instruments:
            self.add(i)

    def add(self, inst: Instrument) -> None:
        if inst.token in self._by_token and self._by_token[inst.token] != inst:
            raise InstrumentError(f"duplicate instrument token {inst.token}")
        self._by_token[inst.token] = inst
        self._by_symbol[(inst.exchange, inst.symbol)] = inst

    def __len__(self) -> int:
        return len(self._by_token)

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._by_token.values())

    def by_token(self, token: int) -> Instrument:
        try:
            return self._by_token[token]
        except KeyError:
            raise KeyError(f"unknown instrument token {token}") from None

    def by_symbol(self, exchange: str, symbol: str) -> Instrument:
        try:
            return self._by_symbol[(exchange, symbol)]
        except KeyError:
            raise KeyError(f"unknown instrument {exchange}:{symbol}") from None

    @classmethod
    def from_kite_csv(cls, text: str, freeze: Mapping[str, int] | None = None) -> InstrumentMaster:
        """Load Kite's `GET /instruments` CSV. Rows of segments Vajra does not trade are skipped;
        a malformed row raises InstrumentError naming its line. `freeze` maps an underlying
        name (e.g. "NIFTY") to its freeze quantity, which the CSV does not carry."""
        reader = csv.DictReader(io.StringIO(text))
        missing = [c for c in KITE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InstrumentError(f"instruments CSV lacks columns {missing}")
        master = cls()
        freeze = freeze or {}
        for line, row in enumerate(reader, start=2):
            exch, itype = row["exchange"], row["instrument_type"]
            seg = _KITE_SEGMENTS.get((exch, itype))
            if row["segment"] == "INDICES":
                seg = Segment.INDEX
            if seg is None:
                continue
            try:
                decimals = 4 if seg is Segment.CDS else 2
                tick = parse_scaled(row["tick_size"], decimals)
                if seg is Segment.INDEX and tick == 0:
                    tick = 5  # Kite lists indices with tick 0; they are not traded
                inst = Instrument(
                    token=int(row["instrument_token"]),
                    symbol=row["tradingsymbol"],
                    exchange=exch,
                    segment=seg,
                    price_decimals=decimals,
                    tick=tick,
                    lot=int(row["lot_size"] or 1) or 1,
                    name=row["name"],
                    expiry=row["expiry"],
                    strike=parse_scaled(row["strike"] or "0", decimals),
                    option_type=itype if seg is Segment.NFO_OPT else "",
                    freeze_qty=freeze.get(row["name"], 0),
                )
            except (ValueError, InstrumentError) as e:
                raise InstrumentError(f"instruments CSV line {line}: {e}") from e
            master.add(inst)
        return master

    @classmethod
    def from_config(cls, rows: Iterable[Mapping[str, object]]) -> InstrumentMaster:
        """`[[instruments]]` tables: token, symbol, exchange, segment, price_decimals, tick (as
        a decimal string in currency, e.g. "0.05"), lot, and optionally qty_decimals,
        freeze_qty, band_low/band_high (decimal strings), name."""
        master = cls()
        for i, row in enumerate(rows):
            try:
                pd = int(row.get("price_decimals", 2))  # type: ignore[call-overload]
                qd = int(row.get("qty_decimals", 0))  # type: ignore[call-overload]
                inst = Instrument(
                    token=int(row["token"]),  # type: ignore[call-overload]
                    symbol=str(row["symbol"]),
                    exchange=str(row.get("exchange", "NSE")),
                    segment=Segment(str(row.get("segment", "NSE"))),
                    price_decimals=pd,
                    tick=parse_scaled(str(row["tick"]), pd),
                    qty_decimals=qd,
                    lot=parse_scaled(str(row.get("lot", "1")), qd),
                    freeze_qty=parse_scaled(str(row.get("freeze_qty", "0")), qd),
                    band_low=parse_scaled(str(row.get("band_low", "0")), pd),
                    band_high=parse_scaled(str(row.get("band_high", "0")), pd),
                    name=str(row.get("name", "")),
                )
            except KeyError as e:
                raise InstrumentError(f"instruments[{i}]: missing key {e}") from None
            except (ValueError, TypeError) as e:
                raise InstrumentError(f"instruments[{i}]: {e}") from None
            master.add(inst)
        return master
