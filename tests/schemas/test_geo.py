"""Country and region lookup from real numbers, MCCs and provider-stated countries."""

from __future__ import annotations

import pytest

from schemas import geo


@pytest.mark.parametrize(
    ("number", "country"),
    [
        pytest.param("+14155550100", "US", id="us-san-francisco"),
        pytest.param("14155550100", "US", id="us-without-plus"),
        pytest.param("+1 (212) 555-0100", "US", id="us-formatted"),
        pytest.param("+16135550100", "CA", id="ca-ottawa"),
        pytest.param("+14165550100", "CA", id="ca-toronto"),
        pytest.param("+16045550100", "CA", id="ca-vancouver"),
        pytest.param("+15145550100", "CA", id="ca-montreal"),
        pytest.param("+18675550100", "CA", id="ca-territories"),
        pytest.param("+18765550100", "JM", id="nanp-jamaica"),
        pytest.param("+17875550100", "PR", id="nanp-puerto-rico"),
        pytest.param("+18095550100", "DO", id="nanp-dominican-republic"),
        pytest.param("+447700900123", "GB", id="gb-mobile"),
        pytest.param("00447700900123", "GB", id="gb-international-prefix"),
        pytest.param("+441481123456", "GG", id="guernsey-landline"),
        pytest.param("+33612345678", "FR", id="fr-mobile"),
        pytest.param("+5511987654321", "BR", id="br-sao-paulo"),
        pytest.param("+4915123456789", "DE", id="de-mobile"),
        pytest.param("+919876543210", "IN", id="in-mobile"),
        pytest.param("+8613812345678", "CN", id="cn-mobile"),
        pytest.param("+85291234567", "HK", id="hk-three-digit-code"),
        pytest.param("+2348031234567", "NG", id="ng-three-digit-code"),
        pytest.param("+27821234567", "ZA", id="za-two-digit-code"),
        pytest.param("+79161234567", "RU", id="ru"),
        pytest.param("+77012345678", "KZ", id="kz-shares-plus-7"),
        pytest.param("+262269612345", "YT", id="mayotte-inside-262"),
        pytest.param("+262692123456", "RE", id="reunion"),
        pytest.param("+358181234567", "AX", id="aland-inside-358"),
        pytest.param("+61412345678", "AU", id="au-mobile"),
    ],
)
def test_country_from_e164(number: str, country: str) -> None:
    assert geo.country_from_e164(number) == country


@pytest.mark.parametrize(
    "number",
    [
        pytest.param(None, id="none"),
        pytest.param("", id="empty"),
        pytest.param("garbage", id="garbage"),
        pytest.param("+", id="plus-only"),
        pytest.param("+44", id="code-only"),
        pytest.param("07700900123", id="national-format"),
        pytest.param("+1234567890123456", id="too-long"),
        pytest.param("+80012345678", id="freephone-non-geographic"),
        pytest.param("+88216123456", id="satellite-non-geographic"),
        pytest.param("+2812345678", id="unassigned-code"),
        pytest.param("ACME", id="alphanumeric-sender"),
    ],
)
def test_country_from_e164_refuses_garbage(number: str | None) -> None:
    assert geo.country_from_e164(number) is None


@pytest.mark.parametrize(
    ("mcc", "country"),
    [
        pytest.param("23410", "GB", id="mccmnc-o2-uk"),
        pytest.param("234", "GB", id="bare-mcc"),
        pytest.param("310260", "US", id="t-mobile-us-three-digit-mnc"),
        pytest.param("302720", "CA", id="rogers-ca"),
        pytest.param("20801", "FR", id="orange-fr"),
        pytest.param("26201", "DE", id="telekom-de"),
        pytest.param("72406", "BR", id="vivo-br"),
        pytest.param("40410", "IN", id="airtel-in"),
        pytest.param("46000", "CN", id="china-mobile"),
        pytest.param("50501", "AU", id="telstra-au"),
        pytest.param("62130", "NG", id="mtn-ng"),
        pytest.param("65501", "ZA", id="vodacom-za"),
        pytest.param("44010", "JP", id="docomo-jp"),
        pytest.param("45005", "KR", id="sk-telecom-kr"),
    ],
)
def test_country_from_mcc(mcc: str, country: str) -> None:
    assert geo.country_from_mcc(mcc) == country


