"""The keys the tools sign with: the local development secrets (`dlr up` makes them)."""

from __future__ import annotations

import json

from deploy.settings import Settings


def signing_keys(settings: Settings, providers: list[str]) -> dict[str, str]:
    """The key each provider signs with: DLR_GENERIC_SECRETS for generic, else the local
    development secrets `dlr up` created (the other providers' configured credentials
    only verify, they cannot sign)."""
    from deploy.settings import split_list
    from ingress.credentials import dev_secrets_path

    keys: dict[str, str] = {}
    configured = split_list(settings.generic_secrets)
    if configured:
        keys["generic"] = configured[0]
    missing = [p for p in providers if p not in keys]
    if not missing:
        return keys
    path = dev_secrets_path(settings)
    if not path.exists():
        raise SystemExit(
            f"no signing key for {', '.join(missing)}: run `make run` (development secrets) "
            "first" + (" or set DLR_GENERIC_SECRETS" if missing == ["generic"] else "")
        )
    stored = json.loads(path.read_text())
    for provider in missing:
        if provider not in stored:
            raise SystemExit(f"{path} has no {provider} key: restart `dlr up` to create it")
        keys[provider] = str(stored[provider]["key"])
    return keys
