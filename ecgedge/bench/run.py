"""Running a bench: one fresh worker process per configuration, one at a time, and the report.

:func:`main_bench` verifies the export once, describes the machine and measures its peaks (in a
worker of their own), plans the cases (:mod:`ecgedge.bench.plan`), runs each in
``python -m ecgedge.bench --worker JSON`` (:mod:`ecgedge.bench.worker`) with the thread count and
malloc settings in its environment, and turns each result into a :class:`~ecgedge.bench.report.BenchRow`.
Around each worker the parent reads the machine's busy CPU time (``/proc/stat``) and subtracts the
worker's own: a row measured while other processes used more than :data:`BUSY_CORES` says so.
This process imports neither torch nor a runtime library.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ecgedge.bench.machine import machine_info
from ecgedge.bench.plan import BenchBackend, BenchCase, BenchConfig, checkpoint_path, plan, skip_reason
from ecgedge.bench.report import REJECTED_NOTE, BenchReport, BenchRow, RowStatus, real_time_factor, target_checks, throughput, with_ratios
from ecgedge.bench.worker import WORKER_MARKER
from ecgedge.hashing import file_sha256
from ecgedge.manifest import MANIFEST, ArtefactStatus, Manifest, artefact_key, load_manifest
from ecgedge.runtime.base import available_backends

MMAP_THRESHOLD, TRIM_THRESHOLD = 64 << 20, 128 << 20  # above batch-64 activations (25 MB for 12 x 8 x 1024 float32 per window)
STEADY_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}  # glibc; ignored elsewhere
BUSY_CORES = 0.25  # CPU used by other processes during a measurement, in cores, above which its row is flagged


def steady_malloc_in_process() -> bool:
    """Apply the workers' glibc malloc thresholds to this process (``mallopt``), for in-process
    benchmarks such as the pytest-benchmark suites. Returns whether it applied (glibc only)."""
    if platform.libc_ver()[0] != "glibc":
        return False
    import ctypes

    libc = ctypes.CDLL(None)
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(libc.mallopt(m_trim_threshold, TRIM_THRESHOLD))


def _worker_env(threads: int, steady_malloc: bool = True) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    if steady_malloc:
        env.update(STEADY_MALLOC)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def spawn_worker(payload: dict, threads: int, timeout_s: float, steady_malloc: bool = True) -> tuple[dict | None, str]:
    """Run one worker (``python -m ecgedge.bench --worker JSON``); (its result, '') or (None, why it failed)."""
    try:
        res = subprocess.run([sys.executable, "-m", "ecgedge.bench", "--worker", json.dumps(payload)],
                             capture_output=True, text=True, timeout=timeout_s, env=_worker_env(threads, steady_malloc))
    except subprocess.TimeoutExpired:
        return None, f"worker ran past {timeout_s:.0f} s"
    for line in reversed(res.stdout.splitlines()):
        if line.startswith(WORKER_MARKER):
            return json.loads(line[len(WORKER_MARKER):]), ""
    tail = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    return None, f"worker exited with code {res.returncode}: {tail[-1] if tail else 'no output'}"


def run_case(case: BenchCase, cfg: BenchConfig, manifest: Manifest, checkpoint: Path | None) -> BenchRow:
    """Measure one configuration in a fresh process (see :mod:`ecgedge.bench` for the method)."""
    payload = {"task": "case", "export": str(manifest.folder), "backend": case.backend.value, "precision": case.precision.value,
               "batch": case.batch, "threads": case.threads, "warmup": cfg.warmup, "repeats": cfg.repeats,
               "max_seconds": cfg.max_seconds, "rtf_steps": cfg.rtf_steps if case.batch == 1 else 0,
               "rtf_beds": cfg.rtf_beds,
               "source_fs_hz": cfg.source_fs_hz, "hop_s": cfg.hop_s, "seed": cfg.seed,
               "include_rejected": cfg.include_rejected, "checkpoint": str(checkpoint) if checkpoint else None}
    # Generous: torch's import and a TensorRT engine's deserialisation come on top of the two timed loops.
    busy0, own0, t0 = _machine_busy_s(), _children_cpu_s(), time.perf_counter()
    result, error = spawn_worker(payload, case.threads, timeout_s=4 * cfg.max_seconds + 300, steady_malloc=cfg.steady_malloc)
    busy1, own1, t1 = _machine_busy_s(), _children_cpu_s(), time.perf_counter()
    if result is None:
        return BenchRow(case.backend.value, case.precision.value, case.batch, case.threads, status=RowStatus.failed.value, reason=error)
    if "skipped" in result:
        return BenchRow.skipped(case, result["skipped"])
    row = BenchRow(case.backend.value, case.precision.value, case.batch, case.threads)
    for k, v in result.items():
        if hasattr(row, k):
            setattr(row, k, v)
    assert row.p50_ms is not None, "the worker reports latency_stats for every measured case"
    row.windows_per_s, row.gflops_per_s = throughput(case.batch, row.p50_ms, (manifest.data.get("model") or {}).get("flops_per_window"))
    notes = []
    if busy0 is not None and busy1 is not None:
        row.other_cpu_cores = max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0)
        if row.other_cpu_cores > BUSY_CORES:
            notes.append(f"machine busy: other processes used {row.other_cpu_cores:.1f} cores meanwhile; rerun")
    stream = result.get("stream")
    if stream:
        step_s = stream["step_cpu_ns"] / 1e9
        row.rtf = real_time_factor(cfg.hop_s, step_s)
        row.rtf_step_cpu_ms = step_s * 1e3
        row.rtf_monitor_cpu_ms = (stream["step_cpu_ns"] - stream["infer_cpu_ns"]) / 1e6
        row.rtf_hops, row.rtf_windows = stream["hops"], stream["windows"]
        if row.rtf_windows < row.rtf_hops:
            notes.append(f"RTF: only {row.rtf_windows} of {row.rtf_hops} hops classified a window (the monitor judged the rest unreliable)")
    ward = result.get("ward")
    if ward:
        beds, step_s = ward["beds"], ward["step_cpu_ns"] / 1e9
        row.ward_beds, row.ward_rtf = beds, real_time_factor(cfg.hop_s * beds, step_s)
        row.ward_step_cpu_ms = step_s * 1e3
        row.ward_monitor_cpu_ms = (ward["step_cpu_ns"] - ward["infer_cpu_ns"]) / 1e6 / beds
        row.ward_infer_cpu_ms = ward["infer_cpu_ns"] / 1e6 / beds
        if ward["windows"] < ward["hops"] * beds:
            notes.append(f"ward RTF: {ward['windows']} of {ward['hops'] * beds} bed-hops classified a window")
    row.note = "; ".join(notes)
    return row


def _machine_busy_s() -> float | None:
    """CPU seconds all cores have spent busy since boot (steal included: a hypervisor's contention is contention)."""
    try:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in Path("/proc/stat").read_text().split()[1:9])
    except (OSError, ValueError):
        return None
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measure_peaks() -> dict:
    """The machine's single-core peaks, measured in a worker of their own on one thread
    (:mod:`ecgedge.bench.machine`): ``peak_fp32_gflops_1core``, ``peak_int8_gops_1core`` (``None``
    when not measured, ``peak_int8_note`` saying why)."""
    result, error = spawn_worker({"task": "peak"}, 1, timeout_s=120)
    if result is None:
        return {"peak_fp32_gflops_1core": None, "peak_int8_gops_1core": None, "peak_int8_note": error}
    out = {"peak_fp32_gflops_1core": result["fp32_gflops"], "peak_int8_gops_1core": result["int8_gops"]}
    if result.get("int8_note"):
        out["peak_int8_note"] = result["int8_note"]
    return out


