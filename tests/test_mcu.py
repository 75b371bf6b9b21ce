"""The C99 INT8 library (``ecgedge export --target mcu`` / ``--mcu``): generated from the gated INT8
model, bit-exact with ONNX Runtime on the host, gated as backend ``c-int8``, and on an emulated
Cortex-M4F (QEMU mps2-an386) the same outputs within the flash and RAM budgets.

Tolerances: the library's int8 logits must *equal* ONNX Runtime's (0 output steps) on every check
window: its requantization reproduces ONNX Runtime's float32 arithmetic in integers; the export's
own comparison allows one step (mean over time may round differently), these tests hold it to zero.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess

import numpy as np
import pytest
from typer.testing import CliRunner

from ecgedge.cli.main import app
from ecgedge.config import Backend, ExportConfig, Precision, Target
from ecgedge.errors import ArtefactError, BackendUnavailable, ConfigError
from ecgedge.export.mcu import MCU_DIR, c_library_from_int8_onnx, kernel_sources, plan_from_int8_onnx
from ecgedge.export.mcu_qemu import cortex_m4_check, cortex_m4_report, toolchain_or_reason
from ecgedge.export.check import check_export
from ecgedge.export.mcu_artefact import MCU_KEY, mcu_library_for_export
from ecgedge.export.pipeline import main_export
from ecgedge.manifest import artefact_key, load_manifest
from ecgedge.runtime import runner_from_export
from ecgedge.runtime.c_runner import HOST_CFLAGS, host_compiler, host_compiler_or_reason
from ecgedge.shipped import resolve_source

needs_cc = pytest.mark.skipif(host_compiler_or_reason() is not None, reason=str(host_compiler_or_reason()))
needs_arm = pytest.mark.skipif(toolchain_or_reason() is not None, reason=str(toolchain_or_reason()))

SHIPPED = "cinc2017-rhythm"
FLASH_LIMIT, RAM_LIMIT = 256 * 1024, 64 * 1024  # the targets for the shipped single-lead classifier


@pytest.fixture(scope="module")
def shipped_mcu(tmp_path_factory):
    """The shipped classifier's export with its C library added (``export --mcu``), in a temporary folder."""
    if host_compiler_or_reason():
        pytest.skip(host_compiler_or_reason())
    out = tmp_path_factory.mktemp("mcu") / SHIPPED
    return mcu_library_for_export(resolve_source(SHIPPED), out=out, log=lambda *_: None)


def _int8(folder, backend, windows):
    with runner_from_export(folder, Precision.int8, backend, threads=1) as r:
        return r.infer(windows)


def test_plan_of_the_shipped_model():
    """The shipped QDQ graph maps onto the kernels: FP32 polyphase first convolution, 9 INT8 convolutions,
    mean and max over time, concatenation, fully connected."""
    plan = plan_from_int8_onnx(resolve_source(SHIPPED) / "model.int8.onnx")
    assert [la.kind for la in plan.layers] == ["conv_f32"] + ["conv"] * 9 + ["mean", "max", "concat", "gemm"]
    assert plan.leads == 1 and plan.input_samples == 2048 and plan.input_channels == 2  # the polyphase form reads the raw window
    assert plan.out_tensor.shape == (4,)
    dilations = [la.params["dilation"] for la in plan.layers if la.kind == "conv"]
    assert dilations[-4:] == [1, 2, 4, 8]


@needs_cc
def test_shipped_library_is_bit_exact_with_onnx_runtime_int8(shipped_mcu):
    folder = shipped_mcu.folder
    data = np.load(folder / "check_windows.npz")
    ort_logits, c_logits = _int8(folder, Backend.ort_cpu, data["windows"]), _int8(folder, Backend.c_int8, data["windows"])
    np.testing.assert_array_equal(c_logits, ort_logits)  # tolerance 0: identical int8 logits, dequantized alike
    parity = shipped_mcu.manifest.artefacts[MCU_KEY]["ort_int8_parity"]
    assert parity["max_steps"] == 0 and parity["windows_identical"] == parity["windows"] == len(data["windows"])


