"""Exact residuals for major cycles: model -> visibilities with ducc0 -> residual image.

For one output channel, every row chunk of the Measurement Set is predicted from the model
(``ducc0`` ``dirty2vis`` facet by facet, with the same w-gridding and offsets as imaging),
subtracted from the data, and imaged onto each facet with the run's imaging weights. This
is what repairs the approximations of the tile operator (w-terms, sidelobes reaching across
tiles, tile edges): DESIGN.md section 7.
"""

from __future__ import annotations

import numpy as np

from skarim.config import GridConfig, ReadConfig
from skarim.grid import ChannelGroup, group_selection, plan_facets
from skarim.read import iter_chunks
from skarim.store import RunStore
from skarim.wgridder import image_to_vis, vis_to_image

__all__ = ["residual_channel"]


def residual_channel(
    store: RunStore, read: ReadConfig, cfg: GridConfig, group: ChannelGroup
) -> dict[str, float]:
    """Write the exact residual of the store's current model for one output channel.

    Returns
    -------
    dict
        ``rms`` of the residual (Jy/beam) and ``flux`` of the model (Jy).
    """
    meta, gread, weights, _ = group_selection(read, cfg, group)
    precision = "double" if cfg.double_precision else "single"
    real = np.float64 if cfg.double_precision else np.float32
    facets = [(f, f.block(cfg)) for f in plan_facets(cfg)]
    model = store.array("model")
    sumwt = float(store.array("sumwt")[group.index])
    sq, npix = 0.0, 0
    for _, block in facets:
        image = np.zeros((block.ny, block.nx), dtype=np.float64)  # (ny, nx)
        for chunk in iter_chunks(meta, gread, precision=precision):
            w = weights.imaging_weights(chunk.uvw_m, meta.freq_hz, chunk.weight).astype(real)
            predicted = np.zeros_like(chunk.vis)
            for _, src in facets:
                m = model[group.index, src.y0 : src.y0 + src.ny, src.x0 : src.x0 + src.nx]
                if np.any(m):
                    predicted += image_to_vis(
                        uvw_m=chunk.uvw_m,
                        freq_hz=meta.freq_hz,
                        image=m.astype(real),
                        block=src,
                        epsilon=cfg.epsilon,
                        nthreads=cfg.nthreads,
                    )
            image += vis_to_image(
                uvw_m=chunk.uvw_m,
                freq_hz=meta.freq_hz,
                vis=chunk.vis - predicted,
                weight=w,
                block=block,
                epsilon=cfg.epsilon,
                nthreads=cfg.nthreads,
            )
        if sumwt > 0:
            image /= sumwt
        store.array("residual")[
            group.index, block.y0 : block.y0 + block.ny, block.x0 : block.x0 + block.nx
        ] = image.astype(np.float32)
        sq += float((image**2).sum())
        npix += image.size
    flux = float(np.sum(model[group.index], dtype=np.float64))
    return {"rms": float(np.sqrt(sq / max(npix, 1))), "flux": flux}
