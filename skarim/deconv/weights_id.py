"""Which RIM weights file a run uses and its identity, without importing torch.

A run deconvolves with the weights it names (``DeconvConfig.weights``) or else the shipped
ones (:func:`run_weights_path`): the joined-channel network of its ``fit_spectral_pol``
terms when it joins channels and one of that many terms is shipped
(:data:`SHIPPED_SPECTRAL_WEIGHTS`), the one-term network otherwise. A run names its weights
by the SHA-256 of the file's bytes (the store's fingerprint:
:meth:`skarim.config.RunConfig.fingerprint_dict`), so a copied file is the same weights and
the shipped weights of two versions differ. Kept apart from :mod:`skarim.deconv.weights`
(which loads networks with torch) so that a run that never deconvolves never imports torch.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from skarim.errors import WeightsError

if TYPE_CHECKING:
    from skarim.config import DeconvConfig

__all__ = [
    "SHIPPED_WEIGHTS",
    "SHIPPED_SPECTRAL_WEIGHTS",
    "shipped_weights_path",
    "run_weights_path",
    "weights_sha256",
]

#: File name of the one-term weights shipped in the package (``skarim/weights/``).
SHIPPED_WEIGHTS = "rim.pt"

#: File names of the shipped joined-channel weights, by spectral terms (``--fit-spectral-pol``).
SHIPPED_SPECTRAL_WEIGHTS = {2: "rim-spectral.pt"}


def shipped_weights_path(terms: int = 1) -> Path:
    """Path of the shipped weights of ``terms`` spectral terms (1: the one-term network)."""
    name = SHIPPED_WEIGHTS if terms == 1 else SHIPPED_SPECTRAL_WEIGHTS[terms]
    return Path(str(resources.files("skarim").joinpath("weights", name)))


def run_weights_path(deconv: DeconvConfig) -> Path:
    """The weights file a run deconvolves with.

    Parameters
    ----------
    deconv : DeconvConfig
        ``weights``, ``join_channels`` and ``fit_spectral_pol``.

    Returns
    -------
    Path
        ``deconv.weights`` when given; else the shipped network of ``fit_spectral_pol``
        terms for a joined run that has one, and the shipped one-term network otherwise.
    """
    if deconv.weights is not None:
        return Path(deconv.weights)
    joined = deconv.join_channels and deconv.fit_spectral_pol in SHIPPED_SPECTRAL_WEIGHTS
    return shipped_weights_path(deconv.fit_spectral_pol if joined else 1)


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
