"""`dlr dashboard` settings: where the built-in page listens and how long it may query.

Extends the shared `CommonSettings` (ClickHouse, metrics targets); a field `x` is
`DLR_X`. `dlr dashboard` builds it once and passes it to
`ingress.dashboard.app.create_app`; nothing here does I/O.
"""

from __future__ import annotations

from pydantic import Field

from schemas.settings import CommonSettings

__all__ = ["DashboardSettings"]


class DashboardSettings(CommonSettings):
    """Everything `dlr dashboard` reads. Field name `x` is environment variable `DLR_X`."""

    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8090
    dashboard_query_timeout_s: float = Field(
        15.0, gt=0, description="ClickHouse bound of one JSON endpoint before a 503."
    )
    dashboard_scrape_timeout_s: float = Field(
        2.0, gt=0, description="Bound of one service's /healthz or /metrics for the health view."
    )
