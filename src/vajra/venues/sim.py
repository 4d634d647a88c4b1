"""The simulated NSE venue: the embedded default exchange behind the same `Venue` protocol as Kite.

Why a venue model and not "fill at the touch": passive limit orders are the whole strategy, so
what matters is *when* a resting order fills, which depends on where it sits in the queue at its
price. This venue keeps its own view of the market (the same `BookUpdate`/`Trade` events the
engine sees, fed through `on_market`) and places our orders in it virtually: the replayed or
synthetic market never sees them, and they fill when the market's own flow would have reached
them (hftbacktest's queue-position models, in their simplest form).

Sans-I/O and deterministic for a seed: no clock, no threads, no sockets. Time is the `now_ns` the
caller passes (non-decreasing across calls; an earlier value is read as the latest seen), and
one `random.Random` per stream (latency, error choices) makes every run of a seed identical.

Timeline of a request (all times in the caller's clock):

    place(req, now) --one-way latency--> arrives at the exchange at A: rate limit, checks,
        matching, resting; each answer is stamped t_ns = A (or the market event's time for a
        later fill) --one-way latency--> delivered by poll(now') once now' >= delivery time.

`in_order=True` (the default) models one connection each way: a request never overtakes an
earlier one and answers come back in exchange order (arrival = max(draw, previous arrival), and
the same for deliveries), so a latency spike also delays what queues behind it. With
`in_order=False` each message travels alone and may overtake (a Fill before its Ack, a cancel
before its place: UNKNOWN_ORDER), which is what a gateway must survive on a real broker.

Exchange rules (what the tests pin down):

- Arrival order: requests due at or before a market event's `now_ns` are processed first, at
  their own arrival times, against the book as it was then.
- Rate limit (Kite: 10 requests/s, 400/min for place+modify+cancel, 5,000 places/day): sliding
  windows over arrival times. Over a limit the request is refused with RATE_LIMITED and the
  venue enters a cooldown (`cooldown_ns`, 10 s) during which every request is refused, with
  `retry_after_ns` = the rest of the cooldown. The message is Kite's HTTP-200 body "Too many
  requests" or the HTTP 429 text, chosen by a seeded draw (`http200_share`), so both paths of
  a broker adapter get exercised. A rate-limited place creates no order (a later cancel of it
  is UNKNOWN_ORDER); the daily cap answers RATE_LIMITED with retry_after_ns = 0 (not today).
- Place checks, in order: known instrument and a tag of at most 20 characters (INPUT), a
  client id not used before (INPUT), qty a positive multiple of the lot (BAD_QTY), qty at most
  the freeze quantity (FREEZE_QTY), a positive price (INPUT) on the tick grid (OFF_TICK),
  inside the instrument's circuit band and inside Limit Price Protection (PRICE_BAND). A place
  refused by a check becomes a REJECTED order (a later cancel is ALREADY_DONE).
- Limit Price Protection (`PriceProtection`): reference = volume-weighted average trade price of
  the last 30 s of trades, else the mid (else no check); futures +-3 %, options +-Rs 20 up to a
  premium of Rs 50 else +-40 %, other segments unchecked unless `other_bp` is set.
- Matching at arrival: a limit order that crosses the best opposite price fills at once, up to
  the visible quantity at each level it crosses, at those levels' prices. What we take is
  remembered per level (`taken`: the replay does not know we took it) and is not available to
  later orders until the level is deleted; a level's `taken` never exceeds its quantity. The
  rest rests (DAY) or expires (IOC, `Expired`). An `Ack` always comes first.
- Queue position: a resting order joins the back of its price: `queue_ahead` = the visible
  quantity there on arrival (our own earlier orders at that price are ahead of it too, by time
  priority). A trade at our price (aggressor on the other side) consumes the queue ahead first,
  then fills us (partial fills); a trade at a price through ours (a sell printing below our
  bid, a buy above our ask) fills us at our price first, up to its quantity. A decrease of the
  visible quantity at our price without a trade is a cancel: `QueueModel.PRO_RATA` (default)
  takes it from ahead of us in proportion (qty ahead / level qty, rounded to whole lots so
  fills stay in lots), `AHEAD_FIRST` all from ahead (optimistic); either way queue_ahead never
  exceeds the level's quantity. An increase joins behind us. A trade is followed by the book
  update that removes its quantity (the synthetic feed and LOBSTER order): the venue takes the
  traded quantity off its view at the trade, so that update is not counted as a cancel.
  If the opposite side comes to our price or through it (the book, not a trade), the incoming
  quantity fills us at our price, best-priced of our orders first. Nothing matches against a
  view that is itself crossed or locked (a feed glitch, not a market).
- Cancels and modifies act at their arrival time: a fill that happened earlier wins (cancel of a
  filled order: CancelReject ALREADY_DONE; of a partly filled one: CancelAck for the rest).
  A modify takes the new total quantity (Kite), must stay above the filled quantity (ORDER),
  passes the place checks, and at most `max_modifications` (25) succeed per order
  (TOO_MANY_MODIFICATIONS). A new price or a larger quantity loses queue priority (back of the
  queue at the price, which may also cross and fill); a smaller quantity keeps it.
- Not modelled: self-trade prevention (our own opposite orders do not match each other; the
  gateway must not cross itself), hidden quantity, auctions.

Ownership: a `SimVenue` (and the `LatencyModel` it draws from) is owned by one thread, the one
that drives `OrderGateway`; it is not thread-safe.

Cost: `on_market` is O(levels in the update) plus O(our resting orders at the touched prices);
`poll` is O(events due * log pending) (a heap of deliveries).
"""

