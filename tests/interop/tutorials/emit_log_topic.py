"""Tutorial 5 (topics), the producer: send a message with a dotted routing key.

Usage: emit_log_topic.py [routing.key] [message...]  (defaults: anonymous.info,
"Hello World!").  Port from AMQP_PORT (default 5672), host from AMQP_HOST, exchange name
prefixed with TUTORIAL_PREFIX.
"""

import os
import sys

import pika

port = int(os.environ.get("AMQP_PORT", "5672"))
host = os.environ.get("AMQP_HOST", "localhost")
exchange = os.environ.get("TUTORIAL_PREFIX", "") + "topic_logs"

connection = pika.BlockingConnection(pika.ConnectionParameters(host=host, port=port))
channel = connection.channel()
channel.exchange_declare(exchange=exchange, exchange_type="topic")

routing_key = sys.argv[1] if len(sys.argv) > 1 else "anonymous.info"
message = " ".join(sys.argv[2:]) or "Hello World!"
channel.basic_publish(exchange=exchange, routing_key=routing_key, body=message)
print(f" [x] Sent {routing_key}:{message}", flush=True)
connection.close()
