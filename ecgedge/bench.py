"""``ecgedge bench``: latency, throughput, real-time factor, memory and cold start, measured one way for every backend.

Users choose a precision and a runtime by these numbers, so every configuration (backend x
precision x batch x threads) is measured by the same code, against the baseline they would
otherwise use (the PyTorch FP32 model in eager mode) and against the machine's limit.

Method (the README repeats it):

- **One fresh process per configuration** (``python -m ecgedge.bench --worker JSON``), run one at
  a time, so its memory and its cold start are that configuration's own. ONNX Runtime and
  TensorRT workers block ``import torch`` (an import of it fails loudly), so their memory is that
  of the inference-only runtime a bedside device runs. Two numbers: resident memory right after
  load + first inference (Python, numpy, the runtime library, the model), and the process's peak
  (``VmHWM`` on Linux, else ``ru_maxrss``) at the end, which for batch-1 rows includes the stream's preprocessing (scipy)
  run for the real-time factor, and for large batches the activations. The torch worker builds
  the FP32 eager model from the manifest's ``source.checkpoint`` (or ``--checkpoint``); its rows
  are skipped, with the reason, when that checkpoint or torch is missing.
- **Threads**: ``torch.set_num_threads(n)`` (and one inter-op thread) or ONNX Runtime
  ``intra_op_num_threads=n``; ``OMP/MKL/OPENBLAS_NUM_THREADS=n`` in the worker's environment.
- **Allocator**: every worker runs with glibc's ``MALLOC_MMAP_THRESHOLD_`` and
  ``MALLOC_TRIM_THRESHOLD_`` fixed (``steady_malloc``, the default). With glibc's dynamic
  thresholds a fresh PyTorch process hands its activation buffers back to the kernel after every
  call and page-faults them in again on the next (about 440 minor faults and +50 % latency per
  batch-1 call of the 12-lead model on a Xeon); a long-running process whose heap has grown does
  not. Fixing the thresholds measures the baseline at its steady state rather than flattering
  the runtimes; ONNX Runtime's own arena is unaffected. Rows report page faults per call.
- **Inputs**: seeded standard-normal float32 windows of the manifest's input shape. Latency of
  these models does not depend on the values (dense convolutions, no data-dependent control
  flow), so no data set is needed and every backend sees the same bytes.
- **Cold start** = import of the runtime library + loading the model (ONNX Runtime session /
  TensorRT engine / checkpoint + eager module) + the first inference, in the fresh process.
  The manifest's sha256 check runs once in the parent and is not counted.
- **Latency per call**: ``time.perf_counter_ns`` around ``infer`` (numpy in, numpy out, input
  checked against the spec on every backend, the torch baseline included), after ``warmup``
  untimed calls; ``repeats`` timed calls, fewer if ``max_seconds`` runs out first (the row says
  how many). p50/p90/p99 of those calls. windows/s = batch / p50. GFLOP/s = FLOPs per window
  (manifest ``model.flops_per_window``: 2 x MACs of the conv and linear layers) x batch / p50.
- **x torch**: windows/s over those of the PyTorch FP32 eager row at the same batch and threads,
  measured in the same run (added automatically unless ``baseline=False``).
- **Machine limit**: single-core FP32 matrix-multiply throughput (numpy/OpenBLAS sgemm, 1024^3,
  best of 10, one thread) measured in its own process; the table's ``%pk`` is GFLOP/s over that
  peak x threads. INT8 rows may exceed 100 %: VNNI/AMX multiply-accumulate four or more int8
  pairs per FP32 lane.
- **Real-time factor** (batch-1 rows): the full per-window path of one stream, once per hop
  (1 s): :class:`~ecgedge.data.preprocess.StreamingPreprocessor` pushes one hop of new multi-lead
  samples at the source rate (500 Hz), the newest window is z-scored
  (:func:`~ecgedge.data.preprocess.normalise_windows`) and classified at batch 1. RTF = hop
  seconds / CPU seconds of that step (``time.process_time``, all threads of the process, mean over
  ``rtf_steps`` steps): seconds of ECG classified per second of one core. With 1 thread it is
  the one-core figure; with more it charges every thread's CPU time, spinning included. On a GPU
  it is the host's CPU cost (launches, copies, synchronisation). Signal quality checks of the
  stream monitor are not part of this step.

- **Contention**: the parent reads the machine's busy CPU time (``/proc/stat``) around each worker
  and subtracts the worker's own; a row where other processes used more than a quarter of a core
  meanwhile says so ("machine busy ... rerun") instead of passing off a disturbed number.

Unavailable backends, missing artefacts and gate-rejected artefacts are *skipped rows* with
their reason, never errors. Rows are :class:`BenchRow`; :func:`render_table` is a pure function.
"""

from __future__ import annotations

import enum
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from ecgedge.errors import ConfigError, EcgEdgeError
from ecgedge.hashing import file_sha256
from ecgedge.manifest import MANIFEST, ArtefactStatus, Manifest, artefact_key, load_manifest
from ecgedge.runtime.base import Backend, InputSpec, Precision, available_backends
from ecgedge.runtime.loader import input_spec

WORKER_MARKER = "ECGEDGE_BENCH_RESULT "
REJECTED_NOTE = "rejected by the accuracy gate"
PEAK_SIZE = 1024  # sgemm size for the machine's FP32 limit: large enough for OpenBLAS to reach its peak


class BenchBackend(str, enum.Enum):
    """What a row runs on: the PyTorch FP32 eager baseline, or one of the runtime's backends."""

    torch = "torch"
    ort_cpu = "ort-cpu"
    ort_cuda = "ort-cuda"
    ort_trt = "ort-trt"
    tensorrt = "tensorrt"

    @property
    def runtime_backend(self) -> Backend | None:
        return None if self == BenchBackend.torch else Backend(self.value)


class RowStatus(str, enum.Enum):
    ok = "ok"
    skipped = "skipped"
    failed = "failed"


