"""The re-imaging rules of thumb (DOMAIN.md §11, the seed's chapters 6–8), as small pure functions.

Angles are radians, frequencies Hz, lengths metres, times seconds, unless a
name says otherwise.  Each function states where its rule comes from; the
task (:mod:`.task_imadvise`) turns the numbers into advice with reasons.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

import numpy as np

__all__ = [
    "C", "OMEGA_EARTH", "ARCSEC", "SMEAR_1PCT", "pb_fwhm", "pb_radius", "optimum_size", "round_cell",
    "time_average_limit", "max_average_length", "alma_band", "chanbin_rule_hz", "smoothing_autocorrelation",
    "online_smoothing", "sensitivity_loss", "largest_divisor", "fractional_bandwidth", "mrs", "handbook_resolution",
    "mosaic_gain", "stokes_for", "datacolumn_rule", "format_angle", "parse_angle",
]

C = 299792458.0
#: Earth's angular velocity as the seed writes it (its worked example: 0.045/25/7.3e-5 = 25 s)
OMEGA_EARTH = 7.3e-5
ARCSEC = math.pi / 180 / 3600
#: smear length / beam FWHM that costs 1 % of a point source's peak: a box of length L over a Gaussian beam
#: of FWHM b keeps 1 - (ln 2 / 3)(L/b)^2 of the peak, so 1 % is L/b = sqrt(0.03 / ln 2)
SMEAR_1PCT = math.sqrt(0.03 / math.log(2))


# --------------------------------------------------------------------------- field of view and pixels

def pb_fwhm(freq_hz: float, dish_m: float) -> float:
    """Primary-beam FWHM, 1.13 λ/D (12 m and 7 m ALMA dishes, Technical Handbook)."""
    return 1.13 * C / freq_hz / dish_m


def pb_radius(fwhm: float, pblimit: float) -> float:
    """Radius at which a Gaussian primary beam of this FWHM falls to *pblimit*."""
    return 0.5 * fwhm * math.sqrt(math.log(1.0 / pblimit) / math.log(2.0))


def optimum_size(n: int) -> int:
    """The smallest even number >= *n* whose only prime factors are 2, 3 and 5.

    These are the sizes CASA's FFTs handle fast; ``synthesisutils.getOptimumSize``
    returns the same numbers (tclean warns "... is not an efficient imagesize" otherwise).
    Consecutive such sizes are at most ~8 % apart above a few hundred.
    """
    k = max(int(math.ceil(n)), 2)
    k += k % 2
    while not _only_2_3_5(k):
        k += 2
    return k


def _only_2_3_5(k: int) -> bool:
    for p in (2, 3, 5):
        while k % p == 0:
            k //= p
    return k == 1


def round_cell(cell: float) -> float:
    """*cell* rounded down to two significant digits (as the pipeline writes cells), never coarser."""
    if cell <= 0 or not math.isfinite(cell):
        raise ValueError(f"cell must be a positive number, not {cell!r}")
    scale = 10 ** (math.floor(math.log10(cell)) - 1)
    return math.floor(cell / scale * (1 + 1e-12)) * scale


# --------------------------------------------------------------------------- averaging

def time_average_limit(beam: float, fov: float) -> float:
    """The seed's limit Δt ≪ θ_res / (ω_e θ_FOV) in seconds (§7.4)."""
    return beam / (OMEGA_EARTH * fov)


def max_average_length(beam: float, fov: float) -> float:
    """Largest smear, as a fraction of the source's distance, that keeps 99 % of the peak at the
    primary beam's half-power radius (fov / 2): L/b = :data:`SMEAR_1PCT` with L = (fov/2) x fraction.

    Time averaging smears by ω_e Δt (fraction = ω_e Δt), channel averaging by Δν/ν.
    """
    return SMEAR_1PCT * beam / (0.5 * fov)


# ALMA receiver bands (GHz), Technical Handbook; Band 2 as offered since Cycle 12
_BANDS = ((1, 35.0, 50.5), (2, 67.0, 116.0), (3, 84.0, 116.0), (4, 125.0, 163.0), (5, 158.0, 211.0),
          (6, 211.0, 275.0), (7, 275.0, 373.0), (8, 385.0, 500.0), (9, 602.0, 720.0), (10, 787.0, 950.0))


