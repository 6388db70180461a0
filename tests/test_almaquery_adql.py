"""almaquery's ADQL builder judged by what its queries *mean*, without a TAP server.

The WHERE conditions written by :mod:`almatools.plugins.archive.adql` are read back by a small,
independent evaluator of the ADQL subset they use (comparisons, AND/OR/NOT, IS [NOT] NULL with
SQL's three-valued logic, LIKE, LOWER, string literals with doubled quotes) and run against rows;
the result must be what the user asked for, written in plain Python.  LIKE is read both as
PostgreSQL reads it (GAVO DaCHS: a backslash escapes) and as Oracle does (the ALMA archive's
TAP service: no escape character), and the query must mean the same on both.  Unit conversions are checked against
astropy, string literals by round trip, error messages by what they point at.
"""

import ast
import math
import re

import astropy.units as u
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from almatools.plugins.archive import adql, search
from almatools.plugins.archive.grammar import Not, Or, Range, Text, Value

# ------------------------------------------------------------------------------ an ADQL evaluator

_TOKEN = re.compile(r"""\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"""
                    r"""|(?P<op><=|>=|<>|!=|=|<|>)|(?P<punct>[(),])|(?P<word>[A-Za-z_][A-Za-z0-9_]*))""", re.S)


def _tokens(sql: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(sql):
        m = _TOKEN.match(sql, pos)
        if not m:
            if sql[pos:].strip():
                raise SyntaxError(f"cannot read ADQL at {pos}: {sql[pos:pos + 20]!r}")
            break
        out.append((m.lastgroup, m.group(m.lastgroup)))
        pos = m.end()
    return out


def _unquote(literal: str) -> str:
    assert literal[0] == literal[-1] == "'"
    body = literal[1:-1]
    assert "'" not in body.replace("''", ""), literal  # a lone quote would end the literal early
    return body.replace("''", "'")


POSTGRESQL, ORACLE = "postgresql", "oracle"  # LIKE's default escape: a backslash / none


def _like(pattern: str, server: str = POSTGRESQL) -> re.Pattern:
    """A LIKE pattern as *server* reads it: PostgreSQL (behind DaCHS) takes a backslash as the escape
    character, Oracle (behind the ALMA archive's TAP service) has none without an ESCAPE clause."""
    out, k = [], 0
    while k < len(pattern):
        ch = pattern[k]
        if ch == "\\" and server == POSTGRESQL:
            assert k + 1 < len(pattern), "a pattern may not end in its escape character"
            out.append(re.escape(pattern[k + 1]))
            k += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        k += 1
    return re.compile("".join(out), re.S)


class _Parser:
    _CMP = {"=": lambda a, b: a == b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<>": lambda a, b: a != b,
            "!=": lambda a, b: a != b}

    def __init__(self, sql: str, server: str):
        self.toks, self.k, self.server = _tokens(sql), 0, server

    def peek(self, kind=None, text=None):
        if self.k >= len(self.toks):
            return False
        t = self.toks[self.k]
        return (kind is None or t[0] == kind) and (text is None or t[1].upper() == text)

    def take(self, kind=None, text=None):
        assert self.peek(kind, text), (kind, text, self.toks[self.k:self.k + 3])
        self.k += 1
        return self.toks[self.k - 1][1]

    def parse(self):
        f = self.disjunction()
        assert self.k == len(self.toks), f"trailing ADQL: {self.toks[self.k:]}"
        return f

    # truth values are True, False and None (unknown: a comparison with NULL)
    def disjunction(self):
        parts = [self.conjunction()]
        while self.peek("word", "OR"):
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda row: _any([p(row) for p in parts]))

    def conjunction(self):
        parts = [self.negation()]
        while self.peek("word", "AND"):
            self.take()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else (lambda row: _all([p(row) for p in parts]))

    def negation(self):
        if self.peek("word", "NOT"):
            self.take()
            inner = self.negation()
            return lambda row: None if inner(row) is None else not inner(row)
        if self.peek("punct", "("):
            self.take()
            inner = self.disjunction()
            self.take("punct", ")")
            return inner
        return self.comparison()

    def operand(self):
        kind, text = self.toks[self.k]
        self.k += 1
        if kind == "num":
            value = float(text)
            return lambda row: value
        if kind == "str":
            value = _unquote(text)
            return lambda row: value
        if kind == "word" and text.upper() == "LOWER":
            self.take("punct", "(")
            inner = self.operand()
            self.take("punct", ")")
            return lambda row: None if inner(row) is None else inner(row).lower()
        assert kind == "word", (kind, text)
        return lambda row: row[text]

    def comparison(self):
        left = self.operand()
        if self.peek("word", "IS"):
            self.take()
            negated = self.peek("word", "NOT") and bool(self.take())
            self.take("word", "NULL")
            return lambda row: (left(row) is None) != negated
        if self.peek("word", "LIKE"):
            self.take()
            pattern = _like(_unquote(self.take("str")), self.server)
            return lambda row: None if left(row) is None else pattern.fullmatch(left(row)) is not None
        op = self._CMP[self.take("op")]
        right = self.operand()
        return lambda row: None if None in (left(row), right(row)) else op(left(row), right(row))


