"""Loads the per-provider request fixtures under `deploy/tools/fixtures/<provider>/*.json`.

A fixture is one webhook request as the provider sends it, plus what the pipeline must
make of it. One copy serves both the tests (every adapter and mapper is checked against
it) and `dlr try` (which sends them to a running ingress), so it ships with the package.
Format (exactly one of body / json / form):

    {
      "description": "undelivered, unknown handset (30005)",
      "method": "POST",                      # default POST
      "query": "a=1&b=2",                    # optional query string of the callback URL
      "content_type": "application/x-www-form-urlencoded",
      "headers": {"user-agent": "..."},      # optional extra, non-signature headers
      "body": "<raw text>" | "json": {...} | "form": [["k", "v"], ...],
      "expect": [                            # one per record, in extraction order
        {"message_id": "twilio:SM...", "state": "undelivered",
         "failure_reason": "invalid_number", "provider_status": "undelivered",
         "provider_error_code": "30005"}
      ]
    }

Signatures are never stored: tests and `dlr try` sign with the provider module's `sign()`
at run time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

from ingress.providers._contract import InboundRequest

ROOT = Path(__file__).parent / "fixtures"


@dataclass(frozen=True)
class Fixture:
    """One provider request and its expected canonical outcome."""

    provider: str
    name: str
    method: str
    query: str
    content_type: str
    headers: dict[str, str]
    body: bytes
    expect: list[dict[str, Any]]

    def request(self, base_url: str = "https://dlr.example.com") -> InboundRequest:
        """The unsigned request as it would arrive at `/webhooks/<provider>`."""
        url = f"{base_url}/webhooks/{self.provider}" + (f"?{self.query}" if self.query else "")
        headers = {k.lower(): v for k, v in self.headers.items()}
        if self.content_type:
            headers["content-type"] = self.content_type
        return InboundRequest(method=self.method, url=url, headers=headers, body=self.body)

    def renamed(self, suffix: str) -> Fixture:
        """The same request about messages of their own: every provider message id in the
        body and query gets `suffix`, so a second `dlr try` is news to the pipeline's dedupe
        and its state machine, not a duplicate of the first."""
        keys = sorted({e["message_id"].split(":")[1] for e in self.expect}, key=len, reverse=True)
        body, query = self.body.decode(), self.query
        expect = [dict(e) for e in self.expect]
        for key in keys:
            body = body.replace(key, key + suffix)
            query = query.replace(key, key + suffix)
            for e in expect:
                provider, _, rest = e["message_id"].partition(":")
                if rest.split(":")[0] == key:
                    e["message_id"] = f"{provider}:{key}{suffix}{rest[len(key) :]}"
        return replace(self, body=body.encode(), query=query, expect=expect)


def _body(spec: dict[str, Any]) -> bytes:
    if "body" in spec:
        return str(spec["body"]).encode()
    if "json" in spec:
        return orjson.dumps(spec["json"])
    if "form" in spec:
        return urlencode([(k, v) for k, v in spec["form"]]).encode()
    return b""


def load(provider: str) -> list[Fixture]:
    """All fixtures of one provider, sorted by file name."""
    out = []
    for path in sorted((ROOT / provider).glob("*.json")):
        spec = json.loads(path.read_text())
        out.append(
            Fixture(
                provider=provider,
                name=path.stem,
                method=spec.get("method", "POST"),
                query=spec.get("query", ""),
                content_type=spec.get("content_type", ""),
                headers=spec.get("headers", {}),
                body=_body(spec),
                expect=spec["expect"],
            )
        )
    return out


def providers() -> list[str]:
    """Providers that have fixtures."""
    return sorted(p.name for p in ROOT.iterdir() if p.is_dir())
