"""Channel frequencies of an MS in another frame across the observation: table and plot."""

from __future__ import annotations

import os

import numpy as np

from almatools.io import atomic_path

from .convert import convert_frequencies, frame_factors, mjd_seconds_to_iso

__all__ = ["SpwTrack", "track_spw", "write_track_table", "plot_tracks", "sample_times"]

MAX_TIMES = 2000  # beyond this, times are sampled evenly (ends kept): the shift is smooth in time


class SpwTrack:
    """Frequencies of one spw's channels in *frame* at each sampled time.

    Every channel's frequency is its native frequency times one factor per time, so
    nothing of size times x channels is ever formed: memory is O(times + channels).
    """

    def __init__(self, spw, field, frame, times, factors):
        self.spw, self.field, self.frame = spw, field, frame
        self.times = times
        self.factors = np.asarray(factors, float)

    def at(self, k: int) -> np.ndarray:
        """Every channel's frequency at the *k*-th time."""
        return convert_frequencies(self.spw.chan_freq, self.factors[k:k + 1])[0]

    def channel(self, ch: int) -> np.ndarray:
        """One channel's frequency at every time."""
        return convert_frequencies(self.spw.chan_freq[ch], self.factors)

    @property
    def fmin(self):  # frequencies are positive: the extremes come from the extreme factors
        return self.spw.chan_freq * self.factors.min()

    @property
    def fmax(self):
        return self.spw.chan_freq * self.factors.max()

    @property
    def drift_hz(self):
        return self.fmax - self.fmin

    @property
    def drift_channels(self):
        return self.drift_hz / np.abs(self.spw.chan_width)

    def summary(self) -> dict:
        d = self.drift_channels
        return {"spw": self.spw.id, "name": self.spw.name, "field": self.field.name, "field_id": self.field.id,
                "nchan": self.spw.nchan, "native_frame": self.spw.frame, "frame": self.frame,
                "ntimes": int(self.times.size), "start": mjd_seconds_to_iso(self.times[0])[0],
                "end": mjd_seconds_to_iso(self.times[-1])[0],
                "freq_first_hz": self.at(0).tolist(),
                "freq_min_hz": self.fmin.tolist(), "freq_max_hz": self.fmax.tolist(),
                "drift_hz_max": float(self.drift_hz.max()), "drift_channels_max": float(d.max()),
                "shift_hz_first_channel": [float(self.channel(0)[0] - self.spw.chan_freq[0]),
                                           float(self.channel(0)[-1] - self.spw.chan_freq[0])]}


def sample_times(times: np.ndarray, maxn: int = MAX_TIMES) -> np.ndarray:
    if times.size <= maxn:
        return times
    idx = np.unique(np.round(np.linspace(0, times.size - 1, maxn)).astype(int))
    return times[idx]


def track_spw(msinfo, field_id: int, spw_id: int, frame: str, me) -> SpwTrack:
    spw, fld = msinfo.spws[spw_id], msinfo.fields[field_id]
    times = msinfo.times(field_id, spw_id)
    if times.size == 0:
        raise ValueError(f"spw {spw_id} has no rows for field {field_id} ({fld.name}) in {msinfo.path}")
    times = sample_times(times)
    fac = frame_factors(spw.frame, frame, times, fld.direction(me), msinfo.site(me), me=me)
    return SpwTrack(spw, fld, frame.upper(), times, fac)


def _refuse_existing(path: str, overwrite: bool) -> None:
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; set overwrite=True to replace it")


def times_table_path(path: str) -> str:
    """``drift.ecsv`` → ``drift.times.ecsv``: where the frequency-versus-time table goes."""
    root, ext = os.path.splitext(path)
    return f"{root}.times{ext}"


