"""Frequency searches as the archive page means them: *coverage* by the spectral windows.

A row of ``ivoa.obscore`` lists its whole correlator set-up in ``frequency_support``
(DOMAIN.md §1.2)::

    [112.35..114.23GHz,1952.95kHz,8mJy/beam@10km/s,360.2uJy/beam@native, XX YY] U [113.81..115.79GHz,…]

A frequency term matches a row when its windows satisfy it: a value or range matches when
*some* window overlaps it, ``<x`` when some window reaches below x, ``>x`` above it, ``a | b``
when either does, and ``!( … )`` when the group does not — so ``!(230..232)`` means *no*
window overlaps 230–232 GHz.  The tuned ``frequency`` column is only the set-up's reference
(the middle of its span, often in the gap between the two sidebands), which is why comparing
it (astroquery's rule, ``frequency_mode='central'``) misses data (astroquery issue #2097).

The server is asked first with a pre-filter on ``em_min``/``em_max`` that cannot lose a match
(:func:`prefilter_clause`); the exact test runs here on each returned row (:func:`matches`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .adql import number
from .grammar import Not, Or, Range, Value

__all__ = ["Window", "SupportError", "parse_support", "matches", "prefilter_clause", "SPAN_GHZ"]

C = 299792458.0
#: widest distance between two window edges of one ALMA tuning (GHz): the IFs reach 18 GHz on
#: each side of the LO (Band 2), so one set-up spans less than 40 GHz.  Rows of the archive
#: carry one window each in em_min/em_max, so a row's siblings are within this distance.
SPAN_GHZ = 40.0

_UNIT_GHZ = {"thz": 1e3, "ghz": 1.0, "mhz": 1e-3, "khz": 1e-6, "hz": 1e-9}
_UNIT_KHZ = {"ghz": 1e6, "mhz": 1e3, "khz": 1.0, "hz": 1e-3}
_RANGE = re.compile(r"\s*([0-9.eE+-]+)\s*\.\.\s*([0-9.eE+-]+)\s*([kKmMgGtT]?[hH][zZ])\s*", re.ASCII)
_FREQ = re.compile(r"\s*([0-9.eE+-]+)\s*([kKmMgG]?[hH][zZ])\s*", re.ASCII)
_WINDOW = re.compile(r"\[([^\[\]]*)\]")
#: longest text of one window accepted (real ones are < 100 characters)
MAX_WINDOW_TEXT = 400


class SupportError(ValueError):
    """A ``frequency_support`` text that cannot be read."""


@dataclass(frozen=True)
class Window:
    lo_ghz: float
    hi_ghz: float
    resolution_khz: float | None = None
    pols: str = ""


def parse_support(text) -> list[Window]:
    """The spectral windows of a ``frequency_support`` text (linear time; bad text → :class:`SupportError`)."""
    if text is None:
        return []
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = str(text)
    windows = []
    for m in _WINDOW.finditer(text):
        body = m.group(1)
        if len(body) > MAX_WINDOW_TEXT:
            raise SupportError(f"a window of {len(body)} characters in frequency_support")
        fields = body.split(",")
        r = _RANGE.fullmatch(fields[0])
        if not r:
            raise SupportError(f"no frequency range in window [{body[:80]}]")
        try:
            scale = _UNIT_GHZ[r.group(3).lower()]
            lo, hi = float(r.group(1)) * scale, float(r.group(2)) * scale
        except ValueError:
            raise SupportError(f"unreadable frequency range in window [{body[:80]}]") from None
        if not (lo <= hi) or lo != lo:
            raise SupportError(f"window [{body[:80]}] has its ends reversed")
        res = None
        if len(fields) > 1:
            f = _FREQ.fullmatch(fields[1])
            if f:
                try:
                    res = float(f.group(1)) * _UNIT_KHZ[f.group(2).lower()]
                except ValueError:
                    res = None
        pols = fields[-1].strip() if len(fields) > 1 and not _FREQ.fullmatch(fields[-1]) and "@" not in fields[-1] \
            else ""
        windows.append(Window(lo, hi, res, pols))
    if text.strip() and not windows:
        raise SupportError(f"no [lo..hiGHz,…] window in {text[:80]!r}")
    return windows


def _overlaps(w: Window, lo, hi) -> bool:
    return (lo is None or w.hi_ghz >= lo) and (hi is None or w.lo_ghz <= hi)


def matches(term, windows: list[Window]) -> bool:
    """Whether the windows satisfy the frequency term (GHz)."""
    if isinstance(term, Or):
        return any(matches(t, windows) for t in term.terms)
    if isinstance(term, Not):
        return not matches(term.term, windows)
    if isinstance(term, Value):
        return any(_overlaps(w, term.value, term.value) for w in windows)
    if isinstance(term, Range):
        return any(_overlaps(w, term.lo, term.hi) for w in windows)
    raise TypeError(f"not a frequency term: {term!r}")


def prefilter_clause(term) -> str:
    """ADQL on the row's own window (``em_min``/``em_max``, metres) that every matching row satisfies.

    A row's window lies within :data:`SPAN_GHZ` of every window of its set-up, so a set-up
    overlapping [a, b] has all its rows overlapping [a − SPAN, b + SPAN].  A negation has no
    such bound ('' = no pre-filter: the exact test sees every row of the other constraints).
    """
    if isinstance(term, Or):
        parts = [prefilter_clause(t) for t in term.terms]
        return "" if not all(parts) else "(" + " OR ".join(parts) + ")"
    if isinstance(term, Not):
        return ""
    lo, hi = (term.value, term.value) if isinstance(term, Value) else (term.lo, term.hi)
    parts = []
    if hi is not None:  # the window's low edge (c / em_max) is at most hi + SPAN
        parts.append(f"em_max>={number(C / ((hi + SPAN_GHZ) * 1e9))}")
    if lo is not None and lo - SPAN_GHZ > 0:  # its high edge (c / em_min) is at least lo - SPAN
        parts.append(f"em_min<={number(C / ((lo - SPAN_GHZ) * 1e9))}")
    if not parts:
        return "em_min IS NOT NULL"
    return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"
