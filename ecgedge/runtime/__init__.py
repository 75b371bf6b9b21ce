"""The inference runtime: numpy in, numpy out, on ONNX Runtime or TensorRT. Never imports torch.

    from ecgedge.runtime import runner_from_export
    with runner_from_export("export/demo", precision="int8") as runner:
        logits = runner.infer(windows)          # (batch, leads, samples) float32 -> (batch, classes)
"""

from ecgedge.runtime.base import Backend, InputSpec, Precision, Runner, available_backends
from ecgedge.runtime.loader import runner_from_export, runner_from_onnx

__all__ = ["Backend", "InputSpec", "Precision", "Runner", "available_backends", "runner_from_export", "runner_from_onnx"]
