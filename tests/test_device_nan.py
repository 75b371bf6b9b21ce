"""Issue 25, policy 5 for the C device chain (``ecgedge/export/mcu_c/ecgedge_device.c``): a NaN or
+-Inf sample pushed into ``ecgedge_device_push`` is held at the lead's previous sample and counts as
lead-off (``ecgedge_device.h``), run under ``-fsanitize=undefined`` with recovery off, so any
undefined behaviour aborts the run (as ``test_mcu_nan.py`` does for the C library alone).

The chain is the shipped classifier's C library (generated in code) behind the device's resampler,
band-pass and z-score, for a 300 Hz single-lead source, driven by a small harness written here.
Each case is compared with the same signal where the bad samples are replaced by what the header
says they become (the previous sample, 0 before the first) and flagged lead-off by the caller: the
windows must be bit-equal and carry the same flags.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from ecgedge.export.mcu import c_library_from_int8_onnx
from ecgedge.export.mcu_device import device_config_header, device_source
from ecgedge.manifest import load_manifest
from ecgedge.runtime.base import host_compiler_or_reason
from ecgedge.runtime.c_runner import HOST_CFLAGS
from ecgedge.shipped import shipped_model

SAN = ("-fsanitize=undefined,float-cast-overflow", "-fno-sanitize-recover=all")
FS = 300.0
LEAD_OFF = 1  # ECGEDGE_DEVICE_FLAG_LEAD_OFF

# stdin: (float32 mV, float32 lead-off 0/1) per sample time; stdout per window: first_sample, end_sample (u64),
# flags (u32), label (i32), non-finite values in the window (i32), the window (float32 x n).
HARNESS = r"""
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "ecgedge_device.h"

