"""Inference per backend x precision x batch, inside an activated runner (set-up excluded).

Batch 1 is the single-window latency a bedside stream pays; batches 8 and 64 are what a hub that
batches many beds gets. Each batch size is its own group, so a report compares backends side by
side. Configurations this machine cannot run are skipped with the reason ``ecgedge bench`` gives.
"""

from __future__ import annotations

import pytest

from ecgedge.bench import BenchBackend, BenchCase, checkpoint_path, skip_reason, torch_runner_from_checkpoint
from ecgedge.runtime import Precision, available_backends, runner_from_export
from ecgedge.runtime.loader import input_spec

WARMUP_CALLS = 10


def _runner(backend: BenchBackend, precision: Precision, manifest, threads: int):
    if backend == BenchBackend.torch:
        return torch_runner_from_checkpoint(checkpoint_path(manifest)[0], input_spec(manifest), threads=threads)
    return runner_from_export(manifest.folder, precision, backend.runtime_backend, threads=threads, verify=False,
                              allow_rejected=True, manifest=manifest)


@pytest.mark.parametrize("batch", [1, 8, 64])
@pytest.mark.parametrize("precision", list(Precision), ids=lambda p: p.value)
@pytest.mark.parametrize("backend", list(BenchBackend), ids=lambda b: b.value)
def test_inference(benchmark, backend, precision, batch, manifest, threads, info, windows):
    reason = skip_reason(BenchCase(backend, precision, batch, threads), manifest, available_backends(),
                         checkpoint=checkpoint_path(manifest), include_rejected=True)
    if reason:
        pytest.skip(reason)
    x = windows(batch)
    with _runner(backend, precision, manifest, threads) as runner:
        for _ in range(WARMUP_CALLS):
            runner.infer(x)
        provider = ", ".join(getattr(runner, "active_providers", None) or [backend.value])  # TensorRT runners name none
        benchmark.group = f"inference, batch {batch}"
        benchmark.extra_info.update(info, backend=backend.value, precision=precision.value, batch=batch, provider=provider,
                                    windows_per_call=batch)
        out = benchmark(runner.infer, x)
    assert out.shape == (batch, len(manifest.labels))
