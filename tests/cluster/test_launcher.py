"""tools/warren_cluster.py: starts nodes, says where they are, stops them all on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from tests.cluster.conftest import require_cluster_server

ROOT = Path(__file__).resolve().parents[2]
NODE_LINE = re.compile(
    r"(node\d+)  amqp://guest:guest@127\.0\.0\.1:(\d+)/  management http://127\.0\.0\.1:(\d+)/.*pid (\d+)"
)


class Launcher:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tools" / "warren_cluster.py"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
        )
        self.lines: list[str] = []
        self.up = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("Ctrl-C"):
                self.up.set()
        self.up.set()

    def nodes(self) -> list[tuple[str, int, int, int]]:
        found = [NODE_LINE.search(line) for line in self.lines]
        return [(m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))) for m in found if m]

    @property
    def output(self) -> str:
        return "".join(self.lines)


@pytest.fixture
def launch() -> Iterator[list[Launcher]]:
    started: list[Launcher] = []
    yield started
    for launcher in started:
        if launcher.proc.poll() is None:
            launcher.proc.send_signal(signal.SIGTERM)
            try:
                launcher.proc.wait(30)
            except subprocess.TimeoutExpired:
                launcher.proc.kill()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_standalone_nodes_start_answer_and_stop_on_sigterm(launch: list[Launcher], name: str) -> None:
    launcher = Launcher("--standalone", "--nodes", "2")
    launch.append(launcher)
    assert launcher.up.wait(60) and launcher.proc.poll() is None, launcher.output
    nodes = launcher.nodes()
    assert [n[0] for n in nodes] == ["node1", "node2"], launcher.output
    data_dir = Path(re.search(r"data and logs: (\S+)", launcher.output).group(1))  # type: ignore[union-attr]
    for _, port, _, _ in nodes:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, heartbeat=0))
        ch = conn.channel()
        ch.queue_declare(name)
        ch.basic_publish("", name, b"hi")
        assert ch.basic_get(name, auto_ack=True)[2] == b"hi"
        conn.close()
    assert (data_dir / "logs" / "node1.log").exists()
    launcher.proc.send_signal(signal.SIGTERM)
    assert launcher.proc.wait(60) == 0, launcher.output
    assert "node1 stopped (code 0)" in launcher.output and "node2 stopped (code 0)" in launcher.output
    assert not any(pid_alive(pid) for *_, pid in nodes)
    assert not data_dir.exists()  # a temporary directory goes with it


def test_a_node_that_cannot_start_stops_the_others(launch: list[Launcher], tmp_path: Path) -> None:
    launcher = Launcher("--standalone", "--nodes", "2", "--data-dir", str(tmp_path / "c"), "--", "--frame-max", "x")
    launch.append(launcher)
    assert launcher.proc.wait(60) == 1, launcher.output
    assert "cannot start: node1 did not start" in launcher.output
    assert (tmp_path / "c" / "logs" / "node1.log").read_text()  # kept: a given directory is the user's


def test_a_cluster_starts_with_etcd_and_stops(launch: list[Launcher]) -> None:
    """Needs the server side (warren-server --cluster); skipped until then."""
    require_cluster_server()
    launcher = Launcher("--nodes", "3", "--name", "launchertest")
    launch.append(launcher)
    assert launcher.up.wait(90) and launcher.proc.poll() is None, launcher.output
    assert "WarrenMQ cluster 'launchertest' is up: etcd at 127.0.0.1:" in launcher.output
    assert [n[0] for n in launcher.nodes()] == ["node1", "node2", "node3"]
    launcher.proc.send_signal(signal.SIGINT)  # as Ctrl-C
    assert launcher.proc.wait(90) == 0, launcher.output
    assert "etcd stopped" in launcher.output
