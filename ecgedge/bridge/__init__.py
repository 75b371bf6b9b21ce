"""The wire side of streaming: the Python end of ``firmware_bridge/`` (C99 device firmware).

Modules mirror the C library and follow the bytes from the link to a gap-accounted stream:

- :mod:`ecgedge.bridge.sources`: byte sources (serial port or pty, TCP client or listener, stdin,
  the simulated device ``ecgsim`` as a subprocess, which reads records through the host's wfdb:
  :mod:`ecgedge.data.device_samples`) that yield raw bytes and link up/down events.
- :mod:`ecgedge.bridge.frame`: :class:`~ecgedge.bridge.frame.Frame` and its bytes without COBS
  (``src/frame.c``), protocol version 1 (one gain and baseline per frame) or 2 (one per lead); the
  lead table and device flags.
- :mod:`ecgedge.bridge.cobs`: COBS encoding and :func:`~ecgedge.bridge.cobs.encode_frame`, the
  bytes a device sends (``src/cobs.c``).
- :mod:`ecgedge.bridge.decoder`: :class:`~ecgedge.bridge.decoder.FrameDecoder`, bytes in any
  chunking -> frames and decode errors (``src/decoder.c``).
- :mod:`ecgedge.bridge.sequence`: :class:`~ecgedge.bridge.sequence.SequenceTracker`, frames ->
  delivered samples, gaps, repeats, late frames, restarts and layout changes per stream id.

The layout is ``firmware_bridge/PROTOCOL.md``; C and Python are checked against the same
``firmware_bridge/test_vectors/frames.json``. Classification (monitors, sessions, events, live
views) is :mod:`ecgedge.stream`, which imports this package and never the other way round.
NumPy and the standard library only (pyserial for serial sources, imported when one opens).
"""
