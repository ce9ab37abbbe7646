"""The simulator's traffic model and wire formats (`dlr demo --providers all`), checked
against the real provider extraction, mapping and enrichment without a running stack."""

from __future__ import annotations

import random
from collections import Counter

import phonenumbers
import pytest
from phonenumbers import carrier as number_ranges

from deploy import traffic, wire
from ingress.providers import PROVIDERS
from schemas.providers import MAPPERS
from streams.enrich import enrich, network_table

BASE = "http://127.0.0.1:8080"


def sample(provider: str, carrier: str, outcome: traffic.Outcome) -> traffic.Message:
    rng = random.Random(f"{provider}{carrier}{outcome}")
    spec = traffic.CARRIERS[carrier]
    segments = 1 + len(outcome) % 3
    return traffic.Message(
        index=rng.randrange(10**6),
        provider=provider,
        carrier=carrier,
        number=traffic.draw_number(rng, spec),
        campaign="otp",
        outcome=outcome,
        sent_at=1_760_000_000.0,
        final_at=1_760_000_005.0,
        segments=segments,
        price=traffic.price(provider, spec.country, segments),
        currency=traffic.PROVIDERS[provider].currency,
    )


@pytest.mark.parametrize("provider", sorted(traffic.PROVIDERS))
@pytest.mark.parametrize("step", ["sent", *traffic.OUTCOMES])
def test_every_report_maps_to_what_the_tables_say(provider: str, step: str) -> None:
    """State, failure reason, segments, price, currency and time of every report are what
    wire.STATUS, wire.reported() and wire.stated_time() say the pipeline will read."""
    carrier = "us-tmobile" if provider == "bandwidth" else "gb-vodafone"
    message = sample(provider, carrier, "delivered" if step == "sent" else step)  # type: ignore[arg-type]
    at = 1_760_000_003.4567
    request = wire.request(BASE, "r1", message, step, at)
    (record,) = PROVIDERS[provider].extract(request)
    assert f"{provider}:{record.message_key}" == wire.message_id("r1", message)
    normalized = MAPPERS[provider](record.payload)
    _, _, state, reason = wire.STATUS[provider][step]
    assert str(normalized.state) == state
    assert (str(normalized.failure_reason) if normalized.failure_reason else None) == reason
    assert normalized.mapped, (provider, step)
    assert (normalized.segments, normalized.price, normalized.currency) == wire.reported(message)
    stated = normalized.provider_timestamp.timestamp() if normalized.provider_timestamp else None
    assert stated == wire.stated_time(provider, at)


def test_prices_follow_the_tables() -> None:
    assert traffic.price("plivo", "US", 1) == round(0.0079 * 0.85, 5)
    assert traffic.price("plivo", "US", 3) == round(round(0.0079 * 0.85, 5) * 3, 5)
    assert traffic.price("vonage", "NG", 2) > traffic.price("vonage", "IN", 2)
    currencies = {p.currency for p in traffic.PROVIDERS.values()}
    assert {"USD", "EUR", "GBP"} <= currencies
    priced = {name for name in traffic.PROVIDERS if wire.PRICED[name][1]}
    assert priced and priced != set(traffic.PROVIDERS)  # some providers state no price
    assert any(wire.PRICED[name][1] and not wire.PRICED[name][2] for name in traffic.PROVIDERS)


def test_providers_deliver_differently_per_destination() -> None:
    for name, provider in traffic.PROVIDERS.items():
        for country, share in provider.delivery.items():
            mix = traffic.outcome_weights(name, country)
            assert mix["delivered"] == share
            assert sum(mix.values()) == pytest.approx(1.0)
            base = traffic.COUNTRIES[country].outcomes
            failures = {o: w for o, w in mix.items() if o != "delivered" and w}
            assert failures.keys() == {o for o, w in base.items() if o != "delivered" and w}
    assert traffic.outcome_weights("generic", "DE") == {
        o: traffic.COUNTRIES["DE"].outcomes.get(o, 0.0) for o in traffic.OUTCOMES
    }


