"""`dlr alerts`: evaluate the rules every interval, record state changes, tell people.

One process (one replica: it holds the alert state), four tasks:

1. **evaluate** every `DLR_ALERT_INTERVAL_S`: the business rules over ClickHouse
   (`business.py`), the health rules over the services' /metrics (`health.py`), then the
   state machine (`tracker.py`). Each state change (and each re-notification) is a record.
2. **record**: each record goes to `DLR_ALERTS_TOPIC` (compacted, key = fingerprint,
   `acks=all`). While Kafka does not acknowledge, records wait in memory in order and
   notifications still go out: the alert that says Kafka is down must reach someone.
3. **notify**: each record is POSTed to every `DLR_ALERT_WEBHOOK_URLS` endpoint through
   `sinks.webhooks` (Standard Webhooks signature with the first of
   `DLR_ALERT_SIGNING_SECRETS`, `webhook-id` = the record's `id`, retries with backoff
   and full jitter within `DLR_ALERT_WEBHOOK_RETRY_TOTAL_S`, per-endpoint circuit
   breaker), one queue per endpoint so a dead endpoint delays only itself. When every
   endpoint finished, the record is written again with `delivered: true` and the outcome
   per endpoint. Active alerts are also pushed to `DLR_ALERTMANAGER_URL` (its v2 API)
   every evaluation, as Prometheus does, so Alertmanager keeps them until they resolve.
4. **history**: a consumer (group `<DLR_ALERT_GROUP>-history`) copies the topic into the
   ClickHouse table `alerts` (ddl/0012), committing after each insert.

**Restarts.** On start the latest record of every fingerprint is read back from the
topic: firing alerts stay firing (their start, last send and notification count come
along, so nothing is announced twice), and a record whose notifications had not ended
(no `delivered` record) is delivered again with the same `webhook-id`, which receivers
dedupe on. What is not kept: a pending alert's clock (its `for` starts again). On stop the
background tasks get `stop_timeout_s` (5 s) to finish, then are abandoned (`_stop_tasks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from sinks._http import serve_metrics
from sinks.alerts import business
from sinks.alerts.health import Scraper, health_observations
from sinks.alerts.model import RULES, Observation, iso
from sinks.alerts.settings import AlertSettings
from sinks.alerts.tracker import Tracker, parse_time
from sinks.clickhouse.migrate import check_identifier
from sinks.webhooks import BreakerPolicy, Endpoint, RetryPolicy, WebhookClient, WebhookMetrics

__all__ = [
    "AlertMetrics",
    "AlertService",
    "alertmanager_alerts",
    "history_row",
    "main_async",
    "read_latest",
]

log = logging.getLogger("dlr.alerts")

#: Columns of the `alerts` table the history task inserts (ddl/0012).
HISTORY_COLUMNS = (
    "id",
    "fingerprint",
    "rule",
    "status",
    "severity",
    "labels",
    "value",
    "threshold",
    "baseline",
    "summary",
    "runbook",
    "starts_at",
    "ends_at",
    "at",
    "notification",
    "delivered",
    "delivery",
)


@dataclass
class AlertMetrics:
    """The evaluator's metrics plus its webhook clients', in one registry each."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.webhooks = WebhookMetrics(r)
        self.evaluations = Counter(
            "dlr_alerts_evaluations",
            "Evaluations by result: ok, partial (a source failed), error",
            ["result"],
            registry=r,
        )
        self.evaluation_seconds = Histogram(
            "dlr_alerts_evaluation_seconds",
            "Time of one evaluation (queries and scrapes)",
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.source_errors = Counter(
            "dlr_alerts_source_errors",
            "Evaluations a source could not be read: clickhouse, or a scrape job",
            ["source"],
            registry=r,
        )
        self.firing = Gauge(
            "dlr_alerts_firing", "Alerts firing now", ["rule", "severity"], registry=r
        )
        self.records = Counter(
            "dlr_alerts_records", "Records written to the alerts topic", ["status"], registry=r
        )
        self.unrecorded = Gauge(
            "dlr_alerts_unrecorded", "Records waiting for Kafka to acknowledge", registry=r
        )
        self.notifications = Counter(
            "dlr_alerts_notifications",
            "Notifications by outcome: delivered, refused, exhausted",
            ["outcome"],
            registry=r,
        )
        self.alertmanager = Counter(
            "dlr_alerts_alertmanager_pushes",
            "Pushes to Alertmanager by outcome",
            ["outcome"],
            registry=r,
        )
        self.history_rows = Counter(
            "dlr_alerts_history_rows", "Rows inserted into the alerts table", registry=r
        )


def _key(record: Mapping[str, Any]) -> bytes:
    return str(record["fingerprint"]).encode()


async def read_latest(
    settings: AlertSettings, producer: AIOKafkaProducer | None = None, timeout_s: float = 60.0
) -> dict[str, dict[str, Any]]:
    """The latest record of every fingerprint on the alerts topic (read to its end).

    The topic's partitions come from a producer's `partitions_for` (it fetches the
    metadata; a consumer without a subscription knows topic names only); without
    `producer`, a short-lived one."""
    own = producer is None
    if producer is None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap)
        await producer.start()
    try:
        partitions = await producer.partitions_for(settings.alerts_topic)
    except KafkaError:  # no such topic yet: nothing was ever recorded
        partitions = set()
    finally:
        if own:
            await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    latest: dict[str, dict[str, Any]] = {}
    try:
        tps = [TopicPartition(settings.alerts_topic, p) for p in sorted(partitions)]
        if not tps:
            return latest
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        # explicit offsets: seek_to_beginning() races with the position the fetcher may
        # already have reset an assigned partition to (seen: position() = end, nothing read)
        for tp, first in (await consumer.beginning_offsets(tps)).items():
            consumer.seek(tp, first)
        deadline = time.monotonic() + timeout_s
        while True:
            positions = {tp: await consumer.position(tp) for tp in ends}
            if all(positions[tp] >= end for tp, end in ends.items()):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{settings.alerts_topic} not read to its end in {timeout_s}s")
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for rec in records:
                    try:
                        value = orjson.loads(rec.value or b"")
                        latest[str(value["fingerprint"])] = value
                    except (orjson.JSONDecodeError, KeyError, TypeError):
                        log.warning("unreadable alert record", extra={"offset": rec.offset})
    finally:
        await consumer.stop()
    return latest


