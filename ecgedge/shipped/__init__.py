"""The models that ship inside the package, each with its model card, and name resolution.

Layout (package data, a few hundred KiB in all)::

    ecgedge/shipped/
      NAME/
        card.md          model card: data, split, command, metrics with intervals, limits
        shipped.json     {"name", "kind": "export" | "checkpoint", "summary", "path",
                          "files": {relative path: sha256} of every other file of the model}
        shipped.sig      the project's Ed25519 signature of shipped.json (ecgedge.signing's format)
        ...              an export folder (manifest.json + ONNX files) or a checkpoint file
      project-key.pub    the project's public key (its private half never enters the repository)

*Pinned and signed.* Every file of a shipped model (card, config, checkpoint, each file of the
export) is pinned by its sha256 in ``shipped.json``, which the project's key signs; the export's own
``manifest.sig`` is signed by the same key. :func:`verify_shipped` checks the signature against the
public key shipped here (pinned: a signature by any other key is refused) and every pinned file, and
:func:`resolve_source` runs it whenever a command takes a model by name: an edited ``cae.pt`` or a
swapped label map is refused in one line. ``ecgedge models`` says whether each model verifies.
:func:`pin_shipped` re-pins and re-signs a model after ``ecgedge models retrain --install``.

``ecgedge models`` lists them. Every command that takes an export folder (``stream``,
``evaluate``, ``bench``, ``export --check``) or a checkpoint also takes a shipped model's name:
:func:`resolve_source` turns ``NAME`` into its folder or file. An existing path always wins over a
name, so a local folder is never shadowed. Torch-free (the runtime and stream use it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ecgedge.errors import ArtefactError, ConfigError

SHIPPED_ROOT = Path(__file__).resolve().parent
PROJECT_KEY = SHIPPED_ROOT / "project-key.pub"
META = "shipped.json"


@dataclass(frozen=True)
class ShippedModel:
    """One shipped model: ``path`` is the export folder or checkpoint file a command loads."""

    name: str
    kind: str  # "export" (ONNX folder with manifest) or "checkpoint" (PyTorch, e.g. the CAE)
    summary: str
    folder: Path
    path: Path

    @property
    def card(self) -> Path:
        return self.folder / "card.md"


def list_models() -> list[ShippedModel]:
    """Every shipped model, sorted by name."""
    out = []
    for meta in sorted(SHIPPED_ROOT.glob("*/shipped.json")):
        d = json.loads(meta.read_text())
        out.append(ShippedModel(d["name"], d["kind"], d["summary"], meta.parent, meta.parent / d["path"]))
    return out


def shipped_model(name: str) -> ShippedModel:
    """The shipped model ``name``; an unknown name raises :class:`ConfigError` listing the known ones."""
    for m in list_models():
        if m.name == name:
            return m
    known = ", ".join(m.name for m in list_models()) or "none"
    raise ConfigError(f"no shipped model named {name!r} (shipped: {known}; `ecgedge models` lists them)")


def resolve_source(text: str | Path) -> Path:
    """``text`` as a path when it exists, else the path of the shipped model of that name."""
    path = Path(text)
    if path.exists():
        return path
    if isinstance(text, str) and "/" not in text and "\\" not in text:
        model = shipped_model(text)
        verify_shipped(model)
        return model.path
    raise ConfigError(f"{text}: no such file or folder (and not a shipped model name; `ecgedge models` lists them)")


def _pinnable(folder: Path) -> list[str]:
    """Every file of a shipped model folder but its pin file and that file's signature."""
    from ecgedge.signing import signature_path

    skip = {META, signature_path(META).name}
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.relative_to(folder).as_posix() not in skip and "__pycache__" not in p.parts)


def verify_shipped(model: ShippedModel, public_key: str | Path | None = None) -> None:
    """Refuse (:class:`ArtefactError`, one line) a shipped model whose ``shipped.json`` is not signed
    by the project's key (``public_key``, default :data:`PROJECT_KEY`), or one of whose files is
    missing, differs from its pinned sha256, or is not pinned at all."""
    from ecgedge.hashing import file_sha256
    from ecgedge.signing import verify_file

    meta_path = model.folder / META
    verify_file(meta_path, public_key or PROJECT_KEY)  # the project key is pinned, not merely any signer
    pins = json.loads(meta_path.read_text()).get("files")
    if not isinstance(pins, dict) or not pins:
        raise ArtefactError(f"{meta_path}: no 'files' with the sha256 of each file; the shipped model is not pinned")
    problems = []
    for rel in _pinnable(model.folder):
        if rel not in pins:
            problems.append(f"{rel}: not pinned")
    for rel, sha in pins.items():
        p = model.folder / rel
        if not p.is_file() or not p.resolve().is_relative_to(model.folder.resolve()):
            problems.append(f"{rel}: missing")
        elif file_sha256(p) != sha:
            problems.append(f"{rel}: sha256 differs from the pinned one (modified)")
    if problems:
        raise ArtefactError(f"shipped model {model.name} failed verification: {'; '.join(problems)}; reinstall ecgedge")


def shipped_status(model: ShippedModel) -> str:
    """``"verified"`` or why the model does not verify (for ``ecgedge models``)."""
    try:
        verify_shipped(model)
    except (ArtefactError, ConfigError) as exc:
        return f"DOES NOT VERIFY: {exc}"
    return "verified (every file pinned, signed by the project key)"


def pin_shipped(model: ShippedModel, private_key) -> None:
    """Pin every file of ``model`` in its ``shipped.json`` and sign it (and, for an export, its
    ``manifest.json`` first) with the project's private key (a PEM path or a loaded key)."""
    from ecgedge.fsio import atomic_write_text
    from ecgedge.hashing import file_sha256
    from ecgedge.signing import load_private_key, sign_file

    if isinstance(private_key, (str, Path)):
        private_key = load_private_key(private_key)
    if model.kind == "export":
        sign_file(model.path / "manifest.json", private_key)
    meta_path = model.folder / META
    meta = json.loads(meta_path.read_text())
    meta["files"] = {rel: file_sha256(model.folder / rel) for rel in _pinnable(model.folder)}
    if model.kind == "checkpoint":
        meta["sha256"] = meta["files"][meta["path"]]
    atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
    sign_file(meta_path, private_key)
