"""ecgedge: transfer-learned ECG rhythm classification, from real records to gated edge models.

Importing the package does nothing heavy: torch is imported only by the training, model and
export modules, never by ``ecgedge.runtime`` or ``ecgedge.stream``.
"""

__version__ = "0.1.0"
