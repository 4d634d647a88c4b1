"""`vajra monitor`: the engine's telemetry over WebSocket and HTTP, the kill switch, and
Prometheus metrics, in a process of its own.

The I/O shell around sans-I/O protocol objects: `h11` parses and frames HTTP/1.1, `websockets`'
`ServerProtocol` does the WebSocket handshake and frames, `vajra.monitor.protocol` judges what
clients send, `vajra.monitor.view` reads the engine. This module only moves bytes between them
and asyncio's streams, on one event loop in one thread.

Why the engine cannot be slowed by it: the monitor only loads from shared memory (seqlocked
blocks copied, histograms read without a lock); the one thing it writes is the control block's
monitor line (the kill word and the command mailbox), which the engine polls. It runs on the
housekeeping CPU of the core plan (`--cpu`, default: the plan's housekeeping CPU), and every
client's backlog is bounded, so no number of clients can grow its memory or make it spin.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
import os
import secrets
import socket
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from vajra.monitor import metrics
from vajra.monitor.control import MonitorControl
from vajra.monitor.protocol import (
    MAX_CLIENT_MESSAGE,
    MAX_REQUEST_BODY,
    MAX_REQUEST_HEAD,
    SCHEMA_VERSION,
    ClientError,
    bearer_ok,
    body,
    body_from,
    encode_data,
    host_allowed,
    origin_allowed,
    parse_client_message,
    with_seq,
)
from vajra.monitor.view import CHANNELS, EngineView, live_runs, summarize

#: A client whose socket has this much unsent data gets no new message until it drains; the
#: newest state of each channel waits for it instead (conflation).
SEND_HIGH_WATER = 256 * 1024
#: The kernel's send buffer per WebSocket (fixed: no autotuning up to megabytes of stale data).
KERNEL_SNDBUF = 128 * 1024
#: A client that stays above the high-water mark this long is disconnected.
STALL_DROP_S = 5.0
#: The latency channel is recomputed this often (a histogram copy costs ~1 ms on 3.13t).
LATENCY_EVERY_S = 1.0
ATTACH_EVERY_S = 0.2


@dataclass
class MonitorConfig:
    host: str = "127.0.0.1"
    port: int = 8787
    rate_hz: float = 25.0
    runs_dir: Path = Path("runs")
    run: str | None = None  # follow this run only; None: the newest live run
    token: str = ""
    static_dir: Path | None = None
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "[::1]")
    extra_origins: tuple[str, ...] = ()

    def origins(self, port: int) -> tuple[str, ...]:
        own = tuple(f"http://{h}:{port}" for h in self.allowed_hosts)
        return own + self.extra_origins


@dataclass(eq=False)
class Client:
    proto: ServerProtocol
    writer: asyncio.StreamWriter
    peer: str
    subs: set[str] = field(default_factory=lambda: set(CHANNELS))
    pending: dict[str, str] = field(default_factory=dict)  # channel -> newest body (no seq)
    seq: int = 0
    heat_row: int = -1
    stalled_since: float = 0.0
    conflated: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False


class Monitor:
    def __init__(self, cfg: MonitorConfig) -> None:
        self.cfg = cfg
        self.view: EngineView | None = None
        self.control: MonitorControl | None = None
        self.clients: set[Client] = set()
        self.port = cfg.port
        self.status = "NONE"
        self.tick = 0
        self.started = time.time()
        self._latency: dict[str, Any] = {}
        self._latency_at = 0.0
        self._sent: dict[str, str] = {}  # channel -> the data JSON last queued to everyone
        self._heat_written = -1
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()  # every open connection
        self.counters = {
            "ws_connected": 0,
            "ws_dropped_slow": 0,
            "ws_closed_bad": 0,
            "http_requests": 0,
            "http_401": 0,
            "kills": 0,
        }

    # -- engine attachment ------------------------------------------------------------------

    def _attach(self) -> None:
        """Follow the newest live run (or the one asked for); drop a dead one's view only when
        a newer run appears, so DEAD stays visible with the last numbers until then."""
        want, mine = self.cfg.run, self.cfg.runs_dir
        # the runs of this monitor's run directory only: one monitor per engine, several
        # engines (one per instrument group) on one machine
        runs = [
            r for r in live_runs() if (r.run_id == want if want else (mine / r.run_id).is_dir())
        ]
        current = self.view.run_id if self.view is not None else None
        if runs and runs[0].run_id != current:
            self._detach()
            try:
                self.view = EngineView(runs[0].run_id, self.cfg.runs_dir)
            except Exception as e:  # a run mid-start or mid-teardown: try again next round
                print(f"monitor: cannot attach to {runs[0].run_id}: {e}", file=sys.stderr)
                self.view = None
                return
            self.control = MonitorControl(self.view, self.cfg.runs_dir)
            self._latency = {}
            self._sent.clear()
            self._heat_written = -1
            for c in self.clients:
                c.heat_row = -1
                self._queue_full(c)
        status = self.view.status() if self.view is not None else "NONE"
        if status != self.status:
            self.status = status
            for c in self.clients:
                self._queue(c, "engine", self._engine_info())

    def _detach(self) -> None:
        if self.control is not None:
            self.control.close()
            self.control = None
        if self.view is not None:
            self.view.close()
            self.view = None

    def _engine_info(self) -> dict[str, Any]:
        if self.view is None:
            return {"status": "NONE", "run": None}
        return self.view.engine()

    # -- broadcasting -----------------------------------------------------------------------

    async def _ticker(self) -> None:
        period = 1.0 / self.cfg.rate_hz
        next_attach = 0.0
        loop = asyncio.get_running_loop()
        nxt = loop.time()
        while True:
            now = loop.time()
            if now >= next_attach:
                self._attach()
                next_attach = now + ATTACH_EVERY_S
            if self.view is not None and self.clients:
                self._broadcast()
            self.tick += 1
            nxt += period
            delay = nxt - loop.time()
            if delay < 0:  # behind (a slow snapshot): skip ticks, never burst
                nxt = loop.time()
                delay = 0
            await asyncio.sleep(delay)

    def _channel_data(self, ch: str) -> dict[str, Any]:
        assert self.view is not None
        if ch == "latency":
            now = time.monotonic()
            if not self._latency or now >= self._latency_at + LATENCY_EVERY_S:
                self._latency = self.view.channel("latency")
                self._latency_at = now
            return self._latency
        return self.view.channel(ch)

    def _broadcast(self) -> None:
        """One tick: each wanted channel read and encoded once, and queued for its subscribers
        only if it changed since the last tick (latency and cores move once a second, the
        heatmap a few rows a second: most ticks carry sentinel, sonar, oracle, execution)."""
        assert self.view is not None
        wanted = set().union(*(c.subs for c in self.clients))
        t = time.time()
        bodies: dict[str, str] = {}
        for ch in wanted:
            if ch == "heatmap":
                continue
            data = encode_data(self._channel_data(ch))
            if data != self._sent.get(ch):
                self._sent[ch] = data
                bodies[ch] = body_from(ch, data, True, t)
        heat_rows: list[list[Any]] | None = None
        if "heatmap" in wanted:
            written = self.view.heatmap_written()
            if written != self._heat_written:
                self._heat_written = written
                heat_rows = self.view.heatmap_rows(last=64)
        for c in self.clients:
            for ch in c.subs:
                if ch == "heatmap":
                    if heat_rows is not None:
                        self._queue_heat(c, heat_rows, t)
                elif ch in bodies:
                    if ch in c.pending:
                        c.conflated += 1
                    c.pending[ch] = bodies[ch]
            if c.pending:
                c.wake.set()

    def _queue_heat(self, c: Client, rows: list[list[Any]], t: float) -> None:
        """The rows this client has not had. `full` when its picture starts over: on connect,
        or when more rows went by than the ring holds since its last message."""
        new = [r for r in rows if r[0] > c.heat_row]
        if not new and c.heat_row >= 0:
            return
        skipped = c.heat_row >= 0 and bool(new) and new[0][0] > c.heat_row + 1
        c.pending["heatmap"] = body("heatmap", {"rows": new}, c.heat_row < 0 or skipped, t)
        if new:
            c.heat_row = new[-1][0]

    def _queue(self, c: Client, ch: str, data: Any, full: bool = True) -> None:
        c.pending[ch] = body(ch, data, full)
        c.wake.set()

    def _queue_full(self, c: Client) -> None:
        """Everything the client subscribes to, now (on connect, on request, on re-attach)."""
        self._queue(c, "engine", self._engine_info())
        if self.view is None:
            return
        c.heat_row = -1
        for ch in c.subs:
            if ch == "heatmap":
                self._queue_heat(c, self.view.heatmap_rows(last=64), time.time())
            else:
                c.pending[ch] = body(ch, self._channel_data(ch), True)
        c.wake.set()

    # -- WebSocket --------------------------------------------------------------------------

    async def _ws(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, peer: str
    ) -> None:
        proto = ServerProtocol(
            origins=[None, *self.cfg.origins(self.port)],  # type: ignore[list-item]
            max_size=MAX_CLIENT_MESSAGE,
        )
        proto.receive_data(head)
        events = proto.events_received()
        if not events:
            writer.close()
            return
        request = events[0]
        host = request.headers.get("Host")  # type: ignore[union-attr]
        if not host_allowed(host, self.cfg.allowed_hosts):
            response = proto.reject(403, "host not allowed\n")
        else:
            response = proto.accept(request)  # type: ignore[arg-type]
        proto.send_response(response)
        _emit(writer, proto.data_to_send())
        await writer.drain()
        if proto.state is not State.OPEN:
            writer.close()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:  # a bounded kernel queue too: what waits there is old news
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_SNDBUF)
        c = Client(proto, writer, peer)
        self.clients.add(c)
        self.counters["ws_connected"] += 1
        hello = {
            "schema": SCHEMA_VERSION,
            "channels": list(CHANNELS),
            "rate_hz": self.cfg.rate_hz,
            "run": self.view.run_id if self.view else None,
        }
        self._queue(c, "hello", hello)
        self._queue_full(c)
        sender = asyncio.create_task(self._sender(c))
        try:
            await self._receiver(c, reader)
        finally:
            c.closed = True
            c.wake.set()
            self.clients.discard(c)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
            writer.close()

    async def _receiver(self, c: Client, reader: asyncio.StreamReader) -> None:
        proto = c.proto
        while proto.state is not State.CLOSED:
            try:
                data = await reader.read(65536)
            except (ConnectionError, OSError):
                return
            if not data:
                proto.receive_eof()
                self._flush(c)
                return
            proto.receive_data(data)
            for frame in proto.events_received():
                if frame.opcode is Opcode.TEXT:  # type: ignore[union-attr]
                    try:
                        op = parse_client_message(frame.data.decode())  # type: ignore[union-attr]
                    except (ClientError, UnicodeDecodeError) as e:
                        code = e.code if isinstance(e, ClientError) else 1007
                        self.counters["ws_closed_bad"] += 1
                        proto.send_close(code, str(e)[:100])
                        self._flush(c)
                        return
                    self._on_op(c, op.op, op.channels)
                elif frame.opcode is Opcode.BINARY:  # type: ignore[union-attr]
                    self.counters["ws_closed_bad"] += 1
                    proto.send_close(1003, "text frames only")
                    self._flush(c)
                    return
            if (
                proto.close_code is not None
                and proto.close_code >= 1002
                and proto.close_code != 1005
            ):
                self.counters["ws_closed_bad"] += 1  # e.g. 1009: over max_size
            self._flush(c)
            if proto.close_expected():
                await self._linger(c, reader)
                return

    async def _linger(self, c: Client, reader: asyncio.StreamReader) -> None:
        """After our close frame, read (and discard) until the client's close frame or EOF, at
        most 2 s:
        closing a socket with unread input makes the kernel send RST, and the client would
        lose the close frame that says why (RFC 6455 7.1.1: the server closes TCP last)."""
        deadline = time.monotonic() + 2.0
        while (left := deadline - time.monotonic()) > 0:
            try:
                data = await asyncio.wait_for(reader.read(65536), left)
            except (TimeoutError, ConnectionError, OSError):
                return
            if not data:
                return
            c.proto.receive_data(data)
            c.proto.events_received()
            self._flush(c)
            if c.proto.state is State.CLOSED:  # the client's close frame: handshake done
                return

    def _on_op(self, c: Client, op: str, channels: tuple[str, ...]) -> None:
        if op == "subscribe":
            new = set(channels) - c.subs
            c.subs |= set(channels)
            if new and self.view is not None:
                for ch in new:
                    if ch == "heatmap":
                        c.heat_row = -1
                        self._queue_heat(c, self.view.heatmap_rows(last=64), time.time())
                    else:
                        c.pending[ch] = body(ch, self._channel_data(ch), True)
                c.wake.set()
        elif op == "unsubscribe":
            c.subs -= set(channels)
            for ch in channels:
                c.pending.pop(ch, None)
        elif op == "snapshot":
            self._queue_full(c)
        elif op == "ping":
            self._queue(c, "pong", {"monitor_uptime_s": round(time.time() - self.started, 3)})

    def _flush(self, c: Client) -> None:
        _emit(c.writer, c.proto.data_to_send())

    async def _sender(self, c: Client) -> None:
        transport = c.writer.transport
        while not c.closed:
            await c.wake.wait()
            c.wake.clear()
            if c.closed or c.proto.state is not State.OPEN:
                return
            if transport.get_write_buffer_size() > SEND_HIGH_WATER:
                now = time.monotonic()
                c.stalled_since = c.stalled_since or now
                if now - c.stalled_since > STALL_DROP_S:
                    self.counters["ws_dropped_slow"] += 1
                    transport.abort()  # a client that does not read loses its connection
                    return
                continue  # pending stays: the newest state goes out when it drains
            c.stalled_since = 0.0
            pending, c.pending = c.pending, {}
            for ch in ("hello", "engine", *CHANNELS, "pong"):
                b = pending.get(ch)
                if b is not None:
                    c.seq += 1
                    c.proto.send_text(with_seq(c.seq, b).encode())
            self._flush(c)

    # -- HTTP -------------------------------------------------------------------------------

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._conn_inner(reader, writer)
        finally:
            self._writers.discard(writer)

    async def _conn_inner(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if peername else "?"
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
        except (
            asyncio.LimitOverrunError,
            asyncio.IncompleteReadError,
            TimeoutError,
            ConnectionError,
        ):
            writer.close()
            return
        try:
            if _is_ws_upgrade(head):
                await self._ws(reader, writer, head, peer)
            else:
                await self._http(reader, writer, head, peer)
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _http(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, peer: str
    ) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD)
        conn.receive_data(head)
        while True:
            try:
                req, body_bytes = await self._read_request(conn, reader)
            except _HttpRefusal as e:
                await self._send(writer, conn, e.status, {"error": e.reason}, close=True)
                return
            if req is None:
                return
            self.counters["http_requests"] += 1
            status, payload, ctype = await self._route(req, body_bytes, peer)
            keep = conn.our_state is h11.SEND_RESPONSE and _keep_alive(req)
            await self._send(
                writer,
                conn,
                status,
                payload,
                ctype=ctype,
                close=not keep,
                head_only=req.method == b"HEAD",
            )
            if not keep or conn.our_state is not h11.DONE:
                return
            try:
                conn.start_next_cycle()
            except h11.ProtocolError:
                return

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> tuple[h11.Request | None, bytes]:
        req: h11.Request | None = None
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                ev = conn.next_event()
            except h11.RemoteProtocolError as e:
                raise _HttpRefusal(e.error_status_hint, "bad request") from None
            if ev is h11.NEED_DATA:
                try:
                    data = await asyncio.wait_for(reader.read(65536), 10.0)
                except (TimeoutError, ConnectionError):
                    return None, b""
                conn.receive_data(data)
                if not data and req is None:
                    return None, b""
                continue
            if isinstance(ev, h11.Request):
                req = ev
                length = _header(ev, b"content-length")
                if length is not None and (not length.isdigit() or int(length) > MAX_REQUEST_BODY):
                    raise _HttpRefusal(413, f"body over {MAX_REQUEST_BODY} bytes")
            elif isinstance(ev, h11.Data):
                size += len(ev.data)
                if size > MAX_REQUEST_BODY:
                    raise _HttpRefusal(413, f"body over {MAX_REQUEST_BODY} bytes")
                chunks.append(ev.data)
            elif isinstance(ev, h11.EndOfMessage):
                return req, b"".join(chunks)
            elif isinstance(ev, h11.ConnectionClosed):
                return None, b""

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        conn: h11.Connection,
        status: int,
        payload: Any,
        *,
        ctype: str = "application/json",
        close: bool = False,
        head_only: bool = False,
    ) -> None:
        if isinstance(payload, bytes):
            data = payload
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
        headers = [
            (b"content-type", ctype.encode()),
            (b"content-length", str(len(data)).encode()),
            (b"cache-control", b"no-store"),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if close:
            headers.append((b"connection", b"close"))
        try:
            out = conn.send(h11.Response(status_code=status, headers=headers))
            if not head_only:
                out += conn.send(h11.Data(data=data))
            out += conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            out = _raw_response(status, data, ctype)
        writer.write(out)
        await writer.drain()

    async def _route(self, req: h11.Request, body_bytes: bytes, peer: str) -> tuple[int, Any, str]:
        method = req.method.decode()
        target = urllib.parse.urlsplit(req.target.decode("latin-1"))
        path = target.path
        query = urllib.parse.parse_qs(target.query)
        if not host_allowed(_header(req, b"host"), self.cfg.allowed_hosts):
            return 403, {"error": "host not allowed"}, "application/json"
        if method == "POST":
            return await self._post(req, path, peer)
        if method not in ("GET", "HEAD") or path in ("/api/kill", "/api/rearm"):
            return 405, {"error": "method not allowed"}, "application/json"
        if path == "/api/health":
            info = self._engine_info()
            return (
                200,
                {
                    "monitor": "ok",
                    "engine": info.get("status"),
                    "run": info.get("run"),
                    "clients": len(self.clients),
                },
                "application/json",
            )
        if path == "/metrics":
            text = metrics.render(self.view, self._monitor_metrics())
            return 200, text, metrics.CONTENT_TYPE
        if path.startswith("/api/"):
            if self.view is None:
                return 503, {"error": "no engine run to read", "engine": "NONE"}, "application/json"
            v = self.view
            if path == "/api/snapshot":
                return 200, v.snapshot(), "application/json"
            if path == "/api/run":
                return 200, v.run_info(), "application/json"
            if path == "/api/config":
                cfg = v.config()
                if cfg is None:
                    return (
                        404,
                        {"error": "the run's config.json is not readable"},
                        "application/json",
                    )
                return 200, cfg, "application/json"
            if path == "/api/histograms":
                names = query.get("name") or v.histogram_names
                bad = [n for n in names if n not in v.histogram_names]
                if bad:
                    return 404, {"error": f"unknown histograms {bad[:4]}"}, "application/json"
                out = {}
                for n in names:
                    s = v.histogram(n)
                    out[n] = {**summarize(s), "buckets_ns": [list(b) for b in s.buckets()]}
                return 200, out, "application/json"
            return 404, {"error": "no such endpoint"}, "application/json"
        return self._static(path)

    async def _post(self, req: h11.Request, path: str, peer: str) -> tuple[int, Any, str]:
        j = "application/json"
        if path not in ("/api/kill", "/api/rearm"):
            return 404, {"error": "no such endpoint"}, j
        if not origin_allowed(_header(req, b"origin"), self.cfg.origins(self.port)):
            return 403, {"error": "origin not allowed"}, j
        if not bearer_ok(_header(req, b"authorization"), self.cfg.token):
            self.counters["http_401"] += 1
            return 401, {"error": "missing or wrong bearer token"}, j
        if self.control is None or self.view is None:
            return 503, {"error": "no engine run to act on"}, j
        if path == "/api/kill":
            self.counters["kills"] += 1
            return 200, await self.control.kill(peer), j
        out = await self.control.rearm(peer)
        return (200 if out.get("result") == "OK" else 409), out, j

    def _static(self, path: str) -> tuple[int, Any, str]:
        root = self.cfg.static_dir
        if root is None or not (root / "index.html").is_file():
            return (
                404,
                (
                    "The cockpit is not built: `make dashboard` (or `cd dashboard && npm "
                    "run build`). The API is at /api/snapshot, /ws and /metrics.\n"
                ),
                "text/plain; charset=utf-8",
            )
        rel = path.lstrip("/") or "index.html"
        target = (root / rel).resolve()
        if root.resolve() not in target.parents and target != root.resolve():
            return 404, {"error": "not found"}, "application/json"
        if not target.is_file():
            target = root / "index.html"  # the single-page app routes on the client
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return 200, target.read_bytes(), ctype

    def _monitor_metrics(self) -> dict[str, float]:
        return {
            "clients": float(len(self.clients)),
            **{k: float(v) for k, v in self.counters.items()},
            "conflated": float(sum(c.conflated for c in self.clients)),
        }

    # -- lifecycle --------------------------------------------------------------------------

    async def serve(self, ready: asyncio.Event | None = None) -> None:
        self._server = await asyncio.start_server(
            self._conn, self.cfg.host, self.cfg.port, limit=MAX_REQUEST_HEAD, backlog=256
        )
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        ticker = asyncio.create_task(self._ticker())
        if ready is not None:
            ready.set()
        try:
            # not `serve_forever()`: cancelled, it waits inside for every connection to close
            # (Python 3.12+), so one open browser tab would hold SIGTERM up indefinitely
            await asyncio.Event().wait()
        finally:
            ticker.cancel()
            self._server.close()
            for w in list(self._writers):  # a stuck client must not hold the shutdown
                w.transport.abort()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._detach()


class _HttpRefusal(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _emit(w: asyncio.StreamWriter, chunks: list[bytes]) -> None:
    """A sans-I/O protocol's output onto the stream. An empty chunk is its way of saying
    "half-close now" (after a failing close frame or a refused handshake); it must never reach
    `writelines`: asyncio would keep an empty buffer it can never send and spin on it."""
    for chunk in chunks:
        if w.is_closing():
            return
        if chunk:
            w.write(chunk)
        elif w.can_write_eof():
            w.write_eof()


def _header(req: h11.Request, name: bytes) -> str | None:
    for k, v in req.headers:
        if k == name:
            return v.decode("latin-1")
    return None


def _keep_alive(req: h11.Request) -> bool:
    c = _header(req, b"connection")
    return c is None or c.lower() != "close"


def _is_ws_upgrade(head: bytes) -> bool:
    first, _, rest = head.partition(b"\r\n")
    if not first.startswith(b"GET /ws"):
        return False
    for line in rest.split(b"\r\n"):
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"upgrade" and b"websocket" in v.lower():
            return True
    return False


def _raw_response(status: int, data: bytes, ctype: str) -> bytes:
    return (
        f"HTTP/1.1 {status} -\r\ncontent-type: {ctype}\r\ncontent-length: {len(data)}\r\n"
        "connection: close\r\n\r\n"
    ).encode() + data


def load_token(token_file: str | None, runs_dir: Path) -> tuple[str, str]:
    """The kill switch's bearer token and where it came from: `VAJRA_MONITOR_TOKEN`, a secret
    file (`--token-file`, e.g. a Docker secret), or a new random one written to
    `<runs>/monitor.token` (mode 0600) so the cockpit's user and the tests can read it."""
    env = os.environ.get("VAJRA_MONITOR_TOKEN", "").strip()
    if env:
        return env, "VAJRA_MONITOR_TOKEN"
    if token_file:
        tok = Path(token_file).read_text().strip()
        if len(tok) < 16:
            raise ValueError(f"{token_file}: a token needs at least 16 characters")
        return tok, token_file
    tok = secrets.token_urlsafe(32)
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / "monitor.token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(tok + "\n")
    return tok, str(path)
