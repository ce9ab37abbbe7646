"""TLS on a real uvicorn server on a free port, as `dlr ingress` and `dlr api` serve it
(`ingress.tls.uvicorn_options`): protocol versions and ciphers, mutual TLS with
short-lived client certificates made in the test, and certificate rotation without a
restart and without dropping a request in flight.

The server runs the real ingress app in a thread of this process with the in-process
producer double (`tests/doubles.py`): what is under test is the TLS and transport path,
not Kafka. Every wait polls with a deadline.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
import uvicorn
from cryptography import x509

from deploy.local.ports import free_port
from deploy.settings import Settings
from ingress import tls
from ingress.app import create_app
from ingress.providers import generic
from ingress.providers._contract import InboundRequest
from tests.certs import HOST, Authority, Issued
from tests.doubles import RecordingProducer

SECRET = "tls-server-generic-secret"
PROVIDER_CN = "hooks.partner.example"
T = TypeVar("T")


def poll(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    """The first non-None result of `probe`, retried until the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@contextmanager
def serving(config: Settings) -> Iterator[tuple[int, RecordingProducer]]:
    """The ingress app served by uvicorn with this config's TLS, on a free port."""
    producer = RecordingProducer()
    port = free_port()
    uv = uvicorn.Config(
        create_app(config, producer=producer),
        host=HOST,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        **tls.uvicorn_options(config),
    )
    server = uvicorn.Server(uv)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:

        def up() -> bool | None:
            return True if server.started or not thread.is_alive() else None

        poll("the server to start", up)
        assert server.started, "uvicorn exited during startup"
        yield port, producer
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        assert not thread.is_alive(), "uvicorn did not stop"


def server_settings(tmp_path: Path, cert: Issued, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "kafka_bootstrap": "127.0.0.1:1",  # never reached: the producer is a double
        "data_dir": tmp_path / "data",
        "generic_secrets": SECRET,
        "dev_secrets": False,  # production mode: HTTPS required
        "tls_cert": cert.cert_path,
        "tls_key": cert.key_path,
        "tls_reload_s": 0.2,
    }
    return Settings(**{**values, **overrides})


def mutual_tls(tmp_path: Path, ca: Authority) -> Settings:
    """Client certificates of `ca` requested; the generic route takes only PROVIDER_CN's."""
    return server_settings(
        tmp_path,
        ca.server(),
        tls_client_ca=str(ca.path),
        generic_client_cert_subjects=f"CN={PROVIDER_CN}",
    )


def client_context(
    ca: Authority, cert: Issued | None = None, *, version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca.path))
    if cert is not None:
        ctx.load_cert_chain(cert.cert_path, cert.key_path)
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def webhook(message_id: str) -> tuple[bytes, dict[str, str]]:
    raw = orjson.dumps(
        {"message_id": message_id, "status": "delivered", "timestamp": "2025-08-12T10:15:00Z"}
    )
    request = InboundRequest("POST", "x", {"content-type": "application/json"}, raw)
    return raw, dict(generic.sign(request, SECRET, int(time.time())).headers)


_sent = iter(range(1_000_000))


def post(conn: http.client.HTTPSConnection, path: str = "/webhooks/generic") -> tuple[int, Any]:
    raw, headers = webhook(f"m-{next(_sent)}")
    conn.request("POST", path, body=raw, headers=headers)
    response = conn.getresponse()
    return response.status, orjson.loads(response.read())


def connect(port: int, ctx: ssl.SSLContext) -> http.client.HTTPSConnection:
    conn = http.client.HTTPSConnection(HOST, port, context=ctx, timeout=10)
    conn.connect()
    return conn


def served_cn(port: int, ca: Authority) -> str:
    """The common name of the certificate a new connection is served."""
    with (
        socket.create_connection((HOST, port), timeout=5) as raw,
        client_context(ca).wrap_socket(raw, server_hostname=HOST) as conn,
    ):
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    return str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def refused_handshake(port: int, ctx: ssl.SSLContext) -> OSError:
    """The error of a connection the server refuses during the handshake. With TLS 1.3 the
    client may finish its side first and learn of the refusal when it reads."""
    try:
        conn = connect(port, ctx)
        post(conn)
    except (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected) as exc:
        return exc
    raise AssertionError("the server accepted the connection")


def bio_handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> str:
    """A handshake between two contexts in memory; the negotiated version, or raises."""
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    server_side = server.wrap_bio(s_in, s_out, server_side=True)
    client_side = client.wrap_bio(c_in, c_out)
    done = {"server": False, "client": False}
    for _ in range(20):
        for name, side, out, peer in (
            ("client", client_side, c_out, s_in),
            ("server", server_side, s_out, c_in),
        ):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
            if out.pending:
                peer.write(out.read())
        if all(done.values()):
            return client_side.version() or ""
    raise AssertionError("handshake did not finish")


# -- protocol versions and ciphers -----------------------------------------------------------


