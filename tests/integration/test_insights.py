"""Cost, providers compared, content filtering and billing against a real ClickHouse.

Known messages (`Spec`) go through the sink's own path (`EventWriter` -> `events` ->
`messages` -> `message_status` -> `status_snapshot`), each as a `sent` report and
(usually) a final one, a batch written twice; every expected figure is computed here from
the specs, never by the code under test.

    destination  provider  messages            price per message      delivered
    DE           plivo     20 (+1 still sent)   0.05 USD, 1-2 segments 18 (2 undelivered)
    DE           vonage    10                   0.04, no currency      6 (4 rejected)
    DE           infobip   10                   0.06 EUR               10
    DE           twilio    10                   none, no segments      9 (1 expired)
    GB           telnyx    100                  0.01 USD               95
    GB           sinch     100                  none                   50
Content filtering (campaign promo on carrier Xcell): 1 of 20 filtered the day before,
8 of 20 now (5 carrier_filtered, 3 blocked_content); campaign otp 1 of 30 both days.
"""

from __future__ import annotations

import csv
import io
import statistics
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from deploy.billing_cli import run_compare, run_export
from deploy.report_cli import run_report
from deploy.settings import Settings
from schemas.events import CanonicalEvent
from schemas.lifecycle import FailureReason, State
from sinks.clickhouse import billing, insights
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.writer import EventWriter
from tests.sinks.clickhouse.test_rows import wire

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
H = timedelta(hours=1)
DAY = 24 * 3600
FAILED = {"undelivered", "failed", "rejected", "expired"}


@dataclass(frozen=True)
class Spec:
    """One message: where, through whom, how it ended, what its receipts said it cost."""

    provider: str
    country: str
    final: State | None  # None: still sent
    age: timedelta  # first event before NOW
    ttd_s: float = 5.0
    price: float | None = None
    currency: str | None = None
    segments: int | None = None
    reason: FailureReason | None = None
    campaign: str = "otp"
    carrier: str = "Xcell"
    sender: str = "ACME"


def events(spec: Spec, index: int) -> list[CanonicalEvent]:
    """A sent report and the final one (provider timestamps: the time to deliver is exact)."""
    pmid = f"m{index}-{uuid.uuid4().hex[:8]}"
    start = NOW - spec.age
    steps: list[tuple[State, datetime]] = [(State.SENT, start)]
    if spec.final is not None:
        steps.append((spec.final, start + timedelta(seconds=spec.ttd_s)))
    out = []
    previous: State | None = None
    for state, at in steps:
        out.append(
            CanonicalEvent(
                event_id=uuid.uuid4().hex,
                message_id=f"{spec.provider}:{pmid}",
                provider=spec.provider,
                provider_message_id=pmid,
                state=state,
                current_state=state,
                previous_state=previous,
                transition="advanced",
                is_final=state is not State.SENT,
                failure_reason=spec.reason if state is spec.final else None,
                provider_status=str(state),
                provider_error_code=None,
                provider_error_text=None,
                mapped=True,
                recipient="+4915112345678",
                sender=spec.sender,
                carrier=spec.carrier,
                mcc=None,
                mnc=None,
                country=spec.country,
                region=None,
                campaign=spec.campaign,
                tenant=None,
                client_ref=None,
                segments=spec.segments,
                price=spec.price,
                currency=spec.currency,
                sequence=None,
                provider_timestamp=at,
                received_at=at,
                emitted_at=at + timedelta(milliseconds=3),
                raw_sha256="0" * 64,
            )
        )
        previous = state
    return out


