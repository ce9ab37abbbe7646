"""Runs the real services (ingress, worker, sink, dispatch) as processes for end-to-end tests.

Each test pipeline gets its own topics, consumer groups, worker id and ClickHouse database
on the session's real broker and server, so tests never see each other's data. More
processes of a service (a second worker of the group, a second sink) are added with
`add(name, service)`: same group and topics, their own port and data directory.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from deploy.local.ports import free_port
from deploy.settings import Settings
from tests.conftest import ROOT
from tests.kafka_helpers import create_topics

SERVICES = ("ingress", "worker", "sink")
#: Started only when a test names it.
OPTIONAL = ("api", "dispatch", "alerts", "dashboard")


class Pipeline:
    """The three services of the pipeline, wired to test-private topics and database."""

    def __init__(
        self,
        kafka_bootstrap: str,
        clickhouse_url: str,
        data_dir: Path,
        unique: str,
        **overrides: str,
    ) -> None:
        self.env_vars = {
            "DLR_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "DLR_CLICKHOUSE_URL": clickhouse_url,
            "DLR_DATA_DIR": str(data_dir),
            "DLR_RAW_TOPIC": f"raw.{unique}",
            "DLR_STATUS_TOPIC": f"status.{unique}",
            "DLR_DEADLETTER_TOPIC": f"deadletter.{unique}",
            "DLR_ACTIONS_TOPIC": f"actions.{unique}",
            "DLR_ACTIONS_DEADLETTER_TOPIC": f"actions-dead.{unique}",
            "DLR_DISPATCH_GROUP": f"dispatch-{unique}",
            "DLR_DISPATCH_METRICS_PORT": str(free_port()),
            "DLR_SUPPRESSIONS_TOPIC": f"suppressions.{unique}",
            "DLR_SENDS_TOPIC": f"sends.{unique}",
            "DLR_ALERTS_TOPIC": f"alerts.{unique}",
            "DLR_ALERT_GROUP": f"alerts-{unique}",
            "DLR_ALERT_METRICS_PORT": str(free_port()),
            "DLR_DASHBOARD_PORT": str(free_port()),
            "DLR_API_PORT": str(free_port()),
            "DLR_WORKER_ID": f"dlr-test-{unique}",
            "DLR_SINK_GROUP": f"sink-{unique}",
            "DLR_CLICKHOUSE_DATABASE": f"dlr_{unique}",
            "DLR_INGRESS_PORT": str(free_port()),
            "DLR_WORKER_WEB_PORT": str(free_port()),
            "DLR_SINK_METRICS_PORT": str(free_port()),
            "DLR_DEV_SECRETS": "1",
            "DLR_TOPIC_PARTITIONS": "4",
            "DLR_LOG_LEVEL": "WARNING",
            "DLR_SINK_BATCH_MS": "100",
            **overrides,
        }
        self.settings = Settings.from_vars(self.env_vars)
        if "DLR_METRICS_TARGETS" not in self.env_vars:  # this pipeline's own ports
            self.env_vars["DLR_METRICS_TARGETS"] = self.settings.local_targets()
            self.settings = Settings.from_vars(self.env_vars)
        self.data_dir = data_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        #: instance name -> (service, its own DLR_* variables); the services themselves too.
        self.instances: dict[str, tuple[str, dict[str, str]]] = {}
        self.logs = data_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def watch(self, *services: str) -> None:
        """Point DLR_METRICS_TARGETS (what `dlr alerts` and the dashboard scrape) at these
        services only (the others of `local_targets` are not started)."""
        targets = [
            t for t in self.settings.local_targets().split(",") if t.split("=")[0] in services
        ]
        self.env_vars["DLR_METRICS_TARGETS"] = ",".join(targets)
        self.settings = Settings.from_vars(self.env_vars)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.ingress_port}"

    def env(self, instance: str | None = None) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("DLR_")}
        own = self.instance(instance)[1] if instance else {}
        return {**clean, **self.env_vars, **own, "PYTHONUNBUFFERED": "1"}

    def add(self, name: str, service: str) -> None:
        """Another process of `service` (same group and topics), started as `name`.

        It gets its own web/metrics port and data directory (a worker's RocksDB state).
        """
        port = {
            "ingress": "DLR_INGRESS_PORT",
            "api": "DLR_API_PORT",
            "worker": "DLR_WORKER_WEB_PORT",
            "sink": "DLR_SINK_METRICS_PORT",
            "dispatch": "DLR_DISPATCH_METRICS_PORT",
            "alerts": "DLR_ALERT_METRICS_PORT",
            "dashboard": "DLR_DASHBOARD_PORT",
        }[service]
        own = {"DLR_DATA_DIR": str(self.data_dir / name), port: str(free_port())}
        self.instances[name] = (service, own)

    def instance(self, name: str) -> tuple[str, dict[str, str]]:
        """(service, own DLR_* variables) of a process name; a service is its own name."""
        return self.instances.get(name, (name, {}))

    def settings_of(self, instance: str) -> Settings:
        """The settings the process `instance` runs with."""
        return Settings.from_vars({**self.env_vars, **self.instance(instance)[1]})

    def health_url(self, instance: str) -> str:
        """The URL `dlr up` polls for this process (deploy/cli.py `SERVICES`)."""
        from deploy.cli import SERVICES

        service = self.instance(instance)[0]
        (spec,) = [s for s in SERVICES if s.name == service]
        return spec.ready_url(self.settings_of(instance))

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"

    def api_key(self) -> str:
        data: dict[str, Any] = json.loads((self.data_dir / "dev-secrets.json").read_text())
        return str(data["api"]["key"])

    def metrics_url(self, instance: str) -> str:
        """The instance's Prometheus endpoint."""
        return self.health_url(instance).rsplit("/", 1)[0] + "/metrics"

    def start(self, *instances: str, timeout: float = 90.0) -> None:
        create_topics(self.settings)
        for name in instances or SERVICES:
            log = (self.logs / f"{name}.log").open("ab")
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "deploy.cli", self.instance(name)[0]],
                cwd=ROOT,
                env=self.env(name),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        for name in instances or SERVICES:
            self.wait_healthy(name, timeout)

    def wait_healthy(self, service: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[service]
            if proc.poll() is not None:
                raise RuntimeError(f"{service} exited {proc.returncode}: {self.log_tail(service)}")
            try:
                if httpx.get(self.health_url(service), timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{service} not healthy in {timeout}s: {self.log_tail(service)}")

    def log_tail(self, service: str, size: int = 3000) -> str:
        path = self.logs / f"{service}.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else ""

    def kill(self, service: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(service)
        os.killpg(proc.pid, sig)
        proc.wait(60)

    def stop(self) -> None:
        for proc in list(self.procs.values()):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for service, proc in list(self.procs.items()):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            self.procs.pop(service, None)

    def sink_metric(self, name: str) -> float:
        """One unlabelled sample of the sink's /metrics (0.0 while it has none)."""
        text = httpx.get(f"http://127.0.0.1:{self.settings.sink_metrics_port}/metrics").text
        match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
        return float(match.group(1)) if match else 0.0

    def signing_key(self, provider: str) -> str:
        data: dict[str, Any] = json.loads((self.data_dir / "dev-secrets.json").read_text())
        return str(data[provider]["key"])

    def post_generic(
        self, client: httpx.Client, raw: bytes, at: int | None = None
    ) -> httpx.Response:
        """POST one body to the ingress's generic route, signed at `at` (default now)."""
        from ingress.providers import generic
        from ingress.providers._contract import InboundRequest

        url = f"{self.base_url}/webhooks/generic"
        request = generic.sign(
            InboundRequest("POST", url, {"content-type": "application/json"}, raw),
            self.signing_key("generic"),
            int(time.time()) if at is None else at,
        )
        return client.post(url, content=raw, headers=dict(request.headers))

    def event_count(self) -> int:
        """Distinct canonical events in ClickHouse now (0 before the sink migrated)."""
        db = self.settings.clickhouse_database
        try:
            return int(self.clickhouse().command(f"SELECT uniqExact(event_id) FROM {db}.events"))
        except Exception:  # database not migrated yet
            return 0

    def clickhouse(self) -> Any:
        from sinks.clickhouse.client import connect

        return connect(self.settings)

    def wait_rows(self, expected: int, where: str = "1", timeout: float = 120.0) -> int:
        client = self.clickhouse()
        db = self.settings.clickhouse_database
        deadline = time.monotonic() + timeout
        count = 0
        while time.monotonic() < deadline:
            try:
                count = int(
                    client.command(f"SELECT uniqExact(event_id) FROM {db}.events WHERE {where}")
                )
            except Exception:  # database not migrated yet
                count = 0
            if count >= expected:
                return count
            time.sleep(0.5)
        return count
