"""`vajra run`: the engine process. One thread per module, each pinned by the core plan, GIL off.

```
 feed thread ──deque──▶ oracle thread (book, Oracle, Sonar) ──signals ring (shm)──▶ execution
      │                                                                              thread
      └──────deque──────────────────────────────────────────▶ simulated venue  ◀──  (gateway,
 sentinel thread: /proc per thread, heartbeats ──▶ health block          (same thread) Sentinel)
 journal thread: SQLite WAL, fed by the execution thread's journal ring
 main thread: control commands, the status line, .hlog intervals, signals, shutdown
```

The feed thread stamps each event on `perf_counter_ns` as it is released (`vajra.engine.feed`)
and hands it to the Oracle thread and to the venue. In this process the hand-off is a
`collections.deque` of event objects (appends and pops are atomic in 3.13t); the Oracle ->
Execution hop, the one the engine is judged on, is the shared-memory Signal ring with the
event's stamp inside, so Execution measures tick -> signal, the ring hop, the decision and
tick -> order on one clock. The simulated venue is owned by the Execution thread, as a live
venue adapter would be: it sees the market events (its matching needs them) in the order the
feed released them, before the Signals they cause.

The Sentinel object (risk checks, RTT lockdown, kill) is owned by the Execution thread: every
order passes it synchronously. The Sentinel *thread* watches the others: thread CPU time,
context switches and migrations from /proc into the health block; the Execution thread feeds
each module's heartbeat word to Sentinel, which locks down when one stops.

Kill: the kill word is read by every loop of the Execution thread (and by the gateway before
every write, and by the Oracle thread's gate); KILLED refuses every write from the loop that
saw it; Execution cancels everything resting; once every resting order has its cancel sent,
the engine acknowledges in the control block. Both delays (flag set -> writes blocked, flag
set -> all cancels sent) are measured on the control block's stamp.
"""

from __future__ import annotations

import contextlib
import gc
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from vajra.engine import links, wiring
from vajra.engine.config import Config
from vajra.engine.feed import Pacer, PhaseChange, Source, open_source, restamp
from vajra.engine.state import ENGINE, EXEC, FLAGS, HEALTH, THREADS, engine_blocks
from vajra.journal.journal import Journal, JournalWriter, KillAction, KillCommand, read_entries
from vajra.journal.recover import reconcile, replay
from vajra.journal.tap import GatewayJournal
from vajra.market.events import Trade
from vajra.market.feeds.synthetic import Phase
from vajra.market.top import TopWriter
from vajra.modules.execution import ExecState, Execution
from vajra.modules.oracle import OracleStateWriter
from vajra.modules.pipeline import HISTOGRAMS as PIPELINE_HISTOGRAMS
from vajra.modules.pipeline import MarketPipeline
from vajra.modules.sentinel import EmergencyState, Reason, RiskStateView, RiskWriter, Sentinel
from vajra.modules.signal import SIGNAL, SIGNAL_STRUCT
from vajra.modules.sonar import GATE, GateWriter, Regime
from vajra.runtime import gil
from vajra.runtime.coreplan import CorePlan, Machine, WaitKind, plan_from_config
from vajra.runtime.pinning import pin_current_thread, read_thread_stats, set_current_thread_name
from vajra.runtime.wait import WaitStrategy, make_wait
from vajra.shm.control import Command, CommandResult, Control, EngineState, KillOrigin
from vajra.shm.histogram import HistogramSet, HistogramSnapshot
from vajra.shm.hlog import HlogWriter
from vajra.shm.matrix import MatrixRing
from vajra.shm.ring import Overflow, Ring
from vajra.shm.segment import Segment, new_run_id, remove_stale
from vajra.shm.seqlock import SeqlockReader, SeqlockWriter
from vajra.trading.gateway import OrderGateway
from vajra.trading.orders import RttKind
from vajra.venues.base import CancelRequest, ModifyRequest, PlaceRequest

#: Histograms the engine adds to the pipeline's (ns unless named otherwise).
ENGINE_HISTOGRAMS = (
    "feed.release",  # feed thread: release stamp -> handed to both queues
    "queue_hop",  # feed release stamp -> the Oracle thread takes the event
    "ring_hop",  # signal published -> Execution reads it
    "decision",  # Signal read -> order handed to the venue (every check included)
    "tick_to_order",  # market event stamp -> order handed to the venue (end to end, internal)
    "execution.signal",  # Execution's time per Signal
    "order_rtt",  # place -> first answer
    "cancel_rtt",  # cancel -> its answer
    "fill_latency",  # place -> first fill seen
    "cancel_lateness",  # 200 ms timer: cancel sent - deadline
    "kill.blocked",  # kill word set -> the Execution loop that saw it (writes refused from then)
    "kill.cancels_sent",  # kill word set -> every resting order has its cancel sent
)
HISTOGRAMS = (*PIPELINE_HISTOGRAMS, *ENGINE_HISTOGRAMS)
#: Sentinel's module ids for heartbeats (its bit mask has room for 16).
_MODULE_ID = {name: i for i, name in enumerate(THREADS)}
_HOUSEKEEPING_NS = 10_000_000  # the Execution thread's slower duties, every 10 ms
_PUBLISH_NS = 50_000_000  # exec and risk blocks for the monitor, every 50 ms
#: the Sentinel thread's /proc round: it shares a CPU with the feed on small machines, and each
#: round is ~1 ms of Python per thread read; once a second is enough for a CPU-use gauge
_HEALTH_INTERVAL_S = 1.0
_STOP_DRAIN_NS = 2_000_000_000  # at shutdown, wait this long for the cancels' answers


class _Shared:
    """What the threads share in this process. Each field has one writer (named)."""

    def __init__(self) -> None:
        self.links = links.Shared()  # the `threads` topology's hand-offs
        self.errors: list[tuple[str, str, str]] = []  # any thread: (module, error, traceback)
        self.tids: dict[str, tuple[int, int]] = {}  # module -> (pid, tid); each its own entry
        self.thread_stats: dict[str, Any] = {}  # sentinel: the last /proc reading per thread
        self.kill_report: dict[str, int] = {}  # execution
        self.summary: dict[str, Any] = {}  # execution, at exit


