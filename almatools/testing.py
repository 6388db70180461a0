"""Small simulated ALMA MeasurementSets for tests, benchmarks and the demo.

:func:`simulate_ms` wraps ``casatools.simulator`` with ALMA's 12 m or 7 m
antenna positions from casadata, any number of spws (decreasing frequencies
allowed: the simulator's negative EFFECTIVE_BW is made positive), and
optionally Gaussian noise of a known rms per spw written into DATA, with
WEIGHT/SIGMA in the state a given CASA version would leave them:

* ``"modern"`` (CASA ≥ 4.2.2 after calibration): WEIGHT = 1/σ², SIGMA = σ,
  so weight × variance = 1 in every spw;
* ``"casa421"`` (CASA ≤ 4.2.1): WEIGHT = a constant (Tsys/gain factors only,
  no 2·Δν·Δt), SIGMA = 1.

The noise follows the radiometer equation: σ = ``noise_k`` / sqrt(2 Δν Δt)
(× (12 m / D)² for the dishes), so spws of different widths and
integrations differ as real data do.
"""

from __future__ import annotations

import math
import os

import numpy as np

__all__ = ["simulate_ms", "radiometer_sigma", "ARRAY_CONFIGS", "png_rgb", "colour_pixels"]

ARRAY_CONFIGS = {"12m": "alma.cycle10.1.cfg", "7m": "aca.cycle10.cfg"}


def radiometer_sigma(noise_k: float, width_hz: float, integration_s: float, dish_m: float = 12.0) -> float:
    """Per-visibility rms (real part) of the radiometer equation, scaled by *noise_k*."""
    return noise_k / math.sqrt(2 * abs(width_hz) * integration_s) * (12.0 / dish_m) ** 2


def simulate_ms(path, spws, *, array="12m", nant=4, field="TGT", direction=("J2000", "11h01m51.9s", "-34d42m17.0s"),
                refdate="2024/11/15/00:00:00", duration_s=1800.0, integration_s=60.0, hourangle=True, observe=None,
                intent="", noise_k=None, weights="modern", calwt_factor=1e-4, seed=0, flux_jy=0.0) -> str:
    """Simulate an MS and return its path.

    :param spws: ``[(name, first_chan_freq_Hz, chan_width_Hz, nchan), …]`` in MS order.
    :param observe: names of the spws to observe (default all; others only get a SPECTRAL_WINDOW row).
    :param intent: an OBS_MODE such as ``"OBSERVE_TARGET#ON_SOURCE"`` for the scans.
    :param noise_k: when given, DATA gets Gaussian noise of :func:`radiometer_sigma` per spw
        (plus a point source of *flux_jy* at the phase centre) and the weights follow *weights*.
    :param weights: ``"modern"`` or ``"casa421"`` (see the module docstring).
    :param calwt_factor: the constant WEIGHT of ``"casa421"`` data.
    """
    import casadata
    from casatasks.private import simutil

    from .casaenv import casatools
    ct = casatools()
    cfg = os.path.join(casadata.datapath, "alma", "simmos", ARRAY_CONFIGS[array])
    x, y, z, d, pad, _ant, _tel, pos = simutil.simutil().readantenna(cfg)
    sm, me, tb = ct.simulator(), ct.measures(), ct.table()
    try:
        sm.open(str(path))
        sm.setconfig(telescopename="ALMA", x=x[:nant], y=y[:nant], z=z[:nant], dishdiameter=list(d[:nant]),
                     mount=["alt-az"], antname=list(pad[:nant]), padname=list(pad[:nant]), coordsystem="global",
                     referencelocation=pos)
        for name, f0, df, n in spws:
            sm.setspwindow(spwname=name, freq=f"{f0}Hz", deltafreq=f"{df}Hz", freqresolution=f"{abs(df)}Hz",
                           nchannels=int(n), stokes="XX YY")
        sm.setfeed(mode="perfect X Y")
        sm.setfield(sourcename=field, sourcedirection=me.direction(*direction))
        sm.setlimits(shadowlimit=0.001, elevationlimit="8.0deg")
        sm.setauto(autocorrwt=0.0)
        sm.settimes(integrationtime=f"{integration_s}s", usehourangle=hourangle,
                    referencetime=me.epoch("utc", refdate))
        for name, *_ in spws:
            if observe is None or name in observe:
                sm.observe(field, name, starttime="0s", stoptime=f"{duration_s}s",
                           **({"state_obs_mode": intent} if intent else {}))  # else the simulator's default
        sm.close()
        tb.open(os.path.join(str(path), "SPECTRAL_WINDOW"), nomodify=False)
        for row in range(tb.nrows()):  # the simulator writes negative EFFECTIVE_BW for negative widths
            tb.putcell("EFFECTIVE_BW", row, abs(tb.getcell("EFFECTIVE_BW", row)))
            tb.putcell("RESOLUTION", row, abs(tb.getcell("RESOLUTION", row)))
        tb.close()
    finally:
        sm.done()
        me.done()
        tb.done()
    if noise_k is not None:
        _add_noise(ct, str(path), spws, integration_s, float(d[0]), noise_k, weights, calwt_factor, seed, flux_jy)
    return str(path)


