"""Permission checks: AMQP operations mapped to configure/write/read as RabbitMQ maps them.

RabbitMQ's mapping (rabbit_channel.erl, the same in 3.10 and 3.13), which the channel follows:

=========================================  ===================================================
operation                                  permissions
=========================================  ===================================================
exchange.declare (not passive)             configure on the exchange; if it is created with an
                                           ``alternate-exchange``: read on it, write on the AE
exchange.declare passive                   none
exchange.delete                            configure on the exchange
exchange.bind / unbind                     write on the destination, read on the source
queue.declare (not passive)                configure on the queue (a server-named queue: on its
                                           generated ``amq.gen-`` name); if it is created with
                                           ``x-dead-letter-exchange``: read on it, write on the DLX
queue.declare passive                      none
queue.delete                               configure on the queue
queue.purge                                read on the queue
queue.bind / unbind                        write on the queue, read on the exchange
basic.publish                              write on the exchange
basic.consume / basic.get                  read on the queue
=========================================  ===================================================

Permissions are checked on the name before the object is looked up (a missing queue without
read permission is a 403, not a 404).  The default exchange is ``amq.default`` here, and an
empty pattern means ``^$`` (rabbit_access_control / rabbit_auth_backend_internal).  Topic
permissions (``check_topic``) apply to topic exchanges only, to the routing key, and grant
everything when the user has none for that exchange.

``version`` changes whenever permissions change, so that channels may cache positive answers
(publishing checks the write permission once per exchange, not once per message).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from warrenmq.amqp.errors import AccessRefused, NotAllowed

if TYPE_CHECKING:
    from warrenmq.broker.users import UserStore
    from warrenmq.broker.vhost import VHost
    from warrenmq.server.connection import Connection

DEFAULT_EXCHANGE = "amq.default"


def resource_name(kind: str, name: str) -> str:
    """The name a permission is matched against: the default exchange is amq.default."""
    return DEFAULT_EXCHANGE if not name and kind == "exchange" else name


class AccessControl:
    def __init__(self, users: UserStore) -> None:
        self.users = users
        self.version = 0

    def changed(self) -> None:
        self.version += 1

    def check_vhost(self, conn: Connection, vhost: VHost) -> None:
        """connection.open: the user needs a permission entry (any) for the vhost."""
        user = conn.user
        assert user is not None
        if self.users.permission(user.name, vhost.name) is None:
            raise NotAllowed(f"access to vhost '{vhost.name}' refused for user '{user.name}'", 10, 40)

    def allowed(self, user: str, vhost: str, permission: str, kind: str, name: str) -> bool:
        granted = self.users.permission(user, vhost)
        if granted is None:
            return False
        return granted.allows(permission, resource_name(kind, name))

    def check(self, conn: Connection, permission: str, kind: str, name: str) -> None:
        user = conn.user
        vhost = conn.vhost
        assert user is not None and vhost is not None
        if not self.allowed(user.name, vhost.name, permission, kind, name):
            raise AccessRefused(
                f"access to {kind} '{resource_name(kind, name)}' in vhost '{vhost.name}' refused for user '{user.name}'"
            )

    def check_topic(self, conn: Connection, permission: str, exchange: str, routing_key: str) -> None:
        """Topic authorisation (publish: write, bind: read) on a topic exchange's routing key.
        The caller checks the exchange is of type topic, as RabbitMQ applies it to no other."""
        user = conn.user
        vhost = conn.vhost
        assert user is not None and vhost is not None
        if not self.users.topic_allows(user.name, vhost.name, exchange, permission, routing_key):
            raise AccessRefused(
                f"access to topic '{routing_key}' in exchange '{exchange}' in vhost '{vhost.name}' "
                f"refused for user '{user.name}'"
            )
