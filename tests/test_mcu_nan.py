"""Issue 25, policy 5 for the generated C library: NaN and +-Inf inputs have defined behaviour (a
non-finite input value is read as 0, the z-scored window's mean), checked under
``-fsanitize=undefined`` with recovery off, so any undefined behaviour aborts the run.

Before: a NaN reached ``(int32_t)`` of a float in the first convolution's quantization: undefined
behaviour (the sanitizer caught it). The library is the shipped classifier's, generated in code.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ecgedge.export.mcu import c_library_from_int8_onnx
from ecgedge.runtime.c_runner import HOST_CFLAGS, harness_source, host_compiler_or_reason
from ecgedge.shipped import shipped_model
from ecgedge.manifest import load_manifest

SAN = ("-fsanitize=undefined,float-cast-overflow", "-fno-sanitize-recover=all")


@pytest.fixture(scope="module")
def sanitized(tmp_path_factory):
    """The shipped model's C library and the host harness, built with UBSan; returns (binary, input size)."""
    if host_compiler_or_reason():
        pytest.skip(host_compiler_or_reason())
    cc = shutil.which("gcc")
    if cc is None:
        pytest.skip("gcc not found (the sanitizer build needs it)")
    export = shipped_model("cinc2017-rhythm").path
    manifest = load_manifest(export)
    folder = tmp_path_factory.mktemp("mcu-nan")
    lib = c_library_from_int8_onnx(export / "model.int8.onnx", folder, name="nan", labels=list(manifest.labels))
    exe = folder / "check"
    cmd = [cc, *HOST_CFLAGS, *SAN, f"-I{lib.folder}", str(harness_source()),
           *(str(p) for p in lib.files if p.suffix == ".c"), "-lm", "-o", str(exe)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode and "sanitize" in done.stderr:
        pytest.skip(f"this gcc cannot build with -fsanitize=undefined: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr
    return exe, len(manifest.leads) * manifest.window_samples


def _run(exe: Path, windows: np.ndarray) -> np.ndarray:
    done = subprocess.run([str(exe)], input=np.ascontiguousarray(windows, np.float32).tobytes(), capture_output=True, timeout=120)
    assert done.returncode == 0 and not done.stderr, done.stderr.decode()[-2000:]  # UBSan aborts and prints on any UB
    return np.frombuffer(done.stdout, np.int8).reshape(len(windows), -1)


def test_non_finite_values_are_read_as_zero(sanitized):
    exe, n = sanitized
    rng = np.random.default_rng(0)
    base = rng.standard_normal((6, n)).astype(np.float32)
    bad, zeroed = base.copy(), base.copy()
    spots = [
        [5],                                   # one NaN
        list(range(100, 140)),                 # a NaN run (a dropped stretch)
        [0, n - 1],                            # +Inf at both edges (the zero-padding taps)
        list(range(0, n, 7)),                  # -Inf sprinkled
        list(range(n)),                        # all NaN
        [17, 18, 19],                          # NaN and both infinities side by side
    ]
    values = [np.nan, np.nan, np.inf, -np.inf, np.nan, None]
    for i, (idx, v) in enumerate(zip(spots, values)):
        bad[i, idx] = [np.nan, np.inf, -np.inf] if v is None else v
        zeroed[i, idx] = 0.0
    assert np.array_equal(_run(exe, bad), _run(exe, zeroed))


def test_finite_windows_unchanged_and_huge_values_saturate(sanitized):
    exe, n = sanitized
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, n)).astype(np.float32)
    x[1] *= 1e30                               # finite, but sums overflow to +-Inf: saturates, no UB
    x[2, ::3] = np.finfo(np.float32).max
    out = _run(exe, x)
    assert out.shape == (3, len(load_manifest(shipped_model("cinc2017-rhythm").path).labels))
