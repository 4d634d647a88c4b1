"""`vajra signals`: run a feed through the market pipeline and watch the signals live.

The feed's events go through `MarketPipeline` exactly as the engine's market thread runs it,
with its outputs in shared memory (stage histograms, top of book, gate, heatmap, and the Signal
ring with overwrite-oldest, since nothing consumes it here). Once a second a status line shows
the book, the signal, Sonar's regime and which gate conditions fail; the end prints the stage
latencies. Feeds: `synthetic` (the embedded default, seeded), `binance:PATH` (a Binance USD-M
capture) and `lobster:PATH` (a LOBSTER zip).
"""

from __future__ import annotations

import contextlib
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from vajra.market.book import L2Book
from vajra.market.events import BookUpdate
from vajra.market.feeds.binance import (
    BinanceBookSync,
    BinanceMarket,
    BinanceReplay,
    ClockOffsetEstimator,
    binance_usdm_btcusdt,
)
from vajra.market.feeds.lobster import (
    iter_lobster_zip,
    lobster_instrument,
    read_lobster_session,
)
from vajra.market.feeds.synthetic import PhaseChange, SyntheticFeed
from vajra.market.instruments import Instrument
from vajra.market.top import BOOK_TOP, TopWriter
from vajra.modules.pipeline import HISTOGRAMS, BookSync, MarketPipeline
from vajra.modules.signal import SIGNAL
from vajra.modules.sonar import GATE, GateWriter
from vajra.shm.histogram import HistogramSet
from vajra.shm.layout import LINE, Layout, align_up
from vajra.shm.matrix import MatrixRing
from vajra.shm.ring import Overflow, Ring
from vajra.shm.segment import Segment, new_run_id, remove_stale

STATE = Layout("market_state", 1, ())


def open_feed(
    spec: str, seed: int, speed: float
) -> tuple[Instrument, Iterator[object], Callable[[L2Book], BookSync] | None]:
    """(instrument, events, book sync) for a feed spec; raises ValueError for a bad spec."""
    kind, _, arg = spec.partition(":")
    if kind == "synthetic":
        feed = SyntheticFeed(seed)
        return feed.instrument, _paced(feed, speed, "exch_ns"), None
    if kind == "binance":
        inst = binance_usdm_btcusdt()
        return (
            inst,
            iter(BinanceReplay(_path(arg), inst, speed)),
            (lambda b: BinanceBookSync(b, BinanceMarket.USDM).receive),
        )
    if kind == "lobster":
        p = _path(arg)
        read_lobster_session(p)  # fails early and clearly on a file that is not a sample
        events = iter_lobster_zip(p)
        first = next(events)
        token = first.token if isinstance(first, BookUpdate) else 0

        def chain() -> Iterator[object]:
            yield first
            yield from events

        # LOBSTER's recv_ns is the recorded time after midnight: pace on it
        return lobster_instrument(token=token), _paced(chain(), speed, "recv_ns"), None
    raise ValueError(f"unknown feed {spec!r}: use synthetic, binance:PATH or lobster:PATH")


def _path(arg: str) -> Path:
    if not arg:
        raise ValueError("this feed needs a file: binance:PATH or lobster:PATH")
    p = Path(arg)
    if not p.exists():
        raise ValueError(f"no such file: {p}")
    return p


def _paced(events: Iterator[object], speed: float, clock: str) -> Iterator[object]:
    """Events at `speed` x the pace of their `clock` attribute (0: as fast as possible)."""
    t0_wall = time.perf_counter_ns()
    t0_ev = -1
    for ev in events:
        if speed > 0:
            t = getattr(ev, clock, 0)
            if t:
                if t0_ev < 0:
                    t0_ev = t
                delay = t0_wall + int((t - t0_ev) / speed) - time.perf_counter_ns()
                if delay > 0:
                    time.sleep(delay / 1e9)
        yield ev


def run_signals(
    feed: str = "synthetic", seconds: float = 10.0, speed: float = 0.0, seed: int = 7
) -> int:
    for name in remove_stale():
        print(f"removed stale segment /dev/shm/{name} (a run that died)")
    try:
        inst, events, sync = open_feed(feed, seed, speed)
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"cannot read feed {feed!r}: {e}") from e
    run = new_run_id()
    # every resource is released (views first, then segments closed and unlinked) however the
    # run ends: LIFO callbacks registered as soon as each one exists
    with contextlib.ExitStack() as stack:
        return _run(stack, run, feed, inst, events, sync, seconds, speed)


def _owned(stack: contextlib.ExitStack, seg: HistogramSet | Segment | MatrixRing | Ring) -> None:
    def drop() -> None:
        seg.close()
        seg.unlink()

    stack.callback(drop)