def _any(values):
    return True if True in values else None if None in values else False


def _all(values):
    return False if False in values else None if None in values else True


def where(sql: str, server: str = POSTGRESQL):
    """The ADQL condition *sql* as a function of a row (a dict of column values, None for NULL):
    True, False or None (unknown); a server returns the rows where it is True."""
    return _Parser(sql, server).parse()


def test_the_evaluator_reads_adql_as_a_server_does():
    f = where("(NOT (x<=1.0 OR x=3) AND LOWER(s) LIKE '%a\\%b\\_%' AND t='it''s')")
    assert f({"x": 2.0, "s": "xA%B_y", "t": "it's"})
    assert not f({"x": 3.0, "s": "xA%B_y", "t": "it's"})
    assert not f({"x": 2.0, "s": "xAxB_y", "t": "it's"})
    assert not f({"x": 2.0, "s": "xA%B_y", "t": "its"})
    assert where("1=1")({}) and not where("a LIKE 'b_c'")({"a": "bc"})
    # Oracle has no default escape: the backslash is itself, so the "escaped" pattern misses the name
    assert where("a LIKE '%NGC\\_1068%'")({"a": "NGC_1068"})
    assert not where("a LIKE '%NGC\\_1068%'", ORACLE)({"a": "NGC_1068"})
    assert where("a LIKE '%NGC\\_1068%'", ORACLE)({"a": "NGC\\x1068"})
    # NULL: unknown in comparisons, NOT and LIKE; only IS [NOT] NULL decides
    assert where("a='x'")({"a": None}) is None and where("NOT (a LIKE 'x%')")({"a": None}) is None
    assert where("a IS NOT NULL OR a='x'")({"a": "y"}) is True and where("a IS NULL")({"a": None}) is True
    assert where("(a='x' OR 1=1)")({"a": None}) is True and where("(a='x' AND 1=2)")({"a": None}) is False


# ------------------------------------------------------------------------------- numbers and ranges

def test_number_refuses_what_is_not_a_finite_number():
    for bad in (True, False, math.inf, -math.inf, math.nan):
        with pytest.raises(ValueError, match="finite"):
            adql.number(bad)
    assert adql.number(3) == "3" and adql.number(-2.5) == "-2.5" and adql.number(0.0) == "0.0"


@given(x=st.one_of(st.integers(-10**30, 10**30), st.floats(allow_nan=False, allow_infinity=False)))
def test_number_round_trips(x):
    text = adql.number(x)
    assert _tokens(text) == [("num", text)]
    assert (int(text) if isinstance(x, int) else float(text)) == x


_ENDS = st.integers(-5, 5)


