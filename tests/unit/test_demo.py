"""The demo ticket generator: deterministic, well-formed, and realistically imperfect."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from ticket_triage.data.demo import (
    CATEGORY_WEIGHTS,
    CHANNELS,
    COLUMNS,
    PRIORITIES,
    TIERS,
    generate_demo_tickets,
    write_demo_csv,
)
from ticket_triage.data.loader import load_tickets
from ticket_triage.data.schema import CREATED_AT, ID, LABEL, PRIORITY, TEXT, ColumnMap

GERMAN_MARKERS = ("Ich ", " ich ", "Bitte", "Grüße", "Sehr geehrte", "Hallo", "Anruf von", " Sie ")


@pytest.fixture(scope="module")
def demo() -> pd.DataFrame:
    return generate_demo_tickets(n=2000, seed=7)


def test_same_seed_same_tickets_other_seed_different(demo: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(generate_demo_tickets(n=2000, seed=7), demo)
    other = generate_demo_tickets(n=2000, seed=8)
    assert (other["body"] != demo["body"]).mean() > 0.9


def test_columns_and_value_sets(demo: pd.DataFrame) -> None:
    assert tuple(demo.columns) == COLUMNS
    assert len(demo) == 2000
    assert demo["ticket_id"].is_unique
    assert set(demo["category"]) == set(CATEGORY_WEIGHTS)
    assert set(demo["priority"]) == set(PRIORITIES)
    assert set(demo["channel"]) == set(CHANNELS)
    assert set(demo["customer_tier"]) == set(TIERS)
    assert demo["subject"].str.strip().ne("").all()
    assert demo["body"].str.len().min() >= 20


def test_category_balance_is_not_degenerate(demo: pd.DataFrame) -> None:
    shares = demo["category"].value_counts(normalize=True)
    assert len(shares) == 8
    assert shares.max() < 0.35
    assert shares.min() > 0.03


def test_timestamps_cover_a_year_with_business_hours_and_weekdays_heavier(demo: pd.DataFrame) -> None:
    created = pd.to_datetime(demo["created_at"], utc=True, format="ISO8601")
    assert demo["created_at"].str.endswith("Z").all()
    assert created.is_monotonic_increasing
    assert (created.max() - created.min()).days > 330
    weekdays = created.dt.weekday
    assert (weekdays == 0).sum() > 1.8 * (weekdays == 6).sum()
    human = created[demo["channel"] != "api"]
    business = human.dt.hour.between(8, 17).mean()
    assert business > 0.6  # 10 of 24 hours
    assert human.dt.hour.isin([2, 3, 4]).mean() < 0.03


def test_a_few_percent_of_tickets_are_german(demo: pd.DataFrame) -> None:
    text = demo["subject"] + " " + demo["body"]
    german = text.apply(lambda t: any(marker in t for marker in GERMAN_MARKERS))
    assert 0.02 < german.mean() < 0.10


def test_priority_depends_on_category_and_tier(demo: pd.DataFrame) -> None:
    urgent = demo["priority"].isin(["high", "critical"])
    by_category = urgent.groupby(demo["category"]).mean()
    assert by_category["security"] > 2 * by_category["feature_request"]
    assert by_category["technical_issue"] > by_category["general_inquiry"]
    by_tier = urgent.groupby(demo["customer_tier"]).mean()
    assert by_tier["enterprise"] > by_tier["free"]
    # Noise: even the calmest category is not entirely low priority.
    assert (demo.loc[demo["category"] == "feature_request", "priority"] != "low").any()


def test_slots_are_filled_and_consistent(demo: pd.DataFrame) -> None:
    text = demo["subject"] + " " + demo["body"]
    assert not text.str.contains(r"\{[a-z_0-9]+\}").any()
    # A ticket talks about one order: subject and body never quote different order numbers.
    both = demo[demo["subject"].str.contains(r"#\d{7}") & demo["body"].str.contains(r"#\d{7}")]
    assert len(both) > 20
    subject_numbers = both["subject"].str.extract(r"(#\d{7})")[0]
    body_numbers = both["body"].str.findall(r"#\d{7}")
    assert all(set(b) == {s} for s, b in zip(subject_numbers, body_numbers, strict=True))


def test_text_classifier_learns_but_is_not_perfect(demo: pd.DataFrame) -> None:
    """Categories are learnable from text, but overlap and label noise keep accuracy below 0.98."""
    texts = (demo["subject"] + "\n" + demo["body"]).tolist()
    train_x, test_x, train_y, test_y = train_test_split(
        texts, demo["category"], test_size=0.2, random_state=0, stratify=demo["category"]
    )
    vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=2)
    model = LogisticRegression(max_iter=300).fit(vectorizer.fit_transform(train_x), train_y)

    accuracy = float(np.mean(model.predict(vectorizer.transform(test_x)) == test_y))
    majority = demo["category"].value_counts(normalize=True).max()
    assert accuracy > max(0.7, 2.5 * majority)
    assert accuracy < 0.98


def test_written_csv_loads_through_the_loader(tmp_path: Path) -> None:
    path = write_demo_csv(tmp_path / "nested" / "demo.csv", n=50, seed=3)
    columns = ColumnMap(
        text=("subject", "body"),
        label="category",
        priority="priority",
        timestamp="created_at",
        channel="channel",
        tier="customer_tier",
        id="ticket_id",
    )

    result = load_tickets([path], columns, require_label=True)

    expected = generate_demo_tickets(n=50, seed=3)
    frame = result.frame
    assert result.report.rows_kept == 50 and result.report.bad_timestamps == 0
    assert frame[ID].tolist() == expected["ticket_id"].tolist()
    assert frame[LABEL].tolist() == expected["category"].tolist()
    assert frame[PRIORITY].tolist() == expected["priority"].tolist()
    assert frame[CREATED_AT].notna().all()
    assert frame[TEXT].iloc[0] == f"{expected['subject'].iloc[0]}\n{expected['body'].iloc[0].strip()}"


def test_rejects_non_positive_n() -> None:
    with pytest.raises(ValueError, match="n must be"):
        generate_demo_tickets(n=0)
