"""The family registry: one declaration per family feeds the config schema, the pipeline and drift."""

from __future__ import annotations

import base64
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from ticket_triage.features import registry
from ticket_triage.features.base import FeatureSet
from ticket_triage.features.config import FeatureConfig
from ticket_triage.features.pipeline import FeaturePipeline
from ticket_triage.features.registry import FamilyConfig, FamilySpec
from ticket_triage.monitoring.reference import build_reference

REPO = Path(__file__).resolve().parents[2]
#: What the config below was validated from.
OLD_RAW = {
    "tfidf": {"svd_components": 8, "min_df": 1},
    "embeddings": {"fine_tune": False, "batch_size": 16},
    "topics": {"n_topics": 3, "max_features": 200},
    "temporal": {"holidays_country": "GB"},
}
#: ``pickle.dumps(FeatureConfig.model_validate(OLD_RAW))`` by commit 88efea7, when every section was a
#: declared field of FeatureConfig and the section classes lived in features/config.py.
OLD_PICKLE = base64.b64decode(
    "gASVAAQAAAAAAACMHXRpY2tldF90cmlhZ2UuZmVhdHVyZXMuY29uZmlnlIwNRmVhdHVyZUNvbmZpZ5STlCmBlH2UKIwIX19k"
    "aWN0X1+UfZQojAV0ZmlkZpRoAIwLVGZpZGZDb25maWeUk5QpgZR9lChoBX2UKIwHZW5hYmxlZJSIjA53b3JkX25ncmFtX21h"
    "eJRLAowOY2hhcl9uZ3JhbV9taW6USwKMDmNoYXJfbmdyYW1fbWF4lEsFjBFtYXhfZmVhdHVyZXNfd29yZJRNUMOMEW1heF9m"
    "ZWF0dXJlc19jaGFylE1Qw4wGbWluX2RmlEsBjAxzdWJsaW5lYXJfdGaUiIwOc3ZkX2NvbXBvbmVudHOUSwh1jBJfX3B5ZGFu"
    "dGljX2V4dHJhX1+UTowXX19weWRhbnRpY19maWVsZHNfc2V0X1+Uj5QoaBVoE5CMFF9fcHlkYW50aWNfcHJpdmF0ZV9flE51"
    "YowKZW1iZWRkaW5nc5RoAIwQRW1iZWRkaW5nc0NvbmZpZ5STlCmBlH2UKGgFfZQoaA2IjApiYXRjaF9zaXpllEsQjA5tYXhf"
    "c2VxX2xlbmd0aJRLgIwJbm9ybWFsaXpllIiMCXByZWNpc2lvbpSMBGF1dG+UjAlmaW5lX3R1bmWUiXVoFk5oF4+UKGggaCWQ"
    "aBlOdWKMCGVudGl0aWVzlGgAjA5FbnRpdGllc0NvbmZpZ5STlCmBlH2UKGgFfZQoaA2IaCBLQIwJbWF4X2NoYXJzlE2IE3Vo"
    "Fk5oF4+UaBlOdWKMCXNlbnRpbWVudJRoAIwHX0ZhbWlseZSTlCmBlH2UKGgFfZRoDYhzaBZOaBePlGgZTnVijAZ0b3BpY3OU"
    "aACMDFRvcGljc0NvbmZpZ5STlCmBlH2UKGgFfZQoaA2IjAhuX3RvcGljc5RLA4wMbWF4X2ZlYXR1cmVzlEvIjAhtYXhfaXRl"
    "cpRLCowSa2V5d29yZHNfcGVyX3RvcGljlEsKdWgWTmgXj5QoaD1oPJBoGU51YowLcmVhZGFiaWxpdHmUaDEpgZR9lChoBX2U"
    "aA2Ic2gWTmgXj5RoGU51YowIdGVtcG9yYWyUaACMDlRlbXBvcmFsQ29uZmlnlJOUKYGUfZQoaAV9lChoDYiMEGhvbGlkYXlz"
    "X2NvdW50cnmUjAJHQpR1aBZOaBePlChoTJBoGU51YowIbWV0YWRhdGGUaACMDk1ldGFkYXRhQ29uZmlnlJOUKYGUfZQoaAV9"
    "lChoDYiMDW1pbl9mcmVxdWVuY3mUSwF1aBZOaBePlGgZTnVijAhwYXR0ZXJuc5RoMSmBlH2UKGgFfZRoDYhzaBZOaBePlGgZ"
    "TnVidWgWTmgXj5QoaDZoRmgHaBqQaBlOdWIu"
)
LIGHT = {"embeddings": {"enabled": False}, "entities": {"enabled": False}, "topics": {"enabled": False}}
TEXTS = [f"My card {i} was charged twice!! please refund order #{1000 + i}" for i in range(20)] + [
    f"I cannot log in to my account since update {i}. Password reset fails." for i in range(20)
]


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