@st.composite
def _ranges(draw):
    lo, hi = draw(st.one_of(st.none(), _ENDS)), draw(st.one_of(st.none(), _ENDS))
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    return Range(lo, hi, draw(st.booleans()) if hi is not None else False)


_TERMS = st.recursive(st.one_of(_ENDS.map(Value), _ranges()),
                      lambda inner: st.one_of(inner.map(Not), st.lists(inner, min_size=2, max_size=3).map(
                          lambda ts: Or(tuple(ts)))), max_leaves=6)


def _holds(term, x) -> bool:
    """What a numeric term means, in Python."""
    if isinstance(term, Or):
        return any(_holds(t, x) for t in term.terms)
    if isinstance(term, Not):
        return not _holds(term.term, x)
    if isinstance(term, Value):
        return x == term.value
    above = term.lo is None or term.lo <= x
    below = term.hi is None or (x < term.hi if term.hi_open else x <= term.hi)
    return above and below


@given(term=_TERMS)
def test_numeric_terms_select_the_rows_they_describe(term):
    f = where(adql.term_clause("t_exptime", term))
    for x in (k / 2 for k in range(-14, 15)):
        assert f({"t_exptime": x}) == _holds(term, x), x


@pytest.mark.parametrize("text, meaning", [
    ("<3", lambda x: x <= 3), (">3", lambda x: x >= 3), ("2..4", lambda x: 2 <= x <= 4),
    ("!(2..4)", lambda x: not 2 <= x <= 4), ("(2|4)", lambda x: x in (2, 4)), ("3", lambda x: x == 3),
    ("<1|>5", lambda x: x <= 1 or x >= 5), ("!(2|3..4)", lambda x: x != 2 and not 3 <= x <= 4),
])
def test_search_box_bounds_mean_what_the_grammar_says(text, meaning):
    f = where(" AND ".join(search.plan({"integration_time": text}).clauses))
    for x in (k / 4 for k in range(-4, 29)):
        assert f({"t_exptime": x}) == meaning(x), (text, x)


@pytest.mark.parametrize("param, text, column, lo, hi", [
    ("bandwidth", "1800..1900MHz", "bandwidth", 1800 * u.MHz, 1900 * u.MHz),
    ("bandwidth", "1.5..2", "bandwidth", 1.5 * u.GHz, 2 * u.GHz),
    ("spectral_resolution", "0.1..2MHz", "spectral_resolution", 0.1 * u.MHz, 2 * u.MHz),
    ("spectral_resolution", "976..1953", "spectral_resolution", 976 * u.kHz, 1953 * u.kHz),
    ("field_of_view", "20..36", "s_fov", 20 * u.arcsec, 36 * u.arcsec),
    ("field_of_view", "0.5..1arcmin", "s_fov", 0.5 * u.arcmin, 1 * u.arcmin),
    ("spatial_resolution", "0.1..0.5", "spatial_resolution", 0.1 * u.arcsec, 0.5 * u.arcsec),
])
def test_units_are_converted_as_astropy_converts_them(param, text, column, lo, hi):
    sql = " AND ".join(search.plan({param: text}).clauses)
    to = {"bandwidth": u.Hz, "spectral_resolution": u.Hz, "s_fov": u.deg, "spatial_resolution": u.arcsec}[column]
    lo, hi = lo.to_value(to), hi.to_value(to)
    written = [float(t) for kind, t in _tokens(sql) if kind == "num"]
    assert len(written) == 2 and all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(written, (lo, hi)))
    f = where(sql)
    for x, inside in ((lo * (1 - 1e-9), False), (lo * (1 + 1e-9), True), ((lo + hi) / 2, True),
                      (hi * (1 - 1e-9), True), (hi * (1 + 1e-9), False)):
        assert f({column: x}) == inside, (x, sql)


# ---------------------------------------------------------------------------------- coordinate boxes

_LON = st.one_of(st.none(), st.integers(0, 359), st.integers(0, 359).map(lambda v: v + 0.5))
_LAT = st.one_of(st.none(), st.integers(-90, 90))


