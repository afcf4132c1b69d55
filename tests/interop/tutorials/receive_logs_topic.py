"""Tutorial 5 (topics), a subscriber: print the messages matching its binding keys.

Usage: receive_logs_topic.py binding.key [binding.key...]  -- ``*`` stands for one word,
``#`` for zero or more.  Port from AMQP_PORT (default 5672), host from AMQP_HOST,
exchange name prefixed with TUTORIAL_PREFIX.
"""

import os
import sys

import pika


def main() -> None:
    port = int(os.environ.get("AMQP_PORT", "5672"))
    host = os.environ.get("AMQP_HOST", "localhost")
    exchange = os.environ.get("TUTORIAL_PREFIX", "") + "topic_logs"

    binding_keys = sys.argv[1:]
    if not binding_keys:
        sys.stderr.write(f"Usage: {sys.argv[0]} [binding_key]...\n")
        sys.exit(1)

    connection = pika.BlockingConnection(pika.ConnectionParameters(host=host, port=port))
    channel = connection.channel()
    channel.exchange_declare(exchange=exchange, exchange_type="topic")

    result = channel.queue_declare(queue="", exclusive=True)
    queue_name = result.method.queue
    for binding_key in binding_keys:
        channel.queue_bind(exchange=exchange, queue=queue_name, routing_key=binding_key)

    def callback(ch, method, properties, body):
        print(f" [x] {method.routing_key}:{body.decode()}", flush=True)

    channel.basic_consume(queue=queue_name, on_message_callback=callback, auto_ack=True)

    print(" [*] Waiting for logs. To exit press CTRL+C", flush=True)
    channel.start_consuming()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted", flush=True)
        sys.exit(0)
