"""``ecgedge data build|info|download``: window stores (thin wrappers over :mod:`ecgedge.data.store`) and
PhysioNet downloads (over :mod:`ecgedge.data.download`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ecgedge.cli.common import echo, user_errors
from ecgedge.config import DataConfig, LabelScheme, WindowConfig
from ecgedge.data.download import BASE_URL_ENV, DATABASES, PHYSIONET_URL, DownloadConfig, databases_table, download_database
from ecgedge.data.store import DEFAULT_SHARD_WINDOWS, WindowStore, build_store
from ecgedge.errors import storage_errors

app = typer.Typer(help="Window stores: records converted once into sharded, memory-mapped windows; PhysioNet downloads.",
                  no_args_is_help=True)

_WINDOW = WindowConfig()
_DOWNLOAD = DownloadConfig()


@app.command("build")
@user_errors
def build_cmd(
    paths: list[Path] = typer.Argument(..., exists=True, help="Record files or folders (searched recursively)."),
    out: Path = typer.Option(..., "--out", help="Store folder to create (must not exist, or be empty)."),
    leads: str = typer.Option("II", "--leads", "--lead", help="Lead(s) to keep, comma-separated (e.g. II, or I,II,V1)."),
    samples: int = typer.Option(_WINDOW.samples, min=64, help="Window length in samples at 250 Hz."),
    hop: int = typer.Option(_WINDOW.hop, min=1, help="Samples between windows of one record at 250 Hz."),
    max_per_record: int = typer.Option(_WINDOW.max_per_record, min=0, help="Most recent windows kept per record (0 = all)."),
    labels: Optional[LabelScheme] = typer.Option(None, help="Label scheme for per-window labels (default: unlabeled)."),
    labels_file: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="Label table: Diagnostics.xlsx, REFERENCE.csv or metadata.csv."),
    shard_windows: int = typer.Option(DEFAULT_SHARD_WINDOWS, min=1, help="Windows per shard file (the last shard may hold fewer)."),
    workers: int = typer.Option(0, min=0, help="Record-reading processes (0 = up to 4)."),
    max_records: int = typer.Option(0, min=0, help="Read at most this many records (0 = all)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out folder."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Convert records once into a window store: float32 band-passed mV shards, an index and store.json."""
    with storage_errors(f"build the window store {out}"):
        store = build_store(
            DataConfig(paths=tuple(map(str, paths)), labels_file=str(labels_file) if labels_file else None,
                       max_records=max_records, workers=workers),
            out, [x.strip() for x in leads.split(",") if x.strip()],
            window=WindowConfig(samples=samples, hop=hop, max_per_record=max_per_record), scheme=labels,
            shard_windows=shard_windows, overwrite=overwrite, progress=not quiet,
        )
    echo(store.describe())


@app.command("info")
@user_errors
def info_cmd(
    store: Path = typer.Argument(..., exists=True, file_okay=False, help="A window store folder."),
    verify: bool = typer.Option(False, "--verify", help="Re-hash every shard against store.json."),
):
    """Describe a window store (counts, leads, shards, skipped records); --verify checks its hashes."""
    ws = WindowStore.open(store, verify=verify)
    echo(ws.describe())
    if verify:
        echo(f"sha256 of {len(ws.manifest['shards'])} shard(s), index and records: ok")


@app.command("download", epilog="Known databases:\n\n" + databases_table().replace("\n", "\n\n"))
@user_errors
def download_cmd(
    name: str = typer.Argument(..., help=f"Database: {', '.join(DATABASES)}."),
    to: Path = typer.Option(..., "--to", file_okay=False, help="Folder to download into (created; files already there with the right sha256 are kept)."),
    include: Optional[list[str]] = typer.Option(None, "--include", help="Only paths matching this glob, e.g. 'training/*' (* also matches /; repeatable)."),
    max_files: int = typer.Option(_DOWNLOAD.max_files, min=0, help="Fetch at most this many of the selected files (0 = all)."),
    workers: int = typer.Option(_DOWNLOAD.workers, min=1, help="Parallel transfers."),
    attempts: int = typer.Option(_DOWNLOAD.attempts, min=1, help="Tries per file before it counts as failed (with backoff)."),
    timeout: float = typer.Option(_DOWNLOAD.timeout_s, min=0.1, help="Seconds a request may wait to connect or for the next data."),
    base_url: Optional[str] = typer.Option(None, help=f"Server (default: ${BASE_URL_ENV}, else {PHYSIONET_URL})."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Download a PhysioNet database, every file checked against its SHA256SUMS.txt; run again to resume."""
    result = download_database(
        name, to, DownloadConfig(include=tuple(include or ()), max_files=max_files, workers=workers, attempts=attempts, timeout_s=timeout),
        base_url=base_url, progress=not quiet,
    )
    echo(result.describe())
    result.raise_if_failed()


@app.command("paroxysmal")
@user_errors
def paroxysmal_cmd(
    out: Path = typer.Argument(..., help="Folder for the records (created)."),
    records: int = typer.Option(1, min=1, help="Recordings to write (PAF001, PAF002, ...), seeds SEED, SEED+1, ..."),
    hours: float = typer.Option(1.0, min=0.01, help="Length of each recording, hours."),
    fs: float = typer.Option(250.0, min=100.0, help="Sampling rate, Hz."),
    leads: str = typer.Option("II", help="Leads to write, comma-separated (any of the standard 12)."),
    af_burden: float = typer.Option(0.3, min=0.0, max=0.99, help="Share of the time in AF."),
    mean_af_s: float = typer.Option(300.0, min=1.0, help="Mean AF episode length, s."),
    flutter_share: float = typer.Option(0.0, min=0.0, max=1.0, help="Share of non-AF episodes that are atrial flutter."),
    noise_bursts_per_hour: float = typer.Option(2.0, min=0.0, help="Artefact bursts per hour."),
    electrode_off_per_hour: float = typer.Option(1.0, min=0.0, help="Electrode-off (flat line) spells per hour."),
    seed: int = typer.Option(0, min=0),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Write long WFDB recordings with paroxysmal AF, artefact bursts and electrode-off spells, annotated
    in a MIT-style .atr (rhythm changes, noise): ground truth for `ecgedge evaluate stream`."""
    from ecgedge.data.paroxysmal import ParoxysmalConfig, write_paroxysmal_set

    cfg = ParoxysmalConfig(duration_s=hours * 3600.0, fs_hz=fs, leads=tuple(x.strip() for x in leads.split(",") if x.strip()),
                           af_burden=af_burden, mean_af_s=mean_af_s, flutter_share=flutter_share,
                           noise_bursts_per_hour=noise_bursts_per_hour, electrode_off_per_hour=electrode_off_per_hour, seed=seed)
    with storage_errors(f"write records to {out}"):
        paths = write_paroxysmal_set(out, records=records, cfg=cfg, progress=not quiet)
    echo(f"{len(paths)} recording(s) of {hours:g} h at {fs:g} Hz, leads {', '.join(cfg.leads)}, in {out}")
