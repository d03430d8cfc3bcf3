"""Which model serves, and hot reload: load beside the live one, prove it answers, then swap the reference.

Requests read ``registry.current`` once and keep that object for their whole life, so a swap never
changes the model under a request in flight; the old model is freed when its last request finishes.
The registry also follows the models folder's LIVE file (``live_watch.py``), so a promotion reaches
every worker.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from ticket_triage.models.bundle import LIVE_POINTER, BundleError, load_bundle, resolve_bundle_path
from ticket_triage.monitoring.metrics import ServiceMetrics
from ticket_triage.routing import RoutingPolicy
from ticket_triage.serving.gc_tuning import release_when_unused
from ticket_triage.serving.inference import LOADED_MODELS, SMOKE_TICKET, Scores, ServingModel
from ticket_triage.serving.live_watch import read_live, watch_live
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
    """Holds the serving model, swaps it atomically after a successful smoke prediction, and frees the old."""

    def __init__(
        self,
        model: ServingModel,
        models_dir: Path,
        *,
        scorer: Scorer,
        metrics: ServiceMetrics,
        routing: RoutingPolicy,
        onnx_dir: Path | None = None,
    ) -> None:
        """``scorer`` runs the smoke prediction of a candidate (the batcher's ``run_exclusive``);
        ``routing`` is the policy a candidate must be able to apply."""
        self.current = model
        self.routing = routing
        self.models_dir = Path(models_dir)
        self.onnx_dir = onnx_dir
        self._scorer = scorer
        self._metrics = metrics
        self._lock = asyncio.Lock()
        self._release: asyncio.Task[bool] | None = None
        metrics.set_model(model.version, model.trained_at, model.review_share_baseline())
        metrics.models_loaded.set(1)

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

    async def reload(self, name: str | None) -> tuple[ServingModel, ServingModel]:
        """Hot reload with its metrics; returns (previous, new). Raises ReloadError (the old model serves)."""
        try:
            previous, current = await self._swap(name)
        except ReloadError:
            self._metrics.model_reloads.labels(outcome="refused").inc()
            raise
        m = self._metrics
        m.model_reloads.labels(outcome="swapped").inc()
        m.retire_model(previous.version, previous.trained_at)
        m.set_model(current.version, current.trained_at, current.review_share_baseline())
        # Frozen now, the old model's cycles would never be collected: freeze once it is gone.
        m.models_loaded.set(len(LOADED_MODELS))
        self._release = asyncio.get_running_loop().create_task(self._free(weakref.ref(previous)))
        return previous, current

    async def _swap(self, name: str | None) -> tuple[ServingModel, ServingModel]:
        """Load, smoke-test and swap in a bundle. One reload at a time."""
        async with self._lock:
            path = self.bundle_path(name)
            try:
                candidate = await asyncio.to_thread(load_serving_model, path, self.onnx_dir)
                candidate.check_routing(self.routing)
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
                [scores] = await self._scorer(candidate, [SMOKE_TICKET])
            except Exception as exc:
                log.exception("smoke prediction of bundle %s failed", path)
                raise ReloadError(
                    f"bundle {path.name} refused: its smoke prediction failed ({type(exc).__name__}: {exc})"
                ) from exc
            self._check_scores(candidate, scores)
            previous, self.current = self.current, candidate
            log.info("now serving model %s (was %s)", candidate.version, previous.version)
            return previous, candidate

    async def _free(self, previous: weakref.ref[ServingModel]) -> bool:
        freed = await release_when_unused(previous)
        self._metrics.models_loaded.set(len(LOADED_MODELS))
        return freed

    async def released(self) -> bool:
        """Wait for the last swapped-out model to be freed (True) or given up on (False)."""
        return True if self._release is None else await self._release

    async def follow_live(self, name: str) -> bool:
        """The LIVE watcher's reload: a refusal is logged, never raised into the watcher."""
        try:
            await self.reload(name)
        except ReloadError as exc:
            log.error(
                "LIVE names %s but it cannot serve; still serving %s: %s", name, self.current.version, exc
            )
            return False
        return True

    async def watch_live(self, interval: float) -> asyncio.Task[None]:
        """Start following LIVE: a reload whenever it names another bundle than it does now.

        LIVE is read before this returns, so a promotion made once start-up is over is never mistaken
        for the starting value. Cancel the task to stop.
        """
        started_with = await asyncio.to_thread(read_live, self.models_dir)
        return asyncio.get_running_loop().create_task(
            watch_live(self.models_dir, interval, self.follow_live, started_with)
        )

    def close(self) -> None:
        if self._release is not None:
            self._release.cancel()

    @staticmethod
    def _check_scores(candidate: ServingModel, scores: Scores) -> None:
        total = sum(scores.category)
        if not all(0.0 <= p <= 1.0 for p in scores.category) or abs(total - 1.0) > 1e-3:
            raise ReloadError(
                f"bundle {candidate.version} refused: its smoke prediction is not a probability "
                f"distribution (sum {total:.4f})"
            )
