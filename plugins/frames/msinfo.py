"""What frame conversion needs from a MeasurementSet, read once with casatools tables.

Spectral windows (channel frequencies and widths, names, native frame),
fields (names, phase centres), the observatory and the times each field was
observed.  The observatory rule is CASA's own (``MSUtil``): the tabulated
position of ``OBSERVATION.TELESCOPE_NAME`` when CASA knows it, else the first
antenna's position.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from .convert import FRAMES

__all__ = ["SpwInfo", "FieldInfo", "MsInfo", "read_msinfo"]


@dataclass
class SpwInfo:
    id: int
    name: str
    chan_freq: np.ndarray  #: Hz, native frame
    chan_width: np.ndarray  #: Hz (may be negative)
    frame: str  #: native frame (``MEAS_FREQ_REF``)

    @property
    def nchan(self) -> int:
        return int(self.chan_freq.size)

    @property
    def edges(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) edge of every channel, Hz."""
        half = 0.5 * np.abs(self.chan_width)
        return self.chan_freq - half, self.chan_freq + half


@dataclass
class FieldInfo:
    id: int
    name: str
    ref: str
    lon_rad: float
    lat_rad: float

    def direction(self, me):
        return me.direction(self.ref, f"{self.lon_rad}rad", f"{self.lat_rad}rad")


@dataclass
class MsInfo:
    path: str
    spws: dict[int, SpwInfo]
    fields: dict[int, FieldInfo]
    telescope: str
    antenna0_itrf: tuple[float, float, float]
    _time: np.ndarray = field(repr=False, default=None)
    _field_id: np.ndarray = field(repr=False, default=None)
    _spw_of_row: np.ndarray = field(repr=False, default=None)
    _target_row: np.ndarray = field(repr=False, default=None)  #: row has an OBSERVE_TARGET intent
    _factor_cache: dict = field(repr=False, default_factory=dict)  #: frame factors per (field, from, to)

    def site(self, me):
        """The observer position CASA's MSUtil uses for this MS."""
        names = {n.upper(): n for n in me.obslist()}
        if self.telescope and self.telescope.upper() in names:
            return me.observatory(names[self.telescope.upper()])
        x, y, z = self.antenna0_itrf
        return me.position("ITRF", f"{x}m", f"{y}m", f"{z}m")

    def times(self, field_id: int, spw_id: int | None = None) -> np.ndarray:
        """Sorted unique row times (MJD s) of a field (and spw, if given)."""
        sel = self._field_id == field_id
        if spw_id is not None:
            sel &= self._spw_of_row == spw_id
        return np.unique(self._time[sel])

    def field_ids_named(self, name: str) -> list[int]:
        want = name.strip().strip("'\"")
        return [f.id for f in self.fields.values() if f.name == want]

    def spw_ids_named(self, name: str) -> list[int]:
        return [s.id for s in self.spws.values() if s.name == name]

    def target_fields(self) -> list[int]:
        """Fields observed with an ``OBSERVE_TARGET`` intent; every observed field when the MS has no intents."""
        observed = sorted(int(f) for f in np.unique(self._field_id))
        if self._target_row is None or not self._target_row.any():
            return observed
        return sorted(int(f) for f in np.unique(self._field_id[self._target_row]))

    def observed_spws(self) -> list[int]:
        return sorted(int(s) for s in np.unique(self._spw_of_row))


def _frame_codes(tb) -> dict[int, str]:
    """MEAS_FREQ_REF code → frame name, as the MS itself records it (CHAN_FREQ's MEASINFO keyword);
    casacore's MFrequency order (:data:`~.convert.FRAMES`) when the keyword is missing."""
    try:
        info = tb.getcolkeyword("CHAN_FREQ", "MEASINFO")
        codes = {int(c): str(t).upper() for c, t in zip(info["TabRefCodes"], info["TabRefTypes"])}
    except (RuntimeError, KeyError, TypeError):  # a hand-made table without the keyword
        codes = {}
    return {k: v for k, v in codes.items() if v in FRAMES} or dict(enumerate(FRAMES))


def read_msinfo(vis: str) -> MsInfo:
    """Read the metadata of *vis* (a MeasurementSet directory)."""
    from almatools.casaenv import casatools
    if not os.path.isdir(vis):
        raise FileNotFoundError(f"{vis!r} is not a MeasurementSet directory")
    tb = casatools().table()
    try:
        tb.open(os.path.join(vis, "SPECTRAL_WINDOW"))
        names_of = _frame_codes(tb)
        spws = {}
        for i in range(tb.nrows()):
            ref = int(tb.getcell("MEAS_FREQ_REF", i))
            spws[i] = SpwInfo(id=i, name=str(tb.getcell("NAME", i)),
                              chan_freq=np.asarray(tb.getcell("CHAN_FREQ", i), float),
                              chan_width=np.asarray(tb.getcell("CHAN_WIDTH", i), float),
                              frame=names_of.get(ref, f"UNDEFINED (code {ref})"))
        tb.close()
        tb.open(os.path.join(vis, "FIELD"))
        try:
            ref = str(tb.getcolkeyword("PHASE_DIR", "MEASINFO").get("Ref", "J2000"))
        except Exception:  # noqa: BLE001 - keyword missing in hand-made tables: CASA assumes J2000
            ref = "J2000"
        fields = {}
        for i in range(tb.nrows()):
            d = np.asarray(tb.getcell("PHASE_DIR", i), float)
            fields[i] = FieldInfo(id=i, name=str(tb.getcell("NAME", i)), ref=ref,
                                  lon_rad=float(d[0, 0]), lat_rad=float(d[1, 0]))
        tb.close()
        tb.open(os.path.join(vis, "DATA_DESCRIPTION"))
        dd_spw = np.asarray(tb.getcol("SPECTRAL_WINDOW_ID"), int) if tb.nrows() else np.zeros(0, int)
        tb.close()
        tb.open(os.path.join(vis, "ANTENNA"))
        pos = tb.getcell("POSITION", 0) if tb.nrows() else (0.0, 0.0, 0.0)
        tb.close()
        tb.open(vis)
        time = np.asarray(tb.getcol("TIME"), float)
        field_id = np.asarray(tb.getcol("FIELD_ID"), int)
        dd = np.asarray(tb.getcol("DATA_DESC_ID"), int)
        obs0 = int(tb.getcell("OBSERVATION_ID", 0)) if tb.nrows() else 0
        state = np.asarray(tb.getcol("STATE_ID"), int) if "STATE_ID" in tb.colnames() else None
        tb.close()
        target_row = None
        if state is not None and os.path.isdir(os.path.join(vis, "STATE")):
            tb.open(os.path.join(vis, "STATE"))
            modes = [str(m) for m in tb.getcol("OBS_MODE")] if tb.nrows() else []
            tb.close()
            is_target = np.array(["OBSERVE_TARGET" in m for m in modes] + [False], bool)  # index -1: no state
            target_row = is_target[np.where((state >= 0) & (state < len(modes)), state, -1)]
        tb.open(os.path.join(vis, "OBSERVATION"))
        telescope = str(tb.getcell("TELESCOPE_NAME", obs0)) if tb.nrows() > obs0 else ""
        tb.close()
    finally:
        tb.done()
    return MsInfo(path=vis, spws=spws, fields=fields, telescope=telescope,
                  antenna0_itrf=tuple(float(p) for p in pos), _time=time, _field_id=field_id,
                  _spw_of_row=dd_spw[dd] if dd.size else dd, _target_row=target_row)
