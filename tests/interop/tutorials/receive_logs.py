"""Tutorial 3 (publish/subscribe), a subscriber: print every log line broadcast on "logs".

Each subscriber has its own temporary queue: server-named, exclusive to this connection (it
goes when the program stops) and bound to the fanout exchange.  Port from AMQP_PORT
(default 5672), host from AMQP_HOST, exchange name prefixed with TUTORIAL_PREFIX.
"""

import os
import sys

import pika


def main() -> None:
    port = int(os.environ.get("AMQP_PORT", "5672"))
    host = os.environ.get("AMQP_HOST", "localhost")
    exchange = os.environ.get("TUTORIAL_PREFIX", "") + "logs"

    connection = pika.BlockingConnection(pika.ConnectionParameters(host=host, port=port))
    channel = connection.channel()
    channel.exchange_declare(exchange=exchange, exchange_type="fanout")

    result = channel.queue_declare(queue="", exclusive=True)
    queue_name = result.method.queue
    channel.queue_bind(exchange=exchange, queue=queue_name)

    def callback(ch, method, properties, body):
        print(f" [x] {body.decode()}", flush=True)

    channel.basic_consume(queue=queue_name, on_message_callback=callback, auto_ack=True)

    print(f" [*] Waiting for logs on {queue_name}. To exit press CTRL+C", flush=True)
    channel.start_consuming()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted", flush=True)
        sys.exit(0)
