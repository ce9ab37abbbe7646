"""What `ingress/_uvicorn.py` and `ingress/tls.py` rely on in uvicorn, checked against this
install: an upgrade that changes it fails here with what to re-check (the mutual-TLS tests
on a real server, `tests/ingress/test_tls_server.py`, fail with it).
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

import uvicorn
from uvicorn.protocols.http import auto
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ingress._uvicorn import TLSHttpToolsProtocol

HINT = "uvicorn changed what ingress/_uvicorn.py relies on: re-check its docstring's list"


def test_config_takes_an_ssl_context_factory_and_a_protocol_class() -> None:
    parameters = inspect.signature(uvicorn.Config).parameters
    assert "ssl_context_factory" in parameters, f"uvicorn {version('uvicorn')}: {HINT}"
    assert "http" in parameters, HINT


def test_auto_picks_the_protocol_we_extend() -> None:
    # `http="auto"` would serve with this class; TLS serves with our subclass of it
    assert auto.AutoHTTPProtocol is HttpToolsProtocol, HINT
    assert issubclass(TLSHttpToolsProtocol, HttpToolsProtocol)


def test_the_app_attribute_is_set_per_connection_and_read_per_request() -> None:
    init = inspect.getsource(HttpToolsProtocol.__init__)
    assert "self.app = config.loaded_app" in init, HINT
    on_headers = inspect.getsource(HttpToolsProtocol.on_headers_complete)
    assert "app = self.app" in on_headers, HINT
    made = inspect.signature(HttpToolsProtocol.connection_made).parameters
    assert list(made) == ["self", "transport"], HINT
