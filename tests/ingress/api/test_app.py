"""The sender's API against a real broker and a real ClickHouse: what it produces, what it
refuses (and then produces nothing), keys, scopes and tenants on every route."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from starlette.testclient import TestClient

from deploy.local.ports import free_port
from deploy.settings import Settings
from ingress.api.app import create_app
from ingress.api.keys import token_hash
from schemas.events import CanonicalEvent
from schemas.lifecycle import FailureReason, State
from schemas.phone import number_hash
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.writer import SENDS, EventWriter
from tests.kafka_helpers import create_topics, read_all, topic_partitions

pytestmark = pytest.mark.integration

TOKENS = {
    "all": ("all", None, ["messages:write", "messages:read"]),
    "a": ("tenant-a", "a", ["messages:write", "messages:read"]),
    "b": ("tenant-b", "b", ["messages:write", "messages:read"]),
    "read": ("reader", None, ["messages:read"]),
    "write": ("writer", None, ["messages:write"]),
}


def auth(name: str) -> dict[str, str]:
    return {"authorization": f"Bearer token-{name}"}


def keys_json() -> str:
    return json.dumps(
        [
            {"id": key_id, "sha256": token_hash(f"token-{name}"), "scopes": scopes}
            | ({"tenant": tenant} if tenant else {})
            for name, (key_id, tenant, scopes) in TOKENS.items()
        ]
    )


def message(mid: str = "generic:m1", **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    base: dict[str, Any] = {
        "message_id": mid,
        "recipient": "+44 7700 900123",
        "sender": "ACME",
        "campaign": "order-confirmation",
        "client_ref": "order-1001",
        "submitted_at": (now - timedelta(seconds=5)).isoformat(),
        "consent": {
            "source": "checkout-checkbox",
            "obtained_at": (now - timedelta(days=3)).isoformat(),
            "reference": "terms-v3",
        },
    }
    base.update(changes)
    return base


@pytest.fixture
def settings(kafka_bootstrap: str, clickhouse_url: str, unique: str, tmp_path: Path) -> Settings:
    s = Settings(
        kafka_bootstrap=kafka_bootstrap,
        clickhouse_url=clickhouse_url,
        clickhouse_database=f"api_{unique}",
        sends_topic=f"sends.{unique}",
        raw_topic=f"raw.{unique}",
        data_dir=tmp_path,
        api_keys=keys_json(),
        api_max_body_bytes=8192,
        api_max_batch=5,
        api_rate_limit_per_s=0,
        api_produce_timeout_s=5.0,
        dev_secrets=False,
        require_https=False,  # plain-HTTP test client; transport: tests/ingress/test_transport.py
        unreported_after_s=60,
    )
    create_topics(s)
    return s


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def produced(settings: Settings, expect: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    if expect is None and count(settings) == 0:  # the end offsets say it at once
        return []
    records = read_all(settings.bootstrap, settings.sends_topic, expect=expect, timeout=5.0)
    return [((r.key or b"").decode(), orjson.loads(r.value or b"{}")) for r in records]


def count(settings: Settings) -> int:
    """Records in the sends topic (its partitions' end offsets)."""

    async def ends() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap)
        await consumer.start()
        try:
            partitions = await topic_partitions(consumer, settings.sends_topic)
            return sum((await consumer.end_offsets(partitions)).values())
        finally:
            await consumer.stop()

    return asyncio.run(ends())


def test_a_registration_is_in_kafka_keyed_by_message_id(
    client: TestClient, settings: Settings
) -> None:
    response = client.post("/v1/messages", json=message(), headers=auth("all"))
    assert response.status_code == 202, response.text
    assert response.json() == {"message_id": "generic:m1", "status": "accepted"}
    [(key, record)] = produced(settings, 1)
    assert key == "generic:m1"
    assert record["type"] == "registration" and record["key_id"] == "all"
    # the salted hash of the normalised E.164 number (DLR_PII_MODE=hash, the default)
    assert (record["recipient"], record["pii_mode"]) == (
        number_hash("+447700900123", settings.pii_salt),
        "hash",
    )
    assert "447700900123" not in json.dumps(record)
    assert record["consent"]["source"] == "checkout-checkbox"
    assert record["country"] == "GB" and len(record["digest"]) == 64


def test_registering_again_is_accepted_and_changes_nothing(
    client: TestClient, settings: Settings
) -> None:
    body = message()
    for _ in range(2):
        assert client.post("/v1/messages", json=body, headers=auth("all")).status_code == 202
    records = produced(settings, 2)
    assert len(records) == 2
    assert records[0][1]["digest"] == records[1][1]["digest"]  # the worker drops the second


