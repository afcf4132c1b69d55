"""Tutorial 6 (RPC), the server: answer fib(n) requests arriving on "rpc_queue".

The answer goes to the request's reply_to queue with the request's correlation_id.  One
request at a time (prefetch 1), acknowledged after the reply is sent.  Port from AMQP_PORT
(default 5672), host from AMQP_HOST, queue name prefixed with TUTORIAL_PREFIX.
"""

import os
import sys

import pika


def fib(n: int) -> int:
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def main() -> None:
    port = int(os.environ.get("AMQP_PORT", "5672"))
    host = os.environ.get("AMQP_HOST", "localhost")
    queue = os.environ.get("TUTORIAL_PREFIX", "") + "rpc_queue"

    connection = pika.BlockingConnection(pika.ConnectionParameters(host=host, port=port))
    channel = connection.channel()
    channel.queue_declare(queue=queue)

    def on_request(ch, method, props, body):
        n = int(body)
        print(f" [.] fib({n})", flush=True)
        response = fib(n)
        ch.basic_publish(
            exchange="",
            routing_key=props.reply_to,
            properties=pika.BasicProperties(correlation_id=props.correlation_id),
            body=str(response),
        )
        ch.basic_ack(delivery_tag=method.delivery_tag)

    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue=queue, on_message_callback=on_request)

    print(" [x] Awaiting RPC requests", flush=True)
    channel.start_consuming()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted", flush=True)
        sys.exit(0)
