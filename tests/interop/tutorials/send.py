"""Tutorial 1 ("Hello World!"), the producer: put one message on the queue "hello".

Like the RabbitMQ tutorial program, except that the broker's port comes from AMQP_PORT
(default 5672), its host from AMQP_HOST, and TUTORIAL_PREFIX is put in front of the queue
name so that concurrent runs do not share a queue.
"""

import os

import pika

port = int(os.environ.get("AMQP_PORT", "5672"))
host = os.environ.get("AMQP_HOST", "localhost")
queue = os.environ.get("TUTORIAL_PREFIX", "") + "hello"

connection = pika.BlockingConnection(pika.ConnectionParameters(host=host, port=port))
channel = connection.channel()

# Declaring is idempotent: whichever program runs first creates the queue.
channel.queue_declare(queue=queue)

channel.basic_publish(exchange="", routing_key=queue, body="Hello World!")
print(" [x] Sent 'Hello World!'", flush=True)
connection.close()
