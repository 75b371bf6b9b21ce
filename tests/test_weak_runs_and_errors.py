"""Weak runs do not flow into deployable exports, and the machine's failures are one clear line.

- An unfinished run (Ctrl-C's ``last.pt``, or the ``best.pt`` of a run whose ``last.pt`` is marked
  incomplete) is refused by export and by ``train classify --init`` unless allowed, and then recorded;
  an interrupted run says so under ``-q`` too.
- The gate has absolute floors (macro F1, per-class F1) and a sample-size rule beside its comparison
  with FP32.
- An unknown backend, a bad ``--sim`` quote, an unwritable path and a full disk (checkpoint, export,
  ``stream --out``, ``stream --tee``) end in one ``error:`` line and a non-zero exit, never a
  traceback; a failing ``--tee`` copy is dropped while classification goes on.

The interrupted run is made cheaply: ``train_epochs`` is replaced by one that is stopped (Ctrl-C)
in epoch 1, so the run is the untrained model, evaluated and written as an interrupted run is.
A full disk is the real one of ``/dev/full`` where a path can name it (``--out``, ``--tee``), else
an ``OSError(ENOSPC)`` raised by the writer, as a write to a full disk raises it (no file name).
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import ecgedge.fit_loop
from ecgedge.bridge.sources import StdinSource
from ecgedge.cli.main import app
from ecgedge.cli.stream import stream_cmd
from ecgedge.config import STANDARD_12_LEADS, ExportConfig
from ecgedge.data.synthetic import synthesize_ecg
from ecgedge.errors import ConfigError
from ecgedge.evaluate.gate import gate_logits
from ecgedge.models.checkpoint import load_checkpoint, save_checkpoint
from helpers import linear_export, python_frames

INTERRUPTED_LINE = "interrupted after epoch 0: these figures are from an incomplete run"
CLASSES = ("SB", "AFIB", "GSVT", "SR")
FEW_WINDOWS = "10"  # the generated set holds out a few dozen windows, fewer than the default 100


def one_error_line(res, code: int = 2) -> str:
    """The single ``error:`` line of a failed command (stderr), and no traceback anywhere."""
    assert res.exit_code == code, res.output
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit), (res.output, res.exception)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def enospc(*_args, **_kwargs):
    """A write to a full disk: errno ENOSPC and, as from ``write(2)``, no file name."""
    raise OSError(errno.ENOSPC, "No space left on device")


def stop_in_epoch_1(*_args, **_kwargs):
    """``train_epochs`` stopped by Ctrl-C before its first epoch ends."""
    raise KeyboardInterrupt
    yield  # a generator, as train_epochs is


def unfinished(src: Path, dst: Path) -> Path:
    """``src``'s checkpoint rewritten as Ctrl-C leaves it: ``complete`` False."""
    ckpt = load_checkpoint(src)
    ckpt.complete = False
    return save_checkpoint(dst, ckpt)


@pytest.fixture(scope="module")
def unfinished_cae(cae_run, tmp_path_factory) -> Path:
    """A CAE checkpoint marked incomplete (pretraining stopped by Ctrl-C)."""
    return unfinished(cae_run.checkpoint, tmp_path_factory.mktemp("cae-stopped") / "last.pt")


@pytest.fixture(scope="module")
def interrupted(synth, unfinished_cae, tmp_path_factory):
    """``train classify -q`` from the unfinished CAE (allowed), stopped in epoch 1: (CLI result, run folder)."""
    run_dir = tmp_path_factory.mktemp("interrupted") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ecgedge.fit_loop, "train_epochs", stop_in_epoch_1)
        res = CliRunner().invoke(app, ["train", "classify", "--data", str(synth / "data"), "--cache-dir", str(synth / "cache"),
                                       "--init", str(unfinished_cae), "--allow-incomplete-init", "--epochs", "3",
                                       "--run-dir", str(run_dir), "-q"])
    return res, run_dir


# ---- 7: weak runs ---------------------------------------------------------------------------------


def test_an_interrupted_run_says_so_under_quiet(interrupted):
    res, run_dir = interrupted
    assert res.exit_code == 130, res.output
    lines = res.stdout.splitlines()
    assert lines[0] == INTERRUPTED_LINE  # before the figures it qualifies, on stdout with them
    assert any(line.startswith("held-out records:") for line in lines)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["epochs_run"] == 0
    assert "unfinished run" in metrics["init_unfinished"]  # the allowed incomplete CAE is recorded
    assert load_checkpoint(run_dir / "last.pt").complete is False and not (run_dir / "best.pt").exists()


