"""`dlr`: the one command line of the pipeline.

dlr up                          everything locally, in the foreground (make run)
dlr kafka start|stop|status [--brokers N]   local Kafka 4.x KRaft broker or cluster
dlr clickhouse start|stop|status [--shards N]  local ClickHouse 26.9 server or cluster
dlr ingress [--tls-cert C --tls-key K]   the webhook ingress (uvicorn; HTTPS with DLR_TLS_CERT)
dlr compile                     compile the ingress's webhook path with mypyc, unless built
dlr api [--tls-cert C --tls-key K]       the sender's API (register messages, ask their status)
dlr status <message_id> | --client-ref X   what became of a message (same as the API)
dlr apikey [--id I --tenant T --scope S]   a new API key: the token once, its settings entry
dlr suppressions check|add|remove|export ...  the suppression list (numbers in E.164)
dlr erase --phone +E164 [--actor A]         erase every trace of a phone number
dlr worker                      the faust stream worker
dlr sink                        the ClickHouse sink
dlr dispatch                    deliver dlr.actions.v1 as signed webhooks
dlr dispatch retry [--since 24h --type T --endpoint E]  re-send dead-lettered actions
dlr alerts                      evaluate the alert rules; record, notify, push to Alertmanager
dlr dashboard                   the built-in dashboard page on 127.0.0.1:8090
dlr tools fetch                 install promtool and headless chromium (tests, rules)
dlr topics                      create the dlr.* topics, set their retention
dlr migrate                     apply ClickHouse migrations
dlr demo [--messages N] ...     simulate traffic end to end and check it
dlr demo --providers all --rate 50 --incident 'carrier=de-vodafone,delivery=0.5,after=60'
dlr report --by carrier ...     delivery analytics from ClickHouse (--by country,carrier: pairs;
                                --report cost|compare|filtering: spend, providers, filtering)
dlr billing export|compare ...  a provider's month per day and country; check its invoice
dlr try <provider> [--status S,S|all] | --all   real callbacks -> pipeline outcome, alerts fed
dlr capture --since 1h [--provider P] [--message-id M] -o F   verified requests -> JSON lines
dlr capture --refused --since 1h [--provider P] -o F   refused requests (DLR_CAPTURE_REFUSED=1)
dlr replay F [--to URL] [--resign] [--rate N]   send captured requests again
dlr replay --from-topic dlr.raw.v1 --since 1h   re-process a range through the worker
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from deploy import billing_cli, logs, privacy_cli, report_cli, weather
from deploy.local._process import lower_priority
from deploy.settings import Settings


class _Stop(Exception):
    """Raised in the main thread by SIGINT/SIGTERM."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def _wait_forever(check: Sequence[subprocess.Popen[bytes]] = ()) -> str:
    """Block until a signal arrives or a child exits; returns why."""
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        while True:
            for proc in check:
                if proc.poll() is not None:
                    return f"pid {proc.pid} ({proc.args!s:.60}) exited with {proc.returncode}"
            time.sleep(0.5)
    except _Stop as why:
        return str(why)


def cmd_kafka(settings: Settings, action: str, detach: bool) -> int:
    """Local broker control; `start` stays in the foreground unless --detach."""
    from deploy.local import kafka

    if action == "status":
        up = kafka.status(settings)
        print(f"kafka {'up' if up else 'down'} at {settings.bootstrap}")
        return 0 if up else 1
    if action == "stop":
        for brokers in kafka.local_clusters(settings):
            kafka.stop(Settings(kafka_brokers=brokers))
        return 0
    if action == "fetch":
        kafka.fetch(settings)
        return 0
    kafka.start(settings)
    asyncio.run(_topics(settings))
    if detach:
        return 0
    print("[kafka] running in the foreground; Ctrl-C stops it")
    why = _wait_forever()
    print(f"[kafka] {why}")
    kafka.stop(settings)
    return 0


