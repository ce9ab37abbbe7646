"""API keys: bearer tokens known only by their SHA-256, each with scopes and a tenant.

`DLR_API_KEYS` (or the file `DLR_API_KEYS_FILE`) lists them as JSON:

    [{"id": "shop", "sha256": "<hex>", "scopes": ["messages:write", "messages:read"],
      "tenant": "acme"}]

A request presents `Authorization: Bearer <token>`; the token's SHA-256 picks the key,
so no token is ever kept in clear. A key with a `tenant` only writes messages of that
tenant (a registration without one gets it) and only sees messages of that tenant
(others are `404`, as if they did not exist). `dlr apikey` makes a new token and prints
its entry. Local mode (`DLR_DEV_SECRETS=1`, set by `dlr up`) adds one development key
with every scope and no tenant, kept in `<data>/dev-secrets.json` under `"api": {"key":
...}` (mode 0600, reused, never printed) next to the providers' development secrets.

A new route declares its scope where it is routed (`app.py`, `requires(...)`); a new
scope is one line in `SCOPES`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from ingress.api.errors import (
    InsufficientScope,
    InvalidApiKey,
    MissingApiKey,
    TenantMismatch,
)
from ingress.api.settings import ApiSettings
from ingress.credentials import dev_secrets_path, update_dev_secrets

__all__ = ["SCOPES", "ApiKey", "Keys", "dev_key", "load_keys", "new_token", "token_hash"]

#: Every scope a key may hold, with what it allows.
SCOPES: dict[str, str] = {
    "messages:write": "register sent messages (POST /v1/messages)",
    "messages:read": "read what became of them (GET /v1/messages...)",
    "suppressions:read": "check numbers, export the suppression list (GET /v1/suppressions...)",
    "suppressions:write": "add and remove suppression entries (PUT/DELETE /v1/suppressions/...)",
    "subjects:erase": "erase every trace of a phone number (DELETE /v1/subjects/...)",
}

#: The id of the local development key.
DEV_KEY_ID = "dev"


def token_hash(token: str) -> str:
    """SHA-256 hex of a bearer token: what the settings list instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A new random bearer token (256 bits)."""
    return f"dlr_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One configured key (never the token itself)."""

    id: str
    sha256: str
    scopes: frozenset[str]
    tenant: str | None = None

    def require(self, scope: str) -> None:
        """InsufficientScope unless the key holds `scope`."""
        if scope not in self.scopes:
            raise InsufficientScope(f"key {self.id!r} lacks the scope {scope}")

    def sees(self, tenant: str | None) -> bool:
        """Whether this key may see a message of `tenant` (a tenant key: only its own)."""
        return self.tenant is None or tenant == self.tenant

    def tenant_for(self, given: str | None) -> str | None:
        """The tenant a registration is written with: the key's, unless it names another."""
        if self.tenant is None:
            return given
        if given is not None and given != self.tenant:
            raise TenantMismatch(f"key {self.id!r} writes tenant {self.tenant!r} only")
        return self.tenant


def _parse(entries: Any, where: str) -> list[ApiKey]:
    if not isinstance(entries, list):
        raise ValueError(f"{where}: expected a JSON list of keys")
    keys = []
    for entry in entries:
        if not isinstance(entry, dict) or not {"id", "sha256", "scopes"} <= set(entry):
            raise ValueError(f"{where}: each key needs id, sha256 and scopes")
        digest = str(entry["sha256"]).lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"{where}: key {entry['id']!r}: sha256 must be 64 hex digits")
        unknown = sorted(set(entry["scopes"]) - set(SCOPES))
        if unknown:
            raise ValueError(f"{where}: key {entry['id']!r}: unknown scopes {unknown}")
        tenant = entry.get("tenant")
        keys.append(ApiKey(str(entry["id"]), digest, frozenset(entry["scopes"]), tenant))
    return keys


def dev_key(settings: ApiSettings) -> str:
    """The local development token (created on first use, kept in dev-secrets.json)."""

    def add(stored: dict[str, Any]) -> bool:
        if isinstance(stored.get("api"), dict) and stored["api"].get("key"):
            return False
        stored["api"] = {"key": new_token()}
        return True

    stored = update_dev_secrets(dev_secrets_path(settings), add)
    return str(stored["api"]["key"])


def load_keys(settings: ApiSettings) -> list[ApiKey]:
    """Every configured key: DLR_API_KEYS, DLR_API_KEYS_FILE, and the dev key locally."""
    keys: list[ApiKey] = []
    if settings.api_keys.strip():
        keys += _parse(json.loads(settings.api_keys), "DLR_API_KEYS")
    if settings.api_keys_file is not None:
        path = settings.api_keys_file
        keys += _parse(json.loads(path.read_text()), str(path))
    if settings.dev_secrets:
        keys.append(ApiKey(DEV_KEY_ID, token_hash(dev_key(settings)), frozenset(SCOPES)))
    return keys


class Keys:
    """Finds the key of a request's bearer token."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self.by_hash = {key.sha256: key for key in keys}

    def authenticate(self, authorization: str | None) -> ApiKey:
        """The key of an `Authorization` header value; MissingApiKey / InvalidApiKey."""
        if not authorization:
            raise MissingApiKey("send Authorization: Bearer <api key>")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MissingApiKey("send Authorization: Bearer <api key>")
        key = self.by_hash.get(token_hash(token.strip()))
        if key is None:
            raise InvalidApiKey("unknown API key")
        return key
