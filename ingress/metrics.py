"""Prometheus metrics of the ingress, one registry per app so tests stay independent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class IngressMetrics:
    """Requests by provider and outcome, verification failures by reason, produce latency."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    #: Labelled children by label values: `labels()` costs more than the update itself.
    _children: dict[tuple[Any, ...], Any] = field(default_factory=dict)

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
        self.inbound = Counter(
            "dlr_ingress_inbound_messages",
            "Inbound messages (a person wrote to us) by provider and keyword (stop, start, "
            "help; 'none': a conversation, not produced; 'no_number': no E.164 sender)",
            ["provider", "keyword"],
            registry=r,
        )

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def outcome(self, provider: str, outcome: str, status: str) -> None:
        """Count one webhook request by provider and outcome."""
        self._child(self.requests, provider, outcome, status).inc()

    def handled(self, provider: str, seconds: float) -> None:
        """Observe one webhook request's handling time."""
        self._child(self.request_seconds, provider).observe(seconds)

    def inbound_message(self, provider: str, keyword: str) -> None:
        """Count one inbound message by what it asks for."""
        self._child(self.inbound, provider, keyword).inc()

    def produced(self, provider: str, records: int, seconds: float) -> None:
        """Count records Kafka acknowledged and how long that took."""
        self._child(self.records, provider).inc(records)
        self.produce_seconds.observe(seconds)
