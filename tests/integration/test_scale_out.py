"""Many workers and many sinks in one group, one of them SIGKILLed (heavy: `make test-heavy`).

Workers: three `dlr worker` processes share the group; mid-stream one is SIGKILLed and a
fourth joins, so the partitions move twice while a backlog of raw records (30 % duplicates,
shuffled) is processed. Sinks: two `dlr sink` processes share `dlr.status.v1` and one is
SIGKILLed mid-stream. Either way ClickHouse must end up equal to the truth: every
(message, state) exactly once, no event id twice, one status row per message.
"""

from __future__ import annotations

import signal

import pytest

from tests.pipeline import Pipeline
from tests.polling import wait_for
from tests.workload import check_clickhouse, produce, workload

#: Minutes each on a shared machine (cluster start, thousands of callbacks, kills, recovery).
pytestmark = [pytest.mark.integration, pytest.mark.heavy, pytest.mark.timeout(900)]

PIPELINE_ENV = {"DLR_TOPIC_PARTITIONS": "8", "DLR_LOG_LEVEL": "INFO"}


def wait_progress(p: Pipeline, target: int) -> None:
    wait_for(p.event_count, lambda n: n >= target, timeout=240, what=f"{target} events")


def check_messages(p: Pipeline, truth: set[tuple[str, str]]) -> None:
    """One exact status row per message of the truth."""
    db = p.settings.clickhouse_database
    rows = p.clickhouse().query(f"SELECT message_id, count() FROM {db}.message_status GROUP BY 1")
    per_message = dict(rows.result_rows)
    assert set(per_message) == {m for m, _ in truth}
    assert set(per_message.values()) == {1}


def test_three_workers_one_killed_one_added(pipeline: Pipeline) -> None:
    records, truth = workload(30_000, seed=23)
    for name in ("worker-2", "worker-3", "worker-4"):
        pipeline.add(name, "worker")
    pipeline.start("sink", "worker", "worker-2", "worker-3")
    produce(pipeline.settings.bootstrap, pipeline.settings.raw_topic, records)
    wait_progress(pipeline, len(truth) // 4)
    pipeline.kill("worker-2", signal.SIGKILL)  # its partitions move after the session timeout
    wait_progress(pipeline, len(truth) // 2)
    pipeline.start("worker-4")  # and the group rebalances again
    check_clickhouse(pipeline, truth)
    check_messages(pipeline, truth)
    for name in ("worker", "worker-3", "worker-4", "sink"):
        assert pipeline.procs[name].poll() is None, f"{name} died: {pipeline.log_tail(name)}"
    assert "worker-2" not in pipeline.procs


def test_two_sinks_one_killed(pipeline: Pipeline) -> None:
    records, truth = workload(30_000, seed=29)
    pipeline.add("sink-2", "sink")
    pipeline.start("sink", "sink-2")
    produce(pipeline.settings.bootstrap, pipeline.settings.raw_topic, records)
    pipeline.start("worker")
    wait_progress(pipeline, len(truth) // 3)
    pipeline.kill("sink", signal.SIGKILL)  # mid-batch: its uncommitted records go to sink-2
    check_clickhouse(pipeline, truth)
    check_messages(pipeline, truth)
    assert pipeline.procs["sink-2"].poll() is None, pipeline.log_tail("sink-2")
