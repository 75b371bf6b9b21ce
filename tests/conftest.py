"""Shared fixtures: where the real records live, and skips that say why."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ECGEDGE_SHARED_DATA", REPO.parent / "shared" / "data"))
BRIDGE = REPO / "firmware_bridge"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``$ECGEDGE_SHARED_DATA``); tests using it skip cleanly where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real ECG records not found at {SHARED_DATA} (see README: 'Real data for tests')")
    return SHARED_DATA


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> Path:
    """A generated 12-lead data set (16 records per rhythm, 8 rhythms) in ecg-arrhythmia WFDB layout."""
    from ecgedge.data.synthetic_records import write_wfdb_dataset

    root = tmp_path_factory.mktemp("synth")
    write_wfdb_dataset(root / "data", records_per_rhythm=16, seed=7)
    return root


@pytest.fixture(scope="session")
def cae_run(synth):
    """A CAE pretrained for a few epochs on lead II of the generated set."""
    from ecgedge.config import DataConfig, PretrainConfig, WindowConfig
    from ecgedge.train import pretrain

    cfg = PretrainConfig(data=DataConfig(paths=(str(synth / "data"),), cache_dir=str(synth / "cache")), window=WindowConfig(hop=128),
                         epochs=8, batch_size=32, lr=3e-3, seed=0, run_dir=str(synth / "runs" / "cae"))
    return pretrain(cfg, progress=False)


@pytest.fixture(scope="session")
def clf_run(synth, cae_run):
    """A chapman4 transfer classifier trained on the generated set (the run the export tests gate)."""
    from ecgedge.config import ClassifyConfig, DataConfig, LabelScheme
    from ecgedge.train import classify

    cfg = ClassifyConfig(data=DataConfig(paths=(str(synth / "data"),), cache_dir=str(synth / "cache")), labels=LabelScheme.chapman4,
                         init=str(cae_run.checkpoint), epochs=30, lr=3e-3, batch_size=16, seed=0, run_dir=str(synth / "runs" / "clf"))
    return classify(cfg, progress=False)


@pytest.fixture(scope="session")
def build() -> Path:
    """firmware_bridge/build with ecgsim and ecgbdump built (skips where make or gcc is missing)."""
    missing = [tool for tool in ("make", "gcc") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not found: the C firmware bridge cannot be built here")
    subprocess.run(["make", "-C", str(BRIDGE), "all"], check=True, capture_output=True, timeout=120)
    return BRIDGE / "build"


@pytest.fixture(scope="session")
def source_adu(chapman):
    """JS00001's raw ADC integers (12, 5000) as an int64 array; 1 µV per unit, baseline 0."""
    wfdb = pytest.importorskip("wfdb", reason="wfdb reads the source record")
    return wfdb.rdrecord(str(chapman), physical=False).d_signal.T.astype("int64")


@pytest.fixture(scope="session")
def chapman(shared_data) -> Path:
    """The real Chapman-Shaoxing record JS00001 (WFDB path without extension)."""
    path = shared_data / "chapman" / "WFDBRecords" / "01" / "010" / "JS00001"
    if not path.with_suffix(".hea").is_file():
        pytest.skip(f"record {path} not found")
    return path


@pytest.fixture(scope="session")
def wfdb():
    """The wfdb module (writes and reads WFDB records); its tests skip where the 'records' extra is missing."""
    return pytest.importorskip("wfdb", reason="wfdb (the 'records' extra) writes and reads WFDB records")
