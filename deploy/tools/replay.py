"""`dlr replay`: send captured requests (`dlr capture`) to an ingress again.

    dlr replay file.jsonl --to http://127.0.0.1:8080 [--resign] [--rate 50]
    dlr replay --from-topic dlr.raw.v1 --since 2h

As captured, each request keeps its original signature headers: useful against a handler
that has the same secrets and a signature window wide enough for their age (schemes that
sign the URL also need the same external URL). With `--resign` each request is signed
again, now, with the development secrets of the target (`dlr up` makes them) in its
provider's own scheme, for the URL under `--to`; credentials the capture never kept
(basic auth) come back this way too. Requests go out at `--rate` per second at most, and the
summary counts HTTP status codes per provider. Records the ingress kept as their own part of
a batch (`"whole": false` in the file) are skipped and counted: that part alone is no
request the provider would send.

`--from-topic` re-processes a time range of a topic through the worker instead: its records
(verified envelopes, as the ingress wrote them) are appended, key, value and headers
unchanged, to `DLR_RAW_TOPIC`, which the worker consumes.

Replaying is safe for the analytics: the ingress answers a request it already accepted
with 200 without producing it again (its replay cache), and the worker drops every record
whose event it has seen (its dedupe, streams/dedupe.py), so ClickHouse counts nothing twice.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from tqdm import tqdm

from deploy import weather
from deploy.settings import Settings
from deploy.tools import reader
from deploy.tools.keys import signing_keys
from ingress.providers._contract import InboundRequest


def load(path: Path) -> list[dict[str, Any]]:
    """The lines of a captured file; ValueError names the first bad line."""
    lines = []
    for number, text in enumerate(path.read_text().splitlines(), 1):
        if not text.strip():
            continue
        try:
            line = orjson.loads(text)
            if not all(k in line for k in ("provider", "method", "url", "headers", "body")):
                raise ValueError("not a captured request")
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
        lines.append(line)
    return lines


def request_of(line: dict[str, Any], to: str) -> InboundRequest:
    """The captured request, aimed at `to` (same path and query)."""
    parts = urlsplit(str(line["url"]))
    url = to.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
    body = (
        bytes.fromhex(line["body"])
        if line.get("body_encoding") == "hex"
        else str(line["body"]).encode("utf-8")
    )
    headers = {str(k).lower(): str(v) for k, v in dict(line["headers"]).items()}
    headers.pop("host", None)
    headers.pop("content-length", None)
    return InboundRequest(str(line["method"]), url, headers, body)


def replay(
    settings: Settings, lines: list[dict[str, Any]], to: str, resign: bool, rate: float
) -> dict[str, Counter[str]]:
    """Send every line; HTTP status (or error) counts per provider."""
    from ingress.providers import PROVIDERS

    keys = (
        signing_keys(settings, sorted({str(line["provider"]) for line in lines})) if resign else {}
    )
    outcome: dict[str, Counter[str]] = defaultdict(Counter)
    pause = 1.0 / rate if rate > 0 else 0.0
    with httpx.Client(timeout=10) as client:
        next_at = time.monotonic()
        for line in tqdm(lines, unit="req", desc="[replay]", file=sys.stderr):
            provider = str(line["provider"])
            request = request_of(line, to)
            if resign:
                request = PROVIDERS[provider].sign(request, keys[provider], int(time.time()))
            now = time.monotonic()
            if now < next_at:
                time.sleep(next_at - now)  # pacing to --rate, not synchronisation
            next_at = max(now, next_at) + pause

            def send(request: InboundRequest = request) -> int:
                response = client.request(
                    request.method, request.url, headers=dict(request.headers), content=request.body
                )
                return response.status_code

            status = weather.wait_for(
                f"the ingress at {to}", send, patience=settings.tools_wait_s, label="replay"
            )
            outcome[provider][str(status)] += 1
    return outcome


async def _from_topic(settings: Settings, topic: str, since: float) -> int:
    """Append the records of `topic` from `since` to now to the raw topic; how many."""
    from aiokafka import AIOKafkaProducer

    async def start() -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap, acks="all", enable_idempotence=True
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer

    name = weather.kafka_name(settings)
    producer = await weather.wait_for_async(
        name, start, patience=settings.tools_wait_s, label="replay"
    )
    produced = 0
    try:
        async for record in reader.time_range(settings, topic, since, "replay"):
            await producer.send(
                settings.raw_topic, record.value, key=record.key, headers=list(record.headers or ())
            )
            produced += 1
        await producer.flush()
    finally:
        await producer.stop()
    return produced


def run_from_topic(settings: Settings, topic: str, since: str) -> int:
    """`dlr replay --from-topic`: 0 when every record was appended."""
    from deploy.report_cli import parse_duration

    try:
        start = time.time() - parse_duration(since)
    except ValueError as exc:
        print(f"dlr replay: {exc}", file=sys.stderr)
        return 2
    produced = asyncio.run(_from_topic(settings, topic, start))
    print(
        f"[replay] {produced} records of {topic} (last {since}) appended to "
        f"{settings.raw_topic}; the worker's dedupe drops those it has processed",
        file=sys.stderr,
    )
    return 0


def run_replay(settings: Settings, path: Path, to: str | None, resign: bool, rate: float) -> int:
    """Replay a file; 0 when every request got a 2xx."""
    try:
        lines = load(path)
    except (OSError, ValueError) as exc:
        print(f"dlr replay: {exc}", file=sys.stderr)
        return 2
    target = to or f"http://{settings.ingress_host}:{settings.ingress_port}"
    parts = [line for line in lines if line.get("whole") is False]
    if parts:
        print(
            f"[replay] skipping {len(parts)} records captured as their part of a batch (the "
            "raw topic keeps only that part, which is no request the provider would send)",
            file=sys.stderr,
        )
        lines = [line for line in lines if line.get("whole") is not False]
    how = "re-signed with the development secrets" if resign else "with their captured signatures"
    print(f"[replay] {len(lines)} requests to {target}, {how}", file=sys.stderr, flush=True)
    outcome = replay(settings, lines, target, resign, rate)
    bad = 0
    for provider, counts in sorted(outcome.items()):
        text = ", ".join(f"{status}: {n}" for status, n in sorted(counts.items()))
        print(f"{provider:<10} {text}")
        bad += sum(n for status, n in counts.items() if not status.startswith("2"))
    return 1 if bad else 0
