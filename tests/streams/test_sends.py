"""The join of registrations and receipts (streams/sends.py), pure: every arrival order,
duplicates, redeliveries, conflicts, and Vonage messages sent in parts."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.envelope import RawEnvelope
from schemas.events import CanonicalEvent
from schemas.lifecycle import State
from schemas.sends import digest, part_link
from streams import sends
from streams.transforms import Config, Outcome

CONFIG = Config(fallback_campaigns=frozenset({"order-confirmation"}), salt="s")
RAW, SENDS = "raw", "sends"
L = "vonage:0B00000127FDBC63"


def registration(message_id: str = L, parts: Sequence[str] | None = None, **changes: Any) -> bytes:
    record: dict[str, Any] = {
        "type": "registration",
        "v": 1,
        "message_id": message_id,
        "provider": message_id.partition(":")[0],
        "provider_message_id": message_id.partition(":")[2],
        "recipient": "+447547232824",
        "sender": "ACME",
        "campaign": "order-confirmation",
        "tenant": "acme",
        "client_ref": "order-1001",
        "submitted_at": "2018-10-25T12:10:20.000Z",
        "consent": {
            "source": "checkout-checkbox",
            "obtained_at": "2018-10-01T09:00:00.000Z",
            "reference": "terms-v3",
        },
        "parts": list(parts) if parts else None,
        "country": "GB",
        "region": "Northern Europe",
        "registered_at": "2018-10-25T12:10:21.000Z",
        "key_id": "k1",
        **changes,
    }
    record["digest"] = digest(record)
    return orjson.dumps(record)


def vonage(part: str, status: str, err: str = "0", at: str = "2018-10-25 12:10:29") -> bytes:
    """A Vonage SMS API delivery receipt as the ingress wraps it (docs' example fields)."""
    payload = {
        "err-code": err,
        "message-timestamp": at,
        "messageId": part,
        "msisdn": "447547232824",
        "network-code": "23410",
        "price": "0.03330000",
        "scts": "1810251310",
        "status": status,
        "to": "ACME",
    }
    return RawEnvelope(
        provider="vonage",
        message_id=f"vonage:{part}",
        provider_message_id=part,
        received_at=1_540_469_430.0,
        method="GET",
        url="http://x/webhooks/vonage",
        headers={},
        content_type="",
        body="",
        body_encoding="utf-8",
        body_sha256="0" * 64,
        payload=payload,
        key_id="k_test",
    ).to_json()


def events(out: Outcome) -> list[CanonicalEvent]:
    return [CanonicalEvent.from_json(v) for _, v in out.status]


class Worker:
    """The agent's loop over both topics, in memory: one table, offsets per topic."""

    def __init__(self) -> None:
        self.table: dict[bytes, dict[str, Any]] = {}
        self.offsets: defaultdict[str, int] = defaultdict(int)
        self.events: list[CanonicalEvent] = []
        self.dead: list[dict[str, Any]] = []

    def handle(self, topic: str, key: bytes, value: bytes) -> tuple[Outcome, list[Any]]:
        offset = self.offsets[topic]
        self.offsets[topic] += 1
        return self.at(topic, key, value, offset)

    def at(self, topic: str, key: bytes, value: bytes, offset: int) -> tuple[Outcome, list[Any]]:
        decide = sends.send if topic == SENDS else sends.receipt
        out = decide(value, key, self.table.get(key), 0, offset, 2.0e9, CONFIG)
        self.events.extend(events(out))
        self.dead.extend(orjson.loads(v) for _, v in out.deadletter)
        if out.store is not None:
            self.table[key] = orjson.loads(orjson.dumps(out.store))
        return out, [(SENDS, k, v) for k, v in out.forward]

    def run(self, records: list[tuple[str, bytes, bytes]], rng: random.Random) -> None:
        """Process in the given order; forwarded records go to a random later place."""
        queue = list(records)
        while queue:
            topic, key, value = queue.pop(0)
            _, forwarded = self.handle(topic, key, value)
            for item in forwarded:
                queue.insert(rng.randint(0, len(queue)), item)

    def state(self, key: str = L) -> State:
        return State(self.table[key.encode()]["st"]["s"])


def test_registration_first_fills_the_reports_event() -> None:
    w = Worker()
    out, _ = w.handle(SENDS, L.encode(), registration())
    assert out.kind == "new" and out.status == []
    out, _ = w.handle(RAW, L.encode(), vonage("0B00000127FDBC63", "delivered"))
    [event] = events(out)
    assert (event.campaign, event.tenant, event.client_ref) == (
        "order-confirmation",
        "acme",
        "order-1001",
    )
    assert event.consent_source == "checkout-checkbox"
    assert event.consent_at == datetime(2018, 10, 1, 9, tzinfo=UTC)
    assert event.submitted_at == datetime(2018, 10, 25, 12, 10, 20, tzinfo=UTC)
    assert event.transition == "advanced" and event.current_state is State.DELIVERED


def test_a_reports_own_campaign_wins_over_the_registration() -> None:
    w = Worker()
    w.handle(SENDS, L.encode(), registration(campaign="from-registration"))
    raw = orjson.loads(vonage("0B00000127FDBC63", "delivered"))
    raw["token"] = {"campaign": "from-token"}
    out, _ = w.handle(RAW, L.encode(), orjson.dumps(raw))
    assert events(out)[0].campaign == "from-token"


def test_registration_after_reports_emits_one_enriched_event() -> None:
    w = Worker()
    out, _ = w.handle(RAW, L.encode(), vonage("0B00000127FDBC63", "failed", "2"))
    [report] = events(out)
    assert report.campaign is None
    out, _ = w.handle(SENDS, L.encode(), registration())
    [enriched] = events(out)
    assert enriched.transition == "enriched"
    assert enriched.state is enriched.current_state is State.UNDELIVERED
    # the status fields of the current state are repeated, so ClickHouse's argMax of the
    # message's status is the same whichever of the two it picks
    for name in ("failure_reason", "provider_status", "provider_error_code", "mapped"):
        assert getattr(enriched, name) == getattr(report, name), name
    assert enriched.campaign == "order-confirmation" and enriched.consent_source
    assert enriched.raw_sha256 == orjson.loads(registration())["digest"]
    assert w.state() is State.UNDELIVERED


def test_duplicate_registration_is_dropped_and_a_conflicting_one_dead_lettered() -> None:
    w = Worker()
    w.handle(RAW, L.encode(), vonage("0B00000127FDBC63", "delivered"))
    assert events(w.handle(SENDS, L.encode(), registration())[0])
    out, _ = w.handle(SENDS, L.encode(), registration())
    assert out.kind == "duplicate" and out.status == []
    out, _ = w.handle(SENDS, L.encode(), registration(campaign="other"))
    assert out.kind == "invalid" and out.status == []
    assert w.dead[-1]["reason"] == "registration_conflict"
    assert w.table[L.encode()]["j"]["campaign"] == "order-confirmation"


def test_redelivered_registration_re_emits_the_same_event() -> None:
    w = Worker()
    w.handle(RAW, L.encode(), vonage("0B00000127FDBC63", "delivered"))
    first, _ = w.at(SENDS, L.encode(), registration(), 7)
    again, _ = w.at(SENDS, L.encode(), registration(), 7)
    assert again.kind == "redelivery"
    assert [e.event_id for e in events(first)] == [e.event_id for e in events(again)]
    assert events(again)[0].campaign == "order-confirmation"


def test_a_registration_that_adds_nothing_emits_nothing() -> None:
    w = Worker()
    raw = orjson.loads(vonage("0B00000127FDBC63", "delivered"))
    raw["token"] = {"campaign": "c", "tenant": "t", "ref": "r"}
    w.handle(RAW, L.encode(), orjson.dumps(raw))
    out, _ = w.handle(
        SENDS,
        L.encode(),
        registration(campaign="c", tenant="t", client_ref="r", submitted_at=None, consent={}),
    )
    assert out.kind == "new" and out.status == []


def test_a_bad_sends_record_is_dead_lettered() -> None:
    w = Worker()
    out, _ = w.handle(SENDS, L.encode(), b'{"type": "nonsense"}')
    assert out.kind == "invalid" and w.dead[-1]["reason"] == "unparseable_send"


STATUSES = [("accepted", "0"), ("delivered", "0"), ("failed", "2"), ("expired", "0")]


@settings(max_examples=100, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(0, 3))
def test_join_ends_the_same_in_every_arrival_order(rng: random.Random, reports: int) -> None:
    """Registration and 0..3 reports (plus a provider duplicate) in any order: same final
    state, same joined fields on the last event, same state in the table."""
    receipts = [
        (RAW, L.encode(), vonage("0B00000127FDBC63", status, err, f"2018-10-25 12:10:3{i}"))
        for i, (status, err) in enumerate(rng.sample(STATUSES, reports))
    ]
    if receipts:
        receipts.append(rng.choice(receipts))
    records = [(SENDS, L.encode(), registration()), *receipts]

    def outcome(order: list[tuple[str, bytes, bytes]]) -> tuple[Any, ...]:
        w = Worker()
        w.run(order, rng)
        stored = w.table[L.encode()]
        last = w.events[-1] if w.events else None
        joined = (last.campaign, last.consent_source, last.submitted_at) if last else None
        return (stored.get("st"), stored["j"], joined)

    expected = outcome(records)
    for _ in range(4):
        order = list(records)
        rng.shuffle(order)
        assert outcome(order) == expected
    if reports:
        assert expected[2] == (
            "order-confirmation",
            "checkout-checkbox",
            datetime(2018, 10, 25, 12, 10, 20, tzinfo=UTC),
        )


# -- Vonage: one message, three parts, each reported under its own messageId ----------------

PARTS = ["0B00000127FDBC63", "0B00000127FDBC64", "0B00000127FDBC65"]


def multipart_records(statuses: Sequence[tuple[str, str]]) -> list[tuple[str, bytes, bytes]]:
    reg = registration(parts=PARTS)
    at = orjson.loads(reg)["registered_at"]
    records = [(SENDS, L.encode(), reg)]
    records += [(SENDS, k, v) for k, v in part_link(L, PARTS, at)]
    for part, (status, err) in zip(PARTS, statuses, strict=True):
        records.append((RAW, f"vonage:{part}".encode(), vonage(part, status, err)))
    return records


def order_key(event: CanonicalEvent) -> tuple[Any, ...]:
    """ClickHouse's version of a message's status (ddl/0002): the state machine's order."""
    ts = event.provider_timestamp.timestamp() if event.provider_timestamp else None
    own = event.state == event.current_state
    return sends.part_order(event.current_state, ts if own else None, None)


def test_a_message_in_parts_is_delivered_when_every_part_is() -> None:
    w = Worker()
    records = multipart_records([("delivered", "0")] * 3)
    w.run(records, random.Random(1))
    assert w.state() is State.DELIVERED
    mine = [e for e in w.events if e.message_id == L]
    assert {e.provider_message_id for e in mine} == set(PARTS)  # every part in the history
    assert all(e.message_id == L for e in w.events)  # counted once: one message id
    assert sum(e.transition == "advanced" and e.current_state is State.DELIVERED for e in mine) == 1


def test_a_message_in_parts_waits_for_every_part() -> None:
    w = Worker()
    records = multipart_records([("delivered", "0")] * 3)[:-1]  # the third part never reports
    w.run(records, random.Random(2))
    assert w.state() is State.ACCEPTED
    assert max(w.events, key=order_key).current_state is State.ACCEPTED
    assert all(e.message_id == L for e in w.events)


def test_one_failed_part_fails_the_message_with_that_parts_reason() -> None:
    w = Worker()
    w.run(
        multipart_records([("delivered", "0"), ("failed", "3"), ("delivered", "0")]),
        random.Random(3),
    )
    assert w.state() is State.UNDELIVERED
    top = max((e for e in w.events if e.message_id == L), key=order_key)
    assert top.current_state is State.UNDELIVERED and top.state is State.UNDELIVERED
    assert top.provider_error_code == "3" and top.provider_message_id == PARTS[1]
    assert str(top.failure_reason) == "invalid_number"


def _race(order: Sequence[tuple[str, bytes, bytes]]) -> bool:
    """The one documented inexact order: a final report of the message's own id processed
    before its registration and before any other part's report reached it."""
    own = next(i for i, r in enumerate(order) if r[0] == RAW and r[1] == L.encode())
    reg = next(i for i, r in enumerate(order) if r[0] == SENDS and r[1] == L.encode())
    return own < reg


@settings(max_examples=100, deadline=None)
@given(
    st.randoms(use_true_random=False),
    st.lists(
        st.sampled_from([("delivered", "0"), ("failed", "2"), ("accepted", "0")]),
        min_size=3,
        max_size=3,
    ),
    st.booleans(),
)
def test_parts_fold_the_same_in_every_arrival_order(
    rng: random.Random, statuses: list[tuple[str, str]], duplicate: bool
) -> None:
    """Registration, links and part reports (Vonage's format) in any order, forwarded
    records anywhere after their cause: the message ends in the least advanced part's
    state, and the greatest event by ClickHouse's version says so too."""
    records = multipart_records(statuses)
    if duplicate:
        records.append(rng.choice(records[4:]))
    ranked = sorted(
        (
            State.DELIVERED
            if s == "delivered"
            else State.UNDELIVERED
            if s == "failed"
            else State.SENT
        )
        for s, _ in statuses
    )
    order = list(records)
    rng.shuffle(order)
    if _race(order):
        order.remove(records[0])
        order.insert(0, records[0])
    w = Worker()
    w.run(order, rng)
    expected = min(ranked, key=lambda s: sends.part_order(s, None, None))
    assert w.state() is expected
    # parts reported before their link were emitted under their own ids (left out as parts)
    mine = [e for e in w.events if e.message_id == L]
    assert max(mine, key=order_key).current_state is expected


def test_a_parts_reports_before_its_link_are_folded_when_the_link_arrives() -> None:
    w = Worker()
    second = f"vonage:{PARTS[1]}".encode()
    out, _ = w.handle(RAW, second, vonage(PARTS[1], "failed", "2"))
    assert events(out)[0].message_id == second.decode()  # nothing links it yet
    records = multipart_records([("delivered", "0"), ("failed", "2"), ("delivered", "0")])
    w.run([r for r in records if r[1] != second or r[0] == SENDS], random.Random(4))
    assert w.state() is State.UNDELIVERED
    # a provider retry of the same receipt, arriving after the link, is a duplicate
    _, forwarded = w.handle(RAW, second, vonage(PARTS[1], "failed", "2"))
    out, _ = w.handle(*forwarded[0])
    assert out.kind == "duplicate"


@pytest.mark.parametrize("redelivered", [0, 1])
def test_a_redelivered_part_record_re_emits_the_same_events(redelivered: int) -> None:
    w = Worker()
    records = multipart_records([("delivered", "0")] * 3)
    for topic, key, value in records[:4]:
        w.handle(topic, key, value)
    forwarded = []
    for topic, key, value in records[4:]:
        forwarded += w.handle(topic, key, value)[1]
    outs = []
    for index, (topic, key, value) in enumerate(forwarded):
        outs.append(w.at(topic, key, value, 100 + index)[0])
    topic, key, value = forwarded[redelivered]
    again, _ = w.at(topic, key, value, 100 + redelivered)
    assert again.kind == "redelivery"
    assert [e.event_id for e in events(again)] == [e.event_id for e in events(outs[redelivered])]
    assert [e.current_state for e in events(again)] == [
        e.current_state for e in events(outs[redelivered])
    ]


def test_faust_assigns_raw_and_sends_partitions_together() -> None:
    """faust's assignor puts topics with the same partition count and the same subscribers
    into one co-partitioned group: partition i of dlr.raw.v1, dlr.sends.v1 and the table's
    changelog go to the same worker, so a registration meets its message's reports."""
    from types import SimpleNamespace

    from faust.assignor.partition_assignor import PartitionAssignor

    topics = {"dlr.raw.v1", "dlr.sends.v1", "dlr-streams-dlr-messages-changelog", "other"}
    counts = {"dlr.raw.v1": 8, "dlr.sends.v1": 8, "dlr-streams-dlr-messages-changelog": 8}
    cluster = SimpleNamespace(partitions_for_topic=lambda topic: set(range(counts.get(topic, 3))))
    workers = {"w1": sorted(topics), "w2": sorted(topics)}
    groups = PartitionAssignor._get_copartitioned_groups(topics, cluster, workers)
    assert [set(group) for group in groups[8]] == [set(counts)]
