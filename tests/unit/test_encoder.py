"""The fine-tuned sentence encoder: heads that learn, cross-fitting that does not leak, one pass for both."""

from __future__ import annotations

import io
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from ticket_triage.data.class_balance import class_weights, sample_weights
from ticket_triage.features.base import FeatureSet
from ticket_triage.features.embeddings import SentenceEmbeddings
from ticket_triage.features.encoder_tuning import TunedEncoder, TuningParams
from ticket_triage.models.members import RandomForestMember
from ticket_triage.models.out_of_fold import out_of_fold_probas

SEED = 7
INTENTS = {
    0: ["my card has not arrived yet", "where is my new card", "the card still has not come in the post"],
    1: ["I want my money back", "please refund this purchase", "how do I get a refund for this"],
    2: ["I forgot my password", "cannot log in to the app", "how can I reset my login password"],
}
HELD_OUT = {
    0: ["when will my card be delivered", "still waiting for the card to arrive"],
    1: ["can I have a refund please", "return my money for this order"],
    2: ["reset password for my login", "I can not log in, forgot the password"],
}
PREFIXES = ["", "hello, ", "hi there, ", "excuse me, ", "quick question: ", "help! ", "good morning, "]
SUFFIXES = ["", " please", " thanks", " asap", " today", " thank you", "?", "!", " :("]


def _texts(phrases: dict[int, list[str]], per_phrase: int, seed: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for label, options in phrases.items():
        for phrase in options:
            for _ in range(per_phrase):
                texts.append(f"{rng.choice(PREFIXES)}{phrase}{rng.choice(SUFFIXES)}")
                labels.append(label)
    return texts, np.array(labels)


def _params(**overrides: object) -> TuningParams:
    values: dict[str, object] = {"epochs": 2, "batch_size": 16, "learning_rate": 1e-4, "seed": SEED}
    values.update(overrides)
    return TuningParams(progress=False, **values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tuned() -> TunedEncoder:
    texts, y = _texts(INTENTS, 12, SEED)  # 108 texts
    return TunedEncoder(32, {"category": 3}).fine_tune(texts, {"category": y}, _params(), "test")


def test_the_head_learns_intents_that_generalise_to_paraphrases(tuned: TunedEncoder) -> None:
    texts, y = _texts(HELD_OUT, 4, SEED + 1)
    vectors, heads = tuned.encode(texts, precision="fp32")
    assert vectors.shape == (len(texts), 384)
    probs = heads["category"]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert np.mean(probs.argmax(axis=1) == y) > 0.6  # chance is 1/3


def test_encode_returns_rows_in_input_order(tuned: TunedEncoder) -> None:
    """Encoding sorts by length internally; row i must still be text i."""
    texts, _ = _texts(HELD_OUT, 2, SEED + 2)
    _, forward = tuned.encode(texts, precision="fp32")
    _, backward = tuned.encode(texts[::-1], precision="fp32")
    np.testing.assert_allclose(backward["category"], forward["category"][::-1], atol=1e-5)


def test_a_tuned_encoder_survives_a_pickle_round_trip(tuned: TunedEncoder) -> None:
    texts, _ = _texts(HELD_OUT, 1, SEED + 3)
    buffer = io.BytesIO()
    joblib.dump(tuned, buffer)
    buffer.seek(0)
    restored = joblib.load(buffer)
    a, b = tuned.encode(texts, precision="fp32"), restored.encode(texts, precision="fp32")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1]["category"], b[1]["category"])


def test_fine_tuning_is_deterministic_for_a_seed() -> None:
    texts, y = _texts(INTENTS, 3, SEED)
    runs = [
        TunedEncoder(24, {"category": 3})
        .fine_tune(texts, {"category": y}, _params(epochs=1), "test")
        .encode(texts[:5], precision="fp32")[1]["category"]
        for _ in range(2)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])


