"""Sink errors, wrapping clickhouse-connect's where they enter our code.

SinkError
├── SinkUnavailable   retryable: ClickHouse down, timeout, network (carries retry_after)
└── SinkRejected      not retryable: the server refused the data (type/schema error)
    └── SinkInvalid   not retryable: a record breaks the canonical contract (never sent)
"""

from __future__ import annotations


class SinkError(Exception):
    """Base of sink failures."""


class SinkUnavailable(SinkError):
    """ClickHouse could not be reached; retry the same batch later."""

    def __init__(self, detail: str, retry_after: float = 1.0) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class SinkRejected(SinkError):
    """ClickHouse refused the batch; retrying the same data cannot succeed."""


class SinkInvalid(SinkRejected):
    """A record of the batch breaks the canonical contract (missing field, wrong type)."""
