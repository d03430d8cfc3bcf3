"""Typed view of ``features/features.toml``: which families are on and their parameters.

The sections are not written out here: each family declares its own (features/registry.py) and the
schema is generated from those declarations, so a family registered after this module was imported
(a plugin, a test's toy family) is configurable too.
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ModelWrapValidatorHandler, create_model, model_validator

from ticket_triage.features import registry
from ticket_triage.features.registry import FamilyConfig, FamilySpec

#: Where the section classes live now, under the names bundles pickled before they moved beside their
#: family; unpickling such a bundle looks them up here.
_MOVED = {
    "_Family": "ticket_triage.features.registry:FamilyConfig",
    "TfidfConfig": "ticket_triage.features.tfidf:TfidfConfig",
    "EmbeddingsConfig": "ticket_triage.features.embeddings:EmbeddingsConfig",
    "EntitiesConfig": "ticket_triage.features.entities:EntitiesConfig",
    "TopicsConfig": "ticket_triage.features.topics:TopicsConfig",
    "TemporalConfig": "ticket_triage.features.temporal:TemporalConfig",
    "MetadataConfig": "ticket_triage.features.metadata:MetadataConfig",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        module, attribute = _MOVED[name].split(":")
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@cache
def _sections_model(specs: tuple[FamilySpec, ...]) -> type[BaseModel]:
    """One field per family, its section class with its defaults; any other top-level key is rejected."""
    fields: dict[str, Any] = {spec.name: (spec.config, Field(default_factory=spec.config)) for spec in specs}
    return create_model("FeatureConfig", __config__=ConfigDict(extra="forbid"), **fields)


class FeatureConfig(BaseModel):
    """All registered feature families; a missing section means that family with its defaults.

    Sections are read as attributes (``config.tfidf``) or with ``section(name)``.
    """

    # The sections are stored as extras; which names and values are allowed is checked below.
    model_config = ConfigDict(extra="allow")

    @model_validator(mode="wrap")
    @classmethod
    def _sections(cls, data: Any, handler: ModelWrapValidatorHandler[FeatureConfig]) -> FeatureConfig:
        if isinstance(data, Mapping):
            checked = _sections_model(registry.families()).model_validate(dict(data))
            data = {name: getattr(checked, name) for name in type(checked).model_fields}
        return handler(data)

    def section(self, name: str) -> FamilyConfig:
        """The family's section; a family registered after this config was built gets its defaults."""
        value = (self.__pydantic_extra__ or {}).get(name)
        return value if isinstance(value, FamilyConfig) else registry.family(name).config()

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Bundles pickled before the sections were generated hold them as fields, in ``__dict__``."""
        if state.get("__dict__"):
            extra = {**state["__dict__"], **(state.get("__pydantic_extra__") or {})}
            state = {**state, "__dict__": {}, "__pydantic_extra__": extra}
        super().__setstate__(state)

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
