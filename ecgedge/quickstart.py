"""``ecgedge quickstart``: the whole chain on a generated data set, on a fresh machine, in minutes.

synthetic 12-lead records (WFDB, ecg-arrhythmia layout) -> CAE pretraining on lead II ->
transfer classifier (chapman4) -> ONNX FP32 + INT8 export with the accuracy gate -> re-check of
the export folder through the torch-free runtime -> a short benchmark (PyTorch FP32 eager vs ONNX
Runtime FP32/INT8, batch 1 and 8, each in its own process) -> a live stream: the C simulated device
(``firmware_bridge/build/ecgsim``) plays a held-out synthetic atrial-fibrillation record, then, where
``../shared/data`` is at hand, a real Chapman-Shaoxing record, at 10x real time through the wire
protocol, and ``ecgedge stream``'s session classifies them window by window, printing rhythm and
signal-quality events as they happen; then a ward: one simulated device per held-out rhythm (and the
real record) connects to an ``ecgedge ward`` gateway for 20 s, its page's address printed while it
runs. Everything lands under one folder (the benchmark as ``bench.json``, the stream's JSON lines as
``stream.jsonl``, the ward's database as ``ward.sqlite``).

That folder is one ecgedge owns (house style 20, :func:`claim_quickstart`): new, empty, or a
quickstart's own folder from an earlier run, which a rerun writes over (its runs, export and data
are the quickstart's; each is replaced as its own command replaces it). A user's folder, an ecgedge
folder of another kind, or a user's file with one of the quickstart's names in it is refused
before anything is written; the marker lists every file the quickstart wrote.

The training sizes are chosen for 2 CPU cores and a few minutes, not for accuracy: the synthetic
rhythms are easy, and the point is the chain. Where ``make`` or a C compiler is missing the stream
step says so and is skipped (everything before it stands).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ecgedge.config import ClassifyConfig, DataConfig, ExportConfig, LabelScheme, PretrainConfig, WindowConfig
from ecgedge.errors import ConfigError
from ecgedge.fsio import MARKER, FolderKind, claim_in_place, clean_stale_temps, own_files, read_marker


QUICKSTART_GATE_WINDOWS = 40  # held-out windows the demo's gate needs (see the export step)
# With n gate windows one flipped decision moves agreement by 1/n and a class's F1 by up to about
# 2/(its windows): the default gate (99 %, 0.01, ExportConfig) tolerates no flip below 100 windows.
# The demo's 64 windows tolerate one, as the default tolerates one in 100 (7-bit INT8 weights, which
# make the result the same on every x86 CPU, flip a borderline window now and then).
QUICKSTART_MIN_AGREEMENT = 0.98
QUICKSTART_MAX_F1_DROP = 0.05

# What the quickstart writes in its folder: sub-folders (each written by its own command) and files.
QUICKSTART_FOLDERS = ("data", "cache", "runs", "export")
QUICKSTART_FILES = ("bench.json", "stream.jsonl", "stream-real.jsonl", "ward.sqlite", "ward.sqlite-wal", "ward.sqlite-shm")


def _legacy_quickstart(folder: Path) -> list[str] | None:
    """The files of a quickstart folder written before folder markers: a folder holding its generated
    data set and nothing but the quickstart's own names (and hidden leftovers); ``None`` otherwise."""
    names = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
    if not (folder / "data").is_dir() or any(n not in QUICKSTART_FOLDERS + QUICKSTART_FILES for n in names):
        return None
    return _written(folder, ())


def _written(out: Path, user: frozenset[str] | tuple) -> list[str]:
    """The quickstart's files now in ``out`` (its files and everything under its sub-folders), less ``user``."""
    found = [n for n in QUICKSTART_FILES if (out / n).is_file()]
    for sub in QUICKSTART_FOLDERS:
        if (out / sub).is_dir():
            found += [p.relative_to(out).as_posix() for p in (out / sub).rglob("*") if p.is_file() or p.is_symlink()]
    return [f for f in found if f not in user and not Path(f).name.endswith(".tmp")]


