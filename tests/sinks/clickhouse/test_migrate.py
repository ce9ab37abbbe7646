"""DDL files and the migration runner, without a server: naming, rendering, splitting, and
the lifecycle constants the SQL repeats (kept equal to schemas/lifecycle.py)."""

from __future__ import annotations

import re

import pytest

from schemas.lifecycle import ATTEMPTS, DEFAULT_REASON, FINAL, RANK, State
from sinks.clickhouse import migrate
from streams.state_machine import PRECEDENCE

VALUES = {
    "db": "dlr_test",
    "retention_days": "180",
    "clear_pii_days": "30",
    "audit_retention_days": "2190",
}


def all_sql() -> str:
    return "\n".join(text for _, text in migrate.ddl_files())


def marked(marker: str, context: int = 0) -> list[str]:
    """The code on each line tagged `-- <marker>` plus `context` lines before it."""
    lines = all_sql().splitlines()
    found = []
    for i, line in enumerate(lines):
        if re.search(rf"--\s*{re.escape(marker)}\s*$", line):
            block = lines[i - context : i + 1]
            found.append(" ".join(part.split("--", 1)[0] for part in block))
    assert found, f"no line tagged {marker}"
    return found


def strings(code: str) -> list[str]:
    return re.findall(r"'([a-z_]+)'", code)


def lists(code: str) -> list[list[str]]:
    return [re.findall(r"'?([a-z_0-9]+)'?", inner) for inner in re.findall(r"\[([^\]]*)\]", code)]


def test_files_are_ordered_and_numbered() -> None:
    names = [name for name, _ in migrate.ddl_files()]
    assert names == sorted(names)
    assert names[0] == "0001_events.sql"
    assert len({name[:4] for name in names}) == len(names)


def test_every_placeholder_is_known_and_filled() -> None:
    for name, text in migrate.ddl_files():
        rendered = migrate.render(text, VALUES)
        assert "{" not in rendered and "}" not in rendered, name
        assert "dlr_test." in rendered


def test_unknown_placeholder_is_an_error() -> None:
    with pytest.raises(migrate.MigrationError, match="tenant"):
        migrate.render("SELECT 1 FROM {db}.{tenant}", VALUES)


def test_statements_split_at_line_final_semicolons_only() -> None:
    sql = """-- leading comment; not a statement end
CREATE TABLE a (x String DEFAULT 'a;b');
-- between
CREATE VIEW b AS SELECT 1
;
-- trailing comment only
"""
    assert migrate.statements(sql) == [
        "-- leading comment; not a statement end\nCREATE TABLE a (x String DEFAULT 'a;b')",
        "-- between\nCREATE VIEW b AS SELECT 1",
    ]


def test_every_statement_is_rerunnable() -> None:
    for name, text in migrate.ddl_files():
        for statement in migrate.statements(migrate.render(text, VALUES)):
            code = "\n".join(
                line for line in statement.splitlines() if not line.strip().startswith("--")
            )
            # re-runnable: IF [NOT] EXISTS, OR REPLACE (a view), or a backfill into
            # idempotent aggregates (hourly_v2, messages) or a ReplacingMergeTree keyed by
            # the whole row (client_refs)
            assert re.match(
                r"\s*(CREATE (TABLE|VIEW|MATERIALIZED VIEW) IF NOT EXISTS"
                r"|CREATE OR REPLACE VIEW"
                r"|DROP (TABLE|VIEW) IF EXISTS"
                r"|ALTER TABLE \S+\s+ADD COLUMN IF NOT EXISTS"
                r"|INSERT INTO dlr_test\.(hourly_v2|client_refs|messages)\s+SELECT)",
                code,
            ), (name, code[:80])
            assert code.count("ADD COLUMN") == code.count("ADD COLUMN IF NOT EXISTS"), name


def test_ttls_come_from_the_parameters() -> None:
    events = migrate.render(dict(migrate.ddl_files())["0001_events.sql"], VALUES)
    assert "INTERVAL 180 DAY DELETE" in events
    assert events.count("INTERVAL 30 DAY") == 2  # recipient_clear, sender_clear


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("dlr; DROP TABLE x", id="injection"),
        pytest.param("1dlr", id="leading-digit"),
        pytest.param("", id="empty"),
        pytest.param("dlr-test", id="dash"),
        pytest.param("a" * 200, id="too-long"),
    ],
)
def test_database_names_are_plain_identifiers(name: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        migrate.check_identifier(name)


def test_attempt_lists_equal_lifecycle_attempts() -> None:
    for code in marked("lifecycle.ATTEMPTS"):
        assert set(strings(code)) == {str(s) for s in ATTEMPTS}, code


def test_final_lists_equal_lifecycle_final() -> None:
    for code in marked("lifecycle.FINAL"):
        assert set(strings(code)) == {str(s) for s in FINAL}, code


def test_rank_table_equals_lifecycle_rank() -> None:
    for code in marked("lifecycle.RANK", context=2):
        states, ranks, *_ = lists(code)
        assert dict(zip(states, map(int, ranks), strict=True)) == {
            str(s): r for s, r in RANK.items()
        }


def test_precedence_table_equals_the_state_machine() -> None:
    for code in marked("state_machine.PRECEDENCE", context=2):
        states, ranks, *_ = lists(code)
        assert dict(zip(states, map(int, ranks), strict=True)) == {
            str(s): r for s, r in PRECEDENCE.items()
        }


def test_tier_follows_final_key() -> None:
    for code in marked("state_machine.final_key tier"):
        states, tiers = lists(code)[:2]
        assert dict(zip(states, map(int, tiers), strict=True)) == {
            str(State.DELIVERED): 2,
            str(State.UNKNOWN): 0,
        }
        assert re.search(r"\],\s*1\)", code)  # every other state: 1


def test_default_reasons_equal_lifecycle() -> None:
    for code in marked("lifecycle.DEFAULT_REASON", context=1):
        states, reasons = lists(code)[:2]
        assert dict(zip(states, reasons, strict=True)) == {
            str(s): str(r) for s, r in DEFAULT_REASON.items()
        }
