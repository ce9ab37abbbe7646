"""`dlr alerts` settings: how often, over which windows, what counts, who is told.

Extends the shared `CommonSettings` (Kafka, ClickHouse, topics, metrics targets); a field
`x` is `DLR_X`. `dlr alerts` builds it once and passes it to
`sinks.alerts.service.main_async`; nothing here does I/O.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from schemas.settings import CommonSettings, split_list

__all__ = ["AlertSettings"]


class AlertSettings(CommonSettings):
    """Everything `dlr alerts` reads. Field name `x` is environment variable `DLR_X`."""

    # -- when ---------------------------------------------------------------------------
    alert_interval_s: float = Field(60.0, gt=0, description="Seconds between evaluations.")
    alert_window_s: int = Field(
        3600,
        ge=1,
        description="ClickHouse rules compare the window [now - W, now) with the one before.",
    )
    alert_for_s: float = Field(
        300.0,
        ge=0,
        description="A condition must hold this long before its alert fires, and its clear "
        "condition as long before it resolves (0: at the first evaluation).",
    )
    alert_renotify_s: float = Field(
        14400.0, gt=0, description="A firing alert is sent again after this long."
    )
    # -- business rules over ClickHouse -------------------------------------------------
    alert_drop: float = Field(
        0.10, gt=0, lt=1, description="Relative delivery-rate drop that fires (0.1 = 10 %)."
    )
    alert_min_attempts: int = Field(
        100, ge=1, description="Attempts a group needs in BOTH windows before it can page."
    )
    alert_spike_factor: float = Field(
        2.0, gt=1, description="A failure reason's share must grow this many times."
    )
    alert_spike_min: int = Field(
        20, ge=1, description="... and its messages rise by at least this many."
    )
    alert_stuck_after_s: int = Field(
        21600, ge=1, description="A message not final this long after its first report is stuck."
    )
    alert_stuck_max: int = Field(
        100, ge=1, description="Stuck messages per provider (one window's worth) that fire."
    )
    # -- pipeline health from the services' /metrics ----------------------------------------
    alert_metrics_window_s: float = Field(
        300.0, gt=0, description="Counter rates are taken over this many seconds of scrapes."
    )
    alert_scrape_timeout_s: float = Field(5.0, gt=0)
    alert_min_requests: int = Field(
        100, ge=1, description="Ingress requests in the metrics window before a share counts."
    )
    alert_error_share: float = Field(
        0.01, gt=0, le=1, description="Share of 5xx (or of broker_unavailable) that fires."
    )
    alert_unauthorized_min: int = Field(
        50, ge=1, description="401s of one provider in the metrics window that can fire ..."
    )
    alert_unauthorized_share: float = Field(
        0.1, gt=0, le=1, description="... when they are at least this share of its requests."
    )
    alert_max_lag: int = Field(
        10000, ge=1, description="Records a consumer may be behind (sustained: alert_for_s)."
    )
    # -- who is told --------------------------------------------------------------------
    alert_webhook_urls: str = Field(
        "", description="Comma-separated URLs every state change is POSTed to (signed)."
    )
    alert_signing_secrets: str = Field(
        "", description="Comma-separated whsec_<base64> secrets; the first signs (a secret)."
    )
    alertmanager_url: str | None = Field(
        None, description="Alertmanager base URL; active alerts are pushed to its v2 API."
    )
    alert_webhook_attempts: int = Field(8, ge=1, description="Attempts per notification.")
    alert_webhook_retry_total_s: float = Field(
        120.0, gt=0, description="No attempt starts later than this after the first one."
    )
    alert_webhook_retry_initial_s: float = Field(0.5, gt=0)
    alert_webhook_retry_max_s: float = Field(30.0, gt=0)
    alert_webhook_timeout_s: float = Field(10.0, gt=0)
    # -- the process --------------------------------------------------------------------
    alert_group: str = Field(
        "dlr-alerts",
        description="Prefix of its consumer groups (-history, -notify-<endpoint>).",
    )
    alert_metrics_host: str = Field("127.0.0.1", description="0.0.0.0 in containers.")
    alert_metrics_port: int = 9112

    @field_validator("alert_webhook_urls")
    @classmethod
    def _urls(cls, value: str) -> str:
        for url in split_list(value):
            if not url.startswith(("http://", "https://")):
                raise ValueError("DLR_ALERT_WEBHOOK_URLS: not an http(s) URL")
        return value

    @property
    def webhook_urls(self) -> tuple[str, ...]:
        """`alert_webhook_urls` as a tuple."""
        return split_list(self.alert_webhook_urls)

    @property
    def alert_secrets(self) -> tuple[str, ...]:
        """`alert_signing_secrets` as a tuple, the signing one first."""
        return split_list(self.alert_signing_secrets)
