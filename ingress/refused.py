"""Refused requests, kept for "why was this refused" (`DLR_CAPTURE_REFUSED=1`, off by default).

Nothing unverified reaches `dlr.raw.v1`. With the setting on, the refusal path (and only
it: `ingress.webhook.webhook` calls `RefusedCapture.keep` after `_refusal`, never for an
accepted request) writes one JSON record per refused request to `DLR_REFUSED_TOPIC`
(`dlr.refused.v1`, a day's retention set by `dlr topics`), keyed by provider, which `dlr
capture --refused` exports. Bounded and without secrets:

- headers whose name says credential or signature (`authorization`, cookies, anything with
  `signature`, `token`, `secret`, `key`, `auth`, `password`, `session`) are left out; the
  record lists which were present (`headers_dropped`), since "no signature header" is a
  reason of its own;
- a callback token in the path is replaced by `<token>`; the query string keeps its
  parameter names only (values can be signatures or keys);
- the body (when it was read: refusals before the body, e.g. an unknown token or a rate
  limit, have none) is cut at `DLR_REFUSED_BODY_BYTES` (its full length is recorded); it
  may hold recipients' numbers, as the raw topic does: keep the export like the topic;
- fire-and-forget: its own producer (acks=1, no wait), whose bounded queue drops a record
  when full (a flood of forged requests costs memory up to that bound and never blocks an
  answer); `dlr_ingress_refused_captures_total{result="kept"|"dropped"}` counts both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import confluent_kafka
import orjson
from confluent_kafka import KafkaError, KafkaException

from ingress.errors import IngressError
from ingress.metrics import IngressMetrics

log = logging.getLogger("dlr.ingress")

#: Parts of a header name that mark a credential or a signature: never kept.
SECRET_MARKS = (
    "authorization",
    "cookie",
    "signature",
    "token",
    "secret",
    "key",
    "auth",
    "password",
    "session",
)
#: Records librdkafka may hold for the topic before new ones are dropped.
QUEUE_RECORDS = 10_000


def secret(header: str) -> bool:
    """Whether a (lower-case) header name may carry a credential or a signature."""
    return any(mark in header for mark in SECRET_MARKS)


def record_of(
    provider: str,
    exc: IngressError,
    method: str,
    url: str,
    token: str | None,
    headers: Mapping[str, str],
    body: bytes | None,
    client_ip: str,
    body_limit: int,
    at: float,
) -> dict[str, Any]:
    """The refused request as kept: no secret headers, no token, query names only, body cut."""
    base, _, query = url.partition("?")
    if token:
        base = base.replace(token, "<token>")
    names = sorted({part.partition("=")[0] for part in query.split("&") if part})
    kept = {k: v for k, v in headers.items() if not secret(k)}
    record: dict[str, Any] = {
        "at": at,
        "provider": provider,
        "status": exc.status,
        "error": exc.code,
        "detail": exc.detail,
        "method": method,
        "url": base,
        "query_names": names,
        "client_ip": client_ip,
        "headers": kept,
        "headers_dropped": sorted(k for k in headers if k not in kept),
        "body": None,
        "body_bytes": None,
        "body_truncated": False,
    }
    if body is not None:
        record["body"] = body[:body_limit].decode("utf-8", "replace")
        record["body_bytes"] = len(body)
        record["body_truncated"] = len(body) > body_limit
    return record


class RefusedCapture:
    """Its own librdkafka producer for the refused topic: produce and never wait."""

    def __init__(self, bootstrap: str, topic: str, metrics: IngressMetrics) -> None:
        self.topic = topic
        self.metrics = metrics
        self._producer = confluent_kafka.Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": 1,
                "linger.ms": 50,
                "queue.buffering.max.messages": QUEUE_RECORDS,
                "message.timeout.ms": 30_000,
                "logger": logging.getLogger("dlr.ingress.kafka"),
                "error_cb": self._error,
            }
        )

    @staticmethod
    def _error(error: KafkaError) -> None:
        log.warning("refused topic: kafka client error", extra={"error": error.str()})

    def keep(self, provider: str, record: Mapping[str, Any]) -> None:
        """Hand one record to librdkafka; drop it (counted) when its queue is full."""
        producer = self._producer
        producer.poll(0)  # serve earlier delivery reports: frees their queue slots
        try:
            producer.produce(self.topic, orjson.dumps(record), provider.encode())
        except (BufferError, KafkaException):
            self.metrics.refused_capture("dropped")
            return
        self.metrics.refused_capture("kept")

    def close(self, timeout_s: float = 2.0) -> None:
        """Send what is queued (for at most `timeout_s`), then let go of the rest."""
        deadline = time.monotonic() + timeout_s
        self._producer.flush(max(0.0, deadline - time.monotonic()))
        self._producer.purge()
