"""Which alert rules one webhook outcome feeds, derived by running the rules themselves.

`dlr try` shows, next to each message, the rules of `sinks/alerts/` that could fire if
that outcome became common. Nothing here lists rules by hand: `could_raise` builds the
windows and scrapes such a flood would produce and asks the rules' own decision functions
which of them breach:

- business rules (`sinks.alerts.business`): a previous window of healthy traffic (every
  message delivered) for the message's provider, country, carrier and region, then a
  current window in which every message had this outcome (state, failure reason, final
  or not); a message that is not final is also counted stuck. Each rule is asked on its
  own: the evaluator's "one problem, one alert" inhibition (a reason spike is not raised
  while the same group's delivery-rate drop is) is a choice between rules an outcome
  feeds, not a rule it does not feed.
- health rules (`sinks.alerts.health`): two scrapes of the ingress's request counter, the
  second with as many requests answered this HTTP status (and error code) as the rule
  needs.

Sizes are taken from the alert settings (thresholds), so a rule whose threshold is
changed is still judged with enough traffic to reach it. Labels a rule needs but the
outcome has not (no country or carrier: the rules' pair groups skip it) mean the rule
does not apply, as in production.
"""

from __future__ import annotations

from dataclasses import dataclass

from sinks.alerts.business import (
    Counts,
    Windows,
    drop_observations,
    silence_observations,
    spike_observations,
    stuck_observations,
)
from sinks.alerts.health import Scrape, health_observations
from sinks.alerts.model import RULES, Observation
from sinks.alerts.settings import AlertSettings

__all__ = ["Outcome", "could_raise"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one message came to: the ingress's answer and the worker's canonical event."""

    provider: str
    http: int | None
    error: str | None = None
    state: str | None = None
    reason: str | None = None
    is_final: bool | None = None
    country: str | None = None
    carrier: str | None = None
    region: str | None = None


def _flood(s: AlertSettings) -> int:
    """Messages (and requests) enough to reach every threshold."""
    return 2 * max(
        s.alert_min_attempts,
        s.alert_spike_min,
        s.alert_stuck_max,
        s.alert_min_requests,
        s.alert_unauthorized_min,
    )


def _business(o: Outcome, s: AlertSettings, n: int) -> list[Observation]:
    if o.state is None:
        return []
    final = bool(o.is_final)
    delivered = o.state == "delivered"
    counts = Counts(
        attempts=n if final else 0,
        delivered=n if delivered else 0,
        receipts=n,
        reasons={o.reason or "unknown": n} if final and not delivered else {},
        prev_attempts=n,
        prev_delivered=n,
        prev_receipts=n,
    )
    windows = Windows(
        pairs={(o.country, o.carrier): counts},
        regions={o.country: o.region} if o.country and o.region else {},
        providers={o.provider: counts},
        stuck={} if final else {o.provider: (n, n, [o.carrier] if o.carrier else [])},
        window_s=s.alert_window_s,
    )
    drops, _ = drop_observations(windows, s, {})
    return [
        *drops,
        *spike_observations(windows, s, {}, set()),
        *silence_observations(windows, s, {}),
        *stuck_observations(windows, s, {}),
    ]


def _health(o: Outcome, s: AlertSettings, n: int) -> list[Observation]:
    if o.http is None:
        return []
    outcome = "accepted" if 200 <= o.http < 300 else (o.error or "refused")
    name = "dlr_ingress_requests_total"
    named = {"provider": o.provider, "outcome": outcome, "status": str(o.http)}
    labels = tuple(sorted(named.items()))
    before = Scrape(0.0, {(name, labels): 0.0})
    after = Scrape(s.alert_metrics_window_s, {(name, labels): float(n)})
    return health_observations({"ingress": [before, after]}, s).observations


def could_raise(outcome: Outcome, settings: AlertSettings) -> list[str]:
    """The rules (in `sinks.alerts.model.RULES` order) a flood of this outcome fires."""
    n = _flood(settings)
    fired = {
        o.rule
        for o in (*_business(outcome, settings, n), *_health(outcome, settings, n))
        if o.breach
    }
    return [name for name in RULES if name in fired]
