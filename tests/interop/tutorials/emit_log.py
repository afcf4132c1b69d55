"""Tutorial 3 (publish/subscribe), the producer: broadcast a log line on the fanout "logs".

Port from AMQP_PORT (default 5672), host from AMQP_HOST, exchange name prefixed with
TUTORIAL_PREFIX.
"""

import os
import sys

import pika

port = int(os.environ.get("AMQP_PORT", "5672"))
host = os.environ.get("AMQP_HOST", "localhost")
exchange = os.environ.get("TUTORIAL_PREFIX", "") + "logs"

connection = pika.BlockingConnection(pika.ConnectionParameters(host=host, port=port))
channel = connection.channel()
channel.exchange_declare(exchange=exchange, exchange_type="fanout")

message = " ".join(sys.argv[1:]) or "info: Hello World!"
# A fanout exchange ignores the routing key.
channel.basic_publish(exchange=exchange, routing_key="", body=message)
print(f" [x] Sent {message}", flush=True)
connection.close()
