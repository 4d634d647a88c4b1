"""The Kite ticker I/O shell against a local websockets server (127.0.0.1, no network).

The server speaks the Kite side of the protocol with frames from the test encoder in
test_kite_ticker.py, then drops connections to exercise reconnect and resubscribe. Every wait
is bounded: a hung feed fails the test instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from tests.market.test_kite_ticker import frame, full_packet, ltp_packet
from vajra.market.events import BookUpdate, Quote
from vajra.market.feeds.kite_ticker import (
    KiteEvent,
    KiteMode,
    KiteOrderUpdate,
    KiteSubscriptions,
    KiteTick,
)
from vajra.market.feeds.kite_ws import Backoff, KiteTickerFeed, redact

SECRET = "s3cr3tAccessT0ken"
FAST = Backoff(initial_s=0.01, cap_s=0.05)
RELIANCE = 738561
INFY = 408065
NIFTY = 256265


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def run(main: Callable[[], Awaitable[None]], timeout: float = 30.0) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(timeout):
            await main()

    asyncio.run(bounded())


def port_of(server: Server) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


def full_tick(token: int, bid: int, ask: int) -> KiteTick:
    empty = (0, 0, 0)
    return KiteTick(
        token, token & 0xFF, KiteMode.FULL, 0, 1_718_176_569 * 10**9, 100, (bid + ask) // 2,
        bids=((bid, 10, 2), empty, empty, empty, empty),
        asks=((ask, 5, 1), empty, empty, empty, empty),
    )  # fmt: skip


def vajra_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Our records as a handler would print them, tracebacks included."""
    fmt = logging.Formatter("%(message)s")
    return [fmt.format(r) for r in caplog.records if r.name.startswith("vajra")]


def test_streams_reconnects_and_resubscribes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    subs = KiteSubscriptions()
    subs.subscribe([RELIANCE, INFY, NIFTY])
    subs.set_mode("full", [INFY])
    subs.set_mode("ltp", [NIFTY])
    expected_frames = subs.resubscribe_frames()
    received: list[list[str]] = []
    paths: list[str] = []
    events: list[KiteEvent] = []

    async def handler(ws: ServerConnection) -> None:
        n = len(received)
        got: list[str] = []
        received.append(got)
        paths.append(ws.request.path if ws.request else "")
        for _ in expected_frames:
            text = await ws.recv()
            assert isinstance(text, str)
            got.append(text)
        await ws.send(b"\x00")  # heartbeat
        await ws.send(
            frame(
                ltp_packet(NIFTY, 2_340_000 + n), full_packet(full_tick(INFY, 150_000, 150_010 + n))
            )
        )
        await ws.send(json.dumps({"type": "order", "data": {"order_id": str(n)}}))
        if n == 0:
            ws.transport.abort()  # an abrupt drop: no closing handshake
        elif n == 1:
            await ws.close(1011, "server restarting")  # a server-initiated close
        else:
            await ws.wait_closed()

    def done() -> bool:
        return any(isinstance(e, KiteOrderUpdate) and e.data == {"order_id": "2"} for e in events)

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0) as server:
            feed = KiteTickerFeed(
                "kitekey", SECRET, events.append, subscriptions=subs,
                url=f"ws://127.0.0.1:{port_of(server)}", backoff=FAST,
            )  # fmt: skip
            assert feed.staleness_s() == float("inf")
            task = asyncio.create_task(feed.run())
            await until(done)
            assert feed.connected and feed.staleness_s() < 5.0
            assert SECRET not in repr(feed) and "access_token=***" in repr(feed)
            await feed.close()
            await asyncio.wait_for(task, 5)
            assert not feed.connected
            assert feed.connections == 3 and feed.parser.stats.heartbeats == 3

    run(main)
    # every connection restored the same subscriptions, in the same frames
    assert received == [expected_frames] * 3
    # credentials travel in the query string, as Kite expects
    assert all("api_key=kitekey" in p and f"access_token={SECRET}" in p for p in paths)
    for n in range(3):
        tick = full_tick(INFY, 150_000, 150_010 + n)
        connection = [e for e in events if getattr(e, "token", None) in (NIFTY, INFY)][
            4 * n : 4 * n + 4
        ]
        ltp, full, book, quote = connection
        assert isinstance(ltp, KiteTick) and ltp.last_price == 2_340_000 + n
        assert isinstance(full, KiteTick) and full.asks == tick.asks and full.recv_ns > 0
        assert isinstance(book, BookUpdate) and book.asks == ((150_010 + n, 5),) and book.snapshot
        assert isinstance(quote, Quote) and (quote.bid, quote.ask) == (150_000, 150_010 + n)
        assert ltp.recv_ns <= full.recv_ns == book.recv_ns == quote.recv_ns
    orders = [e.data for e in events if isinstance(e, KiteOrderUpdate)]
    assert orders == [{"order_id": "0"}, {"order_id": "1"}, {"order_id": "2"}]
    # websockets' handshake debug line went through our logger, with the token redacted
    ours = vajra_messages(caplog)
    assert any("GET /?api_key=kitekey&access_token=***" in m for m in ours)
    assert not any(SECRET in m for m in ours)


