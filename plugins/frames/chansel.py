"""cont.dat frequency ranges ⇄ per-MS channel selections.

**The partial-channel rule** (``partial='overlap'``, the default) is CASA's
own, from ``synthesisutils.advisechansel`` (casacore/casa6
``MSUtil::getSpwInFreqRange`` + ``MSSpwIndex::matchFrequencyRange``): the
range is converted from its frame to the MS frame at every time the field was
observed; the lowest converted start and the highest converted end, widened
by ``freqstep/2`` each side, form the MS-frame interval; a channel is selected
when *any part* of it (centre ± |width|/2) lies strictly inside that
interval.  So channels only partly inside a range, at any time, are
included.  A spw is only matched when an end of the interval falls strictly
between its first and last channel centres, or the interval covers the spw.
``partial='advisechansel'`` asks CASA itself (one call per range and field);
``partial='inside'`` keeps only channels lying entirely inside the range at
every time (conservative, for fits that must avoid line wings).  Ranges in
the ``SOURCE`` frame (ephemeris targets) always go to CASA's advisechansel
with ``ephemtable='TRACKFIELD'``.

The reverse, :func:`channels_to_ranges`, gives for each channel range the
frequency interval its channel edges cover in the output frame over the whole
observation (lowest edge at any time to highest edge at any time), as
``advisechansel(getfreqrange=True)`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .convert import frame_factors

__all__ = ["PARTIAL_RULES", "RangeResult", "range_to_channels", "channels_to_ranges", "spw_range_hz"]

PARTIAL_RULES = ("overlap", "advisechansel", "inside")


@dataclass
class RangeResult:
    lo_hz: float
    hi_hz: float
    frame: str
    chans: tuple[int, int] | None  #: (start, stop) in the MS spw, or None when outside it
    ms_lo_hz: float | None = None  #: the interval in the MS frame (overlap / inside rules)
    ms_hi_hz: float | None = None
    notes: list[str] = field(default_factory=list)


def _factors_for(msinfo, field_id, frame_from, frame_to, me):
    """Frame factors at the times *field_id* was observed, computed once per (field, frames) and MS.

    At most :data:`~.msmode.MAX_TIMES` times (evenly spread, ends kept): the shift is smooth in time,
    and a long or concatenated MS must not cost one measures call per integration per range.
    """
    key = (field_id, frame_from.upper(), frame_to.upper())
    if key not in msinfo._factor_cache:
        msinfo._factor_cache[key] = _compute_factors(msinfo, field_id, frame_from, frame_to, me)
    return msinfo._factor_cache[key]


def _compute_factors(msinfo, field_id, frame_from, frame_to, me):
    from .msmode import sample_times
    times = msinfo.times(field_id)
    if times.size == 0:
        raise ValueError(f"field {field_id} ({msinfo.fields[field_id].name}) has no rows in {msinfo.path}")
    if frame_from.upper() == frame_to.upper():
        return np.ones(1)
    times = sample_times(times)
    own = me is None
    if own:
        from almatools.casaenv import casatools
        me = casatools().measures()
    try:
        return frame_factors(frame_from, frame_to, times, msinfo.fields[field_id].direction(me),
                             msinfo.site(me), me=me)
    finally:
        if own:
            me.done()


def range_to_channels(msinfo, field_id: int, spw_id: int, lo_hz: float, hi_hz: float, frame: str,
                      partial: str = "overlap", freqstep: float = 100.0, me=None) -> RangeResult:
    """Channels of spw *spw_id* covered by ``[lo_hz, hi_hz]`` (given in *frame*).

    See the module docstring for the rules.  *freqstep* (Hz) pads the
    interval by half a step each side, as in CASA (the pipeline uses 100 Hz).
    """
    spw = msinfo.spws[spw_id]
    res = RangeResult(lo_hz, hi_hz, frame.upper(), None)
    if partial == "advisechansel" or frame.upper() == "SOURCE":
        # SOURCE (the rest frame of an ephemeris object) needs the field's ephemeris: CASA only
        if frame.upper() == "SOURCE":
            res.notes.append("SOURCE frame: channels from CASA's advisechansel with the field's ephemeris")
        res.chans = _advisechansel(msinfo, field_id, spw_id, lo_hz, hi_hz, frame, freqstep)
        return res
    fac = _factors_for(msinfo, field_id, frame, spw.frame, me)
    cf, half = spw.chan_freq, 0.5 * np.abs(spw.chan_width)
    if partial == "overlap":
        f0 = lo_hz * fac.min() - 0.5 * freqstep
        f1 = hi_hz * fac.max() + 0.5 * freqstep
        res.ms_lo_hz, res.ms_hi_hz = float(f0), float(f1)
        cmin, cmax = cf.min(), cf.max()
        ends_inside = (cmin < f0 < cmax) or (cmin < f1 < cmax)
        covers = f0 < cmin and f1 > cmax
        if not (ends_inside or covers):
            return res
        sel = np.nonzero((cf + half > f0) & (cf - half < f1))[0]
    elif partial == "inside":
        f0, f1 = lo_hz * fac.max(), hi_hz * fac.min()
        res.ms_lo_hz, res.ms_hi_hz = float(f0), float(f1)
        sel = np.nonzero((cf - half >= f0) & (cf + half <= f1))[0]
    else:
        raise ValueError(f"unknown partial-channel rule {partial!r}; known: {', '.join(PARTIAL_RULES)}")
    if sel.size:
        res.chans = (int(sel.min()), int(sel.max()))
    return res


def _advisechansel(msinfo, field_id, spw_id, lo_hz, hi_hz, frame, freqstep):
    from almatools.casaenv import casatools
    su = casatools().synthesisutils()
    try:
        extra = {"ephemtable": "TRACKFIELD"} if frame.upper() == "SOURCE" else {}
        r = su.advisechansel(msname=msinfo.path, fieldid=int(field_id), spwselection=str(spw_id),
                             freqstart=float(lo_hz), freqend=float(hi_hz), freqstep=float(freqstep),
                             freqframe=frame.upper(), **extra)
    finally:
        su.done()
    # advisechansel answers for every spw the range touches: keep the one asked for
    for s, start, n in zip(np.atleast_1d(r.get("spw", [])), np.atleast_1d(r.get("start", [])),
                           np.atleast_1d(r.get("nchan", []))):
        if int(s) == spw_id and int(n) > 0:
            return int(start), int(start) + int(n) - 1
    return None


def channels_to_ranges(msinfo, field_ids, spw_id: int, chan_ranges, outframe: str = "LSRK", me=None):
    """``[(start, stop), …]`` channels → ``[(lo_hz, hi_hz), …]`` in *outframe*.

    Each interval runs from the lowest channel edge at any observed time of the
    fields to the highest (the union over the observation).
    """
    spw = msinfo.spws[spw_id]
    lo_e, hi_e = spw.edges
    facs = np.concatenate([_factors_for(msinfo, f, spw.frame, outframe, me) for f in field_ids])
    out = []
    for a, b in chan_ranges:
        if not (0 <= a <= b < spw.nchan):
            raise ValueError(f"channels {a}~{b} are not inside spw {spw_id} (0~{spw.nchan - 1}) of {msinfo.path}")
        lo = float(lo_e[a:b + 1].min())
        hi = float(hi_e[a:b + 1].max())
        out.append((lo * facs.min(), hi * facs.max()))
    return out


def spw_range_hz(msinfo, field_id, spw_id, frame, me=None) -> tuple[float, float]:
    """Lowest and highest channel edge of a spw in *frame* over the observation."""
    spw = msinfo.spws[spw_id]
    lo_e, hi_e = spw.edges
    fac = _factors_for(msinfo, field_id, spw.frame, frame, me)
    return float(lo_e.min() * fac.min()), float(hi_e.max() * fac.max())
