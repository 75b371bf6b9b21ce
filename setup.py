"""The build steps pyproject.toml cannot declare: a wheel carries the compiled simulated device.

Everything else (metadata, dependencies, extras, package data) is in pyproject.toml. Here:

- ``build_py`` (non-editable builds: ``python -m build``, ``pip install .``, ``pip wheel .``) runs the
  firmware_bridge Makefile's own targets (``build/ecgsim``, ``build/ecgbdump``; its source lists stay in
  one place) with the platform's compiler into the build folder, and puts into the package
  ``ecgedge/_bin/{ecgsim,ecgbdump}``, a copy of the C sources (``ecgedge/firmware_bridge/``) and
  ``ecgedge/_build_info.py`` (version, git commit, ``+dirty`` for an unclean tree). An editable install
  does none of this: a source checkout builds firmware_bridge/build with make when first needed.
- ``sdist`` writes ``ecgedge/_build_info.py`` into the source archive, so a wheel built from it (where
  there is no git) records the commit the sdist came from.
- ``bdist_wheel`` tags the wheel ``py3-none-<platform>``: it holds native executables (so it is not
  pure) but no Python extension module (so any CPython 3 runs it).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
BRIDGE = ROOT / "firmware_bridge"
# What a device port needs beside the library (include/, src/): the simulator and tools it can start
# from, the unit tests and vectors that check a port, the Makefile that builds them all, the protocol.
FIRMWARE_FILES = ("Makefile", "PROTOCOL.md", "README.md", "include", "src", "sim", "tools", "tests", "test_vectors")
# -O2 without -g: release executables, and no build-folder paths in them (a wheel from the sdist matches).
MAKE_OPT = "OPT=-O2"


def _installation():
    """ecgedge/installation.py, loaded by path (standard library only): one definition of the commit string."""
    spec = importlib.util.spec_from_file_location("_ecgedge_installation", ROOT / "ecgedge" / "installation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _version() -> str:
    for line in (ROOT / "ecgedge" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    raise RuntimeError("ecgedge/__init__.py has no __version__")


def _write_build_info(package_dir: Path, commit: str) -> Path:
    path = package_dir / "_build_info.py"
    path.write_text('"""Written by setup.py when this ecgedge was built (not in git); read by ecgedge.installation.build_info."""\n\n'
                    f"VERSION = {_version()!r}\nCOMMIT = {commit!r}\n")
    return path


class BuildPyWithDevice(build_py):
    """build_py, then the compiled device, its C sources and the build record into the package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        package = Path(self.build_lib) / "ecgedge"
        commit = _installation().git_commit(ROOT)
        if commit is not None or not (package / "_build_info.py").is_file():
            self._extra = [_write_build_info(package, commit or "unknown")]
        else:
            self._extra = []  # the sdist's record, copied as a module by build_py
        self._extra += self._compile(package / "_bin") + self._copy_sources(package / "firmware_bridge")

    def _compile(self, dest: Path) -> list[Path]:
        installation = _installation()
        out = Path(self.get_finalized_command("build").build_temp).resolve() / "firmware_bridge"
        targets = [str(out / name) for name in installation.EXECUTABLES]
        # BUILD= on the command line moves the Makefile's build folder out of the source tree.
        cmd = ["make", "-C", str(BRIDGE), f"BUILD={out}", MAKE_OPT, *targets]
        if shutil.which("make") is None:
            raise RuntimeError("building ecgedge compiles its simulated device (firmware_bridge): it needs make and a "
                               "C99 compiler (e.g. apt-get install build-essential)")
        self.announce(" ".join(cmd), level=2)
        subprocess.run(cmd, check=True)
        dest.mkdir(parents=True, exist_ok=True)
        copied = []
        for name in installation.EXECUTABLES:
            shutil.copy2(out / name, dest / name)
            copied.append(dest / name)
        return copied

    def _copy_sources(self, dest: Path) -> list[Path]:
        if dest.exists():
            shutil.rmtree(dest)
        for name in FIRMWARE_FILES:
            src = BRIDGE / name
            if src.is_dir():
                shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("build", "*.o", "*.a"))
            else:
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / name)
        return [p for p in dest.rglob("*") if p.is_file()]

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return super().get_outputs(include_bytecode) + [str(p) for p in getattr(self, "_extra", [])]


class SdistWithBuildInfo(sdist):
    """sdist, with the commit it was made from recorded inside (a wheel built from it has no git)."""

    def make_release_tree(self, base_dir, files) -> None:
        super().make_release_tree(base_dir, files)
        target = Path(base_dir) / "ecgedge" / "_build_info.py"
        target.unlink(missing_ok=True)  # a hard link into the source tree, if one was there
        _write_build_info(target.parent, _installation().git_commit(ROOT) or "unknown")


class DeviceDistribution(Distribution):
    """Platform-specific: ``install`` puts the package into platlib and the wheel is not pure."""

    def has_ext_modules(self) -> bool:
        return True


class PlatformWheel(bdist_wheel):
    """``py3-none-<platform>``: native executables inside, no extension module."""

    def get_tag(self) -> tuple[str, str, str]:
        _, _, plat = super().get_tag()
        return "py3", "none", plat


setup(distclass=DeviceDistribution, cmdclass={"build_py": BuildPyWithDevice, "sdist": SdistWithBuildInfo, "bdist_wheel": PlatformWheel})
