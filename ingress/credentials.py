"""Active credentials per provider: from settings, a secrets file, or local dev secrets.

Production: only what `DLR_<PROVIDER>_*` variables and the optional `DLR_SECRETS_FILE`
(JSON `{provider: {"secrets": [...], "public_keys": [...], "basic": [[user, password]],
"options": {...}}}`) configure, merged; a provider without any
refuses every request (401, `no_credentials`). Local mode (`DLR_DEV_SECRETS=1`, set by
`dlr up`): each provider without configured credentials gets development credentials,
created once with the provider module's `dev_credentials()` and kept in
`<data>/dev-secrets.json` (mode 0600, never printed) so that `dlr demo` and a newcomer's
signed curl work out of the box.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ingress.providers import PROVIDERS, Credentials, vonage
from ingress.settings import IngressSettings
from schemas.settings import CommonSettings, split_list


def from_settings(settings: IngressSettings, provider: str) -> Credentials:
    """Credentials configured through the environment for one provider."""
    secrets = settings.provider_setting(provider, "secrets")
    public_keys = settings.provider_setting(provider, "public_keys")
    basic: list[tuple[str, str]] = []
    for pair in settings.provider_setting(provider, "credentials"):
        user, sep, password = pair.partition(":")
        if sep:
            basic.append((user, password))
    options: dict[str, str] = {}
    if provider == "vonage" and "vonage_signature_method" in settings.model_fields_set:
        # Only when named: otherwise a secrets file's choice applies, else the default.
        options["signature_method"] = settings.vonage_signature_method
    if provider == "sns" and settings.sns_topic_arns:
        options["topic_arns"] = ",".join(split_list(settings.sns_topic_arns))
        options["enabled"] = "true"
    return Credentials(
        secrets=secrets, public_keys=public_keys, basic=tuple(basic), options=options
    )


def from_file(path: Path) -> dict[str, Credentials]:
    """Credentials per provider from a JSON file (same shape as one dev-secrets entry)."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object keyed by provider")
    unknown = sorted(set(data) - set(PROVIDERS))
    if unknown:
        raise ValueError(f"{path}: unknown providers {unknown}")
    return {name: _from_json({"credentials": entry, "key": ""})[0] for name, entry in data.items()}


def _merge(a: Credentials, b: Credentials) -> Credentials:
    return Credentials(
        secrets=a.secrets + tuple(s for s in b.secrets if s not in a.secrets),
        public_keys=a.public_keys + tuple(k for k in b.public_keys if k not in a.public_keys),
        basic=a.basic + tuple(p for p in b.basic if p not in a.basic),
        options={**b.options, **a.options},
    )


def dev_secrets_path(settings: CommonSettings) -> Path:
    """Where local development credentials are kept."""
    return settings.data_dir / "dev-secrets.json"


def _to_json(creds: Credentials, key: str) -> dict[str, Any]:
    return {
        "credentials": {
            "secrets": list(creds.secrets),
            "public_keys": list(creds.public_keys),
            "basic": [list(pair) for pair in creds.basic],
            "options": dict(creds.options),
        },
        "key": key,
    }


def _from_json(data: dict[str, Any]) -> tuple[Credentials, str]:
    c = data["credentials"]
    creds = Credentials(
        secrets=tuple(c.get("secrets", ())),
        public_keys=tuple(c.get("public_keys", ())),
        basic=tuple((u, p) for u, p in c.get("basic", ())),
        options=dict(c.get("options", {})),
    )
    return creds, str(data["key"])


def update_dev_secrets(path: Path, add: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Read the development secrets file, let `add` fill what is missing (it returns
    whether it changed anything), write it back (mode 0600) and return it. A lock file
    keeps the services that `dlr up` starts together from overwriting each other's entry
    (the ingress its providers', the sender's API its key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = os.open(path.with_suffix(".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stored: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        if add(stored):
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                json.dump(stored, out, indent=1)
            tmp.replace(path)
        return stored
    finally:
        os.close(lock)  # releases the lock


def dev_secrets(settings: IngressSettings) -> dict[str, tuple[Credentials, str]]:
    """Load (creating what is missing) development credentials and signing keys."""

    def add(stored: dict[str, Any]) -> bool:
        missing = [name for name in PROVIDERS if name not in stored]
        for name in missing:
            stored[name] = _to_json(*PROVIDERS[name].dev_credentials())
        return bool(missing)

    stored = update_dev_secrets(dev_secrets_path(settings), add)
    return {name: _from_json(stored[name]) for name in PROVIDERS if name in stored}


def configured_credentials(settings: IngressSettings) -> dict[str, Credentials]:
    """What the variables and the secrets file configure (no development secrets)."""
    out = {name: from_settings(settings, name) for name in PROVIDERS}
    if settings.secrets_file is not None:
        for name, creds in from_file(settings.secrets_file).items():
            out[name] = _merge(out[name], creds)
    return out


def active_credentials(settings: IngressSettings) -> dict[str, Credentials]:
    """What each provider route verifies against."""
    out = configured_credentials(settings)
    if settings.dev_secrets:
        for name, (creds, _key) in dev_secrets(settings).items():
            if out[name].empty and not (name == "sns" and out[name].options.get("enabled")):
                out[name] = creds
    return out


def weaknesses(settings: IngressSettings, allow: Mapping[str, Sequence[object]]) -> dict[str, str]:
    """Why each configured provider's authentication is weak, by provider (the ingress logs
    one warning each at start): a signature method built on MD5, or a shared password
    (HTTP Basic) accepted without a source allow-list or a client certificate. Development
    secrets are not looked at: local mode configures every provider itself."""
    out: dict[str, str] = {}
    for name, creds in configured_credentials(settings).items():
        reasons = []
        if name == "vonage" and creds.secrets:
            method = creds.options.get("signature_method") or vonage.DEFAULT_METHOD
            if method in vonage.WEAK_METHODS:
                reasons.append(
                    f"signature method {method} is built on MD5; Vonage also signs with "
                    "sha256 (DLR_VONAGE_SIGNATURE_METHOD=sha256 and the same in Vonage's "
                    "dashboard)"
                )
        if creds.basic and not allow.get(name) and not settings.client_cert_subjects(name):
            upper = name.upper()
            reasons.append(
                "a shared password (HTTP Basic) is accepted with neither a signature nor "
                f"DLR_{upper}_ALLOW_IPS nor DLR_{upper}_CLIENT_CERT_SUBJECTS"
            )
        if reasons:
            out[name] = "; ".join(reasons)
    return out