int main(int argc, char **argv) {
    float in[2];
    int32_t n = argc > 1 ? (int32_t)atoi(argv[1]) : 0;
    ecgedge_device_verdict v;
    ecgedge_device_reset(0);
    while (fread(in, sizeof(float), 2, stdin) == 2) {
        float mv[1] = {in[0]};
        if (ecgedge_device_push(mv, in[1] != 0.0f ? 1u : 0u, &v)) {
            int32_t bad = 0, label = v.label;
            uint32_t flags = v.flags;
            for (int32_t i = 0; i < n; i++) bad += !isfinite(v.window[i]);
            fwrite(&v.first_sample, sizeof v.first_sample, 1, stdout);
            fwrite(&v.end_sample, sizeof v.end_sample, 1, stdout);
            fwrite(&flags, sizeof flags, 1, stdout);
            fwrite(&label, sizeof label, 1, stdout);
            fwrite(&bad, sizeof bad, 1, stdout);
            fwrite(v.window, sizeof(float), (size_t)n, stdout);
        }
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    """The device chain for the shipped model at 300 Hz, lead I, built with UBSan; (binary, window size)."""
    if host_compiler_or_reason():
        pytest.skip(host_compiler_or_reason())
    cc = shutil.which("gcc")
    if cc is None:
        pytest.skip("gcc not found (the sanitizer build needs it)")
    export = shipped_model("cinc2017-rhythm").path
    manifest = load_manifest(export)
    folder = tmp_path_factory.mktemp("device-nan")
    lib = c_library_from_int8_onnx(export / "model.int8.onnx", folder / "mcu", name="nan", labels=list(manifest.labels))
    config = device_config_header(export, FS, ["I"])
    (folder / "ecgedge_device_config.h").write_text(config)
    (folder / "harness.c").write_text(HARNESS)
    exe = folder / "device"
    cmd = [cc, *HOST_CFLAGS, *SAN, f"-I{folder}", f"-I{lib.folder}", f"-I{device_source('')}", str(folder / "harness.c"),
           str(device_source("ecgedge_device.c")), *(str(p) for p in lib.files if p.suffix == ".c"), "-lm", "-o", str(exe)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode and "sanitize" in done.stderr:
        pytest.skip(f"this gcc cannot build with -fsanitize=undefined: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr
    return exe, len(manifest.leads) * manifest.window_samples


def _run(device, x: np.ndarray, off: np.ndarray) -> list[tuple[tuple[int, int], int, int, int, np.ndarray]]:
    """((first, end), flags, label, non-finite values, window) of every window the device cuts."""
    exe, n = device
    stdin = np.stack([x.astype(np.float32), off.astype(np.float32)], axis=1).tobytes()
    done = subprocess.run([str(exe), str(n)], input=stdin, capture_output=True, timeout=300)
    assert done.returncode == 0 and not done.stderr, done.stderr.decode()[-2000:]  # UBSan aborts and prints on any UB
    rec = np.dtype([("first", "<u8"), ("end", "<u8"), ("flags", "<u4"), ("label", "<i4"), ("bad", "<i4"), ("window", "<f4", (n,))])
    out = np.frombuffer(done.stdout, rec)
    return [((int(r["first"]), int(r["end"])), int(r["flags"]), int(r["label"]), int(r["bad"]), r["window"]) for r in out]


def _ecg(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(FS * seconds)) / FS
    return (1.2 * np.sin(2 * np.pi * 1.2 * t) ** 41 + 0.2 * np.sin(2 * np.pi * 0.3 * t) + 0.02 * rng.standard_normal(t.size) + 0.5)


def _held(x: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """What the header says the device reads: each bad sample held at the previous one (0 before the first)."""
    y = x.copy()
    for i in np.flatnonzero(bad):
        y[i] = y[i - 1] if i else 0.0
    return y


SECONDS = 40.0
N = int(FS * SECONDS)
CASES = {
    "one NaN": ([9000], np.nan),
    "a run of +Inf": (list(range(6000, 6150)), np.inf),
    "-Inf at the first sample": ([0], -np.inf),
    "NaN, +Inf and -Inf mixed": ([3000, 3001, 7000, 11000], None),
    "the last samples": (list(range(N - 10, N)), np.nan),
    "every sample for 5 s": (list(range(4500, 6000)), np.nan),
}


@pytest.mark.parametrize("case", list(CASES))
def test_non_finite_samples_are_held_and_flagged_lead_off(device, case):
    spots, value = CASES[case]
    x = _ecg(SECONDS)
    bad = np.zeros(N, bool)
    bad[spots] = True
    poisoned = x.copy()
    poisoned[spots] = [value] if value is not None else [np.nan, np.inf, -np.inf, np.nan][:len(spots)]
    got = _run(device, poisoned, np.zeros(N))
    want = _run(device, _held(x, bad), bad)
    clean = _run(device, x, np.zeros(N))
    assert got and len(got) == len(want) == len(clean)
    assert all(b == 0 for _, _, _, b, _ in got)  # the filters stay finite: every window the model reads is finite
    for (e, f, lab, _, w), (e2, f2, lab2, _, w2) in zip(got, want):
        assert (e, f, lab) == (e2, f2, lab2) and np.array_equal(w, w2)  # bit-equal to the held, flagged signal
    # flagged lead-off: exactly the windows that hold a non-finite sample (the first window starts after
    # the filters settle, so a bad sample 0 is in none)
    holding = [(a, b) for (a, b), *_ in got if bad[a:b].any()]
    assert [w for w, f, *_ in got if f & LEAD_OFF] == holding
    assert holding or case == "-Inf at the first sample"
    assert not any(f & LEAD_OFF for _, f, *_ in clean)


def test_an_all_nan_stream_is_defined(device):
    """Nothing but NaN: every sample reads as 0, every window is flagged, nothing undefined happens."""
    got = _run(device, np.full(int(FS * 20), np.nan), np.zeros(int(FS * 20)))
    assert got and all(f & LEAD_OFF and b == 0 for _, f, _, b, _ in got)
