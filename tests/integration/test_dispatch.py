"""`dlr dispatch` on real parts: the broker, the service process, a receiver that fails on
purpose (tests/webhook_receiver.py, which verifies every signature with the
`standardwebhooks` library and dedupes by webhook-id), and `dlr dispatch retry`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams.actions import DELIVERED_AFTER_FALLBACK, FALLBACK, SUPPRESS, action_id
from tests.conftest import ROOT, WEBHOOK_SECRET
from tests.kafka_helpers import read_all
from tests.pipeline import Pipeline

pytestmark = pytest.mark.integration

FAST_RETRIES = {
    "DLR_DISPATCH_RETRY_INITIAL_S": "0.05",
    "DLR_DISPATCH_RETRY_MAX_S": "0.5",
    "DLR_DISPATCH_TIMEOUT_S": "1",
    "DLR_DISPATCH_RETRY_TOTAL_S": "30",
    "DLR_ACTION_SIGNING_SECRETS": WEBHOOK_SECRET,
    # These endpoints fail on purpose for every id: an open circuit would dead-letter them.
    "DLR_DISPATCH_BREAKER_FAILURES": "100000",
}


def action(kind: str, mid: str) -> dict[str, Any]:
    return {
        "type": kind,
        "action_id": action_id(mid, kind),
        "message_id": mid,
        "state": "undelivered",
        "campaign": "order-confirmation",
        "at": "2026-01-01T00:00:00Z",
    }


async def produce(bootstrap: str, topic: str, actions: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, orjson.dumps(a), key=a["message_id"].encode())
            for a in actions
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def routes(receiver: Any, table: dict[str, list[str]]) -> str:
    return orjson.dumps(
        {kind: [f"{receiver.base_url}{path}" for path in paths] for kind, paths in table.items()}
    ).decode()


@pytest.mark.heavy  # ~16 s, most of it the group rejoin after the kill (make test-heavy)
def test_every_action_arrives_once_in_order_through_failures_and_a_kill_9(
    kafka_bootstrap: str, clickhouse_url: str, tmp_path: Any, unique: str, receiver: Any
) -> None:
    table = {FALLBACK: ["/fail/2"], SUPPRESS: ["/timeout/1"], "*": ["/429/1/1"]}
    p = Pipeline(
        kafka_bootstrap,
        clickhouse_url,
        tmp_path,
        unique,
        DLR_ACTION_ENDPOINTS=routes(receiver, table),
        **FAST_RETRIES,
    )
    mids = [f"generic:{unique}-{n}" for n in range(120)]
    actions = [action(FALLBACK, m) for m in mids]
    actions += [action(SUPPRESS, m) for m in mids[:40]]
    actions += [action(DELIVERED_AFTER_FALLBACK, m) for m in mids[:60]]
    expected = {
        "/fail/2": {a["action_id"] for a in actions if a["type"] == FALLBACK},
        "/timeout/1": {a["action_id"] for a in actions if a["type"] == SUPPRESS},
        "/429/1/1": {a["action_id"] for a in actions},
    }
    try:
        p.start("dispatch")
        asyncio.run(produce(p.settings.bootstrap, p.settings.actions_topic, actions))
        # kill -9 once some, not all, went out.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = sum(s["delivered"] for s in receiver.stats("/429/1/1").values())
            if done >= 40:
                break
            time.sleep(0.05)
        assert 0 < done < len(actions), done
        p.kill("dispatch")
        p.start("dispatch")
        for path, ids in expected.items():
            seen = receiver.wait_delivered(path, ids, timeout=90)
            assert {i for i, s in seen.items() if s["delivered"]} >= ids, path
        metrics = httpx.get(p.health_url("dispatch").replace("healthz", "metrics")).text
    finally:
        p.stop()
    stats = {path: receiver.stats(path) for path in expected}  # stats() checks signatures
    for path, ids in expected.items():
        ours = {i: s for i, s in stats[path].items() if i in ids}
        assert set(ours) == ids and all(s["delivered"] == 1 for s in ours.values()), path
    # The retries happened: each fallback failed twice at /fail/2, then was accepted.
    assert all(len(stats["/fail/2"][i]["times"]) >= 3 for i in expected["/fail/2"])
    # Per message and endpoint, delivered_after_fallback went out after its fallback.
    star = stats["/429/1/1"]
    for mid in mids[:60]:
        fallback = star[action_id(mid, FALLBACK)]
        after = star[action_id(mid, DELIVERED_AFTER_FALLBACK)]
        assert min(after["times"]) >= fallback["delivered_at"], mid
    assert star[action_id(mids[0], FALLBACK)]["body"]["data"]["message_id"] == mids[0]
    assert read_all(p.settings.bootstrap, p.settings.actions_deadletter_topic, timeout=2) == []
    assert "dlr_dispatch_delivered_total" in metrics and "dlr_webhook_circuit_state" in metrics


def test_a_permanent_refusal_is_dead_lettered_and_retry_delivers_it_once(
    kafka_bootstrap: str, clickhouse_url: str, tmp_path: Any, unique: str, receiver: Any
) -> None:
    gone = f"/gone/{unique}"
    p = Pipeline(
        kafka_bootstrap,
        clickhouse_url,
        tmp_path,
        unique,
        DLR_ACTION_ENDPOINTS=routes(receiver, {FALLBACK: [gone], SUPPRESS: ["/ok"]}),
        **FAST_RETRIES,
    )
    mids = [f"generic:{unique}-{n}" for n in range(3)]
    actions = [action(FALLBACK, m) for m in mids] + [action(SUPPRESS, mids[0])]
    try:
        p.start("dispatch")
        asyncio.run(produce(p.settings.bootstrap, p.settings.actions_topic, actions))
        dead = read_all(p.settings.bootstrap, p.settings.actions_deadletter_topic, expect=3)
    finally:
        p.stop()
    records = [orjson.loads(r.value or b"") for r in dead]
    assert sorted(r["action_id"] for r in records) == sorted(a["action_id"] for a in actions[:3])
    assert {(r["kind"], r["reason"], r["status"], r["attempts"]) for r in records} == {
        ("dead", "refused", 410, 1)
    }
    assert {r["endpoint"] for r in records} == {_name(receiver, gone)}
    assert receiver.stats("/ok")[action_id(mids[0], SUPPRESS)]["delivered"] == 1

    receiver.accept(gone)
    env = {**p.env(), "DLR_LOG_LEVEL": "WARNING"}
    retry = [sys.executable, "-m", "deploy.cli", "dispatch", "retry", "--type", FALLBACK]
    first = subprocess.run(
        [*retry, "--since", "1h"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert first.returncode == 0, first.stdout + first.stderr
    assert "re-sent 3: 3 delivered, 0 dead-lettered again" in first.stdout
    assert "re-send" in first.stderr  # the progress bar
    seen = receiver.stats(gone)
    assert all(seen[a["action_id"]]["delivered"] == 1 for a in actions[:3])
    # A second run finds nothing left: the topic says they were redelivered.
    second = subprocess.run(retry, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0 and "re-sent 0:" in second.stdout, second.stdout
    assert all(receiver.stats(gone)[a["action_id"]]["duplicates"] == 0 for a in actions[:3])


def _name(receiver: Any, path: str) -> str:
    from sinks.webhooks import Endpoint

    return Endpoint.label(f"{receiver.base_url}{path}")


def test_dispatch_refuses_endpoints_without_a_signing_secret(
    kafka_bootstrap: str, clickhouse_url: str, tmp_path: Any, unique: str
) -> None:
    p = Pipeline(
        kafka_bootstrap,
        clickhouse_url,
        tmp_path,
        unique,
        DLR_ACTION_ENDPOINTS='{"fallback": ["http://127.0.0.1:9/x"]}',
    )
    env = {k: v for k, v in p.env().items() if k != "DLR_ACTION_SIGNING_SECRETS"}
    done = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "dispatch"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "DLR_ACTION_SIGNING_SECRETS is empty" in done.stderr
    assert os.environ.get("DLR_ACTION_SIGNING_SECRETS") is None
