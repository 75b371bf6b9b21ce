"""``ecgedge export``: ONNX / INT8 / FP16 / TensorRT artefacts with an accuracy gate; ``--check`` re-verifies;
``--triton`` / ``--triton-only`` write a Triton Inference Server model repository."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ecgedge.cli.common import echo, user_errors
from ecgedge.config import CalibMethod, ExportConfig, Target
from ecgedge.errors import ConfigError


@user_errors
def export_cmd(
    source: Optional[str] = typer.Argument(None, help="Training run folder or classifier checkpoint (runs/NAME or runs/NAME/best.pt)."),
    int8: bool = typer.Option(True, "--int8/--no-int8", help="Produce the INT8 QDQ model (default on)."),
    fp16: bool = typer.Option(False, "--fp16", help="Also produce the FP16 model (always on for GPU targets)."),
    target: Optional[Target] = typer.Option(None, help="Device class: cpu (x86-64, the default), arm64, cuda, tensorrt. "
                                            "With --triton-only: the server's (default: the export's)."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default export/RUN_NAME); with --triton-only the model repository (default EXPORT/triton)."),
    calib_windows: int = typer.Option(256, min=1, help="Training windows used to calibrate INT8."),
    calib_method: CalibMethod = typer.Option(CalibMethod.minmax, help="INT8 calibration method."),
    max_f1_drop: float = typer.Option(0.01, min=0.0, max=1.0, help="Gate: largest allowed macro-F1 drop vs FP32."),
    min_agreement: float = typer.Option(0.99, min=0.0, max=1.0, help="Gate: smallest allowed decision agreement with FP32."),
    opset: int = typer.Option(18, min=17, help="ONNX opset (>= 17)."),
    check_windows: int = typer.Option(256, min=1, help="Held-out windows stored in the folder for --check."),
    check: Optional[Path] = typer.Option(None, "--check", exists=True, file_okay=False, help="Re-verify hashes and re-run the gate of an export folder."),
    backend: Optional[str] = typer.Option(None, help="With --check: comma-separated backends (default: all available here)."),
    triton: bool = typer.Option(False, "--triton", help="Also write a Triton Inference Server model repository (export/NAME/triton)."),
    triton_only: Optional[Path] = typer.Option(None, "--triton-only", exists=True, file_okay=False,
                                               help="Write the Triton model repository of an existing export folder (no re-export)."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
):
    """Export a trained classifier to ONNX (FP32, INT8, FP16) and TensorRT, and gate every artefact on held-out data."""
    if triton_only is not None:
        from ecgedge.export.triton import triton_repository_from_export

        triton_repository_from_export(triton_only, out, target=target, log=echo)
        return
    if check is not None:
        from ecgedge.export.pipeline import check_export
        from ecgedge.runtime.base import Backend

        backends = [Backend(b.strip()) for b in backend.split(",")] if backend else None
        check_export(check, backends=backends, log=echo)
        echo("check passed")
        return
    if source is None:
        raise ConfigError("give a training run (ecgedge export runs/NAME) or --check export/NAME")
    from ecgedge.export.pipeline import main_export

    cfg = ExportConfig(source=source, out=str(out) if out else None, int8=int8, fp16=fp16, target=target or Target.cpu,
                       calib_windows=calib_windows, calib_method=calib_method, max_f1_drop=max_f1_drop,
                       min_agreement=min_agreement, opset=opset, check_windows=check_windows)
    res = main_export(cfg, progress=not quiet, log=echo, triton=triton)
    echo(f"export folder: {res.folder}  (gate passed; manifest {res.folder / 'manifest.json'})")
