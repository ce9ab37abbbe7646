"""UN M49 sub-region of a country, as data, for the canonical events' `region`.

The country itself comes from the worker's enrichment (streams/enrich.py: the provider,
the MCC, or the number via libphonenumber); `country_of_number` gives the number's alone
(the sender API's registrations). Regions are the M49 sub-regions ("Northern
America", "Western Europe", "Sub-Saharan Africa", "Latin America and the Caribbean" ...);
Taiwan and Kosovo, which M49 does not list, are placed where the M49 region of their
neighbours puts them.
"""

from __future__ import annotations

from collections.abc import Mapping

import phonenumbers

#: UN M49 sub-region -> ISO 3166-1 alpha-2 codes of its countries and territories.
SUBREGIONS: Mapping[str, str] = {
    "Northern Africa": "DZ EG EH LY MA SD TN",
    "Sub-Saharan Africa": (
        "IO BI KM DJ ER ET TF KE MG MW MU YT MZ RE RW SC SO SS UG TZ ZM ZW "  # eastern
        "AO CM CF TD CG CD GQ GA ST "  # middle
        "BW SZ LS NA ZA "  # southern
        "BJ BF CV CI GM GH GN GW LR ML MR NE NG SH SN SL TG"  # western
    ),
    "Latin America and the Caribbean": (
        "AI AG AW BS BB BQ VG KY CU CW DM DO GD GP HT JM MQ MS PR BL KN LC MF VC SX TT TC VI "
        "BZ CR SV GT HN MX NI PA "
        "AR BO BV BR CL CO EC FK GF GY PY PE GS SR UY VE"
    ),
    "Northern America": "BM CA GL PM US",
    "Central Asia": "KZ KG TJ TM UZ",
    "Eastern Asia": "CN HK MO KP JP MN KR TW",
    "South-eastern Asia": "BN KH ID LA MY MM PH SG TH TL VN",
    "Southern Asia": "AF BD BT IN IR MV NP PK LK",
    "Western Asia": "AM AZ BH CY GE IQ IL JO KW LB OM QA SA PS SY TR AE YE",
    "Eastern Europe": "BY BG CZ HU PL MD RO RU SK UA",
    "Northern Europe": "AX DK EE FO FI GG IS IE IM JE LV LT NO SJ SE GB",
    "Southern Europe": "AL AD BA HR GI GR VA IT MT ME MK PT SM RS SI ES XK",
    "Western Europe": "AT BE FR DE LI LU MC NL CH",
    "Australia and New Zealand": "AU CX CC HM NZ NF",
    "Melanesia": "FJ NC PG SB VU",
    "Micronesia": "GU KI MH FM NR MP PW UM",
    "Polynesia": "AS CK PF NU PN WS TK TO TV WF",
}

#: ISO 3166-1 alpha-2 -> M49 sub-region.
REGION: Mapping[str, str] = {
    country: region for region, members in SUBREGIONS.items() for country in members.split()
}


def region_of(country: str | None) -> str | None:
    """UN M49 sub-region of an ISO 3166-1 alpha-2 country."""
    if not country:
        return None
    return REGION.get(country.strip().upper())


#: libphonenumber regions that are parts of an ISO 3166-1 country (Ascension, Tristan da
#: Cunha: SH).
_ISO_COUNTRY: Mapping[str, str] = {"AC": "SH", "TA": "SH"}


def iso_country(region: str | None) -> str | None:
    """libphonenumber's region code as an ISO 3166-1 alpha-2 country (None for 001, ZZ)."""
    if not region or region in ("001", "ZZ"):
        return None
    return _ISO_COUNTRY.get(region, region)


def country_of_number(number: str | None) -> str | None:
    """ISO country of an international number: its region in libphonenumber, else (a number
    in no assigned range) its calling code's main region. For the sender API's
    registrations; the worker's enrichment (streams/enrich.py) says the same and more."""
    if not number:
        return None
    text = number.strip()
    try:
        parsed = phonenumbers.parse(text if text.startswith("+") else "+" + text)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(parsed)
    if region is None:
        region = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
    return iso_country(region)
