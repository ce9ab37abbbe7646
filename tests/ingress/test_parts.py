"""Unit tests of the ingress building blocks: tokens, URLs, replay cache, rate limit, logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from starlette.requests import Request

from deploy.logs import JsonFormatter, mask_pii
from ingress import tokens
from ingress.errors import UnknownToken
from ingress.ratelimit import RateLimiter
from ingress.replay import ReplayCache
from ingress.url import client_ip, external_url, parse_networks
from schemas.phone import mask_number


def request(
    path: str = "/webhooks/twilio",
    query: str = "a=1",
    peer: str = "10.0.0.5",
    headers: dict[str, str] | None = None,
    host: str = "internal:8080",
) -> Request:
    raw = [(b"host", host.encode())] + [
        (k.lower().encode(), v.encode()) for k, v in (headers or {}).items()
    ]
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": query.encode(),
        "headers": raw,
        "client": (peer, 5555),
        "server": ("internal", 8080),
        "scheme": "http",
        "root_path": "",
    }
    return Request(scope)


def test_token_round_trip_and_tampering() -> None:
    token = tokens.issue({"tenant": "t1", "campaign": "c1", "ref": "r1"}, "k2")
    assert tokens.verify(token, ["k1", "k2"]) == {"tenant": "t1", "campaign": "c1", "ref": "r1"}
    head, mac = token.split(".")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    for bad in (f"{head}x.{mac}", f"{head}.{flipped}", "garbage", token + ".x", ""):
        with pytest.raises(UnknownToken):
            tokens.verify(bad, ["k1", "k2"])
    with pytest.raises(UnknownToken):
        tokens.verify(token, [])


def test_public_base_url_wins() -> None:
    r = request()
    assert external_url(r, "https://hooks.example.com/", ()) == (
        "https://hooks.example.com/webhooks/twilio?a=1"
    )


def test_forwarded_headers_only_from_trusted_proxies() -> None:
    headers = {
        "x-forwarded-proto": "https",
        "x-forwarded-host": "hooks.example.com",
        "x-forwarded-for": "203.0.113.9, 10.0.0.5",
    }
    trusted = parse_networks(["10.0.0.0/8"])
    assert external_url(request(headers=headers), None, trusted) == (
        "https://hooks.example.com/webhooks/twilio?a=1"
    )
    assert client_ip(request(headers=headers), trusted) == "203.0.113.9"
    untrusted = request(headers=headers, peer="198.51.100.7")
    assert external_url(untrusted, None, trusted) == "http://internal:8080/webhooks/twilio?a=1"
    assert client_ip(untrusted, trusted) == "198.51.100.7"


def test_forwarded_port_is_kept_unless_default() -> None:
    trusted = parse_networks(["10.0.0.5"])
    headers = {
        "x-forwarded-proto": "https",
        "x-forwarded-host": "h.example.com",
        "x-forwarded-port": "8443",
    }
    assert external_url(request(headers=headers, query=""), None, trusted) == (
        "https://h.example.com:8443/webhooks/twilio"
    )
    headers["x-forwarded-port"] = "443"
    assert external_url(request(headers=headers, query=""), None, trusted) == (
        "https://h.example.com/webhooks/twilio"
    )


def test_replay_cache_window_and_bound() -> None:
    cache = ReplayCache(window_s=300, max_entries=2)
    cache.add("twilio", "sig1", now=1000)
    assert cache.seen("twilio", "sig1", now=1200)
    assert not cache.seen("plivo", "sig1", now=1200)
    assert not cache.seen("twilio", "sig1", now=1301)
    cache.add("a", "1", now=2000)
    cache.add("a", "2", now=2000)
    cache.add("a", "3", now=2000)
    assert len(cache) == 2 and not cache.seen("a", "1", now=2000)


def test_rate_limiter_refills() -> None:
    limiter = RateLimiter(rate=2.0, burst=2)
    assert [limiter.allow("p", now=0.0) for _ in range(3)] == [True, True, False]
    assert limiter.allow("p", now=0.5)
    assert limiter.allow("other", now=0.5)
    assert RateLimiter(0, 1).allow("p")


def test_phone_numbers_never_reach_logs_in_clear() -> None:
    assert mask_number("+14155550100") == "*********00"
    assert "4155550100" not in mask_pii("to +1 (415) 555-0100 from 447700900123")
    record = logging.LogRecord(
        "t", logging.INFO, __file__, 1, "sent to %s", ("+14155550100",), None
    )
    record.recipient = "+447700900123"
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "sent to *********00"
    assert line["recipient"] == "**********23"


def test_secrets_file_merges_with_environment(tmp_path: Path) -> None:
    from deploy.settings import Settings
    from ingress.credentials import active_credentials

    path = tmp_path / "secrets.json"
    path.write_text(
        json.dumps(
            {
                "twilio": {"secrets": ["from-file"]},
                "bandwidth": {"basic": [["user", "pw"]]},
                "telnyx": {"public_keys": ["a2V5"]},
            }
        )
    )
    creds = active_credentials(
        Settings(twilio_secrets="from-env", secrets_file=path, dev_secrets=False, data_dir=tmp_path)
    )
    assert creds["twilio"].secrets == ("from-env", "from-file")
    assert creds["bandwidth"].basic == (("user", "pw"),)
    assert creds["telnyx"].public_keys == ("a2V5",)
    assert creds["plivo"].empty
    path.write_text(json.dumps({"acme": {"secrets": ["x"]}}))
    with pytest.raises(ValueError, match="unknown providers"):
        active_credentials(Settings(secrets_file=path, dev_secrets=False, data_dir=tmp_path))