def alertmanager_alerts(
    records: list[Mapping[str, Any]], ends_in_s: float, now: float
) -> list[dict[str, Any]]:
    """Alertmanager v2 `postableAlerts` of these records: firing ones end `ends_in_s` from
    now unless pushed again (as Prometheus does), resolved ones at their end."""
    out = []
    for rec in records:
        labels = {"alertname": str(rec["rule"]), "severity": str(rec["severity"])}
        labels.update({str(k): str(v) for k, v in dict(rec["labels"]).items()})
        labels["fingerprint"] = str(rec["fingerprint"])
        ends = rec["ends_at"] if rec["status"] == "resolved" else iso(now + ends_in_s)
        out.append(
            {
                "labels": labels,
                "annotations": {
                    "summary": str(rec["summary"]),
                    "runbook_url": str(rec["runbook"]),
                    "value": f"{rec['value']:g}",
                    "threshold": f"{rec['threshold']:g}",
                },
                "startsAt": rec["starts_at"],
                "endsAt": ends,
                "generatorURL": f"dlr-alerts:{rec['rule']}",
            }
        )
    return out


def history_row(rec: Mapping[str, Any]) -> list[Any]:
    """One `alerts` table row of a record (HISTORY_COLUMNS order)."""

    def when(text: Any) -> Any:
        if text is None:
            return None
        return datetime.fromtimestamp(parse_time(str(text)), UTC).replace(tzinfo=None)

    delivery = rec.get("delivery") or {}
    return [
        str(rec["id"]),
        str(rec["fingerprint"]),
        str(rec["rule"]),
        str(rec["status"]),
        str(rec.get("severity") or ""),
        {str(k): str(v) for k, v in dict(rec.get("labels") or {}).items()},
        float(rec.get("value") or 0.0),
        float(rec.get("threshold") or 0.0),
        None if rec.get("baseline") is None else float(rec["baseline"]),
        str(rec.get("summary") or ""),
        str(rec.get("runbook") or ""),
        when(rec["starts_at"]),
        when(rec.get("ends_at")),
        when(rec["at"]),
        int(rec.get("notification") or 0),
        1 if rec.get("delivered") else 0,
        {str(k): str(v) for k, v in dict(delivery).items()},
    ]


