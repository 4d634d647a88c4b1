"""`/metrics`: the engine's state in Prometheus' text exposition format (version 0.0.4), so a
user scrapes it with Prometheus and charts it in Grafana.

Latency histograms are exposed as Prometheus histograms in seconds, with fixed bucket bounds
from 1 µs to 10 s (cumulative counts summed from the HdrHistogram's slots, so a slot is counted
in the first bound at or above its highest equivalent value: never optimistic). Gauges and
counters carry the `vajra_` prefix and a `run` label, so several engines (one per instrument
group) can be scraped into one Prometheus without their series colliding.
"""

from __future__ import annotations

import math
from typing import Any

from vajra.monitor.view import EngineView

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Bucket upper bounds, seconds: 1-2-5 steps from 1 µs to 10 s.
BOUNDS_S = (*(float(f"{m}e{e}") for e in range(-6, 1) for m in (1, 2, 5)), 10.0)

_STATES = {
    "engine_state": ("STARTING", "ACTIVE", "REDUCING", "HALTED", "KILLED", "STOPPED"),
    "emergency_state": ("NORMAL", "DEGRADED", "LOCKDOWN", "KILLED"),
    "execution_state": ("ACTIVE", "REDUCING", "HALTED"),
    "regime": ("VETO", "ATTACK"),
}


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(d: dict[str, str]) -> str:
    if not d:
        return ""
    return "{" + ",".join(f'{k}="{_esc(v)}"' for k, v in d.items()) + "}"


def _num(x: Any) -> str:
    if x is None:
        return "NaN"
    f = float(x)
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    return repr(f) if not f.is_integer() else str(int(f))


class _Out:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.seen: set[str] = set()

    def family(self, name: str, kind: str, help_: str) -> None:
        if name in self.seen:
            return
        self.seen.add(name)
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, labels: dict[str, str], value: Any) -> None:
        self.lines.append(f"{name}{_labels(labels)} {_num(value)}")


