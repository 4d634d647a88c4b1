"""The hand-offs between the engine's modules, for either topology, behind one set of closures.

The module loops (`vajra.engine.engine`) call `push`, `take`, `answer` and never know whether
the other side is a thread of the same process or another process:

| hand-off                     | `threads`                         | `processes`                     |
|------------------------------|-----------------------------------|---------------------------------|
| feed -> Oracle, feed -> venue | a `deque` each + a count word     | a frame ring each, events wired |
| feed -> Execution (trades)   | a `deque` of (price, qty)         | a frame ring of (price, qty)    |
| Oracle -> Execution (Signals)| the `signals` shm ring            | the same ring                   |
| Execution <-> venue (orders) | `VenueLink` (two deques)          | `ShmVenueLink` (two frame rings)|

Why deques in one process and not the rings everywhere: within a process the event object
itself can be handed over (a pointer), while a ring needs it encoded and decoded (`vajra.market
.wire`, ~3-10 µs per book update each way): that cost is what the `processes` topology pays,
and what the e2e benchmark's variant (b) measures. The count words (`vajra.engine.state.FLAGS`)
keep idle polls off the deque both threads hold (3.13t: a shared object's refcount line bounces).

Each closure set belongs to one thread: it holds that thread's own memoryviews and endpoints.
"""

from __future__ import annotations

import collections
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from vajra.market.wire import decode_event, encode_event
from vajra.shm.frames import FrameReader, FrameWriter
from vajra.shm.ring import Ring
from vajra.venues.base import CancelRequest, ModifyRequest, PlaceRequest, VenueEvent
from vajra.venues.wire import decode_answer, decode_request, encode_answer, encode_request

Request = PlaceRequest | ModifyRequest | CancelRequest

#: ring name -> (slots, slot bytes) of the `processes` topology's rings. Market frames: a
#: 20-level Binance diff is ~700 bytes, so 1 KiB slots carry nearly every event in one slot.
RINGS = {
    "market.oracle": (4096, 1024),
    "market.venue": (4096, 1024),
    "market.trades": (4096, 24),
    "orders": (1024, 120),
    "answers": (1024, 120),
}
_TRADE = struct.Struct("<qq")


class Shared:
    """The deques of the `threads` topology (one producer, one consumer each)."""

    def __init__(self) -> None:
        self.oracle_q: collections.deque[object] = collections.deque()
        self.venue_q: collections.deque[object] = collections.deque()
        self.trades_q: collections.deque[tuple[int, int]] = collections.deque()
        self.requests: collections.deque[tuple[Request, int]] = collections.deque()
        self.answers: collections.deque[VenueEvent] = collections.deque()


@dataclass(slots=True)
class FeedOut:
    """The feed's end. `push(ev)` hands an event to the Oracle and the venue and returns False
    only if `stop` said so while the hand-off waited for room; `trade(price, qty)` tells
    Execution; `ahead()` is how many events the Oracle has not taken; `idle()` is True when
    the Oracle and the venue have taken everything."""

    push: Callable[[object], bool]
    trade: Callable[[int, int], None]
    ahead: Callable[[], int]
    idle: Callable[[], bool]
    close: Callable[[], None]


@dataclass(slots=True)
class Taker:
    """A consumer's end: `take()` is the next item or None (idle cost: one shared load)."""

    take: Callable[[], object | None]
    close: Callable[[], None]


def _nothing() -> None:
    return None


# -- threads -------------------------------------------------------------------------------------


def feed_out_threads(
    sh: Shared, q: memoryview, released_w: int, trades_w: int, stop: Callable[[], bool]
) -> FeedOut:
    oracle_q, venue_q, trades_q = sh.oracle_q, sh.venue_q, sh.trades_q
    oappend, vappend, tappend = oracle_q.append, venue_q.append, trades_q.append
    n = q[released_w]
    trades = q[trades_w]

    def push(ev: object) -> bool:
        nonlocal n
        oappend(ev)
        vappend(ev)
        n += 1
        q[released_w] = n  # after both appends: the consumers may take it now
        return True

    def trade(price: int, qty: int) -> None:
        nonlocal trades
        tappend((price, qty))
        trades += 1
        q[trades_w] = trades

    def ahead() -> int:
        return len(oracle_q)

    def idle() -> bool:
        return not oracle_q and not venue_q

    return FeedOut(push, trade, ahead, idle, _nothing)


