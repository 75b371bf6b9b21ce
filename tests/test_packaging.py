"""What an installation is and holds (``ecgedge.installation``) and what the wheel carries.

Runs in a source checkout (the usual test run) and against an installed wheel (``.ci/wheel`` copies the
tests outside the source tree, so ``import ecgedge`` is the installed package): the checks that only one
of the two can make skip in the other with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

import ecgedge
from ecgedge import installation
from ecgedge.cli.main import app

COMMIT = re.compile(r"^[0-9a-f]{40}(\+dirty)?$")
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
checkout_only = pytest.mark.skipif(not installation.is_source_checkout(), reason="needs a source checkout (this is an installed wheel)")
wheel_only = pytest.mark.skipif(installation.is_source_checkout(), reason="needs an installed wheel (this is a source checkout)")


def test_version_names_the_package_version_and_its_commit():
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0, res.output
    info = installation.build_info()
    assert info["version"] == ecgedge.__version__
    assert res.output.strip() == f"ecgedge {ecgedge.__version__} (commit {info['commit']}, {info['install']})"
    if shutil.which("git") or info["install"] == "wheel":
        assert COMMIT.match(info["commit"]), info


@pytest.mark.parametrize("args", [["firmware-dir"], ["--firmware-dir"]])
def test_firmware_dir_holds_the_device_sources(args):
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    folder = Path(res.output.strip())
    assert folder == installation.firmware_dir()
    for name in ("include/ecgbridge.h", "src/frame.c", "src/internal.h", "sim/ecgsim.c", "Makefile", "PROTOCOL.md",
                 "test_vectors/frames.json"):
        assert (folder / name).is_file(), name


def test_every_manifest_records_the_version_and_commit():
    pytest.importorskip("torch", reason="the export pipeline (which writes manifests) needs torch")
    from ecgedge.export.pipeline import software_versions

    info = installation.build_info()
    versions = software_versions()
    assert (versions["ecgedge"], versions["ecgedge_commit"]) == (info["version"], info["commit"])


@needs_git
def test_git_commit_says_dirty_for_changed_or_untracked_files(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.txt").write_text("one\n")
    git("add", "a.txt")
    git("commit", "-q", "-m", "one")
    clean = installation.git_commit(tmp_path)
    assert clean is not None and re.fullmatch(r"[0-9a-f]{40}", clean)
    (tmp_path / "a.txt").write_text("two\n")
    assert installation.git_commit(tmp_path) == clean + "+dirty"
    git("checkout", "-q", "a.txt")
    (tmp_path / "new.c").write_text("")
    assert installation.git_commit(tmp_path) == clean + "+dirty"
    (tmp_path / "sub").mkdir()
    assert installation.git_commit(tmp_path / "sub") is None, "a folder inside a work tree is not the tree it builds from"


@checkout_only
@needs_git
def test_a_source_checkout_reads_its_commit_from_git():
    info = installation.build_info()
    assert info["install"] == "source checkout"
    assert info["commit"] == installation.git_commit(installation.CHECKOUT)


@wheel_only
def test_an_installed_wheel_carries_its_build_record_and_compiled_device():
    info = installation.build_info()
    assert info["install"] == "wheel" and COMMIT.match(info["commit"]), info
    for name in installation.EXECUTABLES:
        assert installation.bundled_executable(name) is not None, name
    assert installation.firmware_dir() == installation.BUNDLED_FIRMWARE
    from ecgedge.shipped import shipped_model

    assert (shipped_model("cinc2017-rhythm").path / "manifest.json").is_file()


@pytest.mark.c
@pytest.mark.parametrize("name, usage", [("ecgsim", "usage: ecgsim"), ("ecgbdump", "usage: ecgbdump")])
def test_console_scripts_run_the_compiled_programs(name, usage):
    if installation.bundled_executable(name) is None and shutil.which("make") is None:
        pytest.skip("no bundled executable and no make to build one")
    code = f"import sys; sys.argv = [{name!r}, '--help']; from ecgedge.installation import {name}_main; {name}_main()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert usage in done.stdout + done.stderr, done


@pytest.mark.slow
@pytest.mark.c
@checkout_only
def test_the_wheel_holds_the_compiled_device_sources_models_and_build_record(tmp_path):
    """``pip wheel .`` as a user runs it (build isolation: the build-system requirements); the build
    folder under tmp_path, not in the source tree."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    cfg = tmp_path / "build.cfg"
    cfg.write_text(f"[build]\nbuild_base = {tmp_path / 'build'}\n")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(installation.CHECKOUT)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "DIST_EXTRA_CONFIG": str(cfg)})
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = tmp_path.glob("ecgedge-*.whl")
    assert re.fullmatch(rf"ecgedge-{re.escape(ecgedge.__version__)}-py3-none-linux_\w+\.whl", wheel.name), "platform-specific, any CPython 3"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
        record = zf.read("ecgedge/_build_info.py").decode()
    for name in installation.EXECUTABLES:
        assert modes[f"ecgedge/_bin/{name}"] & 0o111, f"{name} is not executable in the wheel"
    assert {"ecgedge/firmware_bridge/include/ecgbridge.h", "ecgedge/firmware_bridge/src/frame.c",
            "ecgedge/shipped/cinc2017-rhythm/export/model.int8.onnx", "ecgedge/shipped/cinc2017-rhythm/export/manifest.json",
            "ecgedge/shipped/cinc2017-rhythm/export/manifest.sig", "ecgedge/shipped/cinc2017-rhythm/shipped.sig",
            "ecgedge/shipped/cinc2017-cae/shipped.sig", "ecgedge/shipped/project-key.pub"} <= names
    assert not any(n.endswith(".pem") or "PRIVATE" in n for n in names), "no private key in the wheel"
    assert not any("/build/" in n or n.endswith((".o", ".a")) for n in names), "no build products of the source tree"
    assert f"COMMIT = {installation.git_commit(installation.CHECKOUT)!r}" in record
