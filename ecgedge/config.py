"""Frozen dataclass configs, their defaults (in one place) and TOML loading.

Units are in the field names or docstrings: Hz, samples, seconds, mV. Closed choices are
``str`` Enums that the CLI reuses as option types.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ecgedge.errors import BackendUnavailable, ConfigError

STANDARD_12_LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)


class LabelScheme(str, enum.Enum):
    """Which label set a classifier learns.

    - ``chapman11``: the 11 Chapman-Shaoxing rhythms (SB, SR, AFIB, ST, AF, SA, SVT, AT, AVNRT, AVRT, SAAWR).
    - ``chapman4``: the paper's merged classes SB; AFIB (AFIB+AF); GSVT (SVT+AT+AVNRT+AVRT+SAAWR+ST); SR (SR+SA).
    - ``cinc2017``: PhysioNet/CinC 2017 single-lead classes N, A, O, ~ (noisy).
    - ``atr``: rhythm labels from WFDB ``.atr`` ``aux_note`` (``(N``, ``(AFIB``, ...), one per window.
    """

    chapman11 = "chapman11"
    chapman4 = "chapman4"
    cinc2017 = "cinc2017"
    atr = "atr"


class ClassWeighting(str, enum.Enum):
    """How the classifier's cross-entropy weighs classes of unequal size (counted over training windows).

    - ``inverse``: weight n / (k * n_c), every class counts as much as any other;
    - ``sqrt``: the square root of that, a milder correction that costs the large classes less
      precision (CinC-2017: A is 9 % and ~ 3 % of the records);
    - ``none``: plain cross-entropy.
    """

    inverse = "inverse"
    sqrt = "sqrt"
    none = "none"


class Device(str, enum.Enum):
    cpu = "cpu"
    cuda = "cuda"


@dataclass(frozen=True)
class PreprocessConfig:
    """The one preprocessing chain shared by training and streaming (see ``ecgedge.data.preprocess``).

    Signals arrive in mV at any sampling rate, are resampled causally to ``fs_hz``, band-passed by a
    causal Butterworth filter (``bandpass_low_hz``..``bandpass_high_hz``, ``bandpass_order`` per edge),
    and each window is z-scored per lead with a standard-deviation floor of ``std_floor_mv`` (so a
    flat lead is not blown up into noise). The first ``settle_s`` seconds of a record are not used as
    window material: that is where the causal filters start up.
    """

    fs_hz: float = 250.0
    bandpass_low_hz: float = 0.5
    bandpass_high_hz: float = 40.0
    bandpass_order: int = 2
    std_floor_mv: float = 0.01
    settle_s: float = 1.0

    def __post_init__(self):
        if self.fs_hz <= 0:
            raise ConfigError(f"fs_hz must be positive, got {self.fs_hz} Hz")
        if not 0 < self.bandpass_low_hz < self.bandpass_high_hz < self.fs_hz / 2:
            raise ConfigError(
                f"band-pass {self.bandpass_low_hz}-{self.bandpass_high_hz} Hz must lie inside "
                f"(0, {self.fs_hz / 2}) Hz, the Nyquist band at {self.fs_hz} Hz"
            )
        if self.bandpass_order < 1 or self.std_floor_mv <= 0 or self.settle_s < 0:
            raise ConfigError("bandpass_order >= 1, std_floor_mv > 0 and settle_s >= 0 are required")

    @property
    def settle_samples(self) -> int:
        return int(round(self.settle_s * self.fs_hz))


@dataclass(frozen=True)
class WindowConfig:
    """How windows are cut from preprocessed records, in samples at ``PreprocessConfig.fs_hz``.

    ``samples`` = 2048 at 250 Hz is the paper's 8.192 s window. ``hop`` is the step between
    windows of one record. Windows are aligned to the record's end (the most recent
    ``samples`` samples, as a live stream sees them) and step back by ``hop`` while they
    stay clear of the settling period. ``max_per_record`` caps windows from one long record
    (0 = no cap).
    """

    samples: int = 2048
    hop: int = 1024
    max_per_record: int = 0

    def __post_init__(self):
        if self.samples < 64 or self.hop < 1 or self.max_per_record < 0:
            raise ConfigError(f"window samples >= 64 and hop >= 1 required, got {self.samples}, {self.hop}")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the 1-D convolutional autoencoder and the transfer classifier.

    The encoder is a stack of stride-2 Conv1d + BatchNorm + ReLU blocks with ``channels`` and
    ``kernels``; the decoder mirrors it with ConvTranspose1d. The classifier applies the same
    encoder to every lead (shared weights), stacks the per-lead feature maps and fuses them with
    a small convolutional head of width ``head_channels``: a 1x1 convolution, then one k=5
    convolution per entry of ``head_dilations`` (dilation in encoder time steps, each
    ``2**len(channels)`` input samples). The default ``(1,)`` sees about 0.9 s at 250 Hz; ``(1, 2, 4, 8)``
    sees about 4 s, several beats, which rhythm irregularity (AF) needs.
    """

    channels: tuple[int, ...] = (8, 16, 32, 32, 16)
    kernels: tuple[int, ...] = (7, 7, 5, 5, 3)
    head_channels: int = 128
    head_dilations: tuple[int, ...] = (1,)
    dropout: float = 0.2

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "kernels", tuple(int(k) for k in self.kernels))
        object.__setattr__(self, "head_dilations", tuple(int(d) for d in self.head_dilations))
        if not self.head_dilations or min(self.head_dilations) < 1:
            raise ConfigError(f"head_dilations must be one or more integers >= 1, got {self.head_dilations}")
        if len(self.channels) != len(self.kernels) or not self.channels:
            raise ConfigError("channels and kernels must be non-empty and of equal length")
        if any(k % 2 == 0 for k in self.kernels):
            raise ConfigError(f"kernels must be odd (same padding), got {self.kernels}")

    @property
    def downsampling(self) -> int:
        return 2 ** len(self.channels)


