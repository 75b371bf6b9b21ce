"""The ``c-int8`` backend: the export's generated C99 INT8 library (``mcu/``), compiled for this machine.

``with runner:`` compiles ``mcu/*.c`` with the host C compiler (``$CC``, else ``cc``) and ecgedge's
check harness into a private temporary folder (never into the export folder, whose files are all
hashed); ``infer`` pipes float32 windows to it and reads int8 logits back, which it dequantizes
with the output scale and zero point the manifest records, so the gate compares it like any backend.
It is the host build of exactly the sources a microcontroller compiles (``ecgedge.export.mcu``).
"""

from __future__ import annotations

import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

from ecgedge.errors import ArtefactError, BackendUnavailable
from ecgedge.runtime.base import Backend, InputSpec, Precision, Runner, host_compiler, host_compiler_or_reason

# -ffp-contract=off: the FP32 first convolution must use exactly the fused multiply-adds the source
# names (fmaf), never ones the compiler contracts on its own; -O2 as a microcontroller build would.
HOST_CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", "-ffp-contract=off")


def harness_source() -> Path:
    return Path(str(resources.files("ecgedge.export") / "mcu_c" / "host_check.c"))


def compile_host(sources: list[Path], out: Path, include: Path) -> Path:
    """Compile the library ``sources`` with the check harness into the executable ``out``."""
    reason = host_compiler_or_reason()
    if reason:
        raise BackendUnavailable(f"backend c-int8 unavailable: {reason}")
    cmd = [host_compiler(), *HOST_CFLAGS, f"-I{include}", *map(str, sources), str(harness_source()), "-lm", "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise ArtefactError(f"the C library in {include} does not compile: {' '.join(cmd)}\n{res.stderr.strip()}")
    return out


class CRunner(Runner):
    backend = Backend.c_int8

    def __init__(self, model_path, spec: InputSpec, precision: Precision, *, sources: list[Path], output_scale: float,
                 output_zero_point: int):
        super().__init__(model_path, spec, precision)
        self.sources = sources
        self.output_scale = np.float32(output_scale)
        self.output_zero_point = int(output_zero_point)
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._exe: Path | None = None

    def _activate(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="ecgedge-c-int8-")
        self._exe = compile_host(self.sources, Path(self._tmp.name) / "ecgedge_check", Path(self.model_path).parent)

    def infer_int8(self, x: np.ndarray) -> np.ndarray:
        """The library's int8 logits (batch, classes) for checked windows ``x`` (batch, leads, samples)."""
        assert self._exe is not None
        res = subprocess.run([str(self._exe)], input=np.ascontiguousarray(x, np.float32).tobytes(), capture_output=True)
        if res.returncode:
            raise ArtefactError(f"the C library's check harness failed (exit {res.returncode}): {res.stderr.decode(errors='replace')}")
        return np.frombuffer(res.stdout, np.int8).reshape(len(x), -1)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        q = self.infer_int8(x)
        return ((q.astype(np.float32) - np.float32(self.output_zero_point)) * self.output_scale).astype(np.float32)

    def _deactivate(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
        self._tmp = self._exe = None
