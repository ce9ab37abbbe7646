"""Delivery analytics from ClickHouse: the documented SQL in `queries/`, run with parameters.

`report`, `stuck`, `silent_carriers`, `reason_spikes`, `unreported` and `hourly` (the
hourly trend) read
`status_snapshot`: the rows of the exact `message_status` view (one row per message, its
final state after the state machine), materialized by a refreshable view every minute and
sorted by first event time, so a query reads only its window. Never the approximate hourly
aggregates, so the numbers do not change with duplicated or re-emitted events or superseded
finals. Only `hourly_rollup` reads the pre-aggregated `hourly_v2` table (for dashboards;
approximate, bucketed by event hour, see README.md). A message belongs to a window by its
first event time. Delivery rate = delivered / attempts, attempts being messages whose
current state is in `schemas.lifecycle.ATTEMPTS` (see README.md).

Freshness: with `exact=True` (the default) a function first checks (one `system.parts`
lookup, about a millisecond) whether anything was inserted into `messages` after the
snapshot's last refresh started, and if so refreshes it and waits (`refresh()`): the
answer is then exactly what `message_status` says now. Under continuous ingestion that
means a refresh on most calls (seconds at millions of messages): dashboards polling often
pass `exact=False` and accept numbers up to a minute (plus one refresh) old.

On a sharded cluster every function takes `cluster=` (`cluster.ClusterSpec`): the queries
are the same (they read the Distributed tables, exact because each message lives on one
shard), the freshness check and the refresh run on every replica; a sharded database read
without it raises `ShardedDatabaseError`.

The SQL files use ClickHouse query parameters (`{name:Type}`), so an analyst can paste
them into clickhouse-client with `--param_<name>=...`; the group columns and the database
are `Identifier` parameters, never spliced into the text.

Groups: one dimension (`"carrier"`) or a pair (`"country,carrier"` or a tuple): the
queries take `by` and `by2` and group by both (`by2 = by` for one dimension). Each output
row names its group under the dimension's own key(s).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal, get_args

from sinks.clickhouse.cluster import ClusterSpec
from sinks.clickhouse.migrate import check_identifier

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

GroupBy = Literal[
    "carrier",
    "country",
    "region",
    "area",
    "campaign",
    "provider",
    "line_type",
    "carrier_source",
    "tenant",
    "sender",
]
#: Delivery-rate denominators (README.md): final states + unreported sends, or final only.
Attempts = Literal["sends", "final"]
GROUPS: tuple[GroupBy, ...] = get_args(GroupBy)
#: One dimension, a comma-separated pair ("country,carrier") or a tuple of one or two.
Grouping = str | tuple[str, ...]
#: The dimensions `hourly_v2` keeps (ddl/0006), so the only ones `hourly_rollup` can use.
ROLLUP_GROUPS: tuple[GroupBy, ...] = ("carrier", "country", "region", "campaign", "provider")

#: The refreshable materialized view that fills `status_snapshot` (ddl/0005).
SNAPSHOT_VIEW = "status_snapshot_mv"
#: The refreshable view that fills `status_rollup` after each snapshot refresh (ddl/0013).
STATUS_ROLLUP_VIEW = "status_rollup_mv"
#: The dimensions of each grain of `status_rollup` (ddl/0013): a query grouped by
#: dimensions of one grain reads the rollup for the whole hours of its windows
#: (`queries/*_rollup.sql`); any other grouping reads `status_snapshot` row by row.
ROLLUP_GRAINS: dict[str, tuple[GroupBy, ...]] = {
    "provider": ("provider", "carrier", "country", "region"),
    "campaign": ("campaign", "carrier", "country", "region"),
}

#: Relative drop of the delivery rate against the previous window that raises `dropped`.
DROP_THRESHOLD = 0.10


@cache
def query_text(name: str) -> str:
    """The SQL of `queries/<name>.sql` (trailing ';' removed for the HTTP interface)."""
    text = (resources.files("sinks.clickhouse") / "queries" / f"{name}.sql").read_text()
    return text.strip().rstrip(";")


def _now(now: datetime | None) -> datetime:
    """Naive UTC for the `DateTime64(3, 'UTC')` parameters."""
    value = now or datetime.now(UTC)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _aware(value: Any) -> Any:
    """ClickHouse returns naive UTC datetimes; hand out aware ones."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def check_groups(by: Grouping, allowed: tuple[GroupBy, ...] = GROUPS) -> tuple[GroupBy, ...]:
    """The one or two distinct dimensions of `by`; ValueError for anything else."""
    names = [n.strip() for n in by.split(",")] if isinstance(by, str) else list(by)
    found: list[GroupBy] = []
    for name in names:
        group = next((g for g in allowed if g == name), None)
        if group is None:
            raise ValueError(f"by must be one of {', '.join(allowed)}, or a pair of them")
        found.append(group)
    if not 1 <= len(found) <= 2 or len(set(found)) != len(found):
        raise ValueError("by takes one dimension or a pair of two different ones")
    return tuple(found)


