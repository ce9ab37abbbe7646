"""Enrichment: country, region, area, line type and carrier with its evidence.

Expected values come from the data the enrichment reads (libphonenumber's own carrier and
geocoder data, the MCC/MNC table of real networks), never from the code under test.
"""

from __future__ import annotations

import random
from functools import cache
from typing import Any

import orjson
import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType, geocoder
from phonenumbers import carrier as ranges

from schemas.envelope import RawEnvelope
from schemas.events import CanonicalEvent
from schemas.geo import region_of
from streams import enrich as enrichment
from streams.enrich import enrich, network_table, number_facts, range_key, uncached_facts
from streams.transforms import Config, process


@pytest.mark.parametrize(
    ("number", "holder"),
    [
        pytest.param("+33612345678", "SFR", id="fr-sfr"),
        pytest.param("+4915123456789", "T-Mobile", id="de-t-mobile"),
        pytest.param("+919876543210", "Airtel", id="in-airtel"),
        pytest.param("+2348031234567", "MTN", id="ng-mtn"),
        pytest.param("+27821234567", "Vodacom", id="za-vodacom"),
        pytest.param("+61412345678", "Optus", id="au-optus"),
        pytest.param("+8613812345678", "China Mobile", id="cn-china-mobile"),
        pytest.param("+5511987654321", "TIM", id="br-tim"),
    ],
)
def test_range_holder_is_libphonenumbers_name(number: str, holder: str) -> None:
    assert ranges.name_for_number(phonenumbers.parse(number), "en") == holder  # the data
    found = enrich(number)
    assert (found.carrier, found.carrier_source) == (holder, "number_range")
    assert found.line_type == "mobile"


@pytest.mark.parametrize(
    ("number", "country"),
    [
        pytest.param("+14155550100", "US", id="us"),
        pytest.param("14155550100", "US", id="us-without-plus"),
        pytest.param("+1 (212) 555-0100", "US", id="us-formatted"),
        pytest.param("+16135550100", "CA", id="ca-ottawa"),
        pytest.param("+18675550100", "CA", id="ca-territories"),
        pytest.param("+18765550100", "JM", id="nanp-jamaica"),
        pytest.param("+17875550100", "PR", id="nanp-puerto-rico"),
        pytest.param("+447911123456", "GG", id="guernsey-mobile-inside-44"),
        pytest.param("00447700900123", "GB", id="gb-international-prefix"),
        pytest.param("+447700900123", "GB", id="gb-drama-range-unassigned"),
        pytest.param("+77012345678", "KZ", id="kz-shares-plus-7"),
        pytest.param("+262269612345", "YT", id="mayotte-inside-262"),
        pytest.param("+262692123456", "RE", id="reunion"),
        pytest.param("+358181234567", "AX", id="aland-inside-358"),
        pytest.param("+85291234567", "HK", id="hk"),
        pytest.param("+2470123", "SH", id="ascension-is-iso-sh"),
    ],
)
def test_country_from_the_number(number: str, country: str) -> None:
    found = enrich(number)
    assert found.country == country
    assert found.region == region_of(country) is not None


@pytest.mark.parametrize(
    ("number", "area"),
    [
        pytest.param("+14155550100", "San Francisco, CA", id="us-city-state"),
        pytest.param("+16045550100", "British Columbia", id="ca-province"),
        pytest.param("+441614960000", "Manchester", id="gb-landline"),
        pytest.param("+5511987654321", "São Paulo", id="br-mobile-ddd"),
    ],
)
def test_area_below_the_country(number: str, area: str) -> None:
    assert enrich(number).area == area


def test_no_area_when_libphonenumber_names_only_the_country() -> None:
    assert enrich("+33612345678").area is None  # a French mobile: just "France"


@pytest.mark.parametrize(
    ("number", "line_type"),
    [
        pytest.param("+447911123456", "mobile", id="mobile"),
        pytest.param("+441614960000", "fixed", id="fixed"),
        pytest.param("+14155550100", "fixed_or_mobile", id="nanp-undistinguished"),
        pytest.param("+18005550100", "toll_free", id="us-toll-free"),
        pytest.param("+80012345678", "toll_free", id="international-freephone"),
        pytest.param("+447700900123", "unknown", id="unassigned-range"),
    ],
)
def test_line_type(number: str, line_type: str) -> None:
    assert enrich(number).line_type == line_type


