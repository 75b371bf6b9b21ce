"""The shipped models' data path at real scale: every CinC-2017 training record plus MIT-BIH.

Cases (``benchmarks/README.md``, *Real scale*):

- ``window store``: building the CAE's lead-II window store (``build_store``, one round) and
  opening it again (the second run's path); the classifier's ``build_windows`` cache, first
  build (one round) and cache hit.
- ``real-scale training``: one optimiser step at batch 64 on one thread of the CAE and of the
  shipped classifier's architecture, on real normalised windows read from the store.
- ``real-scale evaluate``: ``evaluate_source`` with the shipped ``cinc2017-rhythm`` INT8 export on
  ONNX Runtime over the first 200 training records, window cache warm (one round).
- ``real-scale memory``: the peak resident memory of a fresh process reading one epoch of the
  store in shuffled batches of 64 (sorted reads, then z-scoring, as the trainers do).

Configs come from the shipped models' own files (``ecgedge/shipped/*/pretrain.toml`` and
``classify.toml``), so these numbers follow what ships. ``ECGEDGE_BENCH_MAX_RECORDS=N`` bounds a
quick run to the first N records in record-id order (MIT-BIH's 11 come first); 0 or unset = all.
``ECGEDGE_BENCH_EVAL_SOURCE`` points the evaluate case at another export folder with the
CinC-2017 classes (default: the shipped model). The records are read from ``$ECGEDGE_SHARED_DATA``
or ``../shared/data``; every case skips with the reason where they are absent. One-round cases
report one sample: read them as a figure for this machine, not a distribution.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ecgedge.config import ClassifyConfig, DataConfig, PretrainConfig, config_from_toml
from ecgedge.shipped import SHIPPED_ROOT

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ECGEDGE_SHARED_DATA", REPO.parent / "shared" / "data"))
CLASSIFIER = "cinc2017-rhythm"
WORKERS = 2           # reader processes for the builds: the cores of the machine these figures come from
EVAL_RECORDS = 200    # records the evaluate case scores (fewer under ECGEDGE_BENCH_MAX_RECORDS)
PEAK_RSS_SANITY_MB = 4096  # a run above this is broken (a whole-store copy), not slow


def _max_records() -> int:
    text = os.environ.get("ECGEDGE_BENCH_MAX_RECORDS", "0").strip() or "0"
    try:
        n = int(text)
    except ValueError:
        raise pytest.UsageError(f"ECGEDGE_BENCH_MAX_RECORDS must be a whole number of records (0 = all), got {text!r}") from None
    if n < 0:
        raise pytest.UsageError(f"ECGEDGE_BENCH_MAX_RECORDS must be >= 0 (0 = all), got {n}")
    return n


def _seconds(benchmark) -> float:
    return float(benchmark.stats.stats.median)


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def sources() -> dict[str, Path]:
    """CinC-2017 training2017 and MIT-BIH folders; skips naming the missing one."""
    found = {"training2017": SHARED_DATA / "cinc2017" / "training2017", "mitdb": SHARED_DATA / "mitdb"}
    for folder in found.values():
        if not folder.is_dir():
            pytest.skip(f"real ECG records not found: {folder} (set ECGEDGE_SHARED_DATA; see README 'Real data for tests')")
    return found


@pytest.fixture(scope="module")
def max_records() -> int:
    return _max_records()


@pytest.fixture(scope="module")
def cae_cfg(sources) -> PretrainConfig:
    """The shipped CAE's config (lead II, hop 1024, batch 64)."""
    return config_from_toml(PretrainConfig, SHIPPED_ROOT / "cinc2017-cae" / "pretrain.toml")


@pytest.fixture(scope="module")
def clf_cfg(sources, max_records) -> ClassifyConfig:
    """The shipped classifier's config (lead I, cinc2017 labels, hop 2048, no cap, batch 64) on training2017."""
    return config_from_toml(ClassifyConfig, SHIPPED_ROOT / CLASSIFIER / "classify.toml", data__paths=[str(sources["training2017"])],
                            data__max_records=max_records, data__workers=WORKERS)


@pytest.fixture(scope="module")
def machine(request) -> dict:
    """What every case's ``extra_info`` carries about where and how it ran."""
    from ecgedge.bench import machine_info

    m = machine_info()
    return {"cpu": m["cpu"], "cores_usable": m["cores_usable"], "torch": m["versions"]["torch"],
            "onnxruntime": m["versions"]["onnxruntime"], "steady_malloc": request.config.ecgedge_steady_malloc,
            "max_records": _max_records(), "data": str(SHARED_DATA)}


