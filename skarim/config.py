"""The typed run configuration: one frozen object per stage, gathered in :class:`RunConfig`.

The configuration is built once (from command-line flags, a YAML file, or both) and passed
down explicitly to every stage. Units live in field names (``cell_rad``); angles given by a
user (``"1.5asec"``, ``"0.2arcmin"``) are parsed with :mod:`astropy.units` at the edge.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any

import astropy.units as u
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from skarim.errors import InputError

__all__ = [
    "Weighting",
    "Device",
    "ReadConfig",
    "GridConfig",
    "DeconvConfig",
    "OutputConfig",
    "RunConfig",
    "parse_angle_rad",
    "load_run_config",
]

_WSCLEAN_UNITS = {"asec": "arcsec", "amin": "arcmin"}
_FLAG_OF_FIELD = {"grid.npix_x": "--size", "grid.npix_y": "--size", "grid.cell_rad": "--scale"}


def parse_angle_rad(text: str | float) -> float:
    """Parse an angle with units into radians.

    Parameters
    ----------
    text : str or float
        ``"1.5asec"``, ``"1.5 arcsec"``, ``"0.01deg"``, ``"2amin"`` (WSClean spellings are
        accepted), or a bare number, which is taken as degrees as in WSClean.

    Returns
    -------
    float
        The angle in radians.

    Raises
    ------
    InputError
        If the text is not an angle.
    """
    if isinstance(text, int | float):
        return float(u.Quantity(float(text), u.deg).to_value(u.rad))
    s = str(text).strip()
    match = re.fullmatch(r"([-+0-9.eE]+)\s*([A-Za-z]*)", s)
    if match is None:
        raise InputError(f"cannot parse angle {text!r}: give a number and a unit, e.g. 1.5asec")
    value, unit = match.groups()
    unit = _WSCLEAN_UNITS.get(unit, unit) or "deg"
    try:
        q = u.Quantity(float(value), u.Unit(unit))
        return float(q.to_value(u.rad))
    except (ValueError, u.UnitsError, TypeError) as exc:
        raise InputError(f"cannot parse angle {text!r}: {exc}") from None


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


class ReadConfig(_Frozen):
    """What to read from the Measurement Set.

    Attributes
    ----------
    ms : Path
        The Measurement Set directory.
    data_column : str
        Visibility column (``DATA``, ``CORRECTED_DATA``, ``MODEL_DATA``...).
    field : str
        FIELD id (as text) or name.
    spw : int
        SPECTRAL_WINDOW id.
    chan_start, chan_stop : int, int or None
        Channel range ``[chan_start, chan_stop)`` within the spectral window.
    chunk_rows : int
        Rows read at a time: bounds the memory of the read stage.
    """

    ms: Path
    data_column: str = "DATA"
    field: str = "0"
    spw: int = 0
    chan_start: int = 0
    chan_stop: int | None = None
    chunk_rows: int = 100_000

    @field_validator("chunk_rows")
    @classmethod
    def _positive_chunk(cls, v: int) -> int:
        if v < 1:
            raise ValueError("chunk_rows must be >= 1")
        return v


class GridConfig(_Frozen):
    """Image geometry, weighting and gridding accuracy.

    Attributes
    ----------
    npix_x, npix_y : int
        Image size in pixels; even, at least 32, multiples of ``tile``.
    cell_rad : float
        Pixel size in radians.
    weighting : Weighting
        natural, uniform or briggs.
    robust : float
        Briggs robustness (ignored unless ``weighting`` is briggs).
    channels_out : int
        Output channels; input channels are split into this many equal groups.
    tile : int
        Tile side in pixels: the unit of storage, scheduling and deconvolution.
    epsilon : float
        ducc0 gridding accuracy.
    double_precision : bool
        Grid in float64 (tests against a direct DFT); float32 otherwise.
    nthreads : int
        Threads handed to ducc0.
    facet_pix : int
        Largest side, in pixels, gridded by one ducc0 call; a facet is a block of whole
        tiles, so memory per task follows this number, not the image size.
    """

    npix_x: int
    npix_y: int
    cell_rad: float
    weighting: Weighting = Weighting.briggs
    robust: float = 0.0
    channels_out: int = 1
    tile: int = 256
    epsilon: float = 1e-5
    double_precision: bool = False
    nthreads: int = 1
    facet_pix: int = 8192

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
        if self.cell_rad <= 0:
            raise ValueError(f"pixel scale must be positive, got {self.cell_rad} rad")
        if self.channels_out < 1:
            raise ValueError("channels_out must be >= 1")
        if self.tile < 32 or self.tile % 2:
            raise ValueError(f"tile={self.tile} must be even and at least 32")
        if self.npix_x % self.tile or self.npix_y % self.tile:
            raise ValueError(
                f"image size {self.npix_x}x{self.npix_y} is not a multiple of the tile size "
                f"{self.tile}: choose --tile dividing the size (e.g. --tile {_gcd_tile(self)})"
            )
        if self.facet_pix < self.tile:
            raise ValueError("facet_pix must be at least one tile")
        return self

    @property
    def ntile_x(self) -> int:
        """Number of tiles along x (RA)."""
        return self.npix_x // self.tile

    @property
    def ntile_y(self) -> int:
        """Number of tiles along y (Dec)."""
        return self.npix_y // self.tile


def _gcd_tile(cfg: GridConfig) -> int:
    from math import gcd

    g = gcd(cfg.npix_x, cfg.npix_y)
    for t in (512, 256, 128, 64, 32):
        if g % t == 0:
            return t
    return g


class DeconvConfig(_Frozen):
    """RIM deconvolution and major cycles.

    Attributes
    ----------
    major_cycles : int
        Number of exact major cycles (predict with ducc0, subtract, re-image).
    weights : Path or None
        RIM weights file; None takes the weights shipped in the package.
    device : Device
        cpu, cuda or auto.
    margin : int
        Halo in pixels read from neighbouring tiles around each tile.
    batch_tiles : int
        Tiles the RIM processes at once.
    """

    major_cycles: int = 3
    weights: Path | None = None
    device: Device = Device.auto
    margin: int = 32
    batch_tiles: int = 4

    @model_validator(mode="after")
    def _check(self) -> DeconvConfig:
        if self.major_cycles < 1:
            raise ValueError("major_cycles must be >= 1 (use --dirty-only for no deconvolution)")
        if self.margin < 0 or self.batch_tiles < 1:
            raise ValueError("margin must be >= 0 and batch_tiles >= 1")
        return self


class OutputConfig(_Frozen):
    """Where products go.

    Attributes
    ----------
    name : str
        Prefix of every product: ``<name>-dirty.fits``, ``<name>.zarr``...
    overwrite : bool
        Replace a Zarr store made from another MS or configuration.
    """

    name: str = "skarim"
    overwrite: bool = False

    @property
    def store_path(self) -> Path:
        """The run's Zarr store."""
        return Path(f"{self.name}.zarr")

    def product_path(self, product: str) -> Path:
        """Path of the FITS cube of one product (``dirty``, ``psf``, ``image``...)."""
        return Path(f"{self.name}-{product}.fits")


