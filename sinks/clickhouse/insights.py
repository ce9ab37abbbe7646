"""What the receipts say about money and routing: cost, providers side by side, filtering.

Three reports over `status_snapshot` (exact, the freshness rules of `report.py`), each the
documented SQL of `queries/` run with parameters:

- `cost()` (`queries/cost.sql`): per group and currency, messages, segments, the spend the
  providers reported, the spend on messages that were not delivered, and the cost per
  delivered message. Spend is never summed across currencies; a rate table (`Rates`)
  adds one converted row per group, clearly marked. A group whose provider reports no
  price says so (`price_share`, a row with currency None) instead of showing a zero.
- `compare()` (`queries/compare.sql`): per destination (country, carrier, or a pair) and
  provider, attempts, delivery rate with its 95 % Wilson interval, p50/p95 time to deliver
  and cost per delivered message; `best` marks the one provider whose interval lies above
  every other's, and no provider where the intervals overlap (thin data recommends
  nothing).
- `filtering()` (`queries/filtering.sql`): per campaign / sender (or a pair with the
  carrier), the share of attempts filtered by the carrier or blocked for their content,
  against the previous window; `rising` flags a share that jumped.

`wilson()` and `best_provider()` are pure. Prices are the providers' own (the last one
their receipts stated for the message); `price_currencies` names the currency of
providers that state prices without one (Vonage's SMS API), others show as `unstated`.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from sinks.clickhouse.report import (
    Attempts,
    GroupBy,
    Grouping,
    _check_window,
    _fresh,
    _number,
    _rows,
    _window_params,
    check_groups,
    query_for,
)

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from sinks.clickhouse.cluster import ClusterSpec

__all__ = [
    "UNSTATED",
    "Z95",
    "Rates",
    "RatesError",
    "best_provider",
    "compare",
    "cost",
    "currency_params",
    "filtering",
    "parse_rates",
    "wilson",
]

#: z for a two-sided 95 % interval (the 97.5th percentile of the standard normal).
Z95 = 1.959963984540054
#: The currency of a price a provider stated without one and `price_currencies` does not name.
UNSTATED = "unstated"


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (95 % by default); None without trials.

    Unlike the normal approximation it stays inside [0, 1] and is honest about small
    samples: 10 delivered of 10 gives (0.722, 1.0), not (1.0, 1.0).
    """
    if successes < 0 or trials < 0 or successes > trials:
        raise ValueError("need 0 <= successes <= trials")
    if trials == 0:
        return None
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def best_provider(intervals: Mapping[str, tuple[float, float] | None]) -> str | None:
    """The provider whose interval lies entirely above every other provider's, else None
    (one provider alone, or intervals that overlap: no recommendation from thin data)."""
    known = {name: span for name, span in intervals.items() if span is not None}
    if len(known) < 2:
        return None
    top = max(known, key=lambda name: (known[name][0], name))
    low = known[top][0]
    if all(low > span[1] for name, span in known.items() if name != top):
        return top
    return None


class RatesError(ValueError):
    """A rate table that cannot be read (bad line, bad rate, bad currency code)."""


def _code(text: str) -> str:
    code = text.strip().upper()
    if not (len(code) == 3 and code.isascii() and code.isalpha()):
        raise RatesError(f"{text!r} is not a three-letter currency code")
    return code


@dataclass(frozen=True)
class Rates:
    """Exchange rates into one currency: `per_unit[c]` units of `target` per unit of `c`."""

    target: str
    per_unit: Mapping[str, float] = field(default_factory=dict)

    def rate(self, currency: str) -> float | None:
        """Units of `target` per unit of `currency` (1 for the target itself)."""
        if currency == self.target:
            return 1.0
        return self.per_unit.get(currency)


