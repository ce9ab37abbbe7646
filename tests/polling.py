"""Waiting for a condition with a deadline: never a bare sleep used as synchronisation."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T],
    done: Callable[[T], bool] = bool,
    *,
    timeout: float,
    what: str,
    interval: float = 0.2,
) -> T:
    """Call `probe` until `done(value)`; the last value, or AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout:g} s: {what} (last: {value!r})"[:2000])
        time.sleep(interval)
