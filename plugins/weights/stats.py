"""The empirical weight check: stored weights against the visibilities' own scatter.

**Third differences.**  For each (MS, spw, field[, scan]) every row's spectrum
is cut into non-overlapping blocks of four adjacent channels, and each block
gives the third difference ``d = -V0 + 3 V1 - 3 V2 + V3`` scaled by the stored
weights::

    z = d / sqrt(1/w0 + 9/w1 + 9/w2 + 1/w3)

A third difference cancels any source spectrum that is a polynomial of degree
two across four channels (a continuum level, slope and curvature; a phase
gradient to third order), so only the noise and the narrow parts of spectral
lines are left.  If the weights are inverse variances up to a constant R, the
real and imaginary parts of z have variance R and ``|z|²/R`` is a χ² variable
with two degrees of freedom.

**Line check.**  A line still shows where it is narrow.  So before any ratio
is formed, the median of ``|z|²`` over all rows is compared between blocks:
with noise only it is the same in every block (to ``1.44/sqrt(n)`` relative for
n samples).  Blocks whose third differences stand out from the spw's, or whose
first or second differences stand out from their neighbours' (these catch a
two-channel spike that a third difference cancels by coincidence, and a smooth
slope does not count), by more than :data:`LINE_SIGMAS` standard errors are
excluded with their neighbours, iterated to a fixed point.  The blocks excluded
are reported as channel ranges with the evidence.  When more than half of the
blocks stand out there is no line-free reference: nothing is excluded and the
group is marked unreliable.

**Slope check.**  First and second differences of the same blocks are
measured too: where they read more than the third differences, a continuum
slope or curvature is present (or the noise is correlated between adjacent
channels), which the third differences cancel; the excess is reported.

**The ratio.**  R is estimated per row and correlation as the median of
``|z|²`` over its blocks divided by ``2 ln 2`` (the median of χ²₂).  The
median is taken over an odd number of blocks (one is left out of an even
count): the median of the sample medians of an odd number of samples is
exactly the population median, whereas an even count biases it (+2 % for 8).
The group reports the median over rows, its statistical error and the 16–84 %
spread.  At most :data:`MAX_BLOCKS` blocks per row are used (evenly spread on
wide spws: thousands of rows give ample samples, and the check runs at the
speed the columns are read).

Rows are read in chunks of at most :data:`CHUNK_BYTES` of visibilities; the
line and slope checks look at the first :data:`CHECK_BUFFER_BYTES` of block
statistics of a group (all of it for all but very large groups), so memory
stays bounded whatever the MS size.
"""

from __future__ import annotations

import fnmatch
import math
import os
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["GroupStats", "measure", "measure_path", "block_starts", "block_powers", "row_ratios",
           "detect_lines", "MEDIAN_CHI2_2", "CHUNK_BYTES", "LINE_SIGMAS", "MAX_BLOCKS"]

MEDIAN_CHI2_2 = 2 * math.log(2)  # median of a chi-square variable with two degrees of freedom
MAX_BLOCKS = 127  # blocks of four channels used per row (odd: see the module docstring)
BLOCK = 4  # channels per block: a third difference
CHUNK_BYTES = 64 * 2**20
CHECK_BUFFER_BYTES = 96 * 2**20  # block statistics kept for the line and slope checks
LINE_SIGMAS = 5.0  # a block stands out when its median is this many standard errors above the spw's
MIN_BLOCKS = 5  # fewer valid blocks in a row: no estimate for that row
LOCAL_HALF = 4  # first and second differences are compared with the blocks within ±4
SLOPE_SIGMAS = 4.0
SLOPE_FLOOR = 0.02  # differences of lower order reading < 2 % higher are not worth a note
_SE_MEDIAN_CHI2 = 1 / math.log(2)  # relative standard error of a chi2_2 median is this / sqrt(n)
# variance of a difference of order k of unit-variance samples: sum of squared binomial coefficients
_COEFFS = {1: (-1.0, 1.0), 2: (1.0, -2.0, 1.0), 3: (-1.0, 3.0, -3.0, 1.0)}


