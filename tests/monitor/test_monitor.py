"""`vajra monitor` against a real engine: both as processes, as a user runs them.

What is checked is what the cockpit and an operator depend on: live WebSocket data that agrees
with the HTTP snapshot, the kill switch (and only with the token), bad clients that hurt nobody
else, many clients, and the two processes surviving each other's death.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.engine.test_run import finish, no_segments_left, start, summary
from vajra.journal.journal import Kind, read_entries
from vajra.monitor.view import CHANNELS
from vajra.shm.segment import list_segments

TOKEN = "test-token-0123456789-abcdefghij"
# trading from the start; no heartbeat lockdown when a shared machine starves a thread for a
# moment (heartbeats are the engine tests' subject, not these)
TRADING = [
    "--speed",
    "10",
    "--set",
    "venue.spike_every_s=0",
    "--set",
    "execution.min_strength=0.0",
    "--set",
    "risk.heartbeat_timeout_ns=5_000_000_000",
]


def cpu_seconds(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def start_monitor(tmp: Path, *args: str) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "VAJRA_MONITOR_TOKEN": TOKEN}
    p = subprocess.Popen(
        [sys.executable, "-m", "vajra", "monitor", "--port", "0", "--run-dir", str(tmp), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line.startswith("monitor on http://127.0.0.1:"), line + p.stdout.read()
    assert TOKEN not in line  # a token from the environment is not printed
    return p, int(line.split("http://127.0.0.1:")[1].split()[0])


def stop(p: subprocess.Popen[str]) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


def call(
    port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        raw = r.read()
        ctype = r.getheader("content-type") or ""
        return r.status, json.loads(raw) if ctype.startswith("application/json") else raw.decode()
    finally:
        c.close()


def wait_engine(
    port: int, status: str = "LIVE", run: str | None = None, timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    h: dict[str, Any] = {}
    while time.monotonic() < deadline:
        _, h = call(port, "/api/health")
        if h["engine"] == status and (run is None or h["run"] == run):
            return h
        time.sleep(0.05)
    raise AssertionError(f"engine never {status} (run {run}): {h}")


def wait_placed(port: int, n: int, timeout: float = 30) -> int:
    """Until the engine has placed at least `n` orders (it trades once Sonar says ATTACK)."""
    deadline = time.monotonic() + timeout
    while (placed := call(port, "/api/snapshot")[1]["execution"]["placed"]) < n:
        assert time.monotonic() < deadline, call(port, "/api/snapshot")[1]["sentinel"]
        time.sleep(0.2)
    return int(placed)


def recv_until(ws: Any, ch: str, timeout: float = 5, since: float = 0.0) -> dict[str, Any]:
    """The next `ch` message built at or after wall time `since` (the server's `t`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
        if m["ch"] == ch and m["t"] >= since:
            return m
    raise AssertionError(f"no {ch} message in {timeout} s")


def test_live_data_matches_http_the_kill_needs_the_token_and_bad_clients_hurt_no_one(
    tmp_path: Path,
) -> None:
    mon, port = start_monitor(tmp_path)
    eng, run = start(tmp_path, *TRADING, "--duration", "60")
    try:
        wait_engine(port, run=run)
        wait_placed(port, 1)
        with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            first = json.loads(ws.recv(timeout=5))
            assert first["seq"] == 1 and first["ch"] == "hello"
            assert first["data"]["run"] == run and first["data"]["channels"] == list(CHANNELS)
            seqs, seen = [1], set()
            t0 = time.monotonic()
            while time.monotonic() - t0 < 1.5:
                m = json.loads(ws.recv(timeout=5))
                seqs.append(m["seq"])
                seen.add(m["ch"])
            assert seqs == list(range(1, len(seqs) + 1))  # no holes
            assert set(CHANNELS) <= seen
            # the same counters through both doors: ws before <= http <= ws after
            before = {c: recv_until(ws, c)["data"] for c in ("oracle", "execution")}
            status, snap = call(port, "/api/snapshot")
            assert status == 200
            answered = time.time() + 0.002  # `t` is rounded to the millisecond
            after = {c: recv_until(ws, c, since=answered)["data"] for c in ("oracle", "execution")}
            for ch, key in (("oracle", "signals"), ("execution", "signals")):
                assert before[ch][key] <= snap[ch][key] <= after[ch][key], (ch, key)
            assert before["execution"]["placed"] <= snap["execution"]["placed"]
            assert snap["execution"]["placed"] > 0, (snap["execution"], snap["sentinel"])
            assert snap["engine"]["run"] == run and snap["engine"]["status"] == "LIVE"
            assert snap["sentinel"]["lockdown_ms"] == 20.0
            assert set(snap["sonar"]["conditions"]) >= {"FEED_FRESH", "KILL_CLEAR"}

        # /metrics parses with Prometheus' own parser and says the same
        status, text = call(port, "/metrics")
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        hist = fams["vajra_latency_seconds"]
        assert hist.type == "histogram"
        t2o = [s for s in hist.samples if s.labels.get("name") == "tick_to_order"]
        inf = [s.value for s in t2o if s.name.endswith("_bucket") and s.labels["le"] == "+Inf"]
        count = [s.value for s in t2o if s.name.endswith("_count")]
        assert inf == count and count[0] > 0
        placed = [s.value for s in fams["vajra_placed"].samples if s.name == "vajra_placed_total"]
        assert placed and placed[0] > 0
        st, hs = call(port, "/api/histograms?name=tick_to_order")
        assert st == 200 and hs["tick_to_order"]["count"] > 0 and hs["tick_to_order"]["buckets_ns"]
        assert call(port, "/api/histograms?name=nope")[0] == 404
        st, cfg = call(port, "/api/config")
        assert st == 200 and cfg["feed"]["speed"] == 10.0

        # no token, a forged token, a foreign origin: 401/403 and the engine untouched
        assert call(port, "/api/kill", "POST")[0] == 401
        assert call(port, "/api/kill", "POST", {"Authorization": "Bearer " + TOKEN[:-1]})[0] == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        foreign = {**auth, "Origin": "http://evil.example"}
        assert call(port, "/api/kill", "POST", foreign)[0] == 403
        assert call(port, "/api/kill", "GET", auth)[0] == 405
        assert call(port, "/api/health", headers={"Host": "evil.example"})[0] == 403
        _, snap = call(port, "/api/snapshot")
        assert snap["engine"]["state"] != "KILLED" and snap["engine"]["kill"] == 0

        # bad WebSocket clients are closed; a good one beside them keeps streaming
        with connect(f"ws://127.0.0.1:{port}/ws") as good:
            recv_until(good, "execution")
            for bad, code in (("not json", 1007), ('{"op":"drop"}', 1008)):
                with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                    ws.send(bad)
                    with pytest.raises(ConnectionClosed) as e:
                        while True:
                            ws.recv(timeout=5)
                    assert e.value.rcvd is not None and e.value.rcvd.code == code
            with connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as ws:
                ws.send("x" * 100_000)  # over the 4 KiB limit
                with pytest.raises(ConnectionClosed) as e:
                    while True:
                        ws.recv(timeout=5)
                assert e.value.rcvd is not None and e.value.rcvd.code == 1009
            with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                ws.send(b"\x00binary")
                with pytest.raises(ConnectionClosed) as e:
                    while True:
                        ws.recv(timeout=5)
                assert e.value.rcvd is not None and e.value.rcvd.code == 1003
            # a foreign browser origin cannot open the socket at all
            with pytest.raises(Exception, match="403"):
                connect(f"ws://127.0.0.1:{port}/ws", origin="http://evil.example")  # type: ignore[arg-type]
            recv_until(good, "execution")  # still streaming
            # oversized HTTP: head and body
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.settimeout(5)
                sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * 20_000)
                try:
                    reply = sock.recv(100)
                except ConnectionResetError:
                    reply = b""
                assert reply == b"" or reply.startswith(b"HTTP/1.1 4"), reply  # cut off
            st, _ = call(port, "/api/kill", "POST", {**auth, "Content-Length": "100000"})
            assert st == 413
            assert call(port, "/api/health")[0] == 200
            # and nothing left behind spins (a closed client's half-close once did)
            c0 = cpu_seconds(mon.pid)
            time.sleep(2)
            assert cpu_seconds(mon.pid) - c0 < 1.0

            # the kill: acknowledged with its latency, KILLED, pushed to the socket
            st, k = call(port, "/api/kill", "POST", auth)
            assert st == 200 and k["acknowledged"] and k["state"] == "KILLED", k
            assert k["engine_ack_us"] > 0 and k["monitor_ms"] > 0
            m = recv_until(good, "sentinel")
            deadline = time.monotonic() + 5
            while m["data"]["engine"]["state"] != "KILLED" and time.monotonic() < deadline:
                m = recv_until(good, "sentinel")
            assert m["data"]["engine"]["state"] == "KILLED"
        time.sleep(1.5)  # killed: nothing may go out from here
        eng.send_signal(signal.SIGTERM)
        code, out = finish(eng)
        assert code == 3, out
        s = summary(tmp_path, run)
        kill = s["kill"]
        entries = list(read_entries(tmp_path / "journal.db"))
        assert [e for e in entries if e.kind is Kind.PLACE and e.t_ns >= kill["set_ns"]] == []
        kills = [e for e in entries if e.kind is Kind.KILL]
        assert kills and "MONITOR" in json.dumps([str(e) for e in kills])
        assert s["open_orders_at_exit"] == 0 and s["venue_open_at_exit"] == 0
        audit = [
            json.loads(x) for x in (tmp_path / run / "control.jsonl").read_text().split("\n") if x
        ]
        assert [a["action"] for a in audit] == ["kill"] and audit[0]["peer"].startswith(
            "127.0.0.1:"
        )
        assert no_segments_left(run)
        # the engine is gone: the monitor says so, and stays up
        wait_engine(port, "DEAD", run, timeout=5)
    finally:
        stop(mon)
        if eng.poll() is None:
            eng.kill()
            eng.wait(10)
    assert mon.returncode == 0


