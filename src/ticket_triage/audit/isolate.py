"""Tell a record's own fault from an outage, and find the records at fault in a batch by bisection.

A data error (a value the database or its driver refuses: a lone surrogate, NUL, NaN in JSON, a string
longer than its column, an integer JSON cannot write) fails every retry of the same record, so retrying
it would wedge whatever waits behind it. An outage (connection refused or lost, a locked or missing
database) passes; those records wait in the spool and are retried.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import exc as sa_exc

T = TypeVar("T")
R = TypeVar("R")

#: Raised by drivers and serializers while binding one value (UnicodeEncodeError is a ValueError).
_VALUE_FAULTS = (ValueError, TypeError, KeyError, OverflowError, RecursionError)
_REASON_CHARS = 300


def is_data_error(exc: BaseException) -> bool:
    """True when the records are at fault, False for an outage (which the spool rides out)."""
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return False
        return isinstance(exc, sa_exc.DataError | sa_exc.IntegrityError)
    if isinstance(exc, sa_exc.StatementError):  # a non-driver error while binding, e.g. JSON of NaN
        return isinstance(exc.orig, _VALUE_FAULTS)
    return isinstance(exc, _VALUE_FAULTS)


def describe(exc: BaseException) -> str:
    """A one-line, ASCII-only reason: the underlying error's type and first line. Never SQLAlchemy's own
    text, which appends the bound parameters (ticket texts) and can itself fail to render."""
    inner = getattr(exc, "orig", None) or exc
    try:
        text = str(inner)
    except Exception:  # str() of some errors fails (e.g. repr of a 5,000-digit integer)
        text = ""
    first = text.splitlines()[0] if text else ""
    reason = f"{type(inner).__name__}: {first}" if first else type(inner).__name__
    # json.dumps escapes control characters and non-ASCII, so the reason is safe in any log or column.
    return json.dumps(reason[:_REASON_CHARS], ensure_ascii=True)[1:-1]


def isolate(
    records: Sequence[T],
    write: Callable[[list[T]], list[R]],
    *,
    first_error: BaseException | None = None,
) -> tuple[list[R | None], list[tuple[int, BaseException]]]:
    """Write ``records`` in order, halving any part that fails with a data error until each failing
    record stands alone; every other record is written once. ``first_error``: the whole batch already
    failed with it (skip that attempt).

    Returns one result per record (None for a record at fault) and the faulty records' positions with
    their errors. An outage propagates: what was written stays written, and the caller spools the batch
    again (``write`` must skip ids already stored, so the replay writes each record once).
    """
    results: list[R | None] = [None] * len(records)
    faulty: list[tuple[int, BaseException]] = []
    pending: list[tuple[int, int, BaseException | None]] = [(0, len(records), first_error)]
    while pending:
        start, stop, known = pending.pop()
        error = known
        if error is None:
            try:
                written = write(list(records[start:stop]))
            except Exception as exc:
                if not is_data_error(exc):
                    raise
                error = exc
            else:
                results[start:stop] = written
                continue
        if stop - start == 1:
            faulty.append((start, error))
            continue
        middle = (start + stop) // 2
        pending.append((middle, stop, None))  # popped second: records keep their order
        pending.append((start, middle, None))
    return results, sorted(faulty, key=lambda pair: pair[0])