@dataclass
class GroupStats:
    vis: str
    spw: int
    field: str
    scan: int | None
    nrows: int
    nsamples: int
    ratio: float  # median weight x variance
    ratio_err: float  # its statistical (1-sigma) error, relative
    spread: float  # (p84 - p16) / 2 / median, of the per-row ratios
    weight_median: float
    weight_sigma2: float  # median WEIGHT * SIGMA^2 (1 when WEIGHT = 1/SIGMA^2)
    chan_width_hz: float
    exposure_s: float
    radiometer: float  # median WEIGHT / (2 dnu dt): constant across spws when weights carry 2 dnu dt
    weight_column: str
    channels: str = ""  # the channels measured, as a CASA selection ('0:0~29;46~255')
    excluded: list = field(default_factory=list)  # [{'channels': 'a~b', 'excess': x, 'sigmas': s}]
    slope: dict = field(default_factory=dict)  # {'first': excess, 'second': excess} over third differences
    reliable: bool = True
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- blocks and their powers

def block_starts(selected: np.ndarray, max_blocks: int = MAX_BLOCKS) -> np.ndarray:
    """First channels of the non-overlapping blocks of four selected, adjacent channels.

    *selected*: boolean per channel.  Blocks never straddle an unselected
    channel; on wide spws at most *max_blocks* are kept, evenly spread.
    """
    selected = np.asarray(selected, bool)
    starts, c, n = [], 0, selected.size
    run = np.zeros(n + 1, int)  # run[c]: selected channels from c on, without a gap
    for i in range(n - 1, -1, -1):
        run[i] = run[i + 1] + 1 if selected[i] else 0
    while c <= n - BLOCK:
        if run[c] >= BLOCK:
            starts.append(c)
            c += BLOCK
        else:
            c += max(1, run[c]) if run[c] else 1
    starts = np.asarray(starts, int)
    if starts.size > max_blocks:
        starts = starts[np.unique(np.round(np.linspace(0, starts.size - 1, max_blocks)).astype(int))]
    return starts


