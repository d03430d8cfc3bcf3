"""Follows the models folder's LIVE file: when `triage promote` (or anyone) re-points it, every worker
hot-reloads on its own, with no admin call that would reach only one of several workers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from ticket_triage.models.bundle import LIVE_POINTER

log = logging.getLogger(__name__)


def read_live(models_dir: Path) -> str | None:
    """The bundle name LIVE points at, or None when there is no LIVE file (a bundle served directly)."""
    try:
        return (models_dir / LIVE_POINTER).read_text(encoding="utf-8").strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


async def watch_live(
    models_dir: Path, interval: float, reload: Callable[[str], Awaitable[bool]], started_with: str | None
) -> None:
    """Poll LIVE every ``interval`` seconds; call ``reload(name)`` once per new value.

    A refused bundle is not retried until LIVE changes again, so a bad promotion is logged once, not
    every few seconds; the model that was serving keeps serving.
    """
    seen = started_with
    while True:
        await asyncio.sleep(interval)
        try:
            name = await asyncio.to_thread(read_live, models_dir)
        except OSError as exc:
            log.warning("cannot read %s: %s", models_dir / LIVE_POINTER, exc)
            continue
        if name is None or name == seen:
            continue
        seen = name
        log.info("LIVE now names %s; reloading", name)
        await reload(name)