@dataclass(frozen=True)
class BenchConfig:
    """What ``ecgedge bench`` measures and how.

    ``precisions`` empty means every precision the export holds. ``max_seconds`` bounds each timed
    loop of a configuration (latency; real-time factor) so batch 64 on a slow backend cannot run
    for minutes. ``source_fs_hz`` and ``hop_s`` describe the stream of the real-time factor.
    ``checkpoint`` overrides the manifest's ``source.checkpoint`` for the PyTorch baseline.
    ``steady_malloc`` fixes glibc's malloc thresholds in every worker (see the module docstring).
    """

    export: str = ""
    backends: tuple[BenchBackend, ...] = tuple(BenchBackend)
    precisions: tuple[Precision, ...] = ()
    batches: tuple[int, ...] = (1, 8, 64)
    threads: tuple[int, ...] = (1,)
    warmup: int = 20
    repeats: int = 200
    max_seconds: float = 10.0
    rtf_steps: int = 100
    source_fs_hz: float = 500.0
    hop_s: float = 1.0
    baseline: bool = True
    include_rejected: bool = False
    checkpoint: str | None = None
    machine_peak: bool = True
    steady_malloc: bool = True
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "backends", tuple(BenchBackend(b) for b in self.backends))
        object.__setattr__(self, "precisions", tuple(Precision(p) for p in self.precisions))
        object.__setattr__(self, "batches", tuple(int(b) for b in self.batches))
        object.__setattr__(self, "threads", tuple(int(t) for t in self.threads))
        if not self.backends or not self.batches or not self.threads:
            raise ConfigError("bench needs at least one backend, batch size and thread count")
        if min(self.batches) < 1 or min(self.threads) < 1:
            raise ConfigError(f"batch sizes and thread counts must be >= 1, got batches {self.batches}, threads {self.threads}")
        if self.warmup < 0 or self.repeats < 1 or self.rtf_steps < 1 or self.max_seconds <= 0:
            raise ConfigError("warmup >= 0, repeats >= 1, rtf_steps >= 1 and max_seconds > 0 are required")
        if self.source_fs_hz <= 0 or self.hop_s <= 0:
            raise ConfigError(f"source rate and hop must be positive, got {self.source_fs_hz} Hz, {self.hop_s} s")


@dataclass(frozen=True)
class BenchCase:
    """One configuration, measured in its own process."""

    backend: BenchBackend
    precision: Precision
    batch: int
    threads: int

    @property
    def label(self) -> str:
        return f"{self.backend.value} {self.precision.value} batch {self.batch} threads {self.threads}"


@dataclass
class BenchRow:
    """One configuration's numbers (``None`` where not measured). Times in ms, sizes in bytes."""

    backend: str
    precision: str
    batch: int
    threads: int
    status: str = RowStatus.ok.value
    reason: str = ""
    note: str = ""
    calls: int = 0
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    min_ms: float | None = None
    windows_per_s: float | None = None
    gflops_per_s: float | None = None
    peak_fraction: float | None = None
    vs_torch: float | None = None
    rtf: float | None = None
    rtf_step_cpu_ms: float | None = None
    rtf_preprocess_cpu_ms: float | None = None
    model_file: str = ""
    model_bytes: int | None = None
    rss_loaded_bytes: int | None = None
    peak_rss_bytes: int | None = None
    cold_start_ms: float | None = None
    import_ms: float | None = None
    load_ms: float | None = None
    first_infer_ms: float | None = None
    page_faults_per_call: float | None = None
    other_cpu_cores: float | None = None
    rejected: bool = False
    provider: str = ""
    torch_imported: bool | None = None

    @classmethod
    def skipped(cls, case: BenchCase, reason: str) -> "BenchRow":
        return cls(case.backend.value, case.precision.value, case.batch, case.threads, status=RowStatus.skipped.value, reason=reason)

    @property
    def ok(self) -> bool:
        return self.status == RowStatus.ok.value


# ----------------------------------------------------------------------------------- arithmetic


def latency_stats(latencies_ns) -> dict[str, float]:
    """p50/p90/p99/mean/min in ms of per-call latencies in ns (linear-interpolated percentiles)."""
    ms = np.asarray(latencies_ns, dtype=np.float64) / 1e6
    if not ms.size:
        raise ValueError("no latencies to summarise")
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99), "mean_ms": float(ms.mean()), "min_ms": float(ms.min())}


def throughput(batch: int, p50_ms: float, flops_per_window: float | None = None) -> tuple[float, float | None]:
    """(windows per second, GFLOP/s) of calls of ``batch`` windows taking ``p50_ms`` each."""
    wps = batch / (p50_ms / 1e3)
    return wps, (flops_per_window * wps / 1e9 if flops_per_window else None)


def real_time_factor(hop_s: float, step_cpu_s: float) -> float:
    """Seconds of signal classified per CPU second: a hop of ``hop_s`` s costs ``step_cpu_s`` CPU seconds."""
    if step_cpu_s <= 0:
        raise ValueError(f"CPU time per step must be positive, got {step_cpu_s} s")
    return hop_s / step_cpu_s


def with_ratios(rows: list[BenchRow], peak_gflops_1core: float | None = None) -> list[BenchRow]:
    """Fill ``vs_torch`` (windows/s over the torch FP32 row at the same batch and threads) and
    ``peak_fraction`` (GFLOP/s over the single-core FP32 peak x threads). Returns ``rows``."""
    base = {(r.batch, r.threads): r.windows_per_s for r in rows
            if r.ok and r.backend == BenchBackend.torch.value and r.precision == Precision.fp32.value}
    for r in rows:
        if not r.ok:
            continue
        b = base.get((r.batch, r.threads))
        r.vs_torch = r.windows_per_s / b if b and r.windows_per_s else None
        r.peak_fraction = r.gflops_per_s / (peak_gflops_1core * r.threads) if peak_gflops_1core and r.gflops_per_s else None
    return rows


