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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from skarim.deconv.operator import MeasurementOperator

__all__ = ["RIMConfig", "ConvGRUCell", "RIM"]


@dataclass(frozen=True)
class RIMConfig:
    """Network sizes.

    Attributes
    ----------
    hidden : int
        Channels of the hidden states and inner convolutions.
    steps : int
        Unrolled steps T.
    """

    hidden: int = 32
    steps: int = 10

    def to_dict(self) -> dict[str, int]:
        """JSON-able form, stored beside the weights."""
        return asdict(self)


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

    n_inputs = 4

    def __init__(self, config: RIMConfig = RIMConfig()) -> None:
        super().__init__()
        self.config = config
        h = config.hidden
        self.embed = nn.Conv2d(self.n_inputs, h, 5, padding=2)
        self.gru1 = ConvGRUCell(h, h)
        self.mid = nn.Conv2d(h, h, 3, padding=2, dilation=2)
        self.gru2 = ConvGRUCell(h, h)
        self.out = nn.Conv2d(h, 1, 1, bias=False)  # no bias: a constant offset over a tile
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
        """Per-tile scale ``s = max(max(dirty), sigma)``, shape ``(batch, 1, 1)``."""
        peak = dirty.amax(dim=(-2, -1))  # (b,)
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
            ``(batch, t, t)`` dirty tile, Jy/beam.
        sigma : torch.Tensor
            ``(batch,)`` image-domain noise, Jy/beam.
        operator : MeasurementOperator
            Normal operator (``PSF (*) x``) and preconditioner of these tiles.
        x0 : torch.Tensor, optional
            ``(batch, t, t)`` starting model, Jy/pixel (a major cycle's current model; pass
            ``dirty = residual + PSF (*) x0`` with it).

        Returns
        -------
        list of torch.Tensor
            T estimates ``(batch, t, t)``, Jy/pixel, each >= 0.
        """
        b, ny, nx = dirty.shape
        layers = self.embed.weight.dtype  # float32, or bfloat16 (:meth:`cast_layers`)
        s = self.tile_scale(dirty, sigma)  # (b, 1, 1)
        x = torch.zeros_like(dirty) if x0 is None else x0
        noise_plane = (sigma.to(dirty.dtype).reshape(-1, 1, 1) / s).expand(b, ny, nx)
        h1 = dirty.new_zeros(b, self.config.hidden, ny, nx, dtype=layers)
        h2 = dirty.new_zeros(b, self.config.hidden, ny, nx, dtype=layers)
        estimates = []
        for step in range(self.config.steps):
            grad = operator.normal(x) - dirty  # (b, t, t)
            pgrad = operator.precondition(grad)  # (b, t, t)
            feats = torch.stack([x / s, grad / s, pgrad / s, noise_plane], dim=1).to(layers)
            e = torch.relu(self.embed(feats))
            h1 = self.gru1(e, h1)
            h2 = self.gru2(torch.relu(self.mid(h1)), h2)
            delta = self.out(h2)[:, 0].to(x.dtype)  # (b, t, t)
            x = torch.relu(x - self.step_size[step] * pgrad + s * delta)
            estimates.append(x)
        return estimates