def write_track_table(tracks, path: str, overwrite: bool = False, vis: str = "") -> list[str]:
    """Write two tables (ECSV with units and metadata when *path* ends in ``.ecsv``, CSV otherwise).

    *path*: one row per (spw, channel) — native frequency, frequency in the frame at the first
    time, its minimum and maximum over the observation, the drift in Hz and in channels.
    ``<root>.times<ext>``: frequency versus time — one row per (spw, time) with the time, the
    conversion factor (any channel's frequency is its native frequency times this factor) and
    the first, centre and last channel's frequency in the frame.
    Returns both paths.
    """
    from astropy.table import Table, vstack
    import astropy.units as u

    fr = tracks[0].frame.lower()
    parts, tparts = [], []
    for t in tracks:
        tab = Table()
        tab["spw"] = np.full(t.spw.nchan, t.spw.id)
        tab["channel"] = np.arange(t.spw.nchan)
        tab[f"freq_{t.spw.frame.lower()}"] = t.spw.chan_freq * u.Hz
        tab[f"freq_{fr}_first"] = t.at(0) * u.Hz
        tab[f"freq_{fr}_min"] = t.fmin * u.Hz
        tab[f"freq_{fr}_max"] = t.fmax * u.Hz
        tab["drift"] = t.drift_hz * u.Hz
        tab["drift_channels"] = t.drift_channels
        parts.append(tab)
        tt = Table()
        tt["spw"] = np.full(t.times.size, t.spw.id)
        tt["time_utc"] = mjd_seconds_to_iso(t.times)
        tt["mjd_s"] = t.times * u.s
        tt["factor"] = t.factors
        mid = t.spw.nchan // 2
        tt["centre_channel"] = np.full(t.times.size, mid)
        for label, ch in (("first", 0), ("centre", mid), ("last", t.spw.nchan - 1)):
            tt[f"freq_{fr}_{label}_channel"] = t.channel(ch) * u.Hz
        tparts.append(tt)
    first = tracks[0]
    meta = {"vis": os.path.abspath(vis) if vis else "", "frame": first.frame, "field": first.field.name,
            "start": mjd_seconds_to_iso(first.times[0])[0], "end": mjd_seconds_to_iso(first.times[-1])[0]}
    fmt = "ascii.ecsv" if path.lower().endswith(".ecsv") else "ascii.csv"
    for target in (path, times_table_path(path)):
        if os.path.exists(target) and not overwrite:
            raise FileExistsError(f"{target} exists; set overwrite=True to replace it")
    written = []
    for table, target in ((vstack(parts), path), (vstack(tparts), times_table_path(path))):
        table.meta.update(meta)
        _refuse_existing(target, overwrite)
        with atomic_path(target) as tmp:
            table.write(tmp, format=fmt, overwrite=True)
        written.append(target)
    return written


def plot_tracks(tracks, path: str, title: str = "", overwrite: bool = False) -> str:
    """PNG: each spw's centre-channel frequency in the frame versus time (offset from its first value),
    with the largest drift in channels in the legend."""
    from almatools import plotting
    _refuse_existing(path, overwrite)
    with plotting.style():
        fig = plotting.figure(8, 4.8)
        ax = fig.add_subplot(1, 1, 1)
        t0 = tracks[0].times[0]
        for k, t in enumerate(tracks):
            mid = t.spw.nchan // 2
            hours = (t.times - t0) / 3600.0
            track = t.channel(mid)
            shift_khz = (track - track[0]) / 1e3
            style = plotting.series(k, marker=True)
            ax.plot(hours, shift_khz, ms=3, color=style["color"], linestyle=style["linestyle"], marker=style["marker"],
                    label=f"spw {t.spw.id}, channel {mid} ({t.spw.chan_freq[mid] / 1e9:.4f} GHz {t.spw.frame}): "
                          f"drift {t.drift_channels.max():.3f} channels")
        ax.set_xlabel(f"hours since {mjd_seconds_to_iso(t0)[0]} UTC")
        ax.set_ylabel(f"{tracks[0].frame} frequency − first value (kHz)")
        ax.axhline(0, color=plotting.NEUTRAL["light"], lw=0.6)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), borderaxespad=0.0, ncols=1, fontsize=7)
        ax.set_title(title or f"{tracks[0].frame} frequency drift of each spw's centre channel, "
                              f"field {tracks[0].field.name}")
        plotting.save(fig, path)
    return path


def first_time_frequencies(vis: str, spw_id: int, field_id: int, frame: str) -> np.ndarray:
    """Channel frequencies of one spw in *frame* at the earliest row time of the field and spw.

    The quantity ``ms.cvelfreqs(spwids=[spw], fieldids=[field], outframe=frame)`` returns for a
    spw's native grid (same observatory, direction and time rules).
    """
    from almatools.casaenv import casatools
    from .msinfo import read_msinfo
    info = read_msinfo(vis)
    spw, fld = info.spws[spw_id], info.fields[field_id]
    t = info.times(field_id, spw_id)[:1]
    me = casatools().measures()
    try:
        fac = frame_factors(spw.frame, frame, t, fld.direction(me), info.site(me), me=me)
    finally:
        me.done()
    return spw.chan_freq * fac[0]
