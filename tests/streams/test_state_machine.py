"""The per-message state machine: advancing only, documented final-vs-final rule."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.lifecycle import State
from streams.state_machine import MessageState, Report, decide


def report(state: State, ts: float | None = None, seq: int | None = None, **info: object) -> Report:
    return Report(state, ts, seq, False, dict(info))


def run(*reports: Report) -> MessageState:
    current: MessageState | None = None
    for r in reports:
        current = decide(current, r).after
    assert current is not None
    return current


def test_first_report_advances_from_nothing() -> None:
    d = decide(None, report(State.SENT, carrier="EE"))
    assert (d.transition, d.previous, d.current) == ("advanced", None, State.SENT)
    assert d.after.info == {"carrier": "EE"}


@pytest.mark.parametrize(
    ("first", "second", "transition", "current"),
    [
        pytest.param(State.ACCEPTED, State.SENT, "advanced", State.SENT, id="forward"),
        pytest.param(State.SENT, State.QUEUED, "stale", State.SENT, id="backward-is-stale"),
        pytest.param(State.DELIVERED, State.SENT, "stale", State.DELIVERED, id="late-sent"),
        pytest.param(State.SENT, State.DELIVERED, "advanced", State.DELIVERED, id="final"),
        pytest.param(
            State.UNDELIVERED,
            State.DELIVERED,
            "advanced",
            State.DELIVERED,
            id="delivered-beats-undelivered",
        ),
        pytest.param(
            State.DELIVERED, State.UNDELIVERED, "stale", State.DELIVERED, id="delivered-is-sticky"
        ),
        pytest.param(State.UNKNOWN, State.EXPIRED, "advanced", State.EXPIRED, id="unknown-is-soft"),
        pytest.param(
            State.EXPIRED, State.UNKNOWN, "stale", State.EXPIRED, id="unknown-never-replaces"
        ),
        pytest.param(
            State.FAILED,
            State.REJECTED,
            "advanced",
            State.REJECTED,
            id="precedence-without-timestamps",
        ),
        pytest.param(
            State.REJECTED, State.FAILED, "stale", State.REJECTED, id="precedence-other-order"
        ),
    ],
)
def test_transitions(first: State, second: State, transition: str, current: State) -> None:
    d = decide(decide(None, report(first)).after, report(second))
    assert d.transition == transition
    assert d.current == current
    assert d.previous == first


def test_later_failure_wins_by_timestamp() -> None:
    assert run(report(State.REJECTED, ts=10), report(State.EXPIRED, ts=20)).state is State.EXPIRED
    assert run(report(State.EXPIRED, ts=20), report(State.REJECTED, ts=10)).state is State.EXPIRED


def test_sequence_orders_before_timestamps() -> None:
    state = run(report(State.UNDELIVERED, ts=99, seq=5), report(State.EXPIRED, ts=1, seq=6))
    assert state.state is State.EXPIRED


def test_same_state_with_new_information_is_enrichment() -> None:
    d = decide(run(report(State.SENT)), report(State.SENT, carrier="Vivo", price=0.01))
    assert d.transition == "enriched"
    assert d.after.info == {"carrier": "Vivo", "price": 0.01}


def test_same_state_without_new_information_emits_nothing() -> None:
    d = decide(run(report(State.SENT, carrier="Vivo")), report(State.SENT, carrier="Vivo"))
    assert d.transition is None


def test_stale_report_keeps_state_but_adds_information() -> None:
    d = decide(run(report(State.DELIVERED)), report(State.SENT, carrier="EE"))
    assert d.transition == "stale"
    assert d.after.state is State.DELIVERED
    assert d.after.info["carrier"] == "EE"


def test_state_round_trips_through_the_table_form() -> None:
    state = run(report(State.SENT, ts=1.5, seq=2, carrier="EE"))
    assert MessageState.from_dict(state.to_dict()) == state


finals = [
    State.DELIVERED,
    State.UNDELIVERED,
    State.FAILED,
    State.REJECTED,
    State.EXPIRED,
    State.UNKNOWN,
]
reports = st.builds(
    report,
    st.sampled_from(list(State)),
    st.one_of(st.none(), st.floats(0, 1e6, allow_nan=False)),
    st.one_of(st.none(), st.integers(0, 100)),
)


@given(st.lists(reports, min_size=1, max_size=6, unique_by=lambda r: (r.state, r.ts, r.seq)))
def test_final_state_does_not_depend_on_arrival_order(rs: list[Report]) -> None:
    outcomes = {run(*perm).state for perm in itertools.islice(itertools.permutations(rs), 120)}
    assert len(outcomes) == 1
