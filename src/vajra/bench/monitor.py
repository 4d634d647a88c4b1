"""`vajra bench monitor`: what `vajra monitor` costs the engine and how fast its kill acts.

The monitor is sold as free for the engine (it only loads from shared memory, runs on the
housekeeping CPU and bounds every client's backlog) and as the operator's kill switch. Two
measurements check both claims on this machine:

- Overhead. The engine on the Binance replay at recorded pace, exactly as `vajra bench e2e`'s
  variant (a) runs it (`vajra.bench.e2e.run_engine`, same `PATH_SETTINGS`), alternately without
  a monitor ("off") and with `vajra monitor` streaming every channel at 25 Hz to 10 WebSocket
  clients ("on"): 9 that read all the time and 1 that upgrades the connection with a 4 KiB
  receive buffer and then never reads (what a hung browser tab looks like to the server).
  Alternating runs in one benchmark spread the shared machine's drift over both sides; the
  medians of each side's tick -> order p50 and p99 are compared. "On" runs also report the
  messages each reading client received per second, the monitor process's CPU use
  (/proc/<pid>/stat) and the clients' own (this process's, getrusage), over the time the
  clients were connected.
- Kill latency. A synthetic engine at 10x pace and a monitor following only that run:
  kill -> re-arm cycles over HTTP. Per cycle: the client's time from just before
  `POST /api/kill` to its response (which the monitor sends only once the engine acknowledged
  the kill), the monitor's own `monitor_ms` and the engine's `engine_ack_us` (kill word set ->
  acknowledged). Then `POST /api/rearm` until OK, and ~0.2 s for the engine to trade again.

Floors (the monitor issue): medians' p99 ratio on/off <= 1.10; HTTP kill p50 and p99 <= 20 ms.

On a shared machine: a monitor started without `--run` follows the newest live run, so every run
records any other process that held its shared memory open (someone else's monitor would make
an "off" run an "on" one), and an "on" run whose monitor switched to another engine's run is an
error. A run the Sentinel locked down (no orders, no tick -> order figures) is run again, up to
three times, the reasons kept with the run. The clients disconnect before the monitor is sent
SIGTERM (it does not exit while one is connected); SIGKILL follows after 5 s, and how it ended
is recorded.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import re
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vajra.bench.e2e import CAPTURE, _src_env, run_engine

FLOORS = {
    "monitor_p99_ratio": 1.10,  # at most: median p99 with the monitor / without
    "http_kill_p50_ms": 20.0,
    "http_kill_p99_ms": 20.0,
}
READERS = 9  # WebSocket clients that read continuously
NON_READERS = 1  # ... and that never read
RATE_HZ = 25.0
NON_READER_RCVBUF = 4096
#: the kill engine: synthetic default market at 10x, re-armed after 100 ms of health
KILL_SETTINGS = [
    "engine.status_interval_s=0",
    "venue.spike_every_s=0",
    "risk.healthy_ns=100_000_000",
]
_PORT_LINE = re.compile(r"monitor on http://[^:\s]+:(\d+) ")


@dataclass(frozen=True)
class Plan:
    pairs: int  # off/on run pairs
    seconds: float  # per engine run
    kills: int  # HTTP kill/re-arm cycles


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="vajra bench monitor", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 pairs of 10 s runs, 10 kills")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--capture", default=str(CAPTURE))
    ap.add_argument("--pairs", type=int, help="off/on run pairs (default 3, quick 2)")
    ap.add_argument("--seconds", type=float, help="seconds per engine run (default 30, quick 10)")
    ap.add_argument("--kills", type=int, help="HTTP kill/re-arm cycles (default 50, quick 10)")
    return ap.parse_args(argv)


def plan(args: argparse.Namespace) -> Plan:
    pairs, seconds, kills = (2, 10.0, 10) if args.quick else (3, 30.0, 50)
    return Plan(
        pairs=args.pairs if args.pairs is not None else pairs,
        seconds=args.seconds if args.seconds is not None else seconds,
        kills=args.kills if args.kills is not None else kills,
    )


# -- the monitor process ---------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process from /proc/<pid>/stat (None once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = stat[stat.rfind(")") + 2 :].split()  # rest[0] is field 3 (state)
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class MonitorProc:
    """`vajra monitor --port 0` on a run directory, its port read from its first line."""

    def __init__(self, work: Path, runs: Path, token: str, run: str | None = None) -> None:
        self.token = token
        self.out = work / f"monitor-{time.monotonic_ns()}.out"
        cmd = [
            sys.executable,
            "-m",
            "vajra",
            "monitor",
            "--port",
            "0",
            "--rate",
            str(RATE_HZ),
            "--run-dir",
            str(runs),
        ]
        if run is not None:
            cmd += ["--run", run]
        env = {**_src_env(), "VAJRA_MONITOR_TOKEN": token}
        with self.out.open("w") as f:
            self.proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
        self.pid = self.proc.pid
        self.port = 0

    def wait_port(self, timeout_s: float = 30.0) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            m = _PORT_LINE.search(self.out.read_text())
            if m:
                self.port = int(m.group(1))
                return self.port
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"the monitor did not start: {self.output()[-600:]}")

    def output(self) -> str:
        try:
            return self.out.read_text()
        except OSError:
            return ""

    def get(self, path: str, timeout_s: float = 5.0) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_s)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read().decode()
        finally:
            conn.close()

    def health(self) -> dict[str, Any]:
        status, text = self.get("/api/health")
        out: dict[str, Any] = json.loads(text) if status == 200 else {"status": status}
        return out

    def metrics(self) -> dict[str, float]:
        """The monitor's own counters from /metrics (`vajra_monitor_*`, unlabelled)."""
        _, text = self.get("/metrics")
        return parse_monitor_metrics(text)

    def wait_live(self, runs: Path, timeout_s: float, give_up: threading.Event) -> str | None:
        """Until /api/health says LIVE for a run of `runs` (not some other engine on the
        machine: the monitor follows the newest live run); the run id, or None."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not give_up.is_set():
            with contextlib.suppress(OSError, ValueError):
                h = self.health()
                run = h.get("run")
                if h.get("engine") == "LIVE" and run and (runs / str(run)).is_dir():
                    return str(run)
            time.sleep(0.05)
        return None

    def stop(self) -> str:
        """SIGTERM, then SIGKILL after 5 s; says which it took and how long."""
        if self.proc.poll() is not None:
            return f"exited by itself (code {self.proc.returncode})"
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
            return f"SIGTERM: exited in {time.monotonic() - t0:.2f} s"
        except subprocess.TimeoutExpired:
            pass
        cpu = cpu_seconds(self.pid)
        self.proc.kill()
        t1 = time.monotonic()
        try:
            self.proc.wait(120)
            how = f"gone {time.monotonic() - t1:.1f} s after SIGKILL"
        except subprocess.TimeoutExpired:
            how = "still there 120 s after SIGKILL"
        return f"no exit 5 s after SIGTERM (CPU {cpu} s so far); {how}"


def parse_monitor_metrics(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("vajra_monitor_") and "{" not in line:
            name, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                out[name.removeprefix("vajra_monitor_").removesuffix("_total")] = float(value)
    return out


# -- WebSocket clients -----------------------------------------------------------------------


@dataclass(eq=False)
class Reader:
    """A client that reads every message (`websockets`' sync client, in a thread)."""

    port: int
    stop: threading.Event
    count: int = 0
    nbytes: int = 0
    first: str = ""
    last: str = ""
    t_open: float = 0.0
    error: str | None = None
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, name="bench-ws-reader", daemon=True)

    def _run(self) -> None:
        from websockets.sync.client import connect

        try:
            with connect(
                f"ws://127.0.0.1:{self.port}/ws",
                open_timeout=10,
                close_timeout=2,
                max_size=2**24,
                compression=None,
            ) as ws:
                self.t_open = time.monotonic()
                while not self.stop.is_set():
                    try:
                        msg = ws.recv(timeout=0.25)
                    except TimeoutError:
                        continue
                    if not self.count:
                        self.first = str(msg)
                    self.last = str(msg)
                    self.count += 1
                    self.nbytes += len(msg)
        except Exception as e:  # reported, not raised: the run's numbers still stand
            if not self.stop.is_set():
                self.error = f"{type(e).__name__}: {e}"[:200]

    def seq_ok(self) -> bool:
        """Every message arrived: the last one's seq is the count, the first is `hello`."""
        try:
            first, last = json.loads(self.first), json.loads(self.last)
        except ValueError:
            return False
        return bool(first.get("ch") == "hello" and last.get("seq") == self.count)


