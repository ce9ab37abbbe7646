"""Erasure by phone number: every trace of one number, gone or kept only as the law needs.

`erase()` is what `DELETE /v1/subjects/{number}` (scope `subjects:erase`) and `dlr erase
--phone` run; it reports what it did and may run any number of times.

1. ClickHouse. The tables that hold a number are found, not listed: every MergeTree table
   of the database with a column named in `PII_COLUMNS` (today `events` and `sends`
   `recipient` / `recipient_clear` / `sender` / `sender_clear`, and since ddl/0010
   `messages.sender`, an argMax state, and `status_snapshot.sender`; a future table with
   such a column is covered without a change here). In each, the values equal to the
   number or to its hash are counted and set to NULL (an aggregate state: to the empty
   state) with `ALTER TABLE ... UPDATE`, waited for with `mutations_sync = 2`; the rows
   stay, so delivery analytics do not change, but no row holds the number, clear or
   hashed, any more. `message_status`, `hourly*`, `client_refs` and `message_parts` never
   held it. The values still matching afterwards are counted
   (`remaining`: 0 unless receipts arrived meanwhile). Rows written in `mask` mode keep
   only the last two digits and cannot be tied to a number: they are left as they are.
2. Kafka. The suppression entry: a number that opted out keeps its entry under the hash,
   without the number (`erased: true`): honouring the opt-out is the legal basis for
   keeping it; any other entry gets a tombstone. The stream worker's state for the
   number's inbound keywords (key `inbound:<hash>` of its table) gets a tombstone in the
   table's changelog.
3. The audit: one row in `erasure_audit` (ddl/0011): hashed number, when, who, what was
   cleared with the counts, what was written to Kafka, until when raw requests remain.

What stays is said in the report (`retained`): `dlr.raw.v1` keeps the raw requests, with
the number in clear, until their retention ends (`DLR_RAW_RETENTION_HOURS`); the other
topics carry the number as `DLR_PII_MODE` says until theirs ends.
"""

from __future__ import annotations

import asyncio
import getpass
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import clickhouse_connect
from aiokafka import AIOKafkaProducer
from clickhouse_connect.driver.client import Client

from schemas.phone import number_hash
from schemas.settings import CommonSettings, parse_url
from schemas.suppressions import SuppressionEntry

__all__ = [
    "AUDIT_TABLE",
    "PII_COLUMNS",
    "ErasureReport",
    "cli_actor",
    "erase",
    "pii_columns",
]

#: Column names that hold a phone number (clear, hashed or masked) in any table.
PII_COLUMNS: tuple[str, ...] = ("recipient", "recipient_clear", "sender", "sender_clear")
#: The audit keeps the hash on purpose (it is the record of the erasure).
AUDIT_TABLE = "erasure_audit"
#: How much longer than its retention a raw record may live (deploy/topics.py segment.ms).
_SEGMENT_SLACK = timedelta(hours=6, minutes=5)

CurrentEntry = Callable[[str], Awaitable[SuppressionEntry | None]]
Progress = Callable[[str], None]


def cli_actor(name: str | None) -> str:
    """The actor of a terminal erasure: the OS user, and the name given."""
    user = getpass.getuser()
    return f"cli:{user}/{name}" if name else f"cli:{user}"


