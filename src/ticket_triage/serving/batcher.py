"""Coalesces concurrent prediction requests into vectorised model passes run off the event loop.

The encoder costs far less per ticket on a batch than one ticket at a time, so single ``/predict`` calls
that arrive together wait at most ``max_wait_ms`` to share one pass of up to ``max_batch_size`` tickets.
Every pass runs on one dedicated worker thread: passes never compete with each other for the two cores,
and the event loop stays free to answer ``/livez`` and cache hits while a pass runs.

Fairness: jobs wait in two lanes, ``interactive`` (``/predict``) and ``bulk`` (``/predict/batch``). A bulk
request is cut into chunks of at most ``max_bulk_size`` tickets and ``max_pass_chars`` characters, and
when both lanes wait the passes alternate between them. A single ticket therefore waits for at most one
bounded bulk pass, and a stream of single tickets still leaves bulk callers every other pass.

Isolation: when a pass fails, its jobs are run again one by one, and a failing job of several tickets is
halved until the ticket at fault is found; only the job holding it fails, with that ticket's position.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.serving.entity_worker import EntityWorker
from ticket_triage.serving.inference import Scores, ServingModel
from ticket_triage.serving.schemas import Ticket

log = logging.getLogger(__name__)

Lane = Literal["interactive", "bulk"]
LANES: tuple[Lane, ...] = ("interactive", "bulk")


class BatcherClosedError(RuntimeError):
    """The service is shutting down and takes no new work."""


class TicketScoringError(RuntimeError):
    """The model failed on one ticket; ``index`` is its position in the list given to ``score``."""

    def __init__(self, index: int, cause: BaseException) -> None:
        super().__init__(f"scoring ticket {index} failed: {type(cause).__name__}")
        self.index = index
        self.cause = cause

    def shifted(self, offset: int) -> TicketScoringError:
        return TicketScoringError(self.index + offset, self.cause)


def ticket_chars(ticket: Ticket) -> int:
    """The text a ticket puts through the feature families: what a pass's cost grows with."""
    return len(ticket.subject or "") + len(ticket.description or "")


@dataclass
class _Job:
    model: ServingModel
    tickets: Sequence[Ticket]
    future: asyncio.Future[list[Scores]] = field(repr=False)
    chars: int = 0


