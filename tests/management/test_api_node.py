"""The node as a whole: overview, nodes, health checks, aliveness, list query parameters,
Prometheus metrics, the web UI, and rabbitmqadmin (RabbitMQ's own CLI) against WarrenMQ."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pika
import pytest

from tests.management.conftest import Api, free_port, q, wait_for
from tests.server import ServerProcess


def test_overview_and_nodes(api: Api, mgmt_server: ServerProcess) -> None:
    overview = api.ok("/api/overview")
    for key in ("management_version", "rabbitmq_version", "product_name", "cluster_name", "node", "exchange_types"):
        assert overview[key], key
    assert overview["product_name"] == "WarrenMQ"
    assert set(overview["object_totals"]) == {"connections", "channels", "exchanges", "queues", "consumers"}
    assert set(overview["queue_totals"]) >= {"messages", "messages_ready", "messages_unacknowledged"}
    # The four AMQP types, and the delayed-message and deduplication plugins' types (built in).
    types = {x["name"] for x in overview["exchange_types"]}
    assert types == {"direct", "fanout", "headers", "topic", "x-delayed-message", "x-message-deduplication"}
    ports = {(x["protocol"], x["port"]) for x in overview["listeners"]}
    assert ("amqp", mgmt_server.port) in ports and ("http", mgmt_server.management_port) in ports

    (node,) = api.ok("/api/nodes")
    assert node["name"] == overview["node"] and node["running"] is True and node["type"] == "disc"
    assert node["mem_used"] > 0 and node["mem_limit"] > 0 and node["fd_total"] > 0 and node["uptime"] >= 0
    assert node["mem_alarm"] is False and node["disk_free_alarm"] is False
    # Named as RabbitMQ names its node (monitoring tools build rabbit@<host> paths), with a
    # process count below the limit (nagios' check_rabbitmq_server reads the ratio).
    assert re.fullmatch(r"rabbit@[^.@]+", node["name"]), node["name"]
    assert 1 <= node["proc_used"] < node["proc_total"] == 1048576
    assert api.ok(f"/api/nodes/{q(node['name'])}")["name"] == node["name"]
    assert api.get("/api/nodes/nobody@nowhere").status == 404
    assert api.ok("/api/cluster-name") == {"name": overview["cluster_name"]}
    assert api.ok("/api/extensions") == []


def test_health_checks(api: Api, vhost: str) -> None:
    assert api.ok("/api/health/checks/alarms") == {"status": "ok"}
    assert api.ok("/api/health/checks/local-alarms") == {"status": "ok"}
    assert api.ok(f"/api/aliveness-test/{q(vhost)}") == {"status": "ok"}
    assert api.ok(f"/api/aliveness-test/{q(vhost)}") == {"status": "ok"}  # again: the queue stays
    assert api.ok(f"/api/queues/{q(vhost)}/aliveness-test")["messages"] == 0
    assert api.get("/api/aliveness-test/no-such-vhost").json == {"error": "Object Not Found", "reason": "Not Found"}


def test_more_health_checks_answer_as_rabbitmq(api: Api, mgmt_server: ServerProcess) -> None:
    """The other checks monitoring tools call, with RabbitMQ 3.10.8's bodies and codes."""
    node = api.ok("/api/cluster-name")["name"]
    assert api.ok("/api/healthchecks/node") == {"status": "ok"}
    assert api.ok(f"/api/healthchecks/node/{q(node)}") == {"status": "ok"}
    assert api.get("/api/healthchecks/node/nobody@nowhere").status == 404
    assert api.ok("/api/health/checks/virtual-hosts") == {"status": "ok"}
    for check in ("node-is-quorum-critical", "node-is-mirror-sync-critical"):
        assert api.ok(f"/api/health/checks/{check}") == {"status": "ok", "reason": "single node cluster"}
    for name in ("amqp", "AMQP091", "amqp0-9-1"):
        assert api.ok(f"/api/health/checks/protocol-listener/{name}") == {"status": "ok", "protocol": "amqp"}
    assert api.ok("/api/health/checks/protocol-listener/http") == {"status": "ok", "protocol": "http"}
    missing = api.get("/api/health/checks/protocol-listener/stomp")
    assert (missing.status, missing.json) == (
        503,
        {"status": "failed", "reason": "No active listener", "missing": "stomp", "protocols": ["amqp", "http"]},
    )
    port = mgmt_server.port
    assert api.ok(f"/api/health/checks/port-listener/{port}") == {"status": "ok", "port": port}
    closed = api.get("/api/health/checks/port-listener/1")
    assert closed.status == 503 and closed.json["missing"] == 1
    assert sorted(closed.json["ports"]) == sorted([port, mgmt_server.management_port])
    assert api.get("/api/health/checks/port-listener/abc").json == {"error": "bad_request", "reason": "Invalid port"}
    assert api.ok("/api/health/checks/certificate-expiration/1/months") == {"status": "ok"}  # no TLS here
    assert api.get("/api/health/checks/certificate-expiration/1/fortnights").json == {
        "error": "bad_request",
        "reason": "Time unit not recognised. Supported units: days, weeks, months, years.",
    }
    assert api.get("/api/health/checks/certificate-expiration/x/days").json == {
        "error": "bad_request",
        "reason": "Invalid expiration value.",
    }


