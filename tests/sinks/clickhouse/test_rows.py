"""Rows of `<db>.events`: column list equals the DDL, PII handled per mode, values typed."""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from importlib import resources
from typing import Any

import pytest

from schemas.events import CanonicalEvent
from schemas.lifecycle import FailureReason, State
from schemas.phone import protect
from sinks.clickhouse import migrate, rows

SALT = "test-salt"
NUMBER = "+14155550100"


def ddl(name: str) -> str:
    return (resources.files("sinks.clickhouse") / "ddl" / name).read_text()


def split_type(rest: str) -> tuple[str, str]:
    """('Type(with, parens)', 'what follows') from the text after a column name."""
    depth = 0
    for i, ch in enumerate(rest):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and (ch.isspace() or ch == ","):
            return rest[:i], rest[i:]
    return rest, ""


def table_columns(sql: str, table: str) -> list[tuple[str, str, bool]]:
    """(name, type, inserted) of each column in `CREATE TABLE ... {db}.<table>`."""
    start = sql.index(f"CREATE TABLE IF NOT EXISTS {{db}}.{table}")
    body = sql[sql.index("(", start) + 1 : sql.index("\n)", start)]
    out = []
    for line in body.splitlines():
        code = line.split("--", 1)[0].strip()
        if not code or code.split()[0] in ("INDEX", "PROJECTION", "CONSTRAINT"):
            continue
        name, rest = code.split(None, 1)
        kind, tail = split_type(rest.strip())
        computed = re.search(r"\b(DEFAULT|MATERIALIZED|ALIAS|EPHEMERAL)\b", tail) is not None
        out.append((name, kind, not computed))
    return out


def millis(at: datetime) -> int:
    """What a DateTime64(3) column stores for an aware time with whole milliseconds."""
    return round(at.timestamp() * 1000)


def sample(**changes: object) -> CanonicalEvent:
    base = CanonicalEvent(
        event_id="e" * 32,
        message_id="generic:m1",
        provider="generic",
        provider_message_id="m1",
        state=State.UNDELIVERED,
        current_state=State.UNDELIVERED,
        previous_state=State.SENT,
        transition="advanced",
        is_final=True,
        failure_reason=FailureReason.UNREACHABLE,
        provider_status="undelivered",
        provider_error_code="30003",
        provider_error_text="Unreachable destination handset",
        mapped=True,
        recipient=NUMBER,
        sender="ACME",
        carrier="Xcell",
        mcc="310",
        mnc="260",
        country="US",
        region="Northern America",
        campaign="spring",
        tenant="t1",
        client_ref="ref-1",
        segments=2,
        price=0.0075,
        currency="USD",
        sequence=7,
        provider_timestamp=datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        received_at=datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC),
        emitted_at=datetime(2026, 1, 2, 3, 4, 6, 500000, tzinfo=UTC),
        raw_sha256="a" * 64,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def added_columns(sql: str, table: str) -> list[tuple[str, str, str | None]]:
    """(name, type, the column it comes AFTER or None: last) of each `ALTER TABLE
    {db}.<table> ... ADD COLUMN IF NOT EXISTS` in a file, in order."""
    out = []
    for statement in migrate.statements(sql):
        code = "\n".join(line.split("--", 1)[0] for line in statement.splitlines()).strip()
        if not re.match(rf"ALTER TABLE {{db}}\.{table}\s", code):
            continue
        for match in re.finditer(r"ADD COLUMN IF NOT EXISTS (\w+) ", code):
            kind, tail = split_type(code[match.end() :].strip())
            after = re.match(r"\s*AFTER (\w+)", tail)
            out.append((match.group(1), kind, after.group(1) if after else None))
    return out


def test_columns_and_types_match_the_events_ddl() -> None:
    declared = table_columns(ddl("0001_events.sql"), "events")
    added = [*added_columns(ddl("0007_enrichment.sql"), "events")]
    added += added_columns(ddl("0008_sends.sql"), "events")
    assert len(added) == 6
    for name, kind, after in added:
        names = [n for n, _, _ in declared]
        declared.insert(names.index(after) + 1 if after else len(declared), (name, kind, True))
    inserted = [(name, kind) for name, kind, ins in declared if ins]
    assert inserted == list(zip(rows.COLUMNS, rows.TYPES, strict=True))
    assert [name for name, _, ins in declared if not ins] == ["inserted_at"]