def claim_quickstart(out: str | Path) -> frozenset[str]:
    """Claim ``out`` for the quickstart (:func:`ecgedge.fsio.claim_in_place`): new, empty, or an earlier
    quickstart's folder (rerun over it). Refused (:class:`ConfigError`, nothing written): a user's
    folder, an ecgedge folder of another kind (a run, an export ...), a user's file named as one of
    the quickstart's (``bench.json``, ``ward.sqlite`` ...). The marker then lists those names (so
    a run killed while writing one leaves it the quickstart's). Returns the files already there that
    are not the quickstart's (a user's, kept and never listed)."""
    out = Path(out)
    owned = claim_in_place(out, FolderKind.quickstart, replace=True, legacy=_legacy_quickstart)
    clean_stale_temps(out)
    present = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() or p.is_symlink()} - {MARKER}
    user = frozenset(present - set(owned))
    clash = sorted(n for n in QUICKSTART_FILES if n in user)
    if clash:
        raise ConfigError(f"{out / clash[0]} is not the quickstart's and the quickstart writes a file of that name; "
                          "move it and run again (or choose another --out)")
    own_files(out, *QUICKSTART_FILES)  # its names from now on: a run killed while writing one leaves it listed
    return user


@dataclass(frozen=True)
class QuickstartConfig:
    """Sizes chosen so the chain finishes in a few minutes on 2 CPU cores."""

    out: str = "ecgedge-quickstart"
    records_per_rhythm: int = 40
    pretrain_epochs: int = 8
    classify_epochs: int = 25
    lr: float = 3e-3
    bench: bool = True
    stream: bool = True
    ward: bool = True
    ward_seconds: float = 20.0
    seed: int = 0


@dataclass
class QuickstartResult:
    out: Path
    steps: list[tuple[str, float, str]] = field(default_factory=list)


