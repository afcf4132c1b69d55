"""Tutorial 1 ("Hello World!"), the consumer: print every message arriving on "hello".

Port from AMQP_PORT (default 5672), host from AMQP_HOST, queue name prefixed with
TUTORIAL_PREFIX.  Stops on Ctrl+C (SIGINT).
"""

import os
import sys

import pika


def main() -> None:
    port = int(os.environ.get("AMQP_PORT", "5672"))
    host = os.environ.get("AMQP_HOST", "localhost")
    queue = os.environ.get("TUTORIAL_PREFIX", "") + "hello"

    connection = pika.BlockingConnection(pika.ConnectionParameters(host=host, port=port))
    channel = connection.channel()
    channel.queue_declare(queue=queue)

    def callback(ch, method, properties, body):
        print(f" [x] Received {body.decode()}", flush=True)

    channel.basic_consume(queue=queue, on_message_callback=callback, auto_ack=True)

    print(" [*] Waiting for messages. To exit press CTRL+C", flush=True)
    channel.start_consuming()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted", flush=True)
        sys.exit(0)
