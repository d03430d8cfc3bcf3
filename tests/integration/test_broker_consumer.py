"""``triage consume`` against the real RabbitMQ and PostgreSQL: two competing consumers, one of them
SIGKILLed mid-run and restarted, poison messages among the tickets, then a clean SIGTERM of both.

What must hold: every valid ticket is answered, a repeated answer is the same answer (the ticket ledger),
exactly one stored answer per ticket, every poison message parked with its reason (a dead letter may be
repeated after the kill, like an answer), nothing left in the input queue. Speed is printed beside
``/predict/batch`` on the same tickets, never asserted.

``TRIAGE_BROKER_TICKETS`` sets the ticket count (300 by default, keeping `make test` short; acceptance: 5000).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pandas as pd
import psycopg
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from pydantic import ValidationError
from sqlalchemy import text
from tests.integration.conftest import PREDICT, ROOT, running_server

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
TICKETS = int(os.environ.get("TRIAGE_BROKER_TICKETS", "300"))
BATCH = 100
TRIAGE = Path(sys.executable).parent / "triage"
READY_LINE = "Ticket Triage consuming"
LONG = "x" * 20_001  # one past the default TRIAGE_MAX_TEXT_CHARS


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


#: 20 messages no retry can make valid: not JSON, JSON without text, over-long text, wrong types.
POISON: list[bytes] = [
    b"this is not json",
    b'{"subject": "unterminated',
    b"\xff\xfe\x00 binary",
    b"",
    b'"just a string"',
    b'[{"subject": "a list, not a ticket"}]',
    _json({}),
    _json({"ticket_id": "P-no-text"}),
    _json({"subject": "", "description": "   "}),
    _json({"subject": None, "description": None, "channel": "email"}),
    _json({"subject": LONG}),
    _json({"subject": "fine", "description": LONG}),
    _json({"description": "y" * 40_000}),
    _json({"subject": 42}),
    _json({"subject": ["a", "list"]}),
    _json({"subject": "ok", "ticket_id": True}),
    _json({"subject": "ok", "created_at": "next tuesday"}),
    _json({"subject": "ok", "metadata": ["not", "an", "object"]}),
    _json({"subject": "ok", "channel": 7}),
    _json({"subject": "ok", "priority_hint": "a field the API does not have"}),
]


@dataclass
class Names:
    """This test's own queues and exchange on the shared broker."""

    tag: str = field(default_factory=lambda: secrets.token_hex(6))

    @property
    def queue(self) -> str:
        return f"triage-test-{self.tag}.tickets"

    @property
    def dead(self) -> str:
        return f"{self.queue}.dead"  # the consumer's default

    @property
    def exchange(self) -> str:
        return f"triage-test-{self.tag}.results"

    @property
    def results(self) -> str:
        return f"triage-test-{self.tag}.results-all"


@dataclass
class Result:
    ticket_id: str
    prediction_id: str
    message_id: str | None
    correlation_id: str | None
    routing_key: str | None
    route: str
    header_ticket_id: Any
    redelivered: bool
    app_id: str | None
    n_probabilities: int


def _ticket_pool(sample: Path, datasets: Path) -> list[dict[str, Any]]:
    """Distinct real tickets the model never trained on: the held-out v5 rows, then v4 and multilang v3."""
    from ticket_triage.serving.schemas import Ticket

    frames = [
        pd.read_csv(path, dtype=str, keep_default_na=False)
        for path in (
            sample,
            datasets / "synthetic_tickets_v4.csv",
            datasets / "synthetic_tickets_multilang_v3.csv",
        )
    ]
    rows = pd.concat([f[["subject", "body", "language"]] for f in frames]).drop_duplicates(
        ["subject", "body"]
    )
    pool = []
    for subject, body, language in rows.itertuples(index=False):
        ticket = {"subject": subject or None, "description": body or None, "language": language or None}
        try:
            Ticket.model_validate(ticket)
        except ValidationError:
            continue
        pool.append(ticket)
    return pool


def _tickets(sample: Path, datasets: Path, n: int) -> list[dict[str, Any]]:
    """``n`` tickets with unique ids; past the pool's size its rows repeat under new ids."""
    pool = _ticket_pool(sample, datasets)
    return [{"ticket_id": f"BRK-{i:05d}", **pool[i % len(pool)]} for i in range(n)]