def taker_threads(dq: collections.deque[object], q: memoryview, count_w: int) -> Taker:
    """Pops `dq` when the producer's count word moved (the deque itself is not polled)."""
    pop = dq.popleft
    n = 0

    def take() -> object | None:
        nonlocal n
        if q[count_w] != n:
            n += 1
            return pop()
        return None

    return Taker(take, _nothing)


class VenueLink:
    """Execution's end of a venue on another thread: the `vajra.venues.base.Venue` protocol over
    two deques, so the gateway cannot tell it from the venue itself (or from Kite). Each side
    bumps a count word after a hand-off; the other side looks at the deque only when the count
    moved. The answers cross a thread, so the RTT Execution measures includes that hop, as a live
    adapter's includes the network stack."""

    __slots__ = ("_answers_w", "_q", "_requests_w", "_seen", "_sent", "answers", "name", "requests")

    def __init__(self, sh: Shared, name: str = "sim") -> None:
        self.name = name
        self.requests = sh.requests
        self.answers = sh.answers
        self._q: memoryview | None = None
        self._answers_w = self._requests_w = 0
        self._seen = self._sent = 0

    def attach(self, q: memoryview, answers_w: int, requests_w: int) -> None:
        """From the Execution thread, with its own 'q' view of the flags words."""
        self._q = q
        self._answers_w = answers_w
        self._requests_w = requests_w

    def _send(self, req: Request, now_ns: int) -> None:
        self.requests.append((req, now_ns))
        self._sent += 1
        q = self._q
        if q is not None:
            q[self._requests_w] = self._sent

    def place(self, req: PlaceRequest, now_ns: int) -> None:
        self._send(req, now_ns)

    def modify(self, req: ModifyRequest, now_ns: int) -> None:
        self._send(req, now_ns)

    def cancel(self, req: CancelRequest, now_ns: int) -> None:
        self._send(req, now_ns)

    def poll(self, now_ns: int) -> list[VenueEvent]:
        """Every answer the venue thread has delivered by now (in its order). Cost when there
        is none: one shared-memory load and a compare."""
        q = self._q
        if q is not None and q[self._answers_w] == self._seen:
            return _NONE
        a = self.answers
        out = []
        pop = a.popleft
        while a:
            out.append(pop())
        self._seen += len(out)
        return out

    def close(self) -> None:
        return None


@dataclass(slots=True)
class VenueIn:
    """The venue's end of the order link: `request()` is the next (request, sent_ns) or None;
    `answer(events)` hands answers to Execution."""

    request: Callable[[], tuple[Request, int] | None]
    answer: Callable[[list[VenueEvent]], None]
    close: Callable[[], None]


def venue_in_threads(sh: Shared, q: memoryview, requests_w: int, answers_w: int) -> VenueIn:
    requests, answers = sh.requests, sh.answers
    rpop = requests.popleft
    taken = answered = 0

    def request() -> tuple[Request, int] | None:
        nonlocal taken
        if q[requests_w] != taken:
            taken += 1
            return rpop()
        return None

    def answer(out: list[VenueEvent]) -> None:
        nonlocal answered
        answers.extend(out)
        answered += len(out)
        q[answers_w] = answered

    return VenueIn(request, answer, _nothing)


# -- processes -----------------------------------------------------------------------------------


def create_rings(run_id: str) -> list[Ring]:
    """The `processes` topology's rings, created by the supervising process (their owner)."""
    return [Ring.create(run_id, name, cap, slot) for name, (cap, slot) in RINGS.items()]


