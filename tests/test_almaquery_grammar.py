"""almaquery's search-box grammar and ADQL literals without a server: astroquery's test vectors,
the edge cases that used to slip through, and generated input for every field (only the
package's documented errors may come out)."""

import re
import unicodedata

import astropy.units as u
import pytest
from hypothesis import given
from hypothesis import strategies as st

from almatools.plugins.archive import adql, coverage, grammar, search


def clause(param, value, **more):
    return " AND ".join(search.plan({param: value, **more}).clauses)


# DOMAIN.md §1.3: the exact strings astroquery 0.4.11 writes for these inputs
@pytest.mark.parametrize("param, value, expected", [
    ("spatial_resolution", "230..232", "(230.0<=spatial_resolution AND spatial_resolution<=232.0)"),
    ("spatial_resolution", ">0", "0.0<=spatial_resolution"),
    ("integration_time", "<10|>20|30..40",
     "(t_exptime<=10.0 OR 20.0<=t_exptime OR (30.0<=t_exptime AND t_exptime<=40.0))"),
    ("spatial_resolution", 100, "spatial_resolution=100.0"),
    ("target_name", "a|b", "(target_name='a' OR target_name='b')"),
    ("project_code", "2012.* | 2013.?3*", "(proposal_id LIKE '2012.%' OR proposal_id LIKE '2013._3%')"),
    ("observation_date", "(01-01-2020 .. 31-01-2020)", "(58849.0<=t_min AND t_min<58880.0)"),
])
def test_clauses_read_like_astroquerys(param, value, expected):
    assert clause(param, value) == expected


def test_where_astroquery_is_wrong_on_purpose():
    # '?' alone is a wildcard; '!(a..b)' excludes the range itself (astroquery keeps both ends)
    assert clause("target_name", "b?c") == "target_name LIKE 'b_c'"
    assert clause("integration_time", "!(20 .. 30)") == "NOT ((20.0<=t_exptime AND t_exptime<=30.0))"
    # parenthesised alternatives in text fields (astroquery sends LIKE '(2017.%')
    assert clause("project_code", "(2017.* | 2018.*)") == "(proposal_id LIKE '2017.%' OR proposal_id LIKE '2018.%')"
    assert clause("target_name", "(Orion_KL|OMC-2)") == "(target_name='Orion_KL' OR target_name='OMC-2')"
    # literal % and _ sent unescaped (no escape works on every TAP server) and checked on the rows returned;
    # a band matches whole numbers
    assert clause("pub_abstract", "50% of_") == "LOWER(pub_abstract) LIKE '%50% of_%'"
    checks = search.plan({"pub_abstract": "50% of_", "target_name": "NGC_1068", "project_code": "2019.*"}).text_checks
    assert [(c.param, c.column, c.mode) for c in checks] == [("pub_abstract", "pub_abstract", "contains")]
    assert checks[0].matches("over 50% OF_ it") and not checks[0].matches("over 50x of_ it")
    assert "LIKE '%1%'" not in clause("band", "1")
    # units: the box's unit for bare numbers, the column's unit in the query
    assert clause("spectral_resolution", "2MHz") == "spectral_resolution=2000000.0"
    assert clause("spectral_resolution", "1953") == "spectral_resolution=1953000.0"
    assert clause("field_of_view", "36") == "s_fov=0.01"
    assert clause("bandwidth", "1800..1900MHz") == "(1800000000.0<=bandwidth AND bandwidth<=1900000000.0)"
    assert clause("spectral_resolution", 2 * u.MHz) == "spectral_resolution=2000000.0"


def test_one_date_grammar_a_single_date_is_the_whole_day():
    day = "(58849.0<=t_min AND t_min<58850.0)"
    assert clause("observation_date", "2020-01-01") == clause("observation_date", "01-01-2020") == \
        clause("observation_date", "2020/01/01") == day
    assert clause("release_date", "2020-01-01") == "('2020-01-01'<=obs_release_date AND obs_release_date<'2020-01-02')"
    assert clause("release_date", "<2020-01-01") == "obs_release_date<'2020-01-02'"
    assert clause("release_date", ">2020-01-01T12:30") == "'2020-01-01T12:30:00'<=obs_release_date"


