"""Build a clickhouse-connect client from settings: the only way our code reaches ClickHouse.

`settings.clickhouse` is either `DLR_CLICKHOUSE_URL` (a production server or cluster, e.g.
`https://user:password@host:8443`) or the local launcher's `http://127.0.0.1:<port>`; both
take this same path. Nothing happens at import; `connect()` itself talks to the server
(clickhouse-connect asks for its version and settings), so call it where I/O is expected.
"""

from __future__ import annotations

from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from schemas.settings import CommonSettings, Target, parse_url

__all__ = ["Target", "connect", "connect_url", "parse_url"]


def connect(settings: CommonSettings, database: str | None = None, **options: Any) -> Client:
    """A synchronous clickhouse-connect client for `settings.clickhouse`.

    No session id is generated, so one client may be used from several threads; extra
    keyword options go to `clickhouse_connect.get_client` (timeouts, settings ...).
    """
    return connect_url(settings.clickhouse, database, **options)


def connect_url(url: str, database: str | None = None, **options: Any) -> Client:
    """`connect` for any URL (another node of a cluster, say), parsed by `parse_url`."""
    kwargs: dict[str, Any] = {
        **parse_url(url).client_options(),
        "send_receive_timeout": 300,
    }
    if database:
        kwargs["database"] = database
    kwargs.update(options)
    return clickhouse_connect.get_client(**kwargs)