def _add_noise(ct, vis, spws, integration_s, dish_m, noise_k, weights, calwt_factor, seed, flux_jy):
    """Noise per spw (radiometer equation) in DATA, weights in the requested state."""
    if weights not in ("modern", "casa421"):
        raise ValueError(f"weights must be 'modern' or 'casa421', not {weights!r}")
    rng = np.random.default_rng(seed)
    tb = ct.table()
    try:
        tb.open(os.path.join(vis, "DATA_DESCRIPTION"))
        dd_spw = tb.getcol("SPECTRAL_WINDOW_ID")
        tb.close()
        tb.open(vis, nomodify=False)
        columns = [c for c in ("DATA", "CORRECTED_DATA") if c in tb.colnames()]  # calibrated = observed here
        for dd in np.unique(tb.getcol("DATA_DESC_ID")):
            _name, _f0, df, _n = spws[int(dd_spw[dd])]
            sigma = radiometer_sigma(noise_k, df, integration_s, dish_m)
            sub = tb.query(f"DATA_DESC_ID=={int(dd)}")  # a reference table: writes go to the MS
            try:
                for first in range(0, sub.nrows(), 5000):
                    count = min(5000, sub.nrows() - first)
                    shape = sub.getcol("DATA", first, count).shape
                    noise = rng.normal(0, sigma, shape) + 1j * rng.normal(0, sigma, shape)
                    for column in columns:
                        sub.putcol(column, flux_jy + noise, first, count)
                    w, s = sub.getcol("WEIGHT", first, count), sub.getcol("SIGMA", first, count)
                    if weights == "modern":
                        w[:], s[:] = 1.0 / sigma ** 2, sigma
                    else:
                        w[:], s[:] = calwt_factor, 1.0
                    sub.putcol("WEIGHT", w, first, count)
                    sub.putcol("SIGMA", s, first, count)
            finally:
                sub.done()
    finally:
        tb.done()


def png_rgb(path) -> np.ndarray:
    """A PNG file's pixels as a (height, width, 3) uint8 array; a file that is not a PNG is refused.

    Tests of plots decode what a person would see, to check what is drawn, not just the file's magic.
    """
    from PIL import Image  # matplotlib's own dependency
    with Image.open(path) as image:
        if image.format != "PNG":
            raise ValueError(f"{path}: not a PNG file ({image.format})")
        return np.asarray(image.convert("RGB"))


def colour_pixels(pixels: np.ndarray, colour, tolerance: int = 3) -> np.ndarray:
    """Mask of the pixels within *tolerance* (per 8-bit channel) of a matplotlib colour ("tab:orange", …)."""
    from matplotlib.colors import to_rgb
    want = np.round(np.array(to_rgb(colour)) * 255).astype(int)
    return np.all(np.abs(pixels.astype(int) - want) <= tolerance, axis=-1)
