"""``ecgedge bench``: one table of latency, throughput, real-time factor, memory and cold start per configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, cast

import typer

from ecgedge.bench import BenchBackend, BenchConfig, main_bench, write_json
from ecgedge.cli.common import choices_option, echo, export_folder_argument, parse_ints, user_errors
from ecgedge.config import Precision

D = BenchConfig  # defaults live in one place: the config's


@user_errors
def bench_cmd(
    export: Path = export_folder_argument(),
    backend: str = choices_option(BenchBackend, ",".join(b.value for b in D.backends),
                                  "Comma-separated: torch (the PyTorch FP32 eager baseline), ort-cpu, ort-cuda, ort-trt, tensorrt."),
    precision: Optional[str] = choices_option(Precision, None, "Comma-separated fp32,fp16,int8 (default: every precision the export holds)."),
    batch: str = typer.Option(",".join(map(str, D.batches)), help="Comma-separated batch sizes (windows per call)."),
    threads: str = typer.Option(",".join(map(str, D.threads)), help="Comma-separated intra-op thread counts."),
    warmup: int = typer.Option(D.warmup, min=0, help="Untimed calls before timing (and untimed stream steps before the RTF)."),
    repeats: int = typer.Option(D.repeats, min=1, help="Timed calls per configuration (fewer if --max-seconds runs out first)."),
    max_seconds: float = typer.Option(D.max_seconds, min=0.01, help="Bound on each timed loop of a configuration, in seconds."),
    rtf_steps: int = typer.Option(D.rtf_steps, min=1, help="Timed 1-s hops of the stream monitor (BedMonitor + model) for the real-time factor of batch-1 rows."),
    rtf_beds: int = typer.Option(D.rtf_beds, min=1, help="Beds in one StreamHub for the real-time factor per core (RTF/core column); 1 skips it."),
    source_fs: float = typer.Option(D.source_fs_hz, min=1.0, help="Sampling rate of the synthetic ECG fed to the stream monitor for the RTF, in Hz."),
    checkpoint: Optional[Path] = typer.Option(None, exists=True, dir_okay=False,
                                              help="Checkpoint of the PyTorch baseline (default: the manifest's source.checkpoint)."),
    baseline: bool = typer.Option(D.baseline, "--baseline/--no-baseline", help="Measure the PyTorch FP32 baseline even when torch is not in --backend."),
    include_rejected: bool = typer.Option(D.include_rejected, "--include-rejected", help="Also measure artefacts the accuracy gate rejected."),
    steady_malloc: bool = typer.Option(D.steady_malloc, "--steady-malloc/--default-malloc",
                                       help="Fix glibc's malloc thresholds in every worker so PyTorch eager does not page-fault its "
                                            "activations in on every call; --default-malloc measures an untuned process."),
    json_out: Optional[Path] = typer.Option(None, "--json", dir_okay=False,
                                            help="Write every row, the targets and the machine's description as JSON."),
    key: Optional[Path] = typer.Option(None, "--key", exists=True, dir_okay=False, help="Ed25519 public key (PEM) the export must be signed by (a signature that exists is checked without it)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress line per configuration."),
):
    """Measure every backend x precision x batch x threads, each in a fresh process, against PyTorch FP32 eager and the machine's FP32 and INT8 peaks."""
    # choices_option's callback hands the command tuples of members where typer's annotation says str.
    cfg = BenchConfig(
        export=str(export), backends=cast("tuple[BenchBackend, ...]", backend), precisions=cast("tuple[Precision, ...]", precision or ()),
        batches=parse_ints(batch, "--batch"), threads=parse_ints(threads, "--threads"), warmup=warmup, repeats=repeats,
        max_seconds=max_seconds, rtf_steps=rtf_steps, rtf_beds=rtf_beds, source_fs_hz=source_fs, checkpoint=str(checkpoint) if checkpoint else None,
        baseline=baseline, include_rejected=include_rejected, steady_malloc=steady_malloc, public_key=str(key) if key else None,
    )
    report = main_bench(cfg, log=(lambda _msg: None) if quiet else (lambda msg: typer.echo(msg, err=True)))
    echo(report.render())
    if json_out:
        echo(f"\nwrote {write_json(report, json_out)}")
    if any(r.status == "failed" for r in report.rows):
        raise typer.Exit(1)
