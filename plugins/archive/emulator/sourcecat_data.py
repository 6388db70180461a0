"""The calibrator catalogue the emulator serves: years of Band 3/6/7 monitoring of ALMA's grid sources.

Generated, deterministic (seeded by each source's name), shaped like the ALMA
Calibrator Source Catalogue:

* 45 grid quasars (the names of analysisUtils' grid list, old and current) monitored
  every 7–14 days in Band 3 (91.46 and 103.49 GHz, often both on one day) and Band 7
  (343.48 GHz, sometimes 337.46), occasionally in Band 6 (233.0 GHz); non-grid
  calibrators every 2–6 months; one source only ever in Band 3, one only in Bands 3 and 6;
* flux densities follow a power law whose amplitude and index wander slowly in time
  (a damped random walk, ~0.15 dex over ~200 days) with 2–4 % measurement noise;
  values rounded as the catalogue rounds them (0.01 Jy), so faint sources get a
  0.00 uncertainty sometimes (→ "missing uncertainty"), and a few entries have flux ≤ 0;
* gaps: every February (the array's maintenance shutdown) and one or two random gaps
  of 20–60 days per source and year;
* each measurement enters the catalogue 3–40 days after it was taken; a few are
  re-reduced years later (a catalogue update);
* the values analysisUtils printed in public reduction scripts (DOMAIN.md §6.1) are
  pinned on their dates (J0510+1800, J1517-2422, J1924-2914, J1427-4206), with the
  generated monitoring kept away from them so that the same measurements are the
  closest ones and the same pairs have the smallest separation.

Measurements are dicts with ``day`` (MJD, integer), ``freq`` (Hz), ``flux``, ``error``
(Jy; NaN when missing), ``ingested`` (MJD) and ``origin``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import date

import numpy as np

__all__ = ["CalSource", "generate", "write_csv", "GRID", "PINNED", "to_day"]

_MJD0 = date(1858, 11, 17)
_EPOCH = np.datetime64("1858-11-17")


def to_day(iso: str) -> int:
    y, m, d = (int(p) for p in iso.split("-"))
    return (date(y, m, d) - _MJD0).days


def _short(jname: str) -> str:
    """J1924-2914 → J1924-292 (declination in degrees and tenths)."""
    return f"{jname[:8]}{int(jname[8:10]) // 6}"


#: (official name, other names, S at 100 GHz in Jy, spectral index) — grid sources
GRID = [
    ("J0006-0623", ["PKS 0003-066"], 2.1, -0.45), ("J0237+2848", ["4C +28.07"], 1.4, -0.55),
    ("J0238+1636", ["AO 0235+164"], 1.2, -0.35), ("J0319+4130", ["3C84", "3C 84", "NGC 1275"], 14.0, -0.75),
    ("J0334-4008", ["PKS 0332-403"], 0.9, -0.50), ("J0423-0120", ["PKS 0420-014"], 3.2, -0.40),
    ("J0510+1800", ["PKS 0507+179"], 2.2, -0.44), ("J0519-4546", ["Pictor A"], 1.1, -0.70),
    ("J0522-3627", ["PKS 0521-365"], 4.5, -0.50), ("J0538-4405", ["PKS 0537-441"], 2.5, -0.55),
    ("J0635-7516", ["PKS 0637-752"], 1.3, -0.60), ("J0750+1231", ["OI 280"], 0.9, -0.45),
    ("J0854+2006", ["OJ 287"], 3.8, -0.50), ("J1037-2934", ["PKS 1034-293"], 1.0, -0.40),
    ("J1058+0133", ["4C +01.28"], 3.0, -0.55), ("J1107-4449", ["PKS 1104-445"], 1.1, -0.50),
    ("J1146+3958", ["4C +40.25"], 0.8, -0.60), ("J1229+0203", ["3C273", "3C 273"], 9.0, -0.75),
    ("J1256-0547", ["3C279", "3C 279"], 12.0, -0.55), ("J1337-1257", ["PKS 1335-127"], 3.0, -0.50),
    ("J1427-4206", ["PKS 1424-418"], 4.2, -0.60), ("J1517-2422", ["AP Lib"], 3.7, -0.25),
    ("J1550+0527", ["4C +05.64"], 0.8, -0.50), ("J1617-5848", ["J1613-586", "PKS 1613-586"], 1.5, -0.55),
    ("J1642+3948", ["3C345", "3C 345"], 3.0, -0.55), ("J1733-1304", ["NRAO 530"], 3.5, -0.50),
    ("J1751+0939", ["OT 081"], 2.5, -0.35), ("J1924-2914", ["PKS 1921-293"], 5.5, -0.55),
    ("J2025+3343", ["B2 2023+33"], 2.0, -0.60), ("J2056-4714", ["PKS 2052-47"], 1.5, -0.50),
    ("J2148+0657", ["4C +06.69"], 1.2, -0.60), ("J2232+1143", ["CTA 102"], 3.0, -0.45),
    ("J2253+1608", ["3C454.3", "3C 454.3"], 8.0, -0.60), ("J2258-2758", ["PKS 2255-282"], 1.5, -0.40),
    ("J2357-5311", ["PKS 2355-534"], 0.9, -0.50), ("J0106-4034", ["PKS 0104-408"], 1.5, -0.45),
    ("J0132-1654", ["PKS 0130-17"], 0.8, -0.40), ("J0927+3902", ["4C +39.25"], 1.2, -0.65),
    ("J1130-1449", ["PKS 1127-14"], 0.9, -0.60), ("J1147-6753", ["PKS 1144-379"], 0.8, -0.45),
    ("J1159+2914", ["4C +29.45"], 1.3, -0.50), ("J1426+3625", ["B2 1424+36"], 0.5, -0.55),
    ("J1800+3848", ["B3 1758+388"], 0.7, -0.55), ("J2157-6941", ["PKS 2153-69"], 0.9, -0.80),
    ("J2202+4216", ["BL Lac"], 2.5, -0.40),
]
#: non-grid calibrators: (name, other names, S100, index, bands monitored)
OTHERS = [
    ("J1126-3828", ["PKS 1124-381"], 0.55, -0.65, (3, 7)), ("J1147-3812", ["PKS 1144-379"], 0.95, -0.50, (3, 7)),
    ("J1744-3116", [], 0.35, -0.70, (3, 7)), ("J1733-3722", [], 0.25, -0.60, (3,)),
    ("J1832-2039", [], 0.45, -0.50, (3, 6)), ("J0433+2905", [], 0.30, -0.40, (3, 7)),
]
#: measurements analysisUtils printed (DOMAIN.md §6.1, public reduction scripts): (source, date, GHz, Jy, error)
PINNED = {
    "J0510+1800": [("2017-12-08", 103.49, 2.14, 0.05), ("2017-12-08", 91.46, 2.25, 0.04),
                   ("2017-12-09", 343.48, 1.25, 0.08)],
    "J1517-2422": [("2017-08-20", 91.46, 3.78, 0.07), ("2017-08-20", 343.48, 2.71, 0.05),
                   ("2017-09-04", 91.46, 3.69, 0.07), ("2017-09-05", 343.48, 2.37, 0.05)],
    # the primer printed no errors for the pair of 2019-12-06: these (the closest Band 3 value's 0.13 Jy for
    # both Band 3 values, and the Band 7 error that then gives the printed alpha = -0.538980) reproduce it
    "J1924-2914": [("2019-12-06", 103.5, 5.33, 0.13), ("2019-12-06", 91.47, 5.56, 0.13),
                   ("2019-12-06", 337.47, 2.75, 0.2022269619), ("2019-12-10", 337.5, 2.78, 0.08),
                   ("2019-12-14", 91.47, 5.50, 0.13)],
    "J1427-4206": [("2017-11-01", 91.46, 4.19, 0.11), ("2017-11-01", 103.49, 4.05, 0.11),
                   ("2017-11-01", 343.48, 1.92, 0.05), ("2017-11-07", 103.49, 4.01, 0.11),
                   ("2017-11-07", 91.46, 4.29, 0.12), ("2017-11-10", 343.48, 1.96, 0.05)],
}
#: pinned measurements keep generated ones this many days away
PIN_GUARD = 30
#: a catalogue update the demo shows: J1058+0133 re-reduced long after the example was calibrated
RE_REDUCED = {"J1058+0133": ("2019-12-27", "2024-03-01")}


@dataclass
class CalSource:
    name: str
    aliases: list
    ra: float
    dec: float
    grid: bool
    measurements: list = field(default_factory=list)


def _position(name: str) -> tuple[float, float]:
    ra = (int(name[1:3]) + int(name[3:5]) / 60) * 15.0
    sign = -1 if name[5] == "-" else 1
    dec = sign * (int(name[6:8]) + int(name[8:10]) / 60)
    return ra, dec


def _rng(name: str, seed: int) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little"))


def _walk(rng, days: np.ndarray, sigma: float, tau: float) -> np.ndarray:
    """A damped random walk (Ornstein-Uhlenbeck) of stationary spread *sigma* sampled at increasing *days*."""
    eps = rng.normal(0, sigma, len(days)).tolist()
    decay = np.exp(-np.diff(days, prepend=days[:1]) / tau).tolist()
    out, x = [], 0.0
    for i, (a, e) in enumerate(zip(decay, eps)):
        x = e if i == 0 else a * x + math.sqrt(1 - a * a) * e
        out.append(x)
    return np.array(out)


def _session_days(rng, start: int, end: int, every: tuple[int, int], gaps: np.ndarray) -> np.ndarray:
    """Observing days every *every* days from *start* to *end*, outside the gaps and every February."""
    steps = rng.integers(every[0], every[1] + 1, size=(end - start) // every[0] + 2)
    days = start + int(rng.integers(0, every[1])) + np.concatenate([[0], np.cumsum(steps)])
    days = days[days <= end]
    in_gap = ((days[:, None] >= gaps[None, :, 0]) & (days[:, None] <= gaps[None, :, 1])).any(axis=1)
    months = (_EPOCH + days.astype("timedelta64[D]")).astype("datetime64[M]").astype(int) % 12 + 1
    return days[~in_gap & (months != 2)]


def _sessions(rng, name: str, bands, grid: bool, d0: int, d1: int) -> tuple[np.ndarray, np.ndarray]:
    """(day, frequency in GHz) of every generated measurement of one source."""
    gaps = []
    for year_start in range(d0, d1, 365):
        for _ in range(int(rng.integers(1, 3))):
            g0 = year_start + int(rng.integers(0, 365))
            gaps.append((g0, g0 + int(rng.integers(20, 61))))
    gaps = np.array(gaps, dtype=float).reshape(-1, 2)
    every = (7, 14) if grid else (60, 180)
    b3 = _session_days(rng, d0, d1, every, gaps)
    if name == "J0510+1800":  # its Band 7 always 4 days after Band 3: the pinned pair (1 day) is the closest
        b7 = b3 + 4
    else:
        b7 = _session_days(rng, d0 + 3, d1, every, gaps) if 7 in bands else np.array([], dtype=int)
    b6 = np.array([], dtype=int)
    if 6 in bands:
        b6 = _session_days(rng, d0 + 20, d1, (50, 90), gaps) if grid else _session_days(rng, d0 + 5, d1, every, gaps)
    both = rng.random(len(b3)) < 0.6  # both Band 3 tunings on the day, else one of them
    first = np.where(both | (rng.random(len(b3)) < 0.5), 91.46, 103.49)
    days = np.concatenate([b3, b3[both], b7, b6])
    ghz = np.concatenate([first, np.full(both.sum(), 103.49), np.where(rng.random(len(b7)) < 0.8, 343.48, 337.46),
                          np.full(len(b6), 233.0)])
    return days.astype(int), ghz


def generate(start: str = "2012-06-01", end: str = "2025-12-31", seed: int = 2024, nsources: int | None = None,
             pinned: bool = True) -> list[CalSource]:
    """The catalogue: grid sources (the first *nsources* of them when given) and other calibrators."""
    d0, d1 = to_day(start), to_day(end)
    out = []
    rows = [(n, a, s, al, (3, 6, 7), True) for n, a, s, al in GRID]
    if nsources is not None:
        rows = rows[:nsources]
    else:
        rows += [(n, a, s, al, b, False) for n, a, s, al, b in OTHERS]
    for name, other, s100, alpha, bands, grid in rows:
        rng = _rng(name, seed)
        ra, dec = _position(name)
        src = CalSource(name, [_short(name), *other], ra, dec, grid)
        days, ghz = _sessions(rng, name, bands, grid, d0, d1)
        if pinned and name in PINNED:
            guard = np.array([to_day(p[0]) for p in PINNED[name]])
            far = (np.abs(days[:, None] - guard[None, :]) > PIN_GUARD).all(axis=1)
            days, ghz = days[far], ghz[far]
        unique = np.unique(days)
        log_s = dict(zip(unique, math.log10(s100) + _walk(rng, unique.astype(float), 0.15, 200.0)))
        index = dict(zip(unique, alpha + _walk(rng, unique.astype(float), 0.05, 300.0)))
        true = np.array([10 ** log_s[d] * (g / 100.0) ** index[d] for d, g in zip(days, ghz)])
        flux = np.round(true * (1 + rng.normal(0, 0.03, len(days))), 2)
        error = np.round(np.abs(flux) * rng.uniform(0.02, 0.05, len(days)), 2)
        roll = rng.random(len(days))
        flux = np.where(roll < 0.002, 0.0, np.where(roll < 0.004, -np.abs(flux), flux))  # rejected entries
        error = np.where((roll >= 0.004) & (roll < 0.012), np.nan, error)  # no uncertainty recorded
        late = rng.random(len(days)) < 0.03
        delay = np.where(late, rng.integers(400, 900, len(days)), rng.integers(3, 41, len(days)))
        reduced = (_EPOCH + (days + delay).astype("timedelta64[D]")).astype(str)
        for d, g, f, e, lag, iso in zip(days.tolist(), ghz.tolist(), flux.tolist(), error.tolist(), delay.tolist(),
                                        reduced.tolist()):
            src.measurements.append(dict(day=d, freq=g * 1e9, flux=f, error=e, ingested=d + lag,
                                         origin=f"ALMA_flux_monitoring_{name}_{iso}.txt"))
        if pinned:
            for iso, g, f, e in PINNED.get(name, []):
                day = to_day(iso)
                src.measurements.append(dict(day=day, freq=g * 1e9, flux=f, error=e, ingested=day + 10,
                                             origin=f"ALMA_flux_monitoring_{name}_{_iso(day + 10)}.txt"))
            if name in RE_REDUCED:
                obs, ingested = (to_day(x) for x in RE_REDUCED[name])
                near = unique[np.argmin(np.abs(unique - obs))]
                for g in (91.46, 343.48):
                    f = round(float(10 ** log_s[near] * (g / 100.0) ** index[near]) * 1.04, 2)
                    src.measurements.append(dict(day=obs, freq=g * 1e9, flux=f, error=round(f * 0.03, 2),
                                                 ingested=ingested,
                                                 origin=f"ALMA_flux_monitoring_{name}_rereduced_{_iso(ingested)}.txt"))
        src.measurements.sort(key=lambda m: (m["day"], -m["freq"]))
        out.append(src)
    return out


def _iso(day: float) -> str:
    return date.fromordinal(_MJD0.toordinal() + int(day)).isoformat()


def write_csv(path, sources: list[CalSource]) -> int:
    """The measurements as an offline catalogue file (calflux's CSV columns); returns the row count.

    Written here with the csv module, independently of calflux's own writer, so tests read a file
    that calflux did not make.
    """
    import csv
    n = 0
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["source", "aliases", "date", "frequency", "flux", "error", "band", "ingested"])
        for s in sources:
            for m in s.measurements:
                ghz = m["freq"] / 1e9
                band = 3 if ghz < 150 else 6 if ghz < 275 else 7
                w.writerow([s.name, ";".join(s.aliases), _iso(m["day"]), f"{ghz:.6f}", repr(m["flux"]),
                            "" if m["error"] != m["error"] else repr(m["error"]), band, _iso(m["ingested"])])
                n += 1
    return n
