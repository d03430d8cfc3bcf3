"""The evaluation report of a training run: one JSON with every number, a Markdown summary, and plots.

Plots are drawn with matplotlib's object API (``Figure`` rendered by Agg when saved to PNG) rather
than pyplot, so writing a report never depends on, or changes, the process-wide backend and leaves
no figures behind in pyplot's global registry.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ticket_triage.models.conformal_evaluation import conformal_summary
from ticket_triage.models.metrics import (
    MetricsInputError,
    classification_summary,
    prediction_summary,
    reliability_bins,
)
from ticket_triage.models.target import Target

SEED_ENSEMBLE = "ensemble (seed weights)"
LEARNED_ENSEMBLE = "ensemble (learned weights)"
CALIBRATED_ENSEMBLE = "ensemble (calibrated)"
BASELINE = "baseline (TF-IDF + LinearSVC)"

#: Above this many classes the per-class table shows only the worst and best few.
MAX_CLASSES_IN_TABLE = 40
CLASSES_SHOWN_EACH_END = 10
#: Above this many classes the confusion matrix carries no numbers in its cells (unreadable anyway).
MAX_CLASSES_WITH_CELL_TEXT = 15

_TARGET_NAME = re.compile(r"^[a-z0-9_]+$")


class ReportInputError(ValueError):
    """The results handed to the report are inconsistent; the message names the target and system."""


@dataclass
class SystemResult:
    """One system's output on a target's evaluation rows: probabilities, or labels only (the baseline)."""

    name: str
    probs: np.ndarray | None = None
    predictions: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.probs is None) == (self.predictions is None):
            raise ReportInputError(f"system {self.name!r}: give exactly one of probs or predictions")


@dataclass
class TargetResults:
    """Everything evaluated for one target (e.g. ``category`` or ``priority``).

    ``name`` becomes part of the figure file names, so it is restricted to ``[a-z0-9_]``.
    ``primary`` is the system the routing decision uses; ``uncalibrated`` is the same ensemble
    before temperature scaling (the "before" of the calibration plot), or None if there is none.
    """

    name: str
    labels: list[str]
    y_true: np.ndarray
    systems: list[SystemResult]
    seed_weights: dict[str, float] = field(default_factory=dict)
    learned_weights: dict[str, float] = field(default_factory=dict)
    temperature: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    #: Milliseconds each member took to predict the evaluation rows, per 1,000 tickets.
    member_costs: dict[str, float] = field(default_factory=dict)
    #: Members without weight that were not refitted on all rows: their fold copies' average is scored.
    fold_stand_ins: list[str] = field(default_factory=list)
    #: The weights the bundle serves with (learned or seed).
    live_weights: dict[str, float] = field(default_factory=dict)
    primary: str = CALIBRATED_ENSEMBLE
    uncalibrated: str | None = LEARNED_ENSEMBLE
    #: The primary system's conformal sets (boolean rows x labels) at ``alpha``; None without them.
    prediction_sets: np.ndarray | None = None
    alpha: float | None = None

    def __post_init__(self) -> None:
        if not _TARGET_NAME.match(self.name):
            raise ReportInputError(f"target name {self.name!r} must match [a-z0-9_]+ (used in file names)")
        if len(self.labels) < 2:
            raise ReportInputError(f"target {self.name!r}: need at least 2 labels, got {len(self.labels)}")
        names = [s.name for s in self.systems]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ReportInputError(f"target {self.name!r}: duplicate system names {duplicates}")
        for role, wanted in (("primary", self.primary), ("uncalibrated", self.uncalibrated)):
            if wanted is None:
                continue
            if wanted not in names:
                raise ReportInputError(f"target {self.name!r}: {role} system {wanted!r} not among {names}")
            if self.system(wanted).probs is None:
                raise ReportInputError(f"target {self.name!r}: {role} system {wanted!r} needs probabilities")
        if self.temperature is not None and not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ReportInputError(f"target {self.name!r}: temperature must be > 0, got {self.temperature}")

    def system(self, name: str) -> SystemResult:
        return next(s for s in self.systems if s.name == name)

    def figure_names(self) -> dict[str, str]:
        return {kind: f"{kind}_{self.name}.png" for kind in ("confusion", "calibration", "risk_coverage")}


@dataclass
class EvaluationReport:
    """Builds the report of one run (one or two targets) and writes it to a folder.

    ``dataset`` describes the data and split (file, row counts, split sizes, ...); it is copied
    into the JSON and listed at the top of the Markdown as given.
    """

    dataset: dict[str, Any]
    targets: list[TargetResults]
    threshold: float
    n_bins: int = 15
    #: The tags section (models/tags.py::tags_summary), when the bundle has tags.
    tags: dict[str, Any] | None = None
    _cache: dict[str, Any] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.targets:
            raise ReportInputError("a report needs at least one target")
        names = [t.name for t in self.targets]
        if len(set(names)) != len(names):
            raise ReportInputError(f"target names must be unique, got {names}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ReportInputError(f"threshold must lie in [0, 1], got {self.threshold}")

    def to_dict(self) -> dict[str, Any]:
        """All numbers of the report as JSON-ready Python types (computed once)."""
        if self._cache is None:
            self._cache = _jsonable(
                {
                    "dataset": self.dataset,
                    "threshold": self.threshold,
                    "n_bins": self.n_bins,
                    "targets": {t.name: self._target_dict(t) for t in self.targets},
                    "tags": self.tags,
                }
            )
        return self._cache

    def _target_dict(self, target: TargetResults) -> dict[str, Any]:
        systems: dict[str, Any] = {}
        for system in target.systems:
            try:
                if system.probs is not None:
                    systems[system.name] = classification_summary(
                        target.y_true, system.probs, target.labels, self.threshold
                    )
                else:
                    systems[system.name] = prediction_summary(
                        target.y_true, system.predictions, target.labels
                    )
            except MetricsInputError as err:
                raise ReportInputError(f"target {target.name!r}, system {system.name!r}: {err}") from err

        after = target.system(target.primary)
        before = target.system(target.uncalibrated) if target.uncalibrated else None
        calibration = {
            "temperature": target.temperature,
            "before_system": target.uncalibrated,
            "after_system": target.primary,
            "ece_before": systems[before.name]["ece"] if before else None,
            "ece_after": systems[after.name]["ece"],
            "bins_before": reliability_bins(before.probs, target.y_true, self.n_bins) if before else None,
            "bins_after": reliability_bins(after.probs, target.y_true, self.n_bins),
        }
        live = target.live_weights or target.learned_weights
        members = {
            name: {
                "live_weight": live.get(name),
                "prediction_ms_per_1000": target.member_costs.get(name),
                "weighted": bool(live.get(name, 0.0) > 0),
                "refitted": name not in target.fold_stand_ins,
            }
            for name in target.member_costs
        }
        return {
            "labels": list(target.labels),
            "n_rows": len(target.y_true),
            "members": members,
            "highest_priority": highest_priority_recall(
                target.labels, target.y_true, after.probs, self.threshold
            )
            if target.name == Target.PRIORITY
            else None,
            "n_classes": len(target.labels),
            "primary_system": target.primary,
            "systems": systems,
            "weights": {"seed": dict(target.seed_weights), "learned": dict(target.learned_weights)},
            "calibration": calibration,
            "timings_seconds": dict(target.timings),
            "figures": target.figure_names(),
            "conformal": self._conformal(target, after),
        }

    def _conformal(self, target: TargetResults, after: SystemResult) -> dict[str, Any] | None:
        if target.prediction_sets is None or target.alpha is None or after.probs is None:
            return None
        sets, alpha = target.prediction_sets, target.alpha
        return conformal_summary(after.probs, target.y_true, sets, target.labels, self.threshold, alpha)

    def write(self, out_dir: Path) -> dict[str, Path]:
        """Write report.json, report.md and three PNGs per target; returns them by file name."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        report = self.to_dict()
        written: dict[str, Path] = {}
        for target in self.targets:
            tdict = report["targets"][target.name]
            figures = tdict["figures"]
            primary = target.system(target.primary)
            _plot_confusion(
                tdict["systems"][target.primary]["confusion"],
                target.labels,
                out_dir / figures["confusion"],
                f"{target.name}: {target.primary}, rows normalised",
            )
            _plot_calibration(tdict["calibration"], out_dir / figures["calibration"], target.name)
            _plot_risk_coverage(
                primary.probs,
                target.y_true,
                tdict["systems"][target.primary]["risk_coverage"],
                self.threshold,
                out_dir / figures["risk_coverage"],
                f"{target.name}: {target.primary}",
            )
            written.update({name: out_dir / name for name in figures.values()})
        (out_dir / "report.md").write_text(render_markdown(report), encoding="utf-8")
        (out_dir / "report.json").write_text(
            json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False), encoding="utf-8"
        )
        written["report.md"] = out_dir / "report.md"
        written["report.json"] = out_dir / "report.json"
        return written


