"""The worker's pure decision: dedupe, redelivery after a crash, outputs, dead letters."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.envelope import RawEnvelope
from schemas.events import CanonicalEvent
from schemas.phone import PiiMode, number_hash, protect
from schemas.suppressions import parse
from streams.transforms import Config, Outcome, process

CONFIG = Config(fallback_campaigns=frozenset({"order-confirmation"}), salt="s")


def raw(mid: str, status: str, ts: str, code: str | None = None, **extra: Any) -> bytes:
    payload = {
        "message_id": mid,
        "to": "+447700900123",
        "from": "ACME",
        "status": status,
        "provider_status_code": code,
        "timestamp": ts,
        **extra,
    }
    body = orjson.dumps(payload).decode()
    return RawEnvelope(
        provider="generic",
        message_id=f"generic:{mid}",
        provider_message_id=mid,
        received_at=1_700_000_000.0,
        method="POST",
        url="http://x/webhooks/generic",
        headers={},
        content_type="application/json",
        body=body,
        body_encoding="utf-8",
        body_sha256="0" * 64,
        payload=payload,
        key_id="k_test",
    ).to_json()


def events(out: Outcome) -> list[CanonicalEvent]:
    return [CanonicalEvent.from_json(v) for _, v in out.status]


def test_new_report_emits_a_canonical_event_and_stores_state() -> None:
    out = process(
        raw("m1", "sent", "2025-01-01T00:00:00Z"), b"generic:m1", None, 0, 10, 1.0, CONFIG
    )
    assert out.kind == "new"
    (event,) = events(out)
    assert event.message_id == "generic:m1"
    assert str(event.state) == "sent" and event.transition == "advanced"
    assert event.country == "GB"
    assert out.store is not None and out.store["st"]["s"] == "sent"


def test_duplicate_from_the_provider_is_dropped() -> None:
    record = raw("m1", "sent", "2025-01-01T00:00:00Z")
    first = process(record, b"k", None, 0, 10, 1.0, CONFIG)
    again = process(record, b"k", first.store, 0, 11, 2.0, CONFIG)
    assert again.kind == "duplicate"
    assert again.status == [] and again.store is None


def test_redelivery_of_the_same_offset_re_emits_the_same_event() -> None:
    record = raw("m1", "delivered", "2025-01-01T00:00:05Z")
    first = process(record, b"k", None, 3, 42, 1.0, CONFIG)
    again = process(record, b"k", first.store, 3, 42, 9.0, CONFIG)
    assert again.kind == "redelivery"
    assert [e.event_id for e in events(again)] == [e.event_id for e in events(first)]
    assert events(again)[0].current_state == events(first)[0].current_state
    assert again.store is None


def test_unparseable_record_goes_to_the_dead_letter_topic() -> None:
    out = process(b"{not json", b"k", None, 0, 1, 1.0, CONFIG)
    assert out.kind == "invalid"
    assert orjson.loads(out.deadletter[0][1])["reason"] == "unparseable"


def test_unmapped_status_is_kept_as_unknown_and_reported() -> None:
    out = process(raw("m2", "teleported", "2025-01-01T00:00:00Z"), b"k", None, 0, 1, 1.0, CONFIG)
    (event,) = events(out)
    assert str(event.state) == "unknown" and event.mapped is False
    assert event.provider_status == "teleported"
    assert orjson.loads(out.deadletter[0][1])["reason"] == "unmapped"


def test_opt_out_emits_suppress_action_and_suppression() -> None:
    out = process(
        raw("m3", "rejected", "2025-01-01T00:00:00Z", "opted_out"), b"k", None, 0, 1, 1.0, CONFIG
    )
    kinds = [orjson.loads(v)["type"] for _, v in out.actions]
    assert kinds == ["suppress"]
    (key, value) = out.suppressions[0]
    entry = parse(key, value)
    assert entry is not None and entry.suppressed
    assert entry.number_hash == key.decode() == number_hash("+447700900123", "s")
    # the list's record is the one place the number stays clear (for provider sync)
    assert (entry.number, entry.source, entry.reason) == ("+447700900123", "receipt", "opted_out")
    assert entry.message_id == "generic:m3"


def _all_outputs(out: Outcome) -> bytes:
    return b"\n".join(v for pairs in (out.status, out.actions, out.deadletter) for _, v in pairs)


@pytest.mark.parametrize("mode", ["hash", "mask"])
def test_no_clear_number_leaves_the_worker_except_on_the_suppression_list(mode: PiiMode) -> None:
    config = replace(CONFIG, pii_mode=mode)
    opted_out = raw(
        "m6", "rejected", "2025-01-01T00:00:00Z", "opted_out", **{"from": "+12065550123"}
    )
    outs = [
        process(opted_out, b"k", None, 0, 1, 1.0, config),
        process(raw("m7", "teleported", "2025-01-01T00:00:00Z"), b"k", None, 0, 2, 1.0, config),
        process(b'{"to": "+447700900123"', b"k", None, 0, 3, 1.0, config),
    ]
    produced = b"\n".join(_all_outputs(out) for out in outs)
    for digits in ("447700900123", "12065550123"):
        assert digits.encode() not in produced
    (event,) = events(outs[0])
    assert event.pii_mode == mode
    expected = protect("+447700900123", pii_mode=mode, salt="s")[0]
    assert event.recipient == expected
    assert orjson.loads(outs[0].actions[0][1])["recipient"] == expected
    unmapped = orjson.loads(outs[1].deadletter[0][1])
    assert "envelope" not in unmapped and unmapped["event"]["recipient"] == expected
    unparseable = orjson.loads(outs[2].deadletter[0][1])
    assert "envelope" not in unparseable and unparseable["raw"]["offset"] == 3


def test_clear_mode_keeps_numbers_and_envelopes() -> None:
    config = replace(CONFIG, pii_mode="clear")
    out = process(raw("m8", "teleported", "2025-01-01T00:00:00Z"), b"k", None, 0, 1, 1.0, config)
    (event,) = events(out)
    assert (event.recipient, event.pii_mode) == ("+447700900123", "clear")
    assert "+447700900123" in orjson.loads(out.deadletter[0][1])["envelope"]


def test_failure_of_a_fallback_campaign_emits_fallback() -> None:
    out = process(
        raw(
            "m4",
            "undelivered",
            "2025-01-01T00:00:00Z",
            "unreachable",
            campaign="order-confirmation",
        ),
        b"k",
        None,
        0,
        1,
        1.0,
        CONFIG,
    )
    assert [orjson.loads(v)["type"] for _, v in out.actions] == ["fallback"]


def test_delivered_message_emits_no_action() -> None:
    out = process(
        raw("m5", "delivered", "2025-01-01T00:00:00Z", campaign="order-confirmation"),
        b"k",
        None,
        0,
        1,
        1.0,
        CONFIG,
    )
    assert out.actions == []


STATUSES = ["accepted", "queued", "sent", "delivered", "undelivered", "expired"]


def _stream(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    records = []
    for m in range(4):
        for i, status in enumerate(rng.sample(STATUSES, 4)):
            records.append(raw(f"m{m}", status, f"2025-01-01T00:00:0{i}Z"))
    records += [rng.choice(records) for _ in range(5)]
    rng.shuffle(records)
    return records


def _key(record: bytes) -> str:
    return str(orjson.loads(record)["message_id"])


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 10**6), st.data())
def test_any_crash_point_loses_nothing_and_invents_nothing(seed: int, data: st.DataObject) -> None:
    """Outputs flushed up to i, table persisted up to j, offsets committed up to c <= i, j."""
    records = _stream(seed)
    n = len(records)
    committed = data.draw(st.integers(0, n))
    outputs_until = data.draw(st.integers(committed, n))
    table_until = data.draw(st.integers(committed, n))

    def run(table: dict[str, Any], start: int, stop: int, emitted: dict[str, str]) -> None:
        for offset in range(start, stop):
            record = records[offset]
            out = process(record, None, table.get(_key(record)), 0, offset, 1.0, CONFIG)
            for event in events(out):
                emitted[event.event_id] = str(event.current_state)
            if out.store is not None:
                table[_key(record)] = out.store

    expected: dict[str, str] = {}
    run({}, 0, n, expected)

    # Before the crash: everything processed, but only some of it reached Kafka.
    table_before: dict[str, Any] = {}
    emitted_before: dict[str, str] = {}
    snapshots = []
    for offset in range(n):
        snapshots.append(dict(table_before))
        run(table_before, offset, offset + 1, emitted_before if offset < outputs_until else {})
    table_after_crash = snapshots[table_until] if table_until < n else table_before
    delivered = dict(emitted_before)
    run(dict(table_after_crash), committed, n, delivered)
    assert delivered == expected