def _in_box(lon, lat, lon_range, lat_range) -> bool:
    lo, hi = lon_range
    if lo is not None and hi is not None and lo > hi:  # wraps through 0
        lon_ok = lon >= lo or lon <= hi
    else:
        lon_ok = (lo is None or lo <= lon) and (hi is None or lon <= hi)
    a, b = lat_range
    return lon_ok and (a is None or a <= lat) and (b is None or lat <= b)


@given(lon_range=st.tuples(_LON, _LON), lat=st.tuples(_LAT, _LAT))
@example(lon_range=(350, 10), lat=(None, None))
@example(lon_range=(40, 40), lat=(None, None))
@example(lon_range=(None, 10), lat=(None, None))
@example(lon_range=(10, None), lat=(None, None))
@example(lon_range=(None, None), lat=(None, None))
@example(lon_range=(None, None), lat=(-5, 5))
@settings(max_examples=100)
def test_coordinate_boxes_select_the_centres_inside(lon_range, lat):
    lat = tuple(sorted(lat)) if None not in lat else lat
    f = where(adql.centre_box_clause("s_ra", "s_dec", lon_range, lat))
    near = {e + d for e in lon_range if e is not None for d in (-0.5, 0, 0.5)}
    for lon in sorted(near | {0.0, 90.0, 180.0, 270.0, 359.5}):
        for dec in {-90, 0, 90} | {e + d for e in lat if e is not None for d in (-1, 0, 1)}:
            assert f({"s_ra": lon, "s_dec": dec}) == _in_box(lon, dec, lon_range, lat), (lon, dec)


def test_a_box_on_one_axis_is_just_that_axis_condition():
    # nothing more and nothing less than the one-axis condition (no redundant grouping, no 1=1)
    assert adql.centre_box_clause("s_ra", "s_dec", (None, None), (-5, 5)) == \
        adql.term_clause("s_dec", Range(-5, 5)) == "(-5<=s_dec AND s_dec<=5)"
    assert adql.centre_box_clause("s_ra", "s_dec", (10, 20), (None, None)) == "(10<=s_ra AND s_ra<=20)"
    assert adql.centre_box_clause("s_ra", "s_dec", (None, 20), (None, None)) == "s_ra<=20"
    assert adql.centre_box_clause("gal_longitude", "gal_latitude", (350, 10), (None, None)) == \
        "(gal_longitude>=350 OR gal_longitude<=10)"
    assert adql.centre_box_clause("s_ra", "s_dec", (None, None), (None, None)) == "1=1"
    both = adql.centre_box_clause("s_ra", "s_dec", (350, 10), (-5, 5))
    assert both == "((s_ra>=350 OR s_ra<=10) AND (-5<=s_dec AND s_dec<=5))"


def test_a_wrapping_box_from_the_search_box():
    f = where(" AND ".join(search.plan({"position": "350..10 -5..5"}).clauses))
    for ra, dec, inside in ((355, 0, True), (5, 0, True), (0, 5, True), (180, 0, False), (349.5, 0, False),
                            (10.5, 0, False), (5, 6, False)):
        assert f({"s_ra": ra, "s_dec": dec}) == inside, (ra, dec)


# --------------------------------------------------------------------------------------------- bands

_BANDS = st.lists(st.integers(1, 10), min_size=1, max_size=4, unique=True)


@given(asked=_BANDS, row=st.lists(st.integers(1, 10), min_size=1, max_size=5, unique=True))
def test_bands_match_whole_band_numbers(asked, row):
    f = where(adql.band_clause(asked))
    assert f({"band_list": " ".join(map(str, row))}) == bool(set(asked) & set(row))


@given(asked=_BANDS)
def test_several_bands_are_the_alternatives_of_each_band(asked):
    one = [adql.band_clause([b]) for b in asked]
    assert adql.band_clause(asked) == (one[0] if len(one) == 1 else "(" + " OR ".join(one) + ")")
    # a single band is one group of its four spellings, not wrapped again
    assert all(c.startswith("(band_list=") and c.count("((") == 0 for c in one)


