"""The I/O shell around `kite_ticker`: one websocket to Kite, reconnects, staleness.

Everything protocol-shaped (decoding, requests, what to resubscribe) lives in the sans-I/O
`kite_ticker` module; this file only moves messages between the socket and it, stamps each
with `time.perf_counter_ns()` the moment `recv()` returns it, and hands the decoded events to
a callback on the event loop's thread.

Why each behaviour:
- Reconnect forever, with exponential backoff capped at `Backoff.cap_s` and jitter, so a
  Kite outage does not turn our three allowed connections per API key into a synchronized
  retry storm. The backoff restarts only after a connection has delivered a frame: a server
  that accepts and drops at once must not be hammered at the initial delay.
- Kite sends a heartbeat every second. No frame for `stale_after_s` means a dead path that TCP
  may not notice for minutes, so the shell drops the connection and reconnects, as the
  official clients do. `staleness_s()` lets Sentinel and the cockpit judge the feed directly.
- Kite forgets subscriptions with the connection: every connect replays
  `KiteSubscriptions.resubscribe_frames()`.
- The access token is a bearer credential carried in the URL's query. It is never logged:
  `repr()` and our log lines show a redacted URL, and the logger handed to `websockets` (whose
  debug log prints the request line) passes through a filter that redacts any
  `access_token=` value and any traceback text.

Ownership: a `KiteTickerFeed` and its parser and subscriptions belong to the thread running
its event loop; call its coroutines there. `staleness_s()` may be called from any thread: it
reads one int that only the loop thread writes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from vajra.market.feeds.kite_ticker import (
    KiteEvent,
    KiteMode,
    KiteSubscriptions,
    KiteTickerParser,
)

KITE_WS_URL = "wss://ws.kite.trade"

log = logging.getLogger(__name__)
#: Logger handed to `websockets`; its handshake debug lines contain the request URL.
wire_log = logging.getLogger(__name__ + ".wire")

_TOKEN_IN_QUERY = re.compile(r"(access_token=)[^&\s'\"]*")


def redact(text: str) -> str:
    """`text` with the value of every `access_token=` replaced by `***`."""
    return _TOKEN_IN_QUERY.sub(r"\1***", text)


class _RedactAccessToken(logging.Filter):
    """Rewrites records before any handler formats them; records below the logger's level
    never reach a filter, so the disabled debug path costs nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg = clean
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


