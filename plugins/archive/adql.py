"""Search terms turned into ADQL on ``ivoa.obscore``; the one place user text becomes an ADQL literal.

:mod:`.grammar` reads the search box; this module writes what it read.  Numeric ranges are
written as astroquery writes them (``(230.0<=frequency AND frequency<=232.0)``, DOMAIN.md
§1.3); what astroquery gets wrong is done right here: every user string passes
:func:`quote`, which doubles quotes and refuses what TAP servers read differently
(control characters and backslashes — GAVO DaCHS reads ``\\'`` as an escaped quote, so
``a\\' OR 1=1 --`` would leave the literal); ``?`` is a wildcard
whether or not ``*`` is present; ``!( … )`` is a real negation, not astroquery's
inclusive complement; a band matches whole band numbers (``1`` does not match ``10``).

No backslash ever enters a query, not even to escape a literal ``%`` or ``_`` in a LIKE
pattern: ADQL has no ESCAPE clause, PostgreSQL (DaCHS) reads a backslash as LIKE's escape but
Oracle (the ALMA archive's TAP service, through CADC's translator) has no default escape, so
``'%NGC\\_1068%'`` would find nothing there.  Such a pattern is sent unescaped — it selects a
superset — and :func:`text_matches` gives the exact answer on the returned rows.
"""

from __future__ import annotations

import math
import re
import unicodedata

from .grammar import Not, Or, Range, Text, Value

__all__ = ["QueryError", "quote", "check_literal", "term_clause", "text_clause", "text_exact", "text_matches",
           "uid_clause", "band_clause",
           "polarisation_clause", "cone_clause", "centre_box_clause", "build_query", "number"]


class QueryError(ValueError):
    """A search value that cannot become a query; names the field and the value."""

    def __init__(self, field: str, value, why: str):
        self.field, self.value, self.why = field, value, why
        shown = value if not isinstance(value, str) or len(value) <= 200 else value[:200] + "…"
        super().__init__(f"{field}: cannot use {shown!r}: {why}")


# ------------------------------------------------------------------------------------ literals

def check_literal(text: str) -> str:
    """'' when *text* may become an ADQL string literal, else why not.

    Refused: control characters and line breaks (NUL, newline …; pyparsing-based servers such as
    GAVO DaCHS cannot even lex a literal with a newline), surrogates (not text), and every
    backslash: TAP servers disagree on whether it escapes the next character (DaCHS reads ``\\'``
    as an escaped quote — the quote would end the literal — and ``\\x`` as a hex escape), so no
    spelling of it is safe everywhere.
    """
    for k, ch in enumerate(text):
        if ch == "\\":
            return (f"a backslash (position {k + 1}) cannot be searched for: TAP servers disagree on whether it "
                    "escapes the next character (DaCHS reads \\' as an escaped quote)")
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cs", "Zl", "Zp"):
            what = "a surrogate (not text)" if cat == "Cs" else "a control character or line break"
            return f"{what} U+{ord(ch):04X} at position {k + 1} cannot be searched for"
    return ""


def quote(text, field: str = "value") -> str:
    """An ADQL string literal: quotes doubled; unsafe text refused with :class:`QueryError`."""
    text = str(text)
    why = check_literal(text)
    if why:
        raise QueryError(field, text, why)
    return _literal(text)


def _literal(checked: str) -> str:
    """The literal of text already checked (or of a LIKE pattern made from checked text)."""
    return "'" + checked.replace("'", "''") + "'"


def number(value: float) -> str:
    """A finite number as an ADQL literal (integers without a decimal point, as astroquery writes them)."""
    if isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    return repr(int(value)) if isinstance(value, int) else repr(float(value))


# ------------------------------------------------------------------------------------- clauses

def _join(parts: list[str], op: str = "OR") -> str:
    return parts[0] if len(parts) == 1 else "(" + f" {op} ".join(parts) + ")"