def main_bench(cfg: BenchConfig, *, log: Callable[[str], None] = print) -> BenchReport:
    """Measure every configuration of ``cfg`` on the export folder ``cfg.export``; see :mod:`ecgedge.bench`."""
    manifest = load_manifest(cfg.export, verify=True, public_key=cfg.public_key)
    available = available_backends()
    ckpt = checkpoint_path(manifest, cfg.checkpoint)
    machine = machine_info()
    if cfg.machine_peak:
        machine.update(measure_peaks())
    model = dict(manifest.data.get("model") or {})
    model["input"] = f"({len(manifest.leads)}, {manifest.window_samples}) at {manifest.fs_hz:g} Hz"
    model["leads"] = list(manifest.leads)
    report = BenchReport(str(manifest.folder), file_sha256(manifest.folder / MANIFEST), model, machine, cfg,
                         recommended=dict(manifest.data.get("recommended") or {}), created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    ckpt_note = ""
    if ckpt[0] is not None:
        want = (manifest.data.get("source") or {}).get("checkpoint_sha256")
        if want and file_sha256(ckpt[0]) != want:
            ckpt_note = "checkpoint differs from the exported one (sha256)"
    cases = plan(cfg, manifest)
    for i, case in enumerate(cases, 1):
        reason = skip_reason(case, manifest, available, checkpoint=ckpt, include_rejected=cfg.include_rejected)
        row = BenchRow.skipped(case, reason) if reason else run_case(case, cfg, manifest, ckpt[0])
        runtime = case.backend.runtime_backend   # None for the torch baseline, which has no artefact
        art = manifest.artefacts.get(artefact_key(runtime, case.precision)) if runtime is not None else None
        if row.ok and art and art.get("status") == ArtefactStatus.rejected:
            row.rejected = True
        row.note = "; ".join(n for n in (REJECTED_NOTE if row.rejected else "", ckpt_note if case.backend == BenchBackend.torch else "", row.note) if n)
        report.rows.append(row)
        if row.ok:
            log(f"[{i}/{len(cases)}] {case.label}: p50 {row.p50_ms:.3f} ms, {row.windows_per_s:.0f} windows/s ({row.calls} calls)")
        elif row.status == RowStatus.failed.value:
            log(f"[{i}/{len(cases)}] {case.label}: failed ({row.reason})")
    with_ratios(report.rows, machine.get("peak_fp32_gflops_1core"), machine.get("peak_int8_gops_1core"))
    report.targets = target_checks(report.rows, machine, cfg.hop_s)
    return report
