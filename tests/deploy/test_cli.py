"""`dlr` serving TLS: what the command line makes of DLR_TLS_* and --tls-cert/--tls-key,
and `dlr api` as a real process serving HTTPS from the environment alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy import cli
from deploy.local.ports import free_port
from deploy.settings import Settings
from tests.certs import HOST, Authority, self_signed
from tests.processes import clean_env, dlr, first_answer, tail


def test_services_are_probed_over_https_when_they_serve_it(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    plain = Settings(data_dir=tmp_path)
    secure = Settings(data_dir=tmp_path, tls_cert=cert, tls_key=key)
    by_name = {service.name: service for service in cli.SERVICES}
    for name in ("ingress", "api"):
        assert by_name[name].ready_url(plain).startswith("http://")
        assert by_name[name].ready_url(secure).startswith("https://")
        assert by_name[name].summary(secure).startswith("https://")


def test_flags_win_over_the_environment(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, tls_cert=tmp_path / "env.crt")
    flagged = cli._with_tls(settings, "flag.crt", "flag.key")
    assert (flagged.tls_cert, flagged.tls_key) == (Path("flag.crt"), Path("flag.key"))
    assert cli._with_tls(settings, None, None) is settings
    with pytest.raises(SystemExit):
        cli._with_tls(settings, None, "lonely.key")


@pytest.mark.parametrize(
    "case",
    [
        "missing file",
        "key of another certificate",
        "client CAs without a certificate",
        "no CA in the bundle",
        "required without CAs",
    ],
)
def test_settings_that_cannot_serve_stop_the_command_with_a_reason(
    tmp_path: Path, case: str
) -> None:
    ca = Authority(tmp_path / "ca")
    server = ca.server()
    other = ca.issue("other", "other")
    files: dict[str, Any] = {"tls_cert": server.cert_path, "tls_key": server.key_path}
    settings = {
        "missing file": Settings(tls_cert=tmp_path / "nope.crt"),
        "key of another certificate": Settings(tls_cert=server.cert_path, tls_key=other.key_path),
        "client CAs without a certificate": Settings(tls_client_ca=str(ca.path)),
        "no CA in the bundle": Settings(**files, tls_client_ca=str(other.key_path)),
        "required without CAs": Settings(**files, tls_client_cert_required=True),
    }[case]
    with pytest.raises(SystemExit, match="TLS settings do not serve"):
        cli._serving("ingress", settings, HOST, 1)


def test_settings_that_serve(tmp_path: Path) -> None:
    ca = Authority(tmp_path / "ca")
    server = ca.server()
    good = Settings(tls_cert=server.cert_path, tls_key=server.key_path, tls_client_ca=str(ca.path))
    assert set(cli._serving("ingress", good, HOST, 1)) == {"ssl_context_factory", "http"}
    assert cli._serving("ingress", Settings(), HOST, 1) == {}


def test_dlr_api_serves_https_from_the_environment(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    env = {
        "DLR_TLS_CERT": str(cert),
        "DLR_TLS_KEY": str(key),
        "DLR_API_PORT": str(port),
        "DLR_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",  # none: the API still serves
        "DLR_DATA_DIR": str(tmp_path / "data"),
        "DLR_LOG_LEVEL": "WARNING",
    }
    log = tmp_path / "api.log"
    with dlr(["api"], clean_env(env), log) as proc:
        with httpx.Client(base_url=f"https://{HOST}:{port}", verify=str(cert), timeout=5) as c:
            assert first_answer(c, "/healthz", proc, log).status_code == 200
            refused = c.post("/v1/messages", json={})
            assert refused.status_code == 401  # over HTTPS: past the transport, no key
            assert refused.headers["strict-transport-security"] == "max-age=31536000"
        with pytest.raises(httpx.TransportError):  # no plain HTTP on that port
            httpx.get(f"http://{HOST}:{port}/healthz", timeout=5)
    assert "Traceback" not in tail(log)
