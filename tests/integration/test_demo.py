"""`dlr demo` against the real pipeline, and the analysts' report equals its ground truth."""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from deploy.demo import _run
from schemas.lifecycle import ATTEMPTS
from sinks.clickhouse import billing, insights
from sinks.clickhouse.client import connect
from sinks.clickhouse.cluster import ClusterSpec
from sinks.clickhouse.report import report
from tests.pipeline import Pipeline

pytestmark = pytest.mark.integration


PIPELINE_STARTED = True


def test_demo_checks_clickhouse_and_the_report_equals_its_truth(
    pipeline: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth_file = tmp_path / "truth.jsonl"
    code = _run(
        pipeline.settings,
        pipeline.base_url,
        messages=400,
        seed=5,
        truth=truth_file,
        concurrency=16,
        timeout=180,
        connect=connect,
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "OK: ClickHouse equals the simulated truth" in out
    truths = [json.loads(line) for line in truth_file.read_text().splitlines()]
    assert len(truths) == 400
    assert {"message_id", "provider", "final_state", "carrier", "country", "campaign"} <= set(
        truths[0]
    )

    check_report(connect(pipeline.settings), pipeline.settings.clickhouse_database, truths)


def check_report(
    client: Any, db: str, truths: list[dict[str, str]], cluster: ClusterSpec | None = None
) -> None:
    """The delivery report per dimension equals what the demo's truth file says."""
    attempt_states = {str(s) for s in ATTEMPTS}
    for by in ("carrier", "country", "campaign", "provider"):
        rows = {r[by]: r for r in report(client, db, by, since_s=24 * 3600, cluster=cluster)}
        attempts = Counter(t[by] for t in truths if t["final_state"] in attempt_states)
        delivered = Counter(t[by] for t in truths if t["final_state"] == "delivered")
        messages = Counter(t[by] for t in truths)
        assert set(rows) == set(messages), by
        for group, row in rows.items():
            assert row["messages"] == messages[group], (by, group)
            assert row["attempts"] == attempts[group], (by, group)
            assert row["delivered"] == delivered[group], (by, group)
            assert row["delivery_rate"] == pytest.approx(delivered[group] / attempts[group])
        rates = [
            r["delivery_rate"] for r in report(client, db, by, since_s=24 * 3600, cluster=cluster)
        ]
        assert rates == sorted(rates), "worst first"


def test_demo_with_every_providers_wire_format(
    pipeline: Pipeline, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--providers all`: each provider's signed format to real ranges; the worker derives
    carrier (with its evidence), country and region, and the demo checks them all (and the
    price, currency and segments each receipt stated). Then every figure of the cost,
    compare, filtering and billing reports equals what the truth file adds up to."""
    truth_file = tmp_path / "truth.jsonl"
    code = _run(
        pipeline.settings,
        pipeline.base_url,
        messages=800,
        seed=11,
        truth=truth_file,
        concurrency=16,
        timeout=180,
        connect=connect,
        providers="all",
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "OK: ClickHouse equals the simulated truth" in out
    truths = [json.loads(line) for line in truth_file.read_text().splitlines()]
    assert {"carrier", "carrier_source", "country", "region"} <= set(truths[0])
    assert len({t["provider"] for t in truths}) >= 10
    assert len({t["country"] for t in truths}) == 8
    assert {t["carrier_source"] for t in truths} == {"provider", "mcc_mnc", "number_range", "none"}

    client = connect(pipeline.settings)
    db = pipeline.settings.clickhouse_database
    rows = report(client, db, "country,carrier", since_s=24 * 3600)
    ids = tuple(t["message_id"] for t in truths)
    assert {(r["country"], r["carrier"]): r["messages"] for r in rows} == Counter(
        (t["country"], t["carrier"]) for t in truths
    )
    sources = client.query(
        f"SELECT carrier_source, count() FROM {db}.message_status WHERE message_id IN %(ids)s"
        " GROUP BY carrier_source",
        parameters={"ids": ids},
    ).result_rows
    assert {str(s): int(n) for s, n in sources} == Counter(t["carrier_source"] for t in truths)

    check_cost(client, db, truths)
    check_compare(client, db, truths)
    check_filtering(client, db, truths)
    check_billing(client, db, truths)


DAY = 24 * 3600
FAILURES = {"undelivered", "failed", "rejected", "expired"}


def _currency(truth: dict[str, Any], currencies: dict[str, str]) -> str | None:
    if truth["price"] is None:
        return None
    return truth["currency"] or currencies.get(truth["provider"]) or insights.UNSTATED


def check_cost(client: Any, db: str, truths: list[dict[str, Any]]) -> None:
    """Spend per provider and currency: Vonage's prices (no currency on its receipts) are
    `unstated` until DLR_PRICE_CURRENCIES names EUR; Twilio, Sinch, Bird and Bandwidth
    state none (a None row, price share 0); no row ever mixes currencies."""
    for mapped in ({}, {"vonage": "EUR"}):
        rows = insights.cost(client, db, "provider", DAY, currencies=mapped)
        got = {(r["provider"], r["currency"]): r for r in rows}
        want: dict[tuple[str, str | None], list[dict[str, Any]]] = defaultdict(list)
        for t in truths:
            want[t["provider"], _currency(t, mapped)].append(t)
        assert got.keys() == want.keys()
        for key, group in want.items():
            row = got[key]
            delivered = [t for t in group if t["final_state"] == "delivered"]
            assert row["messages"] == len(group), key
            assert row["delivered"] == len(delivered), key
            assert row["not_delivered"] == sum(t["final_state"] in FAILURES for t in group)
            assert row["segments_reported"] == sum(t["segments"] is not None for t in group)
            if key[1] is None:
                assert row["spend"] is None and row["price_share"] == 0, key
                continue
            assert row["price_share"] == 1.0, key  # a provider states a price always or never
            spend = sum(t["price"] for t in group)
            assert row["spend"] == pytest.approx(spend), key
            assert row["spend_not_delivered"] == pytest.approx(
                sum(t["price"] for t in group if t["final_state"] in FAILURES)
            )
            assert row["cost_per_delivered"] == pytest.approx(spend / len(delivered)), key
    currencies = {r["currency"] for r in insights.cost(client, db, "country", DAY)}
    assert {"USD", "EUR", "GBP", insights.UNSTATED, None} <= currencies


def _quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (quantilesExactInclusive)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(sorted(values), n=100, method="inclusive")[round(q * 100) - 1]


def check_compare(client: Any, db: str, truths: list[dict[str, Any]]) -> None:
    """Per country and provider: attempts, delivered, the Wilson interval, p50/p95 time to
    deliver where the receipts state their times, cost per delivered message, and the one
    provider marked best (infobip in NG at this seed: 98 % against 55 % and 40 %)."""
    attempt_states = {str(s) for s in ATTEMPTS}
    rows = insights.compare(client, db, "country", DAY)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for t in truths:
        groups[t["country"], t["provider"]].append(t)
    got = {(r["country"], r["provider"]): r for r in rows}
    assert got.keys() == {
        k for k, g in groups.items() if any(t["final_state"] in attempt_states for t in g)
    }
    for key, row in got.items():
        group = groups[key]
        attempts = sum(t["final_state"] in attempt_states for t in group)
        delivered = [t for t in group if t["final_state"] == "delivered"]
        assert (row["attempts"], row["delivered"]) == (attempts, len(delivered)), key
        assert (row["rate_low"], row["rate_high"]) == insights.wilson(len(delivered), attempts)
        stated = [t["ttd_s"] for t in delivered if t["ttd_s"] is not None]
        if stated and len(stated) == len(delivered):
            assert row["ttd_p50_s"] == pytest.approx(_quantile(stated, 0.5), abs=1e-6), key
            assert row["ttd_p95_s"] == pytest.approx(_quantile(stated, 0.95), abs=1e-6), key
        priced = [t for t in group if t["price"] is not None]
        if priced and any(t["final_state"] == "delivered" for t in priced):
            currency = _currency(priced[0], {})
            spend = sum(t["price"] for t in priced)
            won = sum(t["final_state"] == "delivered" for t in priced)
            assert row["cost_per_delivered"] == pytest.approx({currency: spend / won}), key
        else:
            assert row["cost_per_delivered"] == {}, key
    by_country: dict[str, dict[str, Any]] = defaultdict(dict)
    for (country, provider), row in got.items():
        by_country[country][provider] = (row["rate_low"], row["rate_high"])
    best = {c: insights.best_provider(spans) for c, spans in by_country.items()}
    assert {(r["country"], r["provider"]) for r in rows if r["best"]} == {
        (c, p) for c, p in best.items() if p
    }
    assert best["NG"] == "infobip" and None in best.values()  # seed 11: one clear winner


def check_filtering(client: Any, db: str, truths: list[dict[str, Any]]) -> None:
    """promo-spring filtered on AT&T and blocked on Airtel (traffic.CONTENT_FILTERING)."""
    attempt_states = {str(s) for s in ATTEMPTS}
    rows = insights.filtering(client, db, "campaign,carrier", DAY)
    got = {(r["campaign"], r["carrier"]): r for r in rows}
    groups: dict[tuple[str, str | None], list[dict[str, Any]]] = defaultdict(list)
    for t in truths:
        if t["final_state"] in attempt_states:
            groups[t["campaign"], t["carrier"]].append(t)
    assert got.keys() == groups.keys(), set(got) ^ set(groups)
    for key, group in groups.items():
        row = got[key]
        reasons = Counter(t["failure_reason"] for t in group)
        assert row["attempts"] == len(group), key
        assert row["carrier_filtered"] == reasons["carrier_filtered"], key
        assert row["blocked_content"] == reasons["blocked_content"], key
        assert row["previous_attempts"] == 0 and row["change"] is None and not row["rising"]
    # the template filtered on AT&T (sns, generic carry the campaign) stands out
    shares = {k: r["share"] for k, r in got.items() if r["attempts"] >= 5}
    att = ("promo-spring", "AT&T Mobility")
    assert att in shares and shares[att] == max(shares.values())


def check_billing(client: Any, db: str, truths: list[dict[str, Any]]) -> None:
    """Plivo's days and countries (the send day its receipts state), then a usage export
    made from the provider's own prices agrees, and one with a day off does not."""
    plivo = [t for t in truths if t["provider"] == "plivo"]

    def key(t: dict[str, Any]) -> tuple[Any, str, str]:
        return datetime.fromtimestamp(t["sent_at"], UTC).date(), t["country"], "USD"

    want: dict[tuple[Any, str, str], Counter[str]] = defaultdict(Counter)
    spend: dict[tuple[Any, str, str], float] = defaultdict(float)
    billed: dict[tuple[Any, str, str], float] = defaultdict(float)
    for t in plivo:
        want[key(t)]["messages"] += 1
        want[key(t)]["delivered"] += t["final_state"] == "delivered"
        want[key(t)]["segments"] += t["segments"]
        spend[key(t)] += t["price"]
        billed[key(t)] += t["billed_price"]
    days = [day for day, _, _ in want]
    start = datetime.combine(min(days), time(), UTC)
    end = datetime.combine(max(days) + timedelta(days=1), time(), UTC)
    rows = billing.export(client, db, "plivo", start, end)
    got = {(r["date"], r["country"], r["currency"]): r for r in rows}
    assert got.keys() == want.keys()
    for k, counts in want.items():
        assert {name: got[k][name] for name in counts} == dict(counts), k
        assert got[k]["spend"] == pytest.approx(spend[k]), k
    lines = [
        f"{day},{country},{c['messages']},{c['segments']},{billed[day, country, cur]:.5f}"
        for (day, country, cur), c in sorted(want.items())
    ]
    header = "date,country,messages,segments,amount\n"
    invoice = billing.parse_invoice(header + "\n".join(lines), currency="USD")
    assert billing.reconcile("plivo", rows, invoice).differences == []
    day, country, messages, *rest = lines[0].split(",")
    lines[0] = ",".join([day, country, str(int(messages) + 3), *rest])
    off = billing.parse_invoice(header + "\n".join(lines), currency="USD")
    result = billing.reconcile("plivo", rows, off)
    assert [(str(d.date), d.country, d.field) for d in result.differences] == [
        (day, country, "messages")
    ]