def _group_params(groups: tuple[GroupBy, ...]) -> dict[str, str]:
    return {"by": groups[0], "by2": groups[-1]}


def rollup_grain(
    groups: tuple[GroupBy, ...], cluster: ClusterSpec | None = None, *, rollup: bool = True
) -> str | None:
    """The `status_rollup` grain whose dimensions hold all of `groups` (`ROLLUP_GRAINS`),
    or None: the query then reads `status_snapshot` only (also with `rollup=False`, and
    on a sharded cluster, whose freshness check covers the snapshot only)."""
    if not rollup or cluster is not None:
        return None
    return next((g for g, dims in ROLLUP_GRAINS.items() if set(groups) <= set(dims)), None)


#: Query over the snapshot -> its form over `status_rollup` (`queries/<form>.sql`, the same
#: rows; `hourly_rollup` is another query, over `hourly_v2`, hence `hourly_status_rollup`).
ROLLUP_FORMS: dict[str, str] = {
    "report": "report_rollup",
    "silent_carriers": "silent_carriers_rollup",
    "reason_spikes": "reason_spikes_rollup",
    "hourly": "hourly_status_rollup",
    "cost": "cost_rollup",
    "compare": "compare_rollup",
    "filtering": "filtering_rollup",
}
#: Rollup form -> the query over the snapshot alone that gives the same rows.
_SNAPSHOT_FORM = {rolled: name for name, rolled in ROLLUP_FORMS.items()}


def query_for(
    name: str,
    parameters: dict[str, Any],
    groups: tuple[GroupBy, ...],
    cluster: ClusterSpec | None,
    rollup: bool,
) -> str:
    """The query to run for `name`: its rollup form (`ROLLUP_FORMS`, with the `grain`
    parameter added) when `rollup_grain` finds one, else `name` itself."""
    grain = rollup_grain(groups, cluster, rollup=rollup)
    if grain is None:
        return name
    parameters["grain"] = grain
    return ROLLUP_FORMS[name]


def _name_groups(row: dict[str, Any], groups: tuple[GroupBy, ...]) -> dict[str, Any]:
    """The row with `grp` / `grp2` under the dimensions' names, first."""
    first, second = row.pop("grp"), row.pop("grp2")
    named: dict[str, Any] = {groups[0]: first}
    if len(groups) == 2:
        named[groups[1]] = second
    return {**named, **row}


_BLOCKS_BEFORE_ROLLUP = (
    "SELECT (SELECT max(max_block_number) FROM system.parts"
    " WHERE database = {db:String} AND table = 'messages' AND active),"
    " (SELECT max(max_block_number) FROM system.parts"
    " WHERE database = {db:String} AND table = 'sends' AND active),"
    " ifNull((SELECT (watermark, sends_watermark) FROM {db:Identifier}.status_snapshot"
    " LIMIT 1), (0, 0)),"
    " (SELECT any(engine) FROM system.tables WHERE database = {db:String} AND name = 'messages')"
)
#: The same and the watermarks `status_rollup` was computed from (ddl/0013).
_BLOCKS = (
    _BLOCKS_BEFORE_ROLLUP + ", ifNull((SELECT (watermark, sends_watermark)"
    " FROM {db:Identifier}.status_rollup LIMIT 1), (0, 0))"
)

