"""HTTPS-only, HSTS, client certificates through a trusted proxy, weak configurations:
the real ingress and API apps, driven in-process (httpx's ASGITransport sets the peer
address and the scheme a server would put in the scope). The same checks on a real TLS
server, with real handshakes, are in `tests/ingress/test_tls_server.py`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from prometheus_client import generate_latest
from starlette.testclient import TestClient

from deploy.settings import Settings
from ingress.api.app import create_app as create_api
from ingress.app import create_app
from ingress.credentials import active_credentials, weaknesses
from ingress.providers import generic, vonage
from ingress.providers._contract import InboundRequest
from ingress.transport import (
    SubjectPatterns,
    TransportPolicy,
    identity_from_pem,
    identity_from_xfcc,
    split_patterns,
)
from ingress.webhook import webhook_target
from tests.certs import Authority, Issued
from tests.doubles import RecordingProducer

SECRET = "transport-generic-secret"
PROXY = "10.1.2.3"
STRANGER = "192.0.2.7"
PATTERN = "CN=hooks.bandwidth.example,O=Bandwidth"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def provider_cert(ca: Authority) -> Issued:
    return ca.issue(
        "provider",
        "hooks.bandwidth.example",
        organization="Bandwidth",
        dns=("Hooks.Bandwidth.Example",),
        uris=("spiffe://bandwidth.example/dlr",),
        expires_in=timedelta(minutes=10),
    )


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap": "127.0.0.1:1",  # never reached: the producer is a double
        "data_dir": tmp_path,
        "generic_secrets": SECRET,
        "dev_secrets": False,
    }
    return Settings(**{**values, **overrides})


def body(message_id: str = "m-1") -> bytes:
    return orjson.dumps(
        {"message_id": message_id, "status": "delivered", "timestamp": "2025-08-12T10:15:00Z"}
    )


def signed(raw: bytes) -> dict[str, str]:
    request = InboundRequest("POST", "x", {"content-type": "application/json"}, raw)
    return dict(generic.sign(request, SECRET, int(time.time())).headers)


class Ingress:
    """The real ingress app with a recording producer, reached from a chosen peer."""

    def __init__(self, config: Settings) -> None:
        self.producer = RecordingProducer()
        self.app = create_app(config, producer=self.producer)
        self.sent = 0

    def client(
        self, peer: str = STRANGER, scheme: str = "http", root_path: str = ""
    ) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(peer, 50123), root_path=root_path)
        return httpx.AsyncClient(transport=transport, base_url=f"{scheme}://dlr.example.com")

    async def post(
        self,
        peer: str = STRANGER,
        scheme: str = "http",
        headers: dict[str, str] | None = None,
        provider: str = "generic",
        root_path: str = "",
    ) -> httpx.Response:
        self.sent += 1
        raw = body(f"m-{self.sent}")  # a new message each time: no replay answers
        async with self.client(peer, scheme, root_path) as c:
            return await c.post(
                f"{root_path}/webhooks/{provider}",
                content=raw,
                headers={**signed(raw), **(headers or {})},
            )

    def metric(self, outcome: str, provider: str = "generic") -> float:
        text = generate_latest(self.app.state.ingress.metrics.registry).decode()
        line = (
            f'dlr_ingress_requests_total{{outcome="{outcome}",provider="{provider}",status="403"}}'
        )
        for row in text.splitlines():
            if row.startswith(line):
                return float(row.rsplit(" ", 1)[1])
        return 0.0


# -- HTTPS only --------------------------------------------------------------------------


async def test_plain_http_is_refused_outside_local_mode_before_the_body_is_read(
    tmp_path: Path,
) -> None:
    ingress = Ingress(settings(tmp_path))
    read: list[bytes] = []
    raw = body()

    async def stream() -> AsyncIterator[bytes]:
        read.append(raw)
        yield raw

    async with ingress.client() as c:
        response = await c.post("/webhooks/generic", content=stream(), headers=signed(raw))
        assert response.status_code == 403
        assert response.json()["error"] == "insecure_transport"
        assert "strict-transport-security" not in response.headers  # never over plain HTTP
        # probes and scrapers stay reachable over plain HTTP
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await c.get(path)).status_code == 200, path
    assert read == [], "the body was read before the refusal"
    assert ingress.producer.records == []
    assert ingress.metric("insecure_transport") == 1


async def test_plain_http_is_accepted_in_local_mode(tmp_path: Path) -> None:
    ingress = Ingress(settings(tmp_path, dev_secrets=True))
    response = await ingress.post()
    assert response.status_code == 200, response.text
    assert "strict-transport-security" not in response.headers
    assert len(ingress.producer.records) == 1


async def test_require_https_can_be_set_either_way_explicitly(tmp_path: Path) -> None:
    local_but_strict = Ingress(settings(tmp_path / "a", dev_secrets=True, require_https=True))
    assert (await local_but_strict.post()).json()["error"] == "insecure_transport"
    production_but_lax = Ingress(settings(tmp_path / "b", require_https=False))
    assert (await production_but_lax.post()).status_code == 200


async def test_https_is_accepted_with_hsts(tmp_path: Path) -> None:
    ingress = Ingress(settings(tmp_path))
    response = await ingress.post(scheme="https")
    assert response.status_code == 200, response.text
    assert response.headers["strict-transport-security"] == "max-age=31536000"
    # refusals over HTTPS carry it too; a zero max-age sends none
    refused = await ingress.post(scheme="https", headers={"x-webhook-signature": "v1=00"})
    assert refused.status_code == 401
    assert refused.headers["strict-transport-security"] == "max-age=31536000"
    quiet = Ingress(settings(tmp_path / "q", hsts_max_age_s=0))
    assert "strict-transport-security" not in (await quiet.post(scheme="https")).headers


@pytest.mark.parametrize(
    ("peer", "proto", "accepted"),
    [
        pytest.param(PROXY, "https", True, id="trusted-proxy-says-https"),
        pytest.param(PROXY, "http", False, id="trusted-proxy-says-http"),
        pytest.param(PROXY, None, False, id="trusted-proxy-says-nothing"),
        pytest.param(PROXY, "http, https", True, id="nearest-proxy-value-is-last"),
        pytest.param(PROXY, "https, http", False, id="client-value-first-is-not-believed"),
        pytest.param(STRANGER, "https", False, id="untrusted-peer-says-https"),
    ],
)
async def test_forwarded_proto_is_believed_only_from_a_trusted_proxy(
    tmp_path: Path, peer: str, proto: str | None, accepted: bool
) -> None:
    ingress = Ingress(settings(tmp_path, trusted_proxies="10.0.0.0/8"))
    headers = {"x-forwarded-proto": proto} if proto else {}
    response = await ingress.post(peer=peer, headers=headers)
    if accepted:
        assert response.status_code == 200, response.text
        assert response.headers["strict-transport-security"] == "max-age=31536000"
    else:
        assert response.status_code == 403
        assert response.json()["error"] == "insecure_transport"
    assert len(ingress.producer.records) == (1 if accepted else 0)


# -- both ways a webhook reaches `webhook()` ----------------------------------------------


@pytest.mark.parametrize(
    "root_path",
    [
        pytest.param("", id="asgi-shortcut"),  # IngressApp hands it over from the scope
        pytest.param("/dlr", id="starlette-router"),  # under a root path the router does
    ],
)
async def test_transport_checks_hold_on_both_webhook_paths(
    tmp_path: Path, ca: Authority, provider_cert: Issued, root_path: str
) -> None:
    scope = {"path": f"{root_path}/webhooks/generic", "root_path": root_path, "method": "POST"}
    assert (webhook_target(scope) is None) == bool(root_path)  # the path this case takes
    ingress = behind_proxy(tmp_path, "nginx", PATTERN)
    plain = await ingress.post(root_path=root_path)
    assert (plain.status_code, plain.json()["error"]) == (403, "insecure_transport")
    assert "strict-transport-security" not in plain.headers
    spoofed = await ingress.post(headers=nginx_headers(provider_cert), root_path=root_path)
    assert spoofed.json()["error"] == "insecure_transport"  # a stranger's proxy headers
    other = ca.issue("other-path", "someone.example", expires_in=timedelta(minutes=10))
    wrong = await ingress.post(peer=PROXY, headers=nginx_headers(other), root_path=root_path)
    assert (wrong.status_code, wrong.json()["error"]) == (403, "forbidden_client_certificate")
    assert wrong.headers.get_list("strict-transport-security") == ["max-age=31536000"]
    good = nginx_headers(provider_cert)
    right = await ingress.post(peer=PROXY, headers=good, root_path=root_path)
    assert right.status_code == 200, right.text
    assert right.headers.get_list("strict-transport-security") == ["max-age=31536000"]
    direct = await ingress.post(scheme="https", headers=good, root_path=root_path)
    assert direct.json()["error"] == "forbidden_client_certificate"  # no handshake certificate
    assert len(ingress.producer.records) == 1
    assert ingress.metric("insecure_transport") == 2
    assert ingress.metric("forbidden_client_certificate") == 2


async def test_starlette_routes_carry_hsts_over_https_only(tmp_path: Path) -> None:
    ingress = Ingress(settings(tmp_path, trusted_proxies=PROXY))
    for path, status in (("/healthz", 200), ("/openapi.json", 200), ("/nowhere", 404)):
        async with ingress.client(scheme="https") as c:
            secure = await c.get(path)
        assert secure.status_code == status, path
        assert secure.headers.get_list("strict-transport-security") == ["max-age=31536000"], path
        async with ingress.client(peer=PROXY) as c:
            proxied = await c.get(path, headers={"x-forwarded-proto": "https"})
        assert proxied.headers.get_list("strict-transport-security") == ["max-age=31536000"]
        async with ingress.client() as c:
            plain = await c.get(path, headers={"x-forwarded-proto": "https"})  # untrusted
        assert plain.status_code == status, path
        assert "strict-transport-security" not in plain.headers, path


# -- client certificates through a TLS-terminating proxy -----------------------------------


def nginx_headers(issued: Issued, verify: str = "SUCCESS") -> dict[str, str]:
    """What ingress-nginx (auth-tls-pass-certificate-to-upstream) or nginx with
    `$ssl_client_escaped_cert` / `$ssl_client_verify` sends upstream."""
    return {
        "x-forwarded-proto": "https",
        "ssl-client-cert": quote(issued.pem, safe=""),
        "ssl-client-verify": verify,
    }


def xfcc_headers(issued: Issued | None, subject: str = "", dns: str = "") -> dict[str, str]:
    """What Envoy sends with forward_client_cert_details SANITIZE_SET."""
    element = "By=spiffe://cluster.local/ns/dlr/sa/ingress;Hash=abc123"
    if issued is not None:
        element += f';Cert="{quote(issued.pem, safe="")}"'
    if subject:
        element += f';Subject="{subject}"'
    if dns:
        element += f";DNS={dns}"
    return {"x-forwarded-proto": "https", "x-forwarded-client-cert": element}


def behind_proxy(tmp_path: Path, mode: str, subjects: str) -> Ingress:
    """The ingress behind a TLS-terminating proxy at PROXY that passes client certificates
    the `mode` way; the generic route takes only `subjects`."""
    return Ingress(
        settings(
            tmp_path,
            trusted_proxies=PROXY,
            tls_client_cert_from_proxy=mode,
            generic_client_cert_subjects=subjects,
        )
    )


async def test_nginx_client_certificate_from_the_trusted_proxy_only(
    tmp_path: Path, ca: Authority, provider_cert: Issued
) -> None:
    ingress = behind_proxy(tmp_path, "nginx", PATTERN)
    accepted = await ingress.post(peer=PROXY, headers=nginx_headers(provider_cert))
    assert accepted.status_code == 200, accepted.text

    other = ca.issue("other", "someone.example", expires_in=timedelta(minutes=10))
    expired = ca.issue(
        "expired",
        "hooks.bandwidth.example",
        organization="Bandwidth",
        valid_from=timedelta(minutes=-30),
        expires_in=timedelta(minutes=-10),
    )
    refusals = {
        "wrong subject": (PROXY, nginx_headers(other)),
        "expired": (PROXY, nginx_headers(expired)),
        "proxy could not verify it": (PROXY, nginx_headers(provider_cert, "FAILED:unknown ca")),
        "proxy saw none": (PROXY, nginx_headers(provider_cert, "NONE")),
        "no header": (PROXY, {"x-forwarded-proto": "https"}),
        "header from an untrusted peer": (STRANGER, nginx_headers(provider_cert)),
    }
    for why, (peer, headers) in refusals.items():
        response = await ingress.post(peer=peer, headers=headers, scheme="https")
        assert response.status_code == 403, why
        assert response.json()["error"] == "forbidden_client_certificate", why
    assert "expired" in (await ingress.post(peer=PROXY, headers=nginx_headers(expired))).text
    assert len(ingress.producer.records) == 1
    assert ingress.metric("forbidden_client_certificate") == len(refusals) + 1
    # a provider route without subjects needs no certificate
    https = {"x-forwarded-proto": "https"}
    twilio = await ingress.post(peer=PROXY, headers=https, provider="twilio")
    assert twilio.json()["error"] == "no_credentials"  # got past the transport checks


async def test_envoy_xfcc_client_certificate(
    tmp_path: Path, ca: Authority, provider_cert: Issued
) -> None:
    ingress = behind_proxy(tmp_path, "xfcc", "DNS:*.bandwidth.example, URI:spiffe://partner/*")
    ok = [
        xfcc_headers(provider_cert),  # Cert=: the whole certificate
        xfcc_headers(None, subject="CN=x,O=Partner", dns="HOOKS.bandwidth.example"),
    ]
    for headers in ok:
        response = await ingress.post(peer=PROXY, headers=headers)
        assert response.status_code == 200, (headers, response.text)
    spiffe = {
        "x-forwarded-proto": "https",
        "x-forwarded-client-cert": "Hash=1;URI=spiffe://partner/hooks",
    }
    assert (await ingress.post(peer=PROXY, headers=spiffe)).status_code == 200
    refused = [
        xfcc_headers(None, subject="CN=hooks.bandwidth.example"),  # no matching SAN
        xfcc_headers(None, dns="bandwidth.example.evil"),
        {"x-forwarded-proto": "https"},
    ]
    for headers in refused:
        response = await ingress.post(peer=PROXY, headers=headers)
        assert response.json()["error"] == "forbidden_client_certificate", headers
    # the same header from anyone else is not believed
    response = await ingress.post(
        peer=STRANGER, headers=xfcc_headers(provider_cert), scheme="https"
    )
    assert response.json()["error"] == "forbidden_client_certificate"
    assert len(ingress.producer.records) == 3


def test_xfcc_parsing_takes_the_nearest_proxys_element() -> None:
    header = (
        "By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a"
        '02dd8de688;Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testc'
        "lient.lyft.com,"
        "By=http://backend.lyft.com;Hash=9ba61d6425303443c0748a02dd8de688468ed33be74eee6556d90c01"
        '49c1309e;Subject="CN=hooks,O=Partner\\, Inc.";DNS=hooks.partner.example;'
        "DNS=alt.partner.example"
    )
    identity = identity_from_xfcc(header)
    assert identity is not None
    assert identity.subject == "CN=hooks,O=Partner\\, Inc."
    assert "DNS:hooks.partner.example" in identity.names
    assert "DNS:alt.partner.example" in identity.names
    assert "O=Partner\\, Inc." in identity.names
    assert not any("lyft" in name for name in identity.names)
    assert identity_from_xfcc("By=x;Hash=y") is None
    assert identity_from_xfcc("") is None


def test_subject_patterns(provider_cert: Issued) -> None:
    identity = identity_from_pem(provider_cert.pem)
    assert identity.subject == "O=Bandwidth,CN=hooks.bandwidth.example"
    assert identity.not_after is not None and identity.not_after > time.time()
    matching = [
        "O=Bandwidth,CN=hooks.bandwidth.example",  # the whole subject
        "CN=hooks.bandwidth.example",  # one attribute
        "O=Band*",
        "DNS:*.bandwidth.example",  # a SAN, case-insensitive
        "dns:HOOKS.BANDWIDTH.EXAMPLE",
        "URI:spiffe://bandwidth.example/*",
    ]
    for pattern in matching:
        patterns = SubjectPatterns.parse(pattern)
        assert patterns is not None and patterns.allows(identity), pattern
    for pattern in ("CN=bandwidth.example", "DNS:*.example.com", "URI:spiffe://other/*", "O=b*"):
        patterns = SubjectPatterns.parse(pattern)
        assert patterns is not None and not patterns.allows(identity), pattern
    assert SubjectPatterns.parse(" , ") is None
    assert split_patterns("CN=a\\,b, DNS:x") == ("CN=a,b", "DNS:x")


def test_policy_without_requirements_never_refuses(tmp_path: Path) -> None:
    policy = TransportPolicy(settings(tmp_path, require_https=False))
    assert not policy.active
    scope = {"type": "http", "scheme": "http", "headers": [], "client": (STRANGER, 1)}
    policy.check(scope, "generic", policy.secure(scope))  # raises nothing


# -- the sender's API --------------------------------------------------------------------


def api_metric(app: Any, route: str, outcome: str) -> float:
    text = generate_latest(app.state.api.metrics.registry).decode()
    line = f'dlr_api_requests_total{{outcome="{outcome}",route="{route}",status="403"}}'
    return next((float(r.rsplit(" ", 1)[1]) for r in text.splitlines() if r.startswith(line)), 0)


async def test_api_is_https_only_outside_local_mode(tmp_path: Path, provider_cert: Issued) -> None:
    app = create_api(settings(tmp_path, trusted_proxies=PROXY))
    registration = {"message_id": "generic:1"}

    def client(peer: str = STRANGER, scheme: str = "http") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(peer, 1))
        return httpx.AsyncClient(transport=transport, base_url=f"{scheme}://api.example.com")

    async with client() as c:
        response = await c.post("/v1/messages", json=registration)
        assert response.status_code == 403
        assert response.json()["error"] == "insecure_transport"
        assert (await c.get("/v1/messages/generic:1")).json()["error"] == "insecure_transport"
        assert (await c.get("/healthz")).status_code == 200
    async with client(scheme="https") as c:
        response = await c.post("/v1/messages", json=registration)
        assert response.status_code == 401  # past the transport: the key check answers
        assert response.headers["strict-transport-security"] == "max-age=31536000"
    async with client(peer=PROXY) as c:
        response = await c.post(
            "/v1/messages", json=registration, headers={"x-forwarded-proto": "https"}
        )
        assert response.status_code == 401
    assert api_metric(app, "register", "insecure_transport") == 1
    assert api_metric(app, "lookup", "insecure_transport") == 1

    strict = create_api(
        settings(
            tmp_path / "mtls",
            trusted_proxies=PROXY,
            tls_client_cert_from_proxy="nginx",
            api_client_cert_subjects="CN=hooks.bandwidth.example",
        )
    )
    transport = httpx.ASGITransport(app=strict, client=(PROXY, 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        response = await c.post(
            "/v1/messages", json=registration, headers={"x-forwarded-proto": "https"}
        )
        assert response.json()["error"] == "forbidden_client_certificate"
        response = await c.post(
            "/v1/messages", json=registration, headers=nginx_headers(provider_cert)
        )
        assert response.status_code == 401


# -- weak configurations ------------------------------------------------------------------


def test_weak_provider_configurations_are_named_once_each(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = settings(
        tmp_path,
        vonage_secrets="v-secret",
        vonage_signature_method="md5hash",
        bandwidth_credentials="user:pw",
        infobip_credentials="user:pw",
        infobip_allow_ips="198.51.100.0/24",
        twilio_secrets="t-secret",
    )
    ingress = Ingress(config)
    with caplog.at_level(logging.WARNING, logger="dlr.ingress"), TestClient(ingress.app):
        pass
    weak: dict[str, str] = {
        getattr(r, "provider", ""): getattr(r, "why", "")
        for r in caplog.records
        if r.getMessage() == "weak provider authentication"
    }
    assert len([r for r in caplog.records if r.getMessage() == "weak provider authentication"]) == 2
    assert set(weak) == {"vonage", "bandwidth"}
    assert "md5hash" in weak["vonage"] and "MD5" in weak["vonage"]
    assert "DLR_BANDWIDTH_ALLOW_IPS" in weak["bandwidth"]
    # an allow-list or a client certificate makes a password acceptable; sha256 is not weak
    fixed = settings(
        tmp_path,
        vonage_secrets="v-secret",
        bandwidth_credentials="user:pw",
        bandwidth_client_cert_subjects="CN=hooks.bandwidth.example",
    )
    assert weaknesses(fixed, {}) == {}
    # local mode's development credentials are not looked at
    assert weaknesses(settings(tmp_path, dev_secrets=True), {}) == {}


def test_vonage_method_default_and_explicit_md5hash(tmp_path: Path) -> None:
    creds = active_credentials(settings(tmp_path, vonage_secrets="s"))["vonage"]
    assert creds.options.get("signature_method", vonage.DEFAULT_METHOD) == "sha256"
    named = active_credentials(
        settings(tmp_path, vonage_secrets="s", vonage_signature_method="md5hash")
    )
    assert named["vonage"].options["signature_method"] == "md5hash"
    # a secrets file that names md5hash keeps it (the variable's default does not override it)
    path = tmp_path / "secrets.json"
    path.write_text(
        json.dumps({"vonage": {"secrets": ["s"], "options": {"signature_method": "md5hash"}}})
    )
    from_file = active_credentials(settings(tmp_path, secrets_file=path))["vonage"]
    assert from_file.options["signature_method"] == "md5hash"
    overridden = active_credentials(
        settings(tmp_path, secrets_file=path, vonage_signature_method="sha512")
    )
    assert overridden["vonage"].options["signature_method"] == "sha512"
