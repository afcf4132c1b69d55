"""warren-perf over several brokers: two separate warren-servers, queues spread over both.

Separate servers share nothing, so the run only works if every queue is declared on its own
server and its producers and consumers go there: a producer on the wrong server would publish
into the void and the consumers could never drain what was published.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server import ServerProcess
from warrenmq.perf.options import merge
from warrenmq.perf.runner import execute

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def two_servers() -> Iterator[list[ServerProcess]]:
    servers = [ServerProcess(None).start() for _ in range(2)]
    yield servers
    for s in servers:
        s.kill()


@pytest.mark.parametrize("scenario", ["quorum-spread", "persistent-confirm"])
def test_a_scenario_spread_over_two_servers(two_servers: list[ServerProcess], scenario: str) -> None:
    uris = [s.url() for s in two_servers]
    options = {"scenario": scenario, "smoke": True, "uri": uris}
    if scenario == "persistent-confirm":  # one queue per broker at least, and a worker each
        options.update(queues=2, producers=2, consumers=2)
    report = execute(merge(options))
    assert report.ok, report.errors
    m = report.metrics
    assert m["drained"] is True and m["consumed_total"] == m["published_total"] > 0
    assert m["confirmed_total"] == m["published_total"]
    assert str(two_servers[0].port) in report.uri and str(two_servers[1].port) in report.uri
