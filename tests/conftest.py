"""Session services for the tests: the real Kafka broker and the real ClickHouse server.

Order of preference for each: an explicitly configured one (`DLR_KAFKA_BOOTSTRAP`,
`DLR_CLICKHOUSE_URL`), else testcontainers when a Docker engine answers, else the
project's own local launchers (started on free ports with a throw-away data dir, stopped
at the end). Nothing here mocks Kafka or ClickHouse.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def docker_available() -> bool:
    """True when a Docker engine answers (then testcontainers can be used)."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
        client.close()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings | None]:
    """Settings of the broker this session started itself (None when it uses another)."""
    if os.environ.get("DLR_KAFKA_BOOTSTRAP") or docker_available():
        yield None
        return
    from deploy.local import kafka

    settings = Settings(
        data_dir=tmp_path_factory.mktemp("kafka-data"),
        cache_dir=ROOT / ".cache",
        kafka_bootstrap=None,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        kafka_heap_mb=512,
    )
    kafka.start(settings)
    try:
        yield settings
    finally:
        kafka.stop(settings)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_launcher: Settings | None) -> Iterator[str]:
    """Bootstrap servers of a real Kafka broker for this test session."""
    configured = os.environ.get("DLR_KAFKA_BOOTSTRAP")
    if configured:
        yield configured
        return
    if kafka_launcher is not None:
        yield kafka_launcher.bootstrap
        return
    from testcontainers.community.kafka import KafkaContainer

    with KafkaContainer().with_kraft() as container:
        yield container.get_bootstrap_server()


@pytest.fixture(scope="session")
def clickhouse_launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings | None]:
    """Settings of the ClickHouse server this session started itself (None otherwise)."""
    if os.environ.get("DLR_CLICKHOUSE_URL") or docker_available():
        yield None
        return
    from deploy.local import clickhouse

    settings = Settings(
        data_dir=tmp_path_factory.mktemp("clickhouse-data"),
        clickhouse_url=None,
        clickhouse_http_port=free_port(),
        clickhouse_tcp_port=free_port(),
    )
    clickhouse.start(settings)
    try:
        yield settings
    finally:
        clickhouse.stop(settings)


@pytest.fixture(scope="session")
def clickhouse_url(clickhouse_launcher: Settings | None) -> Iterator[str]:
    """HTTP URL of a real ClickHouse server for this test session."""
    configured = os.environ.get("DLR_CLICKHOUSE_URL")
    if configured:
        yield configured
        return
    if clickhouse_launcher is not None:
        yield clickhouse_launcher.clickhouse
        return
    from testcontainers.community.clickhouse import ClickHouseContainer

    with ClickHouseContainer() as container:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(8123)
        yield f"http://test:test@{host}:{port}"


@pytest.fixture
def unique() -> str:
    """A short random suffix for topic, group and database names."""
    return uuid.uuid4().hex[:10]


#: Signing secret shared by the test receiver and the webhook senders under test.
WEBHOOK_SECRET = "whsec_dGVzdC1yZWNlaXZlci1zZWNyZXQtMDEyMzQ1Njc4OQ=="


@pytest.fixture(scope="session")
def receiver() -> Iterator[Any]:
    """A real webhook receiver process on localhost (tests/webhook_receiver.py)."""
    from tests.webhook_receiver import ReceiverProcess

    process = ReceiverProcess(free_port(), WEBHOOK_SECRET)
    process.start()
    try:
        yield process
    finally:
        process.stop()