class AlertService:
    """The four tasks of `dlr alerts` (see the module docstring)."""

    def __init__(self, settings: AlertSettings, metrics: AlertMetrics | None = None) -> None:
        s = self.settings = settings
        self.metrics = metrics or AlertMetrics()
        self.tracker = Tracker(s.alert_for_s, s.alert_renotify_s)
        self.scraper = Scraper(s.targets, s.alert_metrics_window_s, s.alert_scrape_timeout_s)
        if s.webhook_urls and not s.alert_secrets:
            raise ValueError("DLR_ALERT_WEBHOOK_URLS is set but DLR_ALERT_SIGNING_SECRETS is empty")
        self.endpoints = tuple(
            Endpoint(url, s.alert_secrets, s.alert_webhook_timeout_s) for url in s.webhook_urls
        )
        self.client = WebhookClient(
            RetryPolicy(
                attempts=s.alert_webhook_attempts,
                total_s=s.alert_webhook_retry_total_s,
                initial_s=s.alert_webhook_retry_initial_s,
                max_wait_s=s.alert_webhook_retry_max_s,
            ),
            breaker=BreakerPolicy(),
            concurrency=4,
            metrics=self.metrics.webhooks,
            user_agent="dlr-alerts/1",
        )
        self.am_metrics = WebhookMetrics(CollectorRegistry())
        self.am_endpoint = (
            Endpoint(s.alertmanager_url.rstrip("/") + "/api/v2/alerts", (), 10.0, signed=False)
            if s.alertmanager_url
            else None
        )
        self.am_client = WebhookClient(
            RetryPolicy(attempts=3, total_s=min(30.0, s.alert_interval_s), max_wait_s=5.0),
            metrics=self.am_metrics,
            user_agent="dlr-alerts/1",
        )
        self._queues = {e.url: asyncio.Queue[dict[str, Any]]() for e in self.endpoints}
        self._outcomes: dict[str, dict[str, str]] = {}
        self._outbox: deque[dict[str, Any]] = deque()
        self._resolved: list[dict[str, Any]] = []
        self._stop = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._producer: AIOKafkaProducer | None = None
        self._clickhouse: Any = None
        self.ready = asyncio.Event()
        self.evaluations = 0
        #: On stop, how long the background tasks get to finish (`_stop_tasks`).
        self.stop_timeout_s = 5.0

    def stop(self) -> None:
        """Finish the current evaluation and stop."""
        self._stop.set()

    # -- start ----------------------------------------------------------------------------

    async def restore(self) -> None:
        """Rebuild the firing alerts from the topic; re-deliver unfinished notifications."""
        latest = await read_latest(self.settings, self._producer)
        firing = self.tracker.restore(latest)
        again = [r for r in latest.values() if not r.get("delivered") and self.endpoints]
        for rec in sorted(again, key=lambda r: str(r["at"])):
            self._notify(rec)
        log.info(
            "alert state restored",
            extra={"fingerprints": len(latest), "firing": firing, "redelivering": len(again)},
        )

    async def run(self) -> None:
        """Run until stop()."""
        s = self.settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap,
            acks="all",
            enable_idempotence=False,
            request_timeout_ms=10000,
        )
        await self._producer.start()
        await self.client.start()
        await self.am_client.start()
        tasks = [
            # named by position: an endpoint's URL may hold its secret (Slack's do)
            asyncio.create_task(self._deliver_loop(e), name=f"deliver to endpoint {i}")
            for i, e in enumerate(self.endpoints)
        ]
        tasks.append(asyncio.create_task(self._history_loop(), name="alert history"))
        try:
            await self.restore()
            self.ready.set()
            async with httpx.AsyncClient() as http:
                while not self._stop.is_set():
                    started = time.monotonic()
                    try:
                        await self.evaluate(http, time.time())
                    except Exception:  # a bug must not stop the alerting: log, go on
                        log.exception("evaluation failed")
                        self.metrics.evaluations.labels("error").inc()
                    wait = max(0.0, s.alert_interval_s - (time.monotonic() - started))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), wait)
            await self._drain()
        finally:
            await _stop_tasks(tasks, self.stop_timeout_s)
            await self._producer.stop()
            await self.client.close()
            await self.am_client.close()

    async def _drain(self, timeout_s: float = 10.0) -> None:
        """On stop: give queued notifications and records a moment to go out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and (
            any(not q.empty() for q in self._queues.values()) or self._outcomes or self._outbox
        ):
            await self._flush()
            await asyncio.sleep(0.1)

    # -- evaluate ---------------------------------------------------------------------------

    def _client(self) -> Any:
        if self._clickhouse is None:
            from sinks.clickhouse.client import connect

            self._clickhouse = connect(self.settings, send_receive_timeout=60)
        return self._clickhouse

    async def evaluate(self, http: httpx.AsyncClient, now: float) -> list[dict[str, Any]]:
        """One evaluation; returns the records it made."""
        s, m = self.settings, self.metrics
        started = time.perf_counter()
        observations: list[Observation] = []
        baselines = self.tracker.baselines()
        clickhouse_ok = True
        try:
            windows = await asyncio.to_thread(business.fetch, self._client(), s, now)
            observations.extend(business.observe(windows, s, baselines))
        except Exception as exc:  # any ClickHouse failure: the rules are not evaluated
            clickhouse_ok = False
            self._clickhouse = None
            m.source_errors.labels("clickhouse").inc()
            log.warning("clickhouse rules not evaluated", extra={"error": str(exc)[:300]})
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
        observations.append(
            Observation(
                "clickhouse_unavailable",
                {},
                0.0 if clickhouse_ok else 1.0,
                1.0,
                not clickhouse_ok,
                "ClickHouse answers the alert queries"
                if clickhouse_ok
                else f"The alert rules cannot read ClickHouse: {error}",
                clear=clickhouse_ok,
            )
        )
        await self.scraper.scrape(http, now)
        for job, kept in self.scraper.history.items():
            if kept and kept[-1].samples is None:
                m.source_errors.labels(job).inc()
        health = health_observations(self.scraper.history, s)

        def evaluated(rule: str, labels: Mapping[str, str]) -> bool:
            spec = RULES[rule]
            if rule == "clickhouse_unavailable":
                return True
            if spec.source == "clickhouse":
                return clickhouse_ok
            return health.evaluated(rule, labels)

        records = self.tracker.step(now, [*observations, *health.observations], evaluated)
        for rec in records:
            self._record(rec)
            self._notify(rec)
            if rec["status"] == "resolved":
                self._resolved.append(rec)
        await self._flush()
        self._gauges()
        await self._push_alertmanager(now)
        self.evaluations += 1
        ok = clickhouse_ok and not any(
            k and k[-1].samples is None for k in self.scraper.history.values()
        )
        m.evaluations.labels("ok" if ok else "partial").inc()
        m.evaluation_seconds.observe(time.perf_counter() - started)
        for rec in records:
            log.info(
                f"alert {rec['status']}: {rec['summary']}",
                extra={"rule": rec["rule"], "fingerprint": rec["fingerprint"]},
            )
        return records

    def _gauges(self) -> None:
        counts: dict[tuple[str, str], int] = {
            (name, spec.severity): 0 for name, spec in RULES.items()
        }
        for active in self.tracker.firing.values():
            spec = RULES[active.rule]
            counts[(active.rule, spec.severity)] += 1
        for (rule, severity), count in counts.items():
            self.metrics.firing.labels(rule, severity).set(count)

    # -- record -----------------------------------------------------------------------------

    def _record(self, rec: dict[str, Any]) -> None:
        self._outbox.append(rec)
        self.metrics.records.labels(rec["status"]).inc()
        self.metrics.unrecorded.set(len(self._outbox))

    async def _flush(self) -> None:
        """Produce the waiting records in order; stop at the first Kafka failure."""
        producer = self._producer
        if producer is None:
            return
        async with self._flushing:  # one flush at a time keeps the records in order
            await self._flush_locked(producer)

    async def _flush_locked(self, producer: AIOKafkaProducer) -> None:
        while self._outbox:
            rec = self._outbox[0]
            try:
                await asyncio.wait_for(
                    producer.send_and_wait(
                        self.settings.alerts_topic, value=orjson.dumps(rec), key=_key(rec)
                    ),
                    timeout=15,
                )
            except (KafkaError, TimeoutError) as exc:
                log.warning("alert record not acknowledged yet", extra={"error": str(exc)[:200]})
                break
            self._outbox.popleft()
        self.metrics.unrecorded.set(len(self._outbox))

    # -- notify ------------------------------------------------------------------------------

    def _notify(self, rec: dict[str, Any]) -> None:
        if not self.endpoints:
            return
        self._outcomes[str(rec["id"])] = {}
        for endpoint in self.endpoints:
            self._queues[endpoint.url].put_nowait(rec)

    async def _deliver_loop(self, endpoint: Endpoint) -> None:
        """One endpoint's notifications, in order."""
        queue = self._queues[endpoint.url]
        while True:
            rec = await queue.get()
            body = orjson.dumps(
                {
                    "type": f"alert.{rec['status']}",
                    "timestamp": rec["at"],
                    "data": {k: v for k, v in rec.items() if k not in ("delivered", "delivery")},
                }
            )
            outcome = await self.client.deliver(endpoint, str(rec["id"]), body, "alert")
            self.metrics.notifications.labels(outcome.outcome).inc()
            if not outcome.delivered:
                log.error(
                    "alert notification failed",
                    extra={
                        "id": rec["id"],
                        "endpoint": endpoint.name,
                        "status": outcome.status,
                        "error": outcome.error,
                    },
                )
            done = self._outcomes.setdefault(str(rec["id"]), {})
            done[endpoint.name] = outcome.outcome
            if len(done) == len(self.endpoints):
                del self._outcomes[str(rec["id"])]
                self._record({**rec, "delivered": True, "delivery": done})
                await self._flush()

    async def _push_alertmanager(self, now: float) -> None:
        if self.am_endpoint is None:
            self._resolved.clear()
            return
        active = [f.as_record("firing", now) for f in self.tracker.firing.values()]
        alerts = alertmanager_alerts(
            [*active, *self._resolved], 3 * max(self.settings.alert_interval_s, 60.0), now
        )
        self._resolved.clear()
        if not alerts:
            return
        endpoint = self.am_endpoint

        async def push() -> None:
            outcome = await self.am_client.deliver(
                endpoint, f"push-{now:.0f}", orjson.dumps(alerts), "alertmanager push"
            )
            self.metrics.alertmanager.labels(outcome.outcome).inc()
            if not outcome.delivered:
                log.warning("alertmanager push failed", extra={"error": outcome.error})

        task = asyncio.create_task(push())
        task.add_done_callback(lambda t: None)

    # -- history -----------------------------------------------------------------------------

    async def _history_loop(self) -> None:
        """Copy the topic into ClickHouse (at least once; the table collapses repeats)."""
        s = self.settings
        attempt = 0
        exists = f"EXISTS TABLE {check_identifier(s.clickhouse_database)}.alerts"
        while True:  # the sink (or `dlr migrate`) applies ddl/0012 with the real TTLs
            try:
                if int(await asyncio.to_thread(self._client().command, exists)):
                    break
                why = "table alerts missing (ddl/0012: `dlr migrate` or the sink applies it)"
            except Exception as exc:
                self._clickhouse = None
                why = str(exc)[:200]
            attempt += 1
            log.warning("alert history waits for ClickHouse", extra={"error": why})
            await asyncio.sleep(min(30.0, 0.5 * 2**attempt))
        consumer = _history_consumer(s)
        await consumer.start()
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=500)
                rows = []
                for records in batch.values():
                    for rec in records:
                        try:
                            rows.append(history_row(orjson.loads(rec.value or b"")))
                        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                            log.warning("alert record not stored", extra={"offset": rec.offset})
                if rows:
                    await self._insert(rows)
                if batch:
                    await consumer.commit()
        finally:
            await consumer.stop()

    async def _insert(self, rows: list[list[Any]]) -> None:
        attempt = 0
        while True:
            try:
                await asyncio.to_thread(
                    self._client().insert,
                    "alerts",
                    rows,
                    database=self.settings.clickhouse_database,
                    column_names=list(HISTORY_COLUMNS),
                )
                self.metrics.history_rows.inc(len(rows))
                return
            except Exception as exc:
                attempt += 1
                self._clickhouse = None
                log.warning("alert history insert failed", extra={"error": str(exc)[:200]})
                await asyncio.sleep(min(30.0, 0.5 * 2**attempt))


