"""Serving benchmark: starts `triage serve` on a bundle and measures what a helpdesk integration would feel.

One run measures, in order: single `/predict` latency on texts the service has never seen (uncached) and on
texts it has just answered (cached); `/predict/batch` throughput at 256 tickets; 32 concurrent clients for
60 s with `/livez` polled beside them; then, with the server stopped so nothing competes for the cores, the
raw throughput of the bundle's fine-tuned encoder (the one transformer pass a ticket costs) on the same
256-text batches, and its latency for one text. The ratios of the service's throughput to that raw figure
show what everything around the encoder costs.

Texts are BANKING77 rows (read from ../shared/datasets, never copied), deduplicated after whitespace
normalisation. Every ticket also carries a ``created_at`` hour drawn afresh for each run: the hour is part of
the cache key, so a Redis cache that outlived an earlier run cannot turn "uncached" requests into hits.
Every answer's ``cached`` flag is checked against what the part expects, and mismatches are reported.

    .venv/bin/python scripts/bench_serving.py --model /tmp/b77/models [--json-out F] [--markdown-out F]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing as mp
import os
import platform
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from doc_sections import replace_section

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "banking77_train.csv"
DEFAULT_MODELS = ROOT / "bench-out" / "banking77-models"


def ensure_default_model(models: Path) -> None:
    """Train the benchmark's BANKING77 model once (about 7 minutes on 2 cores) when it is not there yet."""
    if models != DEFAULT_MODELS or (models / "LIVE").exists():
        return
    print(f"no model in {models}: training one on {DEFAULT_DATA.name} first ...", flush=True)
    triage = Path(sys.executable).with_name("triage")
    subprocess.run(
        [
            str(triage),
            "train",
            "--data",
            str(DEFAULT_DATA),
            "--text",
            "text",
            "--label",
            "category",
            "--out",
            str(models),
        ],
        check=True,
    )


#: The targets the service is held to (docs/benchmarks.md).
TARGETS = {
    "uncached_p50_ms": 30.0,
    "uncached_p99_ms": 60.0,
    "cached_p99_ms": 3.0,
    "batch_tickets_per_s": 100.0,
    "batch_vs_encoder": 0.5,
    "load_clients": 32,
    "load_seconds": 60.0,
    "livez_max_ms": 50.0,
}
LIVEZ_INTERVAL_S = 0.1


# --- tickets ----------------------------------------------------------------------------------------


def load_texts(path: Path, seed: int) -> list[str]:
    """Distinct texts (as the cache sees them: whitespace collapsed), in a seeded random order."""
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    seen: dict[str, None] = {}
    for text in frame["text"]:
        norm = " ".join(text.split())
        if norm:
            seen.setdefault(norm, None)
    texts = list(seen)
    random.Random(seed).shuffle(texts)
    return texts


class TicketFactory:
    """Ticket bodies whose cache keys are new in this run: each gets its own ``created_at`` hour.

    The base hour is random per run (within 2024-2025, so the temporal features stay ordinary); text plus
    hour is then unseen by any cache an earlier run may have filled.
    """

    def __init__(self, rng: random.Random) -> None:
        self._base = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=rng.randrange(2 * 365 * 24))
        self._count = itertools.count()

    def make(self, text: str) -> dict[str, Any]:
        n = next(self._count)
        created = self._base + timedelta(hours=n, minutes=n % 60)
        return {"ticket_id": f"bench-{n}", "description": text, "created_at": created.isoformat()}


def fresh_stream(factory: TicketFactory, pool: list[str]) -> Iterator[dict[str, Any]]:
    """Uncached tickets forever: the pool's texts first, then the pool again with new hours."""
    for text in itertools.cycle(pool):
        yield factory.make(text)


# --- the server -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A `triage serve` child process with its own API key, logging to a file."""

    model: Path
    port: int
    redis_url: str | None
    log_path: Path
    #: Settings of this server beyond the defaults (its own database and spool, the audit switch).
    env: dict[str, str] = field(default_factory=dict)
    key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = dict(os.environ)
        env["TRIAGE_API_KEYS"] = f"bench:predict:{self.key}"
        env.pop("TRIAGE_REDIS_URL", None)  # in-process cache unless --redis-url says otherwise
        if self.redis_url:
            env["TRIAGE_REDIS_URL"] = self.redis_url
        env.update(self.env)
        cmd = [sys.executable, "-m", "ticket_triage.cli", "serve", "--model", str(self.model)]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout_s: float) -> dict[str, Any]:
        """The /readyz body once the service answers 200; fails early if the process exits."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        with httpx.Client(base_url=self.base_url, timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise SystemExit(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    response = client.get("/readyz")
                    if response.status_code == 200:
                        return response.json()
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
        raise SystemExit(f"server not ready after {timeout_s:.0f} s:\n{self.log_tail()}")

    def stop(self) -> int | None:
        """SIGTERM (uvicorn shuts down gracefully), then SIGKILL if it does not exit in 30 s."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