def test_init_refuses_an_unfinished_cae(synth, cae_run, unfinished_cae, tmp_path):
    # Ctrl-C's last.pt itself, and the run folder of a stopped pretraining (whose best.pt is marked complete).
    stopped_run = tmp_path / "cae-run"
    stopped_run.mkdir()
    shutil.copy(cae_run.checkpoint, stopped_run / "best.pt")
    unfinished(cae_run.checkpoint, stopped_run / "last.pt")
    for init in (unfinished_cae, stopped_run):
        run_dir = tmp_path / f"never-{init.name}"
        res = CliRunner().invoke(app, ["train", "classify", "--data", str(synth / "data"), "--cache-dir", str(synth / "cache"),
                                       "--init", str(init), "--run-dir", str(run_dir), "-q"])
        line = one_error_line(res)
        assert "--init" in line and "unfinished run" in line and "--allow-incomplete-init" in line, line
        assert not run_dir.exists()  # refused before anything is written


def test_export_refuses_an_unfinished_run(interrupted, clf_run, tmp_path):
    _, run_dir = interrupted
    # The best.pt of a run whose last.pt is marked incomplete is refused as well.
    stopped = tmp_path / "clf-stopped"
    shutil.copytree(clf_run.run_dir, stopped)
    unfinished(stopped / "last.pt", stopped / "last.pt")
    for source in (run_dir, stopped):
        out = tmp_path / f"e-{source.name}"
        res = CliRunner().invoke(app, ["export", str(source), "--out", str(out), "--min-gate-windows", FEW_WINDOWS, "-q"])
        line = one_error_line(res)
        assert "unfinished run" in line and "--allow-incomplete" in line, line
        assert not out.exists()


def test_evaluate_refuses_what_export_refuses(interrupted, synth, tmp_path):
    """One checkpoint rule (``evaluate.reference.usable_checkpoint``): evaluate has no override, so an
    unfinished run is refused outright, before any record is read."""
    _, run_dir = interrupted
    out = tmp_path / "ev"
    res = CliRunner().invoke(app, ["evaluate", str(run_dir / "last.pt"), "--data", str(synth / "data"), "--labels", "chapman4",
                                   "--out", str(out), "-q"])
    line = one_error_line(res)
    assert line.startswith("error: evaluate:"), line
    assert "unfinished run" in line and "--allow-incomplete" not in line, line


def test_export_with_allow_incomplete_records_it(interrupted, tmp_path):
    _, run_dir = interrupted
    out = tmp_path / "e"
    res = CliRunner().invoke(app, ["export", str(run_dir), "--out", str(out), "--no-int8", "--allow-incomplete",
                                   "--min-gate-windows", FEW_WINDOWS, "-q"])
    assert res.exit_code == 0, res.output
    assert "warning:" in res.output and "unfinished run" in res.output
    source = json.loads((out / "manifest.json").read_text())["source"]
    assert source["complete"] is False and "marked incomplete after epoch 0" in source["unfinished"]


def test_too_few_gate_windows_fail_the_export(interrupted, tmp_path):
    """The default minimum of 100 held-out windows: the generated set has fewer, so even the FP32
    reference (which agrees with itself perfectly) cannot pass."""
    _, run_dir = interrupted
    out = tmp_path / "e"
    res = CliRunner().invoke(app, ["export", str(run_dir), "--out", str(out), "--no-int8", "--allow-incomplete", "-q"])
    assert res.exit_code == 3, res.output
    assert "too few windows" in res.output and "--min-gate-windows" in res.output
    gate = json.loads((out / "manifest.json").read_text())["gate"]
    assert gate["min_gate_windows"] == ExportConfig.min_gate_windows == 100 and gate["windows"] < 100
    assert gate["passed"] is False


def test_absolute_floors_reject_a_weak_model(interrupted, tmp_path):
    """The untrained model agrees with itself (FP32 vs FP32), so only the floors can catch it."""
    _, run_dir = interrupted
    out = tmp_path / "e"
    res = CliRunner().invoke(app, ["export", str(run_dir), "--out", str(out), "--no-int8", "--allow-incomplete",
                                   "--min-gate-windows", FEW_WINDOWS, "--min-f1", "0.9", "--min-class-f1", "0.9",
                                   "--min-class-f1", "AFIB=0.95", "-q"])
    assert res.exit_code == 3, res.output
    assert "is below the floor 0.9" in res.output and "AFIB F1" in res.output and "below its floor 0.95" in res.output
    m = json.loads((out / "manifest.json").read_text())
    assert {k: m["gate"][k] for k in ("min_f1", "min_class_f1", "min_gate_windows")} == {
        "min_f1": 0.9, "min_class_f1": {"*": 0.9, "AFIB": 0.95}, "min_gate_windows": 10}
    assert m["artefacts"]["fp32"]["status"] == "rejected"
    assert m["artefacts"]["fp32"]["gate"]["ort-cpu"]["agreement"] == 1.0


