"""Correlation products of a Measurement Set: casacore codes, names and feed types.

``POLARIZATION.CORR_TYPE`` holds casacore ``Stokes::StokesTypes`` codes
(:data:`CORR_TYPE_NAMES`); a feed's two receptors (:data:`FEED_RECEPTORS`) make four
correlation products (:data:`FEED_CORRELATIONS`), of which the two parallel hands
(:data:`PARALLEL_HANDS`) give Stokes I.

Examples
--------
>>> FEED_CORRELATIONS["linear"], PARALLEL_HANDS["circular"]
(('XX', 'XY', 'YX', 'YY'), ('RR', 'LL'))
>>> CORR_PRODUCT_CODES["RR"], CORR_PRODUCT_CODES["YY"]
(5, 12)
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "CORR_PRODUCT_CODES",
    "CORR_TYPE_NAMES",
    "FEED_CORRELATIONS",
    "FEED_RECEPTORS",
    "PARALLEL_HANDS",
    "feed_type",
    "product_feed",
]

#: casacore ``Stokes::StokesTypes`` codes of ``POLARIZATION.CORR_TYPE``.
CORR_TYPE_NAMES: dict[int, str] = {
    1: "I", 2: "Q", 3: "U", 4: "V",
    5: "RR", 6: "RL", 7: "LR", 8: "LL",
    9: "XX", 10: "XY", 11: "YX", 12: "YY",
}  # fmt: skip

#: The ``CORR_TYPE`` code of each correlation product (a pair of receptors).
CORR_PRODUCT_CODES: dict[str, int] = {
    name: code for code, name in CORR_TYPE_NAMES.items() if len(name) == 2
}

#: The two receptors of each feed type, in ``CORR_PRODUCT`` index order (0, 1).
FEED_RECEPTORS: dict[str, tuple[str, str]] = {"circular": ("R", "L"), "linear": ("X", "Y")}

#: The four correlation products of each feed type, in the order they are written.
FEED_CORRELATIONS: dict[str, tuple[str, ...]] = {
    feed: tuple(a + b for a in receptors for b in receptors)
    for feed, receptors in FEED_RECEPTORS.items()
}

#: The two parallel hands of each feed type, whose mean is Stokes I.
PARALLEL_HANDS: dict[str, tuple[str, str]] = {
    feed: (a + a, b + b) for feed, (a, b) in FEED_RECEPTORS.items()
}


def feed_type(corr_types: Sequence[str]) -> str | None:
    """The feed type whose two parallel hands are both among the correlations.

    Parameters
    ----------
    corr_types : sequence of str
        Correlation names, e.g. ``("XX", "YY", "XY", "YX")``.

    Returns
    -------
    str or None
        ``"circular"`` (RR and LL present), ``"linear"`` (XX and YY present), or None.
    """
    for feed, (hand_a, hand_b) in PARALLEL_HANDS.items():
        if hand_a in corr_types and hand_b in corr_types:
            return feed
    return None


def product_feed(product: str) -> str:
    """The feed type whose receptors make a correlation product.

    Parameters
    ----------
    product : str
        A key of :data:`CORR_PRODUCT_CODES`, e.g. ``"XY"``.

    Returns
    -------
    str
        ``"circular"`` or ``"linear"``.

    Examples
    --------
    >>> product_feed("XY"), product_feed("LL")
    ('linear', 'circular')
    """
    return next(feed for feed, receptors in FEED_RECEPTORS.items() if product[0] in receptors)
