"""The model's components as a WSClean source list: ``<name>-sources.txt``.

Written with ``--save-source-list`` (:attr:`skarim.config.OutputConfig.save_source_list`) in
the text format WSClean 2.4 and later write (its ``-save-source-list``; the format of DP3's
sky models), comma-separated, one component a line after WSClean's header line
(:data:`FORMAT`: ``Format = Name, Type, Ra, Dec, I, SpectralIndex, LogarithmicSI,
ReferenceFrequency='<ref>', MajorAxis, MinorAxis, Orientation``)::

    s0c0,POINT,08:28:05.152,+39.35.08.511,0.0123,[-0.0086,0.0012],false,1300000000.0,,,

- one ``POINT`` component per pixel whose model is non-zero in a channel holding data
  (``sumwt > 0``), named ``s0c<n>`` in the order of the image's rows (WSClean's names: scale
  0, component ``n``); a model pixel holds Jy, so it is the component's flux;
- ``Ra`` as ``hh:mm:ss.sss`` and ``Dec`` as ``+dd.mm.ss.sss`` (the pixel's centre through the
  store's WCS, :meth:`skarim.io.wcs.ImageWCS.celestial`, FK5 J2000, rounded to a millisecond of
  time and a milliarcsecond); WSClean writes the same fields, without the ``+`` and with
  trailing zeros of the fraction left out, which its readers and DP3 parse alike;
- the spectrum an ordinary polynomial (``LogarithmicSI = false``) in ``freq / ref - 1``::

      S(freq) = I + sum_k SpectralIndex[k-1] (freq / ref - 1)^k,  k = 1 .. K - 1,

  fitted to the pixel's per-channel model values by least squares weighted with the
  channels' sums of weights, over the channels holding data. ``K`` is
  :attr:`~skarim.config.DeconvConfig.fit_spectral_pol` for a joined run fitted with ``K > 0``
  terms (the model then is such a polynomial, and the fit gives it back) and 2 otherwise (a
  straight line), at most the number of channels holding data. ``ref`` is WSClean's: the
  centre of the band the channels span, the MFS products' frequency
  (:func:`skarim.restore.products.mfs_wcs`);
- numbers as WSClean writes them, 15 significant digits (``ref`` rounded so before the fit).

The list is streamed: the model is read one tile row of all channels holding data at a time,
and the lines are written as they are made, to a temporary file renamed into place
(:func:`skarim.io.atomic.atomic_path`). Memory follows the tile, the image's width and the
number of channels. :func:`read_source_list` reads such a list back (WSClean's own included).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from skarim.config import RunConfig
from skarim.errors import InputError
from skarim.io.atomic import atomic_path
from skarim.io.store import RunStore
from skarim.restore.spectral_index import SpectralChannels

__all__ = ["FORMAT", "SourceComponent", "spectral_terms", "write_source_list", "read_source_list"]

log = logging.getLogger("skarim")

FORMAT = (
    "Format = Name, Type, Ra, Dec, I, SpectralIndex, LogarithmicSI, "
    "ReferenceFrequency='{ref}', MajorAxis, MinorAxis, Orientation"
)
"""WSClean's header line; ``{ref}`` the reference frequency, Hz."""

_MS_PER_HOUR = 3_600_000
_MAS_PER_DEG = 3_600_000


@dataclass(frozen=True)
class SourceComponent:
    """One line of a source list.

    Attributes
    ----------
    name : str
        Component name (``s0c0``).
    kind : str
        ``POINT`` or ``GAUSSIAN``.
    ra_rad, dec_rad : float
        Position, radians (the list's frame: FK5 J2000 for skarim's and WSClean's).
    flux_jy : float
        Stokes I at the reference frequency, Jy.
    spectral_terms : tuple of float
        The polynomial's terms after ``I`` (``SpectralIndex``).
    log_si : bool
        True for a logarithmic polynomial (``LogarithmicSI``).
    ref_freq_hz : float
        Reference frequency, Hz.
    major_arcsec, minor_arcsec, orientation_deg : float or None
        A Gaussian's shape; None for a point.
    """

    name: str
    kind: str
    ra_rad: float
    dec_rad: float
    flux_jy: float
    spectral_terms: tuple[float, ...]
    log_si: bool
    ref_freq_hz: float
    major_arcsec: float | None = None
    minor_arcsec: float | None = None
    orientation_deg: float | None = None

    def flux_jy_at(self, freq_hz: float | np.ndarray) -> float | np.ndarray:
        """Stokes I at ``freq_hz``, Jy: the ordinary polynomial of the module docstring.

        Raises
        ------
        InputError
            For a logarithmic polynomial, which skarim does not evaluate.
        """
        if self.log_si:
            raise InputError(f"component {self.name}: a logarithmic spectrum is not evaluated")
        t = np.asarray(freq_hz, dtype=np.float64) / self.ref_freq_hz - 1.0
        return self.flux_jy + sum(c * t ** (k + 1) for k, c in enumerate(self.spectral_terms))