def cmd_clickhouse(settings: Settings, action: str, detach: bool) -> int:
    """Local ClickHouse control; `start` stays in the foreground unless --detach."""
    from deploy.local import clickhouse

    if action == "status":
        up = clickhouse.status(settings)
        print(f"clickhouse {'up' if up else 'down'} at {settings.clickhouse}")
        return 0 if up else 1
    if action == "stop":
        for shards in clickhouse.local_clusters(settings):
            clickhouse.stop(Settings(clickhouse_shards=shards))
        return 0
    clickhouse.start(settings)
    if detach:
        return 0
    print("[clickhouse] running in the foreground; Ctrl-C stops it")
    why = _wait_forever()
    print(f"[clickhouse] {why}")
    clickhouse.stop(settings)
    return 0


async def _topics(settings: Settings) -> None:
    from deploy.topics import sync_topics

    done = await sync_topics(settings)
    if done.created:
        print(f"[kafka] created topics: {', '.join(done.created)}")
    for topic, changes in done.altered.items():
        changed = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in changes.items())
        print(f"[kafka] {topic}: {changed}")


def _with_tls(settings: Settings, tls_cert: str | None, tls_key: str | None) -> Settings:
    """The settings with the command line's certificate and key (they win over DLR_TLS_*)."""
    update: dict[str, object] = {}
    if tls_cert:
        update["tls_cert"] = Path(tls_cert)
        update["tls_key"] = Path(tls_key) if tls_key else None
    elif tls_key:
        raise SystemExit("--tls-key needs --tls-cert")
    return settings.model_copy(update=update) if update else settings


def _serving(name: str, settings: Settings, host: str, port: int) -> dict[str, Any]:
    """uvicorn's TLS options for these settings, after saying what is served and warning
    when the HTTPS-only rule would refuse every request this process can receive."""
    from ingress import tls

    try:
        options = tls.uvicorn_options(settings)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise SystemExit(f"[{name}] TLS settings do not serve: {exc}") from exc
    print(f"[{name}] {_scheme(settings)}://{host}:{port}", flush=True)
    if settings.https_required and not settings.tls_enabled and not settings.trusted_proxies:
        logging.getLogger(f"dlr.{name}").warning(
            "HTTPS is required (outside local mode) but this process serves plain HTTP and "
            "trusts no proxy: every request but the probes gets 403 insecure_transport. Set "
            "DLR_TLS_CERT/DLR_TLS_KEY, or DLR_TRUSTED_PROXIES for a TLS-terminating proxy."
        )
    return options


def cmd_ingress(
    settings: Settings, tls_cert: str | None, tls_key: str | None, workers: int, argv: list[str]
) -> int:
    """Serve the ingress with uvicorn (HTTPS with a certificate, from the flags or DLR_TLS_*),
    its webhook path compiled when the build is fresh (`deploy/compiled.py`)."""
    import uvicorn

    from deploy import compiled

    compiled.serve(settings.ingress_compiled, argv)
    logs.setup(settings.log_level)
    settings = _with_tls(settings, tls_cert, tls_key)
    options = _serving("ingress", settings, settings.ingress_host, settings.ingress_port)
    print(f"[ingress] {external_url_line(settings, _scheme(settings))}", flush=True)
    uvicorn.run(
        "ingress.app:create_app",
        factory=True,
        host=settings.ingress_host,
        port=settings.ingress_port,
        workers=workers,
        access_log=False,
        log_config=None,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
        **options,
    )
    return 0


