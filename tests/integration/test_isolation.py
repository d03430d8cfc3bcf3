"""One bad ticket fails alone: neither its micro-batch neighbours nor other requests see its failure."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from tests.integration.conftest import PREDICT, running_server

from ticket_triage.models.bundle import load_bundle
from ticket_triage.serving.batcher import MicroBatcher, TicketScoringError
from ticket_triage.serving.inference import ServingModel
from ticket_triage.serving.schemas import Ticket

YEAR_ONE = datetime(1, 1, 1, tzinfo=UTC)
INNOCENT = [
    {"subject": f"Invoice {i} charged twice", "description": f"Order {i} shows two charges on my card."}
    for i in range(20)
]


def test_the_real_model_failing_on_one_ticket_fails_only_that_ticket(trained: Any) -> None:
    """The poison is a year-1 timestamp built past validation (which refuses it at the edge): the real
    feature pipeline cannot represent it and raises, so the pass holding it really fails."""
    model = ServingModel(load_bundle(trained.path))
    good = [Ticket(**t, created_at=datetime(2026, 3, 2, 9, tzinfo=UTC)) for t in INNOCENT]
    poison = Ticket.model_construct(subject="Refund", description="Please refund me.", created_at=YEAR_ONE)

    async def main() -> list[Any]:
        batcher = MicroBatcher(max_batch_size=64, max_wait_ms=20)
        batcher.start()
        calls = [batcher.score(model, [t]) for t in good[:10]]
        calls.append(batcher.score(model, [poison]))
        calls += [batcher.score(model, [t]) for t in good[10:]]
        outcome = await asyncio.gather(*calls, return_exceptions=True)
        bulk = await asyncio.gather(
            batcher.score(model, [*good[:5], poison, *good[5:]], "bulk"), return_exceptions=True
        )
        await batcher.close()
        return [*outcome, *bulk]

    outcome = asyncio.run(main())
    answered = [o for o in outcome[:21] if isinstance(o, list)]
    failed = [o for o in outcome[:21] if isinstance(o, BaseException)]
    print(f"\nconcurrent singles: {len(answered)} answered, {len(failed)} failed")
    assert len(answered) == 20 and all(len(o) == 1 for o in answered)
    assert len(failed) == 1 and isinstance(failed[0], TicketScoringError)
    assert isinstance(outcome[21], TicketScoringError) and outcome[21].index == 5  # its place in the batch


def test_a_poisoned_ticket_among_twenty_concurrent_innocent_ones(tmp_path: Any, models_dir: Any) -> None:
    """Over HTTP against a real server: the poisoned one gets 422 naming its field, the rest 200."""
    poison = {"subject": "Refund", "description": "Please refund me.", "created_at": "0001-01-01T00:00:00Z"}
    bodies = [*INNOCENT[:10], poison, *INNOCENT[10:]]
    with (
        running_server(models_dir, tmp_path / "server.log") as server,
        httpx.Client(base_url=server.base_url, headers=PREDICT, timeout=120) as client,
    ):
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
            responses = list(pool.map(lambda body: client.post("/predict", json=body), bodies))
        elapsed = time.perf_counter() - start
    codes = [r.status_code for r in responses]
    print(f"\n21 concurrent /predict in {elapsed:.1f} s: {codes.count(200)} x 200, {codes.count(422)} x 422")
    assert codes.count(200) == 20 and codes[10] == 422
    error = responses[10].json()["error"]
    assert any(f["field"] == "created_at" for f in error["fields"]), error
    assert all(r.json()["category"] for i, r in enumerate(responses) if i != 10)


@pytest.mark.parametrize("bad_at", [0, 7])
def test_a_batch_whose_ticket_the_model_fails_on_names_that_ticket(trained: Any, bad_at: int) -> None:
    model = ServingModel(load_bundle(trained.path))
    tickets = [Ticket(**t) for t in INNOCENT[:8]]
    tickets[bad_at] = Ticket.model_construct(subject="x", description="y", created_at=YEAR_ONE)

    async def main() -> BaseException | None:
        batcher = MicroBatcher(max_batch_size=3, max_wait_ms=0, max_bulk_size=3)
        batcher.start()
        try:
            await batcher.score(model, tickets, "bulk")
        except TicketScoringError as exc:
            return exc
        finally:
            await batcher.close()
        return None

    error = asyncio.run(main())
    assert isinstance(error, TicketScoringError) and error.index == bad_at
