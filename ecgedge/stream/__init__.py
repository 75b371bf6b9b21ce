"""Streaming classification of bedside ECG: what :mod:`ecgedge.bridge` delivers, classified live.

- :mod:`ecgedge.stream.events`: every record as a typed event with ``to_json()`` (units in its docstring).
- :mod:`ecgedge.stream.monitor`: :class:`~ecgedge.stream.monitor.BedMonitor` (one bed: samples in mV ->
  window verdicts, gaps, alerts, rhythm and quality changes), its buffers in :mod:`ecgedge.stream.ring`.
- :mod:`ecgedge.stream.hub`: :class:`~ecgedge.stream.hub.StreamHub` (many beds, batched inference), which
  preprocesses the due windows of all beds in one pass (:mod:`ecgedge.stream.ward`).
- :mod:`ecgedge.stream.session`: a source's bytes -> decoder -> sequence tracker -> hub -> records,
  with per-bed accounting of every sample.
- :mod:`ecgedge.stream.run`: ``ecgedge stream``'s engine (:func:`~ecgedge.stream.run.run_session`,
  :func:`~ecgedge.stream.run.stream_from_export`).
- :mod:`ecgedge.stream.show`: live views (terminal strip chart, PNG strips per event).

No torch at any level (``tests/test_imports.py``).
"""
