"""``manifest.json``: what an export folder holds, how its input must look, and proof of integrity.

The artefact format, below its readers and writers: export writes it, the runtime, streaming,
benchmarks and serving read it, and this module imports none of them (nor torch: a device loads
it). A manifest states the input spec (leads, sampling rate, window, units), the preprocessing
that produced the model's training windows (with filter coefficients), the label map, every
artefact with its precision, runtime and gate verdict (:class:`ArtefactStatus`), the source
checkpoint's sha256, the versions of the software that made it, and the sha256 of every file in
the folder. :func:`load_manifest` re-hashes the files and refuses a folder whose files do not
match, are missing, or are extra model files the manifest does not know.

Hashes prove only that nothing changed by accident: whoever edits a file can re-hash it. An
exporter's Ed25519 signature over the manifest's exact bytes (``manifest.sig``, see
:func:`sign_manifest`; :mod:`ecgedge.signing`) proves who wrote it, and :func:`load_manifest`
with ``public_key`` refuses a folder that is unsigned or whose signature does not match.

Which artefact runs where is decided here, once: :func:`precision_for` (used by the runtime's
loader, the stream, the Triton repository and the export's recommendations).
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ecgedge.config import PARITY_ATOL, Backend, Precision
from ecgedge.errors import ArtefactError
from ecgedge.fsio import MARKER, atomic_write_text, is_private_key
from ecgedge.hashing import file_sha256
from ecgedge.signing import signature_path, sign_file, verify_file

FORMAT = "ecgedge.export/1"
MANIFEST = "manifest.json"
# Beside the manifest and never listed in its ``files``: it signs them.
SIGNATURE = signature_path(MANIFEST).name


class ArtefactStatus(str, enum.Enum):
    """An artefact's verdict in the manifest (``artefacts.KEY.status``), written by the accuracy gate.

    - ``reference``: the FP32 model every other artefact is compared with (it passed its own gate run);
    - ``accepted``: a reduced-precision artefact that passed the gate on every backend it ran on;
    - ``rejected``: failed the gate; kept for inspection, never run unless asked for by name;
    - ``not gated``: no gate ran (no backend for it here, or an untrained benchmark export).
    """

    reference = "reference"
    accepted = "accepted"
    rejected = "rejected"
    not_gated = "not gated"

    @property
    def usable(self) -> bool:
        """Whether the artefact may run without being asked for by name: the gate let it through."""
        return self in (ArtefactStatus.reference, ArtefactStatus.accepted)


# Precisions each backend runs, best first, when neither the caller nor the manifest names one.
PRECISION_ORDER: dict[Backend, tuple[Precision, ...]] = {
    # ONNX Runtime's CPU provider runs most FP16 ops by casting back to FP32: FP16 is no gain there.
    Backend.ort_cpu: (Precision.int8, Precision.fp32),
    # The CUDA provider has few INT8 kernels; tensor cores run FP16.
    Backend.ort_cuda: (Precision.fp16, Precision.fp32),
    # Symmetric QDQ INT8 is TensorRT's explicit quantization, in its provider and natively.
    Backend.ort_trt: (Precision.int8, Precision.fp16, Precision.fp32),
    Backend.tensorrt: (Precision.int8, Precision.fp16, Precision.fp32),
    # The C library is INT8 only (its first convolution is FP32, as in the INT8 ONNX model).
    Backend.c_int8: (Precision.int8,),
}


@dataclass
class Manifest:
    """The parsed manifest of an export folder (``data`` is the JSON document itself)."""

    folder: Path
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.data["output"]["labels"])

    @property
    def leads(self) -> tuple[str, ...]:
        return tuple(self.data["input"]["leads"])

    @property
    def fs_hz(self) -> float:
        return float(self.data["input"]["fs_hz"])

    @property
    def window_samples(self) -> int:
        return int(self.data["input"]["window_samples"])

    @property
    def input_name(self) -> str:
        return self.data["input"]["name"]

    @property
    def artefacts(self) -> dict[str, dict]:
        return self.data["artefacts"]

    @property
    def parity_atol(self) -> float:
        """The export's validation tolerance: the largest absolute logit difference of the FP32
        artefact (ONNX Runtime CPU) from PyTorch, which ``ecgedge export --check`` re-applies.

        ``gate.parity_atol``; a manifest written before it was recorded there gives its FP32 parity
        check's ``tolerance``, else :data:`~ecgedge.config.PARITY_ATOL` (the default then, and now).
        """
        parity = ((self.data.get("artefacts") or {}).get("fp32") or {}).get("parity") or {}
        value = (self.data.get("gate") or {}).get("parity_atol", parity.get("tolerance", PARITY_ATOL))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ArtefactError(f"{self.folder / MANIFEST}: gate.parity_atol is {value!r}; expected a positive number (logits)")
        return float(value)

    def artefact(self, key: str) -> dict:
        if key not in self.artefacts:
            raise ArtefactError(f"{self.folder} has no '{key}' artefact; it has: {', '.join(self.artefacts)}")
        return self.artefacts[key]

    def path(self, key: str) -> Path:
        """Where artefact ``key``'s file is (refused when it lies outside the folder, see :meth:`file`)."""
        return self.file(self.artefact(key)["file"], f"artefact {key}")

    def file(self, name: str, what: str = "file") -> Path:
        """``folder/name`` for a name the manifest gives, once resolved (symlinks followed) still inside
        the folder; :class:`ArtefactError` naming it otherwise (absolute, ``..``, a link that leads out)."""
        return file_in_folder(self.folder, name, f"{self.folder / MANIFEST}: {what}")

    def status(self, key: str) -> ArtefactStatus | None:
        """The gate's verdict on artefact ``key``; ``None`` where there is no such artefact or no verdict."""
        status = self.artefacts.get(key, {}).get("status")
        try:
            return ArtefactStatus(status) if status else None
        except ValueError:
            raise ArtefactError(f"{self.folder}: artefact {key} has status {status!r}, not one of "
                                f"{', '.join(s.value for s in ArtefactStatus)}") from None

    def preprocess_config(self):
        """The :class:`~ecgedge.config.PreprocessConfig` the model was trained with."""
        from ecgedge.config import PreprocessConfig, config_from_dict

        p = self.data["preprocess"]
        return config_from_dict(PreprocessConfig, {k: p[k] for k in ("fs_hz", "bandpass_low_hz", "bandpass_high_hz", "bandpass_order", "std_floor_mv", "settle_s")})

    def save(self) -> Path:
        """Re-hash every file in the folder and write the manifest."""
        self.data["files"] = hash_folder(self.folder)
        return atomic_write_text(self.folder / MANIFEST, json.dumps(self.data, indent=2))


