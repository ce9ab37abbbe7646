"""The sink while ClickHouse is down: no commit, bounded memory, nothing lost after it is back."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from deploy.local import clickhouse
from deploy.settings import Settings
from tests.integration.test_crash import produce, workload
from tests.pipeline import Pipeline

pytestmark = pytest.mark.integration


def metric(p: Pipeline, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{p.settings.sink_metrics_port}/metrics").text
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_clickhouse_down_for_30s_loses_nothing(
    clickhouse_launcher: Settings | None, pipeline: Pipeline
) -> None:
    if clickhouse_launcher is None:
        pytest.skip("ClickHouse is external: this test stops the local server")
    records, truth = workload(4_000, seed=21)
    half = len(records) // 2
    pipeline.start("worker", "sink")
    asyncio.run(produce(pipeline.settings.bootstrap, pipeline.settings.raw_topic, records[:half]))
    assert pipeline.wait_rows(1) >= 1
    clickhouse.stop(clickhouse_launcher)
    try:
        asyncio.run(
            produce(pipeline.settings.bootstrap, pipeline.settings.raw_topic, records[half:])
        )
        time.sleep(30)
        assert pipeline.procs["sink"].poll() is None, "the sink must wait, not die"
        assert metric(pipeline, "dlr_sink_retries_total") > 0
        assert metric(pipeline, "dlr_sink_clickhouse_up") == 0
    finally:
        clickhouse.start(clickhouse_launcher)
    assert pipeline.wait_rows(len(truth), timeout=120) == len(truth)
    db = pipeline.settings.clickhouse_database
    client = pipeline.clickhouse()
    pairs = {
        (m, str(s))
        for m, s in client.query(f"SELECT message_id, state FROM {db}.events FINAL").result_rows
    }
    assert pairs == truth
    assert metric(pipeline, "dlr_sink_clickhouse_up") == 1
