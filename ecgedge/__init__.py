"""ecgedge: transfer-learned ECG rhythm classification, from real records to gated edge models.

Importing the package does nothing heavy: torch is imported only by the training, model and
export modules, never by ``ecgedge.runtime`` or ``ecgedge.stream``.
"""

# The one home of the version: pyproject.toml reads it (setuptools dynamic metadata); the git commit a
# build came from is beside it in ecgedge.installation.build_info (``ecgedge --version``, every manifest).
__version__ = "0.1.0"