class RunConfig(_Frozen):
    """Everything one imaging run needs, built once and passed down."""

    read: ReadConfig
    grid: GridConfig
    deconv: DeconvConfig = DeconvConfig()
    output: OutputConfig = OutputConfig()
    dirty_only: bool = False

    def fingerprint_dict(self) -> dict[str, Any]:
        """The parts of the config that decide the store's contents (JSON-able)."""
        return {
            "read": self.read.model_dump(mode="json", exclude={"chunk_rows"}),
            "grid": self.grid.model_dump(mode="json", exclude={"nthreads", "facet_pix"}),
            "deconv": self.deconv.model_dump(mode="json", include={"weights", "margin"}),
        }


def load_run_config(yaml_path: Path | None, overrides: dict[str, dict[str, Any]]) -> RunConfig:
    """Build the run configuration from an optional YAML file and flag overrides.

    Parameters
    ----------
    yaml_path : Path or None
        YAML file with sections ``read``, ``grid``, ``deconv``, ``output`` and the key
        ``dirty_only``; angles may carry units (``cell: 1.5asec``).
    overrides : dict
        Section name to field values given on the command line; they win over the file.

    Returns
    -------
    RunConfig

    Raises
    ------
    InputError
        If the file cannot be read or a value is invalid; the message names the field.
    """
    data: dict[str, Any] = {}
    if yaml_path is not None:
        try:
            loaded = yaml.safe_load(Path(yaml_path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"cannot read config {yaml_path}: {exc}") from None
        if not isinstance(loaded, dict):
            raise InputError(f"config {yaml_path} is not a mapping of sections")
        data = loaded
    merged: dict[str, Any] = {}
    for key in ("read", "grid", "deconv", "output"):
        section = dict(data.get(key) or {})
        section.update({k: v for k, v in overrides.get(key, {}).items() if v is not None})
        if key == "grid" and "cell" in section:
            section["cell_rad"] = parse_angle_rad(section.pop("cell"))
        merged[key] = section
    unknown = set(data) - {"read", "grid", "deconv", "output", "dirty_only"}
    if unknown:
        raise InputError(f"unknown config section(s): {', '.join(sorted(unknown))}")
    dirty_only = overrides.get("run", {}).get("dirty_only")
    merged["dirty_only"] = bool(data.get("dirty_only", False)) if dirty_only is None else dirty_only
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "missing":
            flag = _FLAG_OF_FIELD.get(where, where)
            raise InputError(
                f"missing {flag}: give it on the command line or in the config"
            ) from None
        msg = err["msg"].removeprefix("Value error, ")
        raise InputError(f"invalid configuration {where}: {msg}" if where else msg) from None
