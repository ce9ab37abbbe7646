"""One decision per message: fallback, suppress and delivered_after_fallback actions.

The unit tests call `streams.transforms.process` (which calls `streams.actions.decide`);
the property test runs the real agent (`Lifecycle.handle` and its timer `fire_due`) on an
in-memory table and producer, crashes it at any point, recovers the table from its
changelog as faust does, and compares the action ids that reached Kafka with what the
message's reports and the grace rule demand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.actions import DELIVERED_AFTER_FALLBACK, FALLBACK, SUPPRESS, action_id
from streams.agents.lifecycle import DUE_PREFIX, Lifecycle
from streams.settings import WorkerSettings
from streams.transforms import Config, Outcome, process
from tests.streams.agents.test_lifecycle import FakeProducer
from tests.streams.test_transforms import raw

CAMPAIGN = "order-confirmation"
GRACE = 30.0
CONFIG = Config(fallback_campaigns=frozenset({CAMPAIGN}), salt="s", fallback_grace_s=GRACE)
AT_ONCE = Config(fallback_campaigns=frozenset({CAMPAIGN}), salt="s")
KEY = b"generic:m"


def acts(out: Outcome) -> list[dict[str, Any]]:
    return [orjson.loads(v) for _, v in out.actions]


def run(records: list[tuple[bytes, float]], config: Config) -> list[Outcome]:
    """Process records of one message in order (offset = index), keeping the table."""
    stored: dict[str, Any] | None = None
    outs = []
    for offset, (record, now) in enumerate(records):
        out = process(record, KEY, stored, 0, offset, now, config)
        stored = out.store if out.store is not None else stored
        outs.append(out)
    return outs


def failed(status: str = "undelivered", second: int = 1, **extra: Any) -> bytes:
    return raw("m", status, f"2025-01-01T00:00:0{second}Z", campaign=CAMPAIGN, **extra)


def delivered(second: int = 9) -> bytes:
    return raw("m", "delivered", f"2025-01-01T00:00:0{second}Z", campaign=CAMPAIGN)


def test_two_failures_give_one_fallback_with_a_message_scoped_id() -> None:
    outs = run([(failed("undelivered", 1), 10.0), (failed("rejected", 2), 11.0)], AT_ONCE)
    emitted = [a for out in outs for a in acts(out)]
    assert [a["type"] for a in emitted] == [FALLBACK]
    assert emitted[0]["action_id"] == action_id("generic:m", FALLBACK)
    assert emitted[0]["channel"] == "email" and emitted[0]["client_ref"] is None


def test_a_fallback_inside_the_grace_is_pending_and_a_delivered_cancels_it() -> None:
    first, second = run([(failed(), 10.0), (delivered(), 10.0 + GRACE - 1)], CONFIG)
    assert acts(first) == [] and first.due_added == 10.0 + GRACE
    assert first.store is not None and first.store["a"]["fb"] == "p"
    assert acts(second) == [] and second.due_removed == 10.0 + GRACE
    assert second.store is not None and second.store["a"] == {"fb": "c"}


def test_a_report_after_the_due_time_lets_the_fallback_out_first() -> None:
    """The timer may not have run yet: a delivered after due still means 'stayed failed'."""
    _, second = run([(failed(), 10.0), (delivered(), 10.0 + GRACE)], CONFIG)
    assert [a["type"] for a in acts(second)] == [FALLBACK, DELIVERED_AFTER_FALLBACK]
    fallback, after = acts(second)
    assert (
        fallback["state"] == "undelivered"
        and after["fallback_action_id"] == (fallback["action_id"])
    )
    assert second.due_removed == 10.0 + GRACE


def test_a_later_failure_inside_the_grace_updates_the_pending_fallback() -> None:
    _, second = run([(failed("undelivered", 1), 10.0), (failed("rejected", 2), 12.0)], CONFIG)
    assert second.due_added is None and second.due_removed is None
    assert second.store is not None
    pending = second.store["a"]
    assert pending["due"] == 10.0 + GRACE and pending["body"]["state"] == "rejected"
    assert pending["body"]["failed_at"] == "1970-01-01T00:00:10Z"  # the first failure


def test_a_campaign_outside_the_fallback_list_gets_no_fallback() -> None:
    record = raw("m", "undelivered", "2025-01-01T00:00:01Z", campaign="newsletter")
    (out,) = run([(record, 1.0)], AT_ONCE)
    assert acts(out) == [] and out.store is not None and "a" not in out.store


def test_opt_outs_give_one_suppress_per_message() -> None:
    outs = run(
        [
            (failed("undelivered", 1, provider_status_code="opted_out"), 1.0),
            (failed("rejected", 2, provider_status_code="opted_out"), 2.0),
        ],
        AT_ONCE,
    )
    emitted = [a["type"] for out in outs for a in acts(out)]
    assert emitted == [FALLBACK, SUPPRESS]
    assert sum(len(out.suppressions) for out in outs) == 1


def test_a_redelivery_re_emits_the_same_ids_from_the_decision_it_saw() -> None:
    outs = run([(failed(), 1.0), (delivered(), 2.0)], AT_ONCE)
    assert outs[1].store is not None
    again = process(delivered(), KEY, outs[1].store, 0, 1, 5.0, AT_ONCE)
    assert again.kind == "redelivery"
    assert [a["action_id"] for a in acts(again)] == [a["action_id"] for a in acts(outs[1])]
    assert [a["type"] for a in acts(again)] == [DELIVERED_AFTER_FALLBACK]


# -- the property: any order, duplicates, timer phase and crash point ---------------------

REPORTS = {
    "sent": ("sent", None),
    "undelivered": ("undelivered", None),
    "rejected": ("rejected", "opted_out"),
    "delivered": ("delivered", None),
}
#: Provider timestamps follow the real order: a later failure beats an earlier one.
ORDER = ["sent", "undelivered", "rejected", "delivered"]


class MemoryStore:
    """`PartitionStore` in memory (one partition), keys kept in RocksDB's order on scan."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self.data.get(key)

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        self.data[key] = value

    def delete(self, partition: int, key: bytes) -> None:
        self.data.pop(key, None)

    def scan(self, partition: int, start: bytes) -> Iterator[tuple[bytes, bytes]]:
        return iter([(k, self.data[k]) for k in sorted(self.data) if k >= start])

    def store_offset(self, partition: int, offset: int) -> None:
        pass


