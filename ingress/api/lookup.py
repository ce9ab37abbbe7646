"""What became of a message: read from ClickHouse by primary key (milliseconds at 10 M).

Four tables the sink fills (sinks/clickhouse/ddl/), each read by its sorting key:
`sends` (the registration: consent, client_ref, parts), `messages` (the current state,
through the `message_status` view), `events` (the history, one row per event id in the
worker's order) and, to find ids, `message_parts` (a part's id -> its message) and
`client_refs` (client_ref -> message ids). The three reads of one message run in
parallel, each in a worker thread (clickhouse-connect is synchronous).

Freshness: the answer carries `as_of` (when it was read) and
`updated_at` (when ClickHouse last received a row for this message); the pipeline puts a
report there within about a second of the webhook under normal load (the sink's batch age
plus the worker), so a state older than that is what the provider has said so far.

`dlr status` prints the same answers (deploy/cli.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from schemas.lifecycle import RANK, State
from schemas.settings import CommonSettings, parse_url

__all__ = ["Store", "render"]

_SENDS = """
SELECT message_id, provider, provider_message_id, sender, campaign, tenant, client_ref,
       submitted_at, consent_source, consent_at, consent_reference, parts, country, region,
       registered_at, inserted_at
FROM {db:Identifier}.sends FINAL
WHERE message_id IN {ids:Array(String)}
"""

_PART_OF = """
SELECT message_id FROM {db:Identifier}.message_parts FINAL
WHERE part_id = {id:String} LIMIT 1
"""

#: The view groups `messages` by message_id; ClickHouse pushes the key condition below
#: the GROUP BY, so this reads the ids' primary-key range only.
_STATUS = """
SELECT * FROM {db:Identifier}.message_status WHERE message_id IN {ids:Array(String)}
"""

_EVENTS = """
SELECT event_id, message_id, provider_message_id, state, current_state, previous_state,
       transition, failure_reason, provider_status, provider_error_code,
       provider_error_text, carrier, provider_timestamp, received_at, emitted_at, inserted_at
FROM {db:Identifier}.events
WHERE message_id IN {ids:Array(String)}
ORDER BY emitted_at, event_id
LIMIT 1 BY event_id
"""

_BY_REF = """
SELECT DISTINCT message_id FROM {db:Identifier}.client_refs
WHERE client_ref = {ref:String}
  AND ({tenant:Nullable(String)} IS NULL OR tenant = {tenant:Nullable(String)})
ORDER BY message_id
LIMIT {limit:UInt32}
"""


def _aware(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _rows(result: Any) -> list[dict[str, Any]]:
    names = result.column_names
    return [
        {name: _aware(value) for name, value in zip(names, row, strict=True)}
        for row in result.result_rows
    ]


class Store:
    """ClickHouse reads of the sender's API (one client, shared by the worker threads)."""

    def __init__(self, settings: CommonSettings, timeout_s: float = 5.0) -> None:
        self.settings = settings
        self.database = settings.clickhouse_database
        self.timeout_s = timeout_s
        self._client: Client | None = None

    def client(self) -> Client:
        """The client, connected on first use (connecting asks the server things)."""
        if self._client is None:
            options: dict[str, Any] = dict(parse_url(self.settings.clickhouse).client_options())
            options["send_receive_timeout"] = max(1, int(self.timeout_s))
            options["query_limit"] = 0
            self._client = clickhouse_connect.get_client(**options)
        return self._client

    def close(self) -> None:
        """Release the connection pool."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def _query(self, sql: str, **parameters: Any) -> list[dict[str, Any]]:
        return _rows(self.client().query(sql, parameters={"db": self.database, **parameters}))

    # -- synchronous reads (threads; `dlr status` calls them directly) ----------------------

    def registrations(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """`sends` rows of these message ids."""
        return self._query(_SENDS, ids=list(ids))

    def statuses(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """`messages` merged per message id (what `message_status` computes)."""
        return self._query(_STATUS, ids=list(ids))

    def events(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Canonical events of these message ids, in the worker's order, each once."""
        return self._query(_EVENTS, ids=list(ids))

    def part_of(self, message_id: str) -> str | None:
        """The message a part's id belongs to, if it is a registered part."""
        rows = self._query(_PART_OF, id=message_id)
        return str(rows[0]["message_id"]) if rows else None

    def by_client_ref(self, ref: str, tenant: str | None, limit: int) -> list[str]:
        """Message ids with this client_ref (of `tenant` when given)."""
        rows = self._query(_BY_REF, ref=ref, tenant=tenant, limit=limit)
        return [str(row["message_id"]) for row in rows]

    def message(self, message_id: str, unreported_after_s: int) -> dict[str, Any] | None:
        """The whole answer for one id (a part's id answers for its message), or None."""
        found = self.messages([message_id], unreported_after_s)
        if found:
            return found[0]
        owner = self.part_of(message_id)
        if owner is None:
            return None
        found = self.messages([owner], unreported_after_s)
        if found:
            found[0]["requested_id"] = message_id
        return found[0] if found else None

    def messages(self, ids: Sequence[str], unreported_after_s: int) -> list[dict[str, Any]]:
        """Answers for several ids (those unknown are left out), in the given order."""
        registrations = {r["message_id"]: r for r in self.registrations(ids)}
        part_ids = [
            f"{r['provider']}:{p}"
            for r in registrations.values()
            for p in r["parts"]
            if f"{r['provider']}:{p}" != r["message_id"]
        ]
        statuses = {r["message_id"]: r for r in self.statuses(ids)}
        history = self.events([*ids, *part_ids])
        as_of = datetime.now(UTC)
        return [
            render(
                mid, registrations.get(mid), statuses.get(mid), history, as_of, unreported_after_s
            )
            for mid in ids
            if mid in registrations or mid in statuses
        ]

    # -- async wrappers for the app ----------------------------------------------------------

    async def amessage(self, message_id: str, unreported_after_s: int) -> dict[str, Any] | None:
        """`message` with the three reads in parallel threads."""
        ids = [message_id]
        regs, stats, hist = await asyncio.gather(
            asyncio.to_thread(self.registrations, ids),
            asyncio.to_thread(self.statuses, ids),
            asyncio.to_thread(self.events, ids),
        )
        if not regs and not stats:
            owner = await asyncio.to_thread(self.part_of, message_id)
            if owner is None:
                return None
            answer = await asyncio.to_thread(self.message, owner, unreported_after_s)
            if answer is not None:
                answer["requested_id"] = message_id
            return answer
        registration = regs[0] if regs else None
        if registration is not None and registration["parts"]:
            return await asyncio.to_thread(self.message, message_id, unreported_after_s)
        status = stats[0] if stats else None
        return render(message_id, registration, status, hist, datetime.now(UTC), unreported_after_s)


