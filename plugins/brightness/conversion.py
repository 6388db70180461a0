"""Jy/beam ↔ brightness temperature: the formulas (DOMAIN.md §5.1), vectorised.

All functions work on numpy arrays in SI-free "astronomer" units: flux
densities in Jy per beam, per pixel or per steradian, temperatures in K,
frequencies in Hz, solid angles in sr.

Rayleigh–Jeans (what astropy's ``brightness_temperature`` and radio-beam's
``jtok`` compute)::

    T = I c² / (2 k ν²)                      with I = S / Ω

Planck (the temperature of a black body of specific intensity I)::

    T = (hν/k) / ln(1 + 2hν³ / (c² I))

Planck's T is not defined for I ≤ 0 (noise pixels in an image are often
negative); it is extended antisymmetrically, T(−I) = −T(I), so that noise keeps
its sign and the conversion round-trips exactly.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["beam_solid_angle", "to_specific_intensity", "from_specific_intensity", "intensity_to_kelvin",
           "kelvin_to_intensity", "UNITS", "APPROXIMATIONS", "factor_rj"]

# CODATA 2018 exact SI values, as astropy.constants uses
C = 299792458.0
K_B = 1.380649e-23
H = 6.62607015e-34
JY = 1e-26
ARCSEC = math.pi / (180 * 3600)
FWHM_TO_AREA = math.pi / (4 * math.log(2))

#: flux-density units this module converts between; "K" is brightness temperature
UNITS = ("Jy/beam", "K", "Jy/pixel", "Jy/sr")
APPROXIMATIONS = ("rj", "planck")


def beam_solid_angle(major_rad, minor_rad):
    """Solid angle (sr) of a Gaussian beam with the given FWHM axes (radians)."""
    return FWHM_TO_AREA * np.asarray(major_rad, float) * np.asarray(minor_rad, float)


def to_specific_intensity(values, unit: str, beam_sr=None, pixel_sr=None):
    """Jy/beam, Jy/pixel or Jy/sr → Jy/sr."""
    values = np.asarray(values, float)
    if unit == "Jy/sr":
        return values
    if unit == "Jy/beam":
        return values / beam_sr
    if unit == "Jy/pixel":
        return values / pixel_sr
    raise ValueError(f"not a flux-density unit: {unit!r}")


def from_specific_intensity(intensity, unit: str, beam_sr=None, pixel_sr=None):
    """Jy/sr → Jy/beam, Jy/pixel or Jy/sr."""
    intensity = np.asarray(intensity, float)
    if unit == "Jy/sr":
        return intensity
    if unit == "Jy/beam":
        return intensity * beam_sr
    if unit == "Jy/pixel":
        return intensity * pixel_sr
    raise ValueError(f"not a flux-density unit: {unit!r}")


def factor_rj(freq_hz) -> np.ndarray:
    """K per (Jy/sr) in the Rayleigh–Jeans limit."""
    freq_hz = np.asarray(freq_hz, float)
    return JY * C ** 2 / (2 * K_B * freq_hz ** 2)


def intensity_to_kelvin(intensity_jy_sr, freq_hz, approximation: str = "rj"):
    """Specific intensity (Jy/sr) → brightness temperature (K)."""
    intensity = np.asarray(intensity_jy_sr, float)
    if approximation == "rj":
        return intensity * factor_rj(freq_hz)
    if approximation == "planck":
        nu = np.asarray(freq_hz, float)
        hnu_k = H * nu / K_B
        with np.errstate(divide="ignore", invalid="ignore"):
            x = 2 * H * nu ** 3 / (C ** 2 * np.abs(intensity) * JY)
            t = hnu_k / np.log1p(x)
        return np.where(intensity == 0, 0.0, np.copysign(t, intensity))
    raise ValueError(f"approximation must be one of {APPROXIMATIONS}, not {approximation!r}")


def kelvin_to_intensity(kelvin, freq_hz, approximation: str = "rj"):
    """Brightness temperature (K) → specific intensity (Jy/sr)."""
    kelvin = np.asarray(kelvin, float)
    if approximation == "rj":
        return kelvin / factor_rj(freq_hz)
    if approximation == "planck":
        nu = np.asarray(freq_hz, float)
        with np.errstate(divide="ignore", over="ignore"):
            i = 2 * H * nu ** 3 / C ** 2 / np.expm1(H * nu / (K_B * np.abs(kelvin))) / JY
        return np.where(kelvin == 0, 0.0, np.copysign(i, kelvin))
    raise ValueError(f"approximation must be one of {APPROXIMATIONS}, not {approximation!r}")


def convert(values, inunit: str, outunit: str, freq_hz, approximation="rj", beam_sr=None, pixel_sr=None):
    """Convert *values* between any two of :data:`UNITS`."""
    if inunit == "K":
        intensity = kelvin_to_intensity(values, freq_hz, approximation)
    else:
        intensity = to_specific_intensity(values, inunit, beam_sr, pixel_sr)
    if outunit == "K":
        return intensity_to_kelvin(intensity, freq_hz, approximation)
    return from_specific_intensity(intensity, outunit, beam_sr, pixel_sr)