def spectral_terms(cfg: RunConfig, n_chans: int) -> int:
    """Terms of the fitted polynomial, ``I`` included: ``fit_spectral_pol`` of a joined run
    fitted with some, else 2 (a straight line); at most ``n_chans``."""
    d = cfg.deconv
    terms = d.fit_spectral_pol if d.join_channels and d.fit_spectral_pol > 0 else 2
    return max(1, min(terms, n_chans))


def write_source_list(
    store: RunStore, cfg: RunConfig, spectrum: SpectralChannels, ref_hz: float
) -> Path:
    """Write ``<name>-sources.txt`` (module docstring).

    Parameters
    ----------
    store : RunStore
        The run's store (``model``).
    cfg : RunConfig
        The run: the file's name and the spectral fit.
    spectrum : SpectralChannels
        The channels and their weights.
    ref_hz : float
        The reference frequency, Hz.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    InputError
        If no channel holds data, a model pixel is NaN or infinite (the list is then not
        written), or the file cannot be written.
    """
    chans = spectrum.chans
    if not chans:
        raise InputError("no output channel has data: the model has no components")
    ref_hz = float(_number(ref_hz))
    a = spectrum.weights[list(chans)]  # (C,)
    basis = (spectrum.freq_hz[list(chans)] / ref_hz - 1.0)[:, None] ** np.arange(
        spectral_terms(cfg, len(chans))
    )  # (C, K)
    fit = np.linalg.pinv(basis * np.sqrt(a)[:, None]) * np.sqrt(a)[None, :]  # (K, C)
    path = Path(f"{cfg.output.name}-sources.txt")
    with atomic_path(path, "source list") as tmp, tmp.open("w", encoding="ascii") as out:
        out.write(FORMAT.format(ref=_number(ref_hz)) + "\n")
        count = 0
        for y0 in range(0, store.wcs.npix_y, store.tile):
            count += _write_band(out, store, chans, fit, ref_hz, y0, count)
    log.info("wrote %s (%d components)", path, count)
    return path


def _write_band(
    out: TextIO,
    store: RunStore,
    chans: tuple[int, ...],
    fit: np.ndarray,
    ref_hz: float,
    y0: int,
    count: int,
) -> int:
    """Write the components of one tile row, numbered from ``count``; return how many."""
    wcs = store.wcs
    y1 = min(y0 + store.tile, wcs.npix_y)
    model = store.array("model")
    cube = np.stack([model[c, y0:y1] for c in chans])  # (C, rows, nx)
    if not np.all(np.isfinite(cube)):
        raise InputError(f"the model has NaN or infinite pixels in rows {y0}-{y1 - 1}")
    ys, xs = np.nonzero(np.any(cube != 0, axis=0))  # (n,) each
    if ys.size == 0:
        return 0
    coef = fit @ cube[:, ys, xs].astype(np.float64)  # (K, n)
    ra_deg, dec_deg = wcs.celestial().wcs_pix2world(xs, ys + y0, 0)  # (n,) each
    ref = _number(ref_hz)
    for i in range(ys.size):
        terms = ",".join(_number(t) for t in coef[1:, i])
        out.write(
            f"s0c{count + i},POINT,{_ra_string(ra_deg[i])},{_dec_string(dec_deg[i])},"
            f"{_number(coef[0, i])},[{terms}],false,{ref},,,\n"
        )
    return int(ys.size)


def _number(value: float) -> str:
    """A number as WSClean writes it: 15 significant digits."""
    return f"{float(value):.15g}"


