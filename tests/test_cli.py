"""The command line's shared pieces: comma lists of choices, defaults from the configs, ``ecgedge serve``."""

from __future__ import annotations

import importlib.util

import pytest
import typer
from typer.testing import CliRunner

from ecgedge.cli.main import app
from ecgedge.config import ExportConfig


def _one_error_line(res) -> str:
    lines = res.output.strip().splitlines()
    assert res.exit_code == 2 and len(lines) == 1 and "Traceback" not in res.output, res.output
    return lines[0]


def test_export_check_with_a_bad_backend_is_one_line_naming_the_choices(tmp_path):
    res = CliRunner().invoke(app, ["export", "--check", str(tmp_path), "--backend", "ort-cpu,foo"])
    assert _one_error_line(res) == "error: --backend: 'foo' is not one of ort-cpu, ort-cuda, ort-trt, tensorrt, c-int8"


@pytest.mark.parametrize("args, message", [
    (["bench", "{tmp}", "--precision", "int4"], "error: --precision: 'int4' is not one of fp32, fp16, int8"),
    (["bench", "{tmp}", "--backend", ","], "error: --backend: give at least one of torch, ort-cpu, ort-cuda, ort-trt, tensorrt, c-int8"),
    (["experiment", "transfer", "--data", "{tmp}", "--labels", "chapman4", "--arms", "random,2D"],
     "error: --arms: '2D' is not one of transfer, random, frozen, 2d"),
])
def test_every_comma_list_of_choices_fails_the_same_way(tmp_path, args, message):
    res = CliRunner().invoke(app, [a.format(tmp=tmp_path) for a in args])
    assert _one_error_line(res) == message


def test_export_defaults_are_the_configs():
    command = typer.main.get_command(app).commands["export"]
    defaults = {p.name: p.default for p in command.params}
    for field in ("int8", "fp16", "calib_windows", "calib_method", "max_f1_drop", "min_agreement", "opset", "check_windows"):
        want = getattr(ExportConfig, field)
        assert defaults[field] in (want, getattr(want, "value", want)), field


def test_serve_is_a_command():
    res = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for flag in ("--precision", "--model-name", "--host", "--grpc-port", "--http-port", "--threads", "--max-queue-delay-us"):
        assert flag in res.output
    assert "PyTriton" in res.output


@pytest.mark.skipif(importlib.util.find_spec("pytriton") is not None, reason="PyTriton is installed here")
def test_serve_without_pytriton_says_how_to_install_it(tmp_path):
    res = CliRunner().invoke(app, ["serve", str(tmp_path)])
    assert _one_error_line(res) == "error: PyTriton is not installed: pip install 'ecgedge[pytriton]' (nvidia-pytriton), in its own venv"
