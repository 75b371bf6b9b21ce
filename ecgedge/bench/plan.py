"""What a bench run measures: the configuration, one case per process, and why a case is skipped.

Parent side only (no runtime library is imported here). :func:`plan` lists every backend x
precision x batch x threads to report, the PyTorch FP32 eager baseline first; :func:`skip_reason`
says, in one line, why a case cannot be measured on this machine or export (backend missing, no
such artefact, rejected by the accuracy gate, no checkpoint for the baseline). Skipped cases
become rows with that reason, never errors.
"""

from __future__ import annotations

import enum
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ecgedge.errors import ConfigError
from ecgedge.manifest import ArtefactStatus, Manifest, artefact_key, runtime_of
from ecgedge.runtime.base import Backend, Precision


class BenchBackend(str, enum.Enum):
    """What a row runs on: the PyTorch FP32 eager baseline, or one of the runtime's backends.

    Every member but ``torch`` is a :class:`~ecgedge.config.Backend`, with its value (the closed
    choice lives there; ``tests/test_bench.py`` fails when one is missing here)."""

    torch = "torch"
    ort_cpu = Backend.ort_cpu.value
    ort_cuda = Backend.ort_cuda.value
    ort_trt = Backend.ort_trt.value
    tensorrt = Backend.tensorrt.value
    c_int8 = Backend.c_int8.value

    @property
    def runtime_backend(self) -> Backend | None:
        """The deployment backend (``None`` for the torch baseline, a reference runner, not a deployment backend)."""
        return None if self == BenchBackend.torch else Backend(self.value)


@dataclass(frozen=True)
class BenchConfig:
    """What ``ecgedge bench`` measures and how.

    ``precisions`` empty means every precision the export holds. ``max_seconds`` bounds each timed
    loop of a configuration (latency; real-time factor) so batch 64 on a slow backend cannot run
    for minutes. ``source_fs_hz`` (Hz) and ``hop_s`` (s) describe the stream of the real-time
    factor: a synthetic sinus-rhythm ECG at ``source_fs_hz`` fed to the stream monitor one hop at
    a time; ``rtf_beds`` beds in one hub give the real-time factor per core (1: only the single bed's).
    ``checkpoint`` overrides the manifest's ``source.checkpoint`` for the PyTorch baseline.
    ``machine_peak`` measures the machine's single-core FP32 and INT8 peaks (:mod:`ecgedge.bench.machine`).
    ``steady_malloc`` fixes glibc's malloc thresholds in every worker (see :mod:`ecgedge.bench`).
    """

    export: str = ""
    backends: tuple[BenchBackend, ...] = tuple(BenchBackend)
    precisions: tuple[Precision, ...] = ()
    batches: tuple[int, ...] = (1, 8, 64)
    threads: tuple[int, ...] = (1,)
    warmup: int = 20
    repeats: int = 200
    max_seconds: float = 10.0
    rtf_steps: int = 100
    rtf_beds: int = 64
    source_fs_hz: float = 500.0
    hop_s: float = 1.0
    baseline: bool = True
    include_rejected: bool = False
    checkpoint: str | None = None
    machine_peak: bool = True
    steady_malloc: bool = True
    seed: int = 0
    public_key: str | None = None  # the export must be signed by this key (--key); a signature is checked anyway

    def __post_init__(self):
        object.__setattr__(self, "backends", tuple(BenchBackend(b) for b in self.backends))
        object.__setattr__(self, "precisions", tuple(Precision(p) for p in self.precisions))
        object.__setattr__(self, "batches", tuple(int(b) for b in self.batches))
        object.__setattr__(self, "threads", tuple(int(t) for t in self.threads))
        if not self.backends or not self.batches or not self.threads:
            raise ConfigError("bench needs at least one backend, batch size and thread count")
        if min(self.batches) < 1 or min(self.threads) < 1:
            raise ConfigError(f"batch sizes and thread counts must be >= 1, got batches {self.batches}, threads {self.threads}")
        if self.warmup < 0 or self.repeats < 1 or self.rtf_steps < 1 or self.rtf_beds < 1 or self.max_seconds <= 0:
            raise ConfigError("warmup >= 0, repeats >= 1, rtf_steps >= 1, rtf_beds >= 1 and max_seconds > 0 are required")
        if self.source_fs_hz <= 0 or self.hop_s <= 0:
            raise ConfigError(f"source rate and hop must be positive, got {self.source_fs_hz} Hz, {self.hop_s} s")


