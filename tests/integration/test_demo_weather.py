"""`dlr demo` while ClickHouse is away (heavy): the demo used to crash with a
clickhouse-connect traceback; now it waits, says what for, and ends OK once it is back."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from deploy.demo import _run
from deploy.settings import Settings
from sinks.clickhouse.client import connect
from tests.pipeline import Pipeline
from tests.polling import wait_for as poll

pytestmark = [pytest.mark.integration, pytest.mark.heavy]


def test_demo_waits_for_a_stopped_clickhouse_and_ends_ok(
    kafka_bootstrap: str,
    own_clickhouse: Settings,
    tmp_path: Path,
    unique: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from deploy.local import clickhouse

    pipeline = Pipeline(
        kafka_bootstrap, own_clickhouse.clickhouse, tmp_path, unique, DLR_TOOLS_WAIT_S="240"
    )
    seen: list[str] = []

    def output() -> str:
        captured = capsys.readouterr()
        seen.append(captured.out + captured.err)
        return "".join(seen)

    codes: list[int] = []
    try:
        pipeline.start()
        demo = threading.Thread(
            target=lambda: codes.append(
                _run(
                    pipeline.settings,
                    pipeline.base_url,
                    messages=300,
                    seed=7,
                    truth=None,
                    concurrency=16,
                    timeout=300,
                    connect=connect,
                )
            )
        )
        demo.start()
        poll(output, lambda text: "[demo] run " in text, timeout=60, what="the demo sending")
        clickhouse.stop(own_clickhouse)
        poll(
            output,
            lambda text: "[demo] waiting for ClickHouse at 127.0.0.1:" in text,
            timeout=120,
            what="the demo waiting for ClickHouse",
        )
        assert not codes, "the demo ended while ClickHouse was stopped"
        clickhouse.start(own_clickhouse)
        demo.join(300)
    finally:
        pipeline.stop()
    text = output()
    assert codes == [0], text[-3000:]
    assert "[demo] OK: ClickHouse equals the simulated truth" in text
    assert "is back after" in text
    assert "Traceback" not in text
