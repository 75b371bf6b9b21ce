"""``ecgedge export``: a trained run -> one self-contained, gated artefact folder.

    export/NAME/
      manifest.json         input spec, preprocessing, labels, artefacts + gate verdicts, versions, sha256 of every file
      model.fp32.onnx       opset >= 17, dynamic batch; parity with PyTorch checked on real windows
      model.int8.onnx       static QDQ, per-channel int8 weights, calibrated on training windows
      model.fp16.onnx       where asked (--fp16) or where the target is a GPU
      model.{fp16,int8}.engine + .timing.cache   for --target tensorrt (built on the GPU at hand)
      mcu/                  for --target mcu (or --mcu EXPORT later): the C99 INT8 library, gated as backend c-int8
      check_windows.npz     held-out windows, labels and FP32 reference logits for ``--check``

The FP32 ONNX model must match PyTorch within ``ExportConfig.parity_atol`` (largest |logit
difference|, recorded in the manifest as ``gate.parity_atol`` and re-applied by ``--check``); every
logit comparison goes through :func:`ecgedge.evaluate.compare.compare`.

Calibration windows come from the run's training records; the gate runs on its held-out test
records (never the same records; both sets are named in the manifest by id and hash). An artefact
that fails the gate is kept for inspection but marked ``rejected``, and export exits with
:class:`~ecgedge.errors.GateFailed`.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ecgedge.config import DataConfig, ExportConfig, LabelScheme, Target, config_from_dict, config_to_dict
from ecgedge.data.preprocess import normalise_windows, preprocess_params
from ecgedge.data.provenance import training_records_from_split
from ecgedge.data.splits import Split
from ecgedge.data.windows import WindowSet, build_windows
from ecgedge.errors import ArtefactError, BackendUnavailable, ConfigError, GateFailed, storage_errors
from ecgedge.evaluate.compare import compare
from ecgedge.evaluate.gate import GateReport, gate_logits, gate_table
from ecgedge.export.mcu import MCU_DIR
from ecgedge.export.onnx_export import INPUT_NAME, OUTPUT_NAME, onnx_from_checkpoint
from ecgedge.export.quantize import fp16_onnx_from_onnx, int8_onnx_from_onnx, quantization_loss_by_layer
from ecgedge.export.targets import PRESETS
from ecgedge.hashing import file_sha256, value_sha256
from ecgedge.manifest import (FORMAT, MANIFEST, SIGNATURE, ArtefactStatus, Manifest, artefact_key, load_manifest, precision_for, runtime_of,
                              sign_manifest)
from ecgedge.runtime.base import Backend, InputSpec, Precision, available_backends
from ecgedge.runtime.loader import runner_from_export, runner_from_onnx

if TYPE_CHECKING:
    from ecgedge.models.checkpoint import Checkpoint  # imports torch: only where a run is opened


CHECK_FILE = "check_windows.npz"
MCU_KEY = artefact_key(Backend.c_int8, Precision.int8)
# Held-out windows on which the FP32 ONNX model is compared with PyTorch before anything else is
# built (all of them are compared again by the gate): enough to catch a broken export in seconds.
PARITY_WINDOWS = 256


@dataclass
class RunData:
    """A training run reopened: its checkpoint, cached windows and record split."""

    ckpt: Checkpoint
    run_dir: Path
    windows: WindowSet
    split: Split
    train_used: np.ndarray
    scheme: LabelScheme
    unfinished: str = ""  # why the checkpoint is not from a finished run (exported only when allowed)


def open_run(source: str | Path, *, progress: bool = True, allow_unfinished: bool = False) -> RunData:
    """Checkpoint + the run's windows (from the cache) + split.json; clear errors when pieces are missing.

    A checkpoint of a run that did not finish (:func:`~ecgedge.models.checkpoint.unfinished_reason`)
    raises :class:`ArtefactError` unless ``allow_unfinished``.
    """
    from ecgedge.models.checkpoint import load_checkpoint, unfinished_reason

    ckpt = load_checkpoint(source)
    if ckpt.kind != "classifier":
        raise ConfigError(f"{ckpt.path} is a {ckpt.kind} checkpoint; export takes a classifier run (ecgedge train classify)")
    unfinished = unfinished_reason(ckpt)
    if unfinished and not allow_unfinished:
        raise ArtefactError(f"{unfinished}: its weights and figures are not final; train it to the end, or pass "
                            "--allow-incomplete to export it anyway (the manifest records it)")
    run_dir = Path(ckpt.path).parent
    split_file = run_dir / "split.json"
    if not split_file.is_file():
        raise ArtefactError(f"{split_file} not found: export needs the training run folder (its split names the held-out records)")
    tc = ckpt.train_config
    scheme = LabelScheme(tc["labels"])
    data = config_from_dict(DataConfig, tc["data"])
    ws = build_windows(data, ckpt.leads, ckpt.preprocess, ckpt.window, scheme, progress=progress)
    if tuple(ws.class_names) != tuple(ckpt.labels):
        raise ArtefactError(f"the run's data now give classes {ws.class_names}, the checkpoint has {ckpt.labels}: the data changed since training")
    split_json = json.loads(split_file.read_text())
    try:
        split = Split.from_dict(split_json, ws.record_ids)
        train_used = Split.from_dict({"train": split_json["train_used"], "val": [], "test": []}, ws.record_ids).train
    except KeyError as exc:
        raise ArtefactError(f"the run's records are no longer all readable ({exc}); export needs the data the run was trained on") from None
    return RunData(ckpt, run_dir, ws, split, train_used, scheme, unfinished)


def _pick(indices: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(indices) <= n:
        return np.sort(indices)
    return np.sort(np.random.default_rng(seed).choice(indices, n, replace=False))


def _versions() -> dict:
    import onnx
    import onnxruntime
    import torch

    from ecgedge.installation import build_info

    # The commit ("...+dirty" from an unclean tree) names the exact code that wrote this manifest.
    info = build_info()
    return {"ecgedge": info["version"], "ecgedge_commit": info["commit"], "torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "python": platform.python_version(), "machine": platform.machine()}


@dataclass
class ExportResult:
    folder: Path
    manifest: Manifest
    reports: list[GateReport]
    table: str
    triton: object = None  # the TritonRepository written with triton=True

    @property
    def passed(self) -> bool:
        return all(self.reports)


def main_export(cfg: ExportConfig, *, progress: bool = True, log=print, triton: bool = False,
                sign_key: str | Path | None = None) -> ExportResult:
    """Export, quantize, compile and gate; writes the manifest even when the gate fails, then raises GateFailed.

    The export is built in a hidden sibling of the output folder and swapped in by renames once its
    manifest is written: an export that stops (an error, Ctrl-C, a full disk) leaves the previous
    export as it was and no partial folder. The output folder is replaced only when it is empty or an
    ecgedge export (its manifest's ``format``); anything else is refused with :class:`ConfigError`.

    With ``triton`` a passed export also gets its Triton model repository (``triton/``, see
    :func:`~ecgedge.export.triton.triton_repository_from_export`).

    With ``sign_key`` (an Ed25519 private key, PEM) the finished manifest is signed
    (``manifest.sig``, :func:`~ecgedge.manifest.sign_manifest`) in the build folder, before the
    swap, so the export appears signed or not at all; the key is read first, so a bad key fails
    before minutes of work. A Triton repository written into the folder re-signs it.
    """
    private_key = None
    if sign_key is not None:
        from ecgedge.signing import load_private_key

        private_key = load_private_key(sign_key)
    staged: list[Path] = []  # the build folder once made; removed whatever stops the export before the swap
    try:
        with storage_errors(f"export {cfg.source} to {cfg.out or 'export/'}"):
            return _export(cfg, staged, progress=progress, log=log, triton=triton, private_key=private_key)
    finally:
        for folder in staged:
            shutil.rmtree(folder, ignore_errors=True)


def _export(cfg: ExportConfig, staged: list[Path], *, progress: bool, log, triton: bool, private_key=None) -> ExportResult:
    from ecgedge.models.flops import count_macs, count_params
    from ecgedge.train import predict_logits

    preset = PRESETS[cfg.target]
    backends = available_backends()
    if cfg.target == Target.tensorrt and backends[Backend.tensorrt]:
        raise BackendUnavailable(f"--target tensorrt builds engines on the GPU they will run on: {backends[Backend.tensorrt]}")
    gate_backends = [b for b in preset.gate_backends if backends[b] is None]
    skipped_backends = {b.value: backends[b] for b in preset.gate_backends if backends[b]}
    if Backend.ort_cpu not in gate_backends:
        raise BackendUnavailable(f"ONNX Runtime CPU is needed for the gate: {backends[Backend.ort_cpu]}")

    run = open_run(cfg.source, progress=progress, allow_unfinished=cfg.allow_incomplete)
    ckpt, ws = run.ckpt, run.windows
    unknown = sorted({c for c, _ in cfg.min_class_f1} - {"*"} - set(ckpt.labels))
    if unknown:
        raise ConfigError(f"--min-class-f1 {', '.join(unknown)}: not a class of this model ({', '.join(ckpt.labels)})")
    if run.unfinished:
        log(f"warning: {run.unfinished}; exported as asked (--allow-incomplete), the manifest records it")
    dest = Path(cfg.out or Path("export") / run.run_dir.name)
    folder = _staging_folder(dest)
    staged.append(folder)
    spec = InputSpec(INPUT_NAME, tuple(ckpt.leads), ckpt.preprocess.fs_hz, ckpt.window.samples)

    gate_idx = ws.windows_of_records(run.split.test)
    gate_idx = gate_idx[ws.labels[gate_idx] >= 0]
    calib_pool = ws.windows_of_records(run.train_used)
    calib_idx = _pick(calib_pool, cfg.calib_windows, cfg.seed)
    if not len(gate_idx):
        raise ArtefactError("the run has no labelled held-out windows to gate on")
    assert not set(ws.window_record[gate_idx]) & set(ws.window_record[calib_idx]), "calibration and gate records overlap"
    gate_x, _ = normalise_windows(ws.windows[gate_idx], ckpt.preprocess)
    gate_y = ws.labels[gate_idx]
    calib_x, _ = normalise_windows(ws.windows[calib_idx], ckpt.preprocess)

    log(f"exporting {ckpt.path} -> {dest}  (target {cfg.target.value}; gate on {len(gate_idx)} held-out windows "
        f"from {len(run.split.test)} records; calibration on {len(calib_idx)} training windows)")
    model = ckpt.build_model()
    reference = predict_logits(model, ws, gate_idx, ckpt.preprocess, "cpu")

    artefacts: dict[str, dict] = {}
    fp32 = onnx_from_checkpoint(ckpt, folder / "model.fp32.onnx", opset=cfg.opset)
    n = min(PARITY_WINDOWS, len(gate_x))
    par = compare({"pytorch fp32": reference[:n], "onnx fp32": runner_from_onnx(fp32, spec)}, gate_x[:n], cfg.parity_atol)["onnx fp32"]
    if not par:
        raise ArtefactError(f"FP32 ONNX differs from PyTorch by {par.max_abs_logit_error:.2e} (tolerance {par.tolerance:g}, "
                            "--parity-atol): export is broken")
    log(f"model.fp32.onnx: opset {cfg.opset}, max |logit error| vs PyTorch {par.max_abs_logit_error:.2e} on {n} real windows "
        f"(tolerance {cfg.parity_atol:g})")
    artefacts["fp32"] = {"file": fp32.name, "precision": "fp32", "runtime": "onnx", "opset": cfg.opset, "parity": par.to_dict()}

    if cfg.int8:
        q = int8_onnx_from_onnx(fp32, folder / "model.int8.onnx", calib_x, input_name=INPUT_NAME, preset=preset, method=cfg.calib_method)
        q["calib_records"] = sorted({ws.record_ids[i] for i in ws.window_record[calib_idx]})
        q["calib_records_sha256"] = value_sha256(q["calib_records"])
        artefacts["int8"] = {"file": "model.int8.onnx", "precision": "int8", "runtime": "onnx", "opset": cfg.opset, "quantization": q}
        log(f"model.int8.onnx: QDQ {preset.activation_type}/{preset.weight_type} per-channel, {cfg.calib_method.value} calibration")
    if cfg.fp16 or preset.fp16_default:
        artefacts["fp16"] = {"file": "model.fp16.onnx", "precision": "fp16", "runtime": "onnx", "opset": cfg.opset,
                             **fp16_onnx_from_onnx(fp32, folder / "model.fp16.onnx")}
        log("model.fp16.onnx: FP16 weights and compute, FP32 input/output")
    if preset.mcu:
        if "int8" not in artefacts:
            raise ConfigError(f"--target {cfg.target.value} generates its C library from the INT8 model: drop --no-int8")
        artefacts[MCU_KEY] = _mcu_artefact(folder, dest.name, list(ckpt.labels))
        log(f"{MCU_DIR}/: C99 INT8 library from model.int8.onnx ({artefacts[MCU_KEY]['library']['arena_bytes']} B arena, "
            "first convolution FP32)")
    for prec in preset.engines:
        from ecgedge.runtime.tensorrt_runner import engine_from_onnx

        src = folder / ("model.int8.onnx" if prec == Precision.int8 else "model.fp32.onnx")
        if not src.exists():
            continue
        build = engine_from_onnx(src, folder / f"model.{prec.value}.engine", spec, prec, batch_profile=cfg.batch_profile,
                                 timing_cache=folder / "timing.cache")
        artefacts[f"trt-{prec.value}"] = {"file": build.engine.name, "precision": prec.value, "runtime": "tensorrt",
                                          "profile": list(build.profile), "build_s": build.build_s, "timing_cache": build.timing_cache.name,
                                          **build.identity.to_dict()}
        log(f"{build.engine.name}: built in {build.build_s:.1f} s on {build.identity.name} (TensorRT {build.identity.tensorrt_version})")

    # Portable gate set: a seeded subset of the gate windows with the FP32 reference logits.
    keep = _pick(np.arange(len(gate_idx)), cfg.check_windows, cfg.seed)
    np.savez(folder / CHECK_FILE, windows=gate_x[keep], labels=gate_y[keep], reference_logits=reference[keep],
             records=np.array([ws.record_ids[i] for i in ws.window_record[gate_idx[keep]]]))

    gate_records = [ws.record_ids[i] for i in run.split.test]
    # ids + content hashes of the records the model was fitted on: `ecgedge evaluate` warns on overlap
    trained = training_records_from_split(run.run_dir / "split.json")
    manifest = Manifest(folder, {
        "format": FORMAT,
        "name": dest.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input": {"name": INPUT_NAME, "shape": ["batch", len(ckpt.leads), ckpt.window.samples], "dtype": "float32",
                  "leads": list(ckpt.leads), "fs_hz": ckpt.preprocess.fs_hz, "window_samples": ckpt.window.samples,
                  "window_s": ckpt.window.samples / ckpt.preprocess.fs_hz,
                  "units": "per lead, z-scored window of the band-passed signal in mV (see preprocess)"},
        "output": {"name": OUTPUT_NAME, "shape": ["batch", len(ckpt.labels)], "labels": list(ckpt.labels),
                   "kind": "logits; softmax gives class probabilities"},
        "model": {"architecture": "shared per-lead CAE encoder + conv fusion head", "params": count_params(model),
                  "macs_per_window": count_macs(model, (len(ckpt.leads), ckpt.window.samples)),
                  "flops_per_window": 2 * count_macs(model, (len(ckpt.leads), ckpt.window.samples))},
        "label_scheme": run.scheme.value,
        "preprocess": preprocess_params(ckpt.preprocess),
        "window": config_to_dict(ckpt.window),
        "source": {"checkpoint": str(ckpt.path), "checkpoint_sha256": file_sha256(ckpt.path), "epoch": ckpt.epoch,
                   "run_dir": str(run.run_dir), "init": ckpt.train_config.get("init_checkpoint"),
                   "test_macro_f1_records": json.loads((run.run_dir / "metrics.json").read_text())["test"]["records"]["macro_f1"]
                   if (run.run_dir / "metrics.json").is_file() else None,
                   "complete": not run.unfinished, **({"unfinished": run.unfinished} if run.unfinished else {})},
        "target": cfg.target.value,
        "target_notes": list(preset.reasons),
        "export_config": config_to_dict(cfg),
        "opset": cfg.opset,
        "versions": _versions(),
        "artefacts": artefacts,
        "gate": {"parity_atol": cfg.parity_atol, "max_f1_drop": cfg.max_f1_drop, "min_agreement": cfg.min_agreement, "min_f1": cfg.min_f1,
                 "min_class_f1": dict(cfg.min_class_f1), "min_gate_windows": cfg.min_gate_windows, "windows": int(len(gate_idx)),
                 "records": gate_records, "records_sha256": value_sha256(gate_records), "level": "window",
                 "skipped_backends": skipped_backends},
        "check_data": {"file": CHECK_FILE, "windows": int(len(keep))},
        **({"training_records": trained.to_dict()} if trained else {}),
        "recommended": preset.recommended,
    })
    manifest.save()
    if MCU_KEY in artefacts:  # the C library against ONNX Runtime INT8 on every gate window (--check: the check windows)
        _record_ort_parity(manifest, gate_x)

    reports = _gate_all(manifest, gate_backends, gate_x, gate_y, reference, ckpt.labels, parity_atol=cfg.parity_atol, max_f1_drop=cfg.max_f1_drop,
                        min_agreement=cfg.min_agreement, min_f1=cfg.min_f1, min_class_f1=cfg.min_class_f1,
                        min_windows=cfg.min_gate_windows)
    for rep in reports:
        if not rep and rep.artefact == "int8":
            rep.worst_layers = quantization_loss_by_layer(fp32, folder / "model.int8.onnx", calib_x, INPUT_NAME)
    _record_verdicts(manifest, reports)
    manifest.save()
    sizes = {k: _artefact_bytes(manifest, k) for k in artefacts}
    table = gate_table(reports, sizes)
    log(table)
    if skipped_backends:
        log("not gated here (backend unavailable): " + "; ".join(f"{b}: {why}" for b, why in skipped_backends.items()))
    if private_key is not None:
        sign_manifest(folder, private_key)
    _swap_in(folder, dest)
    staged.clear()
    manifest.folder = folder = dest
    result = ExportResult(folder, manifest, reports, table)
    if not result.passed:
        failed = [f"{r.artefact}@{r.backend}: {'; '.join(r.failures)}" for r in reports if not r]
        worst = [f"{r.artefact}: lowest-SQNR tensors " + ", ".join(f"{w['tensor']} ({w['sqnr_db']:.1f} dB)" for w in r.worst_layers)
                 for r in reports if r.worst_layers]
        raise GateFailed("accuracy gate failed (artefacts marked rejected in the manifest):\n  " + "\n  ".join(failed + worst))
    if triton:
        from ecgedge.export.triton import triton_repository_from_export

        result.triton = triton_repository_from_export(folder, manifest=manifest, log=log)
        if private_key is not None:  # the repository's files were hashed into the manifest: sign its new bytes
            sign_manifest(folder, private_key)
    return result


def _check_replaceable(dest: Path) -> None:
    """Refuse an output folder export must not replace: a link, a file, or a non-empty folder whose
    ``manifest.json`` is not an ecgedge export's (by its ``format`` marker)."""
    if dest.is_symlink():
        raise ConfigError(f"{dest} is a symbolic link; give the folder itself as --out")
    if not dest.exists() or (dest.is_dir() and not any(dest.iterdir())):
        return
    if not dest.is_dir():
        raise ConfigError(f"{dest} is a file, not a folder; choose another --out")
    try:
        load_manifest(dest, verify=False)
    except ArtefactError as exc:
        raise ConfigError(f"{dest} is not empty and not an ecgedge export ({exc}); choose another --out") from None


def _staging_folder(dest: Path) -> Path:
    """A new, empty, hidden sibling of ``dest`` to build the export in (same file system: the swap is a rename)."""
    _check_replaceable(dest)
    dest = Path(os.path.abspath(dest))  # --out . has no name to put beside
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.with_name(f".{dest.name}.partial-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    return staging


def _swap_in(staging: Path, dest: Path) -> None:
    """Put the finished export in place: the old one is renamed aside, the new one renamed in, then
    the old one removed; a failed rename puts the old one back."""
    _check_replaceable(dest)  # again: something else may have been put there while exporting
    dest, old = Path(os.path.abspath(dest)), None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
        dest.rename(old)
    try:
        staging.rename(dest)
    except BaseException:
        if old is not None:
            old.rename(dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)  # the new export is in place; a leftover is only disk space


def _gate_all(manifest: Manifest, backends, x, y, reference, labels, *, parity_atol: float, **thresholds) -> list[GateReport]:
    """Run every artefact on ``backends`` over windows ``x`` and gate its logits against ``reference``
    (:func:`~ecgedge.evaluate.compare.compare`, then :func:`gate_logits` with ``thresholds``); the FP32
    artefact on ONNX Runtime CPU must also stay within ``parity_atol`` of it (:func:`_logit_tolerance`)."""
    reports = []
    for key, art in manifest.artefacts.items():
        precision = Precision(art["precision"])
        for backend in backends:
            if art.get("runtime", "onnx") != runtime_of(backend) or artefact_key(backend, precision) != key:
                continue
            runner = runner_from_export(manifest.folder, precision, backend, manifest=manifest, allow_rejected=True)
            logits = compare({"fp32 reference": reference, key: runner}, x).outputs[key]
            reports.append(gate_logits(key, backend.value, logits, reference, y, labels,
                                       max_logit_error=_logit_tolerance(precision, backend, parity_atol), **thresholds))
    return reports


def _logit_tolerance(precision: Precision, backend: Backend, parity_atol: float) -> float | None:
    """The logit tolerance an artefact is gated with: ``parity_atol`` for FP32 on ONNX Runtime CPU (the
    export's parity check, re-run); None (decisions judged, not logits) for everything else: reduced
    precision differs by design, and GPU providers may run FP32 convolutions in TF32 (ONNX Runtime's
    CUDA provider does by default on Ampere and later), which the decision thresholds judge."""
    return parity_atol if precision == Precision.fp32 and backend == Backend.ort_cpu else None


def _record_verdicts(manifest: Manifest, reports: list[GateReport]) -> None:
    by_art: dict[str, list[GateReport]] = {}
    for r in reports:
        by_art.setdefault(r.artefact, []).append(r)
    for key, art in manifest.artefacts.items():
        reps = by_art.get(key, [])
        art["gate"] = {r.backend: r.to_dict() for r in reps}
        if not reps:
            status = ArtefactStatus.not_gated
        elif all(reps):
            status = ArtefactStatus.reference if key == "fp32" else ArtefactStatus.accepted
        else:
            status = ArtefactStatus.rejected
        art["status"] = status.value
    manifest.data["gate"]["passed"] = all(reports)
    # A recommendation names only an artefact the gate let through; otherwise it becomes what the
    # precision policy picks without it (precision_for passes over an unusable recommendation).
    # A copy: the manifest's dict may be the target preset's own, which other exports still read.
    recommended = manifest.data["recommended"] = dict(manifest.data.get("recommended") or {})
    notes = {}
    for backend, precision in list(recommended.items()):
        held = manifest.status(artefact_key(Backend(backend), Precision(precision)))
        if held is not None and held.usable:
            continue
        note = f"{precision} is {held.value if held else 'missing'}"
        try:
            recommended[backend] = precision_for(manifest, Backend(backend)).value
            notes[backend] = f"{note}: falling back to {recommended[backend]}"
        except ArtefactError:
            del recommended[backend]
            notes[backend] = f"{note}: no {backend} artefact passed the gate"
    if notes:
        manifest.data.setdefault("recommended_notes", {}).update(notes)


def check_export(folder: str | Path, *, backends: list[Backend] | None = None, log=print,
                 public_key: str | Path | None = None) -> ExportResult:
    """Re-verify every hash and re-run the gate on the stored check windows, on the backends available here.

    With ``public_key`` (Ed25519 PEM file) the manifest must first carry a valid signature by it.
    Needs neither torch nor the data set: it is meant to run on the device itself.
    """
    manifest = load_manifest(folder, verify=True, public_key=public_key)
    if public_key is not None:
        log(f"{manifest.folder}: manifest signature matches {public_key}")
    check_data = manifest.data.get("check_data")
    if not isinstance(check_data, dict) or not isinstance(check_data.get("file"), str):
        raise ArtefactError(f"{manifest.folder / MANIFEST}: no 'check_data' section naming the check windows file")
    data = np.load(manifest.file(check_data["file"], "check_data"))
    avail = available_backends()
    # an export with a C library says why c-int8 cannot re-run it here (no compiler) rather than pass over it
    wanted = backends or [b for b in Backend if avail[b] is None or (b == Backend.c_int8 and MCU_KEY in manifest.artefacts)]
    usable = [b for b in wanted if avail[b] is None]
    for b in set(wanted) - set(usable):
        log(f"skipping {b.value}: {avail[b]}")
    g = manifest.data["gate"]
    # The floors are re-checked on the stored check windows; the sample-size rule is not: it was
    # settled at export on all held-out windows, of which the check windows are a subset.
    reports = _gate_all(manifest, usable, data["windows"], data["labels"], data["reference_logits"], manifest.labels,
                        parity_atol=manifest.parity_atol,
                        max_f1_drop=g["max_f1_drop"], min_agreement=g["min_agreement"], min_f1=g.get("min_f1", 0.0),
                        min_class_f1=g.get("min_class_f1") or {})
    sizes = {k: _artefact_bytes(manifest, k) for k in manifest.artefacts}
    table = gate_table(reports, sizes)
    log(f"{manifest.folder}: all {len(manifest.data['files'])} files match their sha256")
    log(table)
    if MCU_KEY in manifest.artefacts and Backend.c_int8 in usable and Backend.ort_cpu in usable:
        parity = _c_library_parity(manifest, data["windows"])
        log(f"c-int8 vs ort-cpu int8: identical int8 logits on {parity['windows_identical']}/{parity['windows']} check windows, "
            f"largest difference {parity['max_steps']} output step(s)")
        for rep in (r for r in reports if r.artefact == MCU_KEY and parity["max_steps"] > 1):
            rep.failures.append(f"the C library differs from ONNX Runtime INT8 by {parity['max_steps']} output steps (at most 1 allowed)")
    result = ExportResult(manifest.folder, manifest, reports, table)
    if not result.passed:
        raise GateFailed("re-check failed: " + "; ".join(f"{r.artefact}@{r.backend}: {'; '.join(r.failures)}" for r in reports if not r))
    return result


def _artefact_bytes(manifest: Manifest, key: str) -> int:
    """The size the gate table shows: the file's, or for the C library its constants (weights in flash), not its C text."""
    const = (manifest.artefact(key).get("library") or {}).get("const_bytes")
    return int(const) if const else manifest.path(key).stat().st_size


def _mcu_artefact(folder: Path, name: str, labels: list[str]) -> dict:
    """Write ``folder/mcu/`` from ``folder/model.int8.onnx``; the manifest entry of the ``mcu-int8`` artefact."""
    from ecgedge.export.mcu import c_library_from_int8_onnx

    lib = c_library_from_int8_onnx(folder / "model.int8.onnx", folder, name=name, labels=labels)
    return {"file": f"{MCU_DIR}/ecgedge_model.c", "precision": "int8", "runtime": "c", "from": "int8",
            "library": lib.to_dict(folder)}


def _record_ort_parity(manifest: Manifest, windows: np.ndarray) -> None:
    """Record :func:`_c_library_parity` as ``artefacts.mcu-int8.ort_int8_parity`` (or why it was skipped)."""
    reason = available_backends()[Backend.c_int8]
    manifest.artefact(MCU_KEY)["ort_int8_parity"] = {"skipped": reason} if reason else _c_library_parity(manifest, windows)


def _c_library_parity(manifest: Manifest, windows: np.ndarray) -> dict:
    """The C library against ONNX Runtime's INT8 model on ``windows``: int8 logits identical, or within one
    output step (the comparison's tolerance is the output scale)."""
    art = manifest.artefact(MCU_KEY)
    step = float(art["library"]["output"]["scale"])
    ort_int8 = runner_from_export(manifest.folder, Precision.int8, Backend.ort_cpu, manifest=manifest, verify=False, allow_rejected=True)
    c_int8 = runner_from_export(manifest.folder, Precision.int8, Backend.c_int8, manifest=manifest, verify=False, allow_rejected=True)
    res = compare({"ort-cpu int8": ort_int8, "c-int8": c_int8}, windows, tolerance=step * 1.0001)
    steps = np.rint(np.abs(res.outputs["c-int8"].astype(np.float64) - res.outputs["ort-cpu int8"]) / step)
    return {**res["c-int8"].to_dict(), "output_step": step, "max_steps": int(steps.max(initial=0)),
            "windows_identical": int((steps == 0).all(axis=1).sum())}


def mcu_library_for_export(source: str | Path, *, out: str | Path | None = None, log=print) -> ExportResult:
    """Add the C99 INT8 library (``mcu/``, artefact ``mcu-int8``) to an existing export and gate it.

    The export is copied into a hidden sibling of ``out`` (default: ``source`` itself; for a model
    shipped inside the ecgedge package, ``export/NAME``), the library generated from its
    ``model.int8.onnx`` (which the gate must have accepted), gated as backend ``c-int8`` on the stored
    check windows with the manifest's thresholds, compared with ONNX Runtime's INT8 outputs, and
    swapped in. A signed export is refused (the new files would void its signature).

    Raises:
        ArtefactError: no accepted INT8 model; GateFailed: the library fails the gate (written, marked rejected).
    """
    import ecgedge

    src = Path(source)
    manifest = load_manifest(src, verify=True)
    if (src / SIGNATURE).exists():
        raise ConfigError(f"{src} is signed: adding files would void {SIGNATURE}; re-export with --target mcu --sign KEY")
    int8_status = manifest.status("int8")
    if int8_status != ArtefactStatus.accepted:
        raise ArtefactError(f"{src}: the INT8 model is {int8_status.value if int8_status else 'missing'}; "
                            "the C library is generated only from an INT8 model the gate accepted")
    if out is None:
        inside_package = Path(os.path.abspath(src)).is_relative_to(Path(ecgedge.__file__).resolve().parent)
        out = Path("export") / (manifest.data.get("name") or src.name) if inside_package else src
    dest = Path(out)
    staged: list[Path] = []
    try:
        folder = _staging_folder(dest) if Path(os.path.abspath(dest)) != Path(os.path.abspath(src)) else _staging_folder_for(src)
        staged.append(folder)
        shutil.copytree(src, folder, dirs_exist_ok=True)
        shutil.rmtree(folder / MCU_DIR, ignore_errors=True)
        manifest = Manifest(folder, manifest.data)
        manifest.artefacts[MCU_KEY] = _mcu_artefact(folder, Path(os.path.abspath(dest)).name, list(manifest.labels))
        manifest.save()
        data = np.load(manifest.file(manifest.data["check_data"]["file"], "check_data"))
        _record_ort_parity(manifest, data["windows"])
        g = manifest.data["gate"]
        reports = _gate_all(manifest, [Backend.c_int8], data["windows"], data["labels"], data["reference_logits"], manifest.labels,
                            parity_atol=manifest.parity_atol, max_f1_drop=g["max_f1_drop"], min_agreement=g["min_agreement"],
                            min_f1=g.get("min_f1", 0.0), min_class_f1=g.get("min_class_f1") or {})
        art = manifest.artefacts[MCU_KEY]
        art["gate"] = {r.backend: r.to_dict() for r in reports}
        art["gate_windows"] = "check windows (export --mcu on an existing export)"
        status = ArtefactStatus.not_gated if not reports else ArtefactStatus.accepted if all(reports) else ArtefactStatus.rejected
        art["status"] = status.value
        if status == ArtefactStatus.accepted:
            manifest.data["recommended"] = {**(manifest.data.get("recommended") or {}), Backend.c_int8.value: Precision.int8.value}
        manifest.save()
        table = gate_table(reports, {MCU_KEY: _artefact_bytes(manifest, MCU_KEY)})
        log(table)
        if not reports:
            log(f"not gated here: {available_backends()[Backend.c_int8]}")
        _swap_in(folder, dest)
        staged.clear()
    finally:
        for f in staged:
            shutil.rmtree(f, ignore_errors=True)
    manifest.folder = dest
    result = ExportResult(dest, manifest, reports, table)
    if not result.passed:
        raise GateFailed("accuracy gate failed for the C library (marked rejected in the manifest): "
                         + "; ".join(f"{r.artefact}@{r.backend}: {'; '.join(r.failures)}" for r in reports if not r))
    return result


def _staging_folder_for(src: Path) -> Path:
    """A hidden sibling of the export ``src`` being updated in place (``_staging_folder`` without its emptiness rule)."""
    src = Path(os.path.abspath(src))
    staging = src.with_name(f".{src.name}.partial-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    return staging
