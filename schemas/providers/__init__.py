"""The provider registry: every provider's slug, and its mapping table by slug.

`PROVIDERS` is the one list of providers: the ingress loads `ingress/providers/<slug>.py`
for each of them and the worker maps with `schemas/providers/<slug>.py`. Adding a
provider means adding its slug here and writing both modules; a slug without its module
is an import error, never a provider that silently disappears.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from schemas.normalized import Normalized
from schemas.providers import (
    bandwidth,
    bird,
    generic,
    infobip,
    plivo,
    sinch,
    sns,
    standard,
    telnyx,
    twilio,
    vonage,
)

__all__ = ["MAPPERS", "PROVIDERS", "Mapper"]

#: `to_canonical(payload) -> Normalized` of one provider.
Mapper = Callable[[Mapping[str, Any]], Normalized]

#: Every provider's mapper, keyed by the slug of its route (`/webhooks/<slug>`).
MAPPERS: dict[str, Mapper] = {
    "generic": generic.to_canonical,
    "twilio": twilio.to_canonical,
    "vonage": vonage.to_canonical,
    "plivo": plivo.to_canonical,
    "telnyx": telnyx.to_canonical,
    "sinch": sinch.to_canonical,
    "infobip": infobip.to_canonical,
    "bird": bird.to_canonical,
    "bandwidth": bandwidth.to_canonical,
    "sns": sns.to_canonical,
    "standard": standard.to_canonical,
}

#: Every provider's slug, in the order the docs list them.
PROVIDERS: tuple[str, ...] = tuple(MAPPERS)
