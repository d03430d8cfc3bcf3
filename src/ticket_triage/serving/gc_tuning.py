"""Keeps the loaded model's objects out of the garbage collector's full passes.

A full collection walks every tracked object. With a model loaded (spaCy's vocabulary, tokenizers, the
ensemble's Python objects) that stalled the event loop for ~300 ms now and then under load, seen as
/livez outliers in the serving benchmark. Objects frozen after loading are never walked again; freed
memory still comes back through reference counting.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import sys
import weakref
from typing import Any

log = logging.getLogger(__name__)


def shorten_switch_interval(seconds: float = 0.001) -> None:
    """Hand the interpreter lock over more often than every 5 ms.

    Inference threads run Python too; with the default interval the event loop waited up to 5 ms per
    hand-over to answer /livez or a cache hit while a pass was running.
    """
    sys.setswitchinterval(seconds)


def freeze_loaded_objects() -> None:
    """Collect once, then freeze everything alive (call after loading or swapping a model)."""
    gc.unfreeze()  # a swapped-out model's cycles get one last chance to be collected
    gc.collect()
    gc.freeze()


def trim_heap() -> bool:
    """Hand freed heap pages back to the system (glibc keeps them otherwise; RSS would stay high)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return False


async def release_when_unused(
    ref: weakref.ref[Any], *, poll_seconds: float = 0.05, collect_every: float = 2.0, timeout: float = 120.0
) -> bool:
    """Wait until nothing holds a swapped-out model, then collect it, trim the heap and refreeze.

    Requests in flight keep the old model until they finish; only then can its memory go. Freezing while
    it was still alive would make its cycles immortal (four reloads once took RSS from 2.4 to 7.0 GB).
    Returns whether the model was freed within ``timeout``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    next_collect = loop.time() + collect_every
    gc.unfreeze()
    while ref() is not None and loop.time() < deadline:
        await asyncio.sleep(poll_seconds)
        if ref() is not None and loop.time() >= next_collect:
            gc.collect()  # the model may sit in a reference cycle that only the collector breaks
            next_collect = loop.time() + collect_every
    freed = ref() is None
    if not freed:
        log.warning("a swapped-out model is still referenced after %.0f s; its memory stays", timeout)
    freeze_loaded_objects()
    trim_heap()
    return freed