def _part_states(history: list[dict[str, Any]]) -> dict[str, str]:
    """The most advanced state each part (provider id) reported."""
    best: dict[str, str] = {}
    for event in history:
        pid, state = event["provider_message_id"], State(event["state"])
        known = best.get(pid)
        if known is None or _rank(state) > _rank(State(known)):
            best[pid] = str(state)
    return best


def _parts(parts: list[str], events: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Each part's id and the most advanced state it reported (None: not yet)."""
    if not parts:
        return None
    states = _part_states(events)
    return [
        {"provider_message_id": pid, "state": states.get(pid)}
        for pid in (part.partition(":")[2] for part in parts)
    ]


_INFO = ("carrier", "mcc", "mnc", "country", "region", "campaign", "tenant", "client_ref")


def _rank(state: State) -> tuple[int, int]:
    return (RANK[state], 2 if state is State.DELIVERED else 0 if state is State.UNKNOWN else 1)


def render(
    message_id: str,
    registration: dict[str, Any] | None,
    status: dict[str, Any] | None,
    history: list[dict[str, Any]],
    as_of: datetime,
    unreported_after_s: int,
) -> dict[str, Any]:
    """The JSON answer for one message from its rows (see the module docstring)."""
    reg = registration or {}
    parts = [f"{reg['provider']}:{p}" for p in reg.get("parts") or ()]
    mine = {message_id, *parts}
    events = [e for e in history if e["message_id"] in mine]
    updated = [e["inserted_at"] for e in events]
    if registration is not None:
        updated.append(registration["inserted_at"])
    if status is not None:
        out_state: str = str(status["current_state"])
        reason = status["failure_reason"]
        is_final = bool(status["is_final"])
        info = {name: status[name] for name in _INFO}
        provider_status = status["provider_status"] or None
        code, text = status["provider_error_code"], status["provider_error_text"]
        times = {
            "submitted_at": reg.get("submitted_at") or _aware(status["submitted_at"]),
            "sent_at": _aware(status["sent_at"]),
            "delivered_at": _aware(status["delivered_at"]),
            "first_event_at": _aware(status["first_event_at"]),
            "last_event_at": _aware(status["last_event_at"]),
        }
        unreported = False
    else:
        out_state, reason, is_final = "registered", None, False
        info = {name: reg.get(name) for name in ("country", "region", "campaign", "tenant")}
        info |= {"carrier": None, "mcc": None, "mnc": None, "client_ref": reg.get("client_ref")}
        provider_status = code = text = None
        times = {
            "submitted_at": reg.get("submitted_at"),
            "sent_at": None,
            "delivered_at": None,
            "first_event_at": None,
            "last_event_at": None,
        }
        submitted = reg.get("submitted_at")
        unreported = bool(submitted and submitted < as_of - timedelta(seconds=unreported_after_s))
    for name in ("campaign", "tenant", "client_ref", "country", "region"):
        if info.get(name) is None and reg.get(name) is not None:
            info[name] = reg[name]
    consent = None
    if registration is not None:
        consent = {
            "source": reg["consent_source"],
            "obtained_at": reg["consent_at"],
            "reference": reg["consent_reference"],
        }
    provider, _, provider_id = message_id.partition(":")
    answer: dict[str, Any] = {
        "message_id": message_id,
        "provider": (status or reg).get("provider") or provider,
        "provider_message_id": (status or reg).get("provider_message_id") or provider_id,
        "state": out_state,
        "is_final": is_final,
        "failure_reason": reason,
        "provider_status": provider_status,
        "provider_error_code": code,
        "provider_error_text": text,
        **info,
        "times": times,
        "registered": registration is not None,
        "unreported": unreported,
        "consent": consent,
        "sender": reg.get("sender"),
        "parts": _parts(parts, events),
        "events": [
            {
                "event_id": e["event_id"],
                "provider_message_id": e["provider_message_id"],
                "state": e["state"],
                "current_state": e["current_state"],
                "previous_state": e["previous_state"],
                "transition": e["transition"],
                "failure_reason": e["failure_reason"],
                "provider_status": e["provider_status"],
                "provider_error_code": e["provider_error_code"],
                "provider_error_text": e["provider_error_text"],
                "carrier": e["carrier"],
                "provider_timestamp": e["provider_timestamp"],
                "received_at": e["received_at"],
                "emitted_at": e["emitted_at"],
            }
            for e in events
        ],
        "freshness": {
            "as_of": as_of,
            "updated_at": max(updated) if updated else None,
        },
    }
    return answer
