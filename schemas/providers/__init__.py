"""Provider mapping tables by slug: what each provider's statuses and error codes mean."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from deploy.settings import PROVIDERS as NAMES
from schemas.normalized import Normalized

__all__ = ["MAPPERS", "Mapper"]

#: `to_canonical(payload) -> Normalized` of one provider.
Mapper = Callable[[Mapping[str, Any]], Normalized]


def _load_all() -> dict[str, Mapper]:
    out: dict[str, Mapper] = {}
    for name in NAMES:
        try:
            module = importlib.import_module(f"schemas.providers.{name}")
        except ModuleNotFoundError as exc:  # a provider module not written yet
            if exc.name != f"schemas.providers.{name}":
                raise
            continue
        out[name] = module.to_canonical
    return out


#: Every known provider's mapper, keyed by slug.
MAPPERS: dict[str, Mapper] = _load_all()