def specs() -> list[Spec]:
    out: list[Spec] = []
    d, u, r, x = State.DELIVERED, State.UNDELIVERED, State.REJECTED, State.EXPIRED
    for i in range(20):
        out.append(
            Spec("plivo", "DE", d if i < 18 else u, (2 + i % 5) * H, ttd_s=1 + i, price=0.05,
                 currency="USD", segments=1 + i % 2,
                 reason=FailureReason.UNREACHABLE if i >= 18 else None)
        )  # fmt: skip
    out.append(Spec("plivo", "DE", None, 3 * H, price=0.05, currency="USD", segments=1))
    for i in range(10):
        out.append(Spec("vonage", "DE", d if i < 6 else r, 4 * H, ttd_s=2 + i, price=0.04))
    for _ in range(10):
        out.append(Spec("infobip", "DE", d, 5 * H, ttd_s=3, price=0.06, currency="EUR",
                        segments=1))  # fmt: skip
    for i in range(10):
        out.append(Spec("twilio", "DE", d if i else x, 6 * H, ttd_s=4 + i))
    for i in range(100):
        out.append(Spec("telnyx", "GB", d if i < 95 else u, 7 * H, ttd_s=1 + i % 10, price=0.01,
                        currency="USD", segments=1))  # fmt: skip
        out.append(Spec("sinch", "GB", d if i < 50 else u, 8 * H, ttd_s=20))
    # content filtering: promo on Xcell jumps from 1/20 to 8/20; otp stays at 1/30
    cf, bc = FailureReason.CARRIER_FILTERED, FailureReason.BLOCKED_CONTENT
    for i in range(20):
        reason = cf if i < 5 else bc if i < 8 else None
        out.append(Spec("bird", "FR", r if reason else d, 9 * H, reason=reason, campaign="promo",
                        sender="PROMO"))  # fmt: skip
        out.append(Spec("bird", "FR", r if i == 0 else d, 30 * H, reason=cf if i == 0 else None,
                        campaign="promo", sender="PROMO"))  # fmt: skip
    for i in range(30):
        for age in (10 * H, 31 * H):
            out.append(Spec("bird", "FR", r if i == 0 else d, age, reason=cf if i == 0 else None,
                            campaign="otp", carrier="Ycell"))  # fmt: skip
    return out


SPECS = specs()
CURRENT = [s for s in SPECS if s.age < 24 * H]


@pytest.fixture(scope="module")
def settings(clickhouse_url: str) -> Iterator[Settings]:
    """A migrated random database holding SPECS; dropped afterwards."""
    s = Settings(
        clickhouse_url=clickhouse_url,
        clickhouse_database=f"dlr_i_{uuid.uuid4().hex[:10]}",
        price_currencies={},
    )
    client = connect(s)
    try:
        migrate(client, s.clickhouse_database)
        writer = EventWriter(client, s.clickhouse_database, pii_mode="hash", salt="test")
        batch = [e for i, spec in enumerate(SPECS) for e in events(spec, i)]
        assert writer.write(wire(*batch)) == len(batch)
        writer.write(wire(*batch[:100]))  # a batch retried: counted once
        yield s
    finally:
        client.command(f"DROP DATABASE IF EXISTS {s.clickhouse_database}")
        client.close()


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[Any]:
    connection = connect(settings)
    yield connection
    connection.close()


def _currency(spec: Spec, currencies: dict[str, str]) -> str | None:
    if spec.price is None:
        return None
    return spec.currency or currencies.get(spec.provider) or insights.UNSTATED


@pytest.mark.parametrize("mapped", [{}, {"vonage": "EUR"}], ids=["unstated", "vonage-eur"])
def test_cost_per_group_and_currency_equals_the_specs(
    client: Any, settings: Settings, mapped: dict[str, str]
) -> None:
    db = settings.clickhouse_database
    for by in ("provider", "country"):
        rows = insights.cost(client, db, by, DAY, NOW, currencies=mapped)
        got = {(r[by], r["currency"]): r for r in rows}
        want: dict[tuple[str, str | None], list[Spec]] = defaultdict(list)
        for spec in CURRENT:
            want[getattr(spec, by), _currency(spec, mapped)].append(spec)
        assert got.keys() == want.keys(), by
        for key, group in want.items():
            row, priced = got[key], key[1] is not None
            delivered = [s for s in group if s.final is State.DELIVERED]
            everyone = [s for s in CURRENT if getattr(s, by) == key[0]]
            assert row["messages"] == len(group)
            assert row["delivered"] == len(delivered)
            assert row["not_delivered"] == sum(1 for s in group if str(s.final) in FAILED)
            assert row["segments"] == (sum(s.segments or 0 for s in group) or None)
            assert row["segments_reported"] == sum(1 for s in group if s.segments is not None)
            assert row["price_share"] == pytest.approx(
                sum(1 for s in everyone if s.price is not None) / len(everyone)
            )
            if not priced:  # no price: said so, never a zero
                assert row["spend"] is None and row["cost_per_delivered"] is None
                continue
            spend = sum(s.price or 0 for s in group)
            assert row["spend"] == pytest.approx(spend)
            assert row["spend_delivered"] == pytest.approx(sum(s.price or 0 for s in delivered))
            assert row["spend_not_delivered"] == pytest.approx(
                sum(s.price or 0 for s in group if str(s.final) in FAILED)
            )
            assert row["spend_pending"] == pytest.approx(
                sum(s.price or 0 for s in group if s.final is None)
            )
            assert row["cost_per_delivered"] == pytest.approx(spend / len(delivered))
    # currencies never mix: DE holds three, each on its own row
    de = {
        r["currency"]
        for r in insights.cost(client, db, "country", DAY, NOW)
        if r["country"] == "DE"
    }
    assert de == {"USD", "EUR", insights.UNSTATED, None}


