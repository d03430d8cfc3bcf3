"""PSI against values worked out by hand (the formula and binning rules are in monitoring/drift.py)."""

from __future__ import annotations

import pytest

from ticket_triage.monitoring.drift import EPSILON, WindowRow, compute_drift, psi, shares_in_bins


def test_psi_of_a_two_bin_shift() -> None:
    # (0.7 - 0.5) ln(0.7 / 0.5) + (0.3 - 0.5) ln(0.3 / 0.5) = 0.2 * 0.336472 + 0.2 * 0.510826
    assert psi([0.5, 0.5], [0.7, 0.3]) == pytest.approx(0.169460, abs=1e-6)


def test_identical_distributions_have_zero_psi() -> None:
    assert psi([0.1, 0.2, 0.7], [0.1, 0.2, 0.7]) == 0.0


def test_an_empty_bin_is_floored_at_epsilon() -> None:
    # bin 3 is empty in the reference: its share counts as 1e-4, so the term is 0.2499 * ln(0.25 / 1e-4)
    # = 0.2499 * 7.824046; bin 2 adds -0.25 * ln(0.5) = 0.173287; bin 1 adds nothing.
    assert EPSILON == 1e-4
    assert psi([0.5, 0.5, 0.0], [0.5, 0.25, 0.25]) == pytest.approx(2.128516, abs=1e-6)


def test_psi_is_symmetric_in_its_terms_but_refuses_different_bins() -> None:
    assert psi([0.5, 0.5], [0.7, 0.3]) == pytest.approx(psi([0.7, 0.3], [0.5, 0.5]))
    with pytest.raises(ValueError, match="bins differ"):
        psi([0.5, 0.5], [0.2, 0.3, 0.5])


def test_a_value_on_an_edge_falls_in_the_bin_above() -> None:
    assert shares_in_bins([0, 1, 1.5, 2, 3], [1, 2]).tolist() == [0.2, 0.4, 0.4]


def test_compute_drift_on_a_small_reference() -> None:
    reference = {
        "features": {"sentiment__polarity": {"edges": [0.0], "proportions": [0.5, 0.5]}},
        "predictions": {"category": {"billing": 0.5, "technical": 0.5}},
        "confidence": {"edges": [0.8], "proportions": [0.5, 0.5]},
    }
    # 7 of 10 at or above the edge 0.0, 7 of 10 predicted billing, 3 of 10 confidences >= 0.8.
    rows = [
        WindowRow(
            category="billing" if i < 7 else "technical",
            confidence=0.9 if i < 3 else 0.5,
            signals={"sentiment__polarity": 0.2 if i < 7 else -0.3},
        )
        for i in range(10)
    ]
    summary = compute_drift(reference, rows, "v1")
    assert summary.window == 10
    assert summary.features["sentiment__polarity"] == pytest.approx(0.169460, abs=1e-6)
    assert summary.prediction == pytest.approx(0.169460, abs=1e-6)
    assert summary.confidence == pytest.approx(0.169460, abs=1e-6)
    assert summary.over == {"0.1": 1, "0.25": 0}


def test_too_small_a_window_reports_nothing() -> None:
    summary = compute_drift(
        {"features": {"x": {"edges": [0.0], "proportions": [0.5, 0.5]}}}, [], "v1", min_rows=5
    )
    assert summary.features == {} and summary.prediction is None and summary.window == 0


def test_embedding_reference_comes_from_vectors_new_tickets_get() -> None:
    """Training rows hold cross-fitted vectors (fold encoders); serving uses the final encoder, as the
    validation rows did. Bins from the training rows would make every live window look drifted."""
    import numpy as np

    from ticket_triage.features.base import FeatureSet
    from ticket_triage.monitoring.reference import build_reference

    rng = np.random.default_rng(1)

    def featureset(scale: float, n: int) -> FeatureSet:
        emb = rng.normal(size=(n, 8)).astype(np.float32)
        emb[:, 0] *= scale
        return FeatureSet(
            texts=[""] * n,
            dense=emb,
            dense_names=[f"embeddings__{i}" for i in range(8)],
            blocks={"embeddings": slice(0, 8)},
        )

    train, validation = featureset(10.0, 400), featureset(1.0, 200)
    predicted = {"category": np.zeros(200, dtype=int)}
    ref, _ = build_reference(
        train, predicted, {"category": ["a", "b"]}, 0, validation=validation, confidence=np.full(200, 0.9)
    )
    edges = np.asarray(ref["features"]["embeddings_pc1"]["edges"])
    assert np.abs(edges).max() < 3.0  # validation spread (sd 1), not the training rows' (sd 10)
