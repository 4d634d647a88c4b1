"""The gateway's journal: every request written, every venue answer, every risk-state change.

`OrderGateway` talks to this through its small `Journal` protocol, so the gateway does not
depend on SQLite or the journal thread; this adapter turns each call into journal records on
the Execution thread's own `JournalWriter` (one ring append each, ~1.5 µs, never blocking).

Order of records for a write: the request (the intent) and then `Sent`, both appended right
after the venue call returns, so the decision-to-write latency does not carry them. A crash in
between loses at most that one intent; the order is then open at the venue and unknown to the
journal, and recovery (`vajra.journal.recover.reconcile`) lists it among the orders to cancel.
A refusal (kill word, Sentinel, a budget, an invalid order) is journaled as `Refused`: nothing
reached the venue, but a denied order is an event, never a silent drop.
"""

from __future__ import annotations

from vajra.journal.journal import JournalWriter, Kind, Refused, RiskChange, Sent
from vajra.trading.budgets import WriteKind
from vajra.venues.base import CancelRequest, ModifyRequest, PlaceRequest, VenueEvent

_OP = {WriteKind.PLACE: Kind.PLACE, WriteKind.MODIFY: Kind.MODIFY, WriteKind.CANCEL: Kind.CANCEL}


class GatewayJournal:
    """Implements `vajra.trading.gateway.Journal` on a `JournalWriter` (owned by the thread
    that owns the gateway)."""

    __slots__ = ("writer",)

    def __init__(self, writer: JournalWriter) -> None:
        self.writer = writer

    def write(
        self, kind: WriteKind, req: PlaceRequest | ModifyRequest | CancelRequest, now_ns: int
    ) -> None:
        append = self.writer.append
        append(req, now_ns)
        append(Sent(req.client_id, _OP[kind]), now_ns)

    def refusal(self, client_id: int, result: int, reason: int, now_ns: int) -> None:
        self.writer.append(Refused(client_id, result, reason), now_ns)

    def event(self, ev: VenueEvent, now_ns: int) -> None:
        self.writer.append(ev, now_ns)

    def risk(self, state: int, previous: int, reason: str, now_ns: int) -> None:
        self.writer.append(RiskChange(state, previous, reason), now_ns)
