"""One comparator: run models on the same windows and compare each one's logits with the first's.

Polygraphy's ``Comparator`` reduced to what ecgedge needs: :func:`compare` runs every runner on the
same windows (activating the ones not yet active) and compares each candidate with the reference
(the first entry) through :func:`compare_logits`. Every logit comparison in ecgedge goes through
here: the export's parity check (FP32 ONNX vs PyTorch, ``ExportConfig.parity_atol``), the accuracy
gate (each artefact vs the FP32 reference, :mod:`ecgedge.evaluate.gate`) and the quantizer's tests.

An entry may be a runner (:class:`~ecgedge.runtime.base.Runner`: numpy windows in, logits out) or
an array of logits already computed on those windows, e.g. the PyTorch reference stored with an
export's check windows: this module imports neither torch nor a runtime.

    result = compare({"pytorch": reference_logits, "onnx fp32": runner}, windows, tolerance=1e-3)
    if not result:
        print(result.comparisons[0].to_dict())
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ecgedge.errors import ShapeMismatch

# Windows per inference call: the batch every backend's profile admits (TensorRT engines are built
# for batches of 1..64 by default, ExportConfig.batch_profile).
BATCH = 64


@dataclass(frozen=True)
class Comparison:
    """One candidate's logits against the reference's on the same windows; truthy when it passes.

    ``max_abs_logit_error`` / ``mean_abs_logit_error``: over every window and class; ``agreement``:
    fraction of windows whose argmax decision equals the reference's (NaN without windows);
    ``tolerance``: the largest ``max_abs_logit_error`` that passes (None: logits are not judged,
    e.g. INT8, whose decisions the gate judges instead).
    """

    reference: str
    candidate: str
    windows: int
    max_abs_logit_error: float
    mean_abs_logit_error: float
    agreement: float
    tolerance: float | None = None

    @property
    def passed(self) -> bool:
        # NaN logits compare False: a candidate that returns NaN never passes
        return self.tolerance is None or bool(self.max_abs_logit_error <= self.tolerance)

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict:
        """The manifest's form (``artefacts.fp32.parity``)."""
        return {"reference": self.reference, "candidate": self.candidate, "windows": self.windows,
                "max_abs_logit_error": self.max_abs_logit_error, "mean_abs_logit_error": self.mean_abs_logit_error,
                "agreement": self.agreement, "tolerance": self.tolerance, "passed": self.passed}

    def describe(self) -> str:
        """One line: ``int8 vs fp32: max |logit error| 3.1e-02 (tolerance 1e-03), agreement 99.2 % on 256 windows``."""
        tol = f" (tolerance {self.tolerance:g})" if self.tolerance is not None else ""
        return (f"{self.candidate} vs {self.reference}: max |logit error| {self.max_abs_logit_error:.2e}{tol}, "
                f"agreement {self.agreement:.1%} on {self.windows} windows")


@dataclass
class CompareResult:
    """What :func:`compare` ran and found; truthy when every comparison passes."""

    outputs: dict[str, np.ndarray]  # name -> logits (windows, classes), in the order given
    comparisons: list[Comparison] = field(default_factory=list)  # each candidate vs the reference

    @property
    def passed(self) -> bool:
        return all(self.comparisons)

    def __bool__(self) -> bool:
        return self.passed

    def __getitem__(self, candidate: str) -> Comparison:
        for c in self.comparisons:
            if c.candidate == candidate:
                return c
        raise KeyError(candidate)


def compare_logits(reference: np.ndarray, candidate: np.ndarray, tolerance: float | None = None, *,
                   reference_name: str = "reference", candidate_name: str = "candidate") -> Comparison:
    """Compare two (windows, classes) logit arrays computed on the same windows.

    Errors are computed in float64 (an FP16 artefact's logits are float32 already; the reference's
    may be either). ``tolerance``: largest allowed max absolute logit error (None: not judged).

    Raises:
        ShapeMismatch: the arrays' shapes differ (not the same windows, or not the same classes).
    """
    ref, cand = np.asarray(reference), np.asarray(candidate)
    if len(ref) == len(cand) == 0:  # no windows: nothing ran, nothing to judge (classes may be unknown)
        return Comparison(reference_name, candidate_name, 0, 0.0, 0.0, float("nan"), tolerance)
    if ref.shape != cand.shape or ref.ndim != 2:
        raise ShapeMismatch(f"{candidate_name} logits have shape {cand.shape}; {reference_name}'s have {ref.shape} "
                            "(expected the same (windows, classes) for both)")
    n = len(ref)
    err = np.abs(ref.astype(np.float64) - cand.astype(np.float64))
    return Comparison(reference_name, candidate_name, n,
                      max_abs_logit_error=float(err.max()) if err.size else 0.0,
                      mean_abs_logit_error=float(err.mean()) if err.size else 0.0,
                      agreement=float((ref.argmax(1) == cand.argmax(1)).mean()),
                      tolerance=tolerance)


def logits_of(model, windows: np.ndarray, *, batch: int = BATCH) -> np.ndarray:
    """``model``'s logits for ``windows``: an array is returned as it is (already computed on them);
    a runner is run in batches of ``batch``, activated for the call when it is not active."""
    if isinstance(model, np.ndarray):
        if len(model) != len(windows):
            raise ShapeMismatch(f"stored logits for {len(model)} windows; comparing on {len(windows)} windows")
        return model
    if not getattr(model, "active", True):
        with model:
            return logits_of(model, windows, batch=batch)
    if not len(windows):
        return np.zeros((0, 0), dtype=np.float32)  # no window to learn the number of classes from
    return np.concatenate([model.infer(windows[i:i + batch]) for i in range(0, len(windows), batch)])


def compare(runners: Mapping[str, object], windows: np.ndarray, tolerance: float | None = None, *, batch: int = BATCH) -> CompareResult:
    """Run every entry of ``runners`` on ``windows``; compare each with the first (the reference).

    Args:
        runners: name -> runner (``infer(windows) -> logits``; activated for the call unless active)
            or precomputed logits on ``windows``; at least two entries, the first is the reference.
        windows: (n, leads, samples) float32, normalised as the model expects.
        tolerance: largest allowed max absolute logit error of every candidate (None: not judged;
            decisions are then the caller's to judge from ``agreement``).
        batch: windows per inference call.

    Returns:
        :class:`CompareResult`: the logits of each entry, one :class:`Comparison` per candidate.
    """
    if len(runners) < 2:
        raise ValueError(f"compare needs a reference and at least one candidate, got {list(runners)}")
    outputs = {name: logits_of(model, windows, batch=batch) for name, model in runners.items()}
    (ref_name, ref), *rest = outputs.items()
    return CompareResult(outputs, [compare_logits(ref, out, tolerance, reference_name=ref_name, candidate_name=name) for name, out in rest])
