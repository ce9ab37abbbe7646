"""Free TCP ports for servers the tests and benchmarks start, chosen outside the ephemeral range.

Asking the kernel for port 0 returns a port of the ephemeral range, the same range every
outgoing connection takes its local port from. Between choosing such a port and a server
binding it, any `connect()` on the machine may take it: a Kafka node started first, dialling
its peers' controller ports, once took the port a second node was about to listen on
(BindException, "Address already in use"). Ports below the ephemeral range are never handed
out implicitly, so only another listener can take them, and `free_ports` checks for that.
Nor does it hand out again one of the ports it handed out last (`RECENT`): a caller that
chooses several ports before starting any server (a pipeline's seven services) got the same
one twice now and then, and the second server to bind it failed.
"""

from __future__ import annotations

import random
import socket
from collections import deque
from pathlib import Path

_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: Below this, ports are well known or registered by common services (8080, 8123, 9092, ...).
LOWEST = 20000
#: How many of the latest ports handed out are not handed out again: they may not be bound
#: yet. Older ones are bound by now or free again.
RECENT = 256
_recent: deque[int] = deque(maxlen=RECENT)


def ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's default when it cannot be read)."""
    try:
        return int(_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(n: int = 1, host: str = "127.0.0.1") -> int:
    """The first of `n` consecutive ports nobody listens on, all below the ephemeral range."""
    high = ephemeral_low() - n
    if high <= LOWEST:  # an unusual kernel setting: any port above LOWEST (the race can return)
        high = 65535 - n
    recent = set(_recent)
    for _ in range(500):
        base = random.randint(LOWEST, high)
        if not recent.isdisjoint(range(base, base + n)):
            continue
        sockets = []
        try:
            for port in range(base, base + n):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind((host, port))
            _recent.extend(range(base, base + n))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {n} consecutive free ports in {LOWEST}..{high + n}")


def free_port(host: str = "127.0.0.1") -> int:
    """One port nobody listens on, below the ephemeral range."""
    return free_ports(1, host)
