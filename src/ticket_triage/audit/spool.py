"""An append-only, fsynced JSON-lines file that holds records while the database cannot take them.

Each process writes its own file (several workers may share ``spool_dir``) and holds an exclusive
``flock`` on a companion lock file for as long as it lives. A file whose lock can be taken belongs to a
process that died; any writer may adopt it and replay it. Records are read back in the order written.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_DATA = ".jsonl"
_LOCK = ".lock"


@dataclass(frozen=True)
class SpoolBatch:
    """Records read from a spool, and the byte offset up to which they were read."""

    records: list[dict[str, Any]]
    upto: int


def _read(path: Path, upto: int | None = None) -> SpoolBatch:
    """Whole lines only: a torn last line (a crash mid-append, so never acknowledged) is skipped."""
    try:
        with open(path, "rb") as handle:
            data = handle.read() if upto is None else handle.read(upto)
    except FileNotFoundError:
        return SpoolBatch([], 0)
    records: list[dict[str, Any]] = []
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        if not line.endswith(b"\n"):
            log.warning("spool %s: skipping a torn last line (%d bytes)", path.name, len(line))
            break
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            log.error("spool %s: line %d is not JSON; skipped", path.name, number)
    return SpoolBatch(records, len(data))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """This process's spool file. Thread-safe: request threads and the writer thread append to it."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        stem = f"spool-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.path = directory / f"{stem}{_DATA}"
        self._lock_path = directory / f"{stem}{_LOCK}"
        self._lock_fd = os.open(self._lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._mutex = threading.Lock()
        self._size = 0

    def append(self, records: Sequence[dict[str, Any]]) -> None:
        """Durable on return: written, flushed and fsynced (the directory too, for a new file)."""
        if not records:
            return
        payload = b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records)
        with self._mutex:
            new_file = self._size == 0
            with open(self.path, "ab") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            if new_file:
                _fsync_dir(self.directory)
            self._size += len(payload)

    @property
    def pending(self) -> bool:
        return self._size > 0

    def read(self) -> SpoolBatch:
        """Everything appended so far; pass its ``upto`` to :meth:`consumed` once it is stored."""
        with self._mutex:
            size = self._size
        return _read(self.path, size) if size else SpoolBatch([], 0)

    def consumed(self, upto: int) -> None:
        """Drop the first ``upto`` bytes; anything appended since stays, still in order."""
        with self._mutex:
            if upto >= self._size:
                self.path.unlink(missing_ok=True)
                self._size = 0
                return
            with open(self.path, "rb") as handle:
                handle.seek(upto)
                tail = handle.read()
            temporary = self.path.with_suffix(".tmp")
            with open(temporary, "wb") as handle:
                handle.write(tail)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
            _fsync_dir(self.directory)
            self._size = len(tail)

    def close(self) -> None:
        """Release ownership. A non-empty file stays for the next process to adopt."""
        with self._mutex:
            if self._size == 0:
                self.path.unlink(missing_ok=True)
                self._lock_path.unlink(missing_ok=True)
            os.close(self._lock_fd)

    @contextmanager
    def orphan(self) -> Iterator[tuple[Path, SpoolBatch] | None]:
        """The oldest spool left by a dead process, locked for us while the caller replays it.

        The caller deletes it with :func:`discard` when every record is stored; otherwise it stays and
        its lock is released for a later attempt.
        """
        for lock_path in sorted(self.directory.glob(f"*{_LOCK}"), key=_mtime):
            if lock_path == self._lock_path:
                continue
            fd = os.open(lock_path, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # its owner is alive
            try:
                data_path = lock_path.with_suffix(_DATA)
                yield data_path, _read(data_path)
                return
            finally:
                os.close(fd)
        yield None

    @staticmethod
    def discard(data_path: Path) -> None:
        data_path.unlink(missing_ok=True)
        data_path.with_suffix(_LOCK).unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
