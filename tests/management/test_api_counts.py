"""Counters under real AMQP traffic: what the API reports matches what was published,
delivered, acknowledged and fetched.  Every test works in a fresh vhost, so counts are exact.
"""

from __future__ import annotations

import pika
import pytest

from tests.management.conftest import Api, q, wait_for


def publish(ch, exchange: str, key: str, count: int, body: bytes = b"payload") -> None:
    for i in range(count):
        ch.basic_publish(exchange, key, body + str(i).encode(), pika.BasicProperties(delivery_mode=1))


def test_queue_counts_follow_publish_consume_ack_get(api: Api, amqp: pika.BlockingConnection, vhost: str) -> None:
    ch = amqp.channel()
    ch.confirm_delivery()  # each publish returns once the message is in the queue
    ch.queue_declare("work", durable=True)
    publish(ch, "", "work", 10, b"x" * 10)  # 10 messages of 11 bytes

    path = f"/api/queues/{q(vhost)}/work"
    queue = api.ok(path)
    assert (queue["messages"], queue["messages_ready"], queue["messages_unacknowledged"]) == (10, 10, 0)
    assert queue["message_bytes_ready"] == 110
    assert queue["message_stats"]["publish"] == 10
    assert queue["consumers"] == 0 and queue["durable"] is True and queue["type"] == "classic"

    consumer_ch = amqp.channel()
    consumer_ch.basic_qos(prefetch_count=4)
    delivered: list[int] = []
    consumer_ch.basic_consume("work", lambda c, m, p, b: delivered.append(m.delivery_tag), consumer_tag="c1")
    wait_for(lambda: (amqp.process_data_events(0.01), len(delivered) == 4)[1], what="4 deliveries")
    queue = api.ok(path)
    assert (queue["messages_ready"], queue["messages_unacknowledged"], queue["consumers"]) == (6, 4, 1)
    assert queue["message_bytes_unacknowledged"] == 44
    assert queue["message_stats"]["deliver"] == 4
    assert queue["consumer_details"][0]["consumer_tag"] == "c1"

    consumer_ch.basic_cancel("c1")  # no more deliveries; the 4 stay unacked on the channel
    consumer_ch.basic_ack(delivered[1], multiple=True)  # acks 2
    stats = wait_for(
        lambda: (s := api.ok(path))["message_stats"]["ack"] == 2 and s["consumers"] == 0 and s,
        what="2 acks counted",
    )
    assert (stats["messages_ready"], stats["messages_unacknowledged"]) == (6, 2)

    method, _, _ = ch.basic_get("work", auto_ack=False)
    ch.basic_ack(method.delivery_tag)
    ch.basic_get("work", auto_ack=True)
    consumer_ch.close()  # the 2 unacked go back, redelivered later
    queue = wait_for(lambda: (s := api.ok(path))["messages_unacknowledged"] == 0 and s, what="requeue")
    stats = queue["message_stats"]
    assert queue["messages_ready"] == 6  # 10 - 2 acked - 2 fetched
    assert (stats["get"], stats["get_no_ack"], stats["ack"], stats["deliver"]) == (1, 1, 3, 4)
    assert stats["deliver_get"] == 6
    for key in ("publish", "deliver", "ack", "deliver_get", "get", "redeliver"):
        assert stats[f"{key}_details"] == {"rate": pytest.approx(stats[f"{key}_details"]["rate"])}

    got = ch.basic_get("work", auto_ack=True)[0]
    assert got.redelivered
    assert api.ok(path)["message_stats"]["redeliver"] == 1


def test_exchange_vhost_and_overview_counts(api: Api, amqp: pika.BlockingConnection, vhost: str) -> None:
    ch = amqp.channel()
    ch.confirm_delivery()
    ch.exchange_declare("events", "topic", durable=True)
    ch.queue_declare("all-events")
    ch.queue_bind("all-events", "events", "#")
    publish(ch, "events", "a.b", 5)
    ch.basic_publish("", "nowhere", b"unroutable")  # counted in, not out
    exchange = api.ok(f"/api/exchanges/{q(vhost)}/events")
    assert exchange["message_stats"]["publish_in"] == 5
    assert exchange["message_stats"]["publish_out"] == 5
    default = api.ok(f"/api/exchanges/{q(vhost)}/amq.default")
    assert default["name"] == "" and default["message_stats"]["publish_in"] == 1
    assert default["message_stats"]["publish_out"] == 0

    for _ in range(2):
        ch.basic_get("all-events", auto_ack=True)
    info = api.ok(f"/api/vhosts/{q(vhost)}")
    assert (info["messages"], info["messages_ready"], info["messages_unacknowledged"]) == (3, 3, 0)
    assert info["message_stats"]["publish"] == 6
    assert info["message_stats"]["get_no_ack"] == 2
    assert info["recv_oct"] > 0 and info["send_oct"] > 0

    # A deleted queue's counts stay in the vhost's totals.
    ch.queue_delete("all-events")
    info = api.ok(f"/api/vhosts/{q(vhost)}")
    assert info["messages"] == 0 and info["message_stats"]["get_no_ack"] == 2

    overview = api.ok("/api/overview")
    assert overview["object_totals"]["queues"] >= 0
    assert overview["message_stats"]["publish"] >= 6
    assert overview["object_totals"]["connections"] >= 1


