"""A Celery worker on WarrenMQ runs a task whose headers carry an int beyond 32 bits.

Celery publishes through kombu and py-amqp, which writes such an int with type letter 'L': a
task header with a millisecond timestamp or a big id once cost the publisher its connection
(541) on WarrenMQ (issue 12).  The worker and the client run in a process of their own
(tests/interop/celery_job.py); the result comes back over the rpc:// backend, through WarrenMQ
too.  The same passes against RabbitMQ 3.10.8.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pika

from tests.server import ServerProcess


def test_a_celery_worker_runs_a_task_whose_headers_carry_2_to_the_40(server: ServerProcess) -> None:
    queue = f"celery-{uuid.uuid4().hex[:8]}"
    try:
        job = subprocess.run(
            [sys.executable, "-m", "tests.interop.celery_job", str(server.port), queue],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert job.returncode == 0, job.stderr
        assert json.loads(job.stdout.splitlines()[-1]) == {"big": 2**40, "sent_at_ms": 1_700_000_000_123}
    finally:
        with pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.port)) as conn:
            channel = conn.channel()
            channel.queue_delete(queue)
            channel.exchange_delete(queue)
