"""What an alert is: its rule, its labels, its fingerprint, and the record it makes.

A rule's evaluation yields `Observation`s, one per group it looked at: the value, the
threshold that fires, whether the condition holds now (`breach`) and whether it is
clearly gone (`clear`, a stricter condition: the hysteresis that keeps an alert from
flapping around its threshold). `sinks.alerts.tracker` turns them into state changes;
`record()` is the JSON of one change on `dlr.alerts.v1`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "RULES",
    "Observation",
    "Rule",
    "Severity",
    "fingerprint",
    "iso",
    "record",
]

Severity = Literal["page", "ticket"]
Status = Literal["firing", "resolved"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: its name (`rule` in records, Alertmanager's `alertname`), how urgent, and
    the runbook section (an anchor of deploy/README.md) an on-call engineer reads."""

    name: str
    severity: Severity
    title: str
    source: Literal["clickhouse", "metrics"]

    @property
    def runbook(self) -> str:
        """Where the runbook section is, relative to the repository root."""
        return f"deploy/README.md#{self.name}"


RULES: Mapping[str, Rule] = {
    r.name: r
    for r in (
        Rule("delivery_rate_drop", "page", "Delivery rate dropped", "clickhouse"),
        Rule("failure_reason_spike", "ticket", "Failure reason spiked", "clickhouse"),
        Rule("receipts_silent", "page", "No receipts any more", "clickhouse"),
        Rule("delivered_stopped", "page", "Carrier stopped reporting delivered", "clickhouse"),
        Rule("messages_stuck", "ticket", "Messages stuck before a final state", "clickhouse"),
        Rule("clickhouse_unavailable", "page", "Alert rules cannot read ClickHouse", "clickhouse"),
        Rule("ingress_errors", "page", "Ingress answers 5xx", "metrics"),
        Rule("ingress_broker_unavailable", "page", "Kafka does not acknowledge", "metrics"),
        Rule("ingress_unauthorized_burst", "ticket", "Burst of 401s", "metrics"),
        Rule("consumer_lag", "page", "A consumer is falling behind", "metrics"),
        Rule("dead_letters", "ticket", "Records are dead-lettered", "metrics"),
        Rule("target_down", "page", "A service's /metrics does not answer", "metrics"),
    )
}


@dataclass(frozen=True, slots=True)
class Observation:
    """One group of one rule in one evaluation.

    `breach`: the firing condition holds; `clear`: the (stricter) resolving condition
    holds; neither: the value is between the two thresholds and the alert keeps its state.
    `baseline`: what the rule compares against, kept while the alert fires (a drop is
    measured against the rate before it began, not against a window that already holds
    the incident)."""

    rule: str
    labels: Mapping[str, str]
    value: float
    threshold: float
    breach: bool
    summary: str
    clear: bool = False
    baseline: float | None = None
    context: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """The alert's stable identity: rule + labels."""
        return fingerprint(self.rule, self.labels)


def fingerprint(rule: str, labels: Mapping[str, str]) -> str:
    """16 hex digits of SHA-256 over the rule and the sorted labels."""
    text = rule + "\x00" + "\x00".join(f"{k}={labels[k]}" for k in sorted(labels))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def iso(seconds: float) -> str:
    """Epoch seconds as RFC 3339 UTC with milliseconds and a Z."""
    stamp = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def record(
    *,
    fingerprint: str,
    rule: str,
    status: Status,
    labels: Mapping[str, str],
    value: float,
    threshold: float,
    baseline: float | None,
    summary: str,
    starts_at: float,
    ends_at: float | None,
    at: float,
    notification: int,
) -> dict[str, Any]:
    """The JSON of one state change (or re-notification) on `dlr.alerts.v1`.

    `id` is unique per record and stable across re-deliveries: it is the `webhook-id`
    receivers dedupe on."""
    spec = RULES[rule]
    return {
        "id": f"alert_{fingerprint}_{round(starts_at * 1000)}_{status}_{notification}",
        "fingerprint": fingerprint,
        "rule": rule,
        "status": status,
        "severity": spec.severity,
        "labels": dict(labels),
        "value": value,
        "threshold": threshold,
        "baseline": baseline,
        "summary": summary,
        "title": spec.title,
        "runbook": spec.runbook,
        "starts_at": iso(starts_at),
        "ends_at": iso(ends_at) if ends_at is not None else None,
        "at": iso(at),
        "notification": notification,
    }
