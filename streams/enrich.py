"""Who and where a message went: country, region, area, line type and carrier, with evidence.

Pure (no I/O after the data is loaded) and the one place the worker derives these fields;
`streams/transforms.py` calls `enrich()` for every report, before any hashing of the number.

Country (ISO 3166-1 alpha-2), in this order of evidence:
1. the country the provider states (AWS `isoCountryCode`);
2. the country of the MCC the provider states (the recipient's home network); an MCC that
   serves several territories (340: the French Antilles) takes the number's country when it
   is one of them, else the MCC's main country;
3. the number itself, parsed with `phonenumbers` (Google's libphonenumber data): the region
   of a valid number; for a number in no assigned range, the main region of its calling
   code (+44 7700 900xxx, a range reserved for drama, is still GB). Non-geographic codes
   (+800, +881 ...) and numbers that do not parse name no country. Ascension (AC) and
   Tristan da Cunha (TA), which libphonenumber keeps apart, are SH, their ISO country.

Region: the UN M49 sub-region of the country (`schemas.geo`).
Area: libphonenumber's geocoder below the country, where it has one (a US number gives
"San Francisco, CA", a UK landline "Manchester"); None for mobile ranges that name only the
country.
Line type: libphonenumber's type of the number: mobile, fixed, fixed_or_mobile (the +1
plan and a few others do not distinguish), voip, toll_free, premium_rate, shared_cost,
other (pager, personal, UAN, voicemail), unknown (not a valid number).

Carrier, with `carrier_source`:
- `provider`: the operator the provider names (Telnyx `carrier`, AWS `carrierName`, Sinch
  `operator`), as the provider spells it;
- `mcc_mnc`: else the network the provider's MCC+MNC names (Vonage `network-code`, Plivo
  `MCC`/`MNC`, Infobip `mccMnc`, Bird `mccmnc`, AWS `mcc`/`mnc`), from `data/mcc_mnc.json`
  (brand, else operator; see `data/build_mcc_mnc.py`);
- `number_range`: else the operator that was assigned the number's range, exactly as
  libphonenumber names it. Numbers are ported between operators, so this is the original
  range holder, not necessarily the network that carried the message;
- `none`: nothing says.

Speed (`python -m bench.enrich`): region and type are regular-expression tests that cost a
few times a `phonenumbers.parse`, so what the number alone says is cached per number range:
numbers that share every digit but the last three (two for numbers of 8 to 10 digits;
short numbers are cached whole) share one entry, and per number (a message's reports
repeat it). The range key is lengthened wherever libphonenumber's carrier or area data has
a longer prefix under it, so carrier and area are exact by construction; country and line
type are checked against uncached lookups over every region's example numbers. An uncached
lookup builds the number object from the digits instead of parsing text and reads area
names from libphonenumber's data (`phonenumbers.geodata`, `phonenumbers.carrierdata`:
prefix -> language -> name) instead of calling the geocoder, which would search the
region again; tests/streams/test_enrich.py holds both to libphonenumber's public API
(`parse`, `geocoder`, `carrier`) over every region's example numbers, so a data-layout
change in an upgrade fails there.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Final, get_args

import phonenumbers
from phonenumbers import PhoneNumberType, geocoder
from phonenumbers import carrier as ranges
from phonenumbers.carrierdata import CARRIER_DATA

from schemas.events import CarrierSource, LineType
from schemas.geo import iso_country, region_of

CARRIER_SOURCES: Final[tuple[CarrierSource, ...]] = get_args(CarrierSource)
#: Evidence rank: a report never replaces a carrier found on stronger evidence.
RANK: Final[Mapping[str, int]] = {
    s: len(CARRIER_SOURCES) - i for i, s in enumerate(CARRIER_SOURCES)
}
LINE_TYPES: Final[tuple[LineType, ...]] = get_args(LineType)

_LINE_TYPE: Mapping[int, LineType] = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "fixed",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_or_mobile",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.PERSONAL_NUMBER: "other",
    PhoneNumberType.PAGER: "other",
    PhoneNumberType.UAN: "other",
    PhoneNumberType.VOICEMAIL: "other",
}
#: Types whose ranges are assigned to an operator (libphonenumber's carrier data).
_CARRIER_TYPES = frozenset(
    {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE, PhoneNumberType.PAGER}
)
#: Types with a place (libphonenumber geocodes fixed and mobile numbers only).
_AREA_TYPES = frozenset(
    {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
)
_LANG = "en"
#: Entries of the number-range cache (about 200 bytes each).
CACHE_SIZE = 100_000


@dataclass(frozen=True, slots=True)
class NumberFacts:
    """What the recipient number alone says."""

    country: str | None
    area: str | None
    line_type: LineType
    range_holder: str | None


@dataclass(frozen=True, slots=True)
class Enrichment:
    """The fields a canonical event gets from the recipient and the provider's network data."""

    country: str | None
    region: str | None
    area: str | None
    line_type: LineType
    carrier: str | None
    carrier_source: CarrierSource


