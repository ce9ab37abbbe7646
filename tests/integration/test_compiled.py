"""`dlr ingress` serves the webhook path mypyc compiled: the real build, process and Kafka.

`make test` calls `dlr compile` first, which builds `.build/compiled` when a source changed;
run alone after editing `ingress/` or `schemas/`, this test says the build is stale. The
ingress is started as `dlr ingress` (`DLR_INGRESS_COMPILED=auto`, the default), which runs
itself again on the build; `/healthz` says which path answers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import httpx
import orjson
import pytest

from deploy import compiled
from deploy.local.ports import free_port
from deploy.settings import Settings
from ingress.providers import generic, twilio
from ingress.providers._contract import InboundRequest
from schemas.envelope import RawEnvelope
from tests.kafka_helpers import create_topics, read_all
from tests.processes import clean_env, dlr, first_answer, tail

pytestmark = pytest.mark.integration

SECRET = "compiled-generic-secret"
TOKEN = "0123456789abcdef0123456789abcdef"


@contextmanager
def _ingress(
    kafka_bootstrap: str, unique: str, tmp_path: Path, mode: str
) -> Iterator[tuple[Settings, httpx.Client]]:
    """`dlr ingress` with `DLR_INGRESS_COMPILED=mode` on a raw topic of its own, answering."""
    port = free_port()
    env_vars = {
        "DLR_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "DLR_INGRESS_PORT": str(port),
        "DLR_INGRESS_COMPILED": mode,
        "DLR_REQUIRE_HTTPS": "false",
        "DLR_GENERIC_SECRETS": SECRET,
        "DLR_TWILIO_SECRETS": TOKEN,
        "DLR_RAW_TOPIC": f"raw.{unique}",
        "DLR_DATA_DIR": str(tmp_path / "data"),
        "DLR_LOG_LEVEL": "WARNING",
    }
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap, raw_topic=env_vars["DLR_RAW_TOPIC"], data_dir=tmp_path
    )
    create_topics(settings)
    log_path = tmp_path / "ingress.log"
    with (
        dlr(["ingress"], clean_env(env_vars), log_path) as proc,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10.0) as client,
    ):
        first_answer(client, "/healthz", proc, log_path)
        yield settings, client
    assert "Traceback" not in tail(log_path)


def test_the_compiled_build_answers_webhooks_like_the_sources(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    assert compiled.stale() is None, f"run `dlr compile` (make test does): {compiled.stale()}"
    with _ingress(kafka_bootstrap, unique, tmp_path, "on") as (settings, client):
        base = str(client.base_url).rstrip("/")
        assert client.get("/healthz").json() == {"status": "ok", "compiled": True}
        assert "dlr_ingress_compiled 1.0" in client.get("/metrics").text

        raw = orjson.dumps({"message_id": f"gen-{unique}", "status": "delivered"})
        request = InboundRequest(
            "POST", f"{base}/webhooks/generic", {"content-type": "application/json"}, raw
        )
        signed = generic.sign(request, SECRET, int(time.time()))
        accepted = client.post("/webhooks/generic", content=raw, headers=signed.headers)
        assert accepted.json() == {"status": "accepted", "records": 1}
        forged = generic.sign(request, "not-the-secret", int(time.time()))
        refused = client.post("/webhooks/generic", content=raw, headers=forged.headers)
        assert refused.status_code == 401
        assert refused.json()["error"] == "bad_signature"

        form = urlencode({"MessageSid": f"SM{unique}", "MessageStatus": "delivered"})
        body = form.encode()
        url = f"{base}/webhooks/twilio"
        content = {"content-type": "application/x-www-form-urlencoded"}
        twilio_signed = twilio.sign(InboundRequest("POST", url, content, body), TOKEN, 0)
        answer = client.post("/webhooks/twilio", content=body, headers=twilio_signed.headers)
        assert answer.json() == {"status": "accepted", "records": 1}, answer.text

    records = read_all(settings.bootstrap, settings.raw_topic, expect=2)
    assert sorted(r.key for r in records) == sorted(
        [f"generic:gen-{unique}".encode(), f"twilio:SM{unique}".encode()]
    )
    envelopes = {RawEnvelope.from_json(r.value or b"").provider: r for r in records}
    assert RawEnvelope.from_json(envelopes["generic"].value or b"").body.encode() == raw
    assert RawEnvelope.from_json(envelopes["twilio"].value or b"").payload["MessageStatus"] == (
        "delivered"
    )


def test_off_serves_the_sources(kafka_bootstrap: str, unique: str, tmp_path: Path) -> None:
    with _ingress(kafka_bootstrap, unique, tmp_path, "off") as (_, client):
        assert client.get("/healthz").json() == {"status": "ok", "compiled": False}
        assert "dlr_ingress_compiled 0.0" in client.get("/metrics").text