# --- measurements -----------------------------------------------------------------------------------


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks over all CPUs since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(fields[:7]) - fields[3] - fields[4], sum(fields)  # busy excludes idle, iowait and steal


def _process_jiffies(pid: int) -> int:
    """User + system ticks of one process, all its threads included; 0 once it is gone."""
    try:
        after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return int(after_name[11]) + int(after_name[12])


class CpuMeter:
    """Cores' worth of CPU that processes outside the benchmark used during one part.

    This machine is shared: a training or test run beside the benchmark bends every figure, so each
    part records how much of the machine it did not have.
    """

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self._busy, self._total = _machine_jiffies()
        self._own = sum(_process_jiffies(p) for p in pids)

    def foreign_cores(self) -> float | None:
        """None for a part shorter than a second: at 100 ticks/s a few stray ticks would read as a crowd."""
        busy, total = _machine_jiffies()
        own = sum(_process_jiffies(p) for p in self.pids) - self._own
        elapsed = (total - self._total) / len(os.sched_getaffinity(0))
        if elapsed < os.sysconf("SC_CLK_TCK"):
            return None
        return round(max(0.0, (busy - self._busy - own) / elapsed), 2)


def percentiles_ms(seconds: list[float]) -> dict[str, float | None]:
    if not seconds:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    ms = np.asarray(seconds) * 1000.0
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "mean_ms": float(ms.mean()),
    }


def _timed_post(client: httpx.Client, ticket: dict[str, Any]) -> tuple[float | None, str | None, bool | None]:
    """(seconds from request sent to body received, error kind, cached flag) of one /predict call."""
    start = time.perf_counter()
    try:
        response = client.post("/predict", json=ticket)
    except httpx.HTTPError as exc:
        return None, type(exc).__name__, None
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        return None, str(response.status_code), None
    return elapsed, None, bool(response.json()["cached"])


def sequential_predict(
    client: httpx.Client, tickets: list[dict[str, Any]], expect_cached: bool
) -> dict[str, Any]:
    """One request at a time. Counts errors and cache surprises."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    unexpected = 0
    for ticket in tickets:
        elapsed, error, cached = _timed_post(client, ticket)
        if elapsed is None:
            errors[str(error)] += 1
            continue
        latencies.append(elapsed)
        if cached is not expect_cached:
            unexpected += 1
    return {
        "requests": len(tickets),
        "ok": len(latencies),
        "errors": dict(errors),
        "unexpected_cache_flag": unexpected,
        **percentiles_ms(latencies),
    }


def audit_on_off(on: httpx.Client, off: httpx.Client, tickets: list[dict[str, Any]]) -> dict[str, Any]:
    """/predict on two servers that differ only in the audit log, interleaved request by request
    (alternating which goes first) so that whatever else the machine does falls on both alike: each
    ticket once (uncached), then each again to the same server (cached)."""
    clients = {"on": on, "off": off}
    errors: Counter[str] = Counter()
    pairs = [tickets[i : i + 2] for i in range(0, len(tickets) - 1, 2)]
    result: dict[str, Any] = {"requests_each": len(pairs), "errors": errors}
    for part in ("uncached", "cached"):
        timings: dict[str, list[float]] = {"on": [], "off": []}
        for n, pair in enumerate(pairs):
            order = ("on", "off") if n % 2 == 0 else ("off", "on")
            for name, ticket in zip(order, pair, strict=True):
                elapsed, error, cached = _timed_post(clients[name], ticket)
                if elapsed is None or cached is not (part == "cached"):
                    errors[f"{part}:{name}:{error or 'cache flag'}"] += 1
                else:
                    timings[name].append(elapsed)
        prefix = "" if part == "uncached" else "cached_"
        for name, values in timings.items():
            result[prefix + name] = percentiles_ms(values)
        time.sleep(0.5)  # the write-behind cache writes land before the cached pass
    result["errors"] = dict(errors)
    result["p99_ratio"] = ratio(result["on"]["p99_ms"], result["off"]["p99_ms"])
    result["cached_p99_ratio"] = ratio(result["cached_on"]["p99_ms"], result["cached_off"]["p99_ms"])
    return result


def batch_throughput(client: httpx.Client, batches: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Tickets per second over sequential `/predict/batch` calls: all tickets / all wall time."""
    seconds: list[float] = []
    cached = 0
    errors: Counter[str] = Counter()
    for batch in batches:
        start = time.perf_counter()
        try:
            response = client.post("/predict/batch", json={"tickets": batch})
        except httpx.HTTPError as exc:
            errors[type(exc).__name__] += 1
            continue
        seconds.append(time.perf_counter() - start)
        if response.status_code != 200:
            errors[str(response.status_code)] += 1
            continue
        body = response.json()
        if len(body["predictions"]) != len(batch):
            errors["wrong_count"] += 1
        cached += int(body["cached"])
    total = sum(len(b) for b in batches) if not errors else None  # a failed batch voids the figure
    wall = sum(seconds)
    return {
        "batches": len(batches),
        "batch_size": len(batches[0]) if batches else 0,
        "tickets": total,
        "seconds": wall,
        "tickets_per_s": total / wall if total and wall else None,
        "per_batch_s": seconds,
        "cached_answers": cached,
        "errors": dict(errors),
    }


