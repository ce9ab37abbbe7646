"""Provider adapters by slug: how each provider's webhook arrives (verify, extract, sign).

Each `ingress/providers/<name>.py` module is a `Provider` (see `_contract.py`); the list
of slugs is `schemas.providers.PROVIDERS`, and a slug whose module is missing fails here
at import.
"""

from __future__ import annotations

import importlib
from typing import cast

from ingress.providers._contract import (
    Credentials,
    Inbound,
    InboundRequest,
    Provider,
    Record,
    Verified,
    VerifyContext,
    value_type,
)
from schemas.providers import PROVIDERS as NAMES

__all__ = [
    "PROVIDERS",
    "Credentials",
    "Inbound",
    "InboundRequest",
    "Provider",
    "Record",
    "Verified",
    "VerifyContext",
    "load",
    "value_type",
]


def load(name: str) -> Provider:
    """Import one provider module by slug (a known slug without a module raises)."""
    if name not in NAMES:
        raise KeyError(name)
    return cast(Provider, importlib.import_module(f"ingress.providers.{name}"))


#: Every known provider, keyed by URL slug.
PROVIDERS: dict[str, Provider] = {name: load(name) for name in NAMES}