# ----------------------------------------------------------------------------------- targets


@dataclass
class TargetCheck:
    """One of the issue's targets: what was asked, what was measured, met or not (``None``: not measured here)."""

    name: str
    goal: str
    measured: str
    met: bool | None
    note: str = ""


INT8_VS_TORCH = 5.0
RTF_GOAL = 1000.0
RSS_GOAL_BYTES = 150e6


def target_checks(rows: list[BenchRow], machine: dict | None = None, hop_s: float = 1.0) -> list[TargetCheck]:
    """The issue's targets, checked on the rows at batch 1 on one thread (``machine`` says whether
    the CPU has int8 dot-product instructions, which decides what a slow INT8 row means)."""
    find = {(r.backend, r.precision): r for r in rows if r.ok and r.batch == 1 and r.threads == 1}
    torch_fp32, ort_fp32, ort_int8 = find.get(("torch", "fp32")), find.get(("ort-cpu", "fp32")), find.get(("ort-cpu", "int8"))
    vnni = (machine or {}).get("int8_dot_product")
    why_not = {(r.backend, r.precision): r.reason for r in rows if not r.ok and r.batch == 1 and r.threads == 1}

    def needs(*keys: tuple[str, str]) -> str:
        missing = [k for k in keys if k not in find]
        return "; ".join(f"{b} {p} at batch 1, 1 thread: {why_not.get((b, p), 'not requested')}" for b, p in missing)

    out = []

    name, goal = "ort-cpu int8 vs PyTorch fp32 eager (batch 1, 1 thread)", f">= {INT8_VS_TORCH:g}x"
    if ort_int8 and torch_fp32:
        x = ort_int8.windows_per_s / torch_fp32.windows_per_s
        out.append(TargetCheck(name, goal, f"{x:.2f}x ({ort_int8.windows_per_s:.0f} vs {torch_fp32.windows_per_s:.0f} windows/s)", x >= INT8_VS_TORCH))
    else:
        out.append(TargetCheck(name, goal, "not measured", None, needs(("ort-cpu", "int8"), ("torch", "fp32"))))

    name, goal = "ort-cpu int8 not slower than ort-cpu fp32 (batch 1, 1 thread)", ">= 1.00x"
    if ort_int8 and ort_fp32:
        x = ort_int8.windows_per_s / ort_fp32.windows_per_s
        note = ""
        if x < 1 and vnni is not None:
            note = ("this CPU has int8 dot-product instructions (VNNI/AMX/SDOT), so the loss is in the graph: layers with few input "
                    "channels x taps, or Q/DQ pairs around ops without int8 kernels" if vnni else
                    "this CPU lacks VNNI/AMX/SDOT: int8 products widen through 16-bit multiplies, slower than FP32 FMA; fp32 is the better default here")
        out.append(TargetCheck(name, goal, f"{x:.2f}x ({ort_int8.p50_ms:.3f} vs {ort_fp32.p50_ms:.3f} ms p50)", x >= 1, note))
    else:
        out.append(TargetCheck(name, goal, "not measured", None, needs(("ort-cpu", "int8"), ("ort-cpu", "fp32"))))

    goal = f">= {RTF_GOAL:g}"
    rtf_rows = [r for r in (ort_int8, ort_fp32) if r and r.rtf]
    for r in rtf_rows:
        out.append(TargetCheck(f"real-time factor, preprocess + ort-cpu {r.precision} (1 thread)", goal,
                               f"{r.rtf:.0f} ({r.rtf_step_cpu_ms:.3f} CPU ms per {hop_s:g} s hop, of which preprocessing {r.rtf_preprocess_cpu_ms:.3f} ms)",
                               r.rtf >= RTF_GOAL))
    if not rtf_rows:
        out.append(TargetCheck("real-time factor, preprocess + ort-cpu (1 thread)", goal, "not measured", None, needs(("ort-cpu", "int8"), ("ort-cpu", "fp32"))))

    name, goal = "resident memory, inference-only runtime with the int8 model (ort-cpu, batch 1)", f"< {RSS_GOAL_BYTES / 1e6:.0f} MB"
    if ort_int8 and ort_int8.peak_rss_bytes:
        # Judged on the peak of the whole stream process (runtime + model + the preprocessing's scipy), the larger number.
        rss, loaded = ort_int8.peak_rss_bytes, ort_int8.rss_loaded_bytes
        measured = f"{rss / 1e6:.1f} MB peak with the stream's preprocessing" + (f", {loaded / 1e6:.1f} MB after loading the model" if loaded else "")
        out.append(TargetCheck(name, goal, measured, rss < RSS_GOAL_BYTES, "torch not imported" if ort_int8.torch_imported is False else "torch was imported"))
    else:
        out.append(TargetCheck(name, goal, "not measured", None, needs(("ort-cpu", "int8"))))
    return out


def fastest_precisions(rows: list[BenchRow], *, accepted_only: bool = True) -> dict[str, BenchRow]:
    """Per backend, the row with the most windows/s at batch 1 on one thread (what a bedside stream
    runs), among artefacts the accuracy gate did not reject unless ``accepted_only`` is false."""
    best: dict[str, BenchRow] = {}
    for r in rows:
        if r.ok and r.batch == 1 and r.threads == 1 and r.backend != BenchBackend.torch.value and not (accepted_only and r.rejected):
            if r.backend not in best or r.windows_per_s > best[r.backend].windows_per_s:
                best[r.backend] = r
    return best


# ----------------------------------------------------------------------------------- rendering

