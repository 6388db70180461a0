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
           "CHUNK_FLAG_BYTES", "longest_length", "density_units",
           "survey_path"]

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
    d = np.round(np.asarray(dish, float), 1)
    sizes = sorted(set(d.tolist()))
    pairs = [(a, b) for i, a in enumerate(sizes) for b in sizes[i:]]
    names = [f"{a:g}m" if a == b else f"{a:g}m+{b:g}m" for a, b in pairs]
    k = np.searchsorted(sizes, d)  # each antenna's size index
    lo, hi = np.minimum.outer(k, k), np.maximum.outer(k, k)
    n = len(sizes)
    first = np.array([i * n - i * (i - 1) // 2 for i in range(n)])  # index of (i, i) in *pairs*
    return first[lo] + (hi - lo), names


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
    """A spw's channels in *nb* equal blocks: channel frequencies [block, chan], selection, mean frequency,
    lowest and highest selected frequency per block and of the whole spw."""

    freqs: np.ndarray
    selected: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    spw_lo: float
    spw_hi: float

    @property
    def nb(self) -> int:
        return self.freqs.shape[0]


def _blocks(freqs: np.ndarray, mask: np.ndarray, spread_cells: float) -> _Blocks:
    """Split a spw's channels into equal blocks (a divisor of nchan).

    A visibility is gridded once when all its selected channels share one uv cell (the first and
    the last do); otherwise once per block, when the block's channels share a cell; otherwise
    channel by channel — in every case in the cell tclean grids each channel into.
    *spread_cells* — how many cells the whole spw spans on the longest baseline — sets the block
    count near sqrt(spread x nchan), which keeps the straddling blocks' channels few.
    """
    nchan = freqs.size
    want = max(1, min(nchan, round(math.sqrt(max(spread_cells, 0.0) * nchan))))
    nb = min((d for d in range(1, nchan + 1) if nchan % d == 0), key=lambda d: (abs(d - want), d))
    f, sel = freqs.reshape(nb, -1), mask.reshape(nb, -1)
    counts = sel.sum(axis=1)
    mean = np.where(counts > 0, (f * sel).sum(axis=1) / np.maximum(counts, 1), 0.0)
    lo = np.where(sel, f, np.inf).min(axis=1)
    hi = np.where(sel, f, -np.inf).max(axis=1)
    return _Blocks(freqs=f, selected=sel, mean=mean, lo=np.where(counts > 0, lo, 0.0),
                   hi=np.where(counts > 0, hi, 0.0), spw_lo=float(freqs[mask].min()), spw_hi=float(freqs[mask].max()))


def _one_cell(g: GridGeometry, u_m, v_m, k_lo, k_hi) -> np.ndarray:
    """Whether a visibility's channels from k_lo to k_hi (frequency / c) all fall into one uv cell."""
    return ((np.floor(np.multiply.outer(u_m, k_lo) / g.du) == np.floor(np.multiply.outer(u_m, k_hi) / g.du))
            & (np.floor(np.multiply.outer(v_m, k_lo) / g.dv) == np.floor(np.multiply.outer(v_m, k_hi) / g.dv)))


def _grid_rows(grid: WeightGrid, u_m, v_m, row_w, straddle, s_blocks, blocks: _Blocks) -> None:
    """Grid the rows of one (class, field): rows whose selected channels share a uv cell once, with their
    whole weight *row_w*; the others (*straddle*) block by block from *s_blocks* [straddling row, block],
    and a block whose channels straddle cells channel by channel."""
    g = grid.geometry
    k0 = blocks.spw_lo / C
    one = ~straddle & (row_w > 0)
    grid.add(u_m[one] * k0, v_m[one] * k0, row_w[one])
    if not straddle.any():
        return
    u_m, v_m = u_m[straddle], v_m[straddle]
    kl, kh = blocks.lo / C, blocks.hi / C
    same = _one_cell(g, u_m, v_m, kl, kh)
    r, b = np.nonzero((s_blocks > 0) & same)
    grid.add(u_m[r] * kl[b], v_m[r] * kl[b], s_blocks[r, b])
    r, b = np.nonzero((s_blocks > 0) & ~same)
    if r.size:  # channel by channel, the block's weight spread over its selected channels
        k = blocks.freqs[b] / C  # [sample, chan]
        share = blocks.selected[b] / blocks.selected[b].sum(axis=1, keepdims=True)
        w = s_blocks[r, b][:, None] * share
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
                    _survey_rows(sub, out, spw_id, mask, blocks, table, names, selection.field_ids, plan.geometry,
                                 plan.per_field, progress)
                finally:
                    sub.done()
    finally:
        tb.done()
    return out


def survey_path(vis: str, selection, plan: SurveyPlan) -> MsSurvey:
    """:func:`survey_ms` of the MS at *vis* — one sub-MS's part of a Multi-MS — with its own metadata.

    The target of ``almatools.batch.mms.map_parts``: its arguments and result pickle, and the surveys of
    all sub-MSs merge (:meth:`MsSurvey.merge`) into the survey of the Multi-MS.  Sub-MSs share the
    subtables, so the parent's field and spw *selection* holds in each.
    """
    from almatools.casaenv import casatools
    from .msmeta import read_meta
    ct = casatools()
    return survey_ms(ct, vis, selection, read_meta(ct, vis), plan)


def _survey_rows(sub, out, spw_id, mask, blocks, table, names, fields, geometry, per_field, progress):
    nrow = sub.nrows()
    out.spw_weight.setdefault(spw_id, 0.0)
    out.spw_samples.setdefault(spw_id, 0)
    out.spw_possible.setdefault(spw_id, 0)
    if nrow == 0:
        return
    ncorr, nchan = sub.getcell("FLAG", 0).shape
    nsel = int(mask.sum())
    f_mean = float(spw_freqs_mean(blocks))
    step = max(1, min(CHUNK_FLAG_BYTES // (ncorr * nchan), MAX_SAMPLES_PER_CHUNK // blocks.nb))
    unselected = None if mask.all() else ~mask
    k_lo, k_hi = blocks.spw_lo / C, blocks.spw_hi / C
    # columns that cannot vary need no reading: one field selected, one dish size
    columns = ["FLAG", "WEIGHT", "UVW", "INTERVAL"] + (["FIELD_ID"] if len(fields) > 1 else []) + (
        ["ANTENNA1", "ANTENNA2"] if len(names) > 1 else [])
    for count, c in _chunks(sub, nrow, step, columns):
        flag, weight, uvw = c["FLAG"], c["WEIGHT"], c["UVW"]  # [corr, chan, row], [corr, row], [uvw, row]
        fid = c["FIELD_ID"] if len(fields) > 1 else np.full(count, fields[0])
        if unselected is not None:
            flag = flag | unselected[None, :, None]
        cls = table[c["ANTENNA1"], c["ANTENNA2"]] if len(names) > 1 else np.zeros(count, int)
        w_i = weight[0].astype(np.float64) + (weight[-1] if ncorr > 1 else 0.0)
        w_i[~(np.isfinite(w_i) & (w_i > 0))] = 0.0
        good = nchan - _flagged_per_row(flag)  # unflagged selected channels per row (unselected count as flagged)
        row_w = w_i * good  # Stokes I weight per row
        used = row_w > 0
        # rows whose channels spread over more than one uv cell need their flags per block
        straddle = used & ~_one_cell(geometry, uvw[0], uvw[1], k_lo, k_hi)
        s_blocks = w_i[straddle, None] * _unflagged_per_block(flag[:, :, straddle], blocks.nb)
        out.spw_weight[spw_id] += float(row_w.sum())
        out.spw_samples[spw_id] += int(good[used].sum())
        out.spw_possible[spw_id] += count * nsel
        if used.any():
            field_sums = np.bincount(fid[used], weights=row_w[used])
            for f in np.flatnonzero(field_sums):
                out.field_weight[int(f)] = out.field_weight.get(int(f), 0.0) + float(field_sums[f])
        length = np.hypot(uvw[0], uvw[1])
        lbin = np.clip((np.log(np.maximum(length, 1.0)) / HIST_STEP).astype(np.int64), 0, HIST_BINS - 1)
        unit = fid if per_field else None
        for k in np.unique(cls[used]):
            name = names[int(k)]
            rows = used & (cls == k)
            for f in (np.unique(unit[rows]) if per_field else (-1,)):
                these = rows & (unit == f) if per_field else rows
                grid = out.grids.get((name, int(f)))
                if grid is None:
                    grid = out.grids[(name, int(f))] = WeightGrid(geometry)
                _grid_rows(grid, uvw[0][these], uvw[1][these], row_w[these], straddle[these],
                           s_blocks[these[straddle]], blocks)
            out.hist[name] = out.hist.get(name, 0) + np.bincount(lbin[rows], minlength=HIST_BINS)
            weight_k = float(row_w[rows].sum())
            out.class_weight[name] = out.class_weight.get(name, 0.0) + weight_k
            out.class_wfreq[name] = out.class_wfreq.get(name, 0.0) + weight_k * f_mean
        ms_int, n_int = np.unique(np.round(c["INTERVAL"][used] * 1000).astype(np.int64), return_counts=True)
        out.intervals.update(dict(zip(ms_int.tolist(), n_int.tolist())))
        out.rows += int(used.sum())
        out.rows_read += count
        if progress is not None:
            progress.update(count)


def spw_freqs_mean(blocks: _Blocks) -> float:
    """Mean frequency of a spw's selected channels."""
    return float((blocks.freqs * blocks.selected).sum() / blocks.selected.sum())


def _chunks(sub, nrow: int, step: int, columns):
    """Yield (count, {column: values}) chunk by chunk, the next chunk read in a thread meanwhile.

    The table tool releases the GIL while it reads, so the survey of one chunk (a few ms of numpy)
    overlaps the read of the next: the wall time is the read's.  One chunk ahead bounds the memory.
    """
    from concurrent.futures import ThreadPoolExecutor

    def read(first):
        count = min(step, nrow - first)
        return count, {c: sub.getcol(c, first, count) for c in columns}

    starts = range(0, nrow, step)
    if len(starts) < 2:
        for first in starts:
            yield read(first)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="imadvise-read") as pool:
        ahead = pool.submit(read, starts[0])
        for nxt in list(starts[1:]) + [None]:
            current = ahead.result()
            ahead = pool.submit(read, nxt) if nxt is not None else None
            yield current


def _flagged_per_row(flag: np.ndarray) -> np.ndarray:
    """Flagged channels per row; a channel counts as flagged when its correlations are.

    Flags are counted over (channel, correlation) and divided by the number of correlations,
    which is exact when all correlations of a channel share their flag (as flagdata writes them).
    Flags are one byte each: summing them eight at a time as 64-bit words (at most 255 words per
    sum, so no byte overflows) costs a fraction of reading them.
    """
    ncorr, nchan, nrow = flag.shape
    rows = np.ascontiguousarray(flag.T).reshape(nrow, nchan * ncorr)  # a view for the table tool's arrays
    if rows.shape[1] % 8 == 0:
        words = rows.view(np.uint64)
        nw = words.shape[1]
        groups = next(g for g in range(math.ceil(nw / 255), nw + 1) if nw % g == 0)
        lanes = words.reshape(nrow, groups, nw // groups).sum(axis=2, dtype=np.uint64)
        total = lanes.view(np.uint8).reshape(nrow, groups * 8).sum(axis=1, dtype=np.int64)
    else:
        total = np.count_nonzero(rows, axis=1)
    return np.ceil(total / ncorr)


def _unflagged_per_block(flag: np.ndarray, nb: int) -> np.ndarray:
    """Unflagged channels per (row, block) of a few rows, the same rule as :func:`_flagged_per_row`."""
    ncorr, nchan, nrow = flag.shape
    if nrow == 0:
        return np.zeros((0, nb))
    rows = np.ascontiguousarray(flag.T).reshape(nrow, nb, -1)  # [row, block, chan x corr]
    return np.maximum(nchan // nb - np.ceil(rows.sum(axis=2, dtype=np.int32) / ncorr), 0.0)
