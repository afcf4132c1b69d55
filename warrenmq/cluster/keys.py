"""Where the cluster keeps what in etcd, and how a record is written.

Everything lives under ``/warren/<cluster>/``:

    nodes/<node>                 a running node (under its lease): link address, ports
    members/<node>               every node that ever joined (cluster_status's disc nodes)
    incarnation                  a counter: each node start takes the next number
    defs/vhost/<vhost>           definitions, in RabbitMQ's definitions format...
    defs/user/<user>
    defs/permission/<vhost>/<user>
    defs/topic-permission/<vhost>/<user>/<exchange>
    defs/policy/<vhost>/<name>
    defs/exchange/<vhost>/<name>   ...with arguments as their encoded field table, so that
    defs/queue/<vhost>/<name>      every node sees the exact wire types a client declared
    defs/binding/<vhost>/<source>/<kind>/<destination>/<digest>
    leader/<vhost>/<queue>       a quorum queue's leader and term
    candidate/<vhost>/<queue>/<node>   a member's bid in a takeover (under its lease)

Names are percent-encoded, so any vhost or queue name (slashes included) is one segment.
Message data never goes through etcd.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any
from urllib.parse import quote, unquote

from warrenmq.amqp.values import FieldTable, decode_table_typed, encode_table


class Keys:
    def __init__(self, cluster: str) -> None:
        self.root = f"/warren/{quote(cluster, safe='')}/".encode()

    def _key(self, *parts: str) -> bytes:
        return self.root + "/".join(quote(p, safe="") for p in parts).encode()

    def parse(self, key: bytes) -> list[str]:
        """The decoded segments of a key under the root."""
        return [unquote(p) for p in key[len(self.root) :].decode().split("/")]

    def node(self, name: str) -> bytes:
        return self._key("nodes", name)

    def member(self, name: str) -> bytes:
        return self._key("members", name)

    @property
    def incarnation(self) -> bytes:
        return self._key("incarnation")

    def vhost(self, name: str) -> bytes:
        return self._key("defs", "vhost", name)

    def user(self, name: str) -> bytes:
        return self._key("defs", "user", name)

    def permission(self, vhost: str, user: str) -> bytes:
        return self._key("defs", "permission", vhost, user)

    def topic_permission(self, vhost: str, user: str, exchange: str) -> bytes:
        return self._key("defs", "topic-permission", vhost, user, exchange)

    def policy(self, vhost: str, name: str) -> bytes:
        return self._key("defs", "policy", vhost, name)

    def exchange(self, vhost: str, name: str) -> bytes:
        return self._key("defs", "exchange", vhost, name)

    def queue(self, vhost: str, name: str) -> bytes:
        return self._key("defs", "queue", vhost, name)

    def binding(
        self, vhost: str, source: str, kind: str, destination: str, routing_key: str, arguments: FieldTable
    ) -> bytes:
        digest = hashlib.sha1(routing_key.encode() + b"\x00" + encode_table(arguments)).hexdigest()[:20]
        return self._key("defs", "binding", vhost, source, kind, destination, digest)

    def leader(self, vhost: str, queue: str) -> bytes:
        return self._key("leader", vhost, queue)

    def candidate(self, vhost: str, queue: str, node: str) -> bytes:
        return self._key("candidate", vhost, queue, node)


def quote_part(part: str) -> bytes:
    return quote(part, safe="").encode()


def dump(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), sort_keys=True).encode()


def load(value: bytes) -> dict[str, Any]:
    record = json.loads(value)
    if not isinstance(record, dict):
        raise ValueError("record is not an object")
    return record


def table_text(table: FieldTable | dict[str, Any] | None) -> str:
    """A field table as it travels in a record: its encoding, base64 (types kept exactly)."""
    return base64.b64encode(encode_table(table)[4:]).decode()


def table_from(text: str | None) -> FieldTable:
    if not text:
        return FieldTable()
    raw = base64.b64decode(text)
    return decode_table_typed(raw, 0, len(raw))
