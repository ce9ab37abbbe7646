"""The tools' weather: wait out a briefly absent broker or ClickHouse, then fail in one line.

`dlr demo`, `dlr report`, `dlr try`, `dlr capture` and `dlr replay` talk to Kafka and
ClickHouse the way a developer's laptop sees them: a server restarting, a broker recovering
its logs. A tool that crashed with a traceback then is useless exactly when it is needed. So
every call that reaches a server goes through `wait_for` (or `wait_for_async`): a connection
failure is retried with a growing pause, and every few seconds one line on stderr says what
is awaited and why (`[report] waiting for ClickHouse at 127.0.0.1:8123 (connection refused),
12s of 60s`). Past the timeout it raises `Unreachable`, whose text is the one line
`deploy/cli.py` prints before exiting with status 1.

Only failures to reach a server are waited for (`OSError`, clickhouse-connect's
`OperationalError`, aiokafka's connection and timeout errors, httpx transport errors); a
query ClickHouse rejects is a bug to show at once, not weather.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import httpx
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NoBrokersAvailable
from clickhouse_connect.driver.exceptions import OperationalError

from schemas.settings import CommonSettings, parse_url

T = TypeVar("T")

#: What counts as "the server is away" (anything else is raised at once).
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    OperationalError,
    KafkaConnectionError,
    KafkaTimeoutError,
    NoBrokersAvailable,
    httpx.TransportError,
)
#: Seconds between two "waiting for" lines.
SAY_EVERY_S = 5.0


class Unreachable(Exception):
    """A server stayed away past the timeout; `str()` is the one line to print."""


#: Causes worth naming alone, instead of the page of context clients wrap around them.
_CAUSES = (
    "Connection refused",
    "Connection reset",
    "timed out",
    "Name or service not known",
    "No route to host",
    "Unable to bootstrap",
)


def first_line(exc: BaseException) -> str:
    """A short reason: a known cause by name, else the exception's first line."""
    text = str(exc).strip()
    for cause in _CAUSES:
        if cause.lower() in text.lower():
            return cause[0].lower() + cause[1:]
    lines = text.splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


@contextlib.contextmanager
def _quiet_clients() -> Iterator[None]:
    """clickhouse-connect logs every failed request at ERROR ("Unexpected Http Driver
    Exception"): while we wait and say so ourselves, those lines are noise."""
    logger = logging.getLogger("clickhouse_connect")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class _Watch:
    """The bookkeeping shared by the sync and async loops."""

    def __init__(self, what: str, timeout: float, label: str, say: Callable[[str], None]) -> None:
        self.what, self.timeout, self.label, self.say = what, timeout, label, say
        self.started = time.monotonic()
        self.said_at = -SAY_EVERY_S
        self.attempt = 0

    def failed(self, exc: BaseException) -> float:
        """Say so (at most every few seconds) and return the pause, or raise Unreachable."""
        waited = time.monotonic() - self.started
        if waited >= self.timeout:
            raise Unreachable(
                f"cannot reach {self.what} for {waited:.0f}s ({first_line(exc)}); giving up"
            ) from None
        if waited - self.said_at >= SAY_EVERY_S:
            self.said_at = waited
            self.say(
                f"[{self.label}] waiting for {self.what} ({first_line(exc)}), "
                f"{waited:.0f}s of {self.timeout:.0f}s"
            )
        self.attempt += 1
        pause: float = 0.25 * 2 ** min(self.attempt, 3)
        return min(pause, max(0.05, self.timeout - waited))

    def recovered(self) -> None:
        if self.attempt:
            self.say(f"[{self.label}] {self.what} is back after {self.elapsed():.0f}s")

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def wait_for(
    what: str,
    call: Callable[[], T],
    *,
    patience: float,
    label: str = "dlr",
    say: Callable[[str], None] = _say,
) -> T:
    """`call()`, retried while `what` is unreachable, for at most `patience` seconds."""
    watch = _Watch(what, patience, label, say)
    with _quiet_clients():
        while True:
            try:
                result = call()
            except TRANSIENT as exc:
                time.sleep(watch.failed(exc))
                continue
            watch.recovered()
            return result


async def wait_for_async(
    what: str,
    call: Callable[[], Awaitable[T]],
    *,
    patience: float,
    label: str = "dlr",
    say: Callable[[str], None] = _say,
) -> T:
    """The asyncio form of `wait_for` (for aiokafka clients and aiohttp sends)."""
    watch = _Watch(what, patience, label, say)
    with _quiet_clients():
        while True:
            try:
                result = await call()
            except TRANSIENT as exc:
                await asyncio.sleep(watch.failed(exc))
                continue
            watch.recovered()
            return result


def clickhouse_name(settings: CommonSettings) -> str:
    """`ClickHouse at host:port`, for the waiting lines (no credentials)."""
    target = parse_url(settings.clickhouse)
    return f"ClickHouse at {target.host}:{target.port}"


def kafka_name(settings: CommonSettings) -> str:
    """`Kafka at host:port[,...]`, for the waiting lines."""
    return f"Kafka at {settings.bootstrap}"
