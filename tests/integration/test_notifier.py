"""The notifier end to end on real parts: decisions handed to the durable writer, the outbox on an SQLite
file and on the shared PostgreSQL, and a real HTTP receiver on loopback that fails, refuses and recovers.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from tests.integration.notify_support import (
    SECRET,
    Answer,
    Received,
    Receiver,
    check_once_in_order,
    database,
    decisions,
    migrated,
    notifier,
    sample,
    until,
)

from ticket_triage.audit import DurableWriter, Spool
from ticket_triage.audit.dead_letter import DeadLetterRow
from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.notify.delivery import Notifier
from ticket_triage.notify.outbox import Notification, NotificationRow, insert_notifications, status_counts
from ticket_triage.notify.signing import verify
from ticket_triage.review import ReviewStore, make_engine, migrate

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with migrated(request.param, tmp_path) as engine:
        yield engine


def _writer(
    engine: Engine, spool_dir: Path, notifier: Notifier, prepare: Callable[[], None] | None = None
) -> DurableWriter:
    """The writer as the service builds it, with small batches and quick retries."""
    return DurableWriter(
        engine,
        ReviewStore(engine, lease_seconds=60),
        Spool(spool_dir),
        batch_size=50,
        flush_seconds=0.02,
        queue_max=10_000,
        retry_seconds=0.05,
        retention_days=30,
        prepare=prepare,
        on_notified=notifier.wake,
    )


def _rows(engine: Engine) -> dict[str, NotificationRow]:
    with Session(engine) as session:
        return {row.prediction_id: row for row in session.scalars(select(NotificationRow))}


def _verify_as_the_docs_say(secret: str, header: str, body: bytes) -> bool:
    """The receiver example of docs/notifications.md, line for line."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    signed = f"{fields['t']}.".encode() + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(fields["t"])) < 300
    return fresh and hmac.compare_digest(expected, fields["v1"])


# --- (a) what one delivery carries ------------------------------------------------------------------------


def test_a_delivery_is_signed_json_with_its_headers(tmp_path: Path) -> None:
    sent = decisions(3, 3)
    with migrated("sqlite", tmp_path) as engine, Receiver() as receiver:

        async def scenario() -> None:
            worker = notifier(engine, receiver.url)
            await worker.start()
            insert_notifications(engine, sent, skip_existing=True)
            worker.wake()  # from this thread, as the writer thread does
            await until(lambda: len(receiver.accepted()) == 3, 20, "three deliveries")
            await worker.close()

        asyncio.run(scenario())

    by_id = {n.prediction_id: n for n in sent}
    for got in receiver.snapshot():
        assert got.content_type == "application/json"
        assert got.event == "prediction" and got.attempt == 1
        assert got.payload == by_id[got.delivery].payload  # the body is the payload, as JSON
        assert got.body.isascii()  # "Facturación" travels escaped
        assert got.signature is not None and got.signature.startswith("t=")
        assert _verify_as_the_docs_say(SECRET, got.signature, got.body)
        assert verify(SECRET, got.signature, got.body, now=time.time())
        assert not verify("another-secret", got.signature, got.body, now=time.time())
        assert not verify(SECRET, got.signature, got.body + b" ", now=time.time())
        assert not verify(SECRET, got.signature, got.body, now=time.time() + 3600)  # a stale replay


def test_without_a_secret_nothing_is_signed(tmp_path: Path) -> None:
    with migrated("sqlite", tmp_path) as engine, Receiver() as receiver:

        async def scenario() -> None:
            worker = notifier(engine, receiver.url, secret=None)
            await worker.start()
            insert_notifications(engine, decisions(1, None), skip_existing=True)
            await until(lambda: len(receiver.accepted()) == 1, 20, "the delivery")
            await worker.close()

        asyncio.run(scenario())
    (got,) = receiver.snapshot()
    assert got.signature is None and got.delivery


# --- (b) the receiver down for 30 s -----------------------------------------------------------------------