def _ra_string(ra_deg: float) -> str:
    """``hh:mm:ss.sss``, rounded to a millisecond of time."""
    ms = round((ra_deg % 360.0) / 15.0 * _MS_PER_HOUR) % (24 * _MS_PER_HOUR)
    h, ms = divmod(ms, _MS_PER_HOUR)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _dec_string(dec_deg: float) -> str:
    """``+dd.mm.ss.sss``, rounded to a milliarcsecond."""
    total = round(abs(dec_deg) * _MAS_PER_DEG)
    sign = "-" if dec_deg < 0 and total > 0 else "+"
    d, mas = divmod(total, _MAS_PER_DEG)
    m, mas = divmod(mas, 60_000)
    s, mas = divmod(mas, 1000)
    return f"{sign}{d:02d}.{m:02d}.{s:02d}.{mas:03d}"


def read_source_list(path: Path) -> list[SourceComponent]:
    """Read a WSClean-format source list (this module's, or WSClean's ``-save-source-list``).

    Parameters
    ----------
    path : pathlib.Path
        The text file: a ``Format = ...`` line naming the columns (a column's default as
        ``Name='value'``), then one component a line; blank lines and ``#`` comments skipped.

    Returns
    -------
    list of SourceComponent
        The components, in the file's order.

    Raises
    ------
    InputError
        If the file cannot be read, or a line does not parse (the message names the line).
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read source list {path}: {exc}") from exc
    columns: dict[str, int] = {}
    defaults: dict[str, str] = {}
    rows = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not columns:
            columns, defaults = _format_line(text, f"{path}:{number}")
            continue
        rows.append(_component(text, columns, defaults, f"{path}:{number}"))
    if not columns:
        raise InputError(f"{path}: no 'Format = ...' line")
    return rows


def _format_line(text: str, where: str) -> tuple[dict[str, int], dict[str, str]]:
    """Column name (lower case) to index, and the defaults the line gives."""
    key, sep, names = text.partition("=")
    if key.strip().lower() != "format" or not sep:
        raise InputError(f"{where}: expected 'Format = Name, Type, Ra, Dec, I, ...'")
    columns, defaults = {}, {}
    for index, field in enumerate(_split(names)):
        name, _, default = field.partition("=")
        columns[name.strip().lower()] = index
        if default:
            defaults[name.strip().lower()] = default.strip().strip("'\"")
    missing = {"name", "type", "ra", "dec", "i"} - columns.keys()
    if missing:
        raise InputError(f"{where}: the format lacks column(s) {sorted(missing)}")
    return columns, defaults


def _component(
    text: str, columns: dict[str, int], defaults: dict[str, str], where: str
) -> SourceComponent:
    """One component line, parsed by the format's columns."""
    fields = _split(text)

    def get(name: str, fallback: str = "") -> str:
        index = columns.get(name)
        value = fields[index].strip() if index is not None and index < len(fields) else ""
        return value or defaults.get(name, fallback)

    def optional(name: str) -> float | None:
        value = get(name)
        return float(value) if value else None

    try:
        terms = get("spectralindex", "[]").strip("[]")
        return SourceComponent(
            name=get("name"),
            kind=get("type").upper(),
            ra_rad=_parse_sexagesimal(get("ra"), ":", 15.0),
            dec_rad=_parse_sexagesimal(get("dec"), ".", 1.0),
            flux_jy=float(get("i")),
            spectral_terms=tuple(float(t) for t in terms.split(",") if t.strip()),
            log_si=get("logarithmicsi", "false").lower() == "true",
            ref_freq_hz=float(get("referencefrequency", "nan")),
            major_arcsec=optional("majoraxis"),
            minor_arcsec=optional("minoraxis"),
            orientation_deg=optional("orientation"),
        )
    except ValueError as exc:
        raise InputError(f"{where}: cannot parse component {text!r}: {exc}") from exc


def _parse_sexagesimal(text: str, sep: str, deg_per_unit: float) -> float:
    """``[+-]aa<sep>mm<sep>ss.sss`` (``:`` for hours, ``.`` for degrees) to radians."""
    sign = -1.0 if text.startswith("-") else 1.0
    parts = text.lstrip("+-").split(sep, 2)
    if len(parts) != 3:
        raise ValueError(f"{text!r} is not [+-]aa{sep}mm{sep}ss.s")
    units, minutes, seconds = int(parts[0]), int(parts[1]), float(parts[2])
    value = units + minutes / 60.0 + seconds / 3600.0
    return math.radians(sign * value * deg_per_unit)


def _split(text: str) -> list[str]:
    """Comma-separated fields, commas inside ``[...]`` kept."""
    fields, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += (char == "[") - (char == "]")
        if char == "," and depth == 0:
            fields.append(text[start:i])
            start = i + 1
    fields.append(text[start:])
    return fields