@dataclass(frozen=True)
class DataConfig:
    """Where records come from and which part of them is used.

    ``paths`` are files or folders (searched recursively). ``labels_file`` is an optional label
    table (Chapman ``Diagnostics.xlsx``, CinC-2017 ``REFERENCE.csv``, SPH ``metadata.csv``);
    without it labels come from headers or from such a table found beside the records.
    ``cache_dir`` holds memory-mapped window caches (default ``~/.cache/ecgedge``).
    """

    paths: tuple[str, ...] = ()
    labels_file: str | None = None
    cache_dir: str | None = None
    max_records: int = 0
    workers: int = 0

    def __post_init__(self):
        object.__setattr__(self, "paths", tuple(str(p) for p in self.paths))


@dataclass(frozen=True)
class PretrainConfig:
    """``ecgedge train pretrain``: the CAE on unlabeled single-lead windows.

    ``batch_size`` is per process: under ``torchrun`` with N processes a step sees N x
    ``batch_size`` windows. ``sync_batchnorm`` (used only then) gives BatchNorm the statistics of
    that global batch, so N processes train as one process with the global batch would; off, each
    process normalises by its own share (plain DDP, no extra communication).
    """

    data: DataConfig = field(default_factory=DataConfig)
    lead: str = "II"
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-5
    val_fraction: float = 0.1
    max_windows: int = 0
    seed: int = 0
    device: Device = Device.cpu
    run_dir: str = "runs/pretrain"
    sync_batchnorm: bool = True

    def __post_init__(self):
        _check_training(self)


@dataclass(frozen=True)
class ClassifyConfig:
    """``ecgedge train classify``: the rhythm classifier, optionally initialised from a CAE.

    ``init`` is a CAE checkpoint path or ``"random"``. The split is record-level, stratified and
    seeded: ``test_fraction`` of records are held out (0.2 = the paper's 8:2), then
    ``val_fraction`` of the training records select the best epoch. ``train_fraction`` subsamples
    the training part (stratified), as in the paper's 100/50/25 % experiment. ``holdout`` names
    files or folders whose records (matched by record id) always go to the test split, e.g. a
    validation set that other tools score the model on. The best epoch is the one with the highest
    validation challenge score (label sets with N, A, O) or macro F1 (all others). An ``init`` CAE
    from a pretraining run that did not finish is refused unless ``allow_incomplete_init`` (the run
    then records it as ``init_unfinished``).
    """

    data: DataConfig = field(default_factory=DataConfig)
    labels: LabelScheme = LabelScheme.chapman4
    leads: tuple[str, ...] = STANDARD_12_LEADS
    init: str = "random"
    freeze_encoder: bool = False
    allow_incomplete_init: bool = False
    class_weighting: ClassWeighting = ClassWeighting.inverse
    holdout: tuple[str, ...] = ()
    train_fraction: float = 1.0
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    window: WindowConfig = field(default_factory=lambda: WindowConfig(hop=2048, max_per_record=8))
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 15
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    device: Device = Device.cpu
    run_dir: str = "runs/classify"

    def __post_init__(self):
        object.__setattr__(self, "leads", tuple(self.leads))
        object.__setattr__(self, "labels", LabelScheme(self.labels))
        object.__setattr__(self, "class_weighting", ClassWeighting(self.class_weighting))
        object.__setattr__(self, "holdout", tuple(str(p) for p in self.holdout))
        _check_training(self)
        if not 0 < self.train_fraction <= 1 or not 0 < self.test_fraction < 1:
            raise ConfigError("train_fraction must be in (0, 1] and test_fraction in (0, 1)")