@pytest.mark.parametrize(
    ("mcc", "mnc", "country", "name"),
    [
        pytest.param("234", "10", "GB", "O2 (UK)", id="o2-uk"),
        pytest.param("234", "15", "GB", "Vodafone UK", id="vodafone-uk"),
        pytest.param("310", "260", "US", "T-Mobile", id="t-mobile-us-three-digit-mnc"),
        pytest.param("302", "720", "CA", "Rogers Wireless", id="rogers-ca"),
        pytest.param("208", "01", "FR", "Orange", id="orange-fr"),
        pytest.param("262", "01", "DE", "Telekom", id="telekom-de"),
        pytest.param("724", "05", "BR", "Claro", id="claro-br"),
        pytest.param("404", "45", "IN", "Airtel", id="airtel-in"),
        pytest.param("621", "30", "NG", "MTN", id="mtn-ng"),
        pytest.param("655", "01", "ZA", "Vodacom", id="vodacom-za"),
        pytest.param("505", "01", "AU", "Telstra", id="telstra-au-shared-mcc"),
        pytest.param("440", "10", "JP", "NTT docomo", id="docomo-jp"),
    ],
)
def test_mcc_mnc_of_real_networks(mcc: str, mnc: str, country: str, name: str) -> None:
    table = network_table()
    assert table.country(mcc, None) == country
    assert table.name(mcc, mnc, country) == name
    found = enrich(None, mcc=mcc, mnc=mnc)
    assert (found.country, found.carrier, found.carrier_source) == (country, name, "mcc_mnc")


def test_mnc_padding_variants_find_the_network() -> None:
    table = network_table()
    assert table.name("208", "1", None) == "Orange"  # '01' sent without its zero
    assert table.name("234", "010", None) == "O2 (UK)"  # '10' sent zero-padded to three


@pytest.mark.parametrize(
    "code", [("999", "99"), ("abc", "01"), ("23", "410"), ("", ""), (None, None)]
)
def test_unknown_mcc_mnc_names_nothing(code: tuple[str | None, str | None]) -> None:
    mcc, mnc = code
    assert network_table().name(mcc, mnc, None) is None
    assert network_table().country(mcc, None) is None


def test_a_shared_mcc_takes_the_numbers_country_when_it_serves_it() -> None:
    # 340: the French Antilles; a Guadeloupe mobile stays in Guadeloupe.
    assert enrich("+590690123456", mcc="340", mnc="01").country == "GP"
    # 310 serves Puerto Rico as well as the US.
    assert enrich("+17875550100", mcc="310", mnc="260").country == "PR"


def test_order_of_evidence() -> None:
    number = "+33612345678"  # range holder SFR, the network code says Orange
    stated = enrich(number, mcc="208", mnc="01", carrier="Bouygues Telecom")
    assert (stated.carrier, stated.carrier_source) == ("Bouygues Telecom", "provider")
    network = enrich(number, mcc="208", mnc="01")
    assert (network.carrier, network.carrier_source) == ("Orange", "mcc_mnc")
    holder = enrich(number)
    assert (holder.carrier, holder.carrier_source) == ("SFR", "number_range")
    nothing = enrich("+14155550100")  # no carrier data for the +1 plan
    assert (nothing.carrier, nothing.carrier_source) == (None, "none")
    blank = enrich(number, carrier="  ")  # an empty provider field is no evidence
    assert blank.carrier_source == "number_range"


def test_order_of_evidence_for_the_country() -> None:
    # stated country > MCC > number
    assert enrich("+33612345678", mcc="234", mnc="10", country="de").country == "DE"
    moved = enrich("+33612345678", mcc="234", mnc="10")
    assert (moved.country, moved.region) == ("GB", "Northern Europe")
    # the number's area and range holder do not describe another country
    assert moved.area is None and moved.carrier_source == "mcc_mnc"
    assert enrich("+33612345678", country="USA").country == "FR"  # not a country code


