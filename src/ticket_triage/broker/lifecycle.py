"""One consumer process from start to exit: the broker connection, the service parts, the stop signals.

The broker is connected first, so a wrong URL fails in a second rather than after the model has loaded.
SIGTERM or SIGINT stops taking messages; what was taken is answered and acked before the service closes
(its writer then stores what is still in memory). A second signal stops waiting: the messages still held
go back to the queue unacked and :class:`ForcedStopError` is raised.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

import aio_pika

from ticket_triage.broker.consumer import ConsumerCounts, ConsumerOptions, TicketConsumer
from ticket_triage.config import Settings
from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.serving.assembly import running_service

log = logging.getLogger(__name__)


class ForcedStopError(RuntimeError):
    """A second stop signal came while in-flight messages were still being answered."""


async def consume_until_stopped(
    settings: Settings, options: ConsumerOptions, on_ready: Callable[[], None] | None = None
) -> ConsumerCounts:
    """Serve ``options.queue`` until SIGTERM/SIGINT; the counts of what was done."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    forced = asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():
            forced.set()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        async with (
            await aio_pika.connect_robust(options.amqp_url) as connection,
            running_service(settings, ServiceMetrics()) as service,
        ):
            consumer = TicketConsumer(service.predictions, settings.max_text_chars, options)
            if stop.is_set():  # stopped during start-up: nothing was taken, nothing to finish
                return consumer.counts
            running = asyncio.create_task(consumer.run(connection, stop, on_ready))
            force = asyncio.create_task(forced.wait())
            await asyncio.wait({running, force}, return_when=asyncio.FIRST_COMPLETED)
            force.cancel()
            if not running.done():
                running.cancel()
                log.warning("second stop signal: unsettled messages go back to the queue")
                raise ForcedStopError(consumer.counts.line())
            return running.result()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
