"""Hot reload: a good bundle swaps in, a bad one is refused and the old model keeps serving."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.integration.conftest import ADMIN, PREDICT, clone_bundle

from ticket_triage.models.bundle import mark_live

TICKET = {"subject": "Invoice is wrong", "description": "We were charged twice for the March invoice."}


def _version(client: TestClient) -> str:
    return client.get("/model", headers=ADMIN).json()["version"]


def test_reload_swaps_to_a_named_bundle_and_changes_cache_keys(
    client: TestClient, models_dir: Path, trained: Any
) -> None:
    before = client.post("/predict", json=TICKET, headers=PREDICT).json()
    assert client.post("/predict", json=TICKET, headers=PREDICT).json()["cached"] is True
    clone_bundle(models_dir, trained.path, "2099-01-01T00-00-00_second")

    response = client.post("/admin/reload", json={"bundle": "2099-01-01T00-00-00_second"}, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "previous_version": trained.path.name,
        "model_version": "2099-01-01T00-00-00_second",
        "changed": True,
    }
    assert _version(client) == "2099-01-01T00-00-00_second"
    after = client.post("/predict", json=TICKET, headers=PREDICT).json()
    assert after["model_version"] == "2099-01-01T00-00-00_second"
    assert after["cached"] is False  # the new version never reads the old model's cache entries
    assert after["category"] == before["category"]  # same weights, so the same answer


def test_reload_without_a_name_takes_the_live_bundle(
    client: TestClient, models_dir: Path, trained: Any
) -> None:
    clone_bundle(models_dir, trained.path, "2099-02-02T00-00-00_live")
    (models_dir / "LIVE").write_text("2099-02-02T00-00-00_live\n")
    response = client.post("/admin/reload", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == "2099-02-02T00-00-00_live"


def _truncate_target(path: Path) -> None:
    target = path / "target_category.joblib"
    target.write_bytes(target.read_bytes()[:1000])


def _foreign_library(manifest: dict) -> None:
    manifest["libraries"]["scikit-learn"] = "0.24.2"


def _no_category(manifest: dict) -> None:
    manifest["targets"] = {"priority": manifest["targets"]["priority"]}


@pytest.mark.parametrize(
    ("name", "damage", "edit", "expected"),
    [
        ("truncated", _truncate_target, None, "does not match its checksum"),
        ("foreign", None, _foreign_library, "other library versions: scikit-learn 0.24.2"),
        ("no-category", None, _no_category, "no 'category' target"),
    ],
)
def test_a_broken_bundle_is_refused_and_the_old_model_keeps_serving(
    client: TestClient,
    models_dir: Path,
    trained: Any,
    name: str,
    damage: Callable[[Path], None] | None,
    edit: Callable[[dict], None] | None,
    expected: str,
) -> None:
    path = clone_bundle(models_dir, trained.path, f"2099-03-03T00-00-00_{name}", edit=edit)
    if damage is not None:
        damage(path)
    response = client.post("/admin/reload", json={"bundle": path.name}, headers=ADMIN)
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "bundle_refused"
    assert expected in error["message"]
    assert _version(client) == trained.path.name
    answer = client.post("/predict", json=TICKET, headers=PREDICT)
    assert answer.status_code == 200
    assert answer.json()["model_version"] == trained.path.name
    assert 'triage_model_reloads_total{outcome="refused"} 1.0' in client.get("/metrics").text


@pytest.mark.parametrize(
    ("bundle", "status", "code"),
    [
        ("no-such-bundle", 404, "bundle_not_found"),
        ("../../etc", 409, "bundle_refused"),
        ("LIVE", 409, "bundle_refused"),
    ],
)
def test_reload_names_are_folder_names_inside_the_models_folder(
    client: TestClient, bundle: str, status: int, code: str
) -> None:
    response = client.post("/admin/reload", json={"bundle": bundle}, headers=ADMIN)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_requests_during_a_reload_all_succeed(client: TestClient, models_dir: Path, trained: Any) -> None:
    clone_bundle(models_dir, trained.path, "2099-04-04T00-00-00_swap")
    results: list[tuple[int, str]] = []
    stop = threading.Event()

    def traffic(worker: int) -> None:
        i = after_swap = 0
        while after_swap < 3:  # keep going until three requests were sent after the reload returned
            after_swap += stop.is_set()
            ticket = {"subject": f"Printer {worker}-{i} offline", "description": "It shows an error."}
            response = client.post("/predict", json=ticket, headers=PREDICT)
            body = response.json()
            results.append(
                (response.status_code, body.get("model_version", body.get("error", {}).get("code")))
            )
            i += 1

    threads = [threading.Thread(target=traffic, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    reload = client.post("/admin/reload", json={"bundle": "2099-04-04T00-00-00_swap"}, headers=ADMIN)
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    assert reload.status_code == 200, reload.text
    statuses = [status for status, _ in results]
    versions = {version for _, version in results}
    failed = sum(s != 200 for s in statuses)
    print(f"\nrequests during reload: {len(results)}, non-200: {failed}, versions {versions}")
    assert statuses and all(s == 200 for s in statuses)
    assert versions <= {trained.path.name, "2099-04-04T00-00-00_swap"}
    assert "2099-04-04T00-00-00_swap" in versions  # traffic went on after the swap


def _wait_for_version(client: TestClient, version: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    seen = _version(client)
    while seen != version and time.monotonic() < deadline:
        time.sleep(0.1)
        seen = _version(client)
    return seen


def test_a_changed_live_file_is_followed_and_a_bad_one_is_not(
    make_client: Callable[..., TestClient], models_dir: Path, trained: Any
) -> None:
    """What `triage promote` relies on: every worker follows LIVE by itself."""
    client = make_client(model_watch_seconds=0.2)
    assert _version(client) == trained.path.name
    promoted = clone_bundle(models_dir, trained.path, "2099-03-03T00-00-00_promoted")
    mark_live(promoted)
    assert _wait_for_version(client, promoted.name) == promoted.name
    assert client.post("/predict", json=TICKET, headers=PREDICT).json()["model_version"] == promoted.name

    broken = clone_bundle(models_dir, trained.path, "2099-04-04T00-00-00_broken", edit=_foreign_library)
    mark_live(broken)
    deadline = time.monotonic() + 30
    while _refused(client) < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _refused(client) == 1  # tried once, refused, not retried every poll
    time.sleep(0.6)
    assert _refused(client) == 1
    assert _version(client) == promoted.name  # the promoted model keeps serving


def _refused(client: TestClient) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith('triage_model_reloads_total{outcome="refused"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
