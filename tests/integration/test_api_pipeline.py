"""The sender's API end to end on real parts: registrations and receipts, in both orders,
through the real worker (one agent over dlr.raw.v1 and dlr.sends.v1) and sink into
ClickHouse, read back by the API, `dlr status` and the reports."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from deploy.report_cli import run_report
from deploy.status_cli import run_status
from sinks.clickhouse import report
from tests.integration.test_pipeline import post_generic
from tests.pipeline import Pipeline

pytestmark = pytest.mark.integration

PIPELINE_ENV = {"DLR_UNREPORTED_AFTER_S": "1"}


def registration(mid: str, **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "message_id": f"generic:{mid}",
        "recipient": "+14155550100",
        "campaign": "order-confirmation",
        "tenant": "shop",
        "client_ref": f"order-{mid}",
        "submitted_at": (now - timedelta(seconds=30)).isoformat(),
        "consent": {"source": "checkout", "obtained_at": (now - timedelta(days=1)).isoformat()},
        **changes,
    }


def receipt(mid: str, status: str) -> bytes:
    return orjson.dumps(
        {
            "message_id": mid,
            "to": "+14155550100",
            "from": "ACME",
            "status": status,
            "provider_status_code": "0",
            "error": None,
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
    )


def wait_for(p: Pipeline, mid: str, check: Any, timeout: float = 90.0) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {p.api_key()}"}
    deadline = time.monotonic() + timeout
    answer: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = httpx.get(f"{p.api_url}/v1/messages/generic:{mid}", headers=headers)
        if response.status_code == 200:
            answer = response.json()
            if check(answer):
                return answer
        time.sleep(0.5)
    raise AssertionError(f"{mid}: {answer or 'not found'}\n{p.log_tail('worker')}")


def test_registrations_and_receipts_join_in_either_order(pipeline: Pipeline) -> None:
    pipeline.start("ingress", "api", "worker", "sink")
    headers = {"authorization": f"Bearer {pipeline.api_key()}"}
    # registered first, then its receipt
    response = httpx.post(
        f"{pipeline.api_url}/v1/messages", json=[registration("first")], headers=headers
    )
    assert response.status_code == 202, response.text
    wait_for(pipeline, "first", lambda a: a["state"] == "registered")
    post_generic(pipeline, [receipt("first", "delivered")])
    # its receipt first, then the registration
    post_generic(pipeline, [receipt("late", "undelivered")])
    wait_for(pipeline, "late", lambda a: a["state"] == "undelivered")
    response = httpx.post(
        f"{pipeline.api_url}/v1/messages", json=registration("late"), headers=headers
    )
    assert response.status_code == 202, response.text
    # and one that never gets a receipt
    httpx.post(f"{pipeline.api_url}/v1/messages", json=registration("silent"), headers=headers)

    first = wait_for(pipeline, "first", lambda a: a["state"] == "delivered")
    assert first["consent"]["source"] == "checkout" and first["campaign"] == "order-confirmation"
    assert first["events"][0]["current_state"] == "delivered"
    late = wait_for(pipeline, "late", lambda a: len(a["events"]) == 2)
    assert [e["transition"] for e in late["events"]] == ["advanced", "enriched"]
    assert late["state"] == "undelivered" and late["campaign"] == "order-confirmation"

    client = pipeline.clickhouse()
    db = pipeline.settings.clickhouse_database
    joined = client.query(
        f"SELECT message_id, any(consent_source), any(submitted_at) IS NOT NULL "
        f"FROM {db}.events WHERE consent_source IS NOT NULL GROUP BY message_id ORDER BY 1"
    ).result_rows
    assert [row[0] for row in joined] == ["generic:first", "generic:late"]
    assert all(row[1] == "checkout" and row[2] for row in joined)

    # analytics: the registered message without a receipt is an attempt (sends definition)
    time.sleep(1.5)  # DLR_UNREPORTED_AFTER_S=1: let "silent" become unreported
    rows = report.report(client, db, "campaign", 3600, unreported_after_s=1)
    [row] = [r for r in rows if r["campaign"] == "order-confirmation"]
    assert (row["delivered"], row["final_attempts"], row["unreported"]) == (1, 2, 1)
    assert row["attempts"] == 3 and row["delivery_rate"] == pytest.approx(1 / 3)
    final = report.report(client, db, "campaign", 3600, attempts="final", unreported_after_s=1)
    assert [r["attempts"] for r in final if r["campaign"] == "order-confirmation"] == [2]
    out = io.StringIO()
    assert (
        run_report(
            pipeline.settings, by="carrier", since="1h", fmt="json", kind="unreported", out=out
        )
        == 0
    )
    [group] = orjson.loads(out.getvalue())
    assert (group["provider"], group["unreported"], group["registered"]) == ("generic", 1, 3)

    out = io.StringIO()
    assert run_status(pipeline.settings, message_id="generic:late", client_ref=None, out=out) == 0
    text = out.getvalue()
    assert "undelivered" in text and "consent   checkout" in text and "enriched" in text
    assert "+14155550100" not in text
