"""The monitor's wire contract, sans I/O: what a WebSocket client may send, what it receives,
and how HTTP requests are judged (size, host, origin, token) before any handler runs.

Messages are JSON text frames. JSON rather than a binary layout because the cockpit's browser
parses it natively, each channel is a few hundred bytes to a few KiB at 20-30 Hz (well under
1 MB/s per client), and a human can read it in the browser's network panel; the one channel
that is a matrix (the heatmap) sends only the rows a client has not seen.

Server to client, every message:
    {"seq": n, "ch": <channel>, "t": <unix seconds>, "full": bool, "data": {...}}
`seq` counts this connection's messages from 1 with no holes: a client that sees a hole (a
proxy dropped something) asks for {"op": "snapshot"}. Channels: `hello` (first message: the
schema version, the run, the channels, the rate), `engine` (LIVE / STARTING / DEAD / NONE and the
run; sent on every change), then the subscribed data channels (`vajra.monitor.view.CHANNELS`).
Every data message carries the channel's whole current state (`full` is then true), except the
heatmap, whose messages carry only new rows (`data.rows`, each [row, t_ns, values]) unless
`full`. A slow client is conflated: it receives the newest state of each channel when it can
take it, never a queue of old ones.

Client to server (at most `MAX_CLIENT_MESSAGE` bytes, text frames of JSON objects):
    {"op": "subscribe", "channels": [...]}     {"op": "unsubscribe", "channels": [...]}
    {"op": "snapshot"}                          {"op": "ping"}
Anything else (binary frames, unknown ops or channels, malformed JSON, oversized frames) closes
that connection with 1003 / 1007 / 1008 / 1009 and leaves every other client untouched.
"""

from __future__ import annotations

import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from vajra.monitor.view import CHANNELS

SCHEMA_VERSION = 1
MAX_CLIENT_MESSAGE = 4096  # bytes, one client -> server WebSocket message
MAX_REQUEST_HEAD = 8192  # bytes, request line + headers
MAX_REQUEST_BODY = 4096  # bytes; no endpoint takes a body bigger than a small JSON object


class ClientError(ValueError):
    """A client message the server refuses; `code` is the WebSocket close code to use."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Op:
    op: str
    channels: tuple[str, ...] = ()


def parse_client_message(text: str) -> Op:
    """One client text frame -> an Op, or ClientError naming why not."""
    if len(text.encode()) > MAX_CLIENT_MESSAGE:
        raise ClientError(1009, "message too big")
    try:
        msg = json.loads(text)
    except ValueError:
        raise ClientError(1007, "not JSON") from None
    if not isinstance(msg, dict):
        raise ClientError(1008, "a message is a JSON object")
    op = msg.get("op")
    if op in ("snapshot", "ping"):
        return Op(op)
    if op in ("subscribe", "unsubscribe"):
        chans = msg.get("channels")
        if not isinstance(chans, list) or not all(isinstance(c, str) for c in chans):
            raise ClientError(1008, f"{op}: channels must be a list of names")
        unknown = [c for c in chans if c not in CHANNELS]
        if unknown:
            raise ClientError(1008, f"{op}: unknown channels {unknown[:4]}")
        return Op(op, tuple(chans))
    raise ClientError(1008, f"unknown op {str(op)[:32]!r}")


def with_seq(seq: int, body: str) -> str:
    """A pre-encoded message body (`{"ch":...}`, without seq) with this connection's seq: the
    channel's JSON is encoded once per tick, not once per client."""
    return '{"seq":' + str(seq) + "," + body[1:]


def encode_data(data: Any) -> str:
    """A channel's data as JSON once per tick (compared with the last tick's to skip repeats)."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


def body_from(ch: str, data_json: str, full: bool, t: float) -> str:
    """A message without its seq, around data already encoded by `encode_data`."""
    return (
        f'{{"ch":"{ch}","t":{round(t, 3)},"full":{"true" if full else "false"},"data":{data_json}}}'
    )


def body(ch: str, data: Any, full: bool = True, t: float | None = None) -> str:
    """A message without its seq (see `with_seq`)."""
    return body_from(ch, encode_data(data), full, t if t is not None else time.time())


# -- HTTP admission ---------------------------------------------------------------------------


def host_allowed(host: str | None, allowed: tuple[str, ...]) -> bool:
    """DNS-rebinding guard: the Host header must name this monitor (host[:port])."""
    if not host:
        return False
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    return name.lower() in allowed


def origin_allowed(origin: str | None, allowed: tuple[str, ...]) -> bool:
    """No Origin header (curl, scripts, tests) is allowed; a browser's must be one of ours."""
    return origin is None or origin in allowed


def bearer_ok(authorization: str | None, token: str) -> bool:
    """Constant-time comparison of `Authorization: Bearer <token>`."""
    if not authorization or not authorization.startswith("Bearer "):
        return False
    return hmac.compare_digest(authorization[7:].strip().encode(), token.encode())