@pytest.fixture(scope="module")
def store_args(sources, cae_cfg, max_records, tmp_path_factory) -> dict:
    """build_store's arguments: lead II of training2017 + MIT-BIH, into a temporary folder."""
    data = DataConfig(paths=(str(sources["training2017"]), str(sources["mitdb"])), max_records=max_records, workers=WORKERS)
    return {"data": data, "out": tmp_path_factory.mktemp("real-store") / "store-lead2", "leads": (cae_cfg.lead,),
            "preprocess": cae_cfg.preprocess, "window": cae_cfg.window}


def _build_store(args: dict):
    from ecgedge.data.store import build_store

    return build_store(**args, overwrite=True, progress=False)


@pytest.fixture(scope="module")
def store(store_args):
    """The built store: the build case's result when it ran first, else built here (untimed)."""
    from ecgedge.data.store import WindowStore, is_store

    return WindowStore.open(store_args["out"]) if is_store(store_args["out"]) else _build_store(store_args)


@pytest.fixture(scope="module")
def windows_cache(clf_cfg, tmp_path_factory) -> DataConfig:
    return dataclasses.replace(clf_cfg.data, cache_dir=str(tmp_path_factory.mktemp("real-windows")))


def _classifier_windows(data: DataConfig, cfg: ClassifyConfig):
    from ecgedge.data.windows import build_windows

    return build_windows(data, cfg.leads, cfg.preprocess, cfg.window, cfg.labels, progress=False)


def _data_info(summary, n_windows: int, seconds: float) -> dict:
    return {"records_found": summary.found, "records": len(summary.used), "records_skipped": len(summary.skipped),
            "windows": n_windows, "seconds": round(seconds, 3), "windows_per_s": round(n_windows / seconds, 1),
            "records_per_s": round(summary.found / seconds, 1), "workers": WORKERS, "skip_reasons": dict(summary.reasons())}


# ------------------------------------------------------------------------------------------ window store


def test_build_store(benchmark, store_args, machine):
    benchmark.group = "window store"
    store = benchmark.pedantic(_build_store, args=(store_args,), rounds=1, iterations=1)
    benchmark.extra_info.update(machine, **_data_info(store.summary, len(store), _seconds(benchmark)),
                                shards=store.manifest["counts"]["shards"], leads=list(store.leads))
    assert len(store) > 0 and store.shape[1:] == (1, store_args["window"].samples)
    assert store.summary.found == len(store.records) + len(store.summary.skipped)


def test_open_store(benchmark, store, machine):
    from ecgedge.data.store import WindowStore

    benchmark.group = "window store"
    opened = benchmark(WindowStore.open, store.path)
    benchmark.extra_info.update(machine, windows=len(opened), records=len(opened.records))
    assert len(opened) == len(store) and opened[len(opened) - 1].shape == store.shape[1:]


def test_build_windows_first(benchmark, windows_cache, clf_cfg, machine):
    benchmark.group = "window store"
    ws = benchmark.pedantic(_classifier_windows, args=(windows_cache, clf_cfg), rounds=1, iterations=1)
    benchmark.extra_info.update(machine, **_data_info(ws.summary, len(ws), _seconds(benchmark)), leads=list(ws.leads),
                                classes=list(ws.class_names))
    assert len(ws) > 0 and set(ws.class_names) <= {"N", "A", "O", "~"} and (ws.labels >= 0).all()


def test_build_windows_cache_hit(benchmark, windows_cache, clf_cfg, machine):
    benchmark.group = "window store"
    first = _classifier_windows(windows_cache, clf_cfg)  # builds the cache when the first-build case did not run
    ws = benchmark(_classifier_windows, windows_cache, clf_cfg)
    benchmark.extra_info.update(machine, windows=len(ws), records=len(ws.record_ids))
    assert ws.key == first.key and len(ws) == len(first)


# ------------------------------------------------------------------------------------------ training


def _train_step_case(benchmark, machine, model, loss_fn, opt, x, y, batch: int):
    torch = pytest.importorskip("torch")

    def step() -> float:
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(3):  # allocator and oneDNN primitive caches warm, as after the first batches of an epoch
        step()
    benchmark.group = "real-scale training"
    loss = benchmark(step)
    benchmark.extra_info.update(machine, batch=batch, threads=torch.get_num_threads(), windows_per_s=round(batch / _seconds(benchmark), 1),
                                params=sum(p.numel() for p in model.parameters()))
    assert np.isfinite(loss)