def upgrade_request(port: int, key: str | None = None) -> bytes:
    """A WebSocket upgrade with a valid Sec-WebSocket-Key (16 random bytes, base64) and no
    Origin (what a script sends; browsers' origins are checked)."""
    key = key or base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def non_reader(port: int) -> socket.socket:
    """Upgrade to WebSocket with a small receive buffer, then never read."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, NON_READER_RCVBUF)
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        s.sendall(upgrade_request(port))
    except BaseException:
        s.close()
        raise
    return s


def foreign_attached(run: str, exclude: set[int]) -> dict[int, str]:
    """Processes other than `exclude` holding one of the run's /dev/shm segments open (a
    monitor attached to it maps them through open files): pid -> command line."""
    prefix = f"/dev/shm/vajra-{run}-"
    out: dict[int, str] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in exclude:
            continue
        try:
            for fd in os.listdir(f"/proc/{d}/fd"):
                if os.readlink(f"/proc/{d}/fd/{fd}").startswith(prefix):
                    cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ")
                    out[int(d)] = cmd.decode(errors="replace").strip()[:160]
                    break
        except OSError:  # gone, or not ours to read
            continue
    return out


def _engine_pid(run: str) -> int | None:
    from vajra.shm.segment import list_segments

    for h in list_segments(run):
        if h.layout_name == "engine":
            return h.creator_pid
    return None


def _live(run: str) -> bool:
    from vajra.monitor.view import live_runs

    return any(r.run_id == run for r in live_runs())


class RunWatch(threading.Thread):
    """Beside one engine run (the calling thread runs the engine). Finds the run (the new
    directory under `runs`) and notes any other process that attaches to its shared memory:
    this machine is shared, and a monitor someone else started follows the newest live run,
    which would turn an "off" run into an "on" one. With a monitor of ours: waits for it to see
    the run LIVE, connects the clients, checks every second that the monitor still follows this
    run (it switches to a newer live run, e.g. another engine started on the machine), and on
    `finish()` measures and disconnects the clients."""

    def __init__(self, runs: Path, mon: MonitorProc | None, timeout_s: float) -> None:
        super().__init__(name="bench-monitor-watch", daemon=True)
        self.runs, self.mon, self.timeout_s = runs, mon, timeout_s
        self.before = set(os.listdir(runs)) if runs.is_dir() else set()
        self.done = threading.Event()
        self.run_id: str | None = None
        self.foreign: dict[int, str] = {}
        self.switched_to: str | None = None
        self.report: dict[str, Any] = {}

    def finish(self) -> dict[str, Any]:
        self.done.set()
        self.join(30)
        out: dict[str, Any] = {"run": self.run_id, **self.report}
        if self.foreign:
            out["foreign_attached"] = [f"{pid} {cmd}" for pid, cmd in sorted(self.foreign.items())]
        if self.switched_to:
            out["error"] = (
                f"the monitor switched to another engine's run {self.switched_to} while this one "
                "was live (another engine started on the machine)"
            )
        return out

    def _find_run(self) -> str | None:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline and not self.done.is_set():
            with contextlib.suppress(OSError):
                new = sorted(set(os.listdir(self.runs)) - self.before)
                new = [n for n in new if (self.runs / n).is_dir()]
                if new:
                    return new[-1]
            time.sleep(0.02)
        return None

    def _check(self, run: str, exclude: set[int]) -> None:
        self.foreign.update(foreign_attached(run, exclude))
        if self.mon is not None and self.switched_to is None:
            with contextlib.suppress(OSError, ValueError):
                followed = self.mon.health().get("run")
                if followed not in (None, run) and _live(run):
                    self.switched_to = str(followed)

    def run(self) -> None:
        try:
            self._watch()
        except Exception as e:  # reported with the run, not lost with the thread
            self.report = {"error": f"watching the run: {type(e).__name__}: {e}"[:300]}

    def _watch(self) -> None:
        run = self.run_id = self._find_run()
        if run is None:
            return
        exclude = {os.getpid()}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not self.done.is_set():
            pid = _engine_pid(run)
            if pid is not None:
                exclude.add(pid)
                break
            time.sleep(0.02)
        if self.mon is None:
            while not self.done.wait(1.0):
                self._check(run, exclude)
            return
        exclude.add(self.mon.pid)
        self.report = {"error": "the monitor never saw the engine LIVE"}
        if self.mon.wait_live(self.runs, self.timeout_s, self.done) != run:
            return
        self._clients(run, exclude)

    def _clients(self, run: str, exclude: set[int]) -> None:
        assert self.mon is not None
        mon = self.mon
        stop = threading.Event()
        readers = [Reader(mon.port, stop) for _ in range(READERS)]
        quiet: list[socket.socket] = []
        cpu0, own0, t0 = cpu_seconds(mon.pid), _own_cpu_s(), time.monotonic()
        try:
            for r in readers:
                r.thread.start()
            try:
                quiet = [non_reader(mon.port) for _ in range(NON_READERS)]
            except OSError as e:
                self.report = {"error": f"the non-reading client could not connect: {e}"}
            while not self.done.wait(1.0):
                self._check(run, exclude)
            cpu1, own1, t1 = cpu_seconds(mon.pid), _own_cpu_s(), time.monotonic()
            counts = [r.count for r in readers]  # the engine run's window only
            nbytes = [r.nbytes for r in readers]
            health: dict[str, Any] = {}
            mets: dict[str, float] = {}
            with contextlib.suppress(OSError, ValueError):
                health = mon.health()
                mets = mon.metrics()
        finally:
            stop.set()
            for r in readers:
                r.thread.join(10)
            for s in quiet:
                s.close()
            # gone from the monitor before it is stopped: it does not exit on SIGTERM while a
            # client is connected (see the README)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError, ValueError):
                    if not mon.health().get("clients"):
                        break
                time.sleep(0.05)
        if quiet:
            self.report = client_report(
                readers, counts, nbytes, t1, t1 - t0, (cpu0, cpu1), own1 - own0, health, mets
            )


def client_report(
    readers: list[Reader],
    counts: list[int],
    nbytes: list[int],
    t_end: float,
    window_s: float,
    monitor_cpu: tuple[float | None, float | None],
    own_cpu_s: float,
    health: dict[str, Any],
    mets: dict[str, float],
) -> dict[str, Any]:
    rates = [
        n / (t_end - r.t_open) if r.t_open and t_end > r.t_open else 0.0
        for r, n in zip(readers, counts, strict=True)
    ]
    cpu0, cpu1 = monitor_cpu
    mon_cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    return {
        "window_s": round(window_s, 3),
        "messages": counts,
        "bytes": nbytes,
        "msgs_per_s": [round(x, 1) for x in rates],
        "seq_ok": all(r.seq_ok() for r in readers),
        "reader_errors": [r.error for r in readers if r.error],
        "monitor_cpu_s": None if mon_cpu is None else round(mon_cpu, 3),
        "monitor_cpu_pct": None if mon_cpu is None else round(100 * mon_cpu / window_s, 1),
        "clients_cpu_pct": round(100 * own_cpu_s / window_s, 1),
        "clients_at_end": health.get("clients"),
        "dropped_slow": mets.get("ws_dropped_slow"),
        "conflated": mets.get("conflated"),
        "ws_connected": mets.get("ws_connected"),
    }


# -- the two measurements --------------------------------------------------------------------


def run_side(on: bool, feed: str, seconds: float, work: Path, token: str) -> dict[str, Any]:
    """One engine run at recorded pace (e2e's variant (a)); with `on`, a monitor and clients.
    The engine runs in this thread (so an interrupt stops it), the rest in a `RunWatch`."""
    runs = work / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    mon = MonitorProc(work, runs, token) if on else None
    r: dict[str, Any] = {}
    try:
        if mon is not None:
            mon.wait_port()
        watch = RunWatch(runs, mon, timeout_s=seconds + 60)
        before = set(work.glob("engine-*.json"))
        watch.start()
        try:
            r = run_engine(sys.executable, feed, 1.0, seconds, work, [])
        finally:
            seen = watch.finish()
        for path in set(work.glob("engine-*.json")) - before:  # the summary run_engine read
            with contextlib.suppress(OSError, ValueError):
                full = json.loads(path.read_text())
                r["emergency"] = f"{full.get('emergency')} ({full.get('emergency_reason')})"
        r["watch"] = {k: seen.pop(k) for k in ("run", "foreign_attached") if k in seen}
        if mon is not None:
            r["monitor"] = seen
        if "error" in seen and "error" not in r:
            r["error"] = f"monitor side: {seen['error']}"
    except RuntimeError as e:  # the monitor did not start
        r = {"error": str(e)}
    finally:
        if mon is not None:
            stopped = mon.stop()
            r.setdefault("monitor", {})["stop"] = stopped
            if not stopped.startswith("SIGTERM"):
                r.setdefault("notes", []).append(f"monitor: {stopped}")
    return r


def _usable(r: dict[str, Any]) -> str | None:
    """Why a run gives no tick -> order figures (None: it does)."""
    if "error" in r:
        return str(r["error"])[:200]
    if not (r.get("tick_to_order_us") or {}).get("n"):
        return f"no orders (Sentinel {r.get('emergency', '?')})"
    return None


def overhead(feed: str, p: Plan, work: Path, token: str, tries: int = 3) -> dict[str, Any]:
    """Alternating runs, off first. A run without orders (the Sentinel locked the engine down:
    on this shared machine a stall of the feed or a heartbeat does it) is run again, up to
    `tries` times, so each side keeps its count; the reasons are kept with the run."""
    runs: list[dict[str, Any]] = []
    for i in range(2 * p.pairs):
        on = i % 2 == 1  # off, on, off, on, ...
        failed: list[str] = []
        for _ in range(tries):
            r = run_side(on, feed, p.seconds, work, token)
            why = _usable(r)
            if why is None:
                break
            failed.append(why)
        entry = {"i": i + 1, "monitor_on": on, **r}
        retried = failed[:-1] if why is not None else failed  # the kept run's own stays on it
        if retried:
            entry["retried"] = retried
        runs.append(entry)
    return {"runs": runs, **summarize_runs(runs)}


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of each side's p50 and p99 (runs with an error left out) and on/off ratios."""
    out: dict[str, Any] = {}
    for side, on in (("off", False), ("on", True)):
        ok = [r for r in runs if r["monitor_on"] is on and _usable(r) is None]
        med: dict[str, Any] = {"n": len(ok)}
        for stat in ("p50_us", "p99_us"):
            xs = [r["tick_to_order_us"][stat] for r in ok]
            xs = [float(x) for x in xs if x is not None]
            med[stat] = statistics.median(xs) if xs else None
        out[side] = med
    for stat in ("p50_us", "p99_us"):
        a, b = out["on"][stat], out["off"][stat]
        out[f"{stat.removesuffix('_us')}_ratio"] = a / b if a is not None and b else None
    return out


def pct(xs: list[float], q: float) -> float | None:
    """The q-th percentile as e2e reports them (nearest rank below; p99 of <= 100 is the max)."""
    if not xs:
        return None
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * q / 100))]


