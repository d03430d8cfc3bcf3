"""What the notifier tests share: a real HTTP receiver, real databases, and decisions made as the service
makes them.

The receiver is ``http.server`` on a free loopback port, in a thread. It records every request it gets
(headers, exact body bytes, the status it answered), answers with whatever ``decide`` says, and watches
that no ticket ever has two requests in flight at once.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine

from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.notify.decision import decision
from ticket_triage.notify.delivery import Notifier
from ticket_triage.notify.outbox import Notification
from ticket_triage.review import make_engine, migrate
from ticket_triage.serving.schemas import LabelProbability, Prediction

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
SECRET = "whsec_" + secrets.token_hex(16)


@dataclass
class Received:
    delivery: str
    attempt: int
    event: str
    signature: str | None
    content_type: str
    body: bytes
    payload: dict[str, Any]
    at: float
    status: int = 0

    @property
    def ticket_key(self) -> str | None:
        prediction = self.payload.get("prediction") or {}
        ticket = prediction.get("ticket_id")
        return None if ticket is None else f"{self.payload.get('source')}:{ticket}"


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"ok": true}'
    delay: float = 0.0


def accept(_: Received) -> Answer:
    return Answer(200)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client closing its kept-alive connection is no error (the default prints a traceback)."""


class Receiver:
    def __init__(self, decide: Callable[[Received], Answer] = accept) -> None:
        self.decide = decide
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._in_flight: Counter[str] = Counter()
        self.max_in_flight_per_ticket = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                got = Received(
                    delivery=self.headers.get("X-Triage-Delivery", ""),
                    attempt=int(self.headers.get("X-Triage-Attempt", "0")),
                    event=self.headers.get("X-Triage-Event", ""),
                    signature=self.headers.get("X-Triage-Signature"),
                    content_type=self.headers.get("Content-Type", ""),
                    body=body,
                    payload=json.loads(body),
                    at=time.monotonic(),
                )
                answer = receiver._enter(got)
                try:
                    if answer.delay:
                        time.sleep(answer.delay)
                finally:
                    # Before answering: the notifier may send the ticket's next decision the moment it
                    # reads this answer, and that must not count as an overlap.
                    receiver._leave(got)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, *_: Any) -> None:  # quiet: the tests print their own figures
                pass

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/triage"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="notify-receiver", daemon=True
        )

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def _enter(self, got: Received) -> Answer:
        answer = self.decide(got)
        with self._lock:
            got.status = answer.status
            self.requests.append(got)
            key = got.ticket_key
            if key is not None:
                self._in_flight[key] += 1
                self.max_in_flight_per_ticket = max(self.max_in_flight_per_ticket, self._in_flight[key])
        return answer

    def _leave(self, got: Received) -> None:
        with self._lock:
            if got.ticket_key is not None:
                self._in_flight[got.ticket_key] -= 1

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def accepted(self) -> list[Received]:
        return [r for r in self.snapshot() if 200 <= r.status < 300]


# --- databases -------------------------------------------------------------------------------------------


@contextmanager
def database(kind: str, tmp_path: Path, *, create: bool = True) -> Iterator[tuple[str, Callable[[], None]]]:
    """(url, make_it_exist) of a private database: an SQLite file, or a PostgreSQL database of its own
    name on the shared server (dropped afterwards). With ``create=False`` it does not exist until
    ``make_it_exist`` is called: a real outage."""
    if kind == "sqlite":
        folder = tmp_path / "db"
        url = f"sqlite+pysqlite:///{folder / 'review.sqlite3'}"
        if create:
            folder.mkdir()
        yield url, lambda: folder.mkdir(exist_ok=True)
        return
    name = f"triage_notify_{secrets.token_hex(6)}"

    def make_it_exist() -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')

    if create:
        make_it_exist()
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", make_it_exist
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def migrated(kind: str, tmp_path: Path) -> Iterator[Engine]:
    with database(kind, tmp_path) as (url, _):
        engine = make_engine(url)
        try:
            migrate(engine)
            yield engine
        finally:
            engine.dispose()


# --- decisions and notifiers ------------------------------------------------------------------------------


def decisions(count: int, tickets: int | None, *, source: str = "zendesk") -> list[Notification]:
    """``count`` decisions spread over ``tickets`` ticket ids in turn (None: tickets without an id)."""
    made = []
    for n in range(count):
        answer = Prediction(
            prediction_id=uuid.uuid4().hex,
            ticket_id=None if tickets is None else f"T-{n % tickets}",
            category="Facturación" if n % 2 else "technical",
            confidence=0.91,
            probabilities=[LabelProbability(label="technical", probability=0.91)],
            route="auto",
            model_version="v-test",
            cached=False,
        )
        made.append(decision(answer, source, datetime.now(UTC)))
    return made


def notifier(engine: Engine, url: str, metrics: ServiceMetrics | None = None, **changes: Any) -> Notifier:
    """The test backoff (base 0.2 s, cap 3 s, 40 attempts) unless ``changes`` says otherwise."""
    options: dict[str, Any] = {
        "max_attempts": 40,
        "backoff_seconds": 0.2,
        "backoff_max_seconds": 3.0,
        "timeout_seconds": 5.0,
        "concurrency": 8,
        "poll_seconds": 0.5,
        **changes,
    }
    secret = options.pop("secret", SECRET)
    return Notifier(engine, url, secret, metrics=metrics, **options)


def sample(metrics: ServiceMetrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value("triage_notifications_total", {"outcome": outcome})
    return float(value or 0.0)


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


def check_once_in_order(receiver: Receiver, sent: list[Notification]) -> None:
    """Each decision accepted exactly once; per ticket in the order made, none sent before the one ahead
    of it was accepted, and never two of a ticket's at once."""
    accepted = receiver.accepted()
    counts = Counter(r.delivery for r in accepted)
    assert set(counts) == {n.prediction_id for n in sent}
    assert max(counts.values()) == 1, [pid for pid, c in counts.items() if c > 1][:5]
    expected: dict[str | None, list[str]] = defaultdict(list)
    for item in sent:
        if item.ticket_key is not None:
            expected[item.ticket_key].append(item.prediction_id)
    got: dict[str | None, list[str]] = defaultdict(list)
    for request in accepted:
        if request.ticket_key is not None:
            got[request.ticket_key].append(request.delivery)
    assert got == expected
    everything = receiver.snapshot()
    for key, ids in expected.items():
        asked = [r.delivery for r in everything if r.ticket_key == key]
        distinct = [pid for i, pid in enumerate(asked) if i == 0 or asked[i - 1] != pid]
        assert distinct == ids, f"{key}: a decision went out before the one ahead of it was accepted"
    assert receiver.max_in_flight_per_ticket <= 1
