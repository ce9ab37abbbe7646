"""`dlr report` against a real ClickHouse: known events in, exact numbers out, every format.

The events go through the sink's own path (`EventWriter` -> `events` -> materialized views
-> `message_status` -> `status_snapshot`, refreshed on demand by the exact reports),
including a batch written twice and an event re-emitted in another batch, so nothing here
depends on how the report is computed, only on what it must say.

Window [now - 24h, now) and the previous one [now - 48h, now - 24h), by first event:

    carrier    now: msgs attempts delivered  rate   ttd (s)         before: attempts rate
    Silent          2     1        0         0 %    -                        0       -
    O2              5     4        2         50 %   10, 30                   4       100 %  DROP
    EE              5     5        4         80 %   2, 2, 2, 2               20      85 %
    Vodafone        10    10       9         90 %   1 .. 9                   10      90 %
    Three           -     -        -         -      -                        2       100 %

O2's delivered includes one message that was undelivered first (counted once, delivered);
EE's 5.9 % drop stays under the 10 % threshold; Three has no traffic now and is not listed.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from deploy.report_cli import parse_duration, run_report
from deploy.settings import Settings
from schemas.events import CanonicalEvent
from schemas.lifecycle import FailureReason, State, is_final
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrate import migrate
from sinks.clickhouse.writer import EventWriter
from tests.sinks.clickhouse.test_rows import wire

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
H = timedelta(hours=1)
S = timedelta(seconds=1)

Step = tuple[State, timedelta, FailureReason | None]


def message(
    carrier: str, first: timedelta, steps: list[Step], provider: str = "twilio"
) -> list[CanonicalEvent]:
    """Events of one message: each step advances it; `first` is its age at NOW."""
    pmid = uuid.uuid4().hex[:16]
    start = NOW - first
    events: list[CanonicalEvent] = []
    previous: State | None = None
    for state, offset, reason in steps:
        at = start + offset
        events.append(
            CanonicalEvent(
                event_id=uuid.uuid4().hex,
                message_id=f"{provider}:{pmid}",
                provider=provider,
                provider_message_id=pmid,
                state=state,
                current_state=state,
                previous_state=previous,
                transition="advanced",
                is_final=is_final(state),
                failure_reason=reason,
                provider_status=str(state),
                provider_error_code=None,
                provider_error_text=None,
                mapped=True,
                recipient="+447700900123",
                sender="ACME",
                carrier=carrier,
                mcc=None,
                mnc=None,
                country="GB",
                region="Northern Europe",
                campaign="otp",
                tenant=None,
                client_ref=None,
                segments=1,
                price=None,
                currency=None,
                sequence=None,
                provider_timestamp=None,
                received_at=at,
                emitted_at=at + timedelta(milliseconds=5),
                raw_sha256="0" * 64,
            )
        )
        previous = state
    return events


def delivered(carrier: str, first: timedelta, ttd: timedelta) -> list[CanonicalEvent]:
    return message(carrier, first, [(State.SENT, 0 * S, None), (State.DELIVERED, ttd, None)])


def failed(
    carrier: str, first: timedelta, state: State, reason: FailureReason | None
) -> list[CanonicalEvent]:
    return message(carrier, first, [(State.SENT, 0 * S, None), (state, 4 * S, reason)])


def sent_only(carrier: str, first: timedelta) -> list[CanonicalEvent]:
    return message(carrier, first, [(State.SENT, 0 * S, None)])


def current_window() -> list[list[CanonicalEvent]]:
    msgs: list[list[CanonicalEvent]] = []
    # Vodafone: 9 delivered (1 .. 9 s), 1 undelivered
    msgs += [delivered("Vodafone", 2 * H + i * 60 * S, (i + 1) * S) for i in range(9)]
    msgs.append(failed("Vodafone", 3 * H, State.UNDELIVERED, FailureReason.UNREACHABLE))
    # O2: undelivered then delivered (30 s), delivered (10 s), failed, expired, stuck in sent
    msgs.append(
        message(
            "O2",
            4 * H,
            [
                (State.SENT, 0 * S, None),
                (State.UNDELIVERED, 5 * S, FailureReason.UNREACHABLE),
                (State.DELIVERED, 30 * S, None),
            ],
        )
    )
    msgs.append(delivered("O2", 5 * H, 10 * S))
    msgs.append(failed("O2", 6 * H, State.FAILED, None))
    msgs.append(failed("O2", 7 * H, State.EXPIRED, FailureReason.EXPIRED))
    msgs.append(sent_only("O2", 10 * H))
    # EE: 4 delivered (2 s), 1 rejected without a reason (default carrier_filtered)
    msgs += [delivered("EE", 8 * H + i * S, 2 * S) for i in range(4)]
    msgs.append(failed("EE", 9 * H, State.REJECTED, None))
    # Silent: nothing delivered, one still sent, one expired
    msgs.append(sent_only("Silent", 3 * H))
    msgs.append(
        failed("Silent", 5 * H, State.EXPIRED, FailureReason.EXPIRED),
    )
    return msgs


def previous_window() -> list[list[CanonicalEvent]]:
    msgs: list[list[CanonicalEvent]] = []
    msgs += [delivered("Vodafone", 30 * H + i * S, 3 * S) for i in range(9)]
    msgs.append(failed("Vodafone", 31 * H, State.UNDELIVERED, FailureReason.UNREACHABLE))
    msgs += [delivered("O2", 32 * H + i * S, 3 * S) for i in range(4)]
    msgs += [delivered("EE", 33 * H + i * S, 3 * S) for i in range(17)]
    msgs += [
        failed("EE", 34 * H + i * S, State.UNDELIVERED, FailureReason.UNREACHABLE) for i in range(3)
    ]
    msgs += [delivered("Three", 35 * H + i * S, 3 * S) for i in range(2)]
    # older than both windows: ignored
    msgs.append(failed("Vodafone", 50 * H, State.UNDELIVERED, FailureReason.UNREACHABLE))
    return msgs


@pytest.fixture(scope="module")
def settings(clickhouse_url: str) -> Iterator[Settings]:
    """A migrated random database holding the events above; dropped afterwards."""
    s = Settings(clickhouse_url=clickhouse_url, clickhouse_database=f"dlr_{uuid.uuid4().hex[:10]}")
    client = connect(s)
    try:
        migrate(client, s.clickhouse_database)
        writer = EventWriter(client, s.clickhouse_database, pii_mode="hash", salt="test")
        now_batch = [e for m in current_window() for e in m]
        before_batch = [e for m in previous_window() for e in m]
        assert writer.write(wire(*now_batch)) == len(now_batch)
        assert writer.write(wire(*before_batch)) == len(before_batch)
        writer.write(wire(*now_batch))  # an identical retry of a batch
        again = [replace(e, emitted_at=e.emitted_at + H) for e in now_batch if e.carrier == "O2"]
        writer.write(wire(*again))  # re-emitted events in another batch
        yield s
    finally:
        client.command(f"DROP DATABASE IF EXISTS {s.clickhouse_database}")
        client.close()


def run(settings: Settings, capsys: pytest.CaptureFixture[str], **kwargs: Any) -> str:
    options: dict[str, Any] = {"by": "carrier", "since": "24h", "fmt": "table", "now": NOW}
    options.update(kwargs)
    status = run_report(settings, **options)
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return captured.out


ORDER = ["Silent", "O2", "EE", "Vodafone"]


def _round(value: Any) -> Any:
    """Interpolated quantiles are floats: compare them to 9 decimals, the rest exactly."""
    return round(value, 9) if isinstance(value, float) else value


def test_json_has_the_exact_numbers_worst_first(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = orjson.loads(run(settings, capsys, fmt="json"))
    assert [r["carrier"] for r in rows] == ORDER
    got = {r["carrier"]: r for r in rows}
    expected = {
        "Silent": (2, 1, 0, 0.0, {"expired": 1}, None, None, 0, 0, None, False),
        "O2": (5, 4, 2, 0.5, {"expired": 1, "provider_error": 1}, 20.0, 29.0, 4, 4, 1.0, True),
        "EE": (5, 5, 4, 0.8, {"carrier_filtered": 1}, 2.0, 2.0, 20, 17, 0.85, False),
        "Vodafone": (10, 10, 9, 0.9, {"unreachable": 1}, 5.0, 8.6, 10, 9, 0.9, False),
    }
    for carrier, values in expected.items():
        row = got[carrier]
        actual = (
            row["messages"],
            row["attempts"],
            row["delivered"],
            row["delivery_rate"],
            row["failure_reasons"],
            row["ttd_p50_s"],
            row["ttd_p95_s"],
            row["previous_attempts"],
            row["previous_delivered"],
            row["previous_delivery_rate"],
            row["dropped"],
        )
        assert tuple(_round(v) for v in actual) == values, carrier


def test_table_is_aligned_and_flags_the_drop(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run(settings, capsys)
    lines = out.splitlines()
    assert lines[0].startswith("delivery by carrier")
    assert "4 groups, 1 flagged DROP" in lines[0]
    header, rule, *body = lines[2:]
    assert re.split(r"\s{2,}", header) == [
        "carrier",
        "messages",
        "attempts",
        "unreported",
        "delivered",
        "rate",
        "prev rate",
        "change",
        "p50 ttd",
        "p95 ttd",
        "failure reasons",
        "flag",
    ]
    assert set(rule) == {"-", " "}
    cells = [re.split(r"\s{2,}", line) for line in body]
    assert cells == [
        ["Silent", "2", "1", "0", "0", "0.00%", "-", "-", "-", "-", "expired 1"],
        ["O2", "5", "4", "0", "2", "50.00%", "100.00%", "-50.0%", "20s", "29s",
         "expired 1, provider_error 1", "DROP"],
        ["EE", "5", "5", "0", "4", "80.00%", "85.00%", "-5.9%", "2.0s", "2.0s",
         "carrier_filtered 1"],
        ["Vodafone", "10", "10", "0", "9", "90.00%", "90.00%", "+0.0%", "5.0s", "8.6s",
         "unreachable 1"],
    ]  # fmt: skip
    # aligned: every numeric column ends at the same position as its header
    for name in ("messages", "rate", "p95 ttd"):
        end = header.index(name) + len(name)
        assert all(line[end - 1] != " " and line[end : end + 1] in (" ", "") for line in body)


def test_csv_has_a_header_and_one_line_per_group(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = list(csv.DictReader(io.StringIO(run(settings, capsys, fmt="csv"))))
    assert [r["carrier"] for r in rows] == ORDER
    o2 = rows[1]
    assert (o2["messages"], o2["attempts"], o2["delivered"], o2["dropped"]) == (
        "5",
        "4",
        "2",
        "true",
    )
    assert float(o2["delivery_rate"]) == 0.5
    assert float(o2["previous_delivery_rate"]) == 1.0
    assert (o2["reason_expired"], o2["reason_provider_error"], o2["reason_unreachable"]) == (
        "1",
        "1",
        "0",
    )
    silent = rows[0]
    assert (silent["ttd_p50_s"], silent["previous_delivery_rate"], silent["dropped"]) == (
        "",
        "",
        "false",
    )
    assert [r["dropped"] for r in rows] == ["false", "true", "false", "false"]
    assert {f"reason_{r}" for r in FailureReason} <= set(rows[0])


def test_other_dimension_and_a_window_with_nothing(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = orjson.loads(run(settings, capsys, fmt="json", by="country", since="1h"))
    assert rows == []
    rows = orjson.loads(run(settings, capsys, fmt="json", by="country", since="86400s"))
    assert [(r["country"], r["attempts"], r["delivered"]) for r in rows] == [("GB", 20, 15)]
    assert "no messages in the window" in run(settings, capsys, since="30m")


def test_stuck_silent_and_spikes(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    stuck = orjson.loads(run(settings, capsys, fmt="json", kind="stuck", stuck_after="6h"))
    assert [(r["carrier"], r["current_state"], r["age_hours"]) for r in stuck] == [
        ("O2", "sent", 10.0)
    ]
    silent = orjson.loads(run(settings, capsys, fmt="json", kind="silent"))
    assert [(r["carrier"], r["messages"], r["attempts"], r["stuck_in_sent"]) for r in silent] == [
        ("Silent", 2, 1, 1)
    ]
    spikes = orjson.loads(run(settings, capsys, fmt="json", kind="spikes", min_count=1))
    assert [(r["carrier"], r["reason"], r["count"], r["previous_count"]) for r in spikes] == [
        ("EE", "carrier_filtered", 1, 0),
        ("O2", "expired", 1, 0),
        ("O2", "provider_error", 1, 0),
    ]
    table = run(settings, capsys, kind="spikes", min_count=1)
    assert "carrier_filtered" in table and "20.00%" in table
    text = run(settings, capsys, fmt="csv", kind="stuck")
    assert text.splitlines()[0].startswith("message_id,provider,current_state,carrier")


#: Final state of every message of the current window: (carrier, age of its first event,
#: state, failure reason, time to deliver in s); state None = still sent (not an attempt).
CURRENT_TRUTH: list[tuple[str, timedelta, State | None, str | None, float | None]] = [
    *[("Vodafone", 2 * H + i * 60 * S, State.DELIVERED, None, i + 1.0) for i in range(9)],
    ("Vodafone", 3 * H, State.UNDELIVERED, "unreachable", None),
    ("O2", 4 * H, State.DELIVERED, None, 30.0),  # undelivered first: counted once, delivered
    ("O2", 5 * H, State.DELIVERED, None, 10.0),
    ("O2", 6 * H, State.FAILED, "provider_error", None),
    ("O2", 7 * H, State.EXPIRED, "expired", None),
    ("O2", 10 * H, None, None, None),
    *[("EE", 8 * H + i * S, State.DELIVERED, None, 2.0) for i in range(4)],
    ("EE", 9 * H, State.REJECTED, "carrier_filtered", None),
    ("Silent", 3 * H, None, None, None),
    ("Silent", 5 * H, State.EXPIRED, "expired", None),
]


FINAL_COLUMNS = ("undelivered", "failed", "rejected", "expired", "unknown")


def test_hourly_trend_is_exact_per_first_event_hour(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = orjson.loads(run(settings, capsys, fmt="json", kind="hourly"))
    expected: dict[tuple[str, str], dict[str, Any]] = {}
    for carrier, age, state, reason, ttd in CURRENT_TRUTH:
        first = NOW - age
        hour = first.replace(minute=0, second=0, microsecond=0).isoformat().replace("+00:00", "Z")
        row = expected.setdefault(
            (hour, carrier),
            {"messages": 0, "attempts": 0, "delivered": 0, "failure_reasons": {}, "ttd": []},
        )
        row["messages"] += 1
        if state is not None:
            row["attempts"] += 1
            if state is State.DELIVERED:
                row["delivered"] += 1
            else:
                row[str(state)] = row.get(str(state), 0) + 1
        if reason is not None:
            row["failure_reasons"][reason] = row["failure_reasons"].get(reason, 0) + 1
        if ttd is not None:
            row["ttd"].append(ttd)
    got: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        got[(r["hour"].replace(".000", ""), r["carrier"])] = {
            "messages": r["messages"],
            "attempts": r["attempts"],
            "delivered": r["delivered"],
            "failure_reasons": r["failure_reasons"],
            "ttd": r["ttd_samples"],
            **{k: r[k] for k in FINAL_COLUMNS if r[k]},
        }
    for row in expected.values():
        row["ttd"] = len(row["ttd"])
    assert got == expected  # the previous window and the re-sent / re-emitted events: no trace
    assert [(r["hour"], r["carrier"]) for r in rows] == sorted(
        (r["hour"], r["carrier"]) for r in rows
    )
    vodafone = [r for r in rows if r["carrier"] == "Vodafone" and r["delivered"] == 9]
    if vodafone:  # the nine delivered ones share an hour unless NOW is in its first 8 minutes
        assert vodafone[0]["ttd_p50_s"] == 5.0 and vodafone[0]["delivery_rate"] == 1.0
        assert _round(vodafone[0]["ttd_p95_s"]) == 8.6
    # summed over the hours, exactly the delivery report of the same window
    delivery = orjson.loads(run(settings, capsys, fmt="json"))
    totals: dict[str, list[Any]] = {}
    for row in rows:
        total = totals.setdefault(row["carrier"], [0, 0, 0, {}])
        total[0] += row["messages"]
        total[1] += row["attempts"]
        total[2] += row["delivered"]
        for reason, count in row["failure_reasons"].items():
            total[3][reason] = total[3].get(reason, 0) + count
    assert totals == {
        r["carrier"]: [r["messages"], r["attempts"], r["delivered"], r["failure_reasons"]]
        for r in delivery
    }
    table = run(settings, capsys, kind="hourly")
    assert table.startswith("hourly delivery by carrier")
    assert "exact" in table.splitlines()[0]
    header = re.split(r"\s{2,}", table.splitlines()[2])
    assert header[:6] == ["hour", "carrier", "messages", "attempts", "delivered", "delivery_rate"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3600s", 3600), ("90m", 5400), ("24h", 86400), ("7d", 604800), ("1.5h", 5400), ("60", 60)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "24x", "-1h", "0s", "100000d"])
def test_bad_durations_are_refused_before_any_query(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
    nowhere = Settings(clickhouse_url="http://127.0.0.1:9")
    assert run_report(nowhere, by="carrier", since=text, fmt="table") == 2
    assert "dlr report:" in capsys.readouterr().err


def test_unreachable_server_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    nowhere = Settings(clickhouse_url="http://user:secret@127.0.0.1:9", tools_wait_s=1.0)
    assert run_report(nowhere, by="carrier", since="24h", fmt="json") == 1
    err = capsys.readouterr().err
    assert "waiting for ClickHouse at 127.0.0.1:9" in err
    assert "cannot reach ClickHouse" in err and "secret" not in err
    assert err.strip().splitlines()[-1].startswith("dlr report: cannot reach ClickHouse")
    assert "Traceback" not in err