def legacy_client(version: ssl.TLSVersion, ciphers: str | None = None) -> ssl.SSLContext:
    """A client that offers only `version` (and these TLS 1.2 ciphers), any certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    ctx.set_ciphers(ciphers or "ALL:@SECLEVEL=0")
    return ctx


def test_tls_below_1_2_and_weak_ciphers_are_refused(tmp_path: Path) -> None:
    ca = Authority(tmp_path / "ca")
    server_cert = ca.server()
    # Control: a server that allows everything proves these clients really offer it here.
    lax = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    lax.minimum_version = ssl.TLSVersion.TLSv1
    lax.set_ciphers("ALL:@SECLEVEL=0")
    lax.load_cert_chain(server_cert.cert_path, server_cert.key_path)
    old = {
        "TLS 1.1": legacy_client(ssl.TLSVersion.TLSv1_1),
        "TLS 1.0": legacy_client(ssl.TLSVersion.TLSv1),
        "TLS 1.2 with CBC only": legacy_client(ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA"),
    }
    for name, ctx in old.items():
        try:
            bio_handshake(lax, ctx)
        except ssl.SSLError as exc:
            pytest.skip(f"this OpenSSL cannot speak {name} at all ({exc}): nothing to refuse")
    ours = tls.build_context(tls.TLSFiles(server_cert.cert_path, server_cert.key_path))
    assert ours.minimum_version == ssl.TLSVersion.TLSv1_2
    tls12 = [c["name"] for c in ours.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12, "no TLS 1.2 suite at all"
    for name in tls12:  # forward secrecy and AEAD only
        assert name.startswith("ECDHE-") and ("-GCM-" in name or "CHACHA20" in name), name

    with serving(server_settings(tmp_path, server_cert)) as (port, producer):
        for name, ctx in old.items():
            error = refused_handshake(port, ctx)  # AssertionError if it was accepted
            assert isinstance(error, OSError), name
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            conn = connect(port, client_context(ca, version=version))
            assert conn.sock is not None
            negotiated = conn.sock.version()
            cipher = conn.sock.cipher()
            assert post(conn)[0] == 200
            conn.close()
            assert negotiated == {"TLSv1_2": "TLSv1.2", "TLSv1_3": "TLSv1.3"}[version.name]
            assert cipher is not None and ("GCM" in cipher[0] or "CHACHA20" in cipher[0])
        assert len(producer.records) == 2


# -- mutual TLS ------------------------------------------------------------------------------


def test_mutual_tls_accepted_refused_expired_wrong_subject(tmp_path: Path) -> None:
    ca = Authority(tmp_path / "ca")
    stranger_ca = Authority(tmp_path / "stranger", "not-our-ca")
    config = mutual_tls(tmp_path, ca)
    right = ca.issue("right", PROVIDER_CN, expires_in=timedelta(minutes=5))
    wrong = ca.issue("wrong", "someone-else.example", expires_in=timedelta(minutes=5))
    expired = ca.issue(
        "expired", PROVIDER_CN, valid_from=timedelta(minutes=-10), expires_in=timedelta(minutes=-5)
    )
    foreign = stranger_ca.issue("foreign", PROVIDER_CN, expires_in=timedelta(minutes=5))

    with serving(config) as (port, producer):
        assert post(connect(port, client_context(ca, right))) == (
            200,
            {"status": "accepted", "records": 1},
        )
        status, answer = post(connect(port, client_context(ca, wrong)))
        assert (status, answer["error"]) == (403, "forbidden_client_certificate")
        assert "someone-else.example" in answer["detail"]
        status, answer = post(connect(port, client_context(ca)))  # no certificate at all
        assert (status, answer["error"]) == (403, "forbidden_client_certificate")
        # a route without subject patterns needs none: past the transport checks
        status, answer = post(connect(port, client_context(ca)), "/webhooks/twilio")
        assert answer["error"] == "no_credentials"
        # the handshake itself refuses an expired certificate (the same name as `right`)
        # and one of another CA
        refused_handshake(port, client_context(ca, expired))
        refused_handshake(port, client_context(ca, foreign))
        assert len(producer.records) == 1
        # the two refused handshakes are counted: started, never established
        scraped = metrics(port, ca)
        hello = scraped['dlr_tls_handshakes_total{stage="client_hello"}']
        assert hello - scraped['dlr_tls_handshakes_total{stage="established"}'] == 2


def test_short_lived_client_certificate_expires_on_a_kept_alive_connection(
    tmp_path: Path,
) -> None:
    ca = Authority(tmp_path / "ca")
    config = mutual_tls(tmp_path, ca)
    # valid for a few seconds from now (certificates of minutes work the same, slower)
    brief = ca.issue("brief", PROVIDER_CN, expires_in=timedelta(seconds=3))
    with serving(config) as (port, producer):
        conn = connect(port, client_context(ca, brief))
        assert post(conn)[0] == 200

        def refused() -> tuple[int, Any] | None:
            status, answer = post(conn)  # the same connection, kept alive
            return (status, answer) if status != 200 else None

        status, answer = poll("the certificate to expire", refused)
        assert (status, answer["error"]) == (403, "forbidden_client_certificate")
        assert "expired" in answer["detail"]
        conn.close()
        accepted = len(producer.records)
        # a new connection with it fails in the handshake; the rotated one is accepted
        refused_handshake(port, client_context(ca, brief))
        rotated = ca.issue("brief", PROVIDER_CN, expires_in=timedelta(minutes=5))
        assert post(connect(port, client_context(ca, rotated)))[0] == 200
        assert len(producer.records) == accepted + 1


def test_required_client_certificates_fail_the_handshake_without_one(tmp_path: Path) -> None:
    ca = Authority(tmp_path / "ca")
    config = server_settings(
        tmp_path, ca.server(), tls_client_ca=str(ca.path), tls_client_cert_required=True
    )
    with serving(config) as (port, _producer):
        refused_handshake(port, client_context(ca))
        assert post(connect(port, client_context(ca, ca.issue("any", "any.example"))))[0] == 200


# -- rotation --------------------------------------------------------------------------------


def metrics(port: int, ca: Authority) -> dict[str, float]:
    """One scrape of /metrics: sample (name with labels) -> value."""
    conn = connect(port, client_context(ca))
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    samples = (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return {name: float(value) for name, value in samples}


def metric(port: int, ca: Authority, name: str) -> float | None:
    return metrics(port, ca).get(name)


def test_rotated_certificate_and_ca_are_reloaded_without_dropping_in_flight_requests(
    tmp_path: Path,
) -> None:
    ca = Authority(tmp_path / "ca")
    old_clients = Authority(tmp_path / "clients-1", "client-ca-1")
    new_clients = Authority(tmp_path / "clients-2", "client-ca-2")
    bundle = tmp_path / "client-cas.pem"
    bundle.write_bytes(old_clients.path.read_bytes())
    first = ca.issue("server", "server-1", dns=("localhost",), ips=(HOST,), server=True)
    config = server_settings(tmp_path, first, tls_client_ca=str(bundle))  # files replaced below
    old_client = old_clients.issue("c1", "client-1")
    new_client = new_clients.issue("c2", "client-2")

    with serving(config) as (port, producer):
        assert served_cn(port, ca) == "server-1"
        kept = connect(port, client_context(ca, old_client))
        assert post(kept)[0] == 200
        # a request in flight: headers and half of the body sent, the app waiting for more
        raw, headers = webhook("in-flight")
        sock = client_context(ca, old_client).wrap_socket(
            socket.create_connection((HOST, port), timeout=10), server_hostname=HOST
        )
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(
            f"POST /webhooks/generic HTTP/1.1\r\nHost: {HOST}\r\n{head}"
            f"Content-Length: {len(raw)}\r\n\r\n".encode()
            + raw[:10]
        )
        poll(
            "the request to be in flight", lambda: metric(port, ca, "dlr_ingress_in_flight") or None
        )

        # rotate: a new server certificate, and the client CA bundle swapped
        rotated = ca.issue("server", "server-2", dns=("localhost",), ips=(HOST,), server=True)
        tmp = bundle.with_suffix(".tmp")
        tmp.write_bytes(new_clients.path.read_bytes())
        tmp.replace(bundle)
        poll("the new certificate", lambda: served_cn(port, ca) == "server-2" or None)
        assert metric(port, ca, "dlr_tls_certificate_expiry_timestamp_seconds") == (
            rotated.cert.not_valid_after_utc.timestamp()
        )

        # the request in flight completes on its old session
        sock.sendall(raw[10:])
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 200
        assert orjson.loads(response.read()) == {"status": "accepted", "records": 1}
        sock.close()
        # so does the connection kept alive from before
        assert post(kept)[0] == 200
        kept.close()
        # new connections: the removed CA's clients are refused, the new CA's accepted
        refused_handshake(port, client_context(ca, old_client))
        assert post(connect(port, client_context(ca, new_client)))[0] == 200
        assert [key for key, _ in producer.records].count(b"generic:in-flight") == 1
        assert len(producer.records) == 4

        # a rotation caught half-done (a key that does not match) keeps the old certificate
        failed_before = metric(port, ca, 'dlr_tls_reloads_total{outcome="failed"}') or 0
        stray = ca.issue("stray", "stray")
        first.key_path.write_bytes(stray.key_path.read_bytes())
        poll(
            "the failed reload to be counted",
            lambda: (
                (metric(port, ca, 'dlr_tls_reloads_total{outcome="failed"}') or 0) > failed_before
                or None
            ),
        )
        assert served_cn(port, ca) == "server-2"
        ca.issue("server", "server-3", dns=("localhost",), ips=(HOST,), server=True)
        poll("the repaired rotation", lambda: served_cn(port, ca) == "server-3" or None)
