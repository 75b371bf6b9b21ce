"""The benchmark worker: one configuration, or the machine's peaks, measured in this fresh process.

:mod:`ecgedge.bench.run` starts it as ``python -m ecgedge.bench --worker JSON`` (one JSON object: the
task and its parameters) and reads back the one stdout line that starts with :data:`WORKER_MARKER`.
What a worker measures, in order (the method is in :mod:`ecgedge.bench`):

1. cold start: import of the runtime library, loading the model (a runner's ``activate``), the
   first inference; resident memory right after;
2. latency: ``warmup`` untimed then up to ``repeats`` timed ``infer`` calls (``perf_counter_ns``),
   with minor page faults per call;
3. at batch 1, the real-time factor: the real stream monitor (:class:`~ecgedge.stream.hub.StreamHub`
   over one :class:`~ecgedge.stream.monitor.BedMonitor`, as ``ecgedge stream`` runs it) fed hop after
   hop of a synthetic sinus-rhythm ECG, CPU time (``process_time``) per hop; then the same for a
   ward of ``rtf_beds`` beds in one hub (the real-time factor per core);
4. the process's peak resident memory, and whether torch was imported.

ONNX Runtime and TensorRT workers block ``import torch`` first, so their memory is that of the
inference-only runtime a bedside device runs. The peak task measures the FP32 and INT8 single-core
peaks of :mod:`ecgedge.bench.machine` (torch blocked too).
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

from ecgedge.bench.machine import fp32_peak_gflops, int8_peak_gops
from ecgedge.bench.plan import BenchBackend
from ecgedge.bench.report import latency_stats
from ecgedge.errors import EcgEdgeError
from ecgedge.manifest import Manifest, load_manifest
from ecgedge.runtime.base import InputSpec, Precision
from ecgedge.runtime.loader import input_spec

WORKER_MARKER = "ECGEDGE_BENCH_RESULT "
# The stream's synthetic ECG, looped: 20 s of sinus rhythm keeps the worker small; the loop's seam
# (one baseline step every 20 s) is well inside what the monitor's quality checks accept.
STREAM_RECORD_S = 20.0
STREAM_RHYTHM = "SR"


def block_torch() -> None:
    """Make ``import torch`` fail in this process, so an inference-only worker cannot pull it in unnoticed."""

    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in an inference-only benchmark worker")
            return None

    sys.meta_path.insert(0, _Block())


def torch_runner_from_checkpoint(checkpoint: str | Path, spec: InputSpec, threads: int | None = None):
    """The PyTorch FP32 eager baseline: a :class:`~ecgedge.evaluate.reference.TorchRunner` (the one
    PyTorch reference runner) that builds
    the model of ``checkpoint`` (an ``ecgedge.checkpoint/1`` file) when activated. Needs torch."""
    from ecgedge.evaluate.reference import TorchRunner

    def load(path: Path):
        from ecgedge.models.checkpoint import load_checkpoint

        return load_checkpoint(path).build_model()

    return TorchRunner(checkpoint, spec, load, threads=threads)


def timed_calls(infer, x, warmup: int, repeats: int, max_seconds: float) -> tuple[list[int], float]:
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


def current_rss_bytes() -> int | None:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None  # not Linux: only the peak is reported


def peak_rss_bytes() -> int:
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

        return torch_runner_from_checkpoint(p["checkpoint"], spec, p["threads"]), Path(p["checkpoint"]), time.perf_counter_ns() - t0
    if backend == BenchBackend.tensorrt:
        import tensorrt  # noqa: F401
    else:
        import onnxruntime  # noqa: F401
    import_ns = time.perf_counter_ns() - t0
    from ecgedge.runtime.loader import runner_from_export

    runtime = backend.runtime_backend
    assert runtime is not None  # only the torch baseline, returned above, has none
    runner = runner_from_export(manifest.folder, precision, runtime, threads=p["threads"], verify=False,
                                allow_rejected=p["include_rejected"], manifest=manifest)
    return runner, Path(runner.model_path), import_ns


def _as_record(item) -> dict:
    """A stream item as its JSON record, whether the monitor returns typed objects or dicts."""
    to_json = getattr(item, "to_json", None)
    return to_json() if callable(to_json) else item


def synthetic_stream(leads: tuple[str, ...], fs_hz: float, seed: int, seconds: float = STREAM_RECORD_S) -> np.ndarray:
    """(len(leads), seconds x fs_hz) synthetic sinus rhythm in mV, one row per model lead (a lead that
    is no standard 12-lead name, e.g. CinC's ``ECG``, gets lead II's waveform)."""
    from ecgedge.config import STANDARD_12_LEADS
    from ecgedge.data.leads import standard_lead
    from ecgedge.data.synthetic import synthesize_ecg

    names = [standard_lead(name) if standard_lead(name) in STANDARD_12_LEADS else "II" for name in leads]
    return synthesize_ecg(STREAM_RHYTHM, seed=seed, duration_s=seconds, fs=fs_hz, leads=names)[0].astype(np.float64)


class _TimedRunner:
    """A runner whose ``infer`` adds its CPU time (ns) to ``cpu_ns``: the inference share of a stream hop."""

    def __init__(self, runner):
        self.runner, self.cpu_ns = runner, 0

    def infer(self, x):
        t = time.process_time_ns()
        try:
            return self.runner.infer(x)
        finally:
            self.cpu_ns += time.process_time_ns() - t


def stream_cpu(runner, manifest: Manifest, *, source_fs_hz: float, hop_s: float, seed: int, warmup: int, steps: int,
               max_seconds: float, beds: int = 1) -> dict:
    """CPU cost of a stream hop of ``beds`` beds on the path ``ecgedge stream`` runs, with ``runner`` as its model.

    A :class:`~ecgedge.stream.hub.StreamHub` with ``beds`` :class:`~ecgedge.stream.monitor.BedMonitor`
    is fed ``hop_s`` seconds of samples per bed at a time at ``source_fs_hz`` (a looped synthetic
    sinus rhythm, seeded, in mV; each bed at its own phase of it) and flushed after each hop: the
    pushes run the ring buffers; the flush runs the quality checks, the causal preprocessing and the
    z-score of every bed in one vectorised pass, the model (batch 1 for one bed; calls of at most
    :func:`~ecgedge.stream.hub.default_max_batch` windows for many), the softmax and the hysteresis.
    The stream is first run past the monitor's start-up (one window plus the filters' settling time)
    and ``warmup`` more hops, untimed; then up to ``steps`` hops are timed (fewer if ``max_seconds``
    of wall time run out).

    Returns, as means over the timed hops (a sustained stream pays every hop, the slow ones
    included): ``step_cpu_ns`` (one hop of all beds) and ``infer_cpu_ns`` (its inference calls), with
    ``hops`` timed, ``beds`` and ``windows`` classified in them.
    """
    from ecgedge.stream.hub import StreamHub, default_max_batch
    from ecgedge.stream.monitor import ModelSpec, StreamSettings

    model = ModelSpec.from_manifest(manifest)
    timed = _TimedRunner(runner)
    hub = StreamHub(timed, model, StreamSettings(hop_s=hop_s), max_batch=1 if beds == 1 else default_max_batch(runner))
    for bed in range(beds):
        hub.open(bed, fs_in=source_fs_hz, lead_names=model.leads)
    flush = getattr(hub, "flush_items", hub.flush)
    signal = synthetic_stream(model.leads, source_fs_hz, seed)
    hop, n = int(round(hop_s * source_fs_hz)), signal.shape[1]
    phase = max(1, n // max(beds, 1))  # bed b plays the record from b * phase samples on
    sent = 0

    def push() -> None:
        nonlocal sent
        for bed in range(beds):
            hub.push(bed, signal[:, (sent + bed * phase + np.arange(hop)) % n], sent)
        sent += hop

    start_up = math.ceil((model.window_samples / model.preprocess.fs_hz + model.preprocess.settle_s) / hop_s) + 1
    for _ in range(start_up + warmup):
        push()
        flush()
    step_ns: list[int] = []
    infer_ns: list[int] = []
    windows = 0
    deadline = time.perf_counter() + max_seconds
    while len(step_ns) < steps and (not step_ns or time.perf_counter() < deadline):
        timed.cpu_ns = 0
        c0 = time.process_time_ns()
        push()
        items = flush()
        step_ns.append(time.process_time_ns() - c0)
        infer_ns.append(timed.cpu_ns)
        windows += sum(1 for rec in map(_as_record, items) if rec.get("type") == "window" and rec.get("quality") == "ok")
    return {"step_cpu_ns": float(np.mean(step_ns)), "infer_cpu_ns": float(np.mean(infer_ns)), "hops": len(step_ns),
            "beds": beds, "windows": windows}


def measure(p: dict) -> dict:
    """Worker body: one configuration, in this (fresh) process."""
    if p["backend"] != BenchBackend.torch.value:
        block_torch()
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
    rss_loaded = current_rss_bytes()

    lat, faults = timed_calls(runner.infer, x, p["warmup"], p["repeats"], p["max_seconds"])
    out = {"calls": len(lat), **latency_stats(lat), "page_faults_per_call": faults,
           "import_ms": import_ns / 1e6, "load_ms": (t2 - t0 - import_ns) / 1e6,
           "first_infer_ms": (t3 - t2) / 1e6, "cold_start_ms": (t3 - t0) / 1e6,
           "model_file": model_file.name, "model_bytes": model_file.stat().st_size}
    if p["rtf_steps"]:
        stream = {"source_fs_hz": p["source_fs_hz"], "hop_s": p["hop_s"], "seed": p["seed"], "warmup": p["warmup"],
                  "max_seconds": p["max_seconds"]}
        out["stream"] = stream_cpu(runner, manifest, steps=p["rtf_steps"], **stream)
        # The memory figures are those of a one-bed stream process (the bedside case), taken before the ward.
        out["peak_rss_bytes"] = peak_rss_bytes()
        if p.get("rtf_beds", 1) > 1:  # a ward: many beds in one hub, preprocessed together, batched inference
            out["ward"] = stream_cpu(runner, manifest, steps=max(10, p["rtf_steps"] // 4), beds=p["rtf_beds"], **stream)
    out["provider"] = ", ".join(getattr(runner, "active_providers", None) or [p["backend"]])  # TensorRT runners name none
    runner.deactivate()
    out["rss_loaded_bytes"] = rss_loaded
    out.setdefault("peak_rss_bytes", peak_rss_bytes())
    out["torch_imported"] = "torch" in sys.modules
    return out


def peaks(_p: dict) -> dict:
    """Worker body of the peak task: the FP32 and INT8 single-core peaks (``int8_note`` says why the INT8 one is missing)."""
    block_torch()
    out: dict = {"fp32_gflops": fp32_peak_gflops(), "int8_gops": None}
    try:
        out["int8_gops"] = int8_peak_gops()
    except ImportError as exc:
        out["int8_note"] = f"{exc.name or exc} is not installed (the INT8 GEMM is built with onnx.helper and run by onnxruntime)"
    return out


def worker_main(argv: list[str]) -> int:
    """``python -m ecgedge.bench --worker JSON``: run one task, print its result after :data:`WORKER_MARKER`."""
    if len(argv) != 2 or argv[0] != "--worker":
        print("usage: python -m ecgedge.bench --worker JSON  (internal: one benchmark configuration; use `ecgedge bench`)", file=sys.stderr)
        return 2
    payload = json.loads(argv[1])
    result = peaks(payload) if payload["task"] == "peak" else measure(payload)
    print(WORKER_MARKER + json.dumps(result), flush=True)
    return 0