@needs_cc
def test_the_gate_runs_the_library_as_backend_c_int8(shipped_mcu):
    m = load_manifest(shipped_mcu.folder)
    art = m.artefacts[MCU_KEY]
    assert MCU_KEY == artefact_key(Backend.c_int8, Precision.int8) == "mcu-int8"
    assert art["status"] == "accepted" and art["runtime"] == "c" and art["gate"]["c-int8"]["agreement"] == 1.0
    assert m.data["recommended"]["c-int8"] == "int8"
    # every file of the library is hashed like every artefact
    assert {f"{MCU_DIR}/{f}" for f in ("ecgedge_model.c", "ecgedge_model.h", *kernel_sources())} <= set(m.data["files"])
    assert art["library"]["arena_bytes"] <= 32 * 1024
    # export --check re-runs it beside ONNX Runtime, and says the two are identical
    lines: list[str] = []
    res = check_export(shipped_mcu.folder, log=lines.append)
    assert res.passed and {(r.artefact, r.backend) for r in res.reports} >= {("int8", "ort-cpu"), (MCU_KEY, "c-int8")}
    assert any("identical int8 logits on 64/64" in line for line in lines)


@needs_cc
def test_a_tampered_library_file_is_refused(shipped_mcu, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(shipped_mcu.folder, copy)
    kernels = copy / MCU_DIR / "ecgedge_kernels.c"
    kernels.write_text(kernels.read_text().replace("q++;", "q += 0;"))
    with pytest.raises(ArtefactError, match="ecgedge_kernels.c"):
        load_manifest(copy)
    (copy / MCU_DIR / "extra.c").write_text("int x;\n")
    with pytest.raises(ArtefactError, match="extra.c: model file not listed"):
        load_manifest(copy)


def test_the_library_comes_only_from_an_accepted_int8_model_and_never_voids_a_signature(tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(resolve_source(SHIPPED), copy)  # signed by the project key
    with pytest.raises(ConfigError, match="is signed"):
        mcu_library_for_export(copy)
    (copy / "manifest.sig").unlink()
    m = json.loads((copy / "manifest.json").read_text())
    m["artefacts"]["int8"]["status"] = "rejected"
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtefactError, match="the INT8 model is rejected"):
        mcu_library_for_export(copy)
    assert not (copy / MCU_DIR).exists()


def test_old_manifests_without_a_library_still_load_and_check():
    """The shipped manifest predates the C library: it loads, and --check on c-int8 gates nothing."""
    m = load_manifest(resolve_source(SHIPPED))
    assert MCU_KEY not in m.artefacts
    res = check_export(resolve_source(SHIPPED), backends=[Backend.c_int8], log=lambda *_: None)
    assert res.reports == []


def test_export_refuses_the_c_library_without_a_c_compiler(shipped_mcu, tmp_path, monkeypatch):
    monkeypatch.setenv("CC", "no-such-cc")
    with pytest.raises(BackendUnavailable, match="no C compiler 'no-such-cc'"):
        with runner_from_export(shipped_mcu.folder, Precision.int8, Backend.c_int8):
            pass
    lines: list[str] = []
    check_export(shipped_mcu.folder, log=lines.append)  # skipped with its reason, the rest still checked
    assert any(line.startswith("skipping c-int8: no C compiler") for line in lines)


@needs_cc
def test_requantization_reproduces_onnx_runtimes_float32_arithmetic(tmp_path):
    """ecgedge_requantize(acc, m, shift) == rint(float32(acc) * float32 scale) + zp, clamped, for random
    accumulators and scales, ties included (numpy float32 multiplies as SSE does; rint ties to even)."""
    src = tmp_path / "k.c"
    src.write_text(kernel_sources()["ecgedge_kernels.c"])
    (tmp_path / "ecgedge_kernels.h").write_text(kernel_sources()["ecgedge_kernels.h"])
    lib = tmp_path / "libk.so"
    subprocess.run([host_compiler(), *HOST_CFLAGS, "-fPIC", "-shared", str(src), "-lm", "-o", str(lib)], check=True)
    k = ctypes.CDLL(str(lib))
    k.ecgedge_requantize.restype = ctypes.c_int32
    k.ecgedge_requantize.argtypes = [ctypes.c_int32, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32]
    rng = np.random.default_rng(0)
    from ecgedge.export.mcu import _significand

    for _ in range(3000):
        scale = np.float32(rng.uniform(1e-4, 5e-2))
        m, shift = _significand(scale)
        # accumulators near ties (k + 0.5) / scale as well as anywhere, and beyond 2^24 (float32 rounds them)
        acc = int(rng.choice([rng.integers(-2**20, 2**20), np.round((rng.integers(-120, 120) + 0.5) / scale), rng.integers(2**24, 2**26)]))
        zp = int(rng.integers(-128, 128))
        want = int(np.clip(np.rint(np.float32(acc) * scale) + zp, -128, 127))
        assert k.ecgedge_requantize(acc, m, shift, zp, -128, 127) == want, (acc, float(scale), zp)


def test_unsupported_graphs_are_refused_with_the_node(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("ecg", TensorProto.FLOAT, ["batch", 1, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1, 64])
    model = helper.make_model(helper.make_graph([helper.make_node("Sigmoid", ["ecg"], ["y"], name="odd_sigmoid")], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(ArtefactError, match="odd_sigmoid: ONNX op Sigmoid has no MCU kernel"):
        c_library_from_int8_onnx(tmp_path / "m.onnx", tmp_path, name="x", labels=["a"])


@needs_cc
def test_export_target_mcu_on_a_12_lead_run(clf_run, tmp_path):
    """The full export path on the generated 12-lead classifier: the shared encoder runs once per lead."""
    res = main_export(ExportConfig(source=str(clf_run.run_dir), out=str(tmp_path / "e"), target=Target.mcu, min_gate_windows=10),
                      progress=False, log=lambda *_: None)
    art = res.manifest.artefacts[MCU_KEY]
    assert res.passed and art["status"] == "accepted" and art["library"]["input"]["leads"] == 12
    assert art["ort_int8_parity"]["max_steps"] == 0 and art["ort_int8_parity"]["max_abs_logit_error"] == 0.0
    assert {r.backend for r in res.reports} == {"ort-cpu", "c-int8"}
    assert "for (lead = 0; lead < 12; lead++)" in (res.folder / MCU_DIR / "ecgedge_model.c").read_text()


@needs_cc
def test_cli_export_mcu_on_the_shipped_model(tmp_path):
    res = CliRunner().invoke(app, ["export", "--mcu", SHIPPED, "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    assert "c-int8" in res.output and "PASS" in res.output and "C library:" in res.output
    assert json.loads((tmp_path / "m" / "manifest.json").read_text())["artefacts"][MCU_KEY]["status"] == "accepted"
    assert (tmp_path / "m" / MCU_DIR / "ecgedge_model.h").read_text().startswith("/* m: generated by ecgedge.export.mcu")


@needs_arm
@pytest.mark.slow
def test_cortex_m4_under_qemu_matches_the_host_within_budget(shipped_mcu):
    """Cross-compiled for the Cortex-M4F and run on QEMU's mps2-an386 over all check windows: the host's
    and ONNX Runtime's int8 logits, flash <= 256 KiB and RAM <= 64 KiB (instruction counts are recorded,
    not asserted: benchmarks/test_mcu_size.py)."""
    lines: list[str] = []
    rep = cortex_m4_check(shipped_mcu.folder, log=lines.append)  # raises when any window differs from the host build
    assert "identical to the host build on 64/64 windows, to ONNX Runtime INT8 on 64/64" in "\n".join(lines)
    assert rep.flash_bytes <= FLASH_LIMIT and rep.ram_bytes <= RAM_LIMIT
    assert rep.instructions_per_tick == 40  # QEMU: 1 ns per instruction, SysTick at 25 MHz
    assert len(rep.layer_ticks) == 14 and rep.stack_bytes > 0


@needs_arm
def test_a_small_image_on_qemu_equals_the_host(shipped_mcu):
    """The report's pieces on two windows: outputs equal the host build's, sections read from the linked image."""
    windows = np.load(shipped_mcu.folder / "check_windows.npz")["windows"][:2]
    rep = cortex_m4_report(shipped_mcu.folder / MCU_DIR, windows)
    with runner_from_export(shipped_mcu.folder, Precision.int8, Backend.c_int8) as r:
        np.testing.assert_array_equal(rep.outputs, r.infer_int8(windows))
    assert rep.sections[".rodata"] > 190_000 and ".check_data" not in rep.sections  # the weights; the test windows left out
