"""Coalesces concurrent prediction requests into vectorised model passes run off the event loop.

The encoder costs far less per ticket on a batch than one ticket at a time, so single ``/predict`` calls
that arrive together wait at most ``max_wait_ms`` to share one pass of up to ``max_batch_size`` tickets.
Every pass runs on one dedicated worker thread: passes never compete with each other for the two cores,
and the event loop stays free to answer ``/livez`` and cache hits while a pass runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.serving.inference import Scores, ServingModel
from ticket_triage.serving.schemas import Ticket

log = logging.getLogger(__name__)


class BatcherClosedError(RuntimeError):
    """The service is shutting down and takes no new work."""


@dataclass
class _Job:
    model: ServingModel
    tickets: Sequence[Ticket]
    future: asyncio.Future[list[Scores]] = field(repr=False)


class MicroBatcher:
    """Queue of jobs (one ticket from ``/predict``, or a chunk of ``/predict/batch``) served in order.

    A job keeps the model it was submitted with: a hot reload between submission and the pass cannot
    mix two models in one answer, and jobs of different models never share a pass.
    """

    def __init__(
        self,
        *,
        max_batch_size: int,
        max_wait_ms: float,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.metrics = metrics
        self._queue: deque[_Job] = deque()
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        # Runs the text-only members of a pass beside the feature pipeline (see ServingModel.score).
        self._helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference-text")
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.passes = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def close(self) -> None:
        """Finish nothing new: fail queued jobs, wait for the pass in progress, stop the thread."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._queue:
            job = self._queue.popleft()
            if not job.future.done():
                job.future.set_exception(BatcherClosedError("the service is shutting down"))
        self._executor.shutdown(wait=True)
        self._helper.shutdown(wait=True)

    @property
    def queued(self) -> int:
        return sum(len(job.tickets) for job in self._queue)

    async def score(self, model: ServingModel, tickets: Sequence[Ticket]) -> list[Scores]:
        """Scores of ``tickets`` from ``model``, computed in some upcoming pass."""
        if self._closed:
            raise BatcherClosedError("the service is shutting down")
        if not tickets:
            return []
        future: asyncio.Future[list[Scores]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Job(model, tickets, future))
        self._arrived.set()
        return await future

    async def run_exclusive(self, model: ServingModel, tickets: Sequence[Ticket]) -> list[Scores]:
        """A pass on the inference thread outside the queue (the reload smoke test uses it)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, model.score, list(tickets), self._helper)

    async def _run(self) -> None:
        while True:
            jobs = await self._next_jobs()
            await self._pass(jobs[0].model, jobs)

    async def _wait_for_job(self, timeout: float | None) -> bool:
        """Wait until something is queued (an Event, not ``wait_for(queue.get())``, so no job is lost)."""
        while not self._queue:
            self._arrived.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._arrived.wait()
            except TimeoutError:
                return False
        return True

    async def _next_jobs(self) -> list[_Job]:
        """The next pass: the oldest job plus those of the same model that fit, waiting up to max_wait."""
        await self._wait_for_job(None)
        first = self._queue.popleft()
        jobs, size = [first], len(first.tickets)
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_batch_size:
            if not self._queue and not await self._wait_for_job(max(0.0, deadline - time.monotonic())):
                break
            job = self._queue[0]
            if job.model is not first.model or size + len(job.tickets) > self.max_batch_size:
                break  # it starts the next pass
            jobs.append(self._queue.popleft())
            size += len(job.tickets)
        return jobs

    async def _pass(self, model: ServingModel, jobs: list[_Job]) -> None:
        live = [job for job in jobs if not job.future.done()]  # a caller that went away needs no pass
        if not live:
            return
        tickets = [t for job in live for t in job.tickets]
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            scores = await loop.run_in_executor(self._executor, model.score, tickets, self._helper)
        except Exception as exc:  # the model failed on this batch: every caller in it gets the error
            log.exception("inference pass of %d tickets failed", len(tickets))
            for job in live:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        self.passes += 1
        if self.metrics is not None:
            self.metrics.batch_size.observe(len(tickets))
            self.metrics.inference_seconds.observe(time.perf_counter() - started)
        offset = 0
        for job in live:
            part = scores[offset : offset + len(job.tickets)]
            offset += len(job.tickets)
            if not job.future.done():
                job.future.set_result(part)
