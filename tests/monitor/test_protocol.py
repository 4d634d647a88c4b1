"""The monitor's sans-I/O rules: client messages, admission checks, redaction, metrics text."""

from __future__ import annotations

import json

import pytest

from vajra.monitor.metrics import BOUNDS_S, _labels, _num
from vajra.monitor.protocol import (
    MAX_CLIENT_MESSAGE,
    ClientError,
    Op,
    bearer_ok,
    body,
    host_allowed,
    origin_allowed,
    parse_client_message,
    with_seq,
)
from vajra.monitor.view import CHANNELS, redact


def test_client_messages_parse_or_name_the_close_code() -> None:
    assert parse_client_message('{"op":"snapshot"}') == Op("snapshot")
    assert parse_client_message('{"op":"ping"}') == Op("ping")
    assert parse_client_message('{"op":"subscribe","channels":["sonar","cores"]}') == Op(
        "subscribe", ("sonar", "cores")
    )
    cases = {
        "not json": 1007,
        "[1,2]": 1008,
        '{"op":"subscribe","channels":"sonar"}': 1008,
        '{"op":"subscribe","channels":["nope"]}': 1008,
        '{"op":"rm -rf"}': 1008,
        '{"channels":[]}': 1008,
        json.dumps({"op": "ping", "pad": "x" * MAX_CLIENT_MESSAGE}): 1009,
    }
    for text, code in cases.items():
        with pytest.raises(ClientError) as e:
            parse_client_message(text)
        assert e.value.code == code, text


def test_every_channel_can_be_subscribed() -> None:
    op = parse_client_message(json.dumps({"op": "subscribe", "channels": list(CHANNELS)}))
    assert op.channels == CHANNELS


def test_a_message_body_takes_each_connections_seq() -> None:
    b = body("sonar", {"open": True, "x": 1.5}, True, 12.0)
    m = json.loads(with_seq(7, b))
    assert m == {"seq": 7, "ch": "sonar", "t": 12.0, "full": True, "data": {"open": True, "x": 1.5}}
    with pytest.raises(ValueError):
        body("sonar", {"x": float("nan")})  # never NaN on the wire: JSON has no NaN


def test_admission_host_origin_and_token() -> None:
    allowed = ("127.0.0.1", "localhost", "[::1]")
    assert host_allowed("127.0.0.1:8787", allowed)
    assert host_allowed("localhost", allowed)
    assert host_allowed("[::1]:8787", allowed)
    assert not host_allowed("evil.example:8787", allowed)
    assert not host_allowed("127.0.0.1.evil.example", allowed)
    assert not host_allowed(None, allowed)
    origins = ("http://127.0.0.1:8787",)
    assert origin_allowed(None, origins)
    assert origin_allowed("http://127.0.0.1:8787", origins)
    assert not origin_allowed("http://127.0.0.1:9999", origins)
    assert not origin_allowed("null", origins)
    tok = "a-long-enough-token-0123456789"
    assert bearer_ok(f"Bearer {tok}", tok)
    assert not bearer_ok(f"Bearer {tok}x", tok)
    assert not bearer_ok(tok, tok)
    assert not bearer_ok("Basic abc", tok)
    assert not bearer_ok(None, tok)


def test_secrets_are_redacted_recursively() -> None:
    cfg = {
        "venue": {"kind": "kite", "api_key": "k123", "access_token_file": "/run/secrets/t"},
        "monitor": {"token": "", "password": "hunter2"},
        "list": [{"secret": "s"}],
        "feed": {"speed": 5.0},
    }
    out = redact(cfg)
    assert out["venue"] == {
        "kind": "kite",
        "api_key": "[redacted]",
        "access_token_file": "[redacted]",
    }
    assert out["monitor"] == {"token": "", "password": "[redacted]"}
    assert out["list"] == [{"secret": "[redacted]"}]
    assert out["feed"] == {"speed": 5.0}


def test_metrics_text_primitives() -> None:
    assert _labels({}) == ""
    assert _labels({"run": 'a"b\\c\nd'}) == '{run="a\\"b\\\\c\\nd"}'
    assert _num(None) == "NaN" and _num(float("inf")) == "+Inf" and _num(3.0) == "3"
    assert list(BOUNDS_S) == sorted(BOUNDS_S) and BOUNDS_S[0] == 1e-6 and BOUNDS_S[-1] == 10.0


def test_a_body_from_pre_encoded_data_is_the_same_message() -> None:
    from vajra.monitor.protocol import body_from, encode_data

    data = {"a": [1, 2.5, None], "b": 'x"y'}
    assert json.loads(body_from("oracle", encode_data(data), False, 3.25)) == json.loads(
        body("oracle", data, False, 3.25)
    )
