"""Typed view of ``features/features.toml``: which families are on and their parameters."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Family(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True


class TfidfConfig(_Family):
    word_ngram_max: int = Field(2, ge=1, le=3)
    char_ngram_min: int = Field(2, ge=1)
    char_ngram_max: int = Field(5, ge=1, le=8)
    max_features_word: int = Field(50000, ge=100)
    max_features_char: int = Field(50000, ge=100)
    min_df: int = Field(2, ge=1)
    sublinear_tf: bool = True
    svd_components: int = Field(128, ge=0)


class EmbeddingsConfig(_Family):
    batch_size: int = Field(64, ge=1)
    max_seq_length: int = Field(128, ge=8, le=512)
    normalize: bool = True
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    fine_tune: bool = True


class EntitiesConfig(_Family):
    batch_size: int = Field(64, ge=1)
    max_chars: int = Field(5000, ge=100)


class TopicsConfig(_Family):
    n_topics: int = Field(20, ge=2)
    max_features: int = Field(5000, ge=100)
    max_iter: int = Field(10, ge=1)
    keywords_per_topic: int = Field(10, ge=1)


class TemporalConfig(_Family):
    holidays_country: str = "US"


class MetadataConfig(_Family):
    min_frequency: int = Field(1, ge=1)


class FeatureConfig(BaseModel):
    """All feature families; a missing section means that family with its defaults."""

    model_config = ConfigDict(extra="forbid")
    tfidf: TfidfConfig = TfidfConfig()
    embeddings: EmbeddingsConfig = EmbeddingsConfig()
    entities: EntitiesConfig = EntitiesConfig()
    sentiment: _Family = _Family()
    topics: TopicsConfig = TopicsConfig()
    readability: _Family = _Family()
    temporal: TemporalConfig = TemporalConfig()
    metadata: MetadataConfig = MetadataConfig()
    patterns: _Family = _Family()

    @classmethod
    def from_toml(cls, path: Path) -> FeatureConfig:
        """Read and validate a feature config file; errors name the file."""
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ValueError(f"feature config {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"feature config {path} is not valid TOML: {exc}") from exc
        try:
            return cls.model_validate(raw)
        except Exception as exc:
            raise ValueError(f"feature config {path} is invalid: {exc}") from exc
