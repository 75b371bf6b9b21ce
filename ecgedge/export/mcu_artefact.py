"""The MCU add-on: the C99 INT8 library as the export's ``mcu-int8`` artefact, its parity with ONNX
Runtime's INT8 model, and ``ecgedge export --mcu`` (the library added to an existing export)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from ecgedge.config import Backend, Precision
from ecgedge.errors import ArtefactError, ConfigError, GateFailed
from ecgedge.evaluate.compare import compare
from ecgedge.evaluate.gate import gate_table
from ecgedge.export.gating import ExportResult, artefact_bytes, gate_all
from ecgedge.export.mcu import MCU_DIR
from ecgedge.export.staging import export_files, staging_folder, staging_folder_for, swap_in
from ecgedge.manifest import SIGNATURE, ArtefactStatus, Manifest, artefact_key, load_manifest
from ecgedge.runtime.base import available_backends
from ecgedge.runtime.loader import runner_from_export

MCU_KEY = artefact_key(Backend.c_int8, Precision.int8)


def mcu_artefact(folder: Path, name: str, labels: list[str]) -> dict:
    """Write ``folder/mcu/`` from ``folder/model.int8.onnx``; the manifest entry of the ``mcu-int8`` artefact."""
    from ecgedge.export.mcu import c_library_from_int8_onnx

    lib = c_library_from_int8_onnx(folder / "model.int8.onnx", folder, name=name, labels=labels)
    return {"file": f"{MCU_DIR}/ecgedge_model.c", "precision": "int8", "runtime": "c", "from": "int8",
            "library": lib.to_dict(folder)}


def record_ort_parity(manifest: Manifest, windows: np.ndarray) -> None:
    """Record :func:`c_library_parity` as ``artefacts.mcu-int8.ort_int8_parity`` (or why it was skipped)."""
    reason = available_backends()[Backend.c_int8]
    manifest.artefact(MCU_KEY)["ort_int8_parity"] = {"skipped": reason} if reason else c_library_parity(manifest, windows)


def c_library_parity(manifest: Manifest, windows: np.ndarray) -> dict:
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
    swapped in. A signed export is refused when the library would be added in place (the new files
    would void its signature); written elsewhere (``out``, and always for a shipped model) the copy is a
    new, unsigned export, and says so: its manifest changes, the source's signature covers only the source.

    Raises:
        ArtefactError: no accepted INT8 model; GateFailed: the library fails the gate (written, marked rejected).
    """
    import ecgedge

    src = Path(source)
    manifest = load_manifest(src, verify=True)
    int8_status = manifest.status("int8")
    if int8_status != ArtefactStatus.accepted:
        raise ArtefactError(f"{src}: the INT8 model is {int8_status.value if int8_status else 'missing'}; "
                            "the C library is generated only from an INT8 model the gate accepted")
    if out is None:
        inside_package = Path(os.path.abspath(src)).is_relative_to(Path(ecgedge.__file__).resolve().parent)
        out = Path("export") / (manifest.data.get("name") or src.name) if inside_package else src
    dest = Path(out)
    signed = (src / SIGNATURE).exists()
    if signed and Path(os.path.abspath(dest)) == Path(os.path.abspath(src)):
        raise ConfigError(f"{src} is signed: adding files would void {SIGNATURE}; write the library to a copy (--out) "
                          "or re-export with --target mcu --sign KEY")
    if signed:
        log(f"note: {dest} is a new export with the C library added; it is not signed ({src}'s signature covers "
            "only its own manifest)")
    staged: list[Path] = []
    try:
        folder = staging_folder(dest) if Path(os.path.abspath(dest)) != Path(os.path.abspath(src)) else staging_folder_for(src)
        staged.append(folder)
        for rel in export_files(src):  # the export's own files: a user's notes stay where they are
            if rel.split("/")[0] != MCU_DIR and rel != SIGNATURE and (src / rel).is_file():
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src / rel, folder / rel)
        manifest = Manifest(folder, manifest.data)
        manifest.artefacts[MCU_KEY] = mcu_artefact(folder, Path(os.path.abspath(dest)).name, list(manifest.labels))
        manifest.save()
        data = np.load(manifest.file(manifest.data["check_data"]["file"], "check_data"))
        record_ort_parity(manifest, data["windows"])
        g = manifest.data["gate"]
        reports = gate_all(manifest, [Backend.c_int8], data["windows"], data["labels"], data["reference_logits"], manifest.labels,
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
        table = gate_table(reports, {MCU_KEY: artefact_bytes(manifest, MCU_KEY)})
        log(table)
        if not reports:
            log(f"not gated here: {available_backends()[Backend.c_int8]}")
        swap_in(folder, dest)
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