def test_a_batch_with_parts_links_every_part(client: TestClient, settings: Settings) -> None:
    batch = [
        message("vonage:P1", parts=["P1", "P2", "P3"]),
        message("generic:m2", client_ref=None),
    ]
    response = client.post("/v1/messages", json=batch, headers=auth("all"))
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 2
    records = produced(settings, 4)
    links = sorted((key, r["message_id"], r["index"]) for key, r in records if r["type"] == "part")
    assert links == [("vonage:P2", "vonage:P1", 1), ("vonage:P3", "vonage:P1", 2)]


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        pytest.param(b"{not json", {}, 400, "malformed_json", id="malformed"),
        pytest.param(
            orjson.dumps(message(recipient="call me")), {}, 422, "invalid_registration", id="phone"
        ),
        pytest.param(
            orjson.dumps(message(consnt={"source": "x"})),
            {},
            422,
            "invalid_registration",
            id="unknown-field",
        ),
        pytest.param(
            orjson.dumps(message(message_id="nosuchprovider:1")),
            {},
            422,
            "invalid_registration",
            id="provider",
        ),
        pytest.param(
            orjson.dumps(message(submitted_at="2999-01-01T00:00:00Z")),
            {},
            422,
            "invalid_registration",
            id="future",
        ),
        pytest.param(
            orjson.dumps([message(), message(recipient="x")]),
            {},
            422,
            "invalid_registration",
            id="one-bad-in-a-batch",
        ),
        pytest.param(b"x" * 9000, {}, 413, "payload_too_large", id="oversized"),
        pytest.param(
            orjson.dumps([message(f"generic:m{i}") for i in range(6)]),
            {},
            413,
            "batch_too_large",
            id="too-many",
        ),
        pytest.param(
            orjson.dumps(message()),
            {"content-type": "text/plain"},
            415,
            "unsupported_media_type",
            id="content-type",
        ),
    ],
)
def test_bad_bodies_get_a_precise_4xx_and_nothing_is_produced(
    client: TestClient,
    settings: Settings,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    sent = {"content-type": "application/json", **auth("all"), **headers}
    response = client.post("/v1/messages", content=body, headers=sent)
    assert response.status_code == status, response.text
    assert response.json()["error"] == code
    if code == "invalid_registration":
        assert response.json()["errors"][0]["index"] in (0, 1)
    assert produced(settings) == []


ROUTES = [
    ("POST", "/v1/messages", "messages:write"),
    ("GET", "/v1/messages/generic:m1", "messages:read"),
    ("GET", "/v1/messages?client_ref=order-1001", "messages:read"),
]


@pytest.mark.parametrize(("method", "path", "scope"), ROUTES)
def test_every_route_needs_a_known_key_with_its_scope(
    client: TestClient, method: str, path: str, scope: str
) -> None:
    def call(headers: dict[str, str]) -> Any:
        return client.request(method, path, json=message(), headers=headers)

    missing = call({})
    assert missing.status_code == 401 and missing.json()["error"] == "missing_api_key"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    unknown = call({"authorization": "Bearer nope"})
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_api_key"
    other = "read" if scope == "messages:write" else "write"
    refused = call(auth(other))
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"


def test_a_tenant_key_never_writes_another_tenant(client: TestClient, settings: Settings) -> None:
    response = client.post("/v1/messages", json=message(tenant="b"), headers=auth("a"))
    assert response.status_code == 403 and response.json()["error"] == "tenant_mismatch"
    assert produced(settings) == []
    response = client.post("/v1/messages", json=message(), headers=auth("a"))
    assert response.status_code == 202
    [(_, record)] = produced(settings, 1)
    assert record["tenant"] == "a"  # the key's tenant is written


def store_rows(settings: Settings) -> None:
    """Two registered messages of tenants a and b, b's with a delivered receipt."""
    client = connect(settings)
    migrate(client, settings.clickhouse_database)
    sends = EventWriter(client, settings.clickhouse_database, pii_mode="hash", salt="s", spec=SENDS)
    now = datetime.now(UTC)
    regs = []
    for index, tenant in enumerate(("a", "b")):
        record = {
            **message(f"generic:t{tenant}"),
            "provider": "generic",
            "provider_message_id": f"t{tenant}",
            "recipient": "+447700900123",
            "tenant": tenant,
            "submitted_at": (now - timedelta(hours=2)).isoformat(),
            "registered_at": (now - timedelta(hours=2)).isoformat(),
            "parts": None,
            "country": "GB",
            "region": "Northern Europe",
            "key_id": f"tenant-{tenant}",
            "digest": "d" * 64,
            "version": 2**63 - index,
        }
        regs.append(record)
    sends.write(regs)
    event = CanonicalEvent(
        event_id="e" * 32,
        message_id="generic:tb",
        provider="generic",
        provider_message_id="tb",
        state=State.UNDELIVERED,
        current_state=State.UNDELIVERED,
        previous_state=None,
        transition="advanced",
        is_final=True,
        failure_reason=FailureReason.INVALID_NUMBER,
        provider_status="undelivered",
        provider_error_code="30005",
        provider_error_text=None,
        mapped=True,
        recipient="+447700900123",
        sender="ACME",
        carrier="EE",
        mcc=None,
        mnc=None,
        country="GB",
        region="Northern Europe",
        campaign=None,
        tenant="b",
        client_ref="order-1001",
        segments=1,
        price=None,
        currency=None,
        sequence=None,
        provider_timestamp=now - timedelta(minutes=90),
        received_at=now - timedelta(minutes=90),
        emitted_at=now - timedelta(minutes=90),
        raw_sha256="0" * 64,
    )
    EventWriter(client, settings.clickhouse_database, pii_mode="hash", salt="s").write(
        [event.to_dict()]
    )
    client.close()


def test_lookups_answer_state_consent_history_and_never_another_tenants_message(
    client: TestClient, settings: Settings
) -> None:
    store_rows(settings)
    b = client.get("/v1/messages/generic:tb", headers=auth("b"))
    assert b.status_code == 200, b.text
    answer = b.json()
    assert answer["state"] == "undelivered" and answer["failure_reason"] == "invalid_number"
    assert answer["provider_error_code"] == "30005" and answer["carrier"] == "EE"
    assert answer["consent"]["source"] == "checkout-checkbox"
    assert answer["campaign"] == "order-confirmation"  # from the registration
    assert [e["state"] for e in answer["events"]] == ["undelivered"]
    assert answer["freshness"]["as_of"] and answer["freshness"]["updated_at"]
    a = client.get("/v1/messages/generic:ta", headers=auth("a")).json()
    assert a["state"] == "registered" and a["unreported"] is True and a["events"] == []
    # tenant a asks for b's message, by id and by client_ref: as if it did not exist
    other = client.get("/v1/messages/generic:tb", headers=auth("a"))
    assert other.status_code == 404 and other.json()["error"] == "message_not_found"
    listed = client.get("/v1/messages?client_ref=order-1001", headers=auth("a")).json()
    assert [m["message_id"] for m in listed["messages"]] == ["generic:ta"]
    everyone = client.get("/v1/messages?client_ref=order-1001", headers=auth("all")).json()
    assert sorted(m["message_id"] for m in everyone["messages"]) == ["generic:ta", "generic:tb"]
    missing = client.get("/v1/messages/generic:nothing", headers=auth("all"))
    assert missing.status_code == 404
    bad = client.get("/v1/messages?client_ref=", headers=auth("all"))
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_query"


def test_broker_down_answers_503_with_retry_after(settings: Settings) -> None:
    down = settings.model_copy(
        update={"kafka_bootstrap": f"127.0.0.1:{free_port()}", "api_produce_timeout_s": 1.0}
    )
    with TestClient(create_app(down)) as c:
        response = c.post("/v1/messages", json=message(), headers=auth("all"))
        assert response.status_code == 503
        assert response.json()["error"] == "broker_unavailable"
        assert response.headers["retry-after"] == "5"
        assert c.get("/readyz").status_code == 503
    assert produced(settings) == []


def test_rate_limit_per_key(settings: Settings) -> None:
    limited = settings.model_copy(update={"api_rate_limit_per_s": 0.001, "api_rate_limit_burst": 1})
    with TestClient(create_app(limited)) as c:
        assert c.get("/v1/messages/generic:x", headers=auth("all")).status_code in (404, 503)
        second = c.get("/v1/messages/generic:x", headers=auth("all"))
        assert second.status_code == 429 and second.headers["retry-after"] == "1"
        # another key has its own bucket
        assert c.get("/v1/messages/generic:x", headers=auth("read")).status_code != 429


def test_openapi_and_metrics(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert "/v1/messages" in doc["paths"] and "/v1/messages/{message_id}" in doc["paths"]
    documented = {
        (path.replace("{number}", "x"), method.upper())
        for path, methods in doc["paths"].items()
        for method in methods
    }
    for route in client.app.routes:  # type: ignore[attr-defined]
        for method in route.methods - {"HEAD"}:
            if route.path.startswith("/v1/"):
                path = route.path.replace("{number}", "x").replace(
                    "{message_id:path}", "{message_id}"
                )
                assert (path, method) in documented, (route.path, method)
    assert "consent" in doc["components"]["schemas"]["Registration"]["properties"]
    client.get("/v1/messages/generic:x", headers=auth("nobody"))
    text = client.get("/metrics").text
    assert 'dlr_api_requests_total{outcome="invalid_api_key"' in text
