"""Light feature families (sentiment, readability, temporal, metadata, patterns): the shape/name contract,
determinism, awkward input, pickling, and checks that each feature means what it claims."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, clone

from ticket_triage.features.metadata import (
    URGENCY_LEVELS,
    MetadataFeatures,
    MetadataFeaturesError,
    normalise,
)
from ticket_triage.features.patterns import PatternFeatures
from ticket_triage.features.readability import BOUNDS, ReadabilityFeatures, count_sentences
from ticket_triage.features.sentiment import SentimentFeatures
from ticket_triage.features.temporal import TemporalFeatures, TemporalFeaturesError

FACTORIES: dict[str, Callable[[], BaseEstimator]] = {
    "sentiment": SentimentFeatures,
    "readability": ReadabilityFeatures,
    "temporal": TemporalFeatures,
    "metadata": MetadataFeatures,
    "patterns": PatternFeatures,
}

LONG_TEXT = ("The payment page keeps failing with error 0x80070005 and I am losing money. " * 700)[:50_000]
AWKWARD_TEXTS = {
    "empty": "",
    "german": "Ich kann mich seit gestern nicht mehr anmelden. Das ist dringend, bitte helfen Sie mir!",
    "chinese_emoji": "我的账户被锁定了\uff0c无法登录。😡🔥🙏",
    "long_text": LONG_TEXT,
    "one_long_word": "a" * 50_000,
}


def ticket_frame(texts: list[str], **columns: list[object]) -> pd.DataFrame:
    """A canonical ticket frame; created_at defaults to NaT and metadata to None."""
    n = len(texts)
    created = columns.pop("created_at", [None] * n)
    frame = pd.DataFrame(
        {
            "text": texts,
            "created_at": pd.to_datetime(pd.Series(created, dtype=object), utc=True),
            "channel": columns.pop("channel", [None] * n),
            "customer_tier": columns.pop("customer_tier", [None] * n),
            "urgency": columns.pop("urgency", [None] * n),
        }
    )
    assert not columns, f"unknown columns {columns}"
    return frame


def training_frame() -> pd.DataFrame:
    return ticket_frame(
        [
            "I can't log in to my account.",
            "URGENT!!! Production is down since 02:00, HTTP 503 on every request.",
            "Refund my order #12345 now, this is unacceptable. I want to talk to your manager!",
            "Great service, thank you so much for the quick help.",
            "Where can I download invoice INV-2024-001? Please mail it to anna@example.com",
            "Mein Zugang ist gesperrt, bitte dringend entsperren.",
        ],
        created_at=[
            "2026-11-23 10:15",  # Monday morning
            "2026-11-21 02:05",  # Saturday night
            None,
            "2026-12-25 14:00",  # Christmas Day
            "2026-07-06 17:30",
            "2026-03-01 08:00",
        ],
        channel=["email", "Phone", "web form", "email", None, "chat"],
        customer_tier=["free", "enterprise", "pro", "free", "pro", None],
        urgency=["low", "P1", "High", None, "normal", "urgent"],
    )


@pytest.fixture(params=list(FACTORIES))
def family(request: pytest.FixtureRequest) -> tuple[str, BaseEstimator]:
    return request.param, FACTORIES[request.param]().fit(training_frame())


def _column(transformer: BaseEstimator, out: np.ndarray, feature: str) -> np.ndarray:
    names = list(transformer.get_feature_names_out())
    prefix = names[0].split("__")[0]
    return out[:, names.index(f"{prefix}__{feature}")]


# ---------------------------------------------------------------- contract shared by every family


def test_names_match_columns_and_carry_the_family_prefix(family: tuple[str, BaseEstimator]) -> None:
    name, transformer = family
    out = transformer.transform(training_frame())
    names = transformer.get_feature_names_out()
    assert out.dtype == np.float32
    assert out.shape == (6, len(names))
    assert len(set(names)) == len(names)
    assert all(isinstance(n, str) and n.startswith(f"{name}__") for n in names)
    assert np.isfinite(out).all()


def test_output_is_deterministic_across_fresh_fits(family: tuple[str, BaseEstimator]) -> None:
    _, transformer = family
    frame = training_frame()
    again = clone(transformer).fit(frame)
    assert again.get_params() == transformer.get_params()
    np.testing.assert_array_equal(again.transform(frame), transformer.transform(frame))
    assert list(again.get_feature_names_out()) == list(transformer.get_feature_names_out())


@pytest.mark.parametrize("kind", list(AWKWARD_TEXTS))
def test_awkward_text_gives_finite_rows_that_do_not_depend_on_the_batch(
    family: tuple[str, BaseEstimator], kind: str
) -> None:
    _, transformer = family
    text = AWKWARD_TEXTS[kind]
    batch = ticket_frame(
        ["Please reset my password.", text, "Thanks!"],
        created_at=["2026-11-23 10:15", "2026-11-21 02:05", None],
        channel=["email", "sms", None],
        customer_tier=["free", "unheard-of", "pro"],
        urgency=["low", "immediately please", "P2"],
    )
    out = transformer.transform(batch)
    assert out.shape == (3, len(transformer.get_feature_names_out()))
    assert np.isfinite(out).all()
    alone = transformer.transform(batch.iloc[[1]].reset_index(drop=True))  # a single-row frame
    np.testing.assert_array_equal(alone[0], out[1])


def test_pickle_round_trip_keeps_the_output(family: tuple[str, BaseEstimator]) -> None:
    _, transformer = family
    frame = training_frame()
    restored = pickle.loads(pickle.dumps(transformer))
    np.testing.assert_array_equal(restored.transform(frame), transformer.transform(frame))


def test_input_that_is_not_a_frame_is_rejected_by_name(family: tuple[str, BaseEstimator]) -> None:
    _, transformer = family
    with pytest.raises(ValueError, match="DataFrame"):
        transformer.transform(["just a list of texts"])  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["sentiment", "readability", "patterns"])
def test_text_families_reject_a_frame_without_text(name: str) -> None:
    with pytest.raises(ValueError, match="'text'"):
        FACTORIES[name]().fit(pd.DataFrame({"body": ["hello"]}))


# ---------------------------------------------------------------- sentiment


def test_sentiment_polarity_separates_angry_from_grateful() -> None:
    sentiment = SentimentFeatures().fit(training_frame())
    out = sentiment.transform(ticket_frame(["terrible, awful service", "great, thank you", ""]))
    polarity = _column(sentiment, out, "polarity")
    assert polarity[0] < 0 < polarity[1]
    np.testing.assert_array_equal(out[2], [0.0, 0.0])  # nothing written: neutral
    assert ((out[:, 1] >= 0) & (out[:, 1] <= 1)).all()


def test_sentiment_reads_only_the_first_max_chars() -> None:
    text = "This is great. " + "Meh " * 100 + "This is a terrible, awful disaster."
    cut = SentimentFeatures(max_chars=15).transform(ticket_frame([text]))
    full = SentimentFeatures().transform(ticket_frame([text]))
    assert cut[0, 0] > 0 > full[0, 0]


# ---------------------------------------------------------------- readability


def test_convoluted_prose_reads_harder_than_a_short_plain_sentence() -> None:
    readability = ReadabilityFeatures()
    convoluted = (
        "Notwithstanding the aforementioned contractual stipulations, the organisation's "
        "administrative infrastructure systematically misrepresented the reimbursement "
        "obligations, consequently necessitating comprehensive investigative intervention."
    )
    out = readability.transform(ticket_frame(["I can't log in.", convoluted]))
    ease = _column(readability, out, "flesch_reading_ease")
    grade = _column(readability, out, "flesch_kincaid_grade")
    assert ease[1] < ease[0]
    assert grade[1] > grade[0]
    assert _column(readability, out, "long_word_share")[1] > _column(readability, out, "long_word_share")[0]


def test_readability_of_degenerate_text_stays_within_the_documented_bounds() -> None:
    readability = ReadabilityFeatures()
    out = readability.transform(ticket_frame(["", "a" * 50_000, "!!! ??? ...", "Hi. " * 5000]))
    np.testing.assert_array_equal(out[0], np.zeros(len(BOUNDS)))  # no words: all zero
    np.testing.assert_array_equal(out[2], np.zeros(len(BOUNDS)))  # punctuation only: no words either
    low = np.array([lo for lo, _ in BOUNDS.values()], dtype=np.float32)
    high = np.array([hi for _, hi in BOUNDS.values()], dtype=np.float32)
    assert ((out >= low) & (out <= high)).all()
    assert _column(readability, out, "chars_per_word")[1] == BOUNDS["chars_per_word"][1]  # clipped
    assert _column(readability, out, "sentence_count")[3] == BOUNDS["sentence_count"][1]  # clipped


def test_sentences_end_at_terminal_punctuation_and_line_breaks_but_not_inside_numbers() -> None:
    assert count_sentences("One. Two! Three?") == 3
    assert count_sentences("Subject without a stop\nBody text here.") == 2
    assert count_sentences("It costs $12.50 in v2.1 of the app") == 1
    assert count_sentences("我很生气。真的\uff01") == 2
    assert count_sentences("") == 0


# ---------------------------------------------------------------- temporal


def test_saturday_is_weekend_and_outside_business_hours() -> None:
    temporal = TemporalFeatures()
    frame = ticket_frame(
        ["", "", "", ""],
        created_at=["2026-11-21 11:00", "2026-11-23 09:00", "2026-11-23 17:59", "2026-11-23 18:00"],
    )  # Saturday late morning, then Monday 09:00, 17:59 and 18:00
    out = temporal.transform(frame)
    np.testing.assert_array_equal(_column(temporal, out, "weekend"), [1, 0, 0, 0])
    np.testing.assert_array_equal(_column(temporal, out, "business_hours"), [0, 1, 1, 0])


def test_holidays_follow_the_configured_country() -> None:
    frame = ticket_frame(
        ["", "", ""], created_at=["2026-12-25 10:00", "2026-12-22 10:00", "2026-10-03 10:00"]
    )
    us = TemporalFeatures(holidays_country="US")
    de = TemporalFeatures(holidays_country="DE")
    off = TemporalFeatures(holidays_country=None)
    # Christmas Day is a holiday in both; 3 October (German Unity Day) only in Germany.
    np.testing.assert_array_equal(_column(us, us.transform(frame), "holiday"), [1, 0, 0])
    np.testing.assert_array_equal(_column(de, de.transform(frame), "holiday"), [1, 0, 1])
    np.testing.assert_array_equal(_column(off, off.transform(frame), "holiday"), [0, 0, 0])


def test_unknown_timestamp_or_missing_column_gives_all_zero_features() -> None:
    temporal = TemporalFeatures()
    out = temporal.transform(ticket_frame(["a", "b"], created_at=[None, "2026-11-23 10:00"]))
    np.testing.assert_array_equal(out[0], np.zeros(out.shape[1]))
    assert _column(temporal, out, "has_timestamp").tolist() == [0.0, 1.0]
    no_column = temporal.transform(pd.DataFrame({"text": ["a", "b"]}))
    np.testing.assert_array_equal(no_column, np.zeros_like(no_column))


def test_cyclic_hour_puts_late_night_next_to_early_morning() -> None:
    temporal = TemporalFeatures()
    out = temporal.transform(
        ticket_frame(["", "", ""], created_at=["2026-11-23 23:30", "2026-11-24 00:30", "2026-11-24 12:00"])
    )
    hour = np.column_stack([_column(temporal, out, "hour_sin"), _column(temporal, out, "hour_cos")])
    assert np.linalg.norm(hour[0] - hour[1]) < np.linalg.norm(hour[0] - hour[2])
    np.testing.assert_allclose(np.linalg.norm(hour, axis=1), 1.0, rtol=1e-6)


def test_timestamps_in_other_zones_are_read_in_utc() -> None:
    temporal = TemporalFeatures()
    tokyo = pd.DataFrame({"created_at": pd.to_datetime(["2026-11-24 05:00+09:00"])})  # Monday 20:00 UTC
    utc = ticket_frame([""], created_at=["2026-11-23 20:00"])
    np.testing.assert_array_equal(temporal.transform(tokyo), temporal.transform(utc))


def test_temporal_rejects_unknown_country_and_non_timestamps() -> None:
    with pytest.raises(TemporalFeaturesError, match="holidays_country 'Atlantis'"):
        TemporalFeatures(holidays_country="Atlantis").fit(training_frame())
    with pytest.raises(TemporalFeaturesError, match="created_at"):
        TemporalFeatures().transform(pd.DataFrame({"created_at": ["not a date"]}))


# ---------------------------------------------------------------- metadata


def _onehot(metadata: MetadataFeatures, field: str) -> list[int]:
    """Indices of the one-hot columns of one field (not its missing flag or the urgency level)."""
    flags = {f"metadata__{field}_missing", "metadata__urgency_level", "metadata__urgency_level_missing"}
    names = list(metadata.get_feature_names_out())
    return [i for i, n in enumerate(names) if n.startswith(f"metadata__{field}_") and n not in flags]


def test_unseen_tier_is_accepted_as_all_zero_tier_one_hot() -> None:
    metadata = MetadataFeatures().fit(training_frame())
    tiers = _onehot(metadata, "customer_tier")
    assert len(tiers) == 3  # free, enterprise, pro
    out = metadata.transform(ticket_frame(["x", "x"], customer_tier=["platinum-plus", "Pro "]))
    np.testing.assert_array_equal(out[0, tiers], 0.0)
    assert _column(metadata, out, "customer_tier_missing")[0] == 0.0  # given, just unknown
    assert _column(metadata, out, "customer_tier_pro").tolist() == [0.0, 1.0]  # " Pro " normalised


def test_missing_values_and_absent_columns_set_the_missing_flags() -> None:
    metadata = MetadataFeatures().fit(training_frame())
    out = metadata.transform(pd.DataFrame({"text": ["a", "b"], "channel": ["email", "  N/A "]}))
    assert _column(metadata, out, "channel_missing").tolist() == [0.0, 1.0]
    assert _column(metadata, out, "channel_email").tolist() == [1.0, 0.0]
    np.testing.assert_array_equal(out[1, _onehot(metadata, "channel")], 0.0)
    for absent in ("customer_tier", "urgency"):
        assert _column(metadata, out, f"{absent}_missing").tolist() == [1.0, 1.0]
        np.testing.assert_array_equal(out[:, _onehot(metadata, absent)], 0.0)


def test_urgency_level_orders_common_words_and_flags_unknown_ones() -> None:
    metadata = MetadataFeatures().fit(training_frame())
    words = ["Low", "medium", "HIGH", "Critical", "p1", "P 4", "whenever", None]
    out = metadata.transform(ticket_frame(["x"] * len(words), urgency=words))
    level = _column(metadata, out, "urgency_level")
    unknown = _column(metadata, out, "urgency_level_missing")
    assert level[0] < level[1] < level[2] < level[3]
    assert level[4] == level[3] and level[5] == level[0]  # P1 ~ critical, P4 ~ low
    assert unknown.tolist() == [0, 0, 0, 0, 0, 0, 1, 1]
    assert all(0.0 <= v <= 1.0 for v in URGENCY_LEVELS.values())


def test_rare_and_unseen_values_share_the_infrequent_column_when_min_frequency_folds() -> None:
    frame = ticket_frame(["x"] * 5, channel=["email", "email", "email", "fax", None])
    metadata = MetadataFeatures(min_frequency=2).fit(frame)
    names = list(metadata.get_feature_names_out())
    infrequent = [n for n in names if n.startswith("metadata__channel_infrequent")]
    assert "metadata__channel_email" in names and "metadata__channel_fax" not in names
    assert len(infrequent) == 1
    out = metadata.transform(ticket_frame(["x"] * 3, channel=["fax", "pigeon", None]))
    assert out[:, names.index(infrequent[0])].tolist() == [1.0, 1.0, 0.0]  # missing is not "infrequent"


def test_normalise_trims_lowercases_and_maps_placeholders_to_missing() -> None:
    assert normalise("  Live Chat ") == normalise("live-chat") == "live_chat"
    assert normalise("") is None and normalise("N/A") is None and normalise(float("nan")) is None
    assert normalise(3) == "3"


def test_metadata_rejects_bad_min_frequency_and_an_empty_training_frame() -> None:
    with pytest.raises(MetadataFeaturesError, match="min_frequency"):
        MetadataFeatures(min_frequency=0).fit(training_frame())
    with pytest.raises(MetadataFeaturesError, match="empty"):
        MetadataFeatures().fit(training_frame().iloc[:0])


# ---------------------------------------------------------------- patterns

PATTERN_CASES = [
    ("urgency_words", "This is urgent, please fix it ASAP", "Please fix it when you have time"),
    ("urgency_words", "Das ist dringend, wir haben einen Ausfall", "Der Server läuft gut"),
    ("urgency_words", "Es urgente, el sistema está caído", "El sistema funciona"),
    ("urgency_words", "The website is down again", "Please slow down the emails"),
    ("escalation_words", "I want a refund or I will call my lawyer", "How do I update my address?"),
    ("escalation_words", "Quiero un reembolso, es inaceptable", "Quiero cambiar mi dirección"),
    ("escalation_words", "Je veux parler à un responsable, je demande le remboursement", "Merci beaucoup"),
    ("exclamations", "Fix this now!", "Fix this now."),
    ("exclamations_per_sentence", "Fix this now! Really!", "Fix this now. Really."),
    ("question_marks", "Where is my card?", "Where is my card."),
    ("capitals_ratio", "HELP ME NOW", "help me now"),
    ("all_caps_words", "WHY IS THIS BROKEN", "why is this broken"),
    ("error_codes", "The installer failed with error 1603", "I got an error when logging in"),
    ("error_codes", "Update failed: 0x80070005", "Update failed for the second time"),
    ("error_codes", "The API returns HTTP 500 since noon", "The API is slow since noon"),
    ("error_codes", "Sync stopped with ERR-1234", "Sync stopped with a message"),
    ("error_codes", "The printer shows E1234", "The printer shows nothing"),
    ("money_amounts", "I was charged $12.50 twice", "I was charged twice"),
    ("money_amounts", "The fee was 100 EUR and then 20 USD and €5", "The fee was high"),
    ("reference_numbers", "Where is my order #12345?", "I want to order 2 cards"),
    ("reference_numbers", "Please correct invoice INV-2024-001", "Please correct the invoice"),
    ("reference_numbers", "Payment for invoice 88812 bounced", "Payment for the invoice bounced"),
    ("urls", "See https://example.com/status for details", "See the status page for details"),
    ("emails", "Write to anna.meier@example.co.uk", "Write to Anna at the office"),
    ("phone_numbers", "Call me on +1 (555) 123-4567", "Card 1234 5678 9012 3456 expires 2027-01-15"),
    ("phone_numbers", "Meine Nummer ist +49 30 1234567", "Server 192.168.1.100 is unreachable"),
]


@pytest.mark.parametrize(("feature", "positive", "negative"), PATTERN_CASES)
def test_each_pattern_fires_on_its_example_and_not_on_the_near_miss(
    feature: str, positive: str, negative: str
) -> None:
    patterns = PatternFeatures()
    out = patterns.transform(ticket_frame([positive, negative]))
    value = _column(patterns, out, feature)
    assert value[0] > 0, f"{feature} missed {positive!r}"
    assert value[1] == 0, f"{feature} fired on {negative!r}"


def test_each_occurrence_counts_once() -> None:
    patterns = PatternFeatures()
    out = patterns.transform(ticket_frame(["Order #12345 and order #12346; error 0x80070005 or error 1603"]))
    assert _column(patterns, out, "reference_numbers")[0] == 2
    assert _column(patterns, out, "error_codes")[0] == 2


def test_length_features_see_the_whole_text_while_counts_read_the_window() -> None:
    text = "fine " * 3000 + "URGENT"  # the urgent word sits past the 10,000-character window
    patterns = PatternFeatures()
    out = patterns.transform(ticket_frame([text, "fine"]))
    assert _column(patterns, out, "urgency_words")[0] == 0
    assert PatternFeatures(max_chars=len(text)).transform(ticket_frame([text]))[0, 0] == 1
    length = _column(patterns, out, "char_length_log")
    np.testing.assert_allclose(length, np.log1p([len(text), 4]), rtol=1e-6)
    assert _column(patterns, out, "word_count_log")[0] == pytest.approx(np.log1p(3001), rel=1e-6)
