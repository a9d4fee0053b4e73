"""Joined-channel tile passes: every output channel of a tile deconvolved together.

With :attr:`skarim.config.DeconvConfig.join_channels` a tile pass reads the windows of all
output channels that hold data (``sumwt > 0``), weighted by their sums of weights ``w_c``
(``a_c = w_c / sum w``, as the MFS image weighs them):

- **RIM phase**: the RIM finds an MFS model of the window (the signal-to-noise of all the
  channels at once). A one-term network deconvolves the MFS of the channels,
  ``sum_c a_c r_c``, with the PSF ``sum_c a_c P_c`` and starting model ``sum_c a_c x0_c``; a
  network of ``fit_spectral_pol`` spectral terms sees every channel with its own PSF
  (:mod:`skarim.deconv.spectral_rim`), and the MFS model is the weighted mean of its
  channels' models. Each channel's model is then spectral terms fitted to all channels'
  residuals on the MFS model's support, starting from it
  (:func:`skarim.deconv.spectral.fit_joined_model`): a polynomial of ``fit_spectral_pol``
  terms in frequency at every pixel.
- **Polish phase**: WSClean's joined-channel Hogbom CLEAN on each window
  (:func:`skarim.deconv.spectral.joined_hogbom`): peaks of the MFS residual, the channels'
  values there fitted with the same polynomial.

A tile's ``cycle`` markers advance in every channel once all channels' ``model_next`` are
written, so a pass killed halfway resumes the tile in all channels. The major cycle then
accepts or refuses all channels together (:func:`skarim.deconv.major_cycle.finish_cycle`
with ``joined``). :func:`deconvolve_joined_rows` covers a block of tile rows; the worker task
:func:`skarim.run.tasks.joined_pass_task` calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from skarim.config import RunConfig
from skarim.deconv.deconvolver import WindowBatch, phase_deconvolver
from skarim.deconv.device import ComputeDevice
from skarim.deconv.noise import local_box_pix, local_sigma
from skarim.deconv.rim import RIM
from skarim.deconv.spectral import (
    fit_joined_model,
    interpolation_matrix,
    joined_hogbom,
    spectral_basis,
)
from skarim.deconv.spectral_rim import deconvolve_joined_windows
from skarim.deconv.tiles import TileWindow, fit_psf, read_windows, tile_windows, write_cores
from skarim.deconv.weights import cached_rim
from skarim.deconv.weights_id import run_weights_path
from skarim.io.store import RunStore

__all__ = ["JoinedChannels", "joined_channels", "deconvolve_joined_rows"]


@dataclass(frozen=True)
class JoinedChannels:
    """The output channels a joined pass deconvolves together, and how they are weighed.

    The ``C`` channels holding data are averaged into ``D`` deconvolution channels of
    contiguous output channels (WSClean's ``-deconvolution-channels``; ``D = C`` by default),
    weighted by their sums of weights; the pass deconvolves those, and every output
    channel's model is the polynomial fitted over them evaluated at its frequency
    (:func:`skarim.deconv.spectral.interpolation_matrix`). Memory follows ``D``, not ``C``.

    Attributes
    ----------
    chans : tuple of int
        Output channels holding data, ascending.
    weight : numpy.ndarray
        ``(C,)`` their sums of imaging weights.
    group : numpy.ndarray
        ``(C,)`` the deconvolution channel of each.
    group_weight : numpy.ndarray
        ``(D,)`` the deconvolution channels' sums of weights.
    basis : numpy.ndarray
        ``(K, D)`` the spectral basis over the deconvolution channels
        (:func:`~skarim.deconv.spectral.spectral_basis`).
    spread : numpy.ndarray or None
        ``(C, D)`` the output channels' models from the deconvolution channels'; None when
        they are the same channels.
    """

    chans: tuple[int, ...]
    weight: np.ndarray
    group: np.ndarray
    group_weight: np.ndarray
    basis: np.ndarray
    spread: np.ndarray | None

    @property
    def share(self) -> np.ndarray:
        """``(C,)`` each output channel's weight within its deconvolution channel."""
        return self.weight / self.group_weight[self.group]

    @property
    def mfs_weight(self) -> np.ndarray:
        """``(D,)`` each deconvolution channel's weight in the MFS, summing to 1."""
        return self.group_weight / self.group_weight.sum()

    def mfs(self, cube: np.ndarray) -> np.ndarray:
        """The weighted mean over axis 0 of a ``(D, ...)`` stack."""
        return np.tensordot(self.mfs_weight, cube, axes=1)

    def mfs_sigma(self, sigmas: np.ndarray) -> np.ndarray:
        """Noise of the MFS of ``(D, ...)`` deconvolution channels of independent noise."""
        return np.sqrt(np.tensordot(self.mfs_weight**2, np.square(sigmas), axes=1))

    def gather(self, read: Callable[[int], np.ndarray]) -> np.ndarray:
        """``(D, ...)`` the deconvolution channels' weighted means of ``read(chan)``, reading
        one output channel at a time."""
        first = np.asarray(read(self.chans[0]), dtype=np.float64)
        out = np.zeros((len(self.group_weight), *first.shape))
        for k, c in enumerate(self.chans):
            value = first if k == 0 else np.asarray(read(c), dtype=np.float64)
            out[self.group[k]] += self.share[k] * value
        return out

    def gather_sigma(self, sigmas: np.ndarray) -> np.ndarray:
        """``(D, ...)`` noise of the deconvolution channels from the ``(C, ...)`` channels'."""
        sigmas = np.asarray(sigmas, dtype=np.float64)
        share2 = (self.share**2).reshape(-1, *([1] * (sigmas.ndim - 1)))  # (C, 1...)
        out = np.zeros((len(self.group_weight), *sigmas.shape[1:]))
        np.add.at(out, self.group, share2 * sigmas**2)
        return np.sqrt(out)

    def channel_model(self, models: np.ndarray, k: int) -> np.ndarray:
        """The model of output channel ``chans[k]`` from the ``(D, ...)`` deconvolution
        channels' models."""
        if self.spread is None:
            return models[k]
        return np.tensordot(self.spread[k], models, axes=1)


def joined_channels(store: RunStore, cfg: RunConfig) -> JoinedChannels:
    """The channels of the store that hold data, grouped into deconvolution channels."""
    d = cfg.deconv
    sumwt = np.asarray(store.array("sumwt")[...], dtype=np.float64)  # (nchan,)
    chans = np.flatnonzero(sumwt > 0)
    weight, freq_hz = sumwt[chans], store.wcs.freq_hz[chans]
    n_groups = min(d.deconvolution_channels or len(chans), len(chans))
    group = np.zeros(len(chans), dtype=int)
    for g, part in enumerate(np.array_split(np.arange(len(chans)), n_groups)):
        group[part] = g
    group_weight = np.bincount(group, weights=weight, minlength=n_groups)
    group_freq = np.bincount(group, weights=weight * freq_hz, minlength=n_groups) / group_weight
    spread = None
    if n_groups < len(chans):
        spread = interpolation_matrix(group_freq, group_weight, freq_hz, d.fit_spectral_pol)
    basis = spectral_basis(group_freq, group_weight, d.fit_spectral_pol)
    return JoinedChannels(tuple(int(c) for c in chans), weight, group, group_weight, basis, spread)


def deconvolve_joined_rows(
    store: RunStore,
    cfg: RunConfig,
    cycle: int,
    rows: range,
    sigmas: np.ndarray,
    device: ComputeDevice,
) -> tuple[int, int]:
    """Joined pass ``cycle`` (RIM or polish) over tile rows ``rows`` of every channel.

    Parameters
    ----------
    store : RunStore
        The run's store.
    cfg : RunConfig
        The run (tile geometry, margin, batch size, weights, thresholds, spectral fit).
    cycle : int
        Major cycle.
    rows : range
        Tile rows covered; batches of ``batch_tiles`` tiles never cross a row.
    sigmas : numpy.ndarray
        ``(C,)`` the noise of each channel of :func:`joined_channels` for this cycle,
        Jy/beam (:func:`skarim.deconv.noise.channel_sigma`).
    device : ComputeDevice
        Where the RIM runs.

    Returns
    -------
    tuple of int
        (channel, tile) units written and, of those, the units left as they were.
    """
    d = cfg.deconv
    joined = joined_channels(store, cfg)
    psfs = joined.gather(lambda c: store.array("psf")[c])  # (D, 2t, 2t)
    wins = tile_windows(cfg)
    w = cfg.grid.tile + 2 * d.margin
    psfs_w = np.stack([fit_psf(p, w) for p in psfs])  # (D, 2w, 2w)
    masked = d.fits_mask is not None or (d.auto_mask and cycle > d.major_cycles)
    box = local_box_pix(d, joined.mfs(psfs), w) if d.local_rms else 0
    pass_ = _JoinedPass(store, cfg, joined, cycle, psfs, psfs_w, device, masked, box)
    written = skipped = 0
    for ty in rows:
        row = [win for win in wins if win.ty == ty]
        for i in range(0, len(row), d.batch_tiles):
            done, idle = pass_.run(row[i : i + d.batch_tiles], np.asarray(sigmas, float))
            written, skipped = written + done, skipped + idle
    return written, skipped


@dataclass(frozen=True)
class _JoinedPass:
    """One cycle's joined pass over batches of windows of one tile row."""

    store: RunStore
    cfg: RunConfig
    joined: JoinedChannels
    cycle: int
    psfs: np.ndarray  # (D, 2t, 2t)
    psfs_w: np.ndarray  # (D, 2w, 2w)
    device: ComputeDevice
    masked: bool
    box: int

    def run(self, wins: list[TileWindow], sigmas: np.ndarray) -> tuple[int, int]:
        """Deconvolve the windows not yet at the cycle in some channel; write, then mark.

        Returns the (channel, tile) units written and those left as they were.
        """
        store, chans, cycle = self.store, self.joined.chans, self.cycle
        ty = wins[0].ty
        markers = np.stack([store.array("cycle")[c, ty] for c in chans])  # (C, ntx)
        todo = [win for win in wins if markers[:, win.tx].min() < cycle]
        if not todo:
            return 0, 0
        source = "dirty" if cycle == 1 else "residual"
        j = self.joined
        residual = j.gather(lambda c: read_windows(store.array(source), c, todo))  # (D, b, w, w)
        x0 = (
            np.zeros_like(residual)
            if cycle == 1
            else j.gather(lambda c: read_windows(store.array("model"), c, todo))
        )  # (D, b, w, w)
        mask = read_windows(store.array("mask"), chans[0], todo) > 0 if self.masked else None
        window_sigmas = np.repeat(sigmas[:, None], len(todo), axis=1)  # (C, b)
        if self.box > 0:
            window_sigmas = np.array(
                [[local_sigma(store, c, source, win, self.box) for win in todo] for c in chans]
            )
        window_sigmas = j.gather_sigma(window_sigmas)  # (D, b)
        m, t = todo[0].margin, todo[0].tile
        if cycle <= self.cfg.deconv.major_cycles:
            out, skipped = self._rim(residual, x0, window_sigmas, slice(m, m + t), mask)
        else:
            out, skipped = self._polish(residual, x0, window_sigmas, mask)
        for k, c in enumerate(chans):
            write_cores(store.array("model_next"), c, todo, j.channel_model(out, k))
        for k, c in enumerate(chans):  # every channel's model first, then the markers
            row = markers[k]
            for win in todo:
                row[win.tx] = cycle
            store.array("cycle")[c, ty] = row
        return len(todo) * len(chans), skipped * len(chans)

    def _rim(
        self,
        residual: np.ndarray,
        x0: np.ndarray,
        sigmas: np.ndarray,
        core: slice,
        mask: np.ndarray | None,
    ) -> tuple[np.ndarray, int]:
        """The RIM's MFS model of each window, then each channel's spectrum fitted on its
        support."""
        j, d = self.joined, self.cfg.deconv
        mfs_x0 = j.mfs(x0)  # (b, w, w)
        batch = WindowBatch(
            j.mfs(residual), j.mfs(self.psfs), j.mfs_sigma(sigmas), mfs_x0, core, mask
        )
        rim = cached_rim(run_weights_path(d), self.device.device, self.device.dtype)
        if rim.config.terms > 1:
            mfs_model, skipped = self._spectral_rim(rim, residual, x0, batch)
        else:
            mfs_model, skipped = phase_deconvolver(self.cycle, d, self.device).deconvolve(batch)
        out = np.array(x0, dtype=np.float32)  # (D, b, w, w)
        changed = np.flatnonzero(np.any(mfs_model != mfs_x0.astype(np.float32), axis=(1, 2)))
        if changed.size:
            new = mfs_model[changed]
            out[:, changed] = fit_joined_model(
                residual[:, changed], self.psfs_w, x0[:, changed], new, j.group_weight, j.basis,
                new != 0, d.spectral_iterations, fit_mfs=True,
            )  # fmt: skip
        return out, len(residual[0]) - changed.size

    def _spectral_rim(
        self, rim: RIM, residual: np.ndarray, x0: np.ndarray, mfs: WindowBatch
    ) -> tuple[np.ndarray, int]:
        """The MFS of the spectral-term RIM's channel models, on the windows whose MFS
        residual (``mfs``) holds a source (the one-term RIM's skip rule); the others keep
        their MFS models.

        Returns the ``(b, w, w)`` MFS models (float32) and how many windows were skipped.
        """
        j = self.joined
        busy = mfs.holding_sources(self.cfg.deconv.skip_sigma)
        out = mfs.x0.astype(np.float32)  # (b, w, w)
        basis = np.zeros((rim.config.terms, len(j.group_weight)))  # (K, D): fewer channels
        basis[: len(j.basis)] = j.basis  # than terms leave the higher terms unseen and unused
        if busy.any():
            found = j.mfs(deconvolve_joined_windows(
                rim, residual[:, busy], self.psfs_w, j.group_weight, basis, mfs.sigmas[busy],
                self.device.device, x0=x0[:, busy],
            ))  # fmt: skip
            out[busy] = found if mfs.mask is None else np.where(mfs.mask[busy], found, 0)
        return out, int(np.count_nonzero(~busy))

    def _polish(
        self, residual: np.ndarray, x0: np.ndarray, sigmas: np.ndarray, mask: np.ndarray | None
    ) -> tuple[np.ndarray, int]:
        """Joined Hogbom CLEAN of each window whose MFS residual reaches the threshold."""
        j, d = self.joined, self.cfg.deconv
        mfs = j.mfs(residual)  # (b, w, w)
        mfs_sigma = j.mfs_sigma(sigmas)  # (b,)
        searched = np.abs(mfs) if mask is None else np.where(mask, np.abs(mfs), 0)
        busy = np.flatnonzero(searched.max(axis=(1, 2)) > d.polish_sigma * mfs_sigma)
        out = np.array(x0, dtype=np.float32)
        for i in busy:
            step = joined_hogbom(
                residual[:, i], self.psfs_w, j.group_weight, j.basis, float(mfs_sigma[i]),
                gain=d.polish_gain, threshold_sigma=d.polish_sigma,
                mask=None if mask is None else mask[i],
            )  # fmt: skip
            out[:, i] = (x0[:, i] + step).astype(np.float32)
        return out, len(mfs) - busy.size