from __future__ import annotations

import enum
import heapq
import math
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from vajra.market.book import L2Book
from vajra.market.events import BookUpdate, Side, Trade
from vajra.market.instruments import Instrument, Segment
from vajra.venues.base import (
    Ack,
    CancelAck,
    CancelReject,
    CancelRequest,
    Expired,
    Fill,
    ModifyAck,
    ModifyRequest,
    OrderRequest,
    PlaceRequest,
    Reject,
    RejectReason,
    TimeInForce,
    VenueEvent,
)

SECOND_NS = 1_000_000_000
#: Kite's HTTP-200 error body message when over the rate limit, and the HTTP 429 text.
MSG_HTTP200_TOO_MANY = "Too many requests"
MSG_HTTP429 = "HTTP 429 Too Many Requests"
MSG_DAILY_LIMIT = "Daily order limit exceeded"
#: Kite rejects a `tag` longer than this.
MAX_TAG_LEN = 20

_BID, _ASK = Side.BID, Side.ASK
_NO_ASK = 1 << 62
#: Widest tick range walked level by level; wider ranges (sparse books) sort the keys instead.
_WALK_LIMIT = 4096


# -- latency -------------------------------------------------------------------------------------


class LatencyModel:
    """One-way latency: a log-normal body, a rare exponential tail, and spikes on demand.

    A draw is `median_ns * exp(sigma * N(0,1))`, plus, with probability `tail_prob`, an
    exponential extra of mean `tail_scale_ns`, plus the `extra_ns` of every spike whose
    [start_ns, end_ns) holds the send time. Defaults: a 4 ms one-way median (an ~8 ms REST round
    trip to Kite from a Mumbai cloud region), sigma 0.3, 1 % of messages ~8 ms slower; so the
    round trip rarely nears Sentinel's 20 ms lockdown unless a spike is injected
    (`spike(t, t + 2 s, 30 ms)`). `sigma == 0` and `tail_prob == 0` give a fixed latency
    (`LatencyModel.fixed`) that draws nothing from the generator.
    """

    __slots__ = ("_mu", "_spikes", "median_ns", "sigma", "tail_prob", "tail_scale_ns")

    def __init__(
        self,
        median_ns: int = 4_000_000,
        sigma: float = 0.3,
        tail_prob: float = 0.01,
        tail_scale_ns: int = 8_000_000,
    ) -> None:
        if median_ns < 0 or sigma < 0 or tail_scale_ns < 0:
            raise ValueError("latency median, sigma and tail scale must be >= 0")
        if not 0.0 <= tail_prob <= 1.0:
            raise ValueError("tail_prob must be within [0, 1]")
        if sigma > 0 and median_ns == 0:
            raise ValueError("a log-normal body needs a median > 0")
        self.median_ns = median_ns
        self.sigma = sigma
        self.tail_prob = tail_prob
        self.tail_scale_ns = tail_scale_ns
        self._mu = math.log(median_ns) if median_ns > 0 else 0.0
        self._spikes: list[tuple[int, int, int]] = []

    @classmethod
    def fixed(cls, ns: int) -> LatencyModel:
        return cls(ns, 0.0, 0.0, 0)

    def spike(self, start_ns: int, end_ns: int, extra_ns: int) -> None:
        """Add `extra_ns` to every one-way draw made at a time in [start_ns, end_ns)."""
        if end_ns <= start_ns or extra_ns < 0:
            raise ValueError("a spike needs start < end and extra >= 0")
        self._spikes.append((start_ns, end_ns, extra_ns))

    def clear_spikes(self) -> None:
        self._spikes.clear()

    def extra_at(self, t_ns: int) -> int:
        return sum(x for s, e, x in self._spikes if s <= t_ns < e)

    def draw(self, rng: random.Random, t_ns: int) -> int:
        """One one-way latency (ns) for a message sent at `t_ns`."""
        if self.sigma > 0:
            ns = int(rng.lognormvariate(self._mu, self.sigma))
        else:
            ns = self.median_ns
        if self.tail_prob > 0 and rng.random() < self.tail_prob:
            ns += int(rng.expovariate(1.0) * self.tail_scale_ns)
        if self._spikes:
            ns += self.extra_at(t_ns)
        return ns


# -- configuration -------------------------------------------------------------------------------


