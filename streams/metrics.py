"""Prometheus counters of the worker, served by faust's web server at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

records = Counter("dlr_streams_records", "Raw records by outcome", ["kind"])
transitions = Counter(
    "dlr_streams_transitions",
    "Canonical events by transition and provider",
    ["transition", "provider"],
)
unmapped = Counter("dlr_streams_unmapped", "Reports with an unmapped status or code", ["provider"])
deadletters = Counter("dlr_streams_deadletters", "Records sent to the dead-letter topic")
actions = Counter("dlr_streams_actions", "Actions emitted")
latency = Histogram(
    "dlr_streams_raw_to_canonical_seconds",
    "Ingress receive time to canonical emit time",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
