"""Start-up and shutdown of the running service, for any front: the HTTP app and the broker consumer.

Both fronts answer through the same parts (model, micro-batcher, cache, ledger, review queue, audit
writer, notifier), so a ticket gets the same answer, review item and notification whichever way it came.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import Engine

from ticket_triage.audit import DurableWriter, Spool
from ticket_triage.audit.records import retention_cutoff
from ticket_triage.config import Settings
from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.notify.delivery import build_notifier
from ticket_triage.notify.outbox import delete_delivered_before
from ticket_triage.review import ReviewStore, make_engine, migrate
from ticket_triage.route_map import load_route_map
from ticket_triage.routing import RoutingPolicy
from ticket_triage.serving.batcher import MicroBatcher
from ticket_triage.serving.cache import build_cache
from ticket_triage.serving.entity_worker import EntityWorker
from ticket_triage.serving.gc_tuning import freeze_loaded_objects, shorten_switch_interval
from ticket_triage.serving.inference import SMOKE_TICKET
from ticket_triage.serving.registry import load_serving_model, models_dir_of
from ticket_triage.serving.service import Service
from ticket_triage.serving.ticket_ledger import TicketLedger

log = logging.getLogger(__name__)

LEDGER_RETENTION_EVERY_SECONDS = 3600.0


def _one_torch_thread() -> None:
    """Each pass runs the encoder members on a helper thread beside the pipeline: one torch thread each."""
    import torch

    torch.set_num_threads(1)


async def _retention(engine: Engine, days: int) -> None:
    """Ledger answers and delivered notifications are kept as long as audit records: a helpdesk retrying
    after that gets a fresh answer."""
    ledger = TicketLedger(engine)
    while True:
        cutoff = retention_cutoff(datetime.now(UTC), days)
        try:
            if cutoff is not None:
                removed = await asyncio.to_thread(ledger.delete_older_than, cutoff)
                sent = await asyncio.to_thread(delete_delivered_before, engine, cutoff)
                if removed or sent:
                    log.info(
                        "retention removed %d ledger answer(s), %d delivered notification(s)", removed, sent
                    )
        except Exception as exc:
            log.warning("ticket ledger retention failed (%s); next try in an hour", exc)
        await asyncio.sleep(LEDGER_RETENTION_EVERY_SECONDS)


@asynccontextmanager
async def running_service(
    settings: Settings, metrics: ServiceMetrics, *, watch: bool = True
) -> AsyncIterator[Service]:
    """Load the model, open the stores, start the background work; undo it all on exit.

    A route map that does not fit the model stops start-up here, before anything is served.
    """
    _one_torch_thread()
    shorten_switch_interval()
    onnx_dir = settings.onnx_dir if settings.encoder_runtime == "onnx" else None
    model = await asyncio.to_thread(load_serving_model, settings.models_dir, onnx_dir)
    model.check_routing(RoutingPolicy.from_settings(settings))
    route_map = load_route_map(settings.route_map_file)
    if route_map is not None:
        route_map.check_labels(model.category_labels)
    cache = build_cache(settings, metrics)
    batcher = MicroBatcher(
        max_batch_size=settings.max_batch_size,
        max_wait_ms=settings.max_wait_ms,
        max_bulk_size=settings.max_bulk_size,
        max_pass_chars=settings.max_pass_chars,
        metrics=metrics,
        entities=EntityWorker() if settings.entity_process else None,
    )
    batcher.start()
    # Warm-up: the first pass loads spaCy and MiniLM; pay that before the first caller does.
    await batcher.run_exclusive(model, [SMOKE_TICKET])
    freeze_loaded_objects()
    engine = make_engine(settings)
    prepare: Callable[[], None] | None = None
    try:
        await asyncio.to_thread(migrate, engine)
    except Exception as exc:
        # Predictions matter more than the queue: serve now, spool review items and audit records, and
        # let the writer migrate and replay once the database answers.
        log.error("database unavailable at start-up (%s); spooling until it answers", exc)
        prepare = partial(migrate, engine)
    reviews = ReviewStore(engine, lease_seconds=settings.review_lease_seconds)
    notifier = build_notifier(settings, engine, metrics)
    writer = DurableWriter(
        engine,
        reviews,
        Spool(settings.spool_dir),
        batch_size=settings.audit_batch_size,
        flush_seconds=settings.audit_flush_ms / 1000.0,
        queue_max=settings.audit_queue_max,
        retry_seconds=settings.spool_retry_seconds,
        retention_days=settings.audit_retention_days,
        metrics=metrics,
        prepare=prepare,
        on_notified=None if notifier is None else notifier.wake,
    )
    writer.start()
    service = Service.assemble(
        settings,
        metrics,
        model,
        models_dir_of(settings.models_dir),
        cache=cache,
        batcher=batcher,
        writer=writer,
        reviews=reviews,
        engine=engine,
        onnx_dir=onnx_dir,
        ledger=TicketLedger(engine),
        route_map=route_map,
        notifier=notifier,
    )
    log.info("serving model %s with a %s cache", model.version, cache.backend)
    del model  # the registry owns it now; a reference kept here would outlive every hot reload
    interval = settings.monitor_interval_seconds
    background = [
        asyncio.create_task(service.monitors.watch_reviews(interval)),
        asyncio.create_task(service.monitors.watch_drift(interval)),
    ]
    if settings.audit_retention_days > 0:
        background.append(asyncio.create_task(_retention(engine, settings.audit_retention_days)))
    if watch and settings.model_watch_seconds > 0:
        background.append(await service.registry.watch_live(settings.model_watch_seconds))
    if notifier is not None:
        await notifier.start()
    try:
        yield service
    finally:
        for task in background:
            task.cancel()
        try:
            await service.close()
        finally:
            engine.dispose()
