"""Runners from an export folder (checked against its manifest) or from a bare ONNX file."""

from __future__ import annotations

from pathlib import Path

from ecgedge.errors import ArtefactError, ConfigError
from ecgedge.manifest import ArtefactStatus, Manifest, artefact_key, load_manifest, precision_for, verify_signature
from ecgedge.paths import cache_root
from ecgedge.runtime.base import Backend, InputSpec, Precision, Runner
from ecgedge.runtime.ort_runner import OrtRunner


def input_spec(manifest: Manifest) -> InputSpec:
    return InputSpec(manifest.input_name, manifest.leads, manifest.fs_hz, manifest.window_samples)


def runner_from_export(folder: str | Path, precision: Precision | str | None = None, backend: Backend | str = Backend.ort_cpu,
                       *, threads: int | None = None, verify: bool = True, allow_rejected: bool = False,
                       manifest: Manifest | None = None, public_key: str | Path | None = None) -> Runner:
    """A runner for one artefact of an export folder. Hashes are verified (``verify``) and a
    rejected artefact is refused unless ``allow_rejected`` (the gate itself needs that).
    ``precision`` None runs what :func:`~ecgedge.manifest.precision_for` picks for the backend.
    ``public_key`` (Ed25519 PEM file): refuse the folder unless its ``manifest.sig`` matches it
    (for a ``manifest`` passed in: its folder's ``manifest.json`` on disk)."""
    backend = Backend(backend)
    if manifest is None:
        manifest = load_manifest(folder, verify=verify, public_key=public_key)
    elif public_key is not None:
        verify_signature(manifest.folder, public_key)
    if manifest.data.get("kind") == "rhythm-trees":  # its input is a feature vector, not a window
        raise ConfigError(f"{manifest.folder} holds rhythm trees, which take a record's features, not windows: "
                          "ecgedge evaluate scores them; in code, ecgedge.runtime.trees_runner.TreesRunner runs them")
    precision = Precision(precision) if precision else precision_for(manifest, backend)
    key = artefact_key(backend, precision)
    art = manifest.artefact(key)
    if manifest.status(key) == ArtefactStatus.rejected and not allow_rejected:
        gate = art.get("gate", {})
        raise ArtefactError(f"{manifest.folder}/{art['file']} was rejected by the accuracy gate ({'; '.join(gate.get('failures', [])) or 'see manifest'}); "
                            "re-export, or pass allow_rejected=True to inspect it")
    spec = input_spec(manifest)
    path = manifest.path(key)  # refused when the manifest points outside its folder
    if backend == Backend.tensorrt:
        from ecgedge.runtime.tensorrt_runner import TensorRTRunner

        return TensorRTRunner(path, spec, precision, built_for=art, max_batch=int(art.get("profile", [1, 8, 64])[-1]))
    if backend == Backend.c_int8:
        from ecgedge.runtime.c_runner import CRunner

        lib = art.get("library") or {}
        out = lib.get("output") or {}
        if art.get("runtime") != "c" or "scale" not in out:
            raise ArtefactError(f"artefact {key} is not a C library with its output quantization (library.output.scale)")
        sources = [manifest.file(f, f"artefact {key} source") for f in lib.get("files", [art["file"]]) if f.endswith(".c")]
        return CRunner(path, spec, precision, sources=sources, output_scale=out["scale"], output_zero_point=out["zero_point"])
    if art.get("runtime", "onnx") != "onnx":
        raise ConfigError(f"artefact {key} is a {art.get('runtime')} file; use --backend {'c-int8' if art.get('runtime') == 'c' else 'tensorrt'}")
    # The TensorRT provider's engine cache lives outside the export folder (whose files are all hashed),
    # keyed by the model file's sha256: built once per GPU and model, never mistaken for an artefact.
    sha = manifest.data.get("files", {}).get(art["file"], {}).get("sha256", "unhashed")
    return OrtRunner(path, spec, precision, backend=backend, threads=threads, trt_cache_dir=cache_root() / "ort-trt" / sha[:16])


def runner_from_onnx(path: str | Path, spec: InputSpec, precision: Precision | str = Precision.fp32,
                     backend: Backend | str = Backend.ort_cpu, threads: int | None = None) -> Runner:
    """A runner for an ONNX file outside an export folder (used while exporting, before the manifest exists)."""
    return OrtRunner(path, spec, Precision(precision), backend=Backend(backend), threads=threads)
