"""Exchanges, queues and bindings over the API; publish, get and purge.

Status codes and error bodies are RabbitMQ 3.10.8's, checked against it with the same
requests: PUT answers 201 for a new object and 204 for an existing one; a missing object in
the URL is 404 ``{"error":"Object Not Found","reason":"Not Found"}``; a failed declaration
is 400 ``bad_request`` with the AMQP explanation; a refused one 401 "Access refused.".
"""

from __future__ import annotations

import pika

from tests.management.conftest import Api, q

NOT_FOUND = {"error": "Object Not Found", "reason": "Not Found"}


def test_queue_declare_get_delete(api: Api, vhost: str, amqp: pika.BlockingConnection) -> None:
    path = f"/api/queues/{q(vhost)}/orders"
    assert api.get(path).status == 404 and api.get(path).json == NOT_FOUND
    body = {"durable": True, "auto_delete": False, "arguments": {"x-max-length": 3, "x-queue-type": "classic"}}
    assert api.put(path, body).status == 201
    assert api.put(path, body).status == 204  # redeclared, equivalent
    # rabbitmqadmin sends booleans as strings
    assert api.put(path, {**body, "durable": "true", "auto_delete": "false"}).status == 204
    reply = api.put(path, {"durable": False})
    assert reply.status == 400
    assert reply.json == {
        "error": "bad_request",
        "reason": "inequivalent arg 'durable' for queue 'orders' in vhost '" + vhost + "': "
        "received 'false' but current is 'true'",
    }
    info = api.ok(path)
    assert info["arguments"] == {"x-max-length": 3, "x-queue-type": "classic"}
    assert (info["name"], info["vhost"], info["durable"], info["auto_delete"], info["exclusive"]) == (
        "orders",
        vhost,
        True,
        False,
        False,
    )
    assert info["state"] == "running" and info["policy"] is None and "idle_since" in info
    # the queue is real: AMQP sees it, and its max-length applies
    ch = amqp.channel()
    for i in range(5):
        ch.basic_publish("", "orders", b"%d" % i)
    assert ch.queue_declare("orders", passive=True).method.message_count == 3

    reply = api.put(f"/api/queues/{q(vhost)}/bad", {"arguments": {"x-max-length": "abc"}})
    assert reply.status == 400
    assert reply.json["reason"] == (
        f"invalid arg 'x-max-length' for queue 'bad' in vhost '{vhost}': \"expected integer, got longstr\""
    )
    reply = api.put(f"/api/queues/{q(vhost)}/amq.reserved")
    assert (reply.status, reply.json) == (401, {"error": "not_authorised", "reason": "Access refused."})
    reply = api.put("/api/queues/no-such-vhost/x")
    assert (reply.status, reply.json) == (404, {"error": "not_found", "reason": "vhost_not_found"})
    assert api.put(path, b"not json").json == {"error": "bad_request", "reason": "not_json"}

    assert [x["name"] for x in api.ok(f"/api/queues/{q(vhost)}")] == ["orders"]
    assert any(x["name"] == "orders" and x["vhost"] == vhost for x in api.ok("/api/queues"))
    reply = api.delete(path + "?if-empty=true")
    assert reply.status == 400 and reply.json["reason"] == f"queue 'orders' in vhost '{vhost}' not empty"
    assert api.delete(path).status == 204
    assert api.delete(path).json == NOT_FOUND


def test_quorum_queue_fields(api: Api, vhost: str) -> None:
    path = f"/api/queues/{q(vhost)}/qq"
    assert api.put(path, {"durable": True, "arguments": {"x-queue-type": "quorum"}}).status == 201
    info = api.ok(path)
    assert info["type"] == "quorum" and info["leader"] == info["node"] and info["members"] == [info["node"]]


