"""The ingress app: what is acknowledged is produced, the rest is not.

Most tests run the real app with an in-process producer double (`tests/doubles.py`): they
read what the app handed over for acknowledgement. The ones marked `integration` run it
against the real broker (a record keyed by message id in the topic; 503 when the broker is
absent).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from deploy.settings import Settings
from ingress import tokens
from ingress import webhook as webhook_module
from ingress.app import GC_YOUNG_THRESHOLD, create_app
from ingress.providers import generic
from ingress.providers._contract import InboundRequest
from schemas.envelope import RawEnvelope
from tests.doubles import RecordingProducer
from tests.kafka_helpers import create_topics, read_all

SECRET = "generic-test-secret"
TOKEN_SECRET = "token-secret"


def body(mid: str = "abc123", **extra: object) -> bytes:
    payload = {
        "message_id": mid,
        "to": "+14155550100",
        "from": "+12065550123",
        "status": "delivered",
        "provider_status_code": "0",
        "error": None,
        "timestamp": "2025-08-12T10:15:00Z",
        **extra,
    }
    return orjson.dumps(payload)


def signed(
    raw: bytes,
    *,
    secret: str = SECRET,
    at: int | None = None,
    url: str = "http://testserver/webhooks/generic",
) -> dict[str, str]:
    request = InboundRequest("POST", url, {"content-type": "application/json"}, raw)
    return dict(generic.sign(request, secret, int(time.time()) if at is None else at).headers)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        kafka_bootstrap="127.0.0.1:1",  # never reached: the producer is a double
        data_dir=tmp_path,
        generic_secrets=f"old-secret,{SECRET}",
        callback_token_secrets=TOKEN_SECRET,
        produce_timeout_s=5.0,
        max_body_bytes=4096,
        dev_secrets=False,
        require_https=False,  # plain-HTTP test client; transport: tests/ingress/test_transport.py
    )


@pytest.fixture
def producer() -> RecordingProducer:
    return RecordingProducer()


@pytest.fixture
def client(settings: Settings, producer: RecordingProducer) -> Iterator[TestClient]:
    with TestClient(create_app(settings, producer=producer)) as c:
        yield c
    assert producer.stopped == 1, "the app stops its producer on shutdown"


@pytest.fixture
def kafka_settings(kafka_bootstrap: str, unique: str, settings: Settings) -> Settings:
    s = settings.model_copy(
        update={"kafka_bootstrap": kafka_bootstrap, "raw_topic": f"raw.{unique}"}
    )
    create_topics(s)
    return s


@pytest.mark.integration
def test_verified_webhook_is_in_kafka_keyed_by_message_id(kafka_settings: Settings) -> None:
    raw = body()
    with TestClient(create_app(kafka_settings)) as client:
        response = client.post("/webhooks/generic", content=raw, headers=signed(raw))
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "accepted", "records": 1}
        assert client.get("/readyz").status_code == 200
    settings = kafka_settings
    (record,) = read_all(settings.bootstrap, settings.raw_topic, expect=1)
    assert record.key == b"generic:abc123"
    envelope = RawEnvelope.from_json(record.value or b"")
    assert envelope.body.encode() == raw
    assert envelope.provider == "generic" and envelope.key_id.startswith("k_")
    assert "x-webhook-signature" in envelope.headers
    assert SECRET not in (record.value or b"").decode()


def test_young_collections_are_rarer_while_serving(
    settings: Settings, producer: RecordingProducer
) -> None:
    """The app raises the young-generation threshold while it serves and puts it back."""
    before = gc.get_threshold()
    assert before[0] != GC_YOUNG_THRESHOLD
    with TestClient(create_app(settings, producer=producer)):
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, *before[1:])
    assert gc.get_threshold() == before


def test_refusals_produce_nothing(client: TestClient, producer: RecordingProducer) -> None:
    raw = body("refused")
    cases = {
        "bad_signature": (
            401,
            client.post("/webhooks/generic", content=raw, headers=signed(raw, secret="wrong")),
        ),
        "tampered": (
            401,
            client.post("/webhooks/generic", content=raw + b" ", headers=signed(raw)),
        ),
        "stale_timestamp": (
            401,
            client.post(
                "/webhooks/generic", content=raw, headers=signed(raw, at=int(time.time()) - 301)
            ),
        ),
        "future_timestamp": (
            401,
            client.post(
                "/webhooks/generic", content=raw, headers=signed(raw, at=int(time.time()) + 301)
            ),
        ),
        "missing_header": (
            401,
            client.post(
                "/webhooks/generic", content=raw, headers={"content-type": "application/json"}
            ),
        ),
        "malformed": (
            400,
            client.post("/webhooks/generic", content=b"{nope", headers=signed(b"{nope")),
        ),
        "invalid": (
            422,
            client.post(
                "/webhooks/generic",
                content=b'{"status":"sent"}',
                headers=signed(b'{"status":"sent"}'),
            ),
        ),
        "unknown_provider": (404, client.post("/webhooks/acme", content=raw, headers=signed(raw))),
        "content_type": (
            415,
            client.post(
                "/webhooks/generic",
                content=raw,
                headers={**signed(raw), "content-type": "text/xml"},
            ),
        ),
        "too_large": (
            413,
            client.post("/webhooks/generic", content=b"x" * 5000, headers=signed(b"x" * 5000)),
        ),
        "method": (405, client.get("/webhooks/generic")),
    }
    for name, (status, response) in cases.items():
        assert response.status_code == status, (name, response.text)
        assert set(response.json()) == {"error", "detail"}, name
    assert producer.records == []
    metrics = client.get("/metrics").text
    assert (
        'dlr_ingress_verification_failures_total{provider="generic",reason="BadSignature"} 2.0'
        in metrics
    )
    assert 'reason="StaleTimestamp"} 2.0' in metrics


def test_rotated_secret_still_verifies(client: TestClient, producer: RecordingProducer) -> None:
    raw = body("rotated")
    response = client.post(
        "/webhooks/generic", content=raw, headers=signed(raw, secret="old-secret")
    )
    assert response.status_code == 200
    assert [key for key, _ in producer.records] == [b"generic:rotated"]


def test_replay_is_acknowledged_but_produced_once(
    client: TestClient, producer: RecordingProducer
) -> None:
    raw = body("replayed")
    headers = signed(raw)
    first = client.post("/webhooks/generic", content=raw, headers=headers)
    second = client.post("/webhooks/generic", content=raw, headers=headers)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["status"] == "duplicate"
    assert [key for key, _ in producer.records] == [b"generic:replayed"]


def test_callback_token_fields_reach_the_envelope(
    client: TestClient, producer: RecordingProducer
) -> None:
    token = tokens.issue({"tenant": "acme", "campaign": "otp"}, TOKEN_SECRET)
    raw = body("tokened")
    url = f"http://testserver/webhooks/generic/{token}"
    ok = client.post(f"/webhooks/generic/{token}", content=raw, headers=signed(raw, url=url))
    assert ok.status_code == 200, ok.text
    forged = tokens.issue({"tenant": "evil", "campaign": "otp"}, "not-our-secret")
    bad = client.post(f"/webhooks/generic/{forged}", content=raw, headers=signed(raw))
    altered = client.post(f"/webhooks/generic/{token[:-2]}xx", content=raw, headers=signed(raw))
    assert (bad.status_code, altered.status_code) == (404, 404)
    assert bad.json()["error"] == "unknown_token"
    ((key, envelope),) = producer.envelopes()
    assert key == b"generic:tokened"
    assert envelope.token == {"tenant": "acme", "campaign": "otp"}


def test_provider_without_credentials_refuses_everything(client: TestClient) -> None:
    raw = b'{"data": {"event_type": "message.finalized"}}'
    response = client.post(
        "/webhooks/telnyx", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "no_credentials"


def test_source_allow_list_and_rate_limit(settings: Settings) -> None:
    limited = settings.model_copy(update={"generic_allow_ips": "10.0.0.0/8"})
    producer = RecordingProducer()
    with TestClient(create_app(limited, producer=producer)) as c:
        raw = body("blocked")
        assert c.post("/webhooks/generic", content=raw, headers=signed(raw)).status_code == 403
    assert producer.records == []
    throttled = settings.model_copy(update={"rate_limit_per_s": 0.001, "rate_limit_burst": 2})
    with TestClient(create_app(throttled, producer=RecordingProducer())) as c:
        codes = [
            c.post("/webhooks/generic", content=b"{}", headers=signed(b"{}")).status_code
            for _ in range(3)
        ]
        assert codes == [422, 422, 429]


def test_health_ready_metrics_openapi(client: TestClient) -> None:
    # Run from the sources here; from `.build/compiled` in tests/integration/test_compiled.py.
    compiled = not webhook_module.__file__.endswith(".py")
    assert client.get("/healthz").json() == {"status": "ok", "compiled": compiled}
    assert f"dlr_ingress_compiled {float(compiled)}" in client.get("/metrics").text
    assert client.get("/readyz").status_code == 200
    doc = client.get("/openapi.json").json()
    assert {
        "/webhooks/{provider}",
        "/webhooks/{provider}/{token}",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= set(doc["paths"])
    responses = doc["paths"]["/webhooks/{provider}"]["post"]["responses"]
    assert {"200", "400", "401", "403", "404", "405", "413", "415", "422", "429", "503"} <= set(
        responses
    )
    assert "dlr_ingress_in_flight" in client.get("/metrics").text


def test_unacknowledged_means_503_with_retry_after_and_nothing_remembered(
    settings: Settings,
) -> None:
    producer = RecordingProducer(available=False)
    with TestClient(create_app(settings, producer=producer)) as c:
        raw = body("retried")
        headers = signed(raw)
        response = c.post("/webhooks/generic", content=raw, headers=headers)
        assert response.status_code == 503
        assert response.json()["error"] == "broker_unavailable"
        assert response.headers["retry-after"]
        assert c.get("/readyz").status_code == 503
        producer.available = True  # the broker is back: the provider's retry goes through
        retry = c.post("/webhooks/generic", content=raw, headers=headers)
        assert retry.json() == {"status": "accepted", "records": 1}, retry.text
        assert c.get("/readyz").status_code == 200
    assert [key for key, _ in producer.records] == [b"generic:retried"]


@pytest.mark.integration
def test_kafka_down_means_503_with_retry_after(tmp_path: Path) -> None:
    from deploy.local.ports import free_port

    down = Settings(
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        generic_secrets=SECRET,
        produce_timeout_s=1.0,
        data_dir=tmp_path,
        dev_secrets=False,
        require_https=False,
    )
    with TestClient(create_app(down)) as c:
        raw = body("lost?")
        response = c.post("/webhooks/generic", content=raw, headers=signed(raw))
        assert response.status_code == 503
        assert response.json()["error"] == "broker_unavailable"
        assert response.headers["retry-after"]
        assert c.get("/readyz").status_code == 503
