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
import platform
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

from ecgedge.config import ExportConfig, Target, config_to_dict
from ecgedge.data.preprocess import normalise_windows, preprocess_params
from ecgedge.data.provenance import training_records_from_split
from ecgedge.errors import ArtefactError, BackendUnavailable, ConfigError, GateFailed, storage_errors
from ecgedge.evaluate.compare import compare
from ecgedge.evaluate.gate import gate_table
from ecgedge.export.gating import ExportResult, artefact_bytes, gate_all, record_verdicts
from ecgedge.export.mcu import MCU_DIR
from ecgedge.export.mcu_artefact import MCU_KEY, mcu_artefact, record_ort_parity
from ecgedge.export.onnx_export import INPUT_NAME, OUTPUT_NAME, onnx_from_checkpoint
from ecgedge.export.quantize import fp16_onnx_from_onnx, int8_onnx_from_onnx, quantization_loss_by_layer
from ecgedge.export.run_data import open_run
from ecgedge.export.staging import staging_folder, swap_in
from ecgedge.export.targets import PRESETS
from ecgedge.hashing import file_sha256, value_sha256
from ecgedge.manifest import Manifest, ModelFigures, manifest_data, sign_manifest
from ecgedge.runtime.base import Backend, InputSpec, Precision, available_backends
from ecgedge.runtime.loader import runner_from_onnx

CHECK_FILE = "check_windows.npz"
# Held-out windows on which the FP32 ONNX model is compared with PyTorch before anything else is
# built (all of them are compared again by the gate): enough to catch a broken export in seconds.
PARITY_WINDOWS = 256


def _pick(indices: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(indices) <= n:
        return np.sort(indices)
    return np.sort(np.random.default_rng(seed).choice(indices, n, replace=False))


def software_versions() -> dict:
    import onnx
    import onnxruntime
    import torch

    from ecgedge.installation import build_info

    # The commit ("...+dirty" from an unclean tree) names the exact code that wrote this manifest.
    info = build_info()
    return {"ecgedge": info["version"], "ecgedge_commit": info["commit"], "torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "python": platform.python_version(), "machine": platform.machine()}


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
            return _export(cfg, staged, progress=progress, log=log, triton=triton, private_key=private_key,
                           inputs=[p for p in (cfg.source, sign_key) if p is not None])
    finally:
        for folder in staged:
            shutil.rmtree(folder, ignore_errors=True)


def _export(cfg: ExportConfig, staged: list[Path], *, progress: bool, log, triton: bool, private_key=None,
            inputs: Sequence[str | Path] = ()) -> ExportResult:
    from ecgedge.models.flops import count_macs, count_params
    from ecgedge.evaluate.reference import predict_logits

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
    folder = staging_folder(dest, inputs)  # never over the run, the signing key or a user's folder
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
        artefacts[MCU_KEY] = mcu_artefact(folder, dest.name, list(ckpt.labels))
        log(f"{MCU_DIR}/: C99 INT8 library from model.int8.onnx ({artefacts[MCU_KEY]['library']['arena_bytes']} B arena, "
            "first convolution FP32)")
    for prec in preset.engines:
        from ecgedge.export.tensorrt_engine import engine_from_onnx

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
    macs = count_macs(model, (len(ckpt.leads), ckpt.window.samples))
    manifest = Manifest(folder, manifest_data(
        name=dest.name, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        input_name=INPUT_NAME, output_name=OUTPUT_NAME, leads=ckpt.leads, labels=ckpt.labels, label_scheme=run.scheme.value,
        fs_hz=ckpt.preprocess.fs_hz, window_samples=ckpt.window.samples,
        model=ModelFigures("shared per-lead CAE encoder + conv fusion head", count_params(model), macs),
        preprocess=preprocess_params(ckpt.preprocess), window=config_to_dict(ckpt.window),
        source={"checkpoint": str(ckpt.path), "checkpoint_sha256": file_sha256(ckpt.path), "epoch": ckpt.epoch,
                "run_dir": str(run.run_dir), "init": ckpt.train_config.get("init_checkpoint"),
                "test_macro_f1_records": json.loads((run.run_dir / "metrics.json").read_text())["test"]["records"]["macro_f1"]
                if (run.run_dir / "metrics.json").is_file() else None,
                "complete": not run.unfinished, **({"unfinished": run.unfinished} if run.unfinished else {})},
        artefacts=artefacts,
        target=cfg.target.value,
        target_notes=list(preset.reasons),
        export_config=config_to_dict(cfg),
        opset=cfg.opset,
        versions=software_versions(),
        gate={"parity_atol": cfg.parity_atol, "max_f1_drop": cfg.max_f1_drop, "min_agreement": cfg.min_agreement, "min_f1": cfg.min_f1,
              "min_class_f1": dict(cfg.min_class_f1), "min_gate_windows": cfg.min_gate_windows, "windows": int(len(gate_idx)),
              "records": gate_records, "records_sha256": value_sha256(gate_records), "level": "window",
              "skipped_backends": skipped_backends},
        check_data={"file": CHECK_FILE, "windows": int(len(keep))},
        **({"training_records": trained.to_dict()} if trained else {}),
        recommended=preset.recommended,
    ))
    manifest.save()
    if MCU_KEY in artefacts:  # the C library against ONNX Runtime INT8 on every gate window (--check: the check windows)
        record_ort_parity(manifest, gate_x)

    reports = gate_all(manifest, gate_backends, gate_x, gate_y, reference, ckpt.labels, parity_atol=cfg.parity_atol, max_f1_drop=cfg.max_f1_drop,
                        min_agreement=cfg.min_agreement, min_f1=cfg.min_f1, min_class_f1=cfg.min_class_f1,
                        min_windows=cfg.min_gate_windows)
    for rep in reports:
        if not rep and rep.artefact == "int8":
            rep.worst_layers = quantization_loss_by_layer(fp32, folder / "model.int8.onnx", calib_x, INPUT_NAME)
    record_verdicts(manifest, reports)
    manifest.save()
    sizes = {k: artefact_bytes(manifest, k) for k in artefacts}
    table = gate_table(reports, sizes)
    log(table)
    if skipped_backends:
        log("not gated here (backend unavailable): " + "; ".join(f"{b}: {why}" for b, why in skipped_backends.items()))
    if private_key is not None:
        sign_manifest(folder, private_key)
    swap_in(folder, dest, inputs)
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

        # the repository's files are hashed into the manifest: its new bytes are signed again
        result.triton = triton_repository_from_export(folder, manifest=manifest, log=log, private_key=private_key)
    return result
