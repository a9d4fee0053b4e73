"""How the grid stage divides its work: output channels, facets, and channels per batch.

An output channel is a group of consecutive input channels (:func:`channel_groups`, as
WSClean's ``-channels-out``); a facet is a block of whole tiles no larger than
``GridConfig.facet_pix`` on a side (:func:`plan_facets`); a batch holds as many output
channels as :func:`groups_per_batch` allows within ``GridConfig.memory_budget_mb``, at
:func:`accumulator_bytes` each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skarim.config import GridConfig
from skarim.errors import InputError
from skarim.imaging.weighting import padded_npix
from skarim.imaging.wgridder import Block

__all__ = [
    "WEIGHT_PADDING",
    "ChannelGroup",
    "FacetPlan",
    "FacetShare",
    "accumulator_bytes",
    "channel_groups",
    "facet_shares",
    "groups_per_batch",
    "plan_facets",
    "split_batches",
]

WEIGHT_PADDING = 1.2
"""WSClean's default ``-padding``: the weight grid is the padded image."""


@dataclass(frozen=True)
class ChannelGroup:
    """Input channels ``[start, stop)`` (within the read selection) of one output channel."""

    index: int
    start: int
    stop: int


@dataclass(frozen=True)
class FacetPlan:
    """A facet: tiles ``[ty0:ty1, tx0:tx1]`` gridded by one ducc0 call per row chunk."""

    ty0: int
    ty1: int
    tx0: int
    tx1: int

    def block(self, cfg: GridConfig) -> Block:
        """The facet as a FITS-order block of the full image, cut to the image at its edges."""
        t = cfg.tile
        x0, y0 = self.tx0 * t, self.ty0 * t
        return Block(
            cfg.npix_x,
            cfg.npix_y,
            x0,
            y0,
            min(self.tx1 * t, cfg.npix_x) - x0,
            min(self.ty1 * t, cfg.npix_y) - y0,
            cfg.cell_rad,
        )


def channel_groups(nchan: int, channels_out: int) -> list[ChannelGroup]:
    """Split ``nchan`` input channels into ``channels_out`` contiguous groups (as WSClean)."""
    if channels_out > nchan:
        raise InputError(f"--channels-out {channels_out} exceeds the {nchan} selected channels")
    edges = np.linspace(0, nchan, channels_out + 1).round().astype(int)
    return [ChannelGroup(i, int(edges[i]), int(edges[i + 1])) for i in range(channels_out)]


