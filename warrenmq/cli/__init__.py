"""warrenctl: rabbitmqctl's commands for a running WarrenMQ node, over its management HTTP API."""