def _light_features() -> FeatureSet:
    return FeaturePipeline(FeatureConfig.model_validate(LIGHT), progress=False).fit_transform(_frame(TEXTS))


def test_builtin_families_keep_their_order_in_the_config_and_the_columns() -> None:
    assert [spec.name for spec in registry.families()] == list(registry.BUILTIN)
    assert list(FeatureConfig().model_dump()) == list(registry.BUILTIN)
    features = _light_features()
    order = [name.removesuffix("_svd") for name in features.blocks]
    assert order == [name for name in registry.BUILTIN if name not in LIGHT]


def test_the_shipped_features_toml_sets_exactly_the_declared_defaults() -> None:
    assert FeatureConfig.from_toml(REPO / "features" / "features.toml") == FeatureConfig()


def test_an_unknown_family_or_key_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"tfidff\n.*Extra inputs are not permitted"):
        FeatureConfig.model_validate({"tfidff": {}})
    with pytest.raises(ValidationError, match=r"sentiment\.max_chars\n.*Extra inputs"):
        FeatureConfig.model_validate({"sentiment": {"max_chars": 100}})
    with pytest.raises(ValidationError, match=r"embeddings\.precision"):
        FeatureConfig.model_validate({"embeddings": {"precision": "fp16"}})


def test_a_config_pickled_before_the_sections_were_generated_still_loads() -> None:
    old = pickle.loads(OLD_PICKLE)
    assert isinstance(old, FeatureConfig)
    assert old.model_dump() == FeatureConfig.model_validate(OLD_RAW).model_dump()
    assert old.section("temporal").holidays_country == "GB" and old.tfidf.svd_components == 8
    assert old == FeatureConfig.model_validate(OLD_RAW)
    assert pickle.loads(pickle.dumps(old)) == old
    # Training copies the config with one section replaced; on an old one that must take effect.
    temporal = old.section("temporal").model_copy(update={"enabled": False})
    assert not old.model_copy(update={"temporal": temporal}).section("temporal").enabled
    assert old.section("temporal").enabled
    light = FeatureConfig.model_validate(old.model_dump() | LIGHT)
    features = FeaturePipeline(light, progress=False).fit_transform(_frame(TEXTS))
    assert features.blocks["tfidf_svd"].stop - features.blocks["tfidf_svd"].start == 8


def test_drift_watches_what_each_family_declares() -> None:
    features = _light_features()
    predicted = {"category": np.arange(len(TEXTS)) % 2}
    watched = set(build_reference(features, predicted, {"category": ["a", "b"]}, seed=0)[0]["features"])
    assert watched == {
        name for spec in registry.families() for name in features.dense_names if spec.watches(name)
    }
    assert {"sentiment__polarity", "sentiment__subjectivity"} <= watched
    assert {n for n in watched if n.startswith("readability__")} == {
        n for n in features.dense_names if n.startswith("readability__flesch")
    }
    assert not any(n.startswith(("metadata__", "tfidf_svd__")) for n in watched)


class _Other:
    """A transformer from another module than the family it claims."""


def test_registering_a_clashing_family_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    registry.families()
    monkeypatch.setattr(registry, "_registered", dict(registry._registered))
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(FamilySpec("tfidf", _Other))
    with pytest.raises(ValueError, match="lower-case"):
        registry.register(FamilySpec("Toy-Family", _Other))
    with pytest.raises(ValueError, match="'embeddings' already does"):
        registry.register(FamilySpec("toy", _Other, monitored_components=3))
    with pytest.raises(re.error):
        registry.register(FamilySpec("toy", _Other, monitored="toy__(marks"))
    with pytest.raises(TypeError, match="FamilyConfig"):
        registry.register(FamilySpec("toy", _Other, config=FeatureConfig))  # type: ignore[arg-type]
    registry.register(FamilySpec("toy", _Other, FamilyConfig))
    assert [spec.name for spec in registry.families()][-1] == "toy"


def test_a_disabled_family_loads_no_model() -> None:
    """The schema needs every family's declaration; spaCy, torch and TextBlob wait until their family runs."""
    code = (
        "import sys, pandas as pd\n"
        "from ticket_triage.features.config import FeatureConfig\n"
        "from ticket_triage.features.pipeline import FeaturePipeline\n"
        "off = {'enabled': False}\n"
        "cfg = FeatureConfig.model_validate({'embeddings': off, 'entities': off, 'sentiment': off})\n"
        "texts = ['card lost, please block it', 'refund my order twice charged'] * 10\n"
        "FeaturePipeline(cfg, progress=False).fit_transform(pd.DataFrame({'text': texts}))\n"
        "print(sorted(m for m in ('torch', 'spacy', 'transformers', 'textblob') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
