"""The monitor's read-only window onto one engine run: which run is live, and what its shared
memory says, as plain dicts (the channels of the WebSocket and the HTTP API).

The monitor never writes a segment the engine reads (the control block's monitor line aside,
`vajra.monitor.control`) and never takes a lock: every block is seqlocked and read by copying.
A block caught mid-write is retried a bounded number of times by `SeqlockReader`; if the writer
died mid-write the read gives up (`TornRead`) and the channel is reported unavailable rather
than the monitor hanging. The layouts come from the same declarations the engine writes with
(`vajra.engine.state`), so a layout change cannot silently misread: `Segment.attach` checks the
name, version and hash in each segment's header.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vajra.engine.state import ENGINE, EXEC, FLAGS, HEALTH, THREADS, engine_blocks
from vajra.market.top import BOOK_TOP, TOP_LEVELS
from vajra.modules.execution import ExecState
from vajra.modules.oracle import ORACLE_STATE
from vajra.modules.sentinel import RISK, EmergencyState, Reason, SentinelConfig
from vajra.modules.sonar import CONDITIONS, GATE, Regime, VetoReason
from vajra.shm.control import Control, EngineState
from vajra.shm.histogram import HistogramSet, HistogramSnapshot
from vajra.shm.matrix import MatrixReader, MatrixRing
from vajra.shm.segment import Segment, SegmentError, list_segments, process_start_ticks
from vajra.shm.seqlock import SeqlockReader, TornRead

#: Channels a client can subscribe to, in the order the cockpit lays them out.
CHANNELS = ("sentinel", "sonar", "oracle", "execution", "latency", "heatmap", "cores")
#: Percentiles published per histogram (the cockpit's distribution plots).
PERCENTILES = (50.0, 90.0, 99.0, 99.9, 99.99)
#: The engine is DEAD when its process is gone or its main thread's heartbeat (written every
#: status/hlog tick and every 100 ms at most) is older than this.
DEAD_AFTER_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_id: str
    engine_pid: int
    created_ns: int  # CLOCK_REALTIME of the engine segment's creation


def live_runs() -> list[RunInfo]:
    """Runs whose engine segment's creator is still running, newest first."""
    out = []
    for h in list_segments():
        if h.layout_name != ENGINE.name or not h.magic_ok or not h.ready:
            continue
        if process_start_ticks(h.creator_pid) != h.creator_start:
            continue
        out.append(RunInfo(h.run_id, h.creator_pid, h.created_ns))
    out.sort(key=lambda r: r.created_ns, reverse=True)
    return out


def _name(enum_cls: Any, v: int) -> str:
    try:
        return str(enum_cls(v).name)
    except ValueError:
        return f"?{v}"


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


