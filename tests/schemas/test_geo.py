"""UN M49 sub-regions of ISO countries (the countries come from streams/enrich.py)."""

from __future__ import annotations

import pytest

from schemas import geo


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


def test_every_region_lists_distinct_countries() -> None:
    listed = [c for members in geo.SUBREGIONS.values() for c in members.split()]
    assert len(listed) == len(set(listed)) == len(geo.REGION)


@pytest.mark.parametrize(
    ("number", "country"),
    [
        ("+14155550100", "US"),
        ("14155550100", "US"),
        ("+447911123456", "GG"),
        ("+447700900123", "GB"),  # no assigned range: the calling code's main region
        ("+2470123", "SH"),  # Ascension: part of SH in ISO 3166-1
        ("+80012345678", None),  # non-geographic
        ("garbage", None),
        (None, None),
    ],
)
def test_country_of_number(number: str | None, country: str | None) -> None:
    assert geo.country_of_number(number) == country