def test_min_class_f1_names_only_the_models_classes(interrupted, tmp_path):
    _, run_dir = interrupted
    res = CliRunner().invoke(app, ["export", str(run_dir), "--out", str(tmp_path / "e"), "--allow-incomplete",
                                   "--min-class-f1", "VF=0.5", "-q"])
    assert "not a class of this model (SB, AFIB, GSVT, SR)" in one_error_line(res)


def _logits(decisions) -> np.ndarray:
    return np.eye(len(CLASSES), dtype=np.float32)[np.asarray(decisions)]


def test_gate_one_flipped_decision_among_ten_windows():
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    candidate = labels.copy()
    candidate[0] = 1
    kwargs = dict(max_f1_drop=1.0, min_agreement=0.0)  # the relative checks off: the rule alone
    report = gate_logits("int8", "ort-cpu", _logits(candidate), _logits(labels), labels, CLASSES, min_windows=100, **kwargs)
    assert not report and report.failures == [report.failures[0]] and report.failures[0].startswith(
        "too few windows: 10 held-out windows, 100 needed (one changed decision moves agreement by 10.0%)")
    assert gate_logits("int8", "ort-cpu", _logits(candidate), _logits(labels), labels, CLASSES, min_windows=10, **kwargs)
    assert report.to_dict()["thresholds"]["min_windows"] == 100


def test_gate_floors_macro_and_per_class():
    labels = np.array([0] * 30 + [1] * 30 + [2] * 40)  # no SR window
    weak = labels.copy()
    weak[:20] = 1  # SB mostly missed
    ref = _logits(labels)
    common = dict(max_f1_drop=1.0, min_agreement=0.0)
    report = gate_logits("fp32", "ort-cpu", _logits(weak), ref, labels, CLASSES, min_f1=0.9,
                         min_class_f1={"*": 0.6, "AFIB": 0.5, "SR": 0.1}, **common)
    f = report.failures
    assert any(x.startswith("macro F1 ") and "below the floor 0.9" in x for x in f)
    assert any(x.startswith("SB F1 0.5000 is below its floor 0.6") for x in f)
    assert not any(x.startswith("AFIB") for x in f)  # its own floor 0.5 overrides "*", and 0.75 passes it
    assert "SR has no held-out windows: its F1 floor 0.1 cannot be checked" in f
    assert len(f) == 3
    assert gate_logits("fp32", "ort-cpu", ref, ref, labels, CLASSES, min_f1=0.9, min_class_f1={"*": 0.9}, **common)


@pytest.mark.parametrize("given, floors", [
    (("AFIB=0.8", "0.5"), (("*", 0.5), ("AFIB", 0.8))),
    ({"SB": 0.25}, (("SB", 0.25),)),
    ((), ()),
])
def test_class_floors_in_the_config(given, floors):
    assert ExportConfig(min_class_f1=given).min_class_f1 == floors


@pytest.mark.parametrize("given", [("AFIB=1.5",), ("AFIB=x",), ("AFIB", "=")])
def test_bad_class_floors_are_config_errors(given):
    with pytest.raises(ConfigError, match="min_class_f1"):
        ExportConfig(min_class_f1=given)


# ---- 8: one clear line ----------------------------------------------------------------------------


def test_check_with_an_unknown_backend(tmp_path):
    line = one_error_line(CliRunner().invoke(app, ["export", "--check", str(tmp_path), "--backend", "ort-gpu"]))
    assert line == "error: --backend: 'ort-gpu' is not one of ort-cpu, ort-cuda, ort-trt, tensorrt, c-int8"


def test_data_build_into_an_unwritable_path(synth):
    line = one_error_line(CliRunner().invoke(app, ["data", "build", str(synth / "data"), "--out", "/proc/forbidden", "-q"]))
    assert line.startswith("error: cannot build the window store /proc/forbidden: "), line


def test_full_disk_while_writing_a_checkpoint(synth, monkeypatch, tmp_path):
    import ecgedge.models.checkpoint as checkpoint

    def one_quick_epoch(*_args, **_kwargs):
        yield {"epoch": 1, "train_loss": 1.0, "windows_per_s": 1.0}

    monkeypatch.setattr(ecgedge.fit_loop, "train_epochs", one_quick_epoch)
    monkeypatch.setattr(checkpoint.torch, "save", enospc)
    run_dir = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "classify", "--data", str(synth / "data"), "--cache-dir", str(synth / "cache"),
                                   "--epochs", "1", "--run-dir", str(run_dir), "-q"])
    line = one_error_line(res)
    assert line.startswith(f"error: cannot write checkpoint {run_dir / 'last.pt'}: No space left on device (the disk"), line
    assert not list(run_dir.glob("*.pt*"))  # no half-written checkpoint left behind


