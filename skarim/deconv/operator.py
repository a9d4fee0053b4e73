"""The per-tile measurement operator seen by the RIM (docs/design.md section 5), in PyTorch.

For a ``t x t`` tile and its ``2t x 2t`` PSF (peak at pixel ``(t, t)``):

- ``P``: zero-pad the tile into the corner of a ``2t x 2t`` grid;
- ``F``: the unitary 2-D FFT;
- ``M = Re fft2(ifftshift(psf_2t))``: the gridded uv sampling. It is >= 0 up to the
  truncation of the PSF to ``2t`` (a small fraction of the cells are negative), so the
  forward operator uses ``sqrt(max(M, 0))``;
- forward ``A x = sqrt(M) F P x``, adjoint ``A^H z = Re P^T F^H (sqrt(M) z)``;
- normal ``PSF (*) x``: the exact linear convolution cropped to the tile (the unclipped
  ``M``), equal to ``A^H A x`` up to that clipping;
- data-term gradient ``grad L(x) = (PSF (*) x - dirty) / sigma^2``.

Everything is batched over tiles ``(batch, t, t)``, works in float32 or float64 on any device,
and is differentiable. Needs torch only.
"""

from __future__ import annotations

from typing import Protocol

import torch

__all__ = ["MeasurementOperator", "TileOperator"]


class MeasurementOperator(Protocol):
    """What the RIM needs from an operator: the normal operator and a preconditioner."""

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``A^H A x`` for a batch of tiles ``(batch, t, t)``."""
        ...

    def precondition(self, r: torch.Tensor) -> torch.Tensor:
        """An approximate inverse of the normal operator applied to ``r``."""
        ...


class TileOperator:
    """Measurement operator for a batch of tiles sharing (or not) a PSF.

    Parameters
    ----------
    psf : torch.Tensor
        ``(batch, 2t, 2t)`` or ``(2t, 2t)`` PSF, peak (normalised to 1) at pixel ``(t, t)``.
    precond_damping : float
        ``lambda`` of the Fourier preconditioner ``1 / (M + lambda max M)``.
    """

    def __init__(self, psf: torch.Tensor, precond_damping: float = 0.3) -> None:
        if psf.ndim == 2:
            psf = psf[None]
        n2 = psf.shape[-1]
        if psf.shape[-2] != n2 or n2 % 2:
            raise ValueError(f"PSF must be square with an even side, got {tuple(psf.shape)}")
        self.tile = n2 // 2
        centred = torch.fft.ifftshift(psf, dim=(-2, -1))  # (batch, 2t, 2t), peak at [0, 0]
        sampling = torch.fft.fft2(centred).real  # (batch, 2t, 2t): M
        clipped = sampling.clamp_min(0.0)
        self.sampling = sampling
        self.sqrt_sampling = clipped.sqrt()
        peak = clipped.amax(dim=(-2, -1), keepdim=True)
        self.precond_filter = 1.0 / (clipped + precond_damping * peak)  # (batch, 2t, 2t)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        t = self.tile
        return torch.nn.functional.pad(x, (0, t, 0, t))  # (batch, 2t, 2t)

    def _crop(self, z: torch.Tensor) -> torch.Tensor:
        t = self.tile
        return z[..., :t, :t]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``A x``: ``(batch, t, t)`` real -> ``(batch, 2t, 2t)`` complex visibilities."""
        return self.sqrt_sampling * torch.fft.fft2(self._pad(x), norm="ortho")

    def adjoint(self, z: torch.Tensor) -> torch.Tensor:
        """``A^H z``: ``(batch, 2t, 2t)`` complex -> ``(batch, t, t)`` real."""
        return self._crop(torch.fft.ifft2(self.sqrt_sampling * z, norm="ortho").real)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``A^H A x = PSF (*) x`` cropped to the tile, ``(batch, t, t)``."""
        spec = torch.fft.fft2(self._pad(x))
        return self._crop(torch.fft.ifft2(self.sampling * spec).real)

    def gradient(self, x: torch.Tensor, dirty: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Gradient of ``||A x - y||^2 / (2 sigma^2)`` given ``A^H y = dirty``.

        Parameters
        ----------
        x, dirty : torch.Tensor
            ``(batch, t, t)`` model (Jy/pixel) and dirty tile (Jy/beam).
        sigma : torch.Tensor
            ``(batch,)`` or scalar image-domain noise, Jy/beam.
        """
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1)
        return (self.normal(x) - dirty) / sigma**2

    def precondition(self, r: torch.Tensor) -> torch.Tensor:
        """Apply ``(M + lambda max M)^-1`` in the Fourier domain to a tile, ``(batch, t, t)``."""
        spec = torch.fft.fft2(self._pad(r))
        return self._crop(torch.fft.ifft2(self.precond_filter * spec).real)
