"""CASA's data freshness: are the leap-second and Earth-orientation tables current enough for these data?

casacore converts UTC to the other time scales with the leap-second table
``geodetic/TAI_UTC`` and UTC to UT1 (the Earth's rotation angle) with the
Earth-orientation tables ``geodetic/IERSeop97`` (measured) and
``geodetic/IERSpredict`` (predicted).  Two things can go wrong with tables
older than the data:

* **a leap second after the table's end and before the observation** — the
  time scales casacore derives from UTC with it (TAI, TT, TDB; and so the
  Earth's orbital position and velocity in frame conversions to BARY/LSRK) are
  off by one second per missing leap second.  UT1, and so the Earth's rotation,
  comes from the Earth-orientation tables instead and is not affected.  A table knows every leap second announced
  (IERS Bulletin C, published in early January and early July for the end of
  June and of December) before it was made (its ``VS_DATE``), so it is right
  for all times before the first possible leap second announced after that.
* **UT1 beyond the Earth-orientation tables** — casacore then uses UT1 = UTC
  (``MeasIERS::get`` returns no value) and no polar motion; |UT1 − UTC| stays
  below 0.9 s by the definition of UTC, so the Earth's rotation angle can be
  off by up to 0.9 s × 15.04″/s.  Within the predicted table the error is the
  prediction's own uncertainty (its ``DdUT1`` column).

casacore's own warning, SEVERE "Leap second table TAI_UTC seems out-of-date",
appears whenever the table was made more than 180 days before *today*
(``MeasTable::dUTC``), whatever the dates of the data.  :func:`check` says
instead what matters — the dates of the data in hand against what the tables
cover — and computes the size of the effect with CASA's measures itself:
the change of the GEO→LSRK radial velocity (the orbit: a leap-second error)
and of the TOPO→GEO radial velocity and the hour angle (the rotation: a UT1
error) over one second, scaled to the possible error, and so of a frequency
conversion in Hz at the data's frequencies.  Nothing here needs the internet; the update command it prints does.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import log

__all__ = ["MeasuresTables", "Observation", "read_tables", "leap_seconds_known_until", "observations_from_ms",
           "find_measurement_sets", "check", "result_entry", "format_report", "update_commands",
           "default_measures_dir"]

#: casacore MeasTable::dUTC posts its SEVERE warning when TAI_UTC's VS_DATE is older than this (days)
CASA_WARNING_AGE_DAYS = 180
#: |UT1 - UTC| < 0.9 s: the definition of UTC (ITU-R TF.460-6); leap seconds keep it there
UT1_MINUS_UTC_BOUND_S = 0.9
#: IERS Bulletin C is issued in the first days of January and July; the 15th is a safe "announced by" date
BULLETIN_C_DAY = 15
#: ALMA's highest observing frequency (band 10 top), the frequency used when no data frequency is known
ALMA_MAX_FREQ_HZ = 950e9
C_M_S = 299792458.0
MJD_EPOCH = dt.datetime(1858, 11, 17, tzinfo=dt.timezone.utc)
_MAX_SAMPLES = 200  # time x direction samples per check (each is six measures conversions, ~0.6 ms each)


# --------------------------------------------------------------------------- dates

def mjd_to_datetime(mjd: float) -> dt.datetime:
    return MJD_EPOCH + dt.timedelta(days=float(mjd))


def datetime_to_mjd(when: dt.datetime) -> float:
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return (when - MJD_EPOCH).total_seconds() / 86400.0


def _date(mjd: float) -> str:
    return mjd_to_datetime(mjd).strftime("%Y-%m-%d")


def _instant(mjd: float) -> str:
    return mjd_to_datetime(mjd).strftime("%Y-%m-%d %H:%M UTC")


def leap_seconds_known_until(made: dt.datetime) -> dt.datetime:
    """The first instant a leap-second table made at *made* cannot know about.

    Leap seconds are inserted only before 1 January or 1 July 00:00 UTC
    (in practice), each announced by IERS Bulletin C about six months ahead
    (early July for 1 January, early January for 1 July).  A table made after
    an announcement knows that instant; it is right for every time before the
    first instant whose announcement came after it was made.
    """
    if made.tzinfo is None:
        made = made.replace(tzinfo=dt.timezone.utc)
    year = made.year - 1
    while True:
        for month in (1, 7):
            instant = dt.datetime(year, month, 1, tzinfo=dt.timezone.utc)
            announced = dt.datetime(year - 1 if month == 1 else year, 7 if month == 1 else 1, BULLETIN_C_DAY,
                                    tzinfo=dt.timezone.utc)
            if announced > made:
                return instant
        year += 1


def _possible_leap_instants(after_mjd: float, until_mjd: float) -> int:
    """How many 1 January / 1 July instants lie in [after, until]: the most leap seconds a table can miss."""
    start, end = mjd_to_datetime(after_mjd), mjd_to_datetime(until_mjd)
    count, year = 0, start.year
    while year <= end.year:
        for month in (1, 7):
            instant = dt.datetime(year, month, 1, tzinfo=dt.timezone.utc)
            if start <= instant <= end:
                count += 1
        year += 1
    return count


# --------------------------------------------------------------------------- the tables

@dataclass(frozen=True)
class MeasuresTables:
    """What casacore's leap-second and Earth-orientation tables cover."""

    geodetic: str                 #: the directory the tables were read from
    tai_utc_made: float           #: MJD of TAI_UTC's VS_DATE
    last_leap_second: float       #: MJD of the last leap second the table lists
    leap_known_until: float       #: MJD of the first instant TAI_UTC cannot know (see leap_seconds_known_until)
    measured_until: float         #: last MJD of IERSeop97 (measured Earth orientation)
    predicted_until: float        #: last MJD of IERSpredict (predicted Earth orientation)
    predicted_made: float         #: MJD of IERSpredict's VS_DATE
    predicted_mjd: tuple = field(default=(), repr=False)       #: IERSpredict's MJD column
    predicted_dut1_err: tuple = field(default=(), repr=False)  #: IERSpredict's DdUT1 column (s)
    measured_dut1_err: float = 0.0  #: the largest DdUT1 of IERSeop97's last year (s)

    def casa_warns(self, now_mjd: float) -> bool:
        """Whether casacore posts its SEVERE "seems out-of-date" line today."""
        return now_mjd - self.tai_utc_made > CASA_WARNING_AGE_DAYS

    def dut1_uncertainty(self, mjd: float) -> float | None:
        """The UT1 - UTC uncertainty CASA has at *mjd* (s); None beyond the tables (CASA uses UT1 = UTC)."""
        if mjd < self.measured_until:
            return self.measured_dut1_err
        if mjd < self.predicted_until and self.predicted_mjd:
            k = min(range(len(self.predicted_mjd)), key=lambda i: abs(self.predicted_mjd[i] - mjd))
            return float(self.predicted_dut1_err[k])
        return None

    def as_dict(self, now_mjd: float) -> dict:
        return {
            "geodetic": self.geodetic,
            "TAI_UTC": {"made": _date(self.tai_utc_made), "age_days": round(now_mjd - self.tai_utc_made, 1),
                        "last_leap_second": _instant(self.last_leap_second),
                        "known_until": _instant(self.leap_known_until),
                        "casa_warns_out_of_date": self.casa_warns(now_mjd)},
            "IERSeop97": {"kind": "measured", "until": _date(self.measured_until)},
            "IERSpredict": {"kind": "predicted", "made": _date(self.predicted_made),
                            "until": _date(self.predicted_until),
                            "age_days": round(now_mjd - self.predicted_made, 1)},
        }


