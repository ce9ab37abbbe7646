"""The ingress's settings: where it listens, how it verifies, what it refuses.

Extends the shared `CommonSettings` (Kafka, topics); a field `x` is `DLR_X`. Built once
by `dlr ingress` (or by `create_app()` from the environment under `uvicorn --factory`)
and passed down; nothing here does I/O.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from schemas.settings import CommonSettings, split_list

__all__ = ["IngressSettings"]


class IngressSettings(CommonSettings):
    """Everything the webhook ingress reads. Field name `x` is environment variable `DLR_X`."""

    ingress_host: str = "127.0.0.1"
    ingress_port: int = 8080
    public_base_url: str | None = Field(
        None, description="Externally visible base URL (scheme://host[:port]) for signed URLs."
    )
    trusted_proxies: str = Field("", description="CIDRs whose X-Forwarded-* headers are trusted.")
    replay_window_s: float = Field(300.0, gt=0)
    max_body_bytes: int = Field(256 * 1024, gt=0)
    produce_timeout_s: float = Field(5.0, gt=0, description="Kafka ack bound before a 503.")
    rate_limit_per_s: float = Field(0.0, ge=0, description="Per-provider requests/s; 0 = off.")
    rate_limit_burst: int = Field(1000, ge=1)
    callback_token_secrets: str = Field("", description="Secrets for per-message callback tokens.")
    secrets_file: Path | None = Field(
        None,
        description="JSON file {provider: {secrets, public_keys, basic, options}} merged "
        "with the DLR_<PROVIDER>_* variables (e.g. a mounted Kubernetes secret).",
    )
    dev_secrets: bool = Field(
        False, description="Local mode: create/reuse development secrets under data_dir."
    )

    # -- per-provider credentials (comma-separated lists) --------------------------------
    generic_secrets: str = ""
    twilio_secrets: str = ""
    vonage_secrets: str = ""
    vonage_signature_method: Literal["md5", "md5hash", "sha1", "sha256", "sha512"] = "md5hash"
    plivo_secrets: str = ""
    telnyx_public_keys: str = ""
    sinch_secrets: str = ""
    infobip_secrets: str = ""
    infobip_credentials: str = Field("", description="user:password list (Basic auth option).")
    bird_secrets: str = ""
    bandwidth_credentials: str = Field("", description="user:password list for Basic auth.")
    sns_topic_arns: str = Field(
        "", description="Accepted SNS TopicArns; empty = the SNS route refuses everything."
    )
    standard_secrets: str = ""
    standard_public_keys: str = ""
    generic_allow_ips: str = ""
    twilio_allow_ips: str = ""
    vonage_allow_ips: str = ""
    plivo_allow_ips: str = ""
    telnyx_allow_ips: str = ""
    sinch_allow_ips: str = ""
    infobip_allow_ips: str = ""
    bird_allow_ips: str = ""
    bandwidth_allow_ips: str = ""
    sns_allow_ips: str = ""
    standard_allow_ips: str = ""

    def provider_setting(self, provider: str, suffix: str) -> tuple[str, ...]:
        """The list-valued setting `<provider>_<suffix>` (empty when not defined)."""
        value = getattr(self, f"{provider}_{suffix}", "")
        return split_list(value) if isinstance(value, str) else ()
