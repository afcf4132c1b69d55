"""The broker model of one node: virtual hosts and users.  No sockets, no asyncio."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from warrenmq.amqp.errors import NotFound, PreconditionFailed
from warrenmq.broker.queue import Backlog, Queue, Scheduler
from warrenmq.broker.users import UserStore
from warrenmq.broker.vhost import Storage, VHost


class Broker:
    def __init__(self, scheduler: Scheduler | None = None, storage: Storage | None = None) -> None:
        self.scheduler = scheduler
        self.storage = storage
        self.vhosts: dict[str, VHost] = {}
        self.users = UserStore()
        self.backlog_factory: Callable[[Queue], Backlog] | None = None
        self.sequence = itertools.count(1)  # message ids: node-wide publish order
        self.vhost_added: list[Callable[[VHost], None]] = []  # hooks (e.g. the cluster's)

    def add_vhost(self, name: str) -> VHost:
        vhost = self.vhosts.get(name)
        if vhost is None:
            vhost = self.vhosts[name] = VHost(name, self.scheduler, self.storage, self.next_seq)
            vhost.backlog_factory = self.backlog_factory
            for hook in self.vhost_added:
                hook(vhost)
            if self.storage is not None:
                self.storage.definitions_changed()
        return vhost

    def next_seq(self) -> int:
        return next(self.sequence)

    def vhost(self, name: str) -> VHost:
        vhost = self.vhosts.get(name)
        if vhost is None:
            raise NotFound(f"no vhost '{name}'")
        return vhost

    def delete_vhost(self, name: str) -> None:
        vhost = self.vhosts.pop(name, None)
        if vhost is None:
            raise NotFound(f"no vhost '{name}'")
        for queue in list(vhost.queues.values()):
            vhost.remove_queue(queue)
        for exchange in vhost.exchanges.values():
            exchange.deleted = True
            exchange.detach()  # a delayed exchange's pending messages go with the vhost
        for key in [k for k in self.users.permissions if k[1] == name]:
            del self.users.permissions[key]
        if self.storage is not None:
            self.storage.definitions_changed()

    def ensure_default(self, user: str = "guest", password: str = "guest", vhost: str = "/") -> None:
        """First start: the default vhost and user, as RabbitMQ creates them."""
        if not self.vhosts:
            self.add_vhost(vhost)
        if not self.users.users:
            if vhost not in self.vhosts:
                raise PreconditionFailed(f"default vhost '{vhost}' missing")
            self.users.add_default(user, password, vhost)
