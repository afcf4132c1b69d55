"""The management API's queue list at scale: response times of paged /api/queues requests.

Starts a WarrenMQ server (no persistence), creates N queues with one definitions import and
times each request (the best of a few, over loopback, with urllib):

    python bench/mgmt_paging.py [--queues 10000] [--repeat 5]

A page in name order is chosen from the names alone; a page sorted by a statistic snapshots
every queue first (warrenmq/management/queue_list.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.management.conftest import Api, free_port
from tests.server import ServerProcess

REQUESTS = [
    "/api/queues?page=1&page_size=100",
    "/api/queues?page=50&page_size=100",
    "/api/queues?page=1&page_size=100&name=q-0999&use_regex=false",
    "/api/queues?page=1&page_size=100&name=%5Eq-00.*5%24&use_regex=true",
    "/api/queues?page=1&page_size=100&sort=messages&sort_reverse=true",
    "/api/queues?page=1&page_size=100&sort=message_stats.publish_details.rate&sort_reverse=true",
    "/api/queues",
    "/api/overview",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queues", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    proc = ServerProcess(None, "--management-port", str(free_port())).start()
    try:
        api = Api(proc.management_port)
        queues = [{"name": f"q-{i:05d}", "vhost": "/", "durable": True, "auto_delete": False, "arguments": {}}
                  for i in range(args.queues)]  # fmt: skip
        started = time.perf_counter()
        assert api.post("/api/definitions", {"queues": queues}).status == 204
        print(f"import of {args.queues} queues: {(time.perf_counter() - started) * 1000:.0f} ms")
        print(f"{'best ms':>8} {'bytes':>9}  request")
        for path in REQUESTS:
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                reply = api.get(path)
                times.append(time.perf_counter() - started)
                assert reply.status == 200, reply
            print(f"{min(times) * 1000:8.1f} {len(reply.text):9d}  {path}")
    finally:
        proc.stop()


if __name__ == "__main__":
    main()
