"""``ecgedge export``: ONNX / INT8 / FP16 / TensorRT artefacts with an accuracy gate; ``--check`` re-verifies;
``--triton`` / ``--triton-only`` write a Triton Inference Server model repository; ``--new-key`` makes an
Ed25519 key pair, ``--sign`` signs the manifest with it and ``--check --key`` refuses a folder it did not sign."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, cast

import typer

from ecgedge.cli.common import choices_option, echo, export_folder_argument, user_errors
from ecgedge.config import Backend, CalibMethod, ExportConfig, Target, class_f1_floors
from ecgedge.errors import BackendUnavailable, ConfigError

D = ExportConfig  # defaults live in one place: the config's


@user_errors
def export_cmd(
    source: Optional[str] = typer.Argument(None, help="Training run folder or classifier checkpoint (runs/NAME or runs/NAME/best.pt)."),
    int8: bool = typer.Option(D.int8, "--int8/--no-int8", help="Produce the INT8 QDQ model."),
    fp16: bool = typer.Option(D.fp16, "--fp16", help="Also produce the FP16 model (always on for GPU targets)."),
    target: Optional[Target] = typer.Option(None, help=f"Device class: cpu (x86-64), arm64, cuda, tensorrt, mcu (adds the C99 INT8 library; default {D.target.value}). "
                                            "With --triton-only: the server's (default: the export's)."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default export/RUN_NAME); with --triton-only the model repository (default EXPORT/triton)."),
    calib_windows: int = typer.Option(D.calib_windows, min=1, help="Training windows used to calibrate INT8."),
    calib_method: CalibMethod = typer.Option(D.calib_method, help="INT8 calibration method."),
    max_f1_drop: float = typer.Option(D.max_f1_drop, min=0.0, max=1.0, help="Gate: largest allowed macro-F1 drop vs FP32."),
    min_agreement: float = typer.Option(D.min_agreement, min=0.0, max=1.0, help="Gate: smallest allowed decision agreement with FP32."),
    min_f1: float = typer.Option(D.min_f1, min=0.0, max=1.0, help="Gate: absolute floor on each artefact's macro F1 (0 = off)."),
    min_class_f1: Optional[list[str]] = typer.Option(
        None, "--min-class-f1", metavar="CLASS=F1|F1",
        help="Gate: floor on one class's F1 (AFIB=0.8), or on every class's (0.5); repeatable, a named class overrides the bare floor."),
    min_gate_windows: int = typer.Option(
        D.min_gate_windows, min=0,
        help="Gate: fail with fewer held-out windows than this (one changed decision in n moves agreement by 1/n; "
             "100 is the fewest at which 99 % agreement tolerates one)."),
    allow_incomplete: bool = typer.Option(D.allow_incomplete, "--allow-incomplete",
                                          help="Export a checkpoint of a run that did not finish (Ctrl-C's last.pt); the manifest records it."),
    opset: int = typer.Option(D.opset, min=17, help="ONNX opset (>= 17)."),
    parity_atol: float = typer.Option(D.parity_atol, min=0.0,
                                      help="Largest |logit| difference allowed between FP32 ONNX and PyTorch; recorded in the manifest, re-applied by --check."),
    check_windows: int = typer.Option(D.check_windows, min=1, help="Held-out windows stored in the folder for --check."),
    check: Optional[Path] = export_folder_argument("Re-verify hashes and re-run the gate of an export folder (or a shipped model's name).", "--check", default=None),
    backend: Optional[str] = choices_option(Backend, None, "With --check: comma-separated backends (default: all available here)."),
    cortex_m4: bool = typer.Option(False, "--cortex-m4", help="With --check: also cross-compile the C library (mcu/) and run it on an "
                                   "emulated Cortex-M4F (qemu-system-arm mps2-an386): outputs, flash, RAM, instructions per window."),
    triton: bool = typer.Option(False, "--triton", help="Also write a Triton Inference Server model repository (export/NAME/triton)."),
    mcu: Optional[Path] = export_folder_argument(
        "Add the C99 INT8 library (mcu/) to an existing export (or a shipped model's name; written to --out, default "
        "in place, export/NAME for a shipped model) and gate it as backend c-int8.", "--mcu", default=None),
    triton_only: Optional[Path] = typer.Option(None, "--triton-only", exists=True, file_okay=False,
                                               help="Write the Triton model repository of an existing export folder (no re-export)."),
    sign: Optional[Path] = typer.Option(None, "--sign", exists=True, dir_okay=False, metavar="PRIVATE_KEY",
                                        help="Sign the manifest (manifest.sig) with this Ed25519 private key (PEM, from --new-key)."),
    key: Optional[Path] = typer.Option(None, "--key", exists=True, dir_okay=False, metavar="PUBLIC_KEY",
                                       help="With --check: refuse the folder unless its manifest.sig matches this Ed25519 public key (PEM)."),
    new_key: Optional[Path] = typer.Option(None, "--new-key", dir_okay=False, metavar="PATH",
                                           help="Write a new Ed25519 key pair: PATH (private, keep it off devices) and PATH.pub (public); nothing else."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
):
    """Export a trained classifier to ONNX (FP32, INT8, FP16) and TensorRT, and gate every artefact on held-out data."""
    if new_key is not None:
        from ecgedge.signing import generate_keypair

        private, public = generate_keypair(new_key, new_key.with_name(new_key.name + ".pub"))
        echo(f"private key: {private} (signs: ecgedge export --sign {private})")
        echo(f"public key:  {public} (verifies: --check DIR --key {public}, ecgedge stream --key {public})")
        return
    if key is not None and check is None:
        raise ConfigError("--key verifies an export folder: give --check DIR too (ecgedge stream takes --key itself)")
    if sign is not None and (check is not None or mcu is not None):
        raise ConfigError("--sign signs a new export (or the manifest --triton-only rewrites); it does not re-sign an existing folder")
    if triton_only is not None:
        from ecgedge.export.triton import triton_repository_from_export
        from ecgedge.signing import load_private_key

        triton_repository_from_export(triton_only, out, target=target, log=echo,
                                      private_key=load_private_key(sign) if sign is not None else None)
        return
    if mcu is not None:
        from ecgedge.export.mcu_artefact import mcu_library_for_export

        res = mcu_library_for_export(mcu, out=out, log=echo)
        echo(f"C library: {res.folder / 'mcu'}  (gate passed; manifest {res.folder / 'manifest.json'})")
        return
    if check is not None:
        from ecgedge.export.check import check_export

        # choices_option's callback hands the command a tuple of members where typer's annotation says str.
        check_export(check, backends=list(cast("tuple[Backend, ...]", backend)) if backend else None, log=echo, public_key=key)
        if cortex_m4:
            from ecgedge.export.mcu_qemu import cortex_m4_check, toolchain_or_reason

            reason = toolchain_or_reason()
            if reason:
                raise BackendUnavailable(f"--cortex-m4: {reason}")
            cortex_m4_check(check, log=echo)
        echo("check passed")
        return
    if source is None:
        raise ConfigError("give a training run (ecgedge export runs/NAME) or --check export/NAME")
    from ecgedge.export.pipeline import main_export

    cfg = ExportConfig(source=source, out=str(out) if out else None, int8=int8, fp16=fp16, target=target or D.target,
                       calib_windows=calib_windows, calib_method=calib_method, max_f1_drop=max_f1_drop,
                       min_agreement=min_agreement, min_f1=min_f1, min_class_f1=class_f1_floors(min_class_f1 or ()),
                       min_gate_windows=min_gate_windows, allow_incomplete=allow_incomplete, opset=opset, check_windows=check_windows,
                       parity_atol=parity_atol)
    res = main_export(cfg, progress=not quiet, log=echo, triton=triton, sign_key=sign)
    echo(f"export folder: {res.folder}  (gate passed; manifest {res.folder / 'manifest.json'})")
