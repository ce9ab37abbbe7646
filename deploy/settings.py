"""The `dlr` command line's settings: every service's, plus the local launchers'.

Each service owns its settings class (`ingress/settings.py`, `ingress/api/settings.py`,
`streams/settings.py`, `sinks/settings.py`, `sinks/dispatch/settings.py`,
`sinks/alerts/settings.py`, `ingress/dashboard/settings.py`, all extending
`schemas/settings.py`); `Settings` combines them so that one object, read once from the
environment at process start, can be handed to any of them. The fields added here only
concern the local Kafka and ClickHouse that `dlr up`, `dlr kafka` and `dlr clickhouse`
start, and how long the tools wait out an absent server. Nothing here does I/O.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ingress.api.settings import ApiSettings
from ingress.dashboard.settings import DashboardSettings
from ingress.settings import IngressSettings
from schemas.settings import split_list
from sinks.alerts.settings import AlertSettings
from sinks.dispatch.settings import DispatchSettings
from sinks.settings import SinkSettings
from streams.settings import WorkerSettings

__all__ = ["Settings", "split_list"]


class Settings(
    IngressSettings,
    ApiSettings,
    WorkerSettings,
    SinkSettings,
    DispatchSettings,
    AlertSettings,
    DashboardSettings,
):
    """All configuration. Field name `x` is environment variable `DLR_X`."""

    cache_dir: Path = Field(Path(".cache"), description="Downloaded Kafka jars.")
    kafka_version: str = Field("4.4.0", description="Apache Kafka version fetched from Maven.")
    kafka_controller_port: int = Field(
        9192,
        description="KRaft controller port of local broker 1 (broker i: port + i - 1); not "
        "9093, which broker 2 of a local cluster uses.",
    )
    kafka_heap_mb: int = Field(512, le=4096, description="Heap of each local broker.")
    clickhouse_tcp_port: int = 9009
    up_intake_nice: int = Field(
        5,
        ge=0,
        le=19,
        description="`dlr up` runs the ingress and the API (the intake) this much lower (nice), "
        "their sessions' scheduling groups too, than the worker, sink, Kafka and ClickHouse: "
        "on a full machine the intake answers a little slower instead of accepting more than "
        "the pipeline behind it drains. 0: equal shares.",
    )
    tools_wait_s: float = Field(
        60.0,
        gt=0,
        description="How long `dlr demo|report|try|capture|replay` wait for an absent broker "
        "or ClickHouse before failing with one line (deploy/weather.py).",
    )

    def local_targets(self) -> str:
        """job=URL of every service's /metrics as `dlr up` runs them (on this host)."""

        def host(bound: str) -> str:
            return "127.0.0.1" if bound in ("0.0.0.0", "::", "") else bound

        return ",".join(
            [
                f"ingress=http://{host(self.ingress_host)}:{self.ingress_port}/metrics",
                f"api=http://{host(self.api_host)}:{self.api_port}/metrics",
                f"worker=http://127.0.0.1:{self.worker_web_port}/metrics",
                f"sink=http://{host(self.sink_metrics_host)}:{self.sink_metrics_port}/metrics",
                f"dispatch=http://{host(self.dispatch_metrics_host)}:"
                f"{self.dispatch_metrics_port}/metrics",
            ]
        )

    def with_targets(self) -> Settings:
        """These settings, with `metrics_targets` defaulting to the local services."""
        if self.metrics_targets:
            return self
        return self.model_copy(update={"metrics_targets": self.local_targets()})
