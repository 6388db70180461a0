"""almaquery's fields: what each archive-page field means, its unit, and the ADQL it becomes.

:data:`FIELDS` is the single table of the search box (parameter → column, kind, the box's unit
and the column's unit); :func:`plan` turns the task's parameters into the WHERE clauses sent to
the archive plus the frequency term tested here on each row (coverage, see :mod:`.coverage`).
Values may be search-box text (``'230..232'``, ``'(Orion_KL|OMC-2)'``) or, from Python, what a
user porting astroquery code writes: numbers, booleans, lists (alternatives), astropy
``Quantity`` and ``SkyCoord``, ``datetime``.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from . import adql, coverage, grammar
from .grammar import Not, Or, Range, SearchSyntaxError, Value

__all__ = ["Field", "FIELDS", "Plan", "TextCheck", "plan", "SearchValueError", "Cone", "Box", "parse_position",
           "MAX_TEXT"]

#: longest search text accepted in one field, and most alternatives (bounded before any work)
MAX_TEXT = 10_000
MAX_ALTERNATIVES = 1_000


class SearchValueError(ValueError):
    """A parameter value almaquery cannot search with: the parameter, the value and why."""

    def __init__(self, param: str, value, why: str):
        self.param, self.value, self.why = param, value, why
        super().__init__(f"{param}: {why}")


@dataclass(frozen=True)
class Field:
    """One search-box field: *kind* is exact | contains | number | date | uid (see :func:`_clause`)."""
    name: str
    column: str
    kind: str
    unit: str = ""         # the box's unit: a bare number is in it
    column_unit: str = ""  # the column's unit, when it differs
    spectral: bool = False  # wavelengths accepted for frequencies

    def reader(self):
        import astropy.units as u
        return grammar.number_reader(self.unit, self.column_unit or self.unit,
                                     u.spectral() if self.spectral else None)


#: the archive page's fields, in its order (units: the box's, then the column's)
FIELDS = [
    Field("target_name", "target_name", "exact"),
    Field("spatial_resolution", "spatial_resolution", "number", "arcsec"),
    Field("largest_angular_scale", "spatial_scale_max", "number", "arcsec"),
    Field("field_of_view", "s_fov", "number", "arcsec", "deg"),
    Field("bandwidth", "bandwidth", "number", "GHz", "Hz"),
    Field("spectral_resolution", "spectral_resolution", "number", "kHz", "Hz"),
    Field("observation_date", "t_min", "date"),
    Field("integration_time", "t_exptime", "number", "s"),
    Field("line_sensitivity", "sensitivity_10kms", "number", "mJy/beam"),
    Field("continuum_sensitivity", "cont_sensitivity_bandwidth", "number", "mJy/beam"),
    Field("water_vapour", "pwv", "number", "mm"),
    Field("project_code", "proposal_id", "exact"),
    Field("project_title", "obs_title", "contains"),
    Field("pi_name", "pi_name", "contains"),
    Field("proposal_authors", "proposal_authors", "contains"),
    Field("project_abstract", "proposal_abstract", "contains"),
    Field("science_keyword", "science_keyword", "contains"),
    Field("scientific_category", "scientific_category", "contains"),
    Field("bibcode", "bib_reference", "exact"),
    Field("pub_title", "pub_title", "contains"),
    Field("first_author", "first_author", "contains"),
    Field("authors", "authors", "contains"),
    Field("pub_abstract", "pub_abstract", "contains"),
    Field("publication_year", "publication_year", "number"),
    Field("release_date", "obs_release_date", "date"),
    Field("mous", "member_ous_uid", "uid"),
    Field("gous", "group_ous_uid", "uid"),
]
BY_NAME = {f.name: f for f in FIELDS}
FREQUENCY = Field("frequency", "frequency", "number", "GHz", spectral=True)

#: project type letters (the last letter of the project code) and their names
PROJECT_TYPES = {"standard": "S", "large": "L", "too": "T", "ddt": "A", "vlbi": "V", "phased": "P", "calibration": "C"}
#: antenna prefixes of each array (DOMAIN.md §1.2): DA/DV 12 m, CM 7 m, PM total power
ARRAYS = {"12m": ("DA", "DV"), "7m": ("CM",), "tp": ("PM",)}
#: flag parameters: accepted words → clause (True/False/None from Python map to the first two / any)
FLAGS = {
    "public": {"public": "data_rights='Public'", "proprietary": "data_rights='Proprietary'", "any": ""},
    "science": {"science": "science_observation='T'", "calibration": "science_observation='F'", "any": ""},
    "qa2": {"pass": "qa2_passed='T'", "fail": "qa2_passed='F'", "any": ""},
    "mosaic": {"mosaic": "is_mosaic='T'", "single": "is_mosaic='F'", "any": ""},
}
_WORDS = {"true": True, "t": True, "yes": True, "false": False, "f": False, "no": False, "none": None}


@dataclass(frozen=True)
class TextCheck:
    """A text field whose clause selects a superset (a literal ``%``/``_`` in a LIKE, see
    :func:`.adql.text_exact`): each returned row is tested here with :func:`.adql.text_matches`."""
    param: str
    column: str
    term: object
    mode: str

    def matches(self, value) -> bool:
        return adql.text_matches(self.term, value, self.mode)


@dataclass
class Plan:
    """What a search asks: ADQL clauses, and the terms tested on each returned row (coverage, text)."""
    clauses: list[str] = field(default_factory=list)
    coverage: object = None  # a grammar term (GHz) or None
    position: object = None  # the cones and boxes searched (Cone/Box with Or/Not), for the footprint plot
    frequency: object = None  # the frequency term (GHz) in either mode, for the spectral plot
    text_checks: list[TextCheck] = field(default_factory=list)  # text terms ADQL LIKE cannot say exactly


# ------------------------------------------------------------------------------ Python values → terms

def _is_empty(value) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, set)):
        return len(value) == 0
    return False


def _sequence(value) -> list | None:
    """The items of a list, tuple, set, numpy array or array-valued Quantity; None for scalars."""
    if isinstance(value, (str, bytes)):
        return None
    if isinstance(value, (list, tuple, set)):
        return list(value)
    shape = getattr(value, "shape", None)
    if shape:  # numpy arrays, Quantity and SkyCoord arrays
        return [value[k] for k in range(shape[0])]
    return None


def _check_text(param: str, text: str) -> str:
    if len(text) > MAX_TEXT:
        raise SearchValueError(param, text, f"is {len(text)} characters long; at most {MAX_TEXT} are accepted")
    return text


def _count_leaves(term) -> int:
    if isinstance(term, Or):
        return sum(_count_leaves(t) for t in term.terms)
    if isinstance(term, Not):
        return _count_leaves(term.term)
    return 1


def _alternatives(param: str, value, one) -> object:
    """Python value → term: a sequence is alternatives, each item read by *one*."""
    items = _sequence(value)
    if items is None:
        term = one(value)
    else:
        if len(items) > MAX_ALTERNATIVES:
            raise SearchValueError(param, value, f"has {len(items)} items; at most {MAX_ALTERNATIVES} are accepted")
        terms = [one(v) for v in items if not _is_empty(v)]
        if not terms:
            return None
        term = terms[0] if len(terms) == 1 else Or(tuple(terms))
    if term is not None and _count_leaves(term) > MAX_ALTERNATIVES:
        raise SearchValueError(param, value, f"has more than {MAX_ALTERNATIVES} alternatives")
    return term


def _text_term(f: Field, value):
    def one(v):
        if isinstance(v, bool) or v is None:
            raise SearchValueError(f.name, v, "takes text (alternatives with |, wildcards * and ?)")
        if isinstance(v, numbers.Number):
            v = f"{v}"
        if not isinstance(v, str):
            raise SearchValueError(f.name, v, f"takes text, not {type(v).__name__}")
        return grammar.parse_text(_check_text(f.name, v))
    return _alternatives(f.name, value, one)


def _number_term(f: Field, value):
    read = f.reader()

    def one(v):
        if isinstance(v, str):
            return grammar.parse_numbers(_check_text(f.name, v), read)
        if isinstance(v, bool) or v is None:
            raise SearchValueError(f.name, v, "takes a number, a range or a search string, not a boolean")
        if hasattr(v, "unit") and hasattr(v, "to_value"):  # an astropy Quantity
            if not f.unit:
                raise SearchValueError(f.name, v, "takes a plain number, without a unit")
            import astropy.units as u
            try:
                x = float(v.to_value(f.column_unit or f.unit, equivalencies=u.spectral() if f.spectral else []))
            except (u.UnitsError, TypeError, ValueError):
                raise SearchValueError(f.name, v, f"needs a quantity convertible to {f.unit}") from None
        elif isinstance(v, numbers.Real):
            x = float(v) * (grammar._scale(f.unit, f.column_unit) if f.unit and f.column_unit else 1.0)
        else:
            raise SearchValueError(f.name, v, f"takes numbers or search strings, not {type(v).__name__}")
        if not math.isfinite(x):
            raise SearchValueError(f.name, v, "is not a finite number")
        return Value(x)
    return _alternatives(f.name, value, one)


def _date_term(f: Field, value):
    def one(v):
        if isinstance(v, str):
            return grammar.parse_dates(_check_text(f.name, v))
        if isinstance(v, datetime):
            return Range(v.replace(tzinfo=None), v.replace(tzinfo=None) + timedelta(seconds=1), hi_open=True)
        if isinstance(v, date):
            start = datetime(v.year, v.month, v.day)
            return Range(start, start + timedelta(days=1), hi_open=True)
        if hasattr(v, "to_datetime"):  # astropy Time
            t = v.to_datetime()
            return Range(t, t + timedelta(seconds=1), hi_open=True)
        raise SearchValueError(f.name, v, "takes dates: 'yyyy-mm-dd', 'dd-mm-yyyy', ranges a..b, <d, >d")
    return _alternatives(f.name, value, one)


# ------------------------------------------------------------------------------------- positions

@dataclass(frozen=True)
class Cone:
    ra: float
    dec: float
    radius: float  # degrees


@dataclass(frozen=True)
class Box:
    """Field centres inside coordinate ranges (degrees); ``galactic`` uses gal_longitude/gal_latitude."""
    galactic: bool
    lon: tuple
    lat: tuple


_FRAMES = {"icrs": "icrs", "j2000": "fk5", "fk5": "fk5", "galactic": "galactic", "gal": "galactic"}


def _angle(text: str, hours: bool) -> float:
    import astropy.units as u
    from astropy.coordinates import Angle
    try:
        a = Angle(text, unit=u.hourangle if hours else u.deg)
        value = float(a.to_value(u.deg))
    except Exception:  # astropy raises several types for unreadable angles
        raise SearchSyntaxError(text, "is not an angle (e.g. 11h01m51.9s, 165.466 or -34d42m17s)") from None
    if not math.isfinite(value):
        raise SearchSyntaxError(text, "is not a finite angle")
    return value


def _is_range(token: str) -> bool:
    return ".." in token or token.startswith(("<", ">"))


def _coordinate_range(token: str, hours: bool, lo_limit: float, hi_limit: float) -> tuple:
    if token.startswith(("<", ">")):
        v = _angle(token.lstrip("<>=").strip(), hours)
        return (lo_limit, v) if token.startswith("<") else (v, hi_limit)
    a, _, b = token.partition("..")
    if ".." in b:
        raise SearchSyntaxError(token, "a range is 'a..b'")
    return _angle(a, hours), _angle(b, hours)


def _radius(text, default: float) -> float:
    if text is None:
        return default
    import astropy.units as u
    if hasattr(text, "to_value"):
        try:
            r = float(text.to_value(u.deg))
        except (u.UnitsError, TypeError):
            raise SearchSyntaxError(text, "is not an angle") from None
    elif isinstance(text, numbers.Real) and not isinstance(text, bool):
        r = float(text)
    elif isinstance(text, str):
        t = text.strip()
        r = _angle(t, False) if re.search(r"[a-zA-Z\"'°:]", t) else _angle(t + "d", False)
    else:
        raise SearchSyntaxError(text, "is not an angle")
    if not (0 < r <= 180):
        raise SearchSyntaxError(text, "a radius must be larger than 0 and at most 180 degrees")
    return r


def _position_atom(s: str, radius: float):
    """``[frame] c1 c2[, radius]`` → a Cone; coordinate ranges (``a..b``, ``<x``, ``>x``) → a Box."""
    coords, _, rad = s.partition(",")
    if "," in rad:
        raise SearchSyntaxError(s, "a position is 'RA Dec' or 'RA Dec, radius'")
    tokens = coords.split()
    frame = "icrs"
    if tokens and tokens[0].lower() in _FRAMES:
        frame = _FRAMES[tokens.pop(0).lower()]
    if len(tokens) == 6 and not any(_is_range(t) for t in tokens):  # 'hh mm ss dd mm ss'
        tokens = [":".join(tokens[:3]), ":".join(tokens[3:])]
    if len(tokens) != 2:
        raise SearchSyntaxError(s, "needs two coordinates ('RA Dec', e.g. '11h01m51.9s -34d42m17s'); join "
                                   "several positions with |")
    galactic = frame == "galactic"
    ra_hours = not galactic and any(ch in tokens[0] for ch in "h:")
    if _is_range(tokens[0]) or _is_range(tokens[1]):
        if not (_is_range(tokens[0]) and _is_range(tokens[1])):
            raise SearchSyntaxError(s, "a coordinate range needs both coordinates as ranges (a..b, <x, >x)")
        if rad.strip():
            raise SearchSyntaxError(s, "coordinate ranges take no radius")
        lon = _coordinate_range(tokens[0], ra_hours, 0.0, 360.0)
        lat = _coordinate_range(tokens[1], False, -90.0, 90.0)
        if lat[0] > lat[1]:
            raise SearchSyntaxError(s, "the latitude range is empty (first end larger)")
        if not all(-90 <= v <= 90 for v in lat):
            raise SearchSyntaxError(s, "latitudes lie between -90 and 90 degrees")
        return Box(galactic, tuple(v % 360.0 if v != 360.0 else 360.0 for v in lon), lat)
    lon, lat = _angle(tokens[0], ra_hours), _angle(tokens[1], False)
    if not -90 <= lat <= 90:
        raise SearchSyntaxError(s, "the declination (latitude) lies between -90 and 90 degrees")
    r = _radius(rad.strip(), radius) if rad.strip() else radius
    return _cone_from(lon, lat, r, frame)


def _cone_from(lon: float, lat: float, r: float, frame: str) -> Cone:
    if frame == "icrs":
        return Cone(lon % 360.0, lat, r)
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    c = SkyCoord(lon * u.deg, lat * u.deg, frame=frame).icrs
    return Cone(float(c.ra.deg), float(c.dec.deg), r)


def parse_position(value, radius=None, param: str = "position"):
    """A position term (Cone/Box with Or/Not) from text, SkyCoord or a list of them."""
    default = _radius(radius, 10 / 60) if not _is_empty(radius) else 10 / 60

    def one(v):
        if isinstance(v, str):
            return grammar.parse(_check_text(param, v), lambda s: _position_atom(s, default))
        if hasattr(v, "icrs") and hasattr(v, "ra"):  # a SkyCoord (array ones arrive here item by item)
            c = v.icrs
            return Cone(float(c.ra.deg), float(c.dec.deg), default)
        raise SearchValueError(param, v, "takes 'RA Dec[, radius]' text, coordinate ranges or a SkyCoord")
    return _alternatives(param, value, one)


def position_clause(term) -> str:
    if isinstance(term, Or):
        return "(" + " OR ".join(position_clause(t) for t in term.terms) + ")"
    if isinstance(term, Not):
        return f"NOT ({position_clause(term.term)})"
    if isinstance(term, Cone):
        return adql.cone_clause(term.ra, term.dec, term.radius)
    lon, lat = ("gal_longitude", "gal_latitude") if term.galactic else ("s_ra", "s_dec")
    return adql.centre_box_clause(lon, lat, term.lon, term.lat)


# ------------------------------------------------------------------------------------------- plan

def _mjd(t: datetime) -> float:
    delta = t - datetime(1858, 11, 17)
    return delta.days + (delta.seconds + delta.microseconds / 1e6) / 86400.0


def _iso(t: datetime) -> str:
    if (t.hour, t.minute, t.second, t.microsecond) == (0, 0, 0, 0):
        return t.strftime("%Y-%m-%d")  # a day's start sorts before every time of that day
    return t.isoformat(timespec="microseconds" if t.microsecond else "seconds")


def _clause(f: Field, value, checks: list | None = None) -> str:
    """The ADQL of one field's value ('' when no value was given); a text term the ADQL selects only a
    superset of is appended to *checks*."""
    if _is_empty(value):
        return ""
    if f.kind in ("exact", "contains"):
        term = _text_term(f, value)
        if term is None:
            return ""
        sql = adql.text_clause(f.column, term, f.kind, f.name)
        if not adql.text_exact(term, f.kind) and checks is not None:
            checks.append(TextCheck(f.name, f.column, term, f.kind))
        return sql
    if f.kind == "number":
        term = _number_term(f, value)
        return adql.term_clause(f.column, term) if term is not None else ""
    if f.kind == "date":
        term = _date_term(f, value)
        if term is None:
            return ""
        if f.column == "t_min":
            return adql.term_clause("t_min", term, lambda t: adql.number(_mjd(t)))
        return adql.term_clause(f.column, term, lambda t: adql.quote(_iso(t)))
    if f.kind == "uid":
        return adql.uid_clause(f.column, value)
    raise ValueError(f"unknown field kind {f.kind}")


def _bands(value) -> list[int]:
    items = _sequence(value)
    if items is None:
        items = re.split(r"[|,\s]+", value) if isinstance(value, str) else [value]
    bands = []
    for b in items:
        if isinstance(b, str):
            b = b.strip()
            if not b:
                continue
            if not b.isdigit() or not b.isascii():
                raise SearchValueError("band", value, f"{b!r} is not a band number (1 to 10)")
            b = int(b)
        if isinstance(b, bool) or not isinstance(b, numbers.Real) or b != int(b) or not 1 <= b <= 10:
            raise SearchValueError("band", value, f"{b!r} is not an ALMA band (1 to 10)")
        bands.append(int(b))
    return bands


def _words_term(param: str, value):
    """Alternatives of words (polarisation, project type, array): the text grammar, or a list."""
    def one(v):
        if not isinstance(v, str):
            raise SearchValueError(param, v, "takes text")
        return grammar.parse_text(_check_text(param, v))
    return _alternatives(param, value, one)


def _map_words(term, clause_of):
    if isinstance(term, Or):
        return "(" + " OR ".join(_map_words(t, clause_of) for t in term.terms) + ")"
    if isinstance(term, Not):
        return f"NOT ({_map_words(term.term, clause_of)})"
    return clause_of(term.text.strip())


def _project_type(word: str) -> str:
    letter = PROJECT_TYPES.get(word.lower(), word.upper())
    if letter not in PROJECT_TYPES.values():
        raise SearchValueError("project_type", word, "use S/standard, L/large, T/too, A/ddt, V/vlbi, P/phased, "
                                                     "C/calibration")
    return f"type={adql.quote(letter)}"


def _array(word: str) -> str:
    key = word.lower().replace(" ", "")
    if key not in ARRAYS:
        raise SearchValueError("array", word, "use 12m, 7m or TP (alternatives with |)")
    parts = [f"antenna_arrays LIKE {adql.quote('%:' + p + '%')}" for p in ARRAYS[key]]
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"


def flag_clause(param: str, value) -> str:
    """public / science / qa2 / mosaic: a word, or True/False/None from Python."""
    words = FLAGS[param]
    if isinstance(value, str) and value.strip().lower() in _WORDS:
        value = _WORDS[value.strip().lower()]
    if value is None:
        return ""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return list(words.values())[0 if value else 1]
    if isinstance(value, str) and value.strip().lower() in words:
        return words[value.strip().lower()]
    raise SearchValueError(param, value, f"use {', '.join(words)} (or True/False/None)")


def _guarded(param: str, value, make):
    """``make()``, with the grammar's and the literal checker's errors named after *param*."""
    try:
        return make()
    except (SearchSyntaxError, adql.QueryError) as exc:
        part = exc.value if isinstance(exc.value, str) else str(exc.value)
        where = f" (in {grammar._shorten(part)!r})" if part != value else ""
        raise SearchValueError(param, value, f"{exc.why}{where}") from None


def plan(p: dict) -> Plan:
    """The clauses of every given field, in the archive page's order; frequency as a coverage term."""
    out = Plan()
    add = out.clauses.append
    if not _is_empty(p.get("source_name")) and not _is_empty(p.get("position")):
        raise SearchValueError("position", p["position"], "cannot be combined with source_name")
    if not _is_empty(p.get("position")):
        param = "radius" if not _is_empty(p.get("radius")) and _bad_radius(p["radius"]) else "position"
        term = _guarded(param, p[param], lambda: parse_position(p["position"], p.get("radius")))
        if term is not None:
            add(position_clause(term))
            out.position = term
    for f in FIELDS:
        if f.name in p:
            add(_guarded(f.name, p[f.name], lambda: _clause(f, p[f.name], out.text_checks)))
    if not _is_empty(p.get("band")):
        bands = _bands(p["band"])
        if bands:
            add(adql.band_clause(bands))
    if not _is_empty(p.get("frequency")):
        term = _guarded("frequency", p["frequency"], lambda: _number_term(FREQUENCY, p["frequency"]))
        mode = str(p.get("frequency_mode") or "coverage").lower()
        out.frequency = term
        if term is not None and mode == "central":
            add(adql.term_clause("frequency", term))
        elif term is not None:
            add(coverage.prefilter_clause(term))
            out.coverage = term
    for param, clause_of in (("polarisation", None), ("project_type", _project_type), ("array", _array)):
        if not _is_empty(p.get(param)):
            def make(param=param, clause_of=clause_of):
                term = _words_term(param, p[param])
                if term is None:
                    return ""
                return adql.polarisation_clause(term) if clause_of is None else _map_words(term, clause_of)
            add(_guarded(param, p[param], make))
    for param in FLAGS:
        if param in p:
            add(flag_clause(param, p[param]))
    out.clauses = [c for c in out.clauses if c]
    return out


def _bad_radius(radius) -> bool:
    try:
        _radius(radius, 10 / 60)
    except SearchSyntaxError:
        return True
    return False