def _run(
    stack: contextlib.ExitStack,
    run: str,
    feed: str,
    inst: Instrument,
    events: Iterator[object],
    sync: Callable[[L2Book], BookSync] | None,
    seconds: float,
    speed: float,
) -> int:
    hs = HistogramSet.create(run, HISTOGRAMS)
    _owned(stack, hs)
    gate_off = align_up(BOOK_TOP.size, LINE)
    state = Segment.create(run, "market", STATE, extra=gate_off + align_up(GATE.size, LINE))
    _owned(stack, state)
    heat = MatrixRing.create(run, "heatmap", 1024, 10)
    _owned(stack, heat)
    ring = Ring.create(run, "signals", 4096, SIGNAL.size, Overflow.OVERWRITE, message=SIGNAL)
    _owned(stack, ring)
    view = state.view()
    stack.callback(view.release)
    writers = {n: hs.writer(n) for n in HISTOGRAMS}
    for w in writers.values():
        stack.callback(w.release)
    top = TopWriter(view, state.extra)
    stack.callback(top.close)
    gate = GateWriter(view, state.extra + gate_off)
    stack.callback(gate.close)
    hw, sw = heat.writer(), ring.writer()
    stack.callback(hw.close)
    stack.callback(sw.close)
    # Binance events carry exchange time: the gate's CLOCK_STABLE follows the offset estimate
    # (as fast as possible, the local clock does not follow the exchange's: it stays closed)
    clock = ClockOffsetEstimator() if feed.startswith("binance") else None
    p = MarketPipeline(
        inst,
        histograms=writers,
        top=top,
        gate=gate,
        signals=sw,
        heatmap=hw,
        sync=sync,
        clock_stable=(lambda: clock.stable) if clock is not None else None,
    )
    pace = "simulated" if feed.startswith("synthetic") else "recorded"
    print(
        f"run {run}: feed {feed} ({inst.symbol}, tick {inst.format_price(inst.tick)}), "
        f"{'as fast as possible' if speed == 0 else f'{speed:g}x {pace} pace'}, "
        f"{seconds:g} s; shared memory: /dev/shm/vajra-{run}-*"
    )
    phase = "-"
    status = 0
    end = time.monotonic() + seconds
    next_print = time.monotonic() + 1.0
    last_events = 0
    try:
        for ev in events:
            if type(ev) is PhaseChange:
                phase = ev.phase.name
                continue
            if clock is not None:
                exch = getattr(ev, "exch_ns", 0)
                if exch:
                    clock.add(getattr(ev, "recv_ns", 0), exch)
            p.on_event(ev)
            if p.events & 255 == 0:
                now = time.monotonic()
                if now >= next_print:
                    print(_status(p, phase, p.events - last_events), flush=True)
                    last_events = p.events
                    next_print = now + 1.0
                if now >= end:
                    break
        else:
            print("feed ended")
    except KeyboardInterrupt:
        print("interrupted")
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        # a file that is not what its name says: report it, keep what was measured
        print(f"feed error after {p.events:,} events: {e}", file=sys.stderr)
        status = 1
    print(_status(p, phase, p.events - last_events))
    for name in HISTOGRAMS:
        snap = hs.snapshot(name)
        if snap.total:
            pct = snap.percentiles([50, 99, 99.9])
            print(
                f"  {name:16} n={snap.total:<9,} p50 {pct[50] / 1e3:7.2f} µs  "
                f"p99 {pct[99] / 1e3:7.2f} µs  p99.9 {pct[99.9] / 1e3:8.2f} µs"
            )
    print(
        f"  signals sent {p.signals_sent:,} (ring overwrites oldest: "
        f"{ring.stats()['overwritten']:,} never read), top reads merged with the update "
        f"{p.book.merged_reads:,} (fell back to applying it first {p.book.merge_fallbacks:,}), "
        f"book violations {p.book.violations()}"
    )
    return status


def _status(p: MarketPipeline, phase: str, n: int) -> str:
    o, s, b, inst = p.oracle, p.sonar, p.book, p.instrument
    failing = s.failing()
    gate = "OPEN" if not failing else "closed: " + ",".join(f.lower() for f in failing)
    return (
        f"{time.strftime('%H:%M:%S')} {n:>8,} ev/s  {inst.format_price(b.best_bid() * b.tick)}"
        f" / {inst.format_price(b.best_ask() * b.tick)}  wobi {o.wobi:+.2f}  "
        f"liq {o.liq_imb_pct:+5.1f}%  str {o.strength:+.2f}  edge {o.edge_bps:+.2f}bp  "
        f"H {s.entropy:.2f} {s.regime.name}  phase {phase}  gate {gate}"
    )