@pytest.mark.parametrize("param, value, why", [
    ("frequency", "(230", "never closed"), ("frequency", "230)", "closes nothing"),
    ("frequency", "1e400", "finite"), ("frequency", "nan", "not a number"), ("frequency", "inf", "not a number"),
    ("frequency", "-inf..5", "not a number"), ("frequency", "232..230", "empty range"),
    ("frequency", "230..", "both ends"), ("frequency", "1..2..3", "both ends"), ("frequency", "1||2", "empty"),
    ("frequency", "(230)x", "parenthesis"), ("frequency", "2 Jy", "GHz"), ("frequency", True, "boolean"),
    ("frequency", float("nan"), "finite"), ("spatial_resolution", 1e308 * u.deg, "finite"),
    ("publication_year", "2019GHz", "plain number"), ("observation_date", "2020-02-30", "calendar"),
    ("observation_date", "yesterday", "not a date"), ("release_date", "2021-01-01..2020-01-01", "empty range"),
    ("band", "11", "1 to 10"), ("band", [True], "1 to 10"), ("position", "1 2 3", "two coordinates"),
    ("position", "10..20 5", "both coordinates as ranges"), ("position", "1 95", "-90 and 90"),
    ("position", "1 2, -3arcmin", "larger than 0"), ("target_name", "a\\b", "backslash"),
    ("pi_name", "x\x00", "control"), ("project_title", "a\nb", "line break"), ("polarisation", "quad", "Single"),
    ("array", "30m", "12m"), ("project_type", "Z", "standard"), ("public", "maybe", "True/False/None"),
    ("frequency", "(" * 30 + "1" + ")" * 30, "nested deeper"), ("target_name", "x" * 20000, "at most"),
])
def test_edge_cases_are_clear_errors(param, value, why):
    with pytest.raises(search.SearchValueError, match=re.escape(why) if "(" not in why else why) as info:
        search.plan({param: value})
    assert info.value.param in (param, "radius")


def test_python_values_as_a_porting_astroquery_user_writes_them():
    from astropy.coordinates import SkyCoord
    assert clause("frequency", 230.5, frequency_mode="central") == "frequency=230.5"
    assert clause("frequency", [100, 230.5], frequency_mode="central") == "(frequency=100.0 OR frequency=230.5)"
    assert clause("band", [3, 7]) == clause("band", "3 7") == clause("band", "3|7")
    assert clause("public", True) == "data_rights='Public'" and clause("public", False) == "data_rights='Proprietary'"
    assert clause("public", None) == "" and clause("science", False) == "science_observation='F'"
    cones = clause("position", SkyCoord([10, 20] * u.deg, [-5, 5] * u.deg), radius=1 * u.arcmin)
    assert cones.count("CIRCLE('ICRS'") == 2 and "0.016666666666666666" in cones


def test_frequency_prefilter_never_loses_a_window():
    """The em_min/em_max pre-filter is implied by the exact test for any window of a set-up of < 40 GHz span."""
    import random
    rng = random.Random(3)
    for _ in range(300):
        lo = rng.uniform(30, 950)
        windows = [coverage.Window(a, a + rng.uniform(0.05, 2)) for a in
                   (lo + rng.uniform(0, coverage.SPAN_GHZ - 2) for _ in range(rng.randint(1, 8)))]
        q = rng.uniform(20, 960)
        term = grammar.parse_numbers(rng.choice([f"{q}", f"{q}..{q + 3}", f"<{q}", f">{q}", f"{q}|{q + 50}"]),
                                     search.FREQUENCY.reader())
        if not coverage.matches(term, windows):
            continue
        for w in windows:  # each window is one row of the set-up: the server must return it
            em_min, em_max = coverage.C / (w.hi_ghz * 1e9), coverage.C / (w.lo_ghz * 1e9)
            sql = coverage.prefilter_clause(term)
            python = sql.replace("em_max", repr(em_max)).replace("em_min", repr(em_min))
            python = python.replace("AND", "and").replace("OR", "or").replace("IS NOT NULL", "!= None")
            assert eval(python, {}), (sql, w)  # noqa: S307 - our own numeric expression