def _poll_livez(base_url: str, interval_s: float, stop: Any, conn: Any) -> None:
    """A separate process (its own interpreter, own GIL) polling /livez like an orchestrator would."""
    samples: list[tuple[float, float, bool]] = []
    with httpx.Client(base_url=base_url, timeout=5.0) as client:
        conn.send("polling")
        while not stop.is_set():
            start_mono = time.monotonic()
            start = time.perf_counter()
            try:
                ok = client.get("/livez").status_code == 200
            except httpx.HTTPError:
                ok = False
            elapsed = time.perf_counter() - start
            samples.append((start_mono, elapsed, ok))
            time.sleep(max(0.0, interval_s - elapsed))
    conn.send(samples)
    conn.close()


async def _client_loop(
    client: httpx.AsyncClient,
    tickets: Iterator[dict[str, Any]],
    deadline: float,
    latencies: list[float],
    errors: Counter[str],
    flags: Counter[str],
) -> None:
    while time.monotonic() < deadline:
        ticket = next(tickets)
        start = time.perf_counter()
        try:
            response = await client.post("/predict", json=ticket)
        except httpx.HTTPError as exc:
            errors[type(exc).__name__] += 1
            continue
        elapsed = time.perf_counter() - start
        if response.status_code != 200:
            errors[str(response.status_code)] += 1
            continue
        latencies.append(elapsed)
        flags["cached" if response.json()["cached"] else "uncached"] += 1


async def _run_load(
    base_url: str, headers: dict[str, str], tickets: Iterator[dict[str, Any]], clients: int, duration: float
) -> dict[str, Any]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    flags: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=30.0) as client:
        started = time.monotonic()
        deadline = started + duration
        await asyncio.gather(
            *(_client_loop(client, tickets, deadline, latencies, errors, flags) for _ in range(clients))
        )
        ended = time.monotonic()
    wall = ended - started
    return {
        "clients": clients,
        "duration_s": duration,
        "wall_s": wall,
        "window": (started, ended),
        "requests": len(latencies) + sum(errors.values()),
        "ok": len(latencies),
        "errors": sum(errors.values()),
        "errors_by_kind": dict(errors),
        "req_per_s": len(latencies) / wall if wall else None,
        "answers_cached": flags["cached"],
        "answers_uncached": flags["uncached"],
        **percentiles_ms(latencies),
    }


def concurrent_load(
    base_url: str,
    headers: dict[str, str],
    tickets: Iterator[dict[str, Any]],
    clients: int,
    duration: float,
    own_pids: list[int],
) -> dict[str, Any]:
    """N async clients posting `/predict` back to back, and /livez polled from another process meanwhile."""
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    parent, child = ctx.Pipe()
    poller = ctx.Process(target=_poll_livez, args=(base_url, LIVEZ_INTERVAL_S, stop, child), daemon=True)
    poller.start()
    if not parent.poll(60) or parent.recv() != "polling":
        raise SystemExit("the /livez poller did not start")
    meter = CpuMeter([*own_pids, poller.pid])
    try:
        load = asyncio.run(_run_load(base_url, headers, tickets, clients, duration))
        load["foreign_cores"] = meter.foreign_cores()
    finally:
        stop.set()
    samples = parent.recv() if parent.poll(30) else []
    poller.join(timeout=10)
    begin, end = load.pop("window")
    during = [(lat, ok) for t, lat, ok in samples if begin <= t <= end]
    load["livez"] = {
        "polls": len(during),
        "errors": sum(1 for _, ok in during if not ok),
        **percentiles_ms([lat for lat, _ in during]),
    }
    return load


