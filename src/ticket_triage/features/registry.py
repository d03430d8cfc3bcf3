"""Where feature families declare themselves: name, transformer, config section and drift-watched outputs.

Each family module ends with ``register(FamilySpec(...))``; the pipeline's family table, the sections of
``FeatureConfig`` and the set drift monitoring watches are all read from here, so a family is declared once.
Declaring must stay cheap: a family module imports its heavy model (spaCy, torch) inside its methods, so
listing the families never loads a model that the config switches off.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

#: The families shipped in ``ticket_triage.features`` (one module each, named after the family), in the
#: dense column order new bundles get; bundles already trained keep the order they were pickled with.
#: Families registered from other modules follow these, in the order they registered.
BUILTIN = (
    "tfidf",
    "embeddings",
    "entities",
    "sentiment",
    "topics",
    "readability",
    "temporal",
    "metadata",
    "patterns",
)
#: What a family name may be: it names a features.toml section and prefixes the family's columns.
_NAME = r"[a-z][a-z0-9_]*"


class FamilyConfig(BaseModel):
    """A family's section of ``features.toml``: the on/off switch plus the family's own parameters.

    Unknown keys are rejected, so a misspelt parameter fails instead of silently keeping its default.
    """

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True


@dataclass(frozen=True)
class FamilySpec:
    """One feature family as the rest of the code sees it.

    ``transformer`` is built with the section's parameters (minus ``enabled``) plus any run-wide setting
    its constructor names (``random_state``, ``progress``, ...). ``monitored`` is a pattern a dense column
    name of this family must match in full to be watched for drift; ``monitored_components`` instead
    watches that many principal components of the family's whole block (a bundle stores one such
    projection, so at most one family may ask for it).
    """

    name: str
    transformer: type[Any]
    config: type[FamilyConfig] = FamilyConfig
    monitored: str | None = None
    monitored_components: int = 0

    def watches(self, column: str) -> bool:
        """Whether drift monitoring follows this dense column of the family."""
        return self.monitored is not None and re.fullmatch(self.monitored, column) is not None


_registered: dict[str, FamilySpec] = {}


def register(spec: FamilySpec) -> FamilySpec:
    """Add a family; registering the same family again (a re-imported module) replaces it."""
    if not re.fullmatch(_NAME, spec.name):
        raise ValueError(
            f"feature family name {spec.name!r} must be lower-case letters, digits and '_' "
            "(it names a features.toml section and prefixes the family's columns)"
        )
    if not issubclass(spec.config, FamilyConfig):
        raise TypeError(f"feature family {spec.name!r}: its config must subclass FamilyConfig")
    known = _registered.get(spec.name)
    if known is not None and known.transformer.__module__ != spec.transformer.__module__:
        raise ValueError(
            f"feature family {spec.name!r} is registered twice: by {known.transformer.__module__} "
            f"and by {spec.transformer.__module__}"
        )
    if spec.monitored is not None:
        re.fullmatch(spec.monitored, "")  # a bad pattern fails here, not once a bundle's training is done
    if spec.monitored_components:
        others = [s.name for s in _registered.values() if s.monitored_components and s.name != spec.name]
        if others:
            raise ValueError(
                f"feature family {spec.name!r} asks drift to watch principal components, but {others[0]!r} "
                "already does; a bundle stores one projection"
            )
    _registered[spec.name] = spec
    return spec


def families() -> tuple[FamilySpec, ...]:
    """Every registered family, built-in ones first in column order, then the others as registered."""
    for name in BUILTIN:
        if name not in _registered:
            importlib.import_module(f"{__package__}.{name}")
        if name not in _registered:
            raise RuntimeError(f"module {__package__}.{name} registers no feature family {name!r}")
    builtin = [_registered[name] for name in BUILTIN]
    return (*builtin, *(spec for name, spec in _registered.items() if name not in BUILTIN))


def family(name: str) -> FamilySpec:
    """The declaration of one family; an unknown name lists the known ones."""
    specs = {spec.name: spec for spec in families()}
    if name not in specs:
        raise KeyError(f"unknown feature family {name!r}; known: {', '.join(specs)}")
    return specs[name]


def projected() -> FamilySpec | None:
    """The family whose block drift watches through principal components, if any."""
    return next((spec for spec in families() if spec.monitored_components), None)
