"""Prometheus metrics of outbound webhooks, per endpoint (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["WebhookMetrics"]


@dataclass
class WebhookMetrics:
    """Attempts, latency, retries, outcomes and circuit state, labelled by endpoint."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.attempts = Counter(
            "dlr_webhook_attempts",
            "HTTP attempts by result: 2xx, 3xx, 4xx, 5xx, timeout, error",
            ["endpoint", "result"],
            registry=r,
        )
        self.attempt_seconds = Histogram(
            "dlr_webhook_attempt_seconds",
            "Time of one attempt, request to response (or timeout)",
            ["endpoint"],
            registry=r,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.retries = Counter(
            "dlr_webhook_retries", "Attempts after the first", ["endpoint"], registry=r
        )
        self.deliveries = Counter(
            "dlr_webhook_deliveries",
            "Deliveries by outcome: delivered, refused (permanent 4xx/3xx), exhausted (budget)",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.circuit_state = Gauge(
            "dlr_webhook_circuit_state",
            "Circuit breaker: 0 closed, 1 open, 2 half-open",
            ["endpoint"],
            registry=r,
        )
        self.circuit_opened = Counter(
            "dlr_webhook_circuit_opened", "Times the circuit opened", ["endpoint"], registry=r
        )
        self.in_flight = Gauge(
            "dlr_webhook_in_flight", "Requests in flight", ["endpoint"], registry=r
        )
