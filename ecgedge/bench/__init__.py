"""``ecgedge bench``: latency, throughput, real-time factor, memory and cold start, measured one way for every backend.

Users choose a precision and a runtime by these numbers, so every configuration (backend x
precision x batch x threads) is measured by the same code, against the baseline they would
otherwise use (the PyTorch FP32 model in eager mode) and against the machine's limit.

Modules, in the order a run uses them: :mod:`~ecgedge.bench.plan` (the config, the cases, why one
is skipped), :mod:`~ecgedge.bench.machine` (the machine and its FP32 and INT8 peaks),
:mod:`~ecgedge.bench.run` (one worker process per case, the report), :mod:`~ecgedge.bench.worker`
(what a worker measures), :mod:`~ecgedge.bench.report` (rows, ratios, targets, table, JSON) and
:mod:`~ecgedge.bench.untrained` (an untrained export for speed tests). Every name other modules
use is importable from ``ecgedge.bench``.

Method (benchmarks/README.md repeats it):

- **One fresh process per configuration** (``python -m ecgedge.bench --worker JSON``), run one at
  a time, so its memory and its cold start are that configuration's own. ONNX Runtime and
  TensorRT workers block ``import torch`` (an import of it fails loudly), so their memory is that
  of the inference-only runtime a bedside device runs. Two numbers: resident memory right after
  load + first inference (Python, numpy, the runtime library, the model), and the process's peak
  (``VmHWM`` on Linux, else ``ru_maxrss``) at the end, which for batch-1 rows includes the stream
  monitor (scipy) run for the real-time factor, and for large batches the activations. The torch
  worker runs :class:`~ecgedge.evaluate.reference.TorchRunner`, a runner like the others, on the
  FP32 eager model built from the manifest's ``source.checkpoint`` (or ``--checkpoint``); its rows
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
  (manifest ``model.flops_per_window``: 2 x MACs of the conv and linear layers; integer
  operations for INT8 rows) x batch / p50.
- **x torch**: windows/s over those of the PyTorch FP32 eager row at the same batch and threads,
  measured in the same run (added automatically unless ``baseline=False``).
- **Machine limit**: two single-core peaks, each measured on one thread in a worker of its own,
  best of 10, a multiply-add counted as 2 operations: FP32 (numpy/OpenBLAS sgemm, 1024^3) and
  INT8 (ONNX Runtime ``MatMulInteger``, uint8 x int8 -> int32, 1024^3, a one-node graph built in
  code: MLAS's integer GEMM, with VNNI/AMX where the CPU has them). The table's ``%pk`` is GFLOP/s
  over peak x threads: INT8 rows against the INT8 peak (marked ``i``), the others against the
  FP32 peak, so no row passes 100 % by being compared with the wrong units.
- **Real-time factor** (batch-1 rows): the stream monitor ``ecgedge stream`` runs
  (:class:`~ecgedge.stream.hub.StreamHub` over one :class:`~ecgedge.stream.monitor.BedMonitor`,
  the configuration's runner as its model), fed one hop (1 s) at a time of a seeded synthetic
  sinus-rhythm ECG in mV at the source rate (500 Hz) and flushed after each: signal-quality
  checks, ring buffers, causal preprocessing, z-score, batch-1 inference, softmax and hysteresis.
  It runs past the monitor's start-up (one window plus the filters' settling) untimed. RTF = hop
  seconds / CPU seconds of a hop (``time.process_time``, all threads of the process, mean over
  ``rtf_steps`` hops): seconds of ECG classified per second of one core. The row says how many
  timed hops classified a window (a window the monitor judges unreliable runs no model). With 1
  thread it is the one-core figure; with more it charges every thread's CPU time, spinning
  included. On a GPU it is the host's CPU cost (launches, copies, synchronisation).
  **RTF/core** is the same for a ward: ``rtf_beds`` (64) beds in one hub, each bed at its own phase
  of the record, every hop one push per bed and one flush, which preprocesses all beds in one
  vectorised pass and classifies their windows in calls of at most 8 (CPU): beds x hop seconds / CPU
  seconds of the hop. The JSON row splits a bed-hop into inference and the rest.
- **Contention**: the parent reads the machine's busy CPU time (``/proc/stat``) around each worker
  and subtracts the worker's own; a row where other processes used more than a quarter of a core
  meanwhile says so ("machine busy ... rerun") instead of passing off a disturbed number.

Unavailable backends, missing artefacts and gate-rejected artefacts are *skipped rows* with
their reason, never errors. Rows are :class:`BenchRow`; :func:`render_table` is a pure function.
"""

from ecgedge.bench.machine import PEAK_SIZE, fp32_peak_gflops, int8_peak_gops, machine_info
from ecgedge.bench.plan import BenchBackend, BenchCase, BenchConfig, checkpoint_path, plan, skip_reason
from ecgedge.bench.report import (
    REJECTED_NOTE,
    BenchReport,
    BenchRow,
    PeakBasis,
    RowStatus,
    TargetCheck,
    fastest_precisions,
    latency_stats,
    real_time_factor,
    render_table,
    target_checks,
    throughput,
    with_ratios,
    write_json,
)
from ecgedge.bench.run import main_bench, measure_peaks, run_case, steady_malloc_in_process
from ecgedge.bench.untrained import untrained_export
from ecgedge.bench.worker import WORKER_MARKER, stream_cpu, synthetic_stream, torch_runner_from_checkpoint

__all__ = [
    "PEAK_SIZE", "REJECTED_NOTE", "WORKER_MARKER", "BenchBackend", "BenchCase", "BenchConfig", "BenchReport", "BenchRow",
    "PeakBasis", "RowStatus", "TargetCheck", "checkpoint_path", "fastest_precisions", "fp32_peak_gflops", "int8_peak_gops",
    "latency_stats", "machine_info", "main_bench", "measure_peaks", "plan", "real_time_factor", "render_table", "run_case",
    "skip_reason", "steady_malloc_in_process", "stream_cpu", "synthetic_stream", "target_checks", "throughput", "torch_runner_from_checkpoint",
    "untrained_export", "with_ratios", "write_json",
]
