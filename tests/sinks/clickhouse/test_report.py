"""Report arguments are checked before any SQL runs; the SQL files take parameters only."""

from __future__ import annotations

import re
from typing import Any, cast

import pytest

from sinks.clickhouse import report


class NoServer:
    """Fails the test if a query is attempted."""

    def query(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no query expected")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(
            lambda c: report.report(c, "dlr", cast(Any, "phone"), 3600), "by must be", id="by"
        ),
        pytest.param(
            lambda c: report.report(c, "dlr; DROP", "carrier", 3600), "identifier", id="database"
        ),
        pytest.param(lambda c: report.report(c, "dlr", "carrier", 0), "since_s", id="window"),
        pytest.param(lambda c: report.stuck(c, "dlr", -1), "hours", id="hours"),
        pytest.param(
            lambda c: report.reason_spikes(c, "dlr", 3600, factor=0.5), "factor", id="factor"
        ),
        pytest.param(
            lambda c: report.silent_carriers(c, "x y", 3600), "identifier", id="silent-database"
        ),
    ],
)
def test_bad_arguments_never_reach_the_server(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(NoServer())


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("report", "status_snapshot"),
        ("stuck", "status_snapshot"),
        ("silent_carriers", "status_snapshot"),
        ("reason_spikes", "status_snapshot"),
        ("hourly", "status_snapshot"),
        ("hourly_rollup", "hourly_v2"),
        ("cost", "status_snapshot"),
        ("compare", "status_snapshot"),
        ("filtering", "status_snapshot"),
        ("billing", "status_snapshot"),
        ("report_rollup", "status_rollup"),
        ("hourly_status_rollup", "status_rollup"),
        ("reason_spikes_rollup", "status_rollup"),
        ("silent_carriers_rollup", "status_rollup"),
        ("cost_rollup", "status_rollup"),
        ("compare_rollup", "status_rollup"),
        ("filtering_rollup", "status_rollup"),
    ],
)
def test_queries_are_parameterized(name: str, source: str) -> None:
    sql = report.query_text(name)
    assert f"{{db:Identifier}}.{source}" in sql
    assert not sql.rstrip().endswith(";")
    code = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    assert re.findall(r"\{(\w+):", code), name
    assert "{db}" not in code


class Recorder:
    """Answers the freshness check with "up to date" and records the queries."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> Any:
        self.calls.append((sql, dict(parameters or {})))
        # messages' and sends' blocks, the snapshot's watermarks, the engine of `messages`,
        # the rollup's watermarks
        fresh = [5, 5, (5, 5), "AggregatingMergeTree", (5, 5)]
        rows: list[Any] = [fresh] if "system.parts" in sql else []

        class Result:
            column_names: tuple[str, ...] = ()
            result_rows: list[Any] = rows

        return Result()

    def command(self, sql: str) -> None:
        self.calls.append((sql, {}))


@pytest.mark.parametrize(("hours", "seconds"), [(1.5, 5400), (0, 0), (6, 21600), (0.0004, 1)])
def test_stuck_takes_fractional_hours_to_the_second(hours: float, seconds: int) -> None:
    client = Recorder()
    client_any = cast(Any, client)
    report.stuck(client_any, "dlr", hours)
    (check, _), (sql, parameters) = client.calls
    assert "system.parts" in check
    assert "{seconds:UInt32}" in sql
    assert parameters["seconds"] == seconds


def test_exact_false_never_checks_freshness() -> None:
    client = Recorder()
    report.stuck(cast(Any, client), "dlr", 2, exact=False)
    assert len(client.calls) == 1


def test_hourly_trend_reads_the_snapshot_with_the_same_freshness_check() -> None:
    client = Recorder()
    report.hourly(cast(Any, client), "dlr", "region", 3600)
    (check, _), (sql, parameters) = client.calls
    assert "system.parts" in check
    code = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    assert "{db:Identifier}.status_snapshot" in code and "hourly_v2" not in code
    assert parameters["by"] == "region" and parameters["since_s"] == 3600
    client = Recorder()
    report.hourly(cast(Any, client), "dlr", "region", 3600, exact=False)
    assert len(client.calls) == 1


def test_hourly_rollup_reads_the_preaggregated_table_without_a_refresh() -> None:
    client = Recorder()
    report.hourly_rollup(cast(Any, client), "dlr", "carrier", 3600)
    ((sql, _),) = client.calls
    assert "{db:Identifier}.hourly_v2" in sql


def test_groups_are_group_names() -> None:
    by: report.GroupBy = report.GROUPS[0]
    assert by == "carrier"
    assert report.GROUPS == (
        "carrier", "country", "region", "area", "campaign", "provider", "line_type",
        "carrier_source", "tenant", "sender",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("by", "groups"),
    [
        ("carrier", ("carrier",)),
        ("country,carrier", ("country", "carrier")),
        (" area , line_type ", ("area", "line_type")),
        (("region", "carrier_source"), ("region", "carrier_source")),
    ],
)
def test_one_dimension_or_a_pair(by: report.Grouping, groups: tuple[str, ...]) -> None:
    assert report.check_groups(by) == groups
    client = Recorder()
    report.report(cast(Any, client), "dlr", by, 3600, exact=False)
    ((_, parameters),) = client.calls
    assert (parameters["by"], parameters["by2"]) == (groups[0], groups[-1])


@pytest.mark.parametrize(
    "by", ["", "phone", "carrier,carrier", "country,carrier,region", "country;carrier", ()]
)
def test_bad_groupings_are_refused(by: report.Grouping) -> None:
    with pytest.raises(ValueError, match="by"):
        report.check_groups(by)


def test_the_rollup_takes_only_the_dimensions_hourly_v2_keeps() -> None:
    with pytest.raises(ValueError, match="by must be one of"):
        report.hourly_rollup(cast(Any, Recorder()), "dlr", "area", 3600)
