"""Privacy through the whole pipeline (ingress, worker, sink, API as processes, the real
broker and ClickHouse): an opt-out receipt reaches the suppression list within seconds,
inbound STOP then START suppresses and re-allows, and after a simulator run no canonical
event, action or dead letter carries a clear number (`DLR_PII_MODE=hash`, the default)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from deploy.demo import PREFIX, _run
from ingress.providers import PROVIDERS
from ingress.providers._contract import InboundRequest
from schemas.phone import number_hash
from sinks.clickhouse.client import connect
from tests.kafka_helpers import read_all
from tests.pipeline import Pipeline
from tests.polling import wait_for

pytestmark = pytest.mark.integration

SALT = "pipeline-privacy-salt"
PIPELINE_ENV = {
    "DLR_PII_SALT": SALT,
    "DLR_FALLBACK_CAMPAIGNS": "order-confirmation,otp,promo-spring,reminder,spring",
}
OPTED_OUT = "+14155550177"
TEXTER = "+14155550188"
#: Every number this test sends: the demo's ranges and the two above (digits only, so a
#: number written with or without '+' is found).
CLEAR = re.compile(
    "(" + "|".join(p.lstrip("+") for p in PREFIX.values()) + r")\d{4}|14155550177|14155550188"
)


def post(p: Pipeline, payload: dict[str, Any]) -> None:
    body = orjson.dumps(payload)
    request = InboundRequest(
        "POST", f"{p.base_url}/webhooks/generic", {"content-type": "application/json"}, body
    )
    signed = PROVIDERS["generic"].sign(request, p.signing_key("generic"), int(time.time()))
    response = httpx.post(signed.url, content=signed.body, headers=dict(signed.headers))
    assert response.status_code == 200, response.text


def check(p: Pipeline, number: str) -> dict[str, Any]:
    response = httpx.get(
        f"{p.api_url}/v1/suppressions/{number}",
        headers={"authorization": f"Bearer {p.api_key()}"},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_opt_outs_reach_the_list_and_no_clear_number_travels(
    pipeline: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline.start("ingress", "worker", "sink", "api")
    p = pipeline

    # an opt-out receipt: suppressed within seconds
    sent = time.monotonic()
    post(p, {"message_id": "optout-1", "to": OPTED_OUT, "from": "ACME", "status": "rejected",
             "provider_status_code": "opted_out", "error": "recipient opted out",
             "timestamp": "2025-08-12T10:16:00Z", "campaign": "spring"})  # fmt: skip
    answer = wait_for(
        lambda: check(p, OPTED_OUT), lambda a: a["suppressed"], timeout=20, what="opt-out listed"
    )
    assert (answer["reason"], answer["source"]) == ("opted_out", "receipt")
    print(f"opt-out receipt -> suppressed in {time.monotonic() - sent:.1f} s")

    # inbound STOP, then START: suppressed, then allowed again
    post(p, {"type": "inbound", "message_id": "in-1", "from": TEXTER, "to": "+12065550123",
             "text": "STOP", "timestamp": "2025-08-12T10:20:00Z"})  # fmt: skip
    answer = wait_for(
        lambda: check(p, TEXTER), lambda a: a["suppressed"], timeout=20, what="STOP listed"
    )
    assert (answer["reason"], answer["source"]) == ("opted_out", "inbound")
    post(p, {"type": "inbound", "message_id": "in-2", "from": TEXTER, "to": "+12065550123",
             "text": "start", "timestamp": "2025-08-12T10:21:00Z"})  # fmt: skip
    wait_for(
        lambda: check(p, TEXTER), lambda a: not a["suppressed"], timeout=20, what="START allowed"
    )

    # an unmapped status: a dead letter
    post(p, {"message_id": "odd-1", "to": TEXTER, "from": "+12065550123",
             "status": "teleported", "provider_status_code": None, "error": None,
             "timestamp": "2025-08-12T10:22:00Z"})  # fmt: skip

    # a simulator run in hash mode
    code = _run(
        p.settings,
        p.base_url,
        messages=60,
        seed=15,
        truth=None,
        concurrency=16,
        timeout=180,
        connect=connect,
    )
    assert code == 0, capsys.readouterr().out

    settings = p.settings
    scanned: dict[str, list[bytes]] = {}
    for topic in (settings.status_topic, settings.actions_topic, settings.deadletter_topic):
        records = read_all(settings.bootstrap, topic, timeout=10.0)
        scanned[topic] = [(r.key or b"") + b" " + (r.value or b"") for r in records]
    assert len(scanned[settings.status_topic]) > 60 * 3  # every report's event was scanned
    kinds = {orjson.loads(v.split(b" ", 1)[1])["type"] for v in scanned[settings.actions_topic]}
    assert {"suppress", "unsuppress", "fallback"} <= kinds
    assert any(b"unmapped" in v for v in scanned[settings.deadletter_topic])
    raw = read_all(settings.bootstrap, settings.raw_topic, timeout=10.0)
    assert any(CLEAR.search((r.value or b"").decode()) for r in raw)  # the pattern finds them
    leaks = {
        topic: [v[:200] for v in values if CLEAR.search(v.decode("utf-8", "replace"))]
        for topic, values in scanned.items()
    }
    assert leaks == {topic: [] for topic in scanned}

    # the events carry the hash: the same one the list and an erasure use
    client: Any = connect(settings)
    hashed = client.command(
        f"SELECT any(recipient) FROM {settings.clickhouse_database}.events "
        "WHERE message_id = 'generic:optout-1'"
    )
    assert hashed == number_hash(OPTED_OUT, SALT)
    client.close()