def default_measures_dir() -> Path:
    """A user-owned place for measures tables kept current by casaconfig (``$XDG_DATA_HOME/almatools/measures``)."""
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "almatools" / "measures"


def _casatools():
    from .casaenv import casatools
    return casatools()


def geodetic_dir(measurespath: str | os.PathLike | None = None) -> Path:
    """The ``geodetic`` directory casacore reads in this process (or under *measurespath*)."""
    if measurespath:
        return Path(measurespath).expanduser() / "geodetic"
    ct = _casatools()
    configured = Path(ct.ctsys.measurespath() or "") / "geodetic" / "TAI_UTC"
    if ct.ctsys.measurespath() and configured.is_dir():
        return configured.parent
    return Path(ct.ctsys.resolve("geodetic/TAI_UTC")).parent


_TABLES_CACHE: dict = {}


def read_tables(measurespath: str | os.PathLike | None = None) -> MeasuresTables:
    """Read TAI_UTC, IERSeop97 and IERSpredict (cached per directory and modification time)."""
    geodetic = geodetic_dir(measurespath)
    paths = [geodetic / name for name in ("TAI_UTC", "IERSeop97", "IERSpredict")]
    missing = [p for p in paths if not (p / "table.dat").is_file()]
    if missing:
        from .errors import CasaSetupError
        raise CasaSetupError(f"{geodetic}: CASA's measures tables are missing ({', '.join(p.name for p in missing)})")
    key = (str(geodetic), tuple((p / "table.dat").stat().st_mtime_ns for p in paths))
    if key not in _TABLES_CACHE:
        _TABLES_CACHE.clear()
        _TABLES_CACHE[key] = _read_tables(geodetic)
    return _TABLES_CACHE[key]


