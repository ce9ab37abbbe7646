"""The sender's API settings: where it listens, its keys, its limits.

Extends the shared `CommonSettings` (Kafka, ClickHouse, topics); a field `x` is `DLR_X`.
`dlr api` builds it once and passes it to `ingress.api.app.create_app`; nothing here does
I/O.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from schemas.settings import CommonSettings

__all__ = ["ApiSettings"]


class ApiSettings(CommonSettings):
    """Everything `dlr api` reads. Field name `x` is environment variable `DLR_X`."""

    api_host: str = "127.0.0.1"
    api_port: int = 8070
    api_keys: str = Field(
        "",
        description='JSON list of keys: [{"id": "shop", "sha256": "<hex of the token>", '
        '"scopes": ["messages:write", "messages:read"], "tenant": "acme"}] (tenant optional).',
    )
    api_keys_file: Path | None = Field(
        None, description="The same JSON list in a file (e.g. a mounted Kubernetes secret)."
    )
    dev_secrets: bool = Field(
        False, description="Local mode: create/reuse a development key in data_dir."
    )
    api_max_body_bytes: int = Field(1024 * 1024, gt=0, description="Request body limit.")
    api_max_batch: int = Field(500, ge=1, description="Messages per registration request.")
    api_rate_limit_per_s: float = Field(
        200.0, ge=0, description="Requests per second per API key; 0 = off."
    )
    api_rate_limit_burst: int = Field(400, ge=1)
    api_produce_timeout_s: float = Field(5.0, gt=0, description="Kafka ack bound before a 503.")
    api_query_timeout_s: float = Field(5.0, gt=0, description="ClickHouse bound before a 503.")
    api_max_lookup: int = Field(100, ge=1, description="Messages per client_ref lookup.")
    api_max_check: int = Field(
        1000, ge=1, description="Numbers per POST /v1/suppressions:check request."
    )
    api_erase_timeout_s: float = Field(
        300.0, gt=0, description="Bound of one erasure's ClickHouse mutations."
    )
