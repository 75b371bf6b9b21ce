"""A Triton Inference Server model repository from an export folder: one model, many bedside streams.

    export/NAME/triton/             mount as the server's --model-repository (docker -v .../triton:/models)
      MODEL/                        default: the export's name
        config.pbtxt                ONNX Runtime backend; names, dtypes, dims and batching from the manifest
        labels.txt                  the labels in output order (Triton's classification extension)
        1/model.onnx                a copy of the artefact served (below)

Which artefact is served: the first of these the accuracy gate accepted (or a ``precision`` asked
for by name, unless the gate rejected it):

=============  ==================  ===============================================================
target         served, best first  why
=============  ==================  ===============================================================
cpu, arm64     int8, fp32          the gated QDQ INT8 runs on MLAS's int8 kernels (VNNI/AMX, SDOT/I8MM)
cuda           fp16, fp32          the CUDA provider (TensorRT's fallback) has few INT8 kernels;
                                   tensor cores run FP16
tensorrt       int8, fp16, fp32    symmetric QDQ is TensorRT's explicit quantization: the same file
                                   the gated ``trt-int8`` engine was built from
=============  ==================  ===============================================================

CPU targets get ``KIND_CPU`` instances; GPU targets get ``KIND_GPU`` instances with the TensorRT
execution provider as the backend's accelerator (its precision from the artefact, one optimisation
profile spanning the export's batch profile, engines cached outside the repository) and a warm-up
request, so the engine is built when the model loads rather than on the first bedside window.
Triton's native TensorRT backend (``model.plan``) is not written: it loads only plans of the
TensorRT release it was built with, while the export's engines come from the export machine's.

Inside the export folder the repository's files are hashed into the manifest (whose verification
refuses unlisted model files) under a ``triton`` section that says what is served and why.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ecgedge.config import Backend, Precision, Target
from ecgedge.errors import ArtefactError, ConfigError
from ecgedge.fsio import staged_folder, swap_folder
from ecgedge.hashing import file_sha256
from ecgedge.fsio import own_files
from ecgedge.manifest import (SIGNATURE, ArtefactStatus, Manifest, load_manifest, passed_over, precision_for, sign_manifest,
                              triton_model_name)

REPOSITORY = "triton"
LABELS_FILE = "labels.txt"
# A window is due once a hop (a second): 10 ms in the server's queue costs the bedside nothing and
# lets the dynamic batcher join the windows of many stream clients into one inference.
MAX_QUEUE_DELAY_US = 10_000
DEFAULT_BATCH_PROFILE = (1, 8, 64)
# TensorRT's engines must not land in the repository: inside an export folder they would fail its verification.
TRT_CACHE = "/tmp/ecgedge-trt-cache"

GPU_TARGETS = (Target.cuda, Target.tensorrt)
# The ONNX Runtime execution provider a server of each target runs the model on: what it serves is
# that backend's precision (ecgedge.manifest.precision_for, the one policy), for the reason below.
SERVER_BACKEND: dict[Target, Backend] = {
    Target.cpu: Backend.ort_cpu,
    Target.arm64: Backend.ort_cpu,
    Target.cuda: Backend.ort_cuda,
    Target.tensorrt: Backend.ort_trt,
}
REASONS: dict[Target, str] = {
    Target.cpu: "CPU server: the gated QDQ INT8 runs on ONNX Runtime's int8 kernels (VNNI/AMX)",
    Target.arm64: "arm64 server: the gated S8S8 QDQ INT8 runs on ONNX Runtime's SDOT/I8MM kernels",
    Target.cuda: "GPU server: FP16 on tensor cores; the CUDA provider (TensorRT's fallback) has few INT8 kernels",
    Target.tensorrt: "GPU server: symmetric QDQ INT8 is TensorRT's explicit quantization (the gated trt-int8 engine's source)",
}
# numpy dtype names of the manifest -> Triton's model-config data types.
TRITON_DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int8": "TYPE_INT8", "uint8": "TYPE_UINT8",
                 "int32": "TYPE_INT32", "int64": "TYPE_INT64"}


@dataclass(frozen=True)
class TensorConfig:
    """One model input or output as Triton sees it: ``dims`` without the batch dimension."""

    name: str
    data_type: str  # Triton's TYPE_*, e.g. TYPE_FP32
    dims: tuple[int, ...]

    @property
    def datatype(self) -> str:
        """The name the inference protocol (and ``tritonclient``) uses: ``FP32`` for ``TYPE_FP32``."""
        return self.data_type.removeprefix("TYPE_")


@dataclass(frozen=True)
class TritonModelConfig:
    """What ``config.pbtxt`` says; the PyTriton server (:mod:`ecgedge.serve.pytriton_server`) binds the same."""

    name: str
    input: TensorConfig
    output: TensorConfig
    labels: tuple[str, ...]
    precision: Precision
    artefact: str  # manifest key of the served file
    target: Target
    batch_profile: tuple[int, int, int]
    max_queue_delay_us: int = MAX_QUEUE_DELAY_US
    why: str = ""  # why this precision is served

    @property
    def gpu(self) -> bool:
        return self.target in GPU_TARGETS

    @property
    def max_batch_size(self) -> int:
        return self.batch_profile[2]

    @property
    def preferred_batch_sizes(self) -> tuple[int, ...]:
        return tuple(sorted({self.batch_profile[1], self.batch_profile[2]}))

    @property
    def instance_kind(self) -> str:
        return "KIND_GPU" if self.gpu else "KIND_CPU"

    def to_pbtxt(self) -> str:
        """The model configuration in protobuf text format (Triton's ``ModelConfig``)."""

        def tensor(t: TensorConfig, extra: str = "") -> str:
            return (f'  {{\n    name: "{t.name}"\n    data_type: {t.data_type}\n    dims: [ {", ".join(map(str, t.dims))} ]\n'
                    f"{extra}  }}")

        lines = [
            f"# Written by ecgedge from the export's manifest: {self.artefact} artefact ({self.precision.value}), target {self.target.value}.",
            f'name: "{self.name}"',
            'backend: "onnxruntime"',
            f"max_batch_size: {self.max_batch_size}",
            "input [", tensor(self.input), "]",
            "output [", tensor(self.output, f'    label_filename: "{LABELS_FILE}"\n'), "]",
            "instance_group [", f"  {{\n    count: 1\n    kind: {self.instance_kind}\n  }}", "]",
            "dynamic_batching {",
            f"  preferred_batch_size: [ {', '.join(map(str, self.preferred_batch_sizes))} ]",
            f"  max_queue_delay_microseconds: {self.max_queue_delay_us}",
            "}",
        ]
        if self.gpu:
            lo, opt, hi = self.batch_profile
            shape = "x".join(map(str, self.input.dims))
            mode = {Precision.int8: "INT8", Precision.fp16: "FP16"}.get(self.precision, "FP32")
            params = [("precision_mode", mode), ("max_workspace_size_bytes", str(1 << 30)),
                      ("trt_profile_min_shapes", f"{self.input.name}:{lo}x{shape}"),
                      ("trt_profile_opt_shapes", f"{self.input.name}:{opt}x{shape}"),
                      ("trt_profile_max_shapes", f"{self.input.name}:{hi}x{shape}"),
                      ("trt_engine_cache_enable", "1"), ("trt_engine_cache_path", f"{TRT_CACHE}/{self.name}")]
            lines += ["optimization {", "  execution_accelerators {", "    gpu_execution_accelerator: [",
                      "      {", '        name: "tensorrt"']
            lines += [f'        parameters {{ key: "{k}" value: "{v}" }}' for k, v in params]
            lines += ["      }", "    ]", "  }", "}",
                      "model_warmup [", "  {", '    name: "zeros"', f"    batch_size: {opt}", "    inputs {",
                      f'      key: "{self.input.name}"',
                      f"      value {{ data_type: {self.input.data_type} dims: [ {', '.join(map(str, self.input.dims))} ] zero_data: true }}",
                      "    }", "  }", "]"]
        return "\n".join(lines) + "\n"


@dataclass
class TritonRepository:
    """A written repository: ``path`` is what the server mounts; ``model_dir`` holds this export's model."""

    path: Path
    config: TritonModelConfig
    files: list[Path]

    @property
    def model_dir(self) -> Path:
        return self.path / self.config.name


def served_precision(manifest: Manifest, target: Target, precision: Precision | str | None = None) -> tuple[Precision, str]:
    """The precision a Triton server of ``target`` serves, and why (see the module docstring).

    Otherwise the precision of :func:`~ecgedge.manifest.precision_for` on the target's
    :data:`SERVER_BACKEND`. A ``precision`` asked for by name is served unless the gate rejected it.
    """
    if precision is not None:
        precision = Precision(precision)
        art = manifest.artefact(precision.value)
        if manifest.status(precision.value) == ArtefactStatus.rejected:
            raise ArtefactError(f"{manifest.folder}/{art['file']} was rejected by the accuracy gate; a server will not serve it")
        return precision, f"{precision.value} asked for by name"
    target, backend = Target(target), SERVER_BACKEND[Target(target)]
    try:
        served = precision_for(manifest, backend)
    except ArtefactError as exc:
        raise ArtefactError(f"{exc}, the backend of a {target.value} server; "
                            "triton_repository_from_export(..., precision=...) serves one by name") from None
    skipped = passed_over(manifest, backend, served)
    return served, REASONS[target] + (f"; {skipped}: serving {served.value}" if skipped else "")


def triton_model_config(manifest: Manifest, *, target: Target | str | None = None, precision: Precision | str | None = None,
                        model_name: str | None = None, max_queue_delay_us: int = MAX_QUEUE_DELAY_US) -> TritonModelConfig:
    """The Triton model configuration of an export, from its manifest alone.

    Args:
        target: the server's device class (default: the export's ``target``); GPU targets get
            ``KIND_GPU`` and the TensorRT accelerator.
        precision: serve this artefact (default: :func:`served_precision`).
        model_name: default :func:`triton_model_name`.
        max_queue_delay_us: longest a request waits in the dynamic batcher, microseconds.
    """
    target = Target(target or manifest.data.get("target") or Target.cpu)
    precision, why = served_precision(manifest, target, precision)
    inp, out = manifest.data["input"], manifest.data["output"]
    in_dims = (len(manifest.leads), manifest.window_samples)
    out_dims = (len(manifest.labels),)
    # Where the manifest states shapes, they must agree with its leads, window and labels.
    for what, shape, dims in (("input", inp.get("shape"), in_dims), ("output", out.get("shape"), out_dims)):
        if shape is not None and tuple(shape[1:]) != dims:
            raise ArtefactError(f"{manifest.folder}: manifest {what} shape {shape} disagrees with its leads/window/labels {dims}")
    dtypes = []
    for t in (inp, out):
        dtype = t.get("dtype", "float32")
        if dtype not in TRITON_DTYPES:
            raise ArtefactError(f"{manifest.folder}: {t['name']} has dtype {dtype}, which ecgedge cannot map to a Triton type")
        dtypes.append(TRITON_DTYPES[dtype])
    name = model_name or triton_model_name(manifest)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
        raise ConfigError(f"Triton model name {name!r}: use letters, digits, '.', '_' and '-' only")
    if max_queue_delay_us < 0:
        raise ConfigError(f"max_queue_delay_us must be >= 0, got {max_queue_delay_us}")
    return TritonModelConfig(name=name, input=TensorConfig(inp["name"], dtypes[0], in_dims),
                             output=TensorConfig(out["name"], dtypes[1], out_dims), labels=manifest.labels,
                             precision=precision, artefact=precision.value, target=target,
                             batch_profile=_batch_profile(manifest), max_queue_delay_us=max_queue_delay_us, why=why)


def _batch_profile(manifest: Manifest) -> tuple[int, int, int]:
    """The export's batch profile (the TensorRT engines' too); ``(1, 8, 64)`` where it names none."""
    profile = (manifest.data.get("export_config") or {}).get("batch_profile") or DEFAULT_BATCH_PROFILE
    lo, opt, hi = (int(b) for b in profile)
    return lo, opt, hi


def triton_repository_from_export(folder: str | Path, out: str | Path | None = None, *, target: Target | str | None = None,
                                  precision: Precision | str | None = None, model_name: str | None = None,
                                  max_queue_delay_us: int = MAX_QUEUE_DELAY_US, manifest: Manifest | None = None,
                                  log=None, private_key=None) -> TritonRepository:
    """Write (or rewrite) the Triton model repository of an export folder.

    Args:
        folder: the export folder (its hashes are verified first, unless ``manifest`` is given).
        out: repository root; default ``folder/triton``, whose files are then hashed into the
            manifest with a ``triton`` section. Elsewhere (a fleet server's shared repository) only
            ``out/MODEL`` is written and the manifest is left as it is.
        target, precision, model_name, max_queue_delay_us: see :func:`triton_model_config`.
        manifest: the already loaded manifest (the export pipeline passes its own).
        log: called with one line describing what was written.
        private_key: re-signs the manifest after it is rewritten (a PEM path or a loaded key). A
            signed export whose manifest would be rewritten is refused without it, before anything
            is written: a rewrite would silently void the signature.

    Returns the :class:`TritonRepository`. An existing ``MODEL`` folder is replaced only if it is a
    Triton model folder (has a ``config.pbtxt``).
    """
    manifest = manifest or load_manifest(folder, verify=True)
    cfg = triton_model_config(manifest, target=target, precision=precision, model_name=model_name,
                              max_queue_delay_us=max_queue_delay_us)
    export_dir = manifest.folder.resolve()
    root = Path(out) if out is not None else manifest.folder / REPOSITORY
    inside = root.resolve().is_relative_to(export_dir)
    if inside and root.resolve() == export_dir:
        raise ConfigError(f"the Triton repository needs its own folder, not the export folder {manifest.folder} itself")
    if inside and (manifest.folder / SIGNATURE).is_file() and private_key is None:
        raise ConfigError(f"{manifest.folder} is signed: writing its Triton repository rewrites manifest.json and would void "
                          f"{SIGNATURE}; pass --sign KEY to re-sign it, or write the repository elsewhere (--out)")
    previous = manifest.data.get("triton") or {}
    if inside and previous.get("model_name") and previous.get("repository"):
        # Names read from the manifest: the old model folder must lie inside the export (and not be it).
        old = manifest.file(f"{previous['repository']}/{previous['model_name']}", "triton section")
        if old.is_symlink():
            raise ArtefactError(f"{manifest.folder}: the triton section's model folder {old} is a symbolic link; refused")
        if old.resolve() != (root / cfg.name).resolve() and (old / "config.pbtxt").is_file():
            shutil.rmtree(old)  # a renamed model: its old copy would stay hashed and served
    model_dir = root / cfg.name
    if model_dir.is_symlink() or model_dir.resolve().parent != root.resolve():
        raise ConfigError(f"Triton model folder {model_dir} is not a folder directly inside {root}; refused")
    if model_dir.exists() and not (model_dir / "config.pbtxt").is_file():
        raise ConfigError(f"{model_dir} exists and is not a Triton model folder; choose another repository or model name")
    staging = staged_folder(model_dir)  # built beside, swapped in whole: a killed run leaves the old model
    (staging / "1").mkdir()
    source = manifest.path(cfg.artefact)
    shutil.copyfile(source, staging / "1" / "model.onnx")
    _check_model_file(staging / "1" / "model.onnx", cfg)
    (staging / LABELS_FILE).write_text("\n".join(cfg.labels) + "\n")
    (staging / "config.pbtxt").write_text(cfg.to_pbtxt())
    swap_folder(staging, model_dir)
    model_file = model_dir / "1" / "model.onnx"
    files = [model_dir / "config.pbtxt", model_dir / LABELS_FILE, model_file]
    if inside:
        rel = lambda p: p.resolve().relative_to(export_dir).as_posix()  # noqa: E731
        manifest.data["triton"] = {
            "repository": rel(root), "model_name": cfg.name, "files": [rel(p) for p in files],
            "artefact": cfg.artefact, "precision": cfg.precision.value, "source_file": source.name,
            "source_sha256": file_sha256(source), "target": cfg.target.value, "backend": "onnxruntime",
            "instance_kind": cfg.instance_kind, "accelerator": "tensorrt" if cfg.gpu else None,
            "max_batch_size": cfg.max_batch_size, "preferred_batch_size": list(cfg.preferred_batch_sizes),
            "max_queue_delay_us": cfg.max_queue_delay_us, "why": cfg.why,
        }
        manifest.save()
        own_files(manifest.folder, *manifest.data["triton"]["files"])  # the export's, replaced by a re-export
        if private_key is not None:
            sign_manifest(manifest.folder, private_key)
    if log is not None:
        log(f"Triton model repository: {root} (model '{cfg.name}', {cfg.artefact} on {cfg.instance_kind}, "
            f"max batch {cfg.max_batch_size}; {cfg.why})")
    return TritonRepository(root, cfg, files)


def _check_model_file(path: Path, cfg: TritonModelConfig) -> None:
    """The served file's own graph must have the names and per-window dims the config states."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # only reading the signature
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    problems = []
    for what, got, want in (("input", sess.get_inputs(), cfg.input), ("output", sess.get_outputs(), cfg.output)):
        if len(got) != 1 or got[0].name != want.name or tuple(got[0].shape[1:]) != want.dims:
            problems.append(f"{what}s {[(g.name, g.shape) for g in got]}, manifest says {want.name} (batch, {', '.join(map(str, want.dims))})")
    if problems:
        raise ArtefactError(f"{path.name} does not match the manifest: " + "; ".join(problems))