@dataclass
class Op:
    time: float
    #: Offset of the raw record, or None for a timer tick.
    offset: int | None


def expected(
    arrivals: list[str], times: list[float], eligible: bool, grace: float
) -> set[tuple[str, str]]:
    """What the reports demand, from first principles (first failure and first delivered)."""
    t_fail = t_delivered = None
    opted_out = False
    for name, t in zip(arrivals, times, strict=True):
        if t_delivered is not None:
            continue  # delivered beats everything after it
        if name == "delivered":
            t_delivered = t
        elif name in ("undelivered", "rejected"):
            t_fail = t if t_fail is None else t_fail
            opted_out = opted_out or name == "rejected"
    out = set()
    if opted_out:
        out.add((SUPPRESS, action_id("generic:m", SUPPRESS)))
    if eligible and t_fail is not None and (t_delivered is None or t_delivered >= t_fail + grace):
        out.add((FALLBACK, action_id("generic:m", FALLBACK)))
        if t_delivered is not None:
            out.add((DELIVERED_AFTER_FALLBACK, action_id("generic:m", DELIVERED_AFTER_FALLBACK)))
    return out


def _settings(tmp: Path, grace: float) -> WorkerSettings:
    return WorkerSettings(
        data_dir=tmp, topic_partitions=1, fallback_campaigns=CAMPAIGN, fallback_grace_s=grace
    )


async def _play(
    lifecycle: Lifecycle,
    ops: list[Op],
    records: list[bytes],
    producer: FakeProducer,
    clock: list[float],
) -> list[tuple[int, int, int]]:
    """Run ops; per op (sends before, sends after, changelog records before)."""
    marks = []
    for op in ops:
        before = len(producer.sent)
        changelog_before = len(producer.to(lifecycle.changelog))
        clock[0] = op.time
        if op.offset is None:
            await lifecycle.fire_due([0], op.time)
        else:
            await lifecycle.handle(lifecycle.source_topic, 0, op.offset, KEY, records[op.offset])
        marks.append((before, len(producer.sent), changelog_before))
    return marks


