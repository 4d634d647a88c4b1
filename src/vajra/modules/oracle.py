"""Oracle: the signal loop. Book in, signal out: WOBI, liquidity imbalance, microprice, strength,
expected edge. Formulas and their justification: docs/signals.md.

Every update reads the top `levels` of the book into preallocated lists and computes in plain
float arithmetic; the rolling z-score keeps running sums over a fixed window (re-summed every
`_RESUM` updates so floating error cannot accumulate). No allocation per event except the
floats Python creates for arithmetic.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

from vajra.market.book import NO_ASK, L2Book
from vajra.modules.signal import SIGNAL_STRUCT
from vajra.shm.layout import Field
from vajra.shm.matrix import MatrixWriter
from vajra.shm.ring import RingWriter
from vajra.shm.seqlock import SeqlockWriter, seqlocked

_RESUM = 1 << 14


@dataclass(frozen=True, slots=True)
class OracleConfig:
    levels: int = 5  # levels per side in WOBI and liquidity imbalance
    decay: float = 0.5  # level weight w_i = exp(-decay * i), i = 0 at the touch
    z_window: int = 256  # updates in the rolling z-score window
    z_cap: float = 3.0  # |z| that maps to strength 1
    heatmap_levels: int = 10  # per-level imbalance columns in the heatmap
    heatmap_every_ns: int = 100_000_000  # one heatmap row per this much event time

    def __post_init__(self) -> None:
        if not 1 <= self.levels <= 50 or not 1 <= self.heatmap_levels <= 50:
            raise ValueError("oracle levels must be within 1..50")
        if self.decay < 0 or self.z_window < 2 or self.z_cap <= 0:
            raise ValueError("oracle decay >= 0, z_window >= 2 and z_cap > 0 are required")


class Oracle:
    """Owned by the thread that owns the book. Outputs are plain attributes, valid after an
    `update()` that returned True."""

    def __init__(self, cfg: OracleConfig | None = None) -> None:
        self.cfg = cfg = cfg or OracleConfig()
        self.weights = [math.exp(-cfg.decay * i) for i in range(cfg.levels)]
        n = max(cfg.levels, cfg.heatmap_levels)
        self._bpx, self._bq, self._apx, self._aq = [0] * n, [0] * n, [0] * n, [0] * n
        self._zbuf = array("d", bytes(8 * cfg.z_window))
        self._zi = 0
        self._zn = 0
        self._zsum = 0.0
        self._zsq = 0.0
        self._since_resum = 0
        self._next_heat = 0
        self.seq = 0
        self.bound_bid = 0
        self.bound_ask = NO_ASK
        self._nb = self._na = 0
        # outputs
        self.bid = self.ask = self.bid_qty = self.ask_qty = 0
        self.wobi = 0.0
        self.liq_imb_pct = 0.0
        self.micro = 0.0
        self.mid = 0.0
        self.spread = 0
        self.zscore = 0.0
        self.strength = 0.0
        self.edge_ticks = 0.0
        self.edge_bps = 0.0

    def update(self, book: L2Book, redo: bool = False) -> bool:
        """Recompute every output from the book; False (outputs unchanged) when a side is empty.
        `redo=True` recomputes the same event after a late book correction: its WOBI replaces
        the one the first computation put in the z-score window instead of adding a second.

        Cost: one `book.top` copy of `levels` per side, ~6 float ops per level, O(1) z-score.
        """
        self.read_top(book)
        return self.compute(redo)

    def read_top(self, book: L2Book) -> None:
        """Copy the top `levels` per side and note the worst tick read on each side (the
        window a later book change must stay out of for this signal to hold). Cost: two walks
        of ~`levels` dict lookups."""
        levels = self.cfg.levels
        bpx, apx = self._bpx, self._apx
        self._nb = nb = book._top_bids(levels, bpx, self._bq)
        self._na = na = book._top_asks(levels, apx, self._aq)
        self.bound_bid = bpx[nb - 1] if nb == levels else 0
        self.bound_ask = apx[na - 1] if na == levels else NO_ASK

    def compute(self, redo: bool = False) -> bool:
        """Every output from the levels `read_top` copied; False when a side is empty."""
        if not self.compute_imbalance():
            return False
        self.compute_strength(redo)
        return True

    def compute_imbalance(self) -> bool:
        """WOBI, liquidity imbalance, microprice, quotes: the book-shaped part of the signal
        (the benchmark's "book update + WOBI" ends here). False when a side is empty."""
        nb, na = self._nb, self._na
        if nb == 0 or na == 0:
            return False
        bpx, bq, apx, aq = self._bpx, self._bq, self._apx, self._aq
        w = self.weights
        num = den = 0.0
        sb = sa = 0
        m = nb if nb < na else na
        for i in range(m):  # both sides present: the common case
            b = bq[i]
            a = aq[i]
            wi = w[i]
            num += wi * (b - a)
            den += wi * (b + a)
            sb += b
            sa += a
        for i in range(m, nb):
            b = bq[i]
            num += w[i] * b
            den += w[i] * b
            sb += b
        for i in range(m, na):
            a = aq[i]
            num -= w[i] * a
            den += w[i] * a
            sa += a
        wobi = num / den
        bid, ask, b0, a0 = bpx[0], apx[0], bq[0], aq[0]
        spread = ask - bid
        mid = (bid + ask) * 0.5
        self.bid, self.ask, self.bid_qty, self.ask_qty = bid, ask, b0, a0
        self.wobi = wobi
        self.liq_imb_pct = 100.0 * (sb - sa) / (sb + sa)
        self.micro = (ask * b0 + bid * a0) / (b0 + a0)
        self.mid = mid
        self.spread = spread
        return True

    def compute_strength(self, redo: bool = False) -> None:
        """Rolling z-score, strength and expected edge from the WOBI `compute_imbalance` set."""
        cfg = self.cfg
        wobi, spread, mid = self.wobi, self.spread, self.mid
        # rolling z-score of WOBI over the last z_window updates (this one included)
        zb = self._zbuf
        zw = cfg.z_window
        zi, zn = self._zi, self._zn
        if redo and zn:
            i = zi - 1 if zi else zw - 1
            old = zb[i]
        else:
            i = zi
            old = zb[i]
            self._zi = i + 1 if i + 1 < zw else 0
            if zn < zw:
                zn += 1
                self._zn = zn
                old = 0.0
        zb[i] = wobi
        zsum = self._zsum + wobi - old
        zsq = self._zsq + wobi * wobi - old * old
        self._zsum, self._zsq = zsum, zsq
        self._since_resum += 1
        if self._since_resum >= _RESUM:
            self._resum()
            zsum, zsq = self._zsum, self._zsq
        mean = zsum / zn
        var = zsq / zn - mean * mean
        z = (wobi - mean) / math.sqrt(var) if var > 1e-12 else 0.0
        self.zscore = z
        s = z / cfg.z_cap
        self.strength = 1.0 if s > 1.0 else (-1.0 if s < -1.0 else s)
        # expected edge: the weighted microprice's distance from mid (docs/signals.md)
        edge = wobi * spread * 0.5
        self.edge_ticks = edge
        self.edge_bps = edge * 1e4 / mid if mid > 0 else 0.0

    def _resum(self) -> None:
        zb, n = self._zbuf, self._zn
        vals = zb if n == self.cfg.z_window else zb[:n]
        self._zsum = math.fsum(vals)
        self._zsq = math.fsum(x * x for x in vals)
        self._since_resum = 0

    def level_imbalances(self, out: list[float], book: L2Book) -> int:
        """Per-level imbalance (B_i - A_i)/(B_i + A_i) for the heatmap, into `out`; returns how
        many levels were computed (missing levels count as zero quantity)."""
        n = self.cfg.heatmap_levels
        bpx, bq, apx, aq = self._bpx, self._bq, self._apx, self._aq
        nb, na = book.top(n, bpx, bq, apx, aq)
        for i in range(n):
            b = bq[i] if i < nb else 0
            a = aq[i] if i < na else 0
            out[i] = (b - a) / (b + a) if b + a else 0.0
        return n

    def maybe_heatmap(self, t_ns: int, book: L2Book, mw: MatrixWriter, row: list[float]) -> bool:
        """Append a heatmap row when `heatmap_every_ns` of event time has passed."""
        if t_ns < self._next_heat:
            return False
        self._next_heat = t_ns + self.cfg.heatmap_every_ns
        self.level_imbalances(row, book)
        mw.append(t_ns, row)
        return True

    def publish(
        self, w: RingWriter, token: int, origin_recv_ns: int, exch_ns: int, state: int, now_ns: int
    ) -> bool:
        """Put the current signal on the Oracle -> Execution ring; False if the ring is full
        (counted in the ring's `rejected`)."""
        off = w.claim()
        if off < 0:
            return False
        SIGNAL_STRUCT.pack_into(
            w.buf,
            off,
            self.seq,
            token,
            origin_recv_ns,
            now_ns,
            exch_ns,
            self.bid,
            self.ask,
            self.bid_qty,
            self.ask_qty,
            state,
            self.wobi,
            self.liq_imb_pct,
            self.micro,
            self.zscore,
            self.strength,
            self.edge_ticks,
            self.edge_bps,
        )
        w.publish()
        self.seq += 1
        return True


#: The Oracle's latest outputs for the monitor (the Signal ring has one consumer, Execution).
#: Written by the Oracle thread after the Signal is out, at most every `publish_every_ns` of
#: event time, so the hot path pays one seqlock write of 12 words now and then.
ORACLE_STATE = seqlocked(
    "oracle",
    1,
    (
        Field("signals", doc="signals computed so far (the Oracle's sequence)"),
        Field("recv_ns", doc="receive stamp of the event they were computed from"),
        Field("exch_ns"),
        Field("wobi", "d", doc="weighted order-book imbalance, -1..1"),
        Field("liq_imb_pct", "d", doc="liquidity imbalance, % of the top levels' quantity"),
        Field("strength", "d", doc="signal strength, -1..1"),
        Field("edge_ticks", "d"),
        Field("edge_bps", "d"),
        Field("zscore", "d"),
        Field("micro", "d", doc="micro-price in ticks"),
        Field("spread", doc="ticks"),
    ),
)


class OracleStateWriter:
    """Single writer: the thread that runs the Oracle."""

    __slots__ = ("_next", "_w", "every_ns")

    def __init__(self, buf: memoryview, offset: int, every_ns: int = 20_000_000) -> None:
        self._w = SeqlockWriter(buf, offset, ORACLE_STATE)
        self.every_ns = every_ns
        self._next = 0

    def publish(self, o: Oracle, recv_ns: int, exch_ns: int) -> None:
        t = exch_ns or recv_ns
        if t < self._next:
            return
        self._next = t + self.every_ns
        w = self._w
        q, d, f = w.q, w.d, w.first
        w.begin()
        q[f] = o.seq
        q[f + 1] = recv_ns
        q[f + 2] = exch_ns
        d[f + 3] = o.wobi
        d[f + 4] = o.liq_imb_pct
        d[f + 5] = o.strength
        d[f + 6] = o.edge_ticks
        d[f + 7] = o.edge_bps
        d[f + 8] = o.zscore
        d[f + 9] = o.micro
        q[f + 10] = o.spread
        w.end()

    def close(self) -> None:
        self._w.close()
