"""The alert state machine: inactive -> pending -> firing -> resolved, without flapping.

Pure (no I/O, the clock is an argument), so every rule of it is unit-tested:

- a condition (`Observation.breach`) must hold for `for_s` before its alert fires
  (pending until then; a pending alert whose condition stops is forgotten);
- a firing alert resolves only when its clear condition (`Observation.clear`, stricter than
  "not breached": hysteresis) held for `for_s`; a value between the two thresholds keeps
  it firing; a group the rule no longer reports counts as clear;
- a firing alert is sent again every `renotify_s`, never more often;
- groups of a rule that could not be evaluated this time (ClickHouse down, a scrape
  failed) keep their state: not knowing is not the same as clear.

`restore()` rebuilds the firing alerts from the latest record of each fingerprint on
`dlr.alerts.v1`, so a restarted evaluator neither forgets nor re-announces them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sinks.alerts.model import Observation, record

__all__ = ["Evaluated", "Firing", "Tracker", "parse_time"]

#: Whether a rule's group was evaluated this time: (rule, labels) -> bool.
Evaluated = Callable[[str, Mapping[str, str]], bool]


@dataclass(slots=True)
class Firing:
    """A firing alert as the evaluator keeps it."""

    fingerprint: str
    rule: str
    labels: dict[str, str]
    value: float
    threshold: float
    baseline: float | None
    summary: str
    starts_at: float
    #: When the last record of it was produced (a state change or a re-notification).
    sent_at: float
    notification: int = 0
    #: Since when its clear condition holds (None: it does not).
    clear_since: float | None = None

    def as_record(self, status: str, at: float, ends_at: float | None = None) -> dict[str, Any]:
        """The record of this alert now."""
        return record(
            fingerprint=self.fingerprint,
            rule=self.rule,
            status="resolved" if status == "resolved" else "firing",
            labels=self.labels,
            value=self.value,
            threshold=self.threshold,
            baseline=self.baseline,
            summary=self.summary,
            starts_at=self.starts_at,
            ends_at=ends_at,
            at=at,
            notification=self.notification,
        )


def parse_time(text: str) -> float:
    """An RFC 3339 time of a record as epoch seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class Tracker:
    """Pending and firing alerts; `step()` is one evaluation."""

    for_s: float
    renotify_s: float
    #: fingerprint -> (since when its condition holds, its rule, its labels)
    pending: dict[str, tuple[float, str, Mapping[str, str]]] = field(default_factory=dict)
    firing: dict[str, Firing] = field(default_factory=dict)

    def baselines(self) -> dict[str, float | None]:
        """The firing alerts and the baseline each keeps (what the rules compare with)."""
        return {fp: active.baseline for fp, active in self.firing.items()}

    def step(
        self, now: float, observations: Iterable[Observation], evaluated: Evaluated
    ) -> list[dict[str, Any]]:
        """Apply one evaluation; `evaluated(rule, labels)` says whether that group was
        looked at (False: its rule or its source failed this time). Returns the records
        to produce, in order."""
        out: list[dict[str, Any]] = []
        seen: dict[str, Observation] = {}
        for obs in observations:
            seen[obs.fingerprint] = obs
        for fp, obs in seen.items():
            if not obs.breach:
                continue
            active = self.firing.get(fp)
            if active is not None:
                active.value, active.summary, active.clear_since = obs.value, obs.summary, None
                if now - active.sent_at >= self.renotify_s:
                    active.notification += 1
                    active.sent_at = now
                    out.append(active.as_record("firing", now))
                continue
            since = self.pending.setdefault(fp, (now, obs.rule, obs.labels))[0]
            if now - since >= self.for_s:
                del self.pending[fp]
                active = self.firing[fp] = Firing(
                    fp,
                    obs.rule,
                    dict(obs.labels),
                    obs.value,
                    obs.threshold,
                    obs.baseline,
                    obs.summary,
                    starts_at=since,
                    sent_at=now,
                )
                out.append(active.as_record("firing", now))
        for fp, (_, rule, labels) in list(self.pending.items()):
            if evaluated(rule, labels) and (fp not in seen or not seen[fp].breach):
                del self.pending[fp]
        for fp, active in list(self.firing.items()):
            if not evaluated(active.rule, active.labels):
                continue
            now_seen = seen.get(fp)
            if now_seen is not None and now_seen.breach:
                continue
            if now_seen is not None and not now_seen.clear:  # between the thresholds: holds
                active.value, active.clear_since = now_seen.value, None
                continue
            if now_seen is not None:  # the resolved record says how it is now
                active.value, active.summary = now_seen.value, now_seen.summary
            if active.clear_since is None:
                active.clear_since = now
            if now - active.clear_since >= self.for_s:
                del self.firing[fp]
                active.sent_at = now
                out.append(active.as_record("resolved", now, ends_at=now))
        return out

    def restore(self, latest: Mapping[str, Mapping[str, Any]]) -> int:
        """Rebuild the firing alerts from the latest record per fingerprint; returns how
        many fire. Their notification count and last send time come along, so nothing is
        re-sent before its re-notify time."""
        self.firing.clear()
        self.pending.clear()
        for fp, rec in latest.items():
            if rec.get("status") != "firing":
                continue
            self.firing[fp] = Firing(
                fp,
                str(rec["rule"]),
                {str(k): str(v) for k, v in dict(rec.get("labels") or {}).items()},
                float(rec.get("value") or 0.0),
                float(rec.get("threshold") or 0.0),
                None if rec.get("baseline") is None else float(rec["baseline"]),
                str(rec.get("summary") or ""),
                starts_at=parse_time(str(rec["starts_at"])),
                sent_at=parse_time(str(rec["at"])),
                notification=int(rec.get("notification") or 0),
            )
        return len(self.firing)
