"""Durability follows the size of the local cluster: topics, broker defaults, ports."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from deploy.local import kafka
from deploy.settings import Settings
from deploy.topics import topic_specs


@pytest.mark.parametrize(
    ("brokers", "rf", "isr"),
    [("1", 1, 1), ("2", 2, 1), ("3", 3, 2), ("5", 3, 2)],
)
def test_every_topic_gets_the_clusters_replication(brokers: str, rf: int, isr: int) -> None:
    settings = Settings.from_vars({"DLR_KAFKA_BROKERS": brokers})
    specs = topic_specs(settings)
    assert {s.name for s in specs} >= {settings.raw_topic, settings.status_topic}
    for spec in specs:
        assert spec.replication_factor == rf, spec.name
        assert spec.topic_configs["min.insync.replicas"] == str(isr), spec.name
        assert spec.topic_configs["unclean.leader.election.enable"] == "false", spec.name


def test_explicit_durability_wins_and_is_checked() -> None:
    settings = Settings.from_vars({"DLR_KAFKA_BROKERS": "3", "DLR_TOPIC_MIN_INSYNC_REPLICAS": "3"})
    assert (settings.topic_replication_factor, settings.topic_min_insync_replicas) == (3, 3)
    with pytest.raises(ValidationError, match="cannot exceed"):
        Settings.from_vars(
            {"DLR_TOPIC_REPLICATION_FACTOR": "2", "DLR_TOPIC_MIN_INSYNC_REPLICAS": "3"}
        )


def test_three_local_brokers_default_every_topic_to_rf3_isr2(tmp_path: Path) -> None:
    """Topics created by someone else (faust's changelogs) get the same from the brokers."""
    settings = Settings.from_vars(
        {
            "DLR_DATA_DIR": str(tmp_path),
            "DLR_KAFKA_BROKERS": "3",
            "DLR_KAFKA_PORT": "21592",
            "DLR_KAFKA_CONTROLLER_PORT": "21595",
        }
    )
    assert settings.bootstrap == "127.0.0.1:21592,127.0.0.1:21593,127.0.0.1:21594"
    ports = set()
    for node in (1, 2, 3):
        lines = kafka.write_config(settings, node).read_text().splitlines()
        props = dict(line.split("=", 1) for line in lines if "=" in line)
        assert props["default.replication.factor"] == "3"
        assert props["min.insync.replicas"] == "2"
        assert props["unclean.leader.election.enable"] == "false"
        assert props["offsets.topic.replication.factor"] == "3"
        assert props["controller.quorum.voters"].count("@") == 3
        ports.add(props["listeners"])
    assert len(ports) == 3  # no two nodes share a listener


def test_stop_finds_every_local_cluster_that_has_data(tmp_path: Path) -> None:
    """`dlr kafka stop` / `dlr clickhouse stop` stop every size that ever ran here."""
    settings = Settings.from_vars({"DLR_DATA_DIR": str(tmp_path), "DLR_KAFKA_BROKERS": "5"})
    assert kafka.local_clusters(settings) == [5]  # nothing ran: the configured size
    (tmp_path / "kafka" / "cluster-3" / "node-1").mkdir(parents=True)
    (tmp_path / "kafka" / "cluster-x").mkdir()
    assert kafka.local_clusters(settings) == [3]
    (tmp_path / "kafka" / "logs").mkdir()
    assert kafka.local_clusters(settings) == [1, 3]
