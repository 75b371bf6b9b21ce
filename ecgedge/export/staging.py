"""Stage and swap: an export is built in a hidden sibling of its folder and put in place by renames,
so an export that stops (an error, Ctrl-C, a full disk) leaves the previous one as it was.

An export folder is an owned folder (:mod:`ecgedge.fsio`, the one home of the policy): it is
written only when new, empty, or an ecgedge export (its marker, or for an export written before
markers its manifest's ``format``), and a re-export replaces only the files the previous one
listed: a user's notes beside them stay. A folder holding the command's inputs (the run, the
signing key) is refused, and so is one holding a private key: exports are copied to devices.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from ecgedge.errors import ArtefactError
from ecgedge.fsio import FolderKind, claim_folder, new_staging, publish_folder
from ecgedge.manifest import MANIFEST, SIGNATURE, load_manifest


def legacy_export_files(folder: Path) -> list[str] | None:
    """The files of an export written before folder markers: those its manifest lists, the manifest
    and its signature; ``None`` when ``folder`` is not an ecgedge export."""
    try:
        manifest = load_manifest(folder, verify=False)
    except ArtefactError:
        return None
    return [*(manifest.data.get("files") or {}), MANIFEST, SIGNATURE]


def check_replaceable(dest: Path, inputs: Iterable[str | Path] = ()) -> frozenset[str]:
    """Refuse an output folder export must not write (:func:`ecgedge.fsio.claim_folder`); return the
    files of the export there that a re-export replaces."""
    return claim_folder(dest, FolderKind.export, replace=True, inputs=inputs, legacy=legacy_export_files, flag="--out")


def staging_folder(dest: Path, inputs: Iterable[str | Path] = ()) -> Path:
    """A new, empty, hidden sibling of ``dest`` to build the export in (same file system: the swap is
    a rename), once ``dest`` is checked (:func:`check_replaceable`)."""
    check_replaceable(dest, inputs)
    return new_staging(Path(os.path.abspath(dest)), FolderKind.export)  # --out . has no name to put beside


def swap_in(staging: Path, dest: Path, inputs: Iterable[str | Path] = ()) -> None:
    """Put the finished export in place (:func:`ecgedge.fsio.publish_folder`): the previous export's
    files go, a user's files stay; a failed rename puts the old one back."""
    owned = check_replaceable(dest, inputs)  # again: something else may have been put there while exporting
    publish_folder(staging, dest, FolderKind.export, owned)


def staging_folder_for(src: Path) -> Path:
    """A hidden sibling of the export ``src`` being updated in place (no emptiness rule: it is ours)."""
    return new_staging(Path(os.path.abspath(src)), FolderKind.export)


def export_files(folder: Path) -> list[str]:
    """The files of export ``folder`` that are ecgedge's (what an update in place copies)."""
    from ecgedge.fsio import read_marker

    marker = read_marker(folder)
    return list(marker["files"]) if marker is not None else (legacy_export_files(folder) or [])
