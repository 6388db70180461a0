"""Calibrator names as the ALMA Source Catalogue writes and matches them.

The catalogue knows each source under several names (``J1924-2914``,
``J1924-292``, ``PKS 1921-293``); people write ``QSO J1924-2914``, ``3C 279`` or
``3c279``.  :func:`normalise` makes one comparable key (analysisUtils strips the
space after ``3C`` and ``QSO``), and :func:`short_jname` derives the old short
J-name (declination in tenths of a degree, ``J1924-2914`` → ``J1924-292``) so that
either form finds the source.
"""

from __future__ import annotations

import difflib
import re

__all__ = ["normalise", "short_jname", "is_short_jname", "keys", "close_names"]

_LONG_J = re.compile(r"^J(\d{4})([+-])(\d{2})(\d{2})$")
_SHORT_J = re.compile(r"^J(\d{4})([+-])(\d{3})$")


def normalise(name: str) -> str:
    """The comparison key: upper case, no spaces, without a leading ``QSO``; ``''`` for an empty name."""
    key = re.sub(r"\s+", "", str(name)).upper()
    if key.startswith("QSO") and len(key) > 3:
        key = key[3:]
    return key


def short_jname(name: str) -> str | None:
    """``J1924-2914`` → ``J1924-292`` (degrees and tenths, truncated); None when not a long J-name."""
    m = _LONG_J.match(normalise(name))
    if not m:
        return None
    tenths = int(m.group(4)) // 6  # arcminutes → tenths of a degree, truncated as the catalogue does
    return f"J{m.group(1)}{m.group(2)}{m.group(3)}{tenths}"


def is_short_jname(name: str) -> bool:
    return bool(_SHORT_J.match(normalise(name)))


def keys(name: str) -> set[str]:
    """Every key under which *name* matches a catalogue source (the name, and its short J-name)."""
    key = normalise(name)
    out = {key} if key else set()
    short = short_jname(key)
    if short:
        out.add(short)
    return out


def close_names(name: str, known, n: int = 5) -> list[str]:
    """Up to *n* catalogue names closest to *name* (for 'unknown source' messages)."""
    known = sorted(set(known))
    by_key = {}
    for k in known:
        by_key.setdefault(normalise(k), k)
    hits = difflib.get_close_matches(normalise(name), list(by_key), n=n, cutoff=0.6)
    return [by_key[h] for h in hits]