def test_a_rate_table_adds_one_converted_row_per_group(client: Any, settings: Settings) -> None:
    db = settings.clickhouse_database
    rates = insights.parse_rates("EUR,1.1\n", "USD")
    rows = insights.cost(client, db, "country", DAY, NOW, currencies={"vonage": "EUR"}, rates=rates)
    (total,) = [r for r in rows if r["converted"] and r["country"] == "DE"]
    de = [s for s in CURRENT if s.country == "DE" and s.price is not None]
    value = {"USD": 1.0, "EUR": 1.1}
    spend = sum((s.price or 0) * value[s.currency or "EUR"] for s in de)
    delivered = sum(1 for s in de if s.final is State.DELIVERED)
    assert total["currency"] == "USD" and total["missing_rates"] == []
    assert total["spend"] == pytest.approx(spend)
    assert total["cost_per_delivered"] == pytest.approx(spend / delivered)
    assert rows.index(total) == max(i for i, r in enumerate(rows) if r["country"] == "DE")
    # without a currency for Vonage's prices there is nothing honest to convert
    unconverted = insights.cost(client, db, "country", DAY, NOW, rates=rates)
    (total,) = [r for r in unconverted if r["converted"] and r["country"] == "DE"]
    assert total["spend"] is None and total["missing_rates"] == [insights.UNSTATED]


def _quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (quantilesExactInclusive)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return cuts[round(q * 100) - 1]


def test_providers_compared_per_destination(client: Any, settings: Settings) -> None:
    db = settings.clickhouse_database
    rows = insights.compare(client, db, "country", DAY, NOW)
    got = {(r["country"], r["provider"]): r for r in rows}
    groups: dict[tuple[str, str], list[Spec]] = defaultdict(list)
    for spec in CURRENT:
        groups[spec.country, spec.provider].append(spec)
    assert got.keys() == {k for k, g in groups.items() if any(s.final for s in g)}
    for key, row in got.items():
        group = groups[key]
        attempts = [s for s in group if s.final is not None]
        delivered = [s for s in group if s.final is State.DELIVERED]
        assert (row["attempts"], row["delivered"]) == (len(attempts), len(delivered))
        assert (row["rate_low"], row["rate_high"]) == insights.wilson(len(delivered), len(attempts))
        ttd = [s.ttd_s for s in delivered]
        assert row["ttd_p50_s"] == pytest.approx(_quantile(ttd, 0.5))
        assert row["ttd_p95_s"] == pytest.approx(_quantile(ttd, 0.95))
        priced = [s for s in group if s.price is not None]
        costs = {
            (s.currency or insights.UNSTATED): sum(p.price or 0 for p in priced)
            / sum(1 for p in priced if p.final is State.DELIVERED)
            for s in priced
        }
        assert row["cost_per_delivered"] == pytest.approx(costs)
    # GB: telnyx 95/100 (89-98 %) against sinch 50/100 (40-60 %): telnyx is best.
    # DE: infobip 10/10 (72-100 %) overlaps plivo 18/20 and twilio 9/10: no recommendation.
    assert {(r["country"], r["provider"]) for r in rows if r["best"]} == {("GB", "telnyx")}
    de = [r["provider"] for r in rows if r["country"] == "DE"]
    assert de[0] == "infobip" and de == sorted(de, key=lambda p: -got["DE", p]["delivery_rate"])


def test_content_filtering_against_the_previous_window(client: Any, settings: Settings) -> None:
    db = settings.clickhouse_database
    rows = insights.filtering(client, db, "campaign,carrier", DAY, NOW)
    got = {(r["campaign"], r["carrier"]): r for r in rows}
    promo = got["promo", "Xcell"]
    assert (promo["attempts"], promo["carrier_filtered"], promo["blocked_content"]) == (20, 5, 3)
    assert promo["share"] == pytest.approx(8 / 20)
    assert (promo["previous_attempts"], promo["previous_filtered"]) == (20, 1)
    assert promo["change"] == pytest.approx(8 / 20 - 1 / 20)
    assert promo["rising"] and rows[0] is promo  # the one that started being filtered first
    otp = got["otp", "Ycell"]
    assert (otp["attempts"], otp["filtered"], otp["previous_filtered"]) == (30, 1, 1)
    assert not otp["rising"] and otp["change"] == pytest.approx(0.0)
    # per sender id, the same jump
    senders = {r["sender"]: r for r in insights.filtering(client, db, "sender", DAY, NOW)}
    assert senders["PROMO"]["filtered"] == 8 and senders["PROMO"]["rising"]
    # not enough filtered messages: no flag
    strict = insights.filtering(client, db, "campaign,carrier", DAY, NOW, min_count=9)
    assert not any(r["rising"] for r in strict)


