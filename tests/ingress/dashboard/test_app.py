"""The built-in dashboard's HTTP surface without data: page, static files, OpenAPI,
query validation, and the answers when ClickHouse or a service is unreachable (real
closed ports, nothing mocked). With data: tests/integration/test_operations.py."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from deploy.local.ports import free_port
from ingress.dashboard.app import Reports, create_app
from ingress.dashboard.settings import DashboardSettings
from sinks.clickhouse import insights

#: What `dlr dashboard` hands over.
REPORTS = Reports(compare=insights.compare, cost=insights.cost)


def closed_port() -> int:
    """A port nobody listens on: every scrape and query to it is refused."""
    return free_port()


@pytest.fixture
def client() -> Iterator[TestClient]:
    port = closed_port()
    settings = DashboardSettings.model_validate(
        {
            "clickhouse_url": f"http://127.0.0.1:{port}",
            "metrics_targets": f"ingress=http://127.0.0.1:{port}/metrics",
            "dashboard_query_timeout_s": 2,
        }
    )
    with TestClient(create_app(settings, reports=REPORTS)) as test_client:
        yield test_client


def test_the_page_loads_only_its_own_files(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert not [s for s in sources if s.startswith(("http:", "https:", "//"))], sources
    for source in sources:
        if source.startswith("/static/"):
            assert client.get(source).status_code == 200, source
    chart = client.get("/static/vendor/chart.js/chart.umd.min.js")
    assert chart.text.startswith("/*!\n * Chart.js v4.")
    assert "MIT" in client.get("/static/vendor/chart.js/LICENSE").text


def test_openapi_documents_every_json_endpoint(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    app = client.app
    assert isinstance(app, Starlette)
    app_paths = {r.path for r in app.routes if isinstance(r, Route) and r.path.startswith("/api/")}
    assert set(document["paths"]) == app_paths
    for path, item in document["paths"].items():
        assert item["get"]["responses"]["200"], path


@pytest.mark.parametrize(
    ("path", "query", "message"),
    [
        ("worst", "window=abc", "number of seconds"),
        ("worst", "window=5", "between"),
        ("worst", "by=phone", "by must"),
        ("compare", "by=provider", "by must be one of country, carrier"),
        ("cost", "by=phone", "by must"),
    ],
)
def test_a_bad_query_is_a_422_naming_the_parameter(
    client: TestClient, path: str, query: str, message: str
) -> None:
    answer = client.get(f"/api/v1/{path}?{query}")
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_query" and message in answer.json()["detail"]


@pytest.mark.parametrize("path", ["summary", "compare"])
def test_clickhouse_unreachable_is_a_503_and_counted(client: TestClient, path: str) -> None:
    answer = client.get(f"/api/v1/{path}?window=3600")
    assert answer.status_code == 503 and answer.json()["error"] == "store_unavailable"
    metrics = client.get("/metrics").text
    line = f'dlr_dashboard_requests_total{{outcome="store_unavailable",route="/api/v1/{path}"}} 1.0'
    assert line in metrics.splitlines(), metrics


def test_health_says_which_service_does_not_answer(client: TestClient) -> None:
    answer = client.get("/api/v1/health")
    assert answer.status_code == 200
    (service,) = answer.json()["services"]
    assert service["job"] == "ingress" and service["up"] is False and service["error"]
    assert client.get("/healthz").json() == {"status": "ok"}