def alma_band(freq_hz: float, spw_name: str = "") -> int | None:
    """The ALMA band of a spw: from its name (``ALMA_RB_06``) when it has one, else from the frequency."""
    m = re.search(r"ALMA_RB_(\d+)", spw_name or "")
    if m:
        return int(m.group(1))
    ghz = freq_hz / 1e9
    hits = [b for b, lo, hi in _BANDS if lo <= ghz <= hi]
    return max(hits) if hits else None  # Band 3 wins over the wide Band 2 where they overlap


def chanbin_rule_hz(band: int | None) -> float:
    """The seed's channel-averaging rule of thumb for compact configurations: average to 125 MHz
    (Bands 3–6) or 250 MHz (Bands 7–10); Bands 1–2 (and unknown bands) take the Band 3–6 value."""
    return 250e6 if band is not None and band >= 7 else 125e6


def largest_divisor(n: int, at_most: int) -> int:
    """The largest divisor of *n* not above *at_most* (>= 1): bins that split a spw evenly."""
    at_most = max(1, min(int(at_most), n))
    return next(d for d in range(at_most, 0, -1) if n % d == 0)


# --------------------------------------------------------------------------- online smoothing

@lru_cache(maxsize=None)
def smoothing_autocorrelation(n_smooth: int) -> tuple[float, ...]:
    """Correlation of a channel's noise with its neighbours (lags 0, 1, 2, …) in ALMA data that were
    Hanning-smoothed (1/4, 1/2, 1/4) on the correlator's channels and then averaged by *n_smooth*.

    The sum over all lags equals EFFECTIVE_BW / CHAN_WIDTH (2.667 for n_smooth = 1, 1.6 for 2, …).
    """
    fine = np.convolve(np.ones(n_smooth) / n_smooth, [0.25, 0.5, 0.25])  # one output channel in input channels
    var = float(np.sum(fine ** 2))
    rho = [1.0]
    for lag in range(1, len(fine)):
        shift = lag * n_smooth
        if shift >= len(fine):
            break
        rho.append(float(np.sum(fine[:-shift] * fine[shift:])) / var)
    return tuple(rho)


def online_smoothing(effective_bw_hz: float, width_hz: float) -> int:
    """0 (no smoothing) or the channel-average factor of ALMA's online Hanning smoothing, recognised by
    EFFECTIVE_BW / CHAN_WIDTH matching the sum of :func:`smoothing_autocorrelation` within 1 %."""
    ratio = abs(effective_bw_hz) / abs(width_hz) if width_hz else 1.0
    for n in (1, 2, 4, 8, 16):
        rho = smoothing_autocorrelation(n)
        if abs(ratio - (rho[0] + 2 * sum(rho[1:]))) < 0.01 * ratio:
            return n
    return 0


def sensitivity_loss(n_smooth: int, nbin: int) -> float:
    """Factor by which the noise of an average of *nbin* adjacent channels exceeds what their weights
    promise (weights count channels as independent; smoothed channels are not)."""
    if n_smooth <= 0 or nbin <= 1:
        return 1.0
    rho = smoothing_autocorrelation(n_smooth)
    total = nbin + 2 * sum((nbin - k) * r for k, r in enumerate(rho[1:], start=1) if k < nbin)
    return math.sqrt(total / nbin)


# --------------------------------------------------------------------------- resolution and scales

def fractional_bandwidth(fmin_hz: float, fmax_hz: float) -> float:
    """Δν/ν of the whole selection, 2 (fmax - fmin) / (fmax + fmin)."""
    return 2 * (fmax_hz - fmin_hz) / (fmax_hz + fmin_hz)


def mrs(freq_hz: float, l5_m: float) -> float:
    """Maximum recoverable scale, 0.983 λ / L5 (Technical Handbook, L5 = 5th percentile baseline)."""
    return 0.983 * C / freq_hz / l5_m


def handbook_resolution(freq_hz: float, l80_m: float) -> float:
    """Angular resolution, 0.574 λ / L80 (Technical Handbook, robust ≈ 0.5)."""
    return 0.574 * C / freq_hz / l80_m


