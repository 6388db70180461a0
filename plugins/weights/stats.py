"""The empirical weight check: stored weights against the visibilities' own scatter.

For each (MS, spw, field[, scan]) the visibilities of pairs of adjacent
channels are differenced, which removes source structure smooth on the
channel scale, and scaled by the stored weights::

    z = (V[c+1] - V[c]) / sqrt(1/w[c+1] + 1/w[c])

If the weights are inverse variances up to a constant R, the real and
imaginary parts of z have variance R, and |z|²/R is a χ² variable with two
degrees of freedom.  R is estimated per row and correlation robustly (median of
|z|² / 2 ln 2, the median of χ²₂) from non-overlapping pairs (c = 0, 2, 4, …;
independent samples), at most :data:`MAX_PAIRS` per row (every k-th pair on
wide spws: thousands of rows give ample samples, and the check then runs at the
speed the columns are read), and the group reports the median over rows and
its 16–84 % spread.  With correct weights R is the same in every spw, field and MS to be combined.

Rows are read in chunks of at most :data:`CHUNK_BYTES` of visibilities, so
memory stays bounded whatever the MS size.
"""

from __future__ import annotations

import fnmatch
import math
import os
import warnings
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["GroupStats", "measure", "measure_path", "MEDIAN_CHI2_2", "CHUNK_BYTES"]

MEDIAN_CHI2_2 = 2 * math.log(2)  # median of a chi-square variable with two degrees of freedom
MAX_PAIRS = 128  # channel pairs used per row
CHUNK_BYTES = 64 * 2**20