def _check_training(cfg) -> None:
    object.__setattr__(cfg, "device", Device(cfg.device))
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.lr <= 0:
        raise ConfigError("epochs >= 1, batch_size >= 1 and lr > 0 are required")
    if not 0 <= cfg.val_fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {cfg.val_fraction}")


if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def config_from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """Build a (nested) frozen config from plain values, rejecting unknown keys by name."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown key(s) {unknown}; known: {sorted(known)}")
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        default = getattr(cls(), name) if _has_all_defaults(cls) else None
        if dataclasses.is_dataclass(default) and not isinstance(default, type) and isinstance(value, dict):
            value = config_from_dict(type(default), value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{cls.__name__}: {exc}") from None


def _has_all_defaults(cls) -> bool:
    return all(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        for f in dataclasses.fields(cls)
    )


def config_from_toml(cls: type[T], path: str | Path | None, **overrides: Any) -> T:
    """Load ``cls`` from a TOML file (optional), then apply flag overrides that are not ``None``.

    Overrides address nested fields with ``__``: ``model__channels=(8, 16)``.
    """
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from None
    for key, value in overrides.items():
        if value is None:
            continue
        node = values
        *parents, leaf = key.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return config_from_dict(cls, values)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain JSON/TOML-able values (Enums as their value, tuples as lists)."""

    def plain(v):
        if isinstance(v, enum.Enum):
            return v.value
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


class Target(str, enum.Enum):
    """The device an export is for; see ``ecgedge.export.targets`` for what each implies and why."""

    cpu = "cpu"
    arm64 = "arm64"
    cuda = "cuda"
    tensorrt = "tensorrt"
    mcu = "mcu"  # a Cortex-M class microcontroller: adds the C99 INT8 library (ecgedge.export.mcu)


class CalibMethod(str, enum.Enum):
    minmax = "minmax"
    entropy = "entropy"
    percentile = "percentile"


class Backend(str, enum.Enum):
    """Where inference runs. ``ort-*`` are ONNX Runtime execution providers; ``tensorrt`` is native TensorRT."""

    ort_cpu = "ort-cpu"
    ort_cuda = "ort-cuda"
    ort_trt = "ort-trt"
    tensorrt = "tensorrt"
    c_int8 = "c-int8"  # the generated C99 INT8 library (export/NAME/mcu/), compiled with the host C compiler

    @property
    def on_gpu(self) -> bool:
        """Runs on an NVIDIA GPU: ONNX Runtime's CUDA and TensorRT providers, native TensorRT."""
        return self in (Backend.ort_cuda, Backend.ort_trt, Backend.tensorrt)


class Precision(str, enum.Enum):
    """The numeric precision of an exported artefact (``ecgedge.manifest.precision_for`` picks the one that runs)."""

    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"


# FP32 ONNX vs PyTorch, largest |logit difference|: float32 reassociation in ONNX Runtime's fused
# kernels stays near 1e-5 on this model; 1e-3 is far below any change of decision and far above noise.
# The default of ExportConfig.parity_atol, and what a manifest written before it was recorded gets.
PARITY_ATOL = 1e-3


