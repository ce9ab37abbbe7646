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
        ("report", "message_status"),
        ("stuck", "message_status"),
        ("silent_carriers", "message_status"),
        ("reason_spikes", "message_status"),
        ("hourly", "hourly"),
    ],
)
def test_queries_are_parameterized(name: str, source: str) -> None:
    sql = report.query_text(name)
    assert f"{{db:Identifier}}.{source}" in sql
    assert not sql.rstrip().endswith(";")
    code = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    assert re.findall(r"\{(\w+):", code), name
    assert "{db}" not in code