def plan_facets(cfg: GridConfig) -> list[FacetPlan]:
    """Cover the tile grid with facets of at most ``facet_pix`` pixels a side."""
    per = max(1, cfg.facet_pix // cfg.tile)
    return [
        FacetPlan(ty, min(ty + per, cfg.ntile_y), tx, min(tx + per, cfg.ntile_x))
        for ty in range(0, cfg.ntile_y, per)
        for tx in range(0, cfg.ntile_x, per)
    ]


@dataclass(frozen=True)
class FacetShare:
    """The facets one task grids, or images residuals on, for a batch of output channels.

    A large channel's facets are shared out between tasks so that every worker takes part
    in it (:func:`facet_shares`). The ``lead`` share also grids the PSF, the sum of weights
    and the counts of visibilities, which the others leave alone; every share sums the
    weights itself to normalise its facets.
    """

    facets: tuple[FacetPlan, ...]
    lead: bool = True


def facet_shares(cfg: GridConfig, parts: int) -> list[FacetShare]:
    """The image's facets in ``parts`` shares of whole rows of facets, nearly equal in count.

    Shares own whole rows of tiles, so two tasks never write the same chunk of the store's
    tile-row markers (``gridded``) side by side.

    Parameters
    ----------
    cfg : GridConfig
        Geometry of the image and its facets (:func:`plan_facets`).
    parts : int
        Shares wanted; fewer when the image has fewer facets, at least one.

    Returns
    -------
    list of FacetShare
        The first is the lead; together they hold every facet once, in order.

    Examples
    --------
    >>> cfg = GridConfig(npix_x=2048, npix_y=4096, cell_rad=1e-6, facet_pix=1024)
    >>> [len(s.facets) for s in facet_shares(cfg, 3)]  # 4 rows of 2 facets of 1024^2
    [2, 4, 2]
    >>> [len(s.facets) for s in facet_shares(cfg, 8)]  # no more shares than facet rows
    [2, 2, 2, 2]
    """
    facets = plan_facets(cfg)
    rows = sorted({f.ty0 for f in facets})
    parts = max(1, min(parts, len(rows)))
    bounds = np.linspace(0, len(rows), parts + 1).round().astype(int)
    shares = []
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        mine = set(rows[a:b])
        shares.append(FacetShare(tuple(f for f in facets if f.ty0 in mine), lead=i == 0))
    return shares


def accumulator_bytes(cfg: GridConfig) -> int:
    """Bytes of the float64 accumulators one output channel holds while its batch is gridded.

    The largest facet's image, the ``2 tile x 2 tile`` PSF and the half-plane weight grid
    (:class:`~skarim.imaging.weighting.WeightGrid`). The read chunk and ducc0's working memory are
    shared by the batch and not counted here.

    Parameters
    ----------
    cfg : GridConfig
        Geometry of the image and its facets.

    Returns
    -------
    int
        Bytes.

    Examples
    --------
    >>> cfg = GridConfig(npix_x=1024, npix_y=1024, cell_rad=7e-6)
    >>> accumulator_bytes(cfg) / 2**20  # 1024^2 facet, 512^2 PSF, 616 x 1232 weight grid
    15.7900390625
    """
    side = max(1, cfg.facet_pix // cfg.tile) * cfg.tile
    facet = min(side, cfg.npix_y) * min(side, cfg.npix_x)
    psf = (2 * cfg.tile) ** 2
    weights = padded_npix(cfg.npix_y, WEIGHT_PADDING) // 2 * padded_npix(cfg.npix_x, WEIGHT_PADDING)
    return 8 * (facet + psf + weights)


def groups_per_batch(cfg: GridConfig) -> int:
    """Output channels gridded together, with one read of the Measurement Set per pass.

    As many as fit in ``cfg.memory_budget_mb`` at :func:`accumulator_bytes` each, at least
    one (even when one channel alone exceeds the budget) and at most ``cfg.channels_out``.

    Parameters
    ----------
    cfg : GridConfig
        Geometry, ``channels_out`` and ``memory_budget_mb``.

    Returns
    -------
    int
        Output channels per batch.

    Examples
    --------
    >>> cfg = GridConfig(npix_x=1024, npix_y=1024, cell_rad=7e-6, channels_out=16)
    >>> groups_per_batch(cfg)  # 2048 MiB holds all 16
    16
    >>> groups_per_batch(cfg.model_copy(update={"memory_budget_mb": 64}))
    4
    >>> groups_per_batch(cfg.model_copy(update={"memory_budget_mb": 1}))
    1
    """
    fit = cfg.memory_budget_mb * 2**20 // accumulator_bytes(cfg)
    return int(min(cfg.channels_out, max(1, fit)))


def split_batches(groups: list[ChannelGroup], cfg: GridConfig) -> list[list[ChannelGroup]]:
    """Consecutive ``groups`` in the fewest batches of at most :func:`groups_per_batch`, as
    equal in size as can be (a task's work, read one batch at a time).

    Examples
    --------
    >>> cfg = GridConfig(npix_x=512, npix_y=512, cell_rad=1e-5, channels_out=1024)
    >>> groups = channel_groups(1024, 1024)
    >>> groups_per_batch(cfg)
    375
    >>> [len(b) for b in split_batches(groups[:512], cfg)]  # not 375 + 137
    [256, 256]
    """
    if not groups:
        return []
    n = -(-len(groups) // groups_per_batch(cfg))
    per = -(-len(groups) // n)
    return [groups[i : i + per] for i in range(0, len(groups), per)]
