"""Keeps the loaded model's objects out of the garbage collector's full passes.

A full collection walks every tracked object. With a model loaded (spaCy's vocabulary, tokenizers, the
ensemble's Python objects) that stalled the event loop for ~300 ms now and then under load, seen as
/livez outliers in the serving benchmark. Objects frozen after loading are never walked again; freed
memory still comes back through reference counting.
"""

from __future__ import annotations

import gc
import sys


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