def render(view: EngineView | None, monitor: dict[str, float]) -> str:
    o = _Out()
    o.family("vajra_monitor_up", "gauge", "1 while this monitor serves")
    o.sample("vajra_monitor_up", {}, 1)
    for k, v in sorted(monitor.items()):
        kind = "gauge" if k in ("clients", "conflated") else "counter"
        name = f"vajra_monitor_{k}" + ("_total" if kind == "counter" else "")
        o.family(name, kind, f"monitor: {k.replace('_', ' ')}")
        o.sample(name, {}, v)
    o.family("vajra_engine_up", "gauge", "1 when an engine run is attached and LIVE")
    if view is None:
        o.sample("vajra_engine_up", {}, 0)
        return "\n".join(o.lines) + "\n"
    run = {"run": view.run_id}
    snap = view.snapshot()
    eng = snap["engine"]
    o.sample("vajra_engine_up", run, 1 if eng["status"] == "LIVE" else 0)
    o.family("vajra_engine_heartbeat_age_seconds", "gauge", "age of the engine's heartbeat")
    o.sample("vajra_engine_heartbeat_age_seconds", run, eng["heartbeat_age_ms"] / 1e3)

    sen, son, ex = snap["sentinel"], snap["sonar"], snap["execution"]
    states = {
        "engine_state": eng.get("state"),
        "emergency_state": sen.get("state"),
        "execution_state": ex.get("state"),
        "regime": son.get("regime"),
    }
    for fam, names in _STATES.items():
        name = f"vajra_{fam}"
        o.family(name, "gauge", f"1 for the current {fam.replace('_', ' ')}, 0 for the others")
        for s in names:
            o.sample(name, {**run, "state": s}, 1 if states[fam] == s else 0)
    o.family("vajra_gate_open", "gauge", "1 when every zero-trust gate condition passes")
    o.sample("vajra_gate_open", run, 1 if son.get("open") else 0)
    o.family("vajra_gate_condition", "gauge", "1 when the gate condition passes")
    for c, ok in (son.get("conditions") or {}).items():
        o.sample("vajra_gate_condition", {**run, "condition": c}, 1 if ok else 0)
    o.family("vajra_entropy", "gauge", "Sonar's normalised entropy score, 0..1")
    o.sample("vajra_entropy", run, son.get("entropy"))

    for kind in ("order", "cancel"):
        r = sen.get(f"{kind}_rtt") or {}
        for q, key in (("0.5", "p50_ms"), ("0.99", "p99_ms")):
            name = "vajra_rtt_seconds"
            o.family(name, "gauge", "Sentinel's rolling RTT percentiles (its rule window)")
            o.sample(name, {**run, "kind": kind, "quantile": q}, (r.get(key) or 0) / 1e3)
        o.family("vajra_rtt_breaches_total", "counter", "RTTs over the lockdown threshold")
        o.sample("vajra_rtt_breaches_total", {**run, "kind": kind}, r.get("breaches"))

    counters = (
        "signals",
        "placed",
        "fills",
        "filled_orders",
        "cancels_sent",
        "timer_cancels",
        "refused",
        "otr_entries",
        "otr_mods",
        "otr_cancels",
        "otr_trades",
    )
    for k in counters:
        name = f"vajra_{k}_total"
        o.family(name, "counter", f"execution: {k.replace('_', ' ')}")
        o.sample(name, run, ex.get(k))
    gauges = {
        "open_orders": "orders resting",
        "position": "units of the instrument traded",
        "pnl_paise": "realised + marked P&L, costs included, paise",
        "costs_paise": "charges on the fills so far, paise",
        "otr": "order-to-trade ratio (penalty orders / trades)",
        "otr_pressure": "OTR use of the configured ceiling, 0..1",
        "otr_slab_paise": "current OTR penalty slab, paise per order",
        "limiter_1s": "order writes inside the broker's 1 s window",
        "limiter_1m": "order writes inside the broker's 1 min window",
        "day_placements": "orders placed today",
        "nev_value": "best candidate's NEV, paise",
        "fill_rate_pct": "orders with a fill, % of placed",
    }
    for k, h in gauges.items():
        name = f"vajra_{k}"
        o.family(name, "gauge", h)
        o.sample(name, run, ex.get(k))

    for t, c in (snap["cores"] or {}).items():
        if not isinstance(c, dict):
            continue
        lab = {**run, "module": t, "cpu": str(c.get("cpu"))}
        o.family("vajra_module_cpu_ratio", "gauge", "module thread's CPU use on its core, 0..1")
        o.sample("vajra_module_cpu_ratio", lab, (c.get("cpu_pct") or 0) / 100)
        o.family("vajra_module_alive", "gauge", "1 while the module's heartbeat is fresh")
        o.sample("vajra_module_alive", lab, 1 if c.get("alive") else 0)
        o.family("vajra_module_migrations_total", "counter", "CPU migrations of the thread")
        o.sample("vajra_module_migrations_total", lab, c.get("migrations"))
        o.family(
            "vajra_module_involuntary_switches_total",
            "counter",
            "involuntary context switches of the thread",
        )
        o.sample("vajra_module_involuntary_switches_total", lab, c.get("ctx_involuntary"))

    name = "vajra_latency_seconds"
    o.family(name, "histogram", "engine latency histograms (tick_to_order, order_rtt, ...)")
    for h in view.histogram_names:
        hs = view.histogram(h)
        lab = {**run, "name": h}
        slots = hs.buckets()  # (low_ns, high_ns, count), ascending
        i, cum = 0, 0
        for b in BOUNDS_S:
            lim = b * 1e9
            while i < len(slots) and slots[i][1] <= lim:
                cum += slots[i][2]
                i += 1
            o.sample(f"{name}_bucket", {**lab, "le": _num(b)}, cum)
        o.sample(f"{name}_bucket", {**lab, "le": "+Inf"}, hs.total)
        o.sample(f"{name}_sum", lab, hs.mean * hs.total / 1e9)
        o.sample(f"{name}_count", lab, hs.total)
    return "\n".join(o.lines) + "\n"
