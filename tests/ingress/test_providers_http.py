"""Every provider's real request format through the HTTP app, up to the producer.

For each provider that has both a module (`ingress.providers.PROVIDERS`) and fixtures
(`deploy/tools/fixtures/<provider>/`), the app runs in local mode (`dev_secrets=True`), so its
development credentials are created in `tmp_path/dev-secrets.json`; each fixture request is
signed with that provider's `sign()` and its key from that file. Accepted fixtures must be
handed to the producer (an in-process double, `tests/doubles.py`: the real broker's side is
tests/ingress/test_producer.py and tests/integration/) keyed by exactly the expected message
ids; refused variants of one fixture (tampered, wrong key, stale, wrong content type,
oversize) and a replay must leave nothing else behind. Providers whose modules appear later
are picked up automatically.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.testclient import TestClient

from deploy.settings import Settings
from deploy.tools import samples as provider_fixtures
from ingress.app import create_app
from ingress.credentials import dev_secrets
from ingress.errors import VerificationError
from ingress.providers import PROVIDERS
from ingress.providers._contract import InboundRequest, VerifyContext
from schemas.envelope import RawEnvelope
from tests.doubles import RecordingProducer

#: The TestClient's base URL: what URL-signing schemes must sign.
BASE_URL = "http://testserver"
#: Small on purpose: the oversize case only needs a few KiB; every fixture fits well below.
MAX_BODY = 16 * 1024
#: Providers present both as a module and as fixtures (others appear as they are written).
AVAILABLE = [p for p in provider_fixtures.providers() if p in PROVIDERS]

#: What the provider modules document about their schemes; a provider not listed is
#: classified by trying its verifier (see `_signs_timestamp` / `_signs_body`).
KNOWN_TIMESTAMPED = frozenset({"generic", "vonage", "telnyx", "sinch", "bird", "sns", "standard"})
KNOWN_UNTIMESTAMPED = frozenset({"twilio", "plivo", "infobip", "bandwidth"})
#: HTTP Basic only: the credential does not depend on the body, a tampered body verifies.
KNOWN_BODY_UNSIGNED = frozenset({"bandwidth"})


@dataclass
class Harness:
    """The app under test, its settings, the dev keys it created, outbound HTTP it made."""

    client: TestClient
    settings: Settings
    data_dir: Path
    producer: RecordingProducer
    outbound: list[str] = field(default_factory=list)

    def key(self, provider: str) -> str:
        data: dict[str, Any] = json.loads((self.data_dir / "dev-secrets.json").read_text())
        return str(data[provider]["key"])

    def send(self, request: InboundRequest, **overrides: Any) -> httpx.Response:
        """Send an InboundRequest as-is (URL incl. query, headers, raw body)."""
        response: httpx.Response = self.client.request(
            request.method,
            request.url,
            content=overrides.pop("content", request.body),
            headers=overrides.pop("headers", dict(request.headers)),
        )
        return response

    def records(self) -> list[tuple[bytes, RawEnvelope]]:
        """Every record the app handed over for acknowledgement, in order."""
        return self.producer.envelopes()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    settings = Settings(
        kafka_bootstrap="127.0.0.1:1",  # never reached: the producer is a double
        data_dir=tmp_path,
        dev_secrets=True,
        max_body_bytes=MAX_BODY,
        produce_timeout_s=5.0,
    )
    producer = RecordingProducer()
    app = create_app(settings, producer=producer)
    h = Harness(client=TestClient(app), settings=settings, data_dir=tmp_path, producer=producer)

    def outbound(request: httpx.Request) -> httpx.Response:
        # The only outbound HTTP the ingress makes here is the SNS subscription handshake:
        # record it instead of calling AWS (Kafka is the real thing, AWS is not ours).
        h.outbound.append(str(request.url))
        return httpx.Response(200, text="<ConfirmSubscriptionResponse/>")

    app.state.ingress.http = httpx.AsyncClient(transport=httpx.MockTransport(outbound))
    with h.client:
        yield h


def _confirmations(fixtures: list[provider_fixtures.Fixture]) -> list[str]:
    """SubscribeURLs of SNS SubscriptionConfirmation fixtures: the handshake GETs expected."""
    urls = []
    for fixture in fixtures:
        if fixture.provider != "sns":
            continue
        envelope = orjson.loads(fixture.body)
        if envelope.get("Type") == "SubscriptionConfirmation":
            urls.append(envelope["SubscribeURL"])
    return urls


@pytest.mark.parametrize("provider", AVAILABLE)
def test_every_fixture_is_accepted_and_keyed_by_message_id(harness: Harness, provider: str) -> None:
    adapter = PROVIDERS[provider]
    key = harness.key(provider)
    now = int(time.time())
    fixtures = provider_fixtures.load(provider)
    expected: dict[tuple[str, str], list[str]] = {}
    for fixture in fixtures:
        assert len(fixture.body) < MAX_BODY, fixture.name
        signed = adapter.sign(fixture.request(base_url=BASE_URL), key, now)
        response = harness.send(signed)
        assert response.status_code == 200, (fixture.name, response.text)
        assert response.json() == {"status": "accepted", "records": len(fixture.expect)}, (
            fixture.name
        )
        ident = (signed.url, hashlib.sha256(signed.body).hexdigest())
        assert ident not in expected, f"{fixture.name}: two fixtures send the same request"
        expected[ident] = [e["message_id"] for e in fixture.expect]

    total = sum(len(ids) for ids in expected.values())
    records = harness.records()
    got: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for key_bytes, envelope in records:
        assert envelope.provider == provider
        assert key_bytes.decode() == envelope.message_id
        assert envelope.key_id.startswith("k_")
        ident = (envelope.url, envelope.body_sha256)
        assert ident in expected, f"record of a request never sent: {envelope.message_id}"
        assert envelope.parts == len(expected[ident])
        got.setdefault(ident, []).append((envelope.part, envelope.message_id))
    # exactly the expected keys, per request, in extraction order, each exactly once
    assert {i: [m for _, m in sorted(parts)] for i, parts in got.items()} == {
        i: ids for i, ids in expected.items() if ids
    }
    assert len(records) == total
    assert harness.outbound == _confirmations(fixtures)


def _representative(provider: str) -> provider_fixtures.Fixture:
    """One fixture that produces records, a POST with a body when there is one."""
    fixtures = [f for f in provider_fixtures.load(provider) if f.expect]
    assert fixtures, f"{provider} has no fixture that produces a record"
    posts = [f for f in fixtures if f.method == "POST" and f.body]
    return (posts or fixtures)[0]


def _tamper(fixture: provider_fixtures.Fixture, body: bytes) -> bytes:
    """Change one character of the (first) provider message id inside the body."""
    raw_id = fixture.expect[0]["message_id"].split(":", 1)[1].split(":", 1)[0].encode()
    at = body.find(raw_id)
    assert at >= 0, f"{fixture.name}: message id not in the body"
    end = at + len(raw_id) - 1
    replacement = b"1" if body[end : end + 1] == b"0" else b"0"
    tampered = body[:end] + replacement + body[end + 1 :]
    assert tampered != body
    return tampered


def _verifies(harness: Harness, provider: str, request: InboundRequest, now: float) -> str:
    """What the provider's own verifier says about a request: 'ok' or the refusal class."""
    credentials, _ = dev_secrets(harness.settings)[provider]
    context = VerifyContext(now=now, window=harness.settings.replay_window_s)
    try:
        asyncio.run(PROVIDERS[provider].verify(request, credentials, context))
    except VerificationError as exc:
        return type(exc).__name__
    return "ok"


