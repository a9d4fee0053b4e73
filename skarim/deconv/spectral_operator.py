"""The measurement operator of joined channels in spectral-term space, for the RIM.

A tile's ``C`` channels are modelled by ``K`` spectral terms ``B_k`` (``(batch, K, t, t)``):
channel ``c``'s image is ``x_c = sum_k q_kc B_k`` with the basis ``q`` of
:func:`skarim.deconv.spectral.spectral_basis`, orthonormal under the channel weights
``a_c = w_c / sum w`` (``q_0 = 1``, so ``B_0`` is the weighted-mean, MFS, image). The data
term ``J(B) = 1/2 sum_c a_c ||A_c x_c - y_c||^2`` has the gradient

    ``dJ/dB_k = sum_c a_c q_kc (PSF_c (*) x_c - dirty_c) = N(B)_k - d_k``

with the normal operator ``N(B)_k = sum_c a_c q_kc PSF_c (*) x_c`` and the back-projected
terms ``d_k = sum_c a_c q_kc dirty_c`` (:meth:`SpectralOperator.terms_of`). Every term is
preconditioned with the MFS PSF's filter (``sum_c a_c PSF_c``): for ``K = 1`` this is the
:class:`~skarim.deconv.operator.TileOperator` of the MFS exactly. Needs torch only.
"""

from __future__ import annotations

import torch

from skarim.deconv.operator import TileOperator

__all__ = ["SpectralOperator"]


class SpectralOperator:
    """Normal operator and preconditioner of ``K`` spectral terms over ``C`` channels.

    Parameters
    ----------
    psf : torch.Tensor
        ``(batch, C, 2t, 2t)`` the channels' PSFs, peak 1 at pixel ``(t, t)``.
    weight : torch.Tensor
        ``(batch, C)`` or ``(C,)`` channel weights ``a_c`` (> 0; normalised here to sum 1).
    basis : torch.Tensor
        ``(batch, K, C)`` or ``(K, C)`` spectral basis ``q_kc``, orthonormal under ``a``.
    """

    def __init__(self, psf: torch.Tensor, weight: torch.Tensor, basis: torch.Tensor) -> None:
        b, c = psf.shape[:2]
        weight = weight.to(psf.dtype).expand(b, c)
        self.weight = weight / weight.sum(dim=1, keepdim=True)  # (b, C)
        self.basis = basis.to(psf.dtype).expand(b, -1, c)  # (b, K, C)
        self.channels = TileOperator(psf.reshape(b * c, *psf.shape[2:]))
        mfs_psf = torch.einsum("bc,bcyx->byx", self.weight, psf)  # (b, 2t, 2t)
        k = self.basis.shape[1]
        self.terms_precondition = TileOperator(mfs_psf.repeat_interleave(k, dim=0))  # (b K)
        self.shape = (b, c)

    def images(self, terms: torch.Tensor) -> torch.Tensor:
        """The channels' images ``x_c = sum_k q_kc B_k``: ``(b, K, t, t)`` -> ``(b, C, t, t)``."""
        return torch.einsum("bkc,bkyx->bcyx", self.basis, terms)

    def terms_of(self, images: torch.Tensor) -> torch.Tensor:
        """Back-projection ``d_k = sum_c a_c q_kc images_c``, ``(b, C, t, t) -> (b, K, t, t)``."""
        return torch.einsum("bkc,bc,bcyx->bkyx", self.basis, self.weight, images)

    def convolved(self, images: torch.Tensor) -> torch.Tensor:
        """Each channel's ``PSF_c (*) x_c``, ``(b, C, t, t)`` -> ``(b, C, t, t)``."""
        b, c = self.shape
        return self.channels.normal(images.reshape(b * c, *images.shape[2:])).reshape(images.shape)

    def normal(self, terms: torch.Tensor) -> torch.Tensor:
        """``N(B)``: the channels' ``PSF_c (*) x_c`` back-projected, ``(b, K, t, t)``."""
        return self.terms_of(self.convolved(self.images(terms)))

    def precondition(self, r: torch.Tensor) -> torch.Tensor:
        """Every term through the MFS PSF's Fourier preconditioner, ``(b, K, t, t)``."""
        flat = r.reshape(-1, *r.shape[2:])  # (b K, t, t)
        return self.terms_precondition.precondition(flat).reshape(r.shape)
