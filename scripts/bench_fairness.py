"""Fairness benchmark: single `/predict` latency while a 1,000-ticket batch of long texts is being scored.

Starts `triage serve` on a bundle, sends one `/predict/batch` of 1,000 long tickets (each BANKING77 texts
joined to about ``--chars`` characters: 1,000 x 4,000 is the default per-request character limit), and,
while that batch runs, one single `/predict` with a text not sent before every ``--every`` seconds. Prints
each single's latency and the batch's wall time; asserts nothing.

    .venv/bin/python scripts/bench_fairness.py --model /work/b77full/models [--json-out F]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import DEFAULT_DATA, Server, TicketFactory, free_port, load_texts, machine_facts


def long_texts(pool: list[str], count: int, chars: int) -> list[str]:
    """``count`` texts of about ``chars`` characters, each joined from distinct pool texts."""
    out, it = [], iter(pool * 50)
    for _ in range(count):
        parts: list[str] = []
        size = 0
        while size < chars:
            text = next(it)
            parts.append(text)
            size += len(text) + 1
        out.append(" ".join(parts)[:chars])
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    pool = load_texts(args.data, args.seed)
    factory = TicketFactory(rng)
    batch = [factory.make(t) for t in long_texts(pool[: len(pool) // 2], args.tickets, args.chars)]
    singles = iter(factory.make(t) for t in pool[len(pool) // 2 :])
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(args.model, args.port or free_port(), None, Path(tmp) / "server.log")
        server.env = {
            "TRIAGE_DATABASE_FILE": str(Path(tmp) / "review.sqlite3"),
            "TRIAGE_SPOOL_DIR": f"{tmp}/spool",
        }
        server.start()
        try:
            server.wait_ready(args.ready_timeout)
            headers = {"Authorization": f"Bearer {server.key}"}
            with httpx.Client(base_url=server.base_url, headers=headers, timeout=3600) as client:
                for _ in range(5):  # warm-up, so the first single measured is not the first pass
                    client.post("/predict", json=next(singles)).raise_for_status()
                result: dict[str, Any] = {}

                def send_batch() -> None:
                    start = time.perf_counter()
                    response = client.post("/predict/batch", json={"tickets": batch})
                    result["batch_seconds"] = time.perf_counter() - start
                    result["batch_status"] = response.status_code

                thread = threading.Thread(target=send_batch)
                thread.start()
                latencies: list[tuple[float, int]] = []
                time.sleep(args.every)
                while thread.is_alive():
                    start = time.perf_counter()
                    status = client.post("/predict", json=next(singles)).status_code
                    latencies.append((time.perf_counter() - start, status))
                    time.sleep(args.every)
                thread.join()
        finally:
            server.stop()
    seconds = sorted(s for s, _ in latencies)
    return {
        "machine": machine_facts(),
        "tickets": args.tickets,
        "chars_per_ticket": args.chars,
        "batch_seconds": round(result["batch_seconds"], 2),
        "batch_status": result["batch_status"],
        "singles": len(latencies),
        "single_statuses": sorted({s for _, s in latencies}),
        "single_latency_s": {
            "first": round(latencies[0][0], 3) if latencies else None,
            "p50": round(seconds[len(seconds) // 2], 3) if seconds else None,
            "max": round(seconds[-1], 3) if seconds else None,
        },
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, required=True, help="models folder (its LIVE bundle serves)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--tickets", type=int, default=1000)
    p.add_argument("--chars", type=int, default=4000, help="characters per batch ticket")
    p.add_argument("--every", type=float, default=1.0, help="seconds between single /predict calls")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--ready-timeout", type=float, default=600.0)
    p.add_argument("--seed", type=int, default=29)
    p.add_argument("--json-out", type=Path, default=None)
    args = p.parse_args(argv)
    report = run(args)
    m = report["machine"]
    print(
        f"machine: {m.get('cpu')}, {m.get('usable_cores')} usable cores, "
        f"load average at start {m.get('load_average_at_start')}"
    )
    print(
        f"/predict/batch of {report['tickets']} tickets x {report['chars_per_ticket']} chars: "
        f"{report['batch_seconds']} s (HTTP {report['batch_status']})"
    )
    lat = report["single_latency_s"]
    print(
        f"single /predict during it: {report['singles']} sent, statuses {report['single_statuses']}, "
        f"latency first {lat['first']} s, p50 {lat['p50']} s, max {lat['max']} s (aim: within 2 s)"
    )
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