# ------------------------------------------------------------------------------------- generated input

_GRAMMAR_ALPHABET = st.sampled_from(list("0123456789.. <>|()!*?-+eE:hmsdTGHzkMm/ ,'%_\\\x00\n\u2028é") + ["..", "GHz",
                                                                                                      "arcsec", "nan"])
_TEXT = st.one_of(st.text(max_size=60), st.lists(_GRAMMAR_ALPHABET, max_size=40).map("".join))
_FIELDS = [f.name for f in search.FIELDS] + ["frequency", "position", "radius", "band", "polarisation",
                                             "project_type", "array", "public", "science", "qa2", "mosaic"]


def _safe(clause_text: str) -> bool:
    """No control character, line break or user backslash in the ADQL (ours escape only % and _)."""
    stripped = clause_text.replace(r"\%", "").replace(r"\_", "")
    return "\\" not in stripped and not any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in stripped)


@pytest.mark.fuzz
@given(param=st.sampled_from(_FIELDS), text=_TEXT, extra=st.sampled_from(["", "central"]))
def test_any_text_in_any_field_reads_or_fails_clearly(param, text, extra):
    try:
        wanted = search.plan({param: text, "frequency_mode": extra or "coverage", **(
            {"position": "10 20"} if param == "radius" else {})})
    except search.SearchValueError as exc:
        assert exc.param in _FIELDS and str(exc)
        return
    assert all(_safe(c) for c in wanted.clauses)
    assert all(c.count("(") == c.count(")") for c in wanted.clauses if "'" not in c)


_PYTHON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10),
                                 st.floats(allow_nan=False).map(lambda x: x * u.GHz), st.dates(), st.binary(max_size=4)),
                       lambda inner: st.lists(inner, max_size=3), max_leaves=6)


@pytest.mark.fuzz
@given(param=st.sampled_from(_FIELDS), value=_PYTHON)
def test_any_python_value_in_any_field_reads_or_fails_clearly(param, value):
    try:
        wanted = search.plan({param: value})
    except search.SearchValueError as exc:
        assert exc.param in _FIELDS
        return
    assert all(_safe(c) for c in wanted.clauses)


@pytest.mark.fuzz
@given(text=st.text())
def test_any_string_is_refused_or_stays_inside_its_literal(text):
    why = adql.check_literal(text)
    if why:
        with pytest.raises(adql.QueryError, match=re.escape(why[:30])):
            adql.quote(text)
        return
    m = re.fullmatch(r"'((?:[^']|'')*)'", adql.quote(text), re.S)
    assert m and m.group(1).replace("''", "'") == text


@pytest.mark.fuzz
@given(text=st.one_of(st.text(), st.lists(st.sampled_from(["[", "]", "..", "GHz", "kHz", ",", " U ", "1", ".", "e",
                                                           "-", "XX YY", "@", "mJy/beam"]), max_size=40).map("".join)))
def test_frequency_support_text_reads_or_fails_clearly(text):
    try:
        windows = coverage.parse_support(text)
    except coverage.SupportError:
        return
    assert all(w.lo_ghz <= w.hi_ghz for w in windows)


def test_the_archive_spellings_of_frequency_support_are_read():
    from importlib.resources import files
    from astropy.table import Table
    row = Table.read(str(files("astroquery.alma.tests") / "data" / "alma-onerow.txt"), format="ascii")[0]
    ws = coverage.parse_support(str(row["frequency_support"]))
    assert [(w.lo_ghz, w.hi_ghz, w.resolution_khz) for w in ws] == [
        (112.35, 114.23, 1952.95), (113.81, 115.79, 31247.16), (114.84, 115.31, 488.24), (114.95, 115.19, 122.06)]
    # the row's own window is the first one: em_min/em_max are its edges (the archive has one row per window)
    assert abs(coverage.C / row["em_min"] / 1e9 - 114.23) < 0.005 and abs(coverage.C / row["em_max"] / 1e9 - 112.35) < 0.005
    # spectral_resolution is in Hz: 2000000 for the window of 1952.95 kHz (so a kHz search box scales by 1000)
    assert abs(row["spectral_resolution"] / 1e3 / ws[0].resolution_khz - 1) < 0.03
    older = coverage.parse_support("[100.63..101.57GHz,488.28kHz, XX YY] U [102.43..103.37GHz,488.28kHz, XX YY]")
    assert [w.pols for w in older] == ["XX YY", "XX YY"] and older[1].lo_ghz == 102.43


