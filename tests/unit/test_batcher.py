"""The micro-batcher's own logic: coalescing, order, model separation, failures and shutdown.

The model here is a stand-in that records each pass; the real model passes are covered by the serving
integration tests. A stand-in is the only way to see exactly which tickets shared a pass.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from ticket_triage.serving.batcher import BatcherClosedError, MicroBatcher, TicketScoringError
from ticket_triage.serving.inference import Scores
from ticket_triage.serving.schemas import Ticket


class RecordingModel:
    """Scores a ticket as [its number, 0]; remembers each pass and the thread it ran on."""

    def __init__(self, delay: float = 0.05, fail_on: str | None = None) -> None:
        self.delay = delay
        self.fail_on = fail_on
        self.passes: list[list[str]] = []
        self.threads: set[str] = set()

    def score(self, tickets: Sequence[Ticket], helper: object = None) -> list[Scores]:
        self.threads.add(threading.current_thread().name)
        subjects = [t.subject or "" for t in tickets]
        self.passes.append(subjects)
        time.sleep(self.delay)
        if self.fail_on is not None and self.fail_on in subjects:
            raise RuntimeError("model failed on this batch")
        return [Scores(category=[float(s.split()[-1]), 0.0]) for s in subjects]


def _ticket(i: int) -> Ticket:
    return Ticket(subject=f"ticket {i}")


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_concurrent_requests_share_passes_and_get_their_own_answers() -> None:
    model = RecordingModel(delay=0.05)

    async def main() -> list[list[Scores]]:
        batcher = MicroBatcher(max_batch_size=8, max_wait_ms=5)
        batcher.start()
        results = await asyncio.gather(*(batcher.score(model, [_ticket(i)]) for i in range(20)))  # type: ignore[arg-type]
        await batcher.close()
        return results

    results = _run(main())
    assert [r[0].category[0] for r in results] == [float(i) for i in range(20)]
    sizes = [len(p) for p in model.passes]
    assert sum(sizes) == 20
    assert max(sizes) == 8  # coalesced up to the limit, never past it
    assert len(model.passes) <= 4
    assert all(name.startswith("inference") for name in model.threads)  # never on the event loop thread


def test_a_job_larger_than_the_batch_size_runs_whole_and_alone() -> None:
    model = RecordingModel(delay=0.0)

    async def main() -> None:
        batcher = MicroBatcher(max_batch_size=4, max_wait_ms=20)
        batcher.start()
        big = batcher.score(model, [_ticket(i) for i in range(10)])  # type: ignore[arg-type]
        small = batcher.score(model, [_ticket(99)])  # type: ignore[arg-type]
        got_big, got_small = await asyncio.gather(big, small)
        assert [s.category[0] for s in got_big] == [float(i) for i in range(10)]
        assert got_small[0].category[0] == 99.0
        await batcher.close()

    _run(main())
    assert [len(p) for p in model.passes] == [10, 1]


def test_jobs_of_different_models_never_share_a_pass() -> None:
    old, new = RecordingModel(delay=0.02), RecordingModel(delay=0.02)

    async def main() -> None:
        batcher = MicroBatcher(max_batch_size=16, max_wait_ms=20)
        batcher.start()
        calls = [batcher.score(old if i % 2 else new, [_ticket(i)]) for i in range(8)]  # type: ignore[arg-type]
        await asyncio.gather(*calls)
        await batcher.close()

    _run(main())
    assert sorted(s for p in old.passes for s in p) == sorted(f"ticket {i}" for i in range(1, 8, 2))
    assert sorted(s for p in new.passes for s in p) == sorted(f"ticket {i}" for i in range(0, 8, 2))


def test_a_failing_pass_fails_only_the_job_holding_the_bad_ticket() -> None:
    model = RecordingModel(delay=0.01, fail_on="ticket 1")

    async def main() -> tuple[object, list[Scores]]:
        batcher = MicroBatcher(max_batch_size=2, max_wait_ms=50)
        batcher.start()
        first = asyncio.ensure_future(batcher.score(model, [_ticket(0)]))  # type: ignore[arg-type]
        second = asyncio.ensure_future(batcher.score(model, [_ticket(1)]))  # type: ignore[arg-type]
        outcome = await asyncio.gather(first, second, return_exceptions=True)
        later = await batcher.score(model, [_ticket(5)])  # type: ignore[arg-type]
        await batcher.close()
        return outcome, later

    outcome, later = _run(main())
    good, bad = outcome  # type: ignore[misc]
    assert good[0].category[0] == 0.0  # its neighbour's failure did not reach it
    assert isinstance(bad, TicketScoringError) and bad.index == 0
    assert isinstance(bad.cause, RuntimeError)
    assert model.passes[:3] == [["ticket 0", "ticket 1"], ["ticket 0"], ["ticket 1"]]
    assert later[0].category[0] == 5.0  # the batcher keeps serving


def test_a_failing_bulk_request_names_its_bad_ticket_by_request_position() -> None:
    model = RecordingModel(delay=0.0, fail_on="ticket 13")

    async def main() -> object:
        batcher = MicroBatcher(max_batch_size=4, max_wait_ms=0, max_bulk_size=4)
        batcher.start()
        tickets = [_ticket(i) for i in range(20)]
        outcome = await asyncio.gather(batcher.score(model, tickets, "bulk"), return_exceptions=True)  # type: ignore[arg-type]
        await batcher.close()
        return outcome[0]

    error = _run(main())
    assert isinstance(error, TicketScoringError) and error.index == 13
    # The chunk holding it (tickets 12-15) was halved to find it; chunks after it were never run.
    assert not any("ticket 19" in p for p in model.passes)


def test_bulk_requests_are_cut_into_passes_within_the_ticket_and_character_bounds() -> None:
    batcher = MicroBatcher(max_batch_size=64, max_wait_ms=0, max_bulk_size=3, max_pass_chars=100)
    tickets = [Ticket(subject="x" * n) for n in (10, 10, 10, 10, 60, 50, 150, 5)]
    chunks = batcher.chunks(tickets)
    assert [[len(t.subject or "") for t in c] for c in chunks] == [[10, 10, 10], [10, 60], [50], [150], [5]]


def test_single_tickets_wait_for_at_most_one_bulk_pass() -> None:
    """Twelve bulk passes are queued before the single ticket; passes alternate, so it runs second."""
    model = RecordingModel(delay=0.02)

    async def main() -> tuple[list[tuple[str, int]], int]:
        batcher = MicroBatcher(max_batch_size=4, max_wait_ms=0, max_bulk_size=4)
        batcher.start()
        bulk = asyncio.ensure_future(batcher.score(model, [_ticket(i) for i in range(48)], "bulk"))  # type: ignore[arg-type]
        await asyncio.sleep(0.005)  # the first bulk pass is running
        single = await batcher.score(model, [_ticket(99)])  # type: ignore[arg-type]
        passes_before_single = batcher.passes
        assert single[0].category[0] == 99.0
        await bulk
        await batcher.close()
        return list(batcher.history), passes_before_single

    history, passes_before_single = _run(main())
    assert passes_before_single <= 2
    assert [lane for lane, _ in history].count("interactive") == 1
    assert sum(n for lane, n in history if lane == "bulk") == 48


def test_a_stream_of_single_tickets_still_leaves_bulk_every_other_pass() -> None:
    model = RecordingModel(delay=0.01)

    async def main() -> list[tuple[str, int]]:
        batcher = MicroBatcher(max_batch_size=2, max_wait_ms=0, max_bulk_size=2)
        batcher.start()
        bulk = asyncio.ensure_future(batcher.score(model, [_ticket(i) for i in range(8)], "bulk"))  # type: ignore[arg-type]
        singles = [batcher.score(model, [_ticket(100 + i)]) for i in range(30)]  # type: ignore[arg-type]
        await asyncio.gather(bulk, *singles)
        await batcher.close()
        return list(batcher.history)

    lanes = [lane for lane, _ in _run(main())]
    last_bulk = max(i for i, lane in enumerate(lanes) if lane == "bulk")
    assert lanes.count("bulk") == 4
    assert last_bulk <= 8  # four bulk passes among the first nine, not after every single ticket


def test_closed_batcher_refuses_new_work() -> None:
    async def main() -> None:
        batcher = MicroBatcher(max_batch_size=2, max_wait_ms=1)
        batcher.start()
        await batcher.close()
        with pytest.raises(BatcherClosedError):
            await batcher.score(RecordingModel(), [_ticket(1)])  # type: ignore[arg-type]

    _run(main())


def test_the_event_loop_stays_free_while_a_pass_runs() -> None:
    model = RecordingModel(delay=0.5)

    async def main() -> int:
        batcher = MicroBatcher(max_batch_size=4, max_wait_ms=0)
        batcher.start()
        job = asyncio.ensure_future(batcher.score(model, [_ticket(1)]))  # type: ignore[arg-type]
        ticks = 0
        while not job.done():  # counts loop iterations completed during the 0.5 s pass
            await asyncio.sleep(0.01)
            ticks += 1
        await batcher.close()
        return ticks

    assert _run(main()) >= 10
