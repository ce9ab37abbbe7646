"""The pure parts of the insights: Wilson intervals against known values, the "best provider
only where the intervals do not overlap" rule, rate tables, and the SQL each report runs
(without a server)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from sinks.clickhouse import insights
from tests.sinks.clickhouse.test_report import Recorder


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [
        # Newcombe (1998), "Two-sided confidence intervals for the single proportion",
        # Statistics in Medicine 17, table I, method 3 (score, no continuity correction)
        pytest.param(81, 263, 0.2553, 0.3662, id="81/263"),
        pytest.param(15, 148, 0.0624, 0.1605, id="15/148"),
        pytest.param(0, 20, 0.0, 0.1611, id="0/20"),
        # closed forms: 0/n -> (0, z^2 / (n + z^2)), n/n -> (n / (n + z^2), 1)
        pytest.param(0, 10, 0.0, 3.8415 / 13.8415, id="0/10"),
        pytest.param(10, 10, 10 / 13.8415, 1.0, id="10/10"),
        # symmetric around 1/2
        pytest.param(5, 10, 0.2366, 0.7634, id="5/10"),
    ],
)
def test_wilson_interval_known_values(successes: int, trials: int, low: float, high: float) -> None:
    span = insights.wilson(successes, trials)
    assert span is not None
    assert span == pytest.approx((low, high), abs=6e-5)


def test_wilson_interval_is_none_without_trials_and_refuses_nonsense() -> None:
    assert insights.wilson(0, 0) is None
    for successes, trials in ((-1, 5), (6, 5), (0, -1)):
        with pytest.raises(ValueError):
            insights.wilson(successes, trials)


def test_wilson_interval_narrows_with_data_and_contains_the_rate() -> None:
    widths = []
    for trials in (10, 100, 1000, 10000):
        low, high = insights.wilson(trials * 9 // 10, trials) or (0.0, 1.0)
        assert low < 0.9 < high
        widths.append(high - low)
    assert widths == sorted(widths, reverse=True)


def test_best_only_where_the_intervals_do_not_overlap() -> None:
    clear = {
        "infobip": insights.wilson(98, 100),  # (0.930, 0.994)
        "vonage": insights.wilson(40, 100),
        "twilio": insights.wilson(80, 100),  # (0.711, 0.867)
    }
    assert insights.best_provider(clear) == "infobip"
    thin = {"infobip": insights.wilson(10, 10), "twilio": insights.wilson(8, 10)}
    assert insights.best_provider(thin) is None  # 10/10 is not proof against 8/10
    touching = {"a": (0.5, 0.9), "b": (0.2, 0.5)}
    assert insights.best_provider(touching) is None  # touching intervals overlap
    one_overlap = {"a": (0.8, 0.95), "b": (0.3, 0.6), "c": (0.6, 0.85)}
    assert insights.best_provider(one_overlap) is None  # a must beat every other
    assert insights.best_provider({"alone": (0.9, 1.0)}) is None  # nothing to compare
    assert insights.best_provider({"a": (0.7, 0.9), "b": None}) is None  # b had no attempts


def test_rate_tables_as_csv_or_json() -> None:
    csv_rates = insights.parse_rates(
        "currency,rate\n# ECB, 2026-11-30\neur, 1.08\nGBP,1.27\n", "usd"
    )
    assert csv_rates.target == "USD"
    assert csv_rates.rate("EUR") == 1.08 and csv_rates.rate("GBP") == 1.27
    assert csv_rates.rate("USD") == 1.0 and csv_rates.rate("JPY") is None
    assert insights.parse_rates('{"EUR": 1.08}', "USD").per_unit == {"EUR": 1.08}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("EUR,abc\n", "line 1", id="not-a-number"),
        pytest.param("EUR,-1\n", "positive", id="negative"),
        pytest.param("EURO,1.1\n", "three-letter", id="bad-code"),
        pytest.param("EUR,1.1,x\n", "currency,rate", id="three-cells"),
        pytest.param('{"EUR": true}', "positive", id="json-bool"),
        pytest.param("[1, 2]", "not JSON|object", id="json-list"),
        pytest.param('{"EUR": 1.1', "not JSON", id="broken-json"),
    ],
)
def test_bad_rate_tables_are_refused_precisely(text: str, message: str) -> None:
    with pytest.raises(insights.RatesError, match=message):
        insights.parse_rates(text, "USD")


def test_each_report_runs_its_sql_on_the_snapshot_with_the_currencies() -> None:
    for name, call in (
        ("cost", lambda c: insights.cost(c, "dlr", "provider", 3600, currencies={"vonage": "EUR"})),
        ("compare", lambda c: insights.compare(c, "dlr", "country", 3600)),
        ("filtering", lambda c: insights.filtering(c, "dlr", "campaign,carrier", 3600)),
    ):
        client = Recorder()
        call(cast(Any, client))
        (check, _), (sql, parameters) = client.calls
        assert "system.parts" in check  # the freshness check of the exact reports
        code = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
        assert "{db:Identifier}.status_snapshot" in code, name
        assert parameters["since_s"] == 3600
        if name == "cost":
            assert parameters["cur_providers"] == ["vonage"]
            assert parameters["cur_codes"] == ["EUR"]
        if name == "filtering":
            assert (parameters["by"], parameters["by2"]) == ("campaign", "carrier")


def test_compare_refuses_provider_as_the_destination() -> None:
    with pytest.raises(ValueError, match="provider"):
        insights.compare(cast(Any, Recorder()), "dlr", "country,provider", 3600)
