"""Fits the process to the CPU it actually gets: thread counts, idle-pool behaviour and numeric precision.

Containers and CI runners often see more cores than they may use (a cgroup quota, a narrowed affinity
mask); thread pools sized by ``os.cpu_count()`` then oversubscribe and stall. OpenMP and ONNX Runtime pools
also spin for a while after each parallel region by default, stealing the core from whatever runs next, in
this process or another. bf16 halves the cost of matrix work only on CPUs with native bf16 units (AVX512-BF16,
AMX, Arm BF16); elsewhere it is emulated and slower, so it is chosen by what the CPU has and a quick timing.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnxruntime

#: Values ``resolve_precision`` accepts.
PRECISIONS = ("auto", "fp32", "bf16")

#: bf16 is chosen by "auto" only when a bf16 matmul is at least this much faster than the float32 one.
MIN_BF16_SPEEDUP = 1.2

#: Set to "0" to let "auto" decide on the CPU flags alone, without the timing probe.
PROBE_ENV = "TRIAGE_PRECISION_PROBE"

#: CPU flags that mean native bf16 arithmetic: x86 (AVX512-BF16, AMX) and aarch64 (FEAT_BF16).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})

_V1_CPU_DIRS = ("cpu", "cpu,cpuacct")
_DEFAULT_V2_PERIOD = 100_000


def _read(path: Path) -> str | None:
    """The file's text, or None for anything unreadable: these files vary by kernel and container."""
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _v2_cores(text: str) -> float | None:
    """Cores from a cgroup v2 ``cpu.max`` ("QUOTA PERIOD" or "max PERIOD"); ValueError when malformed."""
    parts = text.split()
    if not 1 <= len(parts) <= 2:
        raise ValueError(text)
    period = int(parts[1]) if len(parts) == 2 else _DEFAULT_V2_PERIOD
    if period <= 0:
        raise ValueError(text)
    if parts[0] == "max":
        return None
    quota = int(parts[0])
    if quota <= 0:
        raise ValueError(text)
    return quota / period


def _v1_cores(quota_text: str, period_text: str) -> float | None:
    """Cores from cgroup v1 ``cfs_quota_us`` / ``cfs_period_us`` (-1: no limit); ValueError if malformed."""
    quota, period = int(quota_text.strip()), int(period_text.strip())
    if period <= 0 or quota == 0:
        raise ValueError(f"{quota_text!r} {period_text!r}")
    return None if quota < 0 else quota / period


