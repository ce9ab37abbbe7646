"""Unit tests of the ingress building blocks: tokens, URLs, replay cache, rate limit, logs,
the envelopes it writes."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.types import Scope

from deploy.logs import JsonFormatter, mask_pii
from ingress import tokens
from ingress.errors import UnknownToken
from ingress.metrics import IngressMetrics
from ingress.providers import Inbound, InboundRequest, Record
from ingress.ratelimit import RateLimiter
from ingress.replay import ReplayCache
from ingress.url import client_ip, external_url, parse_networks
from ingress.webhook import _envelopes
from schemas.envelope import RawEnvelope
from schemas.phone import mask_number, number_hash


def request(
    path: str = "/webhooks/twilio",
    query: str = "a=1",
    peer: str = "10.0.0.5",
    headers: dict[str, str] | None = None,
    host: str = "internal:8080",
) -> Scope:
    raw = [(b"host", host.encode())] + [
        (k.lower().encode(), v.encode()) for k, v in (headers or {}).items()
    ]
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": query.encode(),
        "headers": raw,
        "client": (peer, 5555),
        "server": ("internal", 8080),
        "scheme": "http",
        "root_path": "",
    }
    return scope


def test_token_round_trip_and_tampering() -> None:
    token = tokens.issue({"tenant": "t1", "campaign": "c1", "ref": "r1"}, "k2")
    assert tokens.verify(token, ["k1", "k2"]) == {"tenant": "t1", "campaign": "c1", "ref": "r1"}
    head, mac = token.split(".")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    for bad in (f"{head}x.{mac}", f"{head}.{flipped}", "garbage", token + ".x", ""):
        with pytest.raises(UnknownToken):
            tokens.verify(bad, ["k1", "k2"])
    with pytest.raises(UnknownToken):
        tokens.verify(token, [])


def test_public_base_url_wins() -> None:
    r = request()
    assert external_url(r, "https://hooks.example.com/", ()) == (
        "https://hooks.example.com/webhooks/twilio?a=1"
    )


def test_forwarded_headers_only_from_trusted_proxies() -> None:
    headers = {
        "x-forwarded-proto": "https",
        "x-forwarded-host": "hooks.example.com",
        "x-forwarded-for": "203.0.113.9, 10.0.0.5",
    }
    trusted = parse_networks(["10.0.0.0/8"])
    assert external_url(request(headers=headers), None, trusted) == (
        "https://hooks.example.com/webhooks/twilio?a=1"
    )
    assert client_ip(request(headers=headers), trusted) == "203.0.113.9"
    untrusted = request(headers=headers, peer="198.51.100.7")
    assert external_url(untrusted, None, trusted) == "http://internal:8080/webhooks/twilio?a=1"
    assert client_ip(untrusted, trusted) == "198.51.100.7"


def test_forwarded_port_is_kept_unless_default() -> None:
    trusted = parse_networks(["10.0.0.5"])
    headers = {
        "x-forwarded-proto": "https",
        "x-forwarded-host": "h.example.com",
        "x-forwarded-port": "8443",
    }
    assert external_url(request(headers=headers, query=""), None, trusted) == (
        "https://h.example.com:8443/webhooks/twilio"
    )
    headers["x-forwarded-port"] = "443"
    assert external_url(request(headers=headers, query=""), None, trusted) == (
        "https://h.example.com/webhooks/twilio"
    )


def test_replay_cache_window_and_bound() -> None:
    cache = ReplayCache(window_s=300, max_entries=2)
    cache.add("twilio", "sig1", now=1000)
    assert cache.seen("twilio", "sig1", now=1200)
    assert not cache.seen("plivo", "sig1", now=1200)
    assert not cache.seen("twilio", "sig1", now=1301)
    cache.add("a", "1", now=2000)
    cache.add("a", "2", now=2000)
    cache.add("a", "3", now=2000)
    assert len(cache) == 2 and not cache.seen("a", "1", now=2000)


def test_rate_limiter_refills() -> None:
    limiter = RateLimiter(rate=2.0, burst=2)
    assert [limiter.allow("p", now=0.0) for _ in range(3)] == [True, True, False]
    assert limiter.allow("p", now=0.5)
    assert limiter.allow("other", now=0.5)
    assert RateLimiter(0, 1).allow("p")


def test_phone_numbers_never_reach_logs_in_clear() -> None:
    assert mask_number("+14155550100") == "*********00"
    assert "4155550100" not in mask_pii("to +1 (415) 555-0100 from 447700900123")
    record = logging.LogRecord(
        "t", logging.INFO, __file__, 1, "sent to %s", ("+14155550100",), None
    )
    record.recipient = "+447700900123"
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "sent to *********00"
    assert line["recipient"] == "**********23"


def test_secrets_file_merges_with_environment(tmp_path: Path) -> None:
    from deploy.settings import Settings
    from ingress.credentials import active_credentials

    path = tmp_path / "secrets.json"
    path.write_text(
        json.dumps(
            {
                "twilio": {"secrets": ["from-file"]},
                "bandwidth": {"basic": [["user", "pw"]]},
                "telnyx": {"public_keys": ["a2V5"]},
            }
        )
    )
    creds = active_credentials(
        Settings(twilio_secrets="from-env", secrets_file=path, dev_secrets=False, data_dir=tmp_path)
    )
    assert creds["twilio"].secrets == ("from-env", "from-file")
    assert creds["bandwidth"].basic == (("user", "pw"),)
    assert creds["telnyx"].public_keys == ("a2V5",)
    assert creds["plivo"].empty
    path.write_text(json.dumps({"acme": {"secrets": ["x"]}}))
    with pytest.raises(ValueError, match="unknown providers"):
        active_credentials(Settings(secrets_file=path, dev_secrets=False, data_dir=tmp_path))


text = st.text(max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=50)
@given(
    headers=st.dictionaries(st.text("abcxyz-", min_size=1, max_size=12), text, max_size=4),
    body=st.binary(max_size=40),
    payloads=st.lists(st.dictionaries(text, json_values, max_size=4), min_size=1, max_size=3),
    event_id=st.none() | text,
    token=st.dictionaries(text, text, max_size=2),
    credential=st.sampled_from([None, "authorization", "cookie", "x-api-key"]),
)
def test_envelopes_are_the_dataclass_wire_form(
    headers: dict[str, str],
    body: bytes,
    payloads: list[dict[str, Any]],
    event_id: str | None,
    token: dict[str, str],
    credential: str | None,
) -> None:
    """The ingress writes envelopes from a dict; the bytes are RawEnvelope.to_json()'s,
    credential headers left out whether the request had one or not."""
    headers = {**headers, "content-type": "Text/Plain; x=1"}
    if credential is not None:
        headers[credential] = "Bearer s3cret"
    inbound = InboundRequest("POST", "https://h.example/webhooks/generic?a=1", headers, body)
    records = [
        Record(f"m{i}", f"m{i}:+1555", payload, event_id, None if i == 0 else body[i:])
        for i, payload in enumerate(payloads)
    ]
    items = _envelopes(
        "generic", inbound, records, "k_1", token, 1_700_000_000.25, IngressMetrics(), "salt"
    )
    assert len(items) == len(records)
    for index, ((key, wire), record) in enumerate(zip(items, records, strict=True)):
        raw = body if record.body is None else record.body
        try:
            text_body, encoding = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text_body, encoding = raw.hex(), "hex"
        expected = RawEnvelope(
            provider="generic",
            message_id=f"generic:{record.message_key}",
            provider_message_id=record.provider_message_id,
            received_at=1_700_000_000.25,
            method="POST",
            url=inbound.url,
            headers={k: v for k, v in headers.items() if k != credential},
            content_type="text/plain",
            body=text_body,
            body_encoding=encoding,
            body_sha256=hashlib.sha256(body).hexdigest(),
            payload=dict(record.payload),
            key_id="k_1",
            event_id=event_id,
            part=index,
            parts=len(records),
            token=token,
        )
        assert key == expected.message_id.encode()
        assert wire == expected.to_json()
        assert RawEnvelope.from_json(wire) == expected


def test_inbound_keywords_are_the_dataclass_wire_form_keyed_by_the_number_hash() -> None:
    """On the dict-written path an inbound STOP is an `inbound` envelope keyed by the
    person's number hash whose payload is the keyword (never the text); a conversation
    is not produced; both are counted."""
    body = b"From=%2B14155550100&To=%2B18005550100&Body=stop%21&MessageSid=SM1"
    inbound = InboundRequest(
        "POST", "https://h.example/webhooks/twilio", {"content-type": "x"}, body
    )

    def message(text: str, number: str = "+1 (415) 555-0100") -> Record:
        said = Inbound(number=number, to="+18005550100", text=text, timestamp="1700000000")
        return Record("SM1", "SM1", {"MessageSid": "SM1"}, None, None, inbound=said)

    metrics = IngressMetrics()
    records = [message("Stop!"), message("see you at 5"), message("STOP", number="hello")]
    items = _envelopes("twilio", inbound, records, "k_1", {}, 1_700_000_000.5, metrics, "salt")
    [(key, wire)] = items
    assert key == b"inbound:" + number_hash("+14155550100", "salt").encode()
    expected = RawEnvelope(
        provider="twilio",
        message_id="twilio:SM1",
        provider_message_id="SM1",
        received_at=1_700_000_000.5,
        method="POST",
        url=inbound.url,
        headers={"content-type": "x"},
        content_type="x",
        body=body.decode(),
        body_encoding="utf-8",
        body_sha256=hashlib.sha256(body).hexdigest(),
        payload={
            "number": "+14155550100",
            "to": "+18005550100",
            "keyword": "stop",
            "word": "STOP",
            "language": "en",
            "timestamp": "1700000000",
        },
        key_id="k_1",
        event_id=None,
        part=0,
        parts=3,
        token={},
        kind="inbound",
    )
    assert wire == expected.to_json()
    assert b"see you" not in wire
    assert metrics.inbound == {
        ("twilio", "stop"): 1,
        ("twilio", "none"): 1,
        ("twilio", "no_number"): 1,
    }
