"""The state a channel's parts share, declared once so that each part type-checks alone."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from warrenmq.amqp import spec
    from warrenmq.amqp.errors import AMQPError
    from warrenmq.broker.queue import Queue
    from warrenmq.broker.vhost import VHost
    from warrenmq.server.connection import Connection
    from warrenmq.server.node import Node


class ChannelBase:
    conn: Connection
    number: int
    node: Node
    vhost: VHost
    state: int
    active: bool
    flow_active: bool
    expecting_content: bool
    tx: bool
    reply_address: str
    held_cancels: list[str] | None
    tx_settles: list[tuple[str, int, bool, bool]]

    # Implemented by the parts (channel.py, publishing.py, consuming.py).
    def send(self, method: spec.Method) -> None:
        raise NotImplementedError

    def check_configure(self, kind: str, name: str) -> None:
        raise NotImplementedError

    def check_write(self, kind: str, name: str) -> None:
        raise NotImplementedError

    def check_read(self, kind: str, name: str) -> None:
        raise NotImplementedError

    def lookup_queue(self, name: str) -> Queue:
        raise NotImplementedError

    def _queue_name(self, name: str) -> str:
        raise NotImplementedError

    def write_content(self, method_payload: bytes, header: bytes, body: bytes) -> None:
        raise NotImplementedError

    def settle(self, kind: str, tag: int, multiple: bool, requeue: bool) -> None:
        raise NotImplementedError

    def update_active(self) -> None:
        raise NotImplementedError

    def fail(self, error: AMQPError) -> None:
        raise NotImplementedError
