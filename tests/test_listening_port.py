"""The ports local servers (the tests', the benches', chaos's) listen on are chosen below the
kernel's ephemeral range, which outgoing connections take their local ports from."""

from __future__ import annotations

import socket

import pytest

from creditgate.storage import throwaway
from creditgate.storage.throwaway import LISTEN_PORTS_FROM, listening_port


def test_a_listening_port_is_free_and_below_the_ephemeral_range() -> None:
    low, _ = throwaway._ephemeral_ports()
    ports = {listening_port() for _ in range(50)}
    assert all(LISTEN_PORTS_FROM <= port < low for port in ports)
    assert len(ports) > 40  # at random, not one after another from the same start
    for port in list(ports)[:5]:
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))
            server.listen()


def test_a_taken_port_is_not_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", LISTEN_PORTS_FROM))
        # Room for one candidate only below the range: every draw is the taken port, and
        # after them the kernel's choice is taken instead.
        monkeypatch.setattr(
            throwaway, "_ephemeral_ports", lambda: (LISTEN_PORTS_FROM + 1_000, 60_999)
        )
        monkeypatch.setattr(throwaway.secrets, "randbelow", lambda _n: 0)
        port = listening_port()
        assert port != LISTEN_PORTS_FROM
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))


def test_without_room_below_the_range_the_kernel_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throwaway, "_ephemeral_ports", lambda: (LISTEN_PORTS_FROM + 10, 60_999))
    port = listening_port()
    assert not LISTEN_PORTS_FROM <= port < LISTEN_PORTS_FROM + 10