def external_url_line(settings: Settings, scheme: str) -> str:
    """The URL the ingress believes providers call, as it verifies URL-signing schemes
    (Twilio, Plivo): a tunnel or proxy whose public URL differs shows up here at start."""
    if settings.public_base_url:
        base = settings.public_base_url.rstrip("/")
        return (
            f"external URL {base}/webhooks/<provider> (DLR_PUBLIC_BASE_URL): give providers "
            "exactly this; URL-signing schemes are verified against it"
        )
    local = f"{scheme}://{settings.ingress_host}:{settings.ingress_port}"
    if settings.trusted_proxies:
        return (
            f"external URL taken from X-Forwarded-Proto/Host/Port of proxies in "
            f"{settings.trusted_proxies}, else {local}/webhooks/<provider>; behind a tunnel "
            "set DLR_PUBLIC_BASE_URL to its public URL"
        )
    return (
        f"external URL {local}/webhooks/<provider> (each request's Host header; no "
        "DLR_PUBLIC_BASE_URL): behind a tunnel set DLR_PUBLIC_BASE_URL to its public URL, "
        "or URL-signed callbacks (Twilio, Plivo) are refused"
    )


def cmd_api(settings: Settings, tls_cert: str | None, tls_key: str | None) -> int:
    """Serve the sender's API with uvicorn (HTTPS as the ingress)."""
    import uvicorn

    from ingress.api.app import create_app

    logs.setup(settings.log_level)
    settings = _with_tls(settings, tls_cert, tls_key)
    options = _serving("api", settings, settings.api_host, settings.api_port)
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        access_log=False,
        log_config=None,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
        **options,
    )
    return 0


def cmd_apikey(settings: Settings, key_id: str, tenant: str | None, scopes: list[str]) -> int:
    """Print a new token (once) and the DLR_API_KEYS entry that holds only its SHA-256."""
    import json

    from ingress.api.keys import SCOPES, new_token, token_hash

    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        print(f"dlr apikey: unknown scopes {unknown}; known: {', '.join(SCOPES)}", file=sys.stderr)
        return 2
    token = new_token()
    entry: dict[str, object] = {"id": key_id, "sha256": token_hash(token), "scopes": scopes}
    if tenant:
        entry["tenant"] = tenant
    print(f"token (give it to the sender, it is not stored anywhere): {token}")
    print(f"DLR_API_KEYS entry: {json.dumps(entry)}")
    return 0


def cmd_status(settings: Settings, message_id: str | None, client_ref: str | None, fmt: str) -> int:
    """Print what became of a message (or of every message with a client_ref)."""
    from deploy.status_cli import run_status

    return run_status(settings, message_id=message_id, client_ref=client_ref, fmt=fmt)


def cmd_worker(settings: Settings) -> int:
    """Run the faust worker in the foreground."""
    logs.setup(settings.log_level)
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    asyncio.run(_topics(settings))
    from streams.worker import main

    main(settings)
    return 0


def cmd_sink(settings: Settings) -> int:
    """Run the ClickHouse sink in the foreground."""
    from sinks.service import main_async

    logs.setup(settings.log_level)
    asyncio.run(main_async(settings))
    return 0


def cmd_dispatch(settings: Settings) -> int:
    """Run the action dispatcher in the foreground."""
    from sinks.dispatch.service import main_async

    logs.setup(settings.log_level)
    asyncio.run(main_async(settings))
    return 0


def cmd_alerts(settings: Settings) -> int:
    """Run the alert evaluator in the foreground."""
    from sinks.alerts.service import main_async

    logs.setup(settings.log_level)
    asyncio.run(_topics(settings))
    asyncio.run(main_async(settings.with_targets()))
    return 0