def feed_out_rings(
    run_id: str, q: memoryview, released_w: int, trades_w: int, stop: Callable[[], bool]
) -> FeedOut:
    rings = [Ring.attach(run_id, n) for n in ("market.oracle", "market.venue", "market.trades")]
    to_oracle, to_venue, to_exec = (FrameWriter(r) for r in rings)
    osend, vsend, tsend = to_oracle.send, to_venue.send, to_exec.send
    pack = _TRADE.pack
    n = q[released_w]
    trades = q[trades_w]

    def push(ev: object) -> bool:
        # cost: one encode (~2-6 µs for a book update) and two frame copies
        nonlocal n
        data = encode_event(ev)  # type: ignore[arg-type]
        if not osend(data, stop) or not vsend(data, stop):
            return False
        n += 1
        q[released_w] = n
        return True

    def trade(price: int, qty: int) -> None:
        nonlocal trades
        if tsend(pack(price, qty), stop):
            trades += 1
            q[trades_w] = trades

    def idle() -> bool:
        return to_oracle.backlog() == 0 and to_venue.backlog() == 0

    def close() -> None:
        for e in (to_oracle, to_venue, to_exec):
            e.close()
        for r in rings:
            r.close()

    return FeedOut(push, trade, to_oracle.backlog, idle, close)


def _taker_rings(run_id: str, name: str, decode: Callable[[bytes], object]) -> Taker:
    ring = Ring.attach(run_id, name)
    reader = FrameReader(ring)
    ftake = reader.take

    def take() -> object | None:
        data = ftake()
        return None if data is None else decode(data)

    def close() -> None:
        reader.close()
        ring.close()

    return Taker(take, close)


def market_taker_rings(run_id: str, name: str) -> Taker:
    return _taker_rings(run_id, name, decode_event)


def trades_taker_rings(run_id: str) -> Taker:
    return _taker_rings(run_id, "market.trades", _TRADE.unpack)


class ShmVenueLink:
    """Execution's end of a venue in another process: the `Venue` protocol over the `orders`
    and `answers` frame rings (`vajra.venues.wire` on both sides: the order protocol as bytes,
    as a broker adapter would put it on a socket)."""

    __slots__ = ("_answers", "_orders", "_rings", "_stop", "_take", "name")

    def __init__(self, run_id: str, stop: Callable[[], bool], name: str = "sim") -> None:
        self.name = name
        self._rings = [Ring.attach(run_id, "orders"), Ring.attach(run_id, "answers")]
        self._orders = FrameWriter(self._rings[0])
        self._answers = FrameReader(self._rings[1])
        self._take = self._answers.take
        self._stop = stop

    def _send(self, req: Request, now_ns: int) -> None:
        if not self._orders.send(encode_request(req, now_ns), self._stop):
            raise RuntimeError("the venue process took no orders while the engine stopped")

    def place(self, req: PlaceRequest, now_ns: int) -> None:
        self._send(req, now_ns)

    def modify(self, req: ModifyRequest, now_ns: int) -> None:
        self._send(req, now_ns)

    def cancel(self, req: CancelRequest, now_ns: int) -> None:
        self._send(req, now_ns)

    def poll(self, now_ns: int) -> list[VenueEvent]:
        data = self._take()
        if data is None:
            return _NONE
        out = [decode_answer(data)]
        while (data := self._take()) is not None:
            out.append(decode_answer(data))
        return out

    def close(self) -> None:
        self._orders.close()
        self._answers.close()
        for r in self._rings:
            r.close()


def venue_in_rings(run_id: str, stop: Callable[[], bool]) -> VenueIn:
    rings = [Ring.attach(run_id, "orders"), Ring.attach(run_id, "answers")]
    orders, answers = FrameReader(rings[0]), FrameWriter(rings[1])
    otake, asend = orders.take, answers.send

    def request() -> tuple[Request, int] | None:
        data = otake()
        return None if data is None else decode_request(data)

    def answer(out: list[VenueEvent]) -> None:
        for ev in out:
            asend(encode_answer(ev), stop)

    def close() -> None:
        orders.close()
        answers.close()
        for r in rings:
            r.close()

    return VenueIn(request, answer, close)


def die_with_parent(parent_pid: int) -> None:
    """A module process must not outlive the engine's supervisor (kill -9 included): ask the
    kernel for SIGKILL when the parent dies (Linux prctl PR_SET_PDEATHSIG)."""
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    if os.getppid() != parent_pid:  # the parent died before the call took effect
        os._exit(1)


_NONE: list[VenueEvent] = []
