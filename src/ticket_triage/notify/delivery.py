"""The delivery worker: takes due rows from the outbox and POSTs each decision to the configured URL.

One asyncio task per service process claims rows (leased, so processes sharing the database never send a
row at once; see :mod:`ticket_triage.notify.leases`), keeps up to ``concurrency`` attempts in flight, and
records each outcome (:mod:`ticket_triage.notify.policy`). A ticket's decisions go one at a time, in
order. It wakes when the writer stores new rows (:meth:`Notifier.wake`), when an attempt ends, when a
retry it scheduled falls due, and every ``poll_seconds`` otherwise (rows another process scheduled).

Delivery is at least once: an attempt whose answer was lost, or whose outcome could not be recorded, is
sent again with the same ``X-Triage-Delivery``, by which receivers dedupe. Neither the secret nor a
payload is ever logged or kept in ``last_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import Engine

from ticket_triage.audit.isolate import describe
from ticket_triage.config import Settings
from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.notify.leases import Claimed, Outcome, claim_due, pending_count, record_outcomes, release
from ticket_triage.notify.outbox import DEAD, DELIVERED, PENDING
from ticket_triage.notify.policy import Verdict, backoff_seconds, clip, judge_status
from ticket_triage.notify.signing import SIGNATURE_HEADER, signature

log = logging.getLogger(__name__)

USER_AGENT = "ticket-triage-notifier"
#: A lease outlasts the longest attempt by this much, so no attempt still running is claimed again.
LEASE_MARGIN_SECONDS = 30.0
#: How long ``close`` lets attempts in flight finish before it cancels them (their rows go out again).
CLOSE_GRACE_SECONDS = 5.0
#: Bytes of a refusing answer's body kept in ``last_error`` (receivers often say why there).
_SNIPPET_BYTES = 300


class Notifier:
    """Owns the delivery task; :meth:`wake` may be called from any thread."""

    def __init__(
        self,
        engine: Engine,
        url: str,
        secret: str | None,
        *,
        max_attempts: int,
        backoff_seconds: float,
        backoff_max_seconds: float,
        timeout_seconds: float,
        concurrency: int,
        poll_seconds: float,
        metrics: ServiceMetrics | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if httpx.URL(url).scheme not in ("http", "https"):
            raise ValueError("the notify URL must be http:// or https://")
        self._engine = engine
        self._url = url
        self._secret = secret or None
        self._max_attempts = max(1, max_attempts)
        self._backoff = backoff_seconds
        self._backoff_max = backoff_max_seconds
        self._timeout = timeout_seconds
        self._concurrency = max(1, concurrency)
        self._poll = poll_seconds
        self._metrics = metrics
        self._clock = clock or (lambda: datetime.now(UTC))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._stopping = False
        self._grace = CLOSE_GRACE_SECONDS
        self._inflight: dict[asyncio.Task[None], Claimed] = {}
        #: Outcomes the database did not take yet (it was down); retried before the next claim.
        self._unsaved: list[tuple[Claimed, Outcome]] = []
        #: Monotonic times at which retries this worker scheduled fall due.
        self._due: list[float] = []
        self._next_gauge = 0.0
        self._database_failing = False
        self._receiver_failing = False

    @property
    def engine(self) -> Engine:
        return self._engine

    # --- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the delivery task on the running loop (a second call does nothing)."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self._stopping = False
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self._timeout),
            follow_redirects=False,
            limits=httpx.Limits(
                max_connections=self._concurrency, max_keepalive_connections=self._concurrency
            ),
            headers={"User-Agent": USER_AGENT},
        )
        self._task = asyncio.create_task(self._run(), name="triage-notifier")

    def wake(self) -> None:
        """New rows are in the outbox: look now rather than at the next poll. Thread-safe, never raises."""
        loop, event = self._loop, self._event
        if loop is None or event is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing to wake
            loop.call_soon_threadsafe(event.set)

    async def close(self, grace_seconds: float = CLOSE_GRACE_SECONDS) -> None:
        """Stop claiming, let attempts in flight finish for up to ``grace_seconds``, then cancel the rest
        (their leases are given back, so another worker sends them)."""
        task = self._task
        if task is None:
            return
        self._stopping = True
        self._grace = grace_seconds
        self.wake()
        try:
            await task
        finally:
            self._task = None
            if self._client is not None:
                await self._client.aclose()
                self._client = None
            self._loop = None
            self._event = None

    # --- the loop ------------------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._event is not None
        while not self._stopping:
            self._event.clear()
            try:
                await self._cycle()
            except Exception as exc:  # the task must outlive whatever one cycle meets
                log.error("notifier cycle failed (%s); going on", describe(exc))
            await self._sleep()
        await self._finish()

    async def _cycle(self) -> None:
        await self._save_unsaved()
        free = self._concurrency - len(self._inflight)
        if free > 0:
            now = self._clock()
            lease = now + timedelta(seconds=self._timeout + LEASE_MARGIN_SECONDS)
            try:
                claims = await asyncio.to_thread(
                    claim_due, self._engine, now=now, lease_until=lease, limit=free
                )
            except Exception as exc:
                self._database_trouble(exc)
                claims = []
            else:
                self._database_back()
            for claimed in claims:
                task = asyncio.create_task(self._attempt(claimed), name=f"notify-{claimed.id}")
                self._inflight[task] = claimed
                task.add_done_callback(self._attempt_done)
        await self._refresh_gauge()

    async def _sleep(self) -> None:
        assert self._event is not None
        now = time.monotonic()
        while self._due and self._due[0] <= now:
            heapq.heappop(self._due)
        timeout = self._poll if not self._due else min(self._poll, self._due[0] - now)
        if self._stopping or self._event.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), max(0.0, timeout))

    def _attempt_done(self, task: asyncio.Task[None]) -> None:
        self._inflight.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("notification attempt failed unexpectedly (%s)", describe(task.exception()))
        if self._event is not None:
            self._event.set()  # a slot is free, and the ticket's next decision may go

    async def _finish(self) -> None:
        inflight = dict(self._inflight)
        if inflight:
            _, late = await asyncio.wait(list(inflight), timeout=self._grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
            if late:
                log.warning("notifier stopping: %d attempt(s) cut short will be sent again", len(late))
                try:
                    await asyncio.to_thread(release, self._engine, [inflight[t] for t in late])
                except Exception as exc:  # their leases run out by themselves
                    log.warning("could not give back %d lease(s) (%s)", len(late), describe(exc))
        await self._save_unsaved()
        if self._unsaved:
            log.warning(
                "notifier stopping with %d outcome(s) unrecorded; those rows will be sent again",
                len(self._unsaved),
            )

    # --- one attempt ---------------------------------------------------------------------------------

    async def _attempt(self, claimed: Claimed) -> None:
        started = time.perf_counter()
        try:
            verdict = await self._send(claimed)
        finally:
            if self._metrics is not None:
                self._metrics.notification_seconds.observe(time.perf_counter() - started)
        outcome = self._outcome(claimed, verdict)
        self._note(claimed, outcome)
        await self._save([(claimed, outcome)])

    async def _send(self, claimed: Claimed) -> Verdict:
        assert self._client is not None
        try:
            body = json.dumps(
                claimed.payload, separators=(",", ":"), ensure_ascii=True, allow_nan=False
            ).encode("ascii")
        except (TypeError, ValueError, RecursionError) as exc:
            return Verdict(False, error=f"the payload cannot be sent as JSON: {_describe(exc)}")
        headers = self._headers(claimed, body)
        try:
            async with (
                asyncio.timeout(self._timeout),
                self._client.stream("POST", self._url, content=body, headers=headers) as response,
            ):
                ok = 200 <= response.status_code < 300
                snippet = "" if ok else self._safe(await _read_some(response, _SNIPPET_BYTES))
                return judge_status(
                    response.status_code,
                    retry_after=response.headers.get("retry-after"),
                    now=self._clock(),
                    snippet=snippet,
                )
        except TimeoutError:
            return Verdict(False, retryable=True, error=f"no answer within {self._timeout:g} s")
        except (httpx.HTTPError, OSError) as exc:
            return Verdict(False, retryable=True, error=self._safe(_describe(exc)))

    def _headers(self, claimed: Claimed, body: bytes) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "X-Triage-Event": _header_value(claimed.event),
            "X-Triage-Delivery": _header_value(claimed.prediction_id),
            "X-Triage-Attempt": str(claimed.attempt),
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = signature(self._secret, int(self._clock().timestamp()), body)
        return headers

    def _outcome(self, claimed: Claimed, verdict: Verdict) -> Outcome:
        if verdict.delivered:
            return Outcome(DELIVERED)
        error = verdict.error or "failed"
        if not verdict.retryable:
            return Outcome(DEAD, error=error)
        if claimed.attempt >= self._max_attempts:
            return Outcome(DEAD, error=f"gave up after {claimed.attempt} attempt(s); the last: {error}")
        delay = backoff_seconds(
            claimed.attempt,
            base=self._backoff,
            cap=self._backoff_max,
            retry_after=verdict.retry_after_seconds,
        )
        heapq.heappush(self._due, time.monotonic() + delay)
        return Outcome(
            PENDING,
            error=f"attempt {claimed.attempt}: {error}",
            next_attempt_at=self._clock() + timedelta(seconds=delay),
        )

    def _note(self, claimed: Claimed, outcome: Outcome) -> None:
        """Metrics and logs: a warning when the receiver starts failing and when a row goes dead, not one
        per retry (an outage would flood the log)."""
        label = {DELIVERED: "delivered", PENDING: "retried", DEAD: "dead_lettered"}[outcome.status]
        if self._metrics is not None:
            self._metrics.notifications.labels(outcome=label).inc()
        if outcome.status == DELIVERED:
            if self._receiver_failing:
                log.info("the notify receiver accepts again (delivery %s)", claimed.prediction_id)
                self._receiver_failing = False
            return
        if outcome.status == DEAD:
            log.warning(
                "notification %s (%s) dead after %d attempt(s): %s",
                claimed.prediction_id,
                claimed.event,
                claimed.attempt,
                outcome.error,
            )
        elif not self._receiver_failing:
            log.warning("the notify receiver fails (%s); retrying with backoff", outcome.error)
        else:
            log.debug("notification %s retried: %s", claimed.prediction_id, outcome.error)
        if outcome.status == PENDING:
            self._receiver_failing = True

    # --- the database ----------------------------------------------------------------------------------

    async def _save(self, results: list[tuple[Claimed, Outcome]]) -> None:
        try:
            await asyncio.to_thread(record_outcomes, self._engine, results, self._clock())
        except Exception as exc:
            self._database_trouble(exc)
            self._unsaved.extend(results)

    async def _save_unsaved(self) -> None:
        if not self._unsaved:
            return
        results, self._unsaved = self._unsaved, []
        await self._save(results)

    async def _refresh_gauge(self) -> None:
        if self._metrics is None or time.monotonic() < self._next_gauge:
            return
        self._next_gauge = time.monotonic() + self._poll
        try:
            pending = await asyncio.to_thread(pending_count, self._engine)
        except Exception:  # the claim already said the database is away
            return
        self._metrics.notification_pending.set(pending)

    def _database_trouble(self, exc: BaseException) -> None:
        if not self._database_failing:
            log.warning(
                "notifier cannot reach the outbox (%s); retrying every %g s", describe(exc), self._poll
            )
        self._database_failing = True

    def _database_back(self) -> None:
        if self._database_failing:
            log.info("notifier reaches the outbox again")
        self._database_failing = False

    def _safe(self, text: str) -> str:
        """Error text fit for ``last_error`` and logs: one short ASCII line without the secret or URL."""
        if self._secret:
            text = text.replace(self._secret, "<secret>")
        return clip(text.replace(self._url, "<notify_url>"))


def build_notifier(settings: Settings, engine: Engine, metrics: ServiceMetrics | None) -> Notifier | None:
    """The configured notifier, or None when ``notify_url`` is unset (nothing is sent then)."""
    if not settings.notify_url:
        return None
    secret = settings.notify_secret.get_secret_value() if settings.notify_secret is not None else None
    return Notifier(
        engine,
        settings.notify_url,
        secret,
        max_attempts=settings.notify_max_attempts,
        backoff_seconds=settings.notify_backoff_seconds,
        backoff_max_seconds=settings.notify_backoff_max_seconds,
        timeout_seconds=settings.notify_timeout_seconds,
        concurrency=settings.notify_concurrency,
        poll_seconds=settings.notify_poll_seconds,
        metrics=metrics,
    )


async def _read_some(response: httpx.Response, limit: int) -> str:
    data = b""
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) >= limit:
            break
    return data[:limit].decode("utf-8", "replace")


def _header_value(value: str) -> str:
    """ASCII without line breaks: a header cannot carry anything else."""
    return " ".join(value.split()).encode("ascii", "backslashreplace").decode("ascii")


def _describe(exc: BaseException | None) -> str:
    """An HTTP or encoding error's type and first line (database errors go through ``describe``, which
    leaves out the bound parameters SQLAlchemy would append)."""
    if exc is None:
        return "unknown error"
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
