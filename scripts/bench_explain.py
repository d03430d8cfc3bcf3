"""Are the explanations faithful, and what do they cost? Prints figures; asserts nothing.

For N unseen tickets: every named word must be in the ticket at its span; the three words named most
strongly for the predicted label are deleted and the ticket scored again, which should lower that label's
probability. Then `/predict` latency with and without `?explain=true` on the same in-process app, each
ticket sent once per mode (different tickets per mode, so nothing is served from the cache).

    .venv/bin/python scripts/bench_explain.py --model bench-out/banking77/models \\
        --data bench-out/banking77/test.csv --text text [--n 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ticket_triage.data.loader import load_tickets
from ticket_triage.data.schema import TEXT, ColumnMap
from ticket_triage.models.bundle import load_bundle
from ticket_triage.models.predictor import CATEGORY, explain_row, predict_probas

KEY = "bench-explain-key-0123456789abcdef"


def without_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each span cut out (later spans first, so earlier offsets stay right)."""
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + text[end:]
    return text


def faithfulness(bundle_path: Path, frame: pd.DataFrame, top_words: int, max_evals: int) -> None:
    bundle = load_bundle(bundle_path)
    in_ticket = named = lowered = 0
    drops, seconds = [], []
    for i in range(len(frame)):
        row = frame.iloc[[i]].reset_index(drop=True)
        text = str(row[TEXT].iloc[0])
        start = time.perf_counter()
        evidence = explain_row(bundle, row, top_words=top_words, max_evals=max_evals)
        seconds.append(time.perf_counter() - start)
        for label in evidence:
            for w in label.words:
                named += 1
                in_ticket += text[w.start : w.end] == w.word
        top = evidence[0]
        spans = [(w.start, w.end) for w in top.words[:3]]
        edited = row.copy()
        edited[TEXT] = without_spans(text, spans)
        column = bundle.targets[CATEGORY].labels.index(top.label)
        after = float(predict_probas(bundle, edited)[1][CATEGORY][0, column])
        drops.append(top.probability - after)
        lowered += after < top.probability
    n = len(frame)
    print(
        f"tickets explained: {n}; explain_row p50 {statistics.median(seconds):.2f} s, "
        f"max {max(seconds):.2f} s"
    )
    print(f"named words found in their ticket at their span: {in_ticket} of {named}")
    print(
        f"deleting the top 3 words lowered the predicted label's probability for {lowered} of {n} "
        f"({lowered / n:.1%}); mean drop {np.mean(drops):.4f}, median {np.median(drops):.4f}"
    )


def latency(models: Path, frame: pd.DataFrame, requests: int) -> None:
    from fastapi.testclient import TestClient

    from ticket_triage.config import Settings
    from ticket_triage.serving.app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            models_dir=models,
            api_keys=f"bench:predict:{KEY}",
            api_key_file=Path(tmp) / "none.json",
            var_dir=Path(tmp),
            model_watch_seconds=0,
        )
        with TestClient(create_app(settings)) as client:
            headers = {"Authorization": f"Bearer {KEY}"}
            texts = frame[TEXT].tolist()
            timings: dict[str, list[float]] = {"plain": [], "explain": []}
            for i in range(2 * requests):
                mode = "plain" if i % 2 == 0 else "explain"
                body = {"description": texts[i % len(texts)]}
                start = time.perf_counter()
                response = client.post(
                    f"/predict?explain={'true' if mode == 'explain' else 'false'}", json=body, headers=headers
                )
                timings[mode].append(time.perf_counter() - start)
                response.raise_for_status()
    for mode, values in timings.items():
        print(
            f"/predict {mode}: {len(values)} uncached requests, "
            f"p50 {1000 * statistics.median(values):.1f} ms, max {1000 * max(values):.1f} ms"
        )
    ratio = statistics.median(timings["explain"]) / statistics.median(timings["plain"])
    print(f"explain costs {ratio:.1f}x a plain prediction (p50)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="A models folder (with LIVE) or a bundle.")
    parser.add_argument("--data", type=Path, required=True, help="Tickets the bundle never saw.")
    parser.add_argument("--text", required=True)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="Requests per mode for the latency part.")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    from ticket_triage.config import Settings

    settings = Settings()
    columns = ColumnMap(text=tuple(args.text.split(",")))
    frame = load_tickets([args.data], columns, require_label=False).frame
    frame = frame.sample(n=min(args.n, len(frame)), random_state=args.seed).reset_index(drop=True)
    print(f"explain_max_evals {settings.explain_max_evals}, top words {settings.explain_top_words}")
    faithfulness(args.model, frame, settings.explain_top_words, settings.explain_max_evals)
    models = args.model if (args.model / "LIVE").exists() else None
    if models is None:
        print("latency part skipped: --model is a bundle folder; give its models folder (with LIVE)")
        return
    latency(models, frame, args.requests)


if __name__ == "__main__":
    main()