def _expected_export(provider: str) -> dict[tuple[date, str, str], dict[str, float]]:
    out: dict[tuple[date, str, str], dict[str, float]] = defaultdict(Counter)  # type: ignore[arg-type]
    for spec in SPECS:
        if spec.provider != provider:
            continue
        key = ((NOW - spec.age).date(), spec.country, _currency(spec, {}) or "")
        row = out[key]
        row["messages"] += 1
        row["delivered"] += spec.final is State.DELIVERED
        row["segments"] += spec.segments or 0
        row["priced"] += spec.price is not None
        row["spend"] += spec.price or 0
    return out


def test_billing_export_and_reconciliation(client: Any, settings: Settings) -> None:
    db = settings.clickhouse_database
    start, end = NOW - 3 * 24 * H, NOW + H
    rows = billing.export(client, db, "plivo", start, end)
    got = {(r["date"], r["country"], r["currency"]): r for r in rows}
    want = _expected_export("plivo")
    assert got.keys() == want.keys()
    for key, row in want.items():
        for name, value in row.items():
            assert got[key][name] == pytest.approx(value), (key, name)
    # the provider's usage export: one day off by two messages and 0.10 USD
    invoice_lines = ["date,country,messages,segments,amount,currency"]
    for (day, country, _), row in sorted(want.items()):
        extra = 2 if day == NOW.date() else 0
        invoice_lines.append(
            f"{day},{country},{int(row['messages']) + extra},{int(row['segments']) + extra},"
            f"{row['spend'] + 0.05 * extra:.4f},USD"
        )
    invoice = billing.parse_invoice("\n".join(invoice_lines))
    result = billing.reconcile("plivo", rows, invoice)
    assert {(d.date, d.field) for d in result.differences} == (
        {(NOW.date(), f) for f in ("messages", "segments", "amount")}
        if NOW.date() in {k[0] for k in want}
        else set()
    )
    assert not result.skipped
    # twilio reports no prices: amounts are not compared, messages are
    twilio = billing.export(client, db, "twilio", start, end)
    days = billing.parse_invoice(
        "date,country,messages,amount\n"
        + "\n".join(f"{r['date']},{r['country']},{r['messages']},1.00" for r in twilio),
        currency="USD",
    )
    checked = billing.reconcile("twilio", twilio, days)
    assert checked.differences == [] and "amount" in checked.skipped


