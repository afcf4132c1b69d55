"""A small append-only file of CRC-checked records, made durable with the store's group commit.

What a deduplication cache remembers is written here: appends are held until the end of the
loop turn, written with the message records of the same group and fsynced with them, so that a
publisher's confirm also covers the cache entry its message made.  A torn or damaged record
ends the readable part (what follows it is dropped at the next rewrite).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

_HEAD = struct.Struct(">II")  # crc32, size


class Journal:
    def __init__(self, path: Path, on_append: Callable[[Journal], None], fsync: bool = True) -> None:
        self.path = path
        self._on_append = on_append
        self._fsync = fsync
        self._pending: list[bytes] = []
        self.fd = -1

    def read(self) -> list[bytes]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        out: list[bytes] = []
        at = 0
        while at + _HEAD.size <= len(data):
            crc, size = _HEAD.unpack_from(data, at)
            payload = data[at + _HEAD.size : at + _HEAD.size + size]
            if len(payload) != size or zlib.crc32(payload) != crc:
                break
            out.append(payload)
            at += _HEAD.size + size
        return out

    def append(self, payload: bytes) -> None:
        if not self._pending:
            self._on_append(self)
        self._pending.append(_HEAD.pack(zlib.crc32(payload), len(payload)) + payload)

    def flush(self) -> int:
        """Write what is pending; the descriptor to fsync (-1: nothing written)."""
        if not self._pending:
            return -1
        if self.fd < 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        data = b"".join(self._pending)
        os.write(self.fd, data)  # raises on a full disk: the records stay pending
        self._pending = []
        return self.fd

    def rewrite(self, payloads: list[bytes]) -> None:
        """Replace the whole file (compaction), atomically."""
        self._close()
        self._pending = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        data = b"".join(_HEAD.pack(zlib.crc32(p), len(p)) + p for p in payloads)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            if self._fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)

    def delete(self) -> None:
        self._close()
        self._pending = []
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def _close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
