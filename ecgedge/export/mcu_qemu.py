"""The generated C library on an emulated Cortex-M4F: cross-compile, run under QEMU, measure.

:func:`cortex_m4_report` builds the export's ``mcu/`` sources with ``arm-none-eabi-gcc -mcpu=cortex-m4
-mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -O2`` into a bare-metal image for QEMU's ``mps2-an386``
board (start-up, linker script and harness in ``ecgedge/export/mcu_c/cortex_m4/``; the check windows
linked in from ``check_windows.npz``), runs it with ``qemu-system-arm -icount shift=0`` and
semihosting, and returns:

- the int8 logits of every check window (to compare with the host build and ONNX Runtime);
- flash (``.vectors + .text + .rodata + .ARM.exidx + .data`` initialisers) and RAM (``.data + .bss``
  + the stack's high-water mark, read from a painted stack) of the linked image, from
  ``arm-none-eabi-size -A``, the check windows' own section left out; and the library's own objects;
- instructions per window: with ``-icount shift=0`` each guest instruction advances QEMU's virtual
  clock by exactly 1 ns, and SysTick counts that clock (25 MHz on this board), so ticks are
  instructions / 40; the harness times a loop of known length (2 x 10^6 instructions) to measure
  that ratio rather than assume it.

Needs ``gcc-arm-none-eabi``, ``libnewlib-arm-none-eabi`` and ``qemu-system-arm`` (Debian packages):
:func:`toolchain_or_reason` says which is missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ecgedge.errors import ArtefactError, BackendUnavailable

ARM_CFLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2", "-std=c99", "-Wall", "-Wextra",
              "-ffunction-sections", "-fdata-sections", "-ffp-contract=off")
QEMU_MACHINE = "mps2-an386"
CALIBRATION_INSTRUCTIONS = 2_000_000  # the harness's loop: 10^6 iterations of subs + bne
FLASH_SECTIONS = (".vectors", ".text", ".rodata", ".ARM.exidx", ".data")
RAM_SECTIONS = (".data", ".bss")
# Stated CPI for the millisecond estimates: the Cortex-M4 issues one instruction per cycle except
# loads, multiplies with accumulate and taken branches; 1.25 cycles per instruction is a typical
# figure for int8 MAC loops running from zero-wait-state memory (flash wait states on a 168 MHz part
# are hidden by the ART accelerator for sequential code).
CPI = 1.25


def toolchain_or_reason() -> str | None:
    """None where arm-none-eabi-gcc, newlib and qemu-system-arm are installed, else what to install."""
    missing = [tool for tool in ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm") if shutil.which(tool) is None]
    if missing:
        return (f"{', '.join(missing)} not found: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm")
    return None


@dataclass
class CortexM4Report:
    """What one QEMU run measured; ``outputs`` are int8 logits (windows, classes)."""

    outputs: np.ndarray
    ticks: np.ndarray
    instructions_per_tick: float
    stack_bytes: int
    sections: dict[str, int]
    library_sections: dict[str, int]
    command: str = ""
    compiler: str = ""
    layer_ticks: list[int] = field(default_factory=list)  # first window, per layer of the generated run function

    @property
    def instructions(self) -> np.ndarray:
        return self.ticks * self.instructions_per_tick

    @property
    def flash_bytes(self) -> int:
        return sum(self.sections.get(s, 0) for s in FLASH_SECTIONS)

    @property
    def ram_bytes(self) -> int:
        return sum(self.sections.get(s, 0) for s in RAM_SECTIONS) + self.stack_bytes

    def ms_at(self, mhz: float) -> float:
        return float(self.instructions.max()) * CPI / (mhz * 1e3)

    def to_dict(self) -> dict:
        ins = self.instructions
        return {"board": f"qemu-system-arm -M {QEMU_MACHINE} (Cortex-M4F)", "compiler": self.compiler, "cflags": " ".join(ARM_CFLAGS),
                "flash_bytes": self.flash_bytes, "ram_bytes": self.ram_bytes, "stack_high_water_bytes": self.stack_bytes,
                "sections": self.sections, "library_sections": self.library_sections,
                "instructions_per_window": {"max": int(ins.max()), "mean": float(ins.mean()), "min": int(ins.min())},
                "instruction_count_method": "qemu -icount shift=0 (1 ns of virtual time per instruction) + SysTick, "
                                            f"{self.instructions_per_tick:g} instructions per tick (measured on a known loop)",
                "cpi_assumed": CPI, "ms_per_window": {"64 MHz": self.ms_at(64), "168 MHz": self.ms_at(168)},
                "instructions_per_layer": [int(t * self.instructions_per_tick) for t in self.layer_ticks],
                "windows": int(len(ins))}


def _run(cmd: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if res.returncode:
        raise ArtefactError(f"{what} failed (exit {res.returncode}): {' '.join(cmd)}\n{(res.stderr or res.stdout).strip()[-2000:]}")
    return res


def _sections(elf: Path) -> dict[str, int]:
    out = _run(["arm-none-eabi-size", "-A", str(elf)], "arm-none-eabi-size").stdout
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\.\S+)\s+(\d+)\s+\d+", out, re.M)}


def _berkeley(objects: list[Path]) -> dict[str, int]:
    out = _run(["arm-none-eabi-size", "-t", *map(str, objects)], "arm-none-eabi-size").stdout
    text, data, bss = (int(v) for v in out.strip().splitlines()[-1].split()[:3])
    return {"text+rodata": text, "data": data, "bss": bss}


def build_cortex_m4(sources: list[Path], include: Path, windows: np.ndarray, workdir: Path) -> tuple[Path, dict[str, int]]:
    """Cross-compile the library and the QEMU harness with ``windows`` (n, samples) float32 linked in.

    Returns the ELF and the library objects' ``size`` (text+rodata, data, bss)."""
    reason = toolchain_or_reason()
    if reason:
        raise BackendUnavailable(reason)
    support = Path(str(resources.files("ecgedge.export") / "mcu_c" / "cortex_m4"))
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "windows.bin").write_bytes(np.ascontiguousarray(windows, np.float32).tobytes())
    (workdir / "check_data.c").write_text(
        "#include <stdint.h>\n"
        f"const uint32_t ecgedge_check_count = {len(windows)}u;\n"
        '__asm__(".section .check_data,\\"a\\"\\n.balign 4\\n.global ecgedge_check_windows\\n'
        'ecgedge_check_windows:\\n.incbin \\"windows.bin\\"\\n.text\\n");\n')
    objects = []
    for src in [*sources, support / "startup.c", support / "qemu_check.c", workdir / "check_data.c"]:
        obj = workdir / (Path(src).stem + ".o")
        hook = ["-DECGEDGE_LAYER_DONE(i)=ecgedge_layer_done(i)", "-include", str(support / "layer_hook.h")] \
            if Path(src).name == "ecgedge_model.c" else []
        _run(["arm-none-eabi-gcc", *ARM_CFLAGS, *hook, f"-I{include}", f"-I{support}", "-c", str(src), "-o", str(obj)],
             f"arm-none-eabi-gcc {Path(src).name}", cwd=workdir)
        objects.append(obj)
    elf = workdir / "check.elf"
    _run(["arm-none-eabi-gcc", *ARM_CFLAGS, "-nostartfiles", "--specs=nano.specs", f"-T{support / 'mps2_an386.ld'}",
          "-Wl,--gc-sections", *map(str, objects), "-lm", "-o", str(elf)], "linking the Cortex-M4 image", cwd=workdir)
    return elf, _berkeley(objects[:len(sources)])