# --- raw model throughput (server stopped) ----------------------------------------------------------


def raw_throughput(
    model_dir: Path, batches: list[list[dict[str, Any]]], thread_counts: list[int]
) -> dict[str, Any]:
    """Texts/s of the bundle's encoder alone (its one forward pass: embeddings and the heads' scores), at
    each torch thread count, and its latency for one text (torch, and ONNX Runtime as the service uses).

    The best count is the baseline the service is compared with: the strongest raw figure this machine
    gives, so the ratio cannot flatter the service.
    """
    import tempfile

    import torch

    from ticket_triage.data.canonical import tickets_frame
    from ticket_triage.features.base import normalize_whitespace
    from ticket_triage.models.bundle import load_bundle, resolve_bundle_path
    from ticket_triage.serving.schemas import Ticket

    bundle = load_bundle(resolve_bundle_path(model_dir))
    encoder = dict(bundle.pipeline.families_).get("embeddings")
    # The canonical frame after the pipeline's own first step, exactly what the families receive.
    frames = [normalize_whitespace(tickets_frame([Ticket(**t) for t in batch])) for batch in batches]
    n_texts = sum(len(frame) for frame in frames)
    out: dict[str, Any] = {
        "bundle": bundle.version,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "texts": n_texts,
    }
    if encoder is None:
        return out
    by_threads: dict[int, dict[str, float]] = {}
    for threads in thread_counts:
        torch.set_num_threads(threads)
        # An untimed pass first: oneDNN's per-shape kernel set-up would otherwise count, and the server
        # has paid it long before a benchmark batch arrives.
        for frame in frames:
            encoder.encode(frame)
        seconds = 0.0
        for frame in frames:
            start = time.perf_counter()
            encoder.encode(frame)
            seconds += time.perf_counter() - start
        by_threads[threads] = {"seconds": seconds, "texts_per_s": n_texts / seconds}
    best = max(by_threads, key=lambda t: by_threads[t]["texts_per_s"])
    out["encoder"] = {"by_threads": by_threads, "best_threads": best, **by_threads[best]}

    singles = [frames[0].iloc[[i]] for i in range(min(100, len(frames[0])))]
    torch.set_num_threads(1)  # as the service runs it: one thread beside the pipeline's
    with tempfile.TemporaryDirectory() as folder:
        onnx = encoder.onnx_encode(Path(folder))
        single: dict[str, Any] = {}
        for name, run in (("torch", encoder.encode), ("onnx", onnx)):
            for frame in singles[:10]:
                run(frame)
            times = []
            for frame in singles:
                start = time.perf_counter()
                run(frame)
                times.append(time.perf_counter() - start)
            single[name] = percentiles_ms(times)
    single["n"] = len(singles)
    out["encoder_single"] = single
    return out


# --- reporting --------------------------------------------------------------------------------------


def busy_cores(sample_s: float = 1.0) -> float | None:
    """Cores' worth of CPU in use machine-wide over a short sample, taken before anything starts."""
    try:
        busy0, total0 = _machine_jiffies()
        time.sleep(sample_s)
        busy1, total1 = _machine_jiffies()
    except (OSError, ValueError, IndexError):
        return None
    return round(len(os.sched_getaffinity(0)) * (busy1 - busy0) / max(1, total1 - total0), 2)


