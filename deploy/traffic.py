"""The traffic model of `dlr demo --providers all`: who is sent what, and what comes back.

Data, so it can grow (more countries, carriers, incidents, prices) without new code:
- `CARRIERS`: per carrier its country, the name its MCC/MNC has in the MCC/MNC table
  (streams/data/mcc_mnc.json), that MCC/MNC, the name providers that state the operator
  use for it, the number ranges it holds (prefixes from libphonenumber's carrier data:
  real ranges, so the number-range evidence names it), its time to deliver (log-normal:
  median and sigma) and whether it ever reports delivery (a carrier without handset
  receipts leaves messages at `sent`);
- `COUNTRIES`: per country the weight of its traffic, its failure mix and the list price
  of one segment (USD);
- `PROVIDERS`: per provider where it sends, what network data its callbacks carry
  (`provider`: it names the operator; `mcc_mnc`: it sends the network code; `none`), its
  price (a factor on the country's list price, in its own currency) and where it delivers
  better or worse than the country's mix (`delivery`: the delivered share there);
- `CONTENT_FILTERING`: (campaign, carrier) -> the share of that campaign's messages the
  carrier filters or blocks for their content (one template filtered on one network).

Each message has 1 to 3 segments and costs the provider's price per segment to its
country times its segments; whether a receipt states the price, its currency and the
segments is up to the provider's wire format (deploy/wire.py).

`expected()` says what the pipeline must derive for a message (carrier, its evidence,
country, M49 region): from the table and libphonenumber directly, never from the
worker's enrichment code, so the demo checks that code rather than repeating it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import phonenumbers
from phonenumbers import carrier as number_ranges

from schemas.geo import region_of

Evidence = Literal["provider", "mcc_mnc", "none"]
#: What a message ends as on the carrier's side (the provider's wording comes from wire.py).
#: `filtered`: the carrier filters the message (spam, sender rules); `blocked`: it refuses
#: the content (providers without a code of their own for it report it as filtered).
Outcome = Literal["delivered", "unreachable", "filtered", "blocked", "expired"]
OUTCOMES: tuple[Outcome, ...] = ("delivered", "unreachable", "filtered", "blocked", "expired")


@dataclass(frozen=True)
class Carrier:
    """One mobile network as the simulator sends to it."""

    country: str
    #: The network's name in the MCC/MNC table (what `mcc_mnc` evidence gives).
    network: str
    mcc: str
    mnc: str
    #: How providers that name the operator spell it (Telnyx, AWS, Sinch).
    stated: str
    #: E.164 prefixes (digits) of ranges it holds, from libphonenumber's carrier data.
    ranges: tuple[str, ...]
    #: E.164 digits of its numbers.
    digits: int
    ttd_median_s: float
    ttd_sigma: float = 0.6
    reports_delivered: bool = True
    weight: float = 1.0


@dataclass(frozen=True)
class Country:
    """Traffic share, failure mix and segment list price of a destination country."""

    weight: float
    #: Outcome -> weight (need not sum to 1).
    outcomes: Mapping[Outcome, float]
    #: List price of one segment, USD.
    price: float = 0.01


@dataclass(frozen=True)
class Provider:
    """Where a provider sends, which network data its callbacks carry, what it charges."""

    evidence: Evidence
    #: ISO countries it sends to (a sender routes each destination through a few); empty =
    #: everywhere.
    countries: frozenset[str] = frozenset()
    weight: float = 1.0
    #: Its price per segment: this factor times the country's list price ...
    price_factor: float = 1.0
    #: ... in this currency (what it bills in, whether or not its receipts say so).
    currency: str = "USD"
    #: ISO country -> its delivered share there, where it differs from the country's mix.
    delivery: Mapping[str, float] = field(default_factory=dict)


CARRIERS: Mapping[str, Carrier] = {
    # North America: +1 has no range holders in libphonenumber, only area codes.
    "us-tmobile": Carrier("US", "T-Mobile", "310", "260", "T-MOBILE USA, INC.",
                          ("1206", "1425", "1253"), 11, 2.5),
    "us-verizon": Carrier("US", "Verizon", "311", "480", "Verizon Wireless",
                          ("1212", "1646", "1917"), 11, 3.5),
    "us-att": Carrier("US", "AT&T", "310", "410", "AT&T Mobility", ("1415", "1510", "1650"),
                      11, 6.0, ttd_sigma=0.9),
    # Europe
    "gb-ee": Carrier("GB", "EE", "234", "30", "EE Limited", ("44794", "44795", "44798"), 12, 2.0),
    "gb-vodafone": Carrier("GB", "Vodafone UK", "234", "15", "Vodafone Limited",
                           ("44776", "44777", "44778"), 12, 3.0),
    "gb-o2": Carrier("GB", "O2 (UK)", "234", "10", "Telefonica UK", ("44751", "44754", "44756"),
                     12, 9.0, ttd_sigma=1.0),
    "de-telekom": Carrier("DE", "Telekom", "262", "01", "Telekom Deutschland",
                          ("49151", "49160", "49170"), 13, 1.5),
    "de-vodafone": Carrier("DE", "Vodafone", "262", "02", "Vodafone GmbH",
                           ("49162", "49172", "49173"), 13, 2.5),
    "de-o2": Carrier("DE", "O2", "262", "03", "Telefonica Germany", ("49176", "49179"), 13, 4.0),
    # South America
    "br-vivo": Carrier("BR", "Vivo", "724", "06", "VIVO", ("5511971", "5511972", "5511973"),
                       13, 5.0),
    "br-claro": Carrier("BR", "Claro", "724", "05", "CLARO BR", ("5511988", "5511989"), 13, 8.0,
                        ttd_sigma=1.1),
    "br-tim": Carrier("BR", "TIM", "724", "02", "TIM BRASIL", ("5511981", "5511982"), 13, 6.0),
    # Asia: Jio sends no handset receipts (messages stay at sent).
    "in-airtel": Carrier("IN", "Airtel", "404", "45", "Bharti Airtel", ("91900", "91989"), 12,
                         12.0, ttd_sigma=1.2),
    "in-jio": Carrier("IN", "Jio", "405", "857", "Reliance Jio", ("91600", "91620", "91630"), 12,
                      10.0, reports_delivered=False),
    # Africa
    "ng-mtn": Carrier("NG", "MTN", "621", "30", "MTN Nigeria", ("234803", "234806", "234703"),
                      13, 15.0, ttd_sigma=1.2),
    "ng-airtel": Carrier("NG", "Airtel", "621", "20", "Airtel Nigeria", ("234802", "234808"), 13,
                         20.0, ttd_sigma=1.3),
    "ng-glo": Carrier("NG", "Glo", "621", "50", "Globacom", ("234805", "234807"), 13, 25.0,
                      ttd_sigma=1.3),
    "za-vodacom": Carrier("ZA", "Vodacom", "655", "01", "Vodacom", ("2782", "2772", "2776"), 11,
                          4.0),
    "za-mtn": Carrier("ZA", "MTN", "655", "10", "MTN South Africa", ("2783", "2773", "2778"), 11,
                      6.0),
    # Oceania
    "au-telstra": Carrier("AU", "Telstra", "505", "01", "Telstra", ("61400", "61407", "61417"),
                          11, 2.0),
    "au-optus": Carrier("AU", "Optus", "505", "02", "Optus Mobile", ("61401", "61411", "61421"),
                        11, 3.0),
}  # fmt: skip

COUNTRIES: Mapping[str, Country] = {
    "US": Country(4.0, {"delivered": 0.93, "unreachable": 0.02, "filtered": 0.04, "expired": 0.01},
                  price=0.0079),
    "GB": Country(2.0, {"delivered": 0.95, "unreachable": 0.03, "filtered": 0.01, "expired": 0.01},
                  price=0.0400),
    "DE": Country(1.5, {"delivered": 0.96, "unreachable": 0.02, "filtered": 0.01, "expired": 0.01},
                  price=0.0780),
    "BR": Country(1.5, {"delivered": 0.85, "unreachable": 0.08, "filtered": 0.02, "expired": 0.05},
                  price=0.0450),
    "IN": Country(2.0, {"delivered": 0.80, "unreachable": 0.05, "filtered": 0.12, "expired": 0.03},
                  price=0.0035),
    "NG": Country(1.0, {"delivered": 0.72, "unreachable": 0.15, "filtered": 0.03, "expired": 0.10},
                  price=0.1200),
    "ZA": Country(0.8, {"delivered": 0.88, "unreachable": 0.07, "filtered": 0.02, "expired": 0.03},
                  price=0.0220),
    "AU": Country(0.8, {"delivered": 0.97, "unreachable": 0.01, "filtered": 0.01, "expired": 0.01},
                  price=0.0550),
}  # fmt: skip

PROVIDERS: Mapping[str, Provider] = {
    "twilio": Provider("none", weight=2.0, delivery={"US": 0.99, "IN": 0.55, "NG": 0.55}),
    "vonage": Provider("mcc_mnc", frozenset({"GB", "DE", "BR", "IN", "NG", "ZA", "AU"}),
                       weight=1.5, price_factor=0.9, currency="EUR",
                       delivery={"GB": 0.99, "NG": 0.40}),
    "plivo": Provider("mcc_mnc", frozenset({"US", "BR", "IN"}), price_factor=0.85,
                      delivery={"IN": 0.95, "BR": 0.60}),
    "telnyx": Provider("provider", frozenset({"US", "GB", "DE", "AU"}), price_factor=0.7),
    "sinch": Provider("provider", frozenset({"GB", "DE", "BR", "ZA"}), price_factor=0.95,
                      currency="EUR", delivery={"BR": 0.97}),
    "infobip": Provider("mcc_mnc", frozenset({"DE", "BR", "IN", "NG", "ZA"}), weight=1.5,
                        price_factor=0.92, currency="EUR", delivery={"NG": 0.98, "IN": 0.93}),
    "bird": Provider("none", frozenset({"GB", "DE", "AU"}), price_factor=0.88, currency="EUR"),
    "bandwidth": Provider("none", frozenset({"US"}), price_factor=0.55),
    "sns": Provider("provider", frozenset({"US", "IN", "AU"}), price_factor=0.8,
                    delivery={"US": 0.70}),
    "standard": Provider("mcc_mnc", frozenset({"GB", "DE"}), weight=0.5, price_factor=0.8,
                         currency="GBP"),
    "generic": Provider("none", frozenset({"US", "GB", "AU"}), weight=0.5),
}  # fmt: skip

#: (campaign, carrier) -> (outcome, share of the campaign's messages to the carrier).
CONTENT_FILTERING: Mapping[tuple[str, str], tuple[Outcome, float]] = {
    ("promo-spring", "us-att"): ("filtered", 0.6),
    ("promo-spring", "in-airtel"): ("blocked", 0.5),
}
#: Segments of a message -> weight.
SEGMENTS: Mapping[int, float] = {1: 0.8, 2: 0.15, 3: 0.05}


@dataclass(frozen=True)
class Message:
    """One simulated message: where it went, through whom, and what happened."""

    index: int
    provider: str
    carrier: str
    number: str
    campaign: str
    outcome: Outcome
    sent_at: float
    #: When the final report comes (None: no final report, the message stays at sent).
    final_at: float | None
    segments: int = 1
    #: What the provider charges for the message, in `currency`.
    price: float = 0.0
    currency: str = "USD"

    @property
    def spec(self) -> Carrier:
        return CARRIERS[self.carrier]


@dataclass(frozen=True)
class Expected:
    """What the pipeline must derive for a message."""

    carrier: str | None
    carrier_source: str
    country: str
    region: str | None


def expected(message: Message) -> Expected:
    """Carrier by the provider's evidence, else the number's range holder (libphonenumber)."""
    spec = message.spec
    evidence = PROVIDERS[message.provider].evidence
    region = region_of(spec.country)
    if evidence == "provider":
        return Expected(spec.stated, "provider", spec.country, region)
    if evidence == "mcc_mnc":
        return Expected(spec.network, "mcc_mnc", spec.country, region)
    holder = number_ranges.name_for_number(phonenumbers.parse(message.number), "en")
    if holder:
        return Expected(holder, "number_range", spec.country, region)
    return Expected(None, "none", spec.country, region)


def _pick(rng: random.Random, weights: Mapping[str, float]) -> str:
    names = list(weights)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


def draw_number(rng: random.Random, spec: Carrier) -> str:
    """A valid number (libphonenumber) of the carrier's country in one of its ranges (a
    range may hold smaller ones elsewhere: +44 7781 is Guernsey's)."""
    for _ in range(1000):
        prefix = rng.choice(spec.ranges)
        rest = spec.digits - len(prefix)
        first = rng.randrange(2, 10) if prefix.startswith("1") and len(prefix) == 4 else None
        tail = f"{rng.randrange(10**rest):0{rest}d}"
        if first is not None:
            tail = str(first) + tail[1:]
        number = f"+{prefix}{tail}"
        parsed = phonenumbers.parse(number)
        if phonenumbers.region_code_for_number(parsed) == spec.country:
            return number
    raise ValueError(f"no valid number in {spec.ranges}")


