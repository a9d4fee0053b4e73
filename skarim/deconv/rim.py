"""The Recurrent Inference Machine (Putzky & Welling 2017) for one tile of sky.

The cell follows the seed talk: embedding conv 5x5, conv-GRU 3x3, conv 3x3 dilated 2,
conv-GRU 3x3, conv 1x1 to the update. Inputs at each step are the estimate, the data-term
gradient and its Fourier-preconditioned version, all divided by a per-tile scale ``s``, and
the noise level ``sigma / s`` as a constant plane (docs/design.md section 6).

Each step is a learned correction on top of a projected, preconditioned gradient step::

    x_{t+1} = max(0, x_t - alpha_t P(grad_t) + s * g_theta(x_t / s, grad_t / s, ..., h_t))

The last convolution starts at zero, so an untrained RIM is T steps of non-negative
preconditioned gradient descent (a strong classical baseline) and training can only add to
it. Non-negativity (Stokes I >= 0) is the projection ``max(0, .)`` at every step. The
operator comes in through :class:`skarim.deconv.operator.MeasurementOperator`; this module never
touches ducc0. Needs torch only.

With ``terms = K > 1`` (joined channels, ``--fit-spectral-pol K``) the estimate is ``K``
spectral terms ``B_k`` of a tile, ``(batch, K, t, t)``: term 0 the weighted-mean (MFS) image,
the others the coefficients of an orthonormal polynomial in frequency
(:func:`skarim.deconv.spectral.spectral_basis`), and the operator is
:class:`skarim.deconv.spectral_operator.SpectralOperator`. Every term's estimate, gradient and
preconditioned gradient are inputs (``3 K + 1`` planes) and the network updates every term;
term 0 is kept ``>= 0`` and the others are kept to its support. :func:`expand_terms` makes
such a network from a one-term one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from skarim.deconv.operator import MeasurementOperator

__all__ = ["RIMConfig", "ConvGRUCell", "RIM", "expand_terms"]


@dataclass(frozen=True)
class RIMConfig:
    """Network sizes.

    Attributes
    ----------
    hidden : int
        Channels of the hidden states and inner convolutions.
    steps : int
        Unrolled steps T.
    terms : int
        Spectral terms ``K`` of the estimate: 1 for one image (one channel, or an MFS), ``K``
        for joined channels fitted with ``K`` polynomial terms.
    """

    hidden: int = 32
    steps: int = 10
    terms: int = 1

    def to_dict(self) -> dict[str, int]:
        """JSON-able form, stored beside the weights (``terms`` only when not 1, so a
        one-term network's file reads as it always has)."""
        data = asdict(self)
        if self.terms == 1:
            del data["terms"]
        return data


class ConvGRUCell(nn.Module):
    """Convolutional GRU cell with ``k x k`` kernels."""

    def __init__(self, in_channels: int, hidden: int, kernel: int = 3) -> None:
        super().__init__()
        pad = kernel // 2
        self.gates = nn.Conv2d(in_channels + hidden, 2 * hidden, kernel, padding=pad)
        self.candidate = nn.Conv2d(in_channels + hidden, hidden, kernel, padding=pad)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One update: ``x`` ``(b, in, t, t)``, ``h`` ``(b, hidden, t, t)`` -> new ``h``."""
        z, r = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)
        n = torch.tanh(self.candidate(torch.cat([x, r * h], dim=1)))  # (b, hidden, t, t)
        return (1 - z) * h + z * n


class RIM(nn.Module):
    """The RIM; :meth:`forward` returns the estimate after every step."""

    def __init__(self, config: RIMConfig = RIMConfig()) -> None:
        super().__init__()
        self.config = config
        h, k = config.hidden, config.terms
        self.embed = nn.Conv2d(3 * k + 1, h, 5, padding=2)
        self.gru1 = ConvGRUCell(h, h)
        self.mid = nn.Conv2d(h, h, 3, padding=2, dilation=2)
        self.gru2 = ConvGRUCell(h, h)
        self.out = nn.Conv2d(h, k, 1, bias=False)  # no bias: a constant offset over a tile
        nn.init.zeros_(self.out.weight)
        self.step_size = nn.Parameter(torch.ones(config.steps))

    def cast_layers(self, dtype: torch.dtype) -> RIM:
        """Put the convolutions (weights, hidden states, activations) in ``dtype``, in place.

        The estimate, the step sizes and the operator stay in the input's dtype; only the
        network's features are cast on the way in and its update on the way out. Casting the
        layers once is faster than ``torch.autocast``, which casts every layer's input anew
        and keeps the hidden states in float32.
        """
        for layer in (self.embed, self.gru1, self.mid, self.gru2, self.out):
            layer.to(dtype)
        return self

    @staticmethod
    def tile_scale(dirty: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Per-tile scale ``s = max(max(dirty), sigma)``, shape ``(batch, 1, 1)``; of term 0
        for a ``(batch, K, t, t)`` stack of terms."""
        peak = (dirty if dirty.ndim == 3 else dirty[:, 0]).amax(dim=(-2, -1))  # (b,)
        return torch.maximum(peak, sigma.to(dirty.dtype)).reshape(-1, 1, 1)

    def forward(
        self,
        dirty: torch.Tensor,
        sigma: torch.Tensor,
        operator: MeasurementOperator,
        x0: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Run T steps.

        Parameters
        ----------
        dirty : torch.Tensor
            ``(batch, t, t)`` dirty tile, Jy/beam; with ``terms = K > 1`` the ``(batch, K, t,
            t)`` back-projected terms (:meth:`SpectralOperator.terms_of
            <skarim.deconv.spectral_operator.SpectralOperator.terms_of>` of the channels'
            dirty tiles).
        sigma : torch.Tensor
            ``(batch,)`` image-domain noise, Jy/beam (of the MFS with ``K > 1``).
        operator : MeasurementOperator
            Normal operator (``PSF (*) x``) and preconditioner of these tiles (of their terms).
        x0 : torch.Tensor, optional
            Starting model shaped as ``dirty``, Jy/pixel (a major cycle's current model; pass
            ``dirty = residual + PSF (*) x0`` with it).

        Returns
        -------
        list of torch.Tensor
            T estimates shaped as ``dirty``, Jy/pixel; term 0 >= 0, the others zero where
            term 0 is.
        """
        one_term = dirty.ndim == 3
        if one_term != (self.config.terms == 1):
            raise ValueError(f"a RIM of {self.config.terms} terms given {tuple(dirty.shape)}")
        if one_term:
            dirty = dirty[:, None]
            x0 = None if x0 is None else x0[:, None]
        b, k, ny, nx = dirty.shape
        layers = self.embed.weight.dtype  # float32, or bfloat16 (:meth:`cast_layers`)
        s = self.tile_scale(dirty, sigma)[:, None]  # (b, 1, 1, 1)
        x = torch.zeros_like(dirty) if x0 is None else x0
        noise_plane = (sigma.to(dirty.dtype).reshape(-1, 1, 1, 1) / s).expand(b, 1, ny, nx)
        h1 = dirty.new_zeros(b, self.config.hidden, ny, nx, dtype=layers)
        h2 = dirty.new_zeros(b, self.config.hidden, ny, nx, dtype=layers)
        estimates = []
        for step in range(self.config.steps):
            grad = self._normal(operator, x, one_term) - dirty  # (b, K, t, t)
            pgrad = self._precondition(operator, grad, one_term)  # (b, K, t, t)
            feats = torch.cat([x / s, grad / s, pgrad / s, noise_plane], dim=1).to(layers)
            e = torch.relu(self.embed(feats))
            h1 = self.gru1(e, h1)
            h2 = self.gru2(torch.relu(self.mid(h1)), h2)
            delta = self.out(h2).to(x.dtype)  # (b, K, t, t)
            x = self._project(x - self.step_size[step] * pgrad + s * delta)
            estimates.append(x[:, 0] if one_term else x)
        return estimates

    @staticmethod
    def _normal(operator: MeasurementOperator, x: torch.Tensor, one_term: bool) -> torch.Tensor:
        return operator.normal(x[:, 0])[:, None] if one_term else operator.normal(x)

    @staticmethod
    def _precondition(
        operator: MeasurementOperator, r: torch.Tensor, one_term: bool
    ) -> torch.Tensor:
        return operator.precondition(r[:, 0])[:, None] if one_term else operator.precondition(r)

    @staticmethod
    def _project(x: torch.Tensor) -> torch.Tensor:
        """Term 0 (the image) ``>= 0``; the spectral terms zero where it is zero."""
        mfs = torch.relu(x[:, :1])
        if x.shape[1] == 1:
            return mfs
        return torch.cat([mfs, x[:, 1:] * (mfs > 0)], dim=1)


def expand_terms(rim: RIM, terms: int) -> RIM:
    """A RIM of ``terms`` spectral terms that starts as ``rim`` on term 0.

    Term 0's inputs and output take ``rim``'s weights; the new terms' inputs and outputs start
    at zero, so the new network runs ``rim`` on the MFS term while the higher terms take
    preconditioned gradient steps, and training adds what the terms tell one another.

    Parameters
    ----------
    rim : RIM
        A one-term network.
    terms : int
        ``K >= 1``.

    Returns
    -------
    RIM
        A new network, on ``rim``'s device and dtype.
    """
    if rim.config.terms != 1:
        raise ValueError(f"expand_terms takes a one-term RIM, not {rim.config.terms} terms")
    config = RIMConfig(hidden=rim.config.hidden, steps=rim.config.steps, terms=terms)
    new = RIM(config).to(device=rim.step_size.device, dtype=rim.step_size.dtype)
    state = {name: t.clone() for name, t in rim.state_dict().items()}
    old_in, old_out = state["embed.weight"], state["out.weight"]  # (h, 4, 5, 5), (1, h, 1, 1)
    embed = torch.zeros_like(new.embed.weight)  # (h, 3K + 1, 5, 5): [x_k, grad_k, pgrad_k, noise]
    for j in range(3):
        embed[:, j * terms] = old_in[:, j]
    embed[:, 3 * terms] = old_in[:, 3]
    out = torch.zeros_like(new.out.weight)  # (K, h, 1, 1)
    out[0] = old_out[0]
    state["embed.weight"], state["out.weight"] = embed, out
    new.load_state_dict(state)
    return new