NO_FACTS = NumberFacts(None, None, "unknown", None)


# -- MCC / MNC ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Network:
    """One MCC+MNC row: the territories it serves (main one first) and its name."""

    countries: tuple[str, ...]
    name: str


@dataclass(frozen=True, slots=True)
class NetworkTable:
    """`data/mcc_mnc.json`, indexed: MCC+MNC -> networks, MCC -> its countries."""

    networks: Mapping[str, tuple[Network, ...]]
    #: MCC -> (main country, every country of its networks)
    mccs: Mapping[str, tuple[str, frozenset[str]]]

    def country(self, mcc: str | None, number_country: str | None) -> str | None:
        """Country of an MCC; a shared MCC takes the number's country when it serves it."""
        if not mcc or len(mcc) < 3:
            return None
        found = self.mccs.get(mcc[:3])
        if found is None:
            return None
        main, every = found
        return number_country if number_country in every else main

    def name(self, mcc: str | None, mnc: str | None, country: str | None) -> str | None:
        """The network's name, preferring the row of `country` when the code has several."""
        rows = self._rows(mcc, mnc)
        if not rows:
            return None
        for row in rows:
            if country in row.countries:
                return row.name
        return rows[0].name

    def _rows(self, mcc: str | None, mnc: str | None) -> tuple[Network, ...]:
        if not mcc or not mnc or not (mcc.isdigit() and mnc.isdigit()) or len(mcc) != 3:
            return ()
        candidates = [mnc]
        if len(mnc) == 1:
            candidates.append(mnc.zfill(2))
        elif len(mnc) == 3 and mnc[0] == "0":
            candidates.append(mnc[1:])  # a two-digit MNC sent zero-padded
        for code in candidates:
            rows = self.networks.get(mcc + code)
            if rows:
                return rows
        return ()


def parse_network_table(document: Mapping[str, object]) -> NetworkTable:
    """Index the generated file's `networks` object."""
    raw = document["networks"]
    if not isinstance(raw, Mapping):
        raise ValueError("mcc_mnc.json: 'networks' is not an object")
    networks: dict[str, tuple[Network, ...]] = {}
    served: dict[str, Counter[tuple[str, int]]] = {}
    for key, rows in raw.items():
        parsed = tuple(
            Network(tuple(str(countries).split()), str(name)) for countries, name in rows
        )
        networks[key] = parsed
        for row in parsed:
            counts = served.setdefault(key[:3], Counter())
            counts.update((country, int(i == 0)) for i, country in enumerate(row.countries))
    # The main country of an MCC: the one most of its networks serve, ties going to the
    # one listed first most often (505: AU, not CC or CX).
    mccs: dict[str, tuple[str, frozenset[str]]] = {}
    for mcc, counts in served.items():
        total: Counter[str] = Counter()
        first: Counter[str] = Counter()
        for (country, is_first), n in counts.items():
            total[country] += n
            first[country] += n if is_first else 0
        if total:
            main = max(total, key=lambda c: (total[c], first[c]))
            mccs[mcc] = (main, frozenset(total))
    return NetworkTable(networks, mccs)


@cache
def network_table() -> NetworkTable:
    """The committed table (loaded once per process)."""
    text = (resources.files("streams.data") / "mcc_mnc.json").read_text(encoding="utf-8")
    return parse_network_table(json.loads(text))


# -- the number ---------------------------------------------------------------------------


def _digits(number: str) -> str:
    """The E.164 digits of an international number, '' when it is not one.

    '+44 7700 900123', '447700900123' and '00447700900123' are the same number (providers
    differ on the '+'); a national form ('07700 900123') has no country code: ''.
    """
    digits = number[1:] if number[:1] == "+" else number
    if not digits.isdigit() or not digits.isascii():
        digits = "".join(c for c in number if "0" <= c <= "9")
    if digits.startswith("00"):
        digits = digits[2:]
    if not 5 <= len(digits) <= 15 or digits[0] == "0":
        return ""
    return digits


