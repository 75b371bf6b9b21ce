"""Shared fixtures of the pytest-benchmark suites: which export folder, on which device.

The export folder is ``--export-dir`` or ``$ECGEDGE_BENCH_EXPORT`` (e.g. ``ecgedge quickstart``'s
``/tmp/qs/export``); without one, an *untrained* export of the real architecture (12 leads x 2048
samples, FP32 + INT8 + FP16) is built once per session in a temporary folder
(:func:`ecgedge.bench.untrained_export`): latency does not depend on the weights' values.

These suites are not part of the test run (``pyproject.toml``: ``testpaths = ["tests"]``) and
assert nothing about time. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ecgedge.bench import machine_info, steady_malloc_in_process, untrained_export
from ecgedge.hashing import file_sha256
from ecgedge.manifest import MANIFEST, load_manifest


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
