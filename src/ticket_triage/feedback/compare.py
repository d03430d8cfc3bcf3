"""Champion against challenger on the same held-out tickets, and the verdict promotion relies on.

Both bundles are scored on exactly the same rows: the held-out rows whose category both of them learned
(a row neither can predict says nothing about which is better; how many were left out is recorded). Each
bundle routes at its own threshold, as it would when serving. The verdict is about the category:

    worse  <=>  challenger accuracy < champion accuracy - tolerance
                or challenger macro-F1 < champion macro-F1 - tolerance

Macro-F1 is in the rule so that a challenger cannot pass by sacrificing small queues for the large ones.
Calibration, auto-routing and priority figures are recorded for people to read, not voted on.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ticket_triage.data.schema import LABEL, PRIORITY
from ticket_triage.features.base import FeatureSet
from ticket_triage.feedback import FeedbackError
from ticket_triage.models.bundle import MANIFEST, Bundle
from ticket_triage.models.metrics import classification_summary
from ticket_triage.models.target import Target
from ticket_triage.models.training import encode_labels

COMPARISON_FILE = "comparison.json"
DEFAULT_TOLERANCE = 0.01
WORSE = "worse"
NOT_WORSE = "not worse"
#: The figures of a bundle's summary that the comparison keeps (from ``classification_summary``).
FIGURES = ("accuracy", "macro_f1", "ece", "coverage", "covered_accuracy", "n_covered", "log_loss")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def judge(champion: dict[str, Any], challenger: dict[str, Any], tolerance: float) -> list[str]:
    """Why the challenger is worse on the category (empty: it is not). Inputs are category figures."""
    reasons = []
    for metric, name in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
        old, new = float(champion[metric]), float(challenger[metric])
        if new < old - tolerance:
            reasons.append(
                f"category {name} {new:.4f} is below the champion's {old:.4f} by more than {tolerance:g}"
            )
    return reasons


def _scores(
    bundle: Bundle, features: FeatureSet, frame: pd.DataFrame, target: Target, column: str, rows: np.ndarray
) -> dict[str, Any]:
    model = bundle.targets[target]
    codes, known = encode_labels(frame[column].iloc[rows], model.labels)
    if not known.all():  # callers pass rows both bundles know; this would be a bug
        raise AssertionError(f"{target}: rows with labels {bundle.version} never learned")
    probs = model.predict_proba(features.subset(rows))
    summary = classification_summary(codes, probs, model.labels, bundle.threshold)
    return {name: summary[name] for name in FIGURES} | {"n_rows": len(rows)}


def _shared_rows(frame: pd.DataFrame, column: str, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    both = set(a) & set(b)
    return np.flatnonzero([isinstance(v, str) and v in both for v in frame[column]])


def _manifest_sha(bundle: Bundle) -> str:
    return file_sha256(bundle.path / MANIFEST)


@dataclass
class Comparison:
    """What ``triage compare`` found; saved as JSON beside the challenger, read by ``triage promote``."""

    data: dict[str, Any]

    @property
    def verdict(self) -> str:
        return str(self.data["verdict"])

    @property
    def worse(self) -> bool:
        return self.verdict == WORSE

    def save(self, path: Path) -> Path:
        """Atomic write, so ``promote`` never reads half a comparison."""
        text = json.dumps(self.data, indent=1, default=str) + "\n"
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: Path) -> Comparison:
        try:
            return cls(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as exc:
            raise FeedbackError(f"{path} is not valid JSON ({exc}); run `triage compare` again") from exc

    def lines(self) -> list[str]:
        d = self.data
        champion, challenger = d["champion"], d["challenger"]
        out = [
            f"held-out: {', '.join(f['file'] for f in d['heldout']['files'])} "
            f"({d['heldout']['rows_compared']} of {d['heldout']['rows_read']} rows compared)",
            f"champion:   {champion['version']}",
            f"challenger: {challenger['version']}",
            f"{'':<24}{'champion':>12}{'challenger':>12}",
        ]
        for target in Target:
            a, b = champion.get(target), challenger.get(target)
            if not a or not b:
                continue
            rows = [
                ("accuracy", "accuracy"),
                ("macro-F1", "macro_f1"),
                ("ECE", "ece"),
                ("auto-routed share", "coverage"),
                ("auto-routed accuracy", "covered_accuracy"),
            ]
            for label, key in rows:
                out.append(f"{target[:3] + ' ' + label:<24}{_fmt(a[key]):>12}{_fmt(b[key]):>12}")
        for note in d.get("notes", []):
            out.append(f"note: {note}")
        out.append(f"verdict: challenger is {d['verdict']} (tolerance {d['tolerance']:g})")
        out += [f"  {reason}" for reason in d["reasons"]]
        return out


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{float(value):.4f}"


def compare_bundles(
    champion: Bundle,
    challenger: Bundle,
    frame: pd.DataFrame,
    files: Sequence[Path],
    *,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Comparison:
    """Score both bundles on the rows of ``frame`` (a canonical, labelled frame read from ``files``)."""
    if tolerance < 0:
        raise FeedbackError(f"--tolerance must not be negative, got {tolerance}")
    a_labels, b_labels = champion.targets[Target.CATEGORY].labels, challenger.targets[Target.CATEGORY].labels
    rows = _shared_rows(frame, LABEL, a_labels, b_labels)
    if not len(rows):
        raise FeedbackError("no held-out row has a category both bundles learned: nothing to compare on")
    notes = []
    if len(rows) < len(frame):
        notes.append(
            f"{len(frame) - len(rows)} held-out row(s) have a category one of the bundles never learned"
        )
    only_a, only_b = sorted(set(a_labels) - set(b_labels)), sorted(set(b_labels) - set(a_labels))
    if only_a:
        notes.append(f"categories only the champion learned: {', '.join(only_a)}")
    if only_b:
        notes.append(f"categories only the challenger learned: {', '.join(only_b)}")

    bundles = {"champion": champion, "challenger": challenger}
    features = {side: bundle.pipeline.transform(frame) for side, bundle in bundles.items()}
    sides: dict[str, dict[str, Any]] = {}
    for side, bundle in bundles.items():
        sides[side] = {
            "version": bundle.version,
            "path": str(bundle.path),
            "manifest_sha256": _manifest_sha(bundle),
            "threshold": bundle.threshold,
            Target.CATEGORY: _scores(bundle, features[side], frame, Target.CATEGORY, LABEL, rows),
            Target.PRIORITY: None,
        }
    if PRIORITY in frame.columns and all(Target.PRIORITY in b.targets for b in (champion, challenger)):
        a_priorities, b_priorities = (b.targets[Target.PRIORITY].labels for b in (champion, challenger))
        p_rows = _shared_rows(frame, PRIORITY, a_priorities, b_priorities)
        if len(p_rows):
            for side, bundle in bundles.items():
                scores = _scores(bundle, features[side], frame, Target.PRIORITY, PRIORITY, p_rows)
                sides[side][Target.PRIORITY] = scores

    reasons = judge(sides["champion"][Target.CATEGORY], sides["challenger"][Target.CATEGORY], tolerance)
    return Comparison(
        {
            "compared_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "rule": "worse: category accuracy or macro-F1 below the champion's by more than the tolerance",
            "tolerance": tolerance,
            "verdict": WORSE if reasons else NOT_WORSE,
            "reasons": reasons,
            "heldout": {
                "files": [{"file": str(p), "sha256": file_sha256(p)} for p in files],
                "rows_read": len(frame),
                "rows_compared": len(rows),
            },
            "notes": notes,
            **sides,
        }
    )
