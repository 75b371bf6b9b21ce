"""Target presets: which artefacts and quantization settings each device class gets, and why.

Each constraint carries its reason beside it, so a user reading ``--target`` knows what changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ecgedge.config import Backend, Precision, Target


@dataclass(frozen=True)
class TargetPreset:
    activation_type: str  # onnxruntime.quantization.QuantType name
    activation_symmetric: bool
    weight_type: str
    fp16_default: bool
    gate_backends: tuple[Backend, ...]
    engines: tuple[Precision, ...]
    recommended: dict[str, str]
    reasons: tuple[str, ...]
    mcu: bool = False  # also write the C99 INT8 library for a microcontroller (export/NAME/mcu/)
    # 7-bit weights (onnxruntime's reduce_range), see REDUCE_RANGE_REASON: every preset's INT8 model is
    # gated on x86 ONNX Runtime, which must give the same integers on every x86 CPU.
    reduce_range: bool = True


REDUCE_RANGE_REASON = (
    "7-bit weights (reduce_range): on x86 CPUs without VNNI (AVX2, AVX-512F) ONNX Runtime's int8 kernels add "
    "pairs of uint8 x int8 products in int16 (VPMADDUBSW), which saturates with full-range int8 weights; with "
    "weights in [-64, 63] the integer result is exact on every x86 CPU, so the gate's verdict does not depend on "
    "the machine (measured: full-range weights gave 60 % agreement on an AVX2-only EPYC, 100 % with VNNI)")


PRESETS: dict[Target, TargetPreset] = {
    Target.cpu: TargetPreset(
        "QUInt8", False, "QInt8", False, (Backend.ort_cpu,), (), {"ort-cpu": "int8"},
        ("x86-64: U8S8 QDQ (uint8 activations, int8 per-channel weights) maps onto MLAS's VNNI/AMX int8 kernels",
         "FP16 is not produced by default: ONNX Runtime's CPU provider runs most FP16 ops by casting back to FP32", REDUCE_RANGE_REASON)),
    Target.arm64: TargetPreset(
        "QInt8", False, "QInt8", False, (Backend.ort_cpu,), (), {"ort-cpu": "int8"},
        ("arm64: S8S8 QDQ: signed int8 for both operands matches the SDOT/I8MM dot-product kernels ONNX Runtime uses on ARM",
         REDUCE_RANGE_REASON)),
    Target.cuda: TargetPreset(
        "QInt8", True, "QInt8", True, (Backend.ort_cpu, Backend.ort_cuda), (), {"ort-cuda": "fp16", "ort-cpu": "int8"},
        ("cuda: FP16 is produced and recommended: ONNX Runtime's CUDA provider has few INT8 kernels, tensor cores run FP16",
         "INT8 uses symmetric activations so the same QDQ file also serves the TensorRT provider", REDUCE_RANGE_REASON)),
    Target.tensorrt: TargetPreset(
        "QInt8", True, "QInt8", True, (Backend.ort_cpu, Backend.tensorrt), (Precision.fp16, Precision.int8),
        {"tensorrt": "int8", "ort-cpu": "int8"},
        ("tensorrt: INT8 must be symmetric (zero point 0) for TensorRT's explicit quantization of Q/DQ nodes",
         "engines are built for the GPU at hand and its TensorRT version; they are refused elsewhere", REDUCE_RANGE_REASON)),
    Target.mcu: TargetPreset(
        "QUInt8", False, "QInt8", False, (Backend.ort_cpu, Backend.c_int8), (), {"ort-cpu": "int8", "c-int8": "int8"},
        ("mcu: a C99 INT8 library (mcu/) generated from the gated INT8 model; its int8 activations are ONNX Runtime's uint8 "
         "ones shifted by 128, so U8S8 is kept: x86 ONNX Runtime, the bit-exact reference, runs its usual kernels",
         "mcu: the first convolution stays FP32 on the microcontroller's FPU (Cortex-M4F), as in the INT8 ONNX model",
         "mcu: requantization is integer-only and reproduces ONNX Runtime's float32 rounding, so the gate's c-int8 row "
         "equals the ort-cpu int8 row", REDUCE_RANGE_REASON),
        mcu=True),
}