@pytest.mark.parametrize(
    "number",
    [
        pytest.param("+80012345678", id="freephone-non-geographic"),
        pytest.param("+88216123456", id="satellite-non-geographic"),
        pytest.param("+2812345678", id="unassigned-calling-code"),
    ],
)
def test_a_number_of_no_country(number: str) -> None:
    found = enrich(number)
    assert found.country is None and found.region is None and found.area is None
    assert found.carrier_source == "none"


@pytest.mark.parametrize(
    "number",
    [None, "", "garbage", "+", "+44", "07700900123", "+1234567890123456", "ACME", "+44 abc"],
)
def test_malformed_numbers_give_nothing(number: str | None) -> None:
    found = enrich(number)
    assert found.country is None and found.carrier is None
    assert (found.carrier_source, found.line_type) == ("none", "unknown")


@given(st.text(max_size=40), st.text(max_size=8), st.text(max_size=8))
def test_any_text_never_raises(number: str, mcc: str, mnc: str) -> None:
    found = enrich(number, mcc=mcc, mnc=mnc)
    assert found.carrier_source in enrichment.CARRIER_SOURCES
    assert found.line_type in enrichment.LINE_TYPES


def test_every_country_the_enrichment_names_has_a_region() -> None:
    regions = {"SH" if r in ("AC", "TA") else r for r in phonenumbers.SUPPORTED_REGIONS}
    from_mcc = {country for _, every in network_table().mccs.values() for country in every}
    assert {c for c in regions | from_mcc if region_of(c) is None} == set()


@cache
def _example_numbers() -> list[str]:
    types = [t for t in vars(PhoneNumberType).values() if isinstance(t, int) and t != 99]
    found = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in types:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                found.append(phonenumbers.format_number(example, PhoneNumberFormat.E164))
    return found


def test_the_range_cache_gives_what_an_uncached_lookup_gives() -> None:
    """Numbers sharing a cache key (every region's example numbers, with the digits the
    key leaves out changed) get the facts libphonenumber gives each of them."""
    rng = random.Random(7)
    checked = 0
    for example in _example_numbers():
        digits = example[1:]
        key = range_key(digits)
        kept = len(key.split("/")[0])
        free = len(digits) - kept
        variants = [digits]
        if free:
            variants.append(digits[:kept] + f"{rng.randrange(10**free):0{free}d}")
        for variant in variants:
            assert range_key(variant) == key
            assert number_facts(variant) == uncached_facts(variant), variant
            checked += 1
    assert checked > 1000


def _reference(number: str) -> tuple[str | None, str | None, str | None]:
    """(country, area, range holder) straight from libphonenumber's public API."""
    parsed = phonenumbers.parse(number)
    region = phonenumbers.region_code_for_number(parsed)
    if region is None or region == "001":
        return None, None, None
    kind = phonenumbers.number_type(parsed)
    area = ""
    if kind in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE,
                PhoneNumberType.FIXED_LINE_OR_MOBILE):  # fmt: skip
        area = geocoder.description_for_valid_number(parsed, "en", region=region)
        if area == geocoder.country_name_for_number(parsed, "en"):
            area = ""
    holder = ranges.name_for_number(parsed, "en")
    return {"AC": "SH", "TA": "SH"}.get(region, region), area or None, holder or None


def test_the_lookup_equals_libphonenumbers_public_api() -> None:
    """The enrichment reads libphonenumber's data directly where that is cheaper; every
    region's example numbers (and Italian leading zeros, Argentine mobile tokens) get
    what parse, the geocoder and the carrier mapper say."""
    extra = ["+390612345678", "+5491123456789", "+5215512345678", "+4407911123456"]
    for number in [*_example_numbers(), *extra]:
        facts = uncached_facts(number)
        assert (facts.country, facts.area, facts.range_holder) == _reference(number), number


def test_cache_keys_follow_longer_data_prefixes() -> None:
    # +1 242 357: a Bahamas range with its own carrier entry; the key keeps all 7 digits
    assert range_key("12423571234").startswith("1242357")
    assert range_key("447911123456") == "447911123/12"  # the last three digits are free
    assert range_key("5491123456789") == "5491123456789"  # mobile token: cached whole


# -- through the worker, one payload per provider that carries network data -------------


