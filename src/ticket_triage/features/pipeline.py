"""Assembles the enabled feature families and computes each once per ticket for every member."""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.decomposition import TruncatedSVD
from tqdm.auto import tqdm

from ticket_triage.features.base import EncoderOutput, FeatureSet, normalize_whitespace, texts_of
from ticket_triage.features.config import FeatureConfig
from ticket_triage.features.registry import FamilySpec, families

#: Section keys the pipeline reads itself instead of passing them to the family.
_PIPELINE_ONLY_KEYS = {"enabled", "svd_components"}


def _build_family(spec: FamilySpec, params: dict[str, Any], shared: dict[str, Any]) -> BaseEstimator:
    """The family's class with its config section plus whichever run-wide settings it takes."""
    cls = spec.transformer
    accepted = cls.__init__.__code__.co_varnames
    return cls(**params, **{k: v for k, v in shared.items() if k in accepted and k not in params})


def _encode(family: BaseEstimator, frame: pd.DataFrame) -> Any:
    """A family's output for prediction: the encoder gives vectors and head scores together."""
    return family.encode(frame) if getattr(family, "produces_heads", False) else family.transform(frame)


class FeaturePipeline(BaseEstimator):
    """Fits the enabled families on training tickets and turns any ticket frame into a FeatureSet.

    TF-IDF stays sparse for the linear member; a TruncatedSVD view of it joins the dense block
    that the tree members read, so they never see 100K sparse columns.
    """

    def __init__(
        self,
        config: FeatureConfig | None = None,
        random_state: int = 0,
        progress: bool = True,
        tuning: dict[str, Any] | None = None,
    ):
        """``tuning``: run-wide training settings (encoder epochs, threads, ...) for the families."""
        self.config = config
        self.random_state = random_state
        self.progress = progress
        self.tuning = tuning

    def _enabled(self) -> list[tuple[FamilySpec, dict[str, Any]]]:
        """Every registered family the config switches on, with the parameters its class takes."""
        cfg = self.config or FeatureConfig()
        out = []
        for spec in families():
            section = cfg.section(spec.name)
            if section.enabled:
                params = {k: v for k, v in section.model_dump().items() if k not in _PIPELINE_ONLY_KEYS}
                out.append((spec, params))
        if not out:
            raise ValueError("feature config enables no feature family; enable at least one")
        return out

    def fit_transform(
        self, frame: pd.DataFrame, y: Any = None, targets: dict[str, tuple[np.ndarray, int]] | None = None
    ) -> FeatureSet:
        """Fit every family on ``frame`` and return its features, computing each family once.

        ``targets`` (name -> integer codes per row, number of classes) lets the encoder fine-tune; the
        training rows then get cross-fitted vectors and scores (see features/embeddings.py).
        """
        frame = normalize_whitespace(frame)
        self.__dict__.pop("_names_cache", None)
        self.__dict__.pop("_svd_projection", None)
        self.families_: list[tuple[str, BaseEstimator]] = []
        self.timings_: dict[str, float] = {}
        self.svd_: TruncatedSVD | None = None
        outputs: dict[str, Any] = {}
        for spec, params in self._bar(self._enabled(), "fitting features"):
            name = spec.name
            start = time.perf_counter()
            shared = {"random_state": self.random_state, "progress": self.progress, **(self.tuning or {})}
            family = _build_family(spec, params, shared)
            if getattr(family, "produces_heads", False):
                outputs[name] = family.fit_encode(frame, targets)
            else:
                outputs[name] = family.fit_transform(frame)
            self.families_.append((name, family))
            if name == "tfidf":
                self.svd_ = self._fit_svd(outputs[name])
            self.timings_[name] = time.perf_counter() - start
        return self._assemble(frame, outputs)

    def fit(self, frame: pd.DataFrame, y: Any = None) -> FeaturePipeline:
        self.fit_transform(frame)
        return self

    def transform(
        self, frame: pd.DataFrame, elsewhere: Mapping[str, Future[Any]] | None = None
    ) -> FeatureSet:
        """Features of new tickets with the fitted families (used at prediction time).

        ``elsewhere`` maps family names to futures of their output for this same frame (the service
        computes some on a second thread); they are collected after the other families have run.
        """
        if not hasattr(self, "families_"):
            raise RuntimeError("FeaturePipeline is not fitted")
        frame = normalize_whitespace(frame)
        elsewhere = elsewhere or {}
        outputs = {name: _encode(family, frame) for name, family in self.families_ if name not in elsewhere}
        outputs.update({name: future.result() for name, future in elsewhere.items()})
        return self._assemble(frame, outputs)

    def family(self, name: str) -> BaseEstimator | None:
        """The fitted family of that name, or None when it is switched off."""
        return dict(getattr(self, "families_", [])).get(name)

    def encoder(self) -> tuple[str, BaseEstimator] | None:
        """The sentence encoder (the family that also produces the fine-tuned heads), if it is enabled."""
        found = (
            (name, f) for name, f in getattr(self, "families_", []) if getattr(f, "produces_heads", False)
        )
        return next(found, None)

    def worker_process_families(self) -> list[tuple[str, BaseEstimator]]:
        """Enabled families that declare ``runs_in_worker_process``: a caller may compute them elsewhere."""
        return [
            (name, f)
            for name, f in getattr(self, "families_", [])
            if getattr(f, "runs_in_worker_process", False)
        ]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the dense columns (the sparse TF-IDF names are on the FeatureSet)."""
        names: list[str] = []
        for name, family in self.families_:
            if name == "tfidf":
                if self.svd_ is not None:
                    names += [f"tfidf_svd__{i}" for i in range(self.svd_.n_components)]
            else:
                names += list(family.get_feature_names_out())
        return np.asarray(names, dtype=object)

    def _fit_svd(self, tfidf: sp.csr_matrix) -> TruncatedSVD | None:
        cfg = self.config or FeatureConfig()
        k = min(cfg.section("tfidf").svd_components, tfidf.shape[1] - 1, tfidf.shape[0] - 1)
        if k < 1:
            return None
        return TruncatedSVD(n_components=k, algorithm="randomized", random_state=self.random_state).fit(tfidf)

    def _names_of(self, name: str, family: BaseEstimator) -> list[str]:
        """A family's column names, computed once: TF-IDF's 100K names cost ~15 ms, too much per request."""
        cache = self.__dict__.setdefault("_names_cache", {})
        if name not in cache:
            cache[name] = list(family.get_feature_names_out())
        return cache[name]

    def _svd_view(self, tfidf: sp.csr_matrix) -> np.ndarray:
        """TF-IDF on the SVD components, the matrix laid out once (TruncatedSVD re-lays it on every call)."""
        assert self.svd_ is not None
        projection = self.__dict__.get("_svd_projection")
        if projection is None:
            projection = np.ascontiguousarray(self.svd_.components_.T)  # float64, as TruncatedSVD computes
            self.__dict__["_svd_projection"] = projection
        return np.asarray(tfidf @ projection, dtype=np.float32)

    def __getstate__(self) -> dict[str, Any]:
        """Caches are rebuilt on first use, never pickled."""
        state = super().__getstate__()
        state.pop("_names_cache", None)
        state.pop("_svd_projection", None)
        return state

    def _assemble(self, frame: pd.DataFrame, outputs: dict[str, Any]) -> FeatureSet:
        blocks: dict[str, slice] = {}
        parts: list[np.ndarray] = []
        names: list[str] = []
        sparse = None
        sparse_names: list[str] = []
        heads: dict[str, np.ndarray] = {}
        for name, family in self.families_:
            if isinstance(outputs[name], EncoderOutput):
                heads.update(outputs[name].heads)
                outputs[name] = outputs[name].embeddings
            if name == "tfidf":
                sparse = sp.csr_matrix(outputs[name], dtype=np.float32)
                sparse_names = self._names_of(name, family)
                if self.svd_ is None:
                    continue
                block = self._svd_view(sparse)
                block_names = [f"tfidf_svd__{i}" for i in range(block.shape[1])]
                name = "tfidf_svd"
            else:
                block = np.asarray(outputs[name], dtype=np.float32)
                block_names = self._names_of(name, family)
            blocks[name] = slice(len(names), len(names) + block.shape[1])
            parts.append(block)
            names += block_names
        dense = np.hstack(parts) if parts else np.zeros((len(frame), 0), dtype=np.float32)
        return FeatureSet(
            texts=texts_of(frame),
            dense=np.ascontiguousarray(dense),
            dense_names=names,
            sparse=sparse,
            sparse_names=sparse_names,
            blocks=blocks,
            heads=heads,
        )

    def _bar(self, items: list[Any], desc: str) -> Any:
        return tqdm(items, desc=desc, unit="family", disable=not self.progress)
