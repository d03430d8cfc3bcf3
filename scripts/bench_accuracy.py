"""Accuracy benchmark on the public datasets: train via the CLI, evaluate on an unseen split, write tables.

For each dataset a stratified held-out test split (20 %, seeded) is carved from the CSV first; `triage train`
only ever sees the rest (and makes its own validation/test splits inside it). The table reports the unseen
split, scored by `triage evaluate`. Generated files go to bench-out/ (git-ignored); the datasets are read from
../shared/datasets and never copied into the repository.

    .venv/bin/python scripts/bench_accuracy.py [--datasets banking77,it_incidents,synthetic_v5]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from doc_sections import replace_section

ROOT = Path(__file__).resolve().parents[1]
TRIAGE = [sys.executable, "-m", "ticket_triage.cli"]


@dataclass(frozen=True)
class Dataset:
    file: str
    text: str
    label: str
    priority: str | None = None
    honest_metric: str = "accuracy"


DATASETS = {
    "banking77": Dataset("banking77_train.csv", "text", "category"),
    "it_incidents": Dataset(
        "it_incidents_train.csv",
        "short_description,description",
        "assignment_group",
        honest_metric="macro_f1",
    ),
    "synthetic_v5": Dataset("synthetic_tickets_v5_train.csv", "subject,body", "queue", priority="priority"),
}
SYSTEM_ORDER = [
    "xgboost",
    "lightgbm",
    "random_forest",
    "bert",
    "logreg",
    "ensemble (seed weights)",
    "ensemble (learned weights)",
    "ensemble (calibrated)",
    "baseline (TF-IDF + LinearSVC)",
]


def held_out_split(
    frame: pd.DataFrame, label: str, test_size: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified split; classes too small to stratify stay entirely in the training part."""
    frame = frame[frame[label].fillna("").astype(str).str.strip() != ""]
    counts = frame[label].value_counts()
    small = frame[label].isin(counts[counts < 5].index)
    train, test = train_test_split(
        frame[~small], test_size=test_size, random_state=seed, stratify=frame.loc[~small, label]
    )
    return pd.concat([train, frame[small]]), test


def run(cmd: list[str], log: Path) -> tuple[str, float]:
    start = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=fh, text=True)
    seconds = time.perf_counter() - start
    log.open("a").write(proc.stdout)
    if proc.returncode:
        raise SystemExit(f"command failed ({proc.returncode}), see {log}: {' '.join(cmd)}")
    return proc.stdout, seconds


def bench(name: str, ds: Dataset, shared: Path, out: Path, test_size: float, seed: int) -> dict:
    work = out / name
    work.mkdir(parents=True, exist_ok=True)
    frame = pd.read_csv(shared / ds.file, dtype=str, keep_default_na=False)
    train, test = held_out_split(frame, ds.label, test_size, seed)
    train.to_csv(work / "train.csv", index=False)
    test.to_csv(work / "test.csv", index=False)
    extra = ["--priority", ds.priority] if ds.priority else []
    stdout, seconds = run(
        [
            *TRIAGE,
            "train",
            "--data",
            str(work / "train.csv"),
            "--text",
            ds.text,
            "--label",
            ds.label,
            *extra,
            "--out",
            str(work / "models"),
        ],
        work / "train.log",
    )
    bundle = Path(re.search(r"^bundle: (.+)$", stdout, re.M).group(1))  # type: ignore[union-attr]
    run(
        [
            *TRIAGE,
            "evaluate",
            "--model",
            str(bundle),
            "--data",
            str(work / "test.csv"),
            "--text",
            ds.text,
            "--label",
            ds.label,
            *extra,
            "--out",
            str(work / "eval"),
        ],
        work / "evaluate.log",
    )
    summary = {
        "bundle": str(bundle),
        "train_rows": len(train),
        "test_rows": len(test),
        "train_seconds": seconds,
    }
    (work / "summary.json").write_text(json.dumps(summary))
    return collect(name, work)


def collect(name: str, work: Path) -> dict:
    """One dataset's figures from the files a run left in its work folder."""
    summary = json.loads((work / "summary.json").read_text())
    bundle = Path(summary["bundle"])
    return {
        "name": name,
        "dataset": DATASETS[name],
        **summary,
        "unseen": json.loads((work / "eval" / "report.json").read_text()),
        "training": json.loads((bundle / "evaluation" / "report.json").read_text()),
    }