def never_reading_client(port: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads a byte."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    return s


def metric(port: int, name: str) -> float:
    _, text = call(port, "/metrics")
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name:
                return float(s.value)
    raise AssertionError(f"{name} not in /metrics")


async def _stream(port: int, clients: int, seconds: float) -> list[dict[str, int]]:
    from websockets.asyncio.client import connect as aconnect

    async def one() -> dict[str, int]:
        got: dict[str, int] = {}
        async with aconnect(f"ws://127.0.0.1:{port}/ws", open_timeout=30) as ws:
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 0:
                try:
                    m = json.loads(await asyncio.wait_for(ws.recv(), left))
                except TimeoutError:
                    break
                got[m["ch"]] = got.get(m["ch"], 0) + 1
        return got

    return await asyncio.gather(*(one() for _ in range(clients)))


def test_a_hundred_clients_and_one_that_never_reads(tmp_path: Path) -> None:
    mon, port = start_monitor(tmp_path)
    eng, run = start(tmp_path, *TRADING, "--duration", "90")
    stuck = None
    try:
        wait_engine(port, run=run)
        stuck = never_reading_client(port)
        results = asyncio.run(_stream(port, 100, 4.0))
        assert len(results) == 100
        for got in results:  # every client: the greeting, then live data on every channel
            assert got.get("hello") == 1 and got.get("engine", 0) >= 1, got
            assert all(got.get(ch, 0) >= 1 for ch in CHANNELS), got
        # the reader that never reads is conflated, then dropped; nobody else waits for it
        deadline = time.monotonic() + 45
        while metric(port, "vajra_monitor_ws_dropped_slow_total") < 1:
            assert time.monotonic() < deadline, "the stuck client was never dropped"
            time.sleep(0.5)
        with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            recv_until(ws, "execution")
        assert metric(port, "vajra_monitor_clients") <= 1
        # SIGTERM with a stuck client and a reading one still connected: the monitor exits
        # anyway, promptly and cleanly
        stuck.close()
        stuck = never_reading_client(port)
        with connect(f"ws://127.0.0.1:{port}/ws") as reading:
            recv_until(reading, "execution")
            t0 = time.monotonic()
            mon.send_signal(signal.SIGTERM)
            mon.wait(8)
            assert mon.returncode == 0 and time.monotonic() - t0 < 5
    finally:
        if stuck is not None:
            stuck.close()
        stop(mon)
        eng.send_signal(signal.SIGTERM)
        code, out = finish(eng)
    assert code == 0, out
    assert no_segments_left(run)


def test_the_engine_and_the_monitor_survive_each_others_death(tmp_path: Path) -> None:
    mon, port = start_monitor(tmp_path)
    eng, run = start(tmp_path, *TRADING, "--duration", "90")
    eng2 = None
    try:
        wait_engine(port, run=run)
        # kill -9 of the monitor: the engine keeps trading, a new monitor picks the run up
        before = wait_placed(port, 1)
        mon.kill()
        mon.wait(10)
        time.sleep(2)
        mon, port = start_monitor(tmp_path)
        wait_engine(port, run=run)
        wait_placed(port, before + 1)
        assert eng.poll() is None

        # kill -9 of the engine: DEAD within a second, on HTTP and on the socket
        with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            recv_until(ws, "execution")
            os.kill(eng.pid, signal.SIGKILL)
            t0 = time.monotonic()
            wait_engine(port, "DEAD", run, timeout=1.0)
            assert time.monotonic() - t0 <= 1.0
            m = recv_until(ws, "engine", timeout=3)
            assert m["data"]["status"] == "DEAD" and m["data"]["run"] == run
            eng.wait(10)
            # the next run (which also clears the dead one's segments) is picked up
            eng2, run2 = start(tmp_path, *TRADING, "--duration", "60")
            wait_engine(port, run=run2, timeout=30)
            m = recv_until(ws, "engine", timeout=10)
            while m["data"].get("run") != run2:
                m = recv_until(ws, "engine", timeout=10)
            assert m["data"]["status"] in ("LIVE", "STARTING")
            recv_until(ws, "execution", timeout=10)
        assert not list(list_segments(run))
    finally:
        stop(mon)
        if eng.poll() is None:
            eng.kill()
            eng.wait(10)
        if eng2 is not None:
            eng2.send_signal(signal.SIGTERM)
            code, out = finish(eng2)
            assert code == 0, out
    assert mon.returncode == 0