def _jsonable(value: Any) -> Any:
    """numpy scalars/arrays -> Python, non-finite floats -> None (JSON has no NaN), Paths -> str."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


# ---------------------------------------------------------------------------------------------- text


def _num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _per_class_rows(names: Sequence[str], per_class: dict[str, Any]) -> list[list[str]]:
    return [
        [
            name,
            _num(per_class[name]["precision"], 3),
            _num(per_class[name]["recall"], 3),
            _num(per_class[name]["f1"], 3),
            str(per_class[name]["support"]),
        ]
        for name in names
    ]


def _target_markdown(name: str, t: dict[str, Any], threshold: float) -> list[str]:
    primary = t["primary_system"]
    ps = t["systems"][primary]
    out = [f"## Target: {name}", "", f"{t['n_rows']} evaluation rows, {t['n_classes']} classes.", ""]

    out += ["### Systems", ""]
    out += _table(
        ["system", "accuracy", "macro-F1", "weighted-F1", "log-loss", "ECE"],
        [
            [
                s,
                _num(m["accuracy"]),
                _num(m["macro_f1"]),
                _num(m["weighted_f1"]),
                _num(m["log_loss"]),
                _num(m["ece"]),
            ]
            for s, m in t["systems"].items()
        ],
    )
    out += [
        f"Routing uses **{primary}**. Log-loss and ECE need probabilities, so the baseline has none.",
        "",
    ]

    seed, learned = t["weights"]["seed"], t["weights"]["learned"]
    costs = t.get("members") or {}
    if seed or learned:
        members = list(seed) + [m for m in learned if m not in seed]
        out += ["### Ensemble weights", ""]
        out += [
            "Learned weights minimise the log-loss of the soft vote on out-of-fold predictions over the "
            "training rows. A member with no weight is not run when serving; its cost is what it would add.",
            "",
        ]
        out += _table(
            ["member", "seed", "learned", "live", "predict ms / 1,000 tickets"],
            [
                [
                    m,
                    _num(seed.get(m), 3),
                    _num(learned.get(m), 3),
                    _num((costs.get(m) or {}).get("live_weight"), 3),
                    _num((costs.get(m) or {}).get("prediction_ms_per_1000"), 0),
                ]
                for m in members
            ],
        )
        idle = [m for m, c in costs.items() if not c["weighted"]]
        if idle:
            out += [f"**No weight:** {', '.join(idle)} (skipped when serving).", ""]
            stand_ins = [m for m in idle if not costs[m].get("refitted", True)]
            if stand_ins:
                out += [
                    f"Not refitted on all rows, for want of weight: {', '.join(stand_ins)}. Their rows above "
                    "score the average of their out-of-fold copies, each fitted on part of the rows.",
                    "",
                ]
    hp = t.get("highest_priority")
    if hp:
        out += [
            f"**Highest priority ({_cell(hp['label'])}):** {hp['support']} tickets; recall "
            f"{_num(hp['recall'])}; auto-routed as {_cell(hp['label'])} at the threshold {threshold:.2f}: "
            f"{_num(hp['recall_at_threshold'])} of them.",
            "",
        ]

    cal = t["calibration"]
    temperature = "not given" if cal["temperature"] is None else f"T = {cal['temperature']:.3f}"
    out += ["### Calibration", "", f"Temperature scaling: {temperature}.", ""]
    if cal["before_system"] is not None:
        out += [
            f"ECE before ({cal['before_system']}): {_num(cal['ece_before'])}; "
            f"after ({cal['after_system']}): {_num(cal['ece_after'])}.",
            "",
        ]
    else:
        out += [f"ECE of {cal['after_system']}: {_num(cal['ece_after'])}.", ""]
    out += [f"![calibration]({t['figures']['calibration']})", ""]

    out += [f"### Risk-coverage ({primary})", ""]
    out += [
        "A ticket is auto-routed when its top probability is at least the threshold; the rest go to people.",
        "",
    ]
    out += _table(
        ["threshold", "coverage (auto-routed)", "accuracy on auto-routed", "n auto-routed"],
        [
            [f"{r['threshold']:.2f}", _pct(r["coverage"]), _num(r["accuracy"]), str(r["n_covered"])]
            for r in ps["risk_coverage"]
        ],
    )
    out += [
        f"**At the routing threshold {threshold:.2f}:** coverage {_pct(ps['coverage'])} "
        f"({ps['n_covered']} of {t['n_rows']}), accuracy on them {_num(ps['covered_accuracy'])}.",
        "",
        f"![risk-coverage]({t['figures']['risk_coverage']})",
        "",
    ]

    if t.get("conformal"):
        out += _conformal_markdown(t["conformal"])

    out += [f"### Per-class precision / recall / F1 ({primary})", ""]
    per_class = ps["per_class"]
    header = ["class", "precision", "recall", "F1", "support"]
    if len(per_class) > MAX_CLASSES_IN_TABLE:
        ranked = sorted((m["f1"], c) for c, m in per_class.items() if m["f1"] is not None)
        k = CLASSES_SHOWN_EACH_END
        out += [
            f"{len(per_class)} classes: showing the {k} with the lowest F1 and the {k} with the highest; "
            "every class is in report.json.",
            "",
            f"Lowest {k} by F1:",
            "",
        ]
        out += _table(header, _per_class_rows([c for _, c in ranked[:k]], per_class))
        out += [f"Highest {k} by F1:", ""]
        out += _table(header, _per_class_rows([c for _, c in reversed(ranked[-k:])], per_class))
    else:
        out += _table(header, _per_class_rows(list(per_class), per_class))

    out += ["### Confusion matrix", "", f"![confusion matrix]({t['figures']['confusion']})", ""]

    if t["timings_seconds"]:
        out += ["### Training times", ""]
        rows = [[m, f"{s:.1f}"] for m, s in t["timings_seconds"].items()]
        rows.append(["total", f"{sum(t['timings_seconds'].values()):.1f}"])
        out += _table(["member", "seconds"], rows)
    return out


def _policy_cells(p: dict[str, Any]) -> list[str]:
    return [_pct(p["coverage"]), _num(p["accuracy"])]


def _conformal_markdown(c: dict[str, Any]) -> list[str]:
    """Coverage per class, set sizes, and the routing rules side by side (models/conformal_evaluation.py)."""
    alpha = c["alpha"]
    out = [f"### Conformal prediction sets (alpha {alpha:g}, class-conditional)", ""]
    out += [
        f"Each set aims to hold the true label for at least {1 - alpha:.0%} of the tickets of every class. "
        f"Held-out coverage: {_pct(c['coverage'])}; mean set size {c['mean_set_size']:.2f}; "
        f"empty sets {c['empty_sets']}.",
        "",
    ]
    worst = c["worst_class"]
    if worst:
        out += [
            f"Worst class among the {c['classes_with_min_rows']} with at least "
            f"{c['min_rows_for_class_coverage']} evaluation rows: **{_cell(worst['label'])}**, coverage "
            f"{_pct(worst['coverage'])} over {worst['rows']} rows.",
            "",
        ]
    else:
        out += [
            f"No class has {c['min_rows_for_class_coverage']} evaluation rows; per-class coverage is "
            "in report.json but too noisy to rank.",
            "",
        ]
    out += _table(list(c["set_sizes"]), [[str(v) for v in c["set_sizes"].values()]])
    lowest = sorted(
        (v["coverage"], k) for k, v in c["per_class"].items() if v["rows"] >= c["min_rows_for_class_coverage"]
    )[:CLASSES_SHOWN_EACH_END]
    if lowest:
        out += ["Lowest per-class coverage:", ""]
        out += _table(
            ["class", "coverage", "rows"],
            [[k, _pct(cov), str(c["per_class"][k]["rows"])] for cov, k in lowest],
        )
    policies = c["policies"]
    out += [f"Routing rules at the threshold {c['threshold']:.2f}:", ""]
    out += _table(
        ["rule", "auto-routed", "accuracy on them"],
        [[rule, *_policy_cells(p)] for rule, p in policies.items()],
    )
    out += ["Risk-coverage of the threshold rule and of threshold + singleton set (`both`) side by side:", ""]
    out += _table(
        ["threshold", "threshold: auto-routed", "accuracy", "both: auto-routed", "accuracy"],
        [
            [f"{r['threshold']:.2f}", *_policy_cells(r["threshold_rule"]), *_policy_cells(r["both_rule"])]
            for r in c["risk_coverage_side_by_side"]
        ],
    )
    out += [f"**Default rule: {c['chosen_rule']}**, because {c['reason']}.", ""]
    return out


_TAG_FIGURES = (
    ("micro-F1", "micro_f1"),
    ("macro-F1", "macro_f1"),
    ("Hamming loss", "hamming_loss"),
    ("exact match", "exact_match"),
)


def _tags_markdown(t: dict[str, Any]) -> list[str]:
    out = ["## Tags (multi-label)", "", f"{t['tags']} tags learned, scored on {t['rows']} rows.", ""]
    systems = [("tag model (per-tag thresholds)", t["model"])]
    if t.get("baseline"):
        systems.append(("baseline (TF-IDF + one-vs-rest LinearSVC)", t["baseline"]))
    out += _table(
        ["system", *(name for name, _ in _TAG_FIGURES)],
        [[name, *(_num(m[key]) for _, key in _TAG_FIGURES)] for name, m in systems],
    )
    rare = t["tags_not_learned"]
    if rare:
        common = sorted(rare.items(), key=lambda kv: (-kv[1], kv[0]))[:CLASSES_SHOWN_EACH_END]
        shown = ", ".join(f"{_cell(k)} ({v})" for k, v in common)
        out += [
            f"{len(rare)} tags have fewer than 5 training tickets and were not learned; the most frequent: "
            f"{shown}; every one is in report.json. Their {t['tag_occurrences_outside_the_model']} "
            "occurrences on these rows are left out of the figures above (neither system can predict them).",
            "",
        ]
    return out


def render_markdown(report: dict[str, Any]) -> str:
    """The human summary of a report dict (as produced by :meth:`EvaluationReport.to_dict`)."""
    out = ["# Evaluation report", ""]
    if report["dataset"]:
        out += [f"- **{_cell(k)}**: {_cell(v)}" for k, v in report["dataset"].items()] + [""]
    out += [
        f"Routing threshold: {report['threshold']:.2f}. ECE uses {report['n_bins']} equal-width bins.",
        "",
    ]
    for name, t in report["targets"].items():
        out += _target_markdown(name, t, report["threshold"])
    if report.get("tags"):
        out += _tags_markdown(report["tags"])
    return "\n".join(out).rstrip() + "\n"


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A few short lines per target for the terminal, from a report dict (or a loaded report.json)."""
    lines: list[str] = []
    threshold = report["threshold"]
    for name, t in report["targets"].items():
        primary = t["primary_system"]
        m = t["systems"][primary]
        lines.append(
            f"{name} ({primary}): accuracy {_num(m['accuracy'])}, macro-F1 {_num(m['macro_f1'])}, "
            f"ECE {_num(m['ece'])}"
        )
        lines.append(
            f"  auto-routed at >= {threshold:.2f}: {_pct(m['coverage'])} of {t['n_rows']}, "
            f"accuracy on them {_num(m['covered_accuracy'])}"
        )
        if BASELINE in t["systems"]:
            b = t["systems"][BASELINE]
            lines.append(f"  baseline: accuracy {_num(b['accuracy'])}, macro-F1 {_num(b['macro_f1'])}")
        c = t.get("conformal")
        if c:
            worst = c["worst_class"]
            shown = "" if not worst else f"; worst class {worst['label']!r} {_pct(worst['coverage'])}"
            single = c["policies"]["singleton"]
            lines.append(
                f"  conformal sets at alpha {c['alpha']:g}: coverage {_pct(c['coverage'])}{shown}, mean size "
                f"{c['mean_set_size']:.2f}; singleton rule auto-routes {_pct(single['coverage'])} at "
                f"{_num(single['accuracy'])}; default rule {c['chosen_rule']}"
            )
        hp = t.get("highest_priority")
        if hp:
            lines.append(
                f"  highest priority {hp['label']!r}: recall {_num(hp['recall'])}, caught automatically "
                f"at >= {threshold:.2f}: {_num(hp['recall_at_threshold'])}"
            )
    tags = report.get("tags")
    if tags:
        m = tags["model"]
        base = tags.get("baseline")
        shown = (
            ""
            if not base
            else f" (baseline micro-F1 {_num(base['micro_f1'])}, macro-F1 {_num(base['macro_f1'])})"
        )
        lines.append(
            f"tags: micro-F1 {_num(m['micro_f1'])}, macro-F1 {_num(m['macro_f1'])}, Hamming loss "
            f"{_num(m['hamming_loss'])}, exact match {_num(m['exact_match'])}{shown}"
        )
    return lines


