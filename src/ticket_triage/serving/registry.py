"""Which model serves, and hot reload: load beside the live one, prove it answers, then swap the reference.

Requests read ``registry.current`` once and keep that object for their whole life, so a swap never
changes the model under a request in flight; the old model is freed when its last request finishes.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from ticket_triage.models.bundle import LIVE_POINTER, BundleError, load_bundle, resolve_bundle_path
from ticket_triage.serving.inference import SMOKE_TICKET, Scores, ServingModel
from ticket_triage.serving.schemas import Ticket

log = logging.getLogger(__name__)

_BUNDLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")

#: Runs a pass of a candidate model on the inference thread (the batcher's ``run_exclusive``).
Scorer = Callable[[ServingModel, Sequence[Ticket]], Awaitable[list[Scores]]]


class ReloadError(ValueError):
    """The requested bundle cannot serve; the message says why. The live model is untouched."""


class BundleNotFoundError(ReloadError):
    """No bundle of that name exists in the models folder."""


def models_dir_of(model_path: Path) -> Path:
    """The folder bundles are looked up in: ``model_path`` itself, or a bundle's parent."""
    model_path = Path(model_path)
    return model_path.parent if (model_path / "manifest.json").exists() else model_path


def load_serving_model(path: Path, onnx_dir: Path | None = None) -> ServingModel:
    """Load and verify a bundle for serving (blocking: call it in a thread)."""
    return ServingModel(load_bundle(path), onnx_dir)


class ModelRegistry:
    """Holds the serving model and swaps it atomically after a successful smoke prediction."""

    def __init__(self, model: ServingModel, models_dir: Path, onnx_dir: Path | None = None) -> None:
        self.current = model
        self.models_dir = Path(models_dir)
        self.onnx_dir = onnx_dir
        self._lock = asyncio.Lock()

    def bundle_path(self, name: str | None) -> Path:
        """A bundle by folder name inside the models folder, or the one marked live when ``name`` is None."""
        if name is None:
            try:
                return resolve_bundle_path(self.models_dir)
            except BundleError as exc:
                raise ReloadError(str(exc)) from exc
        if not _BUNDLE_NAME.match(name) or name == LIVE_POINTER:
            raise ReloadError(
                f"bundle name {name!r} is not a folder name; give the name of a bundle in {self.models_dir}"
            )
        path = self.models_dir / name
        if not path.is_dir():
            raise BundleNotFoundError(f"no bundle named {name!r} in {self.models_dir}")
        return path

    async def reload(self, name: str | None, scorer: Scorer) -> tuple[ServingModel, ServingModel]:
        """Load, smoke-test and swap in a bundle; returns (previous, new). One reload at a time."""
        async with self._lock:
            path = self.bundle_path(name)
            try:
                candidate = await asyncio.to_thread(load_serving_model, path, self.onnx_dir)
            except (BundleError, ValueError) as exc:
                raise ReloadError(f"bundle {path.name} refused: {exc}") from exc
            except (
                Exception
            ) as exc:  # an unpickling error, a missing module: any of them means "cannot serve"
                log.exception("loading bundle %s failed", path)
                raise ReloadError(
                    f"bundle {path.name} refused: it failed to load ({type(exc).__name__})"
                ) from exc
            try:
                [scores] = await scorer(candidate, [SMOKE_TICKET])
            except Exception as exc:
                log.exception("smoke prediction of bundle %s failed", path)
                raise ReloadError(
                    f"bundle {path.name} refused: its smoke prediction failed ({type(exc).__name__}: {exc})"
                ) from exc
            self._check_scores(candidate, scores)
            previous, self.current = self.current, candidate
            log.info("now serving model %s (was %s)", candidate.version, previous.version)
            return previous, candidate

    @staticmethod
    def _check_scores(candidate: ServingModel, scores: Scores) -> None:
        total = sum(scores.category)
        if not all(0.0 <= p <= 1.0 for p in scores.category) or abs(total - 1.0) > 1e-3:
            raise ReloadError(
                f"bundle {candidate.version} refused: its smoke prediction is not a probability "
                f"distribution (sum {total:.4f})"
            )