def test_changes_while_connected_are_sent_and_survive_a_reconnect() -> None:
    subs = KiteSubscriptions()
    subs.subscribe([RELIANCE])
    received: list[list[str]] = []

    async def handler(ws: ServerConnection) -> None:
        got: list[str] = []
        received.append(got)
        if len(received) == 1:
            for _ in range(4):  # the resubscribe pair, then the two live changes
                got.append(str(await ws.recv()))
            await ws.close()
        else:
            async for text in ws:
                got.append(str(text))

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0) as server:
            feed = KiteTickerFeed(
                "k", SECRET, lambda e: None, subscriptions=subs,
                url=f"ws://127.0.0.1:{port_of(server)}", backoff=FAST,
            )  # fmt: skip
            task = asyncio.create_task(feed.run())
            await until(lambda: feed.connected)
            await feed.subscribe([INFY])
            await feed.set_mode(KiteMode.FULL, [INFY])
            await until(lambda: len(received) == 2 and len(received[1]) == 3)
            await feed.unsubscribe([RELIANCE])
            await until(lambda: len(received[1]) == 4)
            await feed.close()
            await asyncio.wait_for(task, 5)

    run(main)
    first, second = ([json.loads(t) for t in conn] for conn in received)
    assert first == [
        {"a": "subscribe", "v": [RELIANCE]},
        {"a": "mode", "v": ["quote", [RELIANCE]]},
        {"a": "subscribe", "v": [INFY]},
        {"a": "mode", "v": ["full", [INFY]]},
    ]
    assert second == [
        {"a": "subscribe", "v": [RELIANCE, INFY]},
        {"a": "mode", "v": ["quote", [RELIANCE]]},
        {"a": "mode", "v": ["full", [INFY]]},
        {"a": "unsubscribe", "v": [RELIANCE]},
    ]


def test_a_silent_connection_is_dropped_and_replaced() -> None:
    connections = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        await ws.send(b"\x00")
        await ws.wait_closed()  # then nothing: no ticks, no heartbeats

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0) as server:
            feed = KiteTickerFeed(
                "k", SECRET, lambda e: None, url=f"ws://127.0.0.1:{port_of(server)}",
                backoff=FAST, stale_after_s=0.3,
            )  # fmt: skip
            task = asyncio.create_task(feed.run())
            await until(lambda: feed.parser.stats.heartbeats == 1)
            await asyncio.sleep(0.1)
            assert 0.1 <= feed.staleness_s() < 5.0
            await until(lambda: feed.connections >= 2 and feed.parser.stats.heartbeats >= 2)
            assert feed.stale_drops >= 1
            await feed.close()
            await asyncio.wait_for(task, 5)
        assert connections >= 2

    run(main)


def test_rejected_handshakes_are_retried_without_logging_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    def reject(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(HTTPStatus.FORBIDDEN, f"bad token in {request.path}\n")

    async def handler(ws: ServerConnection) -> None:
        raise AssertionError("the handshake must not succeed")

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, process_request=reject) as server:
            feed = KiteTickerFeed(
                "k", SECRET, lambda e: None, url=f"ws://127.0.0.1:{port_of(server)}", backoff=FAST
            )
            task = asyncio.create_task(feed.run())
            await until(lambda: feed.connect_failures >= 3)
            assert feed.connections == 0 and not feed.connected
            await feed.close()
            await asyncio.wait_for(task, 5)

    run(main)
    ours = vajra_messages(caplog)
    assert any("InvalidStatus" in m and "403" in m for m in ours)
    assert not any(SECRET in m for m in ours)


