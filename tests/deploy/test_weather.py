"""deploy/weather.py against servers that are really away: the test's own ClickHouse,
stopped and started again, a Kafka port nobody listens on (a stopped broker), and (heavy)
the test's own broker stopped and started again under a waiting `dlr capture`."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from deploy import weather
from deploy.local.ports import free_port
from deploy.settings import Settings
from deploy.topics import ensure_topics
from sinks.clickhouse.client import connect
from tests.conftest import KAFKA_RESTART_TIMEOUT_S, ROOT
from tests.polling import wait_for as poll


@pytest.mark.integration
def test_a_stopped_clickhouse_is_waited_for_and_the_call_completes_when_it_is_back(
    own_clickhouse: Settings,
) -> None:
    from deploy.local import clickhouse

    client = connect(own_clickhouse)
    clickhouse.stop(own_clickhouse)
    said: list[str] = []
    result: list[int] = []
    name = weather.clickhouse_name(own_clickhouse)

    def call() -> None:
        result.append(
            weather.wait_for(
                name,
                lambda: int(str(client.command("SELECT 41 + 1"))),
                patience=120,
                label="test",
                say=said.append,
            )
        )

    caller = threading.Thread(target=call)
    caller.start()
    poll(lambda: bool(said), timeout=30, what="a waiting-for line")
    assert said[0].startswith(f"[test] waiting for {name} (")
    assert not result, "answered while the server was stopped"
    clickhouse.start(own_clickhouse)
    caller.join(120)
    assert result == [42]
    assert said[-1].startswith(f"[test] {name} is back after ")


def test_clickhouse_away_past_the_timeout_is_one_line() -> None:
    port = free_port()  # a stopped local server: nothing listens on its port
    away = Settings(clickhouse_url=f"http://127.0.0.1:{port}")
    said: list[str] = []
    started = time.monotonic()
    with pytest.raises(weather.Unreachable) as caught:
        weather.wait_for(
            weather.clickhouse_name(away),
            lambda: connect(away),
            patience=1.5,
            say=said.append,
        )
    assert 1.5 <= time.monotonic() - started < 10
    text = str(caught.value)
    assert "\n" not in text and text.endswith("giving up")
    assert text.startswith(f"cannot reach ClickHouse at 127.0.0.1:{port} for ")
    assert "(connection refused); giving up" in text
    assert said and "waiting for ClickHouse" in said[0]


def test_a_query_clickhouse_rejects_is_not_weather() -> None:
    calls: list[int] = []

    def bad() -> None:
        calls.append(1)
        raise ValueError("syntax error")

    with pytest.raises(ValueError):
        weather.wait_for("x", bad, patience=30)
    assert calls == [1]


def test_a_stopped_broker_is_waited_for_then_one_line() -> None:
    port = free_port()
    said: list[str] = []

    async def consumer() -> AIOKafkaConsumer:
        c = AIOKafkaConsumer(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=1000)
        try:
            await c.start()
        except BaseException:
            await c.stop()
            raise
        return c

    with pytest.raises(weather.Unreachable) as caught:
        asyncio.run(
            weather.wait_for_async(
                f"Kafka at 127.0.0.1:{port}", consumer, patience=2.0, say=said.append
            )
        )
    assert str(caught.value).startswith(f"cannot reach Kafka at 127.0.0.1:{port} for ")
    assert said and said[0].startswith(f"[dlr] waiting for Kafka at 127.0.0.1:{port} (")


def test_cli_prints_one_line_and_exits_1_when_clickhouse_stays_away(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from deploy.cli import main

    monkeypatch.setenv("DLR_CLICKHOUSE_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("DLR_TOOLS_WAIT_S", "1")
    assert main(["report", "--since", "1h"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("dlr report: cannot reach ClickHouse at 127.0.0.1:")
    assert not any("Traceback" in line for line in err)


@pytest.mark.heavy
def test_capture_waits_for_a_stopped_own_broker_and_completes_when_it_is_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broker of the test's own (free ports, tmp data), stopped, then started again while
    `dlr capture` waits for it: the capture completes and said what it waited for."""
    from deploy.local import kafka
    from deploy.tools.capture import run_capture

    settings = Settings(
        data_dir=tmp_path / "own-kafka",
        cache_dir=ROOT / ".cache",
        kafka_bootstrap=None,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        kafka_heap_mb=384,
        tools_wait_s=300,
    )
    kafka.start(settings, timeout=KAFKA_RESTART_TIMEOUT_S)
    try:
        asyncio.run(ensure_topics(settings))
        kafka.stop(settings)
        codes: list[int] = []
        out = tmp_path / "capture.jsonl"
        err: list[str] = []

        def said() -> str:
            err.append(capsys.readouterr().err)  # the lines a user sees on stderr
            return "".join(err)

        capture = threading.Thread(target=lambda: codes.append(run_capture(settings, "1h", out)))
        capture.start()
        poll(said, lambda text: "waiting for" in text, timeout=60, what="a waiting-for line")
        assert f"[capture] waiting for Kafka at {settings.bootstrap} (" in said()
        assert not codes, "finished while the broker was stopped"
        kafka.start(settings, timeout=KAFKA_RESTART_TIMEOUT_S)
        capture.join(KAFKA_RESTART_TIMEOUT_S)
        assert codes == [0]
        assert out.exists() and out.read_text() == ""
        assert f"[capture] Kafka at {settings.bootstrap} is back after " in said()
    finally:
        kafka.stop(settings)