def term_clause(column: str, term, literal=number) -> str:
    """A numeric or date term on *column*; *literal* writes one end (a number, a quoted ISO date …)."""
    if isinstance(term, Or):
        return _join([term_clause(column, t, literal) for t in term.terms])
    if isinstance(term, Not):
        return f"NOT ({term_clause(column, term.term, literal)})"
    if isinstance(term, Value):
        return f"{column}={literal(term.value)}"
    if isinstance(term, Range):
        lo = None if term.lo is None else f"{literal(term.lo)}<={column}"
        hi = None if term.hi is None else f"{column}{'<' if term.hi_open else '<='}{literal(term.hi)}"
        if lo and hi:
            return f"({lo} AND {hi})"
        return lo or hi or "1=1"
    raise TypeError(f"not a numeric term: {term!r}")


#: characters LIKE reads as wildcards that no ADQL spelling escapes on every TAP server
LIKE_WILDCARDS = "%_"


def like_pattern(text: str) -> str:
    """User wildcards ``*``/``?`` → ADQL ``%``/``_``.

    A literal ``%`` or ``_`` is left as it is, so it also matches any text / any one character:
    the pattern selects a superset on every server (see the module's docstring).
    """
    return text.replace("*", "%").replace("?", "_")


def _uses_like(text: str, mode: str) -> bool:
    return mode == "contains" or "*" in text or "?" in text


def text_exact(term, mode: str = "exact") -> bool:
    """Whether :func:`text_clause` selects exactly *term*'s rows; if not, it selects a superset and
    :func:`text_matches` must be applied to the rows returned (a literal ``%``/``_`` in a LIKE)."""
    if isinstance(term, Or):
        return all(text_exact(t, mode) for t in term.terms)
    if isinstance(term, Not):
        return text_exact(term.term, mode)
    return not (_uses_like(term.text, mode) and any(c in term.text for c in LIKE_WILDCARDS))


def text_clause(column: str, term, mode: str = "exact", field: str = "") -> str:
    """A text term on *column*.

    ``exact``: ``column='v'``, or ``LIKE`` with wildcards (case as given).
    ``contains``: case-insensitive partial match, ``LOWER(column) LIKE '%v%'`` (the archive's
    titles, abstracts, names and keywords).

    When :func:`text_exact` is False the condition selects a superset of the rows meant (never
    fewer): a negation of such a term becomes ``column IS NOT NULL`` (``NOT`` of a superset would
    drop wanted rows; SQL's NOT never holds for NULL), and :func:`text_matches` decides.
    """
    field = field or column
    if isinstance(term, Or):
        return _join([text_clause(column, t, mode, field) for t in term.terms])
    if isinstance(term, Not):
        inner = text_clause(column, term.term, mode, field)  # checks every literal, even when not sent
        return f"NOT ({inner})" if text_exact(term.term, mode) else f"{column} IS NOT NULL"
    if not isinstance(term, Text):
        raise TypeError(f"not a text term: {term!r}")
    text = term.text
    why = check_literal(text)
    if why:
        raise QueryError(field, text, why)
    if mode == "contains":
        return f"LOWER({column}) LIKE {_literal(like_pattern('*' + text.lower() + '*'))}"
    if "*" in text or "?" in text:
        return f"{column} LIKE {_literal(like_pattern(text))}"
    return f"{column}={_literal(text)}"


def text_matches(term, value, mode: str = "exact") -> bool:
    """Whether a column *value* satisfies *term* as :func:`text_clause` means it, ``%`` and ``_`` literal.

    *value* None (NULL) satisfies nothing, not even a negation, as in SQL.
    """
    if value is None:
        return False
    if isinstance(term, Or):
        return any(text_matches(t, value, mode) for t in term.terms)
    if isinstance(term, Not):
        return not text_matches(term.term, value, mode)
    if mode == "contains":
        return _glob("*" + term.text.lower() + "*", value.lower())
    if _uses_like(term.text, mode):
        return _glob(term.text, value)
    return value == term.text


def _glob(pattern: str, text: str) -> bool:
    """Whether *pattern* (``*`` any text, ``?`` one character, all else itself — unlike fnmatch,
    ``[`` is literal) matches the whole *text*; at most len(pattern)·len(text) steps, however many ``*``."""
    p = t = 0
    star = resume = -1  # the last '*' seen, and where in text its match would grow next
    while t < len(text):
        if p < len(pattern) and pattern[p] != "*" and pattern[p] in ("?", text[t]):
            p, t = p + 1, t + 1
        elif p < len(pattern) and pattern[p] == "*":
            star, resume, p = p, t, p + 1
        elif star >= 0:  # let the last '*' take one more character and retry
            resume += 1
            p, t = star + 1, resume
        else:
            return False
    return pattern[p:].strip("*") == ""


