"""An append-only, fsynced JSON-lines file that holds records while the database cannot take them.

Each process writes its own file (several workers may share ``spool_dir``) and holds an exclusive
``flock`` on a companion lock file for as long as it lives. A file whose lock can be taken belongs to a
process that died; any writer may adopt it and replay it. Records are read back in the order written.

An append is all or nothing: a write the disk could only take in part (full disk, quota) is cut back to
the last whole record and refused with :class:`SpoolFullError`, so no torn line stays behind a refusal.
Files and the folder are private (0600 and 0700): they hold ticket texts.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_DATA = ".jsonl"
_LOCK = ".lock"
FILE_MODE = 0o600
DIR_MODE = 0o700
#: Errors that mean "no room": the spool refuses instead of keeping half a record.
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class SpoolFullError(RuntimeError):
    """The spool cannot take more records (its disk is full, or it cannot be written at all), so the
    service must refuse new work until the database or the disk is back; nothing written is dropped."""

    def __init__(self, message: str, retry_after_seconds: float = 5.0) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class SpoolBatch:
    """Records read from a spool, the byte offset up to which they were read, and any whole lines that
    are not JSON (kept for the dead-letter store rather than skipped)."""

    records: list[Any]
    upto: int
    bad_lines: list[bytes] = field(default_factory=list)


def encode_line(record: Any) -> bytes:
    """One JSON line, ASCII only (lone surrogates and control characters escaped). Raises ValueError,
    TypeError or RecursionError for a record JSON cannot hold (e.g. an integer beyond 4,300 digits)."""
    return json.dumps(record, separators=(",", ":"), ensure_ascii=True).encode("ascii") + b"\n"


def _read(path: Path, upto: int | None = None) -> SpoolBatch:
    """Whole lines only: a torn last line (a crash mid-append, so never acknowledged) is skipped."""
    try:
        with open(path, "rb") as handle:
            data = handle.read() if upto is None else handle.read(upto)
    except FileNotFoundError:
        return SpoolBatch([], 0)
    records: list[Any] = []
    bad: list[bytes] = []
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        if not line.endswith(b"\n"):
            log.warning("spool %s: skipping a torn last line (%d bytes)", path.name, len(line))
            break
        try:
            records.append(json.loads(line))
        except (json.JSONDecodeError, UnicodeDecodeError):
            log.error("spool %s: line %d is not JSON; it goes to the dead-letter store", path.name, number)
            bad.append(line)
    return SpoolBatch(records, len(data), bad)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` as 0700 (its missing parents get the usual mode); an existing one is kept."""
    if not directory.exists():
        directory.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        with suppress(OSError):
            os.chmod(directory, DIR_MODE)  # mkdir's mode is cut by the umask; make it exact


def write_at(fd: int, payload: bytes, offset: int, what: str) -> None:
    """Write ``payload`` at ``offset`` and fsync, or cut the file back to ``offset`` and raise.

    A short write (the disk took part of it) is an error here, not a partial success: the caller
    never acknowledged those bytes, so they must not stay."""
    try:
        view = memoryview(payload)
        done = 0
        while done < len(view):
            done += os.pwrite(fd, view[done:], offset + done)
        os.fsync(fd)
    except OSError as exc:
        with suppress(OSError):
            os.ftruncate(fd, offset)
            os.fsync(fd)
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        if exc.errno in _NO_SPACE:
            raise SpoolFullError(f"{what} is full ({reason})") from exc
        raise SpoolFullError(f"{what} cannot be written ({reason})") from exc


class Spool:
    """This process's spool file. Thread-safe: request threads and the writer thread append to it."""

    def __init__(self, directory: Path) -> None:
        make_private_dir(directory)
        self.directory = directory
        stem = f"spool-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.path = directory / f"{stem}{_DATA}"
        self._lock_path = directory / f"{stem}{_LOCK}"
        self._lock_fd = os.open(self._lock_path, os.O_CREAT | os.O_RDWR, FILE_MODE)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._mutex = threading.Lock()
        self._size = 0

    def append(self, records: Sequence[Any]) -> None:
        """Durable on return: written, fsynced (the directory too, for a new file). Raises SpoolFullError
        with the file as it was before, or ValueError/TypeError for a record JSON cannot hold."""
        self.append_lines([encode_line(r) for r in records])

    def append_lines(self, lines: Sequence[bytes]) -> None:
        """As :meth:`append`, for lines made by :func:`encode_line` (each one record, ending in a newline).

        Writes at the end of what was acknowledged (``pwrite``, not ``O_APPEND``), so even if cutting a
        failed write back were to fail, the next append overwrites the torn bytes instead of following them.
        """
        if not lines:
            return
        payload = b"".join(lines)
        with self._mutex:
            new_file = self._size == 0
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, FILE_MODE)
            try:
                write_at(fd, payload, self._size, f"spool {self.path.name}")
            finally:
                os.close(fd)
            if new_file:
                _fsync_dir(self.directory)
            self._size += len(payload)

    @property
    def pending(self) -> bool:
        return self._size > 0

    @property
    def size(self) -> int:
        """Bytes acknowledged so far (what a reader may rely on)."""
        return self._size

    def read(self) -> SpoolBatch:
        """Everything appended so far; pass its ``upto`` to :meth:`consumed` once it is stored."""
        with self._mutex:
            size = self._size
        return _read(self.path, size) if size else SpoolBatch([], 0)

    def consumed(self, upto: int) -> None:
        """Drop the first ``upto`` bytes; anything appended since stays, still in order. Dropping all of
        it needs no disk space; keeping a tail needs room for a copy (OSError otherwise, file unchanged)."""
        with self._mutex:
            if upto >= self._size:
                self.path.unlink(missing_ok=True)
                self._size = 0
                return
            with open(self.path, "rb") as handle:
                handle.seek(upto)
                tail = handle.read(self._size - upto)
            temporary = self.path.with_suffix(".tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            try:
                write_at(fd, tail, 0, f"spool copy {temporary.name}")
            except SpoolFullError:
                os.close(fd)
                temporary.unlink(missing_ok=True)
                raise
            os.close(fd)
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