COLUMNS = (
    # header, width, cell
    ("backend", 9, lambda r: r.backend),
    ("prec", 5, lambda r: r.precision),
    ("batch", 5, lambda r: str(r.batch)),
    ("thr", 3, lambda r: str(r.threads)),
    ("n", 4, lambda r: str(r.calls)),
    ("p50 ms", 8, lambda r: _num(r.p50_ms)),
    ("p90 ms", 8, lambda r: _num(r.p90_ms)),
    ("p99 ms", 8, lambda r: _num(r.p99_ms)),
    ("win/s", 8, lambda r: _num(r.windows_per_s, 0)),
    ("GFLOP/s", 8, lambda r: _num(r.gflops_per_s, 1)),
    ("%pk", 5, lambda r: "-" if r.peak_fraction is None else f"{100 * r.peak_fraction:.0f}"),
    ("x torch", 7, lambda r: "-" if r.vs_torch is None else f"{r.vs_torch:.2f}x"),
    ("RTF", 6, lambda r: _num(r.rtf, 0)),
    ("size kB", 8, lambda r: "-" if r.model_bytes is None else f"{r.model_bytes / 1e3:.1f}"),
    ("RSS MB", 7, lambda r: _rss(r)),
    ("cold ms", 8, lambda r: _num(r.cold_start_ms, 0)),
)


def _rss(r: BenchRow) -> str:
    mb = [f"{b / 1e6:.0f}" for b in (r.rss_loaded_bytes, r.peak_rss_bytes) if b]
    return "/".join(mb) or "-"


def _num(v: float | None, decimals: int | None = None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if decimals is not None:
        return f"{v:.{decimals}f}"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def render_table(rows: list[BenchRow]) -> str:
    """One line per measured configuration; skipped configurations of one backend, precision and
    reason are folded into one line listing their batches and threads; failed ones show why."""
    head = "  ".join(f"{h:<{w}}" if i < 4 else f"{h:>{w}}" for i, (h, w, _) in enumerate(COLUMNS))
    lines = [head, "-" * len(head)]
    folded: dict[tuple[str, str, str, str], list[BenchRow]] = {}
    for r in rows:
        if r.ok:
            cells = [f(r) for _, _, f in COLUMNS]
            line = "  ".join(f"{c:<{w}}" if i < 4 else f"{c:>{w}}" for i, (c, (_, w, _)) in enumerate(zip(cells, COLUMNS)))
            lines.append(line + (f"  {r.note}" if r.note else ""))
        else:
            folded.setdefault((r.backend, r.precision, r.status, r.reason), []).append(r)
    for (backend, precision, status, reason), group in folded.items():
        batches = ",".join(str(b) for b in sorted({r.batch for r in group}))
        threads = ",".join(str(t) for t in sorted({r.threads for r in group}))
        lines.append(f"{backend:<9}  {precision:<5}  {batches:<5}  {threads:<3}  {status}: {reason}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- machine


ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
             "asimd", "asimddp", "i8mm", "sve", "bf16")
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def _version(*dists: str) -> str | None:
    for d in dists:
        try:
            return importlib.metadata.version(d)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def machine_info() -> dict:
    """CPU model, cores, the ISA flags that decide int8/fp16 speed, GPU (if any) and package versions.

    Reads ``/proc/cpuinfo`` and package metadata only: imports neither torch nor onnxruntime.
    """
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "hardware", "cpu model") and model in (platform.processor(), platform.machine(), ""):
                model = value.strip()
            elif key in ("flags", "features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = None
    if Path("/proc/driver/nvidia/gpus").is_dir():
        try:
            res = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=20)
            gpu = res.stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            gpu = None
    return {
        "cpu": model,
        "arch": platform.machine(),
        "cores_logical": os.cpu_count(),
        "cores_usable": usable,
        "isa": [f for f in ISA_FLAGS if f in flags],
        "int8_dot_product": any(f in flags for f in INT8_DOT_FLAGS),
        "gpu": gpu,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {"ecgedge": _version("ecgedge"), "onnxruntime": _version("onnxruntime", "onnxruntime-gpu"),
                     "numpy": _version("numpy"), "scipy": _version("scipy"), "torch": _version("torch"),
                     "tensorrt": _version("tensorrt", "tensorrt-cu12")},
    }


# ----------------------------------------------------------------------------------- planning


def checkpoint_path(manifest: Manifest, override: str | None = None) -> tuple[Path | None, str]:
    """The PyTorch baseline's checkpoint and, when it is not here, why."""
    if override:
        p = Path(override)
        return (p, "") if p.is_file() else (None, f"checkpoint {p} not found")
    src = (manifest.data.get("source") or {}).get("checkpoint")
    if not src:
        return None, "the manifest names no source checkpoint; pass --checkpoint PATH for the PyTorch baseline"
    for p in (Path(src), manifest.folder / src):
        if p.is_file():
            return p, ""
    return None, f"source checkpoint {src} is not on this machine (export folders do not carry it); pass --checkpoint PATH"


def skip_reason(case: BenchCase, manifest: Manifest, available: dict[Backend, str | None], *,
                checkpoint: tuple[Path | None, str] = (None, ""), include_rejected: bool = False) -> str | None:
    """Why ``case`` cannot be measured here (``None`` if it can)."""
    if case.backend == BenchBackend.torch:
        if case.precision != Precision.fp32:
            return f"PyTorch eager is the FP32 baseline; {case.precision.value} is an ONNX/TensorRT artefact"
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed (pip install 'ecgedge[train]'); the PyTorch baseline needs it"
        return (checkpoint[1] or "no checkpoint for the PyTorch baseline (pass --checkpoint PATH)") if checkpoint[0] is None else None
    reason = available.get(case.backend.runtime_backend)
    if reason:
        return reason
    key = artefact_key(case.backend.runtime_backend, case.precision)
    art = manifest.artefacts.get(key)
    if art is None:
        hint = " (ecgedge export --fp16)" if key == "fp16" else " (ecgedge export --target tensorrt on the GPU)" if key.startswith("trt-") else ""
        return f"the export has no {key} artefact{hint}"
    if art.get("runtime", "onnx") != ("tensorrt" if case.backend == BenchBackend.tensorrt else "onnx"):
        return f"artefact {key} is a {art.get('runtime')} file"
    if manifest.status(key) == ArtefactStatus.rejected and not include_rejected:
        return f"{key} was rejected by the accuracy gate (--include-rejected measures it anyway)"
    return None


