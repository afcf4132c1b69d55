"""Tutorial 4 (routing), the producer: send a log line with its severity as routing key.

Usage: emit_log_direct.py [severity] [message...]  (defaults: info, "Hello World!").
Port from AMQP_PORT (default 5672), host from AMQP_HOST, exchange name prefixed with
TUTORIAL_PREFIX.
"""

import os
import sys

import pika

port = int(os.environ.get("AMQP_PORT", "5672"))
host = os.environ.get("AMQP_HOST", "localhost")
exchange = os.environ.get("TUTORIAL_PREFIX", "") + "direct_logs"

connection = pika.BlockingConnection(pika.ConnectionParameters(host=host, port=port))
channel = connection.channel()
channel.exchange_declare(exchange=exchange, exchange_type="direct")

severity = sys.argv[1] if len(sys.argv) > 1 else "info"
message = " ".join(sys.argv[2:]) or "Hello World!"
channel.basic_publish(exchange=exchange, routing_key=severity, body=message)
print(f" [x] Sent {severity}:{message}", flush=True)
connection.close()