def machine_facts() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "busy_cores_before_start": busy_cores(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def server_settings() -> dict[str, Any]:
    """The serving settings the child process resolves too (same environment, same defaults)."""
    from ticket_triage.config import Settings

    s = Settings()
    names = ("threads", "workers", "max_batch_size", "max_wait_ms", "cache_max_entries", "cache_ttl_seconds")
    return {name: getattr(s, name) for name in names}


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def verdicts(r: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(measure, result, target, met) for every row that has a target."""
    u, c, b, load = r["uncached"], r["cached"], r["batch"], r["load"]
    livez = load["livez"]
    enc_ratio = r["ratios"].get("batch_vs_encoder")
    load_ratio = r["ratios"].get("load_vs_encoder")
    full_length = load["clients"] == TARGETS["load_clients"] and load["duration_s"] >= TARGETS["load_seconds"]
    load_label = f"{load['clients']} clients for {load['duration_s']:.0f} s: errors"
    if not full_length:
        load_label += " (shorter than the target run)"

    def le(value: float | None, limit: float) -> bool | None:
        return None if value is None else value <= limit

    return [
        ("/predict uncached p50", f"{_fmt(u['p50_ms'])} ms", "≤ 30 ms", le(u["p50_ms"], 30.0)),
        ("/predict uncached p99", f"{_fmt(u['p99_ms'])} ms", "≤ 60 ms", le(u["p99_ms"], 60.0)),
        ("/predict cached p99", f"{_fmt(c['p99_ms'], 2)} ms", "≤ 3 ms", le(c["p99_ms"], 3.0)),
        (
            "cached answers flagged `cached: true`",
            f"{c['ok'] - c['unexpected_cache_flag']} / {c['requests']}",
            "all",
            c["unexpected_cache_flag"] == 0 and c["ok"] == c["requests"],
        ),
        (
            f"/predict/batch ({b['batch_size']} tickets) throughput",
            f"{_fmt(b['tickets_per_s'])} tickets/s",
            "≥ 100 tickets/s",
            None if b["tickets_per_s"] is None else b["tickets_per_s"] >= 100.0,
        ),
        (
            "batch throughput / raw encoder",
            _fmt(enc_ratio, 2),
            "≥ 0.5",
            None if enc_ratio is None else enc_ratio >= 0.5,
        ),
        (
            f"{r['load']['clients']} clients' throughput / raw encoder",
            _fmt(load_ratio, 2),
            "≥ 0.4",
            None if load_ratio is None else load_ratio >= 0.4,
        ),
        # A short run with no errors proves nothing about the 60 s target: not judged, rather than "met".
        (load_label, str(load["errors"]), "0", False if load["errors"] else (True if full_length else None)),
        *_audit_verdict(r),
        (
            "/livez max latency under that load",
            f"{_fmt(livez['max_ms'])} ms" + (f", {livez['errors']} failed" if livez["errors"] else ""),
            "< 50 ms",
            None if livez["max_ms"] is None else livez["max_ms"] < 50.0 and not livez["errors"],
        ),
    ]


def _audit_verdict(r: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    a = r.get("audit")
    if not a:
        return []
    on, off, q = a["on"], a["off"], a["p99_ratio"]
    result = f"{_fmt(on['p99_ms'])} vs {_fmt(off['p99_ms'])} ms (ratio {_fmt(q, 3)})"
    return [("/predict p99, audit log on vs off", result, "ratio ≤ 1.10", None if q is None else q <= 1.10)]


def info_rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    u, c, load, raw = r["uncached"], r["cached"], r["load"], r["raw"]
    rows = [
        ("/predict uncached mean / max", f"{_fmt(u['mean_ms'])} / {_fmt(u['max_ms'])} ms"),
        ("/predict cached p50", f"{_fmt(c['p50_ms'], 2)} ms"),
        ("load throughput", f"{_fmt(load['req_per_s'])} req/s ({load['ok']} answered)"),
        ("load latency p50 / p99", f"{_fmt(load['p50_ms'])} / {_fmt(load['p99_ms'])} ms"),
        ("/livez p99 under load", f"{_fmt(load['livez']['p99_ms'])} ms ({load['livez']['polls']} polls)"),
    ]
    if r.get("audit"):
        a = r["audit"]
        rows.append(
            (
                "/predict p50, audit log on vs off",
                f"{_fmt(a['on']['p50_ms'])} vs {_fmt(a['off']['p50_ms'])} ms ({a['requests_each']} each"
                + (f", errors {a['errors']}" if a["errors"] else "")
                + ")",
            )
        )
        rows.append(
            (
                "cached /predict p50 / p99, audit log on vs off",
                f"{_fmt(a['cached_on']['p50_ms'], 2)} / {_fmt(a['cached_on']['p99_ms'], 2)} vs "
                f"{_fmt(a['cached_off']['p50_ms'], 2)} / {_fmt(a['cached_off']['p99_ms'], 2)} ms",
            )
        )
    if "encoder" in raw:
        each = ", ".join(
            f"{_fmt(v['texts_per_s'])} at {t} thread{'s' if int(t) != 1 else ''}"
            for t, v in raw["encoder"]["by_threads"].items()
        )
        rows.append(
            (
                "raw encoder (one pass: embeddings + heads)",
                f"{_fmt(raw['encoder']['texts_per_s'])} texts/s ({each})",
            )
        )
    single = raw.get("encoder_single")
    if single:
        rows.append(
            (
                "uncached /predict p50 vs raw encoder, one text",
                f"{_fmt(u['p50_ms'])} ms vs {_fmt(single['onnx']['p50_ms'])} ms ONNX Runtime / "
                f"{_fmt(single['torch']['p50_ms'])} ms torch (1 thread, p50 of {single['n']} texts)",
            )
        )
    return rows


def foreign_by_part(r: dict[str, Any]) -> dict[str, str]:
    """Per part, cores' worth of CPU other processes used (n/a for parts too short to tell)."""
    parts = [p for p in ("uncached", "cached", "batch", "audit", "load", "raw") if p in r]
    return {p: "n/a (<1 s)" if r[p]["foreign_cores"] is None else str(r[p]["foreign_cores"]) for p in parts}


def print_table(r: dict[str, Any]) -> None:
    m = r["machine"]
    print()
    print(f"Serving benchmark  {m['date_utc']}  bundle {r['bundle']}  cache {r['cache']}")
    print(
        f"machine: {m['cpu']}, {m['usable_cores']} usable cores, load avg at start "
        f"{m['load_average_at_start']}, OMP_WAIT_POLICY {r['raw']['omp_wait_policy']}"
    )
    print(f"server settings: {r['settings']}")
    foreign = foreign_by_part(r)
    print(
        f"cores used by other processes: {m['busy_cores_before_start']} just before the start; during "
        + ", ".join(f"{part} {cores}" for part, cores in foreign.items())
    )
    if any(r[part]["foreign_cores"] and r[part]["foreign_cores"] > 0.1 for part in foreign):
        print("WARNING: the machine was not to ourselves; other processes distort these figures")
    print(f"load mix: {r['load_mix']}")
    rows = [
        (name, result, target, {True: "yes", False: "NO", None: "n/a"}[met])
        for name, result, target, met in verdicts(r)
    ]
    rows += [(name, result, "", "") for name, result in info_rows(r)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    header = ("measure", "result", "target", "met")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for part in ("uncached", "cached"):
        if r[part]["errors"] or r[part]["unexpected_cache_flag"]:
            flags = r[part]["unexpected_cache_flag"]
            print(f"{part}: errors {r[part]['errors']}, unexpected cache flags {flags}")
    if r["batch"]["cached_answers"] or r["batch"]["errors"]:
        print(f"batch: cached answers {r['batch']['cached_answers']}, errors {r['batch']['errors']}")
    if r["load"]["answers_cached"]:
        print(f"load: {r['load']['answers_cached']} answers came from the cache (the mix expects none)")
    if r["load"]["errors_by_kind"]:
        print(f"load errors by kind: {r['load']['errors_by_kind']}")


def markdown(r: dict[str, Any], command: str) -> str:
    m, s = r["machine"], r["settings"]
    lines = [
        "## Serving latency and throughput",
        "",
        f"`{command}` on {m['date_utc'][:10]}: bundle `{r['bundle']}` (BANKING77), {r['cache']} cache, "
        f"{m['cpu']} with {m['usable_cores']} usable cores, {s['workers']} worker, "
        f"micro-batches of up to {s['max_batch_size']} tickets "
        f"(wait ≤ {s['max_wait_ms']} ms). Cores' worth of CPU used by other processes during each part: "
        + ", ".join(f"{part} {cores}" for part, cores in foreign_by_part(r).items())
        + ".",
        "",
        "| measure | result | target | met |",
        "|---|---|---|---|",
    ]
    for name, result, target, met in verdicts(r):
        lines.append(
            f"| {name} | {result} | {target} | {({True: 'yes', False: '**no**', None: 'n/a'})[met]} |"
        )
    for name, result in info_rows(r):
        lines.append(f"| {name} | {result} | — | |")
    u, b = r["uncached"], r["batch"]
    lines += [
        "",
        f"Uncached: {u['requests']} sequential requests, each a BANKING77 text not sent before "
        f"(after {r['warmup']} warm-up tickets with other texts). "
        f"Cached: the same {r['cached']['requests']} tickets sent again. "
        f"Batch: {b['batches']} sequential requests of {b['batch_size']} unseen texts, "
        "throughput = tickets / total wall time. Load: "
        f"{r['load_mix']}; `/livez` polled every {LIVEZ_INTERVAL_S * 1000:.0f} ms from a separate process "
        "during the load. Raw figures: the same batches in one process after the server stopped, at each "
        "torch thread count, timed on a second pass (the first, untimed, loads weights and sets up kernels "
        "for each shape); the ratio uses the best count (MiniLM = the pipeline's embeddings family, "
        "BERT = the category ensemble's fine-tuned member). Audit on vs off: a second server with "
        "`TRIAGE_AUDIT_ENABLED=false` started beside the main one; uncached requests alternate between "
        "the two, each a text not sent before, so machine noise falls on both alike.",
        "",
    ]
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--model",
        type=Path,
        default=DEFAULT_MODELS,
        help="bundle or models folder (default: a BANKING77 model in bench-out/, trained first if missing)",
    )
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CSV with a `text` column")
    p.add_argument("--requests", type=int, default=300, help="sequential /predict requests per part")
    p.add_argument("--warmup", type=int, default=20, help="warm-up /predict requests (other texts)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of concurrent load")
    p.add_argument("--clients", type=int, default=32, help="concurrent clients")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--batches", type=int, default=4)
    p.add_argument(
        "--audit-requests",
        type=int,
        default=500,
        help="uncached /predict requests to each of two servers, audit log on and off (0 skips the part)",
    )
    p.add_argument("--redis-url", default=None, help="use this Redis as the cache (default: in-process)")
    p.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    p.add_argument("--ready-timeout", type=float, default=600.0, help="seconds to wait for /readyz")
    p.add_argument(
        "--raw-threads",
        type=lambda v: sorted({int(x) for x in v.split(",")}),
        default=sorted({1, len(os.sched_getaffinity(0))}),
        help="torch thread counts for the raw encoder figures, comma-separated (default: 1 and all cores)",
    )
    p.add_argument("--seed", type=int, default=13, help="order in which texts are drawn")
    p.add_argument("--json-out", type=Path, default=None)
    p.add_argument("--markdown-out", type=Path, default=None)
    p.add_argument(
        "--doc", type=Path, default=None, help="also write the results into this file's serving section"
    )
    p.add_argument("--keep-server-log", action="store_true", help="keep the server log and print its path")
    args = p.parse_args(argv)
    for name in ("requests", "clients", "batch_size", "batches"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if min(args.raw_threads) < 1:
        p.error("--raw-threads must all be at least 1")
    if args.duration <= 0 or args.warmup < 0:
        p.error("--duration must be > 0 and --warmup >= 0")
    return args


def compare_audit(
    args: argparse.Namespace,
    server: Server,
    off_env: dict[str, str],
    warm: list[dict[str, Any]],
    tickets: list[dict[str, Any]],
) -> dict[str, Any]:
    """Starts a second server with the audit log off beside the main one, then interleaves requests."""
    off_log = server.log_path.with_suffix(".no-audit.log")
    off = Server(args.model, free_port(), args.redis_url, off_log, off_env)
    print(f"audit log on vs off: second server on port {off.port} ...", flush=True)
    off.start()
    try:
        off.wait_ready(args.ready_timeout)
        assert off.proc is not None and server.proc is not None
        with (
            httpx.Client(base_url=server.base_url, headers=_auth(server), timeout=120.0) as on_client,
            httpx.Client(base_url=off.base_url, headers=_auth(off), timeout=120.0) as off_client,
        ):
            sequential_predict(off_client, warm, expect_cached=False)
            meter = CpuMeter([os.getpid(), server.proc.pid, off.proc.pid])
            result = audit_on_off(on_client, off_client, tickets)
            result["foreign_cores"] = meter.foreign_cores()
    finally:
        off.stop()
        off_log.unlink(missing_ok=True)
    return result


def _auth(server: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.key}"}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_default_model(args.model)
    command = " ".join(["scripts/bench_serving.py", *(sys.argv[1:] if argv is None else argv)])
    machine = machine_facts()
    texts = load_texts(args.data, args.seed)
    warm_batch_size = min(64, args.batch_size)
    needed = (
        args.warmup
        + warm_batch_size
        + args.requests
        + args.batches * args.batch_size
        + 2 * args.audit_requests
    )
    if len(texts) <= needed:
        raise SystemExit(f"{args.data} has {len(texts)} distinct texts; this run needs more than {needed}")
    factory = TicketFactory(random.Random(secrets.randbits(64)))
    cursor = iter(texts)

    def take(n: int) -> list[dict[str, Any]]:
        return [factory.make(t) for t in itertools.islice(cursor, n)]

    warm_single, warm_batch = take(args.warmup), take(warm_batch_size)
    uncached_tickets = take(args.requests)
    batches = [take(args.batch_size) for _ in range(args.batches)]
    audit_tickets = take(2 * args.audit_requests)
    pool = list(cursor)
    load_mix = (
        f"every request a new ticket: {len(pool)} BANKING77 texts not used by the other parts, "
        "each with a run-unique created_at hour (cycled with new hours if the pool runs out), so every "
        "request misses the cache"
    )

    log_path = Path(tempfile.mkstemp(prefix="bench-serve-", suffix=".log", dir="/tmp")[1])
    workdir = Path(tempfile.mkdtemp(prefix="bench-serve-"))  # the servers' review stores and spools

    def own_store(name: str, audit: bool) -> dict[str, str]:
        return {
            "TRIAGE_DATABASE_FILE": str(workdir / f"{name}.sqlite3"),
            "TRIAGE_SPOOL_DIR": str(workdir / f"{name}-spool"),
            "TRIAGE_AUDIT_ENABLED": "true" if audit else "false",
        }

    server = Server(args.model, args.port or free_port(), args.redis_url, log_path, own_store("main", True))
    headers = _auth(server)
    results: dict[str, Any] = {"machine": machine, "settings": server_settings(), "command": command}
    print(f"starting triage serve on port {server.port} (log {log_path}) ...", flush=True)
    server.start()
    try:
        ready = server.wait_ready(args.ready_timeout)
        assert server.proc is not None
        own_pids = [os.getpid(), server.proc.pid]
        results["bundle"] = ready["checks"]["model"]["version"]
        results["cache"] = ready["checks"]["cache"].get("backend", "unknown")
        results["readyz_status"] = ready["status"]
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=120.0) as client:
            print("warm-up ...", flush=True)
            warm = sequential_predict(client, warm_single, expect_cached=False)
            warm_b = batch_throughput(client, [warm_batch])
            if warm["errors"] or warm_b["errors"]:
                raise SystemExit(f"warm-up failed: {warm['errors']} {warm_b['errors']}\n{server.log_tail()}")
            print(f"uncached /predict x{args.requests} ...", flush=True)
            meter = CpuMeter(own_pids)
            results["uncached"] = sequential_predict(client, uncached_tickets, expect_cached=False)
            results["uncached"]["foreign_cores"] = meter.foreign_cores()
            time.sleep(0.5)  # the write-behind cache writes land before the cached part
            print(f"cached /predict x{args.requests} ...", flush=True)
            meter = CpuMeter(own_pids)
            results["cached"] = sequential_predict(client, uncached_tickets, expect_cached=True)
            results["cached"]["foreign_cores"] = meter.foreign_cores()
            print(f"/predict/batch {args.batches} x {args.batch_size} ...", flush=True)
            meter = CpuMeter(own_pids)
            results["batch"] = batch_throughput(client, batches)
            results["batch"]["foreign_cores"] = meter.foreign_cores()
            if args.audit_requests:
                results["audit"] = compare_audit(
                    args, server, own_store("no-audit", False), warm_single, audit_tickets
                )
        print(f"{args.clients} clients for {args.duration:.0f} s ...", flush=True)
        results["load"] = concurrent_load(
            server.base_url, headers, fresh_stream(factory, pool), args.clients, args.duration, own_pids
        )
        results["load_mix"] = load_mix
    finally:
        code = server.stop()
        results["server_exit_code"] = code
    print("raw encoder on the same batches (server stopped) ...", flush=True)
    meter = CpuMeter([os.getpid()])
    results["raw"] = raw_throughput(args.model, batches, args.raw_threads)
    results["raw"]["foreign_cores"] = meter.foreign_cores()
    results["warmup"] = args.warmup + warm_batch_size
    batch_rate = results["batch"]["tickets_per_s"]
    results["ratios"] = {
        "batch_vs_encoder": ratio(batch_rate, results["raw"].get("encoder", {}).get("texts_per_s")),
        "load_vs_encoder": ratio(
            results["load"]["req_per_s"], results["raw"].get("encoder", {}).get("texts_per_s")
        ),
    }
    results["targets"] = TARGETS

    print_table(results)
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
        print(f"wrote {args.json_out}")
    if args.markdown_out:
        args.markdown_out.write_text(markdown(results, command), encoding="utf-8")
        print(f"wrote {args.markdown_out}")
    if args.doc:
        replace_section(args.doc, "serving", markdown(results, command))
        print(f"updated the serving section of {args.doc}")
    if args.keep_server_log:
        print(f"server log: {log_path}")
    else:
        log_path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