def _real_batch(store, batch: int, seed: int, eligible: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A shuffled batch of store windows (sorted indices, as the trainers read), z-scored; and the indices."""
    from ecgedge.data.preprocess import normalise_windows

    pool = np.arange(len(store)) if eligible is None else eligible
    idx = np.sort(np.random.default_rng(seed).choice(pool, min(batch, len(pool)), replace=False))
    return normalise_windows(store[idx], store.preprocess)[0], idx


def test_train_step_cae(benchmark, store, cae_cfg, machine):
    torch = pytest.importorskip("torch", reason="training needs torch (pip install 'ecgedge[train]')")
    from ecgedge.models.autoencoder import ConvAutoencoder

    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, _ = _real_batch(store, cae_cfg.batch_size, seed=0)
    x = torch.from_numpy(x)
    model = ConvAutoencoder(cae_cfg.model).train()
    opt = torch.optim.Adam(model.parameters(), lr=cae_cfg.lr, weight_decay=cae_cfg.weight_decay)  # as ecgedge.train.pretrain
    _train_step_case(benchmark, machine, model, torch.nn.functional.mse_loss, opt, x, x, len(x))


def test_train_step_classifier(benchmark, store, clf_cfg, sources, machine):
    torch = pytest.importorskip("torch", reason="training needs torch (pip install 'ecgedge[train]')")
    from ecgedge.data.labels import class_names
    from ecgedge.data.records import load_label_table
    from ecgedge.models.classifier import RhythmClassifier

    # The store is unlabeled (the CAE's); its CinC-2017 windows take their record's REFERENCE.csv label.
    table = load_label_table(sources["training2017"] / "REFERENCE.csv")
    classes = class_names(clf_cfg.labels)
    record_label = np.array([classes.index(table[r][0]) if r in table else -1 for r in store.record_ids])
    window_label = record_label[np.asarray(store.index["record"])]
    x, idx = _real_batch(store, clf_cfg.batch_size, seed=0, eligible=np.flatnonzero(window_label >= 0))
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = RhythmClassifier(clf_cfg.model, n_leads=len(clf_cfg.leads), n_classes=len(classes)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=clf_cfg.lr, weight_decay=clf_cfg.weight_decay)  # as ecgedge.train.classify
    _train_step_case(benchmark, machine, model, torch.nn.CrossEntropyLoss(), opt, torch.from_numpy(x),
                     torch.from_numpy(window_label[idx]), len(x))


# ------------------------------------------------------------------------------------------ evaluate


@pytest.fixture(scope="module")
def eval_source() -> str:
    """The INT8 export to evaluate: ``$ECGEDGE_BENCH_EVAL_SOURCE`` or the shipped classifier, once it has landed."""
    given = os.environ.get("ECGEDGE_BENCH_EVAL_SOURCE")
    if given:
        if not (Path(given) / "manifest.json").is_file():
            pytest.fail(f"ECGEDGE_BENCH_EVAL_SOURCE={given} is not an export folder (no manifest.json)")
        return given
    from ecgedge.errors import ConfigError
    from ecgedge.shipped import shipped_model

    try:
        model = shipped_model(CLASSIFIER)
    except ConfigError as exc:
        pytest.skip(f"no shipped model {CLASSIFIER!r}: {exc}")
    if not (model.path / "manifest.json").is_file():
        pytest.skip(f"shipped model {CLASSIFIER!r} has no export yet ({model.path}/manifest.json is absent: "
                    "`ecgedge models retrain --install` puts it there)")
    return CLASSIFIER


def test_evaluate_int8(benchmark, eval_source, sources, max_records, tmp_path, machine):
    try:
        from ecgedge.evaluate.scoring import EvaluateConfig, evaluate_source
        from ecgedge.runtime.base import Backend, Precision
    except ImportError as exc:
        pytest.skip(f"ecgedge.evaluate.scoring is not ready: {exc}")
    n = min(EVAL_RECORDS, max_records) if max_records else EVAL_RECORDS
    data = _first_cinc2017_records(sources["training2017"], n, tmp_path / "records")
    cfg = EvaluateConfig(source=eval_source, data=DataConfig(paths=(str(data),), cache_dir=str(tmp_path / "cache"), workers=WORKERS),
                         labels="cinc2017", out=str(tmp_path / "evaluation"), precision=Precision.int8, backend=Backend.ort_cpu, threads=1)
    evaluate_source(cfg, progress=False)  # builds the window cache: the timed round is the warm-cache run
    benchmark.group = "real-scale evaluate"
    result = benchmark.pedantic(evaluate_source, args=(cfg,), kwargs={"progress": False}, rounds=1, iterations=1)
    counts = result.report["counts"]
    seconds = _seconds(benchmark)
    benchmark.extra_info.update(machine, source=str(result.report["source"]["path"]), precision=result.report["source"]["precision"],
                                backend=result.report["source"]["backend"], threads=1, records=counts["records_scored"],
                                windows=counts["windows"], seconds=round(seconds, 3), records_per_s=round(counts["records_scored"] / seconds, 1),
                                windows_per_s=round(counts["windows"] / seconds, 1), macro_f1=result.records.get("macro_f1"))
    assert result.report["source"]["precision"] == "int8" and counts["records_scored"] > 0.9 * n


def _first_cinc2017_records(training: Path, n: int, out: Path) -> Path:
    """Copies of the first ``n`` records (by id) of training2017 and their REFERENCE.csv rows, mtimes kept."""
    out.mkdir(parents=True)
    with open(training / "REFERENCE.csv", newline="") as f:
        rows = [r for r in csv.reader(f) if r][:n]
    for rid, _ in rows:
        for ext in (".hea", ".mat"):
            shutil.copy2(training / f"{rid}{ext}", out / f"{rid}{ext}")
    with open(out / "REFERENCE.csv", "w", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    return out


# ------------------------------------------------------------------------------------------ memory

# One epoch of the trainers' reads in a fresh process: shuffled batches of 64, each read sorted
# from the memory map and z-scored (ecgedge.train's _batches + normalise_windows). No model and
# no torch: the figure is the data path's, from the interpreter and numpy up.
_EPOCH_READS = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import numpy as np
    from ecgedge.data.preprocess import normalise_windows
    from ecgedge.data.store import WindowStore

    def kib(field):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])

    start_kib = kib("VmRSS")
    store = WindowStore.open(sys.argv[1])
    pre, batch = store.preprocess, int(sys.argv[2])
    order = np.random.default_rng(0).permutation(len(store))
    t0, total, reads = time.perf_counter(), 0.0, 0
    for i in range(0, len(order), batch):
        x, _ = normalise_windows(store[np.sort(order[i:i + batch])], pre)
        total += float(x[:, :, 0].sum())
        reads += len(x)
    print(json.dumps({"windows": reads, "seconds": time.perf_counter() - t0, "finite": bool(np.isfinite(total)),
                      "start_rss_kib": start_kib, "end_rss_kib": kib("VmRSS"), "peak_rss_kib": kib("VmHWM")}))
""")


