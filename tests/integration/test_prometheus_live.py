"""A real Prometheus scraping a real service: every dashboard query returns data, and a shifted stream of
tickets drives the PSI gauges (and the drift alert's expression) over 0.25."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml
from tests.integration.conftest import ADMIN, PREDICT, REVIEW, free_port, running_server
from tests.integration.test_ops_files import MONITORING, dashboard_queries, prometheus_config_for

PROMETHEUS = "/usr/bin/prometheus"


@contextmanager
def prometheus(target: str, workdir: Path) -> Iterator[str]:
    """Prometheus on loopback scraping ``target`` every second with the repository's rules."""
    if not Path(PROMETHEUS).exists():
        pytest.fail("prometheus is not installed: apt-get install prometheus (.ci/run does)")
    config = prometheus_config_for(target, workdir, scrape_interval="1s")
    port = free_port()
    log = (workdir / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prometheus did not start:\n{(workdir / 'prometheus.log').read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        shutil.rmtree(workdir / "tsdb", ignore_errors=True)


def query(url: str, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def post_all(base_url: str, tickets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Half one by one, half in batches of 25: both routes get traffic."""
    answers = []
    with httpx.Client(base_url=base_url, headers=PREDICT, timeout=120) as http:
        half = len(tickets) // 2
        for ticket in tickets[:half]:
            response = http.post("/predict", json=ticket)
            assert response.status_code == 200, response.text
            answers.append(response.json())
        for start in range(half, len(tickets), 25):
            response = http.post("/predict/batch", json={"tickets": tickets[start : start + 25]})
            assert response.status_code == 200, response.text
            answers.extend(response.json()["predictions"])
    return answers


def drift(base_url: str) -> dict[str, Any]:
    response = httpx.get(
        f"{base_url}/monitoring/drift", params={"refresh": "true"}, headers=ADMIN, timeout=60
    )
    assert response.status_code == 200, response.text
    return response.json()


def top(psi: dict[str, float], n: int = 5) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in sorted(psi.items(), key=lambda kv: -kv[1])[:n])


def describe(label: str, d: dict[str, Any]) -> str:
    psi, over = d["psi"], d["features_over"]
    return (
        f"PSI {label}, window {d['window']}: prediction {psi['prediction']:.3f}, confidence "
        f"{psi['confidence']:.3f}, features over 0.1 / 0.25: {over['0.1']} / {over['0.25']} of "
        f"{len(psi['features'])}; highest: {top(psi['features'])}"
    )


def test_dashboards_and_drift_against_a_real_prometheus(
    models_dir: Path, tmp_path: Path, synthetic_split: tuple[Path, Path], datasets: Path, trained: Any
) -> None:
    reference = trained.path / "reference.json"
    assert '"confidence"' in reference.read_text() and '"sample"' in reference.read_text()
    window = 150
    sample = pd.read_csv(synthetic_split[1], dtype=str, keep_default_na=False)
    usual = [{"subject": r.subject, "description": r.body} for r in sample.head(window).itertuples()]
    shifted_texts = pd.read_csv(datasets / "banking77_train.csv")["text"].sample(window, random_state=5)
    shifted = [{"subject": "", "description": text} for text in shifted_texts]
    env = {
        "TRIAGE_MONITOR_INTERVAL_SECONDS": "1",
        "TRIAGE_DRIFT_WINDOW": str(window),
        "TRIAGE_DRIFT_MIN_WINDOW": "50",
        "TRIAGE_ROUTING_THRESHOLD": "0.9",
        "TRIAGE_ROUTING_RULE": "threshold",
        "TRIAGE_AUDIT_FLUSH_MS": "50",
    }
    with (
        running_server(models_dir, tmp_path / "server.log", **env) as server,
        prometheus(f"127.0.0.1:{server.port}", tmp_path) as prom,
    ):
        answers = post_all(server.base_url, usual)
        # Reviewers at work: two answers confirmed, one corrected.
        with httpx.Client(base_url=server.base_url, headers=REVIEW, timeout=30) as http:
            for n in range(3):
                item = http.post("/reviews/claim").json()
                other = next(
                    p["label"] for p in item["top_labels"] if p["label"] != item["predicted_category"]
                )
                category = item["predicted_category"] if n < 2 else other
                assert (
                    http.post(f"/reviews/{item['id']}/resolve", json={"category": category}).status_code
                    == 200
                )
        before = wait_for(
            lambda: (d := drift(server.base_url))["window"] >= window and d, 60, "a full window"
        )
        time.sleep(6)  # several scrapes, so rates and quantiles have two points

        queries = dashboard_queries()
        empty = [(board, title, expr) for board, title, expr in queries if not query(prom, expr)]
        print(f"\ndashboard queries: {len(queries)} run, {len(queries) - len(empty)} returned data")
        for board, title, expr in empty:
            print(f"  no data: {board} / {title}: {expr}")
        assert empty == []

        post_all(server.base_url, shifted)
        after = wait_for(
            lambda: (
                (d := drift(server.base_url))["features_over"]["0.25"] > before["features_over"]["0.25"] and d
            ),
            60,
            "the shifted window",
        )
        alert_expr = next(
            rule["expr"]
            for group in yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
            for rule in group["rules"]
            if rule.get("alert") == "TriageFeatureDrift"
        )
        firing = wait_for(lambda: query(prom, alert_expr), 30, "the drift alert expression to be true")
        report = httpx.get(f"{server.base_url}/monitoring/drift/report", headers=ADMIN, timeout=180)

    print(describe("before (in-distribution tickets)", before))
    print(describe("after (a BANKING77 stream)", after))
    print(f"TriageFeatureDrift expression true for {len(firing)} feature(s)")
    assert len(answers) == window
    assert after["features_over"]["0.25"] >= 3
    assert after["psi"]["prediction"] > before["psi"]["prediction"]
    assert report.status_code == 200 and "<html" in report.text[:2000].lower()