def ttd(rng: random.Random, spec: Carrier) -> float:
    """Time to deliver: log-normal around the carrier's median, capped at 4 minutes."""
    return min(240.0, spec.ttd_median_s * math.exp(spec.ttd_sigma * rng.gauss(0.0, 1.0)))


_FAILURE_DELAY_S: Mapping[Outcome, float] = {
    "unreachable": 20.0,
    "filtered": 2.0,
    "blocked": 1.0,
    "expired": 200.0,
}


def outcome_weights(provider: str, country: str) -> dict[Outcome, float]:
    """The outcome mix of a provider's messages to a country: the country's, with the
    provider's delivered share there when it has one (failures keep their proportions)."""
    mix = {o: COUNTRIES[country].outcomes.get(o, 0.0) for o in OUTCOMES}
    delivered = PROVIDERS[provider].delivery.get(country)
    if delivered is None:
        return mix
    failures = sum(w for o, w in mix.items() if o != "delivered")
    return {
        o: delivered if o == "delivered" else (1 - delivered) * w / failures for o, w in mix.items()
    }


def price(provider: str, country: str, segments: int) -> float:
    """What the provider charges for a message of `segments` to `country` (its currency)."""
    per_segment = round(COUNTRIES[country].price * PROVIDERS[provider].price_factor, 5)
    return round(per_segment * segments, 5)


