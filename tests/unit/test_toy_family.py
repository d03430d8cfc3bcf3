"""A family declared in one module (tests/unit/toy_family.py) is computed, configurable and watched for drift,
with no file of the package touched."""

from __future__ import annotations

import importlib
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from ticket_triage.features import registry
from ticket_triage.features.config import FeatureConfig
from ticket_triage.features.pipeline import FeaturePipeline
from ticket_triage.monitoring.drift import SignalExtractor, WindowRow, compute_drift
from ticket_triage.monitoring.reference import build_reference

# The built-in families this test keeps on: a cheap one, to show the toy columns come after them.
KEPT = "patterns"
TEXTS = [f"Order {i} arrived broken{'!' * (i % 4)} Please send a new one{'?' * (i % 3)}" for i in range(40)]


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


def _toml(toy_section: str) -> str:
    """A features.toml with every built-in family but one switched off, plus the given [toy] lines."""
    off = "".join(f"[{name}]\nenabled = false\n\n" for name in registry.BUILTIN if name != KEPT)
    return f"{off}[toy]\n{toy_section}\n"


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The toy family registered for this test only, so other tests see the built-in families alone."""
    registry.families()  # built-ins register into the lasting registry before it is swapped for a copy
    monkeypatch.setattr(registry, "_registered", dict(registry._registered))
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.delitem(sys.modules, "toy_family", raising=False)
    yield importlib.import_module("toy_family")
    sys.modules.pop("toy_family", None)


def test_an_unregistered_family_is_not_configurable() -> None:
    assert "toy" not in [spec.name for spec in registry.families()]
    with pytest.raises(ValidationError, match="toy"):
        FeatureConfig.model_validate({"toy": {"marker": "?"}})


def test_the_pipeline_computes_the_registered_family(toy: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "features.toml"
    path.write_text(_toml("enabled = true"))
    pipeline = FeaturePipeline(FeatureConfig.from_toml(path), progress=False)
    features = pipeline.fit_transform(_frame(TEXTS))
    assert list(features.blocks) == [KEPT, "toy"]  # after the built-in families, as registered
    assert features.dense_names[features.blocks["toy"]] == ["toy__marks", "toy__words"]
    marks = features.block("toy")[:, 0]
    np.testing.assert_array_equal(marks, [t.count("!") for t in TEXTS])
    again = pickle.loads(pickle.dumps(pipeline)).transform(_frame(TEXTS[:5]))
    np.testing.assert_array_equal(again.block("toy"), features.block("toy")[:5])


def test_the_toml_section_reaches_the_transformer(toy: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "features.toml"
    path.write_text(_toml('marker = "?"'))
    pipeline = FeaturePipeline(FeatureConfig.from_toml(path), progress=False)
    features = pipeline.fit_transform(_frame(TEXTS))
    assert pipeline.family("toy").marker == "?"
    np.testing.assert_array_equal(features.block("toy")[:, 0], [t.count("?") for t in TEXTS])
    path.write_text(_toml("enabled = false"))
    off = FeaturePipeline(FeatureConfig.from_toml(path), progress=False).fit_transform(_frame(TEXTS))
    assert "toy" not in off.blocks


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ('marker = ""', r"toy\.marker\n.*at least 1 character"),
        ('marker = "?!"', r"toy\.marker\n.*at most 1 character"),
        ("colour = 3", r"toy\.colour\n.*Extra inputs are not permitted"),
    ],
)
def test_a_bad_toml_section_is_rejected_naming_the_key(
    toy: ModuleType, tmp_path: Path, section: str, message: str
) -> None:
    path = tmp_path / "features.toml"
    path.write_text(_toml(section))
    with pytest.raises(ValueError, match=rf"feature config {path} is invalid") as error:
        FeatureConfig.from_toml(path)
    assert error.match(message)


def test_drift_watches_the_column_the_family_names(toy: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "features.toml"
    path.write_text(_toml("enabled = true"))
    pipeline = FeaturePipeline(FeatureConfig.from_toml(path), progress=False)
    train = pipeline.fit_transform(_frame(TEXTS))
    predicted = {"category": np.arange(len(TEXTS)) % 2}
    reference, pca = build_reference(train, predicted, {"category": ["a", "b"]}, seed=0)
    assert "toy__marks" in reference["features"]
    assert "toy__words" not in reference["features"]  # the family watches only what it names

    extractor = SignalExtractor(reference, pca)

    def window(texts: list[str]) -> list[WindowRow]:
        signals = extractor.extract(pipeline.transform(_frame(texts)))
        return [WindowRow("a", 0.9, row) for row in signals]

    same = window(TEXTS)
    assert [row.signals["toy__marks"] for row in same] == [t.count("!") for t in TEXTS]
    shouting = window([t.replace("broken", "broken!!!!!!") for t in TEXTS])
    assert compute_drift(reference, same, "v1").features["toy__marks"] == pytest.approx(0.0, abs=1e-9)
    assert compute_drift(reference, shouting, "v1").features["toy__marks"] > 0.25
