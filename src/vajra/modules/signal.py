"""The Signal message: Oracle -> Execution, one fixed binary layout on the ring.

Declared once as a `Layout` (so the ring stores its hash and a consumer built from another
version refuses to attach) and packed with a `struct.Struct` derived from the same declaration.
It carries the receive time of the market event that caused it, so Execution can measure
tick -> signal -> order end to end.
"""

from __future__ import annotations

import struct

from vajra.shm.layout import Field, Layout

SIGNAL = Layout(
    "signal",
    1,
    (
        Field("seq", doc="signal number, from 0"),
        Field("token", doc="instrument token"),
        Field("origin_recv_ns", doc="perf_counter_ns when the causing market event arrived"),
        Field("signal_ns", doc="perf_counter_ns when the signal was published"),
        Field("exch_ns", doc="exchange time of the causing event (ns since epoch, 0 if none)"),
        Field("bid", doc="best bid, ticks"),
        Field("ask", doc="best ask, ticks"),
        Field("bid_qty"),
        Field("ask_qty"),
        Field("book_state", doc="persistent book Violation bits (0 = sane)"),
        Field("wobi", "d", doc="weighted order book imbalance, -1..1"),
        Field("liq_imb_pct", "d", doc="liquidity imbalance over the levels, -100..100"),
        Field("micro", "d", doc="weighted microprice, ticks"),
        Field("zscore", "d", doc="rolling z-score of WOBI"),
        Field("strength", "d", doc="signal strength, -1..1"),
        Field("edge_ticks", "d", doc="expected edge implied by the signal, ticks (signed)"),
        Field("edge_bps", "d", doc="the same in basis points of mid"),
    ),
)

#: Packs and unpacks SIGNAL in declaration order (all fields are 8 bytes, so offsets agree).
SIGNAL_STRUCT = struct.Struct("<" + "".join(f.fmt for f in SIGNAL.fields))
assert SIGNAL_STRUCT.size == SIGNAL.size
#: Slot size for rings carrying signals.
SIGNAL_BYTES = SIGNAL.size
