"""The engine's shared-memory state: one `engine` segment holding every seqlocked block the
monitor reads, declared here once and read by the engine and the monitor from this declaration.

Blocks, each with one writer (LMAX: one writer per memory location), each on its own cache
lines:
- `book_top` (the Oracle thread, `vajra.market.top`), `gate` (the Oracle thread, Sonar's gate),
  `oracle` (the Oracle thread: WOBI, strength, edge, `vajra.modules.oracle.ORACLE_STATE`),
- `risk` (the Execution thread, Sentinel's state, `vajra.modules.sentinel.RISK`),
- `exec` (the Execution thread: orders, fills, OTR, NEV and its parts, positions),
- `health` (each module its own line of heartbeat words; the Sentinel thread the CPU figures).
The histograms live in their own segment (`histograms`, `vajra.shm.histogram.HistogramSet`),
the Oracle -> Execution Signals in the `signals` ring, the kill word in `control`.
"""

from __future__ import annotations

from dataclasses import dataclass

from vajra.market.top import BOOK_TOP
from vajra.modules.oracle import ORACLE_STATE
from vajra.modules.sentinel import RISK
from vajra.modules.sonar import GATE
from vajra.shm.layout import LINE, Field, Layout, align_up, line_fields
from vajra.shm.seqlock import seqlocked

#: The engine's threads, in data-flow order; Sonar runs inside the Oracle thread (see
#: docs/engine.md: its gate is judged on the very book state the Signal was computed from).
THREADS = ("feed", "oracle", "execution", "venue", "sentinel", "journal")

EXEC = seqlocked(
    "exec",
    1,
    (
        Field("state", doc="Execution's ExecState: 0 ACTIVE, 1 REDUCING, 2 HALTED"),
        Field("emergency", doc="Sentinel's EmergencyState"),
        Field("signals"),
        Field("placed"),
        Field("fills", doc="fill events applied"),
        Field("filled_orders", doc="orders with at least one fill"),
        Field("cancels_sent"),
        Field("timer_cancels"),
        Field("open_orders"),
        Field("refused", doc="writes refused by the kill word, Sentinel or a budget"),
        Field("position", doc="units, the instrument traded"),
        Field("pnl_paise", doc="realised + marked, costs included"),
        Field("costs_paise", doc="charges on the fills so far"),
        Field("otr_entries"),
        Field("otr_mods"),
        Field("otr_cancels"),
        Field("otr_trades"),
        Field("otr_penalty_orders"),
        Field("otr_slab_paise"),
        Field("otr_ceiling"),
        Field("limiter_1s", doc="writes inside the 1 s window"),
        Field("limiter_1m", doc="writes inside the 1 min window"),
        Field("day_placements"),
        Field("would_place", doc="1 if the best candidate would pass every check now"),
        Field("nev_value", "d", doc="paise, the best candidate's NEV"),
        Field("nev_p_fill", "d"),
        Field("nev_edge", "d"),
        Field("nev_costs", "d"),
        Field("nev_stt", "d"),
        Field("nev_adverse", "d"),
        Field("otr_pressure", "d", doc="0..1 of the configured ceiling"),
        Field("published_ns"),
    ),
)

#: Per-thread health: a line the thread itself writes (heartbeat, loop count, events) and a
#: line the Sentinel thread writes (CPU use and scheduling from /proc). 0 = not yet.
_HEALTH_FIELDS: list[Field] = []
for _t in THREADS:
    _HEALTH_FIELDS += line_fields(
        f"{_t}_hb_ns", f"{_t}_loops", f"{_t}_events", doc=f"written by the {_t} thread"
    )
    _HEALTH_FIELDS += line_fields(
        f"{_t}_tid",
        f"{_t}_cpu",
        f"{_t}_cpu_permille",
        f"{_t}_ctx_voluntary",
        f"{_t}_ctx_involuntary",
        f"{_t}_migrations",
        f"{_t}_alive",
        doc=f"the {_t} thread as the Sentinel thread sees it",
    )
HEALTH = Layout("health", 1, tuple(_HEALTH_FIELDS))

#: The threads' signalling words. Every thread reads them through its own view: on 3.13t a
#: Python object that two cores touch in a loop (a shared flag object, a deque polled while the
#: other side appends) bounces its reference count's cache line, ~5x the cost of each touch;
#: a word in shared memory read through a thread's own memoryview touches no shared object.
#: Producers bump a count after each hand-off; a consumer touches the deque only when the count
#: moved. One writer per line.
FLAGS = Layout(
    "flags",
    2,
    (
        *line_fields(
            "stop_feed",
            "stop_oracle",
            "stop_exec",
            "stop_venue",
            "stop_sentinel",
            "spikes",
            "spike_dur_ns",
            "spike_extra_ns",
            doc="main thread: stop requests (1), scheduled spikes posted (their terms first)",
        ),
        *line_fields(
            "trading_from_ns",
            "last_event_ns",
            "released",
            "trades",
            "ended",
            "phase",
            doc="feed: first live stamp, newest stamp, events and trades handed on, the "
            "synthetic market's phase (ground truth, for display; 0 none)",
        ),
        *line_fields(
            "answers",
            "venue_fills",
            "venue_open",
            doc="venue: answers handed to Execution, fills it made, orders resting on it",
        ),
        *line_fields(
            "requests",
            "spike_requests",
            "spike_req_dur_ns",
            "spike_req_extra_ns",
            doc="execution: requests sent, spikes asked for by a control command",
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class EngineBlocks:
    """Byte offsets of each block inside the `engine` segment's extra area."""

    top: int
    gate: int
    risk: int
    exec: int
    health: int
    flags: int
    oracle: int
    size: int


def engine_blocks() -> EngineBlocks:
    off = 0
    out = []
    for layout in (BOOK_TOP, GATE, RISK, EXEC, HEALTH, FLAGS, ORACLE_STATE):
        out.append(off)
        off += align_up(layout.size, LINE)
    top, gate, risk, exe, health, flags, oracle = out
    return EngineBlocks(top, gate, risk, exe, health, flags, oracle, off)


#: The segment's own (empty) layout: its blocks are versioned individually above.
ENGINE = Layout("engine", 2, ())
