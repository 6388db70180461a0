"""The ALMA archive's search-box grammar, read into terms (no ADQL here).

One grammar serves every field (DOMAIN.md §1.3, with astroquery's mistakes fixed):

* alternatives ``a | b | c``; parentheses group them: ``(2017.* | 2018.*)``;
* ``!x`` or ``!( … )`` negates: nothing in the group may match (for a frequency: *no*
  spectral window overlaps it);
* numeric and date fields also take ``<x``, ``>x`` (ends included) and ranges ``a..b``;
  numbers may carry a unit (``2MHz``, ``1.3mm``, ``30arcsec``); a bare number is in the
  field's own unit;
* dates are ``yyyy-mm-dd`` (optionally ``Thh:mm[:ss]``), ``dd-mm-yyyy`` (the archive page's
  form) or ``yyyy/mm/dd`` (CASA's); a single date is that whole day.

Parsing is one pass over the text plus one scan per nesting level (linear time); the
nesting depth is bounded so no input can exhaust Python's stack.  Every problem is a
:class:`SearchSyntaxError` naming the value and what is wrong with it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Union

__all__ = ["SearchSyntaxError", "Or", "Not", "Range", "Value", "Text", "Term", "parse", "parse_text",
           "parse_numbers", "parse_dates", "number_reader", "MAX_DEPTH"]

#: deepest nesting of parentheses and ``!`` accepted (a search box never needs more)
MAX_DEPTH = 20


class SearchSyntaxError(ValueError):
    """A search value the grammar cannot read."""

    def __init__(self, value, why: str):
        self.value, self.why = value, why
        super().__init__(f"cannot read {_shorten(value)!r}: {why}")


def _shorten(value, limit: int = 200):
    return value if not isinstance(value, str) or len(value) <= limit else value[:limit] + "…"


# ------------------------------------------------------------------------------------- terms

@dataclass(frozen=True)
class Or:
    terms: tuple


@dataclass(frozen=True)
class Not:
    term: object


@dataclass(frozen=True)
class Range:
    """``lo <= x <= hi`` (``x < hi`` when *hi_open*); ``None`` leaves that side unbounded."""
    lo: object = None
    hi: object = None
    hi_open: bool = False


@dataclass(frozen=True)
class Value:
    value: object


@dataclass(frozen=True)
class Text:
    """A text alternative; ``*`` and ``?`` in it are wildcards."""
    text: str


Term = Union[Or, Not, Range, Value, Text]


# ----------------------------------------------------------------------------------- structure

def parse(text: str, atom: Callable[[str], Term]) -> Term:
    """Read *text* into a term: alternatives, groups and negations, with *atom* reading each leaf."""
    if not isinstance(text, str):
        raise SearchSyntaxError(text, "is not text")
    match = _match_parentheses(text)
    term = _alternatives(text, 0, len(text), match, atom, 0)
    return term


def _match_parentheses(text: str) -> dict[int, int]:
    """Position of every '(' → its ')'; unbalanced or too deeply nested text is an error."""
    stack, match = [], {}
    for k, ch in enumerate(text):
        if ch == "(":
            stack.append(k)
            if len(stack) > MAX_DEPTH:
                raise SearchSyntaxError(text, f"parentheses nested deeper than {MAX_DEPTH}")
        elif ch == ")":
            if not stack:
                raise SearchSyntaxError(text, f"')' at position {k + 1} closes nothing")
            match[stack.pop()] = k
    if stack:
        raise SearchSyntaxError(text, f"'(' at position {stack[-1] + 1} is never closed")
    return match


def _strip(text: str, i: int, j: int) -> tuple[int, int]:
    while i < j and text[i].isspace():
        i += 1
    while j > i and text[j - 1].isspace():
        j -= 1
    return i, j


def _alternatives(text, i, j, match, atom, depth) -> Term:
    """``a | b | …`` between *i* and *j*; '|' inside parentheses belongs to the group."""
    parts, start, k = [], i, i
    while k < j:
        ch = text[k]
        if ch == "(":
            k = match[k] + 1
            continue
        if ch == "|":
            parts.append((start, k))
            start = k + 1
        k += 1
    parts.append((start, j))
    terms = [_alternative(text, a, b, match, atom, depth) for a, b in parts]
    return terms[0] if len(terms) == 1 else Or(tuple(terms))


def _alternative(text, i, j, match, atom, depth) -> Term:
    i, j = _strip(text, i, j)
    if i == j:
        raise SearchSyntaxError(text, "an alternative is empty (nothing between '|', '(' or ')')")
    if depth > MAX_DEPTH:  # as many levels as parentheses alone may have (_match_parentheses)
        raise SearchSyntaxError(text, f"groups and '!' nested deeper than {MAX_DEPTH}")
    if text[i] == "!":
        return Not(_alternative(text, i + 1, j, match, atom, depth + 1))
    if text[i] == "(" and match[i] == j - 1:
        return _alternatives(text, i + 1, j - 1, match, atom, depth + 1)
    return atom(text[i:j])


# ---------------------------------------------------------------------------------------- text

def _text_atom(s: str) -> Term:
    return Text(s)


def parse_text(text: str) -> Term:
    """Text fields: alternatives, groups and ``!``; each alternative is literal text with ``*``/``?``."""
    return parse(text, _text_atom)


# ------------------------------------------------------------------------------------- numbers

_NUMBER = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*(.*)", re.ASCII | re.S)
#: longest unit text handed to astropy's unit parser
MAX_UNIT = 24


def number_reader(unit: str = "", column_unit: str = "", equivalencies=None) -> Callable[[str], tuple[float, bool]]:
    """A reader of ``'230'``, ``'230GHz'``, ``'1.3 mm'`` → ``(value in column_unit, reversed)``.

    A bare number is in *unit* (the search box's unit); a number with a unit is converted.
    *reversed* is True when the given unit runs against the field's (a wavelength for a
    frequency): ``<`` and ``>`` and range ends then swap.  Unit-less fields (*unit* ``''``)
    take bare numbers only.
    """
    column_unit = column_unit or unit
    bare_scale = _scale(unit, column_unit) if unit else 1.0

    def read(s: str) -> tuple[float, bool]:
        m = _NUMBER.fullmatch(s.strip())
        if not m:
            raise SearchSyntaxError(s, "is not a number" + (f" (with an optional unit, e.g. '2{unit}')"
                                                              if unit else ""))
        number, given = float(m.group(1)), m.group(2).strip()
        if not math.isfinite(number):
            raise SearchSyntaxError(s, "is not a finite number")
        if not given:
            value, flipped = number * bare_scale, False
        elif not unit:
            raise SearchSyntaxError(s, "takes a plain number, without a unit")
        else:
            value, flipped = _convert(s, number, given, unit, column_unit, equivalencies)
        if not math.isfinite(value):
            raise SearchSyntaxError(s, f"is out of range once converted to {column_unit}")
        return value, flipped
    return read


def _scale(unit: str, column_unit: str) -> float:
    import astropy.units as u
    return float(u.Unit(unit).to(u.Unit(column_unit)))


def _convert(s: str, number: float, given: str, unit: str, column_unit: str, equivalencies) -> tuple[float, bool]:
    import astropy.units as u
    if len(given) > MAX_UNIT:  # bounded before astropy's parser sees it
        raise SearchSyntaxError(s, f"has a unit longer than {MAX_UNIT} characters (expected a unit of {unit})")
    if not given.isascii():
        raise SearchSyntaxError(s, f"has no unit astropy knows (expected a unit of {unit})")
    eq = equivalencies or []
    try:
        src = u.Unit(given)
        one, two = (1.0 * src).to_value(column_unit, equivalencies=eq), (2.0 * src).to_value(column_unit, equivalencies=eq)
        value = (number * src).to_value(column_unit, equivalencies=eq)
    except Exception:  # astropy raises ValueError, UnitsError, TypeError … for unknown or unfit units
        raise SearchSyntaxError(s, f"needs a unit convertible to {unit}; got {given!r}") from None
    return float(value), bool(two < one)


def parse_numbers(text: str, read: Callable[[str], tuple[float, bool]]) -> Term:
    """Numeric fields: ``x``, ``<x``, ``>x``, ``a..b`` (ends included), with alternatives and ``!``."""
    def atom(s: str) -> Term:
        op, ends = _split_comparison(s, "a value")
        if op is None:
            return Value(read(ends[0])[0])
        if op == "..":
            ends = _share_unit(ends)
            (a, fa), (b, fb) = read(ends[0]), read(ends[1])
            if fa != fb:  # a frequency and a wavelength as the two ends: order them by the field's unit
                a, b = sorted((a, b))
            elif fa:  # both ends reversed (two wavelengths for a frequency)
                a, b = b, a
            if a > b:
                raise SearchSyntaxError(s, "is an empty range (the first end is larger)")
            return Range(a, b)
        v, flipped = read(ends[0])
        below = (op == "<") != flipped  # a reversed unit turns '<' into '>'
        return Range(None, v) if below else Range(v, None)
    return parse(text, atom)


def _share_unit(ends: list[str]) -> list[str]:
    """``1800..1900MHz``: a unit written on one end only applies to both."""
    units = []
    for e in ends:
        m = _NUMBER.fullmatch(e.strip())
        units.append(m.group(2).strip() if m else None)
    if units[0] == "" and units[1]:
        return [ends[0].strip() + units[1], ends[1]]
    if units[1] == "" and units[0]:
        return [ends[0], ends[1].strip() + units[0]]
    return ends


def _split_comparison(s: str, what: str) -> tuple[str | None, list[str]]:
    """``'<x'`` → ``('<', ['x'])``, ``'a..b'`` → ``('..', ['a', 'b'])``, ``'x'`` → ``(None, ['x'])``."""
    s = s.strip()
    if "(" in s or ")" in s:
        raise SearchSyntaxError(s, f"has a parenthesis inside {what}")
    for op, canonical in (("<=", "<"), (">=", ">"), ("<", "<"), (">", ">")):
        if s.startswith(op):
            rest = s[len(op):].strip()
            if not rest:
                raise SearchSyntaxError(s, f"'{op}' needs a value after it")
            return canonical, [rest]
    if ".." in s:
        ends = s.split("..")
        if len(ends) != 2 or not ends[0].strip() or not ends[1].strip():
            raise SearchSyntaxError(s, "a range is 'a..b' with both ends given (use <b or >a for open ranges)")
        return "..", ends
    return None, [s]


# --------------------------------------------------------------------------------------- dates

_DATE_FORMS = [
    (re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:[T ]([0-9]{1,2}):([0-9]{2})(?::([0-9]{2})(\.[0-9]{1,6})?)?)?",
                re.ASCII), "ymd"),
    (re.compile(r"([0-9]{1,2})-([0-9]{1,2})-([0-9]{4})", re.ASCII), "dmy"),
    (re.compile(r"([0-9]{4})/([0-9]{1,2})/([0-9]{1,2})(?:/([0-9]{1,2}):([0-9]{2})(?::([0-9]{2})(\.[0-9]{1,6})?)?)?",
                re.ASCII), "ymd"),
]


def read_date(s: str) -> tuple[datetime, datetime]:
    """``'2020-03-03'`` → (that midnight, the next midnight); with a time, that minute or second."""
    s = s.strip()
    for pattern, order in _DATE_FORMS:
        m = pattern.fullmatch(s)
        if not m:
            continue
        g = m.groups()
        y, mo, d = (int(g[0]), int(g[1]), int(g[2])) if order == "ymd" else (int(g[2]), int(g[1]), int(g[0]))
        hh = mm = ss = None
        frac = ""
        if order == "ymd" and g[3] is not None:
            hh, mm = int(g[3]), int(g[4])
            ss = int(g[5]) if g[5] is not None else None
            frac = g[6] or ""
        try:
            start = datetime(y, mo, d, hh or 0, mm or 0, ss or 0, int(frac[1:].ljust(6, "0")) if frac else 0)
        except ValueError as exc:
            raise SearchSyntaxError(s, f"is not a calendar date ({exc})") from None
        if hh is None:
            step = timedelta(days=1)
        elif ss is None:
            step = timedelta(minutes=1)
        elif frac:
            step = timedelta(microseconds=10 ** (6 - (len(frac) - 1)))
        else:
            step = timedelta(seconds=1)
        try:
            return start, start + step
        except OverflowError:
            return start, datetime.max
    raise SearchSyntaxError(s, "is not a date (yyyy-mm-dd, dd-mm-yyyy or yyyy/mm/dd, optionally with Thh:mm[:ss])")


def parse_dates(text: str) -> Term:
    """Date fields: a date (that whole day), ``<d`` (up to the end of d), ``>d`` (from d on), ``a..b``.

    Every date term is a half-open interval of datetimes ``[start, end)``.
    """
    def atom(s: str) -> Term:
        op, ends = _split_comparison(s, "a date")
        if op is None:
            start, end = read_date(ends[0])
            return Range(start, end, hi_open=True)
        if op == "<":
            return Range(None, read_date(ends[0])[1], hi_open=True)
        if op == ">":
            return Range(read_date(ends[0])[0], None, hi_open=True)
        start, end = read_date(ends[0])[0], read_date(ends[1])[1]
        if start >= end:
            raise SearchSyntaxError(s, "is an empty range (the first date is later)")
        return Range(start, end, hi_open=True)
    return parse(text, atom)
