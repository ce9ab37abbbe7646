"""`dlr ingress --tls-cert C --tls-key K` serves HTTPS itself: the real process, real Kafka.

A self-signed certificate for 127.0.0.1 is generated into tmp_path; the ingress runs as a
subprocess (its own process group, stopped with SIGTERM in a finally block) and is talked
to with httpx trusting exactly that certificate.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import orjson
import pytest

from deploy import compiled
from deploy.local.ports import free_port
from deploy.settings import Settings
from ingress.providers import generic
from ingress.providers._contract import InboundRequest
from schemas.envelope import RawEnvelope
from tests.certs import HOST, self_signed
from tests.kafka_helpers import create_topics, read_all
from tests.processes import clean_env, dlr, first_answer, tail

pytestmark = pytest.mark.integration

SECRET = "tls-generic-secret"


def test_ingress_serves_https_with_the_given_certificate(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    env_vars = {
        "DLR_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "DLR_INGRESS_PORT": str(port),
        "DLR_GENERIC_SECRETS": SECRET,
        "DLR_RAW_TOPIC": f"raw.{unique}",
        "DLR_DATA_DIR": str(tmp_path / "data"),
        "DLR_LOG_LEVEL": "WARNING",
    }
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        raw_topic=env_vars["DLR_RAW_TOPIC"],
        data_dir=tmp_path / "data",
    )
    create_topics(settings)
    log_path = tmp_path / "ingress.log"
    base = f"https://{HOST}:{port}"
    args = ["ingress", "--tls-cert", str(cert), "--tls-key", str(key)]
    with dlr(args, clean_env(env_vars), log_path) as proc:
        with httpx.Client(base_url=base, verify=str(cert), timeout=5.0) as client:
            health = first_answer(client, "/healthz", proc, log_path)
            assert health.status_code == 200
            # `dlr ingress` serves the compiled webhook path whenever the build is fresh
            fresh = compiled.stale() is None
            assert health.json() == {"status": "ok", "compiled": fresh}
            assert health.url.scheme == "https"

            raw = orjson.dumps(
                {
                    "message_id": f"tls-{unique}",
                    "to": "+14155550100",
                    "status": "delivered",
                    "timestamp": "2025-08-12T10:15:00Z",
                }
            )
            request = InboundRequest(
                "POST", f"{base}/webhooks/generic", {"content-type": "application/json"}, raw
            )
            signed = generic.sign(request, SECRET, int(time.time()))
            response = client.post("/webhooks/generic", content=raw, headers=dict(signed.headers))
            assert response.status_code == 200, response.text
            assert response.json() == {"status": "accepted", "records": 1}
            assert response.headers["strict-transport-security"] == "max-age=31536000"

        (record,) = read_all(settings.bootstrap, settings.raw_topic, expect=1)
        assert record.key == f"generic:tls-{unique}".encode()
        envelope = RawEnvelope.from_json(record.value or b"")
        assert envelope.url == f"{base}/webhooks/generic"  # the scheme the provider used
        assert envelope.body.encode() == raw

        # the same port does not speak plain HTTP
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://{HOST}:{port}/healthz", timeout=5.0)
        # nor does it pass for anyone else's certificate (default trust store)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/healthz", timeout=5.0)
    # SIGTERM is a graceful shutdown (uvicorn re-raises the signal once it has shut down),
    # and nothing of the process group is left behind
    assert proc.returncode in (0, -signal.SIGTERM), tail(log_path)
    assert "Traceback" not in tail(log_path)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)
