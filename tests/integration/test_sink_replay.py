"""Replaying a segment of dlr.status.v1 through the sink changes no number analysts see."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from sinks.clickhouse.report import report
from tests.kafka_helpers import topic_partitions, uncommitted
from tests.pipeline import Pipeline
from tests.polling import wait_for
from tests.workload import produce, workload

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
    s = pipeline.settings
    pipeline.start("worker", "sink")
    produce(s.bootstrap, s.raw_topic, records)
    assert pipeline.wait_rows(len(truth)) == len(truth)
    wait_for(
        lambda: uncommitted(s.bootstrap, s.sink_group, s.status_topic),
        lambda n: n == 0,
        timeout=30,
        what="the sink committed its last batch",
    )
    before = snapshot(pipeline)
    rows_before = pipeline.sink_metric("dlr_sink_rows_total")
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
    wait_for(
        lambda: pipeline.sink_metric("dlr_sink_rows_total"),
        lambda n: n >= replayed,
        timeout=60,
        what="the replayed segment was re-inserted",
    )
    assert rows_before > 0
    assert snapshot(pipeline) == before
