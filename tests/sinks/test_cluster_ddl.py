"""The cluster form of the DDL (`sinks/clickhouse/cluster.py`), for every file in `ddl/`.

The files are iterated, not listed: a migration added later is checked the same way.
Every statement of the cluster form must parse with ClickHouse's own parser
(`formatQuery` on the session server); the rules are checked on the statements and on
small examples. Running the per-node form for real is `test_sharded_clickhouse.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from sinks.clickhouse.cluster import (
    SHARD_KEYS,
    ClusterDDLError,
    ClusterSpec,
    Objects,
    Statement,
    analyze,
    cluster_form,
    cluster_statements,
)
from sinks.clickhouse.migrate import BOOTSTRAP, ddl_files, render, statements, template_statements

DB = "dlr_test"
VALUES = {"db": DB, "retention_days": "180", "clear_pii_days": "30", "audit_retention_days": "2190"}
REPLICATED = ClusterSpec("prod")
PER_NODE = ClusterSpec("dlr_local", ("http://127.0.0.1:1", "http://127.0.0.1:2"))


def every_statement() -> list[tuple[str, str]]:
    """(file, statement) of the bookkeeping table and of every DDL file."""
    out = [("bootstrap", render(BOOTSTRAP, VALUES))]
    for name, text in ddl_files():
        out += [(name, statement) for statement in statements(render(text, VALUES))]
    return out


@pytest.fixture(scope="module")
def objects() -> Objects:
    return analyze(template_statements(VALUES), DB)


def forms(spec: ClusterSpec, objects: Objects) -> Iterator[tuple[str, str, list[Statement]]]:
    for name, sql in every_statement():
        yield name, sql, cluster_form(sql, DB, spec, objects)


def test_the_files_define_what_the_rules_expect(objects: Objects) -> None:
    # If this changes, read the rules in cluster.py again: they were checked for this.
    assert {"schema_migrations", "events", "messages", "status_snapshot"} <= objects.sharded
    assert set(SHARD_KEYS) <= objects.sharded
    assert "message_status" in objects.views
    assert objects.refreshed == {"status_snapshot", "status_rollup"}
    assert not {o for o in objects.sharded | objects.views if o.endswith("_local")}


@pytest.mark.parametrize("spec", [REPLICATED, PER_NODE], ids=["keeper", "no-keeper"])
def test_every_statement_of_every_file_has_a_cluster_form(
    spec: ClusterSpec, objects: Objects
) -> None:
    for name, _, out in forms(spec, objects):
        assert out, name
        for statement in out:
            on_cluster = f"ON CLUSTER {spec.name}" in statement.sql
            if statement.everywhere:
                assert on_cluster == spec.replicated, (name, statement.sql[:120])
            else:
                assert not on_cluster and statement.sql.lstrip().upper().startswith("INSERT")
            assert ("Replicated" in statement.sql) <= spec.replicated, name


def _created(out: list[Statement]) -> list[str]:
    return [
        m.group(1)
        for s in out
        if (m := re.match(rf"CREATE TABLE IF NOT EXISTS {DB}\.(\w+)", s.sql.strip()))
    ]


def test_each_table_is_a_replicated_local_table_and_a_distributed_one(objects: Objects) -> None:
    seen: set[str] = set()
    for _, sql, out in forms(REPLICATED, objects):
        for table in _created(out):
            seen.add(table)
        for statement in out:
            text = statement.sql
            if " ENGINE = Distributed(" not in text:
                continue
            name = re.search(rf"CREATE TABLE IF NOT EXISTS {DB}\.(\w+)", text).group(1)  # type: ignore[union-attr]
            assert f"AS {DB}.{name}_local" in text
            key = SHARD_KEYS.get(name) or (
                "sipHash64(message_id)" if re.search(r"\bmessage_id\s", sql) else "rand()"
            )
            assert text.rstrip().endswith(f"'{name}_local', {key})"), text
            local = next(s.sql for s in out if f"{DB}.{name}_local ON CLUSTER" in s.sql)
            if name in objects.refreshed:  # every replica refreshes its own copy
                assert "Replicated" not in local
            else:
                assert f"'/clickhouse/tables/{{shard}}/{DB}/{name}_local', '{{replica}}'" in local
    assert {t for t in seen if not t.endswith("_local")} == objects.sharded
    assert {t[: -len("_local")] for t in seen if t.endswith("_local")} == objects.sharded


def test_every_materialized_view_reads_and_writes_its_own_shard(objects: Objects) -> None:
    views = 0
    for _, _, out in forms(REPLICATED, objects):
        for statement in out:
            if "CREATE MATERIALIZED VIEW" not in statement.sql:
                continue
            views += 1
            target = re.search(rf"\bTO {DB}\.(\w+)", statement.sql)
            assert target is not None
            if target.group(1) in SHARD_KEYS:  # rows of another key: routed to their shard
                continue
            refs = set(re.findall(rf"\b{DB}\.(\w+)", statement.sql))
            global_refs = {r for r in refs if r in objects.localized}
            assert not global_refs, f"a view reads other shards: {global_refs}"
            assert target.group(1).endswith("_local")
            assert (
                "table = 'messages'" not in statement.sql and "table = 'sends'" not in statement.sql
            )
    assert views >= 3


def test_a_backfill_runs_on_each_shard_and_returns_through_the_distributed_table(
    objects: Objects,
) -> None:
    inserts = [s for _, _, out in forms(REPLICATED, objects) for s in out if not s.everywhere]
    assert inserts, "0006 backfills hourly_v2"
    for statement in inserts:
        head, _, query = statement.sql.partition("SELECT * FROM cluster('prod', view(")
        assert re.match(rf"INSERT INTO {DB}\.\w+\s*$", head.strip() + " "), head
        assert "_local" in query
        assert not {r for r in re.findall(rf"\b{DB}\.(\w+)", query) if r in objects.localized}


@pytest.mark.integration
@pytest.mark.parametrize("spec", [REPLICATED, PER_NODE], ids=["keeper", "no-keeper"])
def test_clickhouse_parses_every_generated_statement(
    clickhouse_url: str, spec: ClusterSpec, objects: Objects
) -> None:
    from deploy.settings import Settings
    from sinks.clickhouse.client import connect

    client = connect(Settings(clickhouse_url=clickhouse_url))
    generated = cluster_statements(template_statements(VALUES), DB, spec, objects)
    # One round trip: ClickHouse formats each statement with its own parser, or fails.
    formatted = client.query(
        "SELECT arrayMap(q -> formatQuery(q), %(qs)s)",
        parameters={"qs": [s.sql for s in generated]},
    ).result_rows[0][0]
    assert len(formatted) == len(generated)
    for statement, text in zip(generated, formatted, strict=True):
        if statement.everywhere and spec.replicated:
            assert f"ON CLUSTER {spec.name}" in text, text[:200]


#: (what a migration says, on which cluster kind, what the cluster runs), one per rule.
EXAMPLES = [
    pytest.param(
        f"ALTER TABLE {DB}.events ADD COLUMN IF NOT EXISTS tag String, DROP COLUMN raw_sha256",
        REPLICATED,
        [
            f"ALTER TABLE {DB}.events_local ON CLUSTER prod ADD COLUMN IF NOT EXISTS tag String,"
            " DROP COLUMN raw_sha256",
            f"ALTER TABLE {DB}.events ON CLUSTER prod ADD COLUMN IF NOT EXISTS tag String,"
            " DROP COLUMN raw_sha256",
        ],
        id="column changes reach the Distributed table too",
    ),
    pytest.param(
        f"ALTER TABLE {DB}.events MODIFY TTL toDateTime(received_at) + INTERVAL 90 DAY",
        PER_NODE,
        [f"ALTER TABLE {DB}.events_local MODIFY TTL toDateTime(received_at) + INTERVAL 90 DAY"],
        id="other alters run on the local tables only",
    ),
    pytest.param(
        f"ALTER TABLE {DB}.messages_mv MODIFY QUERY SELECT message_id FROM {DB}.events",
        REPLICATED,
        [
            f"ALTER TABLE {DB}.messages_mv ON CLUSTER prod MODIFY QUERY "
            f"SELECT message_id FROM {DB}.events_local"
        ],
        id="a view's new query reads its own shard",
    ),
    pytest.param(
        f"DROP TABLE IF EXISTS {DB}.hourly",
        REPLICATED,
        [
            f"DROP TABLE IF EXISTS {DB}.hourly ON CLUSTER prod",
            f"DROP TABLE IF EXISTS {DB}.hourly_local ON CLUSTER prod",
        ],
        id="dropping a table drops both halves",
    ),
    pytest.param(
        f"DROP VIEW {DB}.hourly_mv", PER_NODE, [f"DROP VIEW {DB}.hourly_mv"], id="drop a view"
    ),
]


@pytest.mark.parametrize(("sql", "spec", "expected"), EXAMPLES)
def test_rule_examples(sql: str, spec: ClusterSpec, expected: list[str], objects: Objects) -> None:
    out = cluster_form(sql, DB, spec, objects)
    assert [s.sql for s in out] == expected
    assert all(s.everywhere for s in out)


def test_plain_inserts_go_through_the_distributed_table_once(objects: Objects) -> None:
    out = cluster_form(f"INSERT INTO {DB}.events (event_id) VALUES ('x')", DB, REPLICATED, objects)
    assert out == [Statement(f"INSERT INTO {DB}.events (event_id) VALUES ('x')", everywhere=False)]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (f"CREATE TABLE {DB}.buffer (x UInt8) ENGINE = Memory", "MergeTree"),
        (
            f"CREATE MATERIALIZED VIEW {DB}.m ENGINE = MergeTree ORDER BY x AS SELECT 1 AS x",
            "TO <table>",
        ),
        (f"RENAME TABLE {DB}.events TO {DB}.events_old", "no cluster form"),
        (
            f"ALTER TABLE {DB}.events ADD COLUMN x String, MODIFY TTL toDateTime(received_at)",
            "split",
        ),
    ],
)
def test_statements_without_a_rule_are_refused(sql: str, message: str, objects: Objects) -> None:
    with pytest.raises(ClusterDDLError, match=message):
        cluster_form(sql, DB, REPLICATED, objects)


def test_local_names_are_reserved() -> None:
    with pytest.raises(ClusterDDLError, match="reserved"):
        analyze([f"CREATE TABLE {DB}.x_local (a UInt8) ENGINE = MergeTree ORDER BY a"], DB)


def test_cluster_names_are_identifiers() -> None:
    with pytest.raises(ValueError, match="cluster name"):
        ClusterSpec("prod; DROP DATABASE x")