def plan(cfg: BenchConfig, manifest: Manifest) -> list[BenchCase]:
    """Every configuration to report, baseline first (torch FP32 at every batch and thread count)."""
    precisions = cfg.precisions or tuple(p for p in Precision if any(
        a.get("precision") == p.value for a in manifest.artefacts.values()))
    backends = list(cfg.backends)
    if cfg.baseline and BenchBackend.torch not in backends:
        backends.insert(0, BenchBackend.torch)
    backends.sort(key=lambda b: b != BenchBackend.torch)
    cases = []
    for b in backends:
        precs = (Precision.fp32,) if b == BenchBackend.torch and b not in cfg.backends else precisions
        for p in precs:
            for t in cfg.threads:
                for n in cfg.batches:
                    cases.append(BenchCase(b, p, n, t))
    return cases


# ----------------------------------------------------------------------------------- running


@dataclass
class BenchReport:
    """Everything one ``ecgedge bench`` run measured, with the machine and the export it ran on."""

    export: str
    manifest_sha256: str
    model: dict
    machine: dict
    config: BenchConfig
    rows: list[BenchRow] = field(default_factory=list)
    targets: list[TargetCheck] = field(default_factory=list)
    recommended: dict[str, str] = field(default_factory=dict)
    created: str = ""

    def to_dict(self) -> dict:
        cfg = {f.name: getattr(self.config, f.name) for f in fields(self.config)}
        cfg = json.loads(json.dumps(cfg, default=lambda v: v.value if isinstance(v, enum.Enum) else str(v)))
        return {"format": "ecgedge.bench/1", "created": self.created, "export": self.export, "manifest_sha256": self.manifest_sha256,
                "model": self.model, "machine": self.machine, "config": cfg, "method": _method_text(),
                "rows": [asdict(r) for r in self.rows], "targets": [asdict(t) for t in self.targets],
                "recommended_by_manifest": self.recommended,
                "fastest_accepted_at_batch_1": {b: r.precision for b, r in fastest_precisions(self.rows).items()}}

    def render(self) -> str:
        """Header (export, model FLOPs, machine), the table, notes and the targets."""
        m, mach = self.model, self.machine
        flops = m.get("flops_per_window")
        peak = mach.get("peak_fp32_gflops_1core")
        lines = [
            f"export {self.export}  (manifest sha256 {self.manifest_sha256[:12]})",
            f"model: {m.get('params', '?')} params, "
            + (f"{flops / 1e6:.1f} MFLOP per window" if flops else "FLOPs per window not in the manifest (GFLOP/s not shown)")
            + f", input {m.get('input')}",
            f"machine: {mach.get('cpu')}, {mach.get('cores_usable')} usable cores, ISA {' '.join(mach.get('isa', [])) or '?'}"
            + (f", GPU {mach['gpu']}" if mach.get("gpu") else "")
            + (f"; FP32 peak {peak:.0f} GFLOP/s per core (sgemm {PEAK_SIZE}^3, 1 thread)" if peak else ""),
            "",
            render_table(self.rows),
            "",
            "p50/p90/p99: latency per call (batch windows); win/s = batch / p50; %pk = GFLOP/s / (FP32 peak x threads); "
            "x torch = win/s / PyTorch fp32 eager at the same batch and threads.",
            f"RTF (batch-1 rows): seconds of {len(m.get('leads', [])) or '?'}-lead ECG classified per CPU second, counting the stream's "
            f"preprocessing ({self.config.hop_s:g} s of {self.config.source_fs_hz:g} Hz input resampled + band-passed, window z-scored) "
            f"and batch-1 inference. RSS MB: resident after load + first inference / peak, in the configuration's own process "
            f"(batch-1 rows include the preprocessing's numpy + scipy.signal); cold: import + load + first inference in it.",
            "Each configuration ran in its own fresh process, one at a time, on seeded random windows; "
            + ("glibc malloc thresholds fixed in every worker (--default-malloc measures an untuned process)."
               if self.config.steady_malloc else "glibc malloc thresholds left at their defaults (--default-malloc)."),
        ]
        fastest = fastest_precisions(self.rows)
        if fastest:
            lines += ["", "fastest precision at batch 1, 1 thread (the stream's case), against the manifest's recommendation:"]
            measured = {(r.backend, r.precision) for r in self.rows if r.ok and r.batch == 1 and r.threads == 1}
            any_row = fastest_precisions(self.rows, accepted_only=False)
            for backend, r in fastest.items():
                rec = self.recommended.get(backend)
                verdict = ("no recommendation in the manifest" if not rec else "the manifest recommends it too" if rec == r.precision
                           else f"the manifest recommends {rec}" + ("" if (backend, rec) in measured else ", not measured here"))
                faster = any_row[backend]
                rejected = (f"; {faster.precision} is faster ({faster.windows_per_s:.0f} windows/s) but the accuracy gate rejected it"
                            if faster is not r else "")
                lines.append(f"  {backend}: {r.precision} ({r.windows_per_s:.0f} windows/s){rejected}; {verdict}")
        if self.targets:
            lines += ["", "targets:"]
            for t in self.targets:
                verdict = "not measured" if t.met is None else "met" if t.met else "MISSED"
                lines.append(f"  {verdict:<12} {t.name}: {t.measured} (goal {t.goal})" + (f"; {t.note}" if t.note else ""))
        return "\n".join(lines)


def _method_text() -> str:
    return (__doc__ or "").partition("Method (the README repeats it):")[2].partition("Unavailable backends")[0].strip()


