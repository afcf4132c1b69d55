"""``python -m tests.plain_frames_server ARGS``: warren-server with the plain-Python frame
splitter, even where the compiled one is built, so that interop tests can run against both.
It says which module it loaded on stderr before the server starts."""

from __future__ import annotations

import importlib.util
import runpy
import sys
from pathlib import Path

import warrenmq.amqp


def main() -> None:
    source = Path(warrenmq.amqp.__file__).with_name("frames.py")
    spec = importlib.util.spec_from_file_location("warrenmq.amqp.frames", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["warrenmq.amqp.frames"] = module  # before anything imports the compiled one
    spec.loader.exec_module(module)
    print(f"frame splitter: {module.__file__}", file=sys.stderr, flush=True)
    runpy.run_module("warrenmq.server.main", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
