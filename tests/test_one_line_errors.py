"""Issue 25, policy 5: one-line errors everywhere, corrupt checkpoints included.

Before: a corrupt checkpoint answered with torch's seven-line advice to load it with
``weights_only=False`` (which would run any code the file holds). Each case damages a real checkpoint
(the shipped CAE) or writes a real foreign PyTorch file, and runs the real loader and the CLI.
"""

from __future__ import annotations

import collections
import os
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ecgedge.cli.main import app
from ecgedge.errors import ArtefactError
from ecgedge.models.checkpoint import load_checkpoint
from ecgedge.shipped import shipped_model


@pytest.fixture
def cae(tmp_path) -> Path:
    return Path(shutil.copy(shipped_model("cinc2017-cae").path, tmp_path / "cae.pt"))


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "random":
        path.write_bytes(os.urandom(5000))
    elif how == "text":
        path.write_text("not a checkpoint\n")
    elif how == "flipped":
        raw = bytearray(data)
        for i in range(200, len(raw), 997):
            raw[i] ^= 0xFF
        path.write_bytes(bytes(raw))
    elif how == "python objects":
        torch.save({"x": collections.OrderedDict, "p": Path("a")}, path)
    elif how == "missing keys":
        ck = torch.load(path, weights_only=True)
        del ck["model_config"]
        torch.save(ck, path)
    elif how == "wrong types":
        ck = torch.load(path, weights_only=True)
        ck["window"] = [1, 2]
        torch.save(ck, path)


HOWS = ["truncated", "empty", "random", "text", "flipped", "python objects", "missing keys", "wrong types"]


@pytest.mark.parametrize("how", HOWS)
def test_damaged_checkpoint_is_one_line(cae, how):
    _damage(cae, how)
    with pytest.raises(ArtefactError) as err:
        load_checkpoint(cae)
    msg = str(err.value)
    assert "\n" not in msg and "weights_only" not in msg and str(cae) in msg, msg


@pytest.mark.parametrize("how", ["truncated", "python objects", "missing keys"])
def test_cli_says_one_line_for_a_damaged_init(cae, how, tmp_path):
    _damage(cae, how)
    res = CliRunner().invoke(app, ["train", "classify", "--data", str(tmp_path), "--init", str(cae), "--run-dir", str(tmp_path / "r")])
    assert res.exit_code == 2 and "Traceback" not in res.output and "weights_only" not in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and "cae.pt" in res.output, res.output
