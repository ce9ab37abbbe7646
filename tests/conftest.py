"""Session services for the tests: the real Kafka broker and the real ClickHouse server.

Order of preference for each: an explicitly configured one (`DLR_KAFKA_BOOTSTRAP`,
`DLR_CLICKHOUSE_URL`), else testcontainers when a Docker engine answers, else the
project's own local launchers (started on free ports with a throw-away data dir, stopped
at the end). Nothing here mocks Kafka or ClickHouse.

A test that stops a server must not leave later tests a dead one: it either starts its own
(`own_clickhouse`) or restores the session's and proves it is back (`restartable_kafka`).
Every test that uses the session's broker or server must be marked `integration`
(`pytest_collection_modifyitems` refuses the run otherwise), so `-m "not integration"` is
a run without them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.local.ports import free_port, free_ports
from deploy.settings import Settings
from deploy.topics import topic_names

ROOT = Path(__file__).resolve().parent.parent
#: A restarted broker recovers its logs first: on a loaded 2-core machine that took over 90 s.
KAFKA_RESTART_TIMEOUT_S = 240.0


def local_clickhouse(data_dir: Path) -> Settings:
    """Settings of a local ClickHouse server on free ports, its data under `data_dir`."""
    return Settings(
        data_dir=data_dir,
        clickhouse_url=None,
        clickhouse_host="127.0.0.1",
        clickhouse_http_port=free_port(),
        clickhouse_tcp_port=free_port(),
    )


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

    settings = local_clickhouse(tmp_path_factory.mktemp("clickhouse-data"))
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


#: Fixtures that reach the session's real broker or server.
_REAL_SERVICES = frozenset(
    {"kafka_bootstrap", "clickhouse_url", "kafka_launcher", "kafka_cluster", "clickhouse_shards"}
)


def pytest_sessionstart(session: pytest.Session) -> None:
    """`DLR_TEST_COMPILED=1` (make test-heavy's run of tests/ingress on `.build/compiled`):
    refuse to run unless the webhook path really was imported from the build."""
    if os.environ.get("DLR_TEST_COMPILED") == "1":
        from ingress import webhook

        if not webhook.COMPILED:
            raise pytest.UsageError(f"DLR_TEST_COMPILED=1 but {webhook.__file__} is the source")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse a test that uses the real broker or server without the `integration` mark."""
    unmarked = [
        item.nodeid
        for item in items
        if _REAL_SERVICES & set(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("integration") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "tests that use the real broker or server must be marked "
            f"`pytest.mark.integration`: {', '.join(unmarked[:10])}"
        )


@pytest.fixture
def own_clickhouse(tmp_path: Path) -> Iterator[Settings]:
    """A ClickHouse server of the test's own (free ports, tmp data): it may stop and start it."""
    from deploy.local import clickhouse

    settings = local_clickhouse(tmp_path / "own-clickhouse")
    clickhouse.start(settings)
    try:
        yield settings
    finally:
        clickhouse.stop(settings)
        assert not clickhouse.status(settings), "the test's own ClickHouse is still up"


@pytest.fixture
def restartable_kafka(kafka_launcher: Settings | None) -> Iterator[Settings]:
    """The session's local broker, for a test that stops and starts it.

    Starting a second broker costs tens of seconds on a shared machine; instead the broker
    is restarted after the test if it is down, and proven to be the same broker, up, with
    every topic it had before (the data dir is kept), before any later test runs.
    """
    if kafka_launcher is None:
        pytest.skip("the broker is external (DLR_KAFKA_BOOTSTRAP or testcontainers)")
    from deploy.local import kafka

    before = asyncio.run(topic_names(kafka_launcher.bootstrap))
    try:
        yield kafka_launcher
    finally:
        if not kafka.status(kafka_launcher):
            kafka.start(kafka_launcher, timeout=KAFKA_RESTART_TIMEOUT_S)
        after = asyncio.run(topic_names(kafka_launcher.bootstrap))
        assert before <= after, f"topics lost by the restart: {sorted(before - after)[:5]}"


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
