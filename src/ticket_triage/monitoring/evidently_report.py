"""Evidently data-drift reports: the bundle's reference sample against recent predictions.

Evidently takes seconds to import, so it is imported only when a report is asked for, never at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ticket_triage.monitoring.drift import WindowRow

#: Evidently reports usage unless told not to; a helpdesk service must not call out on its own.
os.environ.setdefault("DO_NOT_TRACK", "1")


class ReportUnavailableError(ValueError):
    """Why no report can be made (no reference sample in the bundle, or no recent predictions)."""


def reference_frame(reference: Mapping[str, Any]) -> pd.DataFrame:
    sample = reference.get("sample")
    if not sample:
        raise ReportUnavailableError(
            "the model bundle carries no reference sample (bundles trained before drift reports); retrain it"
        )
    return pd.DataFrame(sample)


def window_frame(rows: Sequence[WindowRow]) -> pd.DataFrame:
    return pd.DataFrame(
        [{**(r.signals or {}), "category": r.category, "confidence": r.confidence} for r in rows]
    )


def drift_report_html(reference: pd.DataFrame, current: pd.DataFrame) -> str:
    """A self-contained HTML page (Evidently's DataDriftPreset) over the columns both frames have."""
    if current.empty:
        raise ReportUnavailableError("no recent predictions to compare with the reference yet")
    columns = [c for c in reference.columns if c in current.columns]
    from evidently import Report
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset()]).run(
        current_data=current[columns].reset_index(drop=True),
        reference_data=reference[columns].reset_index(drop=True),
    )
    return snapshot.get_html_str(as_iframe=False)


def rows_of_frame(bundle: Any, frame: pd.DataFrame) -> list[WindowRow]:
    """Score a loaded ticket table with a bundle and keep what the drift window keeps per ticket."""
    from ticket_triage.models.bundle import load_reference_pca
    from ticket_triage.models.predictor import CATEGORY, predict_probas
    from ticket_triage.monitoring.drift import SignalExtractor

    features, probas = predict_probas(bundle, frame)
    extractor = SignalExtractor(bundle.reference, load_reference_pca(bundle.path))
    labels = bundle.targets[CATEGORY].labels
    category = probas[CATEGORY]
    best = category.argmax(axis=1)
    return [
        WindowRow(category=str(labels[int(b)]), confidence=float(category[i, b]), signals=signals)
        for i, (b, signals) in enumerate(zip(best, extractor.extract(features), strict=True))
    ]
