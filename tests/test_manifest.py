"""ecgedge.manifest's policies: artefact status, which precision runs where (precision_for), the parity tolerance."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecgedge.config import PARITY_ATOL, Backend, ExportConfig, Precision
from ecgedge.errors import ArtefactError
from ecgedge.manifest import ArtefactStatus, Manifest, artefact_key, passed_over, precision_for


def manifest(statuses: dict[str, str], recommended: dict[str, str] | None = None) -> Manifest:
    """An in-memory manifest: precision_for reads statuses and recommendations, never files."""
    data = {"artefacts": {k: {"file": f"{k}.onnx", "status": s} for k, s in statuses.items()}}
    if recommended is not None:
        data["recommended"] = recommended
    return Manifest(Path("export/x"), data)


def test_status_values_are_the_manifest_strings():
    assert [s.value for s in ArtefactStatus] == ["reference", "accepted", "rejected", "not gated"]
    assert {s for s in ArtefactStatus if s.usable} == {ArtefactStatus.reference, ArtefactStatus.accepted}
    assert manifest({"int8": "accepted"}).status("int8") is ArtefactStatus.accepted and manifest({}).status("int8") is None
    with pytest.raises(ArtefactError, match="has status 'fine'"):
        manifest({"int8": "fine"}).status("int8")


def test_artefact_keys():
    assert artefact_key(Backend.ort_cuda, Precision.fp16) == "fp16" and artefact_key(Backend.tensorrt, Precision.int8) == "trt-int8"


@pytest.mark.parametrize("statuses, recommended, backend, expected", [
    ({"fp32": "reference", "int8": "accepted", "fp16": "accepted"}, None, Backend.ort_cpu, Precision.int8),
    ({"fp32": "reference", "int8": "rejected", "fp16": "accepted"}, None, Backend.ort_cpu, Precision.fp32),  # no FP16 on the CPU provider
    ({"fp32": "reference", "int8": "not gated"}, None, Backend.ort_cpu, Precision.fp32),
    ({"fp32": "reference", "int8": "accepted", "fp16": "accepted"}, None, Backend.ort_cuda, Precision.fp16),
    ({"fp32": "reference", "int8": "rejected", "fp16": "accepted"}, None, Backend.ort_trt, Precision.fp16),
    ({"fp32": "reference", "trt-int8": "rejected", "trt-fp16": "accepted"}, None, Backend.tensorrt, Precision.fp16),
    # the manifest's recommendation wins where the gate let it through, and only there
    ({"fp32": "reference", "int8": "accepted"}, {"ort-cpu": "fp32"}, Backend.ort_cpu, Precision.fp32),
    ({"fp32": "reference", "int8": "accepted", "fp16": "rejected"}, {"ort-cpu": "fp16"}, Backend.ort_cpu, Precision.int8),
    ({"fp32": "reference", "int8": "accepted", "fp16": "accepted"}, {"ort-cuda": "int8"}, Backend.ort_cuda, Precision.int8),
])
def test_precision_for(statuses, recommended, backend, expected):
    assert precision_for(manifest(statuses, recommended), backend) == expected


def test_nothing_usable_names_every_status():
    m = manifest({"fp32": "rejected", "int8": "rejected"})
    with pytest.raises(ArtefactError, match=r"export/x has no artefact the accuracy gate accepted for ort-cpu \(int8: rejected, fp32: rejected\)$"):
        precision_for(m, Backend.ort_cpu)


def test_passed_over_says_why_not_the_first_choice():
    m = manifest({"fp32": "reference", "int8": "rejected"})
    assert passed_over(m, Backend.ort_cpu, Precision.fp32) == "int8 is rejected"
    assert passed_over(m, Backend.ort_trt, Precision.fp32) == "int8 is rejected, fp16 is missing"
    assert passed_over(m, Backend.ort_cpu, Precision.int8) == ""


@pytest.mark.parametrize("data, expected", [
    ({"gate": {"parity_atol": 5e-4}, "artefacts": {"fp32": {"file": "m.onnx", "parity": {"tolerance": 1e-3}}}}, 5e-4),
    # written before gate.parity_atol: the FP32 parity check's own tolerance, else the default
    ({"gate": {}, "artefacts": {"fp32": {"file": "m.onnx", "parity": {"tolerance": 2e-3}}}}, 2e-3),
    ({"gate": {}, "artefacts": {"fp32": {"file": "m.onnx"}}}, PARITY_ATOL),
    ({"artefacts": {"int8": {"file": "m.onnx"}}}, PARITY_ATOL),
])
def test_parity_tolerance_is_read_from_the_manifest(data, expected):
    assert Manifest(Path("export/x"), data).parity_atol == expected


def test_parity_tolerance_default_is_the_export_configs():
    assert ExportConfig().parity_atol == PARITY_ATOL == 1e-3


@pytest.mark.parametrize("bad", [0, -1e-3, "1e-3", None, True])
def test_a_bad_parity_tolerance_is_refused(bad):
    m = Manifest(Path("export/x"), {"gate": {"parity_atol": bad}, "artefacts": {"fp32": {"file": "m.onnx"}}})
    with pytest.raises(ArtefactError, match="gate.parity_atol is .*; expected a positive number"):
        m.parity_atol