class QueueModel(enum.IntEnum):
    """Where a cancel at our price (a level decrease with no trade) came from."""

    PRO_RATA = 1  # from ahead of us in proportion to the quantity ahead
    AHEAD_FIRST = 2  # all from ahead of us (optimistic)


@dataclass(frozen=True, slots=True)
class PriceProtection:
    """NSE Limit Price Protection bands (reference §5), around the volume-weighted average trade
    price of the last `window_ns` (the mid when there were no trades; no check without either).
    Widths in basis points of the reference, or in currency units scaled by the instrument's
    price scale. `other_bp` = 0 leaves segments other than NFO futures/options unchecked."""

    window_ns: int = 30 * SECOND_NS
    futures_bp: int = 300  # +-3 %
    option_abs: int = 20  # +-Rs 20 ...
    option_abs_upto: int = 50  # ... while the reference premium is <= Rs 50
    option_bp: int = 4000  # else +-40 %
    other_bp: int = 0

    def width(self, inst: Instrument, ref: int) -> int:
        """Half-width of the band around `ref` in price units; -1 when there is no band."""
        seg = inst.segment
        if seg is Segment.NFO_FUT:
            return ref * self.futures_bp // 10_000
        if seg is Segment.NFO_OPT:
            if ref <= self.option_abs_upto * inst.price_scale:
                return self.option_abs * inst.price_scale
            return ref * self.option_bp // 10_000
        if self.other_bp:
            return ref * self.other_bp // 10_000
        return -1


class OrderStatus(enum.IntEnum):
    OPEN = 1
    FILLED = 2
    CANCELLED = 3
    EXPIRED = 4
    REJECTED = 5


@dataclass(frozen=True, slots=True)
class SimOrder:
    """A read-only view of one order at the exchange (tests, tools, the dashboard)."""

    client_id: int
    venue_id: str
    token: int
    side: Side
    price: int
    qty: int
    filled: int
    status: OrderStatus
    queue_ahead: int
    modifications: int


@dataclass(slots=True)
class SimStats:
    """Counters, by what happened at the exchange (not by delivery)."""

    requests: int = 0  # place + modify + cancel requests arrived
    orders: int = 0  # place requests arrived
    acks: int = 0
    modifies: int = 0  # ModifyAck
    cancels: int = 0  # CancelAck
    fills: int = 0
    filled_qty: int = 0
    expired: int = 0
    rejects: dict[RejectReason, int] = field(
        default_factory=lambda: dict.fromkeys(RejectReason, 0)
    )  # place and modify rejects
    cancel_rejects: dict[RejectReason, int] = field(
        default_factory=lambda: dict.fromkeys(RejectReason, 0)
    )

    def as_dict(self) -> dict[str, int]:
        out = {
            "requests": self.requests,
            "orders": self.orders,
            "acks": self.acks,
            "modifies": self.modifies,
            "cancels": self.cancels,
            "fills": self.fills,
            "filled_qty": self.filled_qty,
            "expired": self.expired,
        }
        for r, n in self.rejects.items():
            out[f"rejects.{r.name}"] = n
        for r, n in self.cancel_rejects.items():
            out[f"cancel_rejects.{r.name}"] = n
        return out


# -- internal state ------------------------------------------------------------------------------


class _Order:
    __slots__ = (
        "ahead",
        "cid",
        "filled",
        "mods",
        "nfills",
        "price",
        "qty",
        "side",
        "status",
        "tick",
        "tif",
        "token",
        "vid",
    )

    def __init__(self, r: PlaceRequest, vid: str, tick: int, status: OrderStatus) -> None:
        self.cid = r.client_id
        self.vid = vid
        self.token = r.token
        self.side = r.side
        self.price = r.price
        self.tick = r.price // tick
        self.qty = r.qty
        self.tif = r.tif
        self.filled = 0
        self.ahead = 0
        self.mods = 0
        self.nfills = 0
        self.status = status


class _Market:
    """One instrument: the venue's view of the market and our resting orders in it."""

    __slots__ = (
        "book",
        "inst",
        "our_asks",
        "our_bids",
        "taken_a",
        "taken_b",
        "tick",
        "top_ask",
        "top_bid",
        "tpq",
        "tq",
        "trades",
    )

    def __init__(self, inst: Instrument) -> None:
        self.inst = inst
        self.tick = inst.tick
        self.book = L2Book(inst)
        #: quantity we took from a level of the view (the replay does not know), by tick
        self.taken_b: dict[int, int] = {}
        self.taken_a: dict[int, int] = {}
        #: our resting orders by tick, each list in time priority
        self.our_bids: dict[int, list[_Order]] = {}
        self.our_asks: dict[int, list[_Order]] = {}
        self.top_bid = 0  # our highest resting bid tick; 0: none
        self.top_ask = _NO_ASK  # our lowest resting ask tick
        #: trades in the LPP window: (t_ns, price, qty), and the running sums
        self.trades: deque[tuple[int, int, int]] = deque()
        self.tpq = 0
        self.tq = 0

    def refresh_tops(self) -> None:
        self.top_bid = max(self.our_bids) if self.our_bids else 0
        self.top_ask = min(self.our_asks) if self.our_asks else _NO_ASK


