"""The settings every service shares: where Kafka and ClickHouse are, topic names, PII.

Each service has its own settings class that extends `CommonSettings`
(`ingress/settings.py`, `streams/settings.py`, `sinks/settings.py`); `deploy/settings.py`
combines them for the `dlr` command line, which reads the environment once and passes
the object down. A field `x` is the environment variable `DLR_X`. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["LOCAL_CLUSTER", "CommonSettings", "Target", "parse_targets", "parse_url", "split_list"]

#: The cluster name of the local sharded ClickHouse (`dlr clickhouse start --shards N`).
LOCAL_CLUSTER = "dlr_local"


def split_list(value: str) -> tuple[str, ...]:
    """Comma-separated setting to a tuple, blanks dropped."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def parse_targets(value: str) -> dict[str, str]:
    """`job=URL,job=URL` to {job: URL}; a job may repeat with a suffix (`ingress-2=...`)."""
    targets: dict[str, str] = {}
    for entry in split_list(value):
        job, sep, url = entry.partition("=")
        if not sep or not job.strip() or not url.strip().startswith(("http://", "https://")):
            raise ValueError(f"metrics target {entry!r} is not job=http(s)://...")
        targets[job.strip()] = url.strip()
    return targets


_DEFAULT_PORTS = {"http": 8123, "https": 8443}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class Target:
    """Where and as whom to connect, parsed from a URL (the password is never printed)."""

    host: str
    port: int
    secure: bool
    username: str
    password: str
    verify: bool = True

    def __repr__(self) -> str:
        scheme = "https" if self.secure else "http"
        return f"Target({scheme}://{self.username}@{self.host}:{self.port})"

    def client_options(self) -> dict[str, object]:
        """Keyword arguments of `clickhouse_connect.get_client` for this target. No session
        id is generated, so one client may be used from several threads."""
        return {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
            "secure": self.secure,
            "verify": self.verify,
            "connect_timeout": 10,
            "autogenerate_session_id": False,
        }