_redactor = _RedactAccessToken()
log.addFilter(_redactor)
wire_log.addFilter(_redactor)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before reconnect attempt `n` (0-based): uniform in [c/2, c], c = min(cap, initial*2^n).

    "Equal jitter": never less than half the exponential step, so a flapping server is not
    retried at once, yet spread enough that clients do not retry in lockstep.
    """

    initial_s: float = 0.5
    cap_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.cap_s:
            raise ValueError(f"need 0 < initial_s <= cap_s, got {self.initial_s}, {self.cap_s}")

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.cap_s, self.initial_s * 2.0 ** min(attempt, 64))
        return ceiling / 2 + rng.random() * (ceiling / 2)


class KiteTickerFeed:
    """One Kite ticker connection, kept alive until `close()`; events go to `on_event`.

    `run()` is the whole life of the feed. `on_event` runs on the loop for every event, in
    wire order; an exception from it ends `run()` (a consumer bug is not a network fault).
    While the feed runs, change subscriptions through its coroutines, which also send the
    request: editing `subscriptions` directly only takes effect at the next connect.
    """

    def __init__(
        self,
        api_key: str,
        access_token: str,
        on_event: Callable[[KiteEvent], None],
        *,
        subscriptions: KiteSubscriptions | None = None,
        url: str = KITE_WS_URL,
        backoff: Backoff | None = None,
        stale_after_s: float | None = 5.0,
        open_timeout_s: float = 10.0,
        close_timeout_s: float = 1.0,
        rng: random.Random | None = None,
        ticks: Mapping[int, int] | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname or parts.query:
            raise ValueError(f"ticker URL must be ws:// or wss:// without a query, got {url!r}")
        if not api_key or not access_token:
            raise ValueError("api_key and access_token are required")
        if stale_after_s is not None and stale_after_s <= 0:
            raise ValueError(f"stale_after_s must be positive or None, got {stale_after_s}")
        query = urllib.parse.urlencode({"api_key": api_key, "access_token": access_token})
        self._url = f"{url}?{query}"
        self._on_event = on_event
        self.subscriptions = subscriptions if subscriptions is not None else KiteSubscriptions()
        self.parser = KiteTickerParser(ticks)  # tick size per token, for book levels
        self._backoff = backoff if backoff is not None else Backoff()
        self._stale_after_s = stale_after_s
        self._open_timeout_s = open_timeout_s
        self._close_timeout_s = close_timeout_s
        self._rng = rng if rng is not None else random.Random()
        self._ws: ClientConnection | None = None
        self._closing = asyncio.Event()
        self._running = False
        self._last_frame_ns: int | None = None
        #: Successful handshakes, connect attempts that failed, connections dropped as stale.
        self.connections = 0
        self.connect_failures = 0
        self.stale_drops = 0

    def __repr__(self) -> str:
        return f"KiteTickerFeed({redact(self._url)!r}, tokens={len(self.subscriptions)})"

    @property
    def connected(self) -> bool:
        return self._ws is not None

    def staleness_s(self) -> float:
        """Seconds since the last frame of any kind (heartbeats count); inf before the first."""
        last = self._last_frame_ns
        if last is None:
            return float("inf")
        return (time.perf_counter_ns() - last) / 1e9

    async def run(self) -> None:
        """Connect, stream, reconnect, until `close()` is awaited (then return)."""
        if self._running:
            raise RuntimeError("this feed is already running")
        self._running = True
        self._closing.clear()
        attempt = 0
        try:
            while not self._closing.is_set():
                delivered = False
                try:
                    async with connect(
                        self._url,
                        additional_headers={"X-Kite-Version": "3"},
                        open_timeout=self._open_timeout_s,
                        # A stale path never answers the closing handshake: give up quickly.
                        close_timeout=self._close_timeout_s,
                        # 3000 tokens in full mode make a frame of about 560 kB.
                        max_size=1 << 22,
                        # Ticks are small and dense: inflating them costs CPU on the hot path.
                        compression=None,
                        # Straight to the venue; an environment proxy is never picked up.
                        proxy=None,
                        logger=wire_log,
                    ) as ws:
                        self.connections += 1
                        log.info("connected to %s", redact(self._url))
                        delivered = await self._stream(ws)
                except (OSError, TimeoutError, WebSocketException) as exc:
                    self.connect_failures += 1
                    log.warning("ticker connection failed: %s: %s", type(exc).__name__, exc)
                if self._closing.is_set():
                    break
                if delivered:
                    attempt = 0
                delay = self._backoff.delay(attempt, self._rng)
                attempt += 1
                log.info("reconnecting in %.3f s (attempt %d)", delay, attempt)
                try:
                    await asyncio.wait_for(self._closing.wait(), delay)
                except TimeoutError:
                    pass
        finally:
            self._running = False

    async def _stream(self, ws: ClientConnection) -> bool:
        """Resubscribe, then feed every message to the parser; True if any frame arrived."""
        parser = self.parser
        on_event = self._on_event
        delivered = False
        # Published before the resubscribe frames are computed, so a subscribe() issued while
        # they are being sent goes out on this connection instead of waiting for the next.
        self._ws = ws
        try:
            if self._closing.is_set():
                return delivered  # close() came during the handshake
            for frame in self.subscriptions.resubscribe_frames():
                await ws.send(frame)
            while True:
                try:
                    async with asyncio.timeout(self._stale_after_s):
                        message = await ws.recv()
                except TimeoutError:
                    self.stale_drops += 1
                    log.warning("no frame for %.1f s; dropping the connection", self.staleness_s())
                    return delivered
                now = time.perf_counter_ns()
                self._last_frame_ns = now
                delivered = True
                if isinstance(message, str):
                    parser.receive_text(message, now)
                else:
                    parser.receive_binary(message, now)
                for event in parser.events():
                    on_event(event)
        except ConnectionClosed as exc:
            log.info("ticker connection closed: %s", exc)
            return delivered
        finally:
            self._ws = None

    async def close(self) -> None:
        """Stop reconnecting and close the current connection; `run()` then returns."""
        self._closing.set()
        ws = self._ws
        if ws is not None:
            await ws.close()

    async def _send(self, frame: str) -> None:
        ws = self._ws
        if ws is None:
            return  # recorded in the subscriptions; the next connect sends it
        try:
            await ws.send(frame)
        except ConnectionClosed:
            pass  # the reconnect replays the subscriptions, this change included

    async def subscribe(self, tokens: Iterable[int]) -> None:
        """Subscribe now if connected; either way it holds on every later connection."""
        await self._send(self.subscriptions.subscribe(tokens))

    async def unsubscribe(self, tokens: Iterable[int]) -> None:
        await self._send(self.subscriptions.unsubscribe(tokens))

    async def set_mode(self, mode: KiteMode | str, tokens: Iterable[int]) -> None:
        await self._send(self.subscriptions.set_mode(mode, tokens))
