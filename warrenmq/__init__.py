"""WarrenMQ: an AMQP 0-9-1 message broker, a drop-in replacement for RabbitMQ."""

__version__ = "0.1.0"
