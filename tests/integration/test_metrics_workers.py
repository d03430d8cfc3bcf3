"""Metrics with several worker processes: whichever worker answers /metrics, the counters add up."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.mmap_dict import MmapedDict
from tests.integration.conftest import PREDICT, running_server

_SERIES = re.compile(r"^triage_http_requests_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def _predict_requests(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        match = _SERIES.match(line)
        if match and 'route="/predict"' in match["labels"] and 'status="200"' in match["labels"]:
            total += float(match["value"])
    return total


def _served_per_worker(metrics_dir: Path) -> dict[str, float]:
    """Each worker's own count of answered /predict calls, read from its metric file."""
    served: dict[str, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = path.stem.split("_")[-1]
        for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(str(path)):
            _metric, sample, labels, *_ = json.loads(key)
            if sample == "triage_http_requests_total" and labels.get("route") == "/predict":
                served[pid] = served.get(pid, 0.0) + value
    return served


def test_two_workers_report_the_sum_of_their_counters(models_dir: Path, tmp_path: Path) -> None:
    sent = 80
    metrics_dir = tmp_path / "metrics"
    env = {"TRIAGE_WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with running_server(models_dir, tmp_path / "server.log", **env) as server:

        def call(i: int) -> int:
            ticket = {"subject": f"VPN drops every {i} minutes", "description": "Since the update."}
            # A new connection per request: both workers accept on the shared socket.
            response = httpx.post(f"{server.base_url}/predict", json=ticket, headers=PREDICT, timeout=60)
            return response.status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(call, range(sent)))
        scrapes = [httpx.get(f"{server.base_url}/metrics", timeout=10).text for _ in range(6)]
        per_worker = _served_per_worker(metrics_dir)

    counted = [_predict_requests(text) for text in scrapes]
    print(
        f"\n2 workers: sent {sent} /predict requests; served per worker {sorted(per_worker.values())}; "
        f"summed counter on 6 scrapes {counted}"
    )
    assert statuses == [200] * sent
    assert len(per_worker) == 2 and all(n > 0 for n in per_worker.values())  # both workers served
    assert sum(per_worker.values()) == sent
    assert counted == [float(sent)] * 6
    assert "triage_model_info{" in scrapes[0]