def parse_rates(text: str, target: str) -> Rates:
    """A rate table into `target`: a JSON object `{"EUR": 1.08, ...}`, or CSV lines
    `currency,rate` (a header line and `#` comments allowed). Each rate is how many units
    of `target` one unit of the currency is worth."""
    goal = _code(target)
    stripped = text.strip()
    pairs: list[tuple[str, object, int]] = []
    if stripped.startswith(("{", "[")):
        try:
            loaded = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise RatesError(f"not JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise RatesError("a JSON rate table is an object currency -> rate")
        pairs = [(str(k), v, 0) for k, v in loaded.items()]
    else:
        for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
            cells = [c.strip() for c in row]
            if not cells or not any(cells) or cells[0].startswith("#"):
                continue
            if number == 1 and cells[0].lower() == "currency":
                continue
            if len(cells) != 2:
                raise RatesError(f"line {number}: expected currency,rate")
            pairs.append((cells[0], cells[1], number))
    rates: dict[str, float] = {}
    for name, value, number in pairs:
        where = f"line {number}: " if number else ""
        try:
            code = _code(name)
            rate = (
                float(value)
                if isinstance(value, int | float | str) and not isinstance(value, bool)
                else math.nan
            )
        except (TypeError, ValueError) as exc:
            raise RatesError(f"{where}{exc}") from exc
        if not math.isfinite(rate) or rate <= 0:
            raise RatesError(f"{where}rate of {code} must be a positive number")
        rates[code] = rate
    return Rates(goal, rates)


def currency_params(currencies: Mapping[str, str]) -> dict[str, list[str]]:
    """`price_currencies` as the two array parameters the SQL takes."""
    names = sorted(currencies)
    return {"cur_providers": names, "cur_codes": [currencies[n] for n in names]}


def _named(row: Mapping[str, Any], groups: tuple[GroupBy, ...]) -> dict[str, Any]:
    named: dict[str, Any] = {groups[0]: row["grp"]}
    if len(groups) == 2:
        named[groups[1]] = row["grp2"]
    return named


# -- cost -----------------------------------------------------------------------------------

_COST_COUNTS = (
    "messages",
    "delivered",
    "not_delivered",
    "segments_reported",
    "group_messages",
    "group_priced",
)
_COST_MONEY = ("spend", "spend_delivered", "spend_not_delivered", "spend_pending")


def cost(
    client: Client,
    database: str,
    by: Grouping,
    since_s: int,
    now: datetime | None = None,
    *,
    currencies: Mapping[str, str] | None = None,
    rates: Rates | None = None,
    exact: bool = True,
    cluster: ClusterSpec | None = None,
    rollup: bool = True,
) -> list[dict[str, Any]]:
    """Spend per group and currency (`queries/cost.sql`): one row per group and currency
    (`currency` None: the group's messages without a price), each with the group's
    `price_share`. With `rates`, each group also gets one row in `rates.target` with
    `converted=True` summing its priced rows (None amounts and `missing_rates` when a
    currency has no rate). Largest groups first. Groups of the `provider` grain read
    `status_rollup` for the whole hours (`queries/cost_rollup.sql`, the same numbers);
    `rollup=False`: the snapshot only."""
    groups = check_groups(by)
    parameters = {
        **_window_params(database, groups, since_s, now),
        **currency_params(currencies or {}),
    }
    query = query_for("cost", parameters, (*groups, "provider"), cluster, rollup)
    _fresh(client, database, exact, cluster)
    out: list[dict[str, Any]] = []
    for found in _rows(client, query, parameters):
        row: dict[str, Any] = {**_named(found, groups), "currency": found["currency"]}
        for name in _COST_COUNTS:
            row[name] = int(found[name])
        segments = found["segments"]
        row["segments"] = int(segments) if segments is not None else None
        priced = found["currency"] is not None
        for name in _COST_MONEY:
            value = _number(found[name])
            row[name] = (value or 0.0) if priced else None
        row["cost_per_delivered"] = _number(found["cost_per_delivered"])
        row["price_share"] = _number(found["price_share"])
        row["converted"] = False
        out.append(row)
    if rates is None:
        return out
    return _with_converted(out, groups, rates)


def _with_converted(
    rows: list[dict[str, Any]], groups: tuple[GroupBy, ...], rates: Rates
) -> list[dict[str, Any]]:
    """Each group's rows followed by its converted total in `rates.target`."""
    out: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        out.append(row)
        last = index + 1 == len(rows) or any(rows[index + 1][g] != row[g] for g in groups)
        if not last:
            continue
        group = [r for r in rows if all(r[g] == row[g] for g in groups)]
        priced = [r for r in group if r["currency"] is not None]
        missing = sorted({r["currency"] for r in priced if rates.rate(r["currency"]) is None})
        total: dict[str, Any] = {
            **{g: row[g] for g in groups},
            "currency": rates.target,
            "messages": sum(r["messages"] for r in priced),
            "delivered": sum(r["delivered"] for r in priced),
            "not_delivered": sum(r["not_delivered"] for r in priced),
            "segments": sum(r["segments"] or 0 for r in priced) if priced else None,
            "segments_reported": sum(r["segments_reported"] for r in priced),
            "group_messages": row["group_messages"],
            "group_priced": row["group_priced"],
            "price_share": row["price_share"],
            "converted": True,
            "missing_rates": missing,
        }
        for name in _COST_MONEY:
            total[name] = (
                None
                if missing or not priced
                else sum(r[name] * (rates.rate(r["currency"]) or 0.0) for r in priced)
            )
        spend, delivered = total["spend"], total["delivered"]
        total["cost_per_delivered"] = spend / delivered if spend is not None and delivered else None
        out.append(total)
    return out


# -- providers compared -----------------------------------------------------------------------


def compare(
    client: Client,
    database: str,
    by: Grouping,
    since_s: int,
    now: datetime | None = None,
    *,
    attempts: Attempts = "sends",
    unreported_after_s: int = 3600,
    currencies: Mapping[str, str] | None = None,
    rates: Rates | None = None,
    exact: bool = True,
    cluster: ClusterSpec | None = None,
    rollup: bool = True,
) -> list[dict[str, Any]]:
    """Providers side by side per destination (`queries/compare.sql`): per group and
    provider, messages, attempts, delivered, `delivery_rate` with its 95 % Wilson interval
    (`rate_low`, `rate_high`), exact `ttd_p50_s` / `ttd_p95_s`, `price_share`, `spend` and
    `cost_per_delivered` per currency (and converted to `rates.target` when given), and
    `best`: True for the one provider of the group whose interval lies above every other
    provider's (`best_provider`). Groups in order, best rate first within a group.
    Destinations of the `provider` grain read `status_rollup` for the whole hours
    (`queries/compare_rollup.sql`, the same numbers); `rollup=False`: the snapshot only."""
    groups = check_groups(by)
    if "provider" in groups:
        raise ValueError("compare groups destinations: by must not include provider")
    if attempts not in ("sends", "final"):
        raise ValueError("attempts must be sends or final")
    parameters = {
        **_window_params(database, groups, since_s, now),
        "sends": 1 if attempts == "sends" else 0,
        "unreported_after_s": _check_window(unreported_after_s, "unreported_after_s"),
        **currency_params(currencies or {}),
    }
    query = query_for("compare", parameters, (*groups, "provider"), cluster, rollup)
    _fresh(client, database, exact, cluster)
    by_group: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for found in _rows(client, query, parameters):
        tried, delivered = int(found["attempts"]), int(found["delivered"])
        samples = int(found["ttd_samples"])
        ttd = found["ttd"] or [None, None]
        span = wilson(delivered, tried)
        spend = {str(k): float(v) for k, v in sorted(dict(found["spend"]).items())}
        priced_delivered = {
            str(k): int(v) for k, v in sorted(dict(found["priced_delivered"]).items())
        }
        messages = int(found["messages"])
        row: dict[str, Any] = {
            **_named(found, groups),
            "provider": str(found["provider"]),
            "messages": messages,
            "attempts": tried,
            "delivered": delivered,
            "delivery_rate": delivered / tried if tried else None,
            "rate_low": span[0] if span else None,
            "rate_high": span[1] if span else None,
            "ttd_p50_s": _number(ttd[0]) if samples else None,
            "ttd_p95_s": _number(ttd[1]) if samples else None,
            "ttd_samples": samples,
            "priced": int(found["priced"]),
            "price_share": int(found["priced"]) / messages if messages else None,
            "spend": spend,
            "cost_per_delivered": {
                c: spend[c] / priced_delivered[c] for c in spend if priced_delivered.get(c)
            },
            "best": False,
        }
        if rates is not None:
            row["converted_cost_per_delivered"] = _converted_cost(spend, priced_delivered, rates)
        key = tuple(row[g] for g in groups)
        by_group[key].append(row)
    out: list[dict[str, Any]] = []
    for providers in by_group.values():
        best = best_provider(
            {r["provider"]: _span(r) for r in providers if r["rate_low"] is not None}
        )
        providers.sort(key=lambda r: (-(r["delivery_rate"] or 0.0), -r["attempts"], r["provider"]))
        for row in providers:
            row["best"] = row["provider"] == best
        out.extend(providers)
    return out


def _span(row: Mapping[str, Any]) -> tuple[float, float]:
    return float(row["rate_low"]), float(row["rate_high"])


def _converted_cost(
    spend: Mapping[str, float], delivered: Mapping[str, int], rates: Rates
) -> float | None:
    """Spend converted into `rates.target` over the delivered priced messages; None when
    nothing was priced or delivered, or a currency has no rate."""
    total, count = 0.0, 0
    for currency, amount in spend.items():
        rate = rates.rate(currency)
        if rate is None:
            return None
        total += amount * rate
        count += delivered.get(currency, 0)
    return total / count if count else None


# -- content filtering ---------------------------------------------------------------------------

_FILTER_COUNTS = (
    "attempts",
    "carrier_filtered",
    "blocked_content",
    "filtered",
    "previous_attempts",
    "previous_carrier_filtered",
    "previous_blocked_content",
    "previous_filtered",
)


def filtering(
    client: Client,
    database: str,
    by: Grouping,
    since_s: int,
    now: datetime | None = None,
    *,
    factor: float = 2.0,
    min_count: int = 5,
    exact: bool = True,
    cluster: ClusterSpec | None = None,
    rollup: bool = True,
) -> list[dict[str, Any]]:
    """Content filtering per group (`queries/filtering.sql`): attempts, `carrier_filtered`
    and `blocked_content` counts, their `share` of the attempts, the same for the previous
    window of the same length, `change` (share minus previous share, None without traffic
    before) and `rising` (at least `min_count` filtered now and a share at least `factor`
    times the previous one). Rising groups first, then the highest share. Groups of one
    `status_rollup` grain read it for the whole hours (`queries/filtering_rollup.sql`, the
    same numbers); `rollup=False`: the snapshot only."""
    if factor < 1:
        raise ValueError("factor must be at least 1")
    groups = check_groups(by)
    parameters = {
        **_window_params(database, groups, since_s, now),
        "factor": float(factor),
        "min_count": max(1, int(min_count)),
    }
    query = query_for("filtering", parameters, groups, cluster, rollup)
    _fresh(client, database, exact, cluster)
    out: list[dict[str, Any]] = []
    for found in _rows(client, query, parameters):
        row: dict[str, Any] = _named(found, groups)
        for name in _FILTER_COUNTS:
            row[name] = int(found[name])
        share, before = _number(found["share"]), _number(found["previous_share"])
        row["share"] = share
        row["previous_share"] = before
        row["change"] = share - before if share is not None and before is not None else None
        row["rising"] = bool(found["rising"])
        out.append(row)
    return out