def _vs_date_mjd(tb, path) -> float:
    from .errors import CasaSetupError
    text = str(tb.getkeyword("VS_DATE"))
    try:
        when = dt.datetime.strptime(text.strip()[:16], "%Y/%m/%d/%H:%M")
    except ValueError:
        raise CasaSetupError(f"{path}: VS_DATE {text!r} is not a date (YYYY/MM/DD/hh:mm)") from None
    return datetime_to_mjd(when)


def _read_tables(geodetic: Path) -> MeasuresTables:
    import numpy as np
    tb = _casatools().table()
    try:
        tb.open(str(geodetic / "TAI_UTC"))
        made = _vs_date_mjd(tb, geodetic / "TAI_UTC")
        leaps = tb.getcol("MJD")
        tb.close()
        tb.open(str(geodetic / "IERSeop97"))
        measured = tb.getcol("MJD")
        measured_err = tb.getcol("DdUT1")
        tb.close()
        tb.open(str(geodetic / "IERSpredict"))
        predicted_made = _vs_date_mjd(tb, geodetic / "IERSpredict")
        predicted = tb.getcol("MJD")
        predicted_err = tb.getcol("DdUT1")
        tb.close()
    finally:
        tb.done()
    recent = measured >= measured[-1] - 365
    return MeasuresTables(
        geodetic=str(geodetic), tai_utc_made=made, last_leap_second=float(leaps.max()),
        leap_known_until=datetime_to_mjd(leap_seconds_known_until(mjd_to_datetime(made))),
        measured_until=float(measured.max()), predicted_until=float(predicted.max()), predicted_made=predicted_made,
        predicted_mjd=tuple(float(x) for x in predicted), predicted_dut1_err=tuple(float(x) for x in predicted_err),
        measured_dut1_err=float(np.max(np.abs(measured_err[recent]))) if recent.any() else 0.0)


# --------------------------------------------------------------------------- the data in hand

@dataclass
class Observation:
    """The dates (and, where known, directions, frequencies and site) of some data."""

    label: str
    start_mjd: float
    end_mjd: float
    directions: list = field(default_factory=list)  #: (ra, dec) in radians, J2000
    max_freq_hz: float = 0.0
    telescope: str = "ALMA"


