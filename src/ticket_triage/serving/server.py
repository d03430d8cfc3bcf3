"""Starts uvicorn on the app factory; workers rebuild the same settings from the environment.

Every process of the service (this one and each worker) redacts secrets from its log records before
anything else runs (see ``ticket_triage.redaction``), and the start-up lines show URLs redacted.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from ticket_triage.config import Settings
from ticket_triage.monitoring.metrics import MULTIPROC_ENV
from ticket_triage.redaction import install_log_redaction, redact_url

if TYPE_CHECKING:
    from fastapi import FastAPI

#: Imported by uvicorn in every worker: installs log redaction there, then builds the app.
_FACTORY = "ticket_triage.serving.server:create_app_redacted"


def create_app_redacted() -> FastAPI:
    """The app of ``create_app_from_env``, in a process whose log records are redacted first."""
    install_log_redaction()
    from ticket_triage.serving.app import create_app_from_env

    return create_app_from_env()


def cache_line(settings: Settings) -> str:
    """The start-up line naming the prediction cache; a Redis URL's password shows as ``***``."""
    where = f"redis {redact_url(settings.redis_url)}" if settings.redis_url else "in-process"
    return f"  cache:     {where}"


def _export(settings: Settings) -> None:
    """Pass the resolved settings to worker processes, which read them back through ``Settings()``."""
    for name in ("models_dir", "host", "port", "workers"):
        os.environ[f"TRIAGE_{name.upper()}"] = str(getattr(settings, name))


def _multiprocess_metrics_dir() -> Path:
    """A clean folder for the workers' metric files; values of an earlier run must not be added in."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
        return folder
    folder = Path(tempfile.mkdtemp(prefix="triage-metrics-"))
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


def run_server(settings: Settings) -> None:
    install_log_redaction()
    _export(settings)
    # One worker keeps plain in-process metrics; several share theirs through files (see monitoring.metrics).
    metrics_dir = _multiprocess_metrics_dir() if settings.workers > 1 else None
    try:
        _run(settings)
    finally:
        if metrics_dir is not None and metrics_dir.name.startswith("triage-metrics-"):
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _run(settings: Settings) -> None:
    uvicorn.run(
        _FACTORY,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level="info",
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=10,
    )
