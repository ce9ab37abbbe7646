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

import pytest

from deploy.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> int:
    """The first of `n` consecutive TCP ports nobody listens on right now."""
    for _ in range(200):
        base = free_port()
        if base + n > 65535:
            continue
        sockets = []
        try:
            for port in range(base, base + n):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {n} consecutive free ports")


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
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A local 3-broker KRaft cluster of this session (for the failure tests), stopped after.

    Always the project's launcher: the tests kill and restart its brokers.
    """
    from deploy.local import kafka

    base = free_ports(6)  # brokers on base .. base + 2, controllers on base + 3 .. base + 5
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("kafka-cluster"),
        cache_dir=ROOT / ".cache",
        kafka_bootstrap=None,
        kafka_brokers=3,
        kafka_port=base,
        kafka_controller_port=base + 3,
        kafka_heap_mb=384,
    )
    try:
        kafka.start(settings, timeout=180)
        yield settings
    finally:
        kafka.stop(settings)


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
def clickhouse_shards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A local 2-shard ClickHouse cluster (`dlr_local`, no Keeper) of this session.

    Always the project's launcher: two chdb servers whose configs list each other.
    """
    from deploy.local import clickhouse

    base = free_ports(4)  # HTTP on base, base + 1; native TCP on base + 2, base + 3
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("clickhouse-shards"),
        clickhouse_url=None,
        clickhouse_shards=2,
        clickhouse_http_port=base,
        clickhouse_tcp_port=base + 2,
    )
    try:
        clickhouse.start(settings, timeout=120)
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
