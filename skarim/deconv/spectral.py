"""Joined-channel deconvolution's numerical core (numpy): the spectral basis and the fits.

With ``--join-channels --fit-spectral-pol K`` every pixel's spectrum over the ``C`` channels
holding data is a polynomial of ``K`` terms, as in WSClean. :func:`spectral_basis` gives
``K`` rows ``q_k``: ``q_0 = 1``, ``q_k`` of degree ``k`` in ``t = freq / ref - 1``, orthonormal
under the channel weights ``a_c = w_c / sum w``, so a model ``x_c = sum_k B_k q_kc`` has the
weighted-mean (MFS) image ``B_0`` and the higher terms leave it unchanged.

- :func:`spectral_coefficients`, :func:`project_spectra`: each pixel's spectrum fitted on
  the basis by weighted least squares;
- :func:`fit_joined_model`: the terms ``B_k`` (zero outside a support) that minimise
  ``J = sum_c a_c ||r_c - P_c (*) (x_c - x0_c)||^2`` by conjugate gradients, ``P_c (*)``
  the window operator of :mod:`skarim.deconv.operator` (linear convolution with the
  channel's ``(2w, 2w)`` PSF on the ``2w``-padded grid; its adjoint the correlation);
- :func:`joined_hogbom`: WSClean's joined-channel Hogbom CLEAN: peaks of the MFS residual,
  the channels' values there fitted on the basis before each subtraction;
- :func:`interpolation_matrix`: the output channels' models from fewer deconvolution
  channels' (``--deconvolution-channels``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = [
    "reference_frequency",
    "spectral_basis",
    "spectral_coefficients",
    "project_spectra",
    "fit_joined_model",
    "joined_hogbom",
    "interpolation_matrix",
]


def _channel_weights(weight: np.ndarray) -> np.ndarray:
    """``a_c = w_c / sum w``, float64, ``(C,)``; every weight must be positive."""
    w = np.asarray(weight, dtype=np.float64).reshape(-1)
    if w.size == 0 or not np.all(w > 0):
        raise ValueError("channel weights must be positive (pass only channels that hold data)")
    return w / w.sum()


def reference_frequency(freq_hz: np.ndarray, weight: np.ndarray) -> float:
    """The weighted mean frequency ``sum(w f) / sum(w)``, Hz.

    Parameters
    ----------
    freq_hz : numpy.ndarray
        ``(C,)`` channel frequencies, Hz.
    weight : numpy.ndarray
        ``(C,)`` channel weights (> 0).

    Returns
    -------
    float
        Reference frequency, Hz.
    """
    a = _channel_weights(weight)
    return float(np.dot(a, np.asarray(freq_hz, dtype=np.float64)))


def spectral_basis(freq_hz: np.ndarray, weight: np.ndarray, nterms: int) -> np.ndarray:
    """Polynomial spectral basis over the channels, orthonormal under the channel weights.

    Row ``k`` is a polynomial of degree ``k`` in ``t_c = freq_c / ref - 1``
    (``ref = sum(w f) / sum(w)``); row 0 is all ones and ``sum_c a_c q_jc q_kc = delta_jk``
    with ``a = weight / weight.sum()``. The rows are the weighted QR (Gram-Schmidt) of the
    Chebyshev polynomials of ``t`` scaled to ``[-1, 1]``, which spans the same space as the
    monomials and stays well conditioned for 16 or more terms.

    Parameters
    ----------
    freq_hz : numpy.ndarray
        ``(C,)`` channel frequencies, Hz.
    weight : numpy.ndarray
        ``(C,)`` channel weights (> 0).
    nterms : int
        Terms of the polynomial (``--fit-spectral-pol``); 0 or less leaves every channel free.

    Returns
    -------
    numpy.ndarray
        ``(K, C)`` float64 basis, ``K = min(nterms, C)`` for ``nterms > 0``, else ``C``; never
        more than the number of distinct frequencies (a polynomial cannot tell channels of one
        frequency apart).
    """
    f = np.asarray(freq_hz, dtype=np.float64).reshape(-1)
    a = _channel_weights(weight)
    if f.shape != a.shape:
        raise ValueError(f"{f.size} frequencies for {a.size} channel weights")
    c = f.size
    k = min(nterms if nterms > 0 else c, np.unique(f).size)
    t = f / np.dot(a, f) - 1.0
    half = 0.5 * (t.max() - t.min())
    s = (t - 0.5 * (t.max() + t.min())) / half if half > 0 else np.zeros_like(t)
    vander = np.polynomial.chebyshev.chebvander(s, k - 1)  # (C, K), column j of degree j
    q, r = np.linalg.qr(np.sqrt(a)[:, None] * vander)  # (C, K) orthonormal, (K, K) triangular
    q *= np.sign(np.diag(r))[None, :]  # each row's leading coefficient positive
    basis = (q / np.sqrt(a)[:, None]).T  # (K, C)
    basis[0] = 1.0
    return basis


def spectral_coefficients(cube: np.ndarray, weight: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Weighted least-squares coefficients of each pixel's spectrum on the basis.

    Minimises ``sum_c a_c (v_c - sum_k B_k q_kc)^2`` for every pixel; exact for spectra in the
    basis' span.

    Parameters
    ----------
    cube : numpy.ndarray
        ``(C, ...)`` values per channel (any unit; the coefficients carry it).
    weight : numpy.ndarray
        ``(C,)`` channel weights (> 0).
    basis : numpy.ndarray
        ``(K, C)`` spectral basis (:func:`spectral_basis`).

    Returns
    -------
    numpy.ndarray
        ``(K, ...)`` coefficients, float64.
    """
    a = _channel_weights(weight)
    q = np.asarray(basis, dtype=np.float64)  # (K, C)
    v = np.asarray(cube, dtype=np.float64)  # (C, ...)
    gram = (q * a) @ q.T  # (K, K): the identity for spectral_basis' rows
    rhs = np.tensordot(q * a, v, axes=1)  # (K, ...)
    coef = np.linalg.solve(gram, rhs.reshape(q.shape[0], -1))  # (K, pixels)
    return coef.reshape(rhs.shape)


