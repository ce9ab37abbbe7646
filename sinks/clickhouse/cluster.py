"""The cluster form of the single-node DDL: how the migrations run on a sharded ClickHouse.

The DDL files in `ddl/` are written for one node. With `DLR_CLICKHOUSE_CLUSTER` set,
`migrate.py` does not run them as they are: every statement goes through `cluster_form`,
which derives the statements a sharded cluster needs from it, by these rules (so a plain
new migration needs no extra work):

1. `CREATE TABLE {db}.t (...) ENGINE = <X>MergeTree(args) ...` becomes
   - `{db}.t_local ON CLUSTER c`, the same columns and clauses, engine
     `Replicated<X>MergeTree('/clickhouse/tables/{shard}/<db>/t_local', '{replica}', args)`
     (`{shard}` and `{replica}` are each server's macros): the rows of one shard, on
     every replica of it;
   - `{db}.t ON CLUSTER c AS {db}.t_local ENGINE = Distributed(c, <db>, t_local, key)`:
     what everyone reads and inserts into. The key is `sipHash64(message_id)` when the
     table has a `message_id` column, so all rows of a message live on one shard; else
     `rand()` (only mergeable aggregates have no message id; their states merge anywhere);
     `SHARD_KEYS` names the exceptions.
   The target of a `REFRESH` materialized view keeps its plain engine: every replica
   computes its own copy from its own replica of the source (no Keeper coordination).
2. `CREATE [OR REPLACE] VIEW {db}.v AS q` becomes `{db}.v_local` (q over the `_local`
   tables and views: one shard's rows) and `{db}.v` (q as written, over the Distributed
   tables: all shards), both `ON CLUSTER c`.
3. `CREATE MATERIALIZED VIEW {db}.m [REFRESH ...] TO {db}.t AS q` becomes one view
   `ON CLUSTER c` with every table and view in it (`TO` included) replaced by its `_local`
   form, and `table = '<name>'` literals (system tables) too: a view runs on the shard
   that received the insert and sees that shard only (a `TO` table of `SHARD_KEYS` stays
   the Distributed one, which routes the rows to their shard). Right because every view here is
   per message and every row of a message is on its shard; a new view must be as well.
4. `INSERT INTO {db}.t [(cols)] SELECT q` (backfills) becomes
   `INSERT INTO {db}.t [(cols)] SELECT * FROM cluster(c, view(q over _local))`: q runs on
   each shard over that shard's rows, and the Distributed `t` routes its rows back.
5. `DROP TABLE|VIEW [IF EXISTS] {db}.x` drops `x` (and `x_local` when rule 1 or 2 made
   one) `ON CLUSTER c`.
6. `ALTER TABLE {db}.t ...` on a table of rule 1 runs on `t_local ON CLUSTER c`; when all
   its commands are column changes (ADD / DROP / MODIFY / RENAME / COMMENT COLUMN) also
   on the Distributed `t`. Other ALTERs run `ON CLUSTER c` with references made local.
7. Anything else (a non-MergeTree table, a materialized view without TO, RENAME ...)
   raises `ClusterDDLError`: `tests/sinks/test_cluster_ddl.py` runs every file in `ddl/`
   through these rules and ClickHouse's parser, so a new migration that needs another
   rule fails there first.

Objects are always named `{db}.name` in the DDL files; names ending in `_local` are
reserved. Without Keeper (`DLR_CLICKHOUSE_CLUSTER_NODES`, and the local
`dlr clickhouse start --shards N`), engines stay plain and, instead of `ON CLUSTER`,
`migrate.py` runs each statement marked `everywhere` on every node itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from schemas.settings import CommonSettings

__all__ = [
    "LOCAL_SUFFIX",
    "SHARD_KEYS",
    "ClusterDDLError",
    "ClusterSpec",
    "Objects",
    "Statement",
    "analyze",
    "cluster_form",
    "cluster_statements",
    "local",
]

#: Suffix of the shard-local table (or view) behind each Distributed one.
LOCAL_SUFFIX = "_local"

#: Tables whose rows belong on the shard of another key than their `message_id` column
#: (rule 1): `message_parts` maps a part's own id to its message, and is read where the
#: part's own reports are (`status_snapshot` leaves the parts out), i.e. on the part id's
#: shard. The views that fill such a table write through its Distributed table (rule 3).
SHARD_KEYS = {"message_parts": "sipHash64(part_id)"}

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_NAME = r"([A-Za-z_][A-Za-z0-9_]*)"
_COLUMN_COMMAND = re.compile(r"^\s*(ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b", re.IGNORECASE)


class ClusterDDLError(ValueError):
    """A statement has no known cluster form (add a rule to sinks/clickhouse/cluster.py)."""


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """Where the tables are sharded: the cluster's name and, without Keeper, its nodes."""

    name: str
    #: HTTP URLs of every node when the cluster has no Keeper (plain engines, no ON
    #: CLUSTER: the runner applies the DDL on each); empty when ON CLUSTER works.
    nodes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _IDENT.match(self.name):
            raise ValueError(f"not a valid cluster name: {self.name!r}")

    @property
    def replicated(self) -> bool:
        """Replicated engines and ON CLUSTER (the cluster has Keeper)."""
        return not self.nodes

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> ClusterSpec | None:
        """The settings' cluster (`DLR_CLICKHOUSE_CLUSTER`, local shards), or None."""
        name = settings.clickhouse_cluster_name
        return cls(name, settings.clickhouse_nodes) if name else None


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of the cluster form."""

    sql: str
    #: A definition each node needs (ON CLUSTER, or run on every node without Keeper);
    #: False: data, run once (an INSERT goes to every shard by itself).
    everywhere: bool = True


@dataclass
class Objects:
    """What the DDL files define, which the rules need to know about every statement."""

    #: MergeTree tables: a `_local` table on each shard and a Distributed table over it.
    sharded: set[str] = field(default_factory=set)
    #: Plain views: a `_local` view per shard and a global one.
    views: set[str] = field(default_factory=set)
    #: Tables filled by a REFRESH materialized view: plain engine on every replica.
    refreshed: set[str] = field(default_factory=set)

    @property
    def localized(self) -> set[str]:
        """Names that have a `_local` form."""
        return self.sharded | self.views


def local(name: str) -> str:
    """The shard-local name of a table or view."""
    return name + LOCAL_SUFFIX


def _code(sql: str) -> str:
    """The statement without its full-line comments."""
    return "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))


def _db(db: str) -> str:
    return re.escape(db)


_CREATE_TABLE = r"^\s*CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?{db}\.{name}\b"
_CREATE_VIEW = r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+(IF\s+NOT\s+EXISTS\s+)?{db}\.{name}\b"
_CREATE_MV = r"^\s*CREATE\s+MATERIALIZED\s+VIEW\s+(IF\s+NOT\s+EXISTS\s+)?{db}\.{name}\b"
_INSERT = r"^\s*INSERT\s+INTO\s+(TABLE\s+)?{db}\.{name}\b"
_DROP = r"^\s*DROP\s+(TABLE|VIEW|DICTIONARY)\s+(IF\s+EXISTS\s+)?{db}\.{name}\b"
_ALTER = r"^\s*ALTER\s+TABLE\s+{db}\.{name}\b"


def _match(pattern: str, sql: str, db: str) -> re.Match[str] | None:
    return re.match(pattern.format(db=_db(db), name=_NAME), sql, re.IGNORECASE | re.DOTALL)


def _code_positions(text: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """(index, character, parenthesis depth) of every character outside quotes."""
    depth = 0
    quote: str | None = None
    i = start
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = None
        elif char in "'\"`":
            quote = char
        else:
            if char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
            yield i, char, depth
        i += 1


def _closing(text: str, opening: int) -> int:
    """Index of the parenthesis closing the one at `opening` (quotes respected)."""
    for i, char, depth in _code_positions(text, opening):
        if char == ")" and depth == 0:
            return i
    raise ClusterDDLError("unbalanced parentheses")


def _engine(sql: str) -> re.Match[str] | None:
    return re.search(r"\bENGINE\s*=\s*(\w*)MergeTree\b", sql, re.IGNORECASE)


def analyze(statements: Iterable[str], db: str) -> Objects:
    """What the statements (every DDL file, in order) define."""
    objects = Objects()
    for raw in statements:
        sql = _code(raw)
        for pattern, kind in ((_CREATE_TABLE, "table"), (_CREATE_VIEW, "view"), (_CREATE_MV, "mv")):
            found = _match(pattern, sql, db)
            if not found:
                continue
            name = found.group(2)
            if name.endswith(LOCAL_SUFFIX):
                raise ClusterDDLError(f"{name}: names ending in {LOCAL_SUFFIX} are reserved")
            if kind == "table" and _engine(sql):
                objects.sharded.add(name)
            elif kind == "view":
                objects.views.add(name)
            elif kind == "mv":
                header = re.split(r"\bAS\b", sql[found.end() :], maxsplit=1, flags=re.I)[0]
                target = re.search(rf"\bTO\s+{_db(db)}\.{_NAME}", header, re.IGNORECASE)
                if target and re.search(r"\bREFRESH\b", header, re.IGNORECASE):
                    objects.refreshed.add(target.group(1))
    return objects


def _localize(sql: str, db: str, objects: Objects) -> str:
    """Every `{db}.x` with a `_local` form, and `table = 'x'` literals, made shard-local."""

    def ref(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"{db}.{local(name)}" if name in objects.localized else match.group(0)

    def literal(match: re.Match[str]) -> str:
        name = match.group(2)
        if name in objects.sharded:
            return f"{match.group(1)}'{local(name)}'"
        return match.group(0)

    sql = re.sub(rf"\b{_db(db)}\.{_NAME}\b", ref, sql)
    return re.sub(rf"(\btable\s*=\s*)'{_NAME}'", literal, sql)


def _on_cluster(sql: str, end: int, spec: ClusterSpec) -> str:
    """`ON CLUSTER` inserted at `end` (after the object's name), when Keeper is there."""
    if not spec.replicated:
        return sql
    return f"{sql[:end]} ON CLUSTER {spec.name}{sql[end:]}"


def _table(
    sql: str, found: re.Match[str], db: str, spec: ClusterSpec, objects: Objects
) -> list[Statement]:
    name = found.group(2)
    engine = _engine(sql)
    if engine is None:
        raise ClusterDDLError(f"{name}: only MergeTree-family tables have a cluster form (rule 1)")
    body_open = sql.find("(", found.end())
    if body_open < 0 or body_open > engine.start():
        raise ClusterDDLError(f"{name}: CREATE TABLE without a column list")
    columns = sql[body_open : _closing(sql, body_open) + 1]
    key = SHARD_KEYS.get(name) or (
        "sipHash64(message_id)" if re.search(r"[(,]\s*message_id\s", columns) else "rand()"
    )
    local_sql = sql[: found.start(2)] + local(name) + sql[found.end(2) :]
    shift = len(local(name)) - len(name)
    engine = _engine(local_sql)
    assert engine is not None
    if spec.replicated and name not in objects.refreshed:
        after = local_sql[engine.end() :]
        args = ""
        stripped = after.lstrip()
        if stripped.startswith("("):
            opening = engine.end() + (len(after) - len(stripped))
            closing = _closing(local_sql, opening)
            args = local_sql[opening + 1 : closing].strip()
            rest = local_sql[closing + 1 :]
        else:
            rest = after
        path = f"'/clickhouse/tables/{{shard}}/{db}/{local(name)}', '{{replica}}'"
        replicated = (
            f"ENGINE = Replicated{engine.group(1)}MergeTree({path}{', ' + args if args else ''})"
        )
        local_sql = local_sql[: engine.start()] + replicated + rest
    local_sql = _on_cluster(local_sql, found.end(2) + shift, spec)
    exists = "IF NOT EXISTS " if found.group(1) else ""
    distributed = (
        f"CREATE TABLE {exists}{db}.{name}"
        + (f" ON CLUSTER {spec.name}" if spec.replicated else "")
        + f" AS {db}.{local(name)}"
        + f"\nENGINE = Distributed('{spec.name}', '{db}', '{local(name)}', {key})"
    )
    return [Statement(local_sql), Statement(distributed)]


def _alter(
    sql: str, found: re.Match[str], db: str, spec: ClusterSpec, objects: Objects
) -> list[Statement]:
    name = found.group(1)
    if name not in objects.sharded:  # a view's query (MODIFY QUERY) runs per shard
        return [Statement(_on_cluster(_localize(sql, db, objects), found.end(1), spec))]
    commands = _split_commands(sql[found.end() :])
    columns = [bool(_COLUMN_COMMAND.match(c)) for c in commands]
    if any(columns) and not all(columns):
        raise ClusterDDLError(
            f"ALTER TABLE {name}: split column changes and other commands into two "
            "statements (the Distributed table takes only the column changes)"
        )
    local_sql = sql[: found.start(1)] + local(name) + sql[found.end(1) :]
    out = [Statement(_on_cluster(local_sql, found.end(1) + len(LOCAL_SUFFIX), spec))]
    if all(columns):
        out.append(Statement(_on_cluster(sql, found.end(1), spec)))
    return out


def _split_commands(text: str) -> list[str]:
    """An ALTER's comma-separated commands (commas inside parentheses or quotes kept)."""
    cuts = [i for i, char, depth in _code_positions(text) if char == "," and depth == 0]
    edges = [-1, *cuts, len(text)]
    parts = (text[edges[k] + 1 : edges[k + 1]] for k in range(len(edges) - 1))
    return [part for part in parts if part.strip()]


def cluster_form(sql: str, db: str, spec: ClusterSpec, objects: Objects) -> list[Statement]:
    """The statements that do on `spec`'s cluster what `sql` does on one node (rules above)."""
    sql = _code(sql).strip()
    if found := _match(_CREATE_TABLE, sql, db):
        return _table(sql, found, db, spec, objects)
    if found := _match(_CREATE_VIEW, sql, db):
        name = found.group(2)
        local_sql = sql[: found.start(2)] + local(name) + sql[found.end(2) :]
        local_sql = _localize(local_sql, db, objects)
        return [
            Statement(_on_cluster(local_sql, found.end(2) + len(LOCAL_SUFFIX), spec)),
            Statement(_on_cluster(sql, found.end(2), spec)),
        ]
    if found := _match(_CREATE_MV, sql, db):
        if not re.search(rf"\bTO\s+{_db(db)}\.", sql, re.IGNORECASE):
            raise ClusterDDLError(
                f"{found.group(2)}: a materialized view needs TO <table> on a cluster (rule 3)"
            )
        localized = _localize(sql, db, objects)
        for name in SHARD_KEYS:  # rows of another key: routed through the Distributed table
            localized = re.sub(
                rf"\bTO(\s+){_db(db)}\.{name}{LOCAL_SUFFIX}\b", rf"TO\g<1>{db}.{name}", localized
            )
        return [Statement(_on_cluster(localized, found.end(2), spec))]
    if found := _match(_INSERT, sql, db):
        rest = sql[found.end() :]
        select = re.search(r"\b(SELECT|WITH)\b", rest, re.IGNORECASE)
        if select is None:
            return [Statement(sql, everywhere=False)]
        head = sql[: found.end()] + rest[: select.start()]
        query = _localize(rest[select.start() :], db, objects)
        return [
            Statement(
                f"{head.rstrip()}\nSELECT * FROM cluster('{spec.name}', view(\n{query}\n))",
                everywhere=False,
            )
        ]
    if found := _match(_DROP, sql, db):
        name = found.group(3)
        out = [Statement(_on_cluster(sql, found.end(3), spec))]
        if name in objects.localized:
            local_sql = sql[: found.start(3)] + local(name) + sql[found.end(3) :]
            out.append(Statement(_on_cluster(local_sql, found.end(3) + len(LOCAL_SUFFIX), spec)))
        return out
    if found := _match(_ALTER, sql, db):
        return _alter(sql, found, db, spec, objects)
    first = sql.split(None, 3)[:3]
    raise ClusterDDLError(
        f"no cluster form for {' '.join(first)} ... (see sinks/clickhouse/cluster.py)"
    )


def cluster_statements(
    statements: Sequence[str], db: str, spec: ClusterSpec, objects: Objects
) -> list[Statement]:
    """The cluster form of several statements, in order."""
    return [out for sql in statements for out in cluster_form(sql, db, spec, objects)]