MMAP_THRESHOLD, TRIM_THRESHOLD = 64 << 20, 128 << 20  # above batch-64 activations (25 MB for 12 x 8 x 1024 float32 per window)
STEADY_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}  # glibc; ignored elsewhere


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
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _spawn(payload: dict, threads: int, timeout_s: float, steady_malloc: bool = True) -> tuple[dict | None, str]:
    """Run one worker; (its result, '') or (None, why it failed)."""
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
    """Measure one configuration in a fresh process (see the module docstring for the method)."""
    payload = {"task": "case", "export": str(manifest.folder), "backend": case.backend.value, "precision": case.precision.value,
               "batch": case.batch, "threads": case.threads, "warmup": cfg.warmup, "repeats": cfg.repeats,
               "max_seconds": cfg.max_seconds, "rtf_steps": cfg.rtf_steps if case.batch == 1 else 0,
               "source_fs_hz": cfg.source_fs_hz, "hop_s": cfg.hop_s, "seed": cfg.seed,
               "include_rejected": cfg.include_rejected, "checkpoint": str(checkpoint) if checkpoint else None}
    # Generous: torch's import and a TensorRT engine's deserialisation come on top of the two timed loops.
    busy0, own0, t0 = _machine_busy_s(), _children_cpu_s(), time.perf_counter()
    result, error = _spawn(payload, case.threads, timeout_s=4 * cfg.max_seconds + 300, steady_malloc=cfg.steady_malloc)
    busy1, own1, t1 = _machine_busy_s(), _children_cpu_s(), time.perf_counter()
    if result is None:
        return BenchRow(case.backend.value, case.precision.value, case.batch, case.threads, status=RowStatus.failed.value, reason=error)
    if "skipped" in result:
        return BenchRow.skipped(case, result["skipped"])
    row = BenchRow(case.backend.value, case.precision.value, case.batch, case.threads)
    for k, v in result.items():
        if hasattr(row, k):
            setattr(row, k, v)
    row.windows_per_s, row.gflops_per_s = throughput(case.batch, row.p50_ms, (manifest.data.get("model") or {}).get("flops_per_window"))
    if busy0 is not None and busy1 is not None:
        row.other_cpu_cores = max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0)
        if row.other_cpu_cores > BUSY_CORES:
            row.note = f"machine busy: other processes used {row.other_cpu_cores:.1f} cores meanwhile; rerun"
    if result.get("step_cpu_ns"):
        step_s = result["step_cpu_ns"] / 1e9
        row.rtf = real_time_factor(cfg.hop_s, step_s)
        row.rtf_step_cpu_ms = step_s * 1e3
        row.rtf_preprocess_cpu_ms = result["preprocess_cpu_ns"] / 1e6
    return row


BUSY_CORES = 0.25  # CPU used by other processes during a measurement, in cores, above which its row is flagged


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


def measure_peak_gflops() -> float | None:
    """Single-core FP32 sgemm GFLOP/s (numpy/OpenBLAS, one thread), measured in its own process."""
    result, _ = _spawn({"task": "peak"}, 1, timeout_s=120)
    return result["gflops"] if result else None


def main_bench(cfg: BenchConfig, *, log: Callable[[str], None] = print) -> BenchReport:
    """Measure every configuration of ``cfg`` on the export folder ``cfg.export``; see the module docstring."""
    manifest = load_manifest(cfg.export, verify=True)
    available = available_backends()
    ckpt = checkpoint_path(manifest, cfg.checkpoint)
    machine = machine_info()
    if cfg.machine_peak:
        machine["peak_fp32_gflops_1core"] = measure_peak_gflops()
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
        art = manifest.artefacts.get(artefact_key(case.backend.runtime_backend, case.precision)) if case.backend != BenchBackend.torch else None
        if row.ok and art and art.get("status") == ArtefactStatus.rejected:
            row.rejected = True
        row.note = "; ".join(n for n in (REJECTED_NOTE if row.rejected else "", ckpt_note if case.backend == BenchBackend.torch else "", row.note) if n)
        report.rows.append(row)
        if row.ok:
            log(f"[{i}/{len(cases)}] {case.label}: p50 {row.p50_ms:.3f} ms, {row.windows_per_s:.0f} windows/s ({row.calls} calls)")
        elif row.status == RowStatus.failed.value:
            log(f"[{i}/{len(cases)}] {case.label}: failed ({row.reason})")
    with_ratios(report.rows, machine.get("peak_fp32_gflops_1core"))
    report.targets = target_checks(report.rows, machine, cfg.hop_s)
    return report


def write_json(report: BenchReport, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict(), indent=2))
    return path