@dataclass(frozen=True)
class ExportConfig:
    """``ecgedge export``: artefacts, calibration and the accuracy gate.

    Calibration windows (``calib_windows``) are drawn from the run's *training* records; the gate
    runs on its held-out *test* records, so the two never share a record. ``check_windows`` of the
    gate windows (with the FP32 reference logits) are stored in the folder so
    ``ecgedge export --check`` can re-run the gate on a device with neither torch nor the data set.

    The gate compares each artefact with the FP32 PyTorch reference (``max_f1_drop``,
    ``min_agreement``) and with absolute floors: ``min_f1`` on macro F1 and ``min_class_f1`` on
    per-class F1 (0 and none by default, i.e. off). ``min_class_f1`` holds ``(class, F1)`` pairs; the
    class ``"*"`` sets the floor of every class with held-out windows, a named class overrides it
    (and fails the gate when it has no held-out window to check). It may be given as a mapping or
    as ``"CLASS=F1"`` / ``"F1"`` strings (the CLI's ``--min-class-f1``). With fewer than
    ``min_gate_windows`` held-out windows the gate fails ("too few windows"): one flipped decision
    among n windows moves agreement by 1/n, and at the default 99 % agreement 1/n must stay
    <= 1 % for the comparison to tolerate any flip at all, hence 100.

    A checkpoint from a run that did not finish (Ctrl-C's ``last.pt``, or the ``best.pt`` of such a
    run) is refused unless ``allow_incomplete``; the manifest then records it under ``source``.

    ``parity_atol`` is the export's validation tolerance (Optimum's ``atol``): the largest absolute
    logit difference allowed between the FP32 ONNX model on ONNX Runtime CPU and PyTorch on the same
    windows. Export records it in the manifest (``gate.parity_atol``) and ``ecgedge export --check``
    re-applies it from there.
    """

    source: str = ""
    out: str | None = None
    int8: bool = True
    fp16: bool = False
    target: Target = Target.cpu
    calib_windows: int = 256
    calib_method: CalibMethod = CalibMethod.minmax
    max_f1_drop: float = 0.01
    min_agreement: float = 0.99
    min_f1: float = 0.0
    min_class_f1: tuple[tuple[str, float], ...] = ()
    min_gate_windows: int = 100
    allow_incomplete: bool = False
    opset: int = 18
    check_windows: int = 256
    batch_profile: tuple[int, int, int] = (1, 8, 64)
    seed: int = 0
    parity_atol: float = PARITY_ATOL

    def __post_init__(self):
        object.__setattr__(self, "target", Target(self.target))
        object.__setattr__(self, "calib_method", CalibMethod(self.calib_method))
        object.__setattr__(self, "batch_profile", tuple(int(b) for b in self.batch_profile))
        object.__setattr__(self, "min_class_f1", class_f1_floors(self.min_class_f1))
        if not 0 <= self.min_f1 <= 1:
            raise ConfigError(f"min_f1 must lie in [0, 1], got {self.min_f1}")
        if self.min_gate_windows < 0:
            raise ConfigError(f"min_gate_windows must be >= 0, got {self.min_gate_windows}")
        if self.opset < 17:
            raise ConfigError(f"opset must be >= 17, got {self.opset}")
        if not 0 <= self.max_f1_drop <= 1 or not 0 <= self.min_agreement <= 1:
            raise ConfigError("max_f1_drop and min_agreement must lie in [0, 1]")
        if self.calib_windows < 1:
            raise ConfigError("calib_windows must be >= 1")
        if not self.parity_atol > 0:
            raise ConfigError(f"parity_atol must be > 0 (logits), got {self.parity_atol}")
        lo, opt, hi = self.batch_profile
        if not 1 <= lo <= opt <= hi:
            raise ConfigError(f"batch profile must satisfy 1 <= min <= opt <= max, got {self.batch_profile}")


def class_f1_floors(value) -> tuple[tuple[str, float], ...]:
    """Per-class F1 floors of the gate as sorted ``(class, F1)`` pairs (class ``"*"``: every class).

    Takes a mapping, ``(class, F1)`` pairs, or strings ``"CLASS=F1"`` / ``"F1"`` (the latter for
    every class), as ``--min-class-f1`` gives them. A floor outside [0, 1] or a malformed item
    raises :class:`ConfigError`.
    """
    items = value.items() if isinstance(value, dict) else value
    floors: dict[str, float] = {}
    for item in items:
        try:
            if isinstance(item, str):
                name, _, f1 = item.rpartition("=")
                name = name.strip() or "*"
            else:
                name, f1 = item
            floor = float(f1)
        except (TypeError, ValueError):
            raise ConfigError(f"min_class_f1: expected CLASS=F1 or F1 (e.g. AFIB=0.8), got {item!r}") from None
        if not 0 <= floor <= 1:
            raise ConfigError(f"min_class_f1: the F1 floor of {name} must lie in [0, 1], got {floor}")
        floors[str(name)] = floor
    return tuple(sorted(floors.items()))


def require(module: str, *, extra: str, name: str = "", hint: str = "", error: type[Exception] = BackendUnavailable):
    """Import an optional dependency, or raise one line that names the pip extra that installs it.

    ``require("tensorrt", extra="trt", name="TensorRT", hint="on a machine with an NVIDIA GPU")``
    returns the module, or raises ``error`` (default :class:`~ecgedge.errors.BackendUnavailable`, a
    user error: the CLI prints it without a traceback):
    ``TensorRT is not installed: pip install 'ecgedge[trt]' on a machine with an NVIDIA GPU``.
    An import that fails inside an installed package (a broken build, a missing shared library)
    says "cannot be imported" with its reason instead. Imports nothing until called.

    Args:
        module: dotted module name, e.g. ``"tritonclient.grpc"``.
        extra: the ``[project.optional-dependencies]`` key of pyproject.toml that provides it.
        name: what the message calls it (default: ``module``).
        hint: appended to the install command, e.g. ``"(needed by ecgedge export)"``.
        error: the exception class raised (an :class:`~ecgedge.errors.EcgEdgeError`).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        install = f"pip install 'ecgedge[{extra}]'" + (f" {hint}" if hint else "")
        missing = getattr(exc, "name", None) or ""
        if missing and (module == missing or module.startswith(missing + ".")):
            raise error(f"{name or module} is not installed: {install}") from None
        raise error(f"{name or module} cannot be imported ({' '.join(str(exc).split())}): {install}") from None
