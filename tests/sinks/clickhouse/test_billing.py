"""Billing reconciliation without a server: months, the usage exports we accept, and what
counts as a difference."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from sinks.clickhouse import billing

D1, D2, D3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)


def ours(day: date, country: str, currency: str = "USD", **figures: Any) -> dict[str, Any]:
    """One export row; unnamed figures are those of 10 priced one-segment messages."""
    row: dict[str, Any] = {
        "date": day,
        "country": country,
        "currency": currency,
        "messages": 10,
        "delivered": 9,
        "not_delivered": 1,
        "unreported": 0,
        "segments": 10,
        "segments_reported": 10,
        "priced": 10,
        "spend": 0.5,
    }
    row.update(figures)
    return row


def test_months_are_calendar_months_in_utc() -> None:
    assert billing.month_bounds("2026-11") == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
    )
    assert billing.month_bounds("2026-12")[1] == datetime(2027, 1, 1, tzinfo=UTC)
    for bad in ("2026-13", "2026-00", "26-11", "2026/11", "november"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            billing.month_bounds(bad)


def test_a_simple_usage_export_with_aliases_and_repeated_lines() -> None:
    text = (
        "\ufeffUsage Date,Destination,Count,Units,Cost,Price Unit\n"
        "2026-11-01,de,10,12,0.50,usd\n"
        "2026-11-01,DE,5,5,0.25,USD\n"
        "2026-11-02T00:00:00Z,GB,1,1,0.04,USD\n"
        "\n"
    )
    invoice = billing.parse_invoice(text)
    assert invoice.currency == "USD"
    assert invoice.fields == {"messages", "segments", "amount"}
    assert invoice.lines == {
        (D1, "DE"): billing.InvoiceLine(15, 17, pytest.approx(0.75)),  # type: ignore[arg-type]
        (D2, "GB"): billing.InvoiceLine(1, 1, 0.04),
    }


def test_the_currency_comes_from_the_file_or_the_caller() -> None:
    assert billing.parse_invoice("date,country,amount\n2026-11-01,DE,1\n").currency is None
    given = billing.parse_invoice("date,country,amount\n2026-11-01,DE,1\n", currency="eur")
    assert given.currency == "EUR"
    stated = billing.parse_invoice(
        "date,country,amount,currency\n2026-11-01,DE,1,GBP\n", currency="EUR"
    )
    assert stated.currency == "GBP"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("day,messages\n2026-11-01,3\n", "no country", id="no-country"),
        pytest.param("date,country\n2026-11-01,DE\n", "none of messages", id="no-figures"),
        pytest.param("date,country,messages\n01/11/2026,DE,3\n", "line 2: date", id="date"),
        pytest.param("date,country,messages\n2026-11-01,DEU,3\n", "line 2: country", id="iso3"),
        pytest.param("date,country,messages\n2026-11-01,DE,x\n", "line 2: messages", id="count"),
        pytest.param("date,country,messages\n2026-11-01,DE,2.5\n", "whole number", id="half"),
        pytest.param("date,country,amount\n2026-11-01,DE,$3\n", "line 2: amount", id="amount"),
        pytest.param("date,country,amount\n2026-11-01,DE,nan\n", "line 2: amount", id="nan"),
        pytest.param("date,country,messages\n2026-11-01,DE\n", "line 2: 2 cells", id="short"),
        pytest.param(
            "date,country,amount,currency\n2026-11-01,DE,1,USD\n2026-11-02,DE,1,EUR\n",
            "more than one currency",
            id="currencies",
        ),
    ],
)
def test_unreadable_usage_exports_are_refused_precisely(text: str, message: str) -> None:
    with pytest.raises(billing.InvoiceError, match=message):
        billing.parse_invoice(text)


def test_what_differs_beyond_the_tolerance_is_listed_per_day_and_country() -> None:
    invoice = billing.parse_invoice(
        "date,country,messages,segments,amount,currency\n"
        "2026-11-01,DE,10,10,0.50,USD\n"  # agrees
        "2026-11-01,GB,10,10,0.505,USD\n"  # amount within 0.01
        "2026-11-02,DE,12,12,0.60,USD\n"  # two messages more than ours
        "2026-11-03,FR,3,3,0.15,USD\n"  # we have nothing
    )
    mine = [
        ours(D1, "DE"),
        ours(D1, "GB"),
        ours(D2, "DE"),
        ours(D2, "DE", currency="", priced=0, spend=0.0, messages=0, segments=0),
        ours(D3, "ZA", messages=4, segments=4, segments_reported=4, priced=4, spend=0.2),
        ours(date(2026, 10, 31), "DE"),  # before the invoice's first day: not compared
    ]
    result = billing.reconcile("plivo", mine, invoice)
    found = {(d.date, d.country, d.field): (d.ours, d.theirs) for d in result.differences}
    assert found == {
        (D2, "DE", "messages"): (10, 12),
        (D2, "DE", "segments"): (10, 12),
        (D2, "DE", "amount"): (0.5, 0.6),
        (D3, "FR", "messages"): (0, 3),
        (D3, "FR", "segments"): (0, 3),
        (D3, "FR", "amount"): (0, 0.15),
        (D3, "ZA", "messages"): (4, 0),
        (D3, "ZA", "segments"): (4, 0),
        (D3, "ZA", "amount"): (0.2, 0),
    }
    assert (result.first, result.last, result.compared) == (D1, D3, 5)
    assert result.totals["messages"] == (34, 35)
    fr = next(d for d in result.differences if d.country == "FR")
    assert fr.note == "no messages of ours" and fr.relative == -1.0
    loose = billing.reconcile("plivo", mine, invoice, billing.Tolerance(relative=0.2))
    assert {(d.date, d.country) for d in loose.differences} == {(D3, "FR"), (D3, "ZA")}


def test_a_provider_without_prices_or_segments_is_not_compared_on_them() -> None:
    invoice = billing.parse_invoice(
        "date,country,messages,segments,amount\n2026-11-01,US,10,10,0.079\n", currency="USD"
    )
    unpriced = [ours(D1, "US", currency="", priced=0, spend=0.0, segments=0, segments_reported=0)]
    result = billing.reconcile("twilio", unpriced, invoice)
    assert result.differences == []
    assert set(result.skipped) == {"segments", "amount"}
    assert "no prices" in result.skipped["amount"]
    assert result.totals == {"messages": (10, 10)}


def test_prices_in_another_currency_are_never_compared_with_the_invoices() -> None:
    invoice = billing.parse_invoice("date,country,amount\n2026-11-01,DE,0.5\n", currency="USD")
    in_euro = [ours(D1, "DE", currency="EUR")]
    result = billing.reconcile("infobip", in_euro, invoice)
    assert result.differences == []
    assert "EUR 0.5" in result.skipped["amount"]
    assert result.other_currencies == {"EUR": 0.5}


def test_partly_priced_days_say_how_many_messages_stated_a_price() -> None:
    invoice = billing.parse_invoice("date,country,amount\n2026-11-01,DE,1.0\n", currency="USD")
    partly = [
        ours(D1, "DE", messages=7, priced=7, spend=0.7),
        ours(D1, "DE", currency="", messages=3, priced=0, spend=0.0),
    ]
    (difference,) = billing.reconcile("vonage", partly, invoice).differences
    assert difference.note == "7 of 10 reported a price"


@pytest.mark.parametrize(
    ("name", "ours_value", "theirs", "agrees"),
    [
        ("messages", 100, 100, True),
        ("messages", 100, 102, False),  # counts: no absolute slack by default
        ("messages", 1000, 1009, True),  # 1 % of the larger figure
        ("messages", 1000, 1011, False),
        ("amount", 0.0, 0.01, True),  # amounts: one cent
        ("amount", 0.0, 0.02, False),
        ("amount", 100.0, 100.9, True),
    ],
)
def test_tolerance(name: str, ours_value: float, theirs: float, agrees: bool) -> None:
    assert billing.Tolerance().allows(name, ours_value, theirs) is agrees


def test_the_export_is_csv_with_exact_amounts() -> None:
    rows = [ours(D1, "DE", spend=0.1 + 0.2), ours(D1, "GB", currency="", priced=0, spend=0.0)]
    lines = billing.export_csv(rows).splitlines()
    assert lines[0] == ",".join(billing.EXPORT_COLUMNS)
    assert lines[1] == "2026-11-01,DE,USD,10,9,1,0,10,10,10,0.3"
    assert lines[2].startswith("2026-11-01,GB,,10,") and lines[2].endswith(",0,0")
