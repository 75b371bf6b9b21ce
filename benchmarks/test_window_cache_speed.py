"""Window loading from the memory-mapped cache: opening it (the cache-hit path of every training
run) and reading one shuffled training batch from it (sorted indices, then normalisation).

The cache is built once per session from a small generated 12-lead data set. Reads hit the page
cache after the first round: these numbers are the warm-cache cost, not the disk's.
"""

from __future__ import annotations

import numpy as np
import pytest

from ecgedge.config import STANDARD_12_LEADS, DataConfig, LabelScheme, PreprocessConfig, WindowConfig

BATCH = 32


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    try:
        from ecgedge.data.synthetic_records import write_wfdb_dataset
        from ecgedge.data.windows import build_windows
    except ImportError as exc:  # the record readers are a separate module that may not be installed yet
        pytest.skip(f"window cache unavailable: {exc}")
    root = tmp_path_factory.mktemp("bench-windows")
    write_wfdb_dataset(root / "data", records_per_rhythm=4, seed=0, progress=False)
    args = (DataConfig(paths=(str(root / "data"),), cache_dir=str(root / "cache")), STANDARD_12_LEADS, PreprocessConfig(),
            WindowConfig(hop=2048, max_per_record=8), LabelScheme.chapman4)
    ws = build_windows(*args, progress=False)
    return build_windows, args, ws


def test_open_cache(benchmark, cache, info):
    build_windows, args, ws = cache
    benchmark.group = "window cache"
    benchmark.extra_info.update(info, windows=len(ws), records=len(ws.record_ids))
    opened = benchmark(build_windows, *args, progress=False)
    assert opened.key == ws.key and len(opened) == len(ws)


def test_read_training_batch(benchmark, cache, info):
    from ecgedge.data.preprocess import normalise_windows

    _, args, ws = cache
    rng = np.random.default_rng(0)
    pre = args[2]

    def read():
        idx = np.sort(rng.choice(len(ws), min(BATCH, len(ws)), replace=False))
        return normalise_windows(ws.windows[idx], pre)[0]

    benchmark.group = "window cache"
    benchmark.extra_info.update(info, batch=BATCH, windows=len(ws))
    x = benchmark(read)
    assert x.shape == (min(BATCH, len(ws)), len(STANDARD_12_LEADS), ws.windows.shape[-1])
