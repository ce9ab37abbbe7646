"""ClickHouse URLs from settings: local launcher and production servers take one path."""

from __future__ import annotations

import pytest

from deploy.settings import Settings
from sinks.clickhouse.client import Target, parse_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "http://127.0.0.1:8123",
            Target("127.0.0.1", 8123, False, "default", ""),
            id="local",
        ),
        pytest.param(
            "https://analyst:s%40cret@ch.example.com",
            Target("ch.example.com", 8443, True, "analyst", "s@cret"),
            id="https-default-port-escaped-password",
        ),
        pytest.param(
            "https://u:p@ch.example.com:9443?verify=false",
            Target("ch.example.com", 9443, True, "u", "p", verify=False),
            id="self-signed",
        ),
        pytest.param(
            "HTTP://u@host:18123",
            Target("host", 18123, False, "u", ""),
            id="user-only",
        ),
    ],
)
def test_parse_url(url: str, expected: Target) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("tcp://host:9000", id="native-protocol"),
        pytest.param("http://:8123", id="no-host"),
        pytest.param("http://host?verify=maybe", id="bad-verify"),
        pytest.param("host:8123", id="no-scheme"),
    ],
)
def test_parse_url_refuses(url: str) -> None:
    with pytest.raises(ValueError, match="ClickHouse URL"):
        parse_url(url)


def test_password_is_not_in_the_repr() -> None:
    target = parse_url("https://u:topsecret@host")
    assert "topsecret" not in repr(target)


def test_settings_url_wins_over_local_ports() -> None:
    settings = Settings(clickhouse_url="https://u:p@prod:8443", clickhouse_http_port=18123)
    assert parse_url(settings.clickhouse).host == "prod"
    local = Settings(clickhouse_url=None, clickhouse_http_port=18123)
    assert parse_url(local.clickhouse) == Target("127.0.0.1", 18123, False, "default", "")
