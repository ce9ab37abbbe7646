"""`dlr try`: send a provider's real callbacks for chosen statuses and show what became of them.

    dlr try twilio --status delivered,undelivered     # those fixtures of one provider
    dlr try vonage --status all                       # every fixture of one provider
    dlr try --all                                     # every provider, every status: the matrix

Each request is one of the fixtures the tests use (deploy/tools/fixtures/<provider>/), with
message ids of its own for this run (`Fixture.renamed`, so trying twice is news to the
dedupe), signed with the provider's own scheme and the development secrets (`dlr up` makes
them), and sent to the ingress (`--to`, default the local one). Then the tool follows
`dlr.status.v1` and `dlr.actions.v1` from just before it sent and prints one row per
message: provider, status (fixture), HTTP status, the canonical state and failure reason
the worker emitted, the actions it decided, `ok` when state and reason are those the
fixture expects, and the alert rules of `sinks/alerts/` that outcome feeds (those a flood
of it would fire, asked of the rules themselves: `deploy.tools.could_raise`). Exit 0 only
when every row is ok.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
import uuid
from dataclasses import dataclass, field

import httpx
import orjson

from deploy import weather
from deploy.report_cli import render_table
from deploy.settings import Settings
from deploy.tools import reader, samples
from deploy.tools.could_raise import Outcome, could_raise
from deploy.tools.keys import signing_keys
from ingress.providers._contract import InboundRequest
from sinks.alerts.settings import AlertSettings

#: The statuses of a go-live list (those a provider has fixtures for are used).
DEFAULT_STATUSES = ("delivered", "undelivered", "expired", "rejected")
#: After the last expected event, how long actions that follow it are still awaited.
SETTLE_S = 1.0


@dataclass
class Row:
    """One message of one fixture and what the pipeline made of it."""

    provider: str
    status: str
    message_id: str
    expect_state: str
    expect_reason: str | None
    http: int | None = None
    error: str | None = None
    state: str | None = None
    reason: str | None = None
    actions: list[str] = field(default_factory=list)
    is_final: bool | None = None
    country: str | None = None
    carrier: str | None = None
    region: str | None = None

    @property
    def outcome(self) -> Outcome:
        """What the alert rules see of this message."""
        return Outcome(
            self.provider,
            self.http,
            self.error,
            self.state,
            self.reason,
            self.is_final,
            self.country,
            self.carrier,
            self.region,
        )

    @property
    def ok(self) -> bool:
        return (
            self.http == 200
            and self.state == self.expect_state
            and self.reason == self.expect_reason
        )


def choose(provider: str | None, statuses: str | None, everything: bool) -> list[samples.Fixture]:
    """The fixtures asked for; ValueError names what does not exist."""
    providers = samples.providers()
    if provider is not None and provider not in providers:
        raise ValueError(f"no provider {provider!r}; known: {', '.join(providers)}")
    if provider is None and not everything:
        raise ValueError("name a provider, or --all for every provider")
    chosen = [provider] if provider else providers
    out: list[samples.Fixture] = []
    for name in chosen:
        fixtures = {f.name: f for f in samples.load(name) if f.expect}
        if everything or statuses == "all":
            out.extend(fixtures.values())
            continue
        wanted = statuses.split(",") if statuses else list(DEFAULT_STATUSES)
        unknown = [s for s in wanted if s not in fixtures] if statuses else []
        if unknown:
            raise ValueError(
                f"{name} has no fixture for {', '.join(unknown)}; it has: "
                f"{', '.join(sorted(fixtures))}"
            )
        out.extend(fixtures[s] for s in wanted if s in fixtures)
    return out


def _post(client: httpx.Client, request: InboundRequest, url: str) -> tuple[int, str | None]:
    """The HTTP status and, for a refusal, the ingress's error code."""
    response = client.request(
        request.method, url, headers=dict(request.headers), content=request.body
    )
    error = None
    if response.status_code >= 300:
        try:
            error = str(response.json().get("error")) or None
        except ValueError:
            error = None
    return response.status_code, error


