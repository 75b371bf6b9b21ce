"""The machine a bench ran on: what it is, and how fast one of its cores can multiply.

:func:`machine_info` describes the CPU (model, usable cores, the ISA flags that decide INT8 and FP16
speed), the GPU if any, and package versions, from ``/proc/cpuinfo`` and package metadata alone.

Two single-core limits, each measured on one thread in a fresh benchmark worker (no other work in
that process), best of :data:`PEAK_REPEATS` calls, operations counted as 2 per multiply-add:

- :func:`fp32_peak_gflops`: FP32 matrix multiply, numpy's BLAS ``sgemm`` (OpenBLAS/MKL) on
  (:data:`PEAK_SIZE`)^2 float32 matrices. The limit for FP32 and FP16 rows (CPU FP16 runs in FP32).
- :func:`int8_peak_gops`: integer matrix multiply through ONNX Runtime, one ``MatMulInteger`` node
  built in code (``onnx.helper``): uint8 activations (zero point 128) x int8 weights (zero point 0,
  a constant initializer that ONNX Runtime pre-packs) -> int32, (:data:`PEAK_SIZE`)^3, the U8S8
  form of the x86-64 export preset. That is MLAS's QGEMM, the kernel family the INT8 model's
  convolutions run on (VNNI / AMX / AVX2 ``pmaddubsw``, whichever the CPU has), so INT8 rows are
  judged against what this CPU's integer units reach, not against the FP32 peak (which VNNI and
  AMX exceed several times). Needs the ``onnx`` package to build the graph; without it the INT8
  peak is not measured and INT8 rows show no share of peak.

Both sizes are large enough to be compute-bound (1 MiB-4 MiB operands, 2 x 1024^3 operations).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

PEAK_SIZE = 1024  # M = N = K of both peak GEMMs: large enough for OpenBLAS and MLAS to reach their peak
PEAK_REPEATS = 10  # timed calls per peak; the best one counts (a limit, not a typical figure)

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
    The peaks are not measured here (see :func:`ecgedge.bench.run.measure_peaks`).
    """
    model, flags = platform.processor() or platform.machine(), set[str]()
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


def _best_s(fn, repeats: int = PEAK_REPEATS) -> float:
    """Shortest wall time of ``repeats`` calls of ``fn`` (after one untimed call), in s."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def fp32_peak_gflops(size: int = PEAK_SIZE) -> float:
    """FP32 GFLOP/s of numpy's sgemm on (size, size) x (size, size), 2 x size^3 FLOPs per call.

    One thread only if the process was started with ``OMP/OPENBLAS/MKL_NUM_THREADS=1`` (the
    benchmark worker is); this function does not change BLAS threading.
    """
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    b = a.T.copy()
    return 2 * size**3 / _best_s(lambda: a @ b) / 1e9


def int8_gemm_onnx(size: int = PEAK_SIZE) -> bytes:
    """A one-node ONNX model: ``Y = MatMulInteger(A, B, 128, 0)``, A (size, size) uint8 input,
    B (size, size) int8 seeded initializer, Y int32. Needs the ``onnx`` package."""
    from onnx import TensorProto, helper, numpy_helper

    # 7-bit weights: on AVX2 without VNNI, ONNX Runtime's U8S8 kernel adds pairs of products in int16
    # (VPMADDUBSW), which saturates when |w| reaches 128 / 2 (255 * 127 * 2 > 32767); with |w| <= 63 the
    # integer GEMM is exact on every x86 machine (its speed does not depend on the values).
    w = np.random.default_rng(1).integers(-63, 64, (size, size), dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B", "a_zero", "b_zero"], ["Y"])], "int8_peak",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [size, size])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [size, size])],
        [numpy_helper.from_array(w, "B"), numpy_helper.from_array(np.array(128, np.uint8), "a_zero"),
         numpy_helper.from_array(np.array(0, np.int8), "b_zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by every onnxruntime the project supports (>= 1.17)
    return model.SerializeToString()


def int8_peak_gops(size: int = PEAK_SIZE) -> float:
    """Integer GOP/s of ONNX Runtime's CPU ``MatMulInteger`` (U8S8, see the module docstring) on one
    intra-op thread, 2 x size^3 operations per call (a multiply-add counts 2)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(int8_gemm_onnx(size), sess_options=so, providers=["CPUExecutionProvider"])
    a = np.random.default_rng(0).integers(0, 256, (size, size), dtype=np.uint8)
    return 2 * size**3 / _best_s(lambda: sess.run(None, {"A": a})) / 1e9
