"""The business rules: SQL over ClickHouse windows, then pure decisions per group.

One evaluation runs three queries (`queries/watermark.sql`: where the data reaches, the
end of both windows; `queries/windows.sql`, per country x carrier x region x provider; and
`queries/stuck.sql`), exact and fresh (the `message_status` view of the
messages with events in the windows), and derives every rule from them (pairs,
countries, carriers, regions and providers are sums of its rows: attempts and deliveries
add up, each message is in exactly one row):

- `delivery_rate_drop` per region, country, carrier and country x carrier: the rate fell
  more than `alert_drop` (relative) against the previous window, both windows with at
  least `alert_min_attempts` attempts. One problem, one alert: a broader group whose drop
  is explained by narrower breaching groups inside it (the rest of it does not drop) is
  not raised, and when two or more breaching narrower groups make up at least half of a
  broader one, the broader one is raised instead of them (a country-wide outage is one
  alert on the country, not one per carrier). While it fires, a drop is measured against
  the rate before it began (its baseline), so it keeps firing as long as the incident
  lasts and resolves once the rate is back within half the threshold of that baseline
  (a window with fewer than `alert_min_attempts` attempts neither fires nor resolves it).
- `failure_reason_spike` per country x carrier and reason: the reason's share of attempts
  grew at least `alert_spike_factor` times and by at least `alert_spike_min` messages.
  Not raised for a group whose delivery rate drop is already raised (same incident).
- `receipts_silent` per provider and per country x carrier: receipts in the previous
  window (at least `alert_min_attempts` messages), none now. A carrier's silence is not
  raised while a provider is silent.
- `delivered_stopped` per country x carrier: delivered reports before, receipts now (at
  least `alert_min_attempts` messages) and not one delivered.
- `messages_stuck` per provider: messages whose first report is `alert_stuck_after_s`
  old, not final, at least `alert_stuck_max` of them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from sinks.alerts.model import Observation, fingerprint
from sinks.alerts.settings import AlertSettings
from sinks.clickhouse.migrate import check_identifier

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

__all__ = ["Counts", "Windows", "fetch", "observe", "watermark"]

#: Labels of a group, in order, e.g. (("country", "DE"), ("carrier", "Vodafone")).
Key = tuple[tuple[str, str], ...]
#: The firing alerts: fingerprint -> the baseline each keeps (None for rules without one).
Baselines = Mapping[str, float | None]
#: Two or more breaching narrower groups covering this share of a broader one: the
#: broader one is raised instead of them.
TAKE_OVER_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class Counts:
    """One group's numbers in the current and the previous window."""

    attempts: int = 0
    delivered: int = 0
    receipts: int = 0
    reasons: Mapping[str, int] = field(default_factory=dict)
    prev_attempts: int = 0
    prev_delivered: int = 0
    prev_receipts: int = 0
    prev_reasons: Mapping[str, int] = field(default_factory=dict)

    def __add__(self, other: Counts) -> Counts:
        return self._combine(other, 1)

    def __sub__(self, other: Counts) -> Counts:
        return self._combine(other, -1)

    def _combine(self, other: Counts, sign: int) -> Counts:
        def merged(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
            out = dict(a)
            for k, v in b.items():
                out[k] = out.get(k, 0) + sign * v
            return out

        return Counts(
            self.attempts + sign * other.attempts,
            self.delivered + sign * other.delivered,
            self.receipts + sign * other.receipts,
            merged(self.reasons, other.reasons),
            self.prev_attempts + sign * other.prev_attempts,
            self.prev_delivered + sign * other.prev_delivered,
            self.prev_receipts + sign * other.prev_receipts,
            merged(self.prev_reasons, other.prev_reasons),
        )

    @property
    def rate(self) -> float | None:
        """Delivery rate of the current window (None without attempts)."""
        return self.delivered / self.attempts if self.attempts > 0 else None

    @property
    def prev_rate(self) -> float | None:
        """Delivery rate of the previous window (None without attempts)."""
        return self.prev_delivered / self.prev_attempts if self.prev_attempts > 0 else None


@dataclass(frozen=True, slots=True)
class Windows:
    """What one evaluation read from ClickHouse."""

    #: (country, carrier) -> counts (either may be None: unknown)
    pairs: Mapping[tuple[str | None, str | None], Counts]
    #: country -> its M49 region
    regions: Mapping[str, str]
    #: provider -> counts
    providers: Mapping[str, Counts]
    #: provider -> (stuck, messages, top carriers)
    stuck: Mapping[str, tuple[int, int, list[str]]]
    window_s: int


@cache
def _sql(name: str) -> str:
    return (resources.files("sinks.alerts") / "queries" / f"{name}.sql").read_text().strip()


def _naive(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC).replace(tzinfo=None)


def _counts(row: Mapping[str, Any]) -> Counts:
    return Counts(
        int(row["attempts"]),
        int(row["delivered"]),
        int(row["receipts"]),
        {str(k): int(v) for k, v in dict(row["reasons"]).items()},
        int(row["previous_attempts"]),
        int(row["previous_delivered"]),
        int(row["previous_receipts"]),
        {str(k): int(v) for k, v in dict(row["previous_reasons"]).items()},
    )


def _query(client: Client, name: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    result = client.query(_sql(name), parameters=parameters)
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def watermark(client: Client, db: str, window_s: int, now: float) -> float:
    """Where the windows end: the latest receipt of the last window, else `now`."""
    (row,) = _query(client, "watermark", {"db": db, "since_s": window_s, "now": _naive(now)})
    if not row["events"] or row["watermark"] is None:
        return now
    return min(now, float(row["watermark"]) + 0.001)  # the window end is exclusive


def fetch(client: Client, settings: AlertSettings, now: float) -> Windows:
    """Run the queries of one evaluation (exact and fresh: see queries/windows.sql).

    The windows end at the watermark, the latest receipt in ClickHouse (at most `now`),
    so the pipeline's own delay or a stall shorter than a window (a slow sink, a
    rebalance) neither empties the current window nor makes every provider look silent;
    when nothing arrived for a whole window they end at `now`, and silence is silence."""
    db = check_identifier(settings.clickhouse_database)
    end = watermark(client, db, settings.alert_window_s, now)
    base = {"db": db, "since_s": settings.alert_window_s, "now": _naive(end)}
    pairs: defaultdict[tuple[str | None, str | None], Counts] = defaultdict(Counts)
    providers: defaultdict[str, Counts] = defaultdict(Counts)
    regions: dict[str, str] = {}
    for row in _query(client, "windows", base):
        counts = _counts(row)
        pairs[(row["country"], row["carrier"])] += counts
        providers[str(row["provider"])] += counts
        if row["country"] is not None and row["region"] is not None:
            regions[str(row["country"])] = str(row["region"])
    stuck = {
        str(r["provider"]): (int(r["stuck"]), int(r["messages"]), [c for c in r["carriers"] if c])
        for r in _query(client, "stuck", {**base, "stuck_after_s": settings.alert_stuck_after_s})
    }
    return Windows(dict(pairs), regions, dict(providers), stuck, settings.alert_window_s)


# -- pure decisions --------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _name(key: Key) -> str:
    return " ".join(f"{k}={v}" for k, v in key)


def _top_failures(c: Counts, limit: int = 3) -> str:
    if c.attempts <= 0:
        return ""
    worst = sorted(c.reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    parts = []
    for reason, count in worst:
        if count <= 0:
            continue
        before = c.prev_reasons.get(reason, 0) / c.prev_attempts if c.prev_attempts else 0.0
        parts.append(f"{reason} {count / c.attempts:.0%} (was {before:.0%})")
    return "; failures: " + ", ".join(parts) if parts else ""


@dataclass
class _Drop:
    """The delivery-rate-drop decision over the group hierarchy."""

    drop: float
    min_attempts: int

    def breaches(self, c: Counts, baseline: float | None = None) -> bool:
        base = c.prev_rate if baseline is None else baseline
        rate = c.rate
        if rate is None or base is None or base <= 0 or c.attempts < self.min_attempts:
            return False
        if baseline is None and c.prev_attempts < self.min_attempts:
            return False
        return rate < base * (1 - self.drop)

    def explain(self, broad: Counts, narrow: list[Counts]) -> str:
        """'stands' (raise it), 'explained' (the narrower ones are the problem) or
        'takes_over' (raise the broader one instead of the narrower ones)."""
        if not narrow:
            return "stands"
        inside = sum(narrow, Counts())
        covered = inside.attempts / broad.attempts if broad.attempts else 0.0
        if len(narrow) >= 2 and covered >= TAKE_OVER_SHARE:
            return "takes_over"
        return "stands" if self.breaches(broad - inside) else "explained"


def _drop_groups(w: Windows) -> dict[Key, Counts]:
    """Every group the drop rule looks at: pairs, countries, carriers, regions."""
    groups: defaultdict[Key, Counts] = defaultdict(Counts)
    for (country, carrier), c in w.pairs.items():
        if country is not None and carrier is not None:
            groups[(("country", country), ("carrier", carrier))] += c
        if country is not None:
            groups[(("country", country),)] += c
            region = w.regions.get(country)
            if region is not None:
                groups[(("region", region),)] += c
        if carrier is not None:
            groups[(("carrier", carrier),)] += c
    return dict(groups)


def _standing(groups: Mapping[Key, Counts], regions: Mapping[str, str], d: _Drop) -> set[Key]:
    """The breaching groups that are raised after explanation (see the module docstring)."""
    raw = {k for k, c in groups.items() if d.breaches(c)}
    suppressed: set[Key] = set()
    pairs = [k for k in raw if len(k) == 2]

    def settle(broad: Key, narrow: list[Key]) -> None:
        verdict = d.explain(groups[broad], [groups[n] for n in narrow])
        if verdict == "explained":
            suppressed.add(broad)
        elif verdict == "takes_over":
            suppressed.update(narrow)

    for key in [k for k in raw if len(k) == 1 and k[0][0] == "country"]:
        settle(key, [p for p in pairs if p[0] == key[0]])
    for key in [k for k in raw if len(k) == 1 and k[0][0] == "carrier"]:
        settle(key, [p for p in pairs if p[1] == key[0]])
    for key in [k for k in raw if len(k) == 1 and k[0][0] == "region"]:
        region = key[0][1]
        countries = [
            k
            for k in raw
            if len(k) == 1 and k[0][0] == "country" and regions.get(k[0][1]) == region
        ]
        breaching_countries = {k[0][1] for k in countries}
        loose = [
            p
            for p in pairs
            if regions.get(p[0][1]) == region and p[0][1] not in breaching_countries
        ]
        narrow = countries + loose
        verdict = d.explain(groups[key], [groups[n] for n in narrow])
        if verdict == "explained":
            suppressed.add(key)
        elif verdict == "takes_over":
            suppressed.update(narrow)
            suppressed.update(p for p in pairs if p[0][1] in breaching_countries)
    return raw - suppressed


def drop_observations(
    w: Windows, s: AlertSettings, baselines: Baselines
) -> tuple[list[Observation], set[Key]]:
    """`delivery_rate_drop` observations, and the groups whose drop is raised or firing."""
    d = _Drop(s.alert_drop, s.alert_min_attempts)
    groups = _drop_groups(w)
    standing = _standing(groups, w.regions, d)
    out: list[Observation] = []
    dropping: set[Key] = set()
    window = _duration(w.window_s)
    for key, c in groups.items():
        labels = dict(key)
        fp = fingerprint("delivery_rate_drop", labels)
        baseline = baselines.get(fp)
        if baseline is None and key not in standing:
            continue
        base = baseline if baseline is not None else c.prev_rate
        if base is None:
            continue
        rate = c.rate if c.rate is not None else 0.0
        threshold = base * (1 - d.drop)
        if baseline is not None:
            breach = d.breaches(c, baseline)
            # too few attempts to tell: it holds (no flapping on a quiet window); none at
            # all: the group has no traffic to judge (a silence is the silence rule's)
            clear = c.attempts == 0 or (
                c.attempts >= d.min_attempts and rate >= base * (1 - d.drop / 2)
            )
        else:
            breach, clear = True, False
        if breach or baseline is not None:
            dropping.add(key)
        change = (rate - base) / base if base else 0.0
        out.append(
            Observation(
                "delivery_rate_drop",
                labels,
                round(rate, 6),
                round(threshold, 6),
                breach,
                f"Delivery rate of {_name(key)} is {rate:.1%} over the last {window} "
                f"(was {base:.1%}: {change:+.0%}), {c.delivered}/{c.attempts} delivered"
                + _top_failures(c),
                clear=clear,
                baseline=round(base, 6),
                context={"attempts": c.attempts, "previous_attempts": c.prev_attempts},
            )
        )
    return out, dropping


def spike_observations(
    w: Windows, s: AlertSettings, baselines: Baselines, dropping: set[Key]
) -> list[Observation]:
    """`failure_reason_spike` per country x carrier and reason."""
    out: list[Observation] = []
    factor, least, window = s.alert_spike_factor, s.alert_spike_min, _duration(w.window_s)
    for (country, carrier), c in w.pairs.items():
        if country is None or carrier is None or c.attempts <= 0 or c.prev_attempts <= 0:
            continue
        region = w.regions.get(country)
        inhibited = bool(
            dropping
            & {
                (("country", country), ("carrier", carrier)),
                (("country", country),),
                (("carrier", carrier),),
                (("region", region or ""),),
            }
        )
        for reason in sorted(set(c.reasons) | set(c.prev_reasons)):
            labels = {"country": country, "carrier": carrier, "reason": reason}
            fp = fingerprint("failure_reason_spike", labels)
            baseline = baselines.get(fp)
            count, before = c.reasons.get(reason, 0), c.prev_reasons.get(reason, 0)
            share, prev_share = count / c.attempts, before / c.prev_attempts
            base = baseline if baseline is not None else prev_share
            enough = c.attempts >= s.alert_min_attempts
            if baseline is None:
                breach = (
                    not inhibited
                    and enough
                    and c.prev_attempts >= s.alert_min_attempts
                    and share > prev_share
                    and share >= factor * prev_share
                    and count - before >= least
                )
                if not breach:
                    continue
                clear = False
            else:
                breach = enough and share >= factor * base and share > base
                clear = not enough or share <= base * (1 + factor) / 2
            out.append(
                Observation(
                    "failure_reason_spike",
                    labels,
                    round(share, 6),
                    round(factor * base, 6),
                    breach,
                    f"{reason} is {share:.1%} of the attempts to {carrier} in {country} over "
                    f"the last {window} (was {prev_share:.1%}): {count} messages, "
                    f"{before} before",
                    clear=clear,
                    baseline=round(base, 6),
                )
            )
    return out


def silence_observations(w: Windows, s: AlertSettings, baselines: Baselines) -> list[Observation]:
    """`receipts_silent` per provider and per country x carrier, `delivered_stopped` per
    country x carrier."""
    out: list[Observation] = []
    least, window = s.alert_min_attempts, _duration(w.window_s)
    silent_providers = False
    groups: list[tuple[dict[str, str], Counts]] = [
        ({"provider": p}, c) for p, c in sorted(w.providers.items())
    ]
    groups += [
        ({"country": country, "carrier": carrier}, c)
        for (country, carrier), c in sorted(w.pairs.items(), key=lambda kv: str(kv[0]))
        if country is not None and carrier is not None
    ]
    for labels, c in groups:
        firing = fingerprint("receipts_silent", labels) in baselines
        breach = c.receipts == 0 and (firing or c.prev_receipts >= least)
        if "carrier" in labels and silent_providers and not firing:
            breach = False
        if "provider" in labels and breach:
            silent_providers = True
        if breach or firing:
            out.append(
                Observation(
                    "receipts_silent",
                    labels,
                    float(c.receipts),
                    0.0,
                    breach,
                    f"No receipts for {_name(tuple(labels.items()))} over the last {window} "
                    f"({c.prev_receipts} messages had receipts in the {window} before)",
                    clear=c.receipts > 0,
                    baseline=float(c.prev_receipts),
                )
            )
        if "carrier" not in labels:
            continue
        firing = fingerprint("delivered_stopped", labels) in baselines
        breach = (
            c.delivered == 0
            and c.receipts >= least
            and (firing or (c.prev_delivered > 0 and c.prev_attempts >= least))
        )
        if breach or firing:
            out.append(
                Observation(
                    "delivered_stopped",
                    labels,
                    float(c.delivered),
                    0.0,
                    breach,
                    f"{labels['carrier']} in {labels['country']} reported no delivered message "
                    f"over the last {window} ({c.receipts} messages with receipts; "
                    f"{c.prev_delivered} delivered the {window} before)",
                    clear=c.delivered > 0 or c.receipts < least,
                    baseline=float(c.prev_delivered),
                )
            )
    return out


def stuck_observations(w: Windows, s: AlertSettings, baselines: Baselines) -> list[Observation]:
    """`messages_stuck` per provider."""
    out: list[Observation] = []
    for provider, (stuck, messages, carriers) in sorted(w.stuck.items()):
        labels = {"provider": provider}
        firing = fingerprint("messages_stuck", labels) in baselines
        breach = stuck >= s.alert_stuck_max
        if breach or firing:
            out.append(
                Observation(
                    "messages_stuck",
                    labels,
                    float(stuck),
                    float(s.alert_stuck_max),
                    breach,
                    f"{stuck} of {messages} messages via {provider} first reported "
                    f"{_duration(s.alert_stuck_after_s)} ago are still not final"
                    + (f" (mostly {', '.join(carriers)})" if carriers else ""),
                    clear=stuck < s.alert_stuck_max / 2,
                )
            )
    return out


def observe(w: Windows, s: AlertSettings, baselines: Baselines) -> Iterable[Observation]:
    """Every business rule's observations for one evaluation."""
    drops, dropping = drop_observations(w, s, baselines)
    yield from drops
    yield from spike_observations(w, s, baselines, dropping)
    yield from silence_observations(w, s, baselines)
    yield from stuck_observations(w, s, baselines)
