"""Every provider fixture (delivered, undelivered, expired, rejected, failed, opt-out,
carrier filtering, invalid number, batches ...) flows through the real pipeline — signed
HTTP -> ingress -> Kafka -> faust worker -> Kafka -> sink -> ClickHouse — to the expected
canonical event."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from deploy.tools import samples as provider_fixtures
from ingress.providers import PROVIDERS
from tests.pipeline import Pipeline

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pipeline(started_pipeline: Pipeline) -> Pipeline:
    """One pipeline for the module's tests."""
    return started_pipeline


def test_every_fixture_reaches_clickhouse_as_expected(pipeline: Pipeline) -> None:
    expected: set[tuple[str, str, str | None]] = set()
    with httpx.Client(timeout=10) as client:
        for provider in provider_fixtures.providers():
            adapter = PROVIDERS[provider]
            key = pipeline.signing_key(provider)
            for fixture in provider_fixtures.load(provider):
                request = adapter.sign(fixture.request(pipeline.base_url), key, int(time.time()))
                response = client.request(
                    request.method, request.url, headers=dict(request.headers), content=request.body
                )
                assert response.status_code == 200, (provider, fixture.name, response.text)
                for e in fixture.expect:
                    expected.add((e["message_id"], e["state"], e.get("failure_reason")))
    ids = sorted({m for m, _, _ in expected})
    db = pipeline.settings.clickhouse_database
    ch = pipeline.clickhouse()
    deadline = time.monotonic() + 120
    got: set[tuple[str, str, str | None]] = set()
    while time.monotonic() < deadline:
        try:
            rows = ch.query(
                f"SELECT message_id, state, failure_reason FROM {db}.events "
                f"WHERE message_id IN %(ids)s",
                parameters={"ids": ids},
            ).result_rows
        except Exception:  # not migrated yet
            rows = []
        got = {(m, str(s), None if r is None else str(r)) for m, s, r in rows}
        if expected <= got:
            break
        time.sleep(0.5)
    missing = sorted(expected - got)
    assert not missing, f"{len(missing)} expected canonical events missing, e.g. {missing[:5]}"
    providers_seen = {m.split(":", 1)[0] for m, _, _ in got}
    assert providers_seen == set(provider_fixtures.providers())
    assert Path(pipeline.data_dir / "dev-secrets.json").exists()