# ------------------------------------------------------------------ the grammar's rules at their edges
# Expected values: datetime arithmetic written out, astropy's own unit conversions, the documented errors.

from datetime import datetime, timedelta  # noqa: E402

from almatools.plugins.archive.grammar import (MAX_DEPTH, MAX_UNIT, Not, Or, Range, SearchSyntaxError,  # noqa: E402
                                               Text, Value, number_reader, parse, parse_dates, parse_numbers,
                                               parse_text, read_date)


def refused(why):
    return pytest.raises(SearchSyntaxError, match=why)


@pytest.mark.parametrize("text, start, step", [
    ("2020-03-03", datetime(2020, 3, 3), timedelta(days=1)),
    ("03-03-2020", datetime(2020, 3, 3), timedelta(days=1)),
    ("2020/3/3", datetime(2020, 3, 3), timedelta(days=1)),
    ("2020-03-03T12:30", datetime(2020, 3, 3, 12, 30), timedelta(minutes=1)),
    ("2020-03-03 12:30:15", datetime(2020, 3, 3, 12, 30, 15), timedelta(seconds=1)),
    ("2020/03/03/12:30:15", datetime(2020, 3, 3, 12, 30, 15), timedelta(seconds=1)),
    ("2020-03-03T12:30:15.5", datetime(2020, 3, 3, 12, 30, 15, 500000), timedelta(milliseconds=100)),
    ("2020-03-03T12:30:15.25", datetime(2020, 3, 3, 12, 30, 15, 250000), timedelta(milliseconds=10)),
    ("2020-03-03T12:30:15.123456", datetime(2020, 3, 3, 12, 30, 15, 123456), timedelta(microseconds=1)),
    ("2020-03-03T00:00:00", datetime(2020, 3, 3), timedelta(seconds=1)),  # zeros are still a given time
    ("  2020-03-03  ", datetime(2020, 3, 3), timedelta(days=1)),
])
def test_a_date_is_the_interval_of_its_last_written_digit(text, start, step):
    assert read_date(text) == (start, start + step)


def test_the_last_representable_day_ends_at_the_largest_datetime():
    assert read_date("9999-12-31") == (datetime(9999, 12, 31), datetime.max)
    assert read_date("9999-12-31T23:59:59") == (datetime(9999, 12, 31, 23, 59, 59), datetime.max)
    assert read_date("9999-12-30") == (datetime(9999, 12, 30), datetime(9999, 12, 31))


@pytest.mark.parametrize("text, why", [
    ("2021-02-29", r"is not a calendar date \(day is out of range for month\)"),
    ("12-31-2020", r"is not a calendar date \(month must be in 1\.\.12\)"),  # day-month-year
    ("2020-03-03T24:00", r"is not a calendar date \(hour must be in 0\.\.23\)"),
    ("2020-03", r"is not a date \(yyyy-mm-dd, dd-mm-yyyy or yyyy/mm/dd, optionally with Thh:mm\[:ss\]\)"),
    ("03-03-2020T12:00", "is not a date"),  # a time only with the year first
    ("2020-03-03T12:30:15.1234567", "is not a date"),
])
def test_dates_that_are_not_are_refused(text, why):
    with refused(why):
        read_date(text)


def test_date_terms_are_half_open_intervals():
    d = datetime(2020, 3, 3)
    assert parse_dates("2020-03-03") == Range(d, d + timedelta(days=1), hi_open=True)
    assert parse_dates("<2020-03-03") == Range(None, d + timedelta(days=1), hi_open=True)  # up to its end
    assert parse_dates(">=2020-03-03") == Range(d, None, hi_open=True)
    assert parse_dates("2020-03-03..2020-03-03") == Range(d, d + timedelta(days=1), hi_open=True)
    assert parse_dates("2020-03-03T12:00..2020-03-03T12:00") == \
        Range(d + timedelta(hours=12), d + timedelta(hours=12, minutes=1), hi_open=True)
    with refused("is an empty range"):
        parse_dates("2020-03-04..2020-03-03")