def _stats(xs: list[float]) -> dict[str, float | None]:
    return {"p50": pct(xs, 50), "p99": pct(xs, 99), "max": max(xs) if xs else None}


def _wait_line(path: Path, prefix: str, proc: subprocess.Popen[Any], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in path.read_text().splitlines():
            if line.startswith(prefix):
                return line
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    return ""


def kill_cycles(kills: int, work: Path, token: str) -> dict[str, Any]:
    """HTTP kill -> re-arm cycles against a synthetic engine through a monitor."""
    runs = work / "runs"
    out_json = work / "kill-engine.json"
    log = work / "kill-engine.out"
    sets = [a for s in KILL_SETTINGS for a in ("--set", s)]
    cmd = [
        sys.executable,
        "-m",
        "vajra",
        "run",
        "--speed",
        "10",
        "--duration",  # a bound should this process die without its finally
        str(60 + 5 * kills),
        "--run-dir",
        str(runs),
        "--json-summary",
        str(out_json),
        *sets,
    ]
    client_ms: list[float] = []
    monitor_ms: list[float] = []
    engine_us: list[float] = []
    failures: list[str] = []
    rearm_tries: list[int] = []
    with log.open("w") as f:
        eng = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=_src_env())
    mon: MonitorProc | None = None
    stopped = ""
    try:
        line = _wait_line(log, "run ", eng, 60)
        if not line:
            return {"error": f"the engine did not start: {log.read_text()[-600:]}"}
        run = line.split()[1].rstrip(":")
        mon = MonitorProc(work, runs, token, run=run)
        mon.wait_port()
        if mon.wait_live(runs, 60, threading.Event()) != run:
            return {"error": f"the monitor never saw run {run} LIVE: {mon.output()[-300:]}"}
        time.sleep(3.0)  # trading
        auth = {"Authorization": f"Bearer {token}", "Content-Length": "0"}
        conn = http.client.HTTPConnection("127.0.0.1", mon.port, timeout=10)
        try:
            for _ in range(kills):
                if conn.sock is None:
                    conn.connect()  # the monitor closes after every POST; connect untimed
                t0 = time.perf_counter_ns()
                conn.request("POST", "/api/kill", headers=auth)
                resp = conn.getresponse()
                text = resp.read()
                t1 = time.perf_counter_ns()
                k = json.loads(text)
                if resp.status != 200 or not k.get("acknowledged") or k.get("state") != "KILLED":
                    failures.append(f"kill: HTTP {resp.status} {text[:160]!r}")
                else:
                    client_ms.append((t1 - t0) / 1e6)
                    monitor_ms.append(float(k["monitor_ms"]))
                    if k.get("engine_ack_us") is not None:
                        engine_us.append(float(k["engine_ack_us"]))
                tries = 0
                deadline = time.monotonic() + 10
                while True:
                    tries += 1
                    conn.request("POST", "/api/rearm", headers=auth)
                    resp = conn.getresponse()
                    text = resp.read()
                    if resp.status == 200 and json.loads(text).get("result") == "OK":
                        break
                    if time.monotonic() > deadline:
                        failures.append(f"rearm: HTTP {resp.status} {text[:160]!r}")
                        break
                    time.sleep(0.05)
                rearm_tries.append(tries)
                time.sleep(0.2)  # back to trading (re-armed after 100 ms of health)
        finally:
            conn.close()
    except (RuntimeError, OSError, http.client.HTTPException, ValueError, KeyError) as e:
        return {"error": f"{type(e).__name__}: {e}"[:300], "failures": failures[:10]}
    finally:
        if mon is not None:
            stopped = mon.stop()
        if eng.poll() is None:
            eng.terminate()
            try:
                eng.wait(60)
            except subprocess.TimeoutExpired:
                eng.kill()
                eng.wait(10)
    blocked = None
    if out_json.exists():
        with contextlib.suppress(ValueError, KeyError):
            blocked = json.loads(out_json.read_text())["latency"].get("kill.blocked")
    return {
        "cycles": kills,
        "acknowledged": len(client_ms),
        "failures": failures[:10],
        "failed": len(failures),
        "client_ms": _stats(client_ms),
        "monitor_ms": _stats(monitor_ms),
        "engine_ack_us": _stats(engine_us),
        "rearm_tries_max": max(rearm_tries) if rearm_tries else None,
        "engine_kill_blocked_us": blocked,
        "monitor_stop": stopped,
        "samples": {  # per acknowledged cycle, in order
            "client_ms": [round(x, 3) for x in client_ms],
            "monitor_ms": monitor_ms,
            "engine_ack_us": engine_us,
        },
    }


