"""Window stores: built from real and generated records, read back bit for bit, and their CLI.

"Bit for bit" is exact equality (no tolerance): a store and ``build_windows`` run the same reader,
preprocessing and windowing code on the same records, and the store only moves float32 bytes.
"""

import json
import pickle

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ecgedge.cli.data import app
from ecgedge.config import DataConfig, LabelScheme, PreprocessConfig, PretrainConfig, WindowConfig, config_from_toml
from ecgedge.data.preprocess import preprocess_signal
from ecgedge.data.records import find_records, read_record, select_leads
from ecgedge.data.store import WindowStore, build_store, is_store
from ecgedge.data.windows import build_windows
from ecgedge.errors import ArtefactError, ConfigError
from ecgedge.models.checkpoint import load_checkpoint
from ecgedge.train import pretrain

BROKEN_HEADER = "BROKEN1 1 500 5000\nBROKEN1.mat 16+24 1000/mV 16 0 0 0 0 II\n"  # its .mat is missing


def _assert_same_windows(store: WindowStore, ws) -> None:
    assert store.record_ids == ws.record_ids
    assert np.array_equal(store.index["record"], ws.window_record)
    assert np.array_equal(store.index["start"], ws.window_start)
    assert np.array_equal(store.index["label"], ws.labels)
    assert store.shape == ws.windows.shape
    assert np.array_equal(store[:], np.asarray(ws.windows))