def quickstart(cfg: QuickstartConfig, *, progress: bool = True, log=print) -> QuickstartResult:
    from ecgedge.data.synthetic_records import write_wfdb_dataset
    from ecgedge.export.check import check_export
    from ecgedge.export.pipeline import main_export
    from ecgedge.train import classify, pretrain

    out = Path(cfg.out)
    user = claim_quickstart(out)
    res = QuickstartResult(out)
    data_dir, cache = out / "data", out / "cache"

    def step(name, fn):
        log(f"\n== {name}")
        t = time.perf_counter()
        try:
            value, where = fn()
        finally:  # listed as written, an interrupted step's files too
            own_files(out, *_written(out, user))
        res.steps.append((name, time.perf_counter() - t, where))
        return value

    heas = step("1/9 generate a synthetic 12-lead data set (WFDB, ecg-arrhythmia layout)", lambda: (
        write_wfdb_dataset(data_dir, records_per_rhythm=cfg.records_per_rhythm, seed=cfg.seed, progress=progress), str(data_dir)))
    data = DataConfig(paths=(str(data_dir),), cache_dir=str(cache))
    cae = step("2/9 pretrain the CAE on lead II", lambda: (lambda r: (r, str(r.checkpoint)))(pretrain(PretrainConfig(
        data=data, window=WindowConfig(hop=128), epochs=cfg.pretrain_epochs, batch_size=32, lr=cfg.lr, seed=cfg.seed, run_dir=str(out / "runs" / "cae")), progress=progress, overwrite=True)))
    log(f"CAE held-out MSE {cae.metrics['held_out']['mse_normalised']:.4f} (normalised), {cae.metrics['held_out']['mse_uv2']:.1f} µV²")
    clf = step("3/9 train the transfer classifier (chapman4: SB, AFIB, GSVT, SR)", lambda: (lambda r: (r, str(r.checkpoint)))(classify(ClassifyConfig(
        data=data, labels=LabelScheme.chapman4, init=str(cae.checkpoint), epochs=cfg.classify_epochs, lr=cfg.lr, batch_size=16, seed=cfg.seed,
        run_dir=str(out / "runs" / "classifier")), progress=progress, overwrite=True)))
    rec = clf.metrics["test"]["records"]
    log(f"held-out macro F1 {rec['macro_f1']:.3f}, weighted F1 {rec['weighted_f1']:.3f} on {clf.metrics['records']['test']} records")
    # The demo's test split holds out one window per record (64 at the default size), fewer than the
    # gate's default minimum of 100 (ExportConfig): enough to show the chain, not to certify a model;
    # its gate tolerates one flipped window (QUICKSTART_MIN_AGREEMENT).
    exp = step("4/9 export ONNX FP32 + INT8 and run the accuracy gate", lambda: (lambda r: (r, str(r.folder)))(main_export(ExportConfig(
        source=str(clf.run_dir), out=str(out / "export"), int8=True, min_gate_windows=QUICKSTART_GATE_WINDOWS,
        min_agreement=QUICKSTART_MIN_AGREEMENT, max_f1_drop=QUICKSTART_MAX_F1_DROP), progress=progress, log=log)))
    step("5/9 re-verify the export folder with the torch-free runtime (as a device would)", lambda: (
        check_export(exp.folder, log=log), str(exp.folder / "manifest.json")))
    if cfg.bench:
        step("6/9 benchmark: PyTorch FP32 eager vs ONNX Runtime FP32 / INT8 (each in its own process)",
             lambda: _bench(exp.folder, out / "bench.json", log))
    if cfg.stream:
        step("7/9 stream ECG from the simulated bedside device (C, wire protocol) into ecgedge stream",
             lambda: _stream(exp.folder, _held_out_record(clf, heas, "AFIB"), out / "stream.jsonl", log))

    if cfg.stream:
        step("8/9 a real model on real ECG: the shipped CinC-2017 classifier streams a real AF record",
             lambda: _stream_shipped(out / "stream-real.jsonl", log))

    if cfg.ward:
        step("9/9 a ward: simulated bedside devices -> one ecgedge ward gateway -> database -> central-station page",
             lambda: _ward(exp.folder, clf, heas, out, cfg.ward_seconds, log))

    log("\nwhere everything went:")
    for name, secs, where in res.steps:
        log(f"  {name.split(' ', 1)[1][:60]:<62} {secs:6.1f} s  {where}")
    return res