def test_refused_connections_back_off_until_the_server_appears() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(b"\x00")
        await ws.wait_closed()

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0) as probe:
            port = port_of(probe)  # a port that was free a moment ago and is closed below
        feed = KiteTickerFeed(
            "k", SECRET, lambda e: None, url=f"ws://127.0.0.1:{port}", backoff=FAST
        )
        task = asyncio.create_task(feed.run())
        await until(lambda: feed.connect_failures >= 2)
        async with serve(handler, "127.0.0.1", port):
            await until(lambda: feed.parser.stats.heartbeats == 1)
            await feed.close()
            await asyncio.wait_for(task, 5)
        assert feed.connections == 1

    run(main)


def test_close_during_backoff_returns_promptly() -> None:
    async def main() -> None:
        async with serve(lambda ws: ws.wait_closed(), "127.0.0.1", 0) as probe:
            port = port_of(probe)
        feed = KiteTickerFeed(
            "k", SECRET, lambda e: None, url=f"ws://127.0.0.1:{port}",
            backoff=Backoff(initial_s=30.0, cap_s=60.0),
        )  # fmt: skip
        task = asyncio.create_task(feed.run())
        await until(lambda: feed.connect_failures == 1)
        with pytest.raises(RuntimeError, match="already running"):
            await feed.run()
        await feed.close()
        await asyncio.wait_for(task, 2)  # not the 15-30 s backoff

    run(main)


@dataclass(frozen=True, slots=True)
class RecordingBackoff(Backoff):
    attempts: list[int] = field(default_factory=list)

    def delay(self, attempt: int, rng: random.Random) -> float:
        self.attempts.append(attempt)
        return Backoff.delay(self, attempt, rng)


def test_backoff_restarts_only_after_a_connection_delivered_frames() -> None:
    accepted = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal accepted
        accepted += 1
        if accepted > 3:
            await ws.send(b"\x00")
        # then close at once: the first three connections never delivered anything

    async def main() -> None:
        backoff = RecordingBackoff(initial_s=0.001, cap_s=0.01)
        async with serve(handler, "127.0.0.1", 0) as server:
            feed = KiteTickerFeed(
                "k", SECRET, lambda e: None, url=f"ws://127.0.0.1:{port_of(server)}",
                backoff=backoff,
            )  # fmt: skip
            task = asyncio.create_task(feed.run())
            await until(lambda: len(backoff.attempts) >= 5)
            await feed.close()
            await asyncio.wait_for(task, 5)
        assert backoff.attempts[:5] == [0, 1, 2, 0, 0]

    run(main)


def test_backoff_is_capped_exponential_with_jitter() -> None:
    policy = Backoff(initial_s=0.5, cap_s=30.0)
    rng = random.Random(1)
    for attempt in range(80):
        ceiling = min(30.0, 0.5 * 2**attempt)
        delays = [policy.delay(attempt, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered, not lockstep
    assert policy.delay(1000, rng) <= 30.0


@pytest.mark.parametrize(("initial", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_backoff_rejects_bad_bounds(initial: float, cap: float) -> None:
    with pytest.raises(ValueError):
        Backoff(initial_s=initial, cap_s=cap)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"url": "https://ws.kite.trade"}, "ws://"),
        ({"url": "wss://ws.kite.trade?api_key=x"}, "query"),
        ({"api_key": ""}, "required"),
        ({"access_token": ""}, "required"),
        ({"stale_after_s": 0.0}, "positive"),
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"api_key": "k", "access_token": SECRET, "on_event": print}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        KiteTickerFeed(**args)  # type: ignore[arg-type]


def test_redact() -> None:
    assert redact("wss://ws.kite.trade?api_key=k&access_token=abc%2Fd&x=1") == (
        "wss://ws.kite.trade?api_key=k&access_token=***&x=1"
    )
    assert redact("GET /?access_token=abc HTTP/1.1") == "GET /?access_token=*** HTTP/1.1"
