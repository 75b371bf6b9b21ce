"""``ecgedge evaluate``: score a training run or an export folder on any labelled data set."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ecgedge.cli.common import default_run_dir, echo, user_errors
from ecgedge.config import DataConfig, LabelScheme
from ecgedge.runtime.base import Backend, Precision


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
    bootstrap: int = typer.Option(1000, min=1, help="Bootstrap resamples of the records for the 95 % intervals."),
    cache_dir: Optional[Path] = typer.Option(None, help="Window cache folder (default ~/.cache/ecgedge)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
):
    """Score a model on labelled records: record-level F1 (mean of its windows' probabilities) with bootstrap intervals.

    Writes report.json, confusion.json/.png and predictions.csv; warns when records of the data
    were in the model's training set (by record id or by content hash).
    """
    from ecgedge.evaluate.scoring import EvaluateConfig, evaluate_source, source_name

    cfg = EvaluateConfig(source=source, data=DataConfig(paths=tuple(map(str, data)), labels_file=str(labels_file) if labels_file else None,
                                                        cache_dir=str(cache_dir) if cache_dir else None),
                         labels=labels, out=str(out or default_run_dir(f"eval-{source_name(source)}")), hop=hop,
                         precision=precision, backend=backend, threads=threads, bootstrap_repeats=bootstrap)
    res = evaluate_source(cfg, progress=not quiet)
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
