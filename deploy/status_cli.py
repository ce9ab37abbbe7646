"""`dlr status`: what became of a message, for a person at a terminal.

    dlr status vonage:0B00000127FDBC63        one message (a part's id finds its message)
    dlr status --client-ref order-1001        every message with that reference
    dlr status ... --format json              exactly what GET /v1/messages/... answers

Reads ClickHouse the way the sender's API does (`ingress.api.lookup`), with no tenant
restriction (an operator's tool). Exit status 0 when found, 1 when not found or
ClickHouse fails.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any, TextIO

import orjson

from deploy.settings import Settings

__all__ = ["render_text", "run_status"]


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def render_text(answer: dict[str, Any]) -> str:
    """One message as aligned lines, then its history."""
    lines = [f"message   {answer['message_id']}"]
    if answer.get("requested_id"):
        lines.append(f"asked for {answer['requested_id']} (a part of it)")
    state = answer["state"]
    if answer.get("failure_reason"):
        state += f" ({answer['failure_reason']})"
    if answer.get("unreported"):
        state += "  UNREPORTED: no receipt yet"
    lines.append(f"state     {state}{'  final' if answer['is_final'] else ''}")
    status = answer.get("provider_status")
    if status:
        code = answer.get("provider_error_code")
        text = answer.get("provider_error_text")
        lines.append(
            f"provider  {answer['provider']} status {status}"
            + (f", code {code}" if code else "")
            + (f" ({text})" if text else "")
        )
    where = ", ".join(
        f"{name} {answer[name]}"
        for name in ("carrier", "country", "region", "campaign", "tenant", "client_ref")
        if answer.get(name)
    )
    if where:
        lines.append(f"about     {where}")
    times = answer["times"]
    lines.append(
        "times     "
        + ", ".join(f"{name[:-3]} {_when(times[name])}" for name in times if times[name])
    )
    consent = answer.get("consent")
    if consent:
        lines.append(
            f"consent   {consent['source']} at {_when(consent['obtained_at'])}"
            + (f" ({consent['reference']})" if consent.get("reference") else "")
        )
    elif not answer["registered"]:
        lines.append("consent   - (never registered through the sender's API)")
    for part in answer.get("parts") or ():
        lines.append(f"part      {part['provider_message_id']}: {part['state'] or 'no report'}")
    fresh = answer["freshness"]
    lines.append(f"as of     {_when(fresh['as_of'])} (last update {_when(fresh['updated_at'])})")
    lines.append(f"history   {len(answer['events'])} event(s)")
    for event in answer["events"]:
        code = f" code {event['provider_error_code']}" if event["provider_error_code"] else ""
        lines.append(
            f"  {_when(event['received_at'])}  {event['state']:<11} -> "
            f"{event['current_state']:<11} {event['transition']:<8} "
            f"{event['provider_message_id']} {event['provider_status']}{code}"
        )
    return "\n".join(lines)


def run_status(
    settings: Settings,
    *,
    message_id: str | None,
    client_ref: str | None,
    fmt: str = "text",
    out: TextIO | None = None,
) -> int:
    """Print the answer; 0 when found, 1 when not (or ClickHouse failed)."""
    from clickhouse_connect.driver.exceptions import ClickHouseError

    from ingress.api.lookup import Store

    stream = out or sys.stdout
    store = Store(settings, settings.api_query_timeout_s)
    try:
        if message_id:
            found = store.message(message_id, settings.unreported_after_s)
            answers = [found] if found else []
        else:
            assert client_ref is not None
            ids = store.by_client_ref(client_ref, None, settings.api_max_lookup)
            answers = store.messages(ids, settings.unreported_after_s) if ids else []
    except (ClickHouseError, OSError) as exc:
        print(f"dlr status: ClickHouse failed: {str(exc).splitlines()[0][:300]}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if not answers:
        what = message_id or f"client_ref {client_ref}"
        print(f"dlr status: no message {what}", file=sys.stderr)
        return 1
    if fmt == "json":
        body = answers[0] if message_id else {"client_ref": client_ref, "messages": answers}
        print(
            orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z).decode(), file=stream
        )
    else:
        print("\n\n".join(render_text(a) for a in answers), file=stream)
    return 0
