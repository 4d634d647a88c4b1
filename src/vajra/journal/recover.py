"""Restart after a crash: what the journal says, and what to do about the venue (sans-I/O).

Nothing here opens a file or talks to a venue. The caller reads the journal
(`journal.read_entries(path)`), asks the venue which orders it holds open, and feeds both in:

    state = replay(read_entries(path))            # last seq, client-id high-water mark, open orders
    rec = reconcile(state, venue_open_client_ids)
    for cid in rec.cancel: gateway.cancel(...)    # then journal those cancels like any other
    for cid in rec.lost: ask the venue for the order's history (fills while we were down)
    next_client_id = state.client_id_hwm + 1

Replay rules (the journal's view of an order, not the order state machine's):
- PLACE opens an order as PENDING (intent journaled; `sent` once a SENT(PLACE) follows).
- ACK makes it OPEN. A REJECT of a PENDING order ends it (the place was refused); a REJECT of an
  OPEN order refused a modify: the order keeps its terms (`vajra.venues.base.Reject`).
- MODIFY_ACK sets the new total quantity and price. FILLs add up, a repeated `fill_id` counts
  once; the order is done when the filled quantity reaches the total.
- CANCEL_ACK and EXPIRED end it. A CANCEL_REJECT changes nothing: ALREADY_DONE means an ending
  is on its way (or was lost); the venue's list decides.
- RISK and KILL records keep the latest of each (a restart after a kill must stay halted).
Anything inconsistent (an event for an order never placed, a second PLACE of a client id, an
event after an order ended) is kept in `anomalies` rather than raised: recovery must finish.

After a restart nothing manages the orders resting at the venue, so `reconcile` cancels every
order the venue reports open, and sorts them by what the journal knew (expected, stale, unknown)
so the operator sees which ones the journal did not predict.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from vajra.journal.journal import Entry, KillCommand, Kind, Refused, RiskChange, Sent
from vajra.market.events import Side
from vajra.venues.base import (
    Ack,
    Fill,
    ModifyAck,
    PlaceRequest,
    Reject,
)


class Status(enum.IntEnum):
    PENDING = 1  # intent journaled, no ack yet: the venue may or may not have it
    OPEN = 2  # acked, not ended
    DONE = 3  # filled, cancelled, rejected or expired


@dataclass(slots=True)
class OrderView:
    """An order as the journal knows it (`Replay` mutates its own; `state()` hands out copies)."""

    client_id: int
    token: int
    side: Side
    price: int
    qty: int  # total quantity (after acknowledged modifies)
    filled: int = 0
    status: Status = Status.PENDING
    sent: bool = False  # a SENT(PLACE), an ACK or a FILL was journaled: it left the engine
    venue_id: str = ""
    cancel_requested: bool = False
    ended_by: Kind | None = None  # FILL, CANCEL_ACK, REJECT or EXPIRED once DONE
    last_seq: int = 0
    fill_ids: set[str] = field(default_factory=set)

    def copy(self) -> OrderView:
        return OrderView(
            self.client_id,
            self.token,
            self.side,
            self.price,
            self.qty,
            self.filled,
            self.status,
            self.sent,
            self.venue_id,
            self.cancel_requested,
            self.ended_by,
            self.last_seq,
            set(self.fill_ids),
        )


@dataclass(frozen=True, slots=True)
class JournalState:
    last_seq: int
    entries: int
    client_id_hwm: int  # restart the client-id counter above this
    orders: dict[int, OrderView]  # every order seen, by client id
    open: tuple[int, ...]  # client ids the journal expects open (PENDING or OPEN), ascending
    risk: RiskChange | None  # the latest risk-state change
    kill: KillCommand | None  # the latest kill command
    gaps: tuple[tuple[int, int], ...]  # (expected seq, seq found): empty for a sound journal
    anomalies: tuple[str, ...]


class Replay:
    """Incremental replay: `apply()` entries in seq order, `state()` at any point."""

    def __init__(self) -> None:
        self.last_seq = 0
        self.entries = 0
        self.hwm = 0
        self.orders: dict[int, OrderView] = {}
        self.risk: RiskChange | None = None
        self.kill: KillCommand | None = None
        self.gaps: list[tuple[int, int]] = []
        self.anomalies: list[str] = []

    def apply(self, e: Entry) -> None:
        if e.seq != self.last_seq + 1:
            self.gaps.append((self.last_seq + 1, e.seq))
        self.last_seq = e.seq
        self.entries += 1
        r = e.record
        k = e.kind
        if isinstance(r, RiskChange):
            self.risk = r
            return
        if isinstance(r, KillCommand):
            self.kill = r
            return
        if isinstance(r, Refused):  # nothing reached the venue; its id is still used up
            if r.client_id > self.hwm:
                self.hwm = r.client_id
            return
        cid = r.client_id
        if k is Kind.PLACE:
            assert isinstance(r, PlaceRequest)
            if cid > self.hwm:
                self.hwm = cid
            if cid in self.orders:
                self.anomalies.append(f"seq {e.seq}: second PLACE of client id {cid}")
                return
            self.orders[cid] = OrderView(cid, r.token, r.side, r.price, r.qty, last_seq=e.seq)
            return
        o = self.orders.get(cid)
        if o is None:
            if cid > self.hwm:
                self.hwm = cid
            self.anomalies.append(f"seq {e.seq}: {k.name} for client id {cid} never placed")
            return
        o.last_seq = e.seq
        if o.status is Status.DONE and k not in _HARMLESS_AFTER_END:
            how = o.ended_by.name if o.ended_by is not None else "?"
            self.anomalies.append(f"seq {e.seq}: {k.name} for client id {cid} after {how}")
            return
        if k is Kind.SENT:
            assert isinstance(r, Sent)
            if r.op is Kind.PLACE:
                o.sent = True
        elif k is Kind.ACK:
            assert isinstance(r, Ack)
            o.venue_id = r.venue_id
            o.sent = True  # the venue has it, whatever the journal saw of the write
            if o.status is Status.PENDING:
                o.status = Status.OPEN
        elif k is Kind.REJECT:
            assert isinstance(r, Reject)
            if o.status is Status.PENDING:
                self._end(o, k)
        elif k is Kind.MODIFY_ACK:
            assert isinstance(r, ModifyAck)
            o.price, o.qty = r.price, r.qty
            if o.filled >= o.qty:
                self._end(o, Kind.FILL)
        elif k is Kind.FILL:
            assert isinstance(r, Fill)
            if r.fill_id in o.fill_ids:
                return  # a duplicate fill: applied once
            o.fill_ids.add(r.fill_id)
            o.sent = True
            o.filled += r.qty
            if o.status is Status.PENDING:  # filled before its ack arrived
                o.status = Status.OPEN
            if o.filled >= o.qty:
                self._end(o, k)
        elif k is Kind.CANCEL:
            o.cancel_requested = True
        elif k is Kind.CANCEL_ACK or k is Kind.EXPIRED:
            self._end(o, k)
        # MODIFY (intent) and CANCEL_REJECT change nothing the restart needs

    @staticmethod
    def _end(o: OrderView, how: Kind) -> None:
        o.status = Status.DONE
        o.ended_by = how

    def state(self) -> JournalState:
        return JournalState(
            last_seq=self.last_seq,
            entries=self.entries,
            client_id_hwm=self.hwm,
            orders={c: o.copy() for c, o in self.orders.items()},  # replay may go on
            open=tuple(sorted(c for c, o in self.orders.items() if o.status is not Status.DONE)),
            risk=self.risk,
            kill=self.kill,
            gaps=tuple(self.gaps),
            anomalies=tuple(self.anomalies),
        )


#: kinds that may follow an order's end without anything being wrong: intents and writes the
#: engine sent while the end was in flight, and the venue's refusal of them
_HARMLESS_AFTER_END = frozenset(
    {Kind.SENT, Kind.MODIFY, Kind.CANCEL, Kind.CANCEL_REJECT, Kind.REJECT}
)


def replay(entries: Iterable[Entry]) -> JournalState:
    """The journal's state after all `entries` (in seq order)."""
    r = Replay()
    for e in entries:
        r.apply(e)
    return r.state()


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What to do at restart, given the journal and the venue's list of open orders."""

    cancel: tuple[int, ...]  # every order open at the venue: orphans now (nothing manages them)
    expected: tuple[int, ...]  # of `cancel`: the journal expected them open
    stale: tuple[int, ...]  # of `cancel`: the journal says they ended (journal and venue disagree)
    unknown: tuple[int, ...]  # of `cancel`: never placed according to the journal (not ours?)
    lost: tuple[int, ...]  # journal expected open, venue does not list: ended while we were down
    unsent: tuple[int, ...]  # of `lost`: intent journaled, never seen sent: maybe never placed
    next_client_id: int  # first client id safe to use (above everything journaled or at venue)

    @property
    def clean(self) -> bool:
        """The venue held exactly the orders the journal expected (nothing stale or unknown,
        nothing lost)."""
        return not (self.stale or self.unknown or self.lost)


def reconcile(state: JournalState, venue_open: Iterable[int]) -> Reconciliation:
    """Compare the journal's open orders with the client ids the venue reports open.

    Orphans, all cancelled: open at the venue and expected by the journal (`expected`), open at
    the venue though the journal saw them end (`stale`) or never saw them placed (`unknown`).
    Lost: expected open by the journal but not open at the venue; their end (a fill, a cancel,
    an expiry) happened while the engine was down or was never journaled, so the caller must
    fetch their history from the venue before trusting positions.
    """
    at_venue = sorted(set(venue_open))
    journal_open = set(state.open)
    expected = tuple(c for c in at_venue if c in journal_open)
    stale = tuple(c for c in at_venue if c in state.orders and c not in journal_open)
    unknown = tuple(c for c in at_venue if c not in state.orders)
    venue_set = set(at_venue)
    lost = tuple(c for c in state.open if c not in venue_set)
    unsent = tuple(c for c in lost if not state.orders[c].sent)
    hwm = max(state.client_id_hwm, max(at_venue, default=0))
    return Reconciliation(
        cancel=tuple(at_venue),
        expected=expected,
        stale=stale,
        unknown=unknown,
        lost=lost,
        unsent=unsent,
        next_client_id=hwm + 1,
    )
