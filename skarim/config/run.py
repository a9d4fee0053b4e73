"""The whole run's configuration: :class:`RunConfig`, built once from flags, YAML or both.

The configuration is passed down explicitly to every stage. Every invalid value, from a flag
or from the file, becomes one :class:`~skarim.errors.InputError` naming the field
(:func:`skarim.errors.input_error`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from skarim.config.cluster import ClusterConfig
from skarim.config.flags import RunFlags
from skarim.config.stages import (
    DeconvConfig,
    GridConfig,
    OutputConfig,
    ReadConfig,
    _Frozen,
)
from skarim.config.units import parse_angle_rad
from skarim.errors import InputError, input_error

__all__ = ["RunConfig", "load_run_config"]

_SECTIONS = ("read", "grid", "deconv", "output", "cluster")
_SWITCHES = ("dirty_only", "make_psf")
_FLAG_OF_FIELD = {"grid.npix_x": "--size", "grid.npix_y": "--size", "grid.cell_rad": "--scale"}


class RunConfig(_Frozen):
    """Everything one imaging run needs, built once and passed down."""

    read: ReadConfig
    grid: GridConfig
    deconv: DeconvConfig = DeconvConfig()
    output: OutputConfig = OutputConfig()
    cluster: ClusterConfig = ClusterConfig()
    dirty_only: bool = False
    make_psf: bool = False

    @property
    def makes_psf(self) -> bool:
        """Whether gridding makes the PSF: always when deconvolving, and with ``make_psf`` for a
        dirty-only run (WSClean grids no PSF with ``-niter 0`` unless given ``-make-psf``)."""
        return self.make_psf or not self.dirty_only

    @property
    def reorders(self) -> bool:
        """Whether the run keeps reordered visibilities (``read.reorder``; None: when it
        deconvolves more than one output channel, as WSClean's channel imaging mode)."""
        if self.read.reorder is not None:
            return self.read.reorder
        return not self.dirty_only and self.grid.channels_out > 1

    @classmethod
    def from_flags(cls, flags: RunFlags, yaml_path: Path | None = None) -> RunConfig:
        """The run of ``skarim image``'s flags, over the YAML file ``yaml_path`` if given.

        Raises
        ------
        InputError
            A flag or a config value that cannot be used, named in one line.
        """
        return load_run_config(yaml_path, flags.overrides())

    def fingerprint_dict(self, weights_sha256: str | None = None) -> dict[str, Any]:
        """The parts of the config that decide the store's contents (JSON-able).

        Cluster settings, thread counts, read chunking and reordering are left out: a run resumed on
        another cluster, or with more threads, is the same run. The RIM's weights are named
        by the digest of the file the run uses (``weights_sha256``,
        :func:`skarim.deconv.weights_id.weights_sha256`), not by its path: the shipped weights
        of two versions differ, and a copied file is the same weights.
        """
        return {
            "read": self.read.model_dump(
                mode="json", exclude={"chunk_mb", "chunk_rows", "reorder"}
            ),
            "grid": self.grid.model_dump(mode="json", exclude={"facet_pix", "memory_budget_mb"}),
            "deconv": {"margin": self.deconv.margin, "weights_sha256": weights_sha256},
        }


def load_run_config(yaml_path: Path | None, overrides: Mapping[str, Any]) -> RunConfig:
    """Build the run configuration from an optional YAML file and flag overrides.

    Parameters
    ----------
    yaml_path : Path or None
        YAML file with sections ``read``, ``grid``, ``deconv``, ``output``, ``cluster`` and the keys
        ``dirty_only`` and ``make_psf``; angles may carry units (``cell: 1.5asec``).
    overrides : mapping
        Section name to field values given on the command line, ``dirty_only`` and
        ``make_psf``; they win
        over the file (None values are not given).

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
        import yaml  # only with a config file: 0.03 s of every run otherwise

        try:
            loaded = yaml.safe_load(Path(yaml_path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"cannot read config {yaml_path}: {exc}") from None
        if not isinstance(loaded, dict):
            raise InputError(f"config {yaml_path} is not a mapping of sections")
        data = loaded
    merged: dict[str, Any] = {}
    for key in _SECTIONS:
        section = dict(data.get(key) or {})
        section.update({k: v for k, v in overrides.get(key, {}).items() if v is not None})
        if key == "grid" and "cell" in section:
            section["cell_rad"] = parse_angle_rad(section.pop("cell"))
        if key == "grid" and "taper_gaussian" in section:  # a bare number in arcsec, as WSClean
            section["taper_gaussian_rad"] = parse_angle_rad(section.pop("taper_gaussian"), "arcsec")
        merged[key] = section
    unknown = set(data) - {*_SECTIONS, *_SWITCHES}
    if unknown:
        raise InputError(f"unknown config section(s): {', '.join(sorted(unknown))}")
    for key in _SWITCHES:
        given = overrides.get(key)
        merged[key] = bool(data.get(key, False)) if given is None else given
    try:
        return RunConfig.model_validate(merged)
    except ValidationError as exc:
        raise input_error(exc, "configuration", _FLAG_OF_FIELD) from None
