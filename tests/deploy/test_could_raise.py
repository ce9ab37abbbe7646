"""`dlr try`'s "alerts it could raise": asked of the alert rules themselves."""

from __future__ import annotations

import pytest

from deploy.tools.could_raise import Outcome, could_raise
from sinks.alerts.settings import AlertSettings

DE = {"country": "DE", "carrier": "Vodafone", "region": "Western Europe"}


def final(state: str, reason: str | None = None, **labels: str) -> Outcome:
    where = labels or DE
    return Outcome("twilio", 200, None, state, reason, True, **where)


def test_a_delivered_message_feeds_no_alert() -> None:
    assert could_raise(final("delivered"), AlertSettings()) == []


@pytest.mark.parametrize(
    ("state", "reason"), [("undelivered", "unreachable"), ("expired", None), ("rejected", "spam")]
)
def test_a_final_failure_feeds_the_drop_the_reason_spike_and_delivered_stopped(
    state: str, reason: str | None
) -> None:
    assert could_raise(final(state, reason), AlertSettings()) == [
        "delivery_rate_drop",
        "failure_reason_spike",
        "delivered_stopped",
    ]


def test_a_message_left_before_a_final_state_feeds_the_stuck_rule() -> None:
    sent = Outcome("twilio", 200, None, "sent", None, False, **DE)
    raised = could_raise(sent, AlertSettings())
    assert "messages_stuck" in raised
    assert "delivery_rate_drop" not in raised  # not an attempt: the rate does not move


def test_without_country_and_carrier_the_group_rules_do_not_apply() -> None:
    unknown = Outcome("twilio", 200, None, "undelivered", "unreachable", True)
    assert could_raise(unknown, AlertSettings()) == []


@pytest.mark.parametrize(
    ("http", "error", "rule"),
    [
        (401, "signature_invalid", "ingress_unauthorized_burst"),
        (503, "broker_unavailable", "ingress_broker_unavailable"),
        (500, "internal_error", "ingress_errors"),
    ],
)
def test_a_refusal_feeds_the_ingress_health_rule_of_its_status(
    http: int, error: str, rule: str
) -> None:
    assert could_raise(Outcome("vonage", http, error), AlertSettings()) == [rule]


def test_the_flood_follows_the_thresholds_so_raised_settings_still_fire() -> None:
    strict = AlertSettings(
        alert_min_attempts=50_000, alert_spike_min=40_000, alert_unauthorized_min=70_000
    )
    assert could_raise(final("undelivered", "unreachable"), strict) == [
        "delivery_rate_drop",
        "failure_reason_spike",
        "delivered_stopped",
    ]
    assert could_raise(Outcome("vonage", 401, "x"), strict) == ["ingress_unauthorized_burst"]
