"""The one private piece of uvicorn the services use, and why.

uvicorn does not hand the application the TLS client certificate (the ASGI TLS extension,
`scope["extensions"]["tls"]`, is not implemented as of 0.54), and mutual TLS needs it per
request: `ingress/transport.py` checks the certificate against the route's subject
patterns. `TLSHttpToolsProtocol` is uvicorn's httptools protocol (the one `http="auto"`
picks with `uvicorn[standard]`) plus, once per TLS connection, the extension:

1. `HttpToolsProtocol` (module `uvicorn.protocols.http.httptools_impl`), subclassed and
   passed as `Config(http=...)`, which uvicorn documents as accepting a protocol class;
2. its `app` attribute: the ASGI app it calls for every request of the connection, set
   in `__init__`. `connection_made` (asyncio's public protocol API, called once the
   handshake completed) replaces it, for this connection only, by a wrapper that adds
   the extension to each request's scope.

Checked against uvicorn 0.54.0. `tests/ingress/test_uvicorn_boundary.py` fails when an
upgrade changes either (and the mutual-TLS tests with a real server fail with it); if
uvicorn ever fills the extension itself, this module can go.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ingress import tls
from ingress.transport import tls_extension

__all__ = ["TLSHttpToolsProtocol"]


class TLSHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that fills the ASGI TLS extension on TLS connections."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        extension = tls_extension(ssl_object)
        server = tls.active()
        if server is not None:
            server.handshakes["established"] += 1
        app = self.app

        async def app_with_tls(scope: Any, receive: Any, send: Any) -> None:
            extensions = scope.get("extensions")
            if extensions is None:
                extensions = scope["extensions"] = {}
            extensions["tls"] = extension
            await app(scope, receive, send)

        self.app = cast(Any, app_with_tls)