def messages(n: int, rng: random.Random, start: float, campaigns: list[str]) -> list[Message]:
    """n messages sent within 300 s from `start`, drawn from the tables."""
    countries = {iso: c.weight for iso, c in COUNTRIES.items()}
    out: list[Message] = []
    for i in range(n):
        iso = _pick(rng, countries)
        carriers = {k: c.weight for k, c in CARRIERS.items() if c.country == iso}
        carrier = _pick(rng, carriers)
        spec = CARRIERS[carrier]
        providers = {
            name: p.weight for name, p in PROVIDERS.items() if not p.countries or iso in p.countries
        }
        provider = _pick(rng, providers)
        campaign = rng.choice(campaigns)
        filtering = CONTENT_FILTERING.get((campaign, carrier))
        outcome: Outcome
        if filtering is not None and rng.random() < filtering[1]:
            outcome = filtering[0]
        else:
            mix = outcome_weights(provider, iso)
            outcome = rng.choices(OUTCOMES, weights=[mix[o] for o in OUTCOMES])[0]
        segments = rng.choices(list(SEGMENTS), weights=list(SEGMENTS.values()))[0]
        sent_at = start + rng.random() * 300
        final_at: float | None
        if outcome == "delivered":
            final_at = sent_at + ttd(rng, spec) if spec.reports_delivered else None
        else:
            final_at = sent_at + _FAILURE_DELAY_S[outcome] * (0.5 + rng.random())
        out.append(
            Message(
                index=i,
                provider=provider,
                carrier=carrier,
                number=draw_number(rng, spec),
                campaign=campaign,
                outcome=outcome,
                sent_at=sent_at,
                final_at=final_at,
                segments=segments,
                price=price(provider, iso, segments),
                currency=PROVIDERS[provider].currency,
            )
        )
    return out
