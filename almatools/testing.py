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
integrations differ as real data do.  ``hanning=True`` smooths it along
the channels with (1/4, 1/2, 1/4), as ALMA's correlator does online, and sets
EFFECTIVE_BW = 8/3 × the width and RESOLUTION = 2 × the width, as ALMA
writes them (the weights follow the smoothed noise, 2 × EFFECTIVE_BW × Δt).

``array`` names a configuration of :data:`ARRAY_CONFIGS` or any
``casadata/alma/simmos`` file; ``antennas="spread"`` takes antennas spread
over the whole configuration instead of the first ``nant``;
``pointings`` makes a mosaic whose fields share one name, observed in
interleaved scans.
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
                intent="", noise_k=None, weights="modern", calwt_factor=1e-4, seed=0, flux_jy=0.0, antennas=None,
                pointings=None, hanning=False) -> str:
    """Simulate an MS and return its path.

    :param spws: ``[(name, first_chan_freq_Hz, chan_width_Hz, nchan), …]`` in MS order.
    :param observe: names of the spws to observe (default all; others only get a SPECTRAL_WINDOW row).
    :param intent: an OBS_MODE such as ``"OBSERVE_TARGET#ON_SOURCE"`` for the scans.
    :param noise_k: when given, DATA gets Gaussian noise of :func:`radiometer_sigma` per spw
        (plus a point source of *flux_jy* at the phase centre) and the weights follow *weights*.
    :param weights: ``"modern"`` or ``"casa421"`` (see the module docstring).
    :param calwt_factor: the constant WEIGHT of ``"casa421"`` data.
    :param antennas: None (the first *nant* of the configuration), ``"spread"`` (*nant* antennas from the
        centre to the longest baselines) or a list of indices into the configuration.
    :param pointings: directions (like *direction*) of the fields of a mosaic; default one field at *direction*.
    :param hanning: online Hanning smoothing (see the module docstring).
    """
    import casadata
    from casatasks.private import simutil

    from .casaenv import casatools
    ct = casatools()
    cfg = os.path.join(casadata.datapath, "alma", "simmos", ARRAY_CONFIGS.get(array, array))
    x, y, z, d, pad, _ant, _tel, pos = simutil.simutil().readantenna(cfg)
    pick = _antenna_indices(x, y, z, nant, antennas)
    x, y, z, d, pad = (np.asarray(a)[pick] for a in (x, y, z, d, pad))
    pointings = [direction] if pointings is None else list(pointings)
    names = [field] if len(pointings) == 1 else [f"{field}_{k}" for k in range(len(pointings))]
    sm, me, tb = ct.simulator(), ct.measures(), ct.table()
    try:
        sm.open(str(path))
        sm.setconfig(telescopename="ALMA", x=list(x), y=list(y), z=list(z), dishdiameter=list(d),
                     mount=["alt-az"], antname=list(pad), padname=list(pad), coordsystem="global",
                     referencelocation=pos)
        for name, f0, df, n in spws:
            sm.setspwindow(spwname=name, freq=f"{f0}Hz", deltafreq=f"{df}Hz", freqresolution=f"{abs(df)}Hz",
                           nchannels=int(n), stokes="XX YY")
        sm.setfeed(mode="perfect X Y")
        for name, where in zip(names, pointings):
            sm.setfield(sourcename=name, sourcedirection=me.direction(*where))
        sm.setlimits(shadowlimit=0.001, elevationlimit="8.0deg")
        sm.setauto(autocorrwt=0.0)
        sm.settimes(integrationtime=f"{integration_s}s", usehourangle=hourangle,
                    referencetime=me.epoch("utc", refdate))
        for start, stop, name in _scans(names, duration_s, integration_s):
            for spw_name, *_ in spws:
                if observe is None or spw_name in observe:
                    sm.observe(name, spw_name, starttime=f"{start}s", stoptime=f"{stop}s",
                               **({"state_obs_mode": intent} if intent else {}))  # else the simulator's default
        sm.close()
        tb.open(os.path.join(str(path), "SPECTRAL_WINDOW"), nomodify=False)
        for row in range(tb.nrows()):  # the simulator writes negative EFFECTIVE_BW for negative widths
            width = np.abs(tb.getcell("CHAN_WIDTH", row))
            tb.putcell("EFFECTIVE_BW", row, width * 8 / 3 if hanning else abs(tb.getcell("EFFECTIVE_BW", row)))
            tb.putcell("RESOLUTION", row, width * 2 if hanning else abs(tb.getcell("RESOLUTION", row)))
        tb.close()
        if len(names) > 1:  # a mosaic's fields share the source's name, as ALMA writes them
            tb.open(os.path.join(str(path), "FIELD"), nomodify=False)
            tb.putcol("NAME", np.array([field] * tb.nrows()))
            tb.close()
    finally:
        sm.done()
        me.done()
        tb.done()
    if noise_k is not None:
        _add_noise(ct, str(path), spws, integration_s, float(d[0]), noise_k, weights, calwt_factor, seed, flux_jy,
                   hanning)
    return str(path)


def _antenna_indices(x, y, z, nant, antennas):
    if antennas is None:
        return list(range(min(nant, len(x))))
    if isinstance(antennas, str):
        if antennas != "spread":
            raise ValueError(f"antennas must be None, 'spread' or a list of indices, not {antennas!r}")
        p = np.column_stack([x, y, z])
        radius = np.linalg.norm(p - p.mean(axis=0), axis=1)
        order = np.argsort(radius)
        return sorted(int(order[round(k)]) for k in np.linspace(0, len(order) - 1, min(nant, len(order))))
    return [int(i) for i in antennas]


def _scans(names, duration_s, integration_s):
    """(start, stop, field) of the scans: one scan for one field; for a mosaic, four cycles of
    interleaved scans through the pointings, so that every pointing gets the same time and coverage."""
    if len(names) == 1:
        return [(0.0, float(duration_s), names[0])]
    scan = max(integration_s, round(duration_s / (4 * len(names)) / integration_s) * integration_s)
    cycles = max(1, int(duration_s // (scan * len(names))))
    return [((c * len(names) + k) * scan, (c * len(names) + k + 1) * scan, name)
            for c in range(cycles) for k, name in enumerate(names)]


def _hanning(noise: np.ndarray) -> np.ndarray:
    """(1/4, 1/2, 1/4) along the channel axis (axis 1), the edge channels keeping their own share."""
    out = 0.5 * noise
    out[:, 1:] += 0.25 * noise[:, :-1]
    out[:, :-1] += 0.25 * noise[:, 1:]
    return out


def _add_noise(ct, vis, spws, integration_s, dish_m, noise_k, weights, calwt_factor, seed, flux_jy, hanning=False):
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
            raw = radiometer_sigma(noise_k, df, integration_s, dish_m)
            sigma = raw * math.sqrt(3 / 8) if hanning else raw  # the variance Hanning smoothing leaves
            sub = tb.query(f"DATA_DESC_ID=={int(dd)}")  # a reference table: writes go to the MS
            try:
                for first in range(0, sub.nrows(), 5000):
                    count = min(5000, sub.nrows() - first)
                    shape = sub.getcol("DATA", first, count).shape
                    noise = rng.normal(0, raw, shape) + 1j * rng.normal(0, raw, shape)
                    if hanning:
                        noise = _hanning(noise)
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