def test_a_receiver_down_for_30_s_gets_every_decision_once_in_order(engine: Engine, tmp_path: Path) -> None:
    """200 decisions over 20 tickets through DurableWriter.notify while the receiver answers 500 for its
    first 30 s; afterwards each arrived exactly once, in order per ticket, one at a time."""
    down_until = time.monotonic() + 30.0

    def decide(_: Received) -> Answer:
        return Answer(500, body=b"warming up") if time.monotonic() < down_until else Answer(200)

    sent = decisions(200, 20)
    metrics = ServiceMetrics()
    started = time.monotonic()
    with Receiver(decide) as receiver:

        async def scenario() -> float:
            worker = notifier(engine, receiver.url, metrics)
            await worker.start()
            writer = _writer(engine, tmp_path / "spool", worker)
            writer.start()
            for start in range(0, len(sent), 7):  # as requests come: a few decisions at a time
                writer.notify(sent[start : start + 7])
                await asyncio.sleep(0.005)
            assert await asyncio.to_thread(writer.flush, 30)
            await until(lambda: len(receiver.accepted()) >= len(sent), 120, "every decision accepted")
            recovered = time.monotonic() - down_until
            await asyncio.sleep(1.0)  # room for any duplicate to show up
            await asyncio.to_thread(writer.close)
            await worker.close()
            return recovered

        drained_after = asyncio.run(scenario())

    elapsed = time.monotonic() - started
    requests = receiver.snapshot()
    accepted = receiver.accepted()
    refused = [r for r in requests if r.status == 500]
    unique = len({r.delivery for r in accepted})
    dialect = engine.dialect.name
    print(
        f"\n[{dialect}] receiver down 30 s: {len(requests)} requests received, {len(accepted)} accepted,"
        f" {unique} unique prediction ids of {len(sent)}, {len(refused)} answered 500"
        f" (retries counted: {sample(metrics, 'retried'):.0f}, dead: {sample(metrics, 'dead_lettered'):.0f});"
        f" all delivered {drained_after:.1f} s after recovery, {elapsed:.1f} s in all;"
        f" highest attempt {max(r.attempt for r in requests)}"
    )
    check_once_in_order(receiver, sent)
    assert len(accepted) == unique == len(sent)
    assert sample(metrics, "delivered") == len(sent)
    assert sample(metrics, "retried") == len(refused) > 0
    assert sample(metrics, "dead_lettered") == 0
    assert status_counts(engine) == {"pending": 0, "delivered": len(sent), "dead": 0}
    # During the outage only each ticket's head was tried (20 tickets, nothing behind them).
    assert {r.delivery for r in refused} <= {sent[i].prediction_id for i in range(20)}
    assert max(r.attempt for r in requests) < 40
    assert metrics.registry.get_sample_value("triage_notification_seconds_count") == len(requests)
    assert metrics.registry.get_sample_value("triage_notification_pending") == 0.0


# --- (d) giving up --------------------------------------------------------------------------------------