@dataclass
class GroupStats:
    vis: str
    spw: int
    field: str
    scan: int | None
    nrows: int
    nsamples: int
    ratio: float  # median weight x variance
    spread: float  # (p84 - p16) / 2 / median, of the per-row ratios
    weight_median: float
    weight_sigma2: float  # median WEIGHT * SIGMA^2 (1 when WEIGHT = 1/SIGMA^2)
    chan_width_hz: float
    exposure_s: float
    radiometer: float  # median WEIGHT / (2 dnu dt): constant across spws when weights carry 2 dnu dt
    weight_column: str
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _pairs(nchan: int) -> tuple[slice, slice]:
    """Channel slices of the first and second member of each pair used."""
    stride = 2 * max(1, math.ceil((nchan // 2) / MAX_PAIRS))
    npairs = len(range(0, nchan - 1, stride))
    return slice(0, nchan - 1, stride), slice(1, 1 + stride * (npairs - 1) + 1, stride)


def _per_row_ratio(data, flag, weight) -> tuple[np.ndarray, int]:
    """Robust weight x variance for each (corr, row) of a chunk; and the number of samples used.

    *data*, *flag*: ``[corr, chan, row]``; *weight*: ``[corr, chan, row]`` (spectrum) or ``[corr, row]``.
    Single precision throughout: a median needs no more.
    """
    first, second = _pairs(data.shape[1])
    data, flag = np.stack([data[:, first, :], data[:, second, :]]), np.stack([flag[:, first, :], flag[:, second, :]])
    if weight.ndim == 3:
        weight = np.stack([weight[:, first, :], weight[:, second, :]])
    diff = data[1] - data[0]
    power = diff.real ** 2 + diff.imag ** 2
    weight = weight.astype(np.float32, copy=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        if weight.ndim == 2:  # one weight per (corr, row): 1/w[c+1] + 1/w[c] = 2/w
            power *= (weight / 2)[:, None, :]
            bad_weight = np.broadcast_to((weight <= 0)[:, None, :], power.shape)
        else:
            inv = np.where(weight > 0, 1.0 / weight, np.inf).astype(np.float32)
            power /= inv[1] + inv[0]
            bad_weight = ~np.isfinite(inv[1] + inv[0])
    invalid = flag[1] | flag[0] | bad_weight
    if not invalid.any():  # the common case: np.median, several times faster than nanmedian
        counts = np.full((power.shape[0], power.shape[2]), power.shape[1])
        ratio = np.median(power, axis=1).astype(np.float64) / MEDIAN_CHI2_2
    else:
        power[invalid] = np.nan
        counts = power.shape[1] - invalid.sum(axis=1)
        with np.errstate(invalid="ignore"), warnings.catch_warnings(action="ignore", category=RuntimeWarning):
            ratio = np.nanmedian(power, axis=1).astype(np.float64) / MEDIAN_CHI2_2
    ratio[counts < 8] = np.nan  # too few samples in this row for a robust estimate
    return ratio, int(counts.sum())


def spw_layout(ct, vis: str):
    """(spw of each DATA_DESC_ID, effective channel width of each spw in Hz, field names) of *vis*."""
    tb = ct.table()
    try:
        tb.open(os.path.join(vis, "DATA_DESCRIPTION"))
        dd_spw = tb.getcol("SPECTRAL_WINDOW_ID")
        tb.close()
        tb.open(os.path.join(vis, "SPECTRAL_WINDOW"))
        widths = [float(np.median(np.abs(tb.getcell("EFFECTIVE_BW", i)))) for i in range(tb.nrows())]
        tb.close()
        tb.open(os.path.join(vis, "FIELD"))
        names = list(tb.getcol("NAME"))
        tb.close()
    finally:
        tb.done()
    return dd_spw, widths, names


def _states_for(ct, vis: str, intent: str) -> list[int] | None:
    if not intent:
        return None
    tb = ct.table()
    try:
        tb.open(os.path.join(vis, "STATE"))
        modes = list(tb.getcol("OBS_MODE")) if tb.nrows() else []
    finally:
        tb.done()
    pattern = intent if any(c in intent for c in "*?[") else f"*{intent}*"
    return [i for i, m in enumerate(modes) if any(fnmatch.fnmatch(part, pattern) for part in m.split(","))]


def measure(ct, vis: str, column: str, spws: list[int] | None, fields: list[str] | None, intent: str,
            perscan: bool, progress=None) -> list[GroupStats]:
    """:class:`GroupStats` for every (spw, field[, scan]) of *vis* in the selection."""
    dd_spw, widths, names = spw_layout(ct, vis)
    states = _states_for(ct, vis, intent)
    tb = ct.table()
    out = []
    try:
        tb.open(vis)
        has_spectrum = "WEIGHT_SPECTRUM" in tb.colnames() and tb.iscelldefined("WEIGHT_SPECTRUM", 0)
        weight_col = "WEIGHT_SPECTRUM" if has_spectrum else "WEIGHT"
        ddid, field_id = tb.getcol("DATA_DESC_ID"), tb.getcol("FIELD_ID")
        scan = tb.getcol("SCAN_NUMBER") if perscan else np.zeros_like(ddid)
        keys = sorted(set(zip(ddid.tolist(), field_id.tolist(), scan.tolist())))
        for dd, fid, sc in keys:
            spw = int(dd_spw[dd])
            if spws and spw not in spws:
                continue
            if fields and names[fid] not in fields and str(fid) not in fields:
                continue
            query = f"DATA_DESC_ID=={dd} && FIELD_ID=={fid}" + (f" && SCAN_NUMBER=={sc}" if perscan else "")
            if states is not None:
                if not states:
                    continue
                query += f" && STATE_ID IN [{','.join(map(str, states))}]"
            sub = tb.query(query)
            try:
                out.append(_measure_group(sub, vis, spw, names[fid], sc if perscan else None, column, weight_col,
                                          widths[spw], progress))
            finally:
                sub.done()
    finally:
        tb.done()
    return out


def measure_path(vis: str, column: str, spws, fields, intent: str, perscan: bool) -> list[dict]:
    """:func:`measure` of the MS at *vis*, as plain dicts: one sub-MS's part of a parallel wtcheck."""
    from almatools.casaenv import casatools
    return [g.as_dict() for g in measure(casatools(), vis, column, spws, fields, intent, perscan)]


def _measure_group(sub, vis, spw, field, scan, column, weight_col, width, progress) -> GroupStats:
    n = sub.nrows()
    if n == 0:
        return GroupStats(vis, spw, field, scan, 0, 0, math.nan, math.nan, math.nan, math.nan, width, math.nan,
                          math.nan, weight_col, "no rows")
    cell = sub.getcell(column, 0)
    per_row = cell.size * 8 * 4  # data, differences, powers and flags in single precision
    step = max(1, CHUNK_BYTES // per_row)
    ratios, weights, wsig, samples = [], [], [], 0
    exposure = float(np.median(sub.getcol("EXPOSURE")))
    if cell.shape[1] < 3:
        return GroupStats(vis, spw, field, scan, n, 0, math.nan, math.nan, math.nan, math.nan, width, exposure,
                          math.nan, weight_col, "fewer than 3 channels: no channel differences")
    for first in range(0, n, step):
        count = min(step, n - first)
        data = sub.getcol(column, first, count)
        flag = sub.getcol("FLAG", first, count)
        weight = sub.getcol(weight_col, first, count)
        r, k = _per_row_ratio(data, flag, weight)
        ratios.append(r.ravel())
        samples += k
        w_row = sub.getcol("WEIGHT", first, count)
        s_row = sub.getcol("SIGMA", first, count)
        weights.append(w_row.ravel())
        wsig.append((w_row * s_row.astype(np.float64) ** 2).ravel())
        if progress is not None:
            progress.update(count)
    ratios = np.concatenate(ratios)
    ratios = ratios[np.isfinite(ratios)]
    med = float(np.median(ratios)) if ratios.size else math.nan
    p16, p84 = (np.percentile(ratios, [16, 84]) if ratios.size else (math.nan, math.nan))
    wmed = float(np.median(np.concatenate(weights)))
    return GroupStats(vis, spw, field, scan, n, samples, med, float((p84 - p16) / 2 / med) if med else math.nan,
                      wmed, float(np.median(np.concatenate(wsig))), width, exposure,
                      wmed / (2 * width * exposure) if width and exposure else math.nan, weight_col)