def test_bare_numbers_take_the_search_box_unit():
    read = number_reader("GHz", "Hz")
    assert read("230") == (230e9, False) and read(" -1.5e-3 ") == (-1.5e6, False) and read(".5") == (0.5e9, False)
    assert number_reader("arcsec")("0.1") == (0.1, False)  # column in the box's unit
    assert number_reader("")("12") == (12.0, False)


def test_numbers_with_a_unit_are_converted_by_astropy():
    read = number_reader("GHz", "Hz", u.spectral())
    assert read("1800 MHz") == (pytest.approx(1.8e9, rel=1e-15), False)
    value, flipped = read("1.3mm")  # a wavelength for a frequency: the order runs the other way
    assert flipped and value == pytest.approx((1.3 * u.mm).to_value(u.Hz, u.spectral()), rel=1e-15)
    value, flipped = number_reader("arcsec", "deg")("2arcmin")
    assert (value, flipped) == (pytest.approx(2 / 60, rel=1e-15), False)


@pytest.mark.parametrize("unit, text, why", [
    ("GHz", "abc", r"is not a number \(with an optional unit, e.g. '2GHz'\)"),
    ("", "abc", r"is not a number$|is not a number'"),
    ("", "2GHz", "takes a plain number, without a unit"),
    ("GHz", "1e400", "is not a finite number"),
    ("GHz", "1e300 THz", "is out of range once converted to Hz"),
    ("GHz", "2 Jy", r"needs a unit convertible to GHz; got 'Jy'"),
    ("GHz", "2 furlongs", r"needs a unit convertible to GHz; got 'furlongs'"),
    ("GHz", "2 \u00b5m", "has no unit astropy knows"),
    ("GHz", "2 " + "k" * (MAX_UNIT - 1) + "Hz", f"has a unit longer than {MAX_UNIT} characters"),
    # a newline inside the unit is part of the unit (re.S), not the end of the number
    ("GHz", "230 G\nHz", r"needs a unit convertible to GHz; got 'G\\nHz'"),
])
def test_numbers_that_are_not_are_refused(unit, text, why):
    with refused(why):
        number_reader(unit, "Hz" if unit else "", u.spectral())(text)


def test_a_unit_of_the_longest_length_is_still_read():
    given = "GHz s" + " " * (MAX_UNIT - 8) + "/ s"  # exactly MAX_UNIT characters after the number
    assert len(given) == MAX_UNIT
    assert number_reader("Hz")("2 " + given) == (pytest.approx(2e9, rel=1e-15), False)
    with refused(f"has a unit longer than {MAX_UNIT} characters"):
        number_reader("Hz")("2 " + given.replace("/", " /"))


def test_numeric_terms():
    read = number_reader("GHz", "Hz", u.spectral())
    mm = {k: (k * u.mm).to_value(u.Hz, u.spectral()) for k in (1, 2, 3)}
    assert parse_numbers("230", read) == Value(230e9)
    assert parse_numbers("<5", read) == parse_numbers("<=5", read) == Range(None, 5e9)
    assert parse_numbers(">5", read) == parse_numbers(">= 5", read) == Range(5e9, None)
    assert parse_numbers("<2mm", read) == Range(mm[2], None)  # shorter than 2 mm: higher frequencies
    assert parse_numbers(">2mm", read) == Range(None, mm[2])
    assert parse_numbers("1800..1900MHz", read) == Range(pytest.approx(1.8e9), pytest.approx(1.9e9))
    assert parse_numbers("1800MHz..1900", read) == Range(pytest.approx(1.8e9), pytest.approx(1.9e9))
    assert parse_numbers("1mm..3mm", read) == Range(pytest.approx(mm[3]), pytest.approx(mm[1]))
    assert parse_numbers("100GHz..2mm", read) == Range(pytest.approx(1e11), pytest.approx(mm[2]))
    assert parse_numbers("2mm..100GHz", read) == Range(pytest.approx(1e11), pytest.approx(mm[2]))
    assert parse_numbers("5..5", read) == Range(5e9, 5e9)
    assert parse_numbers("1|!(2..3)", read) == Or((Value(1e9), Not(Range(2e9, 3e9))))