def test_full_disk_while_exporting(clf_run, monkeypatch, tmp_path):
    import ecgedge.export.pipeline as pipeline

    monkeypatch.setattr(pipeline, "onnx_from_checkpoint", enospc)
    out = tmp_path / "e"
    res = CliRunner().invoke(app, ["export", str(clf_run.run_dir), "--out", str(out), "--min-gate-windows", FEW_WINDOWS, "-q"])
    line = one_error_line(res)
    assert line.startswith(f"error: cannot export {clf_run.run_dir} to {out}: No space left on device"), line
    assert not out.exists()


# ---- streams ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def linear(tmp_path_factory) -> Path:
    return linear_export(tmp_path_factory.mktemp("weak-stream") / "linear")


@pytest.fixture
def stream(linear, monkeypatch, tmp_path):
    """``stream(data, *args)``: ``ecgedge stream LINEAR --source stdin --precision fp32 ARGS`` with ``data`` on stdin."""
    opened = []

    def run(data: bytes, *args):
        piped = tmp_path / "stdin.bin"
        piped.write_bytes(data)

        def from_file(self, stream=None):  # CliRunner's stdin has no file descriptor to select on
            self._stream = piped.open("rb")
            opened.append(self._stream)

        monkeypatch.setattr(StdinSource, "__init__", from_file)
        cmd = typer.Typer()
        cmd.command()(stream_cmd)
        return CliRunner().invoke(cmd, [str(linear), "--source", "stdin", "--precision", "fp32", *map(str, args)])

    yield run
    for f in opened:
        f.close()


def frames(leads=STANDARD_12_LEADS, seconds: float = 12.0) -> bytes:
    x = synthesize_ecg("AFIB", seed=2, duration_s=seconds, fs=500)[0].astype(np.float64)[: len(leads)]
    return b"\0" + b"".join(python_frames(x, 500, leads))


def records_of(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_stream_sim_with_an_unbalanced_quote(stream):
    line = one_error_line(stream(b"", "--sim", "--loop 'unbalanced"))
    assert line.startswith("error: --sim \"--loop 'unbalanced\": No closing quotation"), line


def test_stream_out_on_a_full_disk(stream):
    line = one_error_line(stream(frames(), "--out", "/dev/full"))
    assert line.startswith("error: cannot write the records to /dev/full: No space left on device"), line


def test_stream_tee_on_a_full_disk_is_dropped_and_classification_goes_on(stream):
    res = stream(frames(), "--tee", "/dev/full")
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    warnings = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("warning: cannot write the --tee copy /dev/full: No space left"), res.stderr
    records = records_of(res.stdout)
    tee = [r for r in records if r["type"] == "tee_error"]
    assert len(tee) == 1 and tee[0]["path"] == "/dev/full" and tee[0]["bytes"] == 0
    assert sum(r["type"] == "window" and r["quality"] == "ok" for r in records) >= 3  # classified after the failure
    summary = records[-1]
    assert summary["type"] == "summary" and summary["ended"] == "end of stream"
    assert summary["tee_error"] == tee[0]["detail"]


def test_stream_exits_non_zero_when_every_stream_is_refused(stream):
    res = stream(frames(leads=("II",)))
    line = one_error_line(res)
    assert line.startswith("error: every stream was refused: stream 0 carries leads II; the model needs I, III"), line
    summary = records_of(res.stdout)[-1]
    assert summary["type"] == "summary" and summary["streams"][0]["refused"]


def test_summary_ended_says_the_stream_failed(linear):
    """A source that fails beyond recovery: the error propagates, and the summary emitted on the way
    out says so instead of "end of stream"."""
    from ecgedge.errors import StreamError
    from ecgedge.manifest import load_manifest
    from ecgedge.runtime import runner_from_export
    from ecgedge.stream.monitor import ModelSpec, StreamSettings
    from ecgedge.stream.hub import StreamHub
    from ecgedge.stream.run import run_session
    from ecgedge.stream.session import StreamSession
    from ecgedge.bridge.sources import ByteSource

    class Failing(ByteSource):
        name = "failing"

        def chunks(self, idle_s: float = 0.2):
            yield frames(seconds=2.0)
            raise StreamError("the device is gone for good")

    records = []
    with runner_from_export(linear, "fp32", threads=1) as runner:
        session = StreamSession(StreamHub(runner, ModelSpec.from_manifest(load_manifest(linear)), StreamSettings()))
        with pytest.raises(StreamError):
            run_session(Failing(), session, records.append)
    assert records[-1]["type"] == "summary" and records[-1]["ended"] == "failed: the device is gone for good"