@pytest.mark.parametrize("provider", sorted(traffic.PROVIDERS))
def test_the_expected_enrichment_is_what_the_worker_derives(provider: str) -> None:
    for carrier, spec in traffic.CARRIERS.items():
        allowed = traffic.PROVIDERS[provider].countries
        if allowed and spec.country not in allowed:
            continue
        message = sample(provider, carrier, "delivered")
        (record,) = PROVIDERS[provider].extract(wire.request(BASE, "r", message, "sent", 1.0e9))
        norm = MAPPERS[provider](record.payload)
        found = enrich(
            norm.recipient, mcc=norm.mcc, mnc=norm.mnc, carrier=norm.carrier, country=norm.country
        )
        want = traffic.expected(message)
        got = (found.carrier, found.carrier_source, found.country, found.region)
        assert got == (want.carrier, want.carrier_source, want.country, want.region), carrier


def test_the_tables_are_real() -> None:
    table = network_table()
    for key, spec in traffic.CARRIERS.items():
        assert table.name(spec.mcc, spec.mnc, spec.country) == spec.network, key
        for prefix in spec.ranges:  # ranges libphonenumber assigns to the carrier
            holder = number_ranges.name_for_number(
                phonenumbers.parse("+" + prefix + "0" * (spec.digits - len(prefix))), "en"
            )
            assert spec.country == "US" or holder, (key, prefix)
    continents = {"US": "NA", "GB": "EU", "DE": "EU", "BR": "SA", "IN": "AS", "NG": "AF",
                  "ZA": "AF", "AU": "OC"}  # fmt: skip
    assert len(traffic.COUNTRIES) >= 8 and len({continents[c] for c in traffic.COUNTRIES}) >= 4
    assert any(not c.reports_delivered for c in traffic.CARRIERS.values())
    mixes = {tuple(sorted(c.outcomes.items())) for c in traffic.COUNTRIES.values()}
    assert len(mixes) == len(traffic.COUNTRIES)  # failure mixes differ by country


def test_simulated_messages_follow_the_tables() -> None:
    rng = random.Random(3)
    msgs = traffic.messages(3000, rng, 1_760_000_000.0, ["otp", "promo-spring"])
    assert {m.provider for m in msgs} == set(traffic.PROVIDERS)
    assert {m.spec.country for m in msgs} == set(traffic.COUNTRIES)
    assert all(m.spec.country == "US" for m in msgs if m.provider == "bandwidth")
    jio = [m for m in msgs if m.carrier == "in-jio" and m.outcome == "delivered"]
    assert jio and all(m.final_at is None and wire.final_state(m) == "sent" for m in jio)
    for key in ("gb-ee", "gb-o2"):  # log-normal: not constant, median near the table's
        delays = sorted(
            m.final_at - m.sent_at
            for m in msgs
            if m.carrier == key and m.outcome == "delivered" and m.final_at is not None
        )
        assert len(set(delays)) == len(delays) > 20
        median = delays[len(delays) // 2]
        assert 0.6 < median / traffic.CARRIERS[key].ttd_median_s < 1.6
    per_country = Counter((m.spec.country, m.outcome) for m in msgs)
    assert per_country["NG", "unreachable"] > per_country["DE", "unreachable"]
    assert Counter(m.segments for m in msgs).keys() == set(traffic.SEGMENTS)
    assert all(m.price == traffic.price(m.provider, m.spec.country, m.segments) for m in msgs)
    for (campaign, carrier), (outcome, share) in traffic.CONTENT_FILTERING.items():
        hit = [m for m in msgs if (m.campaign, m.carrier) == (campaign, carrier)]
        rest = [m for m in msgs if m.carrier == carrier and m.campaign != campaign]
        assert sum(m.outcome == outcome for m in hit) / len(hit) >= share * 0.6
        assert sum(m.outcome == outcome for m in rest) / len(rest) < share * 0.5
    assert all(phonenumbers.is_valid_number(phonenumbers.parse(m.number)) for m in msgs[:300])