def test_connection_channel_and_consumer_views(api: Api, amqp: pika.BlockingConnection, vhost: str) -> None:
    ch = amqp.channel()
    ch.confirm_delivery()
    ch.queue_declare("jobs")
    publish(ch, "", "jobs", 3)
    worker = amqp.channel()
    worker.basic_qos(prefetch_count=10)
    worker.basic_consume("jobs", lambda *a: None, consumer_tag="worker-1", arguments={"x-priority": 5})
    wait_for(
        lambda: (
            amqp.process_data_events(0.01),
            api.ok(f"/api/queues/{q(vhost)}/jobs")["messages_unacknowledged"] == 3,
        )[1]
    )

    connections = api.ok(f"/api/vhosts/{q(vhost)}/connections")
    assert len(connections) == 1
    conn = connections[0]
    assert conn["user_provided_name"] == f"conn-{vhost}"
    assert conn["client_properties"]["product"] == "Pika Python Client Library"
    assert (conn["user"], conn["vhost"], conn["state"], conn["channels"]) == ("guest", vhost, "running", 2)
    assert conn["protocol"] == "AMQP 0-9-1" and conn["peer_host"] == "127.0.0.1"
    assert conn["recv_oct"] > 0 and conn["send_cnt"] > 0 and conn["timeout"] == 60
    assert api.ok(f"/api/connections/{q(conn['name'])}")["name"] == conn["name"]
    assert any(c["name"] == conn["name"] for c in api.ok("/api/connections"))

    channels = api.ok(f"/api/connections/{q(conn['name'])}/channels")
    assert [c["number"] for c in channels] == [1, 2]
    publisher, consumer = channels
    assert publisher["confirm"] is True and publisher["message_stats"]["publish"] == 3
    assert publisher["message_stats"]["confirm"] == 3
    assert (consumer["prefetch_count"], consumer["consumer_count"], consumer["messages_unacknowledged"]) == (10, 1, 3)
    assert consumer["message_stats"]["deliver_get"] == 3
    assert consumer["connection_details"]["name"] == conn["name"]
    assert api.ok(f"/api/channels/{q(consumer['name'])}")["number"] == 2
    assert len(api.ok(f"/api/vhosts/{q(vhost)}/channels")) == 2

    consumers = api.ok(f"/api/consumers/{q(vhost)}")
    assert len(consumers) == 1
    c = consumers[0]
    assert c["consumer_tag"] == "worker-1" and c["queue"] == {"name": "jobs", "vhost": vhost}
    assert (c["ack_required"], c["prefetch_count"], c["active"], c["exclusive"]) == (True, 10, True, False)
    assert c["arguments"] == {"x-priority": 5}
    assert c["channel_details"]["name"] == consumer["name"]


def test_close_connection(api: Api, amqp: pika.BlockingConnection, vhost: str) -> None:
    """DELETE /api/connections/{name} closes it with 320 and the X-Reason header's text."""
    (conn,) = api.ok(f"/api/vhosts/{q(vhost)}/connections")
    reply = api.delete(f"/api/connections/{q(conn['name'])}", headers={"X-Reason": "maintenance"})
    assert reply.status == 204
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
        for _ in range(100):
            amqp.process_data_events(0.05)
    assert closed.value.reply_code == 320
    assert closed.value.reply_text == "CONNECTION_FORCED - maintenance"
    wait_for(lambda: api.ok(f"/api/vhosts/{q(vhost)}/connections") == [], what="connection gone")
    assert api.get(f"/api/connections/{q(conn['name'])}").json == {"error": "Object Not Found", "reason": "Not Found"}