def _envelope(provider: str, payload: dict[str, Any], mid: str = "m1") -> bytes:
    return RawEnvelope(
        provider=provider,
        message_id=f"{provider}:{mid}",
        provider_message_id=mid,
        received_at=1_700_000_000.0,
        method="POST",
        url=f"http://x/webhooks/{provider}",
        headers={},
        content_type="application/json",
        body=orjson.dumps(payload).decode(),
        body_encoding="utf-8",
        body_sha256="0" * 64,
        payload=payload,
        key_id="k_test",
    ).to_json()


def _process(provider: str, payload: dict[str, Any]) -> CanonicalEvent:
    out = process(_envelope(provider, payload), b"k", None, 0, 1, 1.0, Config(salt="s"))
    assert out.event is not None, out
    return out.event


PAYLOADS = [
    pytest.param(
        "vonage",
        {"msisdn": "447911123456", "to": "ACME", "network-code": "23410", "status": "delivered",
         "err-code": "0", "messageId": "m1"},
        ("GG", "O2 (UK)", "mcc_mnc"),
        id="vonage-network-code",
    ),
    pytest.param(
        "plivo",
        {"To": "+14155550100", "From": "+12065550123", "Status": "delivered", "MCC": "310",
         "MNC": "260", "MessageUUID": "m1"},
        ("US", "T-Mobile", "mcc_mnc"),
        id="plivo-mcc-mnc",
    ),
    pytest.param(
        "infobip",
        {"to": "41793026727", "mccMnc": "22801", "messageId": "m1",
         "status": {"groupId": 3, "name": "DELIVERED_TO_HANDSET", "id": 5}},
        ("CH", "Swisscom", "mcc_mnc"),
        id="infobip-mccmnc",
    ),
    pytest.param(
        "bird",
        {"to": "+31612345678", "status": "delivered", "mccmnc": "20408", "id": "m1"},
        ("NL", "KPN", "mcc_mnc"),
        id="bird-mccmnc",
    ),
    pytest.param(
        "sns",
        {"eventType": "TEXT_DELIVERED", "destinationPhoneNumber": "+14155550100",
         "isoCountryCode": "US", "mcc": "310", "mnc": "800", "carrierName": "T-mobile USA Inc.",
         "messageId": "m1", "messageStatus": "DELIVERED", "isFinal": True},
        ("US", "T-mobile USA Inc.", "provider"),
        id="sns-carrier-name",
    ),
    pytest.param(
        "telnyx",
        {"to": "+14155550100", "status": "delivered", "carrier": "T-MOBILE USA, INC.", "id": "m1"},
        ("US", "T-MOBILE USA, INC.", "provider"),
        id="telnyx-carrier",
    ),
    pytest.param(
        "sinch",
        {"recipient": "+4915123456789", "status": "Delivered", "code": 0, "operator": "Telekom"},
        ("DE", "Telekom", "provider"),
        id="sinch-operator",
    ),
    pytest.param(
        "twilio",
        {"To": "+33612345678", "MessageStatus": "delivered", "MessageSid": "m1"},
        ("FR", "SFR", "number_range"),
        id="twilio-no-network-data",
    ),
    pytest.param(
        "bandwidth",
        {"to": "+14155550100", "type": "message-delivered", "time": "2025-01-01T00:00:00Z"},
        ("US", None, "none"),
        id="bandwidth-no-network-data",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("provider", "payload", "expected"), PAYLOADS)
def test_provider_payloads_get_their_carrier_and_country(
    provider: str, payload: dict[str, Any], expected: tuple[str, str | None, str]
) -> None:
    event = _process(provider, payload)
    assert (event.country, event.carrier, event.carrier_source) == expected
    assert event.region == region_of(expected[0])
    assert event.line_type in enrichment.LINE_TYPES


def test_a_later_report_on_weaker_evidence_keeps_the_carrier() -> None:
    def telnyx(status: str, **extra: Any) -> bytes:
        return _envelope("telnyx", {"to": "+33612345678", "status": status, "id": "m1", **extra})

    first = process(telnyx("sent", carrier="Bouygues Telecom"), b"k", None, 0, 1, 1.0, Config())
    assert first.event is not None and first.event.carrier_source == "provider"
    later = process(telnyx("delivered"), b"k", first.store, 0, 2, 2.0, Config())
    assert later.event is not None
    assert (later.event.carrier, later.event.carrier_source) == ("Bouygues Telecom", "provider")