#: Common priority names, higher = more urgent; "p1" style labels are ranked by their number.
_PRIORITY_RANK = {
    "lowest": 0, "low": 1, "normal": 2, "medium": 2, "moderate": 2, "high": 3, "highest": 4,
    "urgent": 4, "critical": 5, "blocker": 5, "emergency": 5,
}  # fmt: skip


def highest_priority_label(labels: Sequence[str]) -> str | None:
    """The most urgent of a priority target's labels, when their names say so (else None)."""
    ranks: dict[str, float] = {}
    for label in labels:
        key = str(label).strip().lower()
        if key in _PRIORITY_RANK:
            ranks[label] = _PRIORITY_RANK[key]
        elif re.fullmatch(r"p[0-9]", key):
            ranks[label] = 10 - int(key[1])
    return max(ranks, key=ranks.__getitem__) if ranks else None


def highest_priority_recall(
    labels: Sequence[str], y_true: np.ndarray, probs: np.ndarray | None, threshold: float
) -> dict[str, Any] | None:
    """Of the truly most urgent tickets: the share predicted so, and the share predicted so with a
    confidence at the routing threshold (those a helpdesk gets without a person looking)."""
    label = highest_priority_label(labels)
    if label is None or probs is None:
        return None
    k = list(labels).index(label)
    truth = np.asarray(y_true) == k
    predicted = probs.argmax(axis=1) == k
    sure = probs.max(axis=1) >= threshold
    support = int(truth.sum())
    return {
        "label": label,
        "support": support,
        "recall": float((predicted & truth).sum() / support) if support else None,
        "recall_at_threshold": float((predicted & sure & truth).sum() / support) if support else None,
    }


