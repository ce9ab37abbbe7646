"""`dlr report --by` with the enrichment's dimensions and pairs, on a real ClickHouse.

Vodafone in two countries, window [now - 24h, now) against the 24 h before:

    country carrier   now: attempts delivered rate   before: attempts delivered rate
    GB      Vodafone       40       38        95 %           40       38        95 %
    DE      Vodafone       10        7        70 %           10        9        90 %   DROP
    all     Vodafone       50       45        90 %           50       47        94 %   (-4 %)

The carrier alone does not fall by 10 %; the pair (DE, Vodafone) does. GB's carrier comes
from the MCC/MNC, DE's from the provider; two more GB messages were stored before the
enrichment existed (no carrier_source: 'unrecorded').
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import orjson
import pytest

from deploy.settings import Settings
from schemas.events import CanonicalEvent
from schemas.lifecycle import FailureReason, State
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.writer import EventWriter
from tests.integration.test_report_cli import H, S, delivered, failed
from tests.integration.test_report_cli import run as run_report_cli
from tests.sinks.clickhouse.test_rows import wire

pytestmark = pytest.mark.integration

PLACES: dict[str, tuple[str, Any, Any, str | None]] = {
    "GB": ("Northern Europe", "mcc_mnc", "mobile", None),
    "DE": ("Western Europe", "provider", "mobile", None),
    "US": ("Northern America", "number_range", "fixed_or_mobile", "San Francisco, CA"),
}


def placed(msgs: list[list[CanonicalEvent]], country: str) -> list[list[CanonicalEvent]]:
    region, source, line, area = PLACES[country]
    return [
        [
            replace(e, country=country, region=region, carrier_source=source, line_type=line,
                    area=area)
            for e in m
        ]
        for m in msgs
    ]  # fmt: skip


def window(offset: timedelta, gb_ok: int, gb_bad: int, de_ok: int, de_bad: int) -> list[Any]:
    def some(ok: int, bad: int, at: timedelta) -> list[list[CanonicalEvent]]:
        good = [delivered("Vodafone", at + i * S, 2 * S) for i in range(ok)]
        lost = [
            failed("Vodafone", at + H + i * S, State.UNDELIVERED, FailureReason.UNREACHABLE)
            for i in range(bad)
        ]
        return good + lost

    return placed(some(gb_ok, gb_bad, offset), "GB") + placed(some(de_ok, de_bad, offset), "DE")


@pytest.fixture(scope="module")
def settings(clickhouse_url: str) -> Iterator[Settings]:
    s = Settings(clickhouse_url=clickhouse_url, clickhouse_database=f"dlr_{uuid.uuid4().hex[:10]}")
    client = connect(s)
    try:
        migrate(client, s.clickhouse_database)
        msgs = window(2 * H, 38, 2, 7, 3) + window(30 * H, 38, 2, 9, 1)
        msgs += placed([delivered("Xcell", 5 * H + i * S, 4 * S) for i in range(3)], "US")
        old = [delivered("EE", 6 * H + i * S, 3 * S) for i in range(2)]  # before 0007
        records = wire(*(e for m in msgs + old for e in m))
        for record in records[-4:]:
            for name in ("carrier_source", "line_type", "area"):
                record.pop(name)
        writer = EventWriter(client, s.clickhouse_database, pii_mode="hash", salt="t")
        assert writer.write(records) == len(records)
        yield s
    finally:
        client.command(f"DROP DATABASE IF EXISTS {s.clickhouse_database}")
        client.close()


def run(settings: Settings, capsys: pytest.CaptureFixture[str], **kwargs: Any) -> str:
    return run_report_cli(settings, capsys, **kwargs)


def test_the_carrier_alone_does_not_drop_but_the_pair_does(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    alone = {r["carrier"]: r for r in orjson.loads(run(settings, capsys, fmt="json"))}
    vodafone = alone["Vodafone"]
    assert (vodafone["attempts"], vodafone["delivered"], vodafone["dropped"]) == (50, 45, False)
    assert vodafone["carrier_sources"] == {"mcc_mnc": 40, "provider": 10}
    assert alone["EE"]["carrier_sources"] == {"unrecorded": 2}
    pairs = orjson.loads(run(settings, capsys, fmt="json", by="country,carrier"))
    got = {(r["country"], r["carrier"]): r for r in pairs}
    assert set(got) == {("DE", "Vodafone"), ("GB", "Vodafone"), ("US", "Xcell"), ("GB", "EE")}
    de, gb = got["DE", "Vodafone"], got["GB", "Vodafone"]
    assert (de["attempts"], de["delivered"], de["previous_delivered"], de["dropped"]) == (
        10,
        7,
        9,
        True,
    )
    assert (gb["attempts"], gb["delivered"], gb["dropped"]) == (40, 38, False)
    assert (pairs[0]["country"], pairs[0]["carrier"]) == ("DE", "Vodafone")  # worst first


def test_pair_table_and_csv(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    lines = run(settings, capsys, by="country,carrier").splitlines()
    assert lines[0].startswith("delivery by country,carrier") and "1 flagged DROP" in lines[0]
    header = re.split(r"\s{2,}", lines[2])
    assert header[:3] == ["country", "carrier", "messages"]
    first = re.split(r"\s{2,}", lines[4])
    assert first[:2] == ["DE", "Vodafone"] and first[-1] == "DROP"
    rows = list(csv.DictReader(io.StringIO(run(settings, capsys, fmt="csv", by="region,carrier"))))
    by_pair = {(r["region"], r["carrier"]): r for r in rows}
    gb = by_pair["Northern Europe", "Vodafone"]
    assert (gb["carrier_source_mcc_mnc"], gb["carrier_source_provider"]) == ("40", "0")
    assert by_pair["Northern Europe", "EE"]["carrier_source_unrecorded"] == "2"


def test_enrichment_dimensions(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    def counts(by: str) -> dict[Any, int]:
        return {
            r[by]: r["messages"] for r in orjson.loads(run(settings, capsys, fmt="json", by=by))
        }

    assert counts("line_type") == {"mobile": 50, "fixed_or_mobile": 3, None: 2}
    assert counts("area") == {"San Francisco, CA": 3, None: 52}
    assert counts("carrier_source") == {"mcc_mnc": 40, "provider": 10, "number_range": 3, None: 2}
    hourly = orjson.loads(run(settings, capsys, fmt="json", kind="hourly", by="country,line_type"))
    assert sum(r["attempts"] for r in hourly if r["country"] == "DE") == 10
    assert {"hour", "country", "line_type"} <= set(hourly[0])
    spikes = orjson.loads(
        run(settings, capsys, fmt="json", kind="spikes", by="country,carrier", min_count=1)
    )
    assert [(r["country"], r["carrier"], r["reason"]) for r in spikes] == [
        ("DE", "Vodafone", "unreachable")
    ]


@pytest.mark.parametrize("by", ["carrier,carrier", "country,carrier,region", "msisdn"])
def test_bad_groupings_exit_2(
    settings: Settings, capsys: pytest.CaptureFixture[str], by: str
) -> None:
    from deploy.report_cli import run_report

    assert run_report(settings, by=by, since="24h", fmt="json") == 2
    assert "--by" in capsys.readouterr().err
