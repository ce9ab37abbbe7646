"""Provider adapters by slug: how each provider's webhook arrives (verify, extract, sign).

Each `ingress/providers/<name>.py` module is a `Provider` (see `_contract.py`).
"""

from __future__ import annotations

import importlib
from typing import cast

from deploy.settings import PROVIDERS as NAMES
from ingress.providers._contract import (
    Credentials,
    InboundRequest,
    Provider,
    Record,
    Verified,
    VerifyContext,
)

__all__ = [
    "PROVIDERS",
    "Credentials",
    "InboundRequest",
    "Provider",
    "Record",
    "Verified",
    "VerifyContext",
    "load",
]


def load(name: str) -> Provider:
    """Import one provider module by slug."""
    if name not in NAMES:
        raise KeyError(name)
    return cast(Provider, importlib.import_module(f"ingress.providers.{name}"))


def _load_all() -> dict[str, Provider]:
    out: dict[str, Provider] = {}
    for name in NAMES:
        try:
            out[name] = load(name)
        except ModuleNotFoundError as exc:  # a provider module not written yet
            if exc.name != f"ingress.providers.{name}":
                raise
    return out


#: Every known provider, keyed by URL slug.
PROVIDERS: dict[str, Provider] = _load_all()