def _time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class ErasureReport:
    """What one erasure did, and what stays."""

    erasure_id: str
    number: str
    number_hash: str
    actor: str
    source: str
    requested_at: datetime
    finished_at: datetime | None = None
    #: table -> column -> values cleared
    cleared: dict[str, dict[str, int]] = field(default_factory=dict)
    remaining: int = 0
    #: kept_as_hash | removed | none
    suppression: str = "none"
    kafka: list[str] = field(default_factory=list)
    retained: list[str] = field(default_factory=list)
    raw_retained_until: datetime | None = None

    @property
    def total(self) -> int:
        """Values cleared in ClickHouse."""
        return sum(sum(columns.values()) for columns in self.cleared.values())

    def to_dict(self) -> dict[str, Any]:
        """The API's answer and `dlr erase --format json`."""
        return {
            "erasure_id": self.erasure_id,
            "number": self.number,
            "number_hash": self.number_hash,
            "actor": self.actor,
            "requested_at": _time(self.requested_at),
            "finished_at": _time(self.finished_at) if self.finished_at else None,
            "clickhouse": {
                "cleared": self.cleared,
                "total": self.total,
                "remaining": self.remaining,
            },
            "suppression": self.suppression,
            "kafka": self.kafka,
            "retained": self.retained,
            "raw_retained_until": (
                _time(self.raw_retained_until) if self.raw_retained_until else None
            ),
        }

    def lines(self) -> list[str]:
        """The report for a person at a terminal."""
        out = [f"erasure {self.erasure_id} of {self.number} (hash {self.number_hash[:16]}…)"]
        if self.total:
            for table, columns in sorted(self.cleared.items()):
                found = ", ".join(f"{c} {n}" for c, n in columns.items() if n)
                if found:
                    out.append(f"  clickhouse {table}: cleared {found}")
        else:
            out.append("  clickhouse: no row held this number (clear or hashed)")
        out.append(f"  clickhouse: {self.remaining} values still match after the run")
        out.append(
            {
                "kept_as_hash": "  suppression: opted out, entry kept under the hash only",
                "removed": "  suppression: no opt-out; any entry removed (tombstone)",
                "none": "  suppression: no entry",
            }.get(self.suppression, f"  suppression: {self.suppression}")
        )
        out += [f"  kafka: {line}" for line in self.kafka]
        out += [f"  stays: {line}" for line in self.retained]
        out.append(f"  audit: {AUDIT_TABLE} row {self.erasure_id}")
        return out


def connect(settings: CommonSettings, timeout_s: float) -> Client:
    """A ClickHouse client for mutations (longer timeout than lookups)."""
    options: dict[str, Any] = dict(parse_url(settings.clickhouse).client_options())
    options["send_receive_timeout"] = max(1, int(timeout_s))
    options["query_limit"] = 0
    return clickhouse_connect.get_client(**options)


def pii_columns(client: Client, database: str) -> dict[str, list[tuple[str, str]]]:
    """table -> [(column, type)] of every MergeTree table holding a number (audit aside;
    a refreshable view's `.tmp` table lives only during a refresh that replaces its target
    with what the already cleared tables say)."""
    result = client.query(
        """
        SELECT c.table, c.name, c.type
        FROM system.columns AS c
        INNER JOIN system.tables AS t ON t.database = c.database AND t.name = c.table
        WHERE c.database = {db:String} AND c.name IN {names:Array(String)}
          AND t.engine LIKE '%MergeTree' AND c.table != {audit:String}
          AND NOT startsWith(c.table, '.tmp')
        ORDER BY c.table, c.position
        """,
        parameters={"db": database, "names": list(PII_COLUMNS), "audit": AUDIT_TABLE},
    )
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in result.result_rows:
        out.setdefault(str(table), []).append((str(column), str(kind)))
    return out


#: A column holding an aggregate state of a number (`messages.sender`: argMax of the
#: sender by time): (function, the value's type, the other arguments' types).
_STATE = re.compile(r"AggregateFunction\((\w+), ((?:Nullable\()?String\)?)((?:, .+)?)\)")


def _value(column: str, kind: str) -> str:
    """The number a row's column holds: the column, or its aggregate state's value."""
    return f"finalizeAggregation(`{column}`)" if _STATE.fullmatch(kind) else f"`{column}`"


def _emptied(column: str, kind: str) -> str:
    """What replaces a matching value: NULL, '' (not Nullable), or an empty aggregate
    state of the column's type (argMax skips a NULL value: the state names no one)."""
    state = _STATE.fullmatch(kind)
    if state is None:
        return "NULL" if "Nullable" in kind else "''"
    function, _, others = state.groups()
    zeros = "".join(f", CAST(0 AS {t})" for t in _types(others.removeprefix(", ")))
    empty = f"initializeAggregation('{function}State', CAST(NULL AS Nullable(String)){zeros})"
    return f"CAST({empty} AS {kind})"