def _history_consumer(
    s: AlertSettings, kind: type[AIOKafkaConsumer] = AIOKafkaConsumer
) -> AIOKafkaConsumer:
    """The alert history's consumer of the alerts topic (its own group, committed by hand)."""
    return kind(
        s.alerts_topic,
        bootstrap_servers=s.bootstrap,
        group_id=f"{s.alert_group}-history",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def _stop_tasks(tasks: list[asyncio.Task[None]], timeout_s: float) -> None:
    """Cancel the background tasks and wait for them, within about `timeout_s`: a task's
    `finally` closes an aiokafka consumer, whose `stop()` once never returned in the API
    (the same wait there hung a shutdown in CI), and a process told to stop must stop. A
    task still running then is cancelled again (interrupting that `stop()`) and abandoned,
    with a warning."""
    for task in tasks:
        task.cancel()
    _, pending = await asyncio.wait(tasks, timeout=timeout_s)
    if pending:
        log.warning(
            "alerts: background tasks did not stop in time; abandoned",
            extra={"tasks": sorted(t.get_name() for t in pending), "timeout_s": timeout_s},
        )
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=1.0)


async def main_async(settings: AlertSettings) -> None:
    """Run the evaluator with its HTTP endpoints until SIGINT/SIGTERM."""
    service = AlertService(settings)
    # httpx logs every request at INFO: a line per target per evaluation says nothing
    logging.getLogger("httpx").setLevel(logging.WARNING)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, service.stop)
    runner = await serve_metrics(
        service.metrics.registry,
        settings.alert_metrics_host,
        settings.alert_metrics_port,
        service.am_metrics.registry,
    )
    log.info(
        "evaluating alerts",
        extra={
            "interval_s": settings.alert_interval_s,
            "window_s": settings.alert_window_s,
            "endpoints": [e.name for e in service.endpoints] or "none (recorded, not sent)",
            "targets": sorted(settings.targets),
        },
    )
    try:
        await service.run()
    finally:
        await runner.cleanup()
