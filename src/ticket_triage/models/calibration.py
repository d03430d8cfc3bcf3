"""Temperature scaling: one parameter that fixes over- or under-confidence without changing the ranking."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from sklearn.exceptions import NotFittedError


class TemperatureScaler:
    """Rescales ``log(p)`` by ``1/T``: T > 1 softens an overconfident model, T < 1 sharpens a timid one.

    A single scalar cannot overfit a validation split of a few hundred rows, unlike per-class methods.
    """

    def __init__(self, eps: float = 1e-12, bounds: tuple[float, float] = (0.05, 20.0)) -> None:
        if not 0 < bounds[0] < 1 < bounds[1]:
            raise ValueError(f"temperature bounds must satisfy 0 < low < 1 < high, got {bounds}")
        self.eps = eps
        self.bounds = bounds
        self.temperature: float | None = None

    def _logits(self, probs: np.ndarray) -> np.ndarray:
        p = np.asarray(probs, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] < 2:
            raise ValueError(f"probabilities must be 2-D with at least 2 classes, got shape {p.shape}")
        if not np.all(np.isfinite(p)) or np.any(p < 0):
            raise ValueError("probabilities must be finite and non-negative")
        return np.log(p + self.eps)

    def nll(self, probs: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
        """Mean negative log-likelihood of ``y`` after scaling with ``temperature``."""
        logits = self._logits(probs)
        labels = self._labels(y, logits)
        return float(-np.mean(log_softmax(logits / temperature, axis=1)[np.arange(len(labels)), labels]))

    @staticmethod
    def _labels(y: np.ndarray, logits: np.ndarray) -> np.ndarray:
        labels = np.asarray(y)
        if labels.ndim != 1 or len(labels) != len(logits) or len(labels) == 0:
            raise ValueError(
                f"y must be 1-D with one label per probability row ({len(logits)}), got shape {labels.shape}"
            )
        if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= logits.shape[1]:
            raise ValueError(f"y must be integer class indices in 0..{logits.shape[1] - 1}")
        return labels

    def fit(self, probs: np.ndarray, y: np.ndarray) -> TemperatureScaler:
        logits = self._logits(probs)
        labels = self._labels(y, logits)
        rows = np.arange(len(labels))

        def objective(log_t: float) -> float:
            return float(-np.mean(log_softmax(logits * np.exp(-log_t), axis=1)[rows, labels]))

        # Searching log T keeps the bounded search symmetric between softening and sharpening.
        result = minimize_scalar(
            objective,
            bounds=(np.log(self.bounds[0]), np.log(self.bounds[1])),
            method="bounded",
            options={"xatol": 1e-6},
        )
        self.temperature = float(np.exp(result.x))
        return self

    def transform(self, probs: np.ndarray) -> np.ndarray:
        if self.temperature is None:
            raise NotFittedError("TemperatureScaler is not fitted yet; call fit() first")
        scaled = log_softmax(self._logits(probs) / self.temperature, axis=1)
        return np.exp(scaled)
