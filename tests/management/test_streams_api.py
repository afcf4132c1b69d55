"""A stream queue in the management API, as RabbitMQ 3.10.8 shows it: type "stream", its
messages counted as ready, and get and purge refused with 400 and RabbitMQ's reasons.  (This
server runs without persistence: the stream lives in memory.)"""

from __future__ import annotations

import pika

from tests.management.conftest import Api, q, wait_for


def test_a_stream_in_the_api(api: Api, amqp: pika.BlockingConnection, vhost: str) -> None:
    ch = amqp.channel()
    ch.confirm_delivery()
    ch.queue_declare("events", durable=True, arguments={"x-queue-type": "stream"})
    for i in range(5):
        ch.basic_publish("", "events", b"event %d" % i)
    consumer = amqp.channel()
    consumer.basic_qos(prefetch_count=10)
    got: list[bytes] = []
    consumer.basic_consume("events", lambda c, m, p, b: got.append(b), arguments={"x-stream-offset": "first"})
    wait_for(lambda: (amqp.process_data_events(0.01), len(got) == 5)[1], what="5 deliveries")

    path = f"/api/queues/{q(vhost)}/events"
    queue = api.ok(path)
    assert queue["type"] == "stream" and queue["durable"] is True
    assert (queue["messages"], queue["messages_ready"], queue["messages_unacknowledged"]) == (5, 5, 0)
    assert queue["consumers"] == 1
    assert queue["members"] == queue["online"] == [queue["node"]]
    assert queue["arguments"] == {"x-queue-type": "stream"}

    reply = api.post(f"{path}/get", {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})
    assert (reply.status, reply.json["reason"]) == (
        400,
        f"540 basic.get not supported by stream queues queue 'events' in vhost '{vhost}'",
    )
    reply = api.delete(f"{path}/contents")
    assert (reply.status, reply.json["reason"]) == (
        400,
        f"queue.purge not supported by stream queues queue 'events' in vhost '{vhost}'",
    )
    assert api.ok(path)["messages"] == 5  # nothing was taken