@pytest.fixture
def databases() -> Iterator[list[str]]:
    """Two fresh PostgreSQL databases (the consumers', the HTTP server's); dropped afterwards."""
    names = [f"triage_broker_{secrets.token_hex(6)}" for _ in range(2)]
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield [f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}" for name in names]
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Consumer:
    """``triage consume`` in its own process group (a SIGKILL takes its spaCy worker with it)."""

    def __init__(self, name: str, names: Names, models_dir: Path, env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log_path = log
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [
                str(TRIAGE),
                "-v",
                "consume",
                "--amqp",
                AMQP_URL,
                "--queue",
                names.queue,
                "--results-exchange",
                names.exchange,
                "--model",
                str(models_dir),
                "--top-k",
                "3",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.app_id_suffix = f"/{self.proc.pid}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def is_ready(self) -> bool:
        return READY_LINE in self.log()

    async def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"consumer {self.name} exited with {self.proc.returncode}:\n{self.log()}"
                )
            if self.is_ready():
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"consumer {self.name} not consuming after {timeout} s:\n{self.log()}")

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    async def terminate(self, timeout: float = 120.0) -> int:
        """SIGTERM to the consumer itself (as ``docker stop`` sends it); its exit code."""
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"consumer {self.name} still running {timeout} s after SIGTERM")
            await asyncio.sleep(0.2)
        return self.proc.returncode

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._log.close()