def test_no_band_is_refused_not_written_as_empty_parentheses():
    with pytest.raises(ValueError, match=r"give at least one band"):
        adql.band_clause([])


# ---------------------------------------------------------------------------------------------- uids

def test_uids_in_either_spelling_and_blank_items_are_skipped():
    one = "member_ous_uid='uid://A001/X1465/X3'"
    assert adql.uid_clause("member_ous_uid", "uid://A001/X1465/X3") == one
    assert adql.uid_clause("member_ous_uid", "uid___A001_X1465_X3") == one
    for value in (["uid://A001/X1465/X3", None, "", "  "], ("uid___A001_X1465_X3", None), " uid://A001/X1465/X3, ",
                  "uid://A001/X1465/X3 | "):
        assert adql.uid_clause("member_ous_uid", value) == one, value
    two = adql.uid_clause("group_ous_uid", ["uid://A001/X1/X2", None, "uid___A001_X3_X4"])
    assert two == "(group_ous_uid='uid://A001/X1/X2' OR group_ous_uid='uid://A001/X3/X4')"
    assert adql.uid_clause("member_ous_uid", [None, "", " "]) == ""
    with pytest.raises(adql.QueryError) as info:
        adql.uid_clause("member_ous_uid", ["uid://A001/X1/X2", "None"])
    assert info.value.field == "member_ous_uid" and info.value.value == "None"


# -------------------------------------------------------------------------------- text and literals

_SAFE = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\\")
_SAFE_TEXT = st.text(alphabet=st.one_of(_SAFE, st.sampled_from(list("'%_*? "))), min_size=1, max_size=20)


def _means(term, value, mode: str) -> bool:
    """What a text term asks of a column value, in plain Python: ``*`` and ``?`` are the only wildcards."""
    if value is None:
        return False
    if isinstance(term, Or):
        return any(_means(t, value, mode) for t in term.terms)
    if isinstance(term, Not):
        return not _means(term.term, value, mode)
    text = term.text.lower() if mode == "contains" else term.text
    wild = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text), re.S)
    return (wild.search(value.lower()) if mode == "contains" else wild.fullmatch(value)) is not None


def _found(term, mode: str, server: str):
    """The rows *server* returns for the term's clause, then the rows almaquery keeps of them."""
    sql = adql.text_clause("c", term, mode)
    assert "\\" not in sql  # no spelling of a backslash means the same on PostgreSQL and Oracle
    f, exact = where(sql, server), adql.text_exact(term, mode)

    def returned(value):
        return f({"c": value}) is True

    def kept(value):
        return returned(value) and (exact or adql.text_matches(term, value, mode))
    return returned, kept


def _candidates(texts, other: str) -> list:
    """Values near each text: itself, its wildcards filled, its % and _ read as wildcards, case changed …"""
    out = [None, "", other]
    for t in texts:
        filled = t.replace("*", other).replace("?", (other + "x")[0])
        for v in (t, filled, filled.replace("%", "ab").replace("_", "b"), filled.replace("_", ""), t + "x", "x" + t,
                  "x" + filled.upper() + "y", t[:-1], t.replace("'", "''"), t.replace("%", "\\%").replace("_", "\\_")):
            out.append(v)
    return out


_WILD_TEXT = st.text(alphabet=st.one_of(_SAFE, st.sampled_from(list("'%_*? aA"))), min_size=1, max_size=12)
_TEXT_TERMS = st.recursive(_WILD_TEXT.map(Text), lambda inner: st.one_of(
    inner.map(Not), st.lists(inner, min_size=2, max_size=3).map(lambda ts: Or(tuple(ts)))), max_leaves=4)


def _texts(term) -> list:
    if isinstance(term, Or):
        return [t for x in term.terms for t in _texts(x)]
    return _texts(term.term) if isinstance(term, Not) else [term.text]


