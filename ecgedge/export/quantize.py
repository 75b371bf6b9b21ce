"""INT8 (ONNX Runtime static QDQ, per-channel weights) and FP16 ONNX from the FP32 ONNX model.

Calibration reads real training windows through the tiny ``CalibrationDataReader`` protocol.
onnx (``pip install 'ecgedge[train]'``) is imported when a function needs it, never at import time.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ecgedge.config import CalibMethod, require
from ecgedge.errors import ArtefactError
from ecgedge.export.onnx_tidy import strip_debug_info
from ecgedge.export.targets import TargetPreset


class WindowCalibrationReader:
    """Feeds normalised (N, leads, samples) float32 windows to the calibrator in batches."""

    def __init__(self, input_name: str, windows: np.ndarray, batch_size: int = 32):
        self.input_name = input_name
        self.windows = np.ascontiguousarray(windows, dtype=np.float32)
        self.batch_size = batch_size
        self._i = 0

    def get_next(self):
        if self._i >= len(self.windows):
            return None
        batch = self.windows[self._i:self._i + self.batch_size]
        self._i += self.batch_size
        return {self.input_name: batch}

    def rewind(self):
        self._i = 0


def int8_onnx_from_onnx(fp32_path: str | Path, out_path: str | Path, calib_windows: np.ndarray, *, input_name: str,
                        preset: TargetPreset, method: CalibMethod = CalibMethod.minmax, keep_first_conv_fp32: bool = True) -> dict:
    """Static QDQ quantization with per-channel int8 weights; returns the settings for the manifest.

    ``keep_first_conv_fp32`` leaves the first convolution (1 input channel, a few dozen weights, fed
    the z-scored signal itself) in FP32: quantizing the raw input to 8 bits is where most of the
    accuracy goes, for the least compute saved (it is also faster on x86: no QuantizeLinear over the
    whole 12 x 2048 input). Every other Conv/Gemm is INT8.
    """
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _Reader(WindowCalibrationReader, CalibrationDataReader):
        pass

    methods = {CalibMethod.minmax: CalibrationMethod.MinMax, CalibMethod.entropy: CalibrationMethod.Entropy,
               CalibMethod.percentile: CalibrationMethod.Percentile}
    extra: dict[str, bool | float] = {"ActivationSymmetric": preset.activation_symmetric, "WeightSymmetric": True}
    if method == CalibMethod.percentile:
        extra["CalibPercentile"] = 99.99
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        # Shape inference + graph optimisation first, as ONNX Runtime recommends before static quantization.
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        excluded = [_first_conv(pre)] if keep_first_conv_fp32 else []
        try:
            quantize_static(
                str(pre), str(out_path), _Reader(input_name, calib_windows),
                quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=preset.reduce_range,
                activation_type=getattr(QuantType, preset.activation_type), weight_type=getattr(QuantType, preset.weight_type),
                calibrate_method=methods[method], extra_options=extra, nodes_to_exclude=excluded,
            )
        except Exception as exc:
            raise ArtefactError(f"INT8 quantization of {fp32_path} failed: {exc}") from exc
    strip_debug_info(out_path)
    return {"format": "QDQ", "per_channel": True, "reduce_range": preset.reduce_range, "fp32_nodes": excluded, "activation_type": preset.activation_type,
            "activation_symmetric": preset.activation_symmetric, "weight_type": preset.weight_type,
            "calib_method": method.value, "calib_windows": int(len(calib_windows))}


def _first_conv(path: Path) -> str:
    model = require("onnx", extra="train").load(str(path))
    for node in model.graph.node:  # ONNX graphs are topologically sorted
        if node.op_type == "Conv":
            if not node.name:
                raise ArtefactError(f"{path}: the first Conv has no name, cannot exclude it from quantization")
            return node.name
    raise ArtefactError(f"{path} has no Conv node")


def fp16_onnx_from_onnx(fp32_path: str | Path, out_path: str | Path) -> dict:
    """Weights and compute in FP16, inputs/outputs kept FP32 so callers need not change."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx = require("onnx", extra="train")
    model = onnx.load(str(fp32_path))
    half = convert_float_to_float16(model, keep_io_types=True)
    onnx.save(half, str(out_path))
    strip_debug_info(out_path)
    return {"keep_io_types": True}


def quantization_loss_by_layer(fp32_path: str | Path, int8_path: str | Path, windows: np.ndarray, input_name: str, top: int = 5) -> list[dict]:
    """Layers whose INT8 activations differ most from FP32 (lowest SQNR, dB), as ORT's qdq_loss_debug computes it.

    Used to point at the culprits when an artefact fails the gate.
    """
    from onnxruntime.quantization import CalibrationDataReader
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations, compute_activation_error, create_activation_matching, modify_model_output_intermediate_tensors)

    class _Reader(WindowCalibrationReader, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory() as tmp:
        f_aug, q_aug = Path(tmp) / "f.onnx", Path(tmp) / "q.onnx"
        modify_model_output_intermediate_tensors(str(fp32_path), str(f_aug))
        modify_model_output_intermediate_tensors(str(int8_path), str(q_aug))
        w = windows[: min(len(windows), 32)]
        fa = collect_activations(str(f_aug), _Reader(input_name, w))
        qa = collect_activations(str(q_aug), _Reader(input_name, w))
    errors = compute_activation_error(create_activation_matching(qa, fa))
    rows = [{"tensor": name, "sqnr_db": float(e.get("xmodel_err", np.nan))} for name, e in errors.items()]
    rows = [r for r in rows if np.isfinite(r["sqnr_db"])]
    return sorted(rows, key=lambda r: r["sqnr_db"])[:top]