def test_the_cli_prints_every_format_and_checks_its_arguments(
    settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def run(**kwargs: Any) -> tuple[int, str, str]:
        options: dict[str, Any] = {"since": "24h", "fmt": "table", "now": NOW, **kwargs}
        status = run_report(settings, **options)
        out = capsys.readouterr()
        return status, out.out, out.err

    status, text, _ = run(kind="cost", by="provider")
    assert status == 0 and "(no price)" in text and "unstated" in text and "not reported" in text
    status, text, _ = run(kind="cost", by="country", fmt="csv")
    lines = list(csv.DictReader(io.StringIO(text)))
    assert {(r["country"], r["currency"]) for r in lines} >= {("DE", "USD"), ("DE", "EUR")}
    rates = tmp_path / "rates.json"
    rates.write_text('{"EUR": 1.1}')
    status, text, _ = run(kind="cost", by="country", fmt="json", rates=str(rates), to="USD")
    assert status == 0 and any(r["converted"] for r in orjson.loads(text))
    status, text, _ = run(kind="compare", by="country")
    assert status == 0 and "BEST" in text and "95% interval" in text
    status, text, _ = run(kind="filtering", by="campaign,carrier")
    assert status == 0 and "RISING" in text.splitlines()[4]  # title, blank, header, rule
    for bad in (
        {"kind": "compare", "by": "provider"},
        {"kind": "cost", "by": "provider", "rates": str(rates)},  # no --to
        {"kind": "cost", "by": "provider", "rates": str(tmp_path / "none"), "to": "USD"},
    ):
        status, _, err = run(**bad)
        assert status == 2 and err.startswith("dlr report:"), bad

    out = tmp_path / "plivo.csv"
    month = (NOW - 2 * H).strftime("%Y-%m")
    assert run_export(settings, provider="plivo", month=month, out=out, stdout=io.StringIO()) == 0
    exported = list(csv.DictReader(out.read_text().splitlines()))
    assert exported and {r["currency"] for r in exported} == {"USD"}
    invoice = tmp_path / "usage.csv"
    invoice.write_text(
        "date,country,messages,amount\n"
        + "\n".join(f"{r['date']},{r['country']},{r['messages']},{r['spend']}" for r in exported)
    )
    args: dict[str, Any] = {"provider": "plivo", "tolerance": billing.Tolerance(), "fmt": "table"}
    buffer = io.StringIO()
    assert run_compare(settings, invoice=invoice, currency="USD", stdout=buffer, **args) == 0
    assert "0 figures differ" in buffer.getvalue()
    first = exported[0]
    invoice.write_text(f"date,country,messages\n{first['date']},{first['country']},999\n")
    buffer = io.StringIO()
    assert run_compare(settings, invoice=invoice, currency="USD", stdout=buffer, **args) == 1
    assert "999" in buffer.getvalue()
    invoice.write_text("date,messages\n2026-11-01,3\n")
    assert run_compare(settings, invoice=invoice, currency=None, stdout=io.StringIO(), **args) == 2


def test_the_dashboard_serves_the_same_comparison_and_spend(
    client: Any, settings: Settings
) -> None:
    """`/api/v1/compare` and `/api/v1/cost` of the built-in dashboard, against the specs
    (the page reads the snapshot as it is: brought up to date first, as its minute would)."""
    from starlette.testclient import TestClient

    from ingress.dashboard.app import Reports, create_app
    from ingress.dashboard.settings import DashboardSettings
    from sinks.clickhouse.report import refresh

    refresh(client, settings.clickhouse_database)
    board = DashboardSettings(
        clickhouse_url=settings.clickhouse_url,
        clickhouse_database=settings.clickhouse_database,
        price_currencies={"vonage": "EUR"},
    )
    app = create_app(board, reports=Reports(compare=insights.compare, cost=insights.cost))
    with TestClient(app) as http:
        answer = http.get("/api/v1/compare", params={"window": DAY, "by": "country"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["by"] == ["country"] and body["window_s"] == DAY
        got = {(r["country"], r["provider"]): r for r in body["rows"]}
        groups: dict[tuple[str, str], list[Spec]] = defaultdict(list)
        for spec in CURRENT:
            groups[spec.country, spec.provider].append(spec)
        assert got.keys() == {k for k, g in groups.items() if any(s.final for s in g)}
        for key, row in got.items():
            attempts = [s for s in groups[key] if s.final is not None]
            delivered = [s for s in attempts if s.final is State.DELIVERED]
            assert (row["attempts"], row["delivered"]) == (len(attempts), len(delivered))
            low, high = insights.wilson(len(delivered), len(attempts)) or (None, None)
            assert row["rate_low"] == pytest.approx(low) and row["rate_high"] == pytest.approx(high)
        assert {k for k, r in got.items() if r["best"]} == {("GB", "telnyx")}
        # Vonage's prices are EUR here (DLR_PRICE_CURRENCIES): 0.04 x 10 over 6 delivered
        assert got["DE", "vonage"]["cost_per_delivered"] == pytest.approx({"EUR": 0.4 / 6})
        pair = http.get("/api/v1/compare", params={"window": DAY, "by": "country,carrier"})
        assert pair.json()["by"] == ["country", "carrier"]
        assert {(r["country"], r["carrier"]) for r in pair.json()["rows"]} >= {("GB", "Xcell")}

        cost = http.get("/api/v1/cost", params={"window": DAY}).json()
        assert cost["by"] == "provider"
        rows = {(r["provider"], r["currency"]): r for r in cost["rows"]}
        want: dict[tuple[str, str | None], list[Spec]] = defaultdict(list)
        for spec in CURRENT:
            want[spec.provider, _currency(spec, {"vonage": "EUR"})].append(spec)
        assert rows.keys() == want.keys()
        for key, group in want.items():
            assert rows[key]["messages"] == len(group)
            if key[1] is None:  # not priced: said so, never a zero
                assert rows[key]["spend"] is None and rows[key]["price_share"] == 0
            else:
                assert rows[key]["spend"] == pytest.approx(sum(s.price or 0 for s in group))
