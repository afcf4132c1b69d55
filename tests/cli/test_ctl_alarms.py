"""warrenctl set_vm_memory_high_watermark and set_disk_free_limit: rabbitmqctl's commands, banners
and argument errors (checked against rabbitmqctl 3.10.8); the node's alarms follow at once."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Ctl, free_port
from tests.management.conftest import Api
from tests.server import ServerProcess


def test_set_watermark_and_disk_limit_raise_and_clear_alarms(tmp_path: Path) -> None:
    # A server with a data directory: the disk monitor watches it (not with --no-persistence).
    server = ServerProcess(tmp_path / "data", "--management-port", str(free_port())).start()
    try:
        ctl, api = Ctl(server), Api(server.management_port)
        node = api.get("/api/overview").json["node"]
        assert api.get("/api/health/checks/alarms").status == 200

        done = ctl("set_vm_memory_high_watermark", "absolute", "1MB")
        assert (done.code, done.out) == (0, f"Setting memory threshold on {node} to 1MB bytes ...\n"), done
        assert server.wait_for_log("memory resource limit alarm set")
        assert api.get(f"/api/nodes/{node}").json["mem_limit"] == 1_000_000
        alarms = api.get("/api/health/checks/alarms")
        assert alarms.status == 503 and alarms.json["alarms"] == [{"resource": "memory", "node": node}]

        done = ctl("set_vm_memory_high_watermark", "0.4")
        assert (done.code, done.out) == (0, f"Setting memory threshold on {node} to 0.4 ...\n"), done
        assert server.wait_for_log("memory resource limit alarm cleared")
        assert api.get(f"/api/nodes/{node}").json["mem_limit"] > 1_000_000

        done = ctl("set_disk_free_limit", "1000000TB")
        assert (done.code, done.out) == (0, f"Setting disk free limit on {node} to 1000000TB bytes ...\n"), done
        assert server.wait_for_log("free disk space alarm set")
        assert api.get(f"/api/nodes/{node}").json["disk_free_limit"] == 10**18
        done = ctl("set_disk_free_limit", "mem_relative", "0.01")
        assert done.code == 0 and "to 0.01 times the total RAM ..." in done.out, done
        assert server.wait_for_log("free disk space alarm cleared")
        assert api.get("/api/health/checks/alarms").status == 200
    finally:
        server.stop()


def test_bad_arguments_are_refused_as_rabbitmqctl_does(tmp_path: Path) -> None:
    server = ServerProcess(None, "--management-port", str(free_port())).start()
    try:
        ctl, api = Ctl(server), Api(server.management_port)
        usage = "Usage\n\nwarrenctl set_vm_memory_high_watermark <fraction> | absolute <value>\n"
        done = ctl("set_vm_memory_high_watermark", "1.5")
        assert done.code == 65
        assert done.err.startswith(
            "Error (argument validation): Bad argument: The threshold should be a fraction between 0.0 and 1.0\n"
        )
        assert done.err.endswith(usage)
        for args in (["abc"], ["absolute", "xyz"], ["absolute", "12parsecs"]):
            done = ctl("set_vm_memory_high_watermark", *args)
            assert done.code == 65 and done.err.startswith("Error (argument validation): Bad argument.\n"), done
        done = ctl("set_disk_free_limit", "lots")
        assert done.code == 65 and done.err.startswith("Error (argument validation): Bad argument.\n"), done
        assert ctl("set_vm_memory_high_watermark").code == 64  # not enough arguments
        # Nothing changed, and only an administrator may change it.
        node = api.get("/api/overview").json["node"]
        assert not server.wait_for_log("watermark set to", timeout=0.2)
        assert api.put("/api/users/monitor", {"password": "pw", "tags": "monitoring"}).status == 201
        refused = api.as_user("monitor", "pw").put(f"/api/nodes/{node}/memory-high-watermark", {"fraction": 0.1})
        assert refused.status == 401
        assert api.put(f"/api/nodes/{node}/memory-high-watermark", {"fraction": "x"}).status == 400
        assert api.put(f"/api/nodes/{node}/disk-free-limit", {"limit": -5}).status == 400
        assert api.put("/api/nodes/rabbit@elsewhere/disk-free-limit", {"limit": 5}).status == 404
    finally:
        server.stop()