@dataclass(frozen=True)
class ModelFigures:
    """What a manifest says of the network itself: its architecture (words), parameters and multiply-adds per window."""

    architecture: str
    params: int
    macs_per_window: int

    def to_dict(self) -> dict[str, Any]:
        return {"architecture": self.architecture, "params": self.params, "macs_per_window": self.macs_per_window,
                "flops_per_window": 2 * self.macs_per_window}


INPUT_UNITS = "per lead, z-scored window of the band-passed signal in mV (see preprocess)"
OUTPUT_KIND = "logits; softmax gives class probabilities"


def manifest_data(*, name: str, created: str, input_name: str, output_name: str, leads: Sequence[str], labels: Sequence[str],
                  label_scheme: str | None, fs_hz: float, window_samples: int, model: ModelFigures, preprocess: dict[str, Any],
                  window: dict[str, Any], source: dict[str, Any], artefacts: dict[str, dict], **sections: Any) -> dict[str, Any]:
    """The document of a new export's manifest: the one builder every writer uses (``ecgedge export``,
    bench's untrained export), so every manifest states the same input spec (leads, ``fs_hz``,
    window, units), output (labels, ``kind``) and label scheme.

    Args:
        name: the export's name; created: ISO 8601 UTC time.
        input_name, output_name: the ONNX graph's input and output names.
        leads, labels: the model's input leads and output classes, in order.
        label_scheme: the :class:`~ecgedge.config.LabelScheme` value the labels come from (None: not stated).
        fs_hz, window_samples: the window the model takes (Hz, samples).
        model: :class:`ModelFigures`; preprocess, window: the preprocessing parameters and window config.
        source: where the weights came from (checkpoint path and sha256, ...); artefacts: key -> entry.
        sections: further top-level sections (``gate``, ``versions``, ``untrained`` ...), in the order given.
    """
    return {
        "format": FORMAT,
        "name": name,
        "created": created,
        "input": {"name": input_name, "shape": ["batch", len(leads), window_samples], "dtype": "float32",
                  "leads": list(leads), "fs_hz": fs_hz, "window_samples": window_samples, "window_s": window_samples / fs_hz,
                  "units": INPUT_UNITS},
        "output": {"name": output_name, "shape": ["batch", len(labels)], "labels": list(labels), "kind": OUTPUT_KIND},
        "model": model.to_dict(),
        "label_scheme": label_scheme,
        "preprocess": preprocess,
        "window": window,
        "source": source,
        **{k: v for k, v in sections.items() if k != "artefacts"},
        "artefacts": artefacts,
    }


