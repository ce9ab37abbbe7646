"""Every provider fixture, signed with fresh dev credentials, verifies, extracts and maps
to exactly the expected canonical values (no Kafka: the pure path of each adapter pair)."""

from __future__ import annotations

import functools
import time
from typing import Any

import pytest

from deploy.tools import samples as provider_fixtures
from ingress.providers import PROVIDERS as ADAPTERS
from ingress.providers._contract import VerifyContext
from schemas.providers import MAPPERS, PROVIDERS

CASES = [
    pytest.param(f, id=f"{f.provider}-{f.name}")
    for p in provider_fixtures.providers()
    for f in provider_fixtures.load(p)
]


def test_every_provider_has_both_modules_and_fixtures() -> None:
    assert set(ADAPTERS) == set(PROVIDERS)
    assert set(MAPPERS) == set(PROVIDERS)
    assert set(provider_fixtures.providers()) == set(PROVIDERS)


@functools.cache
def _credentials(provider: str) -> tuple[Any, str]:
    """One set per provider and run (SNS makes an RSA key and certificate each time)."""
    return ADAPTERS[provider].dev_credentials()


@pytest.mark.parametrize("suffix", ["", "-t0a1b2c3d"])
@pytest.mark.parametrize("fixture", CASES)
async def test_fixture_maps_to_expected(fixture: provider_fixtures.Fixture, suffix: str) -> None:
    """As stored, and renamed the way `dlr try` renames it (messages of its own)."""
    if suffix:
        renamed = fixture.renamed(suffix)
        assert [e["message_id"] for e in renamed.expect] != [
            e["message_id"] for e in fixture.expect
        ] or not fixture.expect
        fixture = renamed
    adapter = ADAPTERS[fixture.provider]
    credentials, key = _credentials(fixture.provider)
    now = int(time.time())
    request = adapter.sign(fixture.request(), key, now)
    verified = await adapter.verify(request, credentials, VerifyContext(now=now))
    assert verified.key_id.startswith("k_")
    records = adapter.extract(request)
    assert len(records) == len(fixture.expect)
    for record, expect in zip(records, fixture.expect, strict=True):
        normalized = MAPPERS[fixture.provider](record.payload)
        got = {
            "message_id": f"{fixture.provider}:{record.message_key}",
            "state": str(normalized.state),
            "failure_reason": None
            if normalized.failure_reason is None
            else str(normalized.failure_reason),
            "provider_status": normalized.provider_status,
            "provider_error_code": normalized.provider_error_code,
        }
        assert {k: got[k] for k in expect} == expect
        assert normalized.mapped, f"{fixture.name}: fixture statuses must all be mapped"
