"""Major cycles: RIM passes over the tiles of a channel, then an exact residual (DESIGN.md 7).

Cycle ``k`` of output channel ``c``:

1. every tile whose ``cycle`` is below ``k`` is deconvolved by the RIM on a window of the
   tile plus a ``margin`` halo, starting from the model of cycle ``k - 1`` (``model``) and its
   exact residual (``residual``; ``dirty`` for the first cycle); the window's core goes to
   ``model_next`` and the tile's ``cycle`` becomes ``k`` (in that order);
2. when all tiles are at ``k``, ``model_next`` is copied to ``model`` and the exact residual of
   the new model is computed with ducc0 (:func:`skarim.residual.residual_channel`); then
   ``rcycle[c] = k``.

Every step reads only what the store says is finished and writes before it marks, so a run
killed anywhere resumes from the store, and the order in which tiles are processed does not
change the result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from skarim.config import RunConfig
from skarim.deconvolve import deconvolve_tiles, robust_sigma
from skarim.grid import ChannelGroup
from skarim.residual import residual_channel
from skarim.rim import RIM
from skarim.store import RunStore

__all__ = ["TileWindow", "tile_windows", "deconvolve_tile_batch", "finish_cycle", "run_cycles"]

log = logging.getLogger("skarim")


@dataclass(frozen=True)
class TileWindow:
    """Tile ``(ty, tx)`` and its window: the core plus a halo, clipped to the image."""

    ty: int
    tx: int
    tile: int
    margin: int
    npix_x: int
    npix_y: int

    @property
    def core(self) -> tuple[slice, slice]:
        """``(y, x)`` slices of the tile in the image."""
        t = self.tile
        return slice(self.ty * t, (self.ty + 1) * t), slice(self.tx * t, (self.tx + 1) * t)

    def window(self) -> tuple[slice, slice, tuple[slice, slice]]:
        """Image slices of the window, and where they sit in a ``(t + 2m)^2`` array."""
        t, m = self.tile, self.margin
        y0, x0 = self.ty * t - m, self.tx * t - m
        ys, xs = max(y0, 0), max(x0, 0)
        ye, xe = min(y0 + t + 2 * m, self.npix_y), min(x0 + t + 2 * m, self.npix_x)
        inner = (slice(ys - y0, ye - y0), slice(xs - x0, xe - x0))
        return slice(ys, ye), slice(xs, xe), inner


def tile_windows(cfg: RunConfig) -> list[TileWindow]:
    """All tiles of the image, row-major."""
    g = cfg.grid
    return [
        TileWindow(ty, tx, g.tile, cfg.deconv.margin, g.npix_x, g.npix_y)
        for ty in range(g.ntile_y)
        for tx in range(g.ntile_x)
    ]


def _read_windows(arr, chan: int, wins: list[TileWindow]) -> np.ndarray:  # noqa: ANN001
    size = wins[0].tile + 2 * wins[0].margin
    out = np.zeros((len(wins), size, size), dtype=np.float32)  # (b, w, w)
    for i, win in enumerate(wins):
        ys, xs, inner = win.window()
        out[i][inner] = arr[chan, ys, xs]
    return out


def channel_sigma(store: RunStore, chan: int, source: str, wins: list[TileWindow]) -> float:
    """Robust noise of a channel's residual from up to 16 tiles spread over the image."""
    pick = wins[:: max(1, len(wins) // 16)][:16]
    samples = [store.array(source)[(chan, *w.core)] for w in pick]
    return robust_sigma(np.concatenate([s.ravel() for s in samples]))


def deconvolve_tile_batch(
    store: RunStore,
    model: RIM,
    device,  # noqa: ANN001 - torch.device, kept out of the signature's imports
    chan: int,
    cycle: int,
    wins: list[TileWindow],
    sigma: float,
) -> int:
    """One RIM pass over a batch of tiles of one channel; returns the tiles written."""
    todo = [w for w in wins if store.array("cycle")[chan, w.ty, w.tx] < cycle]
    if not todo:
        return 0
    source = "dirty" if cycle == 1 else "residual"
    residual = _read_windows(store.array(source), chan, todo)  # (b, w, w)
    x0 = None if cycle == 1 else _read_windows(store.array("model"), chan, todo)
    psf = store.array("psf")[chan]
    out = deconvolve_tiles(model, residual, psf, sigma, device, x0=x0)  # (b, w, w)
    m, t = todo[0].margin, todo[0].tile
    for i, win in enumerate(todo):
        ys, xs = win.core
        # windows are indexed from the unclipped corner, so the core is always at [m, m + t)
        store.array("model_next")[chan, ys, xs] = out[i, m : m + t, m : m + t]
        store.array("cycle")[chan, win.ty, win.tx] = cycle
    return len(todo)


def finish_cycle(store: RunStore, cfg: RunConfig, group: ChannelGroup, cycle: int) -> dict:
    """Commit ``model_next`` to ``model`` and compute the exact residual of cycle ``cycle``."""
    chan = group.index
    for win in tile_windows(cfg):
        ys, xs = win.core
        store.array("model")[chan, ys, xs] = store.array("model_next")[chan, ys, xs]
    stats = residual_channel(store, cfg.read, cfg.grid, group)
    store.array("rcycle")[chan] = cycle
    return stats


def run_cycles(
    store: RunStore,
    cfg: RunConfig,
    groups: list[ChannelGroup],
    model: RIM,
    device,  # noqa: ANN001
    on_tiles: Callable[[int], None] = lambda n: None,
) -> list[dict]:
    """All major cycles of all channels, resuming from the store; returns per-cycle stats."""
    wins = tile_windows(cfg)
    batch = cfg.deconv.batch_tiles
    history = []
    for cycle in range(1, cfg.deconv.major_cycles + 1):
        for group in groups:
            chan = group.index
            if int(store.array("rcycle")[chan]) >= cycle:
                on_tiles(len(wins))
                continue
            source = "dirty" if cycle == 1 else "residual"
            sigma = channel_sigma(store, chan, source, wins)
            for i in range(0, len(wins), batch):
                chunk = wins[i : i + batch]
                deconvolve_tile_batch(store, model, device, chan, cycle, chunk, sigma)
                on_tiles(len(chunk))
            stats = finish_cycle(store, cfg, group, cycle)
            log.info(
                "cycle %d channel %d: residual rms %.3g Jy/beam, model flux %.4g Jy",
                cycle, chan, stats["rms"], stats["flux"],
            )  # fmt: skip
            history.append({"cycle": cycle, "channel": chan, "sigma": sigma, **stats})
    return history