#: Per replica of a sharded cluster: its id, the highest insert blocks of its shard's
#: `messages_local` and `sends_local`, and the watermarks of its own
#: `status_snapshot_local` (every replica refreshes its own copy, see cluster.py).
_CLUSTER_BLOCKS = (
    "SELECT node, messages, sends, seen FROM clusterAllReplicas('{cluster}', view("
    "SELECT concat(hostName(), ':', toString(tcpPort())) AS node,"
    " (SELECT max(max_block_number) FROM system.parts"
    "  WHERE database = {{db:String}} AND table = 'messages_local' AND active) AS messages,"
    " (SELECT max(max_block_number) FROM system.parts"
    "  WHERE database = {{db:String}} AND table = 'sends_local' AND active) AS sends,"
    " ifNull((SELECT (watermark, sends_watermark) FROM {{db:Identifier}}.status_snapshot_local"
    "  LIMIT 1), (0, 0)) AS seen))"
)

#: Per node: ((highest insert block of `messages`, of `sends`) now, the same as its
#: snapshot saw).
Blocks = dict[str, tuple[tuple[int, int], tuple[int, int]]]


class ShardedDatabaseError(RuntimeError):
    """A sharded database read without its cluster (the freshness check would be wrong)."""


def _blocks(client: Client, db: str, cluster: ClusterSpec | None) -> Blocks:
    """For one node, or every replica of a cluster: the blocks now and the snapshot's."""
    if cluster is not None:
        result = client.query(_CLUSTER_BLOCKS.format(cluster=cluster.name), parameters={"db": db})
        return {
            str(node): ((int(messages), int(sends)), (int(seen[0]), int(seen[1])))
            for node, messages, sends, seen in result.result_rows
        }
    current, seen, _ = _single_blocks(client, db)
    return {"": (current, seen)}


def _single_blocks(
    client: Client, db: str
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int] | None]:
    """One node: the blocks now, the snapshot's watermarks and the rollup's (None in a
    database migrated only up to before ddl/0013, e.g. while its migrations run)."""
    from clickhouse_connect.driver.exceptions import DatabaseError

    try:
        row = client.query(_BLOCKS, parameters={"db": db}).result_rows[0]
    except DatabaseError as exc:
        if "UNKNOWN_TABLE" not in str(exc) or "status_rollup" not in str(exc):
            raise
        row = [*client.query(_BLOCKS_BEFORE_ROLLUP, parameters={"db": db}).result_rows[0], None]
    messages, sends, seen, engine, rolled = row
    if engine == "Distributed":
        raise ShardedDatabaseError(
            f"{db} is sharded (Distributed tables): pass cluster= (DLR_CLICKHOUSE_CLUSTER)"
        )
    return (
        (int(messages), int(sends)),
        (int(seen[0]), int(seen[1])),
        None if rolled is None else (int(rolled[0]), int(rolled[1])),
    )


def _caught_up(current: tuple[int, int], seen: tuple[int, int]) -> bool:
    return seen[0] >= current[0] and seen[1] >= current[1]


def snapshot_behind(client: Client, database: str, *, cluster: ClusterSpec | None = None) -> bool:
    """True when `messages` or `sends` hold rows inserted after the snapshot's last refresh
    started (one `system.parts` lookup per node; merges keep block numbers, so only
    inserts count).
    """
    blocks = _blocks(client, check_identifier(database), cluster)
    return not all(_caught_up(current, seen) for current, seen in blocks.values())


