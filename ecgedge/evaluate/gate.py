"""The accuracy gate: does a reduced-precision artefact classify as well as the FP32 model?

Each artefact runs through its real runtime on held-out windows and is compared with the FP32
PyTorch reference logits (computed at export and stored with the check windows): macro F1 and
per-class F1 against the truth, agreement of argmax decisions with the reference, and the largest
logit difference (:func:`ecgedge.evaluate.compare.compare_logits`, the one comparator; judged only
where a tolerance is given: the FP32 artefact's parity with PyTorch). A :class:`GateReport` is
truthy when it passes. torch-free, so the same gate re-runs on the device (``ecgedge export --check``).

Comparing with FP32 alone would let a weak model through (an INT8 copy of a useless model agrees
with it perfectly), so the gate also has absolute floors (macro F1, per-class F1; off by default)
and a sample-size rule: with fewer than ``min_windows`` windows it fails ("too few windows")
rather than pass on an agreement figure that one decision can swing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ecgedge.evaluate.compare import compare_logits
from ecgedge.evaluate.metrics import classification_report


@dataclass
class GateReport:
    artefact: str
    backend: str
    windows: int
    macro_f1: float
    reference_macro_f1: float
    per_class_f1: dict[str, float]
    reference_per_class_f1: dict[str, float]
    agreement: float
    max_logit_error: float
    max_f1_drop: float
    min_agreement: float
    min_f1: float = 0.0
    min_class_f1: dict[str, float] = field(default_factory=dict)
    min_windows: int = 0
    failures: list[str] = field(default_factory=list)
    worst_layers: list[dict] = field(default_factory=list)
    mean_logit_error: float = 0.0
    max_logit_tolerance: float | None = None  # judged only for FP32 parity (ExportConfig.parity_atol)

    @property
    def f1_drop(self) -> float:
        return self.reference_macro_f1 - self.macro_f1

    def __bool__(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {
            "artefact": self.artefact, "backend": self.backend, "windows": self.windows, "passed": bool(self),
            "macro_f1": self.macro_f1, "reference_macro_f1": self.reference_macro_f1, "f1_drop": self.f1_drop,
            "per_class_f1": self.per_class_f1, "reference_per_class_f1": self.reference_per_class_f1,
            "agreement": self.agreement, "max_logit_error": self.max_logit_error, "mean_logit_error": self.mean_logit_error,
            "thresholds": {"max_f1_drop": self.max_f1_drop, "min_agreement": self.min_agreement, "min_f1": self.min_f1,
                           "min_class_f1": self.min_class_f1, "min_windows": self.min_windows,
                           **({"max_logit_error": self.max_logit_tolerance} if self.max_logit_tolerance is not None else {})},
            "failures": self.failures, "worst_layers": self.worst_layers,
        }


def gate_logits(artefact: str, backend: str, logits: np.ndarray, reference_logits: np.ndarray, labels: np.ndarray,
                class_names, *, max_f1_drop: float = 0.01, min_agreement: float = 0.99, min_f1: float = 0.0,
                min_class_f1=None, min_windows: int = 0, max_logit_error: float | None = None) -> GateReport:
    """Compare candidate logits with the reference on the same windows (window-level decisions).

    Args:
        max_f1_drop, min_agreement: relative to the reference: largest macro-F1 drop, smallest
            fraction of windows with the reference's decision.
        min_f1: absolute floor on the candidate's macro F1 (0: off).
        min_class_f1: absolute floors on per-class F1, a mapping or ``(class, F1)`` pairs; class
            ``"*"`` is every class with windows here, a named class overrides it and fails when it
            has no window to be checked on.
        min_windows: fewer windows than this fail the gate ("too few windows"; 0: off).
        max_logit_error: largest allowed absolute logit difference from the reference (None: off;
            the FP32 artefact's parity with PyTorch, ``ExportConfig.parity_atol``).
    """
    labels = np.asarray(labels)
    cand = classification_report(labels, logits.argmax(1), class_names)
    ref = classification_report(labels, reference_logits.argmax(1), class_names)
    cmp = compare_logits(reference_logits, logits, max_logit_error, reference_name="fp32 reference", candidate_name=artefact)
    report = GateReport(
        artefact=artefact, backend=backend, windows=int(len(labels)),
        macro_f1=cand.macro_f1, reference_macro_f1=ref.macro_f1,
        per_class_f1={c: float(f) for c, f, s in zip(class_names, cand.per_class_f1, cand.support) if s},
        reference_per_class_f1={c: float(f) for c, f, s in zip(class_names, ref.per_class_f1, ref.support) if s},
        agreement=cmp.agreement, max_logit_error=cmp.max_abs_logit_error, mean_logit_error=cmp.mean_abs_logit_error,
        max_logit_tolerance=max_logit_error, max_f1_drop=max_f1_drop, min_agreement=min_agreement, min_f1=min_f1,
        min_class_f1=dict(min_class_f1.items() if isinstance(min_class_f1, dict) else min_class_f1 or ()), min_windows=min_windows,
    )
    if not len(labels):
        report.failures.append("no held-out windows to gate on")
    elif len(labels) < min_windows:
        report.failures.append(f"too few windows: {len(labels)} held-out windows, {min_windows} needed (one changed decision "
                               f"moves agreement by {1 / len(labels):.1%}); lower --min-gate-windows to accept fewer")
    if report.macro_f1 < min_f1:
        report.failures.append(f"macro F1 {report.macro_f1:.4f} is below the floor {min_f1}")
    floors = report.min_class_f1
    for name in sorted(set(report.per_class_f1) | set(floors) - {"*"}):
        floor = floors.get(name, floors.get("*"))
        if floor is None:
            continue
        if name not in report.per_class_f1:
            report.failures.append(f"{name} has no held-out windows: its F1 floor {floor} cannot be checked")
        elif report.per_class_f1[name] < floor:
            report.failures.append(f"{name} F1 {report.per_class_f1[name]:.4f} is below its floor {floor}")
    if report.f1_drop > max_f1_drop:
        report.failures.append(f"macro F1 {report.macro_f1:.4f} is {report.f1_drop:.4f} below FP32 {report.reference_macro_f1:.4f} (allowed {max_f1_drop})")
    if report.agreement < min_agreement:
        report.failures.append(f"agrees with FP32 on {report.agreement:.2%} of windows (required {min_agreement:.2%})")
    if len(labels) and not cmp:
        report.failures.append(f"max |logit error| vs the FP32 reference {cmp.max_abs_logit_error:.2e} exceeds the tolerance {max_logit_error:g}")
    return report


def gate_table(reports: list[GateReport], sizes: dict[str, int] | None = None) -> str:
    """Side-by-side table: the FP32 PyTorch reference first, then one row per artefact and backend."""
    if not reports:
        return "(no artefacts gated)"
    sizes = sizes or {}
    classes = list(reports[0].reference_per_class_f1)
    head = f"{'artefact':<22}{'backend':<10}{'macro F1':>9}{'ΔF1':>8}{'agree':>8}{'max|Δlogit|':>12}{'size':>10}  " + "".join(f"{c[:7]:>8}" for c in classes) + "  verdict"
    lines = [head, "-" * len(head)]
    r0 = reports[0]
    lines.append(f"{'pytorch fp32':<22}{'torch':<10}{r0.reference_macro_f1:>9.4f}{'':>8}{'':>8}{'':>12}{'':>10}  "
                 + "".join(f"{r0.reference_per_class_f1.get(c, float('nan')):>8.3f}" for c in classes) + "  reference")
    for r in reports:
        size = sizes.get(r.artefact)
        size_s = f"{size / 1024:.1f} KiB" if size else ""
        lines.append(f"{r.artefact:<22}{r.backend:<10}{r.macro_f1:>9.4f}{-r.f1_drop:>+8.4f}{r.agreement:>8.2%}{r.max_logit_error:>12.2e}{size_s:>10}  "
                     + "".join(f"{r.per_class_f1.get(c, float('nan')):>8.3f}" for c in classes) + f"  {'PASS' if r else 'FAIL'}")
    return "\n".join(lines)