def parse_url(url: str) -> Target:
    """`http[s]://[user[:password]@]host[:port][?verify=false]` to a Target."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("ClickHouse URL must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("ClickHouse URL has no host")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    verify_text = query.get("verify", "true").lower()
    if verify_text not in _TRUE | _FALSE:
        raise ValueError("ClickHouse URL option verify must be true or false")
    return Target(
        host=parts.hostname,
        port=parts.port or _DEFAULT_PORTS[scheme],
        secure=scheme == "https",
        username=unquote(parts.username) if parts.username else "default",
        password=unquote(parts.password) if parts.password else "",
        verify=verify_text in _TRUE,
    )


class CommonSettings(BaseSettings):
    """Connection, topic and privacy settings of every service (`DLR_*`)."""

    model_config = SettingsConfigDict(env_prefix="DLR_", frozen=True, extra="ignore")

    # -- where things live -------------------------------------------------------------
    data_dir: Path = Field(Path(".data"), description="Broker logs, ClickHouse data, dev secrets.")
    log_level: str = "INFO"

    # -- Kafka ---------------------------------------------------------------------------
    kafka_bootstrap: str | None = Field(
        None, description="External broker(s); when set, no local broker is started."
    )
    kafka_host: str = Field("127.0.0.1", description="The local broker's address.")
    kafka_port: int = Field(
        9092, description="The local broker's port; broker i of a local cluster: port + i - 1."
    )
    kafka_brokers: int = Field(
        1,
        ge=1,
        le=9,
        description="Brokers of the local KRaft cluster (`dlr kafka start --brokers N`); "
        "also the default replication factor, up to 3.",
    )
    topic_partitions: int = Field(8, ge=1, description="Partitions of every dlr.* topic.")
    topic_replication_factor: int = Field(
        1,
        ge=1,
        description="Replicas of every topic the project or faust creates; 3 in production. "
        "Default: min(3, kafka_brokers).",
    )
    topic_min_insync_replicas: int = Field(
        1,
        ge=1,
        description="min.insync.replicas of every topic: an acks=all write needs this many "
        "replicas. Default: 2 when the replication factor is 3 or more, else 1.",
    )
    raw_topic: str = "dlr.raw.v1"
    status_topic: str = "dlr.status.v1"
    deadletter_topic: str = "dlr.deadletter.v1"
    actions_topic: str = "dlr.actions.v1"
    actions_deadletter_topic: str = Field(
        "dlr.actions.deadletter.v1",
        description="Actions `dlr dispatch` could not deliver, and what `retry` re-sent.",
    )
    suppressions_topic: str = "dlr.suppressions.v1"
    sends_topic: str = Field(
        "dlr.sends.v1", description="Registrations of sent messages (the sender's API)."
    )
    alerts_topic: str = Field(
        "dlr.alerts.v1",
        description="Alert state changes of `dlr alerts` (compacted, keyed by fingerprint).",
    )
    refused_topic: str = Field(
        "dlr.refused.v1",
        description="Refused webhook requests, without credentials or signatures and with "
        "the body truncated, when the ingress runs with DLR_CAPTURE_REFUSED=1.",
    )

    # -- where each service's metrics are ------------------------------------------------
    metrics_targets: str = Field(
        "",
        description="Comma-separated job=URL of each service's Prometheus /metrics (what "
        "`dlr alerts` watches and `dlr dashboard` shows), e.g. "
        "ingress=http://dlr-ingress/metrics; empty: the local ports `dlr up` uses.",
    )

    worker_id: str = Field(
        "dlr-streams",
        description="The stream worker's faust app id: its consumer group and the name of "
        "its table's changelog (an erasure writes a tombstone there).",
    )

    # -- ClickHouse ----------------------------------------------------------------------
    clickhouse_url: str | None = Field(
        None, description="External server, e.g. http://user:pw@host:8123; none started then."
    )
    clickhouse_host: str = Field("127.0.0.1", description="The local server's address.")
    clickhouse_http_port: int = Field(8123, description="The local server's HTTP port.")
    clickhouse_database: str = "dlr"
    clickhouse_cluster: str | None = Field(
        None,
        description="A sharded cluster (its remote_servers name): the migrations create each "
        "table as <name>_local ON CLUSTER with a Replicated engine and a Distributed <name> "
        "over it, sharded by message id.",
    )
    clickhouse_cluster_nodes: str = Field(
        "",
        description="HTTP URLs of every node of a cluster that has no Keeper: plain engines "
        "instead of Replicated ones, and the DDL is applied on each node instead of ON CLUSTER.",
    )
    clickhouse_shards: int = Field(
        1,
        ge=1,
        le=8,
        description="Shards of the local ClickHouse (`dlr clickhouse start --shards N`): N "
        "servers on http port .. port + N - 1, one cluster `dlr_local` without Keeper.",
    )

    # -- analytics ----------------------------------------------------------------------
    unreported_after_s: int = Field(
        3600,
        ge=1,
        description="A registered message without any receipt this long after its "
        "submission is unreported: an attempt in the delivery rate (sends definition).",
    )
    price_currencies: dict[str, str] = Field(
        default_factory=dict,
        description="JSON object provider -> ISO 4217 currency of the prices its receipts "
        'state without one (e.g. {"vonage": "EUR"}: the SMS API reports prices in the '
        "account's currency); such prices are reported as `unstated` otherwise.",
    )

    @field_validator("price_currencies")
    @classmethod
    def _currency_codes(cls, value: dict[str, str]) -> dict[str, str]:
        """Provider slugs in lower case, three-letter currency codes in upper case."""
        out: dict[str, str] = {}
        for provider, code in value.items():
            if not (len(code) == 3 and code.isascii() and code.isalpha()):
                raise ValueError(f"{provider}: {code!r} is not a three-letter currency code")
            out[provider.strip().lower()] = code.upper()
        return out

    # -- privacy -------------------------------------------------------------------------
    pii_mode: Literal["hash", "mask", "clear"] = Field(
        "hash",
        description="How phone numbers leave the raw topic: canonical events, actions, dead "
        "letters, registrations and ClickHouse carry the salted hash, the last two digits "
        "(mask), or the number (clear).",
    )
    pii_salt: str = Field("dlr-local-salt", description="Salt for hashed phone numbers.")

    @field_validator("metrics_targets")
    @classmethod
    def _targets_parse(cls, value: str) -> str:
        parse_targets(value)
        return value

    @model_validator(mode="before")
    @classmethod
    def _durability_defaults(cls, data: Any) -> Any:
        """Replication factor and min.insync.replicas follow the broker count unless set.

        One broker: RF 1 and min.insync 1 (nothing else is possible). Three brokers: RF 3
        and min.insync 2, so an acknowledged write is on two brokers and one broker may
        fail without refusing writes.
        """
        if not isinstance(data, dict):
            return data
        values = dict(data)
        if values.get("topic_replication_factor") is None:
            values["topic_replication_factor"] = min(3, int(values.get("kafka_brokers") or 1))
        if values.get("topic_min_insync_replicas") is None:
            rf = int(values["topic_replication_factor"])
            values["topic_min_insync_replicas"] = 2 if rf >= 3 else 1
        return values

    @model_validator(mode="after")
    def _check_durability(self) -> Self:
        if self.topic_min_insync_replicas > self.topic_replication_factor:
            raise ValueError(
                "topic_min_insync_replicas cannot exceed topic_replication_factor "
                "(every acks=all write would be refused)"
            )
        return self

    # -- retention (deploy/topics.py applies it to new and existing topics) --------------
    raw_retention_hours: int = Field(
        168,
        ge=1,
        description="How long dlr.raw.v1 keeps the raw requests (clear phone numbers, "
        "inbound keyword messages): the only topic holding whole provider payloads.",
    )
    topic_retention_hours: int = Field(
        168,
        ge=1,
        description="Retention of dlr.status.v1, dlr.actions.v1 and dlr.sends.v1 (long "
        "enough to replay a consumer that was down).",
    )
    deadletter_retention_hours: int = Field(
        336, ge=1, description="Retention of dlr.deadletter.v1 (time to investigate)."
    )
    refused_retention_hours: int = Field(
        24, ge=1, description="Retention of dlr.refused.v1 (a day of 'why was this refused')."
    )
    suppressions_compaction_lag_hours: int = Field(
        24,
        ge=1,
        description="Longest time a replaced record of the compacted dlr.suppressions.v1 "
        "(e.g. one with a number erased since) stays before compaction removes it.",
    )

    @classmethod
    def from_vars(cls, variables: Mapping[str, str]) -> Self:
        """The settings a child process started with these `DLR_*` variables will read."""
        return cls.model_validate(
            {k[4:].lower(): v for k, v in variables.items() if k.startswith("DLR_")}
        )

    # -- derived -------------------------------------------------------------------------
    @property
    def targets(self) -> dict[str, str]:
        """`metrics_targets` parsed: job -> URL (ValueError for an entry without `=`)."""
        return parse_targets(self.metrics_targets)

    @property
    def bootstrap(self) -> str:
        """The Kafka bootstrap servers everyone connects to (every local broker)."""
        if self.kafka_bootstrap:
            return self.kafka_bootstrap
        return ",".join(f"{self.kafka_host}:{port}" for port in self.kafka_ports)

    @property
    def kafka_ports(self) -> tuple[int, ...]:
        """Client ports of the local brokers: kafka_port, kafka_port + 1, ..."""
        return tuple(self.kafka_port + i for i in range(self.kafka_brokers))

    @property
    def topic_durability_configs(self) -> dict[str, str]:
        """Topic configs every topic gets: min.insync.replicas, no unclean election.

        An out-of-sync replica never becomes leader (it would drop acknowledged records).
        """
        return {
            "min.insync.replicas": str(self.topic_min_insync_replicas),
            "unclean.leader.election.enable": "false",
        }

    @property
    def clickhouse(self) -> str:
        """The ClickHouse HTTP URL everyone connects to (shard 1 of a local cluster)."""
        return self.clickhouse_url or f"http://{self.clickhouse_host}:{self.clickhouse_http_port}"

    @property
    def clickhouse_cluster_name(self) -> str | None:
        """The cluster the tables are sharded over, if any (`dlr_local` for local shards)."""
        if self.clickhouse_cluster:
            return self.clickhouse_cluster
        if not self.clickhouse_url and self.clickhouse_shards > 1:
            return LOCAL_CLUSTER
        return None

    @property
    def clickhouse_nodes(self) -> tuple[str, ...]:
        """HTTP URLs of the nodes of a cluster without Keeper (empty: ON CLUSTER works)."""
        listed = split_list(self.clickhouse_cluster_nodes)
        if listed or self.clickhouse_url:
            return listed
        if self.clickhouse_shards > 1:
            return tuple(
                f"http://{self.clickhouse_host}:{self.clickhouse_http_port + i}"
                for i in range(self.clickhouse_shards)
            )
        return ()

    @property
    def table_changelog_topic(self) -> str:
        """The changelog of the worker's `dlr-messages` table (faust names it
        `<app id>-<table>-changelog`)."""
        return f"{self.worker_id}-dlr-messages-changelog"
