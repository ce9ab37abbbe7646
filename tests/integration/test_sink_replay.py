"""Replaying a segment of dlr.status.v1 through the sink changes no number analysts see."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from sinks.clickhouse.report import report
from tests.integration.test_crash import produce, workload
from tests.integration.test_sink_resilience import metric
from tests.kafka_helpers import topic_partitions
from tests.pipeline import Pipeline

pytestmark = pytest.mark.integration


PIPELINE_ENV = {"DLR_SINK_BATCH_ROWS": "700"}


async def rewind(bootstrap: str, group: str, topic: str, to_fraction: float) -> int:
    """Move the sink group's committed offsets back; returns how many records it will re-read."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = await topic_partitions(consumer, topic)
        ends = await consumer.end_offsets(tps)
        target = {tp: int(ends[tp] * to_fraction) for tp in tps}
        consumer.assign(tps)
        await consumer.commit(target)
        return sum(ends[tp] - target[tp] for tp in tps)
    finally:
        await consumer.stop()


def snapshot(p: Pipeline) -> dict[str, Any]:
    client = p.clickhouse()
    db = p.settings.clickhouse_database
    return {
        "events": client.query(
            f"SELECT count(), uniqExact(event_id) FROM {db}.events FINAL"
        ).result_rows,
        "states": sorted(
            client.query(
                f"SELECT current_state, count() FROM {db}.message_status GROUP BY 1"
            ).result_rows
        ),
        "hourly": client.query(
            f"SELECT uniqExactMerge(attempts), uniqExactMerge(delivered) FROM {db}.hourly_v2"
        ).result_rows,
        "report": report(client, db, "campaign", since_s=86400),
    }


def test_replayed_segment_is_not_double_counted(pipeline: Pipeline) -> None:
    records, truth = workload(3_000, seed=31)
    pipeline.start("worker", "sink")
    asyncio.run(produce(pipeline.settings.bootstrap, pipeline.settings.raw_topic, records))
    assert pipeline.wait_rows(len(truth)) == len(truth)
    time.sleep(1.5)  # let the last commit land
    before = snapshot(pipeline)
    rows_before = metric(pipeline, "dlr_sink_rows_total")
    pipeline.kill("sink", 15)
    replayed = asyncio.run(
        rewind(
            pipeline.settings.bootstrap,
            pipeline.settings.sink_group,
            pipeline.settings.status_topic,
            0.4,
        )
    )
    assert replayed > 1000
    pipeline.start("sink")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and metric(pipeline, "dlr_sink_rows_total") < replayed:
        time.sleep(0.3)
    assert metric(pipeline, "dlr_sink_rows_total") >= replayed, "the segment was re-inserted"
    assert rows_before > 0
    assert snapshot(pipeline) == before
