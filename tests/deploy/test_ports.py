"""Local servers get ports below the ephemeral range: no outgoing connection takes them."""

from __future__ import annotations

import socket

import pytest

from deploy.local import ports


def test_ports_lie_below_the_ephemeral_range_and_are_free() -> None:
    for _ in range(50):
        base = ports.free_ports(6)
        assert base >= ports.LOWEST and base + 6 <= ports.ephemeral_low()
        for port in range(base, base + 6):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port))


def test_a_listening_port_is_never_handed_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", ports.free_port()))
        listener.listen()
        taken = listener.getsockname()[1]
        # Enough draws that a choice blind to listeners would land on `taken` in a window.
        bases = {ports.free_ports(200) for _ in range(300)}
    assert not any(base <= taken < base + 200 for base in bases)


def test_a_port_just_handed_out_is_not_handed_out_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pipeline chooses all its services' ports before any binds: none may repeat."""
    draws = iter([25000, 25000, 25001])
    monkeypatch.setattr("deploy.local.ports.random.randint", lambda low, high: next(draws))
    assert [ports.free_port(), ports.free_port()] == [25000, 25001]
