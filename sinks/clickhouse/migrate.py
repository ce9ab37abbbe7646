"""Apply the reviewed DDL files in `ddl/` to a database, in order, each once.

Files are `NNNN_<what>.sql`, applied by name order. A file may hold several statements,
each ending with `;` at the end of a line. Placeholders: `{db}` (the database),
`{retention_days}` and `{clear_pii_days}` (row and clear-phone-number TTLs, from settings
`DLR_RETENTION_DAYS` / `DLR_CLEAR_PII_DAYS`), `{audit_retention_days}` (the erasure audit's
TTL, `DLR_ERASURE_AUDIT_DAYS`). Every statement is written to be re-runnable
(`IF NOT EXISTS`), because ClickHouse DDL is not transactional: a file that failed half way
is simply applied again. `{db}.schema_migrations` records each applied file with the
checksum of its text; a recorded file whose text changed is refused (add a new file
instead). The TTL values are fixed when a file is applied: changing the settings later
needs a new migration (`ALTER TABLE ... MODIFY TTL`).

On a sharded cluster (`cluster=`, from `DLR_CLICKHOUSE_CLUSTER`) every statement, the
bookkeeping table's included, is replaced by its cluster form (`cluster.py`: `_local`
tables ON CLUSTER with Replicated engines, Distributed tables over them); without Keeper
the definitions are run on every node of `cluster.nodes` instead of ON CLUSTER. A
database is single-node or sharded from its first migration on: switching an existing
one is not a migration (copy the data into a new database).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING

from sinks.clickhouse.cluster import ClusterSpec, Objects, Statement, analyze, cluster_form

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

#: Settings of every migration statement: an INSERT into a Distributed table is on its
#: shards when the statement returns (not queued on the node that received it).
STATEMENT_SETTINGS = {"distributed_foreground_insert": 1}

#: Database names we accept (they are spliced into DDL, so nothing else may pass).
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_FILE = re.compile(r"^\d{4}_[a-z0-9_]+\.sql$")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
#: A statement that creates a refreshable view (its first refresh starts at once).
_REFRESHABLE = re.compile(r"\bREFRESH\s+(EVERY|AFTER)\b", re.IGNORECASE)

BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS {db}.schema_migrations
(
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY name
"""


class MigrationError(RuntimeError):
    """A migration cannot be applied (bad name, changed file, unknown placeholder)."""


def check_identifier(name: str) -> str:
    """The name itself when it is a plain identifier; raises ValueError otherwise."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a valid ClickHouse identifier: {name!r}")
    return name


def ddl_files() -> list[tuple[str, str]]:
    """(name, text) of every DDL file, in application order."""
    folder = resources.files("sinks.clickhouse") / "ddl"
    found = [(entry.name, entry.read_text()) for entry in folder.iterdir() if entry.is_file()]
    for name, _ in found:
        if name.endswith(".sql") and not _FILE.match(name):
            raise MigrationError(f"DDL file {name!r} is not named NNNN_<what>.sql")
    return sorted((name, text) for name, text in found if name.endswith(".sql"))


def checksum(text: str) -> str:
    """SHA-256 of a file's template text (before placeholders are filled)."""
    return hashlib.sha256(text.encode()).hexdigest()


def render(text: str, values: dict[str, str]) -> str:
    """Fill the placeholders; an unknown placeholder is an error, never left in the SQL."""

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise MigrationError(f"unknown placeholder {{{key}}} in DDL")
        return values[key]

    return _PLACEHOLDER.sub(fill, text)


def statements(sql: str) -> list[str]:
    """Split a file into statements: each ends with ';' at the end of a line."""
    out: list[str] = []
    current: list[str] = []
    for line in sql.splitlines():
        current.append(line)
        code = line.strip()
        if code.endswith(";") and not code.startswith("--"):
            out.append("\n".join(current).rstrip().rstrip(";").strip())
            current = []
    out.append("\n".join(current).strip())
    return [s for s in out if _has_code(s)]


def _has_code(statement: str) -> bool:
    return any(
        line.strip() and not line.strip().startswith("--") for line in statement.splitlines()
    )


def applied(client: Client, database: str) -> dict[str, str]:
    """name -> checksum of the migrations already applied to `database`."""
    db = check_identifier(database)
    result = client.query(
        f"SELECT name, argMax(checksum, applied_at) FROM {db}.schema_migrations GROUP BY name"
    )
    return {str(name): str(digest) for name, digest in result.result_rows}


def template_statements(values: dict[str, str]) -> list[str]:
    """Every statement the runner may apply (bookkeeping first), placeholders filled."""
    return [render(BOOTSTRAP, values)] + [
        statement for _, text in ddl_files() for statement in statements(render(text, values))
    ]