def run_qemu(elf: Path, *, timeout_s: float = 600) -> tuple[np.ndarray, np.ndarray, int, int, str, list[int]]:
    """Run ``elf`` on QEMU's mps2-an386; returns (int8 outputs, ticks per window, calibration ticks, stack bytes,
    command, ticks per layer of the first window)."""
    cmd = ["qemu-system-arm", "-M", QEMU_MACHINE, "-cpu", "cortex-m4", "-icount", "shift=0", "-nographic", "-monitor", "none",
           "-serial", "none", "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise ArtefactError(f"QEMU did not finish within {timeout_s:g} s: {' '.join(cmd)}") from None
    text = res.stdout + res.stderr
    rows = [line.split()[1:] for line in text.splitlines() if line.startswith("W ")]
    cal = re.search(r"^CAL (\d+) STACK (\d+)", text, re.M)
    if res.returncode or cal is None or "FAULT" in text:
        raise ArtefactError(f"the Cortex-M4 image failed under QEMU (exit {res.returncode}): {' '.join(cmd)}\n{text[-2000:]}")
    arr = np.array(rows, dtype=np.int64)
    layers = [int(line.split()[2]) for line in text.splitlines() if line.startswith("L ")]
    return arr[:, :-1].astype(np.int8), arr[:, -1], int(cal.group(1)), int(cal.group(2)), " ".join(cmd), layers


def cortex_m4_report(mcu_folder: str | Path, windows: np.ndarray, *, workdir: str | Path | None = None) -> CortexM4Report:
    """Cross-compile the library in ``mcu_folder`` (an export's ``mcu/``), run it on ``windows`` under QEMU, measure."""
    mcu_folder = Path(mcu_folder).resolve()
    sources = sorted(mcu_folder.glob("*.c"))
    if not sources:
        raise ArtefactError(f"{mcu_folder}: no C sources (export with --target mcu, or ecgedge export --mcu EXPORT)")
    x = np.asarray(windows, np.float32).reshape(len(windows), -1)
    with tempfile.TemporaryDirectory(prefix="ecgedge-m4-") as tmp:
        work = Path(workdir).resolve() if workdir else Path(tmp)
        elf, lib = build_cortex_m4(sources, mcu_folder, x, work)
        sections = {k: v for k, v in _sections(elf).items() if k != ".check_data"}
        outputs, ticks, cal_ticks, stack, cmd, layers = run_qemu(elf)
        compiler = _run(["arm-none-eabi-gcc", "--version"], "arm-none-eabi-gcc --version").stdout.splitlines()[0]
    return CortexM4Report(outputs, ticks, CALIBRATION_INSTRUCTIONS / cal_ticks, stack, sections, lib, cmd, compiler, layers)


FLASH_TARGET, RAM_TARGET, INSTRUCTION_TARGET = 256 * 1024, 64 * 1024, 50_000_000  # issue 16's targets for the shipped model


def cortex_m4_check(folder: str | Path, *, log=print) -> CortexM4Report:
    """Run an export's C library on the emulated Cortex-M4F over its check windows, compare the outputs
    with the host build (backend c-int8) and ONNX Runtime INT8, and log the footprint and instruction counts.

    Raises:
        ArtefactError: the device's int8 logits differ from the host build's on any window.
    """
    from ecgedge.config import Backend, Precision
    from ecgedge.export.mcu_artefact import MCU_KEY
    from ecgedge.manifest import load_manifest
    from ecgedge.runtime import runner_from_export
    from ecgedge.runtime.c_runner import CRunner

    m = load_manifest(folder)
    if MCU_KEY not in m.artefacts:
        raise ArtefactError(f"{m.folder} has no C library: ecgedge export --mcu {m.folder}")
    windows = np.load(m.file(m.data["check_data"]["file"], "check_data"))["windows"]
    rep = cortex_m4_report(m.folder / "mcu", windows)
    c_runner = runner_from_export(m.folder, Precision.int8, Backend.c_int8, manifest=m, allow_rejected=True)
    assert isinstance(c_runner, CRunner)
    with c_runner:
        host = c_runner.infer_int8(windows)
    out = m.artefacts[MCU_KEY]["library"]["output"]
    with runner_from_export(m.folder, Precision.int8, Backend.ort_cpu, manifest=m, allow_rejected=True, threads=1) as r:
        ort = np.rint(r.infer(windows) / np.float32(out["scale"])).astype(np.int64) + out["zero_point"]
    same_host = int((rep.outputs == host).all(axis=1).sum())
    same_ort = int((rep.outputs == ort).all(axis=1).sum())
    d, n = rep.to_dict(), len(windows)
    s = rep.sections
    ins = rep.instructions
    log(f"Cortex-M4F: {d['board']}, {rep.compiler.split(' (')[0]} {rep.compiler.split()[-2]} -O2, {n} check windows")
    log(f"  int8 logits: identical to the host build on {same_host}/{n} windows, to ONNX Runtime INT8 on {same_ort}/{n}")
    log(f"  flash {rep.flash_bytes:>8,} B ({rep.flash_bytes / 1024:.1f} KiB; limit {FLASH_TARGET // 1024} KiB) = .text {s.get('.text', 0):,} "
        f"+ .rodata {s.get('.rodata', 0):,} + vectors/exidx/data {rep.flash_bytes - s.get('.text', 0) - s.get('.rodata', 0):,}")
    log(f"  RAM   {rep.ram_bytes:>8,} B ({rep.ram_bytes / 1024:.1f} KiB; limit {RAM_TARGET // 1024} KiB) = .data {s.get('.data', 0):,} "
        f"+ .bss {s.get('.bss', 0):,} (arena {m.artefacts[MCU_KEY]['library']['arena_bytes']:,}, the caller's float window "
        f"{windows[0].size * 4:,}, im2col column) + stack high-water {rep.stack_bytes:,}")
    log(f"  library objects (arm-none-eabi-size): text+rodata {rep.library_sections['text+rodata']:,} B, data "
        f"{rep.library_sections['data']:,} B, bss {rep.library_sections['bss']:,} B")
    log(f"  instructions per window: {ins.max() / 1e6:.2f} M largest, {ins.mean() / 1e6:.2f} M mean (limit {INSTRUCTION_TARGET / 1e6:.0f} M); "
        f"{d['instruction_count_method']}")
    log(f"  at {CPI} cycles per instruction (assumed): {rep.ms_at(64):.0f} ms per window at 64 MHz, {rep.ms_at(168):.0f} ms at 168 MHz")
    log("  per layer (first window), M instructions: " + ", ".join(f"{v / 1e6:.2f}" for v in d["instructions_per_layer"]))
    if same_host != n:
        raise ArtefactError(f"the Cortex-M4 build differs from the host build on {n - same_host} of {n} check windows")
    return rep


def main(argv: list[str] | None = None) -> int:
    """``python -m ecgedge.export.mcu_qemu EXPORT``: run an export's C library on the emulated Cortex-M4."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("export")
    args = ap.parse_args(argv)
    cortex_m4_check(args.export)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