@pytest.mark.parametrize("mcc", [None, "", "23", "abc", "999", "901", "12345"])
def test_country_from_mcc_refuses_unknown(mcc: str | None) -> None:
    assert geo.country_from_mcc(mcc) is None


@pytest.mark.parametrize(
    ("country", "region"),
    [
        ("US", "Northern America"),
        ("CA", "Northern America"),
        ("GB", "Northern Europe"),
        ("FR", "Western Europe"),
        ("DE", "Western Europe"),
        ("IT", "Southern Europe"),
        ("PL", "Eastern Europe"),
        ("BR", "Latin America and the Caribbean"),
        ("MX", "Latin America and the Caribbean"),
        ("JM", "Latin America and the Caribbean"),
        ("NG", "Sub-Saharan Africa"),
        ("ZA", "Sub-Saharan Africa"),
        ("EG", "Northern Africa"),
        ("IN", "Southern Asia"),
        ("CN", "Eastern Asia"),
        ("SG", "South-eastern Asia"),
        ("KZ", "Central Asia"),
        ("AE", "Western Asia"),
        ("AU", "Australia and New Zealand"),
        ("FJ", "Melanesia"),
        ("GU", "Micronesia"),
        ("WS", "Polynesia"),
        ("gb", "Northern Europe"),
    ],
)
def test_region_of(country: str, region: str) -> None:
    assert geo.region_of(country) == region


@pytest.mark.parametrize("country", [None, "", "XX", "UK", "USA"])
def test_region_of_unknown_is_none(country: str | None) -> None:
    assert geo.region_of(country) is None


def test_every_mapped_country_has_a_region() -> None:
    countries = {
        *geo.CALLING_CODES.values(),
        *geo.MCC.values(),
        *geo.NANP_AREAS.values(),
    }
    assert {c for c in countries if geo.region_of(c) is None} == set()


def test_every_country_is_in_exactly_one_region() -> None:
    listed = [c for members in geo.SUBREGIONS.values() for c in members.split()]
    assert len(listed) == len(set(listed)) == len(geo.REGION)
    assert all(len(c) == 2 and c.isupper() for c in listed)


def test_calling_codes_and_mccs_are_digits() -> None:
    assert all(code.isdigit() for code in geo.CALLING_CODES)
    assert all(len(mcc) == 3 and mcc.isdigit() for mcc in geo.MCC)
    assert all(len(area) == 3 and area.isdigit() for area in geo.NANP_AREAS)


@pytest.mark.parametrize(
    ("recipient", "mcc", "country", "expected"),
    [
        pytest.param("+14155550100", None, None, ("US", "Northern America"), id="number-only"),
        pytest.param("+16135550100", None, None, ("CA", "Northern America"), id="canada"),
        pytest.param("+447700900123", None, None, ("GB", "Northern Europe"), id="gb"),
        pytest.param(
            "+14155550100", "23410", None, ("GB", "Northern Europe"), id="mcc-beats-number"
        ),
        pytest.param(None, "23410", None, ("GB", "Northern Europe"), id="mcc-only"),
        pytest.param(
            "+14155550100", "23410", "fr", ("FR", "Western Europe"), id="provider-country-wins"
        ),
        pytest.param(
            "+14155550100", "999", None, ("US", "Northern America"), id="unknown-mcc-falls-back"
        ),
        pytest.param(
            "+33612345678", None, "1", ("FR", "Western Europe"), id="junk-country-falls-back"
        ),
        pytest.param(None, None, None, (None, None), id="nothing"),
        pytest.param("garbage", "x", "", (None, None), id="garbage"),
    ],
)
def test_locate(
    recipient: str | None,
    mcc: str | None,
    country: str | None,
    expected: tuple[str | None, str | None],
) -> None:
    assert geo.locate(recipient, mcc, country) == expected
