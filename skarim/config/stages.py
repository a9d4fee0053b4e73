"""The typed configuration of each stage: one frozen pydantic model per stage.

Units live in field names (``cell_rad``); every choice is an ``Enum`` validated when the
config is built, the error naming the allowed set.
"""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

__all__ = [
    "Weighting",
    "Device",
    "Precision",
    "ReadConfig",
    "GridConfig",
    "DeconvConfig",
    "OutputConfig",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Weighting(StrEnum):
    """Visibility weighting schemes (as in WSClean and CASA)."""

    natural = "natural"
    uniform = "uniform"
    briggs = "briggs"


class Device(StrEnum):
    """Where the RIM runs: ``auto`` takes CUDA when present."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(StrEnum):
    """Arithmetic of the RIM's convolutions: ``auto`` takes bfloat16 where the CPU has it."""

    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"


class ReadConfig(_Frozen):
    """What to read from the Measurement Set.

    Attributes
    ----------
    ms : Path
        The Measurement Set directory.
    data_column : str or None
        Visibility column (``DATA``, ``CORRECTED_DATA``, ``MODEL_DATA``...); None takes
        WSClean's default: CORRECTED_DATA when the Measurement Set has it, else DATA.
    field : str
        FIELD id (as text) or name.
    spw : int
        SPECTRAL_WINDOW id.
    chan_start, chan_stop : int, int or None
        Channel range ``[chan_start, chan_stop)`` within the spectral window.
    chunk_mb : int
        Size of a row chunk, MiB: the bytes of whole data, FLAG and weight cells (all
        channels and correlations of the spectral window) plus UVW and FLAG_ROW that one
        chunk reads; the rows per chunk follow from it (:func:`skarim.io.ms_read.rows_per_chunk`).
        It bounds the memory of the read stage: at its peak, while a chunk is read, the
        Stokes I arrays of the previous one (about 0.4 of its size with 4 correlations) are
        still held.
    chunk_rows : int or None
        Rows read at a time, overriding ``chunk_mb`` (for tests); None derives them from
        ``chunk_mb``.
    reorder : bool or None
        Keep the selection's Stokes I and imaging weights in the run's store, by input
        channel, so that each exact residual reads them instead of the Measurement Set
        (WSClean's ``-reorder`` / ``-no-reorder``; :mod:`skarim.imaging.reorder`). None, as
        WSClean, reorders in channel imaging mode: when deconvolving more than one output
        channel (:attr:`skarim.config.run.RunConfig.reorders`).
    """

    ms: Path
    data_column: str | None = None
    field: str = "0"
    spw: int = 0
    chan_start: int = 0
    chan_stop: int | None = None
    chunk_mb: int = 256
    chunk_rows: int | None = None
    reorder: bool | None = None

    @field_validator("chunk_mb", "chunk_rows")
    @classmethod
    def _positive_chunk(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("chunk sizes must be >= 1")
        return v


class GridConfig(_Frozen):
    """Image geometry, weighting and gridding accuracy.

    Attributes
    ----------
    npix_x, npix_y : int
        Image size in pixels; even and at least 32, any multiple of 2 (the last tile of a
        row or column is partial when ``tile`` does not divide the size).
    cell_rad : float
        Pixel size in radians; WSClean's default ``-scale``, 0.01 degrees.
    weighting : Weighting
        natural, uniform (WSClean's default) or briggs.
    robust : float
        Briggs robustness in [-2, 2] (ignored unless ``weighting`` is briggs).
    taper_gaussian_rad : float
        Image-plane FWHM of a Gaussian taper of the weights, radians; 0: none (WSClean
        ``-taper-gaussian``, :mod:`skarim.imaging.taper`).
    min_uv_lambda, max_uv_lambda : float
        uv distance limits of the weights, wavelengths; 0: none (``-minuv-l``, ``-maxuv-l``).
    channels_out : int
        Output channels; input channels are split into this many equal groups.
    tile : int
        Tile side in pixels: the unit of storage, scheduling and deconvolution; edge tiles
        are cut to the image.
    epsilon : float
        ducc0 gridding accuracy: 1e-4 is WSClean's ``-wgridder-accuracy`` default
        (docs/benchmarks.md compares it with 1e-5).
    double_precision : bool
        Grid in float64 (tests against a direct DFT); float32 otherwise.
    facet_pix : int
        Largest side, in pixels, gridded by one ducc0 call; a facet is a block of whole
        tiles, so memory per task follows this number, not the image size.
    memory_budget_mb : int
        MiB allowed for the float64 accumulators of the output channels gridded together
        in one read of the Measurement Set (per channel: a facet image, the PSF and the
        weight grid); :func:`skarim.imaging.plan.groups_per_batch` turns it into a channel count.
        The read chunk (``ReadConfig.chunk_mb``) and ducc0's working memory come on top.
    """

    npix_x: int
    npix_y: int
    cell_rad: float = math.radians(0.01)
    weighting: Weighting = Weighting.uniform
    robust: float = 0.0
    taper_gaussian_rad: float = 0.0
    min_uv_lambda: float = 0.0
    max_uv_lambda: float = 0.0
    channels_out: int = 1
    tile: int = 256
    epsilon: float = 1e-4
    double_precision: bool = False
    facet_pix: int = 8192
    memory_budget_mb: int = 2048

    @model_validator(mode="before")
    @classmethod
    def _tile_fits_image(cls, data: Any) -> Any:
        if isinstance(data, dict) and "tile" not in data:
            sizes = [data.get(k) for k in ("npix_x", "npix_y") if isinstance(data.get(k), int)]
            if sizes and min(sizes) < 256:
                data = {**data, "tile": min(sizes)}
        return data

    @model_validator(mode="after")
    def _check(self) -> GridConfig:
        for name, n in (("npix_x", self.npix_x), ("npix_y", self.npix_y)):
            if n < 32 or n % 2:
                raise ValueError(f"image size {name}={n} must be even and at least 32")
        if not (self.cell_rad > 0 and math.isfinite(self.cell_rad)):
            raise ValueError(f"pixel scale must be positive, got {self.cell_rad} rad")
        if not -2 <= self.robust <= 2:
            raise ValueError(
                f"briggs robustness must lie in [-2, 2] (-2: about uniform, 2: about natural), "
                f"got {self.robust}"
            )
        if self.channels_out < 1:
            raise ValueError("channels_out must be >= 1")
        if min(self.taper_gaussian_rad, self.min_uv_lambda, self.max_uv_lambda) < 0:
            raise ValueError("the Gaussian taper and the uv limits must be >= 0 (0: none)")
        if 0 < self.max_uv_lambda <= self.min_uv_lambda:
            raise ValueError(
                f"maxuv-l {self.max_uv_lambda} must exceed minuv-l {self.min_uv_lambda}"
            )
        if self.tile < 32 or self.tile % 2:
            raise ValueError(f"tile={self.tile} must be even and at least 32")
        if self.facet_pix < self.tile:
            raise ValueError("facet_pix must be at least one tile")
        if self.memory_budget_mb < 1:
            raise ValueError("memory_budget_mb must be >= 1")
        return self

    @property
    def ntile_x(self) -> int:
        """Number of tiles along x (RA), the last one partial when ``tile`` does not divide."""
        return -(-self.npix_x // self.tile)

    @property
    def ntile_y(self) -> int:
        """Number of tiles along y (Dec), the last one partial when ``tile`` does not divide."""
        return -(-self.npix_y // self.tile)


class DeconvConfig(_Frozen):
    """RIM deconvolution and major cycles.

    Attributes
    ----------
    major_cycles : int
        Exact major cycles of the RIM (predict with ducc0, subtract, re-image).
    weights : Path or None
        RIM weights file; None takes the weights shipped in the package. A network of
        ``K > 1`` spectral terms deconvolves joined channels only, with
        ``fit_spectral_pol = K``.
    device : Device
        cpu, cuda or auto.
    margin : int
        Halo in pixels read from neighbouring tiles around each tile.
    batch_tiles : int
        Tiles read, deconvolved and written together; a GPU runs them through the RIM at
        once, the CPU one after another (faster there: the activations stay in cache).
    prune_sigma : float
        After the RIM's last cycle of a channel, model pixels where the restored image (the
        model smoothed to the beam plus the exact residual) is below this many times the
        residual's robust noise are zeroed (flux the RIM put where the data hold none; a
        CLEAN threshold's counterpart) and the exact residual is recomputed; 0 keeps the
        model as the RIM left it.
    skip_sigma : float
        A RIM pass leaves a tile's model as it is when the residual in the tile stays below
        this many times the noise (absolute value): nothing there that the pruning would
        keep. Empty tiles cost no RIM time, and the RIM puts no spurious flux in them. 0
        runs the RIM on every tile.
    precision : Precision
        Arithmetic of the RIM's convolutions: ``float32``; ``bfloat16`` (the layers' weights,
        activations and hidden states; the estimate, the operator and the FFTs stay
        float32); ``auto`` takes bfloat16 on a CPU
        with native bfloat16 (AVX512-BF16 or AMX), float32 elsewhere (GPUs included).
    converged_ratio : float
        A channel's cycles of a phase (the RIM's, then the polish's) end early once its
        exact residual looks like noise: its RMS at most this many times its robust (MAD)
        noise. Another pass could only fit noise (a CLEAN threshold's counterpart). 0 runs
        every cycle.
    polish_cycles : int
        Exact major cycles after the RIM's (and the pruning), each of Hogbom CLEAN minor
        iterations on every tile window of the residual, signed, down to ``polish_sigma``
        noise, then an exact residual: CLEAN takes up the last per cent the RIM leaves
        (docs/design.md section 7). 0 keeps the RIM's pruned model.
    polish_sigma : float
        Where the polish's minor iterations stop, in units of the residual's robust noise.
    polish_gain : float
        Loop gain of the polish's minor iterations.
    fits_mask : Path or None
        FITS mask (WSClean's ``-fits-mask``): the RIM and the polish put flux only where it
        is non-zero (:mod:`skarim.io.mask`); tiles wholly outside it are skipped.
    auto_mask : bool
        After the RIM's phase, the polish works only where the restored image reached
        ``prune_sigma`` noise (the pixels the pruning kept): WSClean's ``-auto-mask N`` is
        ``prune_sigma = N`` with this.
    local_rms : bool
        Thresholds (the RIM's skip rule and noise input, the polish's stop, the pruning)
        against the residual's robust noise around each tile, over a box of
        ``local_rms_window`` beams (at least the tile's window), instead of the channel's
        (WSClean's ``-local-rms``).
    local_rms_window : float
        Side of the local noise box, in synthesised beams (WSClean's ``-local-rms-window``).
    join_channels : bool
        Deconvolve all output channels of a tile together (WSClean's ``-join-channels``):
        the RIM finds the windows' MFS model (a one-term network from the channels' mean
        residual, a network of ``fit_spectral_pol`` terms from every channel with its own
        PSF) and every channel's model is a spectrum fitted to all channels' residuals
        around it;
        the polish cleans the MFS residual's peaks with fitted spectra; the major cycles
        accept or refuse all channels together (:mod:`skarim.deconv.joined`).
    fit_spectral_pol : int
        With ``join_channels``, the channels' models are polynomials of this many terms in
        frequency at every pixel (WSClean's ``-fit-spectral-pol``; 2 is a straight line);
        0 leaves each channel's value free.
    deconvolution_channels : int
        With ``join_channels``, the output channels are averaged into this many
        deconvolution channels, and each output channel's model is the
        ``fit_spectral_pol`` polynomial fitted over them (WSClean's
        ``-deconvolution-channels``): the passes' cost and memory follow this number, not
        the output channels'. 0 deconvolves every output channel.
    spectral_iterations : int
        Conjugate-gradient iterations of each joined RIM pass's spectral fit (fewer fit
        less noise).
    """

    major_cycles: int = 3
    weights: Path | None = None
    device: Device = Device.auto
    margin: int = 24
    batch_tiles: int = 4
    prune_sigma: float = 5.0
    skip_sigma: float = 8.0
    precision: Precision = Precision.auto
    converged_ratio: float = 1.05
    polish_cycles: int = 2
    polish_sigma: float = 3.0
    polish_gain: float = 0.1
    fits_mask: Path | None = None
    auto_mask: bool = False
    local_rms: bool = False
    local_rms_window: float = 25.0
    join_channels: bool = False
    fit_spectral_pol: int = 0
    deconvolution_channels: int = 0
    spectral_iterations: int = 10

    @property
    def total_cycles(self) -> int:
        """The RIM's major cycles and the polish's, in that order."""
        return self.major_cycles + self.polish_cycles

    @model_validator(mode="after")
    def _check(self) -> DeconvConfig:
        if self.major_cycles < 1:
            raise ValueError("major_cycles must be >= 1 (use --dirty-only for no deconvolution)")
        if self.prune_sigma < 0 or self.skip_sigma < 0 or self.converged_ratio < 0:
            raise ValueError("prune_sigma, skip_sigma and converged_ratio must be >= 0")
        if self.polish_cycles < 0 or self.polish_sigma <= 0 or not 0 < self.polish_gain <= 1:
            raise ValueError("polish_cycles must be >= 0, polish_sigma > 0, 0 < polish_gain <= 1")
        if self.margin < 0 or self.batch_tiles < 1:
            raise ValueError("margin must be >= 0 and batch_tiles >= 1")
        if self.local_rms_window <= 0:
            raise ValueError("local_rms_window must be > 0 (beams)")
        if self.fit_spectral_pol < 0 or self.spectral_iterations < 0:
            raise ValueError("fit_spectral_pol and spectral_iterations must be >= 0")
        if self.deconvolution_channels < 0:
            raise ValueError("deconvolution_channels must be >= 0")
        if (self.fit_spectral_pol or self.deconvolution_channels) and not self.join_channels:
            raise ValueError(
                "--fit-spectral-pol and --deconvolution-channels join channels: add --join-channels"
            )
        if self.deconvolution_channels and not self.fit_spectral_pol:
            raise ValueError(
                "--deconvolution-channels needs --fit-spectral-pol: the output channels' "
                "models are the polynomial fitted over the deconvolution channels"
            )
        if self.auto_mask and self.prune_sigma <= 0:
            raise ValueError("auto_mask needs prune_sigma > 0 (--auto-mask N sets it to N)")
        return self


class OutputConfig(_Frozen):
    """Where products go.

    Attributes
    ----------
    name : str
        Prefix of every product: ``<name>-dirty.fits``, ``<name>.zarr``...
    overwrite : bool
        Replace a Zarr store made from another MS or configuration.
    apply_primary_beam : bool
        Also write the primary beam ``<name>-pb.fits`` and the image corrected for it,
        ``<name>-image-pb.fits`` (WSClean ``-apply-primary-beam``,
        :mod:`skarim.restore.primary_beam`).
    primary_beam_limit : float
        The corrected image is NaN where the beam is below this fraction of its peak
        (WSClean ``-primary-beam-limit``, whose default this is).
    save_source_list : bool
        Also write the model's components as a WSClean-format source list,
        ``<name>-sources.txt`` (WSClean ``-save-source-list``).
    spectral_index_sigma : float
        The spectral-index map ``<name>-alpha.fits`` (of a run of several output channels)
        is NaN where the MFS model smoothed to the restoring beam is below this many times
        the MFS residual's robust noise.
    """

    name: str = "skarim"
    overwrite: bool = False
    apply_primary_beam: bool = False
    primary_beam_limit: float = 0.005
    save_source_list: bool = False
    spectral_index_sigma: float = 5.0

    @field_validator("primary_beam_limit")
    @classmethod
    def _beam_fraction(cls, v: float) -> float:
        if not 0 < v < 1:
            raise ValueError(f"primary_beam_limit must lie in (0, 1), got {v}")
        return v

    @property
    def store_path(self) -> Path:
        """The run's Zarr store."""
        return Path(f"{self.name}.zarr")

    def product_path(self, product: str) -> Path:
        """Path of the FITS cube of one product (``dirty``, ``psf``, ``image``...)."""
        return Path(f"{self.name}-{product}.fits")