def _own_cgroups(proc_cgroup: Path) -> tuple[str, str]:
    """This process's (v2 path, v1 cpu-controller path) from ``/proc/self/cgroup``; "/" when not listed."""
    v2, v1 = "/", "/"
    for line in (_read(proc_cgroup) or "").splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, sep, path = rest.partition(":")
        if not sep or not path.startswith("/"):
            continue
        if hierarchy == "0" and controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _walk_up(base: Path, cgroup: str) -> list[Path]:
    """``base/a/b``, ``base/a``, ``base``: a quota on any ancestor cgroup also caps this one."""
    parts = [p for p in PurePosixPath(cgroup).parts if p not in ("/", ".", "..")]
    return [base.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup"), *, proc_cgroup: Path | None = None) -> float | None:
    """The CPU quota in cores (1.5 = one and a half cores' time per period), or None when there is none.

    cgroup v2 ``cpu.max`` first, cgroup v1 CFS quota when no v2 file is readable. Each level from this
    process's own cgroup (read from ``proc_cgroup``, default ``/proc/self/cgroup``) up to ``root`` is
    checked and the smallest quota wins. Missing or malformed files count as no information, never an error.
    """
    v2_path, v1_path = _own_cgroups(proc_cgroup or Path("/proc/self/cgroup"))
    v2_seen = False
    limits: list[float] = []
    for folder in _walk_up(root, v2_path):
        text = _read(folder / "cpu.max")
        if text is None:
            continue
        try:
            cores = _v2_cores(text)
        except ValueError:
            continue
        v2_seen = True
        if cores is not None:
            limits.append(cores)
    if not v2_seen:
        for name in _V1_CPU_DIRS:
            for folder in _walk_up(root / name, v1_path):
                quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
                if quota is None or period is None:
                    continue
                try:
                    cores = _v1_cores(quota, period)
                except ValueError:
                    continue
                if cores is not None:
                    limits.append(cores)
    return min(limits) if limits else None


def usable_cpus() -> int:
    """The cores this process may run on: its affinity mask, capped by the cgroup quota, at least 1.

    ``os.cpu_count()`` counts the host's cores, which a container or ``taskset`` may not be allowed to use.
    """
    # macOS and Windows have no affinity call in os: the core count is all there is.
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        count = min(count, math.ceil(limit))
    return max(1, count)


def cpu_flags(path: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first processor's feature flags (x86 ``flags`` or aarch64 ``Features``); empty when unreadable."""
    for line in (_read(path) or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


@functools.lru_cache(maxsize=1)
def _torch_bf16_ok() -> bool | None:
    """Whether torch's oneDNN says it can run bf16 here; None when torch is not importable."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # the private op is gone in this torch: availability alone decides
        return True


def native_bf16(flags: frozenset[str] | None = None) -> bool:
    """True when the CPU does bf16 arithmetic in hardware, so bf16 can be faster rather than emulated.

    ``flags`` defaults to ``cpu_flags()``. When torch is importable its oneDNN must agree as well, since
    that is the library that would do the bf16 work.
    """
    if not (cpu_flags() if flags is None else flags) & BF16_FLAGS:
        return False
    return _torch_bf16_ok() is not False


def bf16_speedup(size: int = 512, repeats: int = 5) -> float:
    """float32 matmul time / bfloat16 matmul time for ``size`` x ``size`` (above 1: bf16 is faster).

    Best of ``repeats`` after one warm-up each; stops early once either dtype has used 0.25 s, so an
    emulated bf16 cannot make the probe slow. Uses its own generator to leave torch's global seed alone.
    """
    import torch

    generator = torch.Generator().manual_seed(0)

    def best(dtype: torch.dtype) -> float:
        a = torch.randn(size, size, generator=generator).to(dtype)
        b = torch.randn(size, size, generator=generator).to(dtype)
        fastest, spent = math.inf, 0.0
        with torch.inference_mode():
            torch.mm(a, b)
            for _ in range(max(1, repeats)):
                start = time.perf_counter()
                torch.mm(a, b)
                took = time.perf_counter() - start
                fastest, spent = min(fastest, took), spent + took
                if spent > 0.25:
                    break
        return fastest

    fp32 = best(torch.float32)
    return fp32 / max(best(torch.bfloat16), 1e-9)


@dataclass(frozen=True)
class _Decision:
    native: bool
    speedup: float | None
    chosen: str
    reason: str


def _probe_enabled() -> bool:
    return os.environ.get(PROBE_ENV, "1").strip() != "0"


@functools.lru_cache(maxsize=2)
def _auto_decision(probe: bool) -> _Decision:
    """The "auto" choice, made once per process: the probe costs tens of ms and must not vary mid-run."""
    native = native_bf16()
    if not native:
        return _Decision(False, None, "fp32", "no native bf16 on this CPU (or torch's oneDNN lacks it)")
    if _torch_bf16_ok() is None:
        return _Decision(True, None, "fp32", "torch is not importable: nothing would run in bf16")
    if not probe:
        return _Decision(True, None, "bf16", f"native bf16; timing probe off ({PROBE_ENV}=0)")
    speedup = bf16_speedup()
    if speedup >= MIN_BF16_SPEEDUP:
        return _Decision(True, speedup, "bf16", f"native bf16, matmul {speedup:.2f}x faster in bf16")
    return _Decision(
        True, speedup, "fp32", f"native bf16 but matmul only {speedup:.2f}x faster (< {MIN_BF16_SPEEDUP})"
    )


def resolve_precision(requested: str) -> str:
    """``"fp32"``/``"bf16"`` as given; ``"auto"``: bf16 only where it is native and measurably faster."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {requested!r}")
    if requested != "auto":
        return requested
    return _auto_decision(_probe_enabled()).chosen


def precision_report() -> dict[str, object]:
    """What "auto" saw and chose, and why, for the CLI and the benchmark notes."""
    decision = _auto_decision(_probe_enabled())
    seen = sorted(
        flag for flag in cpu_flags() if "bf16" in flag or flag.startswith(("amx", "avx512")) or flag == "avx2"
    )
    return {
        "native_bf16": decision.native,
        "flags_seen": seen,
        "bf16_speedup": decision.speedup,
        "chosen": decision.chosen,
        "reason": decision.reason,
    }


def _thread_count(threads: int | None) -> int:
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        return threads
    with contextlib.suppress(ValueError):
        preset = int(os.environ.get("OMP_NUM_THREADS", ""))
        if preset >= 1:
            return preset  # the user's (or an earlier call's) explicit count wins
    return usable_cpus()


def configure_threads(threads: int | None = None) -> int:
    """Size every thread pool to ``threads`` (default: a preset ``OMP_NUM_THREADS``, else ``usable_cpus()``)
    and make idle OpenMP threads sleep instead of spinning; returns the count. Safe to call again.

    OpenMP, MKL and OpenBLAS read their environment variables only when the library loads, so this must run
    before numpy, torch or xgboost are imported: it is called at the top of the CLI entry point and of the
    serving package. Variables the user set are kept. Libraries already loaded are adjusted directly:
    torch through its own setters, BLAS/OpenMP pools through threadpoolctl.
    """
    n = _thread_count(threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads block instead of spinning
    os.environ.setdefault("KMP_BLOCKTIME", "0")  # the same for Intel's OpenMP runtime
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(name, str(n))
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "set_num_threads"):
        torch.set_num_threads(n)
        # Ops run one at a time here: a second pool of interop threads would only compete with the first.
        # Torch allows this once, before its interop pool starts; later calls raise RuntimeError.
        with contextlib.suppress(RuntimeError):
            if torch.get_num_interop_threads() != 1:
                torch.set_num_interop_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:
        threadpool_limits(limits=n)  # not as a context manager: the limit stays
    return n


def onnx_session_options(threads: int) -> onnxruntime.SessionOptions:
    """ONNX Runtime options for ``threads`` intra-op threads whose idle threads block instead of spinning.

    ONNX Runtime has its own pools, untouched by ``OMP_WAIT_POLICY``; by default they spin after each run
    and take the core from the rest of the service.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options
