"""The development tools against the real pipeline: `dlr try` (every provider, every
status, read back from the worker's topics)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from deploy.tools import samples
from deploy.tools.trying import run_try
from tests.pipeline import Pipeline

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pipeline(
    kafka_bootstrap: str, clickhouse_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    p = Pipeline(
        kafka_bootstrap,
        clickhouse_url,
        tmp_path_factory.mktemp("tools"),
        uuid.uuid4().hex[:10],
    )
    try:
        p.start()
        yield p
    finally:
        p.stop()


def test_try_all_prints_the_matrix_as_the_fixtures_expect(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_try(pipeline.settings, None, None, True, None, wait_s=90)
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    assert "MISMATCH" not in out
    for provider in samples.providers():
        assert any(line.startswith(provider + " ") for line in lines), provider
    rows = {tuple(line.split()[:2]): line.split() for line in lines if line.count("  ") > 3}
    # provider status http state reason actions expected check
    assert rows[("twilio", "undelivered")][3:5] == ["undelivered", "unreachable"]
    assert rows[("twilio", "opted_out")][3:6] == ["rejected", "opted_out", "suppress"]
    assert rows[("vonage", "delivered")][3:6] == ["delivered", "-", "-"]


def test_try_twice_is_news_both_times_and_names_unknown_statuses(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(2):
        assert run_try(pipeline.settings, "vonage", "delivered", False, None, wait_s=60) == 0
        assert "1/1 messages as expected" in capsys.readouterr().out
    assert run_try(pipeline.settings, "twilio", "nonsense", False, None, wait_s=5) == 2
    assert "twilio has no fixture for nonsense" in capsys.readouterr().err
