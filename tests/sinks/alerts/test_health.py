"""Health rules over the services' own /metrics (sinks/alerts/health.py), fed the text the
real metric classes expose (ingress, sink), scraped at chosen times."""

from __future__ import annotations

from prometheus_client import generate_latest

from ingress.metrics import IngressMetrics
from sinks.alerts.health import Scrape, Scraper, health_observations, parse
from sinks.alerts.model import Observation
from sinks.alerts.settings import AlertSettings
from sinks.service import SinkMetrics

S = AlertSettings.model_validate(
    {"alert_min_requests": 100, "alert_unauthorized_min": 50, "alert_max_lag": 1000}
)


def breaching(scraper: Scraper) -> dict[tuple[str, tuple[tuple[str, str], ...]], Observation]:
    health = health_observations(scraper.history, S)
    return {(o.rule, tuple(sorted(o.labels.items()))): o for o in health.observations if o.breach}


def test_ingress_5xx_broker_unavailable_and_401_bursts() -> None:
    ingress = IngressMetrics()
    for _ in range(1000):
        ingress.outcome("twilio", "accepted", "200")
    scraper = Scraper({"ingress": "unused"}, window_s=300)
    scraper.add("ingress", Scrape(0.0, parse(generate_latest(ingress.registry).decode())))
    assert breaching(scraper) == {}  # one scrape: no increase yet, nothing to judge
    for _ in range(900):
        ingress.outcome("twilio", "accepted", "200")
    for _ in range(30):
        ingress.outcome("twilio", "broker_unavailable", "503")
    for _ in range(20):
        ingress.outcome("twilio", "internal", "500")
    for _ in range(60):
        ingress.outcome("vonage", "bad_signature", "401")
    scraper.add("ingress", Scrape(60.0, parse(generate_latest(ingress.registry).decode())))
    found = breaching(scraper)
    assert set(found) == {
        ("ingress_errors", (("job", "ingress"),)),
        ("ingress_broker_unavailable", (("job", "ingress"),)),
        ("ingress_unauthorized_burst", (("job", "ingress"), ("provider", "vonage"))),
    }
    assert found[("ingress_errors", (("job", "ingress"),))].value == round(20 / 1010, 6)
    assert (
        "vonage"
        in found[
            ("ingress_unauthorized_burst", (("job", "ingress"), ("provider", "vonage")))
        ].summary
    )


def test_sink_lag_dead_letters_and_a_restarted_counter() -> None:
    sink = SinkMetrics()
    scraper = Scraper({"sink": "unused"}, window_s=300)
    sink.lag.set(5000)
    scraper.add("sink", Scrape(0.0, parse(generate_latest(sink.registry).decode())))
    sink.rejected.inc(3)
    scraper.add("sink", Scrape(30.0, parse(generate_latest(sink.registry).decode())))
    assert {rule for rule, _ in breaching(scraper)} == {"consumer_lag", "dead_letters"}
    # the process restarted: its counters start again from 0, lag is gone
    fresh = SinkMetrics()
    scraper.add("sink", Scrape(400.0, parse(generate_latest(fresh.registry).decode())))
    scraper.add("sink", Scrape(430.0, parse(generate_latest(fresh.registry).decode())))
    assert breaching(scraper) == {}


def test_a_failed_scrape_is_target_down_and_keeps_the_other_rules_unjudged() -> None:
    scraper = Scraper({"worker": "unused"}, window_s=300)
    scraper.add("worker", Scrape(0.0, None, "ConnectError: refused"))
    health = health_observations(scraper.history, S)
    (down,) = [o for o in health.observations if o.breach]
    assert down.rule == "target_down" and "ConnectError" in down.summary
    assert not health.evaluated("consumer_lag", {"job": "worker"})
    assert health.evaluated("target_down", {"job": "worker"})
