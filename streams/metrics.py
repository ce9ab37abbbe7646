"""Prometheus counters of the worker, served by faust's web server at /metrics.

The agent counts into a `Tally` (plain dicts, no locks) and moves the counts to these
metrics about once a second: a labelled Prometheus update costs ~1 us per call, several
per record, which is a visible share of the worker's budget at 10,000 records/s.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram

if TYPE_CHECKING:
    from streams.transforms import Outcome

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


class Tally:
    """Counts of the records processed since the last `flush()` (one event loop only)."""

    __slots__ = ("actions", "deadletters", "latencies", "records", "transitions", "unmapped")

    def __init__(self) -> None:
        self.records: defaultdict[str, int] = defaultdict(int)
        self.transitions: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.unmapped: defaultdict[str, int] = defaultdict(int)
        self.deadletters = 0
        self.actions = 0
        self.latencies: list[float] = []

    def count(self, out: Outcome, now: float) -> None:
        """Count one record's outcome."""
        self.records[out.kind] += 1
        event = out.event
        if event is not None:
            self.transitions[event.transition, event.provider] += 1
            self.latencies.append(max(0.0, now - event.received_at.timestamp()))
            if not event.mapped:
                self.unmapped[event.provider] += 1
        if out.deadletter:
            self.deadletters += len(out.deadletter)
        if out.actions:
            self.actions += len(out.actions)

    def flush(self) -> None:
        """Add the counts to the Prometheus metrics and start again from zero."""
        for kind, n in self.records.items():
            records.labels(kind).inc(n)
        for (transition, provider), n in self.transitions.items():
            transitions.labels(transition, provider).inc(n)
        for provider, n in self.unmapped.items():
            unmapped.labels(provider).inc(n)
        if self.deadletters:
            deadletters.inc(self.deadletters)
        if self.actions:
            actions.inc(self.actions)
        observe = latency.observe
        for seconds in self.latencies:
            observe(seconds)
        self.records.clear()
        self.transitions.clear()
        self.unmapped.clear()
        self.deadletters = self.actions = 0
        self.latencies.clear()