def untrained_export(folder: str | Path, *, model=None, leads: tuple[str, ...] | None = None, window_samples: int = 2048,
                     labels: tuple[str, ...] = ("SB", "AFIB", "GSVT", "SR"), int8: bool = True, fp16: bool = False,
                     seed: int = 0, checkpoint: str | Path | None = None) -> Path:
    """An export folder of an *untrained* classifier, to measure speed where no trained run exists.

    Latency, memory and cold start do not depend on the weights' values, so benchmark suites and
    tests use this instead of minutes of training. The architecture is the real one (``model``: a
    :class:`~ecgedge.config.ModelConfig`, default the paper's; ``leads``, default the 12 standard
    leads; ``window_samples`` at 250 Hz) and the artefacts are made by the export code: FP32 ONNX
    from the checkpoint, INT8 QDQ with the x86-64 preset (calibrated on seeded noise), FP16 if
    asked. The manifest says ``"untrained": true`` and every artefact is ``not gated``: the
    classifications mean nothing. The checkpoint (the PyTorch baseline's source) goes beside the
    folder (default ``FOLDER.pt``), where a training run would keep it. Needs torch.
    """
    import torch

    from ecgedge.config import STANDARD_12_LEADS, ModelConfig, PreprocessConfig, Target, WindowConfig, config_to_dict
    from ecgedge.data.preprocess import preprocess_params
    from ecgedge.export.onnx_export import INPUT_NAME, OUTPUT_NAME, onnx_from_checkpoint
    from ecgedge.export.quantize import fp16_onnx_from_onnx, int8_onnx_from_onnx
    from ecgedge.export.targets import PRESETS
    from ecgedge.manifest import FORMAT
    from ecgedge.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
    from ecgedge.models.classifier import RhythmClassifier
    from ecgedge.models.flops import count_macs, count_params

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise ConfigError(f"{folder} is not empty; untrained_export writes a new folder")
    folder.mkdir(parents=True, exist_ok=True)
    model_cfg, leads = model or ModelConfig(), tuple(leads or STANDARD_12_LEADS)
    pre, window = PreprocessConfig(), WindowConfig(samples=window_samples)
    torch.manual_seed(seed)
    net = RhythmClassifier(model_cfg, len(leads), len(labels)).eval()
    ckpt_path = save_checkpoint(Path(checkpoint) if checkpoint else folder.parent / f"{folder.name}.pt",
                                Checkpoint("classifier", model_cfg, pre, window, net.state_dict(), leads=leads, labels=tuple(labels),
                                           train_config={"untrained": True}))
    ckpt = load_checkpoint(ckpt_path)
    fp32 = onnx_from_checkpoint(ckpt, folder / "model.fp32.onnx")
    ungated = ArtefactStatus.not_gated.value  # an untrained model: there is nothing to gate against
    artefacts = {"fp32": {"file": fp32.name, "precision": "fp32", "runtime": "onnx", "status": ungated}}
    if int8:
        calib = np.random.default_rng(seed).standard_normal((16, len(leads), window_samples), dtype=np.float32)
        q = int8_onnx_from_onnx(fp32, folder / "model.int8.onnx", calib, input_name=INPUT_NAME, preset=PRESETS[Target.cpu])
        artefacts["int8"] = {"file": "model.int8.onnx", "precision": "int8", "runtime": "onnx", "status": ungated, "quantization": q}
    if fp16:
        artefacts["fp16"] = {"file": "model.fp16.onnx", "precision": "fp16", "runtime": "onnx", "status": ungated,
                             **fp16_onnx_from_onnx(fp32, folder / "model.fp16.onnx")}
    macs = count_macs(net, (len(leads), window_samples))
    manifest = Manifest(folder, {
        "format": FORMAT, "name": folder.name, "untrained": True,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input": {"name": INPUT_NAME, "shape": ["batch", len(leads), window_samples], "dtype": "float32", "leads": list(leads),
                  "fs_hz": pre.fs_hz, "window_samples": window_samples, "window_s": window_samples / pre.fs_hz},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", len(labels)], "labels": list(labels)},
        "model": {"architecture": "shared per-lead CAE encoder + conv fusion head (untrained)", "params": count_params(net),
                  "macs_per_window": macs, "flops_per_window": 2 * macs},
        "preprocess": preprocess_params(pre),
        "window": config_to_dict(window),
        "source": {"checkpoint": str(ckpt_path), "checkpoint_sha256": file_sha256(ckpt_path)},
        "artefacts": artefacts,
    })
    manifest.save()
    return folder


# ----------------------------------------------------------------------------------- the worker side


class TorchEagerRunner:
    """The PyTorch FP32 eager baseline with the runner lifecycle (``with runner:``, ``infer``).

    Input is checked against the same :class:`InputSpec` as every other backend, so the baseline
    pays what they pay; inference runs under ``torch.inference_mode``.
    """

    def __init__(self, checkpoint: str | Path, spec: InputSpec, threads: int | None = None):
        self.checkpoint, self.spec, self.threads = Path(checkpoint), spec, threads
        self.model = None
        self.name = "torch:fp32"

    def activate(self) -> "TorchEagerRunner":
        import torch

        from ecgedge.models.checkpoint import load_checkpoint

        if self.threads:
            torch.set_num_threads(self.threads)
            try:
                torch.set_num_interop_threads(1)
            except RuntimeError:  # already set in this process (only allowed once, before any parallel work)
                pass
        self.model = load_checkpoint(self.checkpoint).build_model().float().eval()
        return self

    def infer(self, x: np.ndarray) -> np.ndarray:
        import torch

        x = self.spec.check(x)
        with torch.inference_mode():
            return self.model(torch.from_numpy(x)).numpy()

    def deactivate(self) -> None:
        self.model = None

    def __enter__(self):
        return self.activate()

    def __exit__(self, *exc):
        self.deactivate()

    @property
    def provider(self) -> str:
        import torch

        return f"torch {torch.__version__} eager, {torch.get_num_threads()} threads"


class StreamStep:
    """The per-hop work of one stream before inference: push ``hop_s`` of new samples at
    ``source_fs_hz`` through the shared preprocessing, keep the newest window, z-score it.

    ``__call__`` returns the (1, leads, samples) float32 model input. The signal is seeded noise
    in mV (filter and resampler cost do not depend on the values); a window and the filters'
    settling time are pushed at construction so every timed step is a steady-state one.
    """

    def __init__(self, manifest: Manifest, source_fs_hz: float = 500.0, hop_s: float = 1.0, seed: int = 0, pool: int = 8):
        from ecgedge.data.preprocess import StreamingPreprocessor

        self.cfg = manifest.preprocess_config()
        n_leads, self.window = len(manifest.leads), manifest.window_samples
        self.pre = StreamingPreprocessor(self.cfg, source_fs_hz, n_leads)
        hop = int(round(hop_s * source_fs_hz))
        rng = np.random.default_rng(seed)
        self.chunks = [0.2 * rng.standard_normal((n_leads, hop)) for _ in range(pool)]
        self.ring = np.zeros((n_leads, self.window))
        self._i = 0
        fill_s = self.window / self.cfg.fs_hz + self.cfg.settle_s
        for _ in range(math.ceil(fill_s / hop_s) + 1):
            self()

    def __call__(self) -> np.ndarray:
        from ecgedge.data.preprocess import normalise_windows

        y = self.pre.push(self.chunks[self._i % len(self.chunks)])
        self._i += 1
        n = min(y.shape[-1], self.window)
        self.ring = np.concatenate([self.ring[:, n:], y[:, -n:]], axis=-1) if n else self.ring
        x, _ = normalise_windows(self.ring, self.cfg)
        return x[None]


