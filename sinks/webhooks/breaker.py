"""A per-endpoint circuit breaker (closed -> open -> half-open -> closed).

Small on purpose and without a library: it has to cooperate with the retry budget (a
delivery waits for the probe instead of failing) and report its state per endpoint,
which the breaker libraries (pybreaker, aiobreaker, purgatory) do not do without
wrapping them in as much code as this.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["BreakerPolicy", "CircuitBreaker", "State"]

State = Literal["closed", "open", "half_open"]

#: Gauge values of the states (dlr_webhook_circuit_state).
STATE_VALUE: dict[State, int] = {"closed": 0, "open": 1, "half_open": 2}


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a circuit opens and how long it stays open."""

    #: Consecutive retryable failures (5xx, 408, timeouts, connection errors) that open it.
    failures: int = 5
    #: Seconds it stays open before one probe may go.
    cooldown_s: float = 30.0


class CircuitBreaker:
    """The breaker of one endpoint (one event loop; no locks needed)."""

    def __init__(
        self,
        policy: BreakerPolicy,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[State], None] | None = None,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.on_change = on_change
        self.state: State = "closed"
        self.failures = 0
        self.opened_at = 0.0
        self.probing = False

    def _set(self, state: State) -> None:
        if state != self.state:
            self.state = state
            if self.on_change is not None:
                self.on_change(state)

    def acquire(self) -> float:
        """0 when a request may go now (the caller is the probe when half-open), else
        the seconds to wait before asking again."""
        if self.state == "closed":
            return 0.0
        if self.state == "open":
            left = self.opened_at + self.policy.cooldown_s - self.clock()
            if left > 0:
                return left
            self._set("half_open")
        if self.probing:
            return min(1.0, self.policy.cooldown_s)
        self.probing = True
        return 0.0

    def release(self) -> None:
        """A request that got no verdict (cancelled) gives its probe slot back."""
        self.probing = False

    def success(self) -> None:
        """The endpoint answered (any status that is not a retryable failure)."""
        self.failures = 0
        self.probing = False
        self._set("closed")

    def failure(self) -> None:
        """A retryable failure: count it; open on the threshold or a failed probe."""
        self.failures += 1
        self.probing = False
        if self.state == "half_open" or (
            self.state == "closed" and self.failures >= self.policy.failures
        ):
            self.opened_at = self.clock()
            self._set("open")