class _Target:
    """Runs statements on one node, or in their cluster form on a sharded cluster."""

    def __init__(
        self, client: Client, db: str, values: dict[str, str], cluster: ClusterSpec | None
    ) -> None:
        self.client = client
        self.db = db
        self.cluster = cluster
        self.objects = (
            analyze(template_statements(values), db) if cluster is not None else Objects()
        )
        self.nodes: Sequence[Client] = [client]
        if cluster is not None and not cluster.replicated:
            from sinks.clickhouse.client import connect_url

            self.nodes = [connect_url(url) for url in cluster.nodes]

    def forms(self, sql: str) -> list[Statement]:
        if self.cluster is None:
            return [Statement(sql, everywhere=False)]
        return cluster_form(sql, self.db, self.cluster, self.objects)

    def run(self, sql: str) -> None:
        for statement in self.forms(sql):
            targets = self.nodes if statement.everywhere else [self.client]
            for node in targets:
                node.command(statement.sql, settings=STATEMENT_SETTINGS)

    def pause_refreshes(self, wait_s: float = 60.0) -> None:
        """Stop the database's refreshable views and wait out a refresh in flight.

        A refresh that started before an `ALTER TABLE` of its target swaps in a table of
        the old columns when it ends, and the view created next then fails (THERE_IS_NO_COLUMN).
        """
        for node in self.nodes:
            for view in self._refreshable(node):
                node.command(f"SYSTEM STOP VIEW {self.db}.{view}")
            deadline = time.monotonic() + wait_s
            while self._running(node) and time.monotonic() < deadline:
                time.sleep(0.1)

    def resume_refreshes(self) -> None:
        """Start every refreshable view of the database again (the new ones too)."""
        for node in self.nodes:
            for view in self._refreshable(node):
                node.command(f"SYSTEM START VIEW {self.db}.{view}")

    def _refreshable(self, node: Client) -> list[str]:
        rows = node.query(
            "SELECT view FROM system.view_refreshes WHERE database = {db:String}",
            parameters={"db": self.db},
        ).result_rows
        return [check_identifier(str(row[0])) for row in rows]

    def _running(self, node: Client) -> bool:
        rows = node.query(
            "SELECT count() FROM system.view_refreshes "
            "WHERE database = {db:String} AND status = 'Running'",
            parameters={"db": self.db},
        ).result_rows
        return bool(rows and rows[0][0])

    def create_database(self) -> None:
        if self.cluster is not None and self.cluster.replicated:
            self.client.command(
                f"CREATE DATABASE IF NOT EXISTS {self.db} ON CLUSTER {self.cluster.name}"
            )
            return
        for node in self.nodes:
            node.command(f"CREATE DATABASE IF NOT EXISTS {self.db}")


def migrate(
    client: Client,
    database: str,
    *,
    retention_days: int = 180,
    clear_pii_days: int = 30,
    cluster: ClusterSpec | None = None,
    audit_retention_days: int = 2190,
) -> list[str]:
    """Create `database` and apply the DDL files not yet applied; returns their names.

    With `cluster`, in their cluster form on every shard (see the module docstring).
    """
    db = check_identifier(database)
    if retention_days < 1 or clear_pii_days < 1 or audit_retention_days < 1:
        raise ValueError("retention_days, clear_pii_days and audit_retention_days must be >= 1")
    values = {
        "db": db,
        "retention_days": str(int(retention_days)),
        "clear_pii_days": str(int(clear_pii_days)),
        "audit_retention_days": str(int(audit_retention_days)),
    }
    target = _Target(client, db, values, cluster)
    target.create_database()
    target.run(render(BOOTSTRAP, values))
    done = applied(client, db)
    pending: list[tuple[str, str, str]] = []
    for name, text in ddl_files():
        digest = checksum(text)
        if name in done:
            if done[name] != digest:
                raise MigrationError(
                    f"{name} changed after it was applied to {db}; add a new migration instead"
                )
            continue
        pending.append((name, text, digest))
    if not pending:
        return []
    target.pause_refreshes()
    try:
        for name, text, digest in pending:
            for statement in statements(render(text, values)):
                target.run(statement)
                if _REFRESHABLE.search(statement):
                    # A new view refreshes at once; a later ALTER of its target in this
                    # run must not race that refresh, so stop it until the run ends.
                    target.pause_refreshes()
            client.insert(
                "schema_migrations",
                [[name, digest]],
                database=db,
                column_names=["name", "checksum"],
                settings=STATEMENT_SETTINGS,
            )
    finally:
        target.resume_refreshes()
    return [name for name, _, _ in pending]
