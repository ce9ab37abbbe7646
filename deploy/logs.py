"""Structured JSON logs for every process, with phone numbers masked before they leave.

Code logs ids and outcomes, never payloads; as a second line of defence every message and
string field passes through `mask_pii`, which keeps only the last two digits of anything
that looks like a phone number.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import orjson

from schemas.phone import mask_number

_PHONE = re.compile(r"(?<![\w.])\+?\d[\d\s().-]{6,}\d(?![\w.])")
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def mask_pii(text: str) -> str:
    """Mask every phone-number-like run in free text (`schemas.phone.mask_number`)."""
    return _PHONE.sub(lambda m: mask_number(m.group(0)), text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": mask_pii(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = mask_pii(value) if isinstance(value, str) else value
        if record.exc_info:
            out["exc"] = mask_pii(self.formatException(record.exc_info))
        return orjson.dumps(out, default=str).decode()


def setup(level: str = "INFO") -> None:
    """Route the root logger to stderr as JSON (idempotent)."""
    logging.Formatter.converter = __import__("time").gmtime
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