MEMBERS = ("xgboost", "lightgbm", "random_forest", "bert", "logreg")


def machine_line() -> str:
    """The CPU these figures came from, its bf16/AVX flags and the precision `auto` chose on it."""
    from ticket_triage.runtime import cpu_flags, precision_report, usable_cpus

    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    flags = sorted(f for f in cpu_flags() if f.startswith(("avx", "amx")) or f == "bf16")
    report = precision_report()
    return (
        f"Machine: {model}, {usable_cpus()} usable cores; flags {', '.join(flags) or 'none'}; precision "
        f"`auto` chose **{report['chosen']}** ({report['reason']})."
    )


def verdict_lines(t: dict, metric: str) -> list[str]:
    """Does the ensemble beat its best single member and the baseline on the honest metric?"""
    systems = t["systems"]
    members = {m: systems[m][metric] for m in MEMBERS if m in systems}
    best = max(members, key=members.__getitem__)
    ens = systems["ensemble (calibrated)"][metric]
    base = systems.get("baseline (TF-IDF + LinearSVC)", {}).get(metric)
    out = [
        f"Ensemble vs best single member on {metric.replace('_', '-')}: {ens:.4f} vs {best} "
        f"{members[best]:.4f} ({100 * (ens - members[best]):+.2f} points); baseline {base:.4f} "
        f"({100 * (ens - base):+.2f} points).",
        "",
    ]
    hp = t.get("highest_priority")
    if hp and hp.get("recall") is not None:
        out += [
            f"Highest priority `{hp['label']}` ({hp['support']} tickets): recall {hp['recall']:.3f}; "
            f"auto-routed as `{hp['label']}` at the threshold: {hp['recall_at_threshold']:.3f} of them.",
            "",
        ]
    idle = [m for m, c in (t.get("members") or {}).items() if not c["weighted"]]
    if idle:
        costs = ", ".join(f"{m} {t['members'][m]['prediction_ms_per_1000']:.0f} ms" for m in idle)
        stand_ins = [m for m in idle if not t["members"][m].get("refitted", True)]
        note = "skipped when serving; prediction cost per 1,000 tickets"
        out += [f"No weight ({note}): {costs}.", ""]
        if stand_ins:
            out += [
                f"Not refitted on all rows for want of weight: {', '.join(stand_ins)}; their rows above "
                "score the average of their out-of-fold copies (each fitted on part of the training rows).",
                "",
            ]
    return out


def conformal_lines(c: dict | None) -> list[str]:
    """Per-class coverage of the conformal sets on the unseen split and the routing rules side by side."""
    if not c:
        return ["No conformal sets (bundle trained without them).", ""]
    worst = c["worst_class"]
    worst_text = (
        f"worst of the {c['classes_with_min_rows']} classes with >= {c['min_rows_for_class_coverage']} rows: "
        f"`{worst['label']}` {worst['coverage']:.1%} over {worst['rows']} rows"
        if worst
        else f"no class has {c['min_rows_for_class_coverage']} rows"
    )
    readable = [v for v in c["per_class"].values() if v["rows"] >= c["min_rows_for_class_coverage"]]
    below = sum(v["coverage"] < 1 - c["alpha"] for v in readable)
    out = [
        f"Conformal sets (class-conditional, alpha {c['alpha']:g}): coverage {c['coverage']:.1%}; "
        f"{worst_text}; {below} of {len(readable)} such classes below {1 - c['alpha']:.0%}; mean set size "
        f"{c['mean_set_size']:.2f}; set sizes "
        + ", ".join(f"{k}: {v}" for k, v in c["set_sizes"].items())
        + ".",
        "",
        "| rule (threshold " + f"{c['threshold']:.2f}) | auto-routed | accuracy on them |",
        "|---|---|---|",
    ]
    for rule, p in c["policies"].items():
        acc = "n/a" if p["accuracy"] is None else f"{p['accuracy']:.4f}"
        out.append(f"| {rule} | {p['coverage']:.1%} | {acc} |")
    for rule, comp in c["comparison"].items():
        matched = comp["threshold_rule_at_same_accuracy"]
        out.append("")
        out.append(
            f"At the {rule} rule's accuracy the threshold rule auto-routes {matched['coverage']:.1%} "
            f"(threshold {matched['threshold']}); gain {100 * comp['gain']:+.1f} points."
        )
    out += ["", f"Default rule chosen by this evaluation: **{c['chosen_rule']}** ({c['reason']}).", ""]
    return out


