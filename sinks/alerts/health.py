"""Pipeline health from the services' own `/metrics`: no Prometheus server needed.

Every evaluation scrapes each target of `DLR_METRICS_TARGETS` (job=URL) and keeps the
samples of the last `alert_metrics_window_s`; counter rules use the increase between the
oldest and the newest scrape in that window (a counter that went down restarted: its new
value is the increase), gauge rules the newest value:

- `target_down` {job}: the scrape failed (connection, timeout, not 200);
- `ingress_errors` {job}: 5xx answers other than `broker_unavailable` are at least
  `alert_error_share` of at least `alert_min_requests` webhook requests;
- `ingress_broker_unavailable` {job}: `broker_unavailable` (Kafka did not acknowledge)
  answers are at least `alert_error_share` of them;
- `ingress_unauthorized_burst` {job, provider}: at least `alert_unauthorized_min` 401s of
  one provider, at least `alert_unauthorized_share` of its requests (forged requests, or
  a provider that rotated its secret before we did);
- `consumer_lag` {job}: the worker's (end - committed offsets of its partitions), the
  sink's (`dlr_sink_lag` + `dlr_sink_sends_lag`) or dispatch's lag is at least
  `alert_max_lag`; sustained because it must hold for `alert_for_s`; resolves under half;
- `dead_letters` {job}: the worker, the sink or dispatch dead-lettered records in the
  window; resolves after a window without any.

A job whose scrape failed keeps the state of its other alerts (not knowing is not clear);
counter rules wait for a second scrape after a start.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from sinks.alerts.model import Observation
from sinks.alerts.settings import AlertSettings

__all__ = ["Scrape", "Scraper", "health_observations"]

#: (metric name with its _total suffix, sorted labels) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
#: Counters whose increase is a dead letter.
DEAD_LETTER_COUNTERS = (
    "dlr_streams_deadletters_total",
    "dlr_sink_rejected_total",
    "dlr_sink_invalid_total",
    "dlr_sink_sends_rejected_total",
    "dlr_sink_sends_invalid_total",
    "dlr_dispatch_deadletters_total",
)
RULES = (
    "target_down",
    "ingress_errors",
    "ingress_broker_unavailable",
    "ingress_unauthorized_burst",
    "consumer_lag",
    "dead_letters",
)
COUNTER_RULES = frozenset(
    {"ingress_errors", "ingress_broker_unavailable", "ingress_unauthorized_burst", "dead_letters"}
)


def parse(text: str) -> Samples:
    """Prometheus text format to samples (histogram buckets dropped: not needed here)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith(("_bucket", "_created")):
                continue
            out[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return out


@dataclass(frozen=True, slots=True)
class Scrape:
    """One target's samples at one time (None: the scrape failed, with why)."""

    at: float
    samples: Samples | None
    error: str | None = None


@dataclass
class Scraper:
    """Scrapes the targets and keeps each job's recent scrapes."""

    targets: Mapping[str, str]
    window_s: float
    timeout_s: float = 5.0
    history: dict[str, deque[Scrape]] = field(default_factory=dict)

    async def scrape(self, client: httpx.AsyncClient, now: float | None = None) -> None:
        """Scrape every target once, concurrently."""
        at = time.time() if now is None else now
        jobs = list(self.targets)
        results = await asyncio.gather(*(self._one(client, self.targets[j]) for j in jobs))
        for job, (samples, error) in zip(jobs, results, strict=True):
            self.add(job, Scrape(at, samples, error))

    def add(self, job: str, scrape: Scrape) -> None:
        """Keep a scrape, and only those of the window (plus the one just before it)."""
        kept = self.history.setdefault(job, deque())
        kept.append(scrape)
        while len(kept) > 2 and kept[1].at <= scrape.at - self.window_s:
            kept.popleft()

    async def _one(self, client: httpx.AsyncClient, url: str) -> tuple[Samples | None, str | None]:
        try:
            response = await client.get(url, timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:200]
        if response.status_code != 200:
            return None, f"HTTP {response.status_code}"
        try:
            return parse(response.text), None
        except ValueError as exc:
            return None, f"unparseable metrics: {exc}"[:200]


def _sum(samples: Samples, name: str, **match: str) -> float:
    total = 0.0
    for (sample, labels), value in samples.items():
        if sample == name and all((k, v) in labels for k, v in match.items()):
            total += value
    return total


def _increase(old: Samples, new: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Per label set, the counter's increase (a reset counts its new value)."""
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for (sample, labels), value in new.items():
        if sample != name:
            continue
        before = old.get((sample, labels), 0.0)
        out[labels] = value - before if value >= before else value
    return out


def _worker_lag(samples: Samples) -> float | None:
    ends: dict[tuple[tuple[str, str], ...], float] = {}
    commits: dict[tuple[tuple[str, str], ...], float] = {}
    for (name, labels), value in samples.items():
        if name == "dlr_faust_topic_partition_end_offset":
            ends[labels] = value
        elif name == "dlr_faust_topic_partition_offset_commited":
            commits[labels] = value
    if not ends:
        return None
    return sum(max(0.0, end - commits.get(labels, 0.0)) for labels, end in ends.items())


def lag_of(samples: Samples) -> float | None:
    """The consumer lag a job reports (None: it is not a consumer)."""
    worker = _worker_lag(samples)
    if worker is not None:
        return worker
    names = {name for name, _ in samples}
    found = [n for n in ("dlr_sink_lag", "dlr_sink_sends_lag", "dlr_dispatch_lag") if n in names]
    if not found:
        return None
    return sum(_sum(samples, n) for n in found)


@dataclass(frozen=True, slots=True)
class Health:
    """The observations of one evaluation and which groups could be judged."""

    observations: list[Observation]
    #: (rule, job) pairs that were not judged this time.
    unknown: frozenset[tuple[str, str]]

    def evaluated(self, rule: str, labels: Mapping[str, str]) -> bool:
        """Whether this group was judged (the tracker keeps the state of the others)."""
        return (rule, labels.get("job", "")) not in self.unknown


def _share(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def health_observations(history: Mapping[str, Iterable[Scrape]], s: AlertSettings) -> Health:
    """Every health rule's observations from the kept scrapes."""
    out: list[Observation] = []
    unknown: set[tuple[str, str]] = set()
    window = f"{s.alert_metrics_window_s:g}s"
    for job, kept in sorted(history.items()):
        scrapes = list(kept)
        if not scrapes:
            unknown.update((rule, job) for rule in RULES)
            continue
        newest = scrapes[-1]
        up = newest.samples is not None
        out.append(
            Observation(
                "target_down",
                {"job": job},
                0.0 if up else 1.0,
                1.0,
                not up,
                f"{job} /metrics does not answer: {newest.error}" if not up else f"{job} is up",
                clear=up,
            )
        )
        if newest.samples is None:
            unknown.update((rule, job) for rule in RULES if rule != "target_down")
            continue
        new = newest.samples
        lag = lag_of(new)
        if lag is not None:
            out.append(
                Observation(
                    "consumer_lag",
                    {"job": job},
                    lag,
                    float(s.alert_max_lag),
                    lag >= s.alert_max_lag,
                    f"{job} is {lag:,.0f} records behind",
                    clear=lag < s.alert_max_lag / 2,
                )
            )
        older = [sc for sc in scrapes[:-1] if sc.samples is not None]
        if not older:
            unknown.update((rule, job) for rule in COUNTER_RULES)
            continue
        old = older[0].samples
        assert old is not None
        out.extend(_ingress(job, old, new, s, window))
        dead = sum(sum(_increase(old, new, name).values()) for name in DEAD_LETTER_COUNTERS)
        out.append(
            Observation(
                "dead_letters",
                {"job": job},
                dead,
                0.0,
                dead > 0,
                f"{job} dead-lettered {dead:,.0f} records in the last {window}",
                clear=dead == 0,
            )
        )
    return Health(out, frozenset(unknown))


def _ingress(
    job: str, old: Samples, new: Samples, s: AlertSettings, window: str
) -> list[Observation]:
    """ingress_errors, ingress_broker_unavailable, ingress_unauthorized_burst."""
    increase = _increase(old, new, "dlr_ingress_requests_total")
    if not increase:
        return []
    total = sum(increase.values())
    broker = sum(v for k, v in increase.items() if ("outcome", "broker_unavailable") in k)
    errors = sum(
        v
        for k, v in increase.items()
        if dict(k).get("status", "").startswith("5") and ("outcome", "broker_unavailable") not in k
    )
    out: list[Observation] = []
    enough = total >= s.alert_min_requests
    for rule, count, what in (
        ("ingress_errors", errors, "5xx answers"),
        ("ingress_broker_unavailable", broker, "broker_unavailable (503) answers"),
    ):
        share = _share(count, total)
        out.append(
            Observation(
                rule,
                {"job": job},
                round(share, 6),
                s.alert_error_share,
                enough and share >= s.alert_error_share,
                f"{share:.1%} of {total:,.0f} webhook requests to {job} got {what} "
                f"in the last {window}",
                clear=share < s.alert_error_share / 2,
            )
        )
    providers: dict[str, tuple[float, float]] = {}
    for labels, value in increase.items():
        named = dict(labels)
        provider = named.get("provider", "")
        unauthorized, requests = providers.get(provider, (0.0, 0.0))
        if named.get("status") == "401":
            unauthorized += value
        providers[provider] = (unauthorized, requests + value)
    for provider, (unauthorized, requests) in sorted(providers.items()):
        share = _share(unauthorized, requests)
        breach = unauthorized >= s.alert_unauthorized_min and share >= s.alert_unauthorized_share
        if not breach and unauthorized == 0 and provider != "":
            # report only providers with 401s (keeps the list short); absent = clear
            continue
        out.append(
            Observation(
                "ingress_unauthorized_burst",
                {"job": job, "provider": provider},
                unauthorized,
                float(s.alert_unauthorized_min),
                breach,
                f"{unauthorized:,.0f} of {requests:,.0f} {provider} webhook requests to {job} "
                f"were refused 401 in the last {window} (forged, or a rotated secret that is "
                "not configured)",
                clear=unauthorized < s.alert_unauthorized_min / 2,
            )
        )
    return out