@pytest.mark.data
@pytest.mark.slow
def test_store_of_real_records_equals_build_windows(shared_data, tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "BROKEN1.hea").write_text(BROKEN_HEADER)
    # Named sub-folders and files, not the whole (growing) tree: bounded at about 90 records.
    paths = [shared_data / "chapman", shared_data / "cinc2021", shared_data / "mitdb" / "100.hea", shared_data / "mitdb" / "208.hea",
             shared_data / "cinc2017" / "validation", tmp_path / "bad"]
    data = DataConfig(paths=tuple(map(str, paths)), cache_dir=str(tmp_path / "cache"), workers=2)
    window = WindowConfig(hop=2048)
    store = build_store(data, tmp_path / "store", ("II",), window=window, shard_windows=256, progress=False)
    ws = build_windows(data, ("II",), PreprocessConfig(), window, progress=False)
    _assert_same_windows(store, ws)

    n = len(store)
    shards = store.manifest["shards"]
    assert len(shards) == -(-n // 256) > 1
    assert [s["windows"] for s in shards[:-1]] == [256] * (len(shards) - 1) and sum(s["windows"] for s in shards) == n
    assert [s["file"] for s in shards] == sorted(p.name for p in (tmp_path / "store").glob("shard-*.npy"))
    assert np.load(tmp_path / "store" / shards[0]["file"], mmap_mode="r").shape == (256, 1, 2048)
    assert store.manifest["skipped"] == {"BROKEN1": "missing data file BROKEN1.mat"} == ws.summary.skipped
    counts = store.manifest["counts"]
    assert counts["records_used"] + counts["records_skipped"] == counts["records_found"] == ws.summary.found
    assert "missing data file" in store.describe() and "BROKEN1" in store.describe()
    store.verify()

    # Indexing: ints (negative too), slices across a shard boundary, unsorted arrays, masks, record ids.
    ref = np.asarray(ws.windows)
    idx = np.random.default_rng(0).permutation(n)[:50]
    assert np.array_equal(store[idx], ref[idx])
    assert np.array_equal(store[250:260], ref[250:260]) and np.array_equal(store[-1], ref[-1])
    assert np.array_equal(store[::97], ref[::97])
    mask = np.zeros(n, bool)
    mask[[3, 300]] = True
    assert np.array_equal(store[mask], ref[[3, 300]])
    assert np.array_equal(store.windows_of_records(["208", "JS00001"]), ws.windows_of_records([ws.record_ids.index("208"), ws.record_ids.index("JS00001")]))
    with pytest.raises(IndexError):
        store[n]


def test_store_of_generated_records_with_labels_and_leads(synth, tmp_path):
    data = DataConfig(paths=(str(synth / "data"),), cache_dir=str(tmp_path / "cache"), workers=1)
    leads = ("I", "II", "V1")
    store = build_store(data, tmp_path / "store", leads, scheme=LabelScheme.chapman4, shard_windows=50, progress=False)
    ws = build_windows(data, leads, PreprocessConfig(), WindowConfig(), LabelScheme.chapman4, progress=False)
    _assert_same_windows(store, ws)
    assert store.class_names == ws.class_names == ("SB", "AFIB", "GSVT", "SR")
    assert set(store.index["record_id"][store.index["record"] == 5]) == {store.record_ids[5]}

    # A lead view reads only its leads and matches the full windows' columns.
    v1 = store.with_leads(["V1"])
    assert v1.shape == (len(store), 1, 2048) and np.array_equal(v1[10:70], store[10:70][:, 2:3])
    with pytest.raises(ConfigError, match="not V6"):
        store.with_leads(["V6"])

    # The same windows straight from the reader and the one preprocessing chain.
    ref = find_records(synth / "data")[0]
    rec = read_record(ref)
    pre = preprocess_signal(select_leads(rec, leads), rec.fs, PreprocessConfig())
    i = store.windows_of_records([rec.record_id])[0]
    start = int(store.index["start"][i])
    assert np.array_equal(store[i], pre[:, start:start + 2048].astype(np.float32))

    # Pickles as its path: a loader worker or a spawned rank maps the shards itself.
    blob = pickle.dumps(v1)
    assert len(blob) < 1000 and np.array_equal(pickle.loads(blob)[:5], v1[:5])


def test_pretrain_on_a_store_equals_pretrain_on_its_records(synth, tmp_path):
    data = DataConfig(paths=(str(synth / "data"),), cache_dir=str(synth / "cache"))
    build_store(data, tmp_path / "store", ("II",), window=WindowConfig(hop=128), shard_windows=100, progress=False)
    assert is_store(tmp_path / "store")

    def run(paths, name):
        cfg = config_from_toml(PretrainConfig, None, data__paths=paths, data__cache_dir=str(synth / "cache"), window__hop=128,
                               model__channels=[4, 8], model__kernels=[5, 3], epochs=1, batch_size=16, max_windows=48,
                               run_dir=str(tmp_path / name))
        return pretrain(cfg, progress=False)

    from_records, from_store = run([str(synth / "data")], "records"), run([str(tmp_path / "store")], "from-store")
    a, b = load_checkpoint(from_records.checkpoint).state_dict, load_checkpoint(from_store.checkpoint).state_dict
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((from_store.run_dir / "data_summary.json").read_text()) == json.loads((from_records.run_dir / "data_summary.json").read_text())
    with pytest.raises(ConfigError, match="only --data path"):
        run([str(tmp_path / "store"), str(synth / "data")], "mixed")


def test_cli_build_info_and_bad_input(synth, tmp_path):
    r = CliRunner(env={"COLUMNS": "300"})  # wide enough that Typer's error box does not wrap the path
    assert "--shard-windows" in r.invoke(app, ["build", "--help"]).output
    assert "build" in r.invoke(app, ["--help"]).output

    res = r.invoke(app, ["build", str(tmp_path / "nowhere"), "--out", str(tmp_path / "s")])
    assert res.exit_code == 2 and f"path '{tmp_path / 'nowhere'}' does not exist" in res.output

    out = tmp_path / "store"
    res = r.invoke(app, ["build", str(synth / "data"), "--out", str(out), "--lead", "II", "--hop", "512", "--shard-windows", "40", "-q"])
    assert res.exit_code == 0, res.output
    assert "128 windows" in res.output and "in 4 shard(s) of 40" in res.output

    res = r.invoke(app, ["build", str(synth / "data"), "--out", str(out), "-q"])
    assert res.exit_code == 2 and "already holds an ecgedge window store" in res.output and "--overwrite" in res.output

    res = r.invoke(app, ["build", str(synth / "data"), "--out", str(tmp_path / "v9"), "--lead", "V9", "-q"])
    assert res.exit_code == 2 and "no usable windows" in res.output and "128 skipped" in res.output and "missing lead" in res.output
    assert not [p for p in tmp_path.iterdir() if "v9" in p.name]  # no store, no half-built folder left behind

    res = r.invoke(app, ["info", str(out), "--verify"])
    assert res.exit_code == 0 and "ok" in res.output
    shard = out / "shard-00001.npy"
    raw = bytearray(shard.read_bytes())
    raw[-1] ^= 0xFF
    shard.write_bytes(bytes(raw))
    res = r.invoke(app, ["info", str(out), "--verify"])
    assert res.exit_code == 2 and "sha256 differs" in res.output and "shard-00001.npy" in res.output
    with pytest.raises(ArtefactError, match="not a window store"):
        WindowStore.open(tmp_path)


def test_a_store_manifest_naming_files_outside_the_store_is_refused(synth, tmp_path):
    data = DataConfig(paths=(str(synth / "data"),), cache_dir=str(tmp_path / "cache"), workers=1, max_records=4)
    build_store(data, tmp_path / "store", ("II",), progress=False)
    manifest = json.loads((tmp_path / "store" / "store.json").read_text())
    (tmp_path / "outside.npy").write_bytes((tmp_path / "store" / manifest["shards"][0]["file"]).read_bytes())
    manifest["shards"][0]["file"] = "../outside.npy"
    (tmp_path / "store" / "store.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtefactError, match="outside"):
        WindowStore.open(tmp_path / "store")
