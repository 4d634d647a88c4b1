"""`vajra bench e2e`: tick -> order end to end on the Binance replay, the engine against the
ways Python trading code is usually run, side by side in one run on one machine.

Variants, each a separate process so each has the interpreter and the CPUs it claims:
- (a) `vajra run` on 3.13t, threads, the auto core plan (on 2 CPUs: Oracle and Execution
  share one, each yielding to the other; feed, Sentinel, journal on the other);
- (a') the same with Execution alone on a CPU, busy-spinning (the dedicated-core plan), where
  the machine has a second CPU;
- (b) the same engine with `topology = "processes"`: feed, Oracle, Execution and the venue each
  a process, market events and the order protocol encoded over shared-memory rings;
- (c) the same engine on a stock GIL CPython 3.13 (threads, `--allow-gil`), when one is found
  (`VAJRA_GIL_PYTHON`, `python3.13` on PATH, `~/.pyenv`);
- (d) the same stages as a typical asyncio bot (`vajra.bench.bot`), on 3.13t and, when found,
  on the GIL build.
- (c') the GIL build with `topology = "processes"` (what that topology is for: one GIL each).

Every variant runs the same strategy settings, set for the path and not the profit (as the
execution benchmark does): the entropy veto and the strength floor out of the way so a Signal
can become an order whenever the budgets allow (Kite's 10/s: ~8 orders a second). Each mode:
recorded pace (tick -> order p50/p99/p99.9) and as fast as possible (events/s). Last, the kill:
`--kills` kill/re-arm cycles against a running engine, flag set -> the Execution loop that saw it
(no write after that) and -> every resting order's cancel sent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vajra.bench.ipc import stock_gil_python

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "binance"
CAPTURE = DATA / "usdm_btcusdt_20240808.gz"
FLOORS = {
    "a_pace_p50_us": 60.0,
    "a_pace_p99_us": 300.0,
    "p99_ratio_c_over_a": 3.0,  # at least
    "p99_ratio_d_over_a": 3.0,  # at least
    "afap_events_ratio_a_over_c": 1.5,  # at least
    "kill_blocked_p99_us": 1000.0,
}
#: the strategy out of the way of the path (see the module docstring)
PATH_SETTINGS = [
    "sonar.enter_veto=1.0",
    "sonar.exit_veto=0.99",
    "execution.min_strength=0.0",
    "venue.spike_every_s=0",
    "engine.status_interval_s=0",
]
DEDICATED = """[cores]
plan = "explicit"
housekeeping = 0
feed = 0
oracle = 0
sonar = 0
sentinel = 0
journal = 0
execution = 1
[cores.wait]
execution = "busy-spin"
"""


def _src_env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_engine(
    python: str, feed: str, speed: float, seconds: float, work: Path, extra: list[str]
) -> dict[str, Any]:
    out = work / f"engine-{time.monotonic_ns()}.json"
    sets = [a for s in PATH_SETTINGS for a in ("--set", s)]
    cmd = [
        python,
        "-m",
        "vajra",
        "run",
        "--feed",
        feed,
        "--speed",
        str(speed),
        "--duration",
        str(seconds),
        "--run-dir",
        str(work / "runs"),
        "--json-summary",
        str(out),
        *sets,
        *extra,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_src_env(), timeout=seconds + 180)
    if r.returncode not in (0, 3) or not out.exists():
        return {"error": f"exit {r.returncode}: {(r.stderr or r.stdout)[-600:]}"}
    s: dict[str, Any] = json.loads(out.read_text())
    lat = s["latency"].get("tick_to_order", {})
    return {
        "orders": s.get("orders", 0),
        "tick_to_order_us": {k: lat.get(k) for k in ("n", "p50_us", "p99_us", "p99_9_us")},
        "events_per_s": s["live_events"] / s["live_seconds"] if s.get("live_seconds") else 0.0,
        "decision_us": s["latency"].get("decision", {}).get("p50_us"),
        "ring_hop_us": s["latency"].get("ring_hop", {}).get("p50_us"),
    }


def run_bot(python: str, feed: str, speed: float, seconds: float, work: Path) -> dict[str, Any]:
    out = work / f"bot-{time.monotonic_ns()}.json"
    sets = [a for s in PATH_SETTINGS for a in ("--set", s)]
    cmd = [
        python,
        "-m",
        "vajra.bench.bot",
        "--feed",
        feed,
        "--speed",
        str(speed),
        "--seconds",
        str(seconds),
        "--json",
        str(out),
        *sets,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_src_env(), timeout=seconds + 180)
    if r.returncode != 0 or not out.exists():
        return {"error": f"exit {r.returncode}: {(r.stderr or r.stdout)[-600:]}"}
    d = json.loads(out.read_text())
    t = sorted(d["tick_to_order_ns"])
    n = len(t)
    pct = (
        {
            "n": n,
            "p50_us": t[n // 2] / 1e3,
            "p99_us": t[min(n - 1, n * 99 // 100)] / 1e3,
            "p99_9_us": t[min(n - 1, n * 999 // 1000)] / 1e3,
        }
        if n
        else {"n": 0}
    )
    return {
        "orders": d["orders"],
        "tick_to_order_us": pct,
        "events_per_s": d["live_events"] / d["live_seconds"] if d["live_seconds"] else 0.0,
    }


def run_kills(python: str, kills: int, work: Path) -> dict[str, Any]:
    """Kill/re-arm cycles against a running engine (synthetic default, flooding ladder)."""
    from vajra.shm.control import Command, Control, KillOrigin

    out = work / "kill.json"
    cmd = [
        python,
        "-m",
        "vajra",
        "run",
        "--speed",
        "10",
        "--run-dir",
        str(work / "runs"),
        "--json-summary",
        str(out),
        "--set",
        "engine.status_interval_s=0",
        "--set",
        "execution.ladder_orders=8",
        "--set",
        "execution.ladder_levels=8",
        "--set",
        "risk.max_open_orders=50",
        "--set",
        "venue.spike_every_s=0",
        "--set",
        "risk.healthy_ns=100_000_000",
    ]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert p.stdout is not None
    line = p.stdout.readline()
    while line and not line.startswith("run "):
        line = p.stdout.readline()
    if not line:
        p.wait(30)
        return {"error": "the engine did not start"}
    run = line.split()[1].rstrip(":")
    control = Control.attach(run)
    w = control.writer()
    acks = []
    try:
        time.sleep(4.0)  # trading
        for _ in range(kills):
            seq = w.request_kill(origin=KillOrigin.BENCH)
            ns = w.wait_kill_ack(seq, 5.0)
            if ns is not None:
                acks.append(ns)
            w.wait_ack(w.send(Command.REARM), 5.0)
            time.sleep(0.5)  # re-armed after 100 ms of health, trading again
    finally:
        w.close()
        control.close()
        p.terminate()
        p.wait(60)
    if not out.exists():
        return {"error": "no summary"}
    s = json.loads(out.read_text())
    acks.sort()
    lat = s["latency"]
    return {
        "kills": len(acks),
        "blocked_us": lat.get("kill.blocked"),
        "cancels_sent_us": lat.get("kill.cancels_sent"),
        "ack_ms_p50": acks[len(acks) // 2] / 1e6 if acks else None,
        "ack_ms_max": acks[-1] / 1e6 if acks else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="vajra bench e2e", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--capture", default=str(CAPTURE))
    args = ap.parse_args(argv)
    if not Path(args.capture).exists():
        print(f"vajra bench e2e: no capture at {args.capture}", file=sys.stderr)
        return 2
    feed = f"binance:{args.capture}"
    pace_s, afap_s, kills = (15.0, 6.0, 5) if args.quick else (45.0, 15.0, 20)
    me = sys.executable
    gil = stock_gil_python()
    cpus = len(os.sched_getaffinity(0))
    variants: list[tuple[str, str, Any]] = [("a", "3.13t threads, auto plan", ("engine", me, []))]
    with tempfile.TemporaryDirectory(dir=os.environ.get("VAJRA_BENCH_DIR")) as tmp:
        work = Path(tmp)
        if cpus >= 2:
            plan = work / "dedicated.toml"
            plan.write_text(DEDICATED)
            variants.append(
                (
                    "a_dedicated",
                    "3.13t threads, Execution alone on a CPU",
                    ("engine", me, ["--config", str(plan)]),
                )
            )
        procs = ["--set", "engine.topology=processes"]
        variants.append(("b", "3.13t processes, auto plan", ("engine", me, procs)))
        if gil:
            variants.append(
                ("c", "GIL 3.13 threads (same engine)", ("engine", gil, ["--allow-gil"]))
            )
            variants.append(
                (
                    "c_processes",
                    "GIL 3.13 processes (same engine)",
                    ("engine", gil, ["--allow-gil", *procs]),
                )
            )
        variants.append(("d", "asyncio bot on 3.13t", ("bot", me, None)))
        if gil:
            variants.append(("d_gil", "asyncio bot on GIL 3.13", ("bot", gil, None)))
        results: dict[str, Any] = {}
        for key, label, (kind, py, extra) in variants:
            r: dict[str, Any] = {"label": label, "python": py}
            for mode, speed, secs in (("pace", 1.0, pace_s), ("afap", 0.0, afap_s)):
                if kind == "engine":
                    r[mode] = run_engine(py, feed, speed, secs, work, extra)
                else:
                    r[mode] = run_bot(py, feed, speed, secs, work)
            results[key] = r
        kill = run_kills(me, kills, work)
    summary = {
        "schema": 1,
        "command": "vajra bench e2e" + (" --quick" if args.quick else ""),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "capture": Path(args.capture).name,
        "cpus": cpus,
        "gil_python": gil,
        "variants": results,
        "kill": kill,
        "floors": _floors(results, kill),
    }
    print(json.dumps(summary, indent=1) if args.json else render(summary))
    return 0


def _p(results: dict[str, Any], key: str, mode: str, stat: str) -> float | None:
    v = results.get(key, {}).get(mode, {})
    if "error" in v:
        return None
    if stat == "events_per_s":
        x = v.get("events_per_s")
    else:
        x = v.get("tick_to_order_us", {}).get(stat)
    return float(x) if x is not None else None


def _floors(results: dict[str, Any], kill: dict[str, Any]) -> dict[str, Any]:
    a50 = _p(results, "a", "pace", "p50_us")
    a99 = _p(results, "a", "pace", "p99_us")
    c99 = _p(results, "c", "pace", "p99_us")
    d99 = _p(results, "d", "pace", "p99_us")
    a_ev = _p(results, "a", "afap", "events_per_s")
    c_ev = _p(results, "c", "afap", "events_per_s")
    kb = (kill.get("blocked_us") or {}).get("p99_us")
    measured = {
        "a_pace_p50_us": (a50, a50 is not None and a50 <= FLOORS["a_pace_p50_us"]),
        "a_pace_p99_us": (a99, a99 is not None and a99 <= FLOORS["a_pace_p99_us"]),
        "p99_ratio_c_over_a": _ratio(c99, a99, FLOORS["p99_ratio_c_over_a"]),
        "p99_ratio_d_over_a": _ratio(d99, a99, FLOORS["p99_ratio_d_over_a"]),
        "afap_events_ratio_a_over_c": _ratio(a_ev, c_ev, FLOORS["afap_events_ratio_a_over_c"]),
        "kill_blocked_p99_us": (kb, kb is not None and kb <= FLOORS["kill_blocked_p99_us"]),
    }
    return {k: {"value": v, "floor": FLOORS[k], "ok": ok} for k, (v, ok) in measured.items()}


def _ratio(num: float | None, den: float | None, floor: float) -> tuple[float | None, bool]:
    if num is None or not den:
        return None, False
    r = num / den
    return r, r >= floor


def render(s: dict[str, Any]) -> str:
    out = [
        f"vajra bench e2e — {s['capture']} (Binance USD-M BTCUSDT), tick -> order handed to the "
        f"simulated venue, {s['cpus']} CPUs",
        "",
        f"{'variant':56} {'pace p50':>9} {'p99':>9} {'p99.9':>9} {'orders':>7} {'afap ev/s':>10}",
    ]
    for key, r in s["variants"].items():
        pace, afap = r.get("pace", {}), r.get("afap", {})
        if "error" in pace:
            out.append(f"{'(' + key + ') ' + r['label']:56} error: {pace['error'][:90]}")
            continue
        t = pace.get("tick_to_order_us", {})
        ev = afap.get("events_per_s", 0.0) if "error" not in afap else float("nan")

        def us(x: float | None) -> str:
            return f"{x:9.1f}" if x is not None else f"{'-':>9}"

        out.append(
            f"{'(' + key + ') ' + r['label']:56} {us(t.get('p50_us'))} {us(t.get('p99_us'))} "
            f"{us(t.get('p99_9_us'))} {pace.get('orders', 0):7} {ev:10,.0f}"
        )
    k = s["kill"]
    if "error" in k:
        out.append(f"kill: error: {k['error']}")
    else:
        b, c = k.get("blocked_us") or {}, k.get("cancels_sent_us") or {}
        out.append(
            f"kill ({k['kills']} cycles): flag -> writes blocked p50 {b.get('p50_us', 0):.1f} µs, "
            f"p99 {b.get('p99_us', 0):.1f} µs; -> all cancels sent p50 {c.get('p50_us', 0):.1f} µs, "
            f"p99 {c.get('p99_us', 0):.1f} µs; ack seen by the killer p50 {k['ack_ms_p50']:.2f} ms"
        )
    out.append(
        "floors: "
        + ", ".join(
            f"{n} {'ok' if f['ok'] else 'MISSED'} ({_fmt(f['value'])} vs {f['floor']})"
            for n, f in s["floors"].items()
        )
    )
    return "\n".join(out)


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
