"""Inbound keywords in the worker: STOP suppresses, a later START re-allows, retries and
redeliveries change nothing, and only the suppression list's entry holds the number."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from schemas.envelope import INBOUND_KEY_PREFIX, RawEnvelope
from schemas.phone import number_hash
from schemas.suppressions import SuppressionEntry, parse
from streams import sends
from streams.transforms import Config, Outcome

SALT = "s"
NUMBER = "+14155550100"
KEY = INBOUND_KEY_PREFIX + number_hash(NUMBER, SALT).encode()
CONFIG = Config(salt=SALT)


def keyword(kind: str, sid: str, at: str | None = "2025-08-12T10:15:00Z", **extra: Any) -> bytes:
    return RawEnvelope(
        provider="twilio",
        message_id=f"twilio:{sid}",
        provider_message_id=sid,
        received_at=1_755_000_000.0,
        method="POST",
        url="https://dlr.example.com/webhooks/twilio",
        headers={},
        content_type="application/x-www-form-urlencoded",
        body=f"Body={kind.upper()}&From=%2B14155550100",
        body_encoding="utf-8",
        body_sha256="0" * 64,
        payload={
            "number": NUMBER,
            "to": "+15017122661",
            "keyword": kind,
            "word": kind.upper(),
            "language": "en",
            "timestamp": at,
            **extra,
        },
        key_id="k",
        kind="inbound",
    ).to_json()


def run(
    value: bytes, stored: dict[str, Any] | None, offset: int, config: Config = CONFIG
) -> Outcome:
    return sends.receipt(value, KEY, stored, 0, offset, 1.0, config)


def entries(out: Outcome) -> list[SuppressionEntry]:
    got = [parse(k, v) for k, v in out.suppressions]
    return [e for e in got if e is not None]


def test_stop_suppresses_with_keyword_and_language() -> None:
    out = run(keyword("stop", "SM1"), None, 1)
    (entry,) = entries(out)
    assert (entry.suppressed, entry.reason, entry.source) == (True, "opted_out", "inbound")
    assert (entry.number, entry.keyword, entry.language) == (NUMBER, "STOP", "en")
    assert entry.number_hash == number_hash(NUMBER, SALT)
    assert entry.since == "2025-08-12T10:15:00.000Z"
    assert [orjson.loads(v)["type"] for _, v in out.actions] == ["suppress"]


def test_start_after_stop_allows_again() -> None:
    stop = run(keyword("stop", "SM1"), None, 1)
    start = run(keyword("start", "SM2", "2025-08-12T10:20:00Z"), stop.store, 2)
    (entry,) = entries(start)
    assert (entry.suppressed, entry.reason) == (False, "opted_in")
    assert [orjson.loads(v)["type"] for _, v in start.actions] == ["unsuppress"]


def test_a_stop_retried_after_the_start_changes_nothing() -> None:
    stop = run(keyword("stop", "SM1"), None, 1)
    start = run(keyword("start", "SM2", "2025-08-12T10:20:00Z"), stop.store, 2)
    retry = run(keyword("stop", "SM1"), start.store, 3)  # the provider sent it again
    assert retry.kind == "duplicate"
    assert retry.suppressions == [] and retry.actions == []


def test_an_older_keyword_arriving_late_changes_nothing() -> None:
    start = run(keyword("start", "SM2", "2025-08-12T10:20:00Z"), None, 1)
    late = run(keyword("stop", "SM1", "2025-08-12T10:15:00Z"), start.store, 2)
    assert late.kind == "new" and late.suppressions == [] and late.actions == []
    assert late.store is not None and late.store["last"] == start.store["last"]  # type: ignore[index]


def test_a_redelivery_after_a_crash_emits_the_same_records() -> None:
    stop = run(keyword("stop", "SM1"), None, 7)
    again = run(keyword("stop", "SM1"), stop.store, 7)
    assert again.kind == "redelivery"
    assert again.suppressions == stop.suppressions
    assert again.actions == stop.actions
    assert again.store is None


def test_help_is_an_action_and_changes_no_entry() -> None:
    out = run(keyword("help", "SM3"), None, 1)
    assert out.suppressions == []
    assert [orjson.loads(v)["type"] for _, v in out.actions] == ["help"]


@pytest.mark.parametrize("mode", ["hash", "mask"])
def test_actions_carry_the_number_as_the_pii_mode_says(mode: str) -> None:
    config = Config(salt=SALT, pii_mode=mode)  # type: ignore[arg-type]
    out = run(keyword("stop", "SM1"), None, 1, config)
    action = orjson.loads(out.actions[0][1])
    assert NUMBER[1:] not in out.actions[0][1].decode()
    assert action["pii_mode"] == mode
    assert action["recipient"] == (number_hash(NUMBER, SALT) if mode == "hash" else "*********00")


def test_a_broken_inbound_record_is_dead_lettered_without_its_content() -> None:
    out = run(b'{"number": "+14155550100"', None, 4)
    assert out.kind == "invalid"
    letter = orjson.loads(out.deadletter[0][1])
    assert letter["reason"] == "unparseable" and "envelope" not in letter
    assert b"14155550100" not in out.deadletter[0][1]