def test_exchange_declare_get_delete(api: Api, vhost: str) -> None:
    path = f"/api/exchanges/{q(vhost)}/logs"
    assert api.put(path, {"type": "fanout", "durable": True}).status == 201
    assert api.put(path, {"type": "fanout", "durable": True}).status == 204
    reply = api.put(path, {"type": "direct", "durable": True})
    assert reply.status == 400
    assert reply.json["reason"] == (
        f"inequivalent arg 'type' for exchange 'logs' in vhost '{vhost}': received 'direct' but current is 'fanout'"
    )
    info = api.ok(path)
    assert (info["name"], info["type"], info["durable"], info["auto_delete"], info["internal"]) == (
        "logs",
        "fanout",
        True,
        False,
        False,
    )
    assert info["message_stats"]["publish_in"] == 0
    names = [x["name"] for x in api.ok(f"/api/exchanges/{q(vhost)}")]
    assert names == sorted(names) and {"", "amq.direct", "amq.topic", "logs"} <= set(names)
    assert api.put(f"/api/exchanges/{q(vhost)}/amq.mine", {"type": "direct"}).status == 401
    assert api.put(f"/api/exchanges/{q(vhost)}/amq.default", {"type": "direct"}).status == 401
    assert api.put(f"/api/exchanges/{q(vhost)}/odd", {"type": "nope"}).status == 400

    assert api.put(f"/api/queues/{q(vhost)}/sink").status == 201
    assert api.post(f"/api/bindings/{q(vhost)}/e/logs/q/sink").status == 201
    assert api.delete(path + "?if-unused=true").status == 400  # in use
    assert api.delete(path).status == 204
    assert api.delete(path).json == NOT_FOUND
    assert api.delete(f"/api/exchanges/{q(vhost)}/amq.direct").status == 401


def test_bindings(api: Api, vhost: str, amqp: pika.BlockingConnection) -> None:
    v = q(vhost)
    api.put(f"/api/exchanges/{v}/routes", {"type": "direct"})
    api.put(f"/api/exchanges/{v}/fan", {"type": "fanout"})
    api.put(f"/api/queues/{v}/inbox")
    reply = api.post(f"/api/bindings/{v}/e/routes/q/inbox", {"routing_key": "rk", "arguments": {"a": 1}})
    assert reply.status == 201
    props = reply.headers["Location"].rsplit("/", 1)[1]
    assert reply.headers["Location"] == f"inbox/{props}" and props.startswith("rk~")
    assert api.post(f"/api/bindings/{v}/e/routes/q/inbox", {"routing_key": "plain"}).status == 201
    assert api.post(f"/api/bindings/{v}/e/routes/e/fan", {"routing_key": "e2e"}).status == 201

    between = api.ok(f"/api/bindings/{v}/e/routes/q/inbox")
    assert sorted((b["routing_key"], b["properties_key"]) for b in between) == [("plain", "plain"), ("rk", props)]
    binding = api.ok(f"/api/bindings/{v}/e/routes/q/inbox/{q(props)}")
    assert binding == {
        "source": "routes",
        "vhost": vhost,
        "destination": "inbox",
        "destination_type": "queue",
        "routing_key": "rk",
        "arguments": {"a": 1},
        "properties_key": props,
    }
    queue_bindings = api.ok(f"/api/queues/{v}/inbox/bindings")
    assert queue_bindings[0] == {
        "source": "",
        "vhost": vhost,
        "destination": "inbox",
        "destination_type": "queue",
        "routing_key": "inbox",
        "arguments": {},
        "properties_key": "inbox",
    }
    assert len(queue_bindings) == 3
    assert len(api.ok(f"/api/exchanges/{v}/routes/bindings/source")) == 3
    assert [b["source"] for b in api.ok(f"/api/exchanges/{v}/fan/bindings/destination")] == ["routes"]
    assert len(api.ok(f"/api/bindings/{v}")) == 4  # three and the default exchange's
    assert any(b["vhost"] == vhost for b in api.ok("/api/bindings"))

    # The bindings route: an AMQP publish reaches the queue through them.
    ch = amqp.channel()
    ch.confirm_delivery()
    ch.basic_publish("routes", "rk", b"one")
    assert ch.queue_declare("inbox", passive=True).method.message_count == 1

    reply = api.post(f"/api/bindings/{v}/e/missing/q/inbox", {"routing_key": "x"})
    assert (reply.status, reply.json) == (
        404,
        {"error": "not_found", "reason": f"no exchange 'missing' in vhost '{vhost}'"},
    )
    reply = api.post(f"/api/bindings/{v}/e/routes/q/missing", {"routing_key": "x"})
    assert (reply.status, reply.json) == (
        404,
        {"error": "not_found", "reason": f"no queue 'missing' in vhost '{vhost}'"},
    )

    assert api.delete(f"/api/bindings/{v}/e/routes/q/inbox/{q(props)}").status == 204
    assert api.delete(f"/api/bindings/{v}/e/routes/q/inbox/{q(props)}").json == NOT_FOUND
    assert api.delete(f"/api/bindings/{v}/e/routes/q/inbox/plain").status == 204
    assert api.ok(f"/api/bindings/{v}/e/routes/q/inbox") == []


