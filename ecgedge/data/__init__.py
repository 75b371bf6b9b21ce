"""Records and what is made of them: the one place that knows file formats.

The face of the package: what other packages use, importable from here (``from ecgedge.data import
read_record``). Each name is loaded from its module on first use (PEP 562), so ``import ecgedge.data``
costs nothing and the edge path (stream, bridge) pulls in only the modules it touches: the
preprocessing and signal checks are numpy/scipy; nothing here imports torch.

Modules, in the order data flows: ``records`` (finds and reads records: ``wfdb_files``, ``mat_files``,
``chapman_csv``, ``sph_h5`` behind it; ``record_types``), ``leads``, ``label_tables``/``labels``,
``annotations``, ``preprocess``, ``quality``, ``windows`` (the window cache), ``splits``, ``store``,
``provenance``; generators ``synthetic``, ``synthetic_records``, ``paroxysmal``; ``device_samples``
(what ``ecgsim`` plays: the C side runs ``python -m ecgedge.data.device_samples``), ``download``.
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> the module of ecgedge.data that holds it (its one home).
_HOME: dict[str, str] = {
    **dict.fromkeys(('find_records', 'read_record', 'select_leads', 'record_files', 'find_label_tables', 'find_orphan_data_files', 'load_label_table', 'as_record_ref',), "records"),
    **dict.fromkeys(('Record', 'RecordRef', 'RecordFormat', 'LabelSource', 'LabelTable',), "record_types"),
    **dict.fromkeys(('STANDARD_12_LEADS', 'LEAD_ALIASES', 'canonical_lead_name', 'standard_lead', 'lead_indices', 'mv_per_unit', 'ecg_channel', 'channel_label',), "leads"),
    **dict.fromkeys(('preprocess_signal', 'preprocess_params', 'normalise_windows', 'StreamingPreprocessor', 'StreamingResampler', 'window_starts',
                     'resampling_ratio', 'resampling_filter', 'bandpass_sos',), "preprocess"),
    **dict.fromkeys(('RunningSignalChecks', 'signal_problems', 'rate_problem', 'nonfinite_problems', 'FLAT_STD_MV',), "quality"),
    **dict.fromkeys(('WindowSet', 'LoadSummary', 'build_windows',), "windows"),
    **dict.fromkeys(('Split', 'split_records', 'subsample',), "splits"),
    **dict.fromkeys(('WindowStore', 'is_store', 'build_store', 'DEFAULT_SHARD_WINDOWS',), "store"),
    **dict.fromkeys(('TrainingRecords', 'data_record_hashes', 'training_records_from_split', 'record_content_sha256',), "provenance"),
    **dict.fromkeys(('record_label', 'CINC2017',), "labels"),
    **dict.fromkeys(('RhythmReference', 'read_rhythm_reference', 'write_rhythm_annotations',), "annotations"),
    **dict.fromkeys(('ParoxysmalConfig', 'synthesize_paroxysmal', 'write_paroxysmal_record', 'write_paroxysmal_set',), "paroxysmal"),
    **dict.fromkeys(('synthesize_ecg',), "synthetic"),
    **dict.fromkeys(('write_wfdb_dataset',), "synthetic_records"),
    **dict.fromkeys(('DeviceRecording', 'device_recording_from_wfdb',), "device_samples"),
    **dict.fromkeys(('DownloadConfig', 'download_database', 'DATABASES', 'databases_table',), "download"),
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'ecgedge.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ecgedge.data.{module}"), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))
