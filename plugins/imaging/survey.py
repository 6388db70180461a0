"""The one pass over the visibilities: what the weights and the uv coverage of one MS say.

:func:`survey_ms` reads UVW, FLAG, WEIGHT and a few scalar columns of the
selected rows of *one* MeasurementSet — never a data column — in chunks of
bounded size, and returns an :class:`MsSurvey`: partial results that add up.
Surveys of the sub-MSs of a Multi-MS merge (:meth:`MsSurvey.merge`) into the
survey of the whole, so a batch engine can run this function per sub-MS and
per process; everything else imadvise does works on merged surveys.

What a survey holds, per baseline class (dish pair: ``12m``, ``7m``, ``7m+12m``):

* the natural Stokes I weights summed on the image's uv grid (:class:`.psf.WeightGrid`);
* a histogram of projected baseline lengths (rows with unflagged data), for the
  5th and 80th percentiles;
* summed weights and weight × frequency;

and per spw / field: summed weights and unflagged (row, channel) samples, the
integration times seen.  A visibility's Stokes I weight is WEIGHT of the first
plus WEIGHT of the last correlation (the parallel hands) — the inverse variance
of (XX + YY)/2 when weights are inverse variances — for every channel whose
correlations are unflagged.  WEIGHT_SPECTRUM is not read (WEIGHT is its
per-row average in data calibrated by CASA ≥ 4.4); this keeps the pass to the
columns a flag check reads anyway.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .psf import GridGeometry, WeightGrid
from .rules import C

__all__ = ["SurveyPlan", "MsSurvey", "survey_ms", "baseline_classes", "HIST_STEP", "percentile_length",
           "CHUNK_FLAG_BYTES", "longest_length", "density_units"]

CHUNK_FLAG_BYTES = 16 * 2 ** 20  # flags read per chunk (larger reads are slower: casacore tile cache, page faults)
MAX_SAMPLES_PER_CHUNK = 2 ** 22  # (row, channel block) samples gridded at once
HIST_STEP = 1e-3  # baseline-length histogram: bins of 0.1 % (natural log), from 1 m
HIST_BINS = 14000  # up to e^14 m = 1200 km


@dataclass(frozen=True)
class SurveyPlan:
    """What every MS's pass shares: the uv grid; the longest baseline (metres) of all the MSs, which
    sets how far a spw's channels spread over the grid; whether every field gets its own grids
    (mosaic gridding with ``mosweight=True`` weights every field on its own density)."""

    geometry: GridGeometry
    longest_m: float
    per_field: bool = False


@dataclass
class MsSurvey:
    """Mergeable partial results of one MS (or of one sub-MS of a Multi-MS)."""

    vis: str
    grids: dict[tuple[str, int], WeightGrid] = field(default_factory=dict)  # (class, field or -1)
    hist: dict[str, np.ndarray] = field(default_factory=dict)
    class_weight: dict[str, float] = field(default_factory=dict)
    class_wfreq: dict[str, float] = field(default_factory=dict)
    spw_weight: dict[int, float] = field(default_factory=dict)
    spw_samples: dict[int, int] = field(default_factory=dict)
    spw_possible: dict[int, int] = field(default_factory=dict)
    field_weight: dict[int, float] = field(default_factory=dict)
    intervals: Counter = field(default_factory=Counter)  # integration time (ms) -> rows
    rows: int = 0  # rows with unflagged data
    rows_read: int = 0

    def merge(self, other: "MsSurvey") -> "MsSurvey":
        """Add *other* (a survey of more rows of the same MS, e.g. another sub-MS) into this one."""
        for key, grid in other.grids.items():
            if key in self.grids:
                self.grids[key] += grid
            else:
                self.grids[key] = grid.copy()
        for name, h in other.hist.items():
            self.hist[name] = self.hist.get(name, 0) + h
        for mine, theirs in ((self.class_weight, other.class_weight), (self.class_wfreq, other.class_wfreq),
                             (self.spw_weight, other.spw_weight), (self.spw_samples, other.spw_samples),
                             (self.spw_possible, other.spw_possible), (self.field_weight, other.field_weight)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        self.intervals.update(other.intervals)
        self.rows += other.rows
        self.rows_read += other.rows_read
        return self

    @property
    def total_weight(self) -> float:
        return float(sum(self.spw_weight.values()))

    @property
    def classes(self) -> set[str]:
        return {c for c, _ in self.grids}


def density_units(surveys, classes, per_unit: bool) -> list[np.ndarray]:
    """Natural-weight grids of the baseline *classes*, summed per density unit: one per MS and field
    when *per_unit* (tclean's ``mosweight=True``), else one for everything."""
    units = {}
    for k, s in enumerate(surveys):
        for (cls, fid), grid in s.grids.items():
            if cls in classes:
                key = (k, fid) if per_unit else 0
                units[key] = units[key] + grid.data if key in units else grid.data.copy()
    return list(units.values())


def baseline_classes(dish: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """A table [antenna1, antenna2] → class index, and the class names (``12m``, ``7m+12m`` …)."""
    sizes = sorted({round(float(d), 1) for d in dish})
    names, index = [], {}
    for i, a in enumerate(sizes):
        for b in sizes[i:]:
            index[(a, b)] = len(names)
            names.append(f"{a:g}m" if a == b else f"{a:g}m+{b:g}m")
    d = np.round(np.asarray(dish, float), 1)
    table = np.zeros((len(d), len(d)), int)
    for i, a in enumerate(d):
        for j, b in enumerate(d):
            table[i, j] = index[(min(a, b), max(a, b))]
    return table, names


def percentile_length(hist: np.ndarray, q: float) -> float:
    """The *q*-th percentile (0–100) of the lengths counted in a baseline histogram, metres."""
    total = float(hist.sum())
    if total <= 0:
        return math.nan
    cum = np.cumsum(hist)
    k = int(np.searchsorted(cum, q / 100.0 * total))
    before = float(cum[k - 1]) if k else 0.0
    frac = (q / 100.0 * total - before) / float(hist[k]) if hist[k] else 0.5
    return math.exp((k + frac) * HIST_STEP)


def longest_length(hist: np.ndarray) -> float:
    """The upper edge of the longest baseline counted in a histogram, metres."""
    filled = np.flatnonzero(hist)
    return math.exp((int(filled[-1]) + 1) * HIST_STEP) if filled.size else math.nan


@dataclass
class _Blocks:
    """A spw's channels in *nb* equal blocks: channel frequencies [block, chan], selection, mean frequency."""

    freqs: np.ndarray
    selected: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @property
    def nb(self) -> int:
        return self.freqs.shape[0]


def _blocks(freqs: np.ndarray, mask: np.ndarray, spread_cells: float) -> _Blocks:
    """Split a spw's channels into equal blocks (a divisor of nchan).

    A visibility is gridded once per block, at its channels' cell when they all share one
    (the first and the last selected channel do), else channel by channel, exactly as tclean
    grids every channel.  *spread_cells* — how many cells the whole spw spans on the longest
    baseline — sets the block count near sqrt(spread x nchan), which minimises the work.
    """
    nchan = freqs.size
    want = max(1, min(nchan, round(math.sqrt(max(spread_cells, 0.0) * nchan))))
    nb = min((d for d in range(1, nchan + 1) if nchan % d == 0), key=lambda d: (abs(d - want), d))
    f, sel = freqs.reshape(nb, -1), mask.reshape(nb, -1)
    counts = sel.sum(axis=1)
    mean = np.where(counts > 0, (f * sel).sum(axis=1) / np.maximum(counts, 1), 0.0)
    lo = np.where(sel, f, np.inf).min(axis=1)
    hi = np.where(sel, f, -np.inf).max(axis=1)
    return _Blocks(freqs=f, selected=sel, mean=mean, lo=np.where(counts > 0, lo, 0.0), hi=np.where(counts > 0, hi, 0.0))


def _grid_samples(grid: WeightGrid, u_m: np.ndarray, v_m: np.ndarray, s: np.ndarray, blocks: _Blocks) -> None:
    """Grid (row, block) samples of weight *s* [row, block]; *u_m*, *v_m* per row in metres."""
    g = grid.geometry
    kl, kh = blocks.lo / C, blocks.hi / C
    same = ((np.floor(np.outer(u_m, kl) / g.du) == np.floor(np.outer(u_m, kh) / g.du))
            & (np.floor(np.outer(v_m, kl) / g.dv) == np.floor(np.outer(v_m, kh) / g.dv)))
    keep = (s > 0) & same
    r, b = np.nonzero(keep)
    grid.add(u_m[r] * kl[b], v_m[r] * kl[b], s[r, b])
    r, b = np.nonzero((s > 0) & ~same)
    if r.size:  # channel by channel, the block's weight spread over its selected channels
        k = blocks.freqs[b] / C  # [sample, chan]
        share = blocks.selected[b] / blocks.selected[b].sum(axis=1, keepdims=True)
        w = s[r, b][:, None] * share
        on = w > 0
        grid.add((u_m[r][:, None] * k)[on], (v_m[r][:, None] * k)[on], w[on])


def survey_ms(ct, vis: str, selection, meta, plan: SurveyPlan, progress=None) -> MsSurvey:
    """Survey the selected rows of one MS (see the module docstring).

    :param selection: the :class:`.msmeta.Selection` for this MS; *meta* its :class:`.msmeta.MsMeta`.
    :param progress: an :class:`almatools.log.progress` counting rows, or None.
    """
    table, names = baseline_classes(meta.dish)
    out = MsSurvey(vis=vis)
    fields = ",".join(str(f) for f in selection.field_ids)
    tb = ct.table()
    try:
        tb.open(vis)
        for spw_id, spw_sel in sorted(selection.spws.items()):
            spw = meta.spws[spw_id]
            mask = spw_sel.mask(spw.nchan)
            span = float(np.ptp(spw.freqs) + np.max(spw.widths))
            spread = plan.longest_m * span / C / min(plan.geometry.du, plan.geometry.dv)
            blocks = _blocks(spw.freqs, mask, spread)
            for dd in meta.dds_of(spw_id):
                sub = tb.query(f"DATA_DESC_ID=={dd} && FIELD_ID IN [{fields}] && ANTENNA1!=ANTENNA2 && !FLAG_ROW",
                               columns="UVW,FLAG,WEIGHT,FIELD_ID,ANTENNA1,ANTENNA2,INTERVAL")
                try:
                    _survey_rows(sub, out, spw_id, mask, blocks, table, names, plan.geometry, plan.per_field,
                                 progress)
                finally:
                    sub.done()
    finally:
        tb.done()
    return out


def _survey_rows(sub, out, spw_id, mask, blocks, table, names, geometry, per_field, progress):
    nrow = sub.nrows()
    out.spw_weight.setdefault(spw_id, 0.0)
    out.spw_samples.setdefault(spw_id, 0)
    out.spw_possible.setdefault(spw_id, 0)
    if nrow == 0:
        return
    ncorr, nchan = sub.getcell("FLAG", 0).shape
    nb, fb = blocks.nb, blocks.mean
    step = max(1, min(CHUNK_FLAG_BYTES // (ncorr * nchan), MAX_SAMPLES_PER_CHUNK // nb))
    unselected = None if mask.all() else ~mask
    for first in range(0, nrow, step):
        count = min(step, nrow - first)
        flag = sub.getcol("FLAG", first, count)  # [corr, chan, row]
        weight = sub.getcol("WEIGHT", first, count)  # [corr, row]
        uvw = sub.getcol("UVW", first, count)
        fid = sub.getcol("FIELD_ID", first, count)
        cls = table[sub.getcol("ANTENNA1", first, count), sub.getcol("ANTENNA2", first, count)]
        interval = sub.getcol("INTERVAL", first, count)
        good = _unflagged_per_block(flag, unselected, nb)  # [row, block] channels
        w_i = weight[0].astype(np.float64) + (weight[-1] if ncorr > 1 else 0.0)
        w_i[~(np.isfinite(w_i) & (w_i > 0))] = 0.0
        s = w_i[:, None] * good  # Stokes I weight per (row, block)
        row_w = s.sum(axis=1)
        used = row_w > 0
        out.spw_weight[spw_id] += float(row_w.sum())
        out.spw_samples[spw_id] += int(good[used].sum())
        out.spw_possible[spw_id] += int(count * int(mask.sum()))
        if used.any():
            field_sums = np.bincount(fid[used], weights=row_w[used])
            for f in np.flatnonzero(field_sums):
                out.field_weight[int(f)] = out.field_weight.get(int(f), 0.0) + float(field_sums[f])
        length = np.hypot(uvw[0], uvw[1])
        lbin = np.clip((np.log(np.maximum(length, 1.0)) / HIST_STEP).astype(np.int64), 0, HIST_BINS - 1)
        unit = fid if per_field else np.full_like(fid, -1)
        for k in np.unique(cls[used]):
            name = names[int(k)]
            rows = used & (cls == k)
            for f in np.unique(unit[rows]):
                these = rows & (unit == f)
                grid = out.grids.get((name, int(f)))
                if grid is None:
                    grid = out.grids[(name, int(f))] = WeightGrid(geometry)
                _grid_samples(grid, uvw[0][these], uvw[1][these], s[these], blocks)
            sk = s[rows]
            out.hist[name] = out.hist.get(name, 0) + np.bincount(lbin[rows], minlength=HIST_BINS)
            out.class_weight[name] = out.class_weight.get(name, 0.0) + float(sk.sum())
            out.class_wfreq[name] = out.class_wfreq.get(name, 0.0) + float((sk * fb).sum())
        out.intervals.update(Counter(np.round(interval[used] * 1000).astype(np.int64).tolist()))
        out.rows += int(used.sum())
        out.rows_read += count
        if progress is not None:
            progress.update(count)


def _unflagged_per_block(flag: np.ndarray, unselected, nb: int) -> np.ndarray:
    """Unflagged selected channels per (row, block); a channel counts as flagged when its correlations are.

    Flags are counted over (channel, correlation) and divided by the number of correlations,
    which is exact when all correlations of a channel share their flag (as flagdata writes them).
    """
    ncorr, nchan, nrow = flag.shape
    if unselected is not None:
        flag = flag | unselected[None, :, None]
    if not np.count_nonzero(flag):  # the common chunk: nothing flagged, no need to count per block
        return np.full((nrow, nb), float(nchan // nb))
    rows = np.ascontiguousarray(flag.T).reshape(nrow, nb, -1)  # [row, block, chan x corr]
    flagged = rows.sum(axis=2, dtype=np.int32)
    return np.maximum(nchan // nb - np.ceil(flagged / ncorr), 0.0)
