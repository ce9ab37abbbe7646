"""Build a clickhouse-connect client from settings: the only way our code reaches ClickHouse.

`settings.clickhouse` is either `DLR_CLICKHOUSE_URL` (a production server or cluster, e.g.
`https://user:password@host:8443`) or the local launcher's `http://127.0.0.1:<port>`; both
take this same path. Nothing happens at import; `connect()` itself talks to the server
(clickhouse-connect asks for its version and settings), so call it where I/O is expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from schemas.settings import CommonSettings

_DEFAULT_PORTS = {"http": 8123, "https": 8443}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class Target:
    """Where and as whom to connect, parsed from a URL (the password is never printed)."""

    host: str
    port: int
    secure: bool
    username: str
    password: str
    verify: bool = True

    def __repr__(self) -> str:
        scheme = "https" if self.secure else "http"
        return f"Target({scheme}://{self.username}@{self.host}:{self.port})"


def parse_url(url: str) -> Target:
    """`http[s]://[user[:password]@]host[:port][?verify=false]` to a Target."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("ClickHouse URL must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("ClickHouse URL has no host")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    verify_text = query.get("verify", "true").lower()
    if verify_text not in _TRUE | _FALSE:
        raise ValueError("ClickHouse URL option verify must be true or false")
    return Target(
        host=parts.hostname,
        port=parts.port or _DEFAULT_PORTS[scheme],
        secure=scheme == "https",
        username=unquote(parts.username) if parts.username else "default",
        password=unquote(parts.password) if parts.password else "",
        verify=verify_text in _TRUE,
    )


def connect(settings: CommonSettings, database: str | None = None, **options: Any) -> Client:
    """A synchronous clickhouse-connect client for `settings.clickhouse`.

    No session id is generated, so one client may be used from several threads; extra
    keyword options go to `clickhouse_connect.get_client` (timeouts, settings ...).
    """
    return connect_url(settings.clickhouse, database, **options)


def connect_url(url: str, database: str | None = None, **options: Any) -> Client:
    """`connect` for any URL (another node of a cluster, say), parsed by `parse_url`."""
    target = parse_url(url)
    kwargs: dict[str, Any] = {
        "host": target.host,
        "port": target.port,
        "username": target.username,
        "password": target.password,
        "secure": target.secure,
        "verify": target.verify,
        "connect_timeout": 10,
        "send_receive_timeout": 300,
        "autogenerate_session_id": False,
    }
    if database:
        kwargs["database"] = database
    kwargs.update(options)
    return clickhouse_connect.get_client(**kwargs)
