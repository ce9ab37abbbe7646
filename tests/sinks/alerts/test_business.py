"""The business rules' decisions (sinks/alerts/business.py) on window counts."""

from __future__ import annotations

from typing import Any

from sinks.alerts.business import Counts, Windows, observe
from sinks.alerts.model import Observation, fingerprint
from sinks.alerts.settings import AlertSettings

S = AlertSettings.model_validate({})  # drop 10 %, 100 attempts minimum, spike x2 and +20


def c(attempts: int, delivered: int, prev_attempts: int, prev_delivered: int, **kw: Any) -> Counts:
    return Counts(
        attempts,
        delivered,
        kw.pop("receipts", attempts),
        kw.pop("reasons", {"expired": attempts - delivered}),
        prev_attempts,
        prev_delivered,
        kw.pop("prev_receipts", prev_attempts),
        kw.pop("prev_reasons", {"expired": prev_attempts - prev_delivered}),
    )


def windows(pairs: dict[tuple[str | None, str | None], Counts], **kw: Any) -> Windows:
    providers = kw.pop("providers", {"vonage": sum(pairs.values(), Counts())})
    regions = {"DE": "Western Europe", "FR": "Western Europe", "GB": "Northern Europe"}
    return Windows(pairs, regions, providers, kw.pop("stuck", {}), 3600)


def firing(w: Windows, baselines: dict[str, float | None] | None = None) -> list[Observation]:
    return [o for o in observe(w, S, baselines or {}) if o.breach]


def labels(found: list[Observation]) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {(o.rule, tuple(sorted(o.labels.items()))) for o in found}


HEALTHY = c(1000, 900, 1000, 905)


def test_one_carrier_dropping_is_one_alert_on_that_pair() -> None:
    w = windows({("DE", "Vodafone"): c(1000, 500, 1000, 900), ("DE", "Telekom"): HEALTHY})
    found = firing(w)
    assert labels(found) == {
        ("delivery_rate_drop", (("carrier", "Vodafone"), ("country", "DE")))
    }  # not also DE, Vodafone alone or Western Europe: the pair explains them
    (alert,) = found
    assert alert.value == 0.5 and alert.threshold == 0.81 and alert.baseline == 0.9
    assert "Vodafone" in alert.summary and "-44%" in alert.summary


def test_small_groups_never_page() -> None:
    w = windows({("DE", "Vodafone"): c(99, 10, 1000, 900), ("DE", "Telekom"): HEALTHY})
    assert firing(w) == []
    w = windows({("DE", "Vodafone"): c(1000, 100, 99, 90)})
    assert firing(w) == []
    # a carrier of 50 attempts at 10 % inside a healthy country: nothing either
    w = windows({("DE", "Vodafone"): c(50, 5, 50, 45), ("DE", "Telekom"): HEALTHY})
    assert firing(w) == []


def test_a_drop_under_the_threshold_does_not_fire() -> None:
    w = windows({("DE", "Vodafone"): c(1000, 820, 1000, 900)})  # -8.9 %
    assert firing(w) == []


def test_a_country_wide_drop_is_one_alert_on_the_country() -> None:
    w = windows(
        {
            ("DE", "Vodafone"): c(1000, 400, 1000, 900),
            ("DE", "Telekom"): c(1000, 400, 1000, 900),
            ("FR", "Orange"): HEALTHY,
        }
    )
    assert labels(firing(w)) == {("delivery_rate_drop", (("country", "DE"),))}


def test_while_firing_the_drop_is_measured_against_its_baseline() -> None:
    drop = fingerprint("delivery_rate_drop", {"country": "DE", "carrier": "Vodafone"})
    # an hour into the incident both windows are bad: still firing against 0.9
    w = windows({("DE", "Vodafone"): c(1000, 500, 1000, 500), ("DE", "Telekom"): HEALTHY})
    (obs,) = [o for o in observe(w, S, {drop: 0.9}) if o.rule == "delivery_rate_drop"]
    assert obs.breach and obs.baseline == 0.9
    # back to 0.86: not breached, not clear (0.855 is half the threshold): holds
    w = windows({("DE", "Vodafone"): c(1000, 850, 1000, 500)})
    (obs,) = [o for o in observe(w, S, {drop: 0.9}) if o.rule == "delivery_rate_drop"]
    assert not obs.breach and not obs.clear
    w = windows({("DE", "Vodafone"): c(1000, 870, 1000, 500)})
    (obs,) = [o for o in observe(w, S, {drop: 0.9}) if o.rule == "delivery_rate_drop"]
    assert obs.clear
    # a quiet window (fewer attempts than the minimum) neither fires nor resolves it
    w = windows({("DE", "Vodafone"): c(60, 59, 1000, 500)})
    (obs,) = [o for o in observe(w, S, {drop: 0.9}) if o.rule == "delivery_rate_drop"]
    assert not obs.breach and not obs.clear


def test_a_failure_reason_spike_fires_unless_its_drop_does() -> None:
    spike = c(
        1000,
        880,
        1000,
        900,
        reasons={"opted_out": 100, "expired": 20},
        prev_reasons={"opted_out": 10, "expired": 90},
    )
    found = firing(windows({("DE", "Vodafone"): spike}))
    assert labels(found) == {
        (
            "failure_reason_spike",
            (("carrier", "Vodafone"), ("country", "DE"), ("reason", "opted_out")),
        )
    }
    dropped = c(1000, 500, 1000, 900, reasons={"opted_out": 500}, prev_reasons={"opted_out": 100})
    w = windows({("DE", "Vodafone"): dropped, ("DE", "Telekom"): HEALTHY})
    assert {o.rule for o in firing(w)} == {"delivery_rate_drop"}


def test_a_silent_provider_is_one_alert_and_hides_its_carriers() -> None:
    silent = c(0, 0, 500, 450)
    w = windows(
        {("DE", "Vodafone"): silent, ("DE", "Telekom"): HEALTHY},
        providers={"vonage": silent, "plivo": HEALTHY},
    )
    assert labels(firing(w)) == {("receipts_silent", (("provider", "vonage"),))}


def test_a_carrier_that_stops_reporting_delivered() -> None:
    w = windows(
        {("DE", "Vodafone"): c(300, 0, 300, 270, receipts=300), ("GB", "EE"): HEALTHY},
        providers={"vonage": HEALTHY},
    )
    rules = {o.rule for o in firing(w)}
    assert "delivered_stopped" in rules
    # fewer receipts than the minimum: nobody is paged
    w = windows(
        {("DE", "Vodafone"): c(50, 0, 300, 270, receipts=50)}, providers={"vonage": HEALTHY}
    )
    assert "delivered_stopped" not in {o.rule for o in firing(w)}


def test_stuck_messages_fire_per_provider_over_the_threshold() -> None:
    w = windows({("DE", "Telekom"): HEALTHY}, stuck={"vonage": (150, 400, ["Vodafone"])})
    (alert,) = firing(w)
    assert alert.rule == "messages_stuck" and alert.labels == {"provider": "vonage"}
    assert "Vodafone" in alert.summary
    w = windows({("DE", "Telekom"): HEALTHY}, stuck={"vonage": (99, 400, [])})
    assert firing(w) == []
