"""NodeAdmin's vhosts, users, permissions, policies and definitions; changes are persisted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from warrenmq import admin, definitions
from warrenmq.broker.policies import Policy, PolicyError
from warrenmq.broker.users import HASHING_SHA256, Permission, User, hash_password
from warrenmq.server.admin.base import AdminBase, amqp_errors, user_info

if TYPE_CHECKING:
    pass

VHOST_LIMITS = ("max-connections", "max-queues")  # RabbitMQ 3.10's vhost limits


class AccessOps(AdminBase):
    """Vhosts, users, permissions, policies and definitions."""

    def vhosts(self) -> list[admin.VHostInfo]:
        return [self._vhost_info(v) for v in self._vhosts(None)]

    def vhost(self, name: str) -> admin.VHostInfo:
        return self._vhost_info(self._vhost(name))

    def add_vhost(
        self, name: str, description: str | None = None, tags: list[str] | None = None, as_user: str | None = None
    ) -> bool:
        if not name:
            raise admin.BadRequest("vhost name must not be empty")
        created = name not in self.broker.vhosts
        v = self.broker.add_vhost(name)
        self._hook(v)
        if description is not None:
            v.description = description
        if tags is not None:
            v.tags = list(tags)
        if created and as_user is not None and as_user in self.broker.users.users:
            # As RabbitMQ's HTTP API: the creator may use what it created.
            self.broker.users.permissions[(as_user, name)] = Permission(as_user, name)
            self.n.access.changed()
        self.n.definitions_changed()
        return created

    def delete_vhost(self, name: str) -> None:
        v = self._vhost(name)
        for conn in self._open_connections():
            if conn.vhost is v:
                conn.close(320, f"vhost '{name}' is deleted")
        with amqp_errors():
            self.broker.delete_vhost(name)
        topic = self.broker.users.topic_permissions
        for key in [k for k in topic if k[1] == name]:
            del topic[key]
        self._retired.pop(name, None)
        self.n.access.changed()
        self.n.definitions_changed()

    def users(self) -> list[admin.UserInfo]:
        return [user_info(u) for u in self.broker.users.users.values()]

    def user(self, name: str) -> admin.UserInfo:
        user = self.broker.users.users.get(name)
        if user is None:
            raise admin.NotFound(f"no user '{name}'")
        return user_info(user)

    def put_user(
        self,
        name: str,
        tags: list[str],
        password: str | None = None,
        password_hash: str | None = None,
        hashing_algorithm: str | None = None,
    ) -> bool:
        if not name:
            raise admin.BadRequest("user name must not be empty")
        if password is not None and password_hash is not None:
            raise admin.BadRequest("both_password_and_password_hash_are_provided")
        users = self.broker.users.users
        existing = users.get(name)
        algorithm = hashing_algorithm or (existing.hashing_algorithm if existing else HASHING_SHA256)
        if password is not None:
            algorithm = HASHING_SHA256
            stored = hash_password(password)
        elif password_hash is not None:
            stored = password_hash
        else:
            stored = ""  # as RabbitMQ: no password, no password login
        users[name] = User(name, stored, [t for t in tags if t], algorithm)
        self.n.definitions_changed()
        return existing is None

    def delete_user(self, name: str) -> None:
        store = self.broker.users
        if store.users.pop(name, None) is None:
            raise admin.NotFound(f"no user '{name}'")
        for key in [k for k in store.permissions if k[0] == name]:
            del store.permissions[key]
        for tkey in [k for k in store.topic_permissions if k[0] == name]:
            del store.topic_permissions[tkey]
        self.n.access.changed()
        self.n.definitions_changed()

    def permissions(self, vhost: str | None = None, user: str | None = None) -> list[admin.PermissionInfo]:
        return [
            admin.PermissionInfo(p.user, p.vhost, p.configure, p.write, p.read)
            for p in self.broker.users.permissions.values()
            if (vhost is None or p.vhost == vhost) and (user is None or p.user == user)
        ]

    def set_permissions(self, user: str, vhost: str, configure: str, write: str, read: str) -> bool:
        if user not in self.broker.users.users:
            raise admin.NotFound(f"no user '{user}'")
        self._vhost(vhost)
        for pattern in (configure, write, read):
            _check_regex(pattern)
        key = (user, vhost)
        created = key not in self.broker.users.permissions
        self.broker.users.permissions[key] = Permission(user, vhost, configure, write, read)
        self.n.access.changed()
        self.n.definitions_changed()
        return created

    def clear_permissions(self, user: str, vhost: str) -> None:
        if self.broker.users.permissions.pop((user, vhost), None) is None:
            raise admin.NotFound(f"no permissions for user '{user}' in vhost '{vhost}'")
        self.n.access.changed()
        self.n.definitions_changed()

    def topic_permissions(self, vhost: str | None = None, user: str | None = None) -> list[admin.TopicPermissionInfo]:
        return [
            admin.TopicPermissionInfo(u, v, x, write, read)
            for (u, v, x), (write, read) in self.broker.users.topic_permissions.items()
            if (vhost is None or v == vhost) and (user is None or u == user)
        ]

    def set_topic_permissions(self, user: str, vhost: str, exchange: str, write: str, read: str) -> bool:
        if user not in self.broker.users.users:
            raise admin.NotFound(f"no user '{user}'")
        self._vhost(vhost)
        for pattern in (write, read):
            _check_regex(pattern)
        key = (user, vhost, exchange)
        created = key not in self.broker.users.topic_permissions
        self.broker.users.topic_permissions[key] = (write, read)
        self.n.access.changed()
        self.n.definitions_changed()
        return created

    def clear_topic_permissions(self, user: str, vhost: str, exchange: str | None = None) -> None:
        store = self.broker.users.topic_permissions
        keys = [k for k in store if k[0] == user and k[1] == vhost and (exchange is None or k[2] == exchange)]
        if not keys:
            raise admin.NotFound(f"no topic permissions for user '{user}' in vhost '{vhost}'")
        for key in keys:
            del store[key]
        self.n.access.changed()
        self.n.definitions_changed()

    def set_vhost_limit(self, vhost: str, name: str, value: int) -> None:
        if name not in VHOST_LIMITS:
            raise admin.BadRequest(f'Validation failed\n\nUnrecognised terms [{{<<"{name}">>,{value}}}] in limits\n')
        self._vhost(vhost).limits[name] = int(value)
        self.n.definitions_changed()

    def clear_vhost_limit(self, vhost: str, name: str) -> None:
        self._vhost(vhost).limits.pop(name, None)
        self.n.definitions_changed()

    def policies(self, vhost: str | None = None) -> list[admin.PolicyInfo]:
        return [
            admin.PolicyInfo(v.name, p.name, p.pattern, p.apply_to, dict(p.definition), p.priority)
            for v in self._vhosts(vhost)
            for p in v.policies.values()
        ]

    def set_policy(
        self,
        vhost: str,
        name: str,
        pattern: str,
        definition: dict[str, Any],
        priority: int = 0,
        apply_to: str = "all",
    ) -> bool:
        v = self._vhost(vhost)
        try:
            policy = Policy(name, pattern, dict(definition), int(priority), apply_to)
        except (PolicyError, ValueError, TypeError) as exc:
            raise admin.BadRequest(f"Validation failed\n\n{exc}\n") from None
        created = name not in v.policies
        with amqp_errors():
            v.set_policy(policy)
        return created

    def clear_policy(self, vhost: str, name: str) -> None:
        v = self._vhost(vhost)
        if name not in v.policies:
            raise admin.NotFound(f"policy '{name}' not found in vhost '{vhost}'")
        with amqp_errors():
            v.clear_policy(name)

    def export_definitions(self, vhost: str | None = None) -> dict[str, Any]:
        if vhost is not None:
            self._vhost(vhost)
        # As RabbitMQ's export: every queue and exchange but exclusive queues, durable or not.
        doc = definitions.export(self.broker, durable_only=False, vhost=vhost)
        if vhost is None:
            return doc
        # A vhost's export names no vhost in its queues, exchanges and bindings.
        out: dict[str, Any] = {"rabbit_version": doc.get("rabbit_version", ""), "parameters": [], "policies": []}
        out["policies"] = doc.get("policies", [])
        for key in ("queues", "exchanges", "bindings"):
            out[key] = [{k: v for k, v in item.items() if k != "vhost"} for item in doc.get(key, [])]
        return out

    def import_definitions(self, doc: dict[str, Any], vhost: str | None = None) -> None:
        if not isinstance(doc, dict):
            raise admin.BadRequest("definitions must be a JSON object")
        if vhost is not None:
            self._vhost(vhost)
        try:
            with amqp_errors():
                definitions.import_(self.broker, doc, vhost=vhost)
        except (KeyError, TypeError, ValueError) as exc:
            raise admin.BadRequest(f"invalid definitions: {exc}") from None
        finally:
            self.n.access.changed()
            self.n.definitions_changed()


def _check_regex(pattern: str) -> None:
    import re

    try:
        re.compile(pattern)
    except re.error as exc:
        raise admin.BadRequest(f"invalid regular expression '{pattern}': {exc}") from None
