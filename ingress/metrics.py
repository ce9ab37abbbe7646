"""Prometheus metrics of the ingress, one registry per app so tests stay independent.

The request path only adds to plain dicts and lists; a collector turns them into metric
families when `/metrics` is scraped. prometheus_client's own Counter/Histogram take a lock
and walk their children on every update, which cost a webhook more than its signature
check. The ingress is one event loop, so nothing here needs a lock: requests and scrapes
run on the same thread.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

#: Upper bounds (seconds) of both latency histograms.
BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Histogram:
    """Counts per bucket (the last one is +Inf) and the sum, cumulated only when scraped."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count one observation in the first bucket whose bound is >= value ("le")."""
        self.counts[bisect_left(BUCKETS, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative (le, count) pairs as the exposition format wants them."""
        out: list[tuple[str, float]] = []
        total = 0
        for bound, count in zip((*map(str, BUCKETS), "+Inf"), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out


class IngressMetrics:
    """Requests by provider and outcome, verification failures by reason, produce latency."""

    def __init__(self) -> None:
        #: (provider, outcome, status) -> requests; outcome is an error code or accepted/replay.
        self.requests: dict[tuple[str, str, str], int] = {}
        #: (provider, error class) -> authentication failures.
        self.verification_failures: dict[tuple[str, str], int] = {}
        #: provider -> raw records Kafka acknowledged.
        self.records: dict[str, int] = {}
        self.produce_seconds = Histogram()
        self.request_seconds: dict[str, Histogram] = {}
        self.in_flight = 0
        #: Whether the webhook path runs compiled (`ingress.webhook.COMPILED`), set by the app.
        self.compiled = False
        #: (provider, keyword) -> inbound messages (stop/start/help, none, no_number).
        self.inbound: dict[tuple[str, str], int] = {}
        #: kept / dropped -> refused requests for the refused topic (DLR_CAPTURE_REFUSED).
        self.refused_captures: dict[str, int] = {}
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def outcome(self, provider: str, outcome: str, status: str) -> None:
        """Count one webhook request by provider and outcome."""
        key = (provider, outcome, status)
        self.requests[key] = self.requests.get(key, 0) + 1

    def verification_failed(self, provider: str, reason: str) -> None:
        """Count one authentication failure by its error class."""
        key = (provider, reason)
        self.verification_failures[key] = self.verification_failures.get(key, 0) + 1

    def handled(self, provider: str, seconds: float) -> None:
        """Observe one webhook request's handling time."""
        histogram = self.request_seconds.get(provider)
        if histogram is None:
            histogram = self.request_seconds[provider] = Histogram()
        histogram.observe(seconds)

    def inbound_message(self, provider: str, keyword: str) -> None:
        """Count one inbound message by what it asks for."""
        key = (provider, keyword)
        self.inbound[key] = self.inbound.get(key, 0) + 1

    def refused_capture(self, result: str) -> None:
        """Count one refused request handed to the refused topic ('kept') or not ('dropped')."""
        self.refused_captures[result] = self.refused_captures.get(result, 0) + 1

    def produced(self, provider: str, records: int, seconds: float) -> None:
        """Count records Kafka acknowledged and how long that took."""
        self.records[provider] = self.records.get(provider, 0) + records
        self.produce_seconds.observe(seconds)

    def collect(self) -> Iterator[Metric]:
        """The metric families, built from the counts at scrape time (registry callback)."""
        requests = CounterMetricFamily(
            "dlr_ingress_requests",
            "Webhook requests by provider and outcome (error code or 'accepted'/'replay')",
            labels=["provider", "outcome", "status"],
        )
        for request_labels, count in self.requests.items():
            requests.add_metric(request_labels, count)
        failures = CounterMetricFamily(
            "dlr_ingress_verification_failures",
            "Authentication failures by provider and reason (error class)",
            labels=["provider", "reason"],
        )
        for failure_labels, count in self.verification_failures.items():
            failures.add_metric(failure_labels, count)
        records = CounterMetricFamily(
            "dlr_ingress_records", "Raw records acknowledged by Kafka", labels=["provider"]
        )
        for provider, count in self.records.items():
            records.add_metric([provider], count)
        captured = CounterMetricFamily(
            "dlr_ingress_refused_captures",
            "Refused requests handed to the refused topic (kept) or not, its queue full (dropped)",
            labels=["result"],
        )
        for result, count in self.refused_captures.items():
            captured.add_metric([result], count)
        produce = HistogramMetricFamily(
            "dlr_ingress_produce_seconds", "Time until Kafka acknowledged all records of a request"
        )
        produce.add_metric([], self.produce_seconds.buckets(), self.produce_seconds.sum)
        handling = HistogramMetricFamily(
            "dlr_ingress_request_seconds", "Webhook handling time", labels=["provider"]
        )
        for provider, histogram in self.request_seconds.items():
            handling.add_metric([provider], histogram.buckets(), histogram.sum)
        in_flight = GaugeMetricFamily(
            "dlr_ingress_in_flight", "Webhook requests being handled", value=self.in_flight
        )
        compiled = GaugeMetricFamily(
            "dlr_ingress_compiled",
            "1 when the webhook path runs as mypyc compiled it (dlr compile), 0 in pure Python",
            value=int(self.compiled),
        )
        inbound = CounterMetricFamily(
            "dlr_ingress_inbound_messages",
            "Inbound messages (a person wrote to us) by provider and keyword (stop, start, "
            "help; 'none': a conversation, not produced; 'no_number': no E.164 sender)",
            labels=["provider", "keyword"],
        )
        for inbound_labels, count in self.inbound.items():
            inbound.add_metric(inbound_labels, count)
        yield from (
            requests,
            failures,
            records,
            captured,
            produce,
            handling,
            in_flight,
            compiled,
            inbound,
        )
