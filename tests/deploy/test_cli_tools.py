"""`dlr ingress` says at start which external URL it verifies signatures against."""

from __future__ import annotations

from deploy.cli import external_url_line
from deploy.settings import Settings


def test_the_public_base_url_is_the_external_url() -> None:
    line = external_url_line(
        Settings(public_base_url="https://abc.ngrok.app/", ingress_port=8080), "http"
    )
    assert line.startswith("external URL https://abc.ngrok.app/webhooks/<provider> (")


def test_trusted_proxies_take_the_forwarded_headers() -> None:
    line = external_url_line(
        Settings(public_base_url=None, trusted_proxies="10.0.0.0/8", ingress_port=8081), "http"
    )
    assert "X-Forwarded-Proto/Host/Port of proxies in 10.0.0.0/8" in line
    assert line.endswith(
        ":8081/webhooks/<provider>; behind a tunnel set DLR_PUBLIC_BASE_URL to its public URL"
    )


def test_without_either_the_local_url_and_the_hint() -> None:
    line = external_url_line(
        Settings(public_base_url=None, trusted_proxies="", ingress_port=8082), "https"
    )
    assert ":8082/webhooks/<provider> (each request's Host header" in line
    assert line.startswith("external URL https://")
    assert "set DLR_PUBLIC_BASE_URL" in line