_UID = re.compile(r"uid(?:://|___)([A-Za-z0-9]+)[/_]([A-Za-z0-9]+)[/_]([A-Za-z0-9]+)", re.ASCII)


def uid_clause(column: str, value) -> str:
    """MOUS/GOUS uids in either spelling (``uid://A001/X1/X2`` or ``uid___A001_X1_X2``)."""
    values = value if isinstance(value, (list, tuple)) else re.split(r"[|,\s]+", str(value))
    parts = []
    for v in (str(v).strip() for v in values if v is not None and str(v).strip()):
        m = _UID.fullmatch(v)
        if not m:
            raise QueryError(column, v, "not an ALMA uid like uid://A001/X1465/X3")
        parts.append(f"{column}={quote('uid://' + '/'.join(m.groups()))}")
    return _join(parts) if parts else ""


def band_clause(bands: list[int]) -> str:
    """Bands as whole tokens of the space-separated ``band_list`` (at least one: no band is no clause)."""
    if not bands:
        raise ValueError("band_clause: give at least one band (an empty list would be the invalid ADQL '()')")
    parts = []
    for b in bands:
        s = str(int(b))
        parts.append(f"(band_list={quote(s)} OR band_list LIKE {quote(s + ' %')} OR band_list LIKE "
                     f"{quote('% ' + s)} OR band_list LIKE {quote('% ' + s + ' %')})")
    return _join(parts)


#: the archive's polarisation types and the pol_states they mean
POLARISATIONS = {"single": "/XX/", "dual": "/XX/YY/", "full": "/XX/XY/YX/YY/"}


def polarisation_clause(term) -> str:
    if isinstance(term, Or):
        return _join([polarisation_clause(t) for t in term.terms])
    if isinstance(term, Not):
        return f"NOT ({polarisation_clause(term.term)})"
    name = term.text.strip().lower()
    if name in POLARISATIONS:
        return f"pol_states={quote(POLARISATIONS[name])}"
    if name in ("stokes i", "i"):
        return "pol_states LIKE '%I%'"
    raise QueryError("polarisation", term.text, "use Single, Dual, Full or Stokes I (alternatives with |)")


def cone_clause(ra_deg: float, dec_deg: float, radius_deg: float) -> str:
    """Footprints (``s_region``) touching the circle, as the archive's position search does."""
    return (f"(INTERSECTS(CIRCLE('ICRS',{number(float(ra_deg))},{number(float(dec_deg))},"
            f"{number(float(radius_deg))}), s_region) = 1)")


def centre_box_clause(lon: str, lat: str, lon_range: tuple, lat_range: tuple) -> str:
    """Field centres inside a coordinate box; a longitude range whose start exceeds its end wraps through 0."""
    parts = []
    lo, hi = lon_range
    if lo is not None and hi is not None and lo > hi:
        parts.append(f"({lon}>={number(lo)} OR {lon}<={number(hi)})")
    else:
        parts.append(term_clause(lon, Range(lo, hi)) if (lo, hi) != (None, None) else "")
    lo, hi = lat_range
    parts.append(term_clause(lat, Range(lo, hi)) if (lo, hi) != (None, None) else "")
    parts = [p for p in parts if p]
    return "(" + " AND ".join(parts) + ")" if len(parts) > 1 else (parts[0] if parts else "1=1")


def build_query(clauses: list[str], columns: str = "*", distinct: bool = False, top: int | None = None,
                order: str = "", offset: int = 0) -> str:
    where = " AND ".join(c for c in clauses if c)
    return (f"select {'distinct ' if distinct else ''}{f'TOP {int(top)} ' if top else ''}{columns} from ivoa.obscore"
            + (f" WHERE {where}" if where else "") + (f" ORDER BY {order}" if order else "")
            + (f" OFFSET {int(offset)}" if offset else ""))
