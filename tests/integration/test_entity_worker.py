"""spaCy's features from the worker process: the same numbers as in-process, and survival of its death."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ticket_triage.models.bundle import load_bundle
from ticket_triage.serving.entity_worker import EntityWorker
from ticket_triage.serving.inference import ServingModel
from ticket_triage.serving.schemas import Ticket

TICKETS = [
    Ticket(subject="Refund for order 1182", description="Anna from Berlin was charged twice on 3 May."),
    Ticket(subject="VPN down", description="Since Monday the VPN client at the London office fails."),
    Ticket(subject="", description="Passwort zurücksetzen bitte, ich komme nicht in mein Konto."),
]


def test_worker_features_match_the_in_process_ones_and_survive_a_killed_worker(trained: Any) -> None:
    model = ServingModel(load_bundle(trained.path))
    helper = ThreadPoolExecutor(max_workers=1)
    worker = EntityWorker()
    try:
        here = model.score(TICKETS, helper)
        there = model.score(TICKETS, helper, worker)
        for a, b in zip(here, there, strict=True):
            np.testing.assert_allclose(a.category, b.category, atol=1e-9)
            assert a.signals == b.signals
        pid = worker.pid
        assert pid is not None and pid != os.getpid()

        os.kill(pid, signal.SIGKILL)  # a real death, as the OOM killer would cause
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        after = model.score(TICKETS, helper, worker)  # computed here for this pass
        np.testing.assert_allclose(after[0].category, here[0].category, atol=1e-9)
        again = model.score(TICKETS, helper, worker)  # and by a new worker from then on
        np.testing.assert_allclose(again[1].category, here[1].category, atol=1e-9)
        assert worker.pid not in (None, pid)
    finally:
        worker.close()
        helper.shutdown()
