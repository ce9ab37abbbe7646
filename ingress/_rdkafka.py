"""The one private piece of confluent-kafka the ingress uses, and why.

librdkafka can tell an event loop that delivery reports are waiting: it writes a byte to a
file descriptor when its main queue (the one `Producer.poll()` serves) goes from empty to
not empty (`rd_kafka_queue_io_event_enable`, public C API, documented for exactly this).
confluent-kafka does not expose it, so without it the loop must guess when to poll: near
the ingress's limit it polled on every turn, 47 times per request of which 99.8 % found
nothing (a scratch count, pure Python, 64 connections), and the spinning loop competed
for the core with librdkafka's own threads. With the descriptor the loop sleeps until a
report is there.

What this module relies on, checked against confluent-kafka 2.16.1 (librdkafka 2.16.0):

1. the librdkafka shared library confluent-kafka's wheel bundles (`confluent_kafka.libs/
   librdkafka-*.so*`), already loaded by the import: `ctypes.CDLL` on that path gets the
   same copy, whose public functions `rd_kafka_type`, `rd_kafka_name`,
   `rd_kafka_queue_get_main`, `rd_kafka_queue_io_event_enable` and
   `rd_kafka_queue_destroy` are called;
2. the `rd_kafka_t *` of a `confluent_kafka.Producer`: the first field after the Python
   object header of confluent-kafka's `Handle` struct (`confluent_kafka.h`). It is read
   only when the installed version is the checked one, and used only when librdkafka
   says the handle is a producer named after the `client.id` we gave it.

Anything else (another version, a platform without the bundled library, a check that
fails) returns False: the producer polls as before, slower and as correct.
`tests/ingress/test_rdkafka_boundary.py` fails when an upgrade changes the version.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Final

import confluent_kafka

__all__ = ["CHECKED_VERSION", "disable_wakeups", "enable_wakeups"]

log = logging.getLogger("dlr.ingress")

#: The confluent-kafka release whose `Handle` layout was checked.
CHECKED_VERSION: Final = "2.16.1"
_PRODUCER: Final = 0  # rd_kafka_type_t RD_KAFKA_PRODUCER
#: What librdkafka writes to the descriptor; the loop reads and discards it.
_PAYLOAD: Final = ctypes.create_string_buffer(b"r", 1)
_library: list[ctypes.CDLL] = []  # loaded on first use


def _lib() -> ctypes.CDLL | None:
    """The librdkafka confluent-kafka loaded, with the prototypes of what is called."""
    if _library:
        return _library[0]
    package = Path(confluent_kafka.__file__).parent
    found = sorted(package.parent.glob(f"{package.name}.libs/librdkafka-*.so*"))
    if not found:
        return None
    lib = ctypes.CDLL(str(found[0]))
    lib.rd_kafka_type.restype = ctypes.c_int
    lib.rd_kafka_type.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_name.restype = ctypes.c_char_p
    lib.rd_kafka_name.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_queue_get_main.restype = ctypes.c_void_p
    lib.rd_kafka_queue_get_main.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_queue_io_event_enable.restype = None
    lib.rd_kafka_queue_io_event_enable.argtypes = [
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_size_t,
    ]
    lib.rd_kafka_queue_destroy.restype = None
    lib.rd_kafka_queue_destroy.argtypes = [ctypes.c_void_p]
    _library.append(lib)
    return lib


def _handle(lib: ctypes.CDLL, producer: confluent_kafka.Producer, client_id: str) -> int | None:
    """The producer's `rd_kafka_t *`, when librdkafka confirms it is this producer."""
    if version("confluent-kafka") != CHECKED_VERSION or sys.implementation.name != "cpython":
        return None
    header = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)  # refcnt, type
    rk = ctypes.c_void_p.from_address(id(producer) + header).value
    if not rk or lib.rd_kafka_type(rk) != _PRODUCER:
        return None
    name = lib.rd_kafka_name(rk) or b""
    if not name.startswith(f"{client_id}#producer-".encode()):
        return None
    return rk


def _set(producer: confluent_kafka.Producer, client_id: str, fd: int) -> bool:
    lib = _lib()
    if lib is None:
        return False
    rk = _handle(lib, producer, client_id)
    if rk is None:
        return False
    queue = lib.rd_kafka_queue_get_main(rk)
    if not queue:
        return False
    try:
        if fd < 0:
            lib.rd_kafka_queue_io_event_enable(queue, -1, None, 0)
        else:
            lib.rd_kafka_queue_io_event_enable(queue, fd, _PAYLOAD, 1)
    finally:
        lib.rd_kafka_queue_destroy(queue)  # our reference; the queue is the client's
    return True


def enable_wakeups(producer: confluent_kafka.Producer, client_id: str, fd: int) -> bool:
    """Have librdkafka write to `fd` whenever reports wait for `poll()`; False (and the
    caller polls) where this module cannot vouch for the handle."""
    try:
        enabled = _set(producer, client_id, fd)
    except (OSError, AttributeError, ValueError) as exc:  # no such symbol, no library
        log.warning("kafka delivery wake-ups unavailable", extra={"error": repr(exc)})
        return False
    if not enabled:
        log.warning(
            "kafka delivery reports are polled",
            extra={"confluent_kafka": version("confluent-kafka"), "checked": CHECKED_VERSION},
        )
    return enabled


def disable_wakeups(producer: confluent_kafka.Producer, client_id: str) -> None:
    """Stop the writes (before the descriptor is closed)."""
    with contextlib.suppress(OSError, AttributeError, ValueError):
        _set(producer, client_id, -1)