def test_publish_get_purge(api: Api, vhost: str, amqp: pika.BlockingConnection) -> None:
    v = q(vhost)
    api.put(f"/api/queues/{v}/box")
    publish = f"/api/exchanges/{v}/amq.default/publish"
    body = {
        "routing_key": "box",
        "payload": "hello",
        "payload_encoding": "string",
        "properties": {"content_type": "text/plain", "delivery_mode": 2, "headers": {"h": "v", "n": 7}, "priority": 3},
    }
    assert api.post(publish, body).json == {"routed": True}
    raw = {"routing_key": "box", "payload": "/w==", "payload_encoding": "base64", "properties": {}}
    assert api.post(publish, raw).json == {"routed": True}
    assert api.post(publish, {**raw, "routing_key": "nowhere"}).json == {"routed": False}
    reply = api.post(f"/api/exchanges/{v}/missing/publish", raw)
    assert (reply.status, reply.json["reason"]) == (400, f"404 NOT_FOUND - no exchange 'missing' in vhost '{vhost}'")
    reply = api.post(publish, {"routing_key": "box", "payload": "x"})
    assert reply.json == {"error": "bad_request", "reason": "[{key_missing,properties},{key_missing,payload_encoding}]"}

    # AMQP sees what the API published, properties included.
    _method, props, payload = amqp.channel().basic_get("box", auto_ack=False)
    assert payload == b"hello" and props.content_type == "text/plain" and props.headers == {"h": "v", "n": 7}
    assert (props.delivery_mode, props.priority) == (2, 3)
    amqp.close()  # back to the queue, redelivered

    get = f"/api/queues/{v}/box/get"
    messages = api.post(get, {"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto"}).json
    assert len(messages) == 2
    first, second = messages
    assert first == {
        "payload_bytes": 5,
        "redelivered": True,
        "exchange": "",
        "routing_key": "box",
        "message_count": 1,
        "properties": {"content_type": "text/plain", "headers": {"h": "v", "n": 7}, "delivery_mode": 2, "priority": 3},
        "payload": "hello",
        "payload_encoding": "string",
    }
    assert (second["payload"], second["payload_encoding"], second["message_count"]) == ("/w==", "base64", 0)
    # requeued: still two, and a truncated base64 get takes one for good
    taken = api.post(get, {"count": "1", "ackmode": "ack_requeue_false", "encoding": "base64", "truncate": 2}).json
    assert (taken[0]["payload"], taken[0]["payload_bytes"], taken[0]["redelivered"]) == ("aGU=", 5, True)
    assert api.ok(f"/api/queues/{v}/box")["messages"] == 1
    reply = api.post(get, {"count": 1, "ackmode": "ack_requeue_true", "encoding": "utf-8"})
    assert reply.json == {"error": "bad_request", "reason": "Unsupported encoding. Please use auto or base64."}
    reply = api.post(get, {"count": "x", "ackmode": "ack_requeue_true", "encoding": "auto"})
    assert reply.json == {"error": "bad_request", "reason": ["not_integer", "x"]}
    reply = api.post(f"/api/queues/{v}/missing/get", {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})
    assert (reply.status, reply.json["reason"]) == (404, f"NOT_FOUND - no queue 'missing' in vhost '{vhost}'")

    assert api.post(get, {"count": 1, "ackmode": "reject_requeue_false", "encoding": "auto"}).status == 200
    assert api.ok(f"/api/queues/{v}/box")["messages"] == 0
    for _ in range(3):
        api.post(publish, raw)
    assert api.delete(f"/api/queues/{v}/box/contents").status == 204
    assert api.ok(f"/api/queues/{v}/box")["messages"] == 0
    assert api.delete(f"/api/queues/{v}/missing/contents").json == NOT_FOUND
