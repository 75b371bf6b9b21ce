"""The C99 INT8 library on an emulated Cortex-M4F: flash, RAM and instructions per window, per model.

    pytest benchmarks/test_mcu_size.py --benchmark-only --benchmark-json mcu.json
    pytest benchmarks/test_mcu_size.py --benchmark-only --export-dir export/NAME   # also a model of your own

Each case adds the C library to a copy of the export (``ecgedge export --mcu``), cross-compiles it
(``arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -O2``) and runs it
on the check windows under ``qemu-system-arm -M mps2-an386 -icount shift=0``
(:func:`ecgedge.export.mcu_qemu.cortex_m4_report`). ``extra_info`` records flash (text + rodata),
RAM (data + bss + stack high-water mark), instructions per window (largest, mean) and per layer,
and milliseconds at 64 / 168 MHz at the stated CPI, so a change that bloats any of them shows from
commit to commit. The timed quantity is the whole build-and-emulate run (one round); nothing here
asserts a time or a size (the size budgets are asserted in tests/test_mcu.py).

Multi-lead models are skipped: their float input alone (12 x 2048 x 4 B = 96 KiB) exceeds the
64 KiB RAM the harness's linker script allows.
"""

from __future__ import annotations

import numpy as np
import pytest

from ecgedge.export.mcu_qemu import cortex_m4_report, toolchain_or_reason
from ecgedge.export.mcu_artefact import mcu_library_for_export
from ecgedge.hashing import file_sha256
from ecgedge.manifest import MANIFEST, load_manifest
from ecgedge.runtime.base import host_compiler_or_reason
from ecgedge.shipped import resolve_source


def _models(config) -> list[str]:
    given = config.getoption("--export-dir")
    return ["cinc2017-rhythm"] + ([given] if given else [])


def pytest_generate_tests(metafunc):
    if "model" in metafunc.fixturenames:
        metafunc.parametrize("model", _models(metafunc.config))


def test_mcu_size(benchmark, model, tmp_path):
    for reason in (host_compiler_or_reason(), toolchain_or_reason()):
        if reason:
            pytest.skip(reason)
    source = resolve_source(model)
    if len(load_manifest(source).leads) != 1:
        pytest.skip(f"{model}: multi-lead; its float input does not fit the harness's 64 KiB RAM")
    folder = mcu_library_for_export(source, out=tmp_path / "export", log=lambda *_: None).folder
    windows = np.load(folder / "check_windows.npz")["windows"]
    report = benchmark.pedantic(cortex_m4_report, args=(folder / "mcu", windows), rounds=1, iterations=1)
    d = report.to_dict()
    benchmark.group = "mcu: Cortex-M4F under QEMU (build + run over the check windows)"
    benchmark.extra_info.update(
        model=model, manifest_sha256=file_sha256(folder / MANIFEST), windows=d["windows"], board=d["board"], compiler=d["compiler"],
        flash_bytes=d["flash_bytes"], ram_bytes=d["ram_bytes"], stack_high_water_bytes=d["stack_high_water_bytes"],
        library_sections=d["library_sections"], instructions_per_window_max=d["instructions_per_window"]["max"],
        instructions_per_window_mean=d["instructions_per_window"]["mean"], instructions_per_layer=d["instructions_per_layer"],
        method=d["instruction_count_method"], cpi_assumed=d["cpi_assumed"], ms_per_window=d["ms_per_window"])
