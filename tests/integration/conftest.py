"""Fixtures of the integration tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pipeline import Pipeline


@pytest.fixture
def pipeline(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    clickhouse_url: str,
    tmp_path: Path,
    unique: str,
) -> Iterator[Pipeline]:
    """The pipeline's services on test-private topics and database, stopped afterwards.

    A test module may set `PIPELINE_ENV` (extra `DLR_*` variables for every service) and
    `PIPELINE_STARTED = True` (start all services before the test instead of in it).
    """
    env: dict[str, str] = getattr(request.module, "PIPELINE_ENV", {})
    p = Pipeline(kafka_bootstrap, clickhouse_url, tmp_path, unique, **env)
    try:
        if getattr(request.module, "PIPELINE_STARTED", False):
            p.start()
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def started_pipeline(
    kafka_bootstrap: str, clickhouse_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    """All services on topics and a database private to the test module, started once
    for the module's tests and stopped after them."""
    p = Pipeline(
        kafka_bootstrap, clickhouse_url, tmp_path_factory.mktemp("module"), uuid.uuid4().hex[:10]
    )
    try:
        p.start()
        yield p
    finally:
        p.stop()
