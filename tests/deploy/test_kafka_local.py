"""The local Kafka launcher's storage format step, on the real StorageTool."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from deploy.local import kafka
from deploy.local.ports import free_port
from deploy.settings import Settings
from tests.conftest import ROOT


@pytest.mark.integration
def test_a_cluster_id_that_starts_with_a_dash_is_formatted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1 in 64 random ids start with "-"; StorageTool once took it for an option and failed."""
    dash = uuid.UUID(bytes=b"\xf8" + bytes(15))  # base64url: "-AAAAAAAAAAAAAAAAAAAAA"
    monkeypatch.setattr(uuid, "uuid4", lambda: dash)
    settings = Settings(
        data_dir=tmp_path,
        cache_dir=ROOT / ".cache",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
    )
    kafka.fetch(settings)
    config = kafka.write_config(settings)
    kafka.format_storage(settings, config)
    meta = (kafka.data_dir(settings) / "logs" / "meta.properties").read_text()
    assert "cluster.id=-AAAAAAAAAAAAAAAAAAAAA" in meta