def artefact_key(backend: Backend, precision: Precision) -> str:
    """Manifest key of the artefact a backend runs at a precision (engines and the C library are their own artefacts)."""
    backend = Backend(backend)
    if backend == Backend.tensorrt:
        return f"trt-{Precision(precision).value}"
    if backend == Backend.c_int8:
        return f"mcu-{Precision(precision).value}"
    return Precision(precision).value


def runtime_of(backend: Backend) -> str:
    """The ``runtime`` an artefact must have for ``backend`` to run it (``artefacts.KEY.runtime``)."""
    return {Backend.tensorrt: "tensorrt", Backend.c_int8: "c"}.get(Backend(backend), "onnx")


def precision_for(manifest: Manifest, backend: Backend) -> Precision:
    """The precision ``backend`` runs when nobody names one: the one policy every part uses.

    The manifest's recommendation for the backend (``recommended``, written by export for its
    target) where the gate let that artefact through; else the first of :data:`PRECISION_ORDER`
    whose artefact is :attr:`ArtefactStatus.usable`. A rejected artefact runs only when asked for
    by name (and then the runtime refuses it unless told otherwise).

    Raises:
        ArtefactError: no artefact for ``backend`` passed the gate; the message lists each one's status.
    """
    backend = Backend(backend)
    recommended = (manifest.data.get("recommended") or {}).get(backend.value)
    candidates = ([Precision(recommended)] if recommended else []) + list(PRECISION_ORDER[backend])
    for p in candidates:
        status = manifest.status(artefact_key(backend, p))
        if status is not None and status.usable:
            return p
    raise ArtefactError(f"{manifest.folder} has no artefact the accuracy gate accepted for {backend.value} "
                        f"({_statuses(manifest, backend, PRECISION_ORDER[backend])})")


def passed_over(manifest: Manifest, backend: Backend, precision: Precision) -> str:
    """Why ``backend`` does not run something better than ``precision``: the status of each precision
    :data:`PRECISION_ORDER` prefers to it, e.g. ``"int8 is rejected"``; ``""`` when it is the first choice."""
    order = PRECISION_ORDER[Backend(backend)]
    better = order[:order.index(precision)] if precision in order else ()
    return ", ".join(f"{p.value} is {_status_word(manifest, backend, p)}" for p in better)


def _status_word(manifest: Manifest, backend: Backend, precision: Precision) -> str:
    status = manifest.status(artefact_key(backend, precision))
    return status.value if status else "missing"


def _statuses(manifest: Manifest, backend: Backend, precisions) -> str:
    return ", ".join(f"{p.value}: {_status_word(manifest, backend, p)}" for p in precisions)


def triton_model_name(manifest: Manifest) -> str:
    """An export's model name on a Triton server: its ``triton`` section's, else the export's name
    with anything but letters, digits, ``.``, ``_`` and ``-`` replaced by ``_``."""
    section = manifest.data.get("triton") or {}
    return section.get("model_name") or re.sub(r"[^A-Za-z0-9_.-]", "_", manifest.data.get("name") or manifest.folder.name)


def file_in_folder(folder: str | Path, name: str, what: str, kind: str = "export folder") -> Path:
    """``folder/name`` if ``name`` is a relative path that, resolved with its symlinks, stays inside
    ``folder``: a manifest read from a folder (or a download) must never make ecgedge hash, load or
    delete a file elsewhere.

    Raises:
        ArtefactError: naming ``what`` and the offending path.
    """
    if not isinstance(name, str) or not name:
        raise ArtefactError(f"{what}: {name!r} is not a file name")
    root = Path(folder).resolve()
    path = Path(folder) / name
    if Path(name).is_absolute() or not path.resolve().is_relative_to(root) or path.resolve() == root:
        raise ArtefactError(f"{what}: path {name!r} is outside the {kind} {folder}; refused")
    return path


def hash_folder(folder: Path) -> dict[str, dict]:
    return {
        p.relative_to(folder).as_posix(): {"sha256": file_sha256(p), "bytes": p.stat().st_size}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).as_posix() not in (MANIFEST, SIGNATURE, MARKER) and not p.name.endswith(".tmp")
    }