def _stale_window(provider: str, settings: Settings) -> float:
    """The timestamp window a provider enforces (SNS widens it to its retry hour)."""
    minimum = float(getattr(PROVIDERS[provider], "MIN_WINDOW", 0.0))
    return max(settings.replay_window_s, minimum)


@pytest.mark.parametrize("provider", AVAILABLE)
def test_refused_variants_produce_nothing_and_replay_is_produced_once(
    harness: Harness, provider: str
) -> None:
    adapter = PROVIDERS[provider]
    fixture = _representative(provider)
    key = harness.key(provider)
    now = int(time.time())
    unsigned = fixture.request(base_url=BASE_URL)
    signed = adapter.sign(unsigned, key, now)
    # (case, response, expected status, expected error code)
    refusals: list[tuple[str, httpx.Response, int, str]] = []

    # tampered body: signature over the original body
    tampered = signed.with_(body=_tamper(fixture, signed.body))
    body_signed = _verifies(harness, provider, tampered, now) != "ok"
    assert body_signed == (provider not in KNOWN_BODY_UNSIGNED), provider
    if body_signed:
        refusals.append(("tampered", harness.send(tampered), 401, "bad_signature"))

    # wrong key: a second, independent set of development credentials
    _, other_key = adapter.dev_credentials()
    assert other_key != key
    wrong = adapter.sign(unsigned, other_key, now)
    refusals.append(("wrong_key", harness.send(wrong), 401, "bad_signature"))

    # stale timestamp: only schemes that sign one can refuse it
    stale = adapter.sign(unsigned, key, int(now - 2 * _stale_window(provider, harness.settings)))
    timestamped = _verifies(harness, provider, stale, now) == "StaleTimestamp"
    if provider in KNOWN_TIMESTAMPED | KNOWN_UNTIMESTAMPED:
        assert timestamped == (provider in KNOWN_TIMESTAMPED), provider
    if timestamped:
        refusals.append(("stale", harness.send(stale), 401, "stale_timestamp"))

    # content type the provider never sends (checked before the signature)
    if adapter.CONTENT_TYPES and signed.method != "GET":
        odd = "application/octet-stream"
        assert odd not in adapter.CONTENT_TYPES
        headers = {**signed.headers, "content-type": odd}
        refusals.append(
            ("content_type", harness.send(signed, headers=headers), 415, "unsupported_media_type")
        )

    # oversize: declared by content-length, and streamed without one (chunked)
    padded = signed.body + b" " * (MAX_BODY + 1 - len(signed.body))
    refusals.append(("oversize", harness.send(signed, content=padded), 413, "payload_too_large"))
    chunks = iter([signed.body, b" " * MAX_BODY])
    refusals.append(
        ("oversize_chunked", harness.send(signed, content=chunks), 413, "payload_too_large")
    )

    for case, response, status, code in refusals:
        assert response.status_code == status, (case, response.text)
        assert response.json() == {"error": code, "detail": response.json()["detail"]}, case

    # replay: the identical signed request twice
    first = harness.send(signed)
    second = harness.send(signed)
    assert first.status_code == 200, first.text
    assert first.json() == {"status": "accepted", "records": len(fixture.expect)}
    assert second.status_code == 200, second.text
    assert second.json() == {"status": "duplicate"}

    records = harness.records()
    assert sorted(k.decode() for k, _ in records) == sorted(e["message_id"] for e in fixture.expect)
    assert {envelope.body_sha256 for _, envelope in records} == {
        hashlib.sha256(signed.body).hexdigest()
    }
