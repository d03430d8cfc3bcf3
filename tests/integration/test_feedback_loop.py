"""The feedback loop on real tickets: review answers -> export -> `triage train`; `triage retrain` with
corrections from a real review database, `triage compare` on held-out tickets, `triage promote`.

Trainings are the expensive part (about a minute each here), so the module trains twice besides the
session's shared champion: one challenger (a full retrain) and one small bundle from an API export.
The challenger is made worse on purpose: most training tickets are "corrected" to a wrong queue, the way a
careless reviewer or a broken export would, so a refusal to promote is exercised on a real model.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from tests.integration.conftest import REVIEW
from tests.integration.test_cli_train import LIGHT_FEATURES
from typer.testing import CliRunner

from ticket_triage.cli import app
from ticket_triage.data.schema import CHANNEL, CREATED_AT, ID, LABEL, PRIORITY, TEXT, TIER
from ticket_triage.feedback.compare import COMPARISON_FILE, WORSE, file_sha256, judge
from ticket_triage.feedback.corrections import read_corrections
from ticket_triage.feedback.promote import HISTORY_FILE, live_name, write_live
from ticket_triage.models.bundle import load_bundle, read_manifest
from ticket_triage.review import NewReviewItem, ReviewStore, make_engine, migrate

runner = CliRunner()
#: The columns of the synthetic tickets, as the session's champion was trained (its manifest lacks them).
CHAMPION_COLUMNS = ["--text", "subject,body", "--label", "queue", "--priority", "priority", "--id", "id"]
REVIEWED_NEW_TICKETS = 100  # held-out rows 0..99 are reviewed; 100..299 stay unseen for `compare`
CHANNELS = ("email", "chat", "phone", "web")
TIERS = ("free", "pro", "enterprise")


def _fill_store(store: ReviewStore, tickets: pd.DataFrame, answers: dict[str, str], version: str) -> None:
    """Queue real tickets as low-confidence predictions, then claim and answer each as a reviewer would."""
    start = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    items = [
        NewReviewItem(
            predicted_category=row["queue"],
            confidence=0.41,
            model_version=version,
            top_labels=((row["queue"], 0.41),),
            predicted_priority=row["priority"],
            ticket_id=row["id"],
            subject=row["subject"],
            description=row["body"],
            created_at=start + timedelta(minutes=37 * i),
            channel=CHANNELS[i % len(CHANNELS)],
            customer_tier=TIERS[i % len(TIERS)],
        )
        for i, (_, row) in enumerate(tickets.iterrows())
    ]
    store.add_items(items)
    while (item := store.claim("alice")) is not None:
        assert item.ticket_id is not None
        store.resolve(item.id, "alice", answers[item.ticket_id])


@dataclass
class Loop:
    root: Path
    models: Path
    champion: Path
    train_csv: Path
    heldout: Path
    db_url: str
    mislabelled: dict[str, str]  # training ticket id -> the wrong queue it was "corrected" to
    added: list[str]  # held-out ticket ids reviewed with their true queue


@pytest.fixture(scope="module")
def loop(trained: Any, synthetic_split: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Loop:
    root = tmp_path_factory.mktemp("feedback")
    models = root / "models"
    models.mkdir()
    champion = models / trained.path.name
    shutil.copytree(trained.path, champion)
    (models / "LIVE").write_text(trained.path.name + "\n")

    train_csv, sample_csv = synthetic_split
    train = pd.read_csv(train_csv, dtype=str, keep_default_na=False)
    sample = pd.read_csv(sample_csv, dtype=str, keep_default_na=False)
    heldout = root / "heldout.csv"
    sample.iloc[REVIEWED_NEW_TICKETS:].to_csv(heldout, index=False)

    queues = sorted(set(train["queue"]))
    rotate = {q: queues[(i + 1) % len(queues)] for i, q in enumerate(queues)}
    wrong = train[train.index % 5 != 0]  # four in five training tickets get a wrong queue
    mislabelled = {row["id"]: rotate[row["queue"]] for _, row in wrong.iterrows()}
    new = sample.iloc[:REVIEWED_NEW_TICKETS]
    answers = mislabelled | dict(zip(new["id"], new["queue"], strict=True))

    db_url = f"sqlite:///{root / 'reviews.db'}"
    engine = make_engine(db_url)
    migrate(engine)
    _fill_store(ReviewStore(engine, lease_seconds=600), pd.concat([wrong, new]), answers, trained.path.name)
    engine.dispose()
    return Loop(root, models, champion, train_csv, heldout, db_url, mislabelled, list(new["id"]))


@pytest.fixture(scope="module")
def challenger(loop: Loop, fast_training_env: None) -> Path:
    """`triage retrain` once, with the review database as the corrections source."""
    result = runner.invoke(
        app,
        [
            "retrain",
            "--model",
            str(loop.models),
            "--data",
            str(loop.train_csv),
            "--corrections",
            loop.db_url,
            "--out",
            str(loop.models),
            *CHAMPION_COLUMNS,
        ],
    )
    print(result.output)
    assert result.exit_code == 0, result.output
    match = re.search(r"^challenger: (\S+)", result.output, re.MULTILINE)
    assert match, result.output
    return Path(match.group(1))


def _history(models: Path) -> list[dict[str, Any]]:
    path = models / HISTORY_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_retrain_trains_on_the_data_with_corrections_overriding_labels(loop: Loop, challenger: Path) -> None:
    assert challenger.parent == loop.models
    assert live_name(loop.models) == loop.champion.name, "a challenger must never be made live by retrain"
    manifest = read_manifest(challenger)
    feedback = manifest.feedback
    assert feedback is not None
    assert feedback["champion"] == loop.champion.name
    assert feedback["read"] == len(loop.mislabelled) + len(loop.added)
    assert feedback["overridden_by_id"] == len(loop.mislabelled)
    assert feedback["categories_changed"] == len(loop.mislabelled)
    assert feedback["added"] == len(loop.added)
    assert feedback["skipped"] == {}
    assert manifest.columns is not None
    assert manifest.columns.text == ("subject", "body") and manifest.columns.label == "queue"
    original = len(pd.read_csv(loop.train_csv))
    assert sum(manifest.rows.values()) == original + len(loop.added)  # every queue has enough rows
    assert manifest.data_fingerprint != read_manifest(loop.champion).data_fingerprint
    assert load_bundle(challenger).targets["category"].labels  # loads and verifies


@pytest.mark.slow
def test_compare_scores_both_on_the_same_heldout_rows(loop: Loop, challenger: Path) -> None:
    result = runner.invoke(
        app,
        [
            "compare",
            str(loop.champion),
            str(challenger),
            "--data",
            str(loop.heldout),
            *CHAMPION_COLUMNS[:6],
        ],
    )
    print(result.output)
    assert result.exit_code == 0, result.output
    data = json.loads((challenger / COMPARISON_FILE).read_text())
    assert data["champion"]["version"] == loop.champion.name
    assert data["challenger"]["version"] == challenger.name
    assert data["heldout"]["files"] == [{"file": str(loop.heldout), "sha256": file_sha256(loop.heldout)}]
    assert data["heldout"]["rows_read"] == 300 - REVIEWED_NEW_TICKETS
    assert data["champion"]["category"]["n_rows"] == data["challenger"]["category"]["n_rows"]
    for side in ("champion", "challenger"):
        figures = data[side]["category"]
        assert 0.0 <= figures["accuracy"] <= 1.0 and 0.0 <= figures["ece"] <= 1.0
        assert 0.0 <= figures["coverage"] <= 1.0
        assert data[side]["priority"] is not None
    reasons = judge(data["champion"]["category"], data["challenger"]["category"], data["tolerance"])
    assert (data["verdict"] == WORSE) == bool(reasons)
    # The challenger learned four wrong queues in five: it must come out worse on honest labels.
    assert data["verdict"] == WORSE, result.output
    assert f"verdict: challenger is {WORSE}" in result.output


@pytest.mark.slow
def test_promote_refuses_the_worse_challenger_unless_forced(loop: Loop, challenger: Path) -> None:
    refused = runner.invoke(app, ["promote", str(challenger)])
    print(refused.output)
    assert refused.exit_code == 2
    assert "refusing to promote" in refused.output and "below the champion" in refused.output
    assert live_name(loop.models) == loop.champion.name
    assert _history(loop.models) == []

    forced = runner.invoke(app, ["promote", str(challenger), "--force"])
    print(forced.output)
    assert forced.exit_code == 0, forced.output
    assert live_name(loop.models) == challenger.name
    assert load_bundle(loop.models).path.name == challenger.name  # what `serve --model models` loads
    [record] = _history(loop.models)
    assert record["bundle"] == challenger.name and record["previous"] == loop.champion.name
    assert record["forced"] is True and any("below the champion" in r for r in record["overridden"])
    assert record["comparison"]["challenger"]["accuracy"] < record["comparison"]["champion"]["accuracy"]
    assert not list(loop.models.glob(".LIVE.*"))  # no temporary file left behind


@pytest.mark.slow
def test_rolling_back_needs_a_fresh_comparison_against_the_live_bundle(loop: Loop, challenger: Path) -> None:
    """The old champion is now the challenger of the (worse) live bundle: without a comparison it is
    refused; compared (columns taken from the live bundle's manifest), it is promoted without --force."""
    assert live_name(loop.models) == challenger.name, "runs after the forced promotion"
    refused = runner.invoke(app, ["promote", str(loop.champion)])
    assert refused.exit_code == 2 and COMPARISON_FILE in refused.output

    compared = runner.invoke(
        app, ["compare", str(loop.models), str(loop.champion), "--data", str(loop.heldout)]
    )
    print(compared.output)
    assert compared.exit_code == 0, compared.output
    assert json.loads((loop.champion / COMPARISON_FILE).read_text())["verdict"] != WORSE

    promoted = runner.invoke(app, ["promote", str(loop.champion)])
    assert promoted.exit_code == 0, promoted.output
    assert live_name(loop.models) == loop.champion.name
    assert [r["forced"] for r in _history(loop.models)] == [True, False]

    # The worse bundle's old comparison is against the bundle live again, so it still counts: refused.
    again = runner.invoke(app, ["promote", str(challenger)])
    assert again.exit_code == 2 and "below the champion" in again.output
    assert runner.invoke(app, ["promote", str(loop.champion)]).output.startswith(loop.champion.name)


@pytest.mark.slow
def test_the_review_export_trains_via_triage_train(
    client: TestClient, tmp_path: Path, synthetic_split: tuple[Path, Path], fast_training_env: None
) -> None:
    """Answers in the service's review store, exported by GET /reviews/export as CSV and JSON Lines, are
    read identically to the database itself and train a bundle through `triage train`."""
    db_url = f"sqlite:///{tmp_path / 'review.sqlite3'}"  # the `client` app's review database
    engine = make_engine(db_url)
    train = pd.read_csv(synthetic_split[0], dtype=str, keep_default_na=False).head(300)
    _fill_store(
        ReviewStore(engine, lease_seconds=600),
        train,
        dict(zip(train["id"], train["queue"], strict=True)),
        "v1",
    )
    engine.dispose()

    paths = {}
    for fmt in ("csv", "jsonl"):
        response = client.get("/reviews/export", params={"format": fmt}, headers=REVIEW)
        assert response.status_code == 200, response.text
        paths[fmt] = tmp_path / f"export.{fmt}"
        paths[fmt].write_bytes(response.content)
    frames = [read_corrections(str(p)).frame for p in paths.values()] + [read_corrections(db_url).frame]
    columns = [ID, TEXT, LABEL, PRIORITY, CREATED_AT, CHANNEL, TIER]
    for frame in frames:
        assert len(frame) == len(train)
        pd.testing.assert_frame_equal(frame[columns], frames[0][columns])
    assert sorted(frames[0][LABEL]) == sorted(train["queue"])

    # The three sources read the same rows (above), so one training shows the format trains.
    features = tmp_path / "features.toml"
    features.write_text(LIGHT_FEATURES)
    models = tmp_path / "export-models"  # not tmp_path / "models": that is the `client` app's folder
    args = ["train", "--data", str(paths["csv"]), "--text", "subject,description", "--label", "category"]
    args += ["--priority", "priority", "--timestamp", "created_at", "--channel", "channel"]
    args += ["--tier", "customer_tier", "--urgency", "urgency", "--out", str(models)]
    result = runner.invoke(app, [*args, "--features", str(features)])
    print(result.output)
    assert result.exit_code == 0, result.output
    bundle = load_bundle(models)
    assert set(bundle.targets) == {"category", "priority"}
    assert set(bundle.targets["category"].labels) <= set(train["queue"])
    assert sum(bundle.manifest.rows.values()) <= len(train)


RETRAIN_GOOD = ["retrain", "--model", "{models}", "--corrections", "{good}", "--out", "{root}/m"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["retrain", "--model", "{root}/nope", "--corrections", "{good}", "--out", "{root}/m"],
            "does not exist",
        ),
        (["retrain", "--model", "{models}", "--corrections", "{empty}", "--out", "{root}/m"], "no data rows"),
        (["retrain", "--model", "{models}", "--corrections", "{root}/x.csv", "--out", "{root}/m"], "x.csv"),
        (
            [
                "retrain",
                "--model",
                "{models}",
                "--corrections",
                "sqlite:///{root}/none.db",
                "--out",
                "{root}/m",
            ],
            "does not exist",
        ),
        (
            ["retrain", "--model", "{models}", "--corrections", "{good}", "--out", "{root}/m"],
            "--text and --label",
        ),
        (
            [*RETRAIN_GOOD, "--data", "{train}", "--text", "subject,nosuch", "--label", "queue"],
            "nosuch",
        ),
        (["compare", "{models}", "{root}", "--data", "{heldout}"], "neither a model bundle"),
        (["compare", "{models}", "{models}", "--data", "{heldout}"], "not a bundle folder"),
        (["promote", "{root}/nope"], "does not exist"),
    ],
)
def test_feedback_commands_name_what_is_wrong(loop: Loop, args: list[str], expected: str) -> None:
    empty = loop.root / "empty.csv"
    empty.write_text("ticket_id,subject,description,category,priority\n")
    good = loop.root / "good.csv"
    sample = pd.read_csv(loop.heldout, dtype=str, keep_default_na=False).head(5)
    sample.rename(columns={"id": "ticket_id", "body": "description", "queue": "category"}).to_csv(
        good, index=False
    )
    values = {
        "root": loop.root,
        "models": loop.models,
        "empty": empty,
        "good": good,
        "train": loop.train_csv,
        "heldout": loop.heldout,
    }
    result = runner.invoke(app, [a.format(**values) for a in args])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    assert not (loop.root / "m").exists()


def test_live_is_replaced_atomically_while_a_reader_polls_it(tmp_path: Path) -> None:
    """A server polls LIVE while promotions rewrite it: every read is one complete bundle name."""
    names = ["2026-11-21T10-00-00_aaaaaa", "2026-11-21T11-00-00_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"]
    write_live(tmp_path, names[0])
    seen: set[str] = set()
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            seen.add((tmp_path / "LIVE").read_text())

    reader = threading.Thread(target=poll)
    reader.start()
    for i in range(300):
        write_live(tmp_path, names[i % 2])
    done.set()
    reader.join()
    assert seen <= {n + "\n" for n in names}
    assert not list(tmp_path.glob(".LIVE.*"))
    assert (tmp_path / "LIVE").stat().st_mode & 0o044 == 0o044  # readable by a server under another user
