"""What the readers share below the formats: walking data folders, probing a text file's first
line, and importing a format's package only when a record of that format is read.

No format is known here; ``ecgedge.data.records`` and the format modules build on these.
"""

from __future__ import annotations

import importlib
import os
import warnings
from pathlib import Path
from typing import Iterator

from ecgedge.errors import EcgEdgeError


def files_under(folder: Path) -> Iterator[Path]:
    """Every file below ``folder``, following symlinks (data sets are often linked in) and cutting link loops."""
    seen = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:   # a link loop
            dirs[:] = []
            continue
        seen.add(real)
        for name in files:
            yield Path(root, name)


def first_csv_fields(f: Path) -> list[str]:
    """The comma-separated fields of ``f``'s first line (at most 4 KiB read); [] when unreadable."""
    try:
        with open(f, encoding="utf-8-sig", errors="replace") as fh:
            line = fh.readline(4096)
    except OSError:
        return []
    return [x.strip().strip('"') for x in line.strip().split(",")]


def is_number(text: str) -> bool:
    """Whether ``text`` parses as a float."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def optional_import(module: str, purpose: str):
    """Import a format's package (``wfdb``: the ``records`` extra; ``h5py``, ``openpyxl``: the ``train`` extra) when first needed.

    Raises:
        EcgEdgeError: the package is missing, with the command that installs it.
    """
    try:
        with warnings.catch_warnings():
            # wfdb 4.3 calls a pandas API deprecated in pandas 3 while importing: not ours to show.
            warnings.filterwarnings("ignore", message="The inplace keyword", module="wfdb")
            return importlib.import_module(module)
    except ImportError:
        extra = "records" if module == "wfdb" else "train"  # wfdb alone: the light, torch-free extra
        raise EcgEdgeError(f"{purpose} needs the '{module}' package: pip install 'ecgedge[{extra}]'") from None
