"""Helpers of the tests that run the C simulated device (``firmware_bridge/build/ecgsim``) as a process."""

from __future__ import annotations

import subprocess


def ecgsim_announces(proc: subprocess.Popen, prefix: str) -> str:
    """The value ecgsim prints on stderr after ``prefix`` (``PTY /dev/pts/N``, ``LISTEN HOST:PORT``)."""
    while True:
        line = proc.stderr.readline().decode()
        if not line:
            raise AssertionError(f"ecgsim exited before printing {prefix!r}")
        if line.startswith(prefix):
            return line.split()[1]
