"""The flags of ``skarim image`` as one typed object, parsed from WSClean's spellings.

:class:`RunFlags` holds what the user typed (None where a flag was not given);
:meth:`skarim.config.RunConfig.from_flags` merges it over an optional YAML file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skarim.config.stages import Weighting
from skarim.errors import InputError

__all__ = ["RunFlags", "parse_size", "parse_weight"]


def parse_size(text: str, flag: str = "--size") -> tuple[int, int]:
    """``"1024"``, ``"1024 512"`` or ``"1024x512"`` to ``(x, y)`` pixels.

    Raises
    ------
    InputError
        If the text is not one or two integers.
    """
    parts = re.split(r"[x, ]+", text.strip())
    try:
        values = [int(p) for p in parts if p]
    except ValueError:
        raise InputError(f"{flag} expects one or two integers, got {text!r}") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2:
        raise InputError(f"{flag} expects one or two integers, got {text!r}")
    return values[0], values[1]


def parse_weight(text: str) -> tuple[Weighting, float | None]:
    """``natural``, ``uniform`` or ``briggs R`` (also ``briggs:R``) to a weighting and robust.

    Raises
    ------
    InputError
        If the scheme is unknown or the robustness is not a number.
    """
    parts = text.replace(":", " ").split()
    names = ", ".join(w.value for w in Weighting)
    if not parts or parts[0] not in {w.value for w in Weighting}:
        raise InputError(
            f"unknown weighting {text!r}; choose one of: {names} (briggs takes a robustness)"
        )
    robust = None
    if len(parts) > 1:
        try:
            robust = float(parts[1])
        except ValueError:
            raise InputError(f"briggs robustness must be a number, got {parts[1]!r}") from None
    return Weighting(parts[0]), robust


@dataclass(frozen=True)
class RunFlags:
    """The flags of ``skarim image``; None (or False) where a flag was not given.

    Text flags hold what the user typed (``size="1024 512"``, ``scale="1.5asec"``,
    ``weight="briggs 0"``, ``taper_gaussian="30asec"``, ``channel_range="0 32"``);
    :meth:`overrides` parses them.
    ``scheduler="sync"`` runs in this process; any other value is a scheduler's address.
    ``threads`` is the threads each task hands to ducc0 and torch, under every scheduler.
    """

    ms: Path
    size: str | None = None
    scale: str | None = None
    weight: str | None = None
    taper_gaussian: str | None = None
    minuv_l: float | None = None
    maxuv_l: float | None = None
    channels_out: int | None = None
    tile: int | None = None
    facet_pix: int | None = None
    name: str | None = None
    data_column: str | None = None
    field: str | None = None
    spw: int | None = None
    channel_range: str | None = None
    dirty_only: bool = False
    make_psf: bool = False
    threads: int | None = None
    chunk_rows: int | None = None
    reorder: bool | None = None
    overwrite: bool = False
    apply_primary_beam: bool = False
    primary_beam_limit: float | None = None
    major_cycles: int | None = None
    polish_cycles: int | None = None
    fits_mask: Path | None = None
    auto_mask: float | None = None
    auto_threshold: float | None = None
    local_rms: bool = False
    local_rms_window: float | None = None
    join_channels: bool = False
    fit_spectral_pol: int | None = None
    deconvolution_channels: int | None = None
    save_source_list: bool = False
    weights: Path | None = None
    device: str | None = None
    scheduler: str | None = None
    cluster: str | None = None
    cluster_config: Path | None = None
    workers: int | None = None

    def _thresholds(self) -> dict[str, Any]:
        """WSClean's masking and threshold flags as the deconvolution settings they mean.

        ``--auto-threshold N``: the polish's minor iterations stop at N noise
        (``polish_sigma``). ``--auto-mask N``: the RIM's model is pruned where the restored
        image is below N noise (``prune_sigma``), and the polish works only where it is not
        (``auto_mask``), down to the auto-threshold. The RIM's skip rule (``skip_sigma``)
        is the network's own and stays. ``--fits-mask``, ``--local-rms`` and
        ``--local-rms-window`` keep WSClean's meaning.
        """
        for flag, value in (("--auto-mask", self.auto_mask),
                            ("--auto-threshold", self.auto_threshold),
                            ("--local-rms-window", self.local_rms_window)):  # fmt: skip
            if value is not None and not value > 0:
                raise InputError(f"{flag} must be a positive number, got {value}")
        return {
            "fits_mask": self.fits_mask,
            "polish_sigma": self.auto_threshold,
            "prune_sigma": self.auto_mask,
            "auto_mask": True if self.auto_mask is not None else None,
            "local_rms": self.local_rms or None,
            "local_rms_window": self.local_rms_window,
            "join_channels": self.join_channels or None,
            "fit_spectral_pol": self.fit_spectral_pol,
            "deconvolution_channels": self.deconvolution_channels,
        }

    def overrides(self) -> dict[str, Any]:
        """The flags given, as config sections (``{"grid": {"npix_x": ...}, ...}``).

        Raises
        ------
        InputError
            If a text flag cannot be parsed, or ``--scheduler`` and ``--cluster`` are both
            given.
        """
        if self.scheduler is not None and self.cluster is not None:
            raise InputError(
                "--scheduler and --cluster exclude each other: join or start, not both"
            )
        sync = self.scheduler == "sync"
        grid: dict[str, Any] = {
            "channels_out": self.channels_out,
            "tile": self.tile,
            "facet_pix": self.facet_pix,
            "taper_gaussian": self.taper_gaussian,
            "min_uv_lambda": self.minuv_l,
            "max_uv_lambda": self.maxuv_l,
        }
        if self.size is not None:
            grid["npix_x"], grid["npix_y"] = parse_size(self.size)
        if self.scale is not None:
            grid["cell"] = self.scale
        if self.weight is not None:
            grid["weighting"], grid["robust"] = parse_weight(self.weight)
        read: dict[str, Any] = {
            "ms": self.ms,
            "data_column": self.data_column,
            "field": self.field,
            "spw": self.spw,
            "chunk_rows": self.chunk_rows,
            "reorder": self.reorder,
        }
        if self.channel_range is not None:
            chans = parse_size(self.channel_range, "--channel-range")
            read["chan_start"], read["chan_stop"] = chans
        return {
            "read": read,
            "grid": grid,
            "output": {
                "name": self.name,
                "overwrite": self.overwrite or None,
                "apply_primary_beam": self.apply_primary_beam or None,
                "primary_beam_limit": self.primary_beam_limit,
                "save_source_list": self.save_source_list or None,
            },
            "deconv": {
                "major_cycles": self.major_cycles,
                "polish_cycles": self.polish_cycles,
                "weights": self.weights,
                "device": self.device,
                **self._thresholds(),
            },
            "cluster": {
                "kind": "sync" if sync else self.cluster,
                "scheduler": None if sync else self.scheduler,
                "cluster_config": self.cluster_config,
                "n_workers": self.workers,
                "threads_per_worker": self.threads,
            },
            "dirty_only": self.dirty_only or None,
            "make_psf": self.make_psf or None,
        }
