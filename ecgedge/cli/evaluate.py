"""``ecgedge evaluate``: score a model on labelled records (``evaluate [records]``), its bedside
stream on annotated long recordings (``evaluate stream``), or R-peak detections against reference
beats (``evaluate beats``).

``ecgedge evaluate SOURCE --data ...`` keeps working: anything that is not a sub-command name goes
to ``records``.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup

from ecgedge.cli.common import default_run_dir, echo, export_folder_argument, user_errors
from ecgedge.config import DataConfig, LabelScheme
from ecgedge.evaluate.beats import Detector
from ecgedge.runtime.base import Backend, Precision


class _RecordsByDefault(TyperGroup):
    """A group whose first argument, when it names no sub-command, belongs to ``records``."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["records", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_RecordsByDefault, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Score a model on labelled records (records, the default), its stream on annotated recordings (stream), "
                       "or beat detections against reference beats (beats).")


@app.command("records")
@user_errors
def evaluate_cmd(
    source: str = typer.Argument(..., help="Training run (runs/NAME or a .pt checkpoint), export folder (export/NAME) or a shipped model's name."),
    data: list[Path] = typer.Option(..., "--data", exists=True, help="Record files or folders (searched recursively); repeatable."),
    labels: LabelScheme = typer.Option(..., help="Label scheme of the data; its classes must be the model's."),
    out: Optional[Path] = typer.Option(None, help="Evaluation folder (default runs/eval-SOURCE-TIMESTAMP)."),
    labels_file: Optional[Path] = typer.Option(None, exists=True, dir_okay=False, help="Label table: Diagnostics.xlsx, REFERENCE.csv or metadata.csv."),
    hop: int = typer.Option(0, min=0, help="Samples between windows at the model's rate (0 = the window length)."),
    precision: Optional[Precision] = typer.Option(None, help="Export folders: which artefact runs (default: the manifest's recommendation)."),
    backend: Optional[Backend] = typer.Option(None, help="Export folders: runtime backend (default ort-cpu)."),
    threads: Optional[int] = typer.Option(None, min=1, help="Export folders: inference threads."),
    bootstrap: int = typer.Option(1000, help="Bootstrap resamples of the records for the 95 % intervals (1 to 100,000: more is time, not precision)."),
    cache_dir: Optional[Path] = typer.Option(None, help="Window cache folder (default ~/.cache/ecgedge)."),
    key: Optional[Path] = typer.Option(None, "--key", exists=True, dir_okay=False,
                                       help="Export folders: Ed25519 public key (PEM) the export must be signed by "
                                            "(a signature that exists is checked without it)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
):
    """Score a model on labelled records: record-level F1 (mean of its windows' probabilities) with bootstrap intervals.

    Writes report.json, confusion.json/.png and predictions.csv; warns when records of the data
    were in the model's training set (by record id or by content hash).
    """
    from ecgedge.evaluate.scoring import EvaluateConfig, evaluate_source, source_name
    from ecgedge.evaluate.trees import evaluate_trees
    from ecgedge.runtime.trees_runner import is_trees_export
    from ecgedge.shipped import resolve_source

    cfg = EvaluateConfig(source=source, data=DataConfig(paths=tuple(map(str, data)), labels_file=str(labels_file) if labels_file else None,
                                                        cache_dir=str(cache_dir) if cache_dir else None),
                         labels=labels, out=str(out or default_run_dir(f"eval-{source_name(source)}")), hop=hop,
                         precision=precision, backend=backend, threads=threads, bootstrap_repeats=bootstrap,
                         public_key=str(key) if key else None)
    # A rhythm-trees export scores each record's features (one decision per record, no windows).
    res = (evaluate_trees if is_trees_export(resolve_source(source)) else evaluate_source)(cfg, progress=not quiet)
    echo(summary_table(res.report))
    if res.leakage:
        typer.secho(f"WARNING: data leakage: {res.report['leakage']['warning']}", fg=typer.colors.RED, bold=True, err=True)
    elif res.report["leakage"]["note"]:
        typer.secho(f"note: {res.report['leakage']['note']}", fg=typer.colors.YELLOW, err=True)
    echo(f"evaluation folder: {res.out}")


def summary_table(report: dict) -> str:
    """The few lines a person reads: counts, headline scores with intervals, per-class F1."""
    s, c, r = report["source"], report["counts"], report["records"]
    ci = r["intervals"]

    def with_ci(key: str, value: float) -> str:
        lo, hi = ci.get(key, (float("nan"), float("nan")))
        return f"{value:.3f}  [{lo:.3f}, {hi:.3f}]"

    lines = [f"{s['name']} ({s['kind']}, {s['backend']} {s['precision']}) on {c['records_scored']} records, {c['windows']} windows "
             f"({c['records_skipped']} of {c['records_found']} records skipped)",
             "record level (mean of each record's window probabilities), 95 % bootstrap intervals:"]
    if "challenge_score" in r:
        lines.append(f"  challenge score (F1 of N, A, O)  {with_ci('challenge_score', r['challenge_score'])}")
    lines += [f"  macro F1                         {with_ci('macro_f1', r['macro_f1'])}",
              f"  weighted F1                      {with_ci('weighted_f1', r['weighted_f1'])}",
              f"  accuracy                         {with_ci('accuracy', r['accuracy'])}",
              f"  {'class':<8} {'F1':>6}  {'95 % interval':<16} {'records':>7}"]
    for name in r["class_names"]:
        support = r["support"][name]
        interval = ci.get(f"f1_{name}")
        shown = f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "(absent)"
        lines.append(f"  {name:<8} {r['per_class_f1'][name]:>6.3f}  {shown:<16} {support:>7}")
    lines.append(f"window level: macro F1 {report['windows']['macro_f1']:.3f} on {c['windows']} windows")
    return "\n".join(lines)


@app.command("stream")
@user_errors
def evaluate_stream_cmd(
    export: Path = export_folder_argument(),
    data: list[Path] = typer.Option(..., "--data", exists=True, help="Annotated records (.hea with .atr beside it) or folders; repeatable."),
    out: Optional[Path] = typer.Option(None, help="Report folder (default runs/stream-eval-NAME-TIMESTAMP): new, empty or an earlier "
                                                  "evaluation, whose own files are replaced; a user's files there are kept."),
    hop: float = typer.Option(1.0, min=0.05, help="Seconds between window ends."),
    hysteresis: int = typer.Option(3, min=1, help="Consecutive reliable windows a new rhythm must win before it is raised."),
    via_device: bool = typer.Option(False, "--via-device", help="Play through the simulated device (ecgsim) and the wire decoder too."),
    sim: str = typer.Option("", help="With --via-device: further ecgsim options, one shell-quoted string (e.g. \"--drop-frames 0.01\")."),
    lead: Optional[str] = typer.Option(None, help="Single-lead models: the record's lead to play as the model's lead (e.g. MLII)."),
    map_: list[str] = typer.Option([], "--map", help="Reference rhythm code -> model class, e.g. AFL=A; repeatable."),
    sweep: list[str] = typer.Option([], "--sweep", help="hop=0.5,1,2 and/or hysteresis=1,2,3,5: score every pair (trade-off plot)."),
    precision: Optional[Precision] = typer.Option(None, help="Which artefact runs (default: the manifest's recommendation)."),
    backend: Backend = typer.Option(Backend.ort_cpu, help="Runtime backend."),
    threads: int = typer.Option(1, min=1, help="Inference threads."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
):
    """Play annotated long recordings through the stream (monitor, hysteresis; --via-device: the device and
    wire too) and score it as EC57 does: AF episode and duration Se/+P, alarm delay, false AF alarms per
    hour, coverage. Writes report.json, report.md, events and timeline PNGs (and sweep.png)."""
    from ecgedge.errors import ConfigError
    from ecgedge.evaluate.stream import StreamEvalConfig, evaluate_stream, find_annotated_records, parse_sweep

    hops, hysts = parse_sweep(sweep)
    try:
        device_args = tuple(shlex.split(sim))
    except ValueError as exc:
        raise ConfigError(f"--sim {sim!r}: {exc} (quote it as the shell would)") from None
    overrides = []
    for item in map_:
        code, sep, cls = item.partition("=")
        if not sep or not code.strip() or not cls.strip():
            raise ConfigError(f"--map {item!r}: expected CODE=CLASS, e.g. AFL=A")
        overrides.append((code.strip().lstrip("("), cls.strip()))
    records = tuple(str(p) for p in find_annotated_records(data))
    cfg = StreamEvalConfig(export=str(export), records=records, out=str(out or default_run_dir(f"stream-eval-{export.name}")),
                           hops_s=(hop, *[h for h in hops if h != hop]), hystereses=(hysteresis, *[k for k in hysts if k != hysteresis]),
                           via_device=via_device, device_args=device_args, lead=lead, overrides=tuple(overrides), precision=precision, backend=backend,
                           threads=threads)
    res = evaluate_stream(cfg, progress=not quiet)
    r = res.report
    echo(f"{r['model']} ({r['precision']}, {r['backend']}) through {r['path']}, hop {r['settings']['hop_s']:g} s, "
         f"hysteresis {r['settings']['hysteresis']}; class map: " + ", ".join(f"{k}->{v or '-'}" for k, v in r["class_map"].items()))
    echo(res.table)
    d = r["summary"]["alarm_delay"]
    echo(f"AF alarm delay: median {d['median_s']} s, 90th percentile {d['p90_s']} s ({d['detected']} detected, {d['missed']} missed); "
         f"{r['speed']['x_real_time']}x real time")
    echo(f"report folder: {res.out}")


@app.command("beats")
@user_errors
def evaluate_beats_cmd(
    records: list[str] = typer.Argument(..., help="WFDB records (.hea or path without extension), folders (searched recursively), "
                                                  "a CPSC-2019 folder (data/ + ref/), or quoted globs."),
    detector: Detector = typer.Option(Detector.ecgedge, help="Detector scored: ecgedge (ecgedge.beats) or xqrs (wfdb xqrs_detect + correct_peaks)."),
    detections: Optional[str] = typer.Option(None, help="Score your own detections instead: a CSV (header record,sample) or a JSON "
                                                        "object (record id -> list of samples) of 0-based samples, or a WFDB annotation extension (qrs) beside each record."),
    ann: str = typer.Option("atr", "--ann", help="Extension of the reference annotation files (beat codes only)."),
    window_ms: Optional[float] = typer.Option(None, min=1.0, help="Match window, ms (default: 150 as EC57; 75 for CPSC-2019 records, the challenge's)."),
    learning_s: Optional[float] = typer.Option(None, min=0.0, help="Seconds not scored at the start (default: EC57's 300 for records of 10 min or more, else 0.5)."),
    end_s: Optional[float] = typer.Option(None, min=0.0, help="Seconds not scored at the end (default: 0 for records of 10 min or more, else 0.5)."),
    lead: list[str] = typer.Option([], "--lead", help="Lead given to the detector, by name (default: the record's first); repeatable (ecgedge's multi-lead mode)."),
    out: Optional[Path] = typer.Option(None, help="Report folder (default runs/beats-eval-DETECTOR-TIMESTAMP)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier evaluation folder at --out (only the files ecgedge wrote there)."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="One PNG per record showing where the misses and false detections fall."),
    panels: int = typer.Option(6, min=0, help="Records longer than a minute: zoomed panels around errors per PNG."),
):
    """Score R-peak detections against reference beats as EC57 does (bxb's matching; Se, +P, F1, timing
    error) per record, gross and averaged. Writes beats.json, beats.md and beats-RECORD.png; prints the table."""
    from ecgedge.evaluate.beats import BeatsEvalConfig, evaluate_beats

    name = "own" if detections else detector.value
    cfg = BeatsEvalConfig(paths=tuple(records), out=str(out or default_run_dir(f"beats-eval-{name}")), detector=detector, detections=detections,
                          annotation=ann, window_ms=window_ms, learning_s=learning_s, end_s=end_s, leads=tuple(lead), plots=plots,
                          panels=panels, overwrite=overwrite)
    res = evaluate_beats(cfg, log=lambda line: typer.secho(line, fg=typer.colors.YELLOW, err=True))
    echo(res.table)
    c = res.report["counts"]
    echo(f"{c['scored']} records scored, {c['skipped']} skipped; report folder: {res.out}")
