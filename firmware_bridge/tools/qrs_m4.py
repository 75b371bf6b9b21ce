"""The C QRS detector on an emulated Cortex-M4F: flash, RAM and instructions, beside the model's budget.

    python firmware_bridge/tools/qrs_m4.py [--record ../shared/data/mitdb/100] [--seconds 60]
                                          [--max-fs 500] [--max-leads 1]

Cross-compiles ``src/ecgb_qrs.c`` and ``tools/qrs_m4.c`` with the MCU export's flags
(``ecgedge.export.mcu_qemu.ARM_CFLAGS``: ``-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16
-O2``) and its bare-metal start-up and linker script (``ecgedge/export/mcu_c/cortex_m4``: 64 KiB RAM,
16 KiB of it stack), with the state sized by ``-DECGB_QRS_MAX_FS``/``-DECGB_QRS_MAX_LEADS``; links a
second image that calls nothing of the detector, so the detector's flash is the difference (its code,
the libm functions and the soft double-precision routines it pulls in: the M4F's FPU is single
precision); runs the first under ``qemu-system-arm -icount shift=0`` on the record's first lead (float32
mV, pushed in 40-ms chunks), checks its beats against ``ecgedge.beats.detect_beats`` and prints one JSON
line. Needs ``gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

BRIDGE = Path(__file__).resolve().parents[1]
REPO = BRIDGE.parent
sys.path.insert(0, str(REPO))

from ecgedge.beats import detect_beats  # noqa: E402
from ecgedge.export.mcu_qemu import ARM_CFLAGS, QEMU_MACHINE, _sections, toolchain_or_reason  # noqa: E402

SUPPORT = REPO / "ecgedge" / "export" / "mcu_c" / "cortex_m4"
FLASH = (".vectors", ".text", ".rodata", ".ARM.exidx", ".data")


def _image(work: Path, name: str, defines: list[str], data_c: Path, baseline: bool) -> Path:
    objs = []
    srcs = [BRIDGE / "tools" / "qrs_m4.c", SUPPORT / "startup.c", data_c] + ([] if baseline else [BRIDGE / "src" / "ecgb_qrs.c"])
    for src in srcs:
        obj = work / f"{name}_{src.stem}.o"
        subprocess.run(["arm-none-eabi-gcc", *ARM_CFLAGS, *defines, *(["-DQRS_M4_BASELINE"] if baseline else []),
                        f"-I{BRIDGE / 'include'}", f"-I{SUPPORT}", "-c", str(src), "-o", str(obj)], check=True)
        objs.append(obj)
    elf = work / f"{name}.elf"
    subprocess.run(["arm-none-eabi-gcc", *ARM_CFLAGS, "-nostartfiles", "--specs=nano.specs", f"-T{SUPPORT / 'mps2_an386.ld'}",
                    "-Wl,--gc-sections", *map(str, objs), "-lm", "-o", str(elf)], check=True)
    return elf


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--record", default=str(REPO.parent / "shared" / "data" / "mitdb" / "100"))
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--max-fs", type=int, default=500)
    ap.add_argument("--max-leads", type=int, default=1)
    args = ap.parse_args()
    if why := toolchain_or_reason():
        print(why, file=sys.stderr)
        return 2
    import wfdb

    rec = wfdb.rdrecord(args.record)
    fs = float(rec.fs)
    x = rec.p_signal[: int(args.seconds * fs), 0].astype(np.float32)
    chunk = int(round(0.04 * fs))
    defines = [f"-DECGB_QRS_MAX_FS={args.max_fs}", f"-DECGB_QRS_MAX_LEADS={args.max_leads}"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data_c = work / "signal.c"
        body = ",".join(f"{v!r}f" if np.isfinite(v) else "0.0f" for v in x.tolist())
        data_c.write_text("#include <stdint.h>\n__attribute__((section(\".check_data\"))) const float qrs_m4_signal[] = {"
                          f"{body}}};\nconst uint32_t qrs_m4_count = {x.size}u, qrs_m4_fs = {int(fs)}u, qrs_m4_chunk = {chunk}u;\n")
        full = _image(work, "qrs", defines, data_c, baseline=False)
        base = _image(work, "base", defines, data_c, baseline=True)
        s_full, s_base = _sections(full), _sections(base)
        text_obj = subprocess.run(["arm-none-eabi-size", str(work / "qrs_ecgb_qrs.o")], capture_output=True, text=True,
                                  check=True).stdout.splitlines()[1].split()
        cmd = ["qemu-system-arm", "-M", QEMU_MACHINE, "-cpu", "cortex-m4", "-icount", "shift=0", "-nographic", "-monitor",
               "none", "-serial", "none", "-semihosting-config", "enable=on,target=native", "-kernel", str(full)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        out = res.stdout + res.stderr
        if res.returncode or "CAL " not in out:
            print(f"the image failed under QEMU (exit {res.returncode}):\n{out[-2000:]}", file=sys.stderr)
            return 1
    beats = np.array([line.split()[1] for line in out.splitlines() if line.startswith("B ")], np.int64)
    init_t, push_t = map(int, re.search(r"^T (\d+) (\d+)", out, re.M).groups())  # type: ignore[union-attr]
    max_push, state = map(int, re.search(r"^M (\d+) (\d+)", out, re.M).groups())  # type: ignore[union-attr]
    cal, stack = map(int, re.search(r"^CAL (\d+) (\d+)", out, re.M).groups())  # type: ignore[union-attr]
    per_tick = 2_000_000 / cal  # instructions per SysTick tick
    py = detect_beats(x.astype(np.float64), fs).samples
    flash = sum(s_full.get(k, 0) for k in FLASH) - sum(s_base.get(k, 0) for k in FLASH)
    report = {
        "record": Path(args.record).name, "fs_hz": fs, "seconds": x.size / fs, "max_fs": args.max_fs, "max_leads": args.max_leads,
        "beats": int(beats.size), "same_beats_as_python": bool(beats.size == py.size and np.array_equal(beats, py)),
        "flash_bytes": flash, "object_text_bytes": int(text_obj[0]), "state_bytes": state, "stack_bytes": stack,
        "ram_bytes": state + stack,
        "instructions_per_second_of_signal": round(push_t * per_tick / (x.size / fs)),
        "instructions_init": round(init_t * per_tick), "instructions_slowest_push": round(max_push * per_tick),
    }
    print(json.dumps(report))
    return 0 if report["same_beats_as_python"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
