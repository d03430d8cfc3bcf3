"""The runtime probes on real files (fake cgroup trees and cpuinfo samples on disk) and real libraries.

Thread settings are read by OpenMP and BLAS when they load, so those checks run in a fresh interpreter.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from ticket_triage import runtime
from ticket_triage.runtime import (
    cgroup_cpu_limit,
    configure_threads,
    cpu_flags,
    native_bf16,
    onnx_session_options,
    precision_report,
    resolve_precision,
    usable_cpus,
)

THREAD_VARS = (
    "OMP_WAIT_POLICY",
    "KMP_BLOCKTIME",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
)

X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu vme sse sse2 avx avx2 avx512f avx512_bf16 amx_bf16 amx_tile
bugs\t\t: spectre_v1

processor\t: 1
vendor_id\t: GenuineIntel
flags\t\t: fpu vme sse sse2
"""

AARCH64_CPUINFO = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid sve bf16 i8mm
CPU implementer\t: 0x41
CPU part\t: 0xd40

processor\t: 1
Features\t: fp asimd
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def no_proc(tmp_path: Path) -> Path:
    """A /proc/self/cgroup that does not exist: the walk starts at the root."""
    return tmp_path / "no-such-proc-cgroup"


# -- cgroup quota ----------------------------------------------------------------------------------------


def test_v2_max_means_no_limit(tmp_path: Path) -> None:
    write(tmp_path / "cg" / "cpu.max", "max 100000\n")
    assert cgroup_cpu_limit(tmp_path / "cg", proc_cgroup=no_proc(tmp_path)) is None


def test_v2_quota_in_cores(tmp_path: Path) -> None:
    write(tmp_path / "cg" / "cpu.max", "150000 100000\n")
    assert cgroup_cpu_limit(tmp_path / "cg", proc_cgroup=no_proc(tmp_path)) == pytest.approx(1.5)


