"""The Execution thread's end of a venue that runs on a thread of its own.

The simulated exchange is a remote party: it matches against the market it sees and answers
after its latency. Run on the Execution thread, it made Execution touch every market event
object the Oracle thread was touching at the same moment, and on 3.13t two cores touching one
object's reference count bounce its cache line (a shared object's load costs ~200 ns instead of
~40 ns under that contention). On its own thread (beside the feed), the venue takes requests
and gives answers through two deques; Execution touches only its own objects and the answers.

`VenueLink` implements the `vajra.venues.base.Venue` protocol, so the gateway cannot tell it
from the venue itself (or from Kite). The answers cross a thread, so the RTT Execution measures
includes that hop, as a live adapter's includes the network stack.
"""

from __future__ import annotations

import collections

from vajra.venues.base import CancelRequest, ModifyRequest, PlaceRequest, VenueEvent

PLACE, MODIFY, CANCEL = 0, 1, 2


class VenueLink:
    """Owned by the Execution thread; the venue thread drains `requests` and fills `answers`
    (each deque has one producer and one consumer). Each side bumps a count in shared memory
    after a hand-off (`vajra.engine.state.FLAGS`), and the other side looks at the deque only
    when that count moved: the idle poll reads one word through the thread's own view, never
    the deque both threads hold (see `vajra.engine.state.FLAGS` for why)."""

    __slots__ = (
        "_answers_w",
        "_q",
        "_requests_w",
        "_seen",
        "_sent",
        "answers",
        "name",
        "requests",
    )

    def __init__(self, name: str = "sim") -> None:
        self.name = name
        self.requests: collections.deque[
            tuple[int, PlaceRequest | ModifyRequest | CancelRequest, int]
        ] = collections.deque()
        self.answers: collections.deque[VenueEvent] = collections.deque()
        self._q: memoryview | None = None
        self._answers_w = self._requests_w = 0
        self._seen = self._sent = 0

    def attach(self, q: memoryview, answers_w: int, requests_w: int) -> None:
        """From the Execution thread, with its own 'q' view of the flags words."""
        self._q = q
        self._answers_w = answers_w
        self._requests_w = requests_w

    def _send(self, item: tuple[int, PlaceRequest | ModifyRequest | CancelRequest, int]) -> None:
        self.requests.append(item)
        self._sent += 1
        q = self._q
        if q is not None:
            q[self._requests_w] = self._sent

    def place(self, req: PlaceRequest, now_ns: int) -> None:
        self._send((PLACE, req, now_ns))

    def modify(self, req: ModifyRequest, now_ns: int) -> None:
        self._send((MODIFY, req, now_ns))

    def cancel(self, req: CancelRequest, now_ns: int) -> None:
        self._send((CANCEL, req, now_ns))

    def poll(self, now_ns: int) -> list[VenueEvent]:
        """Every answer the venue thread has delivered by now (in its order). Cost when there
        is none: one shared-memory load and a compare."""
        q = self._q
        if q is not None:
            n = q[self._answers_w]
            if n == self._seen:
                return _NONE
        a = self.answers
        out = []
        pop = a.popleft
        while a:
            out.append(pop())
        self._seen += len(out)
        return out


_NONE: list[VenueEvent] = []
