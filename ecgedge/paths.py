"""Where ecgedge keeps what it can rebuild: the window cache and runtime engine caches.

``$ECGEDGE_CACHE`` or ``~/.cache/ecgedge``. Nothing here is ever part of an export folder, so a
folder's hashes stay valid wherever it has been run.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("ECGEDGE_CACHE", Path.home() / ".cache" / "ecgedge"))
