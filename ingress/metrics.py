"""Prometheus metrics of the ingress, one registry per app so tests stay independent."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class IngressMetrics:
    """Requests by provider and outcome, verification failures by reason, produce latency."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "dlr_ingress_requests",
            "Webhook requests by provider and outcome (error code or 'accepted'/'replay')",
            ["provider", "outcome", "status"],
            registry=r,
        )
        self.verification_failures = Counter(
            "dlr_ingress_verification_failures",
            "Authentication failures by provider and reason (error class)",
            ["provider", "reason"],
            registry=r,
        )
        self.records = Counter(
            "dlr_ingress_records",
            "Raw records acknowledged by Kafka",
            ["provider"],
            registry=r,
        )
        self.produce_seconds = Histogram(
            "dlr_ingress_produce_seconds",
            "Time until Kafka acknowledged all records of a request",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.request_seconds = Histogram(
            "dlr_ingress_request_seconds",
            "Webhook handling time",
            ["provider"],
            buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.in_flight = Gauge(
            "dlr_ingress_in_flight", "Webhook requests being handled", registry=r
        )
