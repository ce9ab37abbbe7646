"""The ingress while the broker goes away and comes back: 503 meanwhile, no 200 ever lost.

Signed webhooks are posted continuously to a real ingress process; once they are being
acknowledged, the local Kafka broker is stopped until the ingress refuses with 503, then
started again (`restartable_kafka`: the session's broker, proven back afterwards). Every
request answered 200 must be in the raw topic; requests during the outage get 503 +
Retry-After (the provider retries them); after the restart the ingress acknowledges again
without being restarted itself.
"""

from __future__ import annotations

import threading
import time

import httpx
import orjson
import pytest

from deploy.local import kafka
from deploy.settings import Settings
from schemas.envelope import RawEnvelope
from tests.conftest import KAFKA_RESTART_TIMEOUT_S
from tests.kafka_helpers import read_all
from tests.pipeline import Pipeline
from tests.polling import wait_for

pytestmark = pytest.mark.integration


PIPELINE_ENV = {"DLR_PRODUCE_TIMEOUT_S": "1"}


@pytest.mark.timeout(900)
def test_broker_outage_gives_503_and_loses_no_acknowledged_webhook(
    restartable_kafka: Settings, pipeline: Pipeline
) -> None:
    pipeline.start("ingress")
    outcomes: list[tuple[str, int, float]] = []
    refusals: list[tuple[str | None, str | None]] = []
    stop = threading.Event()

    def sender(worker: int) -> None:
        with httpx.Client(timeout=15) as client:
            n = 0
            while not stop.is_set():
                n += 1
                mid = f"outage-{worker}-{n}"
                raw = orjson.dumps({"message_id": mid, "status": "delivered", "to": "+1555"})
                response = pipeline.post_generic(client, raw)
                if response.status_code != 200:
                    refusals.append(
                        (response.headers.get("retry-after"), response.json().get("error"))
                    )
                outcomes.append((mid, response.status_code, time.monotonic()))

    threads = [threading.Thread(target=sender, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_for(
            lambda: sum(1 for _, s, _ in outcomes if s == 200),
            lambda n: n >= 50,
            timeout=60,
            what="webhooks acknowledged before the outage",
        )
        kafka.stop(restartable_kafka)
        wait_for(
            lambda: len(refusals),
            lambda n: n >= 8,
            timeout=60,
            what="the ingress refusing with 503 while the broker is down",
        )
        kafka.start(restartable_kafka, timeout=KAFKA_RESTART_TIMEOUT_S)
        restarted = time.monotonic()
        wait_for(
            lambda: sum(1 for _, s, t in outcomes if s == 200 and t > restarted),
            lambda n: n >= 50,
            timeout=60,
            what="acknowledgements flowing again after the restart",
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)

    statuses = {s for _, s, _ in outcomes}
    assert statuses <= {200, 503}, statuses
    accepted = {mid for mid, s, _ in outcomes if s == 200}
    assert refusals, "the outage was not visible"
    assert set(refusals) == {("5", "broker_unavailable")}, set(refusals)
    assert sum(1 for _, s, t in outcomes if s == 200 and t > restarted) >= 50, "no recovery"
    records = read_all(
        pipeline.settings.bootstrap, pipeline.settings.raw_topic, expect=len(accepted), timeout=30
    )
    produced = {RawEnvelope.from_json(r.value or b"").provider_message_id for r in records}
    assert accepted - produced == set(), "acknowledged webhooks missing from Kafka"
    assert pipeline.procs["ingress"].poll() is None, "the ingress died"
