"""The models that ship inside the package, each with its model card, and name resolution.

Layout (package data, a few hundred KiB in all)::

    ecgedge/shipped/
      NAME/
        card.md          model card: data, split, command, metrics with intervals, limits
        shipped.json     {"name", "kind": "export" | "checkpoint", "summary", "path"}
        ...              an export folder (manifest.json + ONNX files) or a checkpoint file

``ecgedge models`` lists them. Every command that takes an export folder (``stream``,
``evaluate``, ``bench``, ``export --check``) or a checkpoint also takes a shipped model's name:
:func:`resolve_source` turns ``NAME`` into its folder or file. An existing path always wins over a
name, so a local folder is never shadowed. Torch-free (the runtime and stream use it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ecgedge.errors import ConfigError

SHIPPED_ROOT = Path(__file__).resolve().parent


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
        return shipped_model(text).path
    raise ConfigError(f"{text}: no such file or folder (and not a shipped model name; `ecgedge models` lists them)")