def project_spectra(cube: np.ndarray, weight: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Each pixel's spectrum replaced by its weighted least-squares fit on the basis.

    Parameters
    ----------
    cube : numpy.ndarray
        ``(C, ...)`` values per channel.
    weight : numpy.ndarray
        ``(C,)`` channel weights (> 0).
    basis : numpy.ndarray
        ``(K, C)`` spectral basis.

    Returns
    -------
    numpy.ndarray
        ``(C, ...)`` fitted values, float64, same unit as ``cube``.
    """
    coef = spectral_coefficients(cube, weight, basis)  # (K, ...)
    return np.tensordot(np.asarray(basis, dtype=np.float64).T, coef, axes=1)


def _spectrum(x: np.ndarray) -> np.ndarray:
    """Real FFT of ``(..., w, w)`` zero-padded to ``(2w, 2w)``: ``(..., 2w, w + 1)`` complex."""
    w = x.shape[-1]
    return np.fft.rfft2(x, s=(2 * w, 2 * w))


def _image(spec: np.ndarray, w: int) -> np.ndarray:
    """Inverse of :func:`_spectrum` cropped to the ``(..., w, w)`` corner (the window)."""
    return np.fft.irfft2(spec, s=(2 * w, 2 * w))[..., :w, :w]


def _kernels(psf: np.ndarray, w: int) -> np.ndarray:
    """``(C, 2w, w + 1)`` transforms of the ``(C, 2w, 2w)`` PSFs, peak moved to ``[0, 0]``."""
    psf = np.asarray(psf, dtype=np.float64)
    if psf.shape[-2:] != (2 * w, 2 * w):
        raise ValueError(f"PSF must be (C, {2 * w}, {2 * w}) for a {w}-pixel window")
    return np.fft.rfft2(np.fft.ifftshift(psf, axes=(-2, -1)))


def _back_project(
    kernels: np.ndarray, coef: np.ndarray, image_of: Callable[[int], np.ndarray]
) -> np.ndarray:
    """``sum_c coef_kc P_c^T image_of(c)``: ``(K', B, w, w)`` from ``C`` images ``(B, w, w)``.

    The channels are taken one at a time, so only the ``(K', B, 2w, w + 1)`` sum is held.
    """
    acc = None
    for c in range(kernels.shape[0]):
        img = image_of(c)  # (B, w, w)
        back = np.conj(kernels[c]) * _spectrum(img)  # (B, 2w, w + 1): correlation with psf_c
        term = coef[:, c, None, None, None] * back  # (K', B, 2w, w + 1)
        acc = term if acc is None else acc + term
    return _image(acc, img.shape[-1])


def _normal(kernels: np.ndarray, aq: np.ndarray, q: np.ndarray, terms: np.ndarray) -> np.ndarray:
    """``sum_c a_c q_kc P_c^T P_c sum_j q_jc B_j`` for ``B = terms``, ``(K', B, w, w)``."""
    w = terms.shape[-1]
    spec = _spectrum(terms)  # (K', B, 2w, w + 1)
    return _back_project(
        kernels, aq, lambda c: _image(kernels[c] * np.tensordot(q[:, c], spec, axes=1), w)
    )


def _dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Inner product per window of ``(K', B, w, w)`` arrays: ``(B,)``."""
    return np.einsum("kbyx,kbyx->b", x, y)


def fit_joined_model(
    residual: np.ndarray,
    psf: np.ndarray,
    x0: np.ndarray | None,
    mfs_model: np.ndarray,
    weight: np.ndarray,
    basis: np.ndarray,
    support: np.ndarray,
    iterations: int,
    fit_mfs: bool = False,
) -> np.ndarray:
    """The channels' models of a batch of windows around a new MFS model.

    The models are ``x_c = mfs_model + sum_{k>=1} B_k q_kc`` with every ``B_k`` zero outside
    ``support``; the ``B_k`` minimise ``J = sum_c a_c ||r_c - P_c (*) (x_c - x0_c)||^2``
    (``a = weight / weight.sum()``). They start at the spectral coefficients of ``x0`` on the
    support and take ``iterations`` conjugate-gradient steps on the normal equations
    ``sum_c a_c q_kc P_c^T P_c (x_c - x0_c) = sum_c a_c q_kc P_c^T r_c``, each window with its
    own step lengths. A step costs ``2 (C + K - 1)`` FFTs of ``(2w, 2w)`` per window; memory is
    ``O(C B w^2)``.

    Parameters
    ----------
    residual : numpy.ndarray
        ``(C, B, w, w)`` exact residual of ``x0`` per channel, Jy/beam.
    psf : numpy.ndarray
        ``(C, 2w, 2w)`` PSF per channel fitted to the window, peak 1 at ``(w, w)``.
    x0 : numpy.ndarray or None
        ``(C, B, w, w)`` channels' current models, Jy/pixel; None for zeros.
    mfs_model : numpy.ndarray
        ``(B, w, w)`` new MFS model, Jy/pixel.
    weight : numpy.ndarray
        ``(C,)`` channel weights (> 0).
    basis : numpy.ndarray
        ``(K, C)`` spectral basis (:func:`spectral_basis`).
    support : numpy.ndarray
        ``(B, w, w)`` bool: where the higher spectral terms may be non-zero.
    iterations : int
        Conjugate-gradient steps.
    fit_mfs : bool
        Fit ``B_0`` too, starting at ``mfs_model`` (zero outside ``support``): the
        channels' own PSFs then correct what the MFS model took from the MFS residual's
        spectral sidelobes (the MFS of a source whose flux changes across the band is not
        the MFS PSF times its mean flux).

    Returns
    -------
    numpy.ndarray
        ``(C, B, w, w)`` float32 channels' models, Jy/pixel.
    """
    a = _channel_weights(weight)
    q = np.asarray(basis, dtype=np.float64)  # (K, C)
    r = np.asarray(residual, dtype=np.float64)  # (C, B, w, w)
    mfs = np.asarray(mfs_model, dtype=np.float64)  # (B, w, w)
    n_chan, n_win, w = r.shape[0], r.shape[1], r.shape[-1]
    if mfs.shape != (n_win, w, w) or q.shape[1] != n_chan:
        raise ValueError(f"residual {r.shape}, MFS model {mfs.shape}, basis {q.shape} disagree")
    if q.shape[0] == 1 and not fit_mfs:
        return np.broadcast_to(mfs, r.shape).astype(np.float32)
    inside = np.asarray(support, dtype=bool)[None]  # (1, B, w, w)
    first = 0 if fit_mfs else 1  # the first term fitted
    higher = q[first:]  # (K - first, C)
    base = np.zeros_like(mfs) if fit_mfs else mfs  # (B, w, w): the part held fixed
    if x0 is None:
        terms = np.zeros((higher.shape[0], n_win, w, w))  # (K - first, B, w, w): the B_k
    else:
        terms = spectral_coefficients(x0, weight, q)[first:] * inside
    if fit_mfs:
        terms[0] = mfs * inside[0]

    def model(c: int) -> np.ndarray:
        return base + np.tensordot(higher[:, c], terms, axes=1)  # (B, w, w): x_c

    if iterations > 0:
        kernels = _kernels(psf, w)  # (C, 2w, w + 1)

        def misfit(c: int) -> np.ndarray:
            step = model(c) if x0 is None else model(c) - x0[c]  # (B, w, w)
            return r[c] - _image(kernels[c] * _spectrum(step), w)  # (B, w, w), Jy/beam

        aq = higher * a[None]  # (K-1, C)
        grad = _back_project(kernels, aq, misfit) * inside  # (K-1, B, w, w): -dJ/dB_k / 2
        direction = grad.copy()
        norm2 = _dot(grad, grad)  # (B,)
        for _ in range(iterations):
            curve = _normal(kernels, aq, higher, direction) * inside  # (K-1, B, w, w)
            denom = _dot(direction, curve)
            alpha = np.divide(norm2, denom, out=np.zeros_like(norm2), where=denom > 0)
            terms += alpha[None, :, None, None] * direction
            grad -= alpha[None, :, None, None] * curve
            new2 = _dot(grad, grad)
            beta = np.divide(new2, norm2, out=np.zeros_like(norm2), where=norm2 > 0)
            direction = grad + beta[None, :, None, None] * direction
            norm2 = new2
    out = np.empty(r.shape, dtype=np.float32)  # (C, B, w, w)
    for c in range(n_chan):
        out[c] = model(c)
    return out


def joined_hogbom(
    residual: np.ndarray,
    psf: np.ndarray,
    weight: np.ndarray,
    basis: np.ndarray,
    sigma: float,
    gain: float = 0.1,
    threshold_sigma: float = 3.0,
    max_iter: int = 20000,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Joined-channel Hogbom CLEAN of a window (WSClean's ``-join-channels``).

    Each iteration finds the peak of ``|m|`` with ``m = sum_c a_c r_c`` the MFS residual,
    fits the channels' values ``r_c[peak]`` on the basis (:func:`project_spectra`), adds
    ``gain * fit_c`` to channel ``c``'s model at the peak and subtracts ``gain * fit_c`` times
    the shifted ``psf_c`` from ``r_c``, as :func:`skarim.deconv.clean.hogbom` does for one
    channel (which this equals for ``C = 1``).

    Parameters
    ----------
    residual : numpy.ndarray
        ``(C, w, w)`` residual per channel, Jy/beam.
    psf : numpy.ndarray
        ``(C, 2w, 2w)`` PSF per channel, peak 1 at ``(w, w)``.
    weight : numpy.ndarray
        ``(C,)`` channel weights (> 0).
    basis : numpy.ndarray
        ``(K, C)`` spectral basis (:func:`spectral_basis`).
    sigma : float
        Noise of the MFS residual, Jy/beam; cleaning stops at ``threshold_sigma * sigma``.
    gain : float
        Loop gain.
    threshold_sigma : float
        Stopping threshold, in ``sigma``.
    max_iter : int
        Iteration cap.
    mask : numpy.ndarray, optional
        ``(w, w)`` bool: components only where True.

    Returns
    -------
    numpy.ndarray
        ``(C, w, w)`` model step per channel, Jy/pixel.
    """
    a = _channel_weights(weight)
    q = np.asarray(basis, dtype=np.float64)  # (K, C)
    res = np.array(residual, dtype=np.float64)  # (C, w, w)
    psf = np.asarray(psf, dtype=np.float64)  # (C, 2w, 2w)
    t = res.shape[-1]
    fit_matrix = project_spectra(np.eye(res.shape[0]), a, q)  # (C, C): v -> its fit
    model = np.zeros_like(res)
    stop = threshold_sigma * sigma
    inside = np.ones(res.shape[1:]) if mask is None else mask.astype(np.float64)  # (w, w)
    for _ in range(max_iter):
        mfs = np.tensordot(a, res, axes=1)  # (w, w)
        iy, ix = np.unravel_index(np.argmax(np.abs(mfs) * inside), mfs.shape)
        if abs(mfs[iy, ix]) <= stop:
            break
        fit = fit_matrix @ res[:, iy, ix]  # (C,)
        model[:, iy, ix] += gain * fit
        res -= (gain * fit)[:, None, None] * psf[:, t - iy : 2 * t - iy, t - ix : 2 * t - ix]
    return model


def interpolation_matrix(
    group_freq_hz: np.ndarray, group_weight: np.ndarray, freq_hz: np.ndarray, nterms: int
) -> np.ndarray:
    """The values at ``freq_hz`` of the polynomial of ``nterms`` terms in frequency fitted by
    weighted least squares to values at ``group_freq_hz`` (WSClean's
    ``-deconvolution-channels`` with ``-fit-spectral-pol``).

    Parameters
    ----------
    group_freq_hz, group_weight : numpy.ndarray
        ``(D,)`` frequencies (Hz) and weights (> 0) of the fitted values.
    freq_hz : numpy.ndarray
        ``(C,)`` frequencies to evaluate at, Hz.
    nterms : int
        Terms of the polynomial, at most ``D``.

    Returns
    -------
    numpy.ndarray
        ``(C, D)`` float64, to multiply the ``(D, ...)`` values by.
    """
    fd = np.asarray(group_freq_hz, dtype=np.float64)
    a = np.sqrt(_channel_weights(group_weight))  # (D,)
    k = min(nterms, np.unique(fd).size)
    mid, half = 0.5 * (fd.max() + fd.min()), max(0.5 * (fd.max() - fd.min()), 1.0)
    fit = np.linalg.pinv(a[:, None] * np.polynomial.chebyshev.chebvander((fd - mid) / half, k - 1))
    at = np.polynomial.chebyshev.chebvander((np.asarray(freq_hz, float) - mid) / half, k - 1)
    return at @ (fit * a[None, :])  # (C, K) @ (K, D)
