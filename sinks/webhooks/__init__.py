"""THE outbound webhook path: signed POSTs with retries, limits and a circuit breaker.

Used by `dlr dispatch` (actions) and meant for the alerts evaluator as is. The caller
owns what to send and what to do with a failure (dead-letter it); this package owns how
one payload reaches one endpoint:

    from sinks.webhooks import Endpoint, KeyedOrder, Outcome, RetryPolicy, WebhookClient

    endpoint = Endpoint("https://hooks.example.com/dlr", secrets=("whsec_...",))
    async with WebhookClient(RetryPolicy(attempts=8, total_s=300)) as client:
        outcome: Outcome = await client.deliver(endpoint, "act_fallback_1f2e...", body, "fallback")
        if not outcome.delivered:
            dead_letter(outcome.to_dict())        # last status and error, attempts, delays

- **Signing** (Standard Webhooks, the `standardwebhooks` package): headers `webhook-id`
  (the caller's idempotency id: receivers dedupe on it), `webhook-timestamp` (per attempt)
  and `webhook-signature` (`v1,<base64 HMAC-SHA256>` of `id.timestamp.body`) with the
  endpoint's first secret; `Endpoint.secrets` holds more only so that a rotation can be
  configured ahead; receivers verify with any of theirs.
- **Retries** (tenacity): exponential backoff with full jitter (a wait drawn uniformly
  from 0 to `initial_s * 2**(attempt-1)`, capped at `max_wait_s`), at least the
  `Retry-After` a `429`/`503` asks for. `408`, `429`, `5xx`, timeouts and connection
  errors are retried; any other non-2xx status (`3xx` included: redirects are not
  followed) is a permanent refusal. The budget is `attempts` and `total_s` (no attempt
  starts after it).
- **Per endpoint** (keyed by URL): at most `concurrency` requests in flight, and a circuit
  breaker: `BreakerPolicy.failures` consecutive retryable failures open it; while open no
  request is made and deliveries wait (inside their time budget, without spending
  attempts) until, after `cooldown_s`, one probe may go; its success closes the circuit,
  its failure opens it again. So a dead endpoint costs its own deliveries time, not the
  other endpoints' connections.
- **Order per key**: `KeyedOrder.turn(key)` taken in arrival order, then
  `async with turn:` runs one delivery at a time per key (e.g. per message and
  endpoint), each after the previous one ended (delivered or given up).
- **Metrics** (`WebhookMetrics`, Prometheus, label `endpoint` = `Endpoint.name`, host
  and a hash of the URL, never the URL's path or query, which may carry tokens):
  `dlr_webhook_attempts_total{result}` (2xx, 3xx, 4xx, 5xx, timeout, error),
  `dlr_webhook_attempt_seconds`, `dlr_webhook_retries_total`,
  `dlr_webhook_deliveries_total{outcome}` (delivered, refused, exhausted),
  `dlr_webhook_circuit_state` (0 closed, 1 open, 2 half-open),
  `dlr_webhook_circuit_opened_total`, `dlr_webhook_in_flight`.
"""

from sinks.webhooks.breaker import BreakerPolicy, CircuitBreaker
from sinks.webhooks.client import Endpoint, Outcome, RetryPolicy, WebhookClient
from sinks.webhooks.metrics import WebhookMetrics
from sinks.webhooks.order import KeyedOrder

__all__ = [
    "BreakerPolicy",
    "CircuitBreaker",
    "Endpoint",
    "KeyedOrder",
    "Outcome",
    "RetryPolicy",
    "WebhookClient",
    "WebhookMetrics",
]
