"""The sink while ClickHouse is down: it waits and retries, commits nothing it did not insert,
and loses nothing once the server is back.

The test stops ClickHouse, so it runs on a server of its own (`own_clickhouse`), never on
the session's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.local import clickhouse
from deploy.settings import Settings
from tests.kafka_helpers import uncommitted
from tests.pipeline import Pipeline
from tests.polling import wait_for
from tests.workload import produce, workload

pytestmark = pytest.mark.integration

#: Retries (exponential backoff, 0.2 s base, full jitter, 10 s cap) until the sink has
#: waited through backoffs at the cap: the 7th and 8th draw from [0, 10 s]. About 16 s of
#: outage on average, 33 s at most.
RETRIES = 8


def test_clickhouse_down_loses_nothing(
    own_clickhouse: Settings, kafka_bootstrap: str, tmp_path: Path, unique: str
) -> None:
    p = Pipeline(kafka_bootstrap, own_clickhouse.clickhouse, tmp_path / "pipeline", unique)
    s = p.settings
    records, truth = workload(4_000, seed=21)
    half = len(records) // 2
    try:
        p.start("worker", "sink")
        produce(s.bootstrap, s.raw_topic, records[:half])
        assert p.wait_rows(1) >= 1
        clickhouse.stop(own_clickhouse)
        try:
            produce(s.bootstrap, s.raw_topic, records[half:])
            wait_for(
                lambda: p.sink_metric("dlr_sink_retries_total"),
                lambda n: n >= RETRIES,
                timeout=90,
                what=f"{RETRIES} insert retries while ClickHouse is down",
            )
            assert p.procs["sink"].poll() is None, "the sink must wait, not die"
            assert p.sink_metric("dlr_sink_clickhouse_up") == 0
            assert uncommitted(s.bootstrap, s.sink_group, s.status_topic) > 0, (
                "committed records that ClickHouse never took"
            )
        finally:
            clickhouse.start(own_clickhouse)
        assert p.wait_rows(len(truth), timeout=120) == len(truth)
        db = s.clickhouse_database
        pairs = {
            (m, str(st))
            for m, st in p.clickhouse()
            .query(f"SELECT message_id, state FROM {db}.events FINAL")
            .result_rows
        }
        assert pairs == truth
        assert p.sink_metric("dlr_sink_clickhouse_up") == 1
    finally:
        p.stop()
