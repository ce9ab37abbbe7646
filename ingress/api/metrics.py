"""Prometheus metrics of the sender's API, one registry per app so tests stay independent."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


@dataclass
class ApiMetrics:
    """Requests by route and outcome, registrations, Kafka and ClickHouse latency."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "dlr_api_requests",
            "Requests by route, outcome (error code or 'ok') and status",
            ["route", "outcome", "status"],
            registry=r,
        )
        self.registered = Counter(
            "dlr_api_registrations", "Messages registered (Kafka acknowledged)", registry=r
        )
        self.produce_seconds = Histogram(
            "dlr_api_produce_seconds", "Time until Kafka acknowledged", buckets=_BUCKETS, registry=r
        )
        self.lookup_seconds = Histogram(
            "dlr_api_lookup_seconds",
            "Status lookup time in ClickHouse",
            buckets=_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("dlr_api_in_flight", "Requests being handled", registry=r)
        self.suppressed_numbers = Gauge(
            "dlr_api_suppressed_numbers", "Suppressed numbers in this process's list", registry=r
        )
        self.suppressions_loaded = Gauge(
            "dlr_api_suppressions_loaded",
            "1 once the suppression list was read up to the topic's end at start",
            registry=r,
        )
        self.suppression_records = Counter(
            "dlr_api_suppression_records",
            "Records of dlr.suppressions.v1 read, by outcome (applied, invalid)",
            ["outcome"],
            registry=r,
        )
        self.checks = Counter(
            "dlr_api_suppression_checks",
            "Numbers checked, by result (suppressed, allowed, invalid)",
            ["result"],
            registry=r,
        )
        self.suppression_changes = Counter(
            "dlr_api_suppression_changes",
            "Entries written through the API, by change (add, remove)",
            ["change"],
            registry=r,
        )
        self.erasures = Counter(
            "dlr_api_erasures", "Erasures by phone number, by outcome", ["outcome"], registry=r
        )
