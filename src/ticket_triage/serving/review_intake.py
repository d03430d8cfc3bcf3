"""Review intake: every answer routed to review becomes a queue item, and its ``review_id`` goes out with it.

A ticket repeated while its item is open (pending or claimed) gets that item's id, not a second item:
each item carries the canonical ticket's ``review_key``, and the store adds at most one open item per key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from ticket_triage.audit import DurableWriter, SpoolFullError
from ticket_triage.data.canonical import review_key, ticket_review_key
from ticket_triage.review import NewReviewItem
from ticket_triage.serving.errors import unavailable
from ticket_triage.serving.inference import Scores, ServingModel
from ticket_triage.serving.schemas import Prediction, Ticket

log = logging.getLogger(__name__)

#: How many of the model's most likely categories a review item keeps, whatever ``top_k`` the caller asked.
REVIEW_TOP_LABELS = 5
#: Longest a request waits for its review items to be queued. Past it the answer goes out without
#: ``review_id``; the write still finishes or fails into the spool, so the items are kept either way.
REVIEW_WRITE_TIMEOUT_SECONDS = 2.0


class ReviewIntake:
    """Hands routed answers to the durable writer: one store write per request."""

    def __init__(self, writer: DurableWriter) -> None:
        self.writer = writer

    async def queue(
        self,
        model: ServingModel,
        scored: Sequence[tuple[Ticket, Scores, Mapping[str, object]]],
        answers: list[Prediction],
        predicted_at: datetime,
        *,
        source: str,
    ) -> None:
        """Queue every answer routed to review and set its ``review_id`` in ``answers``.

        ``scored`` holds, per answer, its ticket, scores and model inputs (``canonical.model_inputs``).
        """
        routed = [i for i, answer in enumerate(answers) if answer.route == "review"]
        if not routed:
            return
        items = [review_item(model, *scored[i], answers[i], predicted_at, source) for i in routed]
        write = asyncio.ensure_future(asyncio.to_thread(self.writer.add_review_items, items))
        try:
            # shield: a timed-out write keeps running and ends stored or spooled, never half done.
            ids = await asyncio.wait_for(asyncio.shield(write), REVIEW_WRITE_TIMEOUT_SECONDS)
        except SpoolFullError as exc:
            raise unavailable(exc) from exc
        except TimeoutError:
            log.warning("review store slow; %d answer(s) sent without review_id", len(items))
            write.add_done_callback(lambda done: _keep_if_refused(self.writer, items, done))
            return
        for i, review_id in zip(routed, ids, strict=True):
            if review_id is not None:
                answers[i] = answers[i].model_copy(update={"review_id": review_id})

    async def queue_items(self, items: list[NewReviewItem]) -> None:
        """Hand ready items to the store (or spool) without waiting for their ids."""
        write = asyncio.ensure_future(asyncio.to_thread(self.writer.add_review_items, items))
        try:
            await asyncio.wait_for(asyncio.shield(write), REVIEW_WRITE_TIMEOUT_SECONDS)
        except SpoolFullError as exc:
            raise unavailable(exc) from exc
        except TimeoutError:
            write.add_done_callback(lambda done: _keep_if_refused(self.writer, items, done))


def _keep_if_refused(writer: DurableWriter, items: list[NewReviewItem], done: asyncio.Future[Any]) -> None:
    """The answers went out without this write; if it was refused, its items must still be kept."""
    if not done.cancelled() and isinstance(done.exception(), SpoolFullError):
        writer.keep_review_items(items)


def review_item(
    model: ServingModel,
    ticket: Ticket,
    scores: Scores,
    inputs: Mapping[str, object],
    answer: Prediction,
    predicted_at: datetime,
    source: str,
) -> NewReviewItem:
    """The queue's copy of one routed answer; the top labels come from the scores, not the caller's top_k.

    A ticket with an id is keyed by it (``source`` names whose id), so its next version updates this
    item; one without is keyed by its inputs and the model version."""
    identified = ticket.ticket_id is not None
    probs = np.asarray(scores.category, dtype=float)
    order = np.argsort(-probs, kind="stable")[:REVIEW_TOP_LABELS]
    top = tuple((model.category_labels[int(i)], round(float(probs[i]), 6)) for i in order)
    key = (
        ticket_review_key(source, str(ticket.ticket_id))
        if identified
        else review_key(answer.model_version, inputs)
    )
    return _item(ticket, answer, top, predicted_at, key, updates_open=identified)


def replayed_review_item(ticket: Ticket, answer: Prediction, source: str, now: datetime) -> NewReviewItem:
    """The item of an answer the ticket ledger replays, rebuilt from the stored answer (every label's
    probability is kept there). It never updates an open item: the ticket's open item may already hold a
    newer version."""
    top = tuple((p.label, p.probability) for p in answer.probabilities[:REVIEW_TOP_LABELS])
    key = None if ticket.ticket_id is None else ticket_review_key(source, str(ticket.ticket_id))
    return _item(ticket, answer, top, now, key, updates_open=False)


def _item(
    ticket: Ticket,
    answer: Prediction,
    top: tuple[tuple[str, float], ...],
    enqueued_at: datetime,
    key: str | None,
    *,
    updates_open: bool,
) -> NewReviewItem:
    """One ticket and its answer as a queue item; the callers differ only in where the top labels and the
    key come from."""
    return NewReviewItem(
        predicted_category=answer.category,
        confidence=answer.confidence,
        model_version=answer.model_version,
        top_labels=top,
        predicted_priority=answer.priority,
        predicted_tags=None if answer.tags is None else tuple(t.label for t in answer.tags),
        ticket_id=None if ticket.ticket_id is None else str(ticket.ticket_id),
        subject=ticket.subject,
        description=ticket.description,
        created_at=ticket.created_at,
        channel=ticket.channel,
        customer_tier=ticket.customer_tier,
        urgency=ticket.urgency,
        language=ticket.language,
        metadata=ticket.metadata,
        prediction_id=answer.prediction_id,
        enqueued_at=enqueued_at,
        review_key=key,
        updates_open=updates_open,
    )
