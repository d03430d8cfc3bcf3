"""Starts uvicorn on the app factory; workers rebuild the same settings from the environment."""

from __future__ import annotations

import os

import uvicorn

from ticket_triage.config import Settings

_FACTORY = "ticket_triage.serving.app:create_app_from_env"


def _export(settings: Settings) -> None:
    """Pass the resolved settings to worker processes, which read them back through ``Settings()``."""
    for name in ("models_dir", "host", "port", "workers"):
        os.environ[f"TRIAGE_{name.upper()}"] = str(getattr(settings, name))


def run_server(settings: Settings) -> None:
    _export(settings)
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
