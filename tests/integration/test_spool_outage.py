"""The acceptance test of the spool: a private PostgreSQL stopped while traffic flows, then restarted.

Every answer carries a ``prediction_id``; afterwards the database must hold exactly one audit record for
each answer and exactly one review item for each answer routed to review, none missing, none twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from sqlalchemy import create_engine, text
from tests.integration.conftest import PREDICT, PrivatePostgres, running_server


def _metric(base_url: str, series: str) -> float:
    for line in httpx.get(f"{base_url}/metrics", timeout=10).text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _tickets(sample: Path, n: int) -> list[dict[str, Any]]:
    frame = pd.read_csv(sample, dtype=str, keep_default_na=False).head(n)
    return [
        {"ticket_id": row["id"], "subject": row["subject"], "description": row["body"]}
        for _, row in frame.iterrows()
    ]


def _send(base_url: str, tickets: list[dict[str, Any]], clients: int, answers: list[dict[str, Any]]) -> int:
    """Posts the tickets from ``clients`` threads, keeping every answer; returns how many failed."""
    lock = threading.Lock()
    pending = list(tickets)
    failures = 0

    def caller() -> None:
        nonlocal failures
        with httpx.Client(base_url=base_url, timeout=60, headers=PREDICT) as http:
            while True:
                with lock:
                    if not pending:
                        return
                    ticket = pending.pop(0)
                response = http.post("/predict", json=ticket)
                with lock:
                    if response.status_code == 200:
                        answers.append(response.json())
                    else:
                        failures += 1

    threads = [threading.Thread(target=caller) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_database_stopped_under_traffic_loses_and_duplicates_nothing(
    models_dir: Path, tmp_path: Path, private_postgres: PrivatePostgres, synthetic_split: tuple[Path, Path]
) -> None:
    pg = private_postgres
    tickets = _tickets(synthetic_split[1], 240)
    env = {
        "TRIAGE_DATABASE_URL": pg.url,
        # Route most answers to review, so review items cross the outage too.
        "TRIAGE_ROUTING_THRESHOLD": "0.9",
        "TRIAGE_ROUTING_RULE": "threshold",
        "TRIAGE_SPOOL_RETRY_SECONDS": "0.5",
        "TRIAGE_AUDIT_FLUSH_MS": "50",
    }
    answers: list[dict[str, Any]] = []
    with running_server(models_dir, tmp_path / "server.log", **env) as server:
        failures = _send(server.base_url, tickets[:80], 4, answers)
        pg.stop("fast")
        down_since = len(answers)
        failures += _send(server.base_url, tickets[80:160], 4, answers)
        spooled_during = _metric(server.base_url, 'triage_durable_records_total{outcome="spooled"}')
        pg.start()
        failures += _send(server.base_url, tickets[160:], 4, answers)
        _wait(lambda: _metric(server.base_url, "triage_spool_pending") == 0.0, 60, "the spool to drain")
        _wait(
            lambda: (
                _metric(server.base_url, 'triage_durable_records_total{outcome="written"}')
                + _metric(server.base_url, 'triage_durable_records_total{outcome="replayed"}')
                >= len(answers) + sum(a["route"] == "review" for a in answers)
            ),
            60,
            "every record to be stored",
        )
        spooled = _metric(server.base_url, 'triage_durable_records_total{outcome="spooled"}')
        replayed = _metric(server.base_url, 'triage_durable_records_total{outcome="replayed"}')

    engine = create_engine(pg.url)
    with engine.connect() as conn:
        audit = conn.execute(text("SELECT prediction_id FROM prediction_audit")).scalars().all()
        queued = conn.execute(text("SELECT prediction_id FROM review_items")).scalars().all()
    engine.dispose()

    sent_ids = [a["prediction_id"] for a in answers]
    routed_ids = [a["prediction_id"] for a in answers if a["route"] == "review"]
    unqueued_during_outage = sum(
        a["review_id"] is None for a in answers[down_since:] if a["route"] == "review"
    )
    sent = len(sent_ids) + len(routed_ids)
    found = len(audit) + len(queued)
    print(
        f"\nspool outage: sent {sent} records ({len(sent_ids)} audit, {len(routed_ids)} review items), "
        f"spooled {spooled:.0f} ({spooled_during:.0f} while down), replayed {replayed:.0f}, "
        f"found in the database {found} ({len(audit)} audit, {len(queued)} review items); "
        f"{unqueued_during_outage} answers went out without review_id; {failures} failed requests"
    )
    assert failures == 0
    assert len(set(sent_ids)) == len(sent_ids) == len(tickets)
    assert spooled_during > 0 and unqueued_during_outage > 0  # the outage really hit both kinds
    assert spooled == replayed
    assert sorted(audit) == sorted(sent_ids)  # each answer audited exactly once
    assert sorted(queued) == sorted(routed_ids)  # each routed answer queued exactly once
    assert found == sent
