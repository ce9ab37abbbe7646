"""The development tools against the real pipeline: `dlr try` (every provider, every
status, read back from the worker's topics), `dlr capture` and `dlr replay` (twice: the
worker's dedupe drops every replayed record, ClickHouse counts nothing twice), and
`dlr replay --from-topic` (the raw topic's range re-processed: nothing new)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from deploy.tools import samples
from deploy.tools.capture import run_capture
from deploy.tools.replay import load, run_from_topic, run_replay
from deploy.tools.trying import run_try
from tests.pipeline import Pipeline
from tests.polling import wait_for as poll

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pipeline(started_pipeline: Pipeline) -> Pipeline:
    """One pipeline for the module's tests."""
    return started_pipeline


def test_try_all_prints_the_matrix_as_the_fixtures_expect(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_try(pipeline.settings, None, None, True, None, wait_s=90)
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    assert "MISMATCH" not in out
    for provider in samples.providers():
        assert any(line.startswith(provider + " ") for line in lines), provider
    rows = {tuple(line.split()[:2]): line.split() for line in lines if line.count("  ") > 3}
    # provider status http state reason actions expected check alerts
    assert rows[("twilio", "undelivered")][3:5] == ["undelivered", "unreachable"]
    assert rows[("twilio", "opted_out")][3:6] == ["rejected", "opted_out", "suppress"]
    assert rows[("vonage", "delivered")][3:6] == ["delivered", "-", "-"]
    # the alert rules each outcome feeds, asked of sinks/alerts' rules (deploy/tools/could_raise)
    assert rows[("vonage", "delivered")][8] == "-"
    assert rows[("vonage", "undelivered")][8].split(",") == [
        "delivery_rate_drop",
        "failure_reason_spike",
        "delivered_stopped",
    ], out
    # Twilio's callbacks name no carrier: only the country's drop can see them
    assert rows[("twilio", "undelivered")][8] == "delivery_rate_drop", out
    assert rows[("twilio", "sent")][8] == "messages_stuck", out


def test_try_twice_is_news_both_times_and_names_unknown_statuses(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(2):
        assert run_try(pipeline.settings, "vonage", "delivered", False, None, wait_s=60) == 0
        assert "1/1 messages as expected" in capsys.readouterr().out
    assert run_try(pipeline.settings, "twilio", "nonsense", False, None, wait_s=5) == 2
    assert "twilio has no fixture for nonsense" in capsys.readouterr().err


def _offsets(pipeline: Pipeline) -> tuple[int, int, int]:
    """(end of the raw topic, what the worker committed on it, end of the status topic)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    settings = pipeline.settings

    async def read() -> tuple[int, int, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap)
        await admin.start()
        await consumer.start()
        try:
            n = settings.topic_partitions
            raw = [TopicPartition(settings.raw_topic, p) for p in range(n)]
            status = [TopicPartition(settings.status_topic, p) for p in range(n)]
            ends = await consumer.end_offsets(raw + status)
            committed = await admin.list_consumer_group_offsets(settings.worker_id)
            return (
                sum(ends[tp] for tp in raw),
                sum(committed[tp].offset for tp in raw if tp in committed),
                sum(ends[tp] for tp in status),
            )
        finally:
            await consumer.stop()
            await admin.close()

    return asyncio.run(read())


def _counts(pipeline: Pipeline, ids: list[str]) -> tuple[int, int, int]:
    """Rows inserted into events (no FINAL: a second insert would show), distinct event
    ids, and message_status rows of these messages."""
    db = pipeline.settings.clickhouse_database
    client = pipeline.clickhouse()
    where = "WHERE message_id IN %(ids)s"
    return (
        int(client.command(f"SELECT count() FROM {db}.events {where}", parameters={"ids": ids})),
        int(
            client.command(
                f"SELECT uniqExact(event_id) FROM {db}.events {where}", parameters={"ids": ids}
            )
        ),
        int(
            client.command(
                f"SELECT count() FROM {db}.message_status {where}", parameters={"ids": ids}
            )
        ),
    )


def test_capture_then_replaying_twice_changes_no_clickhouse_count(
    pipeline: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_try(pipeline.settings, "sinch", "all", False, None, wait_s=60) == 0
    capsys.readouterr()
    captured = tmp_path / "sinch.jsonl"
    assert run_capture(pipeline.settings, "10m", captured, provider="sinch") == 0
    lines = load(captured)
    ids = sorted({m for line in lines for m in line["message_ids"]})
    records = sum(len(line["message_ids"]) for line in lines)
    replayed = sum(len(line["message_ids"]) for line in lines if line["whole"])
    per_run = sum(len(f.expect) for f in samples.load("sinch"))  # earlier tests' runs too
    runs = records // per_run
    assert len(ids) == records == runs * per_run and runs >= 1
    # a request per line; the batch's 3 records kept their own parts: a line per part
    assert len(lines) == records and sum(1 for line in lines if not line["whole"]) == 3 * runs
    assert all("authorization" not in line["headers"] for line in lines)
    before = poll(
        lambda: _counts(pipeline, ids),
        lambda c: c[2] == len(ids) and c[0] == c[1] >= len(ids),
        timeout=60,
        what="the tried messages in ClickHouse",
    )
    raw_before, _, status_before = _offsets(pipeline)
    for _ in range(2):
        assert run_replay(pipeline.settings, captured, pipeline.base_url, True, 200.0) == 0
        assert f"sinch      200: {8 * runs}\n" in capsys.readouterr().out
    # both replays reached the raw topic, and the worker has processed all of it ...
    poll(
        lambda: _offsets(pipeline),
        lambda o: o[0] >= raw_before + 2 * replayed and o[1] == o[0],
        timeout=60,
        what="the worker processing both replays",
    )
    # ... and emitted no canonical event for any of them: its dedupe dropped each
    assert _offsets(pipeline)[2] == status_before
    assert _counts(pipeline, ids) == before
    # the raw topic's last 10 minutes once more, through the worker: nothing new either
    raw_before = _offsets(pipeline)[0]
    assert run_from_topic(pipeline.settings, pipeline.settings.raw_topic, "10m") == 0
    poll(
        lambda: _offsets(pipeline),
        lambda o: o[0] >= 2 * raw_before and o[1] == o[0],
        timeout=60,
        what="the worker processing the re-appended raw records",
    )
    assert _offsets(pipeline)[2] == status_before
    assert _counts(pipeline, ids) == before
