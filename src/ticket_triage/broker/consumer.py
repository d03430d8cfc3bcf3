"""The AMQP consumer: ticket messages in, one published answer (or dead letter) out per message.

At least once: a message is acked only after the broker confirmed what it produced, the answer on the
results exchange or the message itself on the dead-letter queue. A consumer that dies before that leaves
the message unacked and the broker hands it to another consumer; the ticket ledger then gives the same
answer (same ``prediction_id``) without a second decision, so a redelivery can at worst repeat a result.

Each delivery is handled in a task of its own, at most ``prefetch`` at once (the broker sends no more
until some are acked), so single-ticket ``predict`` calls overlap and the micro-batcher shares model
passes between them. The tasks are this consumer's, not the AMQP client's: a channel lost mid-prediction
does not cancel a prediction half stored; its message is redelivered and answered from the ledger.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage, AbstractRobustConnection

from ticket_triage.broker.messages import (
    MessageRejectedError,
    dead_letter_message,
    parse_ticket,
    result_message,
)
from ticket_triage.serving.errors import ApiError
from ticket_triage.serving.prediction_flow import PredictionFlow

log = logging.getLogger(__name__)

#: A message that failed for a reason not its own (database, spool, shutdown) waits this long before it is
#: requeued: a retry loop at full speed would only burn the cores the other messages need.
RETRY_DELAY_SECONDS = 1.0
#: Longest wait for the broker to confirm one publish; past it the input is requeued.
PUBLISH_TIMEOUT_SECONDS = 30.0
ENDPOINT = "amqp"


@dataclass(frozen=True)
class ConsumerOptions:
    amqp_url: str
    queue: str
    results_exchange: str
    dead_letter_queue: str
    prefetch: int = 64
    top_k: int = 5


@dataclass
class ConsumerCounts:
    """Running totals since start; logged at shutdown."""

    consumed: int = 0
    published: int = 0
    dead_lettered: int = 0
    redelivered: int = 0
    requeued: int = 0
    #: Acks or nacks the broker never got (channel lost): those messages come back.
    unsettled: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        kinds = ", ".join(f"{k}={v}" for k, v in sorted(self.reasons.items())) or "none"
        return (
            f"consumed={self.consumed} published={self.published} dead_lettered={self.dead_lettered}"
            f" redelivered={self.redelivered} requeued={self.requeued} unsettled={self.unsettled}"
            f" (dead-letter reasons: {kinds})"
        )


def instance_id() -> str:
    """The ``app_id`` of what this process publishes: which consumer answered, for operators and tests."""
    return f"triage-consume/{socket.gethostname()}/{os.getpid()}"


class TicketConsumer:
    """Consumes ``options.queue`` until ``stop`` is set, then finishes what it holds and closes."""

    def __init__(self, predictions: PredictionFlow, max_text_chars: int, options: ConsumerOptions) -> None:
        self._predictions = predictions
        self._max_text_chars = max_text_chars
        self._options = options
        self._app_id = instance_id()
        self._inflight: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._results: AbstractExchange | None = None
        self._default: AbstractExchange | None = None
        self.counts = ConsumerCounts()

    async def run(
        self,
        connection: AbstractRobustConnection,
        stop: asyncio.Event,
        on_ready: Callable[[], None] | None = None,
    ) -> ConsumerCounts:
        """Declare what the consumer needs, consume until ``stop``, then settle every message taken."""
        try:
            # on_return_raises: an answer no queue is bound to receive is a failed publish, not a
            # confirmed one (the input is requeued instead of acked into the void).
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            await channel.set_qos(prefetch_count=self._options.prefetch)
            self._results = await channel.declare_exchange(
                self._options.results_exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            self._default = channel.default_exchange
            await channel.declare_queue(self._options.dead_letter_queue, durable=True)
            queue = await channel.declare_queue(self._options.queue, durable=True)
            tag = await queue.consume(self._on_message)
            if on_ready is not None:
                on_ready()
            await stop.wait()
            self._stopping = True
            await queue.cancel(tag)  # no new deliveries; those already sent are still handled
            await self._drain()
            await channel.close()
        finally:
            log.info("consumer stopped: %s", self.counts.line())
        return self.counts

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.get_running_loop().create_task(self._handle(message))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _drain(self) -> None:
        """Wait until every delivery received is settled (deliveries may trail the cancel briefly)."""
        while True:
            await asyncio.sleep(0.05)
            if not self._inflight:
                return
            await asyncio.wait(set(self._inflight))

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        counts = self.counts
        counts.consumed += 1
        if message.redelivered:
            counts.redelivered += 1
        try:
            ticket = parse_ticket(message.body, self._max_text_chars)
            run = await self._predictions.predict([ticket], self._options.top_k, endpoint=ENDPOINT)
        except MessageRejectedError as exc:
            await self._dead_letter(message, exc.kind, exc.reason)
            return
        except ApiError as exc:
            if exc.code == "scoring_failed":  # this ticket's own fault: the batcher isolated it
                await self._dead_letter(message, "scoring_failed", "scoring_failed: the model failed on it")
                return
            await self._requeue(message, f"{exc.code} ({exc.status_code})")
            return
        except Exception as exc:  # the database, a full spool, shutdown: not the message's fault
            await self._requeue(message, type(exc).__name__)
            return
        answer = run.predictions[0]
        assert self._results is not None
        try:
            await self._results.publish(
                result_message(answer, message, self._app_id),
                routing_key=answer.route,
                timeout=PUBLISH_TIMEOUT_SECONDS,
            )
        except Exception as exc:
            await self._requeue(message, f"result publish failed: {type(exc).__name__}")
            return
        counts.published += 1
        await self._settle(message.ack)

    async def _dead_letter(self, message: AbstractIncomingMessage, kind: str, reason: str) -> None:
        """Park the message with its reason, then ack it; if parking fails the message stays queued."""
        assert self._default is not None
        try:
            await self._default.publish(
                dead_letter_message(message, reason, self._app_id),
                routing_key=self._options.dead_letter_queue,
                timeout=PUBLISH_TIMEOUT_SECONDS,
            )
        except Exception as exc:
            await self._requeue(message, f"dead-letter publish failed: {type(exc).__name__}")
            return
        self.counts.dead_lettered += 1
        self.counts.reasons[kind] += 1
        await self._settle(message.ack)

    async def _requeue(self, message: AbstractIncomingMessage, why: str) -> None:
        log.warning("message requeued: %s", why)  # the reason only: bodies are never logged
        if not self._stopping:
            await asyncio.sleep(RETRY_DELAY_SECONDS)
        self.counts.requeued += 1
        await self._settle(lambda: message.nack(requeue=True))

    async def _settle(self, settle: Callable[[], Awaitable[None]]) -> None:
        """Ack or nack; on a lost channel the broker requeues the message itself, so only count it."""
        try:
            await settle()
        except Exception as exc:
            self.counts.unsettled += 1
            log.warning("could not settle a message (%s); the broker will redeliver it", type(exc).__name__)