def test_columns_and_types_match_the_sends_ddl() -> None:
    from sinks.clickhouse import sends

    declared = table_columns(ddl("0008_sends.sql"), "sends")
    inserted = [(name, kind) for name, kind, ins in declared if ins]
    assert inserted == list(zip(sends.COLUMNS, sends.TYPES, strict=True))
    assert [name for name, _, ins in declared if not ins] == ["inserted_at"]


def test_every_event_field_has_a_column() -> None:
    fields = set(CanonicalEvent.__dataclass_fields__)
    assert fields <= set(rows.COLUMNS)
    assert {"recipient_clear", "sender_clear", "pii_mode"} <= set(rows.COLUMNS)


def test_row_follows_the_column_order() -> None:
    event = sample()
    row = dict(zip(rows.COLUMNS, rows.to_row(event, pii_mode="hash", salt=SALT), strict=True))
    assert row["event_id"] == event.event_id
    assert row["state"] == "undelivered" and row["current_state"] == "undelivered"
    assert row["previous_state"] == "sent"
    assert row["failure_reason"] == "unreachable"
    assert row["provider_status"] == "undelivered" and row["provider_error_code"] == "30003"
    assert row["provider_error_text"] == "Unreachable destination handset"
    assert row["is_final"] is True and row["mapped"] is True
    assert row["segments"] == 2 and row["price"] == 0.0075 and row["sequence"] == 7
    assert event.provider_timestamp is not None
    assert row["provider_timestamp"] == millis(event.provider_timestamp)
    assert row["received_at"] == millis(event.received_at)
    assert row["emitted_at"] == millis(event.emitted_at)
    assert row["schema_version"] == 1
    assert all(not isinstance(v, State | FailureReason) for v in row.values())


def test_optional_fields_stay_null() -> None:
    event = sample(
        previous_state=None,
        failure_reason=None,
        provider_error_code=None,
        recipient=None,
        sender=None,
        carrier=None,
        segments=None,
        price=None,
        sequence=None,
        provider_timestamp=None,
    )
    row = dict(zip(rows.COLUMNS, rows.to_row(event, pii_mode="clear", salt=SALT), strict=True))
    for name in (
        "previous_state",
        "failure_reason",
        "provider_error_code",
        "recipient",
        "recipient_clear",
        "sender",
        "sender_clear",
        "carrier",
        "segments",
        "price",
        "sequence",
        "provider_timestamp",
    ):
        assert row[name] is None, name


