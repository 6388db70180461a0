"""The ALMA archive's search-box grammar turned into ADQL on ``ivoa.obscore``.

Numeric and date fields take the search box's grammar (DOMAIN.md §1.3):
``230..232``, ``<x``, ``>x``, ``!(a..b)``, alternatives with ``|``, outer
parentheses.  The parsing is astroquery's (:func:`astroquery.alma.tapsql._val_parse`)
and the numeric clauses are written exactly as astroquery writes them; what it
gets wrong is done here instead: every user string is escaped before it enters
the query (a quote cannot end the literal), ``?`` is a wildcard whether or not
``*`` is present, a band matches whole band numbers (``1`` does not match ``10``),
sexagesimal right ascensions are hours, and release dates are checked ISO dates.
"""

from __future__ import annotations

import re

__all__ = ["quote", "numeric_clause", "string_clause", "band_clause", "date_clause", "release_clause",
           "polarisation_clause", "cone_clause", "uid_clause", "build_query", "QueryError"]


class QueryError(ValueError):
    """A search value the grammar cannot read; names the field and the value."""

    def __init__(self, field: str, value, why: str):
        self.field, self.value, self.why = field, value, why
        super().__init__(f"{field}: cannot use {value!r}: {why}")


def quote(text: str) -> str:
    """An ADQL string literal: single quotes doubled, so the value cannot end the literal."""
    return "'" + str(text).replace("'", "''") + "'"


def _parse(field: str, value, kind=float) -> list:
    from astroquery.alma.tapsql import _val_parse
    try:
        return _val_parse(value, kind)
    except ValueError as exc:
        raise QueryError(field, value, str(exc).split("Details: ")[-1]) from None


def _join_or(parts: list[str]) -> str:
    return "(" + " OR ".join(parts) + ")" if len(parts) > 1 else (parts[0] if parts else "")


def _range(column: str, lo: str | None, hi: str | None) -> str:
    """Closed interval on *column* between two ADQL literals; a missing end leaves that side open."""
    if lo is not None and hi is not None:
        return f"({lo}<={column} AND {column}<={hi})"
    return f"{column}<={hi}" if hi is not None else f"{column}>={lo}"


def numeric_clause(column: str, value, scale: float = 1.0) -> str:
    """``230..232`` → ``(230.0<=frequency AND frequency<=232.0)``; *scale* converts the user's unit."""
    parts = []
    for item in _parse(column, value, float):
        if isinstance(item, tuple):
            lo, hi = (None if v is None else v * scale for v in item)
            if lo is not None or hi is not None:
                parts.append(_range(column, lo, hi))
        else:
            if not isinstance(item, (int, float)) or isinstance(item, bool):
                raise QueryError(column, value, "not a number")
            parts.append(f"{column}={item * scale if scale != 1.0 else item}")
    return _join_or(parts)


def string_clause(column: str, value: str) -> str:
    """Alternatives with ``|``; ``*`` and ``?`` wildcards become ``LIKE`` (``%`` and ``_`` escaped)."""
    parts = []
    for alt in (v.strip() for v in str(value).split("|")):
        if not alt:
            continue
        if "*" in alt or "?" in alt:
            pattern = alt.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
            parts.append(f"{column} LIKE {quote(pattern.replace('*', '%').replace('?', '_'))}")
        else:
            parts.append(f"{column}={quote(alt)}")
    return _join_or(parts)


def uid_clause(column: str, value) -> str:
    """MOUS/GOUS uids in either spelling (``uid://A001/X1/X2`` or ``uid___A001_X1_X2``)."""
    values = value if isinstance(value, (list, tuple)) else re.split(r"[|,\s]+", str(value))
    parts = []
    for v in (v.strip() for v in values if v and v.strip()):
        m = re.fullmatch(r"uid(?:://|___)([A-Za-z0-9]+)[/_]([A-Za-z0-9]+)[/_]([A-Za-z0-9]+)", v)
        if not m:
            raise QueryError(column, v, "not an ALMA uid like uid://A001/X1465/X3")
        parts.append(f"{column}={quote('uid://' + '/'.join(m.groups()))}")
    return _join_or(parts)


def band_clause(value) -> str:
    """Bands as whole tokens of the space-separated ``band_list`` (``'3 6'``, ``'3|6'``, ``[3, 6]``)."""
    bands = value if isinstance(value, (list, tuple)) else re.split(r"[|,\s]+", str(value))
    parts = []
    for b in (str(b).strip() for b in bands if str(b).strip()):
        if not b.isdigit() or not 1 <= int(b) <= 10:
            raise QueryError("band", b, "ALMA bands are 1 to 10")
        parts.append(f"(band_list={quote(b)} OR band_list LIKE {quote(b + ' %')} OR band_list LIKE "
                     f"{quote('% ' + b)} OR band_list LIKE {quote('% ' + b + ' %')})")
    return _join_or(parts)


def date_clause(column: str, value) -> str:
    """Observation dates ``dd-mm-yyyy`` with the grammar, as MJD on ``t_min`` (astroquery's rule)."""
    from astroquery.alma.tapsql import _gen_datetime_sql
    try:
        return _gen_datetime_sql(column, value)
    except ValueError as exc:
        raise QueryError(column, value, f"dates are dd-mm-yyyy ({exc})") from None


_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?")


def release_clause(value) -> str:
    """Release dates (ISO ``yyyy-mm-dd``) with the grammar, compared as ISO strings."""
    parts = []
    for item in _parse("release_date", value, str):
        ends = item if isinstance(item, tuple) else (item, item)
        for e in ends:
            if e is not None and not _ISO.fullmatch(e):
                raise QueryError("release_date", value, "dates are ISO yyyy-mm-dd")
        lo, hi = ends
        if isinstance(item, tuple) and (lo or hi):
            # 'T99' sorts after every time of that day, so the end date is included
            parts.append(_range("obs_release_date", quote(lo) if lo else None, quote(hi + "T99") if hi else None))
        else:
            parts.append(f"obs_release_date LIKE {quote(lo + '%')}")
    return _join_or(parts)


_POL = {"single": "/XX/", "dual": "/XX/YY/", "full": "/XX/XY/YX/YY/"}


def polarisation_clause(value: str) -> str:
    parts = []
    for alt in (v.strip().lower() for v in str(value).split("|") if v.strip()):
        if alt in _POL:
            parts.append(f"pol_states={quote(_POL[alt])}")
        elif alt in ("stokes i", "i"):
            parts.append("pol_states LIKE '%I%'")
        else:
            raise QueryError("polarisation", value, "use Single, Dual, Full or Stokes I (alternatives with |)")
    return _join_or(parts)


def cone_clause(ra_deg: float, dec_deg: float, radius_deg: float) -> str:
    """Footprints (``s_region``) touching the circle, as the archive's position search does."""
    return f"(INTERSECTS(CIRCLE('ICRS',{ra_deg!r},{dec_deg!r},{radius_deg!r}), s_region) = 1)"


def build_query(clauses: list[str], columns: str = "*", distinct: bool = False) -> str:
    where = " AND ".join(c for c in clauses if c)
    return (f"select {'distinct ' if distinct else ''}{columns} from ivoa.obscore"
            + (f" WHERE {where}" if where else ""))
