"""The pipeline on a sharded ClickHouse: two local shards (heavy: `make test-heavy`).

Two chdb servers form the cluster `dlr_local` (no Keeper: plain engines, the migrations
run on each shard). The sink inserts into the Distributed `events`; every message's rows
must live on exactly the shard its `sipHash64(message_id)` names, the materialized views
must have run on that shard, the demo must reconcile with its truth and the report must
equal the truth, read across both shards.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.demo import _run
from deploy.settings import Settings
from sinks.clickhouse import insights
from sinks.clickhouse.client import connect, connect_url
from sinks.clickhouse.cluster import ClusterSpec
from sinks.clickhouse.report import ShardedDatabaseError, report
from tests.integration.test_demo import check_report
from tests.pipeline import Pipeline

#: Minutes each on a shared machine (cluster start, thousands of callbacks, kills, recovery).
pytestmark = [pytest.mark.integration, pytest.mark.heavy, pytest.mark.timeout(900)]


def test_demo_and_reports_on_two_shards(
    kafka_bootstrap: str,
    clickhouse_shards: Settings,
    tmp_path: Path,
    unique: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    nodes = clickhouse_shards.clickhouse_nodes
    assert len(nodes) == 2
    p = Pipeline(
        kafka_bootstrap,
        nodes[0],
        tmp_path,
        unique,
        DLR_CLICKHOUSE_CLUSTER=clickhouse_shards.clickhouse_cluster_name or "",
        DLR_CLICKHOUSE_CLUSTER_NODES=",".join(nodes),
    )
    try:
        p.start()
        truth = tmp_path / "truth.jsonl"
        code = _run(
            p.settings,
            p.base_url,
            messages=600,
            seed=31,
            truth=truth,
            concurrency=16,
            timeout=240,
            connect=connect,
        )
        out = capsys.readouterr().out
        assert code == 0, out
        truths = [json.loads(line) for line in truth.read_text().splitlines()]
        db = p.settings.clickhouse_database
        spec = ClusterSpec.from_settings(p.settings)
        assert spec is not None and not spec.replicated

        # Each shard holds its own messages and nothing else, its views included.
        per_shard = []
        for index, url in enumerate(nodes):
            node = connect_url(url)
            for table in ("events_local", "messages_local"):
                wrong = node.query(
                    f"SELECT count() FROM {db}.{table} WHERE sipHash64(message_id) % 2 != {index}"
                ).result_rows[0][0]
                assert wrong == 0, (url, table)
            per_shard.append(
                {
                    m
                    for (m,) in node.query(
                        f"SELECT DISTINCT message_id FROM {db}.messages_local"
                    ).result_rows
                }
            )
        assert per_shard[0] and per_shard[1], "one shard got everything"
        assert not per_shard[0] & per_shard[1]
        assert per_shard[0] | per_shard[1] == {t["message_id"] for t in truths}

        # Reports read both shards and stay exact (each refreshes its own snapshot).
        check_report(connect(p.settings), db, truths, cluster=spec)
        # The cost report too (insights): every message counted once across both shards.
        rows = insights.cost(connect(p.settings), db, "provider", 3600, cluster=spec)
        assert sum(r["messages"] for r in rows) == len(truths)
        # Read as if it were one node, the freshness check would look at no parts at all.
        with pytest.raises(ShardedDatabaseError):
            report(connect(p.settings), db, "carrier", since_s=3600)
    finally:
        p.stop()
