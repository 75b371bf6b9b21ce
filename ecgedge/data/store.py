"""A window store: records converted once into sharded, memory-mapped windows with an index.

For data sets of millions of windows that a per-run cache should not rebuild, that several
training processes (ranks, loader workers) read at once, and that never fit in memory::

    store/
      store.json        manifest: format, leads, fs_hz, samples, preprocessing (with the filter
                        coefficients), window spec, label scheme and class names, counts, skipped
                        records with their reasons, windows lost to invalid samples (per record,
                        with the sample ranges), non-ECG channels left out (with record counts),
                        and every shard with its windows and sha256
      index.npy         one row per window (structured): record, record_id, start, label, shard, row
      records.csv       one row per used record: record, record_id, windows, first_window, source
      shard-00000.npy   (shard_windows, leads, samples) float32: band-passed mV, not normalised
      shard-00001.npy   ... every shard holds ``shard_windows`` windows but the last

Window ``i`` lives in shard ``i // shard_windows`` at row ``i % shard_windows``; ``start`` is its
first sample in the preprocessed record (at ``fs_hz``). Records are read and windowed by exactly
the code behind :func:`ecgedge.data.windows.build_windows` (the readers in ``records``, the one
preprocessing chain in ``preprocess``, the same quality checks and skip reasons), in the same
order, so a store holds bit for bit the windows ``build_windows`` returns for the same records
and settings. Records are read in parallel worker processes and shards are written as the
results arrive, so memory holds the windows of the records in flight, not the data set.

:class:`WindowStore` opens a store without reading its shards: each shard is memory-mapped on
first use, and a store pickles as its path, so each loader worker or rank maps the files itself
and the page cache is shared between them.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np

from ecgedge import __version__
from ecgedge.config import DataConfig, LabelScheme, PreprocessConfig, WindowConfig, config_from_dict, config_to_dict
from ecgedge.data.preprocess import preprocess_params
from ecgedge.data.leads import lead_indices
from ecgedge.data.records import find_label_tables, find_orphan_data_files, find_records
from ecgedge.data.windows import LoadSummary, WindowSet, scheme_class_names, WindowJob, usable_windows
from ecgedge.manifest import file_in_folder
from ecgedge.errors import ArtefactError, ConfigError, DataNotFound, MissingLeads
from ecgedge.fsio import FolderKind, atomic_write_text, claim_folder, new_staging, publish_folder
from ecgedge.hashing import file_sha256, value_sha256

FORMAT = "ecgedge.window-store/1"
MANIFEST = "store.json"
# 8192 windows: 64 MiB per shard for one lead of 2048 samples, 768 MiB for 12 leads. Large enough
# that a million windows make ~120 files, small enough to copy, hash and re-create one at a time.
DEFAULT_SHARD_WINDOWS = 8192

INDEX_FIELDS = ("record", "record_id", "start", "label", "shard", "row")


def is_store(path: str | Path) -> bool:
    """Whether ``path`` is a window store folder (holds ``store.json``)."""
    return (Path(path) / MANIFEST).is_file()


# ------------------------------------------------------------------------------------------ writing


class _ShardWriter:
    """Appends windows to fixed-size ``.npy`` shards, each written straight to its final file.

    A shard's header is written first with a provisional length and rewritten when the shard is
    closed: numpy pads ``.npy`` headers so the first dimension can grow in place (21 digits), so
    the header keeps its size and the data never moves.
    """

    def __init__(self, folder: Path, shard_windows: int, window_shape: tuple[int, int]):
        self.folder, self.shard_windows, self.window_shape = folder, shard_windows, window_shape
        self.shards: list[dict] = []
        self._file: BinaryIO | None = None  # the shard being written
        self._rows = 0
        self._header_len = 0

    def add(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Write (n, leads, samples) float32 windows; returns their (shard, row) numbers."""
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        shard: list[int] = []
        row: list[int] = []
        done = 0
        while done < len(windows):
            file = self._file if self._file is not None else self._open()
            take = min(len(windows) - done, self.shard_windows - self._rows)
            file.write(windows[done:done + take].tobytes())
            shard += [len(self.shards)] * take
            row += range(self._rows, self._rows + take)
            self._rows += take
            done += take
            if self._rows == self.shard_windows:
                self._close()
        return np.asarray(shard, dtype=np.int32), np.asarray(row, dtype=np.int32)

    def finish(self) -> list[dict]:
        if self._file is not None:
            self._close()
        return self.shards

    def _name(self) -> str:
        return f"shard-{len(self.shards):05d}.npy"

    def _header(self, rows: int) -> bytes:
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (rows, *self.window_shape)})
        return buf.getvalue()

    def _open(self) -> BinaryIO:
        self._file = file = open(self.folder / self._name(), "wb")
        header = self._header(0)
        self._header_len = len(header)
        file.write(header)
        self._rows = 0
        return file

    def _close(self) -> None:
        header = self._header(self._rows)
        if len(header) != self._header_len:  # numpy's growth padding makes this impossible below 10**21 rows
            raise AssertionError(f".npy header changed size ({self._header_len} -> {len(header)} bytes)")
        assert self._file is not None  # called with a shard open
        self._file.seek(0)
        self._file.write(header)
        self._file.close()
        self._file = None
        name = self._name()
        self.shards.append({"file": name, "windows": self._rows, "sha256": file_sha256(self.folder / name)})

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def build_store(
    data: DataConfig,
    out: str | Path,
    leads: Sequence[str] = ("II",),
    preprocess: PreprocessConfig | None = None,
    window: WindowConfig | None = None,
    scheme: LabelScheme | None = None,
    *,
    shard_windows: int = DEFAULT_SHARD_WINDOWS,
    overwrite: bool = False,
    progress: bool = True,
) -> WindowStore:
    """Read, preprocess and window every record under ``data.paths`` into a store at ``out``.

    Args:
        data: record paths, optional label table, ``max_records`` (0 = all) and ``workers``
            (reader processes; 0 = up to 4). ``cache_dir`` is not used.
        out: the store folder: new, empty, or a window store ecgedge wrote (replaced only with
            ``overwrite``, and then only the files its marker lists: see :mod:`ecgedge.fsio`); never
            a folder holding one of ``data.paths``. The store is built beside it and swapped in at
            the end, so an interrupted build leaves the previous store and no half store behind.
        leads: leads to keep, in this order (``II`` also matches MIT-BIH's ``MLII``; a one-lead
            record serves a one-lead request whatever its lead is called).
        preprocess, window: the preprocessing chain (default 250 Hz, 0.5-40 Hz) and the window
            spec in samples at ``preprocess.fs_hz`` (default 2048 samples, hop 1024).
        scheme: label scheme for per-window labels (``None``: unlabeled, label -1).
        shard_windows: windows per shard file (every shard but the last is full).

    Raises:
        DataNotFound: no record found, or none usable (the message lists the skip reasons).
        ConfigError: ``out`` is not ecgedge's to write (see above), or bad sizes.
    """
    preprocess = preprocess or PreprocessConfig()
    window = window or WindowConfig()
    leads = tuple(leads)
    if not leads:
        raise ConfigError("at least one lead is needed")
    if shard_windows < 1:
        raise ConfigError(f"shard_windows must be >= 1, got {shard_windows}")
    out = Path(out)
    claim_folder(out, FolderKind.store, replace=overwrite, inputs=data.paths, legacy=_legacy_store_files)
    refs = find_records(data.paths)
    if data.max_records:
        refs = refs[: data.max_records]
    tables = tuple(str(p) for p in ([data.labels_file] if data.labels_file else find_label_tables(data.paths)))
    jobs = [WindowJob(r, leads, scheme, preprocess, window, tables) for r in refs]
    workers = data.workers or min(4, len(refs))

    tmp = new_staging(out, FolderKind.store)
    writer = _ShardWriter(tmp, shard_windows, (len(leads), window.samples))
    summary = LoadSummary(found=len(refs), orphans=find_orphan_data_files(data.paths))
    records: list[tuple[str, int, int, str]] = []  # record_id, windows, first window, source
    cols: dict[str, list] = {k: [] for k in ("record", "start", "shard", "row")}
    label_names: list[str | None] = []
    n_windows = 0
    try:
        for rid, source, w, starts, labs in usable_windows(jobs, workers, summary, desc="building store", progress=progress):
            shard, row = writer.add(w)
            cols["record"].append(np.full(len(starts), len(records), dtype=np.int32))
            cols["start"].append(np.asarray(starts, dtype=np.int64))
            cols["shard"].append(shard)
            cols["row"].append(row)
            label_names += labs if labs is not None else [None] * len(starts)
            records.append((rid, len(starts), n_windows, source))
            summary.used[rid] = len(starts)
            n_windows += len(starts)
        shards = writer.finish()
        if not n_windows:
            raise DataNotFound(f"no usable windows in {', '.join(data.paths)}\n{summary.describe()}")
        class_names = scheme_class_names(scheme, label_names)
        lookup = {c: i for i, c in enumerate(class_names)}
        record_ids = [r[0] for r in records]
        index = np.zeros(n_windows, dtype=_index_dtype(max(map(len, record_ids))))
        for k, parts in cols.items():
            index[k] = np.concatenate(parts)
        index["record_id"] = np.asarray(record_ids)[index["record"]]
        index["label"] = [lookup.get(x, -1) if x is not None else -1 for x in label_names]
        np.save(tmp / "index.npy", index)
        with open(tmp / "records.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["record", "record_id", "windows", "first_window", "source"])
            w.writerows((i, *r) for i, r in enumerate(records))
        manifest = {
            "format": FORMAT,
            "created_by": f"ecgedge {__version__}",
            "leads": list(leads),
            "fs_hz": preprocess.fs_hz,
            "samples": window.samples,
            "dtype": "float32",
            "units": "mV, band-passed, not normalised",
            "shard_windows": shard_windows,
            "preprocess": config_to_dict(preprocess),
            "preprocess_params": preprocess_params(preprocess),
            "window": config_to_dict(window),
            "labels": scheme.value if scheme else None,
            "class_names": list(class_names),
            "sources": list(data.paths),
            "label_tables": list(tables),
            "counts": {"records_found": summary.found, "records_used": len(records), "records_skipped": len(summary.skipped),
                       "windows": n_windows, "shards": len(shards)},
            "skipped": summary.skipped,
            "skip_reasons": dict(summary.reasons()),
            "orphans": summary.orphans,
            "windows_skipped": summary.windows_skipped,
            "ignored_channels": summary.ignored_channels,
            "index": {"file": "index.npy", "fields": list(INDEX_FIELDS), "sha256": file_sha256(tmp / "index.npy")},
            "records": {"file": "records.csv", "sha256": file_sha256(tmp / "records.csv")},
            "shards": shards,
        }
        atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=2))
        # again: something may have been put there while building; then only the store's own files go
        owned = claim_folder(out, FolderKind.store, replace=overwrite, inputs=data.paths, legacy=_legacy_store_files)
        publish_folder(tmp, out, FolderKind.store, owned)
    except BaseException:
        writer.abort()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return WindowStore.open(out)


