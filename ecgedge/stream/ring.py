"""The ring buffer a bed's monitor keeps its recent samples in: fixed memory, every sample counted.

numpy only.
"""

from __future__ import annotations

import numpy as np


class Ring:
    """Fixed-size (leads, capacity) ring buffer that also counts every sample ever written."""

    def __init__(self, n_leads: int, capacity: int, dtype=np.float64):
        self.buf = np.zeros((n_leads, capacity), dtype=dtype)
        self.capacity = capacity
        self.total = 0

    def write(self, x: np.ndarray) -> None:
        n = x.shape[-1]
        if n > self.capacity:
            x, self.total = x[:, -self.capacity:], self.total + n - self.capacity
            n = self.capacity
        pos = self.total % self.capacity
        first = min(n, self.capacity - pos)
        self.buf[:, pos:pos + first] = x[:, :first]
        if first < n:
            self.buf[:, :n - first] = x[:, first:]
        self.total += n

    def fill(self, column: np.ndarray | np.generic, n: int) -> None:
        """Write ``n`` samples that all equal ``column`` (one value per row)."""
        col = np.asarray(column).reshape(-1, 1)
        k = min(n, self.capacity)
        pos = (self.total + n - k) % self.capacity
        first = min(k, self.capacity - pos)
        self.buf[:, pos:pos + first] = col
        if first < k:
            self.buf[:, :k - first] = col
        self.total += n

    def last(self, n: int, end: int | None = None) -> np.ndarray:
        """The ``n`` samples ending at absolute index ``end`` (default: the newest): a view of the
        buffer when they do not wrap around it (read it before the next write), else a copy."""
        end = self.total if end is None else end
        if n > self.capacity or end > self.total or end - n < self.total - self.capacity:
            raise IndexError(f"samples [{end - n}, {end}) are not in the ring "
                             f"(it holds [{max(0, self.total - self.capacity)}, {self.total}))")
        a, b = (end - n) % self.capacity, end % self.capacity
        if a < b or n == 0:
            return self.buf[:, a:a + n]
        return np.concatenate([self.buf[:, a:], self.buf[:, :b]], axis=1)
