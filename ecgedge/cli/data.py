"""``ecgedge data build|info``: window stores (thin wrappers over :mod:`ecgedge.data.store`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ecgedge.cli.common import echo, user_errors
from ecgedge.config import DataConfig, LabelScheme, WindowConfig
from ecgedge.data.store import DEFAULT_SHARD_WINDOWS, WindowStore, build_store

app = typer.Typer(help="Window stores: records converted once into sharded, memory-mapped windows.", no_args_is_help=True)

_WINDOW = WindowConfig()


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
