"""Dates as people and files write them, to Modified Julian Days (UTC).

Accepted: ``2019-12-12``, ``2019/12/12``, ``20191212`` (analysisUtils), ISO with a
time (``2019-12-12T05:30:00``), CASA's ``2019/12/12/05:30:00``, the flux service's
``12-December-2019`` and ``12-Dec-2019``, and a bare MJD number (``58829.5``).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache

__all__ = ["to_mjd", "mjd_to_iso", "mjd_to_date", "service_date", "today_mjd", "MJD0"]

MJD0 = date(1858, 11, 17)
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december"]
_NUMERIC = re.compile(r"^(\d{4})[-/]?(\d{2})[-/]?(\d{2})(?:[T/ ](\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d*)?))?)?(?:Z|\s*UTC)?$")
_NAMED = re.compile(r"^(\d{1,2})[- ]([A-Za-z]{3,9})[- ](\d{4})$")


def _mjd(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: float = 0.0) -> float:
    day = (date(y, mo, d) - MJD0).days  # raises ValueError for impossible dates
    if not (0 <= h < 24 and 0 <= mi < 60 and 0 <= s < 61):
        raise ValueError("time of day out of range")
    return day + (h * 3600 + mi * 60 + s) / 86400.0


def to_mjd(text) -> float:
    """MJD (days, UTC) of a date in any accepted form; ``ValueError`` saying which forms are accepted."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
        if 15000 <= value <= 100000:
            return value
        raise ValueError(f"{text!r}: as a number, a date must be an MJD between 15000 and 100000")
    if isinstance(text, datetime):
        t = text.astimezone(timezone.utc) if text.tzinfo else text
        return _mjd(t.year, t.month, t.day, t.hour, t.minute, t.second + t.microsecond / 1e6)
    s = str(text).strip()
    try:
        m = _NUMERIC.match(s)
        if m:
            return _mjd(int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4) or 0),
                        int(m.group(5) or 0), float(m.group(6) or 0))
        m = _NAMED.match(s)
        if m:
            word = m.group(2).lower()
            month = next((i for i, name in enumerate(_MONTHS, 1) if name.startswith(word) and len(word) >= 3), 0)
            if month and (len(word) == 3 or word == _MONTHS[month - 1]):
                return _mjd(int(m.group(3)), month, int(m.group(1)))
        if re.fullmatch(r"\d{5}(\.\d*)?", s):
            return to_mjd(float(s))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date ({exc})") from None
    raise ValueError(f"{text!r} is not a date: use YYYY-MM-DD (optionally with a time), YYYY/MM/DD, "
                     "DD-Month-YYYY or an MJD")


def mjd_to_date(mjd: float) -> date:
    return _day(int(mjd // 1))


@lru_cache(maxsize=65536)
def _day(day: int) -> date:
    return MJD0 + timedelta(days=day)


@lru_cache(maxsize=65536)
def _iso(day: int) -> str:
    return _day(day).isoformat()


def mjd_to_iso(mjd: float) -> str:
    """``YYYY-MM-DD`` of the day holding *mjd*."""
    return _iso(int(mjd // 1))


def service_date(mjd: float) -> str:
    """The flux service's DATE form, as the pipeline writes it: ``27-March-2013`` (day zero-padded)."""
    d = mjd_to_date(mjd)
    return f"{d.day:02d}-{_MONTHS[d.month - 1].capitalize()}-{d.year}"


def today_mjd() -> float:
    return to_mjd(datetime.now(timezone.utc))