@settings(max_examples=120, deadline=None)
@given(
    st.lists(st.sampled_from(ORDER), min_size=1, max_size=5),
    st.data(),
)
def test_any_order_duplicates_and_crash_emit_exactly_the_demanded_action_ids(
    tmp_path_factory: Any, names: list[str], data: st.DataObject
) -> None:
    grace = data.draw(st.sampled_from([0.0, 5.0]), "grace")
    eligible = data.draw(st.booleans(), "eligible")
    campaign = CAMPAIGN if eligible else "other"
    # Duplicates: the same report again (the provider retried it).
    arrivals = names + data.draw(st.lists(st.sampled_from(names), max_size=2), "duplicates")
    arrivals = data.draw(st.permutations(arrivals), "arrival order")
    records = []
    for name in arrivals:
        status, code = REPORTS[name]
        second = ORDER.index(name)
        records.append(raw("m", status, f"2025-01-01T00:00:0{second}Z", code, campaign=campaign))
    gaps = data.draw(
        st.lists(
            st.sampled_from([0.0, 1.0, 4.0, 6.0]), min_size=len(records), max_size=len(records)
        ),
        "gaps",
    )
    ops: list[Op] = []
    now = 100.0
    for offset, gap in enumerate(gaps):
        now += gap
        if data.draw(st.booleans(), f"tick before {offset}"):
            ops.append(Op(now - gap / 2, None))
        ops.append(Op(now, offset))
    ops.append(Op(now + grace + 1, None))  # the timer runs past every due time
    record_times = [op.time for op in ops if op.offset is not None]
    want = expected(arrivals, record_times, eligible, grace)

    tmp = tmp_path_factory.mktemp("actions")
    settings_ = _settings(tmp, grace)

    clock = [0.0]
    topics = (
        settings_.raw_topic,
        settings_.status_topic,
        settings_.deadletter_topic,
        settings_.actions_topic,
        settings_.suppressions_topic,
        "changelog",
    )

    def fresh(store: MemoryStore) -> tuple[Lifecycle, MemoryStore, FakeProducer]:
        producer = FakeProducer(dict.fromkeys(topics, 1))
        lifecycle = Lifecycle(settings_, producer, store, "changelog", clock=lambda: clock[0])
        return lifecycle, store, producer

    def emitted(sent: list[Any]) -> set[tuple[str, str]]:
        return {
            (orjson.loads(v)["type"], orjson.loads(v)["action_id"])
            for t, _, v, _ in sent
            if t == settings_.actions_topic
        }

    # The run without a crash demands exactly the expected ids.
    lifecycle, store, producer = fresh(MemoryStore())
    asyncio.run(_play(lifecycle, ops, records, producer, clock))
    assert emitted(producer.sent) == want
    assert not any(k.startswith(DUE_PREFIX) for k in store.data), "due index left over"

    # The same run crashes: W changelog records reached Kafka; actions of ops whose
    # outputs were flushed reached it; offsets up to c were committed.
    lifecycle, _, producer = fresh(MemoryStore())
    marks = asyncio.run(_play(lifecycle, ops, records, producer, clock))
    changelog = producer.to("changelog")
    w = data.draw(st.integers(0, len(changelog)), "changelog records kept")
    kept: list[Any] = []
    durable_records = 0
    still_leading = True
    for op, (before, after, changelog_before) in zip(ops, marks, strict=True):
        sent = producer.sent[before:after]
        own_changelog = sum(1 for t, *_ in sent if t == "changelog")
        writes_kept = changelog_before + own_changelog <= w
        if op.offset is None:  # the timer waited for every earlier changelog record's ack
            flushed = changelog_before <= w and (
                (own_changelog > 0 and changelog_before < w) or data.draw(st.booleans(), "acked")
            )
        else:
            flushed = data.draw(st.booleans(), f"outputs of {op.offset} flushed")
        if flushed:
            kept += sent
        if op.offset is not None:
            still_leading = still_leading and flushed and writes_kept
            durable_records += still_leading
    committed = data.draw(st.integers(0, durable_records), "committed offset")

    # Recovery: the table from its changelog, then the records from `committed` again.
    store = MemoryStore()
    for key, value, _ in changelog[:w]:
        assert key is not None
        if value is None:
            store.delete(0, key)
        else:
            store.put(0, key, value)
    restart = next(
        (i for i, op in enumerate(ops) if op.offset is not None and op.offset >= committed),
        len(ops) - 1,
    )
    lifecycle, _, producer_after = fresh(store)
    asyncio.run(_play(lifecycle, ops[restart:], records, producer_after, clock))
    assert emitted(kept) | emitted(producer_after.sent) == want