def _consumer_env(db_url: str, onnx_dir: Path, folder: Path) -> dict[str, str]:
    """As ``running_server`` sets a server's: private spool and var folders, the session's ONNX exports."""
    env = {k: v for k, v in os.environ.items() if k not in ("TRIAGE_REDIS_URL", "TRIAGE_NOTIFY_URL")}
    env.update(
        {
            "TRIAGE_DATABASE_URL": db_url,
            "TRIAGE_ENCODER_RUNTIME": "onnx",
            "TRIAGE_ONNX_DIR": str(onnx_dir),
            "TRIAGE_VAR_DIR": str(folder / "var"),
            "TRIAGE_SPOOL_DIR": str(folder / "spool"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


async def _declare(channel: AbstractChannel, names: Names) -> None:
    """What the helpdesk side owns: the input queue, and a queue bound to every answer."""
    await channel.declare_queue(names.queue, durable=True)
    await channel.declare_queue(names.dead, durable=True)
    exchange = await channel.declare_exchange(names.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    results = await channel.declare_queue(names.results, durable=True)
    await results.bind(exchange, routing_key="#")


async def _publish_inputs(
    channel: AbstractChannel, names: Names, tickets: list[dict[str, Any]]
) -> tuple[dict[str, str], set[str]]:
    """Tickets with the poison interleaved, each confirmed; ticket id -> message id, and the poison ids."""
    bodies: list[tuple[str, bytes]] = [(f"ticket-{t['ticket_id']}", _json(t)) for t in tickets]
    step = max(1, len(bodies) // len(POISON))
    for n, body in enumerate(POISON):
        bodies.insert(min(len(bodies), n * (step + 1) + step // 2), (f"poison-{n:02d}", body))
    for start in range(0, len(bodies), 500):
        await asyncio.gather(
            *(
                channel.default_exchange.publish(
                    aio_pika.Message(
                        body=body,
                        message_id=message_id,
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=names.queue,
                )
                for message_id, body in bodies[start : start + 500]
            )
        )
    return {t["ticket_id"]: f"ticket-{t['ticket_id']}" for t in tickets}, {
        f"poison-{n:02d}" for n in range(20)
    }


async def _collect(channel: AbstractChannel, names: Names, into: list[Result]) -> None:
    queue = await channel.get_queue(names.results)

    async def on_result(message: AbstractIncomingMessage) -> None:
        answer = json.loads(message.body)
        headers = message.headers or {}
        into.append(
            Result(
                ticket_id=str(answer["ticket_id"]),
                prediction_id=answer["prediction_id"],
                message_id=message.message_id,
                correlation_id=message.correlation_id,
                routing_key=message.routing_key,
                route=answer["route"],
                header_ticket_id=headers.get("x-triage-ticket-id"),
                redelivered=bool(headers.get("x-triage-redelivered")),
                app_id=message.app_id,
                n_probabilities=len(answer["probabilities"]),
            )
        )
        await message.ack()

    await queue.consume(on_result)


async def _until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.2)


async def _ready_count(channel: AbstractChannel, name: str) -> int:
    queue = await channel.declare_queue(name, passive=True)
    return int(queue.declaration_result.message_count or 0)


async def _delete_all(names: Names) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        for queue in (names.queue, names.dead, names.results):
            channel = await connection.channel()  # a failed delete closes its channel
            with contextlib.suppress(Exception):
                await channel.queue_delete(queue)
        channel = await connection.channel()
        with contextlib.suppress(Exception):
            await channel.exchange_delete(names.exchange)


@dataclass
class Run:
    results: list[Result]
    dead: list[AbstractIncomingMessage]
    seconds: float
    killed_after: int
    exit_codes: list[int]
    stopped_lines: list[str]


async def _scenario(
    names: Names, tickets: list[dict[str, Any]], models_dir: Path, env: dict[str, str], tmp_path: Path
) -> tuple[Run, dict[str, str], set[str]]:
    results: list[Result] = []
    consumers: list[Consumer] = []
    connection = await aio_pika.connect(AMQP_URL)
    try:
        async with connection:
            channel = await connection.channel()
            await _declare(channel, names)
            sent, poison_ids = await _publish_inputs(channel, names, tickets)
            await _collect(channel, names, results)
            wanted = set(sent)

            def answered() -> set[str]:
                return {r.ticket_id for r in results}

            a = Consumer("A", names, models_dir, env, tmp_path / "consumer-a.log")
            b = Consumer("B", names, models_dir, env, tmp_path / "consumer-b.log")
            consumers += [a, b]
            await _until(lambda: a.is_ready() or b.is_ready(), 180, "a consumer to start")
            started = time.monotonic()  # the clock runs from the first consumer taking messages
            await a.wait_ready()
            await b.wait_ready()

            # A dies hard (no ack, no goodbye) once it has answered some of the tickets.
            some = max(20, len(tickets) // 10)
            by_a = lambda: sum(1 for r in results if (r.app_id or "").endswith(a.app_id_suffix))  # noqa: E731
            await _until(lambda: by_a() >= some, 120 + len(tickets) * 0.2, f"A to answer {some} tickets")
            a.kill()
            killed_after = len(answered())
            assert killed_after < len(tickets), "B and A answered everything before A could be killed"

            a2 = Consumer("A (restarted)", names, models_dir, env, tmp_path / "consumer-a2.log")
            consumers.append(a2)
            await a2.wait_ready()

            await _until(
                lambda: wanted <= answered(), 180 + len(tickets) * 0.5, "every valid ticket to be answered"
            )
            seconds = time.monotonic() - started
            for _ in range(300):
                if await _ready_count(channel, names.queue) == 0:
                    break
                await asyncio.sleep(0.2)
            exit_codes = [await a2.terminate(), await b.terminate()]
            stopped = [
                f"{c.name}: {line.strip()}"
                for c in (a2, b)
                for line in c.log().splitlines()
                if line.startswith("consume: stopped")
            ]

            # After both stopped: nothing in the input queue (nothing was left unacked), results drained.
            assert await _ready_count(channel, names.queue) == 0, "messages left in the input queue"
            for _ in range(100):
                if await _ready_count(channel, names.results) == 0:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            dead_queue = await channel.get_queue(names.dead)
            dead = []
            while (message := await dead_queue.get(no_ack=True, fail=False)) is not None:
                dead.append(message)
            run = Run(results, dead, seconds, killed_after, exit_codes, stopped)
            return run, sent, poison_ids
    finally:
        for consumer in consumers:
            consumer.cleanup()
        await _delete_all(names)


def _batch_throughput(tickets: list[dict[str, Any]], base_url: str) -> float:
    """Tickets per second through ``/predict/batch`` in batches of BATCH, one caller."""
    with httpx.Client(base_url=base_url, timeout=300) as http:
        started = time.monotonic()
        for start in range(0, len(tickets), BATCH):
            response = http.post(
                "/predict/batch", json={"tickets": tickets[start : start + BATCH]}, headers=PREDICT
            )
            assert response.status_code == 200, response.text
        return len(tickets) / (time.monotonic() - started)


def test_consumers_answer_every_ticket_once_through_a_crash_and_park_the_poison(
    models_dir: Path,
    tmp_path: Path,
    onnx_dir: Path,
    databases: list[str],
    synthetic_sample: Path,
    datasets: Path,
) -> None:
    from ticket_triage.review import make_engine
    from ticket_triage.serving.ticket_ledger import TicketLedger

    consumer_db, server_db = databases
    tickets = _tickets(synthetic_sample, datasets, TICKETS)
    names = Names()
    env = _consumer_env(consumer_db, onnx_dir, tmp_path)
    run, sent, poison_ids = asyncio.run(_scenario(names, tickets, models_dir, env, tmp_path))

    assert run.exit_codes == [0, 0], f"exit codes after SIGTERM: {run.exit_codes}"
    assert len(run.stopped_lines) == 2, run.stopped_lines

    # Every valid ticket answered; all answers to one ticket are one answer (the ledger's).
    by_ticket: dict[str, list[Result]] = defaultdict(list)
    for result in run.results:
        by_ticket[result.ticket_id].append(result)
    assert set(by_ticket) == set(sent), "answers missing, or answers to tickets never sent"
    for ticket_id, answers in by_ticket.items():
        assert len({a.prediction_id for a in answers}) == 1, f"{ticket_id} got different answers"
    for result in run.results:
        assert result.message_id == result.prediction_id
        assert result.correlation_id == sent[result.ticket_id]
        assert result.header_ticket_id == result.ticket_id
        assert result.routing_key == result.route in ("auto", "review")
        assert result.n_probabilities == 3  # --top-k 3

    engine = make_engine(consumer_db)
    try:
        stored = TicketLedger(engine).count("api")
        with engine.connect() as conn:
            audited = conn.execute(
                text("SELECT count(DISTINCT prediction_id) FROM prediction_audit WHERE endpoint = 'amqp'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert stored == len(tickets), f"{stored} stored answers for {len(tickets)} tickets"

    # Every poison message parked, as sent, with its reason, and nothing else. Parking is at least once
    # like answering: a consumer killed between the broker's confirm of a dead letter and its ack parks
    # that message again on redelivery, marked as such (a reader dedupes on message_id).
    copies = Counter(m.message_id for m in run.dead)
    assert set(copies) == poison_ids, "poison missing from the dead-letter queue, or a ticket in it"
    poison_by_id = {f"poison-{n:02d}": body for n, body in enumerate(POISON)}
    for message in run.dead:
        headers = message.headers or {}
        reason = headers.get("x-triage-reason")
        assert isinstance(reason, str) and reason.strip(), f"{message.message_id} has no reason"
        assert message.body == poison_by_id[str(message.message_id)]
    for message_id, n in copies.items():
        if n > 1:
            again = [m for m in run.dead if m.message_id == message_id]
            assert any((m.headers or {}).get("x-triage-redelivered") for m in again), message_id
    dead_repeats = len(run.dead) - len(copies)

    with running_server(
        models_dir,
        tmp_path / "server.log",
        TRIAGE_DATABASE_URL=server_db,
        TRIAGE_ENCODER_RUNTIME="onnx",
        TRIAGE_ONNX_DIR=str(onnx_dir),
        TRIAGE_VAR_DIR=str(tmp_path / "server-var"),
    ) as server:
        batch_tps = _batch_throughput(tickets, server.base_url)

    consumer_tps = len(tickets) / run.seconds
    redelivered = sum(r.redelivered for r in run.results)
    duplicates = len(run.results) - len(by_ticket)
    print(
        f"\nBROKER: published={len(tickets) + len(POISON)} ({len(tickets)} tickets + {len(POISON)} poison)"
        f" consumed={len(run.results)} results redelivered={redelivered} duplicates_removed={duplicates}"
        f" dead_lettered={len(copies)} (+{dead_repeats} repeated) stored={stored} audited={audited}"
        f" killed_A_after={run.killed_after} wall={run.seconds:.1f}s consumer={consumer_tps:.1f} tickets/s"
        f" batch={batch_tps:.1f} tickets/s (batches of {BATCH}) ratio={consumer_tps / batch_tps:.2f}"
    )
    for line in run.stopped_lines:
        print(f"BROKER: consumer {line}")
