"""The alert state machine (sinks/alerts/tracker.py): for, hysteresis, re-notify, restore."""

from __future__ import annotations

from collections.abc import Mapping

from sinks.alerts.model import Observation, fingerprint
from sinks.alerts.tracker import Tracker

LABELS = {"country": "DE", "carrier": "Vodafone"}


def obs(breach: bool, clear: bool = False, value: float = 0.5) -> Observation:
    return Observation(
        "delivery_rate_drop",
        LABELS,
        value,
        0.81,
        breach,
        f"rate {value}",
        clear=clear,
        baseline=0.9,
    )


def everything(rule: str, labels: Mapping[str, str]) -> bool:
    return True


def nothing(rule: str, labels: Mapping[str, str]) -> bool:
    return False


def statuses(records: list[dict[str, object]]) -> list[object]:
    return [r["status"] for r in records]


def test_fires_only_after_the_condition_held_for_its_duration() -> None:
    t = Tracker(for_s=10, renotify_s=3600)
    assert t.step(0, [obs(True)], everything) == []
    assert t.step(5, [obs(True)], everything) == []
    fired = t.step(10, [obs(True)], everything)
    assert statuses(fired) == ["firing"]
    assert fired[0]["starts_at"] == "1970-01-01T00:00:00.000Z"  # when it began to hold
    assert fired[0]["fingerprint"] == fingerprint("delivery_rate_drop", LABELS)


def test_a_pending_condition_that_stops_is_forgotten() -> None:
    t = Tracker(for_s=10, renotify_s=3600)
    t.step(0, [obs(True)], everything)
    t.step(5, [], everything)  # gone before `for`
    assert t.step(10, [obs(True)], everything) == []  # the clock starts again
    assert statuses(t.step(20, [obs(True)], everything)) == ["firing"]


def test_between_thresholds_it_keeps_firing_and_resolves_once_clear_held() -> None:
    t = Tracker(for_s=0, renotify_s=3600)
    assert statuses(t.step(0, [obs(True)], everything)) == ["firing"]
    # not breached, not clear: hysteresis holds it
    assert t.step(1, [obs(False, clear=False)], everything) == []
    assert t.firing
    resolved = t.step(2, [obs(False, clear=True, value=0.9)], everything)
    assert statuses(resolved) == ["resolved"]
    assert resolved[0]["ends_at"] == "1970-01-01T00:00:02.000Z"
    assert resolved[0]["value"] == 0.9 and resolved[0]["summary"] == "rate 0.9"
    assert not t.firing
    assert t.step(3, [], everything) == []


def test_resolving_needs_the_clear_condition_for_its_duration_too() -> None:
    t = Tracker(for_s=10, renotify_s=3600)
    t.step(0, [obs(True)], everything)
    t.step(10, [obs(True)], everything)
    assert t.step(11, [obs(False, clear=True)], everything) == []
    assert t.step(15, [obs(True)], everything) == []  # breached again: clock reset
    assert t.step(16, [obs(False, clear=True)], everything) == []
    assert statuses(t.step(26, [obs(False, clear=True)], everything)) == ["resolved"]


def test_renotifies_on_its_interval_only() -> None:
    t = Tracker(for_s=0, renotify_s=100)
    first = t.step(0, [obs(True)], everything)
    assert t.step(50, [obs(True)], everything) == []
    again = t.step(100, [obs(True)], everything)
    assert statuses(again) == ["firing"] and again[0]["notification"] == 1
    assert again[0]["id"] != first[0]["id"] and again[0]["starts_at"] == first[0]["starts_at"]
    assert t.step(150, [obs(True)], everything) == []


def test_a_group_that_was_not_evaluated_keeps_its_state() -> None:
    t = Tracker(for_s=0, renotify_s=3600)
    t.step(0, [obs(True)], everything)
    assert t.step(1, [], nothing) == []  # the source failed: not knowing is not clear
    assert t.firing
    assert statuses(t.step(2, [], everything)) == ["resolved"]  # evaluated, not reported


def test_restore_keeps_firing_alerts_without_resending_them() -> None:
    t = Tracker(for_s=0, renotify_s=100)
    fired = t.step(0, [obs(True)], everything)[0]
    resolved_other = {**fired, "fingerprint": "other", "status": "resolved"}
    restarted = Tracker(for_s=0, renotify_s=100)
    assert restarted.restore({fired["fingerprint"]: fired, "other": resolved_other}) == 1
    assert restarted.step(30, [obs(True)], everything) == []  # already sent at 0
    again = restarted.step(100, [obs(True)], everything)  # re-notify time kept
    assert again[0]["notification"] == 1 and again[0]["starts_at"] == fired["starts_at"]
    assert restarted.baselines() == {fired["fingerprint"]: 0.9}
    assert statuses(restarted.step(101, [], everything)) == ["resolved"]
