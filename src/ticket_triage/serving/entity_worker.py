"""spaCy's entity and part-of-speech features computed in a process of their own while serving.

spaCy holds the interpreter lock for most of its work, so on a thread beside the encoder the two did
not overlap: a 256-ticket pass took 1.78 s for 2.1 core-seconds of work. In a second process the entity
features run truly beside the encoder. If that process dies, the features are computed in the service's
own process for that pass and a new worker is started for the next.
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
import pandas as pd

from ticket_triage.data.schema import TEXT

log = logging.getLogger(__name__)


def _limit_threads() -> None:
    """One core's worth: the worker shares the machine with the encoder's threads."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _transform(family: Any, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(family.transform(frame))


class EntityWorker:
    """One spawned worker process; ``submit`` returns a future of the family's output for a frame."""

    def __init__(self) -> None:
        self._context = multiprocessing.get_context("spawn")  # never fork a process that holds threads
        self._pool = self._start()
        # Waits on the worker's answer (without the interpreter lock) so callers get a plain future.
        self._waiter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="entities-wait")

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=1, mp_context=self._context, initializer=_limit_threads)

    def run(self, family: Any, frame: pd.DataFrame) -> np.ndarray:
        """The family's features of ``frame``; here in this process if the worker has died."""
        texts = frame[[TEXT]]
        try:
            return self._pool.submit(_transform, family, texts).result()
        except BrokenProcessPool:
            log.error("the entity worker process died; computing this pass here and starting a new one")
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start()
            return _transform(family, texts)

    def submit(self, family: Any, frame: pd.DataFrame) -> Future[np.ndarray]:
        return self._waiter.submit(self.run, family, frame)

    @property
    def pid(self) -> int | None:
        """The worker's process id once it runs (tests use it to kill the worker for real)."""
        processes = getattr(self._pool, "_processes", None) or {}
        return next(iter(processes), None)

    def close(self) -> None:
        self._waiter.shutdown(wait=True)
        self._pool.shutdown(wait=True, cancel_futures=True)
