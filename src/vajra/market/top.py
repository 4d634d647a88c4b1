"""Top of book in shared memory: the book's owner publishes the best N levels per side into a
seqlocked block after each update; the monitor and other modules read torn-free copies.

Prices are published in price units (ticks x tick size), so a reader needs no instrument table.
Publishing costs one seqlock write of 8 + 4N words (~50 stores at N = 10), with no allocation.
"""

from __future__ import annotations

from vajra.market.book import L2Book
from vajra.shm.layout import Field
from vajra.shm.seqlock import SeqlockReader, SeqlockWriter, seqlocked

TOP_LEVELS = 10

BOOK_TOP = seqlocked(
    "book_top",
    1,
    (
        Field("token"),
        Field("updates", doc="updates applied to the book so far"),
        Field("recv_ns", doc="local receive time of the last update"),
        Field("exch_ns", doc="exchange time of the last update (ns since epoch, 0 if none)"),
        Field("state", doc="persistent Violation bits (0 = sane)"),
        Field("tick", doc="tick size in price units"),
        Field("n_bids"),
        Field("n_asks"),
        *(Field(f"bid_px{i}") for i in range(TOP_LEVELS)),
        *(Field(f"bid_qty{i}") for i in range(TOP_LEVELS)),
        *(Field(f"ask_px{i}") for i in range(TOP_LEVELS)),
        *(Field(f"ask_qty{i}") for i in range(TOP_LEVELS)),
    ),
)


class TopWriter:
    """Single writer of one instrument's block (the thread that owns the L2Book)."""

    __slots__ = ("_apx", "_aq", "_bpx", "_bq", "_first", "_w")

    def __init__(self, buf: memoryview, offset: int) -> None:
        self._w = SeqlockWriter(buf, offset, BOOK_TOP)
        self._first = self._w.first
        n = TOP_LEVELS
        self._bpx, self._bq, self._apx, self._aq = [0] * n, [0] * n, [0] * n, [0] * n

    def publish(self, book: L2Book) -> None:
        n = TOP_LEVELS
        nb, na = book.top(n, self._bpx, self._bq, self._apx, self._aq)
        w = self._w
        q, f, tick = w.q, self._first, book.tick
        w.begin()
        q[f] = book.instrument.token
        q[f + 1] = book.updates
        q[f + 2] = book.last_recv_ns
        q[f + 3] = book.last_exch_ns
        q[f + 4] = book.state
        q[f + 5] = tick
        q[f + 6] = nb
        q[f + 7] = na
        b = f + 8
        bpx, bq, apx, aq = self._bpx, self._bq, self._apx, self._aq
        for i in range(n):  # cost: 4 stores per level
            q[b + i] = bpx[i] * tick if i < nb else 0
            q[b + n + i] = bq[i] if i < nb else 0
            q[b + 2 * n + i] = apx[i] * tick if i < na else 0
            q[b + 3 * n + i] = aq[i] if i < na else 0
        w.end()

    def close(self) -> None:
        self._w.close()


def read_top(reader: SeqlockReader) -> dict[str, object]:
    """Decode one consistent copy into levels: {"bids": [(px, qty)...], "asks": [...], ...}."""
    v = reader.read()
    n = TOP_LEVELS
    nb, na = int(v["n_bids"]), int(v["n_asks"])
    return {
        "token": v["token"],
        "updates": v["updates"],
        "recv_ns": v["recv_ns"],
        "exch_ns": v["exch_ns"],
        "state": v["state"],
        "tick": v["tick"],
        "bids": [(v[f"bid_px{i}"], v[f"bid_qty{i}"]) for i in range(min(nb, n))],
        "asks": [(v[f"ask_px{i}"], v[f"ask_qty{i}"]) for i in range(min(na, n))],
    }
