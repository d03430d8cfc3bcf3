"""The admin endpoint of the outbox: a decision the receiver refuses is dead at once, an operator sees it
and sends it again, and it arrives once the receiver accepts. Real keys, a real notifier and receiver, on
both backends; the router is mounted on a small app as the service mounts it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from tests.integration.conftest import ADMIN, KEY_SPEC, PREDICT, REVIEW
from tests.integration.notify_support import Answer, Received, Receiver, decisions, migrated, notifier

from ticket_triage.notify.delivery import Notifier
from ticket_triage.notify.outbox import insert_notifications
from ticket_triage.serving.auth import KeyStore
from ticket_triage.serving.errors import install_error_handlers
from ticket_triage.serving.routes.notifications import router


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with migrated(request.param, tmp_path) as engine:
        yield engine


def _app(worker: Notifier | None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if worker is not None:
            await worker.start()
        yield
        if worker is not None:
            await worker.close()

    app = FastAPI(lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(router)
    app.state.keys = KeyStore.load(env_spec=KEY_SPEC, key_file=None)
    app.state.auth_disabled = False
    app.state.service = SimpleNamespace(notifier=worker)
    return app


def _wait(http: TestClient, condition: Any, what: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        listing = http.get("/admin/notifications", headers=ADMIN).json()
        if condition(listing):
            return listing
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {listing['counts']}")
        time.sleep(0.05)


def test_a_refused_decision_is_dead_listed_retried_and_then_delivered(engine: Engine) -> None:
    refusing = True

    def decide(_: Received) -> Answer:
        return Answer(400, body=b'{"error": "queue 7 is archived"}') if refusing else Answer(200)

    (sent,) = decisions(1, 1)
    with Receiver(decide) as receiver:
        worker = notifier(engine, receiver.url, poll_seconds=0.1)
        with TestClient(_app(worker)) as http:
            insert_notifications(engine, [sent], skip_existing=True)
            listing = _wait(http, lambda body: body["counts"]["dead"] == 1, "the refusal")
            assert listing["counts"] == {"pending": 0, "delivered": 0, "dead": 1}

            dead = http.get("/admin/notifications", params={"status": "dead", "limit": 10}, headers=ADMIN)
            assert dead.status_code == 200
            (item,) = dead.json()["items"]
            assert item["prediction_id"] == sent.prediction_id and item["ticket_key"] == sent.ticket_key
            assert item["status"] == "dead" and item["attempts"] == 1 and item["event"] == "prediction"
            assert "HTTP 400" in item["last_error"] and "queue 7 is archived" in item["last_error"]
            assert item["delivered_at"] is None and "payload" not in item
            assert (
                http.get("/admin/notifications", params={"status": "delivered"}, headers=ADMIN).json()[
                    "items"
                ]
                == []
            )

            # Only admins: predict and review keys are refused, a missing key is unauthorised.
            for who in (PREDICT, REVIEW):
                assert http.get("/admin/notifications", headers=who).status_code == 403
                assert http.post(f"/admin/notifications/{item['id']}/retry", headers=who).status_code == 403
            assert http.get("/admin/notifications").status_code == 401
            for wrong in ({"status": "lost"}, {"limit": 0}, {"limit": 501}):
                assert http.get("/admin/notifications", params=wrong, headers=ADMIN).status_code == 422

            refusing = False
            retried = http.post(f"/admin/notifications/{item['id']}/retry", headers=ADMIN)
            assert retried.status_code == 200, retried.text
            assert retried.json()["status"] == "pending" and retried.json()["attempts"] == 0
            listing = _wait(http, lambda body: body["counts"]["delivered"] == 1, "the retried delivery")
            assert listing["counts"] == {"pending": 0, "delivered": 1, "dead": 0}
            assert listing["items"][0]["delivered_at"] is not None and listing["items"][0]["attempts"] == 1

            again = http.post(f"/admin/notifications/{item['id']}/retry", headers=ADMIN)
            assert again.status_code == 409 and again.json()["error"]["code"] == "notification_not_dead"
            unknown = http.post("/admin/notifications/987654321/retry", headers=ADMIN)
            assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "notification_not_found"
            assert http.post("/admin/notifications/0/retry", headers=ADMIN).status_code == 422

    requests = receiver.snapshot()
    assert [(r.delivery, r.attempt, r.status) for r in requests] == [
        (sent.prediction_id, 1, 400),
        (sent.prediction_id, 1, 200),  # attempts start again after a retry
    ]
    print(f"\nadmin retry: {len(requests)} requests, statuses {[r.status for r in requests]}")


def test_without_a_notifier_the_endpoint_says_so() -> None:
    with TestClient(_app(None)) as http:
        answer = http.get("/admin/notifications", headers=ADMIN)
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "notifier_disabled"
        assert "TRIAGE_NOTIFY_URL" in answer.json()["error"]["message"]
        assert http.post("/admin/notifications/1/retry", headers=ADMIN).status_code == 404
        assert http.get("/admin/notifications", params={"limit": 0}, headers=ADMIN).status_code == 422
        assert http.get("/admin/notifications", headers=PREDICT).status_code == 403  # the role comes first
