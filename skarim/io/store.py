"""The run's Zarr v3 store, laid out by (channel, tile) (docs/design.md section 8).

Schema (``c`` output channels, ``t`` tile side, ``ny x nx`` image):

=================  ==========================  ================  ==============================
array              shape                       chunks            meaning
=================  ==========================  ================  ==============================
``dirty``          ``(c, ny, nx)`` float32     ``(1, t, t)``     dirty image, Jy/beam
``psf``            ``(c, 2t, 2t)`` float32     ``(1, 2t, 2t)``   PSF, peak 1 at ``(t, t)``
``sumwt``          ``(c,)`` float64            ``(1,)``          sum of imaging weights
``model``          ``(c, ny, nx)`` float32     ``(1, t, t)``     model after the last full cycle
``model_next``     ``(c, ny, nx)`` float32     ``(1, t, t)``     tiles' models of the cycle running
``residual``       ``(c, ny, nx)`` float32     ``(1, t, t)``     residual of ``model``, Jy/beam
``residual_next``  ``(c, ny, nx)`` float32     ``(1, t, t)``     residual of ``model_next``
``mask``           ``(c, ny, nx)`` uint8       ``(1, t, t)``     1 where deconvolution may put
                                                                 flux (:mod:`skarim.io.mask`)
``gridded``        ``(c, nty, ntx)`` int8      ``(1, 1, ntx)``   1 once the tile's dirty is written
``cycle``          ``(c, nty, ntx)`` int32     ``(1, 1, ntx)``   last major cycle done for a tile
``rcycle``         ``(c,)`` int32              ``(1,)``          cycle whose exact residual is in
                                                                 ``residual`` (0: use ``dirty``)
``rms``            ``(c,)`` float64            ``(1,)``          RMS of that residual, Jy/beam
=================  ==========================  ================  ==============================

With reordering (:attr:`skarim.config.run.RunConfig.reorders`, WSClean's ``-reorder``), the
group ``reordered/`` holds the selection's visibilities once more, by input channel
(:mod:`skarim.imaging.reorder`; ``r`` selected rows, ``n`` selected input channels, ``R`` rows
of a read chunk):

=======================  ======================  ============  ================================
array                    shape                   chunks        meaning
=======================  ======================  ============  ================================
``reordered/vis``        ``(r, n)`` complex      ``(R, 1)``    Stokes I, Jy
``reordered/weight``     ``(r, n)`` float        ``(R, 1)``    imaging weights, Jy^-2
``reordered/uvw``        ``(r, 3)`` float64      ``(R, 3)``    baseline coordinates, m
``reordered/done``       ``(c,)`` int8           ``(1,)``      1 once an output channel's
                                                               columns are written
``reordered/uvw_done``   ``(1,)`` int8           ``(1,)``      1 once ``uvw`` is written
=======================  ======================  ============  ================================

A task's temporary data (the residual visibilities a multi-facet residual keeps between its
passes, :mod:`skarim.imaging.residual`) goes to an array of its own under ``scratch/``
(:meth:`RunStore.scratch_array`), removed when the task is done with it.

Attributes: ``complete_layout`` (False until the arrays above are all created, then True: a
store whose creation was interrupted is made again), ``skarim_version``, ``config`` (the run
configuration's fingerprinted parts, as JSON), ``ms_fingerprint``, ``wcs``
(:meth:`skarim.io.wcs.ImageWCS.to_dict`), ``gridder_conventions``
(:data:`skarim.imaging.wgridder.CONVENTIONS`), ``makes_psf`` (whether gridding writes ``psf``;
False only for a dirty-only run without ``--make-psf``, and read as True where absent),
``stats`` (counts the read stage reports),
``runs`` (one summary per invocation: :meth:`RunStore.record_run`). Progress
markers (``gridded``, ``cycle``) are advanced only after the data they vouch for is written,
so a killed run resumes from them.

Chunks are laid out so that concurrent tasks never write the same chunk (a chunk written in
part is read, changed and rewritten whole): a channel's values of ``sumwt``, ``rcycle`` and
``rms`` have a chunk each, as does each tile row of ``cycle`` (RIM tasks own whole tile rows), and
``gridded`` is written only by the task gridding that channel.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from skarim import __version__
from skarim.errors import StoreMismatchError
from skarim.io.wcs import ImageWCS

__all__ = ["RunStore"]


class RunStore:
    """Open handle on a run's store; see the module docstring for the layout."""

    def __init__(self, group: zarr.Group) -> None:
        self.group = group

    @classmethod
    def open(cls, path: Path, mode: str = "r") -> RunStore:
        """Open an existing store (``mode`` ``r`` or ``r+``) to read or inspect a run."""
        return cls(zarr.open_group(str(path), mode=mode))

    @classmethod
    def open_or_create(
        cls,
        path: Path,
        *,
        config: dict[str, Any],
        ms_fingerprint: dict[str, Any],
        wcs: ImageWCS,
        tile: int,
        gridder_conventions: dict[str, Any],
        makes_psf: bool = True,
        overwrite: bool = False,
    ) -> RunStore:
        """Open the store of this run, creating it if absent.

        A run that makes PSFs opening a store whose gridding made none (a dirty-only run's)
        grids again, dirty images and PSFs (:meth:`make_psfs`); the converse keeps the store's
        PSFs, and its gridding goes on making them.

        Parameters
        ----------
        path : Path
            Store directory.
        config : dict
            JSON-able configuration that decides the contents (``RunConfig.fingerprint_dict``).
        ms_fingerprint : dict
            The Measurement Set's fingerprint (:attr:`skarim.io.ms_meta.MSMeta.fingerprint`).
        wcs : ImageWCS
            Image geometry and frequencies.
        tile : int
            Tile side in pixels.
        gridder_conventions : dict
            The gridder's sign and centre conventions
            (:data:`skarim.imaging.wgridder.CONVENTIONS`), recorded in a new store.
        makes_psf : bool
            Whether this run needs PSFs (:attr:`skarim.config.run.RunConfig.makes_psf`).
        overwrite : bool
            Replace a store made from another MS or configuration instead of refusing.

        Raises
        ------
        StoreMismatchError
            If the store exists for another MS or configuration and ``overwrite`` is False.
        """
        path = Path(path)
        if (path / "zarr.json").exists():
            group = zarr.open_group(str(path), mode="r+")
            attrs = dict(group.attrs)
            if attrs.get("complete_layout") is False:  # its creation was interrupted: no work
                shutil.rmtree(path)
                return cls._create(
                    path, config, ms_fingerprint, wcs, tile, gridder_conventions, makes_psf
                )
            same = (
                attrs.get("config") == config
                and attrs.get("ms_fingerprint") == ms_fingerprint
                and attrs.get("complete_layout") is True
            )
            if same:
                store = cls(group)
                if makes_psf and not store.makes_psf:
                    store.make_psfs()
                return store
            if not overwrite:
                what = (
                    "Measurement Set"
                    if attrs.get("ms_fingerprint") != ms_fingerprint
                    else "configuration"
                )
                raise StoreMismatchError(
                    f"store {path} was made from another {what}; use --overwrite to replace it "
                    "or --name for a new run"
                )
            shutil.rmtree(path)
        elif path.exists() and any(path.iterdir()):
            if not overwrite:
                raise StoreMismatchError(
                    f"{path} exists and is not a skarim store; use --overwrite"
                )
            shutil.rmtree(path)
        return cls._create(path, config, ms_fingerprint, wcs, tile, gridder_conventions, makes_psf)

    @classmethod
    def _create(
        cls,
        path: Path,
        config: dict[str, Any],
        fingerprint: dict[str, Any],
        wcs: ImageWCS,
        tile: int,
        gridder_conventions: dict[str, Any],
        makes_psf: bool,
    ) -> RunStore:
        group = zarr.open_group(str(path), mode="w", attributes={"complete_layout": False})
        c, ny, nx = wcs.nchan, wcs.npix_y, wcs.npix_x
        nty, ntx = -(-ny // tile), -(-nx // tile)  # the last tile of a row may be partial
        image = {
            "shape": (c, ny, nx),
            "chunks": (1, tile, tile),
            "dtype": "float32",
            "fill_value": 0.0,
        }
        for name in ("dirty", "model", "model_next", "residual", "residual_next"):
            group.create_array(name, dimension_names=("chan", "y", "x"), **image)
        mask = {**image, "dtype": "uint8", "fill_value": 1}  # 1: deconvolve here
        group.create_array("mask", dimension_names=("chan", "y", "x"), **mask)
        group.create_array(
            "psf",
            shape=(c, 2 * tile, 2 * tile),
            chunks=(1, 2 * tile, 2 * tile),
            dtype="float32",
            fill_value=0.0,
            dimension_names=("chan", "y", "x"),
        )
        group.create_array("sumwt", shape=(c,), chunks=(1,), dtype="float64", fill_value=0.0)
        tiles = {"shape": (c, nty, ntx), "dimension_names": ("chan", "ty", "tx")}
        group.create_array("gridded", chunks=(1, 1, ntx), dtype="int8", fill_value=0, **tiles)
        group.create_array("cycle", chunks=(1, 1, ntx), dtype="int32", fill_value=0, **tiles)
        group.create_array("rcycle", shape=(c,), chunks=(1,), dtype="int32", fill_value=0)
        group.create_array("rms", shape=(c,), chunks=(1,), dtype="float64", fill_value=0.0)
        group.attrs.update(
            {
                "skarim_version": __version__,
                "config": config,
                "ms_fingerprint": fingerprint,
                "wcs": wcs.to_dict(),
                "tile": tile,
                "gridder_conventions": gridder_conventions,
                "makes_psf": makes_psf,
                "stats": {},
                "complete_layout": True,
            }
        )
        return cls(group)

    @property
    def wcs(self) -> ImageWCS:
        """The image geometry recorded in the store."""
        return ImageWCS.from_dict(dict(self.group.attrs)["wcs"])

    @property
    def makes_psf(self) -> bool:
        """Whether gridding writes each channel's PSF (stores made before this attribute did)."""
        return bool(self.group.attrs.get("makes_psf", True))

    def make_psfs(self) -> None:
        """From now on gridding makes PSFs: every channel is gridded again, dirty image and PSF.

        The gridding markers and sums of weights are cleared before the attribute is set, so
        that a kill between the two leaves a store that clears them again.
        """
        self.group["gridded"][...] = 0
        self.group["sumwt"][...] = 0.0
        self.group.attrs["makes_psf"] = True

    @property
    def tile(self) -> int:
        """Tile side, pixels."""
        return int(self.group.attrs["tile"])

    def array(self, name: str) -> zarr.Array:
        """One of the arrays of the schema."""
        return self.group[name]

    def scratch_array(
        self, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: Any
    ) -> zarr.Array:
        """A new, uncompressed, zero-filled array of one task under ``scratch/``.

        Its name is unique, so concurrent tasks never share one; :meth:`drop_scratch`
        removes it.
        """
        return self.group.create_array(
            f"scratch/{uuid.uuid4().hex}",
            shape=shape,
            chunks=chunks,
            dtype=dtype,
            fill_value=0,
            compressors=None,
        )

    def drop_scratch(self, array: zarr.Array) -> None:
        """Remove an array made by :meth:`scratch_array`, with its data."""
        del self.group[array.path]

    def add_reordered(self, nrow: int, nchan: int, rows_chunk: int, double: bool) -> None:
        """Create the ``reordered/`` arrays (module docstring) if the store lacks them.

        ``nrow`` and ``nchan`` are the selection's rows and input channels, ``rows_chunk`` the
        rows of a read chunk (each chunk the grid stage reads then fills whole Zarr chunks),
        ``double`` the precision of the visibilities. ``done`` is created last: a creation cut
        short is made again.
        """
        if "reordered/done" in self.group:
            return
        if "reordered" in self.group:
            del self.group["reordered"]
        complex_, real = ("complex128", "float64") if double else ("complex64", "float32")
        rows = max(1, min(rows_chunk, nrow))
        columns = {"shape": (nrow, nchan), "chunks": (rows, 1), "compressors": None}
        self.group.create_array("reordered/vis", dtype=complex_, fill_value=0, **columns)
        self.group.create_array("reordered/weight", dtype=real, fill_value=0, **columns)
        self.group.create_array(
            "reordered/uvw", shape=(nrow, 3), chunks=(rows, 3), dtype="float64",
            fill_value=0.0, compressors=None,
        )  # fmt: skip
        self.group.create_array("reordered/uvw_done", shape=(1,), dtype="int8", fill_value=0)
        nchan_out = self.group["sumwt"].shape[0]
        self.group.create_array(
            "reordered/done", shape=(nchan_out,), chunks=(1,), dtype="int8", fill_value=0
        )

    @property
    def has_reordered(self) -> bool:
        """Whether the store holds the ``reordered/`` arrays (written or not)."""
        return "reordered/done" in self.group

    def drop_reordered(self) -> bool:
        """Remove the ``reordered/`` arrays with their data; returns whether there were any."""
        if "reordered" not in self.group:
            return False
        del self.group["reordered"]
        return True

    def clear_scratch(self) -> int:
        """Remove every array under ``scratch/`` (those a killed run's tasks left), when no
        task of this store is running; returns how many were removed."""
        if "scratch" not in self.group:
            return 0
        left = list(self.group["scratch"].array_keys())
        del self.group["scratch"]
        return len(left)

    def plane_sum(self, name: str, chan: int) -> float:
        """Sum of channel ``chan``'s plane of an image array, in float64, a tile row at a time
        (a plane is never read whole)."""
        arr, t = self.group[name], self.tile
        return sum(
            float(np.sum(arr[chan, y0 : y0 + t], dtype=np.float64))
            for y0 in range(0, arr.shape[1], t)
        )

    def channel_gridded(self, chan: int) -> bool:
        """True when every tile of an output channel has its dirty image written."""
        return bool(np.all(self.group["gridded"][chan] == 1))

    def mark_gridded(self, chan: int, ty: slice, tx: slice) -> None:
        """Record tiles as gridded (call after their dirty data is written)."""
        self.group["gridded"][chan, ty, tx] = 1

    def record_run(self, summary: dict[str, Any]) -> None:
        """Append one invocation's JSON-able summary to the ``runs`` attribute."""
        runs = list(self.group.attrs.get("runs", []))
        self.group.attrs["runs"] = [*runs, summary]

    def update_stats(self, **counts: int) -> None:
        """Add to the counters kept in the ``stats`` attribute."""
        stats = dict(self.group.attrs.get("stats", {}))
        for key, value in counts.items():
            stats[key] = int(stats.get(key, 0)) + int(value)
        self.group.attrs["stats"] = stats
