"""ONNX Runtime runners: CPU, CUDA and TensorRT execution providers over the same ONNX file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ecgedge.paths import cache_root
from ecgedge.errors import BackendUnavailable
from ecgedge.runtime.base import Backend, InputSpec, Precision, Runner, available_backends, require_backend
from ecgedge.runtime.gpu import onnxruntime_clash


class OrtRunner(Runner):
    """ONNX Runtime session on one execution provider.

    ``threads`` sets intra-op threads (``None`` = ONNX Runtime's default, all cores). On the
    TensorRT provider the engine cache goes to ``trt_cache_dir`` (default: under the ecgedge cache,
    keyed by the model's path) so the expensive build happens once per GPU; never inside an export
    folder, whose every model file must be listed in its manifest.
    """

    backend: Backend

    def __init__(self, model_path, spec: InputSpec, precision: Precision, backend: Backend = Backend.ort_cpu,
                 threads: int | None = None, trt_cache_dir: str | Path | None = None):
        self.backend = Backend(backend)
        super().__init__(model_path, spec, precision)
        self.threads = threads
        self.trt_cache_dir = trt_cache_dir
        self.session: Any = None   # an onnxruntime.InferenceSession while active (onnxruntime ships no types)
        self.output_name: str | None = None

    def providers(self) -> list:
        if self.backend == Backend.ort_cpu:
            return ["CPUExecutionProvider"]
        if self.backend == Backend.ort_cuda:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if self.trt_cache_dir is None:
            import hashlib

            key = hashlib.sha256(str(Path(self.model_path).resolve()).encode()).hexdigest()[:16]
            self.trt_cache_dir = cache_root() / "ort-trt" / key
        cache = str(self.trt_cache_dir)
        os.makedirs(cache, exist_ok=True)
        trt = {
            "trt_fp16_enable": self.precision != Precision.fp32,
            "trt_int8_enable": self.precision == Precision.int8,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": cache,
            "trt_timing_cache_enable": True,
        }
        return [("TensorrtExecutionProvider", trt), "CUDAExecutionProvider", "CPUExecutionProvider"]

    def _activate(self) -> None:
        if self.backend != Backend.ort_cpu and available_backends()[self.backend] and (clash := onnxruntime_clash()):
            raise BackendUnavailable(f"backend {self.backend.value} unavailable: {clash}")
        require_backend(self.backend)
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            so.intra_op_num_threads = self.threads
            so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(self.model_path), sess_options=so, providers=self.providers())
        inp = self.session.get_inputs()[0]
        if inp.name != self.spec.name:
            from ecgedge.errors import ArtefactError

            raise ArtefactError(f"{self.model_path}: input is named {inp.name!r}, the manifest says {self.spec.name!r}")
        static = [d for d in inp.shape[1:]]
        if static != [len(self.spec.leads), self.spec.window_samples]:
            from ecgedge.errors import ArtefactError

            raise ArtefactError(f"{self.model_path}: input shape {inp.shape}; the manifest says (batch, {len(self.spec.leads)}, {self.spec.window_samples})")
        self.output_name = self.session.get_outputs()[0].name

    def _infer(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.spec.name: x})[0].astype(np.float32, copy=False)

    def _deactivate(self) -> None:
        self.session = None

    @property
    def active_providers(self) -> list[str]:
        return self.session.get_providers() if self.session is not None else []
