"""Writing files a user keeps, and the folders ecgedge owns: the one home of both policies.

*Atomic files.* :func:`atomic_file` (and :func:`atomic_write_bytes` / :func:`atomic_write_text`)
write beside the target (a hidden temporary file in the same folder), flush and fsync it, then
rename it over the target: an interrupted run (Ctrl-C, a crash, a full disk) leaves the previous
file, never half of a new one.

*Folders ecgedge owns* (house style 20). A command that writes a folder (a training run, an
export, a window store, an evaluation, a download, ``stream --show-png``'s strips, a transfer
experiment, the quickstart's folder) writes only into

- a new or empty folder, or
- a folder carrying its own marker (:data:`MARKER`, ``.ecgedge-folder.json``) of the same
  :class:`FolderKind`, and then only when told to replace it (``--overwrite`` / ``--resume``).

The marker lists the files ecgedge wrote there; a replacement replaces only those. Anything else in
the folder (a user's notes, a thesis, a key) is carried over untouched into the new result, and a
folder that contains one of the command's own inputs is refused outright. A private key is never
deleted, and a private key inside an export folder is refused (an export is copied to devices).

A folder is built in a hidden staging sibling (``.NAME.ecgedge-staging-XXXX``, same file system)
and swapped in by renames (:func:`owned_folder`); the staging folder's own marker journals which
user files were carried into it, so a run that dies mid-swap is repaired by the next run over the
same folder (:func:`clean_leftovers`): user files go back, the previous result is restored if the
new one never landed, and only then is the leftover removed.

This module imports nothing of ecgedge but its errors: the format modules (manifest, store) and
every command sit above it.
"""

from __future__ import annotations

import enum
import json
import os
import re
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ecgedge.errors import ConfigError

MARKER = ".ecgedge-folder.json"
MARKER_FORMAT = "ecgedge.folder/1"
_STAGING = ".ecgedge-staging-"
_OLD = ".ecgedge-old-"


class FolderKind(str, enum.Enum):
    """What an ecgedge-owned folder holds (its marker's ``kind``); a command writes only its own kind."""

    run = "training run"
    export = "export"
    store = "window store"
    evaluation = "evaluation"
    download = "download"
    strips = "stream strips folder"
    experiment = "transfer experiment"
    quickstart = "quickstart folder"


# ------------------------------------------------------------------------------------------ files


@contextmanager
def atomic_file(path: str | Path, mode: str = "wb", *, encoding: str | None = None) -> Iterator:
    """Open a temporary file beside ``path``; on a clean exit it is fsynced and renamed to ``path``
    (atomic on one file system), on an exception it is removed and ``path`` is left as it was.

    ``mode``: ``"wb"`` or ``"w"`` (text; ``encoding`` defaults to UTF-8).
    """
    path = Path(path)
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_file writes a new file: mode 'wb' or 'w', not {mode!r}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, mode, encoding=(encoding or "utf-8") if mode == "w" else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_file`). Returns ``path``."""
    with atomic_file(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_file`). Returns ``path``."""
    with atomic_file(path, "w") as f:
        f.write(text)
    return Path(path)


def atomic_copy(src: str | Path, dest: str | Path) -> Path:
    """Copy the file ``src`` to ``dest`` atomically (:func:`atomic_file`). Returns ``dest``."""
    with open(src, "rb") as fin, atomic_file(dest, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
    return Path(dest)


def staged_folder(dest: str | Path) -> Path:
    """A new, empty folder beside ``dest`` to build a replacement for it in (see :func:`swap_folder`);
    a staging folder left by a killed run is found by its name and removed by the next one."""
    dest = Path(os.path.abspath(dest))
    for left in dest.parent.glob(f".{dest.name}{_STAGING}*"):
        shutil.rmtree(left, ignore_errors=True)
    staging = dest.with_name(f".{dest.name}{_STAGING}{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    return staging


def swap_folder(staging: str | Path, dest: str | Path) -> Path:
    """Replace the folder ``dest`` (a sub-folder ecgedge wrote whole: an MCU library, a Triton model, a
    shipped export) by the finished ``staging`` one: the old folder is renamed aside, the new one renamed
    in, then the old one removed; a failed rename puts the old folder back. An interruption leaves the old
    folder or the new one, never a mix. Returns ``dest``."""
    staging, dest = Path(staging), Path(os.path.abspath(dest))
    old = None
    try:
        if dest.exists():
            old = dest.with_name(f".{dest.name}{_OLD}{uuid.uuid4().hex[:8]}")
            os.rename(dest, old)
        os.rename(staging, dest)
    except BaseException:
        if old is not None and not dest.exists():
            os.rename(old, dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return dest


def is_private_key(path: str | Path) -> bool:
    """Whether ``path`` is a file holding a PEM private key (its first 4 KiB name one)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return b"PRIVATE KEY-----" in head