def test_epoch_reads_peak_rss(benchmark, store, cae_cfg, machine):
    def run() -> dict:
        res = subprocess.run([sys.executable, "-c", _EPOCH_READS, str(store.path), str(cae_cfg.batch_size)],
                             capture_output=True, text=True, check=False)
        if res.returncode:
            raise AssertionError(f"epoch-reads worker failed ({res.returncode}):\n{res.stderr[-2000:]}")
        return json.loads(res.stdout.strip().splitlines()[-1])

    benchmark.group = "real-scale memory"
    out = benchmark.pedantic(run, rounds=1, iterations=1)
    mb = 1024 / 1e6
    benchmark.extra_info.update(machine, windows=out["windows"], batch=cae_cfg.batch_size, store_mb=round(len(store) * store.shape[1] * store.shape[2] * 4 / 1e6, 1),
                                peak_rss_mb=round(out["peak_rss_kib"] * mb, 1), start_rss_mb=round(out["start_rss_kib"] * mb, 1),
                                end_rss_mb=round(out["end_rss_kib"] * mb, 1), read_seconds=round(out["seconds"], 3),
                                windows_per_s=round(out["windows"] / out["seconds"], 1))
    assert out["windows"] == len(store) and out["finite"]
    assert out["peak_rss_kib"] * mb < PEAK_RSS_SANITY_MB, f"peak RSS {out['peak_rss_kib'] * mb:.0f} MB: the reads copied far more than a batch"