def sign_manifest(folder: str | Path, private_key) -> Path:
    """Sign ``folder/manifest.json``'s exact bytes with Ed25519 and write ``folder/manifest.sig``.

    Sign last: any later :meth:`Manifest.save` (e.g. writing a Triton repository into the folder)
    changes the bytes and voids the signature. ``private_key``: a PEM file path or a loaded key
    (:func:`ecgedge.signing.load_private_key`). Returns the signature's path.
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ArtefactError(f"{folder} is not an ecgedge export folder: no {MANIFEST}")
    return sign_file(path, private_key)


def verify_signature(folder: str | Path, public_key=None, data: bytes | None = None) -> bool:
    """Refuse (:class:`ArtefactError`, one line) ``folder`` whose ``manifest.sig`` exists and is not a
    valid signature of ``manifest.json`` (or of ``data``, its bytes already read); with
    ``public_key`` (a PEM file path or a loaded key) also one that is unsigned or signed by another
    key (:func:`ecgedge.signing.verify_file`). Returns whether the folder is signed."""
    return verify_file(Path(folder) / MANIFEST, public_key, data)


def load_manifest(folder: str | Path, *, verify: bool = True, public_key: str | Path | None = None) -> Manifest:
    """Read ``folder/manifest.json``; with ``verify`` re-hash every file and raise :class:`ArtefactError` on any mismatch.

    A signature that exists (``manifest.sig``) is checked whenever ``verify`` is on, on the very bytes
    that are then parsed (:func:`verify_signature`): a signed folder edited afterwards is refused
    without any key. With ``public_key`` (an Ed25519 PEM file) the manifest must also be signed, by
    that key.
    """
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ArtefactError(f"{folder} is not an ecgedge export folder: no {MANIFEST}")
    raw = path.read_bytes()
    if verify or public_key is not None:
        verify_signature(folder, public_key, raw)
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtefactError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ArtefactError(f"{path}: a manifest is a JSON object, this one is a {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise ArtefactError(f"{path}: unknown manifest format {data.get('format')!r} (expected {FORMAT})")
    _check_structure(path, data, files=verify)
    manifest = Manifest(folder, data)
    if verify:
        verify_files(manifest)
    return manifest


def _check_structure(path: Path, data: dict, *, files: bool) -> None:
    """The sections every reader indexes: ``artefacts`` (each with a ``file``) and, where hashes are
    verified, ``files`` (each with ``sha256`` and ``bytes``); one line naming what is missing."""
    arts = data.get("artefacts")
    if not isinstance(arts, dict) or not arts:
        raise ArtefactError(f"{path}: no 'artefacts' section (or it is empty); the manifest is incomplete")
    for key, art in arts.items():
        if not isinstance(art, dict) or not isinstance(art.get("file"), str):
            raise ArtefactError(f"{path}: artefact {key} has no 'file'; the manifest is incomplete")
    if not files:
        return
    listed = data.get("files")
    if not isinstance(listed, dict):
        raise ArtefactError(f"{path}: no 'files' section with the sha256 of each file; the manifest is incomplete")
    for name, meta in listed.items():
        if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str) or not isinstance(meta.get("bytes"), int):
            raise ArtefactError(f"{path}: files entry {name} lacks 'sha256' or 'bytes'; the manifest is incomplete")


def verify_files(manifest: Manifest) -> None:
    """Every listed file present with its sha256 and size; no unlisted model files."""
    problems = []
    listed = manifest.data.get("files", {})
    for name, meta in listed.items():
        try:
            p = manifest.file(name, "files entry")
        except ArtefactError as exc:
            problems.append(str(exc))
            continue
        if not p.is_file():
            problems.append(f"{name}: missing")
        elif p.stat().st_size != meta["bytes"]:
            problems.append(f"{name}: {p.stat().st_size} bytes, manifest says {meta['bytes']} (truncated or replaced)")
        elif file_sha256(p) != meta["sha256"]:
            problems.append(f"{name}: sha256 differs from the manifest (file was modified)")
    for p in manifest.folder.rglob("*"):
        rel = p.relative_to(manifest.folder).as_posix()
        if p.is_file() and p.suffix in (".onnx", ".engine", ".plan", ".c", ".h") and rel not in listed:
            problems.append(f"{rel}: model file not listed in the manifest")
        elif p.is_file() and is_private_key(p):
            problems.append(f"{rel}: a private key inside the export folder (keep signing keys off what is shipped)")
    for key, art in manifest.data.get("artefacts", {}).items():
        try:
            manifest.path(key)
        except ArtefactError as exc:
            problems.append(str(exc))
        if art["file"] not in listed:
            problems.append(f"artefact {key}: its file {art['file']} is not hashed in the manifest")
    if problems:
        raise ArtefactError(f"{manifest.folder} failed verification:\n  " + "\n  ".join(problems))
