"""Refused requests kept for debugging (DLR_CAPTURE_REFUSED): bounded, without secrets,
only on the refusal path; the integration test reads them back from the real broker."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from deploy.settings import Settings
from deploy.tools.capture import run_capture
from ingress.app import create_app
from ingress.errors import BadSignature
from ingress.refused import record_of, secret
from tests.doubles import RecordingProducer
from tests.ingress.test_app import SECRET, TOKEN_SECRET, body, signed
from tests.kafka_helpers import create_topics, read_all


def test_a_record_keeps_no_secret_no_token_no_query_value_and_a_bounded_body() -> None:
    headers = {
        "content-type": "application/json",
        "authorization": "Basic dXNlcjpwYXNz",
        "x-twilio-signature": "c2ln",
        "x-api-key": "k",
        "cookie": "s=1",
        "webhook-timestamp": "1700000000",
        "user-agent": "TwilioProxy/1.1",
    }
    record = record_of(
        "twilio",
        BadSignature("no active secret matched"),
        "POST",
        "https://edge.example/webhooks/twilio/TOKENVALUE?sig=abc&AccountSid=AC1",
        "TOKENVALUE",
        headers,
        b"x" * 100,
        "203.0.113.9",
        10,
        1.5,
    )
    text = orjson.dumps(record).decode()
    for leaked in ("dXNlcjpwYXNz", "c2ln", "TOKENVALUE", "abc", "AC1", "s=1"):
        assert leaked not in text, leaked
    assert record["url"] == "https://edge.example/webhooks/twilio/<token>"
    assert record["query_names"] == ["AccountSid", "sig"]
    assert record["headers"] == {
        "content-type": "application/json",
        "webhook-timestamp": "1700000000",
        "user-agent": "TwilioProxy/1.1",
    }
    assert record["headers_dropped"] == sorted(
        ["authorization", "x-twilio-signature", "x-api-key", "cookie"]
    )
    assert (record["body"], record["body_bytes"], record["body_truncated"]) == ("x" * 10, 100, True)
    assert (record["status"], record["error"]) == (401, "bad_signature")


@pytest.mark.parametrize(
    "name",
    ["x-plivo-signature-v3", "telnyx-signature-ed25519", "proxy-authorization", "x-auth-token"],
)
def test_every_provider_signature_header_counts_as_secret(name: str) -> None:
    assert secret(name)


def test_off_by_default(tmp_path: Path) -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:1", data_dir=tmp_path, dev_secrets=False)
    assert settings.capture_refused is False
    with TestClient(create_app(settings, producer=RecordingProducer())) as client:
        assert client.app.ingress.refused is None  # type: ignore[attr-defined]


@pytest.mark.integration
def test_refused_requests_reach_their_topic_without_secrets_and_accepted_ones_do_not(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        data_dir=tmp_path,
        generic_secrets=SECRET,
        callback_token_secrets=TOKEN_SECRET,
        dev_secrets=False,
        require_https=False,
        raw_topic=f"raw.{unique}",
        refused_topic=f"refused.{unique}",
        capture_refused=True,
        refused_body_bytes=64,
    )
    create_topics(settings)
    forged = body("forged1", padding="p" * 500)
    good = body("good1")
    with TestClient(create_app(settings)) as client:
        headers = signed(forged, secret="not-the-secret") | {"authorization": "Bearer hunter2"}
        assert client.post("/webhooks/generic", content=forged, headers=headers).status_code == 401
        stray = "/webhooks/generic/not-a-real-token"
        assert client.post(stray, content=good, headers=signed(good)).status_code == 404
        assert (
            client.post("/webhooks/generic", content=good, headers=signed(good)).status_code == 200
        )
        metrics = client.get("/metrics").text
    assert 'dlr_ingress_refused_captures_total{result="kept"} 2.0' in metrics
    records = read_all(settings.bootstrap, settings.refused_topic, expect=2, timeout=30)
    assert len(records) == 2  # the accepted request is not there
    kept = sorted((orjson.loads(r.value or b"") for r in records), key=lambda r: r["status"])
    bad, unknown = kept
    assert (bad["status"], bad["error"], bad["provider"]) == (401, "bad_signature", "generic")
    assert bad["body"] == forged[:64].decode() and bad["body_bytes"] == len(forged)
    assert "x-webhook-signature" in bad["headers_dropped"]
    assert not any(secret(h) for h in bad["headers"])
    assert (unknown["status"], unknown["error"]) == (404, "unknown_token")
    assert unknown["body"] is None  # refused before the body was read
    assert unknown["url"].endswith("/webhooks/generic/<token>")
    raw_text = b"".join(r.value or b"" for r in records).decode()
    for leaked in ("hunter2", "not-a-real-token", headers["x-webhook-signature"]):
        assert leaked not in raw_text
    out = tmp_path / "refused.jsonl"
    assert run_capture(settings, "10m", out, "generic", refused=True) == 0
    lines = [orjson.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["error"] for line in lines) == ["bad_signature", "unknown_token"]