@given(term=_TEXT_TERMS, mode=st.sampled_from(["exact", "contains"]), other=st.text(alphabet=_SAFE, max_size=5))
@example(term=Text("NGC_1068*"), mode="exact", other="")
@example(term=Not(Text("NGC_1068*")), mode="exact", other="")
@example(term=Or((Text("a%b"), Not(Text("c_d")))), mode="contains", other="")
@settings(max_examples=300)
def test_text_terms_select_exactly_the_wanted_rows_on_postgresql_and_oracle(term, mode, other):
    """The server's condition selects a superset of the wanted rows however it reads LIKE (nothing is
    missed), and almaquery's test of the returned rows leaves exactly the wanted ones."""
    for server in (POSTGRESQL, ORACLE):
        returned, kept = _found(term, mode, server)
        for value in _candidates(_texts(term), other):
            wanted = _means(term, value, mode)
            assert returned(value) or not wanted, (server, adql.text_clause("c", term, mode), value)
            assert kept(value) == wanted, (server, adql.text_clause("c", term, mode), value)


@given(text=_SAFE_TEXT)
def test_an_exact_text_without_wildcards_is_an_equality(text):
    sql = adql.text_clause("target_name", Text(text))
    if "*" not in text and "?" not in text:  # an exact literal: the user's text after ADQL's '' unescaping
        assert sql.startswith("target_name='") and _unquote(sql[len("target_name="):]) == text
        assert adql.text_exact(Text(text))  # '=' has no wildcards: % and _ are themselves everywhere


def test_literal_percent_and_underscore_are_sent_as_wildcards_and_checked_here():
    assert adql.text_clause("target_name", Text("NGC_1068*")) == "target_name LIKE 'NGC_1068%'"
    assert adql.text_clause("obs_title", Text("50% of_"), "contains") == "LOWER(obs_title) LIKE '%50% of_%'"
    assert not adql.text_exact(Text("NGC_1068*")) and adql.text_exact(Text("NGC_1068"))
    assert not adql.text_exact(Text("a_b"), "contains") and adql.text_exact(Or((Text("ab*"), Not(Text("c")))))
    # a negation of a superset would drop wanted rows: only "has a value" is asked of the server
    neg = Or((Text("M83*"), Not(Text("NGC_1068*"))))
    assert adql.text_clause("target_name", neg) == "(target_name LIKE 'M83%' OR target_name IS NOT NULL)"
    keep = [v for v in ("NGC_1068", "NGC_1068_N", "NGCx1068", "M83_center", "TW_Hya", None)
            if adql.text_matches(neg, v)]
    assert keep == ["NGCx1068", "M83_center", "TW_Hya"]
    assert adql.text_matches(Text("a[b]*"), "a[b]c") and not adql.text_matches(Text("a[b]*"), "abc")  # not fnmatch
    assert adql.text_matches(Text("50% OF_"), "Over 50% of_all", "contains")
    assert not adql.text_matches(Text("50% of_"), "Over 50x of_all", "contains")
    # an alternative without wildcards, next to one that needs the check, is an equality
    either = Or((Text("Orion_KL"), Text("*C_1*")))
    assert not adql.text_exact(either)
    assert [v for v in ("Orion_KL", "OrionxKL", "NGC_1068", "IRC+10216") if adql.text_matches(either, v)] == \
        ["Orion_KL", "NGC_1068"]


def test_wildcard_matching_takes_linear_steps_per_star():
    import time
    start = time.perf_counter()
    assert not adql.text_matches(Text("*a" * 2000 + "b"), "a" * 5000)
    assert adql.text_matches(Text("*a?" * 200 + "*"), "ab" * 400)
    assert time.perf_counter() - start < 60  # not a speed target: a backtracking matcher would never finish


@given(text=_SAFE_TEXT)
def test_a_quoted_string_is_the_same_string(text):
    assert _unquote(adql.quote(text)) == text
    assert _tokens(f"x={adql.quote(text)} OR 1=1")[:3] == [("word", "x"), ("op", "="), ("str", adql.quote(text))]


