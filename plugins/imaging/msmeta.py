"""What imadvise needs to know about a MeasurementSet before reading any visibility.

Subtables (antennas and dishes, spws with their channel widths and effective
bandwidths, correlations, fields, intents) and the distinct (field, data
description, state) combinations of the main table, read with the casatools
table tool; the user's ``field``/``spw`` strings go through CASA's own
selection parser (``ms.msseltoindex``), so every CASA selection form works.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

__all__ = ["SpwMeta", "FieldMeta", "MsMeta", "SpwSelection", "Selection", "read_meta", "select"]


@dataclass
class SpwMeta:
    id: int
    name: str
    freqs: np.ndarray  # Hz, channel centres
    widths: np.ndarray  # Hz, absolute
    effective_bw: np.ndarray  # Hz
    resolution: np.ndarray  # Hz

    @property
    def nchan(self) -> int:
        return int(self.freqs.size)

    @property
    def mean_freq(self) -> float:
        return float(np.mean(self.freqs))


@dataclass
class FieldMeta:
    id: int
    name: str
    ra: float  # radians
    dec: float
    frame: str
    source_id: int


@dataclass
class MsMeta:
    path: str
    columns: list[str]
    nrows: int
    antenna_names: list[str]
    dish: np.ndarray  # metres, per antenna
    positions: np.ndarray  # [antenna, xyz] metres
    spws: dict[int, SpwMeta]
    dd_spw: np.ndarray
    dd_pol: np.ndarray
    corr_types: dict[int, list[int]]  # polarisation id -> CORR_TYPE
    fields: dict[int, FieldMeta]
    combos: np.ndarray  # distinct [field, dd, state] of the main table
    state_modes: list[str]

    def target_fields(self) -> list[int]:
        """Fields with an OBSERVE_TARGET intent; every observed field when the MS has no intents."""
        observed = sorted({int(f) for f in self.combos[:, 0]})
        target = [i for i, m in enumerate(self.state_modes) if "OBSERVE_TARGET" in m]
        if not target:
            return observed
        return sorted({int(f) for f, _, s in self.combos if int(s) in target})

    def spws_of(self, field_ids) -> list[int]:
        """Science spws observed for these fields (no WVR, no channel-average spws)."""
        dds = {int(d) for f, d, _ in self.combos if int(f) in field_ids}
        spws = sorted({int(self.dd_spw[d]) for d in dds})
        return [s for s in spws if not _auxiliary(self.spws[s])]

    def dds_of(self, spw: int) -> list[int]:
        return [int(d) for d in np.flatnonzero(self.dd_spw == spw)]

    def max_baseline(self, antennas=None) -> float:
        """Largest antenna separation (an upper bound on every projected baseline), metres."""
        p = self.positions if antennas is None else self.positions[antennas]
        if len(p) < 2:
            return 0.0
        d = np.sqrt(((p[:, None, :] - p[None, :, :]) ** 2).sum(-1))
        return float(d.max())


def _auxiliary(spw: SpwMeta) -> bool:
    name = spw.name.upper()
    return "WVR" in name or "CH_AVG" in name or (spw.nchan == 1 and "FULL_RES" not in name and "#" in name)


@dataclass
class SpwSelection:
    id: int
    chans: np.ndarray | None = None  # selected channel mask, None = all

    def mask(self, nchan: int) -> np.ndarray:
        return np.ones(nchan, bool) if self.chans is None else self.chans


@dataclass
class Selection:
    field_ids: list[int]
    spws: dict[int, SpwSelection]
    notes: list[str] = field(default_factory=list)


def _read_table(tb, path, columns):
    tb.open(path)
    try:
        n = tb.nrows()
        return n, {c: (tb.getcol(c) if n else np.zeros(0)) for c in columns if c in tb.colnames()}
    finally:
        tb.close()


def read_meta(ct, vis: str) -> MsMeta:
    """Read the subtables and the distinct (field, dd, state) of *vis*."""
    tb = ct.table()
    try:
        tb.open(vis)
        columns, nrows = list(tb.colnames()), int(tb.nrows())
        tb.close()
        _, ant = _read_table(tb, os.path.join(vis, "ANTENNA"), ["NAME", "DISH_DIAMETER", "POSITION"])
        tb.open(os.path.join(vis, "SPECTRAL_WINDOW"))
        spws = {}
        for i in range(tb.nrows()):
            widths = np.abs(np.asarray(tb.getcell("CHAN_WIDTH", i), float))
            spws[i] = SpwMeta(id=i, name=str(tb.getcell("NAME", i)),
                              freqs=np.asarray(tb.getcell("CHAN_FREQ", i), float), widths=widths,
                              effective_bw=np.abs(np.asarray(tb.getcell("EFFECTIVE_BW", i), float)),
                              resolution=np.abs(np.asarray(tb.getcell("RESOLUTION", i), float)))
        tb.close()
        _, dd = _read_table(tb, os.path.join(vis, "DATA_DESCRIPTION"), ["SPECTRAL_WINDOW_ID", "POLARIZATION_ID"])
        tb.open(os.path.join(vis, "POLARIZATION"))
        corr = {i: [int(c) for c in tb.getcell("CORR_TYPE", i)] for i in range(tb.nrows())}
        tb.close()
        tb.open(os.path.join(vis, "FIELD"))
        try:
            frame = str(tb.getcolkeyword("PHASE_DIR", "MEASINFO").get("Ref", "J2000"))
        except Exception:  # noqa: BLE001 - a hand-made FIELD table without MEASINFO: CASA assumes J2000
            frame = "J2000"
        fields = {}
        for i in range(tb.nrows()):
            d = np.asarray(tb.getcell("PHASE_DIR", i), float)
            fields[i] = FieldMeta(id=i, name=str(tb.getcell("NAME", i)), ra=float(d[0, 0]), dec=float(d[1, 0]),
                                  frame=frame, source_id=int(tb.getcell("SOURCE_ID", i)))
        tb.close()
        modes = []
        if os.path.isdir(os.path.join(vis, "STATE")):
            _, st = _read_table(tb, os.path.join(vis, "STATE"), ["OBS_MODE"])
            modes = [str(m) for m in st.get("OBS_MODE", [])]
        combos = _distinct_combinations(tb, vis, nrows)
    finally:
        tb.done()
    positions = np.asarray(ant["POSITION"], float).T if len(ant.get("POSITION", [])) else np.zeros((0, 3))
    return MsMeta(path=vis, columns=columns, nrows=nrows, antenna_names=[str(n) for n in ant.get("NAME", [])],
                  dish=np.asarray(ant.get("DISH_DIAMETER", []), float), positions=positions, spws=spws,
                  dd_spw=np.asarray(dd.get("SPECTRAL_WINDOW_ID", []), int),
                  dd_pol=np.asarray(dd.get("POLARIZATION_ID", []), int), corr_types=corr, fields=fields,
                  combos=np.asarray(combos, int), state_modes=modes)


def _distinct_combinations(tb, vis: str, nrows: int, step: int = 2_000_000) -> np.ndarray:
    """The distinct [FIELD_ID, DATA_DESC_ID, STATE_ID] of the main table, read in bounded chunks."""
    found = set()
    tb.open(vis)
    try:
        for first in range(0, nrows, step):
            count = min(step, nrows - first)
            f, d, s = (tb.getcol(c, first, count).astype(np.int64) for c in ("FIELD_ID", "DATA_DESC_ID", "STATE_ID"))
            found.update(np.unique((f << 42) | (d << 21) | (s + 1)).tolist())  # ids < 2^21 each
    finally:
        tb.close()
    keys = np.array(sorted(found), dtype=np.int64)
    return np.column_stack([keys >> 42, (keys >> 21) & (2 ** 21 - 1), (keys & (2 ** 21 - 1)) - 1]).astype(int)


def select(ct, meta: MsMeta, field_text: str, spw_text: str) -> Selection:
    """The fields and spws (with channel masks) a CASA ``field``/``spw`` selection picks in *meta*.

    ``field=''`` picks the science target (OBSERVE_TARGET fields; when they belong to several
    sources, the first source's, with a note); ``spw=''`` the science spws observed for those
    fields.  ValueError names what does not match.
    """
    notes = []
    ms = ct.ms() if field_text.strip() or spw_text.strip() else None  # CASA's parser, only when there is text
    try:
        if field_text.strip():
            try:
                field_ids = sorted(int(f) for f in ms.msseltoindex(vis=meta.path, field=field_text)["field"])
            except RuntimeError as exc:
                raise ValueError(f"field: {str(exc).splitlines()[0]} in {meta.path}") from None
        else:
            field_ids = meta.target_fields()
            names = sorted({meta.fields[f].name for f in field_ids}, key=lambda n: min(
                f for f in field_ids if meta.fields[f].name == n))
            if len(names) > 1:
                notes.append(f"{meta.path}: targets {', '.join(names)}; advising for {names[0]} "
                             f"(field='{names[1]}' for another)")
                field_ids = [f for f in field_ids if meta.fields[f].name == names[0]]
        observed = {int(f) for f in meta.combos[:, 0]}
        field_ids = [f for f in field_ids if f in observed]
        if not field_ids:
            raise ValueError(f"field: no selected field has data in {meta.path}")
        spws = {}
        if spw_text.strip():
            try:
                idx = ms.msseltoindex(vis=meta.path, spw=spw_text)
            except RuntimeError as exc:
                raise ValueError(f"spw: {str(exc).splitlines()[0]} in {meta.path}") from None
            ranges = np.asarray(idx["channel"]).reshape(-1, 4)
            for s in sorted(int(s) for s in idx["spw"]):
                rows = ranges[ranges[:, 0] == s]
                nchan = meta.spws[s].nchan
                mask = None
                if len(rows) and not any(r[1] == 0 and r[2] >= nchan - 1 and r[3] == 1 for r in rows):
                    mask = np.zeros(nchan, bool)
                    for _, start, stop, step in rows:
                        mask[int(start):int(stop) + 1:max(int(step), 1)] = True
                spws[s] = SpwSelection(s, mask)
        else:
            spws = {s: SpwSelection(s) for s in meta.spws_of(field_ids)}
        observed_spws = {int(meta.dd_spw[d]) for f, d, _ in meta.combos if int(f) in field_ids}
        missing = sorted(set(spws) - observed_spws)
        if missing:
            notes.append(f"{meta.path}: spw {', '.join(map(str, missing))} not observed for the selected fields")
            spws = {s: v for s, v in spws.items() if s in observed_spws}
        if not spws:
            raise ValueError(f"spw: no selected spw has data for the selected fields in {meta.path}")
    finally:
        if ms is not None:
            ms.done()
    return Selection(field_ids=field_ids, spws=spws, notes=notes)


def tangent_offsets(ra, dec, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """SIN-projection offsets (l east, m north), radians, of directions from (ra0, dec0)."""
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    dra = ra - ra0
    l = np.cos(dec) * np.sin(dra)
    m = np.sin(dec) * math.cos(dec0) - np.cos(dec) * math.sin(dec0) * np.cos(dra)
    return l, m


def from_tangent(l: float, m: float, ra0: float, dec0: float) -> tuple[float, float]:
    """The direction at SIN-projection offset (l, m) from (ra0, dec0)."""
    n = math.sqrt(max(0.0, 1 - l * l - m * m))
    dec = math.asin(m * math.cos(dec0) + n * math.sin(dec0))
    ra = ra0 + math.atan2(l, n * math.cos(dec0) - m * math.sin(dec0))
    return ra % (2 * math.pi), dec


def format_direction(frame: str, ra: float, dec: float) -> str:
    """'J2000 11h01m51.900s -34d42m17.00s' (the form tclean's phasecenter takes)."""
    hours = (math.degrees(ra) / 15.0) % 24
    h = int(hours)
    mins = (hours - h) * 60
    mm = int(mins)
    ss = (mins - mm) * 60
    if round(ss, 4) >= 60:
        ss, mm = 0.0, mm + 1
    if mm >= 60:
        mm, h = 0, (h + 1) % 24
    sign = "-" if dec < 0 else "+"
    deg = abs(math.degrees(dec))
    d = int(deg)
    am = (deg - d) * 60
    amm = int(am)
    asec = (am - amm) * 60
    if round(asec, 3) >= 60:
        asec, amm = 0.0, amm + 1
    if amm >= 60:
        amm, d = 0, d + 1
    return f"{frame} {h:02d}h{mm:02d}m{ss:07.4f}s {sign}{d:02d}d{amm:02d}m{asec:06.3f}s"
