"""What this installation of ecgedge is and holds: its version and commit, the device's C sources, the
compiled simulated device.

Two kinds of installation exist, and every question here has one answer for each:

- **a wheel** (``pip install ecgedge``): the build wrote ``ecgedge/_build_info.py`` (version, the git
  commit it was built from, ``+dirty`` when that tree had uncommitted changes), compiled ``ecgsim`` and
  ``ecgbdump`` into ``ecgedge/_bin/`` and copied the firmware sources into ``ecgedge/firmware_bridge/``.
  Nothing is ever compiled at run time.
- **a source checkout** (a git clone, editable install or not): the commit is read from git when asked,
  the sources are the checkout's ``firmware_bridge/``, and an executable is built there with ``make``
  when first needed (as development wants: always from the current sources).

``setup.py`` loads this file by path (it imports only the standard library) for :func:`git_commit`, so
the build and the run time describe a commit the same way. The console scripts ``ecgsim`` and
``ecgbdump`` are :func:`ecgsim_main` and :func:`ecgbdump_main`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
# A source checkout: the package folder sits beside firmware_bridge/ in a git work tree. In an installed
# wheel the package's parent is site-packages, which has neither.
CHECKOUT = PACKAGE.parent
BUNDLED_BIN = PACKAGE / "_bin"
BUNDLED_FIRMWARE = PACKAGE / "firmware_bridge"
EXECUTABLES = ("ecgsim", "ecgbdump")
"""The firmware_bridge programs a wheel carries (Makefile targets ``build/NAME``)."""


def is_source_checkout() -> bool:
    """Whether ecgedge runs from a git checkout that holds firmware_bridge/ (not from an installed wheel)."""
    return (CHECKOUT / "firmware_bridge" / "Makefile").is_file() and (CHECKOUT / ".git").exists()


def git_commit(root: str | Path) -> str | None:
    """The commit the work tree ``root`` is at, ``+dirty`` appended when a tracked file differs from it
    or an untracked file git does not ignore is present (either could end up in a build); ``None``
    where ``root`` is not the top of a git work tree or git is missing."""
    root = Path(root).resolve()

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != root:
        return None  # e.g. an unpacked sdist inside some other repository
    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    status = git("status", "--porcelain")
    return commit + ("+dirty" if status is None or status else "")


def build_info() -> dict[str, str]:
    """``{"version": "0.1.0", "commit": "<sha>[+dirty]" | "unknown", "install": "wheel" | "source checkout"}``.

    A wheel reports what its build recorded; a source checkout asks git now.
    """
    from ecgedge import __version__

    if is_source_checkout():
        return {"version": __version__, "commit": git_commit(CHECKOUT) or "unknown", "install": "source checkout"}
    try:
        from ecgedge import _build_info  # type: ignore[attr-defined]  # written by setup.py, not in git
    except ImportError:
        return {"version": __version__, "commit": "unknown", "install": "unknown"}
    return {"version": _build_info.VERSION, "commit": _build_info.COMMIT, "install": "wheel"}


def version_line() -> str:
    """What ``ecgedge --version`` prints: ``ecgedge 0.1.0 (commit 3b8728d...+dirty, wheel)``."""
    info = build_info()
    return f"ecgedge {info['version']} (commit {info['commit']}, {info['install']})"


def firmware_dir() -> Path:
    """The device side's C sources (``include/ecgbridge.h``, ``src/``, ``sim/``, ``tools/``, Makefile,
    PROTOCOL.md): the wheel's copy, else the source checkout's firmware_bridge/.

    Raises:
        ConfigError: neither is there (a wheel built without them).
    """
    for folder in (BUNDLED_FIRMWARE, CHECKOUT / "firmware_bridge"):
        if (folder / "include" / "ecgbridge.h").is_file():
            return folder
    from ecgedge.errors import ConfigError

    raise ConfigError(f"the firmware sources are neither in the installed package ({BUNDLED_FIRMWARE}) nor in a source checkout")


def bundled_executable(name: str) -> Path | None:
    """``ecgedge/_bin/NAME`` of an installed wheel, when it is there and executable; else ``None``."""
    exe = BUNDLED_BIN / name
    return exe if exe.is_file() and os.access(exe, os.X_OK) else None


def checkout_executable(name: str, build: bool = True) -> Path:
    """``firmware_bridge/build/NAME`` of a source checkout, built with make when missing (``build``).

    Raises:
        StreamError: not a source checkout, or not built and it cannot be built here.
    """
    from ecgedge.errors import StreamError

    bridge = CHECKOUT / "firmware_bridge"
    exe = bridge / "build" / name
    if exe.is_file():
        return exe
    if not (bridge / "Makefile").is_file():
        raise StreamError(f"{name} (the simulated device's firmware_bridge program) is neither in this installation "
                          f"({BUNDLED_BIN}) nor in a source checkout: reinstall ecgedge from its wheel, or from its sdist "
                          "with a C compiler")
    compiler = os.environ.get("CC") or next((cc for cc in ("cc", "gcc", "clang") if shutil.which(cc)), None)
    if not build or shutil.which("make") is None or compiler is None or shutil.which(compiler) is None:
        raise StreamError(f"{exe} is not built and cannot be built here: it needs make and a C compiler "
                          "(e.g. apt-get install build-essential); or stream from a device with "
                          "--source serial:DEVICE, tcp://HOST:PORT or stdin")
    done = subprocess.run(["make", "-C", str(bridge), f"build/{name}"], capture_output=True, text=True)
    if done.returncode != 0 or not exe.is_file():
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
        raise StreamError(f"building {exe} failed:\n{tail}")
    return exe


def executable(name: str, build: bool = True) -> Path:
    """A firmware_bridge program: the wheel's compiled one, else the checkout's (see :func:`checkout_executable`)."""
    return bundled_executable(name) or checkout_executable(name, build=build)


def _exec(name: str) -> None:
    from ecgedge.errors import EcgEdgeError

    try:
        exe = executable(name)
    except EcgEdgeError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    # ecgsim hands a WFDB record to the host's reader (python -m ecgedge.data.device_samples): run it with
    # this Python, the one that has ecgedge installed, not whichever python3 is first on PATH.
    os.environ.setdefault("ECGSIM_PYTHON", sys.executable)
    os.execv(exe, [str(exe), *sys.argv[1:]])


def ecgsim_main() -> None:
    """The ``ecgsim`` console script: executes the compiled simulated device with the same arguments."""
    _exec("ecgsim")


def ecgbdump_main() -> None:
    """The ``ecgbdump`` console script: executes the compiled frame dump tool with the same arguments."""
    _exec("ecgbdump")
