"""``ecgedge export --check``: re-verify an export's hashes and re-run its gate on the stored check
windows, on the backends available here (no torch, no data set: it runs on the device itself)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ecgedge.config import Backend
from ecgedge.errors import ArtefactError, GateFailed
from ecgedge.evaluate.gate import gate_table
from ecgedge.export.gating import ExportResult, artefact_bytes, gate_all
from ecgedge.export.mcu_artefact import MCU_KEY, c_library_parity
from ecgedge.manifest import MANIFEST, load_manifest
from ecgedge.runtime.base import available_backends


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
    reports = gate_all(manifest, usable, data["windows"], data["labels"], data["reference_logits"], manifest.labels,
                        parity_atol=manifest.parity_atol,
                        max_f1_drop=g["max_f1_drop"], min_agreement=g["min_agreement"], min_f1=g.get("min_f1", 0.0),
                        min_class_f1=g.get("min_class_f1") or {})
    sizes = {k: artefact_bytes(manifest, k) for k in manifest.artefacts}
    table = gate_table(reports, sizes)
    log(f"{manifest.folder}: all {len(manifest.data['files'])} files match their sha256")
    log(table)
    if MCU_KEY in manifest.artefacts and Backend.c_int8 in usable and Backend.ort_cpu in usable:
        parity = c_library_parity(manifest, data["windows"])
        log(f"c-int8 vs ort-cpu int8: identical int8 logits on {parity['windows_identical']}/{parity['windows']} check windows, "
            f"largest difference {parity['max_steps']} output step(s)")
        for rep in (r for r in reports if r.artefact == MCU_KEY and parity["max_steps"] > 1):
            rep.failures.append(f"the C library differs from ONNX Runtime INT8 by {parity['max_steps']} output steps (at most 1 allowed)")
    result = ExportResult(manifest.folder, manifest, reports, table)
    if not result.passed:
        raise GateFailed("re-check failed: " + "; ".join(f"{r.artefact}@{r.backend}: {'; '.join(r.failures)}" for r in reports if not r))
    return result
