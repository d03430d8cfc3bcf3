from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ticket_triage.models.baseline import BaselineInputError, LinearSvcBaseline
from ticket_triage.models.report import (
    BASELINE,
    CALIBRATED_ENSEMBLE,
    LEARNED_ENSEMBLE,
    SEED_ENSEMBLE,
    EvaluationReport,
    ReportInputError,
    SystemResult,
    TargetResults,
    summary_lines,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _probs(
    rng: np.random.Generator, y: np.ndarray, n_classes: int, signal: float, scale: float = 1.0
) -> np.ndarray:
    logits = rng.normal(size=(len(y), n_classes))
    logits[np.arange(len(y)), y] += signal
    return _softmax(logits * scale)


def _target(name: str, labels: list[str], n_rows: int, seed: int) -> TargetResults:
    rng = np.random.default_rng(seed)
    k = len(labels)
    y = rng.integers(0, k, size=n_rows)
    logits = rng.normal(size=(n_rows, k))
    logits[np.arange(n_rows), y] += 2.0
    return TargetResults(
        name=name,
        labels=labels,
        y_true=y,
        systems=[
            SystemResult("xgboost", probs=_probs(rng, y, k, 1.5)),
            SystemResult("logreg", probs=_probs(rng, y, k, 1.0)),
            SystemResult(SEED_ENSEMBLE, probs=_probs(rng, y, k, 1.8)),
            # logit of the true class ~ N(2, 1), others ~ N(0, 1): the exact posterior is softmax(2 * logits)
            SystemResult(LEARNED_ENSEMBLE, probs=_softmax(logits * 6.0)),  # overconfident
            SystemResult(CALIBRATED_ENSEMBLE, probs=_softmax(logits * 2.0)),
            SystemResult(BASELINE, predictions=np.where(rng.random(n_rows) < 0.7, y, (y + 1) % k)),
        ],
        seed_weights={"xgboost": 0.34, "logreg": 0.06},
        learned_weights={"xgboost": 0.7, "logreg": 0.3},
        temperature=3.0,
        timings={"xgboost": 12.5, "logreg": 1.25},
    )


def _report(**overrides: object) -> EvaluationReport:
    targets = [
        _target("category", ["billing", "tech | support", "sales", "returns"], 120, seed=3),
        _target("priority", ["low", "medium", "high"], 120, seed=4),
    ]
    kwargs = {
        "dataset": {"file": "tickets.csv", "n_rows": np.int64(1200)},
        "targets": targets,
        "threshold": 0.7,
    }
    kwargs.update(overrides)
    return EvaluationReport(**kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[EvaluationReport, Path]:
    report = _report()
    out = tmp_path_factory.mktemp("report")
    report.write(out)
    return report, out


def test_write_creates_every_file_and_pngs_are_real(written: tuple[EvaluationReport, Path]) -> None:
    _, out = written
    names = {"report.json", "report.md"}
    for target in ("category", "priority"):
        names |= {f"confusion_{target}.png", f"calibration_{target}.png", f"risk_coverage_{target}.png"}
    assert {p.name for p in out.iterdir()} == names
    for png in out.glob("*.png"):
        data = png.read_bytes()
        assert data[:8] == PNG_MAGIC, png.name
        assert len(data) > 10_000, png.name


def test_json_has_every_system_with_metrics_matching_the_inputs(
    written: tuple[EvaluationReport, Path],
) -> None:
    report, out = written
    loaded = json.loads((out / "report.json").read_text())
    assert loaded["dataset"] == {"file": "tickets.csv", "n_rows": 1200}
    assert set(loaded["targets"]) == {"category", "priority"}
    for target in report.targets:
        t = loaded["targets"][target.name]
        assert list(t["systems"]) == [s.name for s in target.systems]
        for system in target.systems:
            pred = system.predictions if system.probs is None else system.probs.argmax(axis=1)
            assert t["systems"][system.name]["accuracy"] == pytest.approx(np.mean(pred == target.y_true))
        calibrated = target.system(CALIBRATED_ENSEMBLE).probs
        covered = calibrated.max(axis=1) >= 0.7
        assert t["systems"][CALIBRATED_ENSEMBLE]["coverage"] == pytest.approx(covered.mean())
        assert t["systems"][BASELINE]["ece"] is None
        assert t["weights"]["learned"] == {"xgboost": 0.7, "logreg": 0.3}
        # the overconfident "before" must come out worse calibrated than the "after"
        assert t["calibration"]["ece_before"] > t["calibration"]["ece_after"]
        assert t["timings_seconds"] == {"xgboost": 12.5, "logreg": 1.25}


def test_markdown_has_table_rows_links_and_routing_line(written: tuple[EvaluationReport, Path]) -> None:
    report, out = written
    md = (out / "report.md").read_text()
    loaded = report.to_dict()
    for target in report.targets:
        systems = loaded["targets"][target.name]["systems"]
        for name, m in systems.items():
            assert f"| {name} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m['weighted_f1']:.4f} |" in md
        assert f"({f'confusion_{target.name}.png'})" in md
        assert f"(calibration_{target.name}.png)" in md
        assert f"(risk_coverage_{target.name}.png)" in md
        primary = systems[CALIBRATED_ENSEMBLE]
        assert f"accuracy on them {primary['covered_accuracy']:.4f}" in md
    baseline_rows = [line for line in md.splitlines() if line.startswith(f"| {BASELINE} | ")]
    assert len(baseline_rows) == 2 and all(r.endswith("| — | — |") for r in baseline_rows)  # no log-loss/ECE
    assert "| xgboost | 0.340 | 0.700 |" in md
    assert "tech \\| support" in md  # pipes in class names do not break the table
    for threshold in ("0.50", "0.75", "0.95"):
        assert f"| {threshold} | " in md


def test_summary_lines_from_loaded_json(written: tuple[EvaluationReport, Path]) -> None:
    _, out = written
    loaded = json.loads((out / "report.json").read_text())
    lines = summary_lines(loaded)
    text = "\n".join(lines)
    for target in ("category", "priority"):
        m = loaded["targets"][target]["systems"][CALIBRATED_ENSEMBLE]
        assert f"{target} ({CALIBRATED_ENSEMBLE}): accuracy {m['accuracy']:.4f}" in text
        assert f"ECE {m['ece']:.4f}" in text
        assert f"{100 * m['coverage']:.1f} %" in text
    # two targets x (summary, coverage, baseline) plus the priority target's most urgent class
    assert len(lines) == 7
    hp = loaded["targets"]["priority"]["highest_priority"]
    assert hp["label"] == "high"
    assert f"highest priority 'high': recall {hp['recall']:.4f}" in text
    assert loaded["targets"]["category"]["highest_priority"] is None


def test_highest_priority_recall_counts_only_sure_and_right_answers() -> None:
    from ticket_triage.models.report import highest_priority_label, highest_priority_recall

    assert highest_priority_label(["low", "Urgent", "high"]) == "Urgent"
    assert highest_priority_label(["P3", "P1", "P2"]) == "P1"
    assert highest_priority_label(["billing", "tech"]) is None
    labels = ["low", "medium", "high"]
    y = np.array([2, 2, 2, 2, 0])
    probs = np.array(
        [
            [0.1, 0.1, 0.8],  # high, sure: counts at the threshold
            [0.2, 0.2, 0.6],  # high, unsure: recall only
            [0.7, 0.2, 0.1],  # missed
            [0.1, 0.1, 0.8],  # high, sure
            [0.1, 0.1, 0.8],  # not truly high: ignored
        ]
    )
    got = highest_priority_recall(labels, y, probs, 0.7)
    assert got == {"label": "high", "support": 4, "recall": 0.75, "recall_at_threshold": 0.5}


def test_many_classes_show_worst_and_best_ten(tmp_path: Path) -> None:
    labels = [f"queue_{i:02d}" for i in range(45)]
    report = _report(targets=[_target("category", labels, 450, seed=5)])
    report.write(tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "45 classes: showing the 10 with the lowest F1 and the 10 with the highest" in md
    section = md.split("### Per-class")[1].split("### Confusion")[0]
    rows = [line for line in section.splitlines() if line.startswith("| queue_")]
    assert len(rows) == 20
    f1 = [float(line.split("|")[4]) for line in rows]
    assert f1[:10] == sorted(f1[:10]) and f1[10:] == sorted(f1[10:], reverse=True)
    assert max(f1[:10]) <= min(f1[10:])
    png = (tmp_path / "confusion_category.png").read_bytes()
    assert png[:8] == PNG_MAGIC and len(png) > 10_000


def test_json_drops_numpy_types_and_nan(tmp_path: Path) -> None:
    report = _report(dataset={"rows": np.int32(5), "share": np.float32(0.25), "missing": float("nan")})
    report.write(tmp_path)
    loaded = json.loads((tmp_path / "report.json").read_text())
    assert loaded["dataset"] == {"rows": 5, "share": 0.25, "missing": None}


def test_inconsistent_inputs_raise_named_errors() -> None:
    with pytest.raises(ReportInputError, match="exactly one"):
        SystemResult("x", probs=np.eye(2), predictions=np.array([0, 1]))
    target = _target("category", ["a", "b"], 10, seed=0)
    with pytest.raises(ReportInputError, match="primary system 'missing'"):
        TargetResults("category", ["a", "b"], target.y_true, target.systems, primary="missing")
    with pytest.raises(ReportInputError, match="needs probabilities"):
        TargetResults("category", ["a", "b"], target.y_true, target.systems, primary=BASELINE)
    with pytest.raises(ReportInputError, match="file names"):
        TargetResults("Category!", ["a", "b"], target.y_true, target.systems)
    bad = [*target.systems, SystemResult("short", probs=np.full((3, 2), 0.5))]
    report = EvaluationReport({}, [TargetResults("category", ["a", "b"], target.y_true, bad)], 0.7)
    with pytest.raises(ReportInputError, match="system 'short'"):
        report.to_dict()


# ---------------------------------------------------------------------------------------------- baseline

_VOCAB = {
    0: ["invoice", "refund", "charged", "payment", "billing"],
    1: ["password", "login", "error", "crash", "reset"],
    2: ["delivery", "shipping", "parcel", "tracking", "courier"],
}
_FILLER = ["please", "help", "my", "the", "today", "urgent", "thanks", "account", "issue", "again"]


def _texts(rng: np.random.Generator, n_per_class: int) -> tuple[list[str], np.ndarray]:
    texts, y = [], []
    for label, words in _VOCAB.items():
        for _ in range(n_per_class):
            picked = list(rng.choice(words, size=2)) + list(rng.choice(_FILLER, size=4))
            rng.shuffle(picked)
            texts.append(" ".join(picked))
            y.append(label)
    return texts, np.array(y)


def test_baseline_beats_chance_on_separable_texts() -> None:
    rng = np.random.default_rng(7)
    train_x, train_y = _texts(rng, 30)
    test_x, test_y = _texts(rng, 15)
    model = LinearSvcBaseline(seed=7).fit(train_x, train_y)
    pred = model.predict(test_x)
    assert pred.shape == test_y.shape
    assert np.mean(pred == test_y) > 0.9  # chance is 1/3
    assert model.decision_function(test_x).shape == (len(test_x), 3)


def test_baseline_rejects_bad_input() -> None:
    with pytest.raises(BaselineInputError, match="not fitted"):
        LinearSvcBaseline().predict(["hello"])
    with pytest.raises(BaselineInputError, match="2 distinct"):
        LinearSvcBaseline().fit(["a b", "a c"], np.array([1, 1]))
    with pytest.raises(BaselineInputError, match="item 1"):
        LinearSvcBaseline().fit(["a b", None], np.array([0, 1]))  # type: ignore[list-item]
