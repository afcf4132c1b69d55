"""A few seconds of the socket-level fuzzer (``make fuzz`` runs it for a minute and more)."""

from __future__ import annotations

from tests.fuzz import socket_fuzz


def test_broker_survives_a_short_socket_fuzz() -> None:
    """Random and mutated frames over 20 connections at once for 4 s: afterwards the broker
    serves a normal client, stayed under 512 MiB, and logged no traceback."""
    assert socket_fuzz.main(["--duration", "4", "--connections", "20", "--seed", "7", "--max-rss-mb", "512"]) == 0
