"""An independent reading of the emulator's ObsCore rows, for the almaquery tests.

Nothing here imports almaquery's grammar, ADQL writer or coverage code: the expected rows of
every search are computed from the rows the emulator serves (one unrestricted TAP query
through pyvo), with plain Python, astropy and numpy — the test's own implementation of what
the archive page means.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

import numpy as np

C = 299792458.0


def rows_of(table) -> list[dict]:
    """Plain-Python rows (masked values → None, strings as str)."""
    out = []
    names = table.colnames
    for r in table:
        row = {}
        for n in names:
            v = r[n]
            if np.ma.is_masked(v):
                v = None
            elif isinstance(v, bytes):
                v = v.decode()
            elif isinstance(v, (np.str_, str)):
                v = str(v)
            elif isinstance(v, np.generic):
                v = v.item()
            row[n] = v
        out.append(row)
    return out


def key(row) -> tuple:
    """A row's identity (obs_id is per window in the archive's current layout; older rows share it)."""
    return (str(row["member_ous_uid"]), str(row["obs_id"]), str(row["target_name"]), float(row["em_min"]))


def keys(rows) -> list:
    return sorted(key(r) for r in rows)


def table_keys(table) -> list:
    return keys(rows_of(table))


# -------------------------------------------------------------------------------- text and numbers

def wildcard(pattern: str) -> re.Pattern:
    """The archive's wildcards: * any run, ? one character; everything else literal."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.S)


def exact(value, pattern: str) -> bool:
    return value is not None and wildcard(pattern).fullmatch(str(value)) is not None


def contains(value, pattern: str) -> bool:
    return value is not None and wildcard(pattern.lower()).search(str(value).lower()) is not None


# ---------------------------------------------------------------------------------------- windows

_WINDOW = re.compile(r"\[\s*([0-9.]+)\s*\.\.\s*([0-9.]+)\s*GHz\s*,\s*([0-9.]+)\s*kHz")


def windows(support: str) -> list[tuple[float, float]]:
    """(lo, hi) GHz of each spectral window of a frequency_support text."""
    return [(float(a), float(b)) for a, b, _ in _WINDOW.findall(support or "")]


def covers(support: str, lo: float, hi: float) -> bool:
    """Some window overlaps [lo, hi] (GHz)."""
    return any(a <= hi and b >= lo for a, b in windows(support))


# ---------------------------------------------------------------------------------------- geometry

def _vec(ra, dec) -> np.ndarray:
    ra, dec = np.radians(ra), np.radians(dec)
    return np.array([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def _angle(a, b) -> float:
    return math.degrees(math.atan2(np.linalg.norm(np.cross(a, b)), float(np.dot(a, b))))


def polygon(stcs: str) -> list[tuple[float, float]]:
    nums = [float(x) for x in re.findall(r"[-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?", stcs.split("ICRS", 1)[1])]
    return list(zip(nums[0::2], nums[1::2]))


def _inside(p, verts) -> bool:
    """Point in a spherical polygon: gnomonic projection about the polygon's centre (edges stay straight)."""
    from matplotlib.path import Path
    centre = sum(verts)
    centre = centre / np.linalg.norm(centre)
    east = np.cross([0.0, 0.0, 1.0], centre)
    east = east / np.linalg.norm(east) if np.linalg.norm(east) > 1e-12 else np.array([1.0, 0.0, 0.0])
    north = np.cross(centre, east)

    def project(v):
        d = float(np.dot(v, centre))
        return (float(np.dot(v, east)) / d, float(np.dot(v, north)) / d)
    if float(np.dot(p, centre)) <= 0:
        return False
    return Path([project(v) for v in verts]).contains_point(project(p))


def distance_to_polygon(ra: float, dec: float, stcs: str) -> float:
    """Angular distance (deg) from a point to a spherical polygon (0 inside), edges as great-circle arcs."""
    verts = [_vec(a, d) for a, d in polygon(stcs)]
    p = _vec(ra, dec)
    if _inside(p, verts):
        return 0.0
    best = math.inf
    for a, b in zip(verts, verts[1:] + verts[:1]):
        n = np.cross(a, b)
        n = n / np.linalg.norm(n)
        c = p - np.dot(p, n) * n
        if np.linalg.norm(c) > 1e-15:
            c = c / np.linalg.norm(c)
            if np.dot(np.cross(a, c), n) >= 0 and np.dot(np.cross(c, b), n) >= 0:
                best = min(best, math.degrees(math.asin(min(1.0, abs(float(np.dot(p, n)))))))
                continue
        best = min(best, _angle(p, a), _angle(p, b))
    return best


# -------------------------------------------------------------------------------------------- dates

def mjd(text: str) -> float:
    """MJD of an ISO date, by astropy (independent of almaquery's own arithmetic)."""
    from astropy.time import Time
    return float(Time(text, scale="utc").mjd)


def iso_datetime(text: str) -> datetime:
    return datetime.fromisoformat(str(text)[:19])