def render(results: list[dict]) -> str:
    lines = [
        "## Accuracy",
        "",
        "Produced by `scripts/bench_accuracy.py` on this project's 2-core, no-GPU machine.",
        "Each dataset gets a stratified, seeded 20 % test split that training never sees; plain `triage "
        "train` runs on the other 80 % (which it splits again into train/validation/test), and `triage "
        "evaluate` scores the unseen 20 %. Figures are from one run.",
        "",
        machine_line(),
        "",
    ]
    for r in results:
        ds: Dataset = r["dataset"]
        lines += [
            f"## {r['name']} (`{ds.file}`: `{ds.text}` → `{ds.label}`"
            + (f", priority `{ds.priority}`" if ds.priority else "")
            + ")",
            "",
            f"{r['train_rows']} rows to train on, {r['test_rows']} unseen test rows; honest metric: "
            f"{ds.honest_metric.replace('_', '-')}. Training wall time (whole `triage train` command): "
            f"**{r['train_seconds'] / 60:.1f} min**.",
            "",
        ]
        for target, t in r["unseen"]["targets"].items():
            lines += [
                f"### {target} on the unseen split ({t['n_rows']} rows, {t['n_classes']} classes)",
                "",
                "| system | accuracy | macro-F1 | weighted-F1 | log-loss | ECE |",
                "|---|---|---|---|---|---|",
            ]
            for system in SYSTEM_ORDER:
                m = t["systems"].get(system)
                if m is None:
                    continue
                ll = "n/a" if m.get("log_loss") is None else f"{m['log_loss']:.3f}"
                ece = "n/a" if m.get("ece") is None else f"{m['ece']:.3f}"
                lines.append(
                    f"| {system} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m['weighted_f1']:.4f} "
                    f"| {ll} | {ece} |"
                )
            lines += ["", *verdict_lines(t, ds.honest_metric)]
            cal = t["systems"]["ensemble (calibrated)"]
            cov = cal["coverage"]
            acc = cal["covered_accuracy"]
            lines += [
                "",
                f"At the routing threshold {r['unseen']['threshold']}: {cov:.1%} auto-routed, accuracy on "
                f"them {acc:.4f}."
                if acc is not None
                else "Nothing auto-routed at the threshold.",
                "",
                "| weights | " + " | ".join(t["weights"]["seed"]) + " |",
                "|---" * (len(t["weights"]["seed"]) + 1) + "|",
                "| seed | " + " | ".join(f"{v:.2f}" for v in t["weights"]["seed"].values()) + " |",
                "| learned | "
                + " | ".join(f"{t['weights']['learned'][k]:.2f}" for k in t["weights"]["seed"])
                + " |",
                "",
            ]
            lines += conformal_lines(t.get("conformal"))
            own = (r["training"]["targets"][target].get("conformal") or {}).get("chosen_rule")
            if own:
                lines += [f"The bundle's own default, chosen on its internal test split: **{own}**.", ""]
            timings = r["training"]["targets"][target]["timings_seconds"]
            lines += [
                "Training time per member (s): "
                + ", ".join(f"{k.removeprefix('member ')} {v:.0f}" for k, v in timings.items())
                + ".",
                "",
            ]
        feats = r["training"]["dataset"].get("feature_seconds", {})
        lines += [
            "Feature fitting and extraction on the training split (s): "
            + ", ".join(f"{k} {v:.0f}" for k, v in feats.items())
            + ".",
            "",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--test-size", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--render-only", action="store_true", help="Rebuild the table from an earlier run.")
    args = parser.parse_args()
    results = []
    for name in args.datasets.split(","):
        if args.render_only:
            results.append(collect(name, args.out / name))
            continue
        print(f"== {name}", flush=True)
        results.append(bench(name, DATASETS[name], args.shared, args.out, args.test_size, args.seed))
        print(f"   trained in {results[-1]['train_seconds'] / 60:.1f} min", flush=True)
    text = render(results)
    replace_section(args.doc, "accuracy", text)
    print(text)


if __name__ == "__main__":
    main()