def _block_torch() -> None:
    """Make ``import torch`` fail in this process, so an inference-only worker cannot pull it in unnoticed."""

    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in an inference-only benchmark worker")
            return None

    sys.meta_path.insert(0, _Block())


def _timed_calls(infer, x, warmup: int, repeats: int, max_seconds: float) -> tuple[list[int], float]:
    """(ns per timed call, minor page faults per timed call); at least one timed call."""
    deadline = time.perf_counter() + max_seconds
    for _ in range(warmup):
        infer(x)
        if time.perf_counter() > deadline:
            break
    out: list[int] = []
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    while len(out) < repeats and (not out or time.perf_counter() < deadline):
        t0 = time.perf_counter_ns()
        infer(x)
        out.append(time.perf_counter_ns() - t0)
    return out, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / len(out)


def _current_rss_bytes() -> int | None:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None  # not Linux: only the peak is reported


def _peak_rss_bytes() -> int:
    """This process's peak resident memory. On Linux the VmHWM of /proc/self/status: ``ru_maxrss``
    survives ``exec``, so a worker spawned by a big process (a quickstart holding torch and a data
    set) would report its parent's peak instead of its own."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # Linux reports KiB, macOS bytes


def _open_runner(p: dict, manifest: Manifest, spec: InputSpec):
    """(runner, model file, ns spent importing the runtime library); the runner is not yet active."""
    backend, precision = BenchBackend(p["backend"]), Precision(p["precision"])
    t0 = time.perf_counter_ns()
    if backend == BenchBackend.torch:
        import torch  # noqa: F401  (timed: part of the cold start)

        return TorchEagerRunner(p["checkpoint"], spec, threads=p["threads"]), Path(p["checkpoint"]), time.perf_counter_ns() - t0
    if backend == BenchBackend.tensorrt:
        import tensorrt  # noqa: F401
    else:
        import onnxruntime  # noqa: F401
    import_ns = time.perf_counter_ns() - t0
    from ecgedge.runtime.loader import runner_from_export

    runner = runner_from_export(manifest.folder, precision, backend.runtime_backend, threads=p["threads"], verify=False,
                                allow_rejected=p["include_rejected"], manifest=manifest)
    return runner, Path(runner.model_path), import_ns


def _stream_cpu_ns(runner, step: StreamStep, warmup: int, steps: int, max_seconds: float) -> tuple[float, float]:
    """Mean CPU ns per hop of (preprocess + normalise + batch-1 inference) and of the preprocessing alone.

    Mean, not median: a sustained stream pays every step, the slow ones included.
    """
    pre_ns, total_ns = [], []
    deadline = time.perf_counter() + max_seconds
    for i in range(warmup + steps):
        c0 = time.process_time_ns()
        w = step()
        c1 = time.process_time_ns()
        runner.infer(w)
        c2 = time.process_time_ns()
        if i >= warmup:
            pre_ns.append(c1 - c0)
            total_ns.append(c2 - c0)
            if time.perf_counter() > deadline:
                break
    return float(np.mean(total_ns)), float(np.mean(pre_ns))


def _measure(p: dict) -> dict:
    """Worker body: one configuration, in this (fresh) process."""
    if p["backend"] != BenchBackend.torch.value:
        _block_torch()
    manifest = load_manifest(p["export"], verify=False)  # the parent verified every hash once
    spec = input_spec(manifest)
    x = np.random.default_rng(p["seed"]).standard_normal((p["batch"], len(spec.leads), spec.window_samples), dtype=np.float32)

    t0 = time.perf_counter_ns()
    try:
        runner, model_file, import_ns = _open_runner(p, manifest, spec)
        runner.activate()
    except EcgEdgeError as exc:
        return {"skipped": str(exc)}
    t2 = time.perf_counter_ns()
    runner.infer(x)
    t3 = time.perf_counter_ns()
    rss_loaded = _current_rss_bytes()

    lat, faults = _timed_calls(runner.infer, x, p["warmup"], p["repeats"], p["max_seconds"])
    out = {"calls": len(lat), **latency_stats(lat), "page_faults_per_call": faults,
           "import_ms": import_ns / 1e6, "load_ms": (t2 - t0 - import_ns) / 1e6,
           "first_infer_ms": (t3 - t2) / 1e6, "cold_start_ms": (t3 - t0) / 1e6,
           "model_file": model_file.name, "model_bytes": model_file.stat().st_size}
    if p["rtf_steps"]:
        step = StreamStep(manifest, p["source_fs_hz"], p["hop_s"], p["seed"])
        out["step_cpu_ns"], out["preprocess_cpu_ns"] = _stream_cpu_ns(runner, step, p["warmup"], p["rtf_steps"], p["max_seconds"])
    out["provider"] = runner.provider if isinstance(runner, TorchEagerRunner) else ", ".join(getattr(runner, "active_providers", None) or [p["backend"]])
    runner.deactivate()
    out["rss_loaded_bytes"] = rss_loaded
    out["peak_rss_bytes"] = _peak_rss_bytes()
    out["torch_imported"] = "torch" in sys.modules
    return out


def _peak(_p: dict) -> dict:
    a = np.random.default_rng(0).standard_normal((PEAK_SIZE, PEAK_SIZE), dtype=np.float32)
    b = a.T.copy()
    a @ b
    best = min(_time_once(lambda: a @ b) for _ in range(10))
    return {"gflops": 2 * PEAK_SIZE**3 / best / 1e9}


def _time_once(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _worker_main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "--worker":
        print("usage: python -m ecgedge.bench --worker JSON  (internal: one benchmark configuration; use `ecgedge bench`)", file=sys.stderr)
        return 2
    payload = json.loads(argv[1])
    result = _peak(payload) if payload["task"] == "peak" else _measure(payload)
    print(WORKER_MARKER + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
