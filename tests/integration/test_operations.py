"""The operations side end to end, on one live demo run through the real pipeline.

`dlr demo` sends live traffic (Germany's three carriers, 80 messages/s) through the real
ingress, worker and sink; 10 s in, Vodafone's delivery rate falls from ~96 % to 50 % for
14 s. `dlr alerts` runs with 4 s windows evaluated every 0.5 s. Then, on the data the run
left in ClickHouse:

- exactly one alert fires, naming Vodafone in Germany, soon after the incident began;
  the healthy carriers raise none; it reaches the webhook receiver signed (Standard
  Webhooks), is on `dlr.alerts.v1` and in the ClickHouse history; a restart of `dlr
  alerts` while it fires sends nothing again; it resolves after the incident ends; once
  the demo's traffic stops, the only other alerts are the providers' silences (a failure
  run of about a minute: `make test-heavy`);
- every panel of the Grafana dashboards runs against ClickHouse (macros substituted)
  and returns rows with the columns the panel reads;
- the built-in dashboard loads in headless Chromium without console errors and shows
  the numbers ClickHouse holds; a screenshot is written to `.data/`.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from sinks.alerts.service import read_latest
from sinks.alerts.tracker import parse_time
from sinks.clickhouse.report import refresh
from tests.conftest import ROOT, WEBHOOK_SECRET
from tests.pipeline import Pipeline
from tests.polling import wait_for

pytestmark = pytest.mark.integration

INTERVAL_S = 0.5
WINDOW_S = 6
RATE = 80
AFTER_S, DURATION_S, TAIL_S = 10.0, 14.0, 7.0
PROVIDERS = "vonage,plivo,infobip,standard"  # they send the MCC/MNC: one name per network
INCIDENT = f"carrier=de-vodafone,delivery=0.5,after={AFTER_S:g},duration={DURATION_S:g}"


class Run:
    """The module's pipeline, its demo run and what the receiver got."""

    def __init__(self, pipeline: Pipeline, receiver: Any, path: str) -> None:
        self.pipeline = pipeline
        self.receiver = receiver
        self.path = path
        self.demo: subprocess.Popen[str] | None = None
        self.started = 0.0
        self.log = pipeline.logs / "demo.log"

    @property
    def output(self) -> str:
        """What the demo printed so far."""
        return self.log.read_text() if self.log.exists() else ""

    def wait_demo(self) -> None:
        """The demo's end (it checks ClickHouse against its truth)."""
        assert self.demo is not None
        self.demo.wait(timeout=150)
        assert self.demo.returncode == 0, self.output[-3000:]

    def deliveries(self) -> dict[str, dict[str, Any]]:
        stats: dict[str, dict[str, Any]] = self.receiver.stats(self.path)
        return stats

    def start_demo(self) -> None:
        messages = int(RATE * (AFTER_S + DURATION_S + TAIL_S))
        self.demo = subprocess.Popen(
            [
                sys.executable, "-m", "deploy.cli", "demo",
                "--providers", PROVIDERS, "--countries", "DE",
                "--messages", str(messages), "--rate", str(RATE), "--speed", "20",
                "--concurrency", "64",
                "--seed", "12", "--incident", INCIDENT, "--timeout", "120",
            ],
            cwd=ROOT,
            env=self.pipeline.env(),
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        self.started = time.time()


@pytest.fixture(scope="module")
def run(
    kafka_bootstrap: str,
    clickhouse_url: str,
    receiver: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Run]:
    """The pipeline with `dlr alerts` and `dlr dashboard`, and a live demo run started."""
    import uuid

    unique = uuid.uuid4().hex[:10]
    path = f"/ok/{unique}"
    pipeline = Pipeline(
        kafka_bootstrap,
        clickhouse_url,
        tmp_path_factory.mktemp("ops"),
        unique,
        DLR_ALERT_INTERVAL_S=str(INTERVAL_S),
        DLR_ALERT_WINDOW_S=str(WINDOW_S),
        DLR_ALERT_FOR_S="0",
        DLR_ALERT_MIN_ATTEMPTS="40",
        DLR_ALERT_WEBHOOK_URLS=f"{receiver.base_url}{path}",
        DLR_ALERT_SIGNING_SECRETS=WEBHOOK_SECRET,
        DLR_ALERT_METRICS_WINDOW_S="5",
        DLR_LOG_LEVEL="INFO",
    )
    pipeline.watch("ingress", "worker", "sink")
    result = Run(pipeline, receiver, path)
    try:
        pipeline.start("ingress", "worker", "sink")
        pipeline.start("alerts", "dashboard")  # with for=0, only once the others are up
        result.start_demo()
        yield result
    finally:
        if result.demo is not None and result.demo.poll() is None:
            result.demo.kill()
            result.demo.wait(10)
        pipeline.stop()


def _firing(run: Run) -> dict[str, dict[str, Any]]:
    return {i: s for i, s in run.deliveries().items() if s["body"]["data"]["status"] == "firing"}


def _others(run: Run, fingerprint: str) -> list[dict[str, Any]]:
    """What the receiver got about other alerts than this one."""
    return [
        s["body"]["data"]
        for s in run.deliveries().values()
        if s["body"]["data"]["fingerprint"] != fingerprint
    ]


@pytest.mark.heavy  # ~60 s with the demo run: a failure run (make test-heavy)
def test_one_alert_names_the_failing_carrier_survives_a_restart_and_resolves(run: Run) -> None:
    pipeline = run.pipeline
    incident_at = run.started + AFTER_S
    try:
        firing = wait_for(
            lambda: _firing(run),
            timeout=AFTER_S + DURATION_S + 30,
            what="a firing alert at the receiver",
            interval=0.1,
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\ndemo:\n{run.output[-3000:]}") from None
    assert len(firing) == 1, [
        (s["body"]["data"]["rule"], s["body"]["data"]["summary"]) for s in firing.values()
    ]
    (alert_id, seen), *_ = firing.items()
    alert = seen["body"]["data"]
    assert alert["rule"] == "delivery_rate_drop", alert["summary"]
    assert alert["rule"] == "delivery_rate_drop"
    assert alert["labels"] == {"country": "DE", "carrier": "Vodafone"}, alert
    assert alert["severity"] == "page" and alert["runbook"].startswith("deploy/README.md#")
    assert alert["value"] < alert["threshold"] < alert["baseline"]
    assert "Vodafone" in alert["summary"]
    assert seen["body"]["type"] == "alert.firing" and alert["id"] == alert_id
    fired_at = seen["delivered_at"]

    # restart `dlr alerts` while the alert fires: nothing is sent again
    pipeline.kill("alerts", signal.SIGTERM)
    pipeline.procs["alerts"] = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "alerts"],
        cwd=ROOT,
        env=pipeline.env(),
        stdout=(pipeline.logs / "alerts.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pipeline.wait_healthy("alerts", 30)
    metrics = f"http://127.0.0.1:{pipeline.settings.alert_metrics_port}/metrics"

    def evaluations() -> float:
        for line in httpx.get(metrics, timeout=2).text.splitlines():
            if line.startswith("dlr_alerts_evaluations_total"):
                return float(line.split()[-1])
        return 0.0

    wait_for(evaluations, lambda n: n >= 3, timeout=20, what="3 evaluations after the restart")
    after = run.deliveries()
    assert after[alert_id]["duplicates"] == 0, "the restart re-sent the firing alert"
    # nothing else fired; on a slow machine the incident may be over by now and the
    # restored alert resolved (which only a restored state can do: checked below)
    assert {s["body"]["data"]["status"] for i, s in after.items() if i != alert_id} <= {
        "resolved"
    }, "the restart raised something"
    if len(after) == 1:
        firing_now = [
            line for line in httpx.get(metrics, timeout=2).text.splitlines()
            if line.startswith('dlr_alerts_firing{rule="delivery_rate_drop"')
        ]  # fmt: skip
        assert firing_now and firing_now[0].endswith(" 1.0"), "restored as firing"

    # the incident ends; the alert resolves, once
    done = wait_for(
        lambda: [
            s
            for s in run.deliveries().values()
            if s["body"]["data"]["fingerprint"] == alert["fingerprint"]
            and s["body"]["data"]["status"] == "resolved"
        ],
        timeout=DURATION_S + TAIL_S + 20,
        what="the resolved notification",
        interval=0.2,
    )
    assert len(done) == 1, done
    resolved = done[0]["body"]["data"]
    # sent by the restarted process, about the alert the first one raised: restored state
    assert resolved["starts_at"] == alert["starts_at"] and resolved["ends_at"]
    assert done[0]["delivered_at"] > incident_at + DURATION_S
    others = _others(run, alert["fingerprint"])
    assert all(a["rule"] == "receipts_silent" for a in others), "a healthy carrier raised one"

    # the demo's own check: ClickHouse equals its truth
    assert run.demo is not None
    run.wait_demo()
    assert "incident: carrier=de-vodafone at 50% delivery" in run.output
    quiet_from = evaluations()
    wait_for(evaluations, lambda n: n >= quiet_from + 4, timeout=20, what="4 more evaluations")
    # the traffic stopped: each provider's silence may fire, and only after its last receipt
    client = pipeline.clickhouse()
    db = pipeline.settings.clickhouse_database
    last = dict(
        client.query(
            f"SELECT provider, toUnixTimestamp64Milli(max(first_event_at)) / 1000"
            f" FROM {db}.message_status GROUP BY provider"
        ).result_rows
    )
    for other in _others(run, alert["fingerprint"]):
        assert other["rule"] == "receipts_silent", other
        assert set(other["labels"]) == {"provider"}, other  # not one per carrier
        assert parse_time(other["starts_at"]) > last[other["labels"]["provider"]], other

    # the topic's latest record of the alert says resolved, delivered
    latest = asyncio.run(read_latest(pipeline.settings))
    assert {r["rule"] for r in latest.values()} <= {"delivery_rate_drop", "receipts_silent"}
    record = latest[alert["fingerprint"]]
    assert record["status"] == "resolved" and record["delivered"] is True
    assert set(record["delivery"].values()) == {"delivered"}

    # it fired within two evaluations of the drop being visible in ClickHouse: replay the
    # rule on what ClickHouse held at each moment (rows by their insert time; a message is
    # an attempt once its final report was inserted; windows end at the watermark, the
    # latest receipt inserted), find when the pair first breached, compare
    assert fired_at > incident_at, "fired before the incident"
    breached = _replay_breach(client, db, incident_at, fired_at)
    assert breached is not None, "the replayed rule never breached before the alert fired"
    # "two evaluations": an evaluation cycle is the interval plus the evaluation itself
    # (its queries and scrapes take a while on a loaded machine: the evaluator's own
    # histogram says how long), then the webhook's way to the receiver
    totals = {
        line.split()[0]: float(line.split()[-1])
        for line in httpx.get(metrics, timeout=2).text.splitlines()
        if line.startswith(
            ("dlr_alerts_evaluation_seconds_sum", "dlr_alerts_evaluation_seconds_count")
        )
    }
    took = (
        totals["dlr_alerts_evaluation_seconds_sum"] / totals["dlr_alerts_evaluation_seconds_count"]
    )
    latency = fired_at - breached
    bound = 2 * (INTERVAL_S + took) + 2.0
    assert latency <= bound, f"fired {latency:.1f}s after the drop was visible (> {bound:.1f}s)"

    # and the ClickHouse history holds both changes
    rows = wait_for(
        lambda: (
            client.query(
                f"SELECT status, delivered FROM {db}.alerts FINAL WHERE fingerprint = %(f)s"
                " ORDER BY at",
                parameters={"f": alert["fingerprint"]},
            ).result_rows
        ),
        lambda r: len(r) == 2 and all(d == 1 for _, d in r),
        timeout=20,
        what="both records in the history",
    )
    assert [s for s, _ in rows] == ["firing", "resolved"]


def _replay_breach(client: Any, db: str, since: float, until: float) -> float | None:
    """When Vodafone's rate in Germany first breached the drop rule as `dlr alerts` would
    have seen ClickHouse (see the caller), between `since` and `until`; None: never."""
    rows = client.query(
        f"SELECT toUnixTimestamp64Milli(received_at) / 1000, toUnixTimestamp64Milli(inserted_at)"
        f" / 1000 FROM {db}.events"
    ).result_rows
    arrivals = sorted((float(ins), float(rec)) for rec, ins in rows)
    messages = client.query(
        f"SELECT toUnixTimestamp64Milli(min(received_at)) / 1000,"
        f" toUnixTimestamp64Milli(minIf(inserted_at, is_final)) / 1000,"
        f" argMinIf(state, inserted_at, is_final) = 'delivered'"
        f" FROM {db}.events WHERE carrier = 'Vodafone' AND country = 'DE'"
        f" GROUP BY message_id HAVING countIf(is_final) > 0"
    ).result_rows
    inserted = [ins for ins, _ in arrivals]
    reach = list(itertools.accumulate((rec for _, rec in arrivals), max))  # watermark so far
    least, drop = 40, 0.10
    t = since
    while t <= until:
        known = bisect.bisect_right(inserted, t)
        end = min(t, reach[known - 1] + 0.001) if known else t
        cur = [d for first, final, d in messages if end - WINDOW_S <= first < end and final <= t]
        prev = [
            d
            for first, final, d in messages
            if end - 2 * WINDOW_S <= first < end - WINDOW_S and final <= t
        ]
        if (
            len(cur) >= least
            and len(prev) >= least
            and sum(cur) / len(cur) < sum(prev) / len(prev) * (1 - drop)
        ):
            return t
        t += 0.1
    return None


def _demo_finished(run: Run) -> None:
    """The data the other tests read is complete (the first test waited for the demo)."""
    if run.demo is not None and run.demo.poll() is None:
        run.wait_demo()
    assert run.demo is not None and run.demo.returncode == 0, run.output[-2000:]
    refresh(run.pipeline.clickhouse(), run.pipeline.settings.clickhouse_database)


def test_every_grafana_panel_query_returns_the_columns_it_reads(run: Run) -> None:
    from tests.deploy.grafana_panels import clickhouse_panels, render

    _demo_finished(run)
    client = run.pipeline.clickhouse()
    db = run.pipeline.settings.clickhouse_database
    panels = clickhouse_panels()
    assert len(panels) >= 8
    now = time.time()
    for panel in panels:
        sql = render(panel.sql, db=db, start=now - 1800, end=now + 60)
        result = client.query(sql)
        columns = set(result.column_names)
        assert result.result_rows, f"{panel.title}: no rows\n{sql}"
        assert panel.columns <= columns, f"{panel.title}: {panel.columns - columns} missing"


def test_the_dashboard_page_shows_what_clickhouse_holds(run: Run) -> None:
    from tests.ingress.dashboard.browser import Browser

    _demo_finished(run)
    pipeline = run.pipeline
    client = pipeline.clickhouse()
    db = pipeline.settings.clickhouse_database
    messages, attempts, delivered = client.query(
        f"SELECT count(), countIf(is_attempt), countIf(current_state = 'delivered')"
        f" FROM {db}.status_snapshot WHERE first_event_at >= now() - INTERVAL 3600 SECOND"
    ).result_rows[0]
    assert messages >= RATE * (AFTER_S + DURATION_S)
    base = f"http://127.0.0.1:{pipeline.settings.dashboard_port}"
    shot = ROOT / ".data" / "dashboard.png"
    with Browser() as browser:
        browser.open(f"{base}/")
        values = browser.tiles(("messages", "attempts", "delivered", "rate", "alert-count"))
        assert values["messages"] == str(messages)
        assert values["attempts"] == str(attempts)
        assert values["delivered"] == str(delivered)
        assert float(values["rate"]) == pytest.approx(delivered / attempts)
        assert browser.rows("worst") and browser.rows("health")
        assert any("Vodafone" in row for row in browser.rows("worst"))
        assert any("delivery_rate_drop" in row for row in browser.rows("recent"))
        # providers compared per destination (all DE here), attempts as ClickHouse counts
        # them, and their spend: one row per provider and currency
        sent = client.query(
            f"SELECT toString(provider), countIf(is_attempt) FROM {db}.status_snapshot"
            " WHERE first_event_at >= now() - INTERVAL 3600 SECOND GROUP BY 1"
        ).result_rows
        compared = [row.split() for row in browser.rows("compare")]
        assert all(cells[0] == "DE" for cells in compared), compared
        assert {c[1]: c[2] for c in compared} == {p: f"{n:,}" for p, n in sent if n}
        assert {row.split()[0] for row in browser.rows("cost")} == {p for p, _ in sent}
        browser.select("compare-by", "country,carrier")
        assert browser.wait_text("compare", "DE / ")
        browser.select("by", "country")
        assert browser.wait_text("worst", "DE")
        browser.screenshot(shot)
        assert browser.errors() == []
    assert shot.stat().st_size > 10_000
    os.chmod(shot, 0o644)


def test_alert_records_are_on_the_compacted_topic_with_their_key(run: Run) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    settings = run.pipeline.settings

    async def config() -> dict[str, str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
        await admin.start()
        try:
            resource = ConfigResource(ConfigResourceType.TOPIC, settings.alerts_topic)
            described = await admin.describe_configs([resource])
            entries = described[0].resources[0][4]
            return {str(e[0]): str(e[1]) for e in entries}
        finally:
            await admin.close()

    async def records() -> list[tuple[bytes | None, dict[str, Any]]]:
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap)
        await producer.start()
        try:
            partitions = await producer.partitions_for(settings.alerts_topic)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap, group_id=None, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            tps = [TopicPartition(settings.alerts_topic, p) for p in partitions]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            for tp, first in (await consumer.beginning_offsets(tps)).items():
                consumer.seek(tp, first)
            out = []
            while any([await consumer.position(tp) < end for tp, end in ends.items()]):
                for batch in (await consumer.getmany(timeout_ms=1000)).values():
                    out += [(r.key, orjson.loads(r.value or b"")) for r in batch]
            return out
        finally:
            await consumer.stop()

    assert asyncio.run(config())["cleanup.policy"] == "compact"
    seen = asyncio.run(records())
    drops = [v for _, v in seen if v["rule"] == "delivery_rate_drop"]
    # each change twice: when it happened, and with its webhook outcome once delivered
    assert [(v["status"], v.get("delivered", False)) for v in drops] == [
        ("firing", False),
        ("firing", True),
        ("resolved", False),
        ("resolved", True),
    ]
    for key, value in seen:
        assert key == value["fingerprint"].encode(), value
        assert {"fingerprint", "rule", "status", "labels", "value", "threshold"} <= set(value)
        assert {"starts_at", "ends_at", "summary"} <= set(value)
