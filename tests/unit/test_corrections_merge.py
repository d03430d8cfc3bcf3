"""Merge rules of reviewers' corrections into the original training data, on real synthetic tickets."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from ticket_triage.data.loader import load_tickets
from ticket_triage.data.schema import CHANNEL, CREATED_AT, ID, LABEL, PRIORITY, TEXT, ColumnMap
from ticket_triage.feedback import FeedbackError
from ticket_triage.feedback.compare import judge
from ticket_triage.feedback.corrections import (
    SKIP_SUPERSEDED,
    describe_source,
    merge_corrections,
    read_corrections,
)
from ticket_triage.serving.routes.reviews import EXPORT_COLUMNS

ORIGINAL = ColumnMap(text=("subject", "body"), label="queue", priority="priority", id="id")


@pytest.fixture(scope="module")
def real(datasets: Path) -> pd.DataFrame:
    """Twelve real tickets with distinct subjects, ids T0..T11."""
    frame = pd.read_csv(datasets / "synthetic_tickets_v5_train.csv", dtype=str, keep_default_na=False)
    frame = frame[(frame["subject"] != "") & (frame["body"] != "")].drop_duplicates("subject").head(12)
    frame = frame.reset_index(drop=True)
    frame.insert(0, "id", [f"T{i}" for i in range(len(frame))])
    return frame


@pytest.fixture
def original(real: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    path = tmp_path / "original.csv"
    real.iloc[:8].to_csv(path, index=False)
    return load_tickets([path], ORIGINAL, require_label=True).frame


def _other(real: pd.DataFrame, queue: str) -> str:
    """A real queue different from ``queue`` (what a reviewer's correction looks like)."""
    return next(q for q in sorted(set(real["queue"])) if q != queue)


def _correction(real: pd.DataFrame, i: int, **changes: str | None) -> dict[str, str | None]:
    row = real.iloc[i]
    out: dict[str, str | None] = {
        "ticket_id": row["id"],
        "subject": row["subject"],
        "description": row["body"],
        "created_at": "2026-11-20T09:30:00+00:00",
        "channel": "email",
        "customer_tier": "gold",
        "urgency": None,
        "category": _other(real, row["queue"]),
        "priority": row["priority"],
    }
    out.update(changes)
    return out


def _write_csv(rows: list[dict[str, str | None]], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _merge(original: pd.DataFrame, rows: list[dict[str, str | None]], tmp_path: Path, **kwargs):
    loaded = read_corrections(str(_write_csv(rows, tmp_path / "corrections.csv")))
    mapped = kwargs.pop("mapped", set(ORIGINAL.source_columns()) | {ID})
    return merge_corrections(
        original,
        loaded.frame,
        mapped=mapped,
        skipped=loaded.report.dropped,
        read=loaded.report.rows_read,
        **kwargs,
    )


def test_a_correction_overrides_the_label_of_the_same_ticket_id(
    real: pd.DataFrame, original: pd.DataFrame, tmp_path: Path
) -> None:
    wanted = _other(real, real.iloc[2]["queue"])
    other_priority = next(p for p in ("low", "medium", "high") if p != real.iloc[2]["priority"])
    # Different text on purpose: the id decides, and the original text is what is trained on.
    rows = [_correction(real, 2, subject="edited by the agent", priority=other_priority)]
    merged, report = _merge(original, rows, tmp_path)
    assert len(merged) == len(original)
    assert (report.overridden_by_id, report.overridden_by_text, report.added) == (1, 0, 0)
    assert report.rows_replaced == 1 and report.categories_changed == 1
    row = merged[merged[ID] == "T2"].iloc[0]
    assert row[LABEL] == wanted and row[PRIORITY] == other_priority
    assert row[TEXT] == original.loc[original[ID] == "T2", TEXT].iloc[0]
    untouched = merged[merged[ID] != "T2"].reset_index(drop=True)
    pd.testing.assert_frame_equal(untouched, original[original[ID] != "T2"].reset_index(drop=True))


def test_without_an_id_match_the_normalised_text_decides(
    real: pd.DataFrame, original: pd.DataFrame, tmp_path: Path
) -> None:
    row = real.iloc[5]
    shouted = "  " + row["subject"].upper() + "  "
    body = "\n\n".join(row["body"].split())  # other whitespace, same words
    rows = [
        _correction(real, 5, ticket_id=None, subject=shouted, description=body),
        _correction(real, 6, ticket_id="NOT-IN-DATA"),  # an unknown id falls back to the text
    ]
    merged, report = _merge(original, rows, tmp_path)
    assert (report.overridden_by_id, report.overridden_by_text, report.added) == (0, 2, 0)
    assert merged.loc[merged[ID] == "T5", LABEL].iloc[0] == _other(real, row["queue"])
    assert merged.loc[merged[ID] == "T6", LABEL].iloc[0] == _other(real, real.iloc[6]["queue"])


def test_a_new_ticket_is_appended_with_only_the_fields_the_champion_used(
    real: pd.DataFrame, original: pd.DataFrame, tmp_path: Path
) -> None:
    rows = [_correction(real, 9, category=real.iloc[9]["queue"])]  # a ticket the original data lacks
    merged, report = _merge(original, rows, tmp_path)
    assert (report.overridden, report.added) == (0, 1)
    assert list(merged.columns) == list(original.columns)
    new = merged.iloc[-1]
    assert new[ID] == "T9" and new[LABEL] == real.iloc[9]["queue"]
    assert new[TEXT] == f"{real.iloc[9]['subject']}\n{real.iloc[9]['body']}"
    # The champion had no channel or timestamp column: the correction's values must not leak in.
    assert new[CHANNEL] is None and pd.isna(new[CREATED_AT])
    assert str(merged[CREATED_AT].dtype) == "datetime64[ns, UTC]"

    with_meta = set(ORIGINAL.source_columns()) | {ID, CHANNEL, CREATED_AT}
    merged, _ = _merge(original, rows, tmp_path, mapped=with_meta)
    assert merged.iloc[-1][CHANNEL] == "email"
    assert merged.iloc[-1][CREATED_AT] == pd.Timestamp("2026-11-20T09:30:00Z")


def test_the_later_answer_for_the_same_ticket_wins(
    real: pd.DataFrame, original: pd.DataFrame, tmp_path: Path
) -> None:
    queues = sorted(set(real["queue"]) - {real.iloc[1]["queue"]})
    rows = [_correction(real, 1, category=queues[0]), _correction(real, 1, category=queues[1])]
    merged, report = _merge(original, rows, tmp_path)
    assert merged.loc[merged[ID] == "T1", LABEL].iloc[0] == queues[1]
    assert report.skipped == {SKIP_SUPERSEDED: 1}
    assert (report.read, report.overridden) == (2, 1)


def test_unusable_corrections_are_skipped_with_their_reason(
    real: pd.DataFrame, original: pd.DataFrame, tmp_path: Path
) -> None:
    rows = [
        _correction(real, 3, category=None),
        _correction(real, 4, subject="", description=""),
        _correction(real, 10, category="Brand New Queue"),
    ]
    merged, report = _merge(original, rows, tmp_path, known_categories=set(original[LABEL]))
    assert report.skipped == {"empty label": 1, "empty text": 1}
    assert report.added == 1 and report.read == 3
    assert report.unknown_categories == {"Brand New Queue": 1}
    assert merged.loc[merged[ID] == "T3", LABEL].iloc[0] == real.iloc[3]["queue"]
    assert any("never learned" in line for line in report.lines())


def test_a_correction_without_priority_keeps_the_original_priority(
    real: pd.DataFrame, original: pd.DataFrame, tmp_path: Path
) -> None:
    merged, _ = _merge(original, [_correction(real, 0, priority=None)], tmp_path)
    assert merged.loc[merged[ID] == "T0", PRIORITY].iloc[0] == real.iloc[0]["priority"]


def test_a_champion_without_priority_gets_no_priority_column(real: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "original.csv"
    real.iloc[:8].to_csv(path, index=False)
    columns = ColumnMap(text=("subject", "body"), label="queue", id="id")
    original = load_tickets([path], columns, require_label=True).frame
    merged, report = _merge(
        original, [_correction(real, 11)], tmp_path, mapped=set(columns.source_columns()) | {ID}
    )
    assert PRIORITY not in merged.columns and report.added == 1


def test_jsonl_and_csv_exports_read_the_same(real: pd.DataFrame, tmp_path: Path) -> None:
    rows = [_correction(real, i) for i in range(6)]
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    a = read_corrections(str(_write_csv(rows, tmp_path / "c.csv"))).frame
    b = read_corrections(str(jsonl)).frame
    columns = [ID, TEXT, LABEL, PRIORITY, CREATED_AT, CHANNEL]
    pd.testing.assert_frame_equal(a[columns], b[columns])


def test_bad_correction_sources_are_named(real: pd.DataFrame, tmp_path: Path) -> None:
    header_only = tmp_path / "empty.csv"
    header_only.write_text(",".join(EXPORT_COLUMNS) + "\n")
    with pytest.raises(FeedbackError, match=r"empty\.csv"):
        read_corrections(str(header_only))
    no_category = tmp_path / "wrong.csv"
    real[["subject", "body", "queue"]].head(3).to_csv(no_category, index=False)
    with pytest.raises(FeedbackError, match="'category'"):
        read_corrections(str(no_category))
    with pytest.raises(FeedbackError, match=r"nope\.csv"):
        read_corrections(str(tmp_path / "nope.csv"))
    missing_db = tmp_path / "no" / "reviews.db"
    with pytest.raises(FeedbackError, match="does not exist"):
        read_corrections(f"sqlite:///{missing_db}")
    assert not missing_db.parent.exists()  # reading must not create an empty database


def test_database_passwords_are_not_shown() -> None:
    shown = describe_source("postgresql+psycopg://triage:s3cret@db.example:5432/triage")
    assert "s3cret" not in shown and "db.example" in shown


@pytest.mark.parametrize(
    ("challenger", "worse"),
    [
        ({"accuracy": 0.80, "macro_f1": 0.70}, False),
        ({"accuracy": 0.795, "macro_f1": 0.695}, False),  # within the tolerance
        ({"accuracy": 0.78, "macro_f1": 0.72}, True),
        ({"accuracy": 0.85, "macro_f1": 0.60}, True),  # more accurate, but small queues suffer
    ],
)
def test_worse_means_lower_accuracy_or_macro_f1_beyond_the_tolerance(
    challenger: dict[str, float], worse: bool
) -> None:
    reasons = judge({"accuracy": 0.80, "macro_f1": 0.70}, challenger, tolerance=0.01)
    assert bool(reasons) is worse


def test_corrected_tags_replace_the_tag_columns_and_an_appended_ticket_brings_its_own(
    real: pd.DataFrame, tmp_path: Path
) -> None:
    from ticket_triage.models.tags import tag_columns, tag_sets

    tagged = ColumnMap(
        text=("subject", "body"), label="queue", id="id", extra=tag_columns(["tag_1", "tag_2"])
    )
    path = tmp_path / "original.csv"
    real.iloc[:8].to_csv(path, index=False)
    original = load_tickets([path], tagged, require_label=True).frame
    rows = [
        _correction(
            real, 2, tags="Billing|Refund|Extra"
        ),  # three tags, two tag columns: the third is dropped
        _correction(real, 3, tags=None),  # no tag answer: the original tags stay
        _correction(real, 9, tags="Network"),  # not in the original data: appended with its tag
    ]
    merged, report = _merge(original, rows, tmp_path, mapped={LABEL, TEXT, ID})
    assert (report.overridden_by_id, report.added) == (2, 1)
    sets = dict(zip(merged[ID], tag_sets(merged), strict=True))
    assert sets["T2"] == {"Billing", "Refund"}
    assert sets["T3"] == tag_sets(original[original[ID] == "T3"])[0]
    assert sets["T9"] == {"Network"}
