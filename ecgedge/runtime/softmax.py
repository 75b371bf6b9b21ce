"""Class probabilities from logits, in numpy: the one softmax that the stream (edge path) and the
scoring room (``ecgedge.evaluate``) both use, so it sits below both."""

from __future__ import annotations

import numpy as np

__all__ = ["softmax"]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis of ``logits`` (any shape), shifted by the row maximum so that
    large logits do not overflow; the dtype of ``logits`` is kept (pass float64 for printed figures)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
