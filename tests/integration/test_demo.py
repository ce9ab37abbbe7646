"""`dlr demo` against the real pipeline, and the analysts' report equals its ground truth."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from deploy.demo import _run
from schemas.lifecycle import ATTEMPTS
from sinks.clickhouse.client import connect
from sinks.clickhouse.report import report
from tests.pipeline import Pipeline

pytestmark = pytest.mark.integration


PIPELINE_STARTED = True


def test_demo_checks_clickhouse_and_the_report_equals_its_truth(
    pipeline: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth_file = tmp_path / "truth.jsonl"
    code = _run(
        pipeline.settings,
        pipeline.base_url,
        messages=400,
        seed=5,
        truth=truth_file,
        concurrency=16,
        timeout=180,
        connect=connect,
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "OK: ClickHouse equals the simulated truth" in out
    truths = [json.loads(line) for line in truth_file.read_text().splitlines()]
    assert len(truths) == 400
    assert {"message_id", "provider", "final_state", "carrier", "country", "campaign"} <= set(
        truths[0]
    )

    client = connect(pipeline.settings)
    db = pipeline.settings.clickhouse_database
    attempt_states = {str(s) for s in ATTEMPTS}
    for by in ("carrier", "country", "campaign", "provider"):
        rows = {r[by]: r for r in report(client, db, by, since_s=24 * 3600)}
        attempts = Counter(t[by] for t in truths if t["final_state"] in attempt_states)
        delivered = Counter(t[by] for t in truths if t["final_state"] == "delivered")
        messages = Counter(t[by] for t in truths)
        assert set(rows) == set(messages), by
        for group, row in rows.items():
            assert row["messages"] == messages[group], (by, group)
            assert row["attempts"] == attempts[group], (by, group)
            assert row["delivered"] == delivered[group], (by, group)
            assert row["delivery_rate"] == pytest.approx(delivered[group] / attempts[group])
        rates = [r["delivery_rate"] for r in report(client, db, by, since_s=24 * 3600)]
        assert rates == sorted(rates), "worst first"


def test_demo_with_every_providers_wire_format(
    pipeline: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--providers all`: each provider's signed format to real ranges; the worker derives
    carrier (with its evidence), country and region, and the demo checks them all."""
    truth_file = tmp_path / "truth.jsonl"
    code = _run(
        pipeline.settings,
        pipeline.base_url,
        messages=200,
        seed=11,
        truth=truth_file,
        concurrency=16,
        timeout=180,
        connect=connect,
        providers="all",
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "OK: ClickHouse equals the simulated truth" in out
    truths = [json.loads(line) for line in truth_file.read_text().splitlines()]
    assert {"carrier", "carrier_source", "country", "region"} <= set(truths[0])
    assert len({t["provider"] for t in truths}) >= 10
    assert len({t["country"] for t in truths}) == 8
    assert {t["carrier_source"] for t in truths} == {"provider", "mcc_mnc", "number_range", "none"}

    client = connect(pipeline.settings)
    db = pipeline.settings.clickhouse_database
    rows = report(client, db, "country,carrier", since_s=24 * 3600)
    ids = tuple(t["message_id"] for t in truths)
    assert {(r["country"], r["carrier"]): r["messages"] for r in rows} == Counter(
        (t["country"], t["carrier"]) for t in truths
    )
    sources = client.query(
        f"SELECT carrier_source, count() FROM {db}.message_status WHERE message_id IN %(ids)s"
        " GROUP BY carrier_source",
        parameters={"ids": ids},
    ).result_rows
    assert {str(s): int(n) for s, n in sources} == Counter(t["carrier_source"] for t in truths)
