"""Consumers and the one thing a queue needs from whoever receives its deliveries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from warrenmq.broker.message import Message
    from warrenmq.broker.queue import Queue


class DeliveryTarget(Protocol):
    """What a queue delivers into (a channel, in the server).

    ``active`` is a plain attribute, read on every dispatch: false while the channel may not
    take deliveries (flow off, socket not draining, channel-wide prefetch reached).
    """

    active: bool

    def deliver(self, consumer: Consumer, message: Message) -> None: ...

    def consumer_cancelled(self, consumer: Consumer) -> None:
        """The queue dropped this consumer (queue deleted, or failover)."""
        ...

    def queue_settings_changed(self, queue: Queue) -> None:
        """A policy changed the settings of a queue this target consumes from."""
        ...


class Consumer:
    __slots__ = (
        "arguments",
        "cookie",
        "delivered",
        "exclusive",
        "no_ack",
        "prefetch",
        "priority",
        "queue",
        "tag",
        "target",
        "unacked",
    )

    def __init__(
        self,
        tag: str,
        queue: Queue | None,
        target: DeliveryTarget,
        no_ack: bool = False,
        exclusive: bool = False,
        prefetch: int = 0,
        priority: int = 0,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        self.tag = tag
        self.queue = queue
        self.target = target
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.prefetch = prefetch  # 0 = unlimited
        self.unacked = 0
        self.priority = priority
        self.arguments = arguments or {}
        self.delivered = 0
        self.cookie: Any = None  # the target's own per-consumer data (the server: encoded tag)

    def has_credit(self) -> bool:
        return (self.prefetch == 0 or self.unacked < self.prefetch) and self.target.active

    def __repr__(self) -> str:
        return f"<Consumer {self.tag!r} on {self.queue.name if self.queue else None!r}>"
