"""The accuracy gate's bookkeeping for an export: run every artefact on every backend against the
FP32 reference logits, and write the verdicts (status, recommendation) into the manifest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ecgedge.config import Backend, Precision
from ecgedge.errors import ArtefactError
from ecgedge.evaluate.compare import compare
from ecgedge.evaluate.gate import GateReport, gate_logits
from ecgedge.manifest import ArtefactStatus, Manifest, artefact_key, precision_for, runtime_of
from ecgedge.runtime.loader import runner_from_export


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


def gate_all(manifest: Manifest, backends, x, y, reference, labels, *, parity_atol: float, **thresholds) -> list[GateReport]:
    """Run every artefact on ``backends`` over windows ``x`` and gate its logits against ``reference``
    (:func:`~ecgedge.evaluate.compare.compare`, then :func:`gate_logits` with ``thresholds``); the FP32
    artefact on ONNX Runtime CPU must also stay within ``parity_atol`` of it (:func:`logit_tolerance`)."""
    reports = []
    for key, art in manifest.artefacts.items():
        precision = Precision(art["precision"])
        for backend in backends:
            if art.get("runtime", "onnx") != runtime_of(backend) or artefact_key(backend, precision) != key:
                continue
            runner = runner_from_export(manifest.folder, precision, backend, manifest=manifest, allow_rejected=True)
            logits = compare({"fp32 reference": reference, key: runner}, x).outputs[key]
            reports.append(gate_logits(key, backend.value, logits, reference, y, labels,
                                       max_logit_error=logit_tolerance(precision, backend, parity_atol), **thresholds))
    return reports


def logit_tolerance(precision: Precision, backend: Backend, parity_atol: float) -> float | None:
    """The logit tolerance an artefact is gated with: ``parity_atol`` for FP32 on ONNX Runtime CPU (the
    export's parity check, re-run); None (decisions judged, not logits) for everything else: reduced
    precision differs by design, and GPU providers may run FP32 convolutions in TF32 (ONNX Runtime's
    CUDA provider does by default on Ampere and later), which the decision thresholds judge."""
    return parity_atol if precision == Precision.fp32 and backend == Backend.ort_cpu else None


def record_verdicts(manifest: Manifest, reports: list[GateReport]) -> None:
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


def artefact_bytes(manifest: Manifest, key: str) -> int:
    """The size the gate table shows: the file's, or for the C library its constants (weights in flash), not its C text."""
    const = (manifest.artefact(key).get("library") or {}).get("const_bytes")
    return int(const) if const else manifest.path(key).stat().st_size