@cache
def _geodata() -> tuple[Mapping[str, Mapping[str, str]], int]:
    """libphonenumber's area names (prefix -> language -> name) and its longest prefix.

    Imported on first use: about 100 MB and a second to load (`warm()` does it at start).
    """
    from phonenumbers.geodata import GEOCODE_DATA, GEOCODE_LONGEST_PREFIX

    return GEOCODE_DATA, GEOCODE_LONGEST_PREFIX


@cache
def _longer_prefixes() -> Mapping[str, int]:
    """Prefix -> length of the longest carrier or area data prefix that extends it."""
    deepest: dict[str, int] = {}
    for data in (CARRIER_DATA, _geodata()[0]):
        for prefix in data:
            size = len(prefix)
            for k in range(4, size):
                head = prefix[:k]
                if deepest.get(head, 0) < size:
                    deepest[head] = size
    return deepest


@cache
def _mobile_tokens() -> tuple[str, ...]:
    """Calling code + mobile token (Argentina 54 9, Mexico 52 1): libphonenumber geocodes
    these numbers without the token, so their prefixes do not line up with the data's."""
    return tuple(
        f"{code}{token}"
        for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE
        if (token := phonenumbers.country_mobile_token(code))
    )


def range_key(digits: str) -> str:
    """The cache key of a number: the digits that can change what libphonenumber says."""
    size = len(digits)
    if size <= 7 or digits.startswith(_mobile_tokens()):
        return digits
    keep = size - (3 if size >= 11 else 2)
    deeper = _longer_prefixes()
    while keep < size:
        need = deeper.get(digits[:keep], 0)
        if need <= keep:
            break
        keep = min(need, size)
    return f"{digits[:keep]}/{size}"


_COUNTRY_NAMES: dict[str, str] = {}


def _country_name(region: str, number: phonenumbers.PhoneNumber) -> str:
    """libphonenumber's English name of a region (the geocoder's answer when it has no area)."""
    name = _COUNTRY_NAMES.get(region)
    if name is None:
        name = _COUNTRY_NAMES[region] = geocoder.country_name_for_number(number, _LANG)
    return name


