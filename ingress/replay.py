"""Remembers recently accepted deliveries so a replayed request is not produced twice.

Keys are recorded only after Kafka acknowledged the request: a request that got a 503 is
retried by the provider with the same signature and must go through again.
"""

from __future__ import annotations

import time
from collections import OrderedDict


class ReplayCache:
    """Bounded, time-windowed set of (provider, replay key) pairs."""

    def __init__(self, window_s: float, max_entries: int = 500_000) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def seen(self, provider: str, key: str, now: float | None = None) -> bool:
        """True when this pair was accepted within the window."""
        now = time.time() if now is None else now
        self._expire(now)
        at = self._seen.get((provider, key))
        return at is not None and now - at <= self.window_s

    def add(self, provider: str, key: str, now: float | None = None) -> None:
        """Record an accepted delivery."""
        now = time.time() if now is None else now
        self._seen[(provider, key)] = now
        self._seen.move_to_end((provider, key))
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)

    def _expire(self, now: float) -> None:
        while self._seen:
            _key, at = next(iter(self._seen.items()))
            if now - at <= self.window_s:
                break
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)
