"""The assembled feature pipeline: config switches, block layout, sharing, pickling."""

from __future__ import annotations

import pickle
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest

from ticket_triage.features.config import FeatureConfig
from ticket_triage.features.pipeline import FeaturePipeline
from ticket_triage.features.registry import families

LIGHT = {"embeddings": {"enabled": False}, "entities": {"enabled": False}, "topics": {"enabled": False}}


def _frame(texts: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "text": texts,
            "created_at": pd.to_datetime(["2026-03-02T10:00:00Z"] * len(texts), utc=True),
            "channel": ["email"] * len(texts),
            "customer_tier": ["premium"] * len(texts),
            "urgency": [None] * len(texts),
        }
    )


TEXTS = [f"My card {i} was charged twice, please refund order #{1000 + i}" for i in range(20)] + [
    f"I cannot log in to my account since update {i}, password reset fails" for i in range(20)
]


def test_blocks_tile_the_dense_matrix_and_names_match() -> None:
    pipeline = FeaturePipeline(
        FeatureConfig.model_validate(LIGHT | {"tfidf": {"svd_components": 8}}), progress=False
    )
    features = pipeline.fit_transform(_frame(TEXTS))
    assert features.dense.shape == (40, len(features.dense_names))
    assert list(pipeline.get_feature_names_out()) == features.dense_names
    covered = sorted((s.start, s.stop) for s in features.blocks.values())
    assert covered[0][0] == 0 and covered[-1][1] == features.dense.shape[1]
    assert all(a[1] == b[0] for a, b in pairwise(covered))
    assert set(features.blocks) == {
        "tfidf_svd",
        "sentiment",
        "readability",
        "temporal",
        "metadata",
        "patterns",
    }
    assert features.sparse is not None and features.sparse.shape[1] == len(features.sparse_names)


def test_disabled_family_is_absent_and_all_disabled_is_an_error() -> None:
    cfg = FeatureConfig.model_validate(LIGHT | {"patterns": {"enabled": False}})
    features = FeaturePipeline(cfg, progress=False).fit_transform(_frame(TEXTS))
    assert "patterns" not in features.blocks
    assert not any(n.startswith("patterns__") for n in features.dense_names)
    off = {spec.name: {"enabled": False} for spec in families()}
    with pytest.raises(ValueError, match="enables no feature family"):
        FeaturePipeline(FeatureConfig.model_validate(off), progress=False).fit_transform(_frame(TEXTS))


def test_transform_after_pickle_equals_fit_transform() -> None:
    pipeline = FeaturePipeline(FeatureConfig.model_validate(LIGHT), progress=False)
    fitted = pipeline.fit_transform(_frame(TEXTS))
    again = pickle.loads(pickle.dumps(pipeline)).transform(_frame(TEXTS))
    np.testing.assert_allclose(again.dense, fitted.dense, rtol=1e-5, atol=1e-5)
    assert (again.sparse != fitted.sparse).nnz == 0


def test_subset_keeps_rows_aligned() -> None:
    features = FeaturePipeline(FeatureConfig.model_validate(LIGHT), progress=False).fit_transform(
        _frame(TEXTS)
    )
    part = features.subset(np.array([39, 0]))
    assert part.texts == [TEXTS[39], TEXTS[0]]
    np.testing.assert_array_equal(part.dense[0], features.dense[39])
    np.testing.assert_array_equal(part.sparse.toarray()[1], features.sparse.toarray()[0])


def test_feature_config_file_errors_name_the_file(tmp_path) -> None:
    bad = tmp_path / "features.toml"
    bad.write_text("[tfidf]\nword_ngram_max = 9\n")
    with pytest.raises(ValueError, match=str(bad)):
        FeatureConfig.from_toml(bad)
    bad.write_text("[tfidf\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        FeatureConfig.from_toml(bad)
    with pytest.raises(ValueError, match="does not exist"):
        FeatureConfig.from_toml(tmp_path / "missing.toml")


def test_whitespace_runs_do_not_move_any_feature() -> None:
    pipeline = FeaturePipeline(FeatureConfig.model_validate(LIGHT), progress=False)
    plain = pipeline.fit_transform(_frame(TEXTS))
    messy = pipeline.transform(_frame(["  " + t.replace(" ", "   ") + " \n\n\t" for t in TEXTS]))
    np.testing.assert_array_equal(messy.dense, plain.dense)
    assert messy.texts == plain.texts