class EngineView:
    """Attached to one run. Owned by one thread (the monitor's event loop)."""

    def __init__(self, run_id: str, runs_dir: Path | None = None) -> None:
        self.run_id = run_id
        self.runs_dir = runs_dir
        self._segs: list[Any] = []
        try:
            self.seg = Segment.attach(run_id, "engine", ENGINE, readonly=True)
            self._segs.append(self.seg)
            self.control = Control.attach(run_id)  # read here; written by `MonitorControl`
            self._segs.append(self.control)
            self.hs = HistogramSet.attach(run_id, readonly=True)
            self._segs.append(self.hs)
            self.heat = MatrixRing.attach(run_id, "heatmap", readonly=True)
            self._segs.append(self.heat)
        except BaseException:
            self.close()
            raise
        self.engine_pid = self.seg.header().creator_pid
        self._start_ticks = self.seg.header().creator_start
        self.created_ns = self.seg.header().created_ns
        self.blocks = engine_blocks()
        self._view = self.seg.view()
        self._q = self.seg.cast(self._view, "q")
        base = self.seg.extra
        self._readers = {
            "top": SeqlockReader(self._q, base + self.blocks.top, BOOK_TOP),
            "gate": SeqlockReader(self._q, base + self.blocks.gate, GATE),
            "risk": SeqlockReader(self._q, base + self.blocks.risk, RISK),
            "exec": SeqlockReader(self._q, base + self.blocks.exec, EXEC),
            "oracle": SeqlockReader(self._q, base + self.blocks.oracle, ORACLE_STATE),
        }
        self._health0 = (base + self.blocks.health) // 8
        self._flags0 = (base + self.blocks.flags) // 8
        self._peek = self.control.peek()
        self._ctl = self._peek.get
        self._heat: MatrixReader = self.heat.reader()
        self.histogram_names = self.hs.names()
        self._hcache: dict[str, tuple[int, HistogramSnapshot, dict[str, Any]]] = {}
        risk = (self.config() or {}).get("risk", {})
        dflt = SentinelConfig()
        #: the RTT lines the cockpit draws: this run's, or the defaults when its config is unread
        self._thresholds = (
            int(risk.get("rtt_lockdown_ns", dflt.rtt_lockdown_ns)),
            int(risk.get("rtt_degraded_ns", dflt.rtt_degraded_ns)),
        )

    # -- liveness -------------------------------------------------------------------------------

    def engine_alive(self) -> bool:
        """The engine process is the one that made the segment (not a recycled pid)."""
        return process_start_ticks(self.engine_pid) == self._start_ticks

    def heartbeat_age_ns(self) -> int:
        hb = self._ctl("heartbeat_ns")
        return time.perf_counter_ns() - hb if hb else -1

    def status(self) -> str:
        """LIVE, STARTING (no heartbeat yet), DEAD (process gone or silent > 1 s)."""
        if not self.engine_alive():
            return "DEAD"
        age = self.heartbeat_age_ns()
        if age < 0:
            return "STARTING"
        return "DEAD" if age > DEAD_AFTER_NS else "LIVE"

    # -- channels -------------------------------------------------------------------------------

    def _read(self, block: str) -> dict[str, int | float]:
        return self._readers[block].read()

    def _health(self, name: str) -> int:
        return int(self._q[self._health0 + HEALTH.word(name)])

    def _flag(self, name: str) -> int:
        return int(self._q[self._flags0 + FLAGS.word(name)])

    def engine(self) -> dict[str, Any]:
        """The control block as the engine last wrote it (state, kill ack) plus liveness."""
        c = self._ctl
        return {
            "run": self.run_id,
            "pid": self.engine_pid,
            "status": self.status(),
            "state": _name(EngineState, c("state")),
            "heartbeat_age_ms": round(self.heartbeat_age_ns() / 1e6, 3),
            "kill": c("kill"),
            "kill_halted": c("kill_halted"),
            "kill_ack": c("kill_ack"),
            # this kill's two stages: writes refused (KILLED), every resting order's cancel sent
            "kill_halted_us": round((c("kill_halted_ns") - c("kill_set_ns")) / 1e3, 1)
            if c("kill") and c("kill_halted") == c("kill")
            else None,
            "kill_ack_latency_us": round((c("kill_ack_ns") - c("kill_set_ns")) / 1e3, 1)
            if c("kill") and c("kill_ack") == c("kill")
            else None,
        }

    def sentinel(self) -> dict[str, Any]:
        r = self._read("risk")
        now = time.perf_counter_ns()
        out: dict[str, Any] = {
            "engine": self.engine(),
            "state": _name(EmergencyState, int(r["state"])),
            "reason": _name(Reason, int(r["reason"])),
            "since_ns": r["since_ns"],
            "in_state_s": round((now - int(r["since_ns"])) / 1e9, 3) if r["since_ns"] else None,
            "transitions": r["transitions"],
            "cancel_alls": r["cancel_alls"],
            "halted": bool(r["halted"]),
            "rearm_in_s": round((int(r["rearm_at_ns"]) - now) / 1e9, 3)
            if r["rearm_at_ns"]
            else None,
            "lockdown_ms": self._thresholds[0] / 1e6,
            "degraded_ms": self._thresholds[1] / 1e6,
        }
        for k in ("order", "cancel"):
            out[f"{k}_rtt"] = {
                "last_ms": int(r[f"{k}_rtt_last_ns"]) / 1e6,
                "p50_ms": int(r[f"{k}_rtt_p50_ns"]) / 1e6,
                "p99_ms": int(r[f"{k}_rtt_p99_ns"]) / 1e6,
                "max_ms": int(r[f"{k}_rtt_max_ns"]) / 1e6,
                "count": r[f"{k}_rtt_count"],
                "breaches": r[f"{k}_rtt_breaches"],
                "inflight_age_ms": int(r[f"{k}_inflight_age_ns"]) / 1e6,
            }
        return out

    def sonar(self) -> dict[str, Any]:
        g = self._read("gate")
        market_now = int(self._read("top")["exch_ns"])  # Sonar dwells on market time
        since = int(g["regime_since_ns"])
        return {
            "open": bool(g["open"]),
            "regime": _name(Regime, int(g["regime"])),
            "in_regime_s": round((market_now - since) / 1e9, 3) if since and market_now else None,
            "veto": [v.name for v in VetoReason if v and int(g["veto_reasons"]) & v],
            "entropy": _finite(float(g["entropy"])),
            "moves": g["moves"],
            "conditions": {c.name: bool(g[f"{c.name.lower()}_ok"]) for c in CONDITIONS},
            "phase": self._flag("phase"),
        }

    def oracle(self) -> dict[str, Any]:
        o = self._read("oracle")
        t = self._read("top")
        n = TOP_LEVELS
        bids = [[t[f"bid_px{i}"], t[f"bid_qty{i}"]] for i in range(min(n, int(t["n_bids"])))]
        asks = [[t[f"ask_px{i}"], t[f"ask_qty{i}"]] for i in range(min(n, int(t["n_asks"])))]
        return {
            "signals": o["signals"],
            "recv_ns": o["recv_ns"],
            "wobi": _finite(float(o["wobi"])),
            "liq_imb_pct": _finite(float(o["liq_imb_pct"])),
            "strength": _finite(float(o["strength"])),
            "edge_ticks": _finite(float(o["edge_ticks"])),
            "edge_bps": _finite(float(o["edge_bps"])),
            "zscore": _finite(float(o["zscore"])),
            "spread_ticks": o["spread"],
            "book": {
                "token": t["token"],
                "updates": t["updates"],
                "tick": t["tick"],
                "state": t["state"],
                "bids": bids,
                "asks": asks,
            },
        }

    def execution(self) -> dict[str, Any]:
        e = self._read("exec")
        out: dict[str, Any] = {k: (_finite(v) if isinstance(v, float) else v) for k, v in e.items()}
        out["state"] = _name(ExecState, int(e["state"]))
        out["emergency"] = _name(EmergencyState, int(e["emergency"]))
        placed = int(e["placed"])
        out["fill_rate_pct"] = round(100 * int(e["filled_orders"]) / placed, 2) if placed else None
        out["cancel_rate_pct"] = round(100 * int(e["cancels_sent"]) / placed, 2) if placed else None
        trades = int(e["otr_trades"])
        out["otr"] = round(int(e["otr_penalty_orders"]) / trades, 3) if trades else None
        out["venue_open"] = self._flag("venue_open")
        out["venue_fills"] = self._flag("venue_fills")
        return out

    def histogram(self, name: str) -> HistogramSnapshot:
        """A copy of one histogram, re-read only when its writer recorded something since."""
        total = self.hs.total(name)
        hit = self._hcache.get(name)
        if hit is not None and hit[0] == total:
            return hit[1]
        snap = self.hs.snapshot(name)
        self._hcache[name] = (total, snap, summarize(snap))
        return snap

    def latency(self) -> dict[str, Any]:
        """Every histogram's summary. Cost: ~1 ms per histogram that moved since the last call,
        ~2 µs per one that did not (which is why the server polls this channel less often)."""
        out: dict[str, Any] = {}
        for name in self.histogram_names:
            self.histogram(name)
            out[name] = self._hcache[name][2]
        return out

    def heatmap_rows(self, last: int = 0) -> list[list[Any]]:
        """The newest `last` complete rows (0: all the ring holds) as [row, t_ns, [values...]]."""
        return [[r, t, [_finite(v) for v in vals]] for r, t, vals in self._heat.rows(last)]

    def heatmap_written(self) -> int:
        return self._heat.written()

    def cores(self) -> dict[str, Any]:
        now = time.perf_counter_ns()
        out: dict[str, Any] = {}
        for t in THREADS:
            hb = self._health(f"{t}_hb_ns")
            out[t] = {
                "cpu": self._health(f"{t}_cpu"),
                "cpu_pct": self._health(f"{t}_cpu_permille") / 10,
                "tid": self._health(f"{t}_tid"),
                "alive": bool(self._health(f"{t}_alive")),
                "heartbeat_age_ms": round((now - hb) / 1e6, 3) if hb else None,
                "loops": self._health(f"{t}_loops"),
                "events": self._health(f"{t}_events"),
                "ctx_voluntary": self._health(f"{t}_ctx_voluntary"),
                "ctx_involuntary": self._health(f"{t}_ctx_involuntary"),
                "migrations": self._health(f"{t}_migrations"),
            }
        return out

    def channel(self, name: str) -> dict[str, Any]:
        """One channel's current state (the heatmap: its last 64 rows)."""
        try:
            if name == "heatmap":
                return {"written": self.heatmap_written(), "rows": self.heatmap_rows(last=64)}
            fn = getattr(self, name)
            data: dict[str, Any] = fn()
            return data
        except TornRead as e:
            return {"unavailable": str(e)}

    def snapshot(self) -> dict[str, Any]:
        return {"engine": self.engine(), **{c: self.channel(c) for c in CHANNELS}}

    def run_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "run": self.run_id,
            "engine_pid": self.engine_pid,
            "created_unix_s": self.created_ns / 1e9,
            "status": self.status(),
            "histograms": self.histogram_names,
            "segments": [h.name for h in list_segments(self.run_id)],
        }
        if self.runs_dir is not None:
            info["run_dir"] = str(self.runs_dir / self.run_id)
        return info

    def config(self) -> dict[str, Any] | None:
        """The effective configuration the engine wrote at start, secrets redacted."""
        if self.runs_dir is None:
            return None
        path = self.runs_dir / self.run_id / "config.json"
        try:
            cfg = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        out: dict[str, Any] = redact(cfg)
        return out

    def close(self) -> None:
        for name in ("_heat", "_peek"):
            obj = getattr(self, name, None)
            if obj is not None and hasattr(obj, "close"):
                obj.close()
        if hasattr(self, "_readers"):
            self._readers.clear()
        q = getattr(self, "_q", None)
        if q is not None:
            q.release()
        v = getattr(self, "_view", None)
        if v is not None:
            v.release()
        for seg in reversed(self._segs):
            try:
                seg.close()
            except (SegmentError, BufferError, ValueError):
                pass
        self._segs.clear()


SECRET_WORDS = ("secret", "token", "password", "api_key", "apikey", "access", "credential")


def redact(obj: Any, key: str = "") -> Any:
    """Every value under a key that names a secret becomes "[redacted]" (recursively)."""
    if isinstance(obj, dict):
        return {k: redact(v, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v, key) for v in obj]
    if key and any(w in key.lower() for w in SECRET_WORDS) and obj not in (None, "", 0):
        return "[redacted]"
    return obj


def summarize(s: HistogramSnapshot) -> dict[str, Any]:
    """Count, mean, max and the published percentiles, in microseconds."""
    if not s.total:
        return {"count": 0}
    return {
        "count": s.total,
        "mean_us": round(s.mean / 1e3, 3),
        "max_us": round(s.max / 1e3, 3),
        **{f"p{p:g}_us": round(s.percentile(p) / 1e3, 3) for p in PERCENTILES},
    }


__all__ = [
    "CHANNELS",
    "DEAD_AFTER_NS",
    "EngineView",
    "RunInfo",
    "live_runs",
    "redact",
    "summarize",
]