def _legacy_store_files(folder: Path) -> list[str] | None:
    """The files a store written before folder markers holds (those its ``store.json`` lists); ``None``
    for a folder that is not a store."""
    try:
        doc = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return None
    return [MANIFEST, "index.npy", "records.csv", *(s.get("file", "") for s in doc.get("shards", []) if isinstance(s, dict))]


def _index_dtype(id_chars: int) -> np.dtype:
    return np.dtype([("record", "<i4"), ("record_id", f"<U{max(id_chars, 1)}"), ("start", "<i8"),
                     ("label", "<i2"), ("shard", "<i4"), ("row", "<i4")])


# ------------------------------------------------------------------------------------------ reading


class WindowStore:
    """A window store opened for reading: ``store[i]``, ``store[a:b]``, ``store[indices]``.

    Items are float32 band-passed mV: ``store[i]`` is (leads, samples), slices and index arrays
    give (n, leads, samples), always a copy (never a view of the file). Nothing but the manifest
    is read at open; the index and each shard are memory-mapped on first use. ``leads`` narrows a
    multi-lead store to some leads without copying it (:meth:`with_leads`).
    """

    def __init__(self, path: Path, manifest: dict, lead_index: tuple[int, ...] | None = None):
        self.path = Path(path)
        self.manifest = manifest
        self._lead_index = lead_index
        self._index: np.ndarray | None = None
        self._records: list[dict] | None = None
        self._maps: dict[int, np.ndarray] = {}

    @classmethod
    def open(cls, path: str | Path, *, verify: bool = False) -> WindowStore:
        """Open the store at ``path``; ``verify`` re-hashes every file against the manifest first.

        Raises:
            ArtefactError: not a store, an unknown format, a missing file, or (``verify``) a file
                whose sha256 differs from the manifest's.
        """
        path = Path(path)
        if not is_store(path):
            raise ArtefactError(f"{path} is not a window store (no {MANIFEST}; build one with `ecgedge data build`)")
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ArtefactError(f"{path / MANIFEST} is unreadable: {exc}") from None
        if manifest.get("format") != FORMAT:
            raise ArtefactError(f"{path} is a {manifest.get('format')!r} store; this ecgedge reads {FORMAT}")
        store = cls(path, manifest)
        for f in store._files():  # a store.json must never make us map or hash a file outside the store
            file_in_folder(path, f, "store.json", kind="window store")
        missing = [f for f in store._files() if not (path / f).is_file()]
        if missing:
            raise ArtefactError(f"window store {path} lacks {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if verify:
            store.verify()
        return store

    def __reduce__(self):
        # Pickle as the path (for loader workers and spawned ranks): each process maps the files itself.
        return (_reopen, (str(self.path), self._lead_index))

    # ---- what it holds

    @property
    def leads(self) -> tuple[str, ...]:
        all_leads = tuple(self.manifest["leads"])
        return all_leads if self._lead_index is None else tuple(all_leads[i] for i in self._lead_index)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(windows, leads, samples)."""
        return (len(self), len(self.leads), int(self.manifest["samples"]))

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    @property
    def fs_hz(self) -> float:
        return float(self.manifest["fs_hz"])

    @property
    def preprocess(self) -> PreprocessConfig:
        return config_from_dict(PreprocessConfig, self.manifest["preprocess"])

    @property
    def window(self) -> WindowConfig:
        return config_from_dict(WindowConfig, self.manifest["window"])

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.manifest["class_names"])

    @property
    def summary(self) -> LoadSummary:
        return LoadSummary(found=self.manifest["counts"]["records_found"],
                           used={r["record_id"]: r["windows"] for r in self.records},
                           skipped=dict(self.manifest["skipped"]), orphans=list(self.manifest.get("orphans", [])),
                           windows_skipped=dict(self.manifest.get("windows_skipped", {})),
                           ignored_channels=dict(self.manifest.get("ignored_channels", {})))

    @property
    def index(self) -> np.ndarray:
        """The structured per-window index (memory-mapped): record, record_id, start, label, shard, row."""
        if self._index is None:
            self._index = np.load(self.path / "index.npy", mmap_mode="r")
        return self._index

    @property
    def records(self) -> list[dict]:
        """Used records in order: record, record_id, windows, first_window, source."""
        if self._records is None:
            with open(self.path / "records.csv", newline="") as f:
                self._records = [{k: int(v) if k in ("record", "windows", "first_window") else v for k, v in row.items()}
                                 for row in csv.DictReader(f)]
        return self._records

    @property
    def record_ids(self) -> list[str]:
        return [r["record_id"] for r in self.records]

    def __len__(self) -> int:
        return int(self.manifest["counts"]["windows"])

    def __repr__(self) -> str:
        n, leads, samples = self.shape
        return f"WindowStore({str(self.path)!r}, windows={n}, leads={self.leads}, samples={samples} at {self.fs_hz:g} Hz)"

    def describe(self) -> str:
        c = self.manifest["counts"]
        summary = LoadSummary(found=c["records_found"], used={}, skipped=dict(self.manifest["skipped"]),
                              orphans=list(self.manifest.get("orphans", [])),
                              windows_skipped=dict(self.manifest.get("windows_skipped", {})),
                              ignored_channels=dict(self.manifest.get("ignored_channels", {})))
        skipped = summary.describe().splitlines()[1:]
        return "\n".join([
            f"{self.path}: {c['windows']} windows of {self.manifest['samples']} samples at {self.fs_hz:g} Hz, "
            f"leads {', '.join(self.manifest['leads'])}, in {c['shards']} shard(s) of {self.manifest['shard_windows']}",
            f"{c['records_found']} records found, {c['records_used']} used, {c['records_skipped']} skipped",
            *skipped,
        ])

    # ---- windows

    def __getitem__(self, key) -> np.ndarray:
        n = len(self)
        if isinstance(key, (int, np.integer)):
            i = int(key) + n if key < 0 else int(key)
            if not 0 <= i < n:
                raise IndexError(f"window {key} out of range for a store of {n} windows")
            return self._gather(np.array([i]))[0]
        if isinstance(key, slice):
            return self._gather(np.arange(n)[key])
        idx = np.asarray(key)
        if idx.dtype == bool:
            if idx.shape != (n,):
                raise IndexError(f"boolean mask of shape {idx.shape} for a store of {n} windows")
            idx = np.flatnonzero(idx)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"windows are indexed by int, slice, int array or boolean mask, not {idx.dtype}")
        idx = np.where(idx < 0, idx + n, idx).astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"window index out of range for a store of {n} windows")
        return self._gather(idx.reshape(-1)).reshape(*idx.shape, *self.shape[1:])

    def _gather(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), *self.shape[1:]), dtype=np.float32)
        shard, row = np.divmod(idx, int(self.manifest["shard_windows"]))
        for s in np.unique(shard):
            sel = np.flatnonzero(shard == s)
            shard_rows: np.ndarray = row[sel]
            rows: np.ndarray | slice = shard_rows
            if len(shard_rows) > 1 and np.all(np.diff(shard_rows) == 1):
                rows = slice(int(shard_rows[0]), int(shard_rows[-1]) + 1)  # a run of rows: one sequential read
            mm = self._shard(int(s))
            if self._lead_index is None:
                out[sel] = mm[rows]
            else:  # read only the requested leads' bytes
                for j, lead in enumerate(self._lead_index):
                    out[sel, j] = mm[rows, lead]
        return out

    def _shard(self, s: int) -> np.ndarray:
        if s not in self._maps:
            self._maps[s] = np.load(self.path / self.manifest["shards"][s]["file"], mmap_mode="r")
        return self._maps[s]

    def with_leads(self, leads: Sequence[str]) -> WindowStore:
        """A view of some of the store's leads, matched by name as :func:`ecgedge.data.leads.lead_indices` does.

        Raises:
            ConfigError: a lead the store does not hold.
        """
        # The store's lead names are the ones it was built for, not a device's guess: no single-lead fallback.
        try:
            index = lead_indices(self.manifest["leads"], leads, single_lead_serves_any=False)
        except MissingLeads as exc:
            raise ConfigError(f"window store {self.path} holds lead(s) {', '.join(self.manifest['leads'])}, not {', '.join(exc.missing)}") from None
        return WindowStore(self.path, self.manifest, tuple(index))

    def windows_of_records(self, records) -> np.ndarray:
        """Indices of the windows of the given records (record numbers, as in ``index['record']``, or record ids)."""
        records = np.asarray(records)
        if records.dtype.kind in "US":
            lookup = {rid: i for i, rid in enumerate(self.record_ids)}
            unknown = [str(r) for r in records if str(r) not in lookup]
            if unknown:
                raise ConfigError(f"record(s) not in the store: {', '.join(unknown[:5])}")
            records = np.array([lookup[str(r)] for r in records], dtype=np.int64)
        return np.flatnonzero(np.isin(self.index["record"], records))

    def window_set(self, leads: Sequence[str] | None = None) -> WindowSet:
        """The store as the :class:`~ecgedge.data.windows.WindowSet` the trainers take (windows stay on disk)."""
        view = self.with_leads(leads) if leads is not None else self
        return WindowSet(
            windows=view,  # indexed like an array: view[sorted indices] -> (n, leads, samples)
            record_ids=self.record_ids,
            window_record=np.asarray(self.index["record"], dtype=np.int64),
            window_start=np.asarray(self.index["start"], dtype=np.int64),
            labels=np.asarray(self.index["label"], dtype=np.int64),
            class_names=self.class_names,
            leads=view.leads,
            summary=self.summary,
            cache_dir=self.path,
            key=value_sha256(self.manifest)[:20],
        )

    # ---- integrity

    def _files(self) -> list[str]:
        return [self.manifest["index"]["file"], self.manifest["records"]["file"], *(s["file"] for s in self.manifest["shards"])]

    def verify(self) -> None:
        """Re-hash every file against the manifest; raises :class:`ArtefactError` naming every mismatch."""
        expected = {self.manifest["index"]["file"]: self.manifest["index"]["sha256"],
                    self.manifest["records"]["file"]: self.manifest["records"]["sha256"],
                    **{s["file"]: s["sha256"] for s in self.manifest["shards"]}}
        bad = [name for name, digest in expected.items() if file_sha256(self.path / name) != digest]
        if bad:
            raise ArtefactError(f"window store {self.path}: sha256 differs from {MANIFEST} for {', '.join(bad)}")


def _reopen(path: str, lead_index: tuple[int, ...] | None) -> WindowStore:
    store = WindowStore.open(path)
    store._lead_index = lead_index
    return store

