"""Tutorial 4 (routing), a subscriber: print the log lines of the severities it is given.

Usage: receive_logs_direct.py severity [severity...]  -- one binding per severity.
Port from AMQP_PORT (default 5672), host from AMQP_HOST, exchange name prefixed with
TUTORIAL_PREFIX.
"""

import os
import sys

import pika


def main() -> None:
    port = int(os.environ.get("AMQP_PORT", "5672"))
    host = os.environ.get("AMQP_HOST", "localhost")
    exchange = os.environ.get("TUTORIAL_PREFIX", "") + "direct_logs"

    severities = sys.argv[1:]
    if not severities:
        sys.stderr.write(f"Usage: {sys.argv[0]} [info] [warning] [error]\n")
        sys.exit(1)

    connection = pika.BlockingConnection(pika.ConnectionParameters(host=host, port=port))
    channel = connection.channel()
    channel.exchange_declare(exchange=exchange, exchange_type="direct")

    result = channel.queue_declare(queue="", exclusive=True)
    queue_name = result.method.queue
    for severity in severities:
        channel.queue_bind(exchange=exchange, queue=queue_name, routing_key=severity)

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
