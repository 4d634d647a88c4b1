"""The order protocol every venue speaks: requests in, venue events out (sans-I/O).

Why one protocol: Execution must not be able to tell the simulated NSE venue from Kite
(hftbacktest's "one interface for backtest and live"). A venue is an adapter: it takes
`PlaceRequest`/`ModifyRequest`/`CancelRequest` values and later hands back `VenueEvent`s
from `poll(now_ns)`. Nothing here does I/O or reads a clock; the caller passes `now_ns`
(`time.perf_counter_ns()` in the engine, simulated time in tests), so the simulated venue,
the Kite adapter and the tests drive the same code.

Nothing calls a venue directly except `vajra.trading.gateway.OrderGateway`, which is where the
kill flag, the single rate limiter and the OTR budget sit. Units: prices in the instrument's
integer price units (paise for NSE), always a multiple of its tick; quantities in units
(shares or contracts, a multiple of the lot for derivatives). Client order ids are positive
ints unique for the engine's life (the journal restores the counter after a restart).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from vajra.market.events import Side


class TimeInForce(enum.IntEnum):
    DAY = 0
    IOC = 1


class RejectReason(enum.IntEnum):
    """Why a venue refused a request (a Kite error type, or the simulated venue's reason)."""

    RATE_LIMITED = 1  # HTTP 429, or HTTP 200 with "Too many requests": retry after a cooldown
    PRICE_BAND = 2  # outside Limit Price Protection or the circuit band
    FREEZE_QTY = 3  # above the freeze quantity
    OFF_TICK = 4  # price not on the tick grid
    BAD_QTY = 5  # zero, negative, or not a multiple of the lot
    UNKNOWN_ORDER = 6  # modify/cancel of an order the venue does not know
    ALREADY_DONE = 7  # modify/cancel of an order already filled, cancelled or rejected
    TOO_MANY_MODIFICATIONS = 8  # Kite: at most 25 per order
    INPUT = 9  # any other InputException
    ORDER = 10  # any other OrderException
    TOKEN = 11  # session expired (TokenException)
    NETWORK = 12  # NetworkException or no answer


@dataclass(frozen=True, slots=True)
class PlaceRequest:
    client_id: int
    token: int
    side: Side  # Side.BID buys, Side.ASK sells
    price: int  # limit price in price units; never a bare MARKET order
    qty: int
    tif: TimeInForce = TimeInForce.DAY
    tag: str = ""  # Kite `tag`, at most 20 characters


@dataclass(frozen=True, slots=True)
class ModifyRequest:
    client_id: int
    price: int
    qty: int  # new total quantity (Kite semantics), not the remaining one


@dataclass(frozen=True, slots=True)
class CancelRequest:
    client_id: int


OrderRequest = PlaceRequest | ModifyRequest | CancelRequest


# -- what a venue answers (each carries the venue's event time, in the caller's clock) ---------


@dataclass(frozen=True, slots=True)
class Ack:
    """The order rests on the book (or was accepted: an IOC may fill or expire next)."""

    client_id: int
    venue_id: str
    t_ns: int


@dataclass(frozen=True, slots=True)
class Reject:
    """A place or modify refused. For a modify the order keeps its previous terms."""

    client_id: int
    reason: RejectReason
    message: str
    t_ns: int
    retry_after_ns: int = 0  # RATE_LIMITED: the venue's cooldown


@dataclass(frozen=True, slots=True)
class ModifyAck:
    client_id: int
    price: int
    qty: int  # the new total quantity
    t_ns: int


@dataclass(frozen=True, slots=True)
class Fill:
    client_id: int
    fill_id: str  # unique per venue: a repeated fill_id is a duplicate, applied once
    price: int
    qty: int  # this fill's quantity
    t_ns: int


@dataclass(frozen=True, slots=True)
class CancelAck:
    client_id: int
    t_ns: int


@dataclass(frozen=True, slots=True)
class CancelReject:
    """A cancel refused: usually ALREADY_DONE (filled meanwhile) or UNKNOWN_ORDER."""

    client_id: int
    reason: RejectReason
    message: str
    t_ns: int


@dataclass(frozen=True, slots=True)
class Expired:
    """The venue ended the order itself: an IOC's unfilled rest, or the end of the session."""

    client_id: int
    t_ns: int


VenueEvent = Ack | Reject | ModifyAck | Fill | CancelAck | CancelReject | Expired


class Venue(Protocol):
    """An order venue: the simulated NSE exchange or a broker adapter.

    `place`/`modify`/`cancel` hand a request over and return at once (the network or the
    simulated latency sits between the call and the answer); answers come back, in venue
    order, from `poll(now_ns)`. A request can be refused synchronously too: those refusals
    also come out of `poll`, so callers have one path for every answer.
    """

    name: str

    def place(self, req: PlaceRequest, now_ns: int) -> None: ...

    def modify(self, req: ModifyRequest, now_ns: int) -> None: ...

    def cancel(self, req: CancelRequest, now_ns: int) -> None: ...

    def poll(self, now_ns: int) -> list[VenueEvent]: ...