def test_a_trailing_slash_is_ignored(api: Api, vhost: str) -> None:
    """As RabbitMQ's router: /api/overview/ is /api/overview, for every method."""
    assert api.ok("/api/overview/")["node"] == api.ok("/api/overview")["node"]
    assert api.put(f"/api/queues/{q(vhost)}/slashed/").status == 201
    assert [x["name"] for x in api.ok(f"/api/queues/{q(vhost)}/")] == ["slashed"]
    assert api.delete(f"/api/queues/{q(vhost)}/slashed/").status == 204
    assert api.ok("/api/healthchecks/node/") == {"status": "ok"}


def test_unknown_paths_and_methods(api: Api) -> None:
    assert api.get("/api/no-such-thing").json == {"error": "Object Not Found", "reason": "Not Found"}
    assert api.post("/api/overview").status == 405


def test_columns_sort_and_pagination(api: Api, vhost: str) -> None:
    v = q(vhost)
    for name in ("b", "c", "a"):
        api.put(f"/api/queues/{v}/{name}")
    assert api.ok(f"/api/queues/{v}?columns=name") == [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    reverse = api.ok(f"/api/queues/{v}?columns=name,message_stats.publish&sort=name&sort_reverse=true")
    assert reverse == [{"name": n, "message_stats": {"publish": 0}} for n in ("c", "b", "a")]
    assert [x["name"] for x in api.ok(f"/api/queues/{v}?sort=")] == ["b", "c", "a"]  # as declared
    page = api.ok(f"/api/queues/{v}?page=2&page_size=2&columns=name")
    assert page == {
        "filtered_count": 3,
        "item_count": 1,
        "items": [{"name": "c"}],
        "page": 2,
        "page_count": 2,
        "page_size": 2,
        "total_count": 3,
    }
    assert api.ok(f"/api/queues/{v}?page=1&name=b&columns=name")["items"] == [{"name": "b"}]
    assert api.get(f"/api/queues/{v}?page=0").status == 400
    assert api.ok("/api/overview?columns=node,object_totals.queues")["object_totals"].keys() == {"queues"}


def test_prometheus_metrics(api: Api, vhost: str, amqp: pika.BlockingConnection) -> None:
    ch = amqp.channel()
    ch.confirm_delivery()
    ch.queue_declare("metered")
    for _ in range(4):
        ch.basic_publish("", "metered", b"12345")
    reply = api.get("/metrics", auth=False)  # as rabbitmq_prometheus: no login
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = reply.text
    labels = f'vhost="{vhost}",queue="metered"'
    assert f"rabbitmq_queue_messages_ready{{{labels}}} 4\n" in text
    assert f"rabbitmq_queue_messages_ready_bytes{{{labels}}} 20\n" in text
    assert f"rabbitmq_queue_messages_published_total{{{labels}}} 4\n" in text
    assert f"rabbitmq_queue_messages_unacked{{{labels}}} 0\n" in text
    assert "# TYPE rabbitmq_queue_messages_ready gauge" in text
    assert re.search(r"^rabbitmq_connections [1-9]\d*$", text, re.M)
    assert re.search(r"^rabbitmq_identity_info\{rabbitmq_node=\"[^\"]+\",rabbitmq_cluster=\"[^\"]+\"\} 1$", text, re.M)
    for line in text.splitlines():  # every line is a comment or "name{labels} number"
        assert line.startswith("# ") or re.fullmatch(r"[a-z_]+(\{.*\})? -?[0-9.e+]+", line), line


def test_web_ui(api: Api) -> None:
    page = api.get("/", auth=False)
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "<title>WarrenMQ</title>" in page.text and 'src="app.js"' in page.text
    script = api.get("/app.js", auth=False)
    assert script.status == 200 and script.headers["Content-Type"].startswith("text/javascript")
    overview = api.get("/js/pages/overview.js", auth=False)
    assert overview.status == 200 and "/api/overview" in overview.text
    assert api.get("/style.css", auth=False).headers["Content-Type"].startswith("text/css")
    assert api.get("/logo.svg", auth=False).headers["Content-Type"].startswith("image/svg+xml")
    for missing in ("/nothing.js", "/js/../app.js", "/%2e%2e/setup.py", "/js/pages/../../ui.py"):
        assert api.get(missing, auth=False).status == 404, missing


RABBITMQADMIN = shutil.which("rabbitmqadmin")


@pytest.mark.skipif(RABBITMQADMIN is None, reason="rabbitmqadmin is not installed")
def test_rabbitmqadmin(api: Api, vhost: str, tmp_path: Path) -> None:
    """RabbitMQ's management CLI, unchanged, against WarrenMQ."""
    assert RABBITMQADMIN is not None
    port = str(api.base.rsplit(":", 1)[1])

    def admin(*args: str) -> str:
        cmd = [sys.executable, RABBITMQADMIN, "-H", "127.0.0.1", "-P", port, "-V", vhost, *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert admin("declare", "queue", "name=ra-q", "durable=true") == "queue declared\n"
    assert admin("declare", "exchange", "name=ra-x", "type=direct") == "exchange declared\n"
    admin("declare", "binding", "source=ra-x", "destination=ra-q", "routing_key=k")
    assert admin("publish", "exchange=ra-x", "routing_key=k", "payload=hello") == "Message published\n"
    assert admin("publish", "routing_key=ra-q", "payload=second") == "Message published\n"
    listing = admin("list", "queues")
    assert re.search(r"\| ra-q +\| 2 +\|", listing), listing
    assert re.search(r"\| ra-q +\| 2 +\|", admin("list", "queues", "name", "messages_ready"))
    got = admin("get", "queue=ra-q", "count=2")
    assert "hello" in got and "second" in got and "| k " in got
    assert re.search(r"\| ra-q +\| 2 +\|", admin("list", "queues"))  # get requeued them
    assert "ra-x" in admin("list", "exchanges") and "ra-x" in admin("list", "bindings")
    export = tmp_path / "defs.json"
    admin("export", str(export))
    doc = json.loads(export.read_text())
    assert {"name": "ra-q", "durable": True, "auto_delete": False, "arguments": {}} in doc["queues"]
    admin("-f", "raw_json", "list", "vhosts")
    assert admin("purge", "queue", "name=ra-q") == "queue purged\n"
    assert api.ok(f"/api/queues/{q(vhost)}/ra-q")["messages"] == 0
    assert admin("delete", "queue", "name=ra-q") == "queue deleted\n"
    assert admin("show", "overview").count("|") > 4


def test_alarm_fails_the_health_check() -> None:
    """A resource alarm in force: /api/health/checks/alarms answers 503 with it (RabbitMQ's body)."""
    server = ServerProcess(
        None, "--management-port", str(free_port()), "--memory-high-watermark-absolute", "1000000"
    ).start()
    try:
        api = Api(server.management_port)
        reply = wait_for(lambda: (r := api.get("/api/health/checks/alarms")).status == 503 and r, 10, "memory alarm")
        assert reply.json == {
            "status": "failed",
            "reason": "There are alarms in effect in the cluster",
            "alarms": [{"resource": "memory", "node": api.ok("/api/overview")["node"]}],
        }
        assert api.ok("/api/nodes")[0]["mem_alarm"] is True
        assert "rabbitmq_alarms_memory_used_watermark 1\n" in api.get("/metrics").text
    finally:
        assert server.stop() == 0, server.log


def test_lesser_endpoints(api: Api, vhost: str, amqp: pika.BlockingConnection) -> None:
    """What WarrenMQ has no use for answers as a RabbitMQ node without it does: empty lists."""
    for path in ("/api/operator-policies", "/api/parameters", "/api/global-parameters", "/api/feature-flags"):
        assert api.ok(path) == [], path
    assert api.ok("/api/topic-permissions") == [] and api.ok(f"/api/vhosts/{q(vhost)}/topic-permissions") == []
    assert api.ok("/api/users/guest/topic-permissions") == []
    assert api.ok(f"/api/vhost-limits/{q(vhost)}") == []
    ch = amqp.channel()
    ch.queue_declare("watched")
    ch.basic_consume("watched", lambda *a: None, consumer_tag="everywhere")
    assert any(c["consumer_tag"] == "everywhere" for c in api.ok("/api/consumers"))
    for user in ("bulk-a", "bulk-b"):
        assert api.put(f"/api/users/{user}", {"password": "x", "tags": ""}).status == 201
    assert api.post("/api/users/bulk-delete", {"users": ["bulk-a", "bulk-b"]}).status == 204
    assert api.get("/api/users/bulk-a").status == 404 and api.get("/api/users/bulk-b").status == 404