def test_v2_default_proc_file_still_finds_root_quota(tmp_path: Path) -> None:
    """With the real /proc/self/cgroup, whatever path it names, the root's quota still counts."""
    write(tmp_path / "cpu.max", "50000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == pytest.approx(0.5)


@pytest.mark.parametrize("folder", ["cpu", "cpu,cpuacct"])
def test_v1_quota_and_period(tmp_path: Path, folder: str) -> None:
    write(tmp_path / folder / "cpu.cfs_quota_us", "250000\n")
    write(tmp_path / folder / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(tmp_path, proc_cgroup=no_proc(tmp_path)) == pytest.approx(2.5)


def test_v1_minus_one_means_no_limit(tmp_path: Path) -> None:
    write(tmp_path / "cpu" / "cpu.cfs_quota_us", "-1\n")
    write(tmp_path / "cpu" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(tmp_path, proc_cgroup=no_proc(tmp_path)) is None


def test_v2_max_is_not_overridden_by_stale_v1_files(tmp_path: Path) -> None:
    """A controller lives in one hierarchy only: when v2 has ``cpu.max``, v1 files are not the limit."""
    write(tmp_path / "cpu.max", "max 100000\n")
    write(tmp_path / "cpu" / "cpu.cfs_quota_us", "50000\n")
    write(tmp_path / "cpu" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(tmp_path, proc_cgroup=no_proc(tmp_path)) is None


def test_v2_file_takes_precedence_over_v1(tmp_path: Path) -> None:
    write(tmp_path / "cpu.max", "300000 100000\n")
    write(tmp_path / "cpu" / "cpu.cfs_quota_us", "50000\n")
    write(tmp_path / "cpu" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(tmp_path, proc_cgroup=no_proc(tmp_path)) == pytest.approx(3.0)


@pytest.mark.parametrize(
    "files",
    [
        {"cpu.max": "not a quota at all\n"},
        {"cpu.max": "\x00\xff"},
        {"cpu.max": "150000 0\n"},
        {"cpu.max": ""},
        {"cpu/cpu.cfs_quota_us": "lots\n", "cpu/cpu.cfs_period_us": "100000\n"},
        {"cpu/cpu.cfs_quota_us": "50000\n"},  # period missing
        {},
    ],
    ids=["words", "binary", "zero-period", "empty", "v1-words", "v1-no-period", "nothing"],
)
def test_missing_or_odd_files_give_none(tmp_path: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        write(tmp_path / name, text)
    assert cgroup_cpu_limit(tmp_path, proc_cgroup=no_proc(tmp_path)) is None


def test_cpu_max_that_is_a_folder_gives_none(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").mkdir()
    assert cgroup_cpu_limit(tmp_path, proc_cgroup=no_proc(tmp_path)) is None


def test_missing_root_gives_none(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path / "absent", proc_cgroup=no_proc(tmp_path)) is None


def test_v2_own_cgroup_walk_smallest_ancestor_wins(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    proc = write(tmp_path / "proc-self-cgroup", "0::/kubepods/pod1/ctr\n")
    write(root / "kubepods" / "pod1" / "ctr" / "cpu.max", "300000 100000\n")
    write(root / "kubepods" / "pod1" / "cpu.max", "max 100000\n")
    write(root / "kubepods" / "cpu.max", "100000 100000\n")
    write(root / "elsewhere" / "cpu.max", "10000 100000\n")  # a sibling cgroup: not ours
    assert cgroup_cpu_limit(root, proc_cgroup=proc) == pytest.approx(1.0)


def test_v2_own_cgroup_limit_below_parents(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    proc = write(tmp_path / "proc-self-cgroup", "0::/a/b\n")
    write(root / "a" / "b" / "cpu.max", "75000 100000\n")
    write(root / "a" / "cpu.max", "200000 100000\n")
    assert cgroup_cpu_limit(root, proc_cgroup=proc) == pytest.approx(0.75)


def test_v1_own_cgroup_walk(tmp_path: Path) -> None:
    proc = write(tmp_path / "proc-self-cgroup", "5:memory:/docker/x\n4:cpu,cpuacct:/docker/abc\n0::/\n")
    leaf = tmp_path / "cpu,cpuacct" / "docker" / "abc"
    write(leaf / "cpu.cfs_quota_us", "-1\n")
    write(leaf / "cpu.cfs_period_us", "100000\n")
    write(leaf.parent / "cpu.cfs_quota_us", "120000\n")
    write(leaf.parent / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(tmp_path, proc_cgroup=proc) == pytest.approx(1.2)


def test_garbled_proc_cgroup_falls_back_to_root(tmp_path: Path) -> None:
    proc = write(tmp_path / "proc-self-cgroup", "garbage\n0::../../etc\n::\n")
    write(tmp_path / "cg" / "cpu.max", "200000 100000\n")
    assert cgroup_cpu_limit(tmp_path / "cg", proc_cgroup=proc) == pytest.approx(2.0)


# -- usable CPUs -----------------------------------------------------------------------------------------


def test_usable_cpus_within_affinity_and_quota() -> None:
    n = usable_cpus()
    assert 1 <= n <= len(os.sched_getaffinity(0))
    limit = cgroup_cpu_limit()
    if limit is not None:
        assert n <= math.ceil(limit)


def test_usable_cpus_follows_a_narrowed_affinity_mask() -> None:
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "from ticket_triage.runtime import usable_cpus; print(usable_cpus())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


# -- CPU flags and bf16 ----------------------------------------------------------------------------------


def test_cpu_flags_x86_first_processor(tmp_path: Path) -> None:
    flags = cpu_flags(write(tmp_path / "cpuinfo", X86_CPUINFO))
    expected = {"fpu", "vme", "sse", "sse2", "avx", "avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
    assert flags == expected  # the second processor's shorter line is not read


def test_cpu_flags_aarch64_features(tmp_path: Path) -> None:
    flags = cpu_flags(write(tmp_path / "cpuinfo", AARCH64_CPUINFO))
    assert {"fp", "asimd", "sve", "bf16", "i8mm"} <= flags
    assert "CPU" not in flags and len(flags) == 15


def test_cpu_flags_unreadable_or_flagless(tmp_path: Path) -> None:
    assert cpu_flags(tmp_path / "absent") == frozenset()
    assert cpu_flags(write(tmp_path / "cpuinfo", "processor\t: 0\nmodel name\t: Something\n")) == frozenset()


def test_real_cpu_flags_are_read() -> None:
    if not Path("/proc/cpuinfo").exists():
        pytest.skip("no /proc/cpuinfo on this system")
    assert len(cpu_flags()) > 3


@pytest.mark.parametrize(
    "flags",
    [
        {"fpu", "sse2", "avx", "avx2", "avx512f", "avx512_vnni", "avx512_fp16", "amx_int8", "amx_tile"},
        {"fp", "asimd", "sve", "i8mm"},
        set(),
    ],
    ids=["x86-avx512-without-bf16", "aarch64-without-bf16", "no-flags"],
)
def test_native_bf16_false_without_bf16_flags(flags: set[str]) -> None:
    assert native_bf16(frozenset(flags)) is False


@pytest.mark.parametrize(
    "flags",
    [{"avx2", "avx512f", "avx512_bf16"}, {"avx2", "amx_tile", "amx_bf16"}, {"fp", "asimd", "bf16"}],
    ids=["avx512_bf16", "amx_bf16", "aarch64-bf16"],
)
def test_native_bf16_with_bf16_flags_follows_torch(flags: set[str]) -> None:
    import torch

    torch_ok = torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert native_bf16(frozenset(flags)) is torch_ok


def test_native_bf16_without_torch_trusts_the_flags() -> None:
    code = (
        "import sys; sys.modules['torch'] = None; from ticket_triage.runtime import native_bf16; "
        "print(native_bf16(frozenset({'avx512_bf16'})), native_bf16(frozenset({'avx2'})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_native_bf16_default_reads_this_cpu() -> None:
    assert native_bf16() == native_bf16(cpu_flags())


# -- precision -------------------------------------------------------------------------------------------


def test_explicit_precisions_pass_through() -> None:
    assert resolve_precision("fp32") == "fp32"
    assert resolve_precision("bf16") == "bf16"


@pytest.mark.parametrize("bad", ["fp16", "BF16", "", "float32"])
def test_unknown_precision_names_the_allowed_values(bad: str) -> None:
    with pytest.raises(ValueError, match="auto, fp32, bf16") as caught:
        resolve_precision(bad)
    assert repr(bad) in str(caught.value)


def test_auto_picks_bf16_only_on_native_bf16() -> None:
    chosen = resolve_precision("auto")
    assert chosen in {"fp32", "bf16"}
    if chosen == "bf16":
        assert native_bf16()
    assert resolve_precision("auto") == chosen  # cached: the same answer for the whole process


def test_auto_without_probe_follows_the_native_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(runtime.PROBE_ENV, "0")
    runtime._auto_decision.cache_clear()
    try:
        assert resolve_precision("auto") == ("bf16" if native_bf16() else "fp32")
        assert precision_report()["bf16_speedup"] is None
    finally:
        runtime._auto_decision.cache_clear()


@pytest.mark.parametrize("threshold", [0.0, 1e9])
def test_auto_follows_the_measured_speedup(monkeypatch: pytest.MonkeyPatch, threshold: float) -> None:
    """With the bar at 0 any native CPU passes; at 1e9 none does: the real probe decides, not the flags."""
    monkeypatch.delenv(runtime.PROBE_ENV, raising=False)
    monkeypatch.setattr(runtime, "MIN_BF16_SPEEDUP", threshold)
    runtime._auto_decision.cache_clear()
    try:
        expected = "bf16" if native_bf16() and threshold == 0.0 else "fp32"
        assert resolve_precision("auto") == expected
        report = precision_report()
        assert report["chosen"] == expected
        assert (report["bf16_speedup"] is not None) is native_bf16()
    finally:
        runtime._auto_decision.cache_clear()


def test_precision_report_agrees_with_auto() -> None:
    report = precision_report()
    assert set(report) == {"native_bf16", "flags_seen", "bf16_speedup", "chosen", "reason"}
    assert report["chosen"] == resolve_precision("auto")
    assert report["native_bf16"] is native_bf16()
    seen = report["flags_seen"]
    assert isinstance(seen, list) and seen == sorted(seen)
    assert set(seen) <= cpu_flags()
    assert all("bf16" in f or f.startswith(("amx", "avx512")) or f == "avx2" for f in seen)
    assert isinstance(report["reason"], str) and report["reason"]
    if report["chosen"] == "bf16" and report["bf16_speedup"] is not None:
        assert report["bf16_speedup"] >= runtime.MIN_BF16_SPEEDUP


def test_bf16_speedup_is_a_positive_ratio() -> None:
    ratio = runtime.bf16_speedup(size=64, repeats=2)
    assert math.isfinite(ratio) and ratio > 0


# -- threads ---------------------------------------------------------------------------------------------


def run_fresh(code: str, **preset: str) -> Any:
    """Run ``code`` (which prints one JSON line) in a new interpreter without any thread variables set."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env.update(preset)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


ENV_AFTER = (
    "import json, os; from ticket_triage.runtime import configure_threads; n = configure_threads(); "
    f"print(json.dumps({{'n': n, **{{k: os.environ.get(k) for k in {THREAD_VARS!r}}}}}))"
)


def test_configure_threads_sets_passive_waiting_and_counts() -> None:
    got = run_fresh(ENV_AFTER)
    n = got["n"]
    assert isinstance(n, int) and 1 <= n <= len(os.sched_getaffinity(0))
    assert got["OMP_WAIT_POLICY"] == "PASSIVE"
    assert got["KMP_BLOCKTIME"] == "0"
    assert got["OMP_NUM_THREADS"] == got["MKL_NUM_THREADS"] == got["OPENBLAS_NUM_THREADS"] == str(n)


def test_configure_threads_keeps_the_users_settings() -> None:
    got = run_fresh(ENV_AFTER, OMP_WAIT_POLICY="ACTIVE", OMP_NUM_THREADS="1")
    assert got["OMP_WAIT_POLICY"] == "ACTIVE"
    assert got["n"] == 1 and got["OMP_NUM_THREADS"] == "1"
    assert got["MKL_NUM_THREADS"] == got["OPENBLAS_NUM_THREADS"] == "1"


def test_configure_threads_adjusts_torch_already_loaded_and_is_idempotent() -> None:
    code = (
        "import json, torch; from ticket_triage.runtime import configure_threads; "
        "a = configure_threads(1); b = configure_threads(1); "
        "print(json.dumps({'a': a, 'b': b, 'intra': torch.get_num_threads(), "
        "'interop': torch.get_num_interop_threads()}))"
    )
    assert run_fresh(code) == {"a": 1, "b": 1, "intra": 1, "interop": 1}


def test_configure_threads_limits_blas_already_loaded() -> None:
    code = (
        "import json, numpy; from threadpoolctl import threadpool_info; "
        "from ticket_triage.runtime import configure_threads; configure_threads(1); "
        "print(json.dumps([p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas']))"
    )
    counts = run_fresh(code)
    assert counts and all(c == 1 for c in counts)


def test_configure_threads_rejects_zero() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        configure_threads(0)


# -- ONNX Runtime ----------------------------------------------------------------------------------------


def tiny_model(path: Path) -> Path:
    """y = relu(x) on a 1x4 float tensor."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def test_onnx_session_options_block_idle_threads(tmp_path: Path) -> None:
    options = onnx_session_options(1)
    assert options.intra_op_num_threads == 1
    assert options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    session = ort.InferenceSession(
        str(tiny_model(tmp_path / "tiny.onnx")), options, providers=["CPUExecutionProvider"]
    )
    (y,) = session.run(None, {"x": np.array([[-2.0, -0.5, 0.0, 3.0]], dtype=np.float32)})
    np.testing.assert_array_equal(y, [[0.0, 0.0, 0.0, 3.0]])


def test_onnx_session_options_rejects_zero() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        onnx_session_options(0)
