"""Native TensorRT: run a serialized engine (built at export by :func:`ecgedge.export.tensorrt_engine.engine_from_onnx`).

Engines are not portable: one built for a GPU (compute capability) with one TensorRT version
is refused on another, with a message saying so, before TensorRT is asked to deserialize it.
CUDA memory and streams go through cuda-python (``pip install 'ecgedge[trt]'``); nothing here
imports torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ecgedge.errors import ArtefactError
from ecgedge.runtime.base import Backend, InputSpec, Precision, Runner
from ecgedge.runtime.gpu import cuda_ok, gpu_identity, import_cudart, import_tensorrt


def check_engine_portability(built_for: dict) -> None:
    """Refuse an engine built for another GPU or TensorRT version (engines are not portable)."""
    here = gpu_identity()
    if built_for.get("compute_capability") != here.compute_capability or built_for.get("tensorrt_version") != here.tensorrt_version:
        raise ArtefactError(
            f"TensorRT engine was built for {built_for.get('gpu')} (compute capability {built_for.get('compute_capability')}) "
            f"with TensorRT {built_for.get('tensorrt_version')}; this machine has {here.name} (compute capability "
            f"{here.compute_capability}) with TensorRT {here.tensorrt_version}. Engines are not portable: rebuild it here "
            f"with 'ecgedge export RUN --target tensorrt'.")


class TensorRTRunner(Runner):
    """Runs a serialized engine on CUDA device 0; buffers are sized for the profile's largest batch."""

    backend = Backend.tensorrt

    def __init__(self, engine_path, spec: InputSpec, precision: Precision, built_for: dict, max_batch: int):
        super().__init__(engine_path, spec, precision)
        self.built_for = built_for
        self.max_batch = max_batch

    def _activate(self) -> None:
        trt = import_tensorrt()
        cudart = import_cudart()
        check_engine_portability(self.built_for)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(Path(self.model_path).read_bytes())
        if self.engine is None:
            raise ArtefactError(f"TensorRT could not deserialize {self.model_path}")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        outs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.output_name = outs[0]
        self.n_classes = int(self.engine.get_tensor_shape(self.output_name)[-1])
        self.stream = cuda_ok(cudart.cudaStreamCreate())
        in_bytes = self.max_batch * len(self.spec.leads) * self.spec.window_samples * 4
        self.d_in = cuda_ok(cudart.cudaMalloc(in_bytes))
        self.d_out = cuda_ok(cudart.cudaMalloc(self.max_batch * self.n_classes * 4))
        self.context.set_tensor_address(self.spec.name, int(self.d_in))
        self.context.set_tensor_address(self.output_name, int(self.d_out))
        self._cudart = cudart

    def _infer(self, x: np.ndarray) -> np.ndarray:
        outs = [self._infer_batch(x[i:i + self.max_batch]) for i in range(0, len(x), self.max_batch)]
        return np.concatenate(outs)

    def _infer_batch(self, x: np.ndarray) -> np.ndarray:
        cudart = self._cudart
        out = np.empty((len(x), self.n_classes), dtype=np.float32)
        self.context.set_input_shape(self.spec.name, tuple(x.shape))
        cuda_ok(cudart.cudaMemcpyAsync(self.d_in, x.ctypes.data, x.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))
        if not self.context.execute_async_v3(int(self.stream)):
            raise ArtefactError("TensorRT execution failed")
        cuda_ok(cudart.cudaMemcpyAsync(out.ctypes.data, self.d_out, out.nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))
        cuda_ok(cudart.cudaStreamSynchronize(self.stream))
        return out

    def _deactivate(self) -> None:
        cudart = self._cudart
        cudart.cudaFree(self.d_in)
        cudart.cudaFree(self.d_out)
        cudart.cudaStreamDestroy(self.stream)
        self.context = self.engine = self._runtime = None