def test_refusals_timeouts_and_exhausted_attempts(tmp_path: Path) -> None:
    """503 until attempts run out (then the ticket's next decision goes), a receiver too slow to answer,
    429 with Retry-After honoured, and 4xx dead at once."""
    first, behind, too_slow, throttled, refused = decisions(5, None)
    first = Notification(first.prediction_id, "zendesk:T-1", first.event, first.payload, first.created_at)
    behind = Notification(
        behind.prediction_id, "zendesk:T-1", behind.event, behind.payload, behind.created_at
    )
    asked: Counter[str] = Counter()

    def decide(got: Received) -> Answer:
        asked[got.delivery] += 1
        if got.delivery == first.prediction_id:
            return Answer(503, headers={"Retry-After": "0"}, body=f"down; key {SECRET}".encode())
        if got.delivery == too_slow.prediction_id:
            return Answer(200, delay=1.0)
        if got.delivery == throttled.prediction_id and asked[got.delivery] == 1:
            return Answer(429, headers={"Retry-After": "1"})
        if got.delivery == refused.prediction_id:
            return Answer(422, body=b'{"error": "unknown queue"}')
        return Answer(200)

    metrics = ServiceMetrics()
    with migrated("sqlite", tmp_path) as engine, Receiver(decide) as receiver:

        async def scenario() -> None:
            worker = notifier(
                engine,
                receiver.url,
                metrics,
                max_attempts=3,
                backoff_seconds=0.05,
                backoff_max_seconds=2.0,
                timeout_seconds=0.3,
            )
            await worker.start()
            insert_notifications(engine, [first, behind, too_slow, throttled, refused], skip_existing=False)
            worker.wake()
            await until(lambda: status_counts(engine)["pending"] == 0, 30, "every row settled")
            await worker.close()

        asyncio.run(scenario())
        rows = _rows(engine)

    requests = receiver.snapshot()
    attempts = {pid: [r.attempt for r in requests if r.delivery == pid] for pid in asked}
    print(f"\nattempts per decision: { {pid[:6]: a for pid, a in attempts.items()} }")
    print({pid[:6]: (row.status, row.attempts, row.last_error) for pid, row in rows.items()})

    dead = rows[first.prediction_id]
    assert dead.status == "dead" and dead.attempts == 3 and attempts[first.prediction_id] == [1, 2, 3]
    assert dead.last_error is not None and dead.last_error.startswith("gave up after 3 attempt(s)")
    assert "HTTP 503" in dead.last_error
    # The ticket's next decision went once its head was dead, not before.
    assert rows[behind.prediction_id].status == "delivered"
    last_try = max(r.at for r in requests if r.delivery == first.prediction_id)
    assert min(r.at for r in requests if r.delivery == behind.prediction_id) >= last_try

    slow = rows[too_slow.prediction_id]
    assert slow.status == "dead" and slow.attempts == 3
    assert slow.last_error is not None and (
        "no answer within 0.3 s" in slow.last_error or "Timeout" in slow.last_error
    )

    throttled_at = [r.at for r in requests if r.delivery == throttled.prediction_id]
    assert rows[throttled.prediction_id].status == "delivered" and len(throttled_at) == 2
    assert throttled_at[1] - throttled_at[0] >= 0.95  # Retry-After: 1 over a 0.05 s backoff

    refusal = rows[refused.prediction_id]
    assert refusal.status == "dead" and refusal.attempts == 1  # a 4xx is not retried
    assert (
        refusal.last_error is not None
        and "HTTP 422" in refusal.last_error
        and "unknown queue" in refusal.last_error
    )

    assert all(SECRET not in (row.last_error or "") for row in rows.values())
    assert sample(metrics, "dead_lettered") == 3 and sample(metrics, "delivered") == 2
    assert sample(metrics, "retried") == 2 + 2 + 1