def _types(text: str) -> list[str]:
    """'DateTime64(3, 'UTC'), UInt8' -> the two types (commas inside parentheses kept)."""
    out: list[str] = []
    depth, start = 0, 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            out.append(text[start:index].strip())
            start = index + 1
    if text[start:].strip():
        out.append(text[start:].strip())
    return out


def _count(
    client: Client, database: str, table: str, columns: list[tuple[str, str]], values: list[str]
) -> dict[str, int]:
    selects = ", ".join(
        f"countIf({_value(c, kind)} IN {{values:Array(String)}})" for c, kind in columns
    )
    row = client.query(
        f"SELECT {selects} FROM {{db:Identifier}}.{{table:Identifier}}",
        parameters={"db": database, "table": table, "values": values},
    ).result_rows[0]
    return {column: int(n) for (column, _), n in zip(columns, row, strict=True)}


def _clear(
    client: Client, database: str, table: str, columns: list[tuple[str, str]], values: list[str]
) -> None:
    sets = ", ".join(
        f"`{c}` = if({_value(c, kind)} IN {{values:Array(String)}}, {_emptied(c, kind)}, `{c}`)"
        for c, kind in columns
    )
    where = " OR ".join(f"{_value(c, kind)} IN {{values:Array(String)}}" for c, kind in columns)
    client.command(
        f"ALTER TABLE {{db:Identifier}}.{{table:Identifier}} UPDATE {sets} WHERE {where}",
        parameters={"db": database, "table": table, "values": values},
        settings={"mutations_sync": 2},
    )


def _clickhouse(
    client: Client, database: str, number: str, hashed: str, progress: Progress
) -> tuple[dict[str, dict[str, int]], int]:
    values = [number, hashed]
    cleared: dict[str, dict[str, int]] = {}
    remaining = 0
    for table, columns in pii_columns(client, database).items():
        found = _count(client, database, table, columns, values)
        cleared[table] = found
        if any(found.values()):
            progress(f"clickhouse {table}: clearing {sum(found.values())} values")
            _clear(client, database, table, columns, values)
        else:
            progress(f"clickhouse {table}: nothing to clear")
        remaining += sum(_count(client, database, table, columns, values).values())
    return cleared, remaining


async def _kafka(
    settings: CommonSettings, hashed: str, actor: str, current: CurrentEntry
) -> tuple[str, list[tuple[str, bytes, bytes | None, str]]]:
    """(suppression outcome, records to write with what each one means)."""
    entry = await current(hashed)
    records: list[tuple[str, bytes, bytes | None, str]] = []
    topic = settings.suppressions_topic
    if entry is not None and entry.suppressed:
        kept = SuppressionEntry(
            number_hash=hashed,
            number=None,
            suppressed=True,
            reason=entry.reason,
            source=entry.source,
            since=entry.since,
            actor=actor,
            provider=entry.provider,
            message_id=entry.message_id,
            keyword=entry.keyword,
            language=entry.language,
            erased=True,
        )
        what = f"opt-out since {entry.since} kept under the hash, number removed"
        records.append((topic, kept.key(), kept.to_json(), what))
        outcome = "kept_as_hash"
    else:
        records.append((topic, hashed.encode(), None, "tombstone for the entry"))
        outcome = "removed" if entry is not None else "none"
    changelog = settings.table_changelog_topic
    records.append(
        (changelog, f"inbound:{hashed}".encode(), None, "tombstone for the worker's keyword state")
    )
    return outcome, records