def mosaic_gain(offsets: np.ndarray, weights: np.ndarray, fwhm: float) -> float:
    """sqrt(Σ A_p² W_p / W_ref) at a point: how much better than one pointing the mosaic's rms is there.

    *offsets*: distance of each pointing from the point; *weights*: each pointing's summed weight
    W_p; the reference is the median pointing.  A Nyquist-sampled ALMA mosaic (hexagonal,
    0.511 FWHM spacing) gives 1.58 in its interior (seed §6.3.2).
    """
    a2 = np.exp(-8 * math.log(2) * (np.asarray(offsets, float) / fwhm) ** 2)  # A^2, A Gaussian of this FWHM
    w = np.asarray(weights, float)
    return math.sqrt(float(np.sum(a2 * w)) / float(np.median(w)))


# --------------------------------------------------------------------------- polarisation and columns

#: casacore Stokes enumeration of the correlation types ALMA and the VLA write
CORR_NAMES = {5: "RR", 6: "RL", 7: "LR", 8: "LL", 9: "XX", 10: "XY", 11: "YX", 12: "YY"}


def stokes_for(corr_types) -> tuple[str, str]:
    """(tclean stokes, reason) for an MS's correlations."""
    names = [CORR_NAMES.get(int(c), str(c)) for c in corr_types]
    parallel = [n for n in names if n in ("XX", "YY", "RR", "LL")]
    text = " ".join(names)
    if len(parallel) >= 2:
        if len(names) == 4:
            return "I", (f"correlations {text}: full polarisation; 'I' for total intensity "
                         "(stokes='IQUV' images the polarisation, after polarisation calibration)")
        return "I", f"correlations {text}: both parallel hands, so Stokes I"
    if len(parallel) == 1:
        return parallel[0], f"correlations {text}: a single parallel hand cannot form Stokes I; image {parallel[0]}"
    raise ValueError(f"no parallel-hand correlation among {text}")


def datacolumn_rule(vis_name: str) -> tuple[str | None, str]:
    """(column the naming rule expects the calibrated data in, reason) — DOMAIN.md §11 / seed §8.1.

    Manual scripts' ``*.split.cal`` (and the ``calibrated*.ms`` concatenated from them) and the
    pipeline's split ``*_targets*.ms`` hold calibrated data in DATA; the pipeline's ``uid___*.ms``
    in CORRECTED_DATA.  None when the name says nothing.
    """
    name = vis_name.rstrip("/").split("/")[-1]
    if re.search(r"\.split\.cal(\.ms)?$", name) or re.match(r"calibrated.*\.ms$", name):
        return "data", f"{name}: a manual script's calibrated split (*.split.cal) holds the calibrated data in DATA"
    if re.search(r"_targets(_line|_cont)?\.ms$", name):
        return "data", f"{name}: the pipeline's split science targets hold the calibrated data in DATA"
    if re.match(r"uid___.*\.ms$", name):
        return "corrected", f"{name}: a pipeline-calibrated MS holds the calibrated data in CORRECTED_DATA"
    return None, f"{name}: the name follows no delivery convention"


# --------------------------------------------------------------------------- angles

_ANGLE_UNITS = {"arcsec": ARCSEC, "asec": ARCSEC, '"': ARCSEC, "arcmin": 60 * ARCSEC, "amin": 60 * ARCSEC,
                "'": 60 * ARCSEC, "deg": math.pi / 180, "rad": 1.0, "mas": ARCSEC / 1000}
_ANGLE = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(arcsec|asec|arcmin|amin|deg|rad|mas|\"|')\s*")


def parse_angle(text: str) -> float:
    """'10arcsec', '1.5 arcmin', '0.2deg', '30mas' → radians.  ValueError for anything else."""
    m = _ANGLE.fullmatch(text) if isinstance(text, str) and len(text) <= 64 else None
    if not m:
        raise ValueError("must be a positive angle with a unit, e.g. '10arcsec', '1.5arcmin', '0.01deg'")
    value = float(m.group(1)) * _ANGLE_UNITS[m.group(2)]
    if not (value > 0 and math.isfinite(value)) or value > math.pi:
        raise ValueError("must be a positive angle with a unit, at most 180deg")
    return value


def format_angle(rad: float, digits: int = 4) -> str:
    """An angle as tclean takes it, in arcsec with *digits* significant digits: '0.021arcsec'."""
    return f"{float(f'{rad / ARCSEC:.{digits}g}'):g}arcsec"