def _refresh_once(client: Client, db: str, cluster: ClusterSpec | None) -> None:
    view = f"{db}.{SNAPSHOT_VIEW}"
    if cluster is not None and cluster.replicated:
        client.command(f"SYSTEM REFRESH VIEW {view} ON CLUSTER {cluster.name}")
        client.command(f"SYSTEM WAIT VIEW {view} ON CLUSTER {cluster.name}")
        return
    nodes = [client]
    if cluster is not None:
        from sinks.clickhouse.client import connect_url

        nodes = [connect_url(url) for url in cluster.nodes]
    for node in nodes:
        node.command(f"SYSTEM REFRESH VIEW {view}")
    for node in nodes:
        node.command(f"SYSTEM WAIT VIEW {view}")


def refresh(
    client: Client, database: str, *, attempts: int = 3, cluster: ClusterSpec | None = None
) -> None:
    """Refresh `status_snapshot` now and wait for it (`SYSTEM REFRESH VIEW` + `SYSTEM WAIT
    VIEW`, on every node of a cluster): afterwards the report functions see everything
    inserted before this call. Another attempt is made when the refresh that ran had
    started before the call (a scheduled one already running). Raises the server's error
    when the refresh fails.
    """
    db = check_identifier(database)
    targets = {node: current for node, (current, _) in _blocks(client, db, cluster).items()}
    for _ in range(max(1, attempts)):
        _refresh_once(client, db, cluster)
        marks = _blocks(client, db, cluster)
        if all(
            node in marks and _caught_up(target, marks[node][1]) for node, target in targets.items()
        ):
            if cluster is None and _single_blocks(client, db)[2] is not None:
                _refresh_rollup(client, db, marks[""][1], attempts)
            return
    raise RuntimeError(f"{db}.status_snapshot still behind after {attempts} refreshes")


def _refresh_rollup(client: Client, db: str, target: tuple[int, int], attempts: int) -> None:
    """Refresh `status_rollup` (one node) until it is computed from a snapshot that has seen
    `target` (its own refresh follows each snapshot refresh; this one does not wait for
    the schedule)."""
    for _ in range(max(1, attempts)):
        client.command(f"SYSTEM REFRESH VIEW {db}.{STATUS_ROLLUP_VIEW}")
        client.command(f"SYSTEM WAIT VIEW {db}.{STATUS_ROLLUP_VIEW}")
        rolled = _single_blocks(client, db)[2]
        if rolled is None or _caught_up(target, rolled):
            return
    raise RuntimeError(f"{db}.status_rollup still behind after {attempts} refreshes")


def _fresh(client: Client, database: str, exact: bool, cluster: ClusterSpec | None = None) -> None:
    """With `exact`, bring the snapshot (and on one node the rollup computed from it) up to
    date first, only when behind: one lookup when both are current."""
    if not exact:
        return
    if cluster is not None:
        if snapshot_behind(client, database, cluster=cluster):
            refresh(client, database, cluster=cluster)
        return
    db = check_identifier(database)
    current, seen, rolled = _single_blocks(client, db)
    if not _caught_up(current, seen):
        refresh(client, db)
    elif rolled is not None and not _caught_up(seen, rolled):
        _refresh_rollup(client, db, seen, 3)


def _check_window(seconds: int, name: str) -> int:
    if seconds <= 0 or seconds > 4_294_967_295 // 2:
        raise ValueError(f"{name} must be a positive number of seconds")
    return int(seconds)