def _ticks_between(levels: dict[int, int], lo: int, hi: int, descending: bool) -> list[int]:
    """The ticks of `levels` within [lo, hi], sorted (best first for the side)."""
    if hi < lo:
        return []
    if hi - lo <= _WALK_LIMIT:
        rng = range(hi, lo - 1, -1) if descending else range(lo, hi + 1)
        return [t for t in rng if t in levels]
    return sorted((t for t in levels if lo <= t <= hi), reverse=descending)


# -- the venue -----------------------------------------------------------------------------------


class SimVenue:
    """The simulated NSE exchange (and broker API in front of it): see the module docstring.

    Drive it with `on_market(ev, now_ns)` for every market event (the same stream the engine
    sees, in order) and `place`/`modify`/`cancel`/`poll` from the gateway. `end_session(now_ns)`
    expires what still rests.
    """

    name: str = "sim"

    def __init__(
        self,
        instruments: Iterable[Instrument],
        *,
        latency: LatencyModel,
        seed: int,
        rate_limit_per_s: int = 10,
        rate_limit_per_min: int = 400,
        daily_order_limit: int = 5_000,
        cooldown_ns: int = 10 * SECOND_NS,
        max_modifications: int = 25,
        price_protection: PriceProtection | None = None,
        queue_model: QueueModel = QueueModel.PRO_RATA,
        http200_share: float = 0.5,
        in_order: bool = True,
    ) -> None:
        """`price_protection=None` uses the default `PriceProtection()`; pass
        `PriceProtection(futures_bp=...)` to change the bands. To switch LPP off, give bands
        wide enough (e.g. `futures_bp=10_000`)."""
        if not isinstance(seed, int):
            raise TypeError("seed must be an int")
        if rate_limit_per_s <= 0 or rate_limit_per_min <= 0 or daily_order_limit <= 0:
            raise ValueError("rate limits must be > 0")
        if not 0.0 <= http200_share <= 1.0:
            raise ValueError("http200_share must be within [0, 1]")
        self.latency = latency
        self.seed = seed
        self.rate_limit_per_s = rate_limit_per_s
        self.rate_limit_per_min = rate_limit_per_min
        self.daily_order_limit = daily_order_limit
        self.cooldown_ns = cooldown_ns
        self.max_modifications = max_modifications
        self.price_protection = price_protection or PriceProtection()
        self.queue_model = queue_model
        self.http200_share = http200_share
        self.in_order = in_order
        self.stats = SimStats()
        self._mkts: dict[int, _Market] = {i.token: _Market(i) for i in instruments}
        self._orders: dict[int, _Order] = {}
        self._rng_lat = random.Random(seed)
        self._outbox: list[tuple[OrderRequest, int]] = []
        self._rng_err = random.Random(seed ^ 0x5EED_E770)
        self._arrivals: list[tuple[int, int, OrderRequest]] = []
        self._deliveries: list[tuple[int, int, VenueEvent]] = []
        self._seq = 0
        self._clock = -(1 << 62)  # latest now_ns seen
        self._last_arrival = -(1 << 62)
        self._last_delivery = -(1 << 62)
        self._vid = 0
        self._win_s: deque[int] = deque()
        self._win_m: deque[int] = deque()
        self._day_orders = 0
        self._cooldown_until = -(1 << 62)

    # -- the Venue protocol ---------------------------------------------------------------------

    # A request is handed over in O(1) (an append to the outbox, as a live adapter hands it to
    # its sender); its latency is drawn, in hand-over order, the next time the venue runs.
    def place(self, req: PlaceRequest, now_ns: int) -> None:
        self._outbox.append((req, now_ns))

    def modify(self, req: ModifyRequest, now_ns: int) -> None:
        self._outbox.append((req, now_ns))

    def cancel(self, req: CancelRequest, now_ns: int) -> None:
        self._outbox.append((req, now_ns))

    def poll(self, now_ns: int) -> list[VenueEvent]:
        """Every answer whose delivery time is <= now_ns, in delivery order (requests due by
        then are processed at the exchange first)."""
        self._advance(now_ns)
        heap = self._deliveries
        out: list[VenueEvent] = []
        while heap and heap[0][0] <= now_ns:
            out.append(heapq.heappop(heap)[2])
        return out

    # -- the market -----------------------------------------------------------------------------

    def on_market(self, ev: object, now_ns: int) -> None:
        """Feed one market event (BookUpdate or Trade; others are ignored) as it happens at the
        exchange at `now_ns`. Requests arriving at or before `now_ns` are handled first."""
        self._advance(now_ns)
        t = self._clock
        if isinstance(ev, BookUpdate):
            m = self._mkts.get(ev.token)
            if m is not None:
                self._on_book(m, ev, t)
        elif isinstance(ev, Trade):
            m = self._mkts.get(ev.token)
            if m is not None:
                self._on_trade(m, ev, t)

    def end_session(self, now_ns: int) -> None:
        """The session closes: every resting order expires (Expired, after the latency)."""
        self._advance(now_ns)
        t = self._clock
        for m in self._mkts.values():
            for side in (m.our_bids, m.our_asks):
                for level in side.values():
                    for o in level:
                        o.status = OrderStatus.EXPIRED
                        self.stats.expired += 1
                        self._emit(Expired(o.cid, t), t)
                side.clear()
            m.refresh_tops()

    # -- introspection --------------------------------------------------------------------------

    def order(self, client_id: int) -> SimOrder | None:
        o = self._orders.get(client_id)
        if o is None:
            return None
        return SimOrder(
            o.cid, o.vid, o.token, o.side, o.price, o.qty, o.filled, o.status, o.ahead, o.mods
        )

    def open_orders(self) -> list[SimOrder]:
        out = []
        for cid, o in self._orders.items():
            if o.status is OrderStatus.OPEN:
                v = self.order(cid)
                assert v is not None
                out.append(v)
        return out

    def book(self, token: int) -> L2Book:
        """The venue's own view of the market for `token` (without our orders)."""
        return self._mkts[token].book

    def reference_price(self, token: int, now_ns: int) -> int:
        """The LPP reference at `now_ns` (0 when there is none)."""
        return self._ref_price(self._mkts[token], now_ns)

    @property
    def pending_requests(self) -> int:
        return len(self._arrivals) + len(self._outbox)

    @property
    def pending_events(self) -> int:
        return len(self._deliveries)

    @property
    def cooldown_until_ns(self) -> int:
        return self._cooldown_until

    # -- transport ------------------------------------------------------------------------------

    def _tick_clock(self, now_ns: int) -> int:
        if now_ns > self._clock:
            self._clock = now_ns
        return self._clock

    def _send(self, req: OrderRequest, now_ns: int) -> None:
        t = self._tick_clock(now_ns)
        at = t + self.latency.draw(self._rng_lat, t)
        if self.in_order:
            if at < self._last_arrival:
                at = self._last_arrival
            self._last_arrival = at
        self._seq += 1
        heapq.heappush(self._arrivals, (at, self._seq, req))

    def _emit(self, ev: VenueEvent, t: int) -> None:
        due = t + self.latency.draw(self._rng_lat, t)
        if self.in_order:
            if due < self._last_delivery:
                due = self._last_delivery
            self._last_delivery = due
        self._seq += 1
        heapq.heappush(self._deliveries, (due, self._seq, ev))

    def _advance(self, now_ns: int) -> None:
        out = self._outbox
        if out:
            for req, sent_ns in out:
                self._send(req, sent_ns)
            out.clear()
        heap = self._arrivals
        while heap and heap[0][0] <= now_ns:
            at, _, req = heapq.heappop(heap)
            self._tick_clock(at)
            self._arrive(req, at)
        self._tick_clock(now_ns)

    # -- the exchange: requests -----------------------------------------------------------------

    def _arrive(self, req: OrderRequest, t: int) -> None:
        self.stats.requests += 1
        if isinstance(req, PlaceRequest):
            self._on_place(req, t)
        elif isinstance(req, ModifyRequest):
            self._on_modify(req, t)
        else:
            self._on_cancel(req, t)

    def _rate_check(self, t: int, place: bool) -> tuple[int, str] | None:
        """None when the request is within the limits (and counts it); else (retry_after_ns,
        message)."""
        if t < self._cooldown_until:
            return self._cooldown_until - t, self._too_many()
        ws, wm = self._win_s, self._win_m
        while ws and ws[0] <= t - SECOND_NS:
            ws.popleft()
        while wm and wm[0] <= t - 60 * SECOND_NS:
            wm.popleft()
        if len(ws) >= self.rate_limit_per_s or len(wm) >= self.rate_limit_per_min:
            self._cooldown_until = t + self.cooldown_ns
            return self.cooldown_ns, self._too_many()
        if place and self._day_orders >= self.daily_order_limit:
            return 0, MSG_DAILY_LIMIT
        ws.append(t)
        wm.append(t)
        if place:
            self._day_orders += 1
        return None

    def _too_many(self) -> str:
        if self._rng_err.random() < self.http200_share:
            return MSG_HTTP200_TOO_MANY
        return MSG_HTTP429

    def _reject(
        self, cid: int, reason: RejectReason, msg: str, t: int, retry_after_ns: int = 0
    ) -> None:
        self.stats.rejects[reason] += 1
        self._emit(Reject(cid, reason, msg, t, retry_after_ns), t)

    def _check_terms(
        self, m: _Market, price: int, qty: int, t: int
    ) -> tuple[RejectReason, str] | None:
        inst = m.inst
        if qty <= 0 or qty % inst.lot:
            return RejectReason.BAD_QTY, f"quantity {qty} is not a positive multiple of {inst.lot}"
        if inst.freeze_qty and qty > inst.freeze_qty:
            return RejectReason.FREEZE_QTY, f"quantity {qty} above the freeze {inst.freeze_qty}"
        if price <= 0:
            return RejectReason.INPUT, f"price {price} must be positive"
        if price % inst.tick:
            return RejectReason.OFF_TICK, f"price {price} is not a multiple of the tick {inst.tick}"
        if (inst.band_low and price < inst.band_low) or (inst.band_high and price > inst.band_high):
            return RejectReason.PRICE_BAND, f"price {price} outside the circuit band"
        ref = self._ref_price(m, t)
        if ref > 0:
            w = self.price_protection.width(inst, ref)
            if w >= 0 and not ref - w <= price <= ref + w:
                return (
                    RejectReason.PRICE_BAND,
                    f"price {price} outside Limit Price Protection [{ref - w}, {ref + w}]",
                )
        return None

    def _on_place(self, r: PlaceRequest, t: int) -> None:
        self.stats.orders += 1
        limited = self._rate_check(t, place=True)
        if limited is not None:
            self._reject(r.client_id, RejectReason.RATE_LIMITED, limited[1], t, limited[0])
            return
        m = self._mkts.get(r.token)
        if m is None:
            self._reject(r.client_id, RejectReason.INPUT, f"unknown instrument {r.token}", t)
            return
        if r.client_id in self._orders:
            self._reject(r.client_id, RejectReason.INPUT, "duplicate client order id", t)
            return
        self._vid += 1
        vid = f"SIM{self._vid:012d}"
        bad: tuple[RejectReason, str] | None
        if len(r.tag) > MAX_TAG_LEN:
            bad = RejectReason.INPUT, f"tag longer than {MAX_TAG_LEN} characters"
        else:
            bad = self._check_terms(m, r.price, r.qty, t)
        if bad is not None:
            self._orders[r.client_id] = _Order(r, vid, m.tick, OrderStatus.REJECTED)
            self._reject(r.client_id, bad[0], bad[1], t)
            return
        o = _Order(r, vid, m.tick, OrderStatus.OPEN)
        self._orders[r.client_id] = o
        self.stats.acks += 1
        self._emit(Ack(o.cid, vid, t), t)
        self._take(m, o, t)
        if o.status is OrderStatus.OPEN:
            if o.tif is TimeInForce.IOC:
                o.status = OrderStatus.EXPIRED
                self.stats.expired += 1
                self._emit(Expired(o.cid, t), t)
            else:
                self._rest(m, o)

    def _on_modify(self, r: ModifyRequest, t: int) -> None:
        limited = self._rate_check(t, place=False)
        if limited is not None:
            self._reject(r.client_id, RejectReason.RATE_LIMITED, limited[1], t, limited[0])
            return
        o = self._orders.get(r.client_id)
        if o is None:
            self._reject(r.client_id, RejectReason.UNKNOWN_ORDER, "order not found", t)
            return
        if o.status is not OrderStatus.OPEN:
            self._reject(r.client_id, RejectReason.ALREADY_DONE, f"order is {o.status.name}", t)
            return
        if o.mods >= self.max_modifications:
            self._reject(
                r.client_id,
                RejectReason.TOO_MANY_MODIFICATIONS,
                f"at most {self.max_modifications} modifications per order",
                t,
            )
            return
        m = self._mkts[o.token]
        bad = self._check_terms(m, r.price, r.qty, t)
        if bad is not None:
            self._reject(r.client_id, bad[0], bad[1], t)
            return
        if r.qty <= o.filled:
            self._reject(
                r.client_id, RejectReason.ORDER, f"quantity {r.qty} not above filled {o.filled}", t
            )
            return
        o.mods += 1
        self.stats.modifies += 1
        if r.price != o.price or r.qty > o.qty:  # NSE: loses time priority
            self._unrest(m, o)
            o.price = r.price
            o.tick = r.price // m.tick
            o.qty = r.qty
            self._emit(ModifyAck(o.cid, o.price, o.qty, t), t)
            self._take(m, o, t)
            if o.status is OrderStatus.OPEN:
                self._rest(m, o)
        else:  # a smaller quantity at the same price keeps its place
            o.qty = r.qty
            self._emit(ModifyAck(o.cid, o.price, o.qty, t), t)

    def _on_cancel(self, r: CancelRequest, t: int) -> None:
        limited = self._rate_check(t, place=False)
        if limited is not None:
            self._cancel_reject(r.client_id, RejectReason.RATE_LIMITED, limited[1], t)
            return
        o = self._orders.get(r.client_id)
        if o is None:
            self._cancel_reject(r.client_id, RejectReason.UNKNOWN_ORDER, "order not found", t)
            return
        if o.status is not OrderStatus.OPEN:
            self._cancel_reject(
                r.client_id, RejectReason.ALREADY_DONE, f"order is {o.status.name}", t
            )
            return
        self._unrest(self._mkts[o.token], o)
        o.status = OrderStatus.CANCELLED
        self.stats.cancels += 1
        self._emit(CancelAck(o.cid, t), t)

    def _cancel_reject(self, cid: int, reason: RejectReason, msg: str, t: int) -> None:
        self.stats.cancel_rejects[reason] += 1
        self._emit(CancelReject(cid, reason, msg, t), t)

    # -- the exchange: matching -----------------------------------------------------------------

    def _fill(self, o: _Order, qty: int, price: int, t: int) -> None:
        o.filled += qty
        o.nfills += 1
        if o.filled >= o.qty:
            o.status = OrderStatus.FILLED
        self.stats.fills += 1
        self.stats.filled_qty += qty
        self._emit(Fill(o.cid, f"{o.vid}-{o.nfills}", price, qty, t), t)

    def _take(self, m: _Market, o: _Order, t: int) -> None:
        """An arriving (or re-priced) order as the aggressor: fill against the visible opposite
        levels up to its limit, at their prices, and remember what it took."""
        book, tick = m.book, m.tick
        if o.side is _BID:
            best = book.best_ask()
            if not best or best > o.tick:
                return
            levels, taken, ticks = (
                book.asks,
                m.taken_a,
                _ticks_between(book.asks, best, o.tick, False),
            )
        else:
            best = book.best_bid()
            if not best or best < o.tick:
                return
            levels, taken, ticks = (
                book.bids,
                m.taken_b,
                _ticks_between(book.bids, o.tick, best, True),
            )
        for tk in ticks:
            avail = levels[tk] - taken.get(tk, 0)
            if avail <= 0:
                continue
            f = min(o.qty - o.filled, avail)
            taken[tk] = taken.get(tk, 0) + f
            self._fill(o, f, tk * tick, t)
            if o.status is not OrderStatus.OPEN:
                return

    def _rest(self, m: _Market, o: _Order) -> None:
        if o.side is _BID:
            o.ahead = m.book.bids.get(o.tick, 0)
            m.our_bids.setdefault(o.tick, []).append(o)
            if o.tick > m.top_bid:
                m.top_bid = o.tick
        else:
            o.ahead = m.book.asks.get(o.tick, 0)
            m.our_asks.setdefault(o.tick, []).append(o)
            if o.tick < m.top_ask:
                m.top_ask = o.tick

    def _unrest(self, m: _Market, o: _Order) -> None:
        side = m.our_bids if o.side is _BID else m.our_asks
        level = side.get(o.tick)
        if level is not None and o in level:
            level.remove(o)
            if not level:
                del side[o.tick]
                m.refresh_tops()

    def _prune(self, m: _Market, side: dict[int, list[_Order]], tk: int) -> None:
        """Drop the finished orders of one level (after fills)."""
        level = side[tk]
        live = [o for o in level if o.status is OrderStatus.OPEN]
        if len(live) != len(level):
            if live:
                side[tk] = live
            else:
                del side[tk]
                m.refresh_tops()

    # -- the exchange: market events ------------------------------------------------------------

    def _cancelled(self, level: list[_Order], old: int, new: int, lot: int) -> None:
        """The visible quantity at our price fell from `old` to `new` with no trade: cancels.

        PRO_RATA takes d * ahead / old of them from ahead of us, rounded to the nearest whole
        lot (derivative orders are whole lots, so the queue stays in lots and fills do too)."""
        if new < 0 or new >= old:
            return
        d = old - new
        pro_rata = self.queue_model is QueueModel.PRO_RATA
        den = 2 * old * lot
        for o in level:
            a = o.ahead
            if a:
                a -= (2 * d * a + old * lot) // den * lot if pro_rata else d
                o.ahead = 0 if a < 0 else (new if a > new else a)

    def _on_book(self, m: _Market, u: BookUpdate, t: int) -> None:
        book, lot = m.book, m.inst.lot
        for ours, changed, have in (
            (m.our_bids, u.bids, book.bids),
            (m.our_asks, u.asks, book.asks),
        ):
            if not ours:
                continue
            if u.snapshot:
                new = dict(changed)
                for tk, lv in ours.items():
                    self._cancelled(lv, have.get(tk, 0), new.get(tk, 0), lot)
            else:
                for tk, q in changed:
                    level = ours.get(tk)
                    if level is not None:
                        self._cancelled(level, have.get(tk, 0), q, lot)
        book.apply(u)
        for taken, levels, changed in (
            (m.taken_b, book.bids, u.bids),
            (m.taken_a, book.asks, u.asks),
        ):
            if not taken:
                continue
            keys = list(taken) if u.snapshot else [tk for tk, _ in changed if tk in taken]
            for tk in keys:
                q = levels.get(tk, 0)
                if q <= 0:
                    del taken[tk]
                elif taken[tk] > q:
                    taken[tk] = q
        if book.state == 0:
            if m.our_bids:
                ba = book.best_ask()
                if ba and ba <= m.top_bid:
                    self._crossed(m, _BID, ba, t)
            if m.our_asks:
                bb = book.best_bid()
                if bb and bb >= m.top_ask:
                    self._crossed(m, _ASK, bb, t)

    def _crossed(self, m: _Market, side: Side, best_opp: int, t: int) -> None:
        """The opposite side reached our resting price(s): the incoming quantity (the visible
        quantity not already taken) fills our orders at our prices, best-priced first."""
        book = m.book
        if side is _BID:
            ours, levels, taken = m.our_bids, book.asks, m.taken_a
            opp = _ticks_between(levels, best_opp, m.top_bid, False)
            mine = sorted((tk for tk in ours if tk >= best_opp), reverse=True)
        else:
            ours, levels, taken = m.our_asks, book.bids, m.taken_b
            opp = _ticks_between(levels, m.top_ask, best_opp, True)
            mine = sorted(tk for tk in ours if tk <= best_opp)
        supply = [[tk, levels[tk] - taken.get(tk, 0)] for tk in opp]
        supply = [s for s in supply if s[1] > 0]
        if not supply:
            return
        for mt in mine:
            for o in ours[mt]:
                for s in supply:
                    tk, av = s
                    if (tk > mt) if side is _BID else (tk < mt):
                        break
                    if av <= 0:
                        continue
                    f = min(o.qty - o.filled, av)
                    s[1] = av - f
                    taken[tk] = taken.get(tk, 0) + f
                    o.ahead = 0
                    self._fill(o, f, o.price, t)
                    if o.status is not OrderStatus.OPEN:
                        break
            self._prune(m, ours, mt)

    def _on_trade(self, m: _Market, tr: Trade, t: int) -> None:
        # LPP window
        w = m.trades
        w.append((t, tr.price, tr.qty))
        m.tpq += tr.price * tr.qty
        m.tq += tr.qty
        self._evict(m, t)
        tk = tr.price // m.tick
        book = m.book
        if tr.aggressor is _BID:  # a buyer lifted the ask at tk
            levels, taken, ours = book.asks, m.taken_a, m.our_asks
            hit = bool(ours) and m.top_ask <= tk
        else:
            levels, taken, ours = book.bids, m.taken_b, m.our_bids
            hit = bool(ours) and m.top_bid >= tk
        if hit:
            self._traded(m, tr.aggressor, tk, tr.qty, t)
        q = levels.get(tk)
        if q:  # the view's level loses what traded, so the following update is not a cancel
            nq = q - tr.qty
            if nq > 0:
                levels[tk] = nq
                if taken.get(tk, 0) > nq:
                    taken[tk] = nq
            else:
                taken.pop(tk, None)
                if tr.aggressor is _BID:
                    book.apply(BookUpdate(tr.token, tr.recv_ns, tr.exch_ns, (), ((tk, 0),)))
                else:
                    book.apply(BookUpdate(tr.token, tr.recv_ns, tr.exch_ns, ((tk, 0),), ()))

    def _traded(self, m: _Market, aggressor: Side, tk: int, v: int, t: int) -> None:
        """A trade of `v` at tick `tk`: fill our orders priced through it first (best first, at
        our price), then advance the queue at `tk` and fill what the volume reaches."""
        if aggressor is _BID:
            ours = m.our_asks
            mine = sorted(x for x in ours if x <= tk)
        else:
            ours = m.our_bids
            mine = sorted((x for x in ours if x >= tk), reverse=True)
        for mt in mine:
            level = ours[mt]
            if mt != tk:  # traded through our price: we were first in line
                for o in level:
                    o.ahead = 0
                    if v:
                        f = min(o.qty - o.filled, v)
                        v -= f
                        self._fill(o, f, o.price, t)
            else:
                consumed = 0  # market quantity ahead of us that the trade took
                for o in level:
                    if not v:
                        break
                    need = o.ahead - consumed
                    if need > 0:
                        take = min(v, need)
                        consumed += take
                        v -= take
                        if not v:
                            break
                    f = min(o.qty - o.filled, v)
                    v -= f
                    self._fill(o, f, o.price, t)
                if consumed:
                    for o in level:
                        o.ahead = max(0, o.ahead - consumed)
            self._prune(m, ours, mt)

    def _evict(self, m: _Market, t: int) -> None:
        w = m.trades
        cutoff = t - self.price_protection.window_ns
        while w and w[0][0] <= cutoff:
            _, px, q = w.popleft()
            m.tpq -= px * q
            m.tq -= q

    def _ref_price(self, m: _Market, t: int) -> int:
        self._evict(m, t)
        if m.tq > 0:
            return m.tpq // m.tq
        bb, ba = m.book.best_bid(), m.book.best_ask()
        if bb and ba:
            return (bb + ba) * m.tick // 2
        return (bb or ba) * m.tick
