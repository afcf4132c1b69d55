"""Tutorial 6 (RPC), the client: ask the RPC server for fib(n) and wait for the answer.

Usage: rpc_client.py [n...]  (default 30).  Replies come back on a server-named exclusive
callback queue; the correlation_id tells which request a reply answers.  Port from
AMQP_PORT (default 5672), host from AMQP_HOST, queue name prefixed with TUTORIAL_PREFIX.
"""

import os
import sys
import uuid

import pika


class FibonacciRpcClient:
    def __init__(self) -> None:
        port = int(os.environ.get("AMQP_PORT", "5672"))
        host = os.environ.get("AMQP_HOST", "localhost")
        self.rpc_queue = os.environ.get("TUTORIAL_PREFIX", "") + "rpc_queue"

        self.connection = pika.BlockingConnection(pika.ConnectionParameters(host=host, port=port))
        self.channel = self.connection.channel()

        result = self.channel.queue_declare(queue="", exclusive=True)
        self.callback_queue = result.method.queue

        self.channel.basic_consume(queue=self.callback_queue, on_message_callback=self.on_response, auto_ack=True)

        self.response: bytes | None = None
        self.corr_id: str | None = None

    def on_response(self, ch, method, props, body):
        # A reply to an earlier (abandoned) request is ignored.
        if self.corr_id == props.correlation_id:
            self.response = body

    def call(self, n: int) -> int:
        self.response = None
        self.corr_id = str(uuid.uuid4())
        self.channel.basic_publish(
            exchange="",
            routing_key=self.rpc_queue,
            properties=pika.BasicProperties(reply_to=self.callback_queue, correlation_id=self.corr_id),
            body=str(n),
        )
        while self.response is None:
            self.connection.process_data_events(time_limit=None)
        return int(self.response)


def main() -> None:
    numbers = [int(arg) for arg in sys.argv[1:]] or [30]
    fibonacci_rpc = FibonacciRpcClient()
    for n in numbers:
        print(f" [x] Requesting fib({n})", flush=True)
        response = fibonacci_rpc.call(n)
        print(f" [.] Got {response}", flush=True)
    fibonacci_rpc.connection.close()


if __name__ == "__main__":
    main()