def _ward(export: Path, clf, heas: list[Path], out: Path, seconds: float, log) -> tuple[object, str]:
    """A gateway for ``seconds``: one ecgsim device per held-out synthetic rhythm (and the real Chapman
    record where ../shared/data has it) at twice real time, each its own bed; the page's address is
    printed while it runs, the events per bed at the end (``ward.sqlite``)."""
    import subprocess

    from ecgedge.bridge.sources import ecgsim_path
    from ecgedge.errors import StreamError

    try:
        sim = ecgsim_path()
        from ecgedge.ward.config import WardConfig
        from ecgedge.ward.gateway import run_ward, ward_extra_missing
    except StreamError as exc:
        log(f"skipped: {exc}")
        return None, "skipped (no simulated device)"
    except ImportError:
        log("skipped: the ward needs its extra: pip install 'ecgedge[ward]'")
        return None, "skipped (pip install 'ecgedge[ward]')"
    if missing := ward_extra_missing():
        log(f"skipped: {missing}")
        return None, "skipped (pip install 'ecgedge[ward]')"
    plays = [(r, f"synthetic {rhythm}") for rhythm in ("SR", "AFIB", "SB", "GSVT") if (r := _held_out_record(clf, heas, rhythm))]
    if (real := _real_record()) is not None:
        plays.append((real, "real Chapman JS00001"))
    db = out / "ward.sqlite"
    listed = set((read_marker(out) or {"files": []})["files"])
    for leftover in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        if leftover.exists() and leftover.name in listed:
            leftover.unlink()  # the quickstart's own database from an earlier run (listed in its folder's marker)
    devices: list = []

    def start_devices(gateway) -> None:
        host, port = gateway.listen_address
        log(f"  open {gateway.url}  (the gateway runs {seconds:g} s)")
        for bed, (record, what) in enumerate(plays, start=1):
            log(f"  bed {bed}: {what}: ecgsim --speed 2 --loop --stream-id {bed} --tcp-connect {host}:{port} {record}")
            devices.append(subprocess.Popen([str(sim), "--quiet", "--speed", "2", "--loop", "--stream-id", str(bed),
                                             "--tcp-connect", f"{host}:{port}", record],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    cfg = WardConfig(export=str(export), listen="tcp://127.0.0.1:0", http="127.0.0.1:0", db=str(db))
    try:
        status = run_ward(cfg, log=lambda line: None, on_start=start_devices, seconds=seconds)
    finally:
        for p in devices:
            p.kill()
            p.wait()
    from ecgedge.ward.store import WardReader

    with WardReader(str(db)) as reader:
        for b in reader.beds():
            alarms = reader.alarms(open_only=False, bed=b["bed"])
            log(f"  bed {b['bed']}: rhythm {b['rhythm'] or '-'}, heart rate {b['hr_bpm'] or '-'} bpm, "
                f"{len(reader.events(bed=b['bed']))} events, {len(alarms)} alarms ({', '.join(sorted({a['alarm'] for a in alarms})) or 'none'})")
    log(f"  {status['events']} events kept in {db}; p99 latency {status['latency_p99_s']} s from a frame to the page\n"
        f"  run it yourself: ecgedge ward {export} --db {db}   (devices: ecgsim --stream-id N --tcp-connect 127.0.0.1:5600 RECORD)\n"
        f"  read it back:    ecgedge ward events --db {db} [--bed 1] [--format csv|fhir]")
    return status, str(db)


def _bench(export: Path, json_path: Path, log) -> tuple[object, str]:
    from ecgedge.bench import BenchBackend, BenchConfig, main_bench, write_json

    cfg = BenchConfig(export=str(export), backends=(BenchBackend.torch, BenchBackend.ort_cpu), batches=(1, 8), threads=(1,),
                      warmup=5, repeats=50, max_seconds=2.0, rtf_steps=20)
    report = main_bench(cfg, log=lambda _m: None)
    log(report.render())
    return report, str(write_json(report, json_path))


def _stream(export: Path, record: str | None, jsonl: Path, log) -> tuple[object, str]:
    """Stream the held-out synthetic record, then a real Chapman record when one is at hand, through
    the simulated device at 10x real time; events are printed as they happen."""
    from ecgedge.errors import StreamError
    from ecgedge.bridge.sources import ecgsim_path

    try:
        ecgsim_path()
    except StreamError as exc:
        log(f"skipped: {exc}")
        return None, "skipped (no simulated device)"
    plays = []
    if record is not None:
        plays.append((record, "a held-out synthetic AFIB record (the model's own domain)"))
    real = _real_record()
    if real is not None:
        plays.append((real, "a real Chapman-Shaoxing record from ../shared/data (true rhythm in its header: "
                            f"{_true_rhythm(real)}); the quickstart model has seen only synthetic ECG"))
    if not plays:
        log("skipped: no held-out AFIB record in the run's test split")
        return None, "skipped (no record to stream)"
    summary = None
    with open(jsonl, "w") as sink:
        for rec, what in plays:
            log(f"{what}:\n  ecgsim --speed 10 --loop --seconds 30 {rec}  ->  ecgedge stream (INT8)")
            summary = _stream_one(export, rec, sink, log)
    return summary, str(jsonl)


def _stream_one(export: Path, record: str, sink, log) -> dict:
    import json

    from ecgedge.stream.run import StreamConfig, stream_from_export

    def emit(rec: dict) -> None:
        sink.write(json.dumps(rec, separators=(",", ":")) + "\n")
        if rec["type"] in ("rhythm_change", "quality", "gap", "decode_error"):
            log("  " + json.dumps({k: v for k, v in rec.items() if k != "stream"}, separators=(",", ":")))

    # 10x real time: 30 s of signal in 3 s, the events appearing as the windows are classified.
    summary = stream_from_export(StreamConfig(export=str(export), source=f"wfdb:{record}@10",
                                              sim_args=("--loop", "--seconds", "30")), emit)
    bed = summary["streams"][0]
    log(f"  summary: {bed['received']} samples received, {bed['lost']} lost, {bed['windows_ok']} windows classified, "
        f"{bed['windows_unreliable']} unreliable, rhythm now {bed['rhythm']}")
    return summary


def _shared_data() -> Path | None:
    """``../shared/data`` (or ``$ECGEDGE_SHARED_DATA``), if this machine has it."""
    import os

    roots = [os.environ.get("ECGEDGE_SHARED_DATA"), Path(__file__).resolve().parents[2] / "shared" / "data",
             Path.cwd().parent / "shared" / "data"]
    return next((Path(r) for r in roots if r and Path(r).is_dir()), None)


def _real_record() -> str | None:
    """A real 12-lead record from the shared data, if this machine has one."""
    root = _shared_data()
    hea = root / "chapman" / "WFDBRecords" / "01" / "010" / "JS00001.hea" if root else None
    return str(hea.with_suffix("")) if hea is not None and hea.is_file() else None


SHIPPED_CLASSIFIER = "cinc2017-rhythm"


def _real_af_record() -> tuple[str, str] | None:
    """(WFDB path, true label) of a CinC-2017 validation record labelled A (atrial fibrillation): the
    shipped classifier held these 30 records out of its training (``--holdout``)."""
    root = _shared_data()
    folder = root / "cinc2017" / "validation" if root else None
    if folder is None or not (folder / "REFERENCE.csv").is_file():
        return None
    for line in (folder / "REFERENCE.csv").read_text().split():
        rid, label = line.split(",")
        if label == "A" and (folder / f"{rid}.hea").is_file():
            return str(folder / rid), label
    return None


def _stream_shipped(jsonl: Path, log) -> tuple[object, str]:
    """Stream a real AF record (single lead, 300 Hz, resampled by the stream to the model's 250 Hz)
    through the simulated device into the shipped CinC-2017 classifier."""
    from ecgedge.errors import ConfigError, StreamError
    from ecgedge.shipped import shipped_model
    from ecgedge.bridge.sources import ecgsim_path

    try:
        ecgsim_path()
        model = shipped_model(SHIPPED_CLASSIFIER)
    except (StreamError, ConfigError) as exc:
        log(f"skipped: {exc}")
        return None, "skipped"
    found = _real_af_record()
    if found is None:
        log("skipped: no CinC-2017 validation records in ../shared/data (or $ECGEDGE_SHARED_DATA)")
        return None, "skipped (no real record)"
    record, truth = found
    log(f"the shipped model {model.name} ({model.summary}); a held-out CinC-2017 record, true label {truth} (AF):\n"
        f"  ecgsim --speed 10 --loop --seconds 30 {record}  ->  ecgedge stream {model.name}")
    with open(jsonl, "w") as sink:
        summary = _stream_one(model.path, record, sink, log)
    return summary, str(jsonl)


def _true_rhythm(record: str) -> str:
    from ecgedge.data.labels import record_label
    from ecgedge.data.records import read_record
    from ecgedge.errors import BadRecord

    try:
        return record_label(read_record(record + ".hea"), "chapman4")
    except BadRecord as exc:
        return f"unreadable ({exc.reason})"


def _held_out_record(clf, heas: list[Path], rhythm: str) -> str | None:
    """WFDB path (no extension) of a test-split record generated as ``rhythm`` (its ``#Synthetic:`` line)."""
    import json

    test = set(json.loads((clf.run_dir / "split.json").read_text())["test"])
    for hea in heas:
        if hea.stem in test and f"#Synthetic: ecgedge {rhythm} " in hea.read_text():
            return str(hea.with_suffix(""))
    return None
