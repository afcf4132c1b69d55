"""Tutorial 2 (work queues), the producer: send the task given on the command line.

Each dot in the task is one second of work for a worker.  The queue is durable, a quorum
queue as in today's tutorial (TUTORIAL_QUEUE_TYPE=classic gives the older tutorial's
classic durable queue), and the message persistent.  Port from AMQP_PORT (default 5672),
host from AMQP_HOST, queue name prefixed with TUTORIAL_PREFIX.
"""

import os
import sys

import pika

port = int(os.environ.get("AMQP_PORT", "5672"))
host = os.environ.get("AMQP_HOST", "localhost")
queue = os.environ.get("TUTORIAL_PREFIX", "") + "task_queue"
queue_type = os.environ.get("TUTORIAL_QUEUE_TYPE", "quorum")
arguments = {"x-queue-type": "quorum"} if queue_type == "quorum" else None

connection = pika.BlockingConnection(pika.ConnectionParameters(host=host, port=port))
channel = connection.channel()
channel.queue_declare(queue=queue, durable=True, arguments=arguments)

message = " ".join(sys.argv[1:]) or "Hello World!"
channel.basic_publish(
    exchange="",
    routing_key=queue,
    body=message,
    properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
)
print(f" [x] Sent {message}", flush=True)
connection.close()