def test_rows_without_a_label_for_a_target_are_skipped_by_that_head() -> None:
    texts, y = _texts(INTENTS, 3, SEED)
    priority = np.where(np.arange(len(y)) % 2 == 0, y % 2, -1)  # half the rows have no priority
    encoder = TunedEncoder(24, {"category": 3, "priority": 2}).fine_tune(
        texts, {"category": y, "priority": priority}, _params(epochs=1), "test"
    )
    _, heads = encoder.encode(texts[:4], precision="fp32")
    assert heads["category"].shape == (4, 3) and heads["priority"].shape == (4, 2)


@pytest.mark.parametrize(
    ("overrides", "message"), [({"epochs": 0}, "epochs"), ({"precision": "auto"}, "resolved")]
)
def test_tuning_rejects_bad_settings(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _params(**overrides)


def test_the_frozen_encoder_matches_sentence_transformers() -> None:
    """Mean pooling + normalisation is exactly what the packaged all-MiniLM-L6-v2 pipeline computes."""
    from sentence_transformers import SentenceTransformer

    from ticket_triage.features.encoder_tuning import default_model_path

    texts, _ = _texts(HELD_OUT, 1, SEED)
    frame = pd.DataFrame({"text": texts})
    ours = SentenceEmbeddings(precision="fp32", fine_tune=False).fit(frame).transform(frame)
    reference = SentenceTransformer(default_model_path(), device="cpu").encode(
        texts, normalize_embeddings=True
    )
    cosine = (ours * reference).sum(axis=1)
    assert cosine.min() > 0.9999


def _memorise_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Unrelated made-up texts with random labels: a model can only get them right by remembering them."""
    rng = np.random.default_rng(seed)
    words = ["".join(rng.choice(list("bcdfghjklmnpqrstvwxz"), size=6)) for _ in range(n * 3)]
    texts = [" ".join(words[3 * i : 3 * i + 3]) for i in range(n)]
    return pd.DataFrame({"text": texts}), rng.integers(0, 3, size=n)


def test_cross_fitted_scores_come_from_encoders_that_never_saw_the_row() -> None:
    """On labels that are pure noise, the final encoder has memorised its training rows while the
    cross-fitted scores of the same rows stay near chance: the members never train on leaked scores."""
    frame, y = _memorise_frame(90, SEED)
    family = SentenceEmbeddings(
        precision="fp32",
        max_seq_length=24,
        folds=3,
        epochs=8,
        train_batch_size=8,
        learning_rate=3e-4,
        class_weight_power=0.0,
        threads=1,
        random_state=SEED,
        progress=False,
    )
    cross_fitted = family.fit_encode(frame, {"category": (y, 3)})
    in_sample = family.encode(frame)
    oof_accuracy = np.mean(cross_fitted.heads["category"].argmax(axis=1) == y)
    final_accuracy = np.mean(in_sample.heads["category"].argmax(axis=1) == y)
    assert set(family.cv_seconds_) == {"on all training rows", "fold 1/3", "fold 2/3", "fold 3/3"}
    assert final_accuracy > 0.8, final_accuracy
    assert oof_accuracy < 0.55, oof_accuracy
    assert not np.allclose(cross_fitted.embeddings, in_sample.embeddings, atol=1e-3)


def test_onnx_pass_gives_the_same_vectors_and_scores(tuned: TunedEncoder, tmp_path: Path) -> None:
    texts, _ = _texts(HELD_OUT, 2, SEED + 4)
    frame = pd.DataFrame({"text": texts})
    family = SentenceEmbeddings(precision="fp32", max_seq_length=32)
    family.tuned_ = tuned
    torch_out = family.encode(frame)
    onnx_out = family.onnx_encode(tmp_path)(frame)
    assert (torch_out.embeddings * onnx_out.embeddings).sum(axis=1).min() > 0.9999
    np.testing.assert_allclose(onnx_out.heads["category"], torch_out.heads["category"], atol=1e-4)


def test_out_of_fold_probabilities_never_come_from_a_model_that_saw_the_row() -> None:
    """A forest of fully grown trees remembers noise labels: right in-sample, at chance out of fold."""
    rng = np.random.default_rng(SEED)
    X = rng.normal(size=(300, 8)).astype(np.float32)
    y = rng.integers(0, 3, size=300)
    features = FeatureSet(texts=[""] * 300, dense=X, dense_names=[f"f{i}" for i in range(8)])
    forest = RandomForestMember(trees=30, threads=1, seed=SEED).fit(features, y, 3)
    result = out_of_fold_probas({"random_forest": forest}, features, y, 3, folds=3, seed=SEED)
    assert np.mean(forest.predict_proba(features).argmax(axis=1) == y) > 0.95
    assert np.mean(result.probas["random_forest"].argmax(axis=1) == y) < 0.5
    assert "random_forest" in result.seconds
    # One fold copy per fold is kept, to stand in for the member if it gets no weight.
    stand_in = result.copies["random_forest"]
    assert len(stand_in.copies) == 3
    np.testing.assert_allclose(stand_in.predict_proba(features).sum(axis=1), 1.0, atol=1e-9)


def test_out_of_fold_refits_cope_with_a_class_too_rare_for_every_fold() -> None:
    rng = np.random.default_rng(SEED)
    y = np.array([0, 1] * 40 + [2, 2])
    X = (rng.normal(size=(len(y), 4)) + y[:, None]).astype(np.float32)
    features = FeatureSet(texts=[""] * len(y), dense=X, dense_names=list("abcd"))
    forest = RandomForestMember(trees=10, threads=1, seed=SEED).fit(features, y, 3)
    result = out_of_fold_probas({"random_forest": forest}, features, y, 3, folds=3, seed=SEED)
    assert result.probas["random_forest"].shape == (len(y), 3)
    np.testing.assert_allclose(result.probas["random_forest"].sum(axis=1), 1.0, atol=1e-9)
    stand_in = result.copies["random_forest"].predict_proba(features)
    assert stand_in.shape == (len(y), 3)
    np.testing.assert_allclose(stand_in.sum(axis=1), 1.0, atol=1e-9)


def test_class_weights_balance_rare_classes_with_mean_one() -> None:
    codes = np.array([0] * 90 + [1] * 10 + [-1] * 5)
    balanced = class_weights(codes, 3, 1.0)
    assert balanced[1] == pytest.approx(9 * balanced[0])
    assert balanced[2] == 1.0  # absent class: untouched
    rows = sample_weights(codes[codes >= 0], 3, 0.5)
    assert rows is not None and rows.mean() == pytest.approx(1.0)
    assert rows[-1] == pytest.approx(3 * rows[0])  # sqrt of 9
    assert sample_weights(codes[codes >= 0], 3, 0.0) is None


def test_fine_tunes_in_worker_processes_match_the_same_fits_run_here() -> None:
    """The folds run side by side in spawned workers; that must not change a single number."""
    from ticket_triage.features.tuning_jobs import TuningJob, run_jobs

    texts, y = _texts(INTENTS, 2, SEED)
    held_out, _ = _texts(HELD_OUT, 1, SEED)
    jobs = [
        TuningJob("all", texts, {"category": y}, None),
        TuningJob("half", texts[::2], {"category": y[::2]}, held_out),
    ]
    kwargs = {"head_sizes": {"category": 3}, "max_length": 24, "params": _params(epochs=1), "batch_size": 8}
    here = run_jobs(jobs, cores=1, **kwargs)
    there = run_jobs(jobs, cores=2, **kwargs)
    np.testing.assert_array_equal(here["half"].vectors, there["half"].vectors)
    np.testing.assert_array_equal(here["half"].heads["category"], there["half"].heads["category"])
    probe = held_out[:3]
    np.testing.assert_array_equal(
        here["all"].encoder.encode(probe, precision="fp32")[0],
        there["all"].encoder.encode(probe, precision="fp32")[0],
    )