def _rows(client: Client, name: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    from clickhouse_connect.driver.exceptions import DatabaseError

    try:
        result = client.query(query_text(name), parameters=parameters)
    except DatabaseError as exc:
        # a rollup query on a database migrated only up to before ddl/0013 (while its
        # migrations run): the same numbers from the snapshot alone
        if name not in _SNAPSHOT_FORM or "UNKNOWN_TABLE" not in str(exc):
            raise
        plain = {k: v for k, v in parameters.items() if k != "grain"}
        result = client.query(query_text(_SNAPSHOT_FORM[name]), parameters=plain)
    return [
        {col: _aware(value) for col, value in zip(result.column_names, row, strict=True)}
        for row in result.result_rows
    ]


def report(
    client: Client,
    database: str,
    by: Grouping,
    since_s: int,
    now: datetime | None = None,
    *,
    drop_threshold: float = DROP_THRESHOLD,
    exact: bool = True,
    attempts: Attempts = "sends",
    unreported_after_s: int = 3600,
    cluster: ClusterSpec | None = None,
    rollup: bool = True,
) -> list[dict[str, Any]]:
    """Per group: attempts, delivered, delivery rate, failure-reason mix, p50/p95
    time-to-deliver, and whether the rate dropped more than `drop_threshold` (relative)
    against the previous window of the same length, and the messages per
    `carrier_source` (the evidence behind the carrier names; `unrecorded` for messages
    stored before the enrichment). Worst delivery rate first. `by` may be a pair
    (`"country,carrier"`): the drop flag is then per pair.
    `attempts="sends"` (default): registered messages without any receipt
    `unreported_after_s` after submission are attempts too (`unreported`); `"final"`:
    only messages in a final state (`final_attempts`; both are in every row).
    `exact=False`: read the snapshot as it is (up to a minute old, never refreshes).
    Groups of one `ROLLUP_GRAINS` grain read `status_rollup` for the whole hours of the
    windows (`queries/report_rollup.sql`, the same numbers); `rollup=False` reads
    `status_snapshot` only (`queries/report.sql`).
    """
    groups = check_groups(by)
    if attempts not in ("sends", "final"):
        raise ValueError("attempts must be sends or final")
    parameters = {
        "db": check_identifier(database),
        **_group_params(groups),
        "since_s": _check_window(since_s, "since_s"),
        "now": _now(now),
        "drop": float(drop_threshold),
        "sends": 1 if attempts == "sends" else 0,
        "unreported_after_s": _check_window(unreported_after_s, "unreported_after_s"),
    }
    query = query_for("report", parameters, groups, cluster, rollup)
    _fresh(client, database, exact, cluster)
    rows = _rows(client, query, parameters)
    out: list[dict[str, Any]] = []
    for row in rows:
        ttd = row["ttd"] or [None, None]
        samples = int(row["ttd_samples"])
        named: dict[str, Any] = {groups[0]: row["grp"]}
        if len(groups) == 2:
            named[groups[1]] = row["grp2"]
        out.append(
            {
                **named,
                "messages": int(row["messages"]),
                "attempts": int(row["attempts"]),
                "final_attempts": int(row["final_attempts"]),
                "unreported": int(row["unreported"]),
                "delivered": int(row["delivered"]),
                "delivery_rate": _number(row["delivery_rate"]),
                "failure_reasons": {
                    str(k): int(v) for k, v in sorted(dict(row["failure_reasons"]).items())
                },
                "ttd_p50_s": _number(ttd[0]) if samples else None,
                "ttd_p95_s": _number(ttd[1]) if samples else None,
                "previous_attempts": int(row["previous_attempts"]),
                "previous_delivered": int(row["previous_delivered"]),
                "previous_delivery_rate": _number(row["previous_delivery_rate"]),
                "dropped": bool(row["dropped"]),
                "carrier_sources": {
                    str(k): int(v) for k, v in sorted(dict(row["carrier_sources"]).items())
                },
            }
        )
    return out


def stuck(
    client: Client,
    database: str,
    hours: float,
    now: datetime | None = None,
    *,
    limit: int = 1000,
    exact: bool = True,
    cluster: ClusterSpec | None = None,
) -> list[dict[str, Any]]:
    """Messages still not final `hours` after their first event, oldest first. `hours`
    may be fractional (1.5 = 90 minutes); it is taken to the second.
    """
    if not 0 <= hours <= 4_294_967_295 / 3600:
        raise ValueError("hours must not be negative")
    parameters = {
        "db": check_identifier(database),
        "seconds": round(hours * 3600),
        "now": _now(now),
        "limit": max(1, int(limit)),
    }
    _fresh(client, database, exact, cluster)
    return _rows(client, "stuck", parameters)


def silent_carriers(
    client: Client,
    database: str,
    since_s: int,
    now: datetime | None = None,
    *,
    min_messages: int = 1,
    exact: bool = True,
    cluster: ClusterSpec | None = None,
    rollup: bool = True,
) -> list[dict[str, Any]]:
    """Carriers with traffic in the window and not one delivered message. Reads
    `status_rollup` for the whole hours (`queries/silent_carriers_rollup.sql`, the same
    numbers, arrays sorted); `rollup=False`: the snapshot only."""
    parameters = {
        "db": check_identifier(database),
        "since_s": _check_window(since_s, "since_s"),
        "now": _now(now),
        "min_messages": max(1, int(min_messages)),
    }
    query = query_for("silent_carriers", parameters, ("carrier", "provider"), cluster, rollup)
    _fresh(client, database, exact, cluster)
    return _rows(client, query, parameters)


def reason_spikes(
    client: Client,
    database: str,
    since_s: int,
    now: datetime | None = None,
    *,
    by: Grouping = "carrier",
    factor: float = 2.0,
    min_count: int = 10,
    exact: bool = True,
    cluster: ClusterSpec | None = None,
    rollup: bool = True,
) -> list[dict[str, Any]]:
    """Failure reasons whose share of a group's attempts grew at least `factor` times
    against the previous window of the same length (largest jump first). Groups of one
    grain read `status_rollup` for the whole hours (`queries/reason_spikes_rollup.sql`, the
    same numbers); `rollup=False`: the snapshot only.
    """
    if factor < 1:
        raise ValueError("factor must be at least 1")
    groups = check_groups(by)
    parameters = {
        "db": check_identifier(database),
        **_group_params(groups),
        "since_s": _check_window(since_s, "since_s"),
        "now": _now(now),
        "factor": float(factor),
        "min_count": max(1, int(min_count)),
    }
    query = query_for("reason_spikes", parameters, groups, cluster, rollup)
    _fresh(client, database, exact, cluster)
    rows = _rows(client, query, parameters)
    return [
        {
            **_name_groups({"grp": row["grp"], "grp2": row["grp2"]}, groups),
            "reason": row["reason"],
            "count": int(row["count"]),
            "attempts": int(row["attempts"]),
            "share": _number(row["share"]),
            "previous_count": int(row["previous_count"]),
            "previous_attempts": int(row["previous_attempts"]),
            "previous_share": _number(row["previous_share"]),
        }
        for row in rows
    ]


def unreported(
    client: Client,
    database: str,
    since_s: int,
    now: datetime | None = None,
    *,
    unreported_after_s: int = 3600,
    exact: bool = True,
    cluster: ClusterSpec | None = None,
) -> list[dict[str, Any]]:
    """Registered messages without any receipt, per provider and carrier
    (`queries/unreported.sql`): registered, unreported, still waiting, the unreported
    share, their countries and the oldest one. Worst share first."""
    parameters = {
        "db": check_identifier(database),
        "since_s": _check_window(since_s, "since_s"),
        "now": _now(now),
        "unreported_after_s": _check_window(unreported_after_s, "unreported_after_s"),
    }
    _fresh(client, database, exact, cluster)
    rows = _rows(client, "unreported", parameters)
    for row in rows:
        row["share"] = _number(row["share"])
        for name in ("registered", "unreported", "waiting"):
            row[name] = int(row[name])
        row["countries"] = sorted(str(c) for c in row["countries"])
    return rows


_QUANTILES = ("ttd_p50_s", "ttd_p90_s", "ttd_p95_s", "ttd_p99_s")
_HOURLY_COUNTS = (
    "messages",
    "attempts",
    "delivered",
    "undelivered",
    "failed",
    "rejected",
    "expired",
    "unknown",
    "ttd_samples",
)


def _window_params(
    database: str, groups: tuple[GroupBy, ...], since_s: int, now: datetime | None
) -> dict[str, Any]:
    """db, group, since_s and now: the parameters of a query over one window (hourly,
    insights)."""
    return {
        "db": check_identifier(database),
        **_group_params(groups),
        "since_s": _check_window(since_s, "since_s"),
        "now": _now(now),
    }


def hourly(
    client: Client,
    database: str,
    by: Grouping,
    since_s: int,
    now: datetime | None = None,
    *,
    exact: bool = True,
    cluster: ClusterSpec | None = None,
    rollup: bool = True,
) -> list[dict[str, Any]]:
    """Hourly trend per group (`queries/hourly.sql`, what `dlr report --report hourly`
    prints): the messages first seen in `[now - since_s, now)`, bucketed by the hour of
    their first event, from `status_snapshot` like `report()`, so exact: summed over a
    group's hours, attempts, delivered and the failure-reason mix equal `report()`'s for
    the same window. Per row: hour, group, messages, attempts, delivered, delivery_rate,
    undelivered, failed, rejected, expired, unknown, failure_reasons, ttd_samples and the
    exact ttd_p50_s / ttd_p90_s / ttd_p95_s / ttd_p99_s (None without samples). Oldest
    hour first. `exact=False`: read the snapshot as it is (never refreshes). Groups of one
    grain read `status_rollup` for the whole hours (`queries/hourly_status_rollup.sql`,
    the same numbers), as `report()` does.
    """
    groups = check_groups(by)
    parameters = _window_params(database, groups, since_s, now)
    query = query_for("hourly", parameters, groups, cluster, rollup)
    _fresh(client, database, exact, cluster)
    out: list[dict[str, Any]] = []
    for found in _rows(client, query, parameters):
        hour = found.pop("hour")
        row = {"hour": hour, **_name_groups(found, groups)}
        samples = int(row["ttd_samples"])
        quantiles = row.pop("ttd_p50_p90_p95_p99_s") or [None] * len(_QUANTILES)
        for name in _HOURLY_COUNTS:
            row[name] = int(row[name])
        row["delivery_rate"] = _number(row["delivery_rate"])
        row["failure_reasons"] = {
            str(k): int(v) for k, v in sorted(dict(row["failure_reasons"]).items())
        }
        row.update(
            (name, _number(q) if samples else None)
            for name, q in zip(_QUANTILES, quantiles, strict=True)
        )
        out.append(row)
    return out


def hourly_rollup(
    client: Client,
    database: str,
    by: Grouping,
    since_s: int,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Hourly rollup per group from the pre-aggregated `hourly_v2` table
    (`queries/hourly_rollup.sql`, for dashboards): current at every insert (the table is
    fed by a materialized view, nothing is refreshed), but bucketed by the hour events
    arrived, a superseded final stays in its old column, and the quantiles are t-digest
    estimates (see README.md). Whole hours from the one holding `now - since_s`. Use
    `hourly()` for exact numbers. Only the dimensions `hourly_v2` keeps (`ROLLUP_GROUPS`).
    """
    groups = check_groups(by, ROLLUP_GROUPS)
    parameters = _window_params(database, groups, since_s, now)
    out: list[dict[str, Any]] = []
    for found in _rows(client, "hourly_rollup", parameters):
        hour = found.pop("hour")
        row = {"hour": hour, **_name_groups(found, groups)}
        quantiles = [_number(q) for q in row.pop("ttd_p50_p90_p95_p99_s")]
        row["delivery_rate"] = _number(row["delivery_rate"])
        row["failure_reasons"] = {str(k): int(v) for k, v in dict(row["failure_reasons"]).items()}
        row.update(zip(_QUANTILES, quantiles, strict=True))
        out.append(row)
    return out