# -- the result ------------------------------------------------------------------------------


def floors(ov: dict[str, Any], kill: dict[str, Any]) -> dict[str, Any]:
    ratio = ov.get("p99_ratio")
    enough = min(ov.get("off", {}).get("n", 0), ov.get("on", {}).get("n", 0)) >= 1
    clean = "error" not in kill and kill.get("failed", 1) == 0
    k50 = (kill.get("client_ms") or {}).get("p50")
    k99 = (kill.get("client_ms") or {}).get("p99")
    measured = {
        "monitor_p99_ratio": (ratio, enough and ratio is not None),
        "http_kill_p50_ms": (k50, clean and k50 is not None),
        "http_kill_p99_ms": (k99, clean and k99 is not None),
    }
    return {
        k: {"value": v, "floor": FLOORS[k], "ok": bool(ok and v is not None and v <= FLOORS[k])}
        for k, (v, ok) in measured.items()
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    p = plan(args)
    if not Path(args.capture).exists():
        print(f"vajra bench monitor: no capture at {args.capture}", file=sys.stderr)
        return 2
    if p.pairs < 1 or p.seconds <= 0 or p.kills < 1:
        print(
            "vajra bench monitor: --pairs, --seconds and --kills must be positive", file=sys.stderr
        )
        return 2
    feed = f"binance:{args.capture}"
    token = secrets.token_urlsafe(24)  # only this process and its monitors know it
    with tempfile.TemporaryDirectory(dir=os.environ.get("VAJRA_BENCH_DIR")) as tmp:
        work = Path(tmp)
        ov = overhead(feed, p, work, token)
        kill = kill_cycles(p.kills, work, token)
    summary = {
        "schema": 1,
        "bench": "monitor",
        "command": "vajra bench monitor" + (" --quick" if args.quick else ""),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "capture": Path(args.capture).name,
        "cpus": len(os.sched_getaffinity(0)),
        "seconds_per_run": p.seconds,
        "pairs": p.pairs,
        "rate_hz": RATE_HZ,
        "clients": {"readers": READERS, "non_readers": NON_READERS},
        "overhead": ov,
        "kill": kill,
        "floors": floors(ov, kill),
    }
    print(json.dumps(summary, indent=1) if args.json else render(summary))
    return 0


def _v(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else f"{x:{spec}}"


def _f(x: float | None, spec: str = ".1f", width: int = 9) -> str:
    return f"{_v(x, spec):>{width}}"


def _run_notes(r: dict[str, Any]) -> list[str]:
    out = [f"    run again after: {why}" for why in r.get("retried", [])]
    if "error" not in r and _usable(r) is not None:
        out.append(f"    {_usable(r)}: left out of the medians")
    elif not str(r.get("emergency", "NORMAL")).startswith("NORMAL"):
        out.append(f"    the Sentinel ended the run {r['emergency']}")
    out += [
        f"    another process had the run's shared memory open: {f}"
        for f in r.get("watch", {}).get("foreign_attached", [])
    ]
    return out + [f"    note: {n}" for n in r.get("notes", [])]


def render(s: dict[str, Any]) -> str:
    c = s["clients"]
    out = [
        f"vajra bench monitor — {s['capture']} (Binance USD-M BTCUSDT) at recorded pace, "
        f"{s['seconds_per_run']:g} s runs, {s['cpus']} CPUs; monitor at {s['rate_hz']:g} Hz, "
        f"{c['readers']} reading WebSocket clients + {c['non_readers']} that never reads",
        "",
        f"{'run':>3} {'monitor':7} {'p50 µs':>9} {'p99 µs':>9} {'p99.9 µs':>9} {'orders':>7} "
        f"{'msg/s per reader':>17} {'monitor CPU':>11} {'clients CPU':>11}  non-reader",
    ]
    ov = s["overhead"]
    for r in ov["runs"]:
        head = f"{r['i']:>3} {'on' if r['monitor_on'] else 'off':7}"
        if "error" in r:
            out.append(f"{head} error: {r['error'][:100]}")
            out.extend(_run_notes(r))
            continue
        t = r["tick_to_order_us"]
        line = (
            f"{head} {_f(t.get('p50_us'))} {_f(t.get('p99_us'))} {_f(t.get('p99_9_us'))} "
            f"{r.get('orders', 0):7}"
        )
        m = r.get("monitor")
        if m and "msgs_per_s" in m:
            rates = m["msgs_per_s"]
            span = f"{min(rates):.0f}-{max(rates):.0f}" if rates else "-"
            dropped = m.get("dropped_slow")
            fate = "dropped" if dropped else ("connected" if dropped is not None else "?")
            if not m.get("seq_ok", True):
                fate += ", seq gap!"
            line += (
                f" {span:>17} {_f(m.get('monitor_cpu_pct'), '.1f', 9)} %"
                f" {_f(m.get('clients_cpu_pct'), '.1f', 9)} %  {fate}"
            )
        out.append(line)
        out.extend(_run_notes(r))
    off, on = ov["off"], ov["on"]
    out.append(
        f"medians: off (n={off['n']}) p50 {_v(off['p50_us'], '.1f')} µs, p99 "
        f"{_v(off['p99_us'], '.1f')} µs; on (n={on['n']}) p50 {_v(on['p50_us'], '.1f')} µs, "
        f"p99 {_v(on['p99_us'], '.1f')} µs; on/off p50 {_v(ov.get('p50_ratio'), '.2f')}, "
        f"p99 {_v(ov.get('p99_ratio'), '.2f')}"
    )
    k = s["kill"]
    if "error" in k:
        out.append(f"HTTP kill: error: {k['error'][:200]}")
    else:
        cm, mm, em = k["client_ms"], k["monitor_ms"], k["engine_ack_us"]
        out.append(
            f"HTTP kill ({k['acknowledged']}/{k['cycles']} acknowledged KILLED, {k['failed']} "
            f"failed): POST -> response p50 {_v(cm['p50'], '.2f')} ms, p99 "
            f"{_v(cm['p99'], '.2f')} ms; in the monitor p50 {_v(mm['p50'], '.2f')} ms, p99 "
            f"{_v(mm['p99'], '.2f')} ms; engine kill word -> ack p50 "
            f"{_v(em['p50'], '.1f')} µs, p99 {_v(em['p99'], '.1f')} µs"
        )
        for fail in k.get("failures", [])[:3]:
            out.append(f"  failure: {fail}")
        if k.get("monitor_stop") and not k["monitor_stop"].startswith("SIGTERM"):
            out.append(f"  note: monitor {k['monitor_stop']}")
    out.append(
        "floors: "
        + ", ".join(
            f"{n} {'ok' if f['ok'] else 'MISSED'} ({_v(f['value'], '.2f').strip()} vs {f['floor']})"
            for n, f in s["floors"].items()
        )
    )
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
