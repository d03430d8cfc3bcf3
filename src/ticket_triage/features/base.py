"""Shared pieces of the feature families: the input frame contract and the computed feature set."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ticket_triage.data.schema import TEXT

_SPACES = re.compile(r"[^\S\n]+")
_LINE_BREAKS = re.compile(r" ?\n[\s]*")


def normalize_whitespace(frame: pd.DataFrame) -> pd.DataFrame:
    """Collapse runs of spaces and blank lines, so how a ticket was typed or pasted does not move features."""
    texts = [_LINE_BREAKS.sub("\n", _SPACES.sub(" ", t)).strip() for t in texts_of(frame)]
    return frame.assign(**{TEXT: texts})


def require_text_frame(frame: object, owner: str = "feature family") -> None:
    """One clear error for every family handed something that is not a ticket frame."""
    if not isinstance(frame, pd.DataFrame) or TEXT not in frame.columns:
        raise ValueError(f"{owner} needs a ticket DataFrame with a {TEXT!r} column")


def texts_of(frame: pd.DataFrame) -> list[str]:
    """The ticket texts of a canonical frame as plain strings (missing -> "")."""
    require_text_frame(frame)
    return ["" if not isinstance(t, str) else t for t in frame[TEXT].tolist()]


@dataclass(frozen=True)
class EncoderOutput:
    """What the sentence encoder gives for a batch: vectors, and each fine-tuned target's class scores."""

    embeddings: np.ndarray
    heads: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class FeatureSet:
    """Everything the members need for a batch of tickets, computed once and shared.

    ``sparse`` is the TF-IDF matrix (linear model only); ``dense`` holds every dense family plus
    the SVD view of TF-IDF (tree models); ``blocks`` maps family name -> column slice of ``dense``.
    """

    texts: list[str]
    dense: np.ndarray
    dense_names: list[str]
    sparse: sp.csr_matrix | None = None
    sparse_names: list[str] = field(default_factory=list)
    blocks: dict[str, slice] = field(default_factory=dict)
    #: Class probabilities per target from the fine-tuned encoder's heads (same pass as the embeddings).
    heads: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    def block(self, family: str) -> np.ndarray:
        """Columns of one dense family (e.g. ``"embeddings"``)."""
        return self.dense[:, self.blocks[family]]

    def subset(self, index: np.ndarray) -> FeatureSet:
        """Rows ``index`` of this set, e.g. one split of the training data."""
        return FeatureSet(
            texts=[self.texts[i] for i in index],
            dense=self.dense[index],
            dense_names=self.dense_names,
            sparse=None if self.sparse is None else self.sparse[index],
            sparse_names=self.sparse_names,
            blocks=self.blocks,
            heads={name: probs[index] for name, probs in self.heads.items()},
        )