def _direct(digits: str) -> phonenumbers.PhoneNumber | None:
    """The number object `phonenumbers.parse` makes of these E.164 digits, built without
    parsing text (a third of a lookup's cost). Equal to parse's whenever the national
    number fits its country's plan; `_lookup` parses the others (parse may strip a
    national prefix from them)."""
    for size in (1, 2, 3):  # calling codes are prefix-free
        code = int(digits[:size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            national = digits[size:]
            number = phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
            if len(national) > 1 and national[0] == "0":  # Italian-style leading zeros
                number.italian_leading_zero = True
                zeros = min(len(national) - len(national.lstrip("0")), len(national) - 1)
                if zeros > 1:
                    number.number_of_leading_zeros = zeros
            return number
    return None


def _area(digits: str, region: str, number: phonenumbers.PhoneNumber) -> str:
    """libphonenumber's English place name of the number's longest geocoded prefix ('' if
    none, or if it only names the country), read from its data like its geocoder does."""
    if digits.startswith(_mobile_tokens()):  # the geocoder drops the token first
        area = geocoder.description_for_valid_number(number, _LANG, region=region)
    else:
        area = ""
        names_by_prefix, longest = _geodata()
        for size in range(min(len(digits), longest), 0, -1):
            names = names_by_prefix.get(digits[:size])
            if names is not None and _LANG in names:
                area = names[_LANG]
                break
    return "" if area == _country_name(region, number) else area


def _lookup(digits: str) -> NumberFacts:
    """libphonenumber on one number (uncached)."""
    direct = _direct(digits) if len(digits) > 3 else None
    region = phonenumbers.region_code_for_number(direct) if direct is not None else None
    if direct is not None and region is not None:
        number = direct
    else:  # not a number of its plan as it stands: what parse makes of it
        try:
            number = phonenumbers.parse("+" + digits)
        except phonenumbers.NumberParseException:
            return NO_FACTS
        region = phonenumbers.region_code_for_number(number)
        digits = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    if region is None:  # in no assigned range: the calling code's main region
        main = phonenumbers.region_code_for_country_code(number.country_code or 0)
        return NumberFacts(iso_country(main), None, "unknown", None)
    if region == "001":  # non-geographic (+800, +881 ...)
        kind = phonenumbers.number_type(number)
        return NumberFacts(None, None, _LINE_TYPE.get(kind, "unknown"), None)
    kind = phonenumbers.number_type(number)
    holder = ranges.name_for_valid_number(number, _LANG) if kind in _CARRIER_TYPES else ""
    area = _area(digits, region, number) if kind in _AREA_TYPES else ""
    return NumberFacts(
        iso_country(region),
        area or None,
        _LINE_TYPE.get(kind, "unknown"),
        holder or None,
    )


#: range key -> facts, and recipient text -> facts (a message's reports repeat its number)
_by_range: dict[str, NumberFacts] = {}
_by_number: dict[str, NumberFacts] = {}


def clear_caches() -> None:
    """Forget every cached lookup (benchmarks measure cold lookups with it)."""
    _by_range.clear()
    _by_number.clear()
    _by_report.clear()


def _remember(cache: dict[str, NumberFacts], key: str, facts: NumberFacts) -> None:
    if len(cache) >= CACHE_SIZE:
        del cache[next(iter(cache))]  # the oldest entry
    cache[key] = facts


def number_facts(recipient: str | None) -> NumberFacts:
    """Country, area, line type and range holder of a recipient number (cached per range)."""
    if not recipient:
        return NO_FACTS
    facts = _by_number.get(recipient)
    if facts is not None:
        return facts
    digits = _digits(recipient)
    if not digits:
        facts = NO_FACTS
    else:
        key = range_key(digits)
        facts = _by_range.get(key)
        if facts is None:
            facts = _lookup(digits)
            _remember(_by_range, key, facts)
    _remember(_by_number, recipient, facts)
    return facts


def warm() -> None:
    """Load libphonenumber's data and the tables now (about 2 s), not on the first report."""
    network_table()
    _longer_prefixes()
    _lookup("447911123456")


def uncached_facts(recipient: str | None) -> NumberFacts:
    """`number_facts` without the cache (the reference the tests and the benchmark use)."""
    digits = _digits(recipient) if recipient else ""
    return _lookup(digits) if digits else NO_FACTS


# -- everything ---------------------------------------------------------------------------


def _stated_country(country: str | None) -> str | None:
    code = country.strip().upper() if country else ""
    return code if len(code) == 2 and code.isascii() and code.isalpha() else None


Report = tuple[str | None, str | None, str | None, str | None, str | None]
#: (recipient, mcc, mnc, carrier, country) -> its enrichment: a message's reports repeat
#: them, so all but the first cost one dictionary lookup.
_by_report: dict[Report, Enrichment] = {}


def enrich(
    recipient: str | None,
    *,
    mcc: str | None = None,
    mnc: str | None = None,
    carrier: str | None = None,
    country: str | None = None,
) -> Enrichment:
    """All derived fields of one report (see the module docstring for the evidence order)."""
    key = (recipient, mcc, mnc, carrier, country)
    found = _by_report.get(key)
    if found is None:
        found = _enrich(recipient, mcc, mnc, carrier, country)
        if len(_by_report) >= CACHE_SIZE:
            del _by_report[next(iter(_by_report))]  # the oldest entry
        _by_report[key] = found
    return found


def _enrich(
    recipient: str | None,
    mcc: str | None,
    mnc: str | None,
    carrier: str | None,
    country: str | None,
) -> Enrichment:
    facts = number_facts(recipient)
    table = network_table()
    found = _stated_country(country) or table.country(mcc, facts.country) or facts.country
    # The area and the range holder describe the number's own country only.
    if found != facts.country:
        facts = NumberFacts(facts.country, None, facts.line_type, None)
    stated = carrier.strip() if carrier else ""
    name: str | None
    source: CarrierSource
    if stated:
        name, source = stated, "provider"
    elif network := table.name(mcc, mnc, found):
        name, source = network, "mcc_mnc"
    elif facts.range_holder:
        name, source = facts.range_holder, "number_range"
    else:
        name, source = None, "none"
    return Enrichment(found, region_of(found), facts.area, facts.line_type, name, source)
