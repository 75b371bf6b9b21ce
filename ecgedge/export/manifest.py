"""``manifest.json``: what an export folder holds, how its input must look, and proof of integrity.

torch-free (the runtime loads it on the device). A manifest states the input spec (leads, sampling
rate, window, units), the preprocessing that produced the model's training windows (with filter
coefficients), the label map, every artefact with its precision, runtime and gate verdict, the
source checkpoint's sha256, the versions of the software that made it, and the sha256 of every
file in the folder. :func:`load_manifest` re-hashes the files and refuses a folder whose files do
not match, are missing, or are extra model files the manifest does not know.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecgedge.errors import ArtefactError
from ecgedge.hashing import file_sha256

FORMAT = "ecgedge.export/1"
MANIFEST = "manifest.json"


@dataclass
class Manifest:
    """The parsed manifest of an export folder (``data`` is the JSON document itself)."""

    folder: Path
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.data["output"]["labels"])

    @property
    def leads(self) -> tuple[str, ...]:
        return tuple(self.data["input"]["leads"])

    @property
    def fs_hz(self) -> float:
        return float(self.data["input"]["fs_hz"])

    @property
    def window_samples(self) -> int:
        return int(self.data["input"]["window_samples"])

    @property
    def input_name(self) -> str:
        return self.data["input"]["name"]

    @property
    def artefacts(self) -> dict[str, dict]:
        return self.data["artefacts"]

    def artefact(self, key: str) -> dict:
        if key not in self.artefacts:
            raise ArtefactError(f"{self.folder} has no '{key}' artefact; it has: {', '.join(self.artefacts)}")
        return self.artefacts[key]

    def path(self, key: str) -> Path:
        return self.folder / self.artefact(key)["file"]

    def preprocess_config(self):
        """The :class:`~ecgedge.config.PreprocessConfig` the model was trained with."""
        from ecgedge.config import PreprocessConfig, config_from_dict

        p = self.data["preprocess"]
        return config_from_dict(PreprocessConfig, {k: p[k] for k in ("fs_hz", "bandpass_low_hz", "bandpass_high_hz", "bandpass_order", "std_floor_mv", "settle_s")})

    def save(self) -> Path:
        """Re-hash every file in the folder and write the manifest."""
        self.data["files"] = hash_folder(self.folder)
        path = self.folder / MANIFEST
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(path)
        return path


def hash_folder(folder: Path) -> dict[str, dict]:
    return {
        p.relative_to(folder).as_posix(): {"sha256": file_sha256(p), "bytes": p.stat().st_size}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST and not p.name.endswith(".tmp")
    }


def load_manifest(folder: str | Path, *, verify: bool = True) -> Manifest:
    """Read ``folder/manifest.json``; with ``verify`` re-hash every file and raise :class:`ArtefactError` on any mismatch."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise ArtefactError(f"{folder} is not an ecgedge export folder: no {MANIFEST}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ArtefactError(f"{path} is not valid JSON: {exc}") from None
    if data.get("format") != FORMAT:
        raise ArtefactError(f"{path}: unknown manifest format {data.get('format')!r} (expected {FORMAT})")
    manifest = Manifest(folder, data)
    if verify:
        verify_files(manifest)
    return manifest


def verify_files(manifest: Manifest) -> None:
    """Every listed file present with its sha256 and size; no unlisted model files."""
    problems = []
    listed = manifest.data.get("files", {})
    for name, meta in listed.items():
        p = manifest.folder / name
        if not p.is_file():
            problems.append(f"{name}: missing")
        elif p.stat().st_size != meta["bytes"]:
            problems.append(f"{name}: {p.stat().st_size} bytes, manifest says {meta['bytes']} (truncated or replaced)")
        elif file_sha256(p) != meta["sha256"]:
            problems.append(f"{name}: sha256 differs from the manifest (file was modified)")
    for p in manifest.folder.rglob("*"):
        rel = p.relative_to(manifest.folder).as_posix()
        if p.is_file() and p.suffix in (".onnx", ".engine", ".plan") and rel not in listed:
            problems.append(f"{rel}: model file not listed in the manifest")
    for key, art in manifest.data.get("artefacts", {}).items():
        if art["file"] not in listed:
            problems.append(f"artefact {key}: its file {art['file']} is not hashed in the manifest")
    if problems:
        raise ArtefactError(f"{manifest.folder} failed verification:\n  " + "\n  ".join(problems))