# ------------------------------------------------------------------------------------------ owned folders


def read_marker(folder: str | Path) -> dict | None:
    """The marker of an ecgedge-owned folder; ``None`` where there is none or it is not one."""
    try:
        data = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != MARKER_FORMAT or not isinstance(data.get("files"), list):
        return None
    return data


def write_marker(folder: str | Path, kind: FolderKind, files: Iterable[str], **extra) -> Path:
    """Write (atomically) ``folder``'s marker: ``kind`` and the files ecgedge wrote there."""
    doc = {"format": MARKER_FORMAT, "kind": FolderKind(kind).value, "files": sorted(set(files) - {MARKER}), **extra}
    return atomic_write_text(Path(folder) / MARKER, json.dumps(doc, indent=2))


def _files_in(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def claim_folder(dest: str | Path, kind: FolderKind, *, replace: bool = False, inputs: Iterable[str | Path] = (),
                 legacy: Callable[[Path], Iterable[str] | None] | None = None, flag: str = "--overwrite") -> frozenset[str]:
    """Check that a command writing a ``kind`` folder may write ``dest``; return the files ecgedge
    wrote there before (those a replacement may replace; empty for a new or empty folder).

    Refused (:class:`ConfigError`, one line, nothing touched): a link or a file at ``dest``; a
    ``dest`` that contains one of ``inputs`` (or is one); a non-empty folder without a marker (unless
    ``legacy`` recognises a folder an older ecgedge wrote and lists its files); a marker of another
    kind; a folder of this kind without ``replace`` (the message names ``flag``); for exports, a
    private key inside. Leftovers of an interrupted run over ``dest`` are repaired first.
    """
    kind = FolderKind(kind)
    dest = Path(dest)
    if dest.is_symlink():
        raise ConfigError(f"{dest} is a symbolic link; give the folder itself")
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"{dest} is a file, not a folder; choose another")
    real = Path(os.path.abspath(dest)).resolve()
    for item in inputs:
        src = Path(os.path.abspath(item)).resolve()
        if _inside(src, real):
            raise ConfigError(f"{dest} contains this command's input {item}; write the {kind.value} to another folder")
    clean_leftovers(dest)
    if not dest.exists() or not any(dest.iterdir()):
        return frozenset()
    marker = read_marker(dest)
    if marker is None:
        listed = legacy(dest) if legacy is not None else None
        if listed is None:
            raise ConfigError(f"{dest} is not empty and not an ecgedge {kind.value} (no {MARKER}); "
                              "its files are not ecgedge's to replace: choose another folder")
        owned = frozenset(listed)
    elif marker.get("kind") != kind.value:
        raise ConfigError(f"{dest} holds an ecgedge {marker.get('kind')}, not a {kind.value}; choose another folder")
    else:
        owned = frozenset(marker["files"])
    if not replace:
        raise ConfigError(f"{dest} already holds an ecgedge {kind.value}; pass {flag} to replace it "
                          "(only the files ecgedge wrote there are replaced)")
    if kind == FolderKind.export:
        refuse_private_keys(dest)
    return owned


