"""The typed run configuration: one frozen object per stage, gathered in :class:`RunConfig`.

The configuration is built once (from command-line flags, a YAML file, or both) and passed
down explicitly to every stage. Units live in field names (``cell_rad``); angles given by a
user (``"1.5asec"``, ``"0.2arcmin"``) are parsed with :mod:`astropy.units` at the edge.

- :mod:`skarim.config.stages`: the per-stage configs and their choices;
- :mod:`skarim.config.cluster`: where a run executes (:class:`ClusterConfig`);
- :mod:`skarim.config.run`: :class:`RunConfig`, from YAML and flags;
- :mod:`skarim.config.flags`: :class:`RunFlags`, the flags of ``skarim image``;
- :mod:`skarim.config.units`: angles with units.
"""

from skarim.config.cluster import ClusterConfig, ClusterKind
from skarim.config.flags import RunFlags
from skarim.config.run import RunConfig, load_run_config
from skarim.config.stages import (
    DeconvConfig,
    Device,
    GridConfig,
    OutputConfig,
    Precision,
    ReadConfig,
    Weighting,
)
from skarim.config.units import parse_angle_rad

__all__ = [
    "Weighting",
    "Device",
    "Precision",
    "ReadConfig",
    "GridConfig",
    "DeconvConfig",
    "OutputConfig",
    "ClusterKind",
    "ClusterConfig",
    "RunConfig",
    "RunFlags",
    "parse_angle_rad",
    "load_run_config",
]