def cmd_dashboard(settings: Settings) -> int:
    """Serve the built-in dashboard with uvicorn."""
    import uvicorn

    from ingress.dashboard.app import Reports, create_app
    from sinks.clickhouse import insights

    logs.setup(settings.log_level)
    print(f"[dashboard] http://{settings.dashboard_host}:{settings.dashboard_port}/", flush=True)
    uvicorn.run(
        create_app(
            settings.with_targets(),
            reports=Reports(compare=insights.compare, cost=insights.cost),
        ),
        host=settings.dashboard_host,
        port=settings.dashboard_port,
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    return 0


def cmd_dispatch_retry(
    settings: Settings,
    since: str | None,
    until: str | None,
    kind: str | None,
    endpoint: str | None,
    dry_run: bool,
) -> int:
    """Re-send dead-lettered actions; exit 1 when some failed again or had no endpoint."""
    from deploy.report_cli import parse_duration
    from sinks.dispatch.retry import Selection, retry_dead_letters

    now = time.time()
    selection = Selection(
        since=now - parse_duration(since) if since else None,
        until=now - parse_duration(until) if until else None,
        kind=kind,
        endpoint=endpoint,
    )
    summary = asyncio.run(retry_dead_letters(settings, selection, dry_run=dry_run))
    verb = "would re-send" if dry_run else "re-sent"
    print(
        f"[dispatch retry] scanned {summary.scanned} dead-letter records; {verb} "
        f"{summary.selected}: {summary.delivered} delivered, {summary.failed} dead-lettered again"
    )
    for name, count in sorted(summary.unknown_endpoints.items()):
        print(f"[dispatch retry] {count} for endpoint {name}, not in DLR_ACTION_ENDPOINTS now")
    return 1 if summary.failed or summary.unknown_endpoints else 0


def cmd_migrate(settings: Settings) -> int:
    """Apply ClickHouse migrations now."""
    from sinks.clickhouse.client import connect
    from sinks.clickhouse.cluster import ClusterSpec
    from sinks.clickhouse.migrate import migrate

    applied = migrate(
        connect(settings),
        settings.clickhouse_database,
        retention_days=settings.retention_days,
        clear_pii_days=settings.clear_pii_days,
        cluster=ClusterSpec.from_settings(settings),
        audit_retention_days=settings.erasure_audit_days,
    )
    print(f"applied: {', '.join(applied) if applied else 'nothing (up to date)'}")
    return 0


def _spawn(
    args: list[str], env: dict[str, str], log_dir: Path, nice: int = 0
) -> subprocess.Popen[bytes]:
    """`dlr <args>` in its own session, logging to `<log_dir>/<name>.log`, `nice` lower."""
    name = args[0]
    log_dir.mkdir(parents=True, exist_ok=True)
    out = (log_dir / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", *args],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        # Runs after setsid(), so the new session's scheduling group is the one lowered.
        # `dlr up` runs no other thread while it spawns (asyncio.run joined its executor).
        preexec_fn=functools.partial(lower_priority, nice) if nice else None,
    )
    return proc


def _stop_children(procs: list[subprocess.Popen[bytes]], timeout: float = 15.0) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_http(url: str, timeout: float) -> bool:
    """Poll until the URL answers 200. A local child's own HTTPS certificate is not
    verified here (it may be self-signed; nothing secret is sent, only a status read)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0, verify=False).status_code == 200:  # noqa: S501
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def _wait_ready(url: str, settings: Settings, timeout: float) -> bool:
    """`_wait_http`, except that a service requiring client certificates (no probe can
    ask it anything without one) is ready once it accepts connections."""
    if not (url.startswith("https:") and settings.tls_client_cert_required):
        return _wait_http(url, timeout)
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((parts.hostname, parts.port or 443), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def _scheme(settings: Settings) -> str:
    return "https" if settings.tls_enabled else "http"


@dataclass(frozen=True, slots=True)
class Service:
    """A long-running `dlr <name>` process that `dlr up` starts and waits for."""

    name: str
    #: The URL that answers 200 once the service is ready.
    ready_url: Callable[[Settings], str]
    #: One line for the summary `dlr up` prints.
    summary: Callable[[Settings], str]
    #: Takes work from outside (webhooks, registrations): runs at `DLR_UP_INTAKE_NICE`.
    intake: bool = False

    def nice(self, settings: Settings) -> int:
        """How much lower than `dlr up` this service runs (0 for the pipeline itself)."""
        return settings.up_intake_nice if self.intake else 0


#: Every service `dlr up` starts, in start order (a new service adds one entry here).
SERVICES: tuple[Service, ...] = (
    Service(
        "ingress",
        lambda s: f"{_scheme(s)}://{s.ingress_host}:{s.ingress_port}/readyz",
        lambda s: (
            f"{_scheme(s)}://{s.ingress_host}:{s.ingress_port}  /webhooks/<provider>  "
            "/healthz /readyz /metrics"
        ),
        intake=True,
    ),
    Service(
        "api",
        lambda s: f"{_scheme(s)}://{s.api_host}:{s.api_port}/readyz",
        lambda s: (
            f"{_scheme(s)}://{s.api_host}:{s.api_port}  /v1/messages /v1/suppressions "
            "/v1/subjects  /healthz /readyz /metrics /openapi.json"
        ),
        intake=True,
    ),
    Service(
        "worker",
        lambda s: f"http://127.0.0.1:{s.worker_web_port}/healthz",
        lambda s: f"http://127.0.0.1:{s.worker_web_port}/metrics",
    ),
    Service(
        "sink",
        lambda s: f"http://127.0.0.1:{s.sink_metrics_port}/healthz",
        lambda s: f"http://127.0.0.1:{s.sink_metrics_port}/metrics",
    ),
    Service(
        "dispatch",
        lambda s: f"http://127.0.0.1:{s.dispatch_metrics_port}/healthz",
        lambda s: (
            f"http://127.0.0.1:{s.dispatch_metrics_port}/metrics  actions -> "
            + (", ".join(sorted(s.action_routes)) or "no endpoints (DLR_ACTION_ENDPOINTS)")
        ),
    ),
    Service(
        "alerts",
        lambda s: f"http://127.0.0.1:{s.alert_metrics_port}/healthz",
        lambda s: (
            f"http://127.0.0.1:{s.alert_metrics_port}/metrics  every {s.alert_interval_s:g}s "
            f"over {s.alert_window_s}s windows -> "
            + (f"{len(s.webhook_urls)} webhook(s)" if s.webhook_urls else "recorded only")
            + (" + Alertmanager" if s.alertmanager_url else "")
        ),
    ),
    Service(
        "dashboard",
        lambda s: f"http://127.0.0.1:{s.dashboard_port}/healthz",
        lambda s: f"http://127.0.0.1:{s.dashboard_port}/  (the built-in dashboard)",
    ),
)


def cmd_up(settings: Settings) -> int:
    """Start everything locally in the foreground; Ctrl-C stops all of it."""
    from deploy.local import clickhouse, kafka

    started = time.monotonic()
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    procs: list[subprocess.Popen[bytes]] = []
    own_kafka = not settings.kafka_bootstrap
    own_clickhouse = not settings.clickhouse_url
    env = {
        **os.environ,
        "DLR_DEV_SECRETS": os.environ.get("DLR_DEV_SECRETS", "1"),
        "PYTHONUNBUFFERED": "1",
    }
    log_dir = settings.data_dir / "logs"
    try:
        if own_kafka:
            kafka.start(settings)
        if own_clickhouse:
            clickhouse.start(settings)
        asyncio.run(_topics(settings))
        if env["DLR_DEV_SECRETS"] == "1":
            from ingress.api.keys import dev_key
            from ingress.credentials import dev_secrets, dev_secrets_path

            dev_secrets(settings.model_copy(update={"dev_secrets": True}))
            dev_key(settings)
            print(
                f"[up] development secrets and API key in {dev_secrets_path(settings)} "
                "(kept, not printed)"
            )
        for service in SERVICES:
            procs.append(_spawn([service.name], env, log_dir, service.nice(settings)))
        for service in SERVICES:
            print(f"[up] waiting for {service.name} ...", flush=True)
            if not _wait_ready(service.ready_url(settings), settings, 90):
                print(f"[up] {service.name} did not become ready; logs in {log_dir}")
                return 1
        db = settings.clickhouse_database
        lines = [
            f"  kafka       {settings.bootstrap}{'' if own_kafka else ' (external)'}",
            f"  clickhouse  {settings.clickhouse}{'' if own_clickhouse else ' (external)'} db {db}",
        ]
        for service, proc in zip(SERVICES, procs, strict=True):
            lines.append(f"  {service.name:<11} pid {proc.pid}  {service.summary(settings)}")
        lines.append(f"  logs        {log_dir}/")
        print(
            f"\n[up] ready in {time.monotonic() - started:.1f}s\n"
            + "\n".join(lines)
            + "\nCtrl-C stops everything.",
            flush=True,
        )
        why = _wait_forever(procs)
        print(f"[up] stopping ({why})")
        return 0
    except _Stop as why:
        print(f"[up] stopping ({why})")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop_children(procs)
        if own_clickhouse:
            clickhouse.stop(settings)
        if own_kafka:
            kafka.stop(settings)
        print("[up] all stopped")


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command."""
    parser = argparse.ArgumentParser(
        prog="dlr", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run everything locally (make run)")
    for name, actions in (
        ("kafka", ["start", "stop", "status", "fetch"]),
        ("clickhouse", ["start", "stop", "status"]),
    ):
        p = sub.add_parser(name, help=f"local {name} server")
        p.add_argument("action", choices=actions)
        p.add_argument("--detach", action="store_true", help="start and return")
        if name == "kafka":
            p.add_argument(
                "--brokers",
                type=int,
                default=None,
                help="brokers of the local KRaft cluster (default DLR_KAFKA_BROKERS, 1); "
                "stop stops every local cluster",
            )
        else:
            p.add_argument(
                "--shards",
                type=int,
                default=None,
                help="servers of the local sharded cluster dlr_local (default "
                "DLR_CLICKHOUSE_SHARDS, 1); stop stops every local one",
            )
    p = sub.add_parser("ingress", help="webhook ingress")
    p.add_argument("--tls-cert", help="PEM certificate chain (default DLR_TLS_CERT)")
    p.add_argument("--tls-key", help="PEM private key (default DLR_TLS_KEY)")
    p.add_argument("--workers", type=int, default=1)
    sub.add_parser("compile", help="compile the ingress's webhook path (mypyc)")
    p = sub.add_parser("api", help="the sender's API")
    p.add_argument("--tls-cert", help="PEM certificate chain (default DLR_TLS_CERT)")
    p.add_argument("--tls-key", help="PEM private key (default DLR_TLS_KEY)")
    p = sub.add_parser("status", help="what became of a message")
    p.add_argument("message_id", nargs="?")
    p.add_argument("--client-ref")
    p.add_argument("--format", default="text", choices=["text", "json"])
    p = sub.add_parser("apikey", help="make a new API key for the sender's API")
    p.add_argument("--id", default="sender")
    p.add_argument("--tenant")
    p.add_argument(
        "--scope",
        action="append",
        dest="scopes",
        help="repeat; default messages:write and messages:read",
    )
    p = sub.add_parser("suppressions", help="check, add, remove, export suppression entries")
    privacy_cli.add_suppression_arguments(p)
    p = sub.add_parser("erase", help="erase every trace of a phone number")
    privacy_cli.add_erase_arguments(p)
    sub.add_parser("worker", help="faust stream worker")
    sub.add_parser("sink", help="ClickHouse sink")
    p = sub.add_parser("dispatch", help="deliver actions as signed webhooks")
    dispatch_sub = p.add_subparsers(dest="dispatch_command")
    p = dispatch_sub.add_parser("retry", help="re-send dead-lettered actions")
    p.add_argument("--since", help="dead-lettered within this long ago, e.g. 24h (default: any)")
    p.add_argument("--until", help="dead-lettered at least this long ago, e.g. 1h")
    p.add_argument("--type", dest="kind", help="action type, e.g. fallback")
    p.add_argument("--endpoint", help="endpoint name (host#hash, as in metrics) or URL")
    p.add_argument("--dry-run", action="store_true", help="count, do not send")
    sub.add_parser("alerts", help="evaluate the alert rules and notify")
    sub.add_parser("dashboard", help="the built-in dashboard page")
    p = sub.add_parser("tools", help="system tools of the tests (promtool, chromium)")
    p.add_argument("action", choices=["fetch"])
    sub.add_parser("topics", help="create topics")
    sub.add_parser("migrate", help="apply ClickHouse migrations")
    p = sub.add_parser("demo", help="simulate traffic and check the result")
    p.add_argument("--messages", type=int, default=1000)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--truth", type=Path, default=None)
    p.add_argument("--summary", type=Path, default=None, help="write the outcome as JSON")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument(
        "--providers",
        default="generic",
        help="generic JSON callbacks (default); all: every provider's own signed wire format "
        "to real number ranges in 8 countries; or a comma-separated list of providers",
    )
    p.add_argument(
        "--countries", default="", help="only these countries of the traffic model, e.g. DE,GB"
    )
    p.add_argument(
        "--rate",
        type=float,
        default=None,
        help="live: this many messages per second from now, each report at its own time",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="live: report delays divided by this (10: a carrier's 20 s take 2 s)",
    )
    p.add_argument(
        "--incident",
        action="append",
        default=[],
        metavar="SPEC",
        help="live: carrier=<key or name>|country=<ISO>,delivery=<0..1>,after=<s>"
        "[,duration=<s>] (repeatable; implies --rate 20 unless given)",
    )
    p = sub.add_parser("try", help="send a provider's callbacks, show what became of them")
    p.add_argument("provider", nargs="?", help="e.g. twilio (omit with --all)")
    p.add_argument(
        "--status",
        help="fixture names, comma separated (default delivered,undelivered,expired,rejected), "
        "or all",
    )
    p.add_argument("--all", action="store_true", help="every provider, every status")
    p.add_argument("--to", help="ingress base URL (default the local one)")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the worker")
    p = sub.add_parser("capture", help="export verified requests of the raw topic")
    p.add_argument("--since", default="1h", help="how far back, e.g. 90m, 24h")
    p.add_argument("--provider")
    p.add_argument("--message-id", help="e.g. twilio:SM...")
    p.add_argument(
        "--refused",
        action="store_true",
        help="the refused requests the ingress kept (DLR_CAPTURE_REFUSED=1) instead",
    )
    p.add_argument("-o", "--output", type=Path, required=True, help="JSON-lines file")
    p = sub.add_parser("replay", help="send captured requests to an ingress again")
    p.add_argument("file", type=Path, nargs="?", help="a `dlr capture` file")
    p.add_argument("--from-topic", help="re-process this topic's records through the worker")
    p.add_argument("--since", default="1h", help="with --from-topic: how far back")
    p.add_argument("--to", help="ingress base URL (default the local one)")
    p.add_argument("--resign", action="store_true", help="sign again with the dev secrets")
    p.add_argument("--rate", type=float, default=50.0, help="requests per second at most")
    p = sub.add_parser("report", help="delivery analytics (deploy/report_cli.py)")
    report_cli.add_arguments(p)
    p = sub.add_parser(
        "billing", help="reconcile a provider's invoice with the receipts (deploy/billing_cli.py)"
    )
    billing_cli.add_arguments(p)
    arguments = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(arguments)
    args.argv = arguments  # `dlr ingress` runs itself again on the compiled build
    # --brokers / --shards before anything is derived from them (replication, cluster)
    given = {"kafka_brokers": getattr(args, "brokers", None)}
    given["clickhouse_shards"] = getattr(args, "shards", None)
    settings = Settings(**{k: v for k, v in given.items() if v is not None})
    try:
        return _run(parser, args, settings)
    except weather.Unreachable as exc:
        print(f"dlr {args.command}: {exc}", file=sys.stderr)
        return 1


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Settings) -> int:
    """Run the parsed command (`main` turns an absent server into one line)."""
    if args.command == "up":
        return cmd_up(settings)
    if args.command == "kafka":
        return cmd_kafka(settings, args.action, args.detach)
    if args.command == "clickhouse":
        return cmd_clickhouse(settings, args.action, args.detach)
    if args.command == "ingress":
        return cmd_ingress(settings, args.tls_cert, args.tls_key, args.workers, args.argv)
    if args.command == "compile":
        from deploy import compiled

        try:
            compiled.ensure()
        except (OSError, RuntimeError) as exc:
            print(f"[compile] failed: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "api":
        return cmd_api(settings, args.tls_cert, args.tls_key)
    if args.command == "status":
        if bool(args.message_id) == bool(args.client_ref):
            parser.error("status: give a message id or --client-ref, not both")
        return cmd_status(settings, args.message_id, args.client_ref, args.format)
    if args.command == "apikey":
        scopes = args.scopes or ["messages:write", "messages:read"]
        return cmd_apikey(settings, args.id, args.tenant, scopes)
    if args.command == "suppressions":
        return privacy_cli.run_suppressions(settings, args)
    if args.command == "erase":
        return privacy_cli.run_erase(settings, args)
    if args.command == "worker":
        return cmd_worker(settings)
    if args.command == "sink":
        return cmd_sink(settings)
    if args.command == "dispatch":
        if args.dispatch_command == "retry":
            return cmd_dispatch_retry(
                settings, args.since, args.until, args.kind, args.endpoint, args.dry_run
            )
        return cmd_dispatch(settings)
    if args.command == "alerts":
        return cmd_alerts(settings)
    if args.command == "dashboard":
        return cmd_dashboard(settings)
    if args.command == "tools":
        from deploy.local import tools

        return tools.fetch()
    if args.command == "topics":
        asyncio.run(_topics(settings))
        return 0
    if args.command == "migrate":
        return cmd_migrate(settings)
    if args.command == "demo":
        from deploy.demo import Live, run_demo
        from deploy.traffic import parse_incident

        try:
            incidents = tuple(parse_incident(spec) for spec in args.incident)
        except ValueError as exc:
            parser.error(str(exc))
        rate = args.rate if args.rate is not None else (20.0 if incidents else None)
        if rate is not None and rate <= 0:
            parser.error("--rate must be positive")
        if args.speed <= 0:
            parser.error("--speed must be positive")
        return run_demo(
            settings,
            messages=args.messages,
            seed=args.seed,
            truth=args.truth,
            concurrency=args.concurrency,
            timeout=args.timeout,
            providers=args.providers,
            countries=args.countries,
            live=Live(rate, incidents, args.speed) if rate is not None else None,
            summary=args.summary,
        )
    if args.command == "report":
        return report_cli.run_args(settings, args)
    if args.command == "billing":
        return billing_cli.run_args(settings, args)
    if args.command == "capture":
        from deploy.tools.capture import run_capture

        if args.refused and args.message_id:
            parser.error("capture: --refused has no message ids (nothing was verified)")
        return run_capture(
            settings, args.since, args.output, args.provider, args.message_id, args.refused
        )
    if args.command == "replay":
        from deploy.tools.replay import run_replay

        if bool(args.file) == bool(args.from_topic):
            parser.error("replay: give a captured file or --from-topic, not both")
        if args.from_topic:
            from deploy.tools.replay import run_from_topic

            return run_from_topic(settings, args.from_topic, args.since)
        return run_replay(settings, args.file, args.to, args.resign, args.rate)
    if args.command == "try":
        from deploy.tools.trying import run_try

        return run_try(settings, args.provider, args.status, args.all, args.to, args.wait)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
