"""The rhythm trees' runner: ONNX Runtime on a feature vector (torch-free, numpy in, numpy out).

The export (:mod:`ecgedge.export.trees`) holds one ONNX-ML ``TreeEnsembleClassifier`` whose input is
a record's feature vector, not a window, so this runner keeps the lifecycle of
:class:`~ecgedge.runtime.base.Runner` (cheap to construct; ``with runner:`` builds the session;
``infer``) but checks its input against the manifest's ``features`` section instead of an
:class:`~ecgedge.runtime.base.InputSpec`. The features themselves come from
:func:`ecgedge.beats.record_features.record_features` (the caller computes them: the runtime sits
below ``ecgedge.beats``' users and imports none of them); :meth:`TreesRunner.check_features` takes
the caller's feature names and version and refuses a mismatch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ecgedge.errors import ArtefactError, ShapeMismatch
from ecgedge.manifest import Manifest, load_manifest

KIND = "rhythm-trees"


def is_trees_export(folder: str | Path) -> bool:
    """Whether ``folder`` is an export folder of rhythm trees (its manifest says ``kind: rhythm-trees``)."""
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        return False
    try:
        import json

        return json.loads(path.read_text(encoding="utf-8")).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        return False


class TreesRunner:
    """Runs an export folder's trees on ONNX Runtime's CPU provider.

    ``folder``'s manifest is loaded (every file re-hashed, a signature checked where there is one)
    at construction; the session is built on entry.
    """

    name = "ort-cpu:fp32"

    def __init__(self, folder: str | Path, *, threads: int | None = 1, manifest: Manifest | None = None):
        self.folder = Path(folder)
        self.manifest = manifest or load_manifest(self.folder, verify=True)
        if self.manifest.data.get("kind") != KIND:
            raise ArtefactError(f"{self.folder} is not a rhythm-trees export (manifest kind {self.manifest.data.get('kind')!r})")
        f = self.manifest.data.get("features") or {}
        if not isinstance(f.get("names"), list) or not f["names"]:
            raise ArtefactError(f"{self.folder}/manifest.json has no 'features' section naming the model's inputs")
        self.feature_names: tuple[str, ...] = tuple(f["names"])
        self.feature_version = int(f.get("version", -1))
        self.labels = self.manifest.labels
        self.model_path = self.manifest.path("fp32")
        self.threads = threads
        self._session = None

    def check_features(self, names, version: int) -> None:
        """Refuse features of another definition than the model's (names in order, and version)."""
        if int(version) != self.feature_version or tuple(names) != self.feature_names:
            raise ArtefactError(f"{self.folder}: the model takes features version {self.feature_version} "
                                f"({len(self.feature_names)} features); this ecgedge computes version {version} "
                                f"({len(tuple(names))} features): re-export the model with this ecgedge")

    def activate(self) -> "TreesRunner":
        if self._session is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            if self.threads:
                opts.intra_op_num_threads = self.threads
                opts.inter_op_num_threads = 1
            self._session = ort.InferenceSession(str(self.model_path), opts, providers=["CPUExecutionProvider"])
        return self

    def deactivate(self) -> None:
        self._session = None

    def __enter__(self) -> "TreesRunner":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def infer(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities (batch, classes) float32 of feature rows (batch, F) or one row (F,)."""
        return self.decide(features)[1]

    def decide(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(labels (batch,) int64, probabilities (batch, classes) float32); labels index :attr:`labels`."""
        if self._session is None:
            raise RuntimeError("TreesRunner.infer outside `with runner:` (call activate() first)")
        x = np.asarray(features)
        if x.ndim == 1:
            x = x[None]
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise ShapeMismatch(f"features {tuple(x.shape)}; model expects (batch, {len(self.feature_names)}) "
                                f"(ecgedge.beats.record_features, version {self.feature_version})")
        if not np.issubdtype(x.dtype, np.floating):
            raise ShapeMismatch(f"dtype {x.dtype}; model expects float32 features")
        label, prob = self._session.run(["label", "probabilities"], {"features": np.ascontiguousarray(x, dtype=np.float32)})
        return np.asarray(label, np.int64), np.asarray(prob, np.float32)