class Engine:
    """Set up in `__init__` (nothing started); `run()` starts the threads, serves until the
    duration ends, a signal arrives or a thread fails, and shuts down; returns the exit code:
    0 a clean stop, 3 stopped after a kill (KILLED), 1 a module failed."""

    def __init__(
        self,
        cfg: Config,
        *,
        out: TextIO = sys.stdout,
        run_id: str | None = None,
        machine: Machine | None = None,
        plan: CorePlan | None = None,
    ) -> None:
        self.cfg = cfg
        self.out = out
        self.run_id = run_id or new_run_id()
        self.plan: CorePlan = plan or plan_from_config(cfg.cores, machine or Machine.detect())
        #: `processes`: feed, Oracle, Execution and the venue each in a process of its own; this
        #: one supervises (main, the Sentinel watch, the journal) and owns the shared memory
        self.processes = cfg.engine.topology == "processes"
        self.source: Source = open_source(cfg.feed.source, cfg.feed.seed, cfg.feed.speed)
        self.inst = self.source.instrument
        self.rate, self.cost_note = wiring.round_trip_rate(cfg, self.inst)
        self.sh = _Shared()
        self.run_dir = Path(cfg.engine.run_dir) / self.run_id
        self._stack = contextlib.ExitStack()
        self.summary: dict[str, Any] = {}
        self._procs: dict[str, Any] = {}  # module -> multiprocessing.Process (`processes`)
        self._reaped: set[str] = set()
        self._gc_pauses: list[int] = []  # ns each collection stopped the world for
        self._exec_spikes = 0  # spikes the Execution thread posted (its `spike_requests` word)

    # -- lifecycle ------------------------------------------------------------------------------

    def run(self) -> int:
        with self._stack:
            for name in remove_stale():
                self._say(f"removed stale segment /dev/shm/{name} (a run that died)")
            self._setup()
            return self._serve()

    def _owned(self, seg: Any) -> None:
        def drop() -> None:
            seg.close()
            seg.unlink()

        self._stack.callback(drop)

    def _setup(self) -> None:
        cfg, run = self.cfg, self.run_id
        self.run_dir.mkdir(parents=True, exist_ok=False)
        (self.run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1) + "\n")
        self.hs = HistogramSet.create(run, HISTOGRAMS)
        self._owned(self.hs)
        self.blocks = engine_blocks()
        self.seg = Segment.create(run, "engine", ENGINE, extra=self.blocks.size)
        self._owned(self.seg)
        self.control = Control.create(run)
        self._owned(self.control)
        self.signals = Ring.create(
            run, "signals", 4096, SIGNAL.size, Overflow.REJECT, message=SIGNAL
        )
        self._owned(self.signals)
        self.heat = MatrixRing.create(run, "heatmap", 1024, 10)
        self._owned(self.heat)
        if self.processes:
            for ring in links.create_rings(run):
                self._owned(ring)
        # the journal continues across runs (one sequence, one file), so a restart reconciles
        journal_path = Path(cfg.engine.run_dir) / "journal.db"
        self.journal = Journal(journal_path, run_id=run)
        self._stack.callback(self._close_journal)
        #: what the journal says of earlier runs (replayed once, before any thread starts)
        self._journaled = replay(read_entries(journal_path))
        #: Execution's journal ring: made here, so an Execution process can attach to it
        self._journal_writer = self.journal.writer("exec")
        self.ctl_main = self.control.reader()
        self._stack.callback(self.ctl_main.close)
        self.ctl_main.set_state(EngineState.STARTING)
        self._map()
        self._exec_reader = SeqlockReader(self.q, self.seg.extra + self.blocks.exec, EXEC)
        self.hlog = HlogWriter(self.run_dir / "latency.hlog", comment=f"vajra run {run}")
        self._stack.callback(self.hlog.close)

    def _attach(self) -> None:
        """A module process's way in: the segments the supervising process made (and unlinks)."""
        run = self.run_id
        self.hs = HistogramSet.attach(run)
        self.blocks = engine_blocks()
        self.seg = Segment.attach(run, "engine", ENGINE)
        self.control = Control.attach(run)
        self.signals = Ring.attach(run, "signals", message=SIGNAL)
        self.heat = MatrixRing.attach(run, "heatmap", readonly=False)
        for seg in (self.hs, self.seg, self.control, self.signals, self.heat):
            self._stack.callback(seg.close)
        self._map()

    def _map(self) -> None:
        """Word indexes and this process's views and histogram writers."""
        self.view = self.seg.view()
        self._stack.callback(self.view.release)
        self.q = self.seg.cast(self.view, "q")
        self._stack.callback(self.q.release)
        self.hw = {n: self.hs.writer(n) for n in HISTOGRAMS}
        for w in self.hw.values():
            self._stack.callback(w.release)
        hb = self.seg.extra // 8 + self.blocks.health // 8
        self.health_w = {n: hb + HEALTH.word(n) for n in HEALTH.names()}
        self.gate_open_w = (self.seg.extra + self.blocks.gate) // 8 + GATE.word("open")
        fb = (self.seg.extra + self.blocks.flags) // 8
        self.flag_w = {n: fb + FLAGS.word(n) for n in FLAGS.names()}

    def _close_journal(self) -> None:
        with contextlib.suppress(Exception):
            self.journal.close()

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # -- the main thread ----------------------------------------------------------------------

    def _serve(self) -> int:
        cfg, sh = self.cfg, self.sh
        inst = self.inst
        plan = ", ".join(f"{m} {c}" for m, c in self.plan.assignments.items())
        self._say(
            f"run {self.run_id}: {inst.symbol} ({inst.segment}, tick "
            f"{inst.format_price(inst.tick)}, lot {inst.lot}) from {cfg.feed.source} at "
            f"{'full speed' if cfg.feed.speed == 0 else f'{cfg.feed.speed:g}x pace'}, "
            f"venue {cfg.venue.kind}, broker {cfg.broker.profile}, {self.cost_note}; "
            f"cores: {plan}; "
            f"shared memory /dev/shm/vajra-{self.run_id}-*; files {self.run_dir}/"
        )
        if cfg.execution.nev.threshold_paise < 0:
            self._say(
                f"DEMO: NEV threshold {cfg.execution.nev.threshold_paise / 100:,.0f} Rs: orders "
                "go out at an expected loss after costs, to show the machinery "
                "(set execution.nev.threshold_paise = 0 to trade only positive NEV)"
            )
        stop = threading.Event()
        received: list[int] = []

        def on_signal(signum: int, frame: object) -> None:
            received.append(signum)
            stop.set()

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        self._stack.callback(lambda: [signal.signal(s, h) for s, h in old.items()])
        bodies = self._bodies()
        threads: dict[str, threading.Thread] = {}
        self.journal.start()
        jt = self.journal._thread
        if jt is not None and jt.native_id is not None:
            sh.tids["journal"] = (os.getpid(), jt.native_id)
            with contextlib.suppress(OSError):
                os.sched_setaffinity(jt.native_id, {self.plan.assignments["journal"]})
        threads["sentinel"] = threading.Thread(
            target=self._guard,
            args=("sentinel", self._sentinel),
            name="vajra-sentinel",
            daemon=True,
        )
        threads["sentinel"].start()
        if self.processes:
            failed = self._start_processes()
            if failed:
                return self._abort_start(failed, threads)
        else:
            for name, body in bodies.items():  # the venue first: it answers Execution
                threads[name] = threading.Thread(
                    target=self._guard, args=(name, body), name=f"vajra-{name}", daemon=True
                )
                threads[name].start()
        # the heap built so far is permanent: frozen, it is never scanned again; collections of
        # what the run allocates are spaced out (3.13t stops every thread for a collection)
        gc.collect()
        gc.freeze()
        gc.set_threshold(cfg.engine.gc_threshold)
        gc_started = [0]

        def gc_timer(phase: str, info: dict[str, int]) -> None:  # 3.13t stops every thread
            if phase == "start":
                gc_started[0] = time.perf_counter_ns()
            else:
                self._gc_pauses.append(time.perf_counter_ns() - gc_started[0])

        gc.callbacks.append(gc_timer)
        self._stack.callback(gc.callbacks.remove, gc_timer)
        self.ctl_main.set_state(EngineState.ACTIVE)
        t0 = time.monotonic()
        end = t0 + cfg.engine.duration_s if cfg.engine.duration_s > 0 else float("inf")
        next_status = t0 + cfg.engine.status_interval_s if cfg.engine.status_interval_s else None
        next_hlog = t0 + cfg.engine.hlog_interval_s
        next_spike = t0 + cfg.venue.spike_first_s if cfg.venue.spike_every_s > 0 else float("inf")
        prev = {n: self.hs.snapshot(n) for n in HISTOGRAMS}
        fw, q = self.flag_w, self.q
        oracle_events = self.health_w["oracle_events"]
        why = "duration"
        while True:
            now = time.monotonic()
            if self.processes:
                self._reap()
            if sh.errors:
                kind = "process" if self.processes else "thread"
                why = f"{sh.errors[0][0]} {kind} failed"
                break
            if stop.is_set():
                why = signal.Signals(received[0]).name if received else "stop"
                break
            if now >= end:
                break
            if q[fw["ended"]] and q[oracle_events] >= q[fw["released"]]:
                why = "feed ended"
                break
            if now >= next_spike:
                self._spike()
                next_spike = now + cfg.venue.spike_every_s
            if now >= next_hlog:
                prev = self._hlog_interval(prev)
                next_hlog = now + cfg.engine.hlog_interval_s
            if next_status is not None and now >= next_status:
                self._say(self.status_line())
                next_status = now + cfg.engine.status_interval_s
            self.ctl_main.heartbeat()
            stop.wait(0.02)
        self._say(f"stopping ({why}): cancelling resting orders, flushing the journal")
        self.ctl_main.set_state(EngineState.STOPPED)
        q[fw["stop_feed"]] = 1
        q[fw["stop_oracle"]] = 1
        q[fw["stop_exec"]] = 1
        alive = self._join("execution", threads, 10)
        q[fw["stop_venue"]] = 1  # after Execution: its last cancels need the venue's answers
        q[fw["stop_sentinel"]] = 1
        for name in ("feed", "oracle", "sentinel", "venue"):
            alive += self._join(name, threads, 5)
        if self.processes:
            self._reap()
        self._hlog_interval(prev)
        self.journal.close()
        summary = self.summary = self._summary(why, time.monotonic() - t0)
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        self._print_summary(summary)
        if alive:
            self._say(f"modules that did not stop: {alive}")
        if sh.errors:
            for name, _, tb in sh.errors:
                self._say(f"{name} failed:\n{tb}")
            return 1
        if alive:
            return 1
        return 3 if summary["emergency"] == "KILLED" else 0

    def _join(self, name: str, threads: dict[str, threading.Thread], timeout: float) -> list[str]:
        """Wait for a module to stop; a module process that will not is killed (and reported)."""
        t = threads.get(name)
        if t is not None:
            t.join(timeout)
            return [name] if t.is_alive() else []
        p = self._procs.get(name)
        if p is None:
            return []
        p.join(timeout)
        if p.exitcode is None:
            p.kill()
            p.join(5)
            return [name]
        return []

    # -- module processes (`topology = "processes"`) --------------------------------------------

    def _start_processes(self) -> list[str]:
        """Start the module processes (the venue first, the feed last, once the others poll
        their rings); returns the modules that failed to come up (empty: all running)."""
        ctx = multiprocessing.get_context("spawn")
        plan = (dict(self.plan.assignments), dict(self.plan.waits), self.plan.housekeeping)
        for name in ("venue", "execution", "oracle", "feed"):
            if name == "feed" and not self._await_beats(("venue", "execution", "oracle")):
                break
            p = ctx.Process(
                target=run_module,
                args=(self.cfg, self.run_id, name, plan, os.getpid()),
                name=f"vajra-{name}",
                daemon=True,
            )
            p.start()
            self._procs[name] = p
            assert p.pid is not None
            self.sh.tids[name] = (p.pid, p.pid)  # the module runs on its process's main thread
        self._reap()
        return [e[0] for e in self.sh.errors]

    def _await_beats(self, names: tuple[str, ...], timeout: float = 60.0) -> bool:
        """Each named module has beaten once (its loop runs); False if one died first."""
        deadline = time.monotonic() + timeout
        words = [self.health_w[f"{n}_hb_ns"] for n in names]
        while not all(self.q[w] for w in words):
            self._reap()
            if self.sh.errors or time.monotonic() > deadline:
                if not self.sh.errors:
                    late = [n for n, w in zip(names, words, strict=True) if not self.q[w]]
                    self.sh.errors.append((late[0], "did not start in time", ""))
                return False
            time.sleep(0.005)
        return True

    def _reap(self) -> None:
        """Collect what finished module processes left: their report (`<module>.json` in the
        run directory), and an error for one that died without a clean report."""
        for name, p in self._procs.items():
            if p.exitcode is None or name in self._reaped:
                continue
            self._reaped.add(name)
            path = self.run_dir / f"{name}.json"
            try:
                rep = json.loads(path.read_text())
            except (OSError, ValueError):
                rep = {}
            self.sh.summary.update(rep.get("summary", {}))
            if rep.get("kill_report"):
                self.sh.kill_report.update(rep["kill_report"])
            for e in rep.get("errors", []):
                self.sh.errors.append(tuple(e))
            if p.exitcode != 0 and not rep.get("errors"):
                self.sh.errors.append(
                    (name, f"process exited with {p.exitcode}", "(no report: it died abruptly)")
                )
            elif not rep and not self.q[self.flag_w["stop_exec"]]:
                self.sh.errors.append((name, "process ended before the engine stopped", ""))

    def _abort_start(self, failed: list[str], threads: dict[str, threading.Thread]) -> int:
        self._say(f"module processes failed to start: {failed}")
        for name in self.flag_w:
            if name.startswith("stop_"):
                self.q[self.flag_w[name]] = 1
        for name in list(self._procs):
            self._join(name, threads, 5)
        threads["sentinel"].join(5)
        for name, err, tb in self.sh.errors:
            self._say(f"{name}: {err}\n{tb}")
        return 1

    def run_module(self, name: str) -> int:
        """In a module process: attach, run the module's loop on this (pinned) main thread,
        report to the supervisor through `<run_dir>/<module>.json`; exit code 0 or 1."""
        with self._stack:
            self._attach()
            self._guard(name, self._bodies()[name])
            report = {
                "summary": self.sh.summary,
                "kill_report": self.sh.kill_report,
                "errors": self.sh.errors,
            }
            tmp = self.run_dir / f".{name}.json"
            tmp.write_text(json.dumps(report, default=str))
            tmp.rename(self.run_dir / f"{name}.json")
            return 1 if self.sh.errors else 0

    def _bodies(self) -> dict[str, Callable[[], None]]:
        """Each module's loop, whichever topology runs it (a thread or a process's main)."""
        return {
            "venue": self._venue,
            "execution": self._execution,
            "oracle": self._oracle,
            "feed": self._feed,
        }

    def _guard(self, name: str, fn: Callable[[], None]) -> None:
        """Every thread: its failure stops the engine with the traceback, never silently."""
        try:
            self.sh.tids[name] = (os.getpid(), threading.get_native_id())
            set_current_thread_name(f"vajra-{name}")
            cpu = self.plan.assignments["feed" if name == "venue" else name]
            pin_current_thread(cpu)
            fn()
        except BaseException as e:
            self.sh.errors.append((name, repr(e), traceback.format_exc()))

    def _words(self) -> tuple[memoryview, memoryview]:
        """This thread's own views of the engine segment: a memoryview both threads of a
        hand-off touch is a shared object (see `vajra.engine.state.FLAGS`)."""
        view = self.seg.view()
        return view, self.seg.cast(view, "q")

    def _shares_cpu(self, a: str, b: str) -> bool:
        return self.plan.assignments[a] == self.plan.assignments[b]

    def _wait(self, module: str) -> WaitStrategy:
        """The plan's wait strategy. A module with company on its CPU yields on its first idle
        poll: spinning first (the strategy's default 200 polls, ~0.4 ms of this loop) would keep
        the CPU from the thread it shares it with, which is the very thread it waits for."""
        kind = self.plan.waits[module]
        cpu = self.plan.assignments[module]
        if kind is WaitKind.SPIN_YIELD and (
            len(self.plan.modules_on(cpu)) > 1 or cpu == self.plan.housekeeping
        ):
            return make_wait(kind, spins=0)
        return make_wait(kind)

    def _spike(self) -> None:
        v, q, fw = self.cfg.venue, self.q, self.flag_w
        q[fw["spike_dur_ns"]] = int(v.spike_duration_ms * 1e6)  # the terms, then the count
        q[fw["spike_extra_ns"]] = int(v.spike_extra_ms * 1e6)
        q[fw["spikes"]] += 1

    def _hlog_interval(self, prev: dict[str, HistogramSnapshot]) -> dict[str, HistogramSnapshot]:
        now = {n: self.hs.snapshot(n) for n in HISTOGRAMS}
        for n in HISTOGRAMS:
            iv = now[n].subtract(prev[n])
            if iv.total:
                self.hlog.write(iv, tag=n)
        return now

    def _pct(self, name: str, p: float) -> float:
        s = self.hs.snapshot(name)
        return s.percentile(p) / 1e3 if s.total else float("nan")

    def status_line(self) -> str:
        """One line from shared memory (what the monitor reads too)."""
        ex = self._read_exec()
        gate = self.q[self.gate_open_w]
        regime = Regime(self.q[self.gate_open_w - GATE.word("open") + GATE.word("regime")]).name
        otr_t = ex["otr_trades"] or 1
        return (
            f"{time.strftime('%H:%M:%S')} {EmergencyState(ex['emergency']).name:8} "
            f"{ExecState(ex['state']).name:8} {regime:6} gate {'OPEN' if gate else 'shut'} "
            f"phase {self._phase():14} orders {ex['placed']:>5} fills {ex['fills']:>4} "
            f"cancels {ex['cancels_sent']:>5} open {ex['open_orders']:>2} pos {ex['position']:>+6} "
            f"pnl {ex['pnl_paise'] / 100:>+10,.0f} Rs  OTR {ex['otr_penalty_orders'] / otr_t:5.1f} "
            f"(slab {ex['otr_slab_paise']}p)  RTT p99 {self._pct('order_rtt', 99) / 1e3:5.1f} ms  "
            f"tick->order p99 {self._pct('tick_to_order', 99):6.0f} µs"
        )

    def _phase(self) -> str:
        p = self.q[self.flag_w["phase"]]
        return Phase(p).name if p in Phase._value2member_map_ else "-"

    def _read_exec(self) -> dict[str, Any]:
        return dict(self._exec_reader.read())

    # -- feed thread ----------------------------------------------------------------------------

    def _feed(self) -> None:
        cfg = self.cfg
        src = self.source
        perf = time.perf_counter_ns
        h = self.hw["feed.release"]
        hb, loops, events = (self.health_w[f"feed_{k}"] for k in ("hb_ns", "loops", "events"))
        view, q = self._words()
        fw = self.flag_w
        stop_w, trading_w, last_w = fw["stop_feed"], fw["trading_from_ns"], fw["last_event_ns"]
        released_w, trades_w, phase_w = fw["released"], fw["trades"], fw["phase"]

        def stopping() -> bool:
            q[hb] = perf()  # waiting for room is not being dead
            return q[stop_w] != 0

        out = (
            links.feed_out_rings(self.run_id, q, released_w, trades_w, stopping)
            if self.processes
            else links.feed_out_threads(self.sh.links, q, released_w, trades_w, stopping)
        )
        push, trade, ahead, idle = out.push, out.trade, out.ahead, out.idle
        n = 0
        if src.initial is not None:
            push(restamp(src.initial, perf()))
            n = 1

        def beat() -> None:
            q[hb] = perf()

        # sharing a CPU with the Oracle: let it take the event now, not after this thread has
        # read and parsed the next one
        handoff = os.sched_yield if self._shares_cpu("feed", "oracle") else None

        def drained() -> None:  # the warm-up is worked through before the first live event
            while not idle() and not q[stop_w]:
                q[hb] = perf()
                time.sleep(0.001)

        trading = 0
        warmup_ns = int(cfg.feed.warmup_s * 1e9)
        try:
            while not q[stop_w]:
                # a replay that starts over is paced on from where it is, with no second
                # warm-up: its first minute would be stamped in the past while live
                pacer = Pacer(cfg.feed.speed, 0 if trading else warmup_ns, drained, beat)
                for market_ns, ev in src.events():
                    if q[stop_w]:
                        break
                    if type(ev) is PhaseChange:
                        q[phase_w] = int(ev.phase)
                        continue
                    stamp = pacer.release(market_ns)
                    ev = restamp(ev, stamp)
                    if not trading and not pacer.warming:
                        trading = stamp
                        q[trading_w] = stamp
                    if not push(ev):
                        break
                    n += 1
                    if type(ev) is Trade:
                        trade(ev.price, ev.qty)
                    q[last_w] = stamp
                    if trading:  # warm-up events are stamped in the past: not timed
                        h.record(perf() - stamp)
                        if handoff is not None:
                            handoff()
                    q[events] = n
                    q[loops] = n
                    q[hb] = perf()
                    # as fast as possible: stay at most 256 events ahead of the Oracle, so an
                    # event's stamp is taken near when the engine can take it (the latency is
                    # the engine's, the events/s the measure) and memory stays bounded
                    while ahead() > 256 and not q[stop_w]:
                        q[hb] = perf()
                        time.sleep(0.0001)
                if src.endless or not cfg.feed.loop:
                    break
            q[fw["ended"]] = 1
        finally:
            out.close()
            q.release()
            view.release()

    # -- oracle thread --------------------------------------------------------------------------

    def _oracle(self) -> None:
        sh = self.sh
        perf = time.perf_counter_ns
        view, q = self._words()
        fw = self.flag_w
        stop_w, trading_w, released_w = fw["stop_oracle"], fw["trading_from_ns"], fw["released"]
        market = (
            links.market_taker_rings(self.run_id, "market.oracle")
            if self.processes
            else links.taker_threads(sh.links.oracle_q, q, released_w)
        )
        base = self.seg.extra
        ctl = self.control.reader()
        risk = RiskStateView(view, base + self.blocks.risk)
        top = TopWriter(view, base + self.blocks.top)
        ostate = OracleStateWriter(view, base + self.blocks.oracle)
        gate = GateWriter(view, base + self.blocks.gate)
        sw, heat = self.signals.writer(), self.heat.writer()
        writers = {n: self.hw[n] for n in PIPELINE_HISTOGRAMS}
        pipe = MarketPipeline(
            self.inst,
            self.cfg.oracle,
            self.cfg.sonar,
            histograms=writers,
            top=top,
            oracle_state=ostate,
            gate=gate,
            signals=sw,
            heatmap=heat,
            sync=self.source.sync,
            sentinel_ok=risk.ok,
            kill_clear=lambda: ctl.kill_requested() == 0,
            after_signal=os.sched_yield if self._shares_cpu("oracle", "execution") else None,
        )
        h_hop = self.hw["queue_hop"]
        hb, loops, events = (self.health_w[f"oracle_{k}"] for k in ("hb_ns", "loops", "events"))
        wait = self._wait("oracle")
        take = market.take
        on_event = pipe.on_event
        n = it = 0
        next_tick = 0
        trading = 1 << 62  # no event is timed before the feed says the warm-up is over
        sonar = pipe.sonar
        regime = sonar.regime
        seen: dict[str, int] = {regime.name: 1}  # regime -> times entered
        live = 0  # events handled since trading started (the throughput the bench reports)
        try:
            while True:
                it += 1
                ev = take()
                if ev is not None:
                    # hot loop: a deque pop (threads) or a frame decode (processes, ~3-10 µs),
                    # the pipeline (~10-20 µs per book update), a stamp
                    n += 1
                    t_ev = getattr(ev, "recv_ns", 0)
                    if t_ev >= trading:  # warm-up events are stamped in the past: not timed
                        h_hop.record(perf() - t_ev)
                        live += 1
                    elif q[trading_w]:
                        trading = q[trading_w]
                    on_event(ev)
                    if sonar.regime is not regime:  # for the summary: what the run went through
                        regime = sonar.regime
                        seen[regime.name] = seen.get(regime.name, 0) + 1
                    if n & 63 == 0:
                        q[events] = n
                        q[hb] = perf()
                        if q[stop_w]:
                            break
                    wait.reset()
                    continue
                if q[stop_w]:
                    break
                now = perf()
                q[hb] = now
                q[loops] = it
                q[events] = n
                if now >= next_tick:  # staleness is judged by the clock when nothing arrives
                    pipe.tick(now)
                    next_tick = now + 10_000_000
                wait.idle()
        finally:
            t_end = perf()
            sh.summary["regimes_entered"] = seen
            sh.summary["live_events"] = live
            sh.summary["live_seconds"] = (t_end - trading) / 1e9 if trading < t_end else 0.0
            for c in (top, ostate, gate, sw, heat, risk, ctl, market):
                c.close()
            wait.close()
            q.release()
            view.release()

    # -- execution thread -----------------------------------------------------------------------

    def _build_execution(
        self, link: links.VenueLink | links.ShmVenueLink
    ) -> tuple[Execution, OrderGateway, Sentinel]:
        cfg = self.cfg
        inst = self.inst
        now = time.perf_counter_ns()
        sentinel = Sentinel(cfg.risk, now_ns=now)
        budgets = wiring.budgets(cfg, inst)
        rate = self.rate
        holder: list[Execution] = []

        def ltp(token: int) -> int:
            return holder[0].ltp if holder else 0

        def cost(token: int, side: object, price: int, qty: int) -> int:
            return round(rate(price, qty)[0] / 2)  # one side of the round trip

        ctl = self.control.reader()
        self._exec_ctl = ctl
        if self.processes:  # the journal thread is the supervisor's: attach to its ring
            ring = Ring.attach(self.run_id, "journal.exec")
            self._stack.callback(ring.close)
            self._journal_writer = JournalWriter("exec", ring)
            self._journaled = replay(read_entries(Path(cfg.engine.run_dir) / "journal.db"))
        gw = OrderGateway(
            link,
            budgets,
            sentinel,
            {inst.token: inst},
            kill_word=ctl.kill_requested,
            ltp=ltp,
            cost=cost,
            journal=GatewayJournal(self._journal_writer),
        )
        ex = Execution(cfg.execution, gw, inst, rate, now)
        holder.append(ex)
        self.gateway, self.execution = gw, ex  # for inspection after the run (tests)
        state = self._journaled
        if state.open:  # a previous run died with orders open: none survive at this venue
            rec = reconcile(state, [])
            self.sh.summary["restored"] = {
                "journal_open": list(state.open),
                "lost": list(rec.lost),
                "cancelled": list(rec.cancel),
            }
        gw.tracker.advance_client_ids(state.client_id_hwm)
        return ex, gw, sentinel

    def _execution(self) -> None:
        sh = self.sh
        perf = time.perf_counter_ns
        view, q = self._words()
        fw = self.flag_w
        stop_w, trading_w, last_w, trades_w = (
            fw["stop_exec"],
            fw["trading_from_ns"],
            fw["last_event_ns"],
            fw["trades"],
        )
        link: links.VenueLink | links.ShmVenueLink
        if self.processes:
            link = links.ShmVenueLink(self.run_id, lambda: q[fw["stop_venue"]] != 0)
            trades = links.trades_taker_rings(self.run_id)
        else:
            link = links.VenueLink(self.sh.links)
            link.attach(q, fw["answers"], fw["requests"])
            trades = links.taker_threads(self.sh.links.trades_q, q, trades_w)  # type: ignore[arg-type]
        ex, gw, sentinel = self._build_execution(link)
        ctl = self._exec_ctl
        base = self.seg.extra
        risk_w = RiskWriter(view, base + self.blocks.risk)
        exec_w = SeqlockWriter(view, base + self.blocks.exec, EXEC)
        reader = self.signals.reader()
        poll, commit, buf = reader.poll, reader.commit, reader.buf
        unpack = SIGNAL_STRUCT.unpack_from
        gate_w = self.gate_open_w
        hw = self.hw
        h_hop, h_dec, h_t2o, h_sig = (
            hw["ring_hop"],
            hw["decision"],
            hw["tick_to_order"],
            hw["execution.signal"],
        )
        h_rtt, h_crtt, h_fill, h_late = (
            hw["order_rtt"],
            hw["cancel_rtt"],
            hw["fill_latency"],
            hw["cancel_lateness"],
        )
        hb, loops, events = (self.health_w[f"execution_{k}"] for k in ("hb_ns", "loops", "events"))
        hb_words = [
            (i, self.health_w[f"{m}_hb_ns"]) for m, i in _MODULE_ID.items() if m != "journal"
        ]
        wait = self._wait("execution")
        ttake = trades.take
        fills = 0  # fill events applied (the exec block's `fills`)
        trading = 0
        on_trade, on_signal, on_tick = ex.on_trade, ex.on_signal, ex.on_tick
        kill_word = ctl.kill_requested
        outcomes = ex.outcomes
        jw = self._journal_writer
        n = it = 0
        next_house = next_pub = 0
        lateness_seen = 0
        warm, warm_ns = ex.warm, self.cfg.engine.warm_interval_ns
        next_warm = 0
        kill_seen = 0  # the kill sequence this loop has seen
        kill_acked = 0
        stopping_since = 0
        try:
            while True:
                it += 1
                busy = False
                t = ttake()
                if t is not None:  # the last traded price and the trade rate
                    while t is not None:
                        on_trade(t[0], t[1], perf())  # type: ignore[index]
                        t = ttake()
                    busy = True
                off = poll()
                if off >= 0:
                    # hot path: unpack (~1 µs), the decision (~15 µs when it writes), 3 stamps
                    t_in = perf()
                    s = unpack(buf, off)
                    commit()
                    n += 1
                    if not trading:
                        trading = q[trading_w]
                    if trading and s[2] >= trading and not stopping_since:
                        h_hop.record(t_in - s[3])
                        gate_open = q[gate_w] == 1 and s[9] == 0
                        if on_signal(t_in, s[5], s[6], s[7], s[8], s[14], s[15], gate_open):
                            w = gw.last_write_ns
                            h_dec.record(w - t_in)
                            h_t2o.record(w - s[2])
                        h_sig.record(perf() - t_in)
                    busy = True
                now = perf()
                on_tick(now)
                if outcomes:
                    for oc in outcomes:
                        o = oc.order
                        if o is None or not oc.applied:
                            continue
                        if oc.rtt_kind is RttKind.ORDER:
                            h_rtt.record(now - o.sent_ns)
                        elif oc.rtt_kind is RttKind.CANCEL:
                            h_crtt.record(now - o.cancel_sent_ns)
                        if oc.fill_qty:
                            fills += 1
                            if o.filled == oc.fill_qty:
                                h_fill.record(now - o.sent_ns)
                k = kill_word()
                if k and k != kill_seen:  # the loop that sees it: writes are refused from here
                    t = perf()  # not `now`: the flag may have been set after that stamp
                    kill_seen = k
                    ctl.halt_kill(k)  # KILLED: the monitor's answer need not wait for cancels
                    set_ns = ctl.get("kill_set_ns")
                    hw["kill.blocked"].record(t - set_ns)
                    sh.kill_report = {"seq": k, "set_ns": set_ns, "blocked_ns": t - set_ns}
                    origin = ctl.get("kill_origin")
                    who = KillOrigin(origin).name if origin in KillOrigin else str(origin)
                    jw.append(KillCommand(KillAction.KILL, k, f"control origin {who}"), t)
                if (
                    kill_seen
                    and kill_acked != kill_seen
                    and not any(o.cancel_sent_ns == 0 for o in gw.tracker.open_orders())
                ):
                    t = perf()
                    set_ns = sh.kill_report["set_ns"]
                    hw["kill.cancels_sent"].record(t - set_ns)
                    sh.kill_report["cancels_sent_ns"] = t - set_ns
                    ctl.ack_kill(kill_seen)
                    kill_acked = kill_seen
                if now >= next_house:
                    next_house = now + _HOUSEKEEPING_NS
                    sentinel.on_feed(now, q[last_w])
                    for i, w in hb_words:
                        beat = q[w]
                        if beat:
                            sentinel.heartbeat(i, beat)
                    q[hb] = now
                    q[loops] = it
                    q[events] = n
                    lat = ex.cancel_lateness_ns
                    while lateness_seen < len(lat):
                        h_late.record(max(0, lat[lateness_seen]))
                        lateness_seen += 1
                    self._commands(ctl, sentinel, now, q)
                    if now >= next_pub:
                        next_pub = now + _PUBLISH_NS
                        risk_w.publish(sentinel, now)
                        self._publish_exec(exec_w, ex, gw, now, fills)
                    if q[stop_w]:
                        if not stopping_since:
                            stopping_since = now
                            sentinel.unwatch(_MODULE_ID["feed"])
                            sentinel.unwatch(_MODULE_ID["oracle"])
                            sentinel.unwatch(_MODULE_ID["sentinel"])
                            gw.cancel_all(now)
                        elif gw.tracker.open_orders():
                            gw.cancel_all(now)  # what the broker's limits held back
                        if not gw.tracker.open_orders() or now - stopping_since > _STOP_DRAIN_NS:
                            break
                if busy:
                    wait.reset()
                    next_warm = now + warm_ns
                else:
                    if warm_ns and now >= next_warm:
                        warm(now)
                        next_warm = now + warm_ns
                    wait.idle()
        finally:
            now = perf()
            risk_w.publish(sentinel, now)
            self._publish_exec(exec_w, ex, gw, now, fills)
            sh.summary.update(self._exec_summary(ex, gw, sentinel, fills))
            if self.processes:  # taken off the ring here; the supervisor commits at close
                self._journal_writer.drain(5.0)
            else:
                self._journal_writer.flush(5.0)
            for c in (risk_w, exec_w, reader, ctl, trades, link):
                c.close()
            wait.close()
            if isinstance(link, links.VenueLink):
                link.attach(self.q, fw["answers"], fw["requests"])  # this view is going away
            q.release()
            view.release()

    def _commands(self, ctl: Any, sentinel: Sentinel, now: int, q: memoryview) -> None:
        c = ctl.poll_command()
        if c is None:
            return
        seq, cmd, arg = c
        result = CommandResult.OK
        if cmd is Command.REARM:
            ok = sentinel.reset(now, ctl.kill_requested())
            result = CommandResult.OK if ok else CommandResult.REJECTED
            if ok:
                ctl.set_state(EngineState.ACTIVE)
            self._journal_writer.append(
                KillCommand(KillAction.REARM, ctl.get("last_kill"), "control", result.name), now
            )
        elif cmd is Command.HALT:
            sentinel.halt(now)
        elif cmd is Command.RESUME:
            sentinel.resume(now)
        elif cmd is Command.SPIKE:
            v, fw = self.cfg.venue, self.flag_w
            q[fw["spike_req_dur_ns"]] = int(arg) if arg > 0 else int(v.spike_duration_ms * 1e6)
            q[fw["spike_req_extra_ns"]] = int(v.spike_extra_ms * 1e6)
            self._exec_spikes += 1
            q[fw["spike_requests"]] = self._exec_spikes
        elif cmd is Command.SNAPSHOT:
            pass  # the blocks are republished every 50 ms anyway
        else:
            result = CommandResult.UNKNOWN
        ctl.ack_command(seq, result)

    def _publish_exec(
        self, w: SeqlockWriter, ex: Execution, gw: OrderGateway, now: int, fills: int
    ) -> None:
        otr = gw.budgets.otr
        lim = gw.budgets.limiter
        if ex.ltp:
            gw.portfolio.mark(self.inst.token, ex.ltp)
        pos = gw.portfolio.get(self.inst.token)
        usage = {u.name: u.used for u in lim.window_usage(now)}
        nev = ex.nev
        w.write(
            (
                int(ex.state),
                int(gw.sentinel.state),
                ex.signals,
                ex.placed,
                fills,
                otr.trades,
                ex.cancels_sent,
                ex.timer_cancels,
                gw.tracker.open_count,
                sum(v for k, v in gw.refused.items() if int(k)),
                pos.qty if pos is not None else 0,
                gw.portfolio.net(),
                gw.portfolio.costs,
                otr.entries,
                otr.modifications,
                otr.cancels,
                otr.trades,
                otr.penalty_orders,
                otr.slab_paise(),
                otr.ceiling,
                usage.get("1s", 0),
                usage.get("1m", 0),
                lim.day_used,
                1 if ex.would_place else 0,
                nev.value,
                nev.p_fill,
                nev.edge,
                nev.costs,
                nev.stt,
                nev.adverse,
                otr.pressure(),
                now,
            )
        )

    def _exec_summary(
        self, ex: Execution, gw: OrderGateway, sentinel: Sentinel, fills: int
    ) -> dict[str, Any]:
        otr = gw.budgets.otr
        return {
            "signals": ex.signals,
            "orders": ex.placed,
            "fills": fills,
            "filled_orders": otr.trades,
            "cancels": ex.cancels_sent,
            "timer_cancels": ex.timer_cancels,
            "open_orders_at_exit": gw.tracker.open_count,
            "refused": {k.name: v for k, v in gw.refused.items() if v},
            "budget_refusals": {
                "limiter": {
                    r.name: n
                    for r, n in zip(
                        type(gw.budgets.last_refusal),
                        gw.budgets.limiter.snapshot(time.perf_counter_ns()).refusals,
                        strict=False,
                    )
                    if n
                },
                "otr": otr.refused,
            },
            "pnl_paise": gw.portfolio.net(),
            "otr": {
                "entries": otr.entries,
                "cancels": otr.cancels,
                "trades": otr.trades,
                "penalty_orders": otr.penalty_orders,
                "slab_paise": otr.slab_paise(),
                "projected_penalty_paise": otr.projected_penalty_paise(),
            },
            # every emergency state the run entered, with the reason of its last entry
            "entered": {
                st.name: Reason(sentinel.entered_reason[st]).name
                for st in EmergencyState
                if sentinel.entered_ns[st] and st is not EmergencyState.NORMAL
            },
            "emergency": EmergencyState(sentinel.state).name,
            "emergency_reason": sentinel.reason.name,
            "journal_appended": self._journal_writer.appended,
        }

    # -- venue thread ---------------------------------------------------------------------------

    def _venue(self) -> None:
        """The simulated exchange: the market as the feed released it, our requests as they
        arrive, its answers when its latency says (see `vajra.engine.links`)."""
        cfg = self.cfg
        perf = time.perf_counter_ns
        venue = wiring.sim_venue(cfg, self.inst)
        view, q = self._words()
        fw = self.flag_w
        stop_w = fw["stop_venue"]
        spikes = (  # (count, duration, extra): the main thread's schedule, control commands
            (fw["spikes"], fw["spike_dur_ns"], fw["spike_extra_ns"]),
            (fw["spike_requests"], fw["spike_req_dur_ns"], fw["spike_req_extra_ns"]),
        )
        fills_w, open_w = fw["venue_fills"], fw["venue_open"]
        hb, loops, events = (self.health_w[f"venue_{k}"] for k in ("hb_ns", "loops", "events"))

        def stopping() -> bool:
            return q[stop_w] != 0

        if self.processes:
            market = links.market_taker_rings(self.run_id, "market.venue")
            orders = links.venue_in_rings(self.run_id, stopping)
        else:
            market = links.taker_threads(self.sh.links.venue_q, q, fw["released"])
            orders = links.venue_in_threads(self.sh.links, q, fw["requests"], fw["answers"])
        take, request, answer = market.take, orders.request, orders.answer
        on_market, poll = venue.on_market, venue.poll
        place, cancel, modify = venue.place, venue.cancel, venue.modify
        wait = self._wait("feed")  # the venue sits with the feed: the market's side
        n = it = 0
        spiked = [0, 0]
        q[hb] = perf()
        try:
            while not q[stop_w]:
                it += 1
                busy = False
                ev = take()
                while ev is not None:  # the exchange sees the market before our reaction
                    on_market(ev, perf())
                    n += 1
                    busy = True
                    ev = take()
                r = request()
                while r is not None:
                    req, t = r
                    if type(req) is PlaceRequest:  # the latency counts from the send
                        place(req, t)
                    elif type(req) is CancelRequest:
                        cancel(req, t)
                    elif type(req) is ModifyRequest:
                        modify(req, t)
                    busy = True
                    r = request()
                out = poll(perf())
                if out:
                    answer(out)
                    busy = True
                if it & 255 == 0:
                    q[hb] = perf()
                    q[loops] = it
                    q[events] = n
                    q[fills_w] = venue.stats.fills
                    q[open_w] = len(venue.open_orders())
                    for i, (count_w, dur_w, extra_w) in enumerate(spikes):
                        if q[count_w] != spiked[i]:  # a latency spike asked for: its terms
                            spiked[i] = q[count_w]
                            now = perf()
                            venue.latency.spike(now, now + q[dur_w], q[extra_w])
                if busy:
                    wait.reset()
                else:
                    wait.idle()
        finally:
            q[fills_w] = venue.stats.fills
            q[open_w] = len(venue.open_orders())
            wait.close()
            market.close()
            orders.close()
            q.release()
            view.release()

    # -- sentinel thread ------------------------------------------------------------------------

    def _sentinel(self) -> None:
        sh = self.sh
        view, q = self._words()
        hb = self.health_w["sentinel_hb_ns"]
        loops = self.health_w["sentinel_loops"]
        last: dict[str, Any] = {}
        it = 0
        next_round = 0.0
        stop_w = self.flag_w["stop_sentinel"]
        try:
            while not q[stop_w]:
                it += 1
                q[hb] = time.perf_counter_ns()
                q[loops] = it
                time.sleep(0.05)  # beats every 50 ms; reads /proc once a second
                if time.monotonic() < next_round:
                    continue
                next_round = time.monotonic() + _HEALTH_INTERVAL_S
                for name, (pid, tid) in list(sh.tids.items()):
                    w = self.health_w
                    try:
                        st = read_thread_stats(tid, pid)
                    except OSError:
                        q[w[f"{name}_alive"]] = 0
                        continue
                    prev = last.get(name)
                    q[w[f"{name}_tid"]] = tid
                    q[w[f"{name}_cpu"]] = st.last_cpu
                    q[w[f"{name}_alive"]] = 1
                    q[w[f"{name}_ctx_voluntary"]] = st.voluntary_ctxt_switches
                    q[w[f"{name}_ctx_involuntary"]] = st.nonvoluntary_ctxt_switches
                    q[w[f"{name}_migrations"]] = st.nr_migrations or 0
                    if prev is not None and st.sampled_ns > prev.sampled_ns:
                        frac = (st.cpu_ns - prev.cpu_ns) / (st.sampled_ns - prev.sampled_ns)
                        q[w[f"{name}_cpu_permille"]] = int(1000 * frac)
                    last[name] = st
                    sh.thread_stats[name] = st
        finally:
            q.release()
            view.release()

    # -- summary --------------------------------------------------------------------------------

    def _summary(self, why: str, seconds: float) -> dict[str, Any]:
        lat: dict[str, Any] = {}
        for n in HISTOGRAMS:
            s = self.hs.snapshot(n)
            if s.total:
                p = s.percentiles([50, 99, 99.9])
                lat[n] = {
                    "n": s.total,
                    "p50_us": p[50] / 1e3,
                    "p99_us": p[99] / 1e3,
                    "p99_9_us": p[99.9] / 1e3,
                    "max_us": s.max / 1e3,
                }
        health = {
            t: {
                "cpu": self.q[self.health_w[f"{t}_cpu"]],
                "cpu_permille": self.q[self.health_w[f"{t}_cpu_permille"]],
                "ctx_involuntary": self.q[self.health_w[f"{t}_ctx_involuntary"]],
                "migrations": self.q[self.health_w[f"{t}_migrations"]],
                "planned_cpu": self.plan.assignments.get("feed" if t == "venue" else t),
                "allowed_cpus": list(st.cpus_allowed) if st is not None else [],
                "last_cpu": st.last_cpu if st is not None else -1,
                "tid": st.tid if st is not None else 0,
            }
            for t in THREADS
            for st in (self.sh.thread_stats.get(t),)
        }
        out = {
            "run": self.run_id,
            "stopped_by": why,
            "seconds": round(seconds, 3),
            "feed": self.cfg.feed.source,
            "instrument": self.inst.symbol,
            "plan": self.plan.to_dict(),
            "latency": lat,
            "kill": dict(self.sh.kill_report),
            "threads": health,
            "ring": self.signals.stats(),
            "gc": {
                "collections": len(self._gc_pauses),
                "max_ms": max(self._gc_pauses, default=0) / 1e6,
                "total_ms": sum(self._gc_pauses) / 1e6,
            },
            "errors": [f"{n}: {e}" for n, e, _ in self.sh.errors],
            "topology": self.cfg.engine.topology,
            "venue_open_at_exit": self.q[self.flag_w["venue_open"]],
            **self.sh.summary,
        }
        out.setdefault("emergency", "NORMAL")
        return out

    def _print_summary(self, s: dict[str, Any]) -> None:
        self._say(
            f"run {s['run']} stopped ({s['stopped_by']}) after {s['seconds']:.1f} s: "
            f"{s.get('orders', 0)} orders, {s.get('fills', 0)} fills, {s.get('cancels', 0)} "
            f"cancels, {s.get('open_orders_at_exit', 0)} left open, state {s['emergency']} "
            f"({s.get('emergency_reason', '-')})"
        )
        for n, v in s["latency"].items():
            self._say(
                f"  {n:18} n={v['n']:<8,} p50 {v['p50_us']:9.1f} µs  p99 {v['p99_us']:9.1f} µs"
                f"  p99.9 {v['p99_9_us']:9.1f} µs"
            )
        if s["kill"]:
            k = s["kill"]
            self._say(
                f"  kill: writes blocked {k.get('blocked_ns', 0) / 1e3:.1f} µs after the flag, "
                f"all cancels sent after {k.get('cancels_sent_ns', 0) / 1e3:.1f} µs"
            )
        self._say(f"  files: {self.run_dir}/latency.hlog, summary.json, config.json")


def run_module(
    cfg: Config,
    run_id: str,
    name: str,
    plan: tuple[dict[str, int], dict[str, WaitKind], int],
    parent_pid: int,
) -> None:
    """A module process's entry point (`topology = "processes"`, spawned by the supervisor)."""
    links.die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the supervisor's to handle
    if gil.free_threaded_build() and gil.gil_enabled():
        print(f"{name} process: an import turned the GIL back on", file=sys.stderr, flush=True)
        sys.exit(1)
    assignments, waits, housekeeping = plan
    engine = Engine(cfg, run_id=run_id, plan=CorePlan(assignments, waits, housekeeping))
    sys.exit(engine.run_module(name))
