"""Ask a broker, with raw frames, which AMQP field values it takes, and write the answers down.

    python -m tools.field_values --url amqp://guest:guest@127.0.0.1:5682/%2F   # RabbitMQ: write the file
    python -m tools.field_values --url amqp://... --check     # compare a broker with the file

Every field type byte (all 256) and boundary values of each type go in the headers table of a
published message; a representative set goes in method arguments (queue.declare,
exchange.declare, queue.bind, basic.consume, and connection.start-ok's client properties).
For each case the broker either takes it (a published message then comes back to a consumer,
and its property list is recorded as delivered) or refuses it: a connection.close (code, text,
ids), a channel.close, or a socket closed without a word.  Run against RabbitMQ 3.10.8 this
wrote tests/data/field_values.json; tests/interop/test_field_values.py replays it against
WarrenMQ.  The client here is its own, standard library only: neither WarrenMQ's codec nor a
client library's decides what was sent.

wire.py is that client, cases.py the cases, probe.py runs them (on one connection until a case
is refused, then on a new one; a few connections at once) and compares answers.
"""

from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "field_values.json"
