"""Priority from weak supervision against priority from real labels, on one unseen split. Prints figures.

The synthetic v5 file is split as `bench_accuracy.py` splits it (stratified by queue, 20 %, seed 2026).
Two bundles are trained on the same 80 %: one with `--priority priority` (real labels), one with
`--weak-priority --priority priority` (labelling functions and Snorkel's LabelModel; the real column only
scores the weak labels). Both are evaluated by `triage evaluate` on the unseen 20 % against the real
priority labels.

    .venv/bin/python scripts/bench_weak_priority.py [--real-bundle bench-out/synthetic_v5/models/<v>]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pandas as pd

from bench_accuracy import DATASETS, ROOT, TRIAGE, held_out_split, run


def train(work: Path, name: str, extra: list[str], text: str, label: str) -> tuple[Path, str, float]:
    out, seconds = run(
        [
            *TRIAGE,
            "train",
            "--data",
            str(work / "train.csv"),
            "--text",
            text,
            "--label",
            label,
            *extra,
            "--out",
            str(work / name),
        ],
        work / f"{name}.train.log",
    )
    return Path(re.search(r"^bundle: (.+)$", out, re.M).group(1)), out, seconds  # type: ignore[union-attr]


def evaluate(work: Path, bundle: Path, name: str, text: str, label: str) -> dict:
    run(
        [
            *TRIAGE,
            "evaluate",
            "--model",
            str(bundle),
            "--data",
            str(work / "test.csv"),
            "--text",
            text,
            "--label",
            label,
            "--priority",
            "priority",
            "--out",
            str(work / f"{name}-eval"),
        ],
        work / f"{name}.evaluate.log",
    )
    report = json.loads((work / f"{name}-eval" / "report.json").read_text())
    return report["targets"]["priority"]["systems"]["ensemble (calibrated)"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "weak_priority")
    parser.add_argument(
        "--real-bundle",
        type=Path,
        help="A bundle already trained with real priority labels "
        "on the same split (bench_accuracy.py's synthetic_v5 run); trained here if absent.",
    )
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    ds = DATASETS["synthetic_v5"]
    work = args.out
    work.mkdir(parents=True, exist_ok=True)
    frame = pd.read_csv(args.shared / ds.file, dtype=str, keep_default_na=False)
    train_part, test_part = held_out_split(frame, ds.label, 0.2, args.seed)
    train_part.to_csv(work / "train.csv", index=False)
    test_part.to_csv(work / "test.csv", index=False)
    print(f"synthetic v5: {len(train_part)} rows to train on, {len(test_part)} unseen test rows")

    weak_bundle, weak_out, weak_seconds = train(
        work, "weak", ["--weak-priority", "--priority", "priority"], ds.text, ds.label
    )
    for line in weak_out.splitlines():
        if line.startswith("weak priority") or "against the real priority" in line:
            print(line)
    print("labelling functions (coverage, overlap, conflict, accuracy against the real labels):")
    weak_report = json.loads((weak_bundle / "evaluation" / "weak_priority.json").read_text())
    for f in weak_report["functions"]:
        print(
            f"  {f['name']:<20} {'/'.join(f['votes']) or '-':<9} coverage {f['coverage']:.3f} "
            f"overlap {f['overlap']:.3f} conflict {f['conflict']:.3f} "
            f"accuracy {f.get('accuracy', float('nan')):.3f}"
        )
    a = weak_report["agreement"]
    print(
        f"weak labels against the real ones on the training rows: {a['rows']} rows, accuracy "
        f"{a['accuracy']:.4f}, Cohen's kappa {a['kappa']:.4f}; coverage {weak_report['coverage']:.1%}"
    )

    real_bundle = args.real_bundle
    if real_bundle is None:
        real_bundle, _, real_seconds = train(work, "real", ["--priority", "priority"], ds.text, ds.label)
        print(f"real-label bundle trained in {real_seconds / 60:.1f} min")
    print(f"weak-label bundle trained in {weak_seconds / 60:.1f} min")
    for name, bundle in (("real labels", real_bundle), ("weak labels", weak_bundle)):
        m = evaluate(work, bundle, name.split()[0], ds.text, ds.label)
        print(
            f"priority trained on {name}: unseen accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f} "
            f"({len(test_part)} rows, scored against the real labels)"
        )


if __name__ == "__main__":
    main()
