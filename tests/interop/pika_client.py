"""A pika connection to a test server with pika's default parameters (heartbeat as negotiated)."""

from __future__ import annotations

import pika


def connect(port: int) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