def test_times_are_utc_milliseconds() -> None:
    naive = datetime(2026, 1, 2, 3, 4, 5)
    shifted = datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    sub_ms = datetime(2026, 1, 2, 3, 4, 5, 678999, tzinfo=UTC)
    event = sample(received_at=naive, emitted_at=shifted, provider_timestamp=sub_ms)
    row = dict(zip(rows.COLUMNS, rows.to_row(event, pii_mode="hash", salt=SALT), strict=True))
    assert row["received_at"] == millis(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert row["emitted_at"] == millis(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    # DateTime64(3) keeps whole milliseconds: truncated, as clickhouse-connect does
    assert row["provider_timestamp"] == millis(datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC))


def test_segments_are_clamped_to_the_column_range() -> None:
    row = rows.to_row(sample(segments=70000), pii_mode="hash", salt=SALT)
    assert row[rows.COLUMNS.index("segments")] == 65535


@pytest.mark.parametrize(
    ("mode", "recipient", "clear"),
    [
        pytest.param(
            "hash", hashlib.sha256(f"{SALT}|{NUMBER}".encode()).hexdigest(), None, id="hash"
        ),
        pytest.param("mask", "*********00", None, id="mask"),
        pytest.param(
            "clear", hashlib.sha256(f"{SALT}|{NUMBER}".encode()).hexdigest(), NUMBER, id="clear"
        ),
    ],
)
def test_recipient_per_pii_mode(mode: str, recipient: str, clear: str | None) -> None:
    row = dict(zip(rows.COLUMNS, rows.to_row(sample(), pii_mode=mode, salt=SALT), strict=True))
    assert row["recipient"] == recipient
    assert row["recipient_clear"] == clear
    assert row["pii_mode"] == mode
    if mode != "clear":
        assert NUMBER not in {str(v) for v in row.values()}


@pytest.mark.parametrize(
    ("sender", "mode", "stored", "clear"),
    [
        pytest.param("ACME", "hash", "ACME", None, id="alphanumeric-id-kept"),
        pytest.param("12345", "mask", "12345", None, id="short-code-kept"),
        pytest.param("+12065550123", "mask", "*********23", None, id="phone-masked"),
        pytest.param(
            "+12065550123",
            "hash",
            hashlib.sha256(f"{SALT}|+12065550123".encode()).hexdigest(),
            None,
            id="phone-hashed",
        ),
        pytest.param(
            "+12065550123",
            "clear",
            hashlib.sha256(f"{SALT}|+12065550123".encode()).hexdigest(),
            "+12065550123",
            id="phone-clear-copy",
        ),
    ],
)
def test_sender_is_protected_only_when_it_is_a_phone_number(
    sender: str, mode: str, stored: str, clear: str | None
) -> None:
    row = dict(
        zip(rows.COLUMNS, rows.to_row(sample(sender=sender), pii_mode=mode, salt=SALT), strict=True)
    )
    assert (row["sender"], row["sender_clear"]) == (stored, clear)


@pytest.mark.parametrize("given", ["hash", "mask"])
@pytest.mark.parametrize("sink_mode", ["hash", "mask", "clear"])
def test_numbers_the_worker_protected_are_stored_as_they_are(given: str, sink_mode: str) -> None:
    """Hashing twice must not happen: an event in hash or mask form keeps its values and
    its mode, whatever the sink's own mode, in both the row and the column paths."""
    recipient = protect(NUMBER, pii_mode=given, salt=SALT)[0]
    sender = protect("+12065550123", pii_mode=given, salt=SALT)[0]
    event = sample(recipient=recipient, sender=sender, pii_mode=given)
    row = dict(zip(rows.COLUMNS, rows.to_row(event, pii_mode=sink_mode, salt=SALT), strict=True))
    assert (row["recipient"], row["recipient_clear"]) == (recipient, None)
    assert (row["sender"], row["sender_clear"]) == (sender, None)
    assert row["pii_mode"] == given
    columns = dict(
        zip(rows.COLUMNS, rows.to_columns(wire(event), pii_mode=sink_mode, salt=SALT), strict=True)
    )
    assert columns["recipient"] == [recipient]
    assert columns["pii_mode"] == [given]


def test_a_batch_mixing_protected_and_clear_events_protects_only_the_clear_ones() -> None:
    hashed = protect(NUMBER, pii_mode="hash", salt=SALT)[0]
    events = [
        sample(event_id="a", recipient=hashed, pii_mode="hash"),
        sample(event_id="b", recipient=NUMBER),  # written before the worker protected numbers
        sample(event_id="c", recipient=NUMBER, pii_mode="clear"),
    ]
    columns = dict(
        zip(rows.COLUMNS, rows.to_columns(wire(*events), pii_mode="clear", salt=SALT), strict=True)
    )
    assert columns["recipient"] == [hashed, hashed, hashed]
    assert columns["recipient_clear"] == [None, NUMBER, NUMBER]
    assert columns["pii_mode"] == ["hash", "clear", "clear"]


def test_unknown_pii_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="pii_mode"):
        rows.to_row(sample(), pii_mode="plain", salt=SALT)
    with pytest.raises(ValueError, match="pii_mode"):
        rows.to_row(sample(recipient=None, sender="ACME"), pii_mode="plain", salt=SALT)


def wire(*events: CanonicalEvent) -> list[dict[str, Any]]:
    """The events as the sink receives them: parsed records of dlr.status.v1."""
    return [rows.parse(e.to_json()) for e in events]


@pytest.mark.parametrize("mode", ["hash", "mask", "clear"])
def test_columns_are_the_rows_transposed(mode: str) -> None:
    naive = datetime(2026, 1, 2, 3, 4, 5)
    shifted = datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    sub_ms = datetime(2026, 1, 2, 3, 4, 5, 678999, tzinfo=UTC)
    events = [
        sample(),
        sample(event_id="e2", sender="+447700900123", segments=70000),
        sample(event_id="e3", received_at=naive, emitted_at=shifted, provider_timestamp=None),
        sample(
            event_id="e4",
            previous_state=None,
            failure_reason=None,
            recipient=None,
            sender=None,
            segments=None,
            sequence=None,
        ),
        sample(event_id="e5"),  # the same numbers again: protected once, same values
        sample(event_id="e6", provider_timestamp=sub_ms, segments=-3),
    ]
    columns = rows.to_columns(wire(*events), pii_mode=mode, salt=SALT)
    expected = [rows.to_row(e, pii_mode=mode, salt=SALT) for e in events]
    assert len(columns) == len(rows.COLUMNS)
    assert [tuple(r) for r in zip(*columns, strict=True)] == expected
    for column, kind in zip(columns, rows.TYPES, strict=True):
        for value in column:
            assert not isinstance(value, State | FailureReason | datetime), kind
            if kind.startswith(("DateTime64", "Nullable(DateTime64")):
                assert value is None or isinstance(value, int), kind


