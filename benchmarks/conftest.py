"""Shared fixtures of the pytest-benchmark suites: which export folder, on which device.

The export folder is ``--export-dir`` or ``$ECGEDGE_BENCH_EXPORT`` (e.g. ``ecgedge quickstart``'s
``/tmp/qs/export``); without one, an *untrained* export of the real architecture (12 leads x 2048
samples, FP32 + INT8 + FP16) is built once per session in a temporary folder
(:func:`ecgedge.bench.untrained_export`): latency does not depend on the weights' values.

These suites are not part of the test run (``pyproject.toml``: ``testpaths = ["tests"]``) and
assert nothing about time. See ``benchmarks/README.md``.

Baseline: ``--baseline FILE`` (default ``benchmarks/baseline.json``, a ``--benchmark-json`` file
of an earlier run) prints, after the run, every benchmark's median and its figures
(:data:`FIGURES` in ``extra_info``) as ratios to the baseline's, so a regression shows as a ratio
(time ratios > 1 are slower; for figures where more is better the ratio is inverted and says so).
``--benchmark-json benchmarks/baseline.json`` writes a new one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ecgedge.bench import machine_info, steady_malloc_in_process, untrained_export
from ecgedge.hashing import file_sha256
from ecgedge.manifest import MANIFEST, load_manifest


BASELINE = Path(__file__).with_name("baseline.json")
# extra_info figures compared with the baseline: name -> True when more is better.
FIGURES = {"realtime_beds_per_core": True, "ms_per_bed_second": False, "p99_step_cpu_ms": False, "windows_per_s": True,
           "ms_per_window": False, "rtf": True}


def pytest_configure(config):
    # As `ecgedge bench` does in its workers: without it PyTorch's eager activations (batch 64:
    # 25 MB each) are mmapped and page-faulted in again on every call (see benchmarks/README.md).
    config.ecgedge_steady_malloc = steady_malloc_in_process()


def pytest_addoption(parser):
    group = parser.getgroup("ecgedge benchmarks")
    group.addoption("--export-dir", default=os.environ.get("ECGEDGE_BENCH_EXPORT"),
                    help="Export folder to benchmark (default $ECGEDGE_BENCH_EXPORT, else an untrained export built per session).")
    group.addoption("--bench-threads", type=int, default=1,
                    help="Intra-op threads for PyTorch and ONNX Runtime (default 1: the one-core numbers).")
    group.addoption("--baseline", default=str(BASELINE),
                    help="pytest-benchmark JSON of an earlier run to print ratios against (default benchmarks/baseline.json; '' for none).")


def baseline_lines(now: list[dict], base: dict) -> list[str]:
    """One line per benchmark of this run: its median and :data:`FIGURES` as ratios to ``base``'s
    (a ``--benchmark-json`` document); ``new`` where the baseline lacks it."""
    old = {b["fullname"]: b for b in base.get("benchmarks", [])}
    lines = []
    for b in now:
        name = b["fullname"].split("::", 1)[-1]
        was = old.get(b["fullname"])
        if was is None:
            lines.append(f"{name}: new (not in the baseline)")
            continue
        parts = [f"median {b['stats']['median'] * 1e3:.3f} ms vs {was['stats']['median'] * 1e3:.3f} ms: "
                 f"x{b['stats']['median'] / was['stats']['median']:.2f} time"]
        for key, more_is_better in FIGURES.items():
            a, z = (b.get("extra_info") or {}).get(key), (was.get("extra_info") or {}).get(key)
            if isinstance(a, (int, float)) and isinstance(z, (int, float)) and a and z:
                ratio = a / z if more_is_better else z / a
                parts.append(f"{key} {a:.4g} vs {z:.4g}: x{ratio:.2f} {'better' if ratio >= 1 else 'worse'}")
        lines.append(f"{name}: " + "; ".join(parts))
    return lines


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's tables
def pytest_terminal_summary(terminalreporter, config):
    path = config.getoption("--baseline", default="")
    session = getattr(config, "_benchmarksession", None)
    if not path or session is None or not session.benchmarks or not Path(path).is_file():
        return
    base = json.loads(Path(path).read_text())
    machine = (base.get("machine_info") or {}).get("cpu", {}).get("brand_raw", "?")
    terminalreporter.write_sep("-", f"against the baseline {path} (taken {base.get('datetime', '?')} on {machine})")
    for line in baseline_lines([b.as_dict(include_data=False) for b in session.benchmarks], base):
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def export_dir(request, tmp_path_factory) -> Path:
    given = request.config.getoption("--export-dir")
    if given:
        return Path(given)
    return untrained_export(tmp_path_factory.mktemp("bench-export") / "untrained", fp16=True)


@pytest.fixture(scope="session")
def manifest(export_dir):
    return load_manifest(export_dir, verify=True)


@pytest.fixture(scope="session")
def threads(request) -> int:
    return request.config.getoption("--bench-threads")


@pytest.fixture(scope="session")
def info(request, manifest, threads) -> dict:
    """What every benchmark's ``extra_info`` carries: the device, the export and how it was run."""
    machine = machine_info()
    return {"device": machine["gpu"] or machine["cpu"], "cpu": machine["cpu"], "isa": " ".join(machine["isa"]),
            "export": str(manifest.folder), "manifest_sha256": file_sha256(manifest.folder / MANIFEST),
            "untrained": bool(manifest.data.get("untrained")), "threads": threads,
            "steady_malloc": request.config.ecgedge_steady_malloc,
            "flops_per_window": (manifest.data.get("model") or {}).get("flops_per_window"),
            "onnxruntime": machine["versions"]["onnxruntime"], "torch": machine["versions"]["torch"]}


@pytest.fixture
def windows(manifest):
    """Seeded standard-normal windows of the manifest's input shape: ``windows(batch)``."""

    def make(batch: int) -> np.ndarray:
        return np.random.default_rng(0).standard_normal((batch, len(manifest.leads), manifest.window_samples), dtype=np.float32)

    return make
