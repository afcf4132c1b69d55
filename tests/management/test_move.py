"""POST /api/queues/{vhost}/{name}/actions {"action": "move"}: WarrenMQ's shovel-less move of
ready messages from one queue to another."""

from __future__ import annotations

from pathlib import Path

import pika

from tests.management.conftest import Api, free_port, q
from tests.server import ServerProcess


def _publish(connection: pika.BlockingConnection, queue: str, bodies: list[bytes], **props: object) -> None:
    ch = connection.channel()
    ch.confirm_delivery()
    for body in bodies:
        ch.basic_publish("", queue, body, pika.BasicProperties(**props))  # type: ignore[arg-type]
    ch.close()


def _bodies(connection: pika.BlockingConnection, queue: str) -> list[tuple[bytes, bool, dict | None]]:
    ch = connection.channel()
    out = []
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append((body, method.redelivered, props.headers))


def _move(api: Api, vhost: str, source: str, body: dict) -> tuple[int, dict]:
    reply = api.post(f"/api/queues/{q(vhost)}/{q(source)}/actions", {"action": "move", **body})
    return reply.status, reply.json


def test_move_keeps_order_and_properties(api: Api, vhost: str, amqp: pika.BlockingConnection) -> None:
    ch = amqp.channel()
    for name in ("src", "dst"):
        ch.queue_declare(name)
    _publish(amqp, "dst", [b"already"])
    _publish(amqp, "src", [b"m%d" % i for i in range(2505)], headers={"k": "v"}, delivery_mode=2)
    assert _move(api, vhost, "src", {"destination": "dst", "count": 5}) == (200, {"moved": 5})
    # Without a count: all that were ready, in batches.
    assert _move(api, vhost, "src", {"destination": "dst"}) == (200, {"moved": 2500})
    assert _move(api, vhost, "src", {"destination": "dst"}) == (200, {"moved": 0})
    moved = _bodies(amqp, "dst")
    assert [m[0] for m in moved] == [b"already"] + [b"m%d" % i for i in range(2505)]
    assert all(not redelivered and headers == {"k": "v"} for _b, redelivered, headers in moved[1:])
    src = api.ok(f"/api/queues/{q(vhost)}/src")
    assert src["messages"] == 0 and src["message_stats"]["ack"] == 2505


def test_move_stops_at_a_full_destination(api: Api, vhost: str, amqp: pika.BlockingConnection) -> None:
    ch = amqp.channel()
    ch.queue_declare("src")
    ch.queue_declare("capped", arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
    _publish(amqp, "src", [b"a", b"b", b"c", b"d"])
    assert _move(api, vhost, "src", {"destination": "capped"}) == (200, {"moved": 2})
    assert [m[0] for m in _bodies(amqp, "capped")] == [b"a", b"b"]
    # The refused one is back at the head (flagged redelivered, as a shovel's requeue).
    assert [(m[0], m[1]) for m in _bodies(amqp, "src")] == [(b"c", True), (b"d", False)]


def test_move_errors(api: Api, vhost: str, amqp: pika.BlockingConnection, name: str) -> None:
    amqp.channel().queue_declare("src")
    assert _move(api, vhost, "nowhere", {"destination": "src"})[0] == 404
    status, error = _move(api, vhost, "src", {"destination": "nowhere"})
    assert status == 404 and "no queue 'nowhere'" in error["reason"]
    assert _move(api, vhost, "src", {"destination": "src"})[0] == 400
    assert _move(api, vhost, "src", {})[0] == 400
    reply = api.post(f"/api/queues/{q(vhost)}/src/actions", {"action": "sync"})
    assert reply.status == 400 and "move" in reply.json["reason"]
    # Reading the source and writing the destination take the user's permissions.
    assert api.put(f"/api/users/{name}", {"password": "pw", "tags": "management"}).status == 201
    try:
        api.put(f"/api/permissions/{q(vhost)}/{name}", {"configure": ".*", "write": "^src$", "read": ".*"})
        amqp.channel().queue_declare("other")
        user = api.as_user(name, "pw")
        assert _move(user, vhost, "src", {"destination": "other"})[0] == 401
        assert _move(user, vhost, "other", {"destination": "src"}) == (200, {"moved": 0})
    finally:
        api.delete(f"/api/users/{name}")


def test_moved_persistent_messages_survive_a_restart(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess(tmp_path / "data", "--management-port", str(port)).start()
    try:
        api = Api(port)
        for name in ("src", "dst"):
            assert api.put(f"/api/queues/%2F/{name}", {"durable": True}).status == 201
        connection = pika.BlockingConnection(pika.URLParameters(server.url()))
        _publish(connection, "src", [b"p1", b"p2", b"p3"], delivery_mode=2)
        connection.close()
        assert _move(api, "/", "src", {"destination": "dst", "count": 2}) == (200, {"moved": 2})
        assert server.stop() == 0
        server.start()
        connection = pika.BlockingConnection(pika.URLParameters(server.url()))
        assert [m[0] for m in _bodies(connection, "dst")] == [b"p1", b"p2"]
        assert [m[0] for m in _bodies(connection, "src")] == [b"p3"]
        connection.close()
    finally:
        server.kill()