def test_columns_of_a_batch_larger_than_a_chunk_keep_every_record_in_order() -> None:
    states = list(State)
    events = [
        sample(
            event_id=f"e{i:05d}",
            state=states[i % len(states)],
            recipient=f"+1415555{i % 700:04d}",
            received_at=datetime(2026, 1, 2, tzinfo=UTC) + timedelta(milliseconds=i),
        )
        for i in range(2 * rows._CHUNK + 7)
    ]
    columns = rows.to_columns(wire(*events), pii_mode="hash", salt=SALT)
    assert [tuple(r) for r in zip(*columns, strict=True)] == [
        rows.to_row(e, pii_mode="hash", salt=SALT) for e in events
    ]


def test_a_record_without_schema_version_is_version_1() -> None:
    (record,) = wire(sample())
    del record["schema_version"]
    columns = rows.to_columns([record], pii_mode="hash", salt=SALT)
    assert columns[rows.COLUMNS.index("schema_version")] == [1]


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"carrier": KeyError}, KeyError, "carrier"),
        ({"state": "arrived"}, ValueError, "state 'arrived'"),
        ({"current_state": None}, ValueError, "current_state None"),
        ({"previous_state": "gone"}, ValueError, "previous_state 'gone'"),
        ({"failure_reason": "bad_luck"}, ValueError, "failure_reason 'bad_luck'"),
        ({"transition": "sideways"}, ValueError, "transition 'sideways'"),
        ({"received_at": "yesterday"}, ValueError, "yesterday"),
        ({"emitted_at": 1767323045}, TypeError, "must be str"),
    ],
)
def test_a_record_that_breaks_the_contract_raises(
    change: dict[str, Any], error: type[Exception], match: str
) -> None:
    good, bad = wire(sample(), sample(event_id="e2"))
    for name, value in change.items():
        if value is KeyError:
            del bad[name]
        else:
            bad[name] = value
    assert len(rows.to_columns([good], pii_mode="hash", salt=SALT)[0]) == 1
    with pytest.raises(error, match=match):
        rows.to_columns([good, bad], pii_mode="hash", salt=SALT)


def test_parse_takes_only_a_json_object() -> None:
    assert rows.parse(b'{"event_id": "e1"}') == {"event_id": "e1"}
    for raw in (b"[1, 2]", b'"text"', b"null", b"{not json", b""):
        with pytest.raises(ValueError):
            rows.parse(raw)


def test_columns_refuse_an_unknown_pii_mode() -> None:
    with pytest.raises(ValueError, match="pii_mode"):
        rows.to_columns(wire(sample()), pii_mode="plain", salt=SALT)


def test_enrichment_fields_are_optional_on_the_wire() -> None:
    enriched = sample(event_id="e1", carrier_source="mcc_mnc", line_type="mobile", area="Ohio")
    old = wire(sample(event_id="e2"))[0]
    for name in ("carrier_source", "line_type", "area"):
        old.pop(name)  # an event written before the fields existed
    columns = dict(
        zip(
            rows.COLUMNS,
            rows.to_columns([*wire(enriched), old], pii_mode="hash", salt=SALT),
            strict=True,
        )
    )
    assert columns["carrier_source"] == ["mcc_mnc", None]
    assert columns["line_type"] == ["mobile", None]
    assert columns["area"] == ["Ohio", None]
    assert CanonicalEvent.from_dict(old).carrier_source is None


@pytest.mark.parametrize("change", [{"carrier_source": "guess"}, {"line_type": "landline"}])
def test_enrichment_values_outside_the_contract_are_refused(change: dict[str, str]) -> None:
    record = wire(sample())[0]
    record.update(change)
    with pytest.raises(ValueError, match=next(iter(change))):
        rows.to_columns([record], pii_mode="hash", salt=SALT)
