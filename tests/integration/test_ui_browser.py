"""The reviewer page (/ui) in a real headless Chromium, against a real ``triage serve`` process.

Chromium is Debian's (/usr/bin/chromium, installed by CI), driven by Playwright; a missing browser fails
the tests instead of skipping them. Set TRIAGE_UI_SCREENSHOT=path to (re)write the page's screenshot.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from tests.integration.conftest import PREDICT, REVIEW, REVIEW_KEY, ServerProcess, running_server

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT_ENV = "TRIAGE_UI_SCREENSHOT"


@pytest.fixture(scope="module")
def ui_server(trained: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module; every prediction goes to review (no confidence reaches the threshold)."""
    folder = tmp_path_factory.mktemp("ui-server")
    models = folder / "models"
    models.mkdir()
    shutil.copytree(trained.path, models / trained.path.name)
    (models / "LIVE").write_text(trained.path.name + "\n")
    with running_server(
        models, folder / "server.log", TRIAGE_ROUTING_THRESHOLD="1.0", TRIAGE_ROUTING_RULE="threshold"
    ) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install the Debian 'chromium' package")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context per test: no sessionStorage (and so no key) carried over."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def sample_tickets(synthetic_sample: Path) -> list[dict[str, Any]]:
    """Real tickets the model never trained on, in the API's shape."""
    frame = pd.read_csv(synthetic_sample, dtype=str, keep_default_na=False)
    return [
        {"ticket_id": row.id, "subject": row.subject, "description": row.body, "channel": "email"}
        for row in frame.itertuples()
    ]


class Queue:
    """Puts real tickets into the review queue through /predict and reads the queue over HTTP."""

    def __init__(self, base_url: str, tickets: list[dict[str, Any]]) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=60)
        self._tickets = iter(tickets)

    def add(self, n: int) -> list[int]:
        ids = []
        for _ in range(n):
            ticket = {**next(self._tickets), "customer_tier": "gold", "created_at": "2026-03-03T09:15:00Z"}
            response = self.http.post("/predict", json=ticket, headers=PREDICT)
            assert response.status_code == 200, response.text
            answer = response.json()
            assert answer["route"] == "review", answer
            assert isinstance(answer["review_id"], int), answer
            ids.append(answer["review_id"])
        return ids

    def stats(self) -> dict[str, Any]:
        response = self.http.get("/reviews/stats", headers=REVIEW)
        assert response.status_code == 200, response.text
        return response.json()

    def item(self, item_id: int) -> dict[str, Any]:
        response = self.http.get("/reviews", params={"limit": 1000}, headers=REVIEW)
        assert response.status_code == 200, response.text
        [found] = [i for i in response.json()["items"] if i["id"] == item_id]
        return found

    def answer_everything_waiting(self) -> None:
        """Resolve what earlier tests left open: items still claimed by alice (a page that claimed and
        never answered), then every pending one, each as the model predicted it."""
        listed = self.http.get("/reviews", params={"status": "claimed", "limit": 1000}, headers=REVIEW)
        held = [i for i in listed.json()["items"] if i["claimed_by"] == "alice"]
        while (left := self.http.post("/reviews/claim", headers=REVIEW)).status_code == 200:
            held.append(left.json())
        for item in held:
            done = {"category": item["predicted_category"]}
            answer = self.http.post(f"/reviews/{item['id']}/resolve", json=done, headers=REVIEW)
            assert answer.status_code == 200, answer.text

    def labels(self, target: str) -> list[str]:
        response = self.http.get("/model", headers=REVIEW)
        assert response.status_code == 200, response.text
        return list(response.json()["targets"][target]["labels"])


@pytest.fixture(scope="module")
def queue(ui_server: ServerProcess, sample_tickets: list[dict[str, Any]]) -> Iterator[Queue]:
    q = Queue(ui_server.base_url, sample_tickets)
    yield q
    q.http.close()


