"""Which RIM weights file a run uses and its identity, without importing torch.

A run names its weights by the SHA-256 of the file's bytes (the store's fingerprint:
:meth:`skarim.config.RunConfig.fingerprint_dict`), so a copied file is the same weights and
the shipped weights of two versions differ. Kept apart from :mod:`skarim.deconv.weights`
(which loads networks with torch) so that a run that never deconvolves never imports torch.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from skarim.errors import WeightsError

__all__ = ["SHIPPED_WEIGHTS", "shipped_weights_path", "weights_sha256"]

#: File name of the weights shipped in the package (``skarim/weights/``).
SHIPPED_WEIGHTS = "rim.pt"


def shipped_weights_path() -> Path:
    """Path of the weights shipped in the package."""
    return Path(str(resources.files("skarim").joinpath("weights", SHIPPED_WEIGHTS)))


def weights_sha256(path: Path | None) -> str:
    """SHA-256 of a weights file's bytes (the shipped file for None), as hex.

    Raises
    ------
    WeightsError
        If the file does not exist.
    """
    path = shipped_weights_path() if path is None else Path(path)
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        raise WeightsError(f"RIM weights file {path} does not exist") from None