def test_alternatives_and_negation_of_text():
    f = where(adql.text_clause("target_name", Or((Text("a'b"), Not(Text("c*"))))))
    assert f({"target_name": "a'b"}) and f({"target_name": "x"}) and not f({"target_name": "cd"})


# --------------------------------------------------------------------------------------- error messages

_BAD = st.sampled_from(["\\", "\x00", "\n", "\r", "\t", "\x7f", "\x85", "\u2028", "\u2029", "\ud800"])


@given(prefix=st.text(alphabet=_SAFE, max_size=30), bad=_BAD, suffix=st.text(max_size=10))
def test_a_refused_character_is_named_with_its_position(prefix, bad, suffix):
    text = prefix + bad + suffix
    why = adql.check_literal(text)
    positions = [int(p) for p in re.findall(r"position (\d+)", why)]
    assert len(positions) == 1 and text[positions[0] - 1] == bad, why  # 1-based, the offending character
    if bad != "\\":
        assert f"U+{ord(bad):04X}" in why
    with pytest.raises(adql.QueryError) as info:
        adql.quote(text, field="pi_name")
    assert info.value.field == "pi_name" and info.value.value == text and info.value.why == why


def test_positions_count_from_one():
    assert "position 1)" in adql.check_literal("\\abc")
    assert "position 3)" in adql.check_literal("ab\\")
    assert "at position 1 " in adql.check_literal("\x00ab")
    assert "at position 4 " in adql.check_literal("abc\n")
    assert adql.check_literal("it's 50% _*?") == ""


def _shown(message: str, why: str):
    """The value as the message shows it (it is written with repr)."""
    head = message[:-len(why) - 2]
    assert message.endswith(": " + why) and head.startswith("target_name: cannot use ")
    return ast.literal_eval(head[len("target_name: cannot use "):])


@pytest.mark.parametrize("n", [1, 199, 200, 201, 202, 500])
def test_error_messages_show_at_most_200_characters_of_the_value(n):
    text = "é" * (n - 1) + "\\"  # the offending backslash is the last character
    with pytest.raises(adql.QueryError) as info:
        adql.quote(text, field="target_name")
    shown = _shown(str(info.value), info.value.why)
    if n <= 200:
        assert shown == text
    else:
        assert shown == text[:200] + "…" and len(shown) == 201
    assert info.value.value == text  # the whole value stays on the exception


@pytest.mark.parametrize("value", [12, 3.5, None, [1, 2], ("a" * 300,)])
def test_error_messages_show_values_that_are_not_text_as_they_are(value):
    exc = adql.QueryError("band", value, "why")
    assert str(exc) == f"band: cannot use {value!r}: why" and exc.value is value and exc.field == "band"


def test_text_errors_name_the_field_or_else_the_column():
    with pytest.raises(adql.QueryError) as info:
        adql.text_clause("target_name", Text("a\\b"), field="source_name")
    assert info.value.field == "source_name" and str(info.value).startswith("source_name: ")
    with pytest.raises(adql.QueryError) as info:
        adql.text_clause("target_name", Or((Text("ok"), Not(Text("x\x00")))))
    assert info.value.field == "target_name" and info.value.value == "x\x00"
    with pytest.raises(search.SearchValueError) as info:
        search.plan({"pi_name": "a\\b"})
    assert info.value.param == "pi_name" and "backslash" in str(info.value)


# ------------------------------------------------------------------------------------------- queries

def test_build_query_joins_the_given_clauses():
    assert adql.build_query([]) == "select * from ivoa.obscore"
    q = adql.build_query(["a=1", "", "b=2"], columns="obs_id", distinct=True, top=5, order="obs_id", offset=10)
    assert q == "select distinct TOP 5 obs_id from ivoa.obscore WHERE a=1 AND b=2 ORDER BY obs_id OFFSET 10"