def _send(settings: Settings, to: str, fixtures: list[samples.Fixture], run: str) -> list[Row]:
    """Sign and post each fixture (renamed for this run); one Row per expected message."""
    from ingress.providers import PROVIDERS

    keys = signing_keys(settings, sorted({f.provider for f in fixtures}))
    signed_for = (settings.public_base_url or to).rstrip("/")
    rows: list[Row] = []
    with httpx.Client(timeout=10) as client:
        for original in fixtures:
            fixture = original.renamed(f"-t{run}")
            adapter = PROVIDERS[fixture.provider]
            request = adapter.sign(
                fixture.request(signed_for), keys[fixture.provider], int(time.time())
            )
            url = to.rstrip("/") + request.url[len(signed_for) :]

            status, error = weather.wait_for(
                f"the ingress at {to}",
                functools.partial(_post, client, request, url),
                patience=settings.tools_wait_s,
                label="try",
            )
            for e in fixture.expect:
                rows.append(
                    Row(
                        fixture.provider,
                        fixture.name,
                        e["message_id"],
                        e["state"],
                        e.get("failure_reason"),
                        http=status,
                        error=error,
                    )
                )
    return rows


async def _outcomes(settings: Settings, rows: list[Row], since: float, wait_s: float) -> None:
    """Fill each row's state, reason and actions from the status and actions topics."""
    by_id = {row.message_id: row for row in rows}
    waiting = {row.message_id for row in rows if row.http == 200}
    status_topic, actions_topic = settings.status_topic, settings.actions_topic
    async with reader.consumer(settings, "try") as client:
        await reader.assign_since(settings, client, [status_topic, actions_topic], since)
        deadline = time.monotonic() + wait_s
        settled_at: float | None = None
        async for batch in reader.follow(client, deadline):
            for record in batch:
                value = orjson.loads(record.value or b"{}")
                row = by_id.get(str(value.get("message_id")))
                if row is None:
                    continue
                if record.topic == status_topic:
                    row.state = str(value.get("current_state"))
                    row.reason = value.get("failure_reason")
                    row.is_final = bool(value.get("is_final"))
                    row.country = value.get("country")
                    row.carrier = value.get("carrier")
                    row.region = value.get("region")
                    waiting.discard(row.message_id)
                elif str(value.get("type")) not in row.actions:
                    row.actions.append(str(value.get("type")))
            if not waiting:
                settled_at = settled_at or time.monotonic()
                if time.monotonic() - settled_at >= SETTLE_S:
                    return
            elif batch == []:
                print(
                    f"[try] waiting for the worker: {len(rows) - len(waiting)}/{len(rows)} "
                    f"canonical events on {status_topic}",
                    file=sys.stderr,
                    flush=True,
                )


def table(rows: list[Row], alerts: AlertSettings) -> str:
    """provider x status -> HTTP, canonical state, reason, actions, verdict, and the alert
    rules a flood of that outcome would fire (`deploy.tools.could_raise`)."""
    headers = [
        "provider",
        "status",
        "http",
        "state",
        "reason",
        "actions",
        "expected",
        "check",
        "alerts it could raise",
    ]
    cells = [
        [
            row.provider,
            row.status,
            str(row.http or "-"),
            row.state or "(none)",
            row.reason or "-",
            ",".join(row.actions) or "-",
            row.expect_state + (f"/{row.expect_reason}" if row.expect_reason else ""),
            "ok" if row.ok else "MISMATCH",
            ",".join(could_raise(row.outcome, alerts)) or "-",
        ]
        for row in rows
    ]
    return render_table(headers, cells, numeric={2})


def run_try(
    settings: Settings,
    provider: str | None,
    statuses: str | None,
    everything: bool,
    to: str | None,
    wait_s: float,
) -> int:
    """Send, follow, print the table; 0 when every message became what its fixture expects."""
    try:
        fixtures = choose(provider, statuses, everything)
    except ValueError as exc:
        print(f"dlr try: {exc}", file=sys.stderr)
        return 2
    target = to or f"http://{settings.ingress_host}:{settings.ingress_port}"
    run = uuid.uuid4().hex[:8]
    since = time.time() - 2
    print(f"[try] run {run}: {len(fixtures)} requests to {target}", file=sys.stderr, flush=True)
    rows = _send(settings, target, fixtures, run)
    asyncio.run(_outcomes(settings, rows, since, wait_s))
    print(table(rows, settings))
    bad = [row for row in rows if not row.ok]
    print(f"\n{len(rows) - len(bad)}/{len(rows)} messages as expected (run {run})")
    return 0 if not bad else 1
