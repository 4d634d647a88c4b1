"""One instrument's market pipeline: feed events -> L2 book -> Oracle -> Sonar, timed per stage.

Order of work per depth update, shortest path to the signal first: record the update in the
book (lazy mode: O(1)), read the top few levels with the update's levels merged into the walk,
compute and publish the signal (tick -> signal), then apply the update's levels, then Sonar and
the gate on the updated book. The signal is computed from exactly the book the update leaves,
whatever the size of the diff; unordered updates and snapshots are applied before the read.

This is the work the engine's feed/Oracle thread does per market event, kept free of threads and
I/O so replays, benchmarks and tests drive exactly the code the engine runs. Each stage's time is
recorded into its shared-memory histogram (`book.update`, `oracle.update`, `sonar.update`, and
the whole `pipeline.event`), with `time.perf_counter_ns` around each stage (~90 ns per call).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from vajra.market.book import L2Book, Violation
from vajra.market.events import BookUpdate, Malformed, Resynced, SequenceGap, Trade
from vajra.market.instruments import Instrument
from vajra.market.top import TopWriter
from vajra.modules.oracle import Oracle, OracleConfig, OracleStateWriter
from vajra.modules.sonar import Condition, GateWriter, Sonar, SonarConfig
from vajra.shm.histogram import HistogramWriter
from vajra.shm.matrix import MatrixWriter
from vajra.shm.ring import RingWriter

_LOCKED, _CROSSED = int(Violation.LOCKED), int(Violation.CROSSED)

HISTOGRAMS = (
    "book.update",
    "oracle.update",
    "sonar.update",
    "book_wobi",
    "tick_to_signal",
    "pipeline.event",
)

#: A venue's book-sync state machine: takes a depth update, applies what may be applied to the
#: pipeline's book, and returns what happened (applied updates, gaps, resyncs), in order.
BookSync = Callable[[BookUpdate], Sequence[object]]


class MarketPipeline:
    """Owned by one thread. Optional outputs (shared-memory top of book, gate block, signal
    ring, heatmap, histograms) are attached by whoever runs it; without them it still computes,
    which is how tests and the benchmark's baselines use it."""

    def __init__(
        self,
        instrument: Instrument,
        oracle: OracleConfig | None = None,
        sonar: SonarConfig | None = None,
        *,
        histograms: Mapping[str, HistogramWriter] | None = None,
        top: TopWriter | None = None,
        gate: GateWriter | None = None,
        signals: RingWriter | None = None,
        heatmap: MatrixWriter | None = None,
        oracle_state: OracleStateWriter | None = None,
        clock_stable: Callable[[], bool] | None = None,
        sentinel_ok: Callable[[], bool] | None = None,
        kill_clear: Callable[[], bool] | None = None,
        sync: Callable[[L2Book], BookSync] | None = None,
        lazy: bool = True,
        after_signal: Callable[[], object] | None = None,
    ) -> None:
        self.instrument = instrument
        self.book = L2Book(instrument)
        # ordered updates are applied after the signal, which reads the top through them
        self.book.lazy = lazy
        #: venue sync (e.g. Binance's snapshot + diff procedure) built on this book, or None to
        #: apply every update as it comes
        self.sync = sync(self.book) if sync is not None else None
        self.oracle = Oracle(oracle)
        self.sonar = Sonar(sonar)
        h = histograms or {}
        self._h_book = h.get("book.update")
        self._h_oracle = h.get("oracle.update")
        self._h_sonar = h.get("sonar.update")
        self._h_signal = h.get("tick_to_signal")
        self._h_wobi = h.get("book_wobi")
        self._h_event = h.get("pipeline.event")
        self.top, self.gate, self.signals, self.heatmap = top, gate, signals, heatmap
        self.oracle_state = oracle_state
        self._heat_row = [0.0] * self.oracle.cfg.heatmap_levels
        self._clock_stable = clock_stable
        self._sentinel_ok = sentinel_ok
        self._kill_clear = kill_clear
        #: called right after a Signal is published, before the rest of the event's work (the
        #: engine passes `os.sched_yield` when the Signal's consumer shares this CPU: it then
        #: reads the Signal now instead of after the book flush, Sonar and the publications)
        self._after_signal = after_signal
        self.events = 0
        self.book_updates = 0
        self.trades = 0
        self.malformed = 0
        self.gaps = 0
        self.signals_sent = 0
        self.signals_dropped = 0

    def on_event(self, ev: object) -> None:
        """Handle one event from any feed. Book updates run the whole chain; the rest adjust
        state (gaps, resyncs) or are counted."""
        self.events += 1
        if type(ev) is BookUpdate:
            self._on_book(ev)
        elif type(ev) is Trade:
            self.trades += 1
        elif type(ev) is SequenceGap:
            self.gaps += 1
            self.book.mark_gap()
            self._gate(ev.recv_ns)
        elif type(ev) is Resynced:
            self.book.mark_resync()
            self._gate(ev.recv_ns)
        elif type(ev) is Malformed:
            self.malformed += 1

    def signal(self) -> tuple[int, int, int, int, float, float, bool] | None:
        """The Oracle's current signal in `Execution.on_signal`'s order (bid, ask, bid_qty,
        ask_qty in ticks and units, strength, edge_ticks, the gate), or None without a two-sided
        top. For runners that call Execution directly (the benchmarks, the asyncio bot); the
        engine's Execution reads the same values off the Signal ring."""
        o = self.oracle
        if not (o.bid and o.ask):
            return None
        return (o.bid, o.ask, o.bid_qty, o.ask_qty, o.strength, o.edge_ticks, self.sonar.open)

    @property
    def violations(self) -> int:
        """Book invariant violations so far, all kinds."""
        return sum(self.book.counts)

    def _on_book(self, ev: BookUpdate) -> None:
        perf = time.perf_counter_ns
        t0 = perf()
        book = self.book
        if self.sync is None:
            book.apply(ev)
        else:
            applied = False
            for e in self.sync(ev):
                if type(e) is BookUpdate:
                    applied = True
                elif type(e) is SequenceGap:
                    self.gaps += 1
            if not applied:  # buffered, dropped, or a gap: nothing new to compute from
                self._gate(ev.recv_ns)
                return
        t1 = perf()
        oracle = self.oracle
        oracle.read_top(book)  # lazy book: the update's levels merged into the walk
        have = oracle.compute_imbalance()
        tw = perf()
        if have:
            oracle.compute_strength()
        t2 = perf()
        if have:
            self._send(ev)
        book_ns = t1 - t0
        if book.pending:  # the update's levels, after the signal is out
            t3 = perf()
            book.flush()
            book_ns += perf() - t3
        t4 = perf()
        self.sonar.on_book(book, ev.recv_ns, ev.exch_ns)
        self._gate(ev.recv_ns)
        t5 = perf()
        self.book_updates += 1
        if self.top is not None:
            self.top.publish(book)
        if have and self.heatmap is not None:
            oracle.maybe_heatmap(ev.recv_ns, book, self.heatmap, self._heat_row)
        if have and self.oracle_state is not None:
            self.oracle_state.publish(oracle, ev.recv_ns, ev.exch_ns)
        if self._h_book is not None:
            self._h_book.record(book_ns)
        if self._h_oracle is not None:
            self._h_oracle.record(t2 - t1)
        if self._h_signal is not None:
            self._h_signal.record(t2 - t0)
        if self._h_wobi is not None:
            self._h_wobi.record(tw - t0)
        if self._h_sonar is not None:
            self._h_sonar.record(t5 - t4)
        if self._h_event is not None:
            self._h_event.record(perf() - t0)

    def _send(self, ev: BookUpdate) -> None:
        if self.signals is None:
            return
        # the book's state bits are the previous update's until this one is applied: a top
        # crossed or locked by this update is flagged from the levels the signal read
        o = self.oracle
        state = self.book.state
        if o.bid >= o.ask:
            state |= _LOCKED if o.bid == o.ask else _CROSSED
        if o.publish(
            self.signals,
            self.instrument.token,
            ev.recv_ns,
            ev.exch_ns,
            state,
            time.perf_counter_ns(),
        ):
            self.signals_sent += 1
            if self._after_signal is not None:
                self._after_signal()
        else:
            self.signals_dropped += 1

    def _gate(self, now_ns: int) -> None:
        was_fresh = self.sonar.ok[Condition.FEED_FRESH]
        self.sonar.evaluate_gate(
            now_ns,
            self.book,
            clock_stable=self._clock_stable() if self._clock_stable is not None else True,
            sentinel_ok=self._sentinel_ok() if self._sentinel_ok is not None else True,
            kill_clear=self._kill_clear() if self._kill_clear is not None else True,
        )
        if was_fresh and not self.sonar.ok[Condition.FEED_FRESH]:
            self.book.mark_stale()  # one counted STALE episode per loss of freshness
        if self.gate is not None:
            self.gate.publish(self.sonar)

    def tick(self, now_ns: int) -> bool:
        """Re-evaluate the gate without an event (staleness is judged by the clock alone);
        returns whether it is open."""
        self._gate(now_ns)
        return self.sonar.open
