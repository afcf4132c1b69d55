"""Tutorial 2 (work queues), the worker: do tasks, one at a time, and acknowledge each.

A task takes one second per dot in its body (TUTORIAL_DOT_SECONDS changes the second).
With prefetch 1 (the tutorial's fair dispatch) a busy worker is given nothing more until it
acknowledges; TUTORIAL_PREFETCH=0 leaves QoS out, as the tutorial's round-robin section
does.  The queue declaration matches new_task.py (quorum unless TUTORIAL_QUEUE_TYPE=classic).
Port from AMQP_PORT (default 5672), host from AMQP_HOST, queue name prefixed with
TUTORIAL_PREFIX.
"""

import os
import sys
import time

import pika


def main() -> None:
    port = int(os.environ.get("AMQP_PORT", "5672"))
    host = os.environ.get("AMQP_HOST", "localhost")
    queue = os.environ.get("TUTORIAL_PREFIX", "") + "task_queue"
    queue_type = os.environ.get("TUTORIAL_QUEUE_TYPE", "quorum")
    arguments = {"x-queue-type": "quorum"} if queue_type == "quorum" else None
    prefetch = int(os.environ.get("TUTORIAL_PREFETCH", "1"))
    second = float(os.environ.get("TUTORIAL_DOT_SECONDS", "1"))

    connection = pika.BlockingConnection(pika.ConnectionParameters(host=host, port=port))
    channel = connection.channel()
    channel.queue_declare(queue=queue, durable=True, arguments=arguments)

    def callback(ch, method, properties, body):
        task = body.decode()
        again = " (redelivered)" if method.redelivered else ""
        print(f" [x] Received {task!r}{again}", flush=True)
        time.sleep(task.count(".") * second)
        print(f" [x] Done {task!r}", flush=True)
        ch.basic_ack(delivery_tag=method.delivery_tag)

    if prefetch:
        channel.basic_qos(prefetch_count=prefetch)
    channel.basic_consume(queue=queue, on_message_callback=callback)

    print(" [*] Waiting for messages. To exit press CTRL+C", flush=True)
    channel.start_consuming()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted", flush=True)
        sys.exit(0)
