"""Make a bundle live, only when a comparison against the model live right now says it is not worse.

Refusals (each overridable with ``force``, which is recorded):

* no ``comparison.json`` in the bundle, or one made against a bundle that is no longer live, or one whose
  champion or challenger manifest changed since (the figures would describe other models);
* the comparison's figures make the challenger worse under the tolerance given here (see ``compare``).

Never overridable: a bundle that fails its own checks (missing files, other library versions), because
the service would refuse to load it.

``LIVE`` is replaced atomically (temporary file in the same folder, fsync, ``os.replace``), so a server
polling it reads either the old or the new name, never a partial one. Every promotion appends one JSON
line to ``promotions.jsonl`` in the models folder; a lock file serialises concurrent promotions.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ticket_triage.feedback import FeedbackError
from ticket_triage.feedback.compare import COMPARISON_FILE, DEFAULT_TOLERANCE, Comparison, file_sha256, judge
from ticket_triage.models.bundle import LIVE_POINTER, MANIFEST, check_bundle, read_manifest
from ticket_triage.models.target import Target

HISTORY_FILE = "promotions.jsonl"
LOCK_FILE = ".promote.lock"


class PromotionRefusedError(FeedbackError):
    """The challenger may not go live; ``reasons`` lists why (``--force`` overrides)."""

    def __init__(self, bundle: str, reasons: list[str]) -> None:
        super().__init__(f"refusing to promote {bundle}: " + "; ".join(reasons) + " (--force overrides)")
        self.reasons = reasons


@dataclass
class Promotion:
    bundle: str
    previous: str | None
    forced: bool
    already_live: bool = False
    overridden: list[str] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)


def live_name(models_dir: Path) -> str | None:
    pointer = models_dir / LIVE_POINTER
    try:
        return pointer.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def write_live(models_dir: Path, name: str) -> None:
    """Point LIVE at ``name``: readers see the old or the new file, never half of one, even after a crash."""
    fd, tmp = tempfile.mkstemp(dir=models_dir, prefix=f".{LIVE_POINTER}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(name + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a server under another user must read it
        os.replace(tmp, models_dir / LIVE_POINTER)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(models_dir, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


@contextmanager
def _locked(models_dir: Path) -> Iterator[None]:
    with (models_dir / LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _problems(
    bundle: Path, live: str, models_dir: Path, tolerance: float
) -> tuple[list[str], dict[str, Any]]:
    """Reasons to refuse, and the comparison's figures for the history (empty if there is none)."""
    path = bundle / COMPARISON_FILE
    if not path.is_file():
        command = f"triage compare {models_dir / live} {bundle} --data HELDOUT"
        return [f"it has no {COMPARISON_FILE}; run `{command}` first"], {}
    data = Comparison.load(path).data
    problems = []
    champion, challenger = data.get("champion", {}), data.get("challenger", {})
    if champion.get("version") != live:
        problems.append(
            f"its comparison was against {champion.get('version')}, but {live} is live now; compare again"
        )
    elif (models_dir / live / MANIFEST).is_file() and file_sha256(
        models_dir / live / MANIFEST
    ) != champion.get("manifest_sha256"):
        problems.append(f"the live bundle {live} changed since the comparison; compare again")
    if challenger.get("version") != bundle.name or file_sha256(bundle / MANIFEST) != challenger.get(
        "manifest_sha256"
    ):
        problems.append(f"{COMPARISON_FILE} does not describe this bundle as it is now; compare again")
    if not problems:
        problems += judge(champion[Target.CATEGORY], challenger[Target.CATEGORY], tolerance)
    summary = {
        "compared_at": data.get("compared_at"),
        "heldout": data.get("heldout", {}).get("files"),
        "rows_compared": data.get("heldout", {}).get("rows_compared"),
        "champion": {"version": champion.get("version"), **_short(champion.get(Target.CATEGORY))},
        "challenger": {"version": challenger.get("version"), **_short(challenger.get(Target.CATEGORY))},
    }
    return problems, summary


def _short(figures: dict[str, Any] | None) -> dict[str, Any]:
    return {
        k: (figures or {}).get(k) for k in ("accuracy", "macro_f1", "ece", "coverage", "covered_accuracy")
    }


def promote(
    bundle: Path, *, tolerance: float = DEFAULT_TOLERANCE, force: bool = False, actor: str | None = None
) -> Promotion:
    """Mark ``bundle`` live in its parent models folder, or raise PromotionRefusedError."""
    if tolerance < 0:
        raise FeedbackError(f"--tolerance must not be negative, got {tolerance}")
    bundle = Path(bundle).absolute()
    if not bundle.is_dir():
        raise FeedbackError(f"bundle {bundle} does not exist")
    check_bundle(bundle, read_manifest(bundle))  # BundleError: never forced past
    models_dir = bundle.parent
    with _locked(models_dir):
        live = live_name(models_dir)
        if live == bundle.name:
            return Promotion(bundle=bundle.name, previous=live, forced=False, already_live=True)
        problems, summary = ([], {}) if live is None else _problems(bundle, live, models_dir, tolerance)
        if problems and not force:
            raise PromotionRefusedError(bundle.name, problems)
        record = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "bundle": bundle.name,
            "previous": live,
            "forced": bool(problems),
            "force_requested": force,
            "overridden": problems,
            "tolerance": tolerance,
            "by": actor or _user(),
            "comparison": summary or None,
        }
        write_live(models_dir, bundle.name)
        with (models_dir / HISTORY_FILE).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    return Promotion(
        bundle=bundle.name, previous=live, forced=bool(problems), overridden=problems, record=record
    )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
