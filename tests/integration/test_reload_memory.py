"""Hot reload gives the old model's memory back: RSS stays flat over five reloads of the same bundle."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from tests.integration.conftest import ADMIN, PREDICT, running_server

TICKET = {"subject": "Invoice is wrong", "description": "We were charged twice for the March invoice."}


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def _models_loaded(client: httpx.Client) -> float:
    for line in client.get("/metrics", headers=ADMIN).text.splitlines():
        if line.startswith("triage_models_loaded "):
            return float(line.split()[1])
    raise AssertionError("triage_models_loaded is not in /metrics")


def test_rss_stays_flat_over_five_reloads_of_the_same_bundle(models_dir: Path, tmp_path: Path) -> None:
    with (
        running_server(models_dir, tmp_path / "server.log") as server,
        httpx.Client(base_url=server.base_url, timeout=300) as client,
    ):
        assert client.post("/predict", json=TICKET, headers=PREDICT).status_code == 200
        start = _rss_mb(server.proc.pid)
        after: list[float] = []
        for _ in range(5):
            response = client.post("/admin/reload", headers=ADMIN)
            assert response.status_code == 200, response.text
            assert client.post("/predict", json=TICKET, headers=PREDICT).status_code == 200
            deadline = time.monotonic() + 60
            while _models_loaded(client) != 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _models_loaded(client) == 1, "the swapped-out model was never freed"
            after.append(_rss_mb(server.proc.pid))
    figures = ", ".join(f"{v:.0f}" for v in after)
    print(f"\nRSS before reloads {start:.0f} MB; after each of 5 reloads: {figures} MB")
    # One model's worth may stay in the allocator after the first swap; past it RSS must not climb.
    assert after[-1] - after[0] < 0.25 * start, after
