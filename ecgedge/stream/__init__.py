"""Streaming classification of bedside ECG: what :mod:`ecgedge.bridge` delivers, classified live.

- :mod:`ecgedge.stream.events`: every record as a typed event with ``to_json()`` (units in its docstring).
- :mod:`ecgedge.stream.monitor`: :class:`~ecgedge.stream.monitor.BedMonitor` (one bed: samples in mV ->
  window verdicts, gaps, alerts, rhythm and quality changes) and
  :class:`~ecgedge.stream.hub.StreamHub` (many beds, one batched inference call).
- :mod:`ecgedge.stream.session`: a source's bytes -> decoder -> sequence tracker -> hub -> records,
  with per-bed accounting of every sample; ``ecgedge stream`` runs :func:`~ecgedge.stream.session.stream_from_export`.
- :mod:`ecgedge.stream.show`: live views (terminal strip chart, PNG strips per event).

No torch at any level (``tests/test_imports.py``).
"""
