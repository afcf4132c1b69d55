"""warren-perf: a load generator for any AMQP 0-9-1 broker.

Modelled on RabbitMQ's PerfTest and LavinMQ's lavinmqperf.  It carries its own
lean AMQP client (``codec`` + ``connection``) so that the tool, not a general
purpose client library, decides how cheap the hot loops are, and it does not
import anything from the WarrenMQ broker so it can be split out one day.
"""

__version__ = "0.1.0"