def refuse_private_keys(folder: str | Path) -> None:
    """Refuse (:class:`ConfigError`) an export folder that holds a private key: an export is copied to
    devices and servers, a signing key must stay on the build machine."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for rel in _files_in(folder):
        if is_private_key(folder / rel):
            raise ConfigError(f"{folder / rel} is a private key inside the export folder {folder}; "
                              "move it out (keep signing keys off anything that is shipped)")


def new_staging(dest: str | Path, kind: FolderKind) -> Path:
    """A new, empty, hidden sibling of ``dest`` to build a ``kind`` folder in (same file system, so
    the swap is a rename), journalled by its own marker."""
    dest = Path(os.path.abspath(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.with_name(f".{dest.name}{_STAGING}{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    write_marker(staging, kind, (), staging=True, pid=os.getpid(), host=os.uname().nodename, carried=[])
    return staging


def publish_folder(staging: Path, dest: str | Path, kind: FolderKind, owned: Iterable[str]) -> None:
    """Swap the finished ``staging`` folder in as ``dest``.

    The new marker lists the files in ``staging``. Files in ``dest`` ecgedge did not write (not in
    ``owned``, the previous marker's list) are moved into the new folder first (journalled in the
    staging marker); a user file with the name of a new file is refused before anything moves. The
    old result is renamed aside, the new one renamed in, then the old one's listed files removed
    (a private key never is). A failed rename puts the old folder and the user's files back.
    """
    kind = FolderKind(kind)
    dest = Path(os.path.abspath(dest))
    owned = set(owned)
    new_files = _files_in(staging)
    new_set = set(new_files) - {MARKER}
    carried: list[str] = []
    if dest.exists():
        user = [r for r in _files_in(dest) if r not in owned and r != MARKER]
        user += [r for r in _files_in(dest) if r in owned and is_private_key(dest / r)]
        clash = sorted(set(user) & new_set)
        if clash:
            raise ConfigError(f"{dest / clash[0]} is not ecgedge's and the new {kind.value} writes a file of that name; "
                              "move it and run again")
        write_marker(staging, kind, (), staging=True, pid=os.getpid(), host=os.uname().nodename, carried=user)
        for rel in user:
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            os.rename(dest / rel, staging / rel)
            carried.append(rel)
    write_marker(staging, kind, new_set, carried=carried, staging=True, pid=os.getpid(), host=os.uname().nodename)
    old = None
    try:
        if dest.exists():
            old = dest.with_name(f".{dest.name}{_OLD}{uuid.uuid4().hex[:8]}")
            os.rename(dest, old)
        os.rename(staging, dest)
    except BaseException:
        if old is not None and not dest.exists():
            os.rename(old, dest)
        _carry_back(staging, dest, carried)
        raise
    write_marker(dest, kind, new_set)
    if old is not None:
        _remove_listed(old)


def _carry_back(staging: Path, dest: Path, carried: Iterable[str]) -> None:
    for rel in carried:
        src, back = staging / rel, dest / rel
        if (src.exists() or src.is_symlink()) and not back.exists():
            back.parent.mkdir(parents=True, exist_ok=True)
            os.rename(src, back)


def _remove_listed(folder: Path) -> None:
    """Remove what ``folder``'s marker lists (never a private key), the marker, then the folder if
    nothing else is left; anything unlisted stays where it is."""
    marker = read_marker(folder) or {"files": []}
    for rel in marker["files"]:
        p = folder / rel
        if (p.is_file() or p.is_symlink()) and _inside(Path(os.path.abspath(p)), Path(os.path.abspath(folder))) \
                and not is_private_key(p):
            p.unlink()
    (folder / MARKER).unlink(missing_ok=True)
    for d in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            d.rmdir()
        except OSError:
            pass
    try:
        folder.rmdir()
    except OSError:
        pass


def _alive(marker: dict) -> bool:
    """Whether the run that made a staging folder may still be running (same host, live pid)."""
    if marker.get("host") != os.uname().nodename or not isinstance(marker.get("pid"), int):
        return False
    if marker["pid"] == os.getpid():
        return True  # this very process: the folder it is building
    try:
        os.kill(marker["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(dest: str | Path) -> None:
    """Repair what an interrupted run over ``dest`` left beside it: restore the previous result if
    the new one never landed, move the user's carried files back, then remove the leftovers (only
    files their markers list). Staging folders of a run still alive on this machine are left alone."""
    dest = Path(os.path.abspath(dest))
    if not dest.parent.is_dir():
        return
    siblings = sorted(dest.parent.glob(f".{dest.name}.ecgedge-*"))
    olds = [p for p in siblings if p.name.startswith(f".{dest.name}{_OLD}") and p.is_dir()]
    stagings = [p for p in siblings if p.name.startswith(f".{dest.name}{_STAGING}") and p.is_dir()]
    for old in olds:
        if not dest.exists():
            os.rename(old, dest)  # the swap died between its two renames: the previous result is back
            dest_marker = read_marker(dest)
            if dest_marker is not None:
                write_marker(dest, FolderKind(dest_marker["kind"]), dest_marker["files"])
        else:
            _remove_listed(old)
    for staging in stagings:
        marker = read_marker(staging)
        if marker is None or _alive(marker):
            continue
        if dest.is_dir():
            _carry_back(staging, dest, marker.get("carried") or [])
        else:
            dest.mkdir(parents=True, exist_ok=True)
            _carry_back(staging, dest, marker.get("carried") or [])
        left = set(_files_in(staging)) - {MARKER}
        if left & set(marker.get("carried") or []):
            continue  # a carried file could not go back (a new one of that name): keep it where it is
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def owned_folder(dest: str | Path, kind: FolderKind, *, replace: bool = False, inputs: Iterable[str | Path] = (),
                 legacy: Callable[[Path], Iterable[str] | None] | None = None, flag: str = "--overwrite") -> Iterator[Path]:
    """Build a ``kind`` folder for ``dest``: checked by :func:`claim_folder`, built in the staging
    folder this yields, swapped in by :func:`publish_folder` on a clean exit (checked again first:
    something may have been put there meanwhile). On an exception the staging folder is removed and
    ``dest`` is as it was."""
    claim_folder(dest, kind, replace=replace, inputs=inputs, legacy=legacy, flag=flag)
    staging = new_staging(dest, kind)
    try:
        yield staging
        owned = claim_folder(dest, kind, replace=replace, inputs=inputs, legacy=legacy, flag=flag)
        publish_folder(staging, dest, kind, owned)
    finally:
        if staging.exists():
            marker = read_marker(staging) or {}
            _carry_back(staging, Path(os.path.abspath(dest)), marker.get("carried") or [])
            shutil.rmtree(staging, ignore_errors=True)


def claim_in_place(folder: str | Path, kind: FolderKind, *, replace: bool = False, inputs: Iterable[str | Path] = (),
                   legacy: Callable[[Path], Iterable[str] | None] | None = None, flag: str = "--overwrite") -> frozenset[str]:
    """For a folder written file by file (a training run, a download): :func:`claim_folder`, then make
    it and write its marker (keeping the files listed before). Returns the files listed before.
    Record each file written afterwards with :func:`own_files`."""
    owned = claim_folder(folder, kind, replace=replace, inputs=inputs, legacy=legacy, flag=flag)
    Path(folder).mkdir(parents=True, exist_ok=True)
    write_marker(folder, kind, owned)
    return owned


_TEMP = re.compile(r"^\.(.+)\.(\d+)\.[0-9a-f]{8}\.tmp$")


def clean_stale_temps(folder: str | Path) -> list[str]:
    """Remove what :func:`atomic_file` left in ``folder`` (and below) when its process was killed: the
    hidden ``.NAME.PID.XXXXXXXX.tmp`` files of processes no longer alive on this machine. A temporary
    file is never a result (it was renamed to one, or it was not finished). Returns the removed names."""
    folder = Path(folder)
    removed: list[str] = []
    if not folder.is_dir():
        return removed
    for p in folder.rglob(".*.tmp"):
        m = _TEMP.match(p.name)
        if m is None or not p.is_file() or p.is_symlink():
            continue
        if _alive({"host": os.uname().nodename, "pid": int(m.group(2))}):
            continue
        p.unlink(missing_ok=True)
        removed.append(p.relative_to(folder).as_posix())
    return removed


def own_files(folder: str | Path, *names: str) -> None:
    """Add ``names`` (relative to ``folder``) to the files its marker says ecgedge wrote."""
    marker = read_marker(folder)
    if marker is None:
        return
    files = set(marker["files"]) | set(names)
    if files != set(marker["files"]):
        extra = {k: v for k, v in marker.items() if k not in ("format", "kind", "files")}
        write_marker(folder, FolderKind(marker["kind"]), files, **extra)


def remove_owned(folder: str | Path, name: str) -> None:
    """Delete ``folder/name`` only if the folder's marker lists it as ecgedge's (never a private key)."""
    marker = read_marker(folder)
    p = Path(folder) / name
    if marker is not None and name in marker["files"] and p.is_file() and not is_private_key(p):
        p.unlink()
