"""FP32 ONNX from a checkpoint, verified by the ONNX checker; its parity with PyTorch on real windows is
checked by the export (:func:`ecgedge.evaluate.compare.compare`, tolerance ``ExportConfig.parity_atol``).

torch and onnx (``pip install 'ecgedge[train]'``) are imported when a function needs them, never at
import time: ``ecgedge export --check`` reads :data:`INPUT_NAME` on a device that has neither.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from ecgedge.config import require
from ecgedge.errors import ArtefactError

if TYPE_CHECKING:
    import onnx
    import torch

    from ecgedge.models.checkpoint import Checkpoint

INPUT_NAME = "ecg"
OUTPUT_NAME = "logits"


def onnx_from_model(model: torch.nn.Module, example: torch.Tensor, path: str | Path, *, opset: int = 18,
                    input_name: str = INPUT_NAME, output_name: str = OUTPUT_NAME) -> Path:
    """Export with a dynamic batch and static (leads, samples).

    Opset >= 18 uses the torch.export-based exporter (BatchNorm folded, a clean graph); opset 17
    falls back to the TorchScript exporter, which still emits it. Debug metadata is stripped and the
    first convolution rewritten into its exact polyphase form (:mod:`ecgedge.export.onnx_rewrite`).
    """
    from ecgedge.export.onnx_rewrite import polyphase_first_conv
    from ecgedge.export.onnx_tidy import strip_debug_info

    torch = require("torch", extra="train")
    path = Path(path)
    model = model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if opset >= 18:
            batch = torch.export.Dim("batch", min=1, max=4096)
            torch.onnx.export(model, (example,), str(path), input_names=[input_name], output_names=[output_name],
                              opset_version=opset, dynamo=True, dynamic_shapes=({0: batch},), external_data=False, verbose=False)
        else:
            torch.onnx.export(model, (example,), str(path), input_names=[input_name], output_names=[output_name],
                              opset_version=opset, dynamo=False,
                              dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}})
    strip_debug_info(path)
    polyphase_first_conv(path)
    check_onnx(path, expected_shape=tuple(example.shape[1:]), opset=opset)
    return path


def onnx_from_checkpoint(ckpt: Checkpoint, path: str | Path, *, opset: int = 18) -> Path:
    torch = require("torch", extra="train")
    model = ckpt.build_model()
    example = torch.zeros(2, len(ckpt.leads), ckpt.window.samples)
    return onnx_from_model(model, example, path, opset=opset)


def check_onnx(path: str | Path, *, expected_shape: tuple[int, ...], opset: int) -> onnx.ModelProto:
    """ONNX checker (full), opset, and input shape (dynamic batch, static rest); raises :class:`ArtefactError`."""
    onnx = require("onnx", extra="train")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # onnx raises several types for malformed files
        raise ArtefactError(f"{path} fails the ONNX checker: {exc}") from None
    got_opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if got_opset is None or got_opset < 17:
        raise ArtefactError(f"{path} uses opset {got_opset}; ecgedge requires opset >= 17")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_param or d.dim_value for d in dims]
    if len(shape) != len(expected_shape) + 1 or not isinstance(shape[0], str) or tuple(shape[1:]) != tuple(expected_shape):
        raise ArtefactError(f"{path}: input shape {shape}; expected [batch, {', '.join(map(str, expected_shape))}]")
    return model

