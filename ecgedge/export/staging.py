"""Stage and swap: an export is built in a hidden sibling of its folder and put in place by renames,
so an export that stops (an error, Ctrl-C, a full disk) leaves the previous one as it was.

A folder is replaced only when it is empty or an ecgedge export (its manifest's ``format``).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from ecgedge.errors import ArtefactError, ConfigError
from ecgedge.manifest import load_manifest


def check_replaceable(dest: Path) -> None:
    """Refuse an output folder export must not replace: a link, a file, or a non-empty folder whose
    ``manifest.json`` is not an ecgedge export's (by its ``format`` marker)."""
    if dest.is_symlink():
        raise ConfigError(f"{dest} is a symbolic link; give the folder itself as --out")
    if not dest.exists() or (dest.is_dir() and not any(dest.iterdir())):
        return
    if not dest.is_dir():
        raise ConfigError(f"{dest} is a file, not a folder; choose another --out")
    try:
        load_manifest(dest, verify=False)
    except ArtefactError as exc:
        raise ConfigError(f"{dest} is not empty and not an ecgedge export ({exc}); choose another --out") from None


def staging_folder(dest: Path) -> Path:
    """A new, empty, hidden sibling of ``dest`` to build the export in (same file system: the swap is a rename)."""
    check_replaceable(dest)
    dest = Path(os.path.abspath(dest))  # --out . has no name to put beside
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.with_name(f".{dest.name}.partial-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    return staging


def swap_in(staging: Path, dest: Path) -> None:
    """Put the finished export in place: the old one is renamed aside, the new one renamed in, then
    the old one removed; a failed rename puts the old one back."""
    check_replaceable(dest)  # again: something else may have been put there while exporting
    dest, old = Path(os.path.abspath(dest)), None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
        dest.rename(old)
    try:
        staging.rename(dest)
    except BaseException:
        if old is not None:
            old.rename(dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)  # the new export is in place; a leftover is only disk space


def staging_folder_for(src: Path) -> Path:
    """A hidden sibling of the export ``src`` being updated in place (``staging_folder`` without its emptiness rule)."""
    src = Path(os.path.abspath(src))
    staging = src.with_name(f".{src.name}.partial-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    return staging
