"""`dlr capture`: export the verified requests of `dlr.raw.v1` to a JSON-lines file.

    dlr capture --since 1h [--provider twilio] [--message-id twilio:SM...] -o file.jsonl

The raw topic keeps, for every record the ingress accepted, the request as received: the
provider, method, external URL, headers without credentials (`authorization`, cookies and
API keys are never written), content type and body. One line per request: the records of a
batch share their request (same body hash and arrival time) and are written once; a record
that kept only its own part of a batch is written as that part (`"whole": false`). Lines
hold recipients' numbers as the provider sent them: treat the file like the topic (PII).
`dlr replay` sends them again.

    dlr capture --refused --since 1h [--provider twilio] -o refused.jsonl

exports instead what the ingress kept of the requests it refused when it runs with
`DLR_CAPTURE_REFUSED=1` (`ingress/refused.py`: the refusal's status, code and detail, the
URL it believed it served, headers without credentials or signatures, the body cut
short). Not replayable: their signatures are not kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import orjson

from deploy.report_cli import parse_duration
from deploy.settings import Settings
from deploy.tools import reader
from schemas.envelope import RawEnvelope

#: The fields of a captured line (what `dlr replay` needs, and what it was about).
FIELDS = ("provider", "method", "url", "headers", "content_type", "body", "body_encoding")


def line_of(envelope: RawEnvelope) -> dict[str, Any]:
    """One request of a captured file."""
    body = (
        bytes.fromhex(envelope.body)
        if envelope.body_encoding == "hex"
        else envelope.body.encode("utf-8")
    )
    return {
        **{name: getattr(envelope, name) for name in FIELDS},
        "received_at": envelope.received_at,
        "message_ids": [envelope.message_id],
        "whole": hashlib.sha256(body).hexdigest() == envelope.body_sha256,
        "body_sha256": envelope.body_sha256,
    }


async def _capture(
    settings: Settings,
    out: TextIO,
    since: float,
    provider: str | None,
    message_id: str | None,
) -> tuple[int, int]:
    """(records read, requests written)."""
    read = written = 0
    pending: dict[tuple[str, str, float], dict[str, Any]] = {}
    async for record in reader.time_range(settings, settings.raw_topic, since, "capture"):
        read += 1
        try:
            envelope = RawEnvelope.from_json(record.value or b"")
        except (ValueError, TypeError, KeyError):
            continue
        if provider and envelope.provider != provider:
            continue
        if message_id and envelope.message_id != message_id:
            continue
        line = line_of(envelope)
        if not line["whole"]:
            out.write(orjson.dumps(line).decode() + "\n")
            written += 1
            continue
        key = (envelope.provider, envelope.body_sha256, envelope.received_at)
        if key in pending:
            pending[key]["message_ids"].append(envelope.message_id)
        else:
            pending[key] = line
    for line in sorted(pending.values(), key=lambda item: float(item["received_at"])):
        out.write(orjson.dumps(line).decode() + "\n")
        written += 1
    return read, written


async def _capture_refused(
    settings: Settings, out: TextIO, since: float, provider: str | None
) -> tuple[int, int]:
    """(records read, refused requests written), as the ingress kept them."""
    read = written = 0
    topic = settings.refused_topic
    async for record in reader.time_range(settings, topic, since, "capture"):
        read += 1
        try:
            line = orjson.loads(record.value or b"")
        except orjson.JSONDecodeError:
            continue
        if not isinstance(line, dict) or (provider and line.get("provider") != provider):
            continue
        out.write(orjson.dumps(line).decode() + "\n")
        written += 1
    return read, written


def run_capture(
    settings: Settings,
    since: str,
    output: Path,
    provider: str | None = None,
    message_id: str | None = None,
    refused: bool = False,
) -> int:
    """Write the file (verified requests, or with `refused` the refused ones the ingress
    kept); 0 on success, 2 for a bad argument."""
    try:
        start = time.time() - parse_duration(since)
    except ValueError as exc:
        print(f"dlr capture: {exc}", file=sys.stderr)
        return 2
    with output.open("w") as out:
        if refused:
            topic, what = settings.refused_topic, "refused requests"
            read, written = asyncio.run(_capture_refused(settings, out, start, provider))
        else:
            topic, what = settings.raw_topic, "requests"
            read, written = asyncio.run(_capture(settings, out, start, provider, message_id))
    print(
        f"[capture] {written} {what} from {read} records of {topic} (last {since}) -> {output}",
        file=sys.stderr,
    )
    if refused and not read:
        print(
            "[capture] none kept: the ingress keeps refused requests only with "
            "DLR_CAPTURE_REFUSED=1",
            file=sys.stderr,
        )
    return 0
