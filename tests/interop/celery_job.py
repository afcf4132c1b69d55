"""One Celery task on a broker, run as ``python -m tests.interop.celery_job PORT QUEUE``: a worker
in a thread (solo pool) takes a task whose headers carry 2**40 and a millisecond timestamp, and
returns the headers it saw over the rpc:// backend; they are printed as JSON.  A process of its
own, so that Celery's global state and its connections end with it."""

from __future__ import annotations

import json
import sys
from typing import Any

from celery import Celery
from celery.contrib.testing.worker import start_worker

HEADERS = {"big": 2**40, "sent_at_ms": 1_700_000_000_123}


def main(port: int, queue: str) -> None:
    app = Celery("warren", broker=f"pyamqp://guest:guest@127.0.0.1:{port}//", backend="rpc://")
    app.conf.task_default_queue = queue
    app.conf.broker_heartbeat = 0  # no heartbeat thread: the worker stops at once when told

    @app.task(bind=True)
    def headers_seen(self: Any) -> dict[str, Any]:
        return {key: self.request.get(key) for key in HEADERS}

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10, loglevel="WARNING"):
        print(json.dumps(headers_seen.apply_async(headers=HEADERS).get(timeout=10)))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
