"""The synthesized beam and the noise, predicted from gridded visibility weights.

tclean's imaging weights (casa6 ``VisImagingWeight``) are computed on the
image's own uv grid: cell sizes 1/(nx·cellx), 1/(ny·celly), each visibility
landing in cell ``Int(u·nx·cellx + nx/2)`` together with its conjugate.  With
W_c the sum of natural weights in cell c, a visibility of weight w gets

* natural: w;
* uniform: w / W_c;
* Briggs (``rmode='norm'``): w / (1 + W_c f²), f² = (5·10^-R)² / (Σ_c W_c² / Σ_c W_c).

:class:`WeightGrid` holds W on that grid, restricted to the extent the data
reach and stored as one half-plane (the grid is point-symmetric because every
visibility is gridded with its conjugate).  From it:

* :func:`imaging_grid` — the imaging weights per cell for a weighting scheme
  (per density unit: tclean's ``mosweight=True`` weights every MS separately);
* :func:`noise_factor` — the image rms of a point source for weights that are
  inverse variances: σ² = Σ_k IW_k² σ_k² / (Σ_k IW_k)² with σ_k² = 1/w_k;
* :func:`fit_beam` — the PSF's main lobe by a direct Fourier sum over the cells,
  and an elliptical Gaussian fitted the way tclean fits its restoring beam
  (points above ``psfcutoff`` = 0.35 connected to the peak, least squares).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["GridGeometry", "WeightGrid", "imaging_grid", "noise_factor", "fit_beam", "Beam", "PSF_CUTOFF"]

PSF_CUTOFF = 0.35  # tclean's psfcutoff default
_MAX_PSF_CELLS = 192  # the PSF sum bins coarser grids to this many cells per axis (main lobe unaffected)


@dataclass(frozen=True)
class GridGeometry:
    """A uv grid: cell sizes (wavelengths) and the number of cells per axis (even; origin at n/2)."""

    du: float
    dv: float
    nu: int
    nv: int

    @property
    def half_shape(self) -> tuple[int, int]:
        return self.nu, self.nv // 2

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """u of every row and v of every column of the stored half-plane (wavelengths)."""
        u = (np.arange(self.nu) - self.nu // 2 + 0.5) * self.du
        v = (np.arange(self.nv // 2, self.nv) - self.nv // 2 + 0.5) * self.dv
        return u, v

    def nbytes(self) -> int:
        return self.nu * (self.nv // 2) * 8


class WeightGrid:
    """Summed natural weights per uv cell (half-plane), mergeable by addition."""

    def __init__(self, geometry: GridGeometry, data: np.ndarray | None = None):
        self.geometry = geometry
        self.data = np.zeros(geometry.half_shape) if data is None else data
        self.dropped = 0.0  # weight of samples beyond the grid (cannot happen for a plan from the antennas)

    def add(self, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> None:
        """Grid samples at (u, v) wavelengths with weights w, each with its conjugate (tclean's cell rule)."""
        g = self.geometry
        iu = np.floor(u * (1.0 / g.du)).astype(np.int64) + g.nu // 2
        iv = np.floor(v * (1.0 / g.dv)).astype(np.int64) + g.nv // 2
        low = iv < g.nv // 2  # the conjugate lands in the stored half: (nu-1-iu, nv-1-iv)
        iu = np.where(low, g.nu - 1 - iu, iu)
        iv = np.where(low, g.nv - 1 - iv, iv) - g.nv // 2
        inside = (iu >= 0) & (iu < g.nu) & (iv < g.nv // 2)
        if not inside.all():
            self.dropped += float(w[~inside].sum())
            iu, iv, w = iu[inside], iv[inside], w[inside]
        np.add.at(self.data.reshape(-1), iu * (g.nv // 2) + iv, w)

    def __iadd__(self, other: "WeightGrid") -> "WeightGrid":
        if other.geometry != self.geometry:
            raise ValueError("cannot merge weight grids of different geometry")
        self.data += other.data
        self.dropped += other.dropped
        return self

    def copy(self) -> "WeightGrid":
        out = WeightGrid(self.geometry, self.data.copy())
        out.dropped = self.dropped
        return out


def summed(grids) -> np.ndarray:
    """Cell-wise sum of several :class:`WeightGrid` (or arrays)."""
    grids = [g.data if isinstance(g, WeightGrid) else g for g in grids]
    return np.sum(grids, axis=0) if len(grids) > 1 else grids[0]


# --------------------------------------------------------------------------- weighting and noise

def _factor(density: np.ndarray, scheme: str, robust: float) -> np.ndarray:
    """Imaging weight per unit natural weight in each cell, for one density unit."""
    occupied = density > 0
    if scheme == "natural":
        return occupied.astype(float)
    out = np.zeros_like(density)
    if scheme == "uniform":
        out[occupied] = 1.0 / density[occupied]
        return out
    if scheme == "briggs":
        d = density[occupied]
        f2 = (5.0 * 10.0 ** (-robust)) ** 2 / (float(np.sum(d * d)) / float(np.sum(d)))
        out[occupied] = 1.0 / (1.0 + d * f2)
        return out
    raise ValueError(f"unknown weighting {scheme!r}")


def imaging_grid(units, scheme: str, robust: float = 0.5) -> np.ndarray:
    """Summed imaging weights per cell.

    *units*: a list of natural-weight arrays, each one density unit (all data for tclean's default,
    one per MS for ``mosweight=True``); every unit is weighted with its own density and f².
    """
    return np.sum([u * _factor(u, scheme, robust) for u in units], axis=0)


def noise_factor(units, scheme: str, robust: float = 0.5) -> float:
    """Image rms (Jy/beam) at the phase centre when the natural weights are inverse variances (Jy⁻²)."""
    num = den = 0.0
    for u in units:
        f = _factor(u, scheme, robust)
        num += float(np.sum(u * f * f))  # Σ_k (w_k f_c)² / w_k over the cell's visibilities
        den += float(np.sum(u * f))
    return math.sqrt(num) / den if den > 0 else math.nan


# --------------------------------------------------------------------------- the beam

@dataclass
class Beam:
    major: float  # FWHM, radians
    minor: float
    pa: float  # degrees, north through east, in (-90, 90]
    cutoff: float = PSF_CUTOFF

    def as_dict(self) -> dict:
        arcsec = 180 / math.pi * 3600
        return {"major_arcsec": self.major * arcsec, "minor_arcsec": self.minor * arcsec, "pa_deg": self.pa}


def _coarse(weights: np.ndarray, geometry: GridGeometry):
    """Bin the half-plane grid to at most :data:`_MAX_PSF_CELLS` cells per axis over the occupied extent.

    Returns (weights, u of rows, v of columns).  Moving a visibility by half a coarse cell changes the
    PSF only far from the main lobe (the coarse cell stays < 1/100 of the longest baseline).
    """
    u, v = geometry.cell_centres()
    rows = np.flatnonzero(weights.any(axis=1))
    cols = np.flatnonzero(weights.any(axis=0))
    weights = weights[rows[0]:rows[-1] + 1, :cols[-1] + 1]
    u, v = u[rows[0]:rows[-1] + 1], v[:cols[-1] + 1]
    fu = max(1, math.ceil(weights.shape[0] / _MAX_PSF_CELLS))
    fv = max(1, math.ceil(weights.shape[1] / _MAX_PSF_CELLS))
    if fu == 1 and fv == 1:
        return weights, u, v
    pu, pv = (-weights.shape[0]) % fu, (-weights.shape[1]) % fv
    w = np.pad(weights, ((0, pu), (0, pv)))
    su = np.pad(weights.sum(axis=1), (0, pu))
    # each coarse cell sits at the weighted mean position of its fine cells
    wsum = w.reshape(w.shape[0] // fu, fu, w.shape[1] // fv, fv).sum(axis=(1, 3))
    uu = np.pad(u, (0, pu), mode="edge")
    vv = np.pad(v, (0, pv), mode="edge")
    ucoarse = (su * uu).reshape(-1, fu).sum(axis=1) / np.maximum(su.reshape(-1, fu).sum(axis=1), 1e-300)
    sv = np.pad(weights.sum(axis=0), (0, pv))
    vcoarse = (sv * vv).reshape(-1, fv).sum(axis=1) / np.maximum(sv.reshape(-1, fv).sum(axis=1), 1e-300)
    return wsum, ucoarse, vcoarse


def psf_patch(weights: np.ndarray, geometry: GridGeometry, l: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The PSF (peak 1) at offsets l (east) × m (north), radians: a direct Fourier sum over the cells."""
    w, u, v = _coarse(weights, geometry)
    eu = np.exp(2j * np.pi * np.outer(u, l))  # [u, l]
    ev = np.exp(2j * np.pi * np.outer(v, m))  # [v, m]
    # the half-plane and its mirror: PSF = 2 Re Σ W e^{2πi(ul+vm)}, normalised by 2 Σ W.
    # einsum, not matmul: these small products lose more to BLAS threads waking up than they gain
    return np.einsum("lv,vm->lm", np.einsum("ul,uv->lv", eu, w), ev).real / float(w.sum())


def _second_moments(weights: np.ndarray, geometry: GridGeometry) -> np.ndarray:
    u, v = geometry.cell_centres()
    total = float(weights.sum())
    uu = float(np.sum(weights.sum(axis=1) * u * u)) / total
    vv = float(np.sum(weights.sum(axis=0) * v * v)) / total
    uv = float(np.einsum("u,uv,v->", u, weights, v)) / total
    return np.array([[uu, uv], [uv, vv]])


def _main_lobe(psf: np.ndarray, cutoff: float) -> np.ndarray:
    """Points above *cutoff* connected to the peak (the centre): sidelobes above it are left out."""
    above = psf >= cutoff
    lobe = np.zeros_like(above)
    c = tuple(s // 2 for s in psf.shape)
    lobe[c] = above[c]
    while True:
        grown = lobe.copy()
        grown[1:, :] |= lobe[:-1, :]
        grown[:-1, :] |= lobe[1:, :]
        grown[:, 1:] |= lobe[:, :-1]
        grown[:, :-1] |= lobe[:, 1:]
        grown &= above
        if (grown == lobe).all():
            return lobe
        lobe = grown


def fit_beam(weights: np.ndarray, geometry: GridGeometry, cutoff: float = PSF_CUTOFF, npix: int = 81) -> Beam:
    """Fit an elliptical Gaussian to the main lobe of the PSF these imaging weights make.

    The PSF is sampled on *npix*² points spanning 2.6 times the major axis the weights' second
    moments imply; points above *cutoff* connected to the peak are fitted by least squares
    (amplitude and the three shape parameters; the centre is the phase centre).  As tclean
    does, a fit on too few points is retried with cutoff / 1.5.
    """
    moments = _second_moments(weights, geometry)
    curv = np.linalg.eigvalsh(moments)
    if curv[0] <= 0:
        raise ValueError("the uv coverage is degenerate (all baselines on one line)")
    fwhm_guess = math.sqrt(4 * math.log(2) / (2 * math.pi ** 2 * curv[0]))  # Gaussian of the same curvature
    half = 1.3 * fwhm_guess
    axis = np.linspace(-half, half, npix)
    psf = psf_patch(weights, geometry, axis, axis)  # [l, m]
    ll, mm = np.meshgrid(axis, axis, indexing="ij")
    for _ in range(50):
        lobe = _main_lobe(psf, cutoff)
        if lobe.sum() >= 12:
            break
        cutoff /= 1.5
    x, y, z = ll[lobe], mm[lobe], psf[lobe]
    params = _fit_gaussian(x, y, z)
    a, b, c = params[1:]
    evals, evecs = np.linalg.eigh(np.array([[a, b], [b, c]]))
    if evals[0] <= 0:
        raise ValueError("the PSF main lobe is not a peak")
    major, minor = (math.sqrt(4 * math.log(2) / e) for e in evals)
    el, em = evecs[:, 0]  # direction of the major axis (smallest curvature) in (l=east, m=north)
    pa = math.degrees(math.atan2(el, em))
    pa = (pa + 90.0) % 180.0 - 90.0
    return Beam(major=major, minor=minor, pa=pa if pa != -90.0 else 90.0, cutoff=cutoff)


def _fit_gaussian(x, y, z, iterations: int = 30) -> np.ndarray:
    """Least squares of z = A exp(-(a x² + 2b xy + c y²)): a log-linear start, then Gauss–Newton."""
    scale = float(np.max(np.abs(np.concatenate([x, y])))) or 1.0
    x, y = x / scale, y / scale  # well-conditioned normal equations
    design = np.column_stack([np.ones_like(x), -x * x, -2 * x * y, -y * y])
    sol, *_ = np.linalg.lstsq(design * z[:, None], np.log(z) * z, rcond=None)
    p = np.array([math.exp(sol[0]), *sol[1:]])
    for _ in range(iterations):
        q = p[1] * x * x + 2 * p[2] * x * y + p[3] * y * y
        model = p[0] * np.exp(-q)
        jac = np.column_stack([model / p[0], -model * x * x, -2 * model * x * y, -model * y * y])
        step, *_ = np.linalg.lstsq(jac, z - model, rcond=None)
        p = p + step
        if np.all(np.abs(step) <= 1e-10 * (np.abs(p) + 1e-12)):
            break
    return np.array([p[0], p[1] / scale ** 2, p[2] / scale ** 2, p[3] / scale ** 2])