def block_powers(data, flag, weight, starts) -> dict[int, np.ndarray]:
    """``|z|²`` of the first, second and third differences of every block.

    *data*, *flag*: ``[corr, chan, row]``; *weight*: ``[corr, chan, row]``
    (spectrum) or ``[corr, row]``.  Returns ``{order: array [corr, block, row]}``
    (float32, NaN where a channel is flagged or a weight is not positive).
    """
    chans = [starts + k for k in range(BLOCK)]
    v = [data[:, c, :] for c in chans]
    bad = np.zeros(v[0].shape, bool)
    for c in chans:
        bad |= flag[:, c, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        if weight.ndim == 2:  # one weight per (corr, row): the variance is sum(coef^2) / w
            w = weight.astype(np.float32, copy=False)[:, None, :]
            inv = [np.broadcast_to(np.where(w > 0, 1.0 / w, np.inf).astype(np.float32), v[0].shape)] * BLOCK
        else:
            inv = [np.where(weight[:, c, :] > 0, 1.0 / weight[:, c, :], np.inf).astype(np.float32) for c in chans]
        out = {}
        for order, coeffs in _COEFFS.items():
            d = sum(k * x for k, x in zip(coeffs, v))
            var = sum(k * k * x for k, x in zip(coeffs, inv))
            p = ((d.real ** 2 + d.imag ** 2) / var).astype(np.float32, copy=False)
            p[bad | ~np.isfinite(var) | ~np.isfinite(p)] = np.nan
            out[order] = p
    return out


def row_ratios(p: np.ndarray, use: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Weight x variance of each (corr, row) from ``|z|²`` *p* ``[corr, block, row]``; and the samples used.

    The median over an odd number of valid blocks (the first valid block of an even
    count is left out), divided by the median of χ²₂.  *use*: blocks to use (bool).
    Rows with fewer than :data:`MIN_BLOCKS` valid blocks give NaN.
    """
    if use is not None:
        p = p[:, use, :]
    if p.shape[1] == 0:
        return np.full((p.shape[0], p.shape[2]), np.nan), 0
    valid = np.isfinite(p)
    count = valid.sum(axis=1)
    if valid.all():
        if p.shape[1] % 2 == 0:
            p = p[:, 1:, :]
        if p.shape[1] < MIN_BLOCKS:  # as below: too few blocks in every row
            return np.full((p.shape[0], p.shape[2]), np.nan), 0
        ratio = np.median(p, axis=1).astype(np.float64) / MEDIAN_CHI2_2
        return ratio, int(p.shape[1] * p.shape[0] * p.shape[2])
    even = (count % 2 == 0) & (count > 0)
    if even.any():  # drop the first valid block of rows with an even count
        first = np.argmax(valid, axis=1)
        drop = np.zeros_like(valid)
        np.put_along_axis(drop, first[:, None, :], even[:, None, :], axis=1)
        valid &= ~drop
        count = count - even
    ordered = np.sort(np.where(valid, p, np.inf), axis=1)
    mid = np.clip((count - 1) // 2, 0, p.shape[1] - 1)
    ratio = np.take_along_axis(ordered, mid[:, None, :], axis=1)[:, 0, :].astype(np.float64) / MEDIAN_CHI2_2
    ratio[count < MIN_BLOCKS] = np.nan
    return ratio, int(count[count >= MIN_BLOCKS].sum())


# --------------------------------------------------------------------------- the line and slope checks

def _block_medians(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median of ``|z|²`` over all (corr, row) of each block, and the number of samples."""
    flat = np.moveaxis(p, 1, 0).reshape(p.shape[1], -1)
    n = np.isfinite(flat).sum(axis=1)
    med = np.array([np.median(row[np.isfinite(row)]) if k else np.nan for row, k in zip(flat, n)])
    return med, n


def _running_median(values: np.ndarray, half: int) -> np.ndarray:
    """Median of each value's neighbourhood (±*half* blocks), NaNs ignored."""
    out = np.full(values.size, np.nan)
    for k in range(values.size):
        window = values[max(0, k - half):k + half + 1]
        window = window[np.isfinite(window)]
        if window.size:
            out[k] = np.median(window)
    return out


def detect_lines(powers: dict[int, np.ndarray], sigmas: float = LINE_SIGMAS):
    """Blocks whose differences scatter more than the rest of the spw (a line).

    *powers*: ``{order: |z|² [corr, block, row]}`` of many rows.  A block stands
    out when the median of its third differences exceeds that of the spw, or the
    median of its first or second differences exceeds that of its neighbours
    (±:data:`LOCAL_HALF` blocks, so that a smooth slope does not count), by more
    than *sigmas* standard errors.  The first and second differences catch what
    a third difference can cancel by coincidence (a two-channel spike in the
    ratio 3:1).  Excluded blocks grow by one block on each side (a line's
    wings), iterated to a fixed point; a block once excluded stays excluded.
    Returns (excluded (bool per block), each block's level over its reference,
    its excess in standard errors, reliable, note); when more than half of the blocks would go, only the third
    differences' exclusions are kept, and when those too cover more than half,
    nothing is excluded and the result is not reliable.
    """
    meds = {k: _block_medians(p) for k, p in powers.items()}
    nblocks = next(iter(powers.values())).shape[1]
    usable = np.isfinite(meds[3][0]) & (meds[3][1] > 0)
    if usable.sum() < 3:
        return np.zeros(nblocks, bool), np.full(nblocks, np.nan), np.full(nblocks, np.nan), True, ""

    def flagged(orders):
        out = np.zeros(nblocks, bool)
        level = sig = np.full(nblocks, np.nan)
        for _ in range(nblocks + 1):  # to a fixed point: excluding a line lowers the references
            if not (usable & ~out).any():
                break  # everything is excluded: no reference is left (the caller then falls back)
            worst_sig, worst_level = np.full(nblocks, -np.inf), np.full(nblocks, np.nan)
            for k in orders:
                med, n = meds[k]
                kept = np.where(usable & ~out, med, np.nan)
                if not np.isfinite(kept).any():
                    continue
                ref = np.full(nblocks, np.nanmedian(kept)) if k == 3 else _running_median(kept, LOCAL_HALF)
                with np.errstate(invalid="ignore", divide="ignore"):
                    lev = med / ref
                    sg = (lev - 1) / (_SE_MEDIAN_CHI2 / np.sqrt(np.maximum(n, 1)))
                better = np.isfinite(sg) & (sg > worst_sig)
                worst_sig[better], worst_level[better] = sg[better], lev[better]
            level, sig = worst_level, np.where(np.isfinite(worst_sig), worst_sig, np.nan)
            core = usable & (worst_sig > sigmas)
            grown = core.copy()
            grown[1:] |= core[:-1]
            grown[:-1] |= core[1:]
            # a block once excluded stays excluded: the exclusions only grow, so the loop ends (within
            # nblocks rounds) instead of flip-flopping when a round's exclusions change the references
            # enough to clear the blocks that caused them (a ripple in the first differences)
            if not (grown & ~out).any():
                break
            out |= grown
        return out, level, sig

    half = 0.5 * usable.sum()
    out, level, sig = flagged((3, 2, 1))
    if out.sum() <= half:
        return out, level, sig, True, ""
    out, level, sig = flagged((3,))
    note = ("first and second differences stand out over most of the spw (broad structure); only the "
            "third differences' exclusions are used")
    if out.sum() <= half:
        return out, level, sig, True, note
    return np.zeros(nblocks, bool), level, sig, False, note


def slope_check(powers: dict[int, np.ndarray], use: np.ndarray) -> dict:
    """How much more the first and second differences read than the third (pooled medians)."""
    pooled = {}
    for order, p in powers.items():
        x = p[:, use, :]
        x = x[np.isfinite(x)]
        pooled[order] = (float(np.median(x)), x.size) if x.size else (math.nan, 0)
    r3, n3 = pooled[3]
    out = {}
    for order, name in ((1, "first"), (2, "second")):
        r, _ = pooled[order]
        excess = r / r3 - 1 if r3 > 0 else math.nan
        err = _SE_MEDIAN_CHI2 * math.sqrt(2.0 / max(n3, 1))
        out[name] = {"excess": excess, "significant": bool(np.isfinite(excess) and excess > SLOPE_FLOOR
                                                            and excess > SLOPE_SIGMAS * err)}
    return out


# --------------------------------------------------------------------------- MS access

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


def measure(ct, vis: str, column: str, channels: dict[int, np.ndarray] | None, fields: list[str] | None,
            intent: str, perscan: bool, progress=None) -> list[GroupStats]:
    """:class:`GroupStats` for every (spw, field[, scan]) of *vis* in the selection.

    :param channels: spw id → boolean mask of the channels to use (None: every spw, every channel).
    """
    dd_spw, widths, names = spw_layout(ct, vis)
    states = _states_for(ct, vis, intent)
    tb = ct.table()
    out = []
    try:
        tb.open(vis)
        has_spectrum = ("WEIGHT_SPECTRUM" in tb.colnames() and tb.nrows() > 0
                        and tb.iscelldefined("WEIGHT_SPECTRUM", 0))
        weight_col = "WEIGHT_SPECTRUM" if has_spectrum else "WEIGHT"
        ddid, field_id = tb.getcol("DATA_DESC_ID"), tb.getcol("FIELD_ID")
        scan = tb.getcol("SCAN_NUMBER") if perscan else np.zeros_like(ddid)
        keys = sorted(set(zip(ddid.tolist(), field_id.tolist(), scan.tolist())))
        for dd, fid, sc in keys:
            spw = int(dd_spw[dd])
            if channels is not None and spw not in channels:
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
                group = GroupStats(vis, spw, names[fid], sc if perscan else None, sub.nrows(), 0, math.nan,
                                   math.nan, math.nan, math.nan, math.nan, widths[spw], math.nan, math.nan,
                                   weight_col)
                _measure_group(sub, group, column, None if channels is None else channels[spw], progress)
                out.append(group)
            finally:
                sub.done()
    finally:
        tb.done()
    return out


def measure_path(vis: str, column: str, channels, fields, intent: str, perscan: bool) -> list[dict]:
    """:func:`measure` of the MS at *vis*, as plain dicts: one sub-MS's part of a parallel wtcheck."""
    from almatools.casaenv import casatools
    return [g.as_dict() for g in measure(casatools(), vis, column, channels, fields, intent, perscan)]



def format_channels(spw: int, chans) -> str:
    """``3, [0, 1, 2, 5, 6]`` → ``'3:0~2;5~6'``."""
    chans = np.asarray(sorted(set(int(c) for c in chans)), int)
    if chans.size == 0:
        return ""
    breaks = np.nonzero(np.diff(chans) > 1)[0]
    lo = np.concatenate([[chans[0]], chans[breaks + 1]])
    hi = np.concatenate([chans[breaks], [chans[-1]]])
    return f"{spw}:" + ";".join(f"{a}~{b}" if a != b else f"{a}" for a, b in zip(lo, hi))


class _Accumulator:
    """Per-row ratios of one group, the line mask decided on the first rows, and the slope check."""

    def __init__(self, starts: np.ndarray):
        self.starts = starts
        self.buffer: list[dict[int, np.ndarray]] = []
        self.buffered = 0
        self.use: np.ndarray | None = None  # blocks used, once decided
        self.ratios: list[np.ndarray] = []
        self.samples = 0
        self.level = self.sig = None
        self.reliable = True
        self.slope: dict = {}
        self.note = ""

    def add(self, powers: dict[int, np.ndarray]) -> None:
        if self.use is not None:
            self._ratios(powers[3])
            return
        self.buffer.append(powers)
        self.buffered += sum(p.nbytes for p in powers.values())
        if self.buffered >= CHECK_BUFFER_BYTES:
            self._decide()

    def _decide(self) -> None:
        joined = {k: np.concatenate([b[k] for b in self.buffer], axis=2) for k in _COEFFS}
        excluded, self.level, self.sig, self.reliable, self.note = detect_lines(joined)
        self.use = ~excluded
        self.slope = slope_check(joined, self.use)
        self._ratios(joined[3])
        self.buffer, self.buffered = [], 0

    def _ratios(self, p3: np.ndarray) -> None:
        r, k = row_ratios(p3, self.use)
        self.ratios.append(r.ravel())
        self.samples += k

    def finish(self) -> np.ndarray:
        if self.use is None:
            if not self.buffer:
                return np.zeros(0)
            self._decide()
        r = np.concatenate(self.ratios) if self.ratios else np.zeros(0)
        return r[np.isfinite(r)]

    def excluded_ranges(self, spw: int) -> list[dict]:
        """Runs of excluded blocks as channel ranges, with the largest excess in each."""
        out = []
        if self.use is None:
            return out
        bad = ~self.use
        k = 0
        while k < bad.size:
            if not bad[k]:
                k += 1
                continue
            j = k
            while j + 1 < bad.size and bad[j + 1]:
                j += 1
            run = slice(k, j + 1)
            # on wide spws blocks are spread out: the unsampled channels up to the next used block go too
            lo = int(self.starts[k - 1]) + BLOCK if k > 0 else int(self.starts[k])
            hi = int(self.starts[j + 1]) - 1 if j + 1 < bad.size else int(self.starts[j]) + BLOCK - 1
            with np.errstate(invalid="ignore"):
                peak = int(k + np.nanargmax(np.where(np.isfinite(self.sig[run]), self.sig[run], -np.inf)))
            out.append({"channels": f"{lo}~{hi}", "first": lo, "last": hi,
                        "excess": float(self.level[peak] - 1), "sigmas": float(self.sig[peak])})
            k = j + 1
        return out


def _measure_group(sub, g: GroupStats, column: str, selected: np.ndarray | None, progress) -> None:
    """Fill *g* from the rows of *sub* (one group)."""
    n = g.nrows
    if n == 0:
        g.note, g.reliable = "no rows", False
        return
    cell = sub.getcell(column, 0)
    g.exposure_s = float(np.median(sub.getcol("EXPOSURE")))
    nchan = cell.shape[1]
    if selected is None:
        selected = np.ones(nchan, bool)
    elif selected.size < nchan:  # a mask shorter than the spw: the channels beyond it are not selected
        selected = np.concatenate([selected, np.zeros(nchan - selected.size, bool)])
    starts = block_starts(selected[:nchan])
    if starts.size < MIN_BLOCKS:
        g.note, g.reliable = (f"fewer than {MIN_BLOCKS} blocks of {BLOCK} adjacent selected channels: "
                              "no third differences"), False
        if progress is not None:
            progress.update(n)
        return
    per_row = cell.size * 8 * 4  # data, differences, powers and flags in single precision
    step = max(1, CHUNK_BYTES // per_row)
    acc = _Accumulator(starts)
    weights, wsig = [], []
    for first in range(0, n, step):
        count = min(step, n - first)
        data = sub.getcol(column, first, count)
        flag = sub.getcol("FLAG", first, count)
        weight = sub.getcol(g.weight_column, first, count)
        acc.add(block_powers(data, flag, weight, starts))
        w_row = sub.getcol("WEIGHT", first, count)
        s_row = sub.getcol("SIGMA", first, count)
        weights.append(w_row.ravel())
        wsig.append((w_row * s_row.astype(np.float64) ** 2).ravel())
        if progress is not None:
            progress.update(count)
    ratios = acc.finish()
    g.nsamples = acc.samples
    g.excluded = acc.excluded_ranges(g.spw)
    g.slope = acc.slope
    g.reliable = acc.reliable
    excluded_chans = np.zeros(nchan, bool)
    for e in g.excluded:
        excluded_chans[e["first"]:e["last"] + 1] = True
    g.used_mask = selected[:nchan] & ~excluded_chans  # not a field: for statwt's fitspw, not for the result
    g.channels = format_channels(g.spw, np.nonzero(g.used_mask)[0])
    wmed = float(np.median(np.concatenate(weights)))
    g.weight_median, g.weight_sigma2 = wmed, float(np.median(np.concatenate(wsig)))
    g.radiometer = wmed / (2 * g.chan_width_hz * g.exposure_s) if g.chan_width_hz and g.exposure_s else math.nan
    notes = [acc.note] if acc.note else []
    if not acc.reliable:
        notes.append("more than half of the channels stand out (a line everywhere, or weights wrong per channel): "
                     "no line-free reference; select line-free channels with spw='…'")
    if ratios.size:
        med = float(np.median(ratios))
        p16, p84 = np.percentile(ratios, [16, 84])
        g.ratio = med
        g.spread = float((p84 - p16) / 2 / med) if med else math.nan
        # the standard error of a median: sqrt(pi/2) sigma / sqrt(n)
        g.ratio_err = float(math.sqrt(math.pi / 2) * g.spread / math.sqrt(ratios.size)) if med else math.nan
    else:
        notes.append("no row has enough unflagged channels with positive weights")
        g.reliable = False
    if g.excluded:
        notes.append("excluded " + ", ".join(f"channels {e['channels']} (x{1 + e['excess']:.2f}, {e['sigmas']:.0f} sigma)"
                                             for e in g.excluded))
    for name in ("first", "second"):
        s = g.slope.get(name, {})
        if s.get("significant"):
            notes.append(f"{name} differences read {s['excess']:+.1%} (a continuum slope or curvature, a broad line's "
                         "flanks, or noise correlated between adjacent channels): third differences cancel it")
    if g.slope.get("second", {}).get("excess", 0) > 0.3:
        notes.append("structure strong even in second differences: the ratio may still be biased")
        g.reliable = False
    g.note = "; ".join(notes)
