"""Loads the per-provider request fixtures under `tests/fixtures/<provider>/*.json`.

A fixture is one webhook request as the provider sends it, plus what the pipeline must
make of it. Format (exactly one of body / json / form):

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

Signatures are never stored: tests sign with the provider module's `sign()` at run time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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