def sign_in(page: Page, base_url: str, key: str = REVIEW_KEY) -> None:
    page.goto(f"{base_url}/ui")
    expect(page.get_by_label("Review key")).to_be_visible()
    page.get_by_label("Review key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def claim(page: Page) -> int:
    """Claims through the page; returns the review item id the page shows."""
    page.get_by_role("button", name="Claim next ticket").click()
    expect(page.locator("#ticket")).to_be_visible()
    return int(page.locator("#item-id").inner_text().lstrip("#"))


def test_sign_in_claim_and_resolve_with_the_keyboard(
    page: Page, ui_server: ServerProcess, queue: Queue
) -> None:
    queue.add(3)
    before = queue.stats()
    sign_in(page, ui_server.base_url)

    expect(page.locator("#workspace")).to_be_visible()
    expect(page.locator("#stat-pending")).to_have_text(str(before["pending"]))
    expect(page.locator("#stat-mine")).to_have_text("0")
    # The key is in this tab's sessionStorage only, never in the address.
    assert REVIEW_KEY not in page.url
    assert REVIEW_KEY in page.evaluate("Object.values(sessionStorage)")

    item_id = claim(page)
    item = queue.item(item_id)
    assert (item["status"], item["claimed_by"]) == ("claimed", "alice")
    expect(page.locator("#who")).to_have_text("Signed in as alice")
    expect(page.locator("#stat-claimed")).to_have_text(str(queue.stats()["claimed"]))

    # What the reviewer reads is the queued item.
    expect(page.locator("#ticket-subject")).to_have_text(item["subject"])
    assert page.locator("#f-description").inner_text().strip() == item["description"].strip()
    expect(page.locator("#f-channel")).to_have_text(item["channel"])
    expect(page.locator("#f-tier")).to_have_text(item["customer_tier"])
    expect(page.locator("#f-model")).to_have_text(item["model_version"])
    expect(page.locator("#f-priority")).to_have_text(item["predicted_priority"] or "—")
    expect(page.locator("#lease-left")).to_contain_text("left")

    # The model's top 3 labels, in order, with their probabilities.
    top = item["top_labels"][:3]
    shown = page.locator("#top-labels > li")
    expect(shown).to_have_count(len(top))
    for row, expected in zip(shown.all(), top, strict=True):
        assert row.get_attribute("data-label") == expected["label"]
        assert float(row.get_attribute("data-probability") or "nan") == expected["probability"]
        expect(row).to_contain_text(f"{expected['probability'] * 100:.1f}%")
    # Every other category of the model can be picked too.
    categories = queue.labels("category")
    others = {t["label"] for t in top}
    expect(page.locator("#all-labels > li")).to_have_count(len([c for c in categories if c not in others]))

    screenshot = os.environ.get(SCREENSHOT_ENV)
    if screenshot:
        page.keyboard.press("1")
        page.mouse.move(1, 1)  # no hover highlight in the picture
        page.screenshot(path=screenshot, full_page=False)

    chosen = top[1]["label"]
    priority = queue.labels("priority")[-1]
    page.get_by_label("Priority").select_option(priority)
    page.get_by_label("Note").fill("checked by the browser test")
    page.locator("#ticket-subject").focus()
    page.keyboard.press("2")
    expect(page.locator('input[name="category"]:checked')).to_have_value(chosen)
    page.keyboard.press("Enter")

    expect(page.locator("#stat-mine")).to_have_text("1")
    expect(page.locator("#ticket")).to_be_hidden()
    expect(page.locator("#empty")).to_contain_text(f"Resolved item {item_id}")

    after = queue.stats()
    assert after["resolved_total"] == before["resolved_total"] + 1
    done = queue.item(item_id)
    assert (done["status"], done["resolved_by"], done["resolved_category"]) == ("resolved", "alice", chosen)
    assert (done["resolved_priority"], done["note"]) == (priority, "checked by the browser test")
    expect(page.locator("#stat-pending")).to_have_text(str(after["pending"]))


def test_a_wrong_key_shows_an_error_and_stays_signed_out(page: Page, ui_server: ServerProcess) -> None:
    sign_in(page, ui_server.base_url, key="not-a-real-review-key")

    message = page.get_by_role("alert")
    expect(message).to_be_visible()
    expect(message).to_contain_text("not accepted (401)")
    expect(page.locator("#workspace")).to_be_hidden()
    expect(page.get_by_label("Review key")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    assert "not-a-real-review-key" not in page.url


def test_skip_and_release_return_items_to_the_queue(
    page: Page, ui_server: ServerProcess, queue: Queue
) -> None:
    queue.add(2)
    sign_in(page, ui_server.base_url)
    first = claim(page)
    assert queue.item(first)["claimed_by"] == "alice"

    page.get_by_role("button", name="Skip").click()
    expect(page.locator("#item-id")).not_to_have_text(f"#{first}")
    second = int(page.locator("#item-id").inner_text().lstrip("#"))
    skipped, claimed = queue.item(first), queue.item(second)
    assert (skipped["status"], skipped["claimed_by"]) == ("pending", None)
    assert (claimed["status"], claimed["claimed_by"]) == ("claimed", "alice")

    page.get_by_role("button", name="Release").click()
    expect(page.locator("#ticket")).to_be_hidden()
    expect(page.locator("#empty")).to_contain_text(f"Released item {second}")
    released = queue.item(second)
    assert (released["status"], released["claimed_by"]) == ("pending", None)
    stats = queue.stats()
    expect(page.locator("#stat-pending")).to_have_text(str(stats["pending"]))
    expect(page.locator("#stat-claimed")).to_have_text(str(stats["claimed"]))


def test_a_lost_lease_is_reported_not_swallowed(page: Page, ui_server: ServerProcess, queue: Queue) -> None:
    queue.add(1)
    sign_in(page, ui_server.base_url)
    mine_before = queue.http.get("/reviews/stats", headers=REVIEW).json()["resolved_by_reviewer_today"]
    expect(page.locator("#stat-mine")).to_have_text(str(mine_before))
    item_id = claim(page)
    # The lease is lost behind the page's back (as when it expires and the item is handed back).
    response = queue.http.post(f"/reviews/{item_id}/release", headers=REVIEW)
    assert response.status_code == 200, response.text

    page.keyboard.press("1")
    page.keyboard.press("Enter")

    message = page.get_by_role("alert")
    expect(message).to_contain_text("409")
    expect(message).to_contain_text("no longer hold this ticket")
    expect(page.locator("#ticket")).to_be_hidden()
    expect(page.locator("#stat-mine")).to_have_text(str(mine_before))
    assert queue.item(item_id)["status"] == "pending"


def test_a_claimed_ticket_shows_the_evidence_for_its_two_best_guesses_highlighted(
    page: Page, ui_server: ServerProcess, queue: Queue
) -> None:
    hostile = {
        "ticket_id": "UI-EVIDENCE",
        "subject": "Invoice <b>charged twice</b>",
        "description": "<img src=x onerror=\"document.title='owned'\"> My card payment for the invoice was "
        "charged twice and I need a refund for the second payment.",
        "channel": "email",
        "customer_tier": "gold",
    }
    queue.answer_everything_waiting()  # so the item this test queues is the next one claimed
    answer = queue.http.post("/predict", json=hostile, headers=PREDICT).json()
    assert answer["route"] == "review", answer
    sign_in(page, ui_server.base_url)
    expect(page.locator("#workspace")).to_be_visible()
    assert claim(page) == answer["review_id"]
    rows = page.locator("#evidence-list > li")
    expect(rows).to_have_count(2, timeout=60_000)  # the page asks once per claimed item; SHAP takes seconds
    expected = queue.http.get(f"/reviews/{answer['review_id']}/explanation", headers=REVIEW).json()
    labels = [e["label"] for e in expected["labels"]]
    assert len(set(labels)) == 2 and set(labels) <= set(queue.labels("category"))
    for row, evidence in zip(rows.all(), expected["labels"], strict=True):
        assert row.inner_text().startswith(evidence["label"])
    marks = page.locator("#ticket-subject mark.ev, #f-description mark.ev")
    named = {(w["field"], w["start"], w["word"]) for e in expected["labels"] for w in e["words"]}
    expect(marks).to_have_count(len(named))
    assert len(named) > 0
    assert set(marks.all_inner_texts()) == {word for _, _, word in named}
    # What the ticket holds is shown as text, highlighted or not: no element, no script ran.
    expect(page.locator("#f-description img, #ticket-subject b")).to_have_count(0)
    assert page.locator("#f-description").inner_text().startswith("<img src=x")
    assert page.title() != "owned"


def test_a_tag_correction_made_on_the_page_reaches_the_export(
    page: Page, ui_server: ServerProcess, queue: Queue
) -> None:
    queue.answer_everything_waiting()  # so the item this test queues is the next one claimed
    [item_id] = queue.add(1)
    item = queue.item(item_id)
    known = queue.http.get("/model", headers=REVIEW).json()["tags"]
    predicted = item["predicted_tags"]
    assert known and predicted is not None and set(predicted) <= set(known)
    sign_in(page, ui_server.base_url)
    expect(page.locator("#workspace")).to_be_visible()
    assert claim(page) == item_id
    expect(page.locator("#tags-box")).to_be_visible()
    boxes = page.locator('#tag-list input[name="tag"]')
    expect(boxes).to_have_count(len(predicted))
    expected = set(predicted)
    if predicted:  # untick the model's first tag
        page.locator(f'#tag-list input[value="{predicted[0]}"]').uncheck()
        expected.discard(predicted[0])
    added = next(t for t in known if t not in predicted)
    page.locator("#tag-add").fill(added)
    page.locator("#tag-add").press("Enter")  # adds the tag; must not resolve the ticket
    expect(page.locator(f'#tag-list input[value="{added}"]')).to_be_checked()
    expect(page.locator("#ticket")).to_be_visible()
    expected.add(added)
    page.locator("#tag-add").fill("No Such Tag")
    page.get_by_role("button", name="Add tag").click()
    expect(page.locator("#tag-add-error")).to_contain_text("Not a tag this model knows")
    page.locator("#ticket-subject").focus()
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    expect(page.locator("#empty")).to_contain_text(f"Resolved item {item_id}")
    assert set(queue.item(item_id)["resolved_tags"]) == expected
    export = queue.http.get("/reviews/export", params={"format": "jsonl"}, headers=REVIEW)
    assert export.status_code == 200, export.text
    rows = [json.loads(line) for line in export.text.splitlines() if line.strip()]
    [row] = [r for r in rows if r["ticket_id"] == item["ticket_id"]]
    assert set(row["tags"].split("|")) == expected
