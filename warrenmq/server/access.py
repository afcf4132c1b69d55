"""Permission checks: AMQP operations mapped to configure/write/read as RabbitMQ maps them.

``version`` changes whenever permissions change, so that channels may cache positive answers
(publishing checks the write permission once per exchange, not once per message).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from warrenmq.amqp.errors import AccessRefused

if TYPE_CHECKING:
    from warrenmq.broker.users import UserStore
    from warrenmq.server.connection import Connection


class AccessControl:
    def __init__(self, users: UserStore) -> None:
        self.users = users
        self.version = 0

    def changed(self) -> None:
        self.version += 1

    def check(self, conn: Connection, permission: str, kind: str, name: str) -> None:
        user = conn.user
        vhost = conn.vhost
        assert user is not None and vhost is not None
        granted = self.users.permission(user.name, vhost.name)
        pattern = getattr(granted, permission) if granted is not None else ""
        # Server-named queues and the default exchange follow RabbitMQ's rules: the
        # default exchange is named "amq.default" for permission purposes.
        resource = name if name or kind != "exchange" else "amq.default"
        if granted is None or not granted._allows(pattern, resource):
            raise AccessRefused(f"access to {kind} '{name}' in vhost '{vhost.name}' refused for user '{user.name}'")