class MicroBatcher:
    """Two lanes of jobs (one ticket from ``/predict``, or a chunk of ``/predict/batch``), served fairly.

    A job keeps the model it was submitted with: a hot reload between submission and the pass cannot
    mix two models in one answer, and jobs of different models never share a pass.
    """

    def __init__(
        self,
        *,
        max_batch_size: int,
        max_wait_ms: float,
        max_bulk_size: int = 256,
        max_pass_chars: int = 24_000,
        metrics: ServiceMetrics | None = None,
        entities: EntityWorker | None = None,
    ) -> None:
        self.max_batch_size = max_batch_size
        self.max_bulk_size = max_bulk_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_pass_chars = max_pass_chars
        self.metrics = metrics
        self._lanes: dict[Lane, deque[_Job]] = {lane: deque() for lane in LANES}
        self._last_lane: Lane = "bulk"
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        # Runs the text-only members of a pass beside the feature pipeline (see ServingModel.score).
        self._helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference-text")
        # spaCy's features in their own process, beside the encoder (see entity_worker.py).
        self._entities = entities
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.passes = 0
        #: (lane, tickets) of every pass run, oldest first, bounded; what the fairness test reads.
        self.history: deque[tuple[Lane, int]] = deque(maxlen=1000)

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
        for queue in self._lanes.values():
            while queue:
                job = queue.popleft()
                if not job.future.done():
                    job.future.set_exception(BatcherClosedError("the service is shutting down"))
        self._executor.shutdown(wait=True)
        self._helper.shutdown(wait=True)
        if self._entities is not None:
            self._entities.close()

    @property
    def queued(self) -> int:
        return sum(len(job.tickets) for queue in self._lanes.values() for job in queue)

    def chunks(self, tickets: Sequence[Ticket]) -> list[Sequence[Ticket]]:
        """Consecutive runs of ``tickets`` within the pass bounds; a ticket over the char bound goes alone."""
        out: list[Sequence[Ticket]] = []
        start, chars = 0, 0
        for i, ticket in enumerate(tickets):
            size = ticket_chars(ticket)
            if i > start and (i - start >= self.max_bulk_size or chars + size > self.max_pass_chars):
                out.append(tickets[start:i])
                start, chars = i, 0
            chars += size
        if start < len(tickets):
            out.append(tickets[start:])
        return out

    async def score(
        self, model: ServingModel, tickets: Sequence[Ticket], lane: Lane = "interactive"
    ) -> list[Scores]:
        """Scores of ``tickets`` from ``model``, computed in upcoming passes of ``lane``.

        Raises :class:`TicketScoringError` naming the first ticket the model failed on.
        """
        if self._closed:
            raise BatcherClosedError("the service is shutting down")
        if not tickets:
            return []
        loop = asyncio.get_running_loop()
        parts = self.chunks(tickets) if lane == "bulk" else [tickets]
        jobs = [_Job(model, part, loop.create_future(), sum(ticket_chars(t) for t in part)) for part in parts]
        self._lanes[lane].extend(jobs)
        self._arrived.set()
        out: list[Scores] = []
        offset = 0
        try:
            for job in jobs:
                try:
                    out.extend(await job.future)
                except TicketScoringError as exc:
                    raise exc.shifted(offset) from exc.cause
                offset += len(job.tickets)
        finally:
            for job in jobs:  # a failed or abandoned request needs no more passes
                if not job.future.done():
                    job.future.cancel()
        return out

    async def run_exclusive(self, model: ServingModel, tickets: Sequence[Ticket]) -> list[Scores]:
        """A pass on the inference thread outside the queue (the reload smoke test uses it)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._scorer(model), list(tickets))

    async def _run(self) -> None:
        while True:
            lane, jobs = await self._next_jobs()
            await self._pass(lane, jobs[0].model, jobs)
            del jobs  # while idle, hold no model: a swapped-out one must be free to go

    def _drop_done(self) -> None:
        for queue in self._lanes.values():
            while queue and queue[0].future.done():  # cancelled: its request failed or went away
                queue.popleft()

    def _pick_lane(self) -> Lane | None:
        self._drop_done()
        waiting = [lane for lane in LANES if self._lanes[lane]]
        if not waiting:
            return None
        if len(waiting) == 2:
            return "bulk" if self._last_lane == "interactive" else "interactive"
        return waiting[0]

    async def _wait_for(self, lane: Lane | None, timeout: float | None) -> bool:
        """Wait until ``lane`` (any lane if None) holds a job; an Event, so no job is ever lost."""
        while True:
            self._drop_done()
            if any(self._lanes[name] for name in ((lane,) if lane else LANES)):
                return True
            self._arrived.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._arrived.wait()
            except TimeoutError:
                return False

    async def _next_jobs(self) -> tuple[Lane, list[_Job]]:
        """The next pass: the oldest job of the lane whose turn it is, plus what fits beside it."""
        await asyncio.sleep(0)  # let callers of the last pass run first: a failed request cancels its rest
        await self._wait_for(None, None)
        lane = self._pick_lane()
        assert lane is not None
        queue = self._lanes[lane]
        first = queue.popleft()
        jobs, size, chars = [first], len(first.tickets), first.chars
        deadline = time.monotonic() + self.max_wait_s
        limit = self.max_bulk_size if lane == "bulk" else self.max_batch_size
        while size < limit:
            if not queue and not await self._wait_for(lane, max(0.0, deadline - time.monotonic())):
                break
            self._drop_done()
            if not queue:
                break
            job = queue[0]
            if (
                job.model is not first.model
                or size + len(job.tickets) > limit
                or chars + job.chars > self.max_pass_chars
            ):
                break  # it starts the next pass
            jobs.append(queue.popleft())
            size += len(job.tickets)
            chars += job.chars
        self._last_lane = lane
        return lane, jobs

    async def _run_pass(self, model: ServingModel, tickets: list[Ticket]) -> list[Scores]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._scorer(model), tickets)

    def _scorer(self, model: ServingModel) -> Callable[[list[Ticket]], list[Scores]]:
        if self._entities is None:
            return functools.partial(model.score, helper=self._helper)
        return functools.partial(model.score, helper=self._helper, entities=self._entities)

    async def _pass(self, lane: Lane, model: ServingModel, jobs: list[_Job]) -> None:
        live = [job for job in jobs if not job.future.done()]  # a caller that went away needs no pass
        if not live:
            return
        tickets = [t for job in live for t in job.tickets]
        started = time.perf_counter()
        try:
            scores = await self._run_pass(model, tickets)
        except Exception as exc:
            log.warning("pass of %d tickets failed (%s); isolating", len(tickets), type(exc).__name__)
            await self._isolate(model, live, exc)
            return
        self.passes += 1
        self.history.append((lane, len(tickets)))
        if self.metrics is not None:
            self.metrics.batch_size.observe(len(tickets))
            self.metrics.inference_seconds.observe(time.perf_counter() - started)
        offset = 0
        for job in live:
            part = scores[offset : offset + len(job.tickets)]
            offset += len(job.tickets)
            if not job.future.done():
                job.future.set_result(part)

    async def _isolate(self, model: ServingModel, jobs: list[_Job], error: Exception) -> None:
        """Rerun a failed pass job by job, so only the job holding the bad ticket fails."""
        for job in jobs:
            if job.future.done():
                continue
            if len(jobs) == 1:
                outcome: list[Scores] | TicketScoringError = await self._find_fault(
                    model, list(job.tickets), error
                )
            else:
                try:
                    outcome = await self._run_pass(model, list(job.tickets))
                except Exception as exc:
                    outcome = await self._find_fault(model, list(job.tickets), exc)
            if job.future.done():
                continue
            if isinstance(outcome, TicketScoringError):
                log.error("ticket %d of a job failed to score: %r", outcome.index, outcome.cause)
                if self.metrics is not None:
                    self.metrics.failed_tickets.inc()
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)

    async def _find_fault(
        self, model: ServingModel, tickets: list[Ticket], error: Exception
    ) -> TicketScoringError:
        """Halve a failing run of tickets until one ticket is left that fails alone."""
        low, high = 0, len(tickets)  # tickets[low:high] is known to fail with ``error``
        while high - low > 1:
            middle = (low + high) // 2
            try:
                await self._run_pass(model, tickets[low:middle])
            except Exception as exc:
                high, error = middle, exc
            else:
                low = middle  # the right half fails (the pass of the whole failed)
        return TicketScoringError(low, error)