def test_an_unreachable_receiver_is_retried_then_dead(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    with migrated("sqlite", tmp_path) as engine:

        async def scenario() -> None:
            worker = notifier(engine, url, max_attempts=2, backoff_seconds=0.05, backoff_max_seconds=0.1)
            await worker.start()
            insert_notifications(engine, decisions(1, None), skip_existing=True)
            worker.wake()
            await until(lambda: status_counts(engine)["dead"] == 1, 20, "the row to die")
            await worker.close()

        asyncio.run(scenario())
        (row,) = _rows(engine).values()
    assert row.attempts == 2 and row.last_error is not None
    assert row.last_error.startswith("gave up after 2 attempt(s)") and "ConnectError" in row.last_error


# --- (e) two service processes on one database ----------------------------------------------------------


@pytest.mark.parametrize("kind", BACKENDS)
def test_two_notifiers_on_one_database_deliver_each_row_once(kind: str, tmp_path: Path) -> None:
    sent = decisions(200, 20)
    with database(kind, tmp_path) as (url, _), Receiver(lambda _: Answer(200, delay=0.005)) as receiver:
        engines = [make_engine(url), make_engine(url)]  # one pool each, as two processes have
        migrate(engines[0])
        metrics = [ServiceMetrics(), ServiceMetrics()]

        async def scenario() -> None:
            workers = [
                notifier(e, receiver.url, m, concurrency=4) for e, m in zip(engines, metrics, strict=True)
            ]
            for worker in workers:
                await worker.start()
            for start in range(0, len(sent), 20):
                await asyncio.to_thread(
                    insert_notifications, engines[0], sent[start : start + 20], skip_existing=True
                )
                for worker in workers:
                    worker.wake()
            await until(lambda: len(receiver.accepted()) >= len(sent), 60, "every decision")
            await asyncio.sleep(1.0)
            for worker in workers:
                await worker.close()

        try:
            asyncio.run(scenario())
            counts = status_counts(engines[0])
        finally:
            for engine in engines:
                engine.dispose()

    shares = [sample(m, "delivered") for m in metrics]
    print(
        f"\n[{kind}] two notifiers: {len(receiver.snapshot())} requests,"
        f" delivered {shares[0]:.0f} + {shares[1]:.0f}"
    )
    check_once_in_order(receiver, sent)
    assert len(receiver.snapshot()) == len(sent)  # not one sent twice
    assert sum(shares) == len(sent) and min(shares) > 0  # both took part
    assert counts == {"pending": 0, "delivered": len(sent), "dead": 0}


# --- (f) the database down at hand-off ------------------------------------------------------------------


@pytest.mark.parametrize("kind", BACKENDS)
def test_decisions_spooled_while_the_database_is_down_are_delivered_once_after_replay(
    kind: str, tmp_path: Path
) -> None:
    sent = decisions(30, 5)
    with database(kind, tmp_path, create=False) as (url, make_it_exist), Receiver() as receiver:
        engine = make_engine(url)
        if kind == "sqlite":
            Path(str(engine.url.database)).parent.rmdir()  # make_engine made the folder: not yet

        async def scenario() -> DurableWriter:
            worker = notifier(engine, receiver.url, poll_seconds=0.2)
            await worker.start()
            writer = _writer(engine, tmp_path / "spool", worker, prepare=lambda: migrate(engine))
            writer.start()
            writer.notify(sent[:12])
            writer.notify(sent[12:])
            await until(lambda: writer.counts.spooled == len(sent), 20, "the decisions to be spooled")
            await asyncio.sleep(0.5)  # the notifier meets the outage too
            assert receiver.snapshot() == []
            make_it_exist()
            assert await asyncio.to_thread(writer.flush, 60)
            await until(lambda: len(receiver.accepted()) >= len(sent), 30, "every decision")
            writer.notify(sent[:5])  # the same decisions again (a retried webhook): no second row
            assert await asyncio.to_thread(writer.flush, 30)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(writer.close)
            await worker.close()
            return writer

        try:
            writer = asyncio.run(scenario())
            counts = status_counts(engine)
        finally:
            engine.dispose()

    print(
        f"\n[{kind}] database down at hand-off: spooled {writer.counts.spooled}, replayed"
        f" {writer.counts.replayed}, receiver got {len(receiver.snapshot())}"
    )
    assert writer.counts.replayed == len(sent)
    check_once_in_order(receiver, sent)
    assert len(receiver.snapshot()) == len(sent)
    assert counts == {"pending": 0, "delivered": len(sent), "dead": 0}


# --- a record's own fault --------------------------------------------------------------------------------


def test_a_notification_the_database_refuses_is_dead_lettered_and_the_rest_delivered(tmp_path: Path) -> None:
    good = decisions(20, 4)
    bad = Notification("poison-nan", None, "prediction", {"confidence": float("nan")}, good[0].created_at)
    with migrated("sqlite", tmp_path) as engine, Receiver() as receiver:

        async def scenario() -> None:
            worker = notifier(engine, receiver.url)
            await worker.start()
            writer = _writer(engine, tmp_path / "spool", worker)
            writer.start()
            writer.notify([*good[:10], bad, *good[10:]])
            assert await asyncio.to_thread(writer.flush, 30)
            await until(lambda: len(receiver.accepted()) >= len(good), 30, "the good decisions")
            await asyncio.to_thread(writer.close)
            await worker.close()

        asyncio.run(scenario())
        with Session(engine) as session:
            letters = session.scalars(select(DeadLetterRow)).all()
    check_once_in_order(receiver, good)
    assert [(d.kind, d.prediction_id) for d in letters] == [("notify", "poison-nan")]
    assert "not JSON compliant" in letters[0].reason
    assert json.loads(letters[0].payload)["event"] == "prediction"