async def _produce(
    settings: CommonSettings, records: list[tuple[str, bytes, bytes | None, str]]
) -> list[str]:
    """Write the records whose topic exists (a tombstone never creates a topic); returns
    what was done, one line per record."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    await asyncio.wait_for(producer.start(), 10)
    lines = []
    try:
        topics = (await producer.client.fetch_all_metadata()).topics()
        for topic, key, value, what in records:
            if topic in topics:
                await asyncio.wait_for(producer.send_and_wait(topic, value, key=key), 10)
                lines.append(f"{topic}: {what}")
            else:
                lines.append(f"{topic}: no such topic, nothing to write")
    finally:
        await producer.stop()
    return lines


def _retained(
    settings: CommonSettings, now: datetime, suppressed: bool
) -> tuple[list[str], datetime]:
    raw_until = now + timedelta(hours=settings.raw_retention_hours) + _SEGMENT_SLACK
    topics_until = now + timedelta(hours=settings.topic_retention_hours) + _SEGMENT_SLACK
    dead_until = now + timedelta(hours=settings.deadletter_retention_hours) + _SEGMENT_SLACK
    form = {
        "hash": "only its hash",
        "mask": "only its last two digits",
        "clear": "the number in clear",
    }[settings.pii_mode]
    lines = [
        f"{settings.raw_topic} keeps the raw requests as received, with the number in clear "
        f"where a provider sent it, until its retention ends: each record is deleted "
        f"{settings.raw_retention_hours} h (at most {settings.raw_retention_hours + 6} h) "
        f"after it arrived, so every one is gone by {_time(raw_until)}",
        f"{settings.status_topic}, {settings.actions_topic}, {settings.sends_topic} carry "
        f"{form} (DLR_PII_MODE={settings.pii_mode}) until their retention ends, by "
        f"{_time(topics_until)}; {settings.deadletter_topic} by {_time(dead_until)}",
    ]
    if suppressed:
        lines.append(
            f"{settings.suppressions_topic} keeps the opt-out under the hash (legal basis: "
            "honouring it); compaction removes the replaced records holding the number within "
            f"{settings.suppressions_compaction_lag_hours} h"
        )
    lines.append(f"ClickHouse {AUDIT_TABLE} keeps the hash, who and when: the proof of this run")
    return lines, raw_until


def _audit(client: Client, database: str, report: ErasureReport, pii_mode: str) -> None:
    flat = {
        f"{table}.{column}": n
        for table, columns in report.cleared.items()
        for column, n in columns.items()
    }
    client.insert(
        AUDIT_TABLE,
        [[
            uuid.UUID(report.erasure_id), report.number_hash, report.requested_at,
            report.finished_at, report.actor, report.source, pii_mode, flat, report.remaining,
            report.suppression, report.kafka, report.raw_retained_until,
            "done" if report.remaining == 0 else "partial", "",
        ]],
        database=database,
        column_names=[
            "erasure_id", "number_hash", "requested_at", "finished_at", "actor", "source",
            "pii_mode", "cleared", "remaining", "suppression", "kafka", "raw_retained_until",
            "outcome", "detail",
        ],
    )  # fmt: skip


async def erase(
    settings: CommonSettings,
    number: str,
    *,
    actor: str,
    source: str,
    current: CurrentEntry,
    timeout_s: float = 300.0,
    progress: Progress | None = None,
) -> ErasureReport:
    """Erase `number` (E.164, already normalised) everywhere; see the module doc.

    `current` returns the number's suppression entry (the API's in-process list, or
    `ingress.api.suppressions.read_entry` from a terminal). Raises clickhouse-connect's
    and aiokafka's errors as they come: a failed run is simply run again."""
    say = progress or (lambda line: None)
    now = datetime.now(UTC)
    hashed = number_hash(number, settings.pii_salt)
    report = ErasureReport(str(uuid.uuid4()), number, hashed, actor, source, now)
    client = await asyncio.to_thread(connect, settings, timeout_s)
    try:
        database = settings.clickhouse_database
        report.cleared, report.remaining = await asyncio.to_thread(
            _clickhouse, client, database, number, hashed, say
        )
        report.suppression, records = await _kafka(settings, hashed, actor, current)
        report.kafka = await _produce(settings, records)
        for line in report.kafka:
            say(f"kafka {line}")
        report.retained, report.raw_retained_until = _retained(
            settings, now, report.suppression == "kept_as_hash"
        )
        report.finished_at = datetime.now(UTC)
        await asyncio.to_thread(_audit, client, database, report, settings.pii_mode)
        say(f"audit: {AUDIT_TABLE} row {report.erasure_id}")
    finally:
        await asyncio.to_thread(client.close)
    return report