# ------------------------------------------------------------------------------------------- figures


def _short(label: str, limit: int = 28) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _plot_confusion(confusion: list[list[int]], labels: Sequence[str], path: Path, title: str) -> None:
    """Row-normalised (recall per true class) so rare classes are as visible as frequent ones."""
    matrix = np.asarray(confusion, dtype=np.float64)
    row_sums = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, row_sums, out=np.zeros_like(matrix), where=row_sums > 0)
    k = len(labels)
    side = float(np.clip(3.0 + 0.22 * k, 6.0, 26.0))
    font = float(np.clip(10.0 - 0.06 * k, 5.5, 9.0))
    fig = Figure(figsize=(side + 1.5, side), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of true class")
    ticks = np.arange(k)
    short = [_short(str(label)) for label in labels]
    few = k <= MAX_CLASSES_WITH_CELL_TEXT
    ax.set_xticks(ticks, short, rotation=45 if few else 90, ha="right" if few else "center", fontsize=font)
    ax.set_yticks(ticks, short, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if few:
        for i in range(k):
            for j in range(k):
                if matrix[i, j]:
                    colour = "white" if normalised[i, j] > 0.5 else "black"
                    ax.text(
                        j, i, f"{normalised[i, j]:.2f}", ha="center", va="center", fontsize=7, color=colour
                    )
    fig.savefig(path, dpi=120)


def _plot_bins(ax: Any, bins: list[dict[str, Any]] | None, label: str, style: str) -> None:
    if not bins:
        return
    filled = [b for b in bins if b["count"]]
    ax.plot(
        [b["mean_confidence"] for b in filled],
        [b["accuracy"] for b in filled],
        style,
        label=label,
        markersize=5,
    )


def _plot_calibration(calibration: dict[str, Any], path: Path, target: str) -> None:
    """Reliability diagram: accuracy vs confidence per bin; the diagonal is perfect calibration."""
    fig = Figure(figsize=(6.5, 7.0), layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    if calibration["bins_before"] is not None:
        _plot_bins(
            top,
            calibration["bins_before"],
            f"before: {calibration['before_system']} (ECE {_num(calibration['ece_before'], 3)})",
            "o-",
        )
    _plot_bins(
        top,
        calibration["bins_after"],
        f"after: {calibration['after_system']} (ECE {_num(calibration['ece_after'], 3)})",
        "s-",
    )
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy in bin")
    top.set_title(f"{target}: reliability diagram")
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)

    after = calibration["bins_after"]
    width = after[0]["upper"] - after[0]["lower"]
    centres = [(b["lower"] + b["upper"]) / 2 for b in after]
    total = sum(b["count"] for b in after)
    if calibration["bins_before"] is not None:
        before = calibration["bins_before"]
        bottom.bar(
            [c - width / 4 for c in centres],
            [b["count"] / total for b in before],
            width=width / 2,
            label="before",
            alpha=0.7,
        )
    bottom.bar(
        [c + width / 4 for c in centres],
        [b["count"] / total for b in after],
        width=width / 2,
        label="after",
        alpha=0.7,
    )
    bottom.set_xlabel("confidence (top probability)")
    bottom.set_ylabel("share of rows")
    bottom.legend(fontsize=8)
    fig.savefig(path, dpi=120)


def _plot_risk_coverage(
    probs: np.ndarray,
    y: np.ndarray,
    table: list[dict[str, Any]],
    threshold: float,
    path: Path,
    title: str,
) -> None:
    """Accuracy on the auto-routed share as the threshold sweeps, with the reported thresholds marked."""
    confidence = probs.max(axis=1)
    order = np.argsort(-confidence, kind="stable")
    correct = (probs.argmax(axis=1) == np.asarray(y))[order]
    n = len(correct)
    coverage = np.arange(1, n + 1) / n
    accuracy = np.cumsum(correct) / np.arange(1, n + 1)

    fig = Figure(figsize=(7.0, 5.0), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(coverage, accuracy, color="tab:blue", label="accuracy of the most confident share")
    marked = [r for r in table if r["n_covered"]]
    ax.plot(
        [r["coverage"] for r in marked],
        [r["accuracy"] for r in marked],
        "o",
        color="tab:orange",
        label="thresholds",
    )
    for r in marked:
        ax.annotate(
            f"{r['threshold']:.2f}",
            (r["coverage"], r["accuracy"]),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=7,
        )
    at = (confidence >= threshold).mean()
    ax.axvline(
        at,
        color="tab:red",
        linestyle="--",
        label=f"routing threshold {threshold:.2f}: {100 * at:.1f} % auto-routed",
    )
    ax.set_xlim(0, 1.02)
    ax.set_ylim(max(0.0, float(accuracy.min()) - 0.05), 1.01)
    ax.set_xlabel("coverage (share auto-routed)")
    ax.set_ylabel("accuracy on auto-routed tickets")
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=120)