def observations_from_ms(vis) -> Observation:
    """Dates, field directions, highest frequency and telescope of a MeasurementSet (read in bounded slices)."""
    import numpy as np
    tb = _casatools().table()
    try:
        tb.open(str(vis))
        nrow = tb.nrows()
        step = max(1, nrow // 10000)  # at most ~10,000 TIME values, whatever the MS's size
        times = tb.getcol("TIME", 0, -1, step) if nrow else np.array([])
        if nrow:
            times = np.concatenate([times, tb.getcol("TIME", nrow - 1, 1, 1)])
        tb.close()
        tb.open(os.path.join(str(vis), "FIELD"))
        phase = tb.getcol("PHASE_DIR") if tb.nrows() else np.zeros((2, 1, 0))
        tb.close()
        tb.open(os.path.join(str(vis), "SPECTRAL_WINDOW"))
        freqs = [float(np.max(tb.getcell("CHAN_FREQ", r))) for r in range(min(tb.nrows(), 1000))]
        tb.close()
        telescope = "ALMA"
        if os.path.isdir(os.path.join(str(vis), "OBSERVATION")):
            tb.open(os.path.join(str(vis), "OBSERVATION"))
            if tb.nrows():
                telescope = str(tb.getcell("TELESCOPE_NAME", 0)) or "ALMA"
            tb.close()
    finally:
        tb.done()
    if not len(times):
        raise ValueError(f"{vis}: the MeasurementSet has no rows, so no observation date")
    nfield = phase.shape[-1]
    pick = sorted(set(np.linspace(0, nfield - 1, min(nfield, 5)).astype(int).tolist())) if nfield else []
    directions = [(float(phase[0, 0, k]), float(phase[1, 0, k])) for k in pick]
    return Observation(str(vis), float(times.min()) / 86400.0, float(times.max()) / 86400.0, directions,
                       max(freqs, default=0.0), telescope)


_TIME_TEXT = re.compile(r"(\d{4})[/-](\d{1,2})[/-](\d{1,2})(?:[/T ](\d{1,2}):(\d{1,2})(?::(\d{1,2}(?:\.\d*)?))?)?")


def find_measurement_sets(root, limit: int = 20) -> list[str]:
    """Up to *limit* MeasurementSets (directories with a ``table.dat`` and a ``FIELD`` table) under *root*."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for table_dat in root.rglob("table.dat"):
        ms = table_dat.parent
        if ms.name.endswith(".ms") and (ms / "FIELD").is_dir():
            found.append(str(ms))
            if len(found) >= limit:
                break
    return sorted(found)


def _direction_rad(me, value) -> tuple[float, float] | None:
    """``(ra, dec)`` J2000 radians from a pair of radians or CASA text (``'J2000 10h00m00s -30d00m00s'``).

    ``None`` when the text names no fixed direction (a planet, or nothing CASA reads): the check then
    bounds the effect over the whole sky.
    """
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return float(value[0]), float(value[1])
    parts = str(value).replace(",", " ").split()
    if len(parts) == 2:
        parts = ["J2000"] + parts
    if len(parts) != 3 or not re.fullmatch(r"[A-Za-z0-9]+", parts[0]) or \
            not all(re.fullmatch(r"[-+]?[0-9.]+[0-9hdms:.a-z]*", p) for p in parts[1:]):
        return None
    qa = _casatools().quanta()
    lon, lat = qa.quantity(parts[1]), qa.quantity(parts[2])
    if not lon or not lat or not qa.isangle(lat) or not (qa.isangle(lon) or qa.compare(lon, qa.quantity("1h"))):
        return None
    direction = me.measure(me.direction(parts[0].upper(), parts[1], parts[2]), "J2000")
    if not direction:
        return None
    return float(direction["m0"]["value"]), float(direction["m1"]["value"])


def _epoch_mjd(me, value) -> float:
    """An epoch as MJD days: a number is MJD days, text is read by CASA (``'2024/11/15/12:00:00'``, ISO)."""
    bad = ValueError(f"{value!r} is not a time (use 'YYYY/MM/DD/hh:mm:ss', ISO 'YYYY-MM-DDThh:mm:ss' or an MJD "
                     "in days)")
    text = str(value).strip()
    try:
        mjd = float(text)
    except ValueError:
        m = _TIME_TEXT.fullmatch(text)
        if not m:  # checked here: CASA would post SEVERE lines about text it cannot parse
            raise bad from None
        year, month, day, hour, minute, second = m.groups()
        try:
            dt.date(int(year), int(month), int(day))
        except ValueError:
            raise bad from None
        if int(hour or 0) > 23 or int(minute or 0) > 59 or float(second or 0) >= 61:
            raise bad
        epoch = me.epoch("UTC", text)
        if not epoch or epoch["m0"]["unit"] != "d":
            raise bad from None
        mjd = float(epoch["m0"]["value"])
    if not math.isfinite(mjd):
        raise bad
    return mjd


# --------------------------------------------------------------------------- the effects, computed

def _sample_times(obs: Observation, n: int) -> list[float]:
    if obs.end_mjd - obs.start_mjd < 1e-9 or n < 2:
        return [obs.start_mjd]
    return [obs.start_mjd + (obs.end_mjd - obs.start_mjd) * k / (n - 1) for k in range(n)]


def _worst_case_directions() -> list[tuple[float, float]]:
    """A grid over the sky ALMA sees (RA every 45°, Dec -75°…+45°) for a bound without data."""
    return [(math.radians(ra), math.radians(dec)) for ra in range(0, 360, 45) for dec in (-75, -45, -15, 0, 15, 45)]


def time_error_rates(me, mjd: float, direction: tuple[float, float], site) -> dict:
    """How fast frame conversions and the Earth's rotation angle change per second of time, by CASA measures.

    Returns, each per second and from conversions one second apart:

    * ``bary_m_s`` — |d/dt| of the GEO→LSRK radial velocity: the Earth's
      orbital motion, which follows TT/TDB, so what a missing leap second moves
      (casacore takes UT1 from the Earth-orientation tables, not from TAI − UTC);
    * ``geo_m_s`` — |d/dt| of TOPO→GEO: the Earth's rotation, what a UT1 error moves;
    * ``angle_arcsec`` — the hour angle's change (the Earth's rotation angle).
    """
    step = 1.0 / 86400.0
    me.doframe(site)
    me.doframe(me.direction("J2000", f"{direction[0]!r}rad", f"{direction[1]!r}rad"))
    values: dict = {}
    for t in (mjd, mjd + step):
        me.doframe(me.epoch("UTC", f"{t!r}d"))
        for name, (ref, frame) in {"bary": ("GEO", "LSRK"), "geo": ("TOPO", "GEO")}.items():
            values.setdefault(name, []).append(
                me.measure(me.radialvelocity(ref, "0m/s"), frame)["m0"]["value"])
        values.setdefault("ha", []).append(
            me.measure(me.direction("J2000", f"{direction[0]!r}rad", f"{direction[1]!r}rad"), "HADEC")["m0"]["value"])
    out = {f"{name}_m_s": abs(values[name][1] - values[name][0]) for name in ("bary", "geo")}
    dha = (values["ha"][1] - values["ha"][0] + math.pi) % (2 * math.pi) - math.pi
    out["angle_arcsec"] = abs(math.degrees(dha) * 3600.0)
    return out


def _max_rates(me, obs: Observation, directions, samples_per_obs: int) -> dict:
    site = me.observatory(obs.telescope) or me.observatory("ALMA")
    worst = {"bary_m_s": 0.0, "geo_m_s": 0.0, "angle_arcsec": 0.0}
    for t in _sample_times(obs, samples_per_obs):
        for d in directions:
            rates = time_error_rates(me, t, d, site)
            for k in worst:
                worst[k] = max(worst[k], rates[k])
    return worst


def _effect(rates: dict, seconds: float, freq_hz: float) -> dict:
    """A missing leap second: TT/TDB off by *seconds*; UT1, so the rotation angle, stays right."""
    dv = rates["bary_m_s"] * seconds
    return {"time_s": seconds, "velocity_m_s": dv, "frequency_hz": freq_hz * dv / C_M_S, "rotation_angle_arcsec": 0.0}


def _ut1_effect(rates: dict, seconds: float, freq_hz: float) -> dict:
    """UT1 off by *seconds*: the Earth's rotation angle, so the observatory's velocity and every az/el."""
    dv = rates["geo_m_s"] * seconds
    return {"ut1_error_s": seconds, "velocity_m_s": dv, "frequency_hz": freq_hz * dv / C_M_S,
            "rotation_angle_arcsec": rates["angle_arcsec"] * seconds}


# --------------------------------------------------------------------------- the check

def check(*, vis=(), epochs=(), freqs_hz=(), directions=(), telescope: str = "ALMA", now: dt.datetime | None = None,
          measurespath: str | os.PathLike | None = None) -> dict:
    """Say whether CASA's leap-second and Earth-orientation tables are good enough for the data in hand.

    :param vis: MeasurementSets (dates, fields, frequencies and site are read from each).
    :param epochs: further observation times: MJD days or CASA time strings; a
        pair ``'start~stop'`` gives a range.
    :param freqs_hz: frequencies the results concern (for *epochs*); default
        ALMA's highest, 950 GHz, as a bound.
    :param directions: for *epochs*: ``(ra, dec)`` in radians (J2000) or CASA
        direction text; default (and for planets) a grid over the sky, as a bound.
    :param now: today (for the tables' ages); default the clock.
    :param measurespath: read the tables there instead of where CASA reads them.
    :return: a dictionary: ``tables`` (what each covers), ``observations``
        (each with its verdict), ``affected`` (whether any result can be
        affected), ``effects`` (computed sizes), ``summary`` (one line),
        ``explanation`` (plain words) and ``update`` (the commands, online).
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    now_mjd = datetime_to_mjd(now)
    tables = read_tables(measurespath)
    ct = _casatools()
    me = ct.measures()
    try:
        observations = [observations_from_ms(v) for v in vis]
        pointed = [d for d in (_direction_rad(me, d) for d in directions) if d is not None]
        for value in epochs:
            start, _, stop = str(value).partition("~") if isinstance(value, str) else (value, "", "")
            t0 = _epoch_mjd(me, start)
            t1 = _epoch_mjd(me, stop) if stop else t0
            observations.append(Observation(f"epoch {value}", min(t0, t1), max(t0, t1), pointed,
                                            max(freqs_hz, default=0.0), telescope))
        given = bool(observations)
        if not given:  # no data in hand: what data observed today (one whole UTC day) would face
            today = math.floor(now_mjd)
            observations = [Observation("data observed today", today, today + 1.0, [], 0.0, telescope)]
        verdicts = [_verdict(tables, obs) for obs in observations]
        risky = [(obs, v) for obs, v in zip(observations, verdicts) if v["leap_seconds_missed_at_most"]
                 or v["ut1"] != "measured"]
        samples = max(2, min(9, _MAX_SAMPLES // max(1, sum(len(o.directions) or 48 for o, _ in risky))))
        for obs, v in risky:
            dirs = obs.directions or _worst_case_directions()
            freq = obs.max_freq_hz or ALMA_MAX_FREQ_HZ
            rates = _max_rates(me, obs, dirs, samples if obs.end_mjd > obs.start_mjd else 1)
            v["frequency_hz_used"] = freq
            v["rates_per_second"] = rates
            if v["leap_seconds_missed_at_most"]:
                v["leap_second_effect"] = _effect(rates, float(v["leap_seconds_missed_at_most"]), freq)
            if v["ut1_error_s"]:
                v["ut1_effect"] = _ut1_effect(rates, v["ut1_error_s"], freq)
    finally:
        me.done()
    report = {"now": now.strftime("%Y-%m-%d"), "tables": tables.as_dict(now_mjd), "data_given": given,
              "observations": verdicts, "affected": any(v["affected"] for v in verdicts) if given else None,
              "casa_warns_out_of_date": tables.casa_warns(now_mjd), "update": update_commands()}
    report["effects"] = _largest_effects(verdicts)
    report["summary"] = _summary(tables, verdicts, given)
    report["explanation"] = _explanation(tables, now_mjd)
    return report


def _verdict(tables: MeasuresTables, obs: Observation) -> dict:
    missed = _possible_leap_instants(tables.leap_known_until, obs.end_mjd) if obs.end_mjd >= tables.leap_known_until \
        else 0
    ut1_err = tables.dut1_uncertainty(obs.end_mjd)
    if obs.end_mjd < tables.measured_until:
        ut1 = "measured"
    elif ut1_err is not None:
        ut1 = "predicted"
    else:
        ut1 = "none"
        ut1_err = UT1_MINUS_UTC_BOUND_S
    return {"data": obs.label, "start": _instant(obs.start_mjd), "end": _instant(obs.end_mjd),
            "leap_seconds": "covered" if not missed else "possibly missing",
            "leap_seconds_missed_at_most": missed, "ut1": ut1, "ut1_error_s": ut1_err if ut1 != "measured" else 0.0,
            "affected": bool(missed) or ut1 == "none"}


def _largest_effects(verdicts: list[dict]) -> dict:
    out = {}
    for key in ("leap_second_effect", "ut1_effect"):
        found = [v[key] for v in verdicts if key in v]
        if found:
            out[key] = max(found, key=lambda e: e["velocity_m_s"])
    return out


def _fmt_hz(hz: float) -> str:
    return f"{hz * 1e3:.2g} mHz" if hz < 1 else f"{hz:.3g} Hz" if hz < 1e3 else f"{hz / 1e3:.3g} kHz"


def _summary(tables: MeasuresTables, verdicts: list[dict], given: bool) -> str:
    coverage = (f"CASA's tables know leap seconds until {_date(tables.leap_known_until)} and Earth orientation "
                f"until {_date(tables.predicted_until)}")
    if not given:
        v = verdicts[0]
        if not v["affected"]:
            return f"{coverage}: data observed up to today are fully covered."
        return (f"{coverage}: data observed after those dates (as data observed today) can be off by "
                + _effect_phrase(v) + "; older data are not affected.")
    bad = [v for v in verdicts if v["affected"]]
    if not bad:
        return f"{coverage}: the data given ({_span(verdicts)}) are covered; no result is affected."
    worst = max(bad, key=lambda v: v.get("leap_second_effect", v.get("ut1_effect", {})).get("velocity_m_s", 0))
    return (f"{coverage}: {len(bad)} of {len(verdicts)} data set(s) ({_span(bad)}) were observed later; "
            f"their results can be off by {_effect_phrase(worst)}.")


def _span(verdicts: list[dict]) -> str:
    starts = sorted(v["start"][:10] for v in verdicts)
    ends = sorted(v["end"][:10] for v in verdicts)
    return starts[0] if starts[0] == ends[-1] else f"{starts[0]} to {ends[-1]}"


def _effect_phrase(v: dict) -> str:
    parts = []
    if "leap_second_effect" in v:
        e = v["leap_second_effect"]
        parts.append(f"{e['time_s']:.0f} s in TAI/TT/TDB (≤ {e['velocity_m_s'] * 1e3:.3g} mm/s, "
                     f"{_fmt_hz(e['frequency_hz'])} at {v['frequency_hz_used'] / 1e9:.4g} GHz in conversions to "
                     "BARY/LSRK) if a leap second was inserted since")
    if "ut1_effect" in v:
        e = v["ut1_effect"]
        what = "UT1 (no Earth-orientation values: CASA uses UT1 = UTC)" if v["ut1"] == "none" else \
            "UT1 (predicted values)"
        parts.append(f"up to {e['ut1_error_s']:.2g} s in {what}, i.e. {e['rotation_angle_arcsec']:.3g}″ of Earth "
                     f"rotation and ≤ {_fmt_hz(e['frequency_hz'])} in TOPO↔GEO conversions")
    return "; ".join(parts) or "nothing"


def _explanation(tables: MeasuresTables, now_mjd: float) -> str:
    text = (f"CASA's leap-second table (TAI_UTC) was made on {_date(tables.tai_utc_made)}; it knows every leap "
            f"second announced by then, so it is right for all times before {_instant(tables.leap_known_until)} "
            f"(the last leap second it lists is {_instant(tables.last_leap_second)}). The Earth-orientation tables "
            f"hold measured values until {_date(tables.measured_until)} and predictions until "
            f"{_date(tables.predicted_until)}; after that CASA takes UT1 = UTC (off by less than 0.9 s).")
    if tables.casa_warns(now_mjd):
        text += (f" CASA's SEVERE \"Leap second table TAI_UTC seems out-of-date\" only says that the table is "
                 f"more than {CASA_WARNING_AGE_DAYS} days old today ({now_mjd - tables.tai_utc_made:.0f} days); "
                 "it does not mean that results are wrong: data observed before the dates above are not "
                 "affected.")
    return text


def update_commands(target: str | os.PathLike | None = None) -> list[str]:
    """The commands (online) that put current measures into a user-owned directory and point CASA at it."""
    target = os.path.abspath(os.path.expanduser(os.fspath(target or default_measures_dir())))
    almatools = Path(sys.executable).with_name("almatools")
    return [f"{shlex.quote(sys.executable)} -m casaconfig --measurespath {shlex.quote(target)} --measures-update",
            f"{shlex.quote(str(almatools)) if almatools.exists() else 'almatools'} casa-setup --measurespath "
            f"{shlex.quote(target)}"]


_explained: set = set()
_NO_DATA_REPORTS: dict = {}


def explain_once(report: dict) -> None:
    """Log the plain-words explanation once per process (after CASA's SEVERE line, when it appears)."""
    key = report["tables"]["geodetic"]
    if key in _explained:
        return
    _explained.add(key)
    log.post(report["explanation"], "WARN" if report["casa_warns_out_of_date"] else "INFO")


def result_entry(*, vis=(), epochs=(), freqs_hz=(), directions=(), depends: str = "") -> dict:
    """The one entry tasks add to their results (``result["casa_data"]``), from :func:`check`.

    :param depends: what in this task's result depends on the tables, in plain words.
    """
    if vis or epochs:
        report = check(vis=vis, epochs=epochs, freqs_hz=freqs_hz, directions=directions)
    else:  # no dates in hand: the same for every call today
        day = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
        key = (read_tables().geodetic, day)
        if key not in _NO_DATA_REPORTS:
            _NO_DATA_REPORTS[key] = check()
        report = _NO_DATA_REPORTS[key]
    explain_once(report)
    entry = {"summary": report["summary"], "affected": report["affected"], "depends": depends,
             "tables": {"leap_seconds_known_until": report["tables"]["TAI_UTC"]["known_until"],
                        "earth_orientation_until": report["tables"]["IERSpredict"]["until"],
                        "casa_warns_out_of_date": report["casa_warns_out_of_date"]},
             "effects": report["effects"]}
    if report["affected"] or report["casa_warns_out_of_date"]:
        entry["update"] = report["update"]
    if report["affected"]:
        log.warn(f"{report['summary']} Affected here: {depends}" if depends else report["summary"])
    return entry


def format_report(report: dict) -> str:
    """The report of :func:`check` as text for the terminal."""
    t = report["tables"]
    lines = [f"CASA measures tables in {t['geodetic']} (today {report['now']}):",
             f"  TAI_UTC (leap seconds)      made {t['TAI_UTC']['made']} ({t['TAI_UTC']['age_days']:.0f} days ago); "
             f"last leap second {t['TAI_UTC']['last_leap_second']}; right for times before "
             f"{t['TAI_UTC']['known_until']}",
             f"  IERSeop97 (measured EOP)    until {t['IERSeop97']['until']}",
             f"  IERSpredict (predicted EOP) until {t['IERSpredict']['until']} (made {t['IERSpredict']['made']})",
             ""]
    for v in report["observations"]:
        lines.append(f"{v['data']}: {v['start']} … {v['end']}")
        lines.append(f"  leap seconds: {v['leap_seconds']}"
                     + (f" (at most {v['leap_seconds_missed_at_most']} since the table's end)"
                        if v["leap_seconds_missed_at_most"] else ""))
        lines.append(f"  UT1: {v['ut1']}" + (f" (error up to {v['ut1_error_s']:.2g} s)" if v["ut1_error_s"] else ""))
        for key, label, what in (("leap_second_effect", "if a leap second was missed", "TAI/TT/TDB off by"),
                                 ("ut1_effect", "from the UT1 error", "UT1 off by")):
            if key in v:
                e = v[key]
                frames = "GEO↔LSRK (orbit)" if key == "leap_second_effect" else "TOPO↔GEO (rotation)"
                lines.append(f"  effect {label}: {what} {e.get('time_s', e.get('ut1_error_s')):.3g} s; Earth "
                             f"rotation angle {e['rotation_angle_arcsec']:.3g}″; {frames} radial velocity "
                             f"{e['velocity_m_s'] * 1e3:.3g} mm/s = {_fmt_hz(e['frequency_hz'])} at "
                             f"{v['frequency_hz_used'] / 1e9:.4g} GHz")
        lines.append(f"  can results be affected: {'yes' if v['affected'] else 'no'}")
    lines += ["", report["summary"], "", report["explanation"]]
    if report["affected"] or report["casa_warns_out_of_date"] or not report["data_given"]:
        lines += ["", "To update (needs the internet), into a directory you own:"] + \
                 [f"  {c}" for c in report["update"]]
    return "\n".join(lines)