@pytest.mark.parametrize("text, why", [
    ("3..2", r"is an empty range \(the first end is larger\)"),
    ("3mm..1mm", "is an empty range"),  # as frequencies: 100 GHz .. 300 GHz reversed
    ("<", "'<' needs a value after it"),
    (">= ", "'>=' needs a value after it"),
    ("1..2..3", "a range is 'a..b' with both ends given"),
    ("..2", "a range is 'a..b' with both ends given"),
    ("2.. ", "a range is 'a..b' with both ends given"),
    ("1(2)", "has a parenthesis inside a value"),
])
def test_numeric_terms_that_are_not_are_refused(text, why):
    with refused(why):
        parse_numbers(text, number_reader("GHz", "Hz", u.spectral()))


def test_structure_groups_negations_and_alternatives():
    assert parse_text(" a | (b|c) | !d ") == Or((Text("a"), Or((Text("b"), Text("c"))), Not(Text("d"))))
    assert parse_text("((a))") == Text("a") and parse_text("!!a") == Not(Not(Text("a")))
    assert parse_text("(a)b") == Text("(a)b")  # a group only when its ')' ends the alternative
    assert parse_text("(a)|b") == Or((Text("a"), Text("b")))  # a '|' right after a group
    with refused("is not text"):
        parse(5, Text)


@pytest.mark.parametrize("text, why", [
    ("a||b", r"an alternative is empty \(nothing between '\|', '\(' or '\)'\)"),
    ("a|", "an alternative is empty"),
    ("()", "an alternative is empty"),
    ("!", "an alternative is empty"),
    ("a)", r"'\)' at position 2 closes nothing"),
    ("(a", r"'\(' at position 1 is never closed"),
    ("((a)", r"'\(' at position 1 is never closed"),
    ("(a (b", r"'\(' at position 4 is never closed"),  # the innermost of two, where the typing stopped
    ("a| ", "an alternative is empty"),  # blank after the last '|'
])
def test_structure_errors_say_where(text, why):
    with refused(why):
        parse_text(text)


def test_nesting_is_bounded_by_max_depth():
    assert parse_text("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH) == Text("a")
    with refused(f"parentheses nested deeper than {MAX_DEPTH}"):
        parse_text("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1))
    term = parse_text("!" * MAX_DEPTH + "a")
    for _ in range(MAX_DEPTH):
        term = term.term
    assert term == Text("a")
    with refused(f"groups and '!' nested deeper than {MAX_DEPTH}"):
        parse_text("!" * (MAX_DEPTH + 1) + "a")
    with refused(f"groups and '!' nested deeper than {MAX_DEPTH}"):
        parse_text("!" * (MAX_DEPTH - 1) + "(!a)")


def test_the_bounds_are_the_ones_the_readme_states():
    # README: "parentheses or `!` nested deeper than 20", "a unit longer than 24 characters"
    assert MAX_DEPTH == 20 and MAX_UNIT == 24
    assert parse_text("(" * 20 + "a" + ")" * 20) == Text("a")
    with refused("nested deeper than 20"):
        parse_text("(" * 21 + "a" + ")" * 21)
    longest = "GHz s" + " " * 16 + "/ s"
    assert len(longest) == 24 and number_reader("Hz")("2 " + longest) == (pytest.approx(2e9, rel=1e-15), False)
    with refused("has a unit longer than 24 characters"):
        number_reader("Hz")("2 " + longest.replace("/", " /"))


def test_long_values_are_shortened_in_errors():
    with refused(r"cannot read '" + "x" * 200 + "…': is not a number"):
        number_reader("")("x" * 500)
    with refused(r"cannot read '" + "x" * 200 + "': is not a number"):  # 200 characters are kept whole
        number_reader("")("x" * 200)
    with refused(r"cannot read '" + "x" * 200 + "…': is not a number"):
        number_reader("")("x" * 201)
    err = SearchSyntaxError(["a"], "why")
    assert str(err) == "cannot read ['a']: why" and err.value == ["a"] and err.why == "why"