@dataclass(frozen=True)
class BenchCase:
    """One configuration, measured in its own process."""

    backend: BenchBackend
    precision: Precision
    batch: int
    threads: int

    @property
    def label(self) -> str:
        return f"{self.backend.value} {self.precision.value} batch {self.batch} threads {self.threads}"


def checkpoint_path(manifest: Manifest, override: str | None = None) -> tuple[Path | None, str]:
    """The PyTorch baseline's checkpoint and, when it is not here, why."""
    if override:
        p = Path(override)
        return (p, "") if p.is_file() else (None, f"checkpoint {p} not found")
    src = (manifest.data.get("source") or {}).get("checkpoint")
    if not src:
        return None, "the manifest names no source checkpoint; pass --checkpoint PATH for the PyTorch baseline"
    for p in (Path(src), manifest.folder / src):
        if p.is_file():
            return p, ""
    return None, f"source checkpoint {src} is not on this machine (export folders do not carry it); pass --checkpoint PATH"


def skip_reason(case: BenchCase, manifest: Manifest, available: dict[Backend, str | None], *,
                checkpoint: tuple[Path | None, str] = (None, ""), include_rejected: bool = False) -> str | None:
    """Why ``case`` cannot be measured here (``None`` if it can)."""
    if case.backend == BenchBackend.torch:
        if case.precision != Precision.fp32:
            return f"PyTorch eager is the FP32 baseline; {case.precision.value} is an ONNX/TensorRT artefact"
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed (pip install 'ecgedge[train]'); the PyTorch baseline needs it"
        return (checkpoint[1] or "no checkpoint for the PyTorch baseline (pass --checkpoint PATH)") if checkpoint[0] is None else None
    backend = case.backend.runtime_backend
    assert backend is not None   # only the torch baseline, handled above, has none
    reason = available.get(backend)
    if reason:
        return reason
    key = artefact_key(backend, case.precision)
    art = manifest.artefacts.get(key)
    if art is None:
        hint = " (ecgedge export --fp16)" if key == "fp16" else " (ecgedge export --target tensorrt on the GPU)" if key.startswith("trt-") else ""
        return f"the export has no {key} artefact{hint}"
    if art.get("runtime", "onnx") != runtime_of(backend):
        return f"artefact {key} is a {art.get('runtime')} file"
    if manifest.status(key) == ArtefactStatus.rejected and not include_rejected:
        return f"{key} was rejected by the accuracy gate (--include-rejected measures it anyway)"
    return None


def plan(cfg: BenchConfig, manifest: Manifest) -> list[BenchCase]:
    """Every configuration to report, baseline first (torch FP32 at every batch and thread count)."""
    precisions = cfg.precisions or tuple(p for p in Precision if any(
        a.get("precision") == p.value for a in manifest.artefacts.values()))
    backends = list(cfg.backends)
    if cfg.baseline and BenchBackend.torch not in backends:
        backends.insert(0, BenchBackend.torch)
    backends.sort(key=lambda b: b != BenchBackend.torch)
    cases = []
    for b in backends:
        precs = (Precision.fp32,) if b == BenchBackend.torch and b not in cfg.backends else precisions
        for p in precs:
            for t in cfg.threads:
                for n in cfg.batches:
                    cases.append(BenchCase(b, p, n, t))
    return cases
