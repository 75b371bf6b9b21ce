"""Build a TensorRT engine from ONNX: an export step (``ecgedge export --target tensorrt``), on the GPU the
engine will run on (:class:`~ecgedge.runtime.tensorrt_runner.TensorRTRunner` runs it and refuses one built elsewhere).

INT8 engines come from the QDQ ONNX model (explicit quantization; TensorRT deprecated implicit
calibrators), FP16 engines from the FP32 ONNX model with the FP16 builder flag. Nothing here imports torch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ecgedge.errors import ArtefactError
from ecgedge.runtime.base import InputSpec, Precision
from ecgedge.runtime.gpu import GpuIdentity, gpu_identity, import_tensorrt


@dataclass(frozen=True)
class EngineBuild:
    engine: Path
    timing_cache: Path
    build_s: float
    identity: GpuIdentity
    profile: tuple[int, int, int]


def engine_from_onnx(onnx_path: str | Path, engine_path: str | Path, spec: InputSpec, precision: Precision, *,
                     batch_profile: tuple[int, int, int] = (1, 8, 64), timing_cache: str | Path | None = None,
                     workspace_mib: int = 1024) -> EngineBuild:
    """Build and serialize a TensorRT engine with one optimization profile over the batch range.

    ``precision`` fp16 sets the FP16 flag; int8 expects a QDQ model (explicit quantization) and sets
    INT8 and FP16 so layers without Q/DQ may run in half precision. The timing cache is read from
    and written back to ``timing_cache`` so rebuilds are fast.
    """
    trt = import_tensorrt()
    identity = gpu_identity()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ArtefactError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    if precision in (Precision.fp16, Precision.int8):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == Precision.int8:
        config.set_flag(trt.BuilderFlag.INT8)
    lo, opt, hi = batch_profile
    shape = (len(spec.leads), spec.window_samples)
    profile = builder.create_optimization_profile()
    profile.set_shape(spec.name, (lo, *shape), (opt, *shape), (hi, *shape))
    config.add_optimization_profile(profile)
    cache_path = Path(timing_cache or Path(engine_path).with_suffix(".timing.cache"))
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    build_s = time.perf_counter() - t0
    if serialized is None:
        raise ArtefactError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    Path(engine_path).write_bytes(bytes(serialized))
    cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    return EngineBuild(Path(engine_path), cache_path, build_s, identity, batch_profile)
