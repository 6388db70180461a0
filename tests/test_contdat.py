"""cont.dat reading/writing and fitspw/fitspec parsing (no CASA needed)."""

import math

import numpy as np

import pytest

from almatools.plugins.frames.contdat import (ContDat, ContDatError, ContField, ContRange, ContSpw, format_contdat,
                                              parse_contdat, read_contdat, write_contdat)
from almatools.plugins.frames.selection import check_fitspec_dict, parse_selection

V1 = """TW_Hya
SPW0
229.95~229.96GHz
229.97~229.99GHz
SPW1
"""

# v2 as delivered: unsorted spws, varying precision, blank lines, NONE and ALL, CRLF line ends
V2 = ("Field: 'TW Hya'\r\n\r\nSpectralWindow: 27\r\n232.01~232.03GHz LSRK\r\n"
      "232.0450000000~232.0600000000GHz LSRK\r\n\r\nSpectralWindow: 25\r\n229.95012~229.96GHz LSRK\r\n\r\n"
      "SpectralWindow: 29\r\nNONE\r\n\r\nSpectralWindow: 31\r\nALL\r\n")

V3 = """Field: TW_Hya

SpectralWindow: 25 X1913589666#ALMA_RB_06#BB_1#SW-01#FULL_RES
Flags: ALLCONT LOWBANDWIDTH
219.3452433728~219.8069245935GHz LSRK
220.1~220.2GHz LSRK

SpectralWindow: 27 X1913589666#ALMA_RB_06#BB_2#SW-01#FULL_RES
NONE

Field: other
SpectralWindow: 25 X1913589666#ALMA_RB_06#BB_1#SW-01#FULL_RES
219.4~219.5GHz;219.6~219.7GHz LSRK
"""


def test_v1_bare_names_spw_lines_topo():
    cd = parse_contdat(V1)
    assert cd.version == 1
    assert [f.name for f in cd.fields] == ["TW_Hya"]
    s0, s1 = cd.fields[0].spws
    assert (s0.spw_id, s1.spw_id) == (0, 1)
    assert [(r.lo_hz, r.hi_hz, r.frame) for r in s0.ranges] == [(229.95e9, 229.96e9, "TOPO"), (229.97e9, 229.99e9, "TOPO")]
    assert s1.ranges == [] and s1.keyword is None  # no ranges: the pipeline's 'NONE'


def test_v2_unsorted_none_all_precision_crlf():
    cd = parse_contdat(V2)
    assert cd.version == 2
    f = cd.fields[0]
    assert f.name == "TW Hya"  # dequoted
    assert [s.spw_id for s in f.spws] == [27, 25, 29, 31]  # file order kept
    assert f.spw(25).ranges[0].lo_hz == pytest.approx(229.95012e9, abs=1e-3)
    assert f.spw(27).ranges[1].frame == "LSRK"
    assert f.spw(29).keyword == "NONE" and f.spw(31).keyword == "ALL"


def test_v3_names_flags_and_several_ranges_per_line():
    cd = parse_contdat(V3)
    assert cd.version == 3
    s = cd.field("TW_Hya").spw(25)
    assert s.name == "X1913589666#ALMA_RB_06#BB_1#SW-01#FULL_RES"
    assert s.flags == ["ALLCONT", "LOWBANDWIDTH"]
    assert s.ranges[0].lo_hz == pytest.approx(219.3452433728e9, abs=1e-4)
    assert cd.field("TW_Hya").spw(27).keyword == "NONE"
    other = cd.field("other").spw(25)
    assert [(r.lo_hz / 1e9, r.hi_hz / 1e9) for r in other.ranges] == [(219.4, 219.5), (219.6, 219.7)]
    assert all(r.frame == "LSRK" for r in other.ranges)


@pytest.mark.parametrize("text", [V1, V2, V3])
def test_write_then_read_keeps_everything(text, tmp_path):
    cd = parse_contdat(text)
    path = write_contdat(cd, str(tmp_path / "cont.dat"))
    back = read_contdat(path)
    _assert_same(back.to_dict(), cd.to_dict())
    assert format_contdat(back) == format_contdat(cd)
    with pytest.raises(FileExistsError):
        write_contdat(cd, path)


def _assert_same(a, b):
    assert list(a) == list(b)
    for fname in a:
        assert list(a[fname]) == list(b[fname])
        for spw in a[fname]:
            for key in ("name", "keyword", "flags"):
                assert a[fname][spw][key] == b[fname][spw][key]
            ra, rb = a[fname][spw]["ranges"], b[fname][spw]["ranges"]
            assert len(ra) == len(rb)
            for x, y in zip(ra, rb):  # written with 10 decimals in GHz
                assert math.isclose(x[0], y[0], abs_tol=1e-10) and math.isclose(x[1], y[1], abs_tol=1e-10)
                assert x[2] == y[2]


def test_written_text_is_the_pipelines_format():
    text = format_contdat(parse_contdat(V3))
    assert "SpectralWindow: 25 X1913589666#ALMA_RB_06#BB_1#SW-01#FULL_RES\nFlags: ALLCONT LOWBANDWIDTH\n" \
           "219.3452433728~219.8069245935GHz LSRK\n" in text
    assert text.startswith("Field: TW_Hya\n\n")


@pytest.mark.parametrize("bad, lineno, words", [
    ("Field: X\nSpectralWindow: 1\n229.95-229.96GHz LSRK\n", 3, "not a range"),
    ("Field: X\nSpectralWindow: 1\n229.96~229.95GHz LSRK\n", 3, "ends below"),
    ("Field: X\nSpectralWindow: 1\n229.95~229.96GHz LSRX\n", 3, "unknown spectral frame"),
    ("Field: X\n229.95~229.96GHz LSRK\n", 2, "outside a SpectralWindow"),
    ("SpectralWindow: 3\n", 1, "before any Field"),
    ("Field: X\nSpectralWindow: 1\n229.95~229.96GHz LSRK\nNONE\n", 4, "already has ranges"),
    ("Field: X\nSpectralWindow: one two\n", 2, "not a Field"),
    ("Field: X\nSpectralWindow: 1\n229.95~229.96 furlongs\n", 3, "unknown spectral frame"),
])
def test_malformed_lines_name_the_line(bad, lineno, words):
    with pytest.raises(ContDatError) as err:
        parse_contdat(bad, path="cont.dat")
    assert err.value.lineno == lineno
    assert f"cont.dat, line {lineno}" in str(err.value) and words in str(err.value)
    assert isinstance(err.value, ValueError)


# --------------------------------------------------------------------------- cont.dat details

def _one_spw(range_line):
    """A v2 file with one field and one spw whose only range line is *range_line*."""
    return f"Field: X\n\nSpectralWindow: 1\n{range_line}\n"


@pytest.mark.parametrize("range_line, lo_hz, hi_hz", [
    ("229950000000~229960000000Hz LSRK", 229.95e9, 229.96e9),
    ("229950000~229960000kHz LSRK", 229.95e9, 229.96e9),
    ("229950.5~229960.25MHz LSRK", 229.9505e9, 229.96025e9),
    ("229950~229960mhz LSRK", 229.95e9, 229.96e9),  # the unit is read whatever its case
    ("229.95~229.96GHz LSRK", 229.95e9, 229.96e9),
    ("229.95~229.96 GHz LSRK", 229.95e9, 229.96e9),  # a blank before the unit
])
def test_range_units_hz_khz_mhz_ghz(range_line, lo_hz, hi_hz):
    """Hand-edited files give ranges in any of Hz, kHz, MHz and GHz; all are read into Hz."""
    (r,) = parse_contdat(_one_spw(range_line)).fields[0].spws[0].ranges
    assert r.lo_hz == pytest.approx(lo_hz, rel=1e-12) and r.hi_hz == pytest.approx(hi_hz, rel=1e-12)
    assert r.frame == "LSRK"


def test_to_dict_gives_ghz_whatever_unit_the_file_used():
    """frameconv's JSON result lists ranges in GHz, with the spw name, keyword and flags."""
    text = ("Field: 'TW Hya'\n\nSpectralWindow: 25 X1913589666#ALMA_RB_06#BB_1#SW-01#FULL_RES\n"
            "Flags: LOWBANDWIDTH\n229950~229960MHz LSRK\n230.5~231GHz TOPO\n\nSpectralWindow: 27\nALL\n")
    assert parse_contdat(text).to_dict() == {"TW Hya": {
        "25": {"name": "X1913589666#ALMA_RB_06#BB_1#SW-01#FULL_RES", "keyword": None, "flags": ["LOWBANDWIDTH"],
               "ranges": [[pytest.approx(229.95, rel=1e-12), pytest.approx(229.96, rel=1e-12), "LSRK"],
                          [pytest.approx(230.5, rel=1e-12), pytest.approx(231.0, rel=1e-12), "TOPO"]]},
        "27": {"name": "", "keyword": "ALL", "flags": [], "ranges": []}}}


@pytest.mark.parametrize("field_line, name", [
    ("Field: 'TW Hya'", "TW Hya"),
    ('Field: "TW Hya"', "TW Hya"),
    ("Field:   'TW Hya'  ", "TW Hya"),
    ("Field: 'TW Hya\"", "'TW Hya\""),  # mismatched quotes are not a quoted name: kept as written
    ("Field: TW_Hya'", "TW_Hya'"),
    ("Field: '", "'"),  # a lone quote is not a pair of quotes
])
def test_field_names_are_dequoted_only_when_quoted_on_both_sides(field_line, name):
    """Names with blanks are written quoted; the MS name is what is left inside one pair of quotes."""
    cd = parse_contdat(f"{field_line}\nSpectralWindow: 1\nNONE\n")
    assert [f.name for f in cd.fields] == [name]


@pytest.mark.parametrize("empty", ["Field: ''", 'Field: ""', "Field:"])
def test_field_without_a_name_is_refused(empty):
    """An empty (or empty quoted) field name cannot match any MS field: the line is named."""
    with pytest.raises(ContDatError, match="without a field name") as err:
        parse_contdat(f"{empty}\nSpectralWindow: 1\nNONE\n")
    assert err.value.lineno == 1


def test_repeated_field_blocks_merge_into_one_spw():
    """A field given twice (files pasted together) adds to one spw; a later block may omit the spw name."""
    name = "X1913589666#ALMA_RB_06#BB_1#SW-01#FULL_RES"
    text = (f"Field: TW_Hya\nSpectralWindow: 25 {name}\n219.4~219.5GHz LSRK\n\n"
            f"Field: TW_Hya\nSpectralWindow: 25 {name}\n219.6~219.7GHz LSRK\n\n"
            "Field: TW_Hya\nSpectralWindow: 25\n219.8~219.9GHz LSRK\n")
    cd = parse_contdat(text)
    assert cd.version == 3
    (f,) = cd.fields
    assert f.lineno == 1  # where the field first appears
    (s,) = f.spws
    assert (s.spw_id, s.name, s.lineno) == (25, name, 2)
    assert [(r.lo_hz, r.hi_hz, r.lineno) for r in s.ranges] == [
        (pytest.approx(219.4e9), pytest.approx(219.5e9), 3), (pytest.approx(219.6e9), pytest.approx(219.7e9), 7),
        (pytest.approx(219.8e9), pytest.approx(219.9e9), 11)]


def test_one_spw_id_with_two_names_is_refused():
    """Two spw names for one id of one field mean two different windows: refused, naming the first line."""
    text = ("Field: TW_Hya\nSpectralWindow: 25 X1#ALMA_RB_06#BB_1#SW-01#FULL_RES\nNONE\n"
            "Field: TW_Hya\nSpectralWindow: 25 X1#ALMA_RB_06#BB_2#SW-01#FULL_RES\nNONE\n")
    with pytest.raises(ContDatError) as err:
        parse_contdat(text)
    assert err.value.lineno == 5
    assert err.value.problem == "spw 25 of field 'TW_Hya' was named 'X1#ALMA_RB_06#BB_1#SW-01#FULL_RES' on line 2"


@pytest.mark.parametrize("text, version", [
    ("TW_Hya\n", 1),  # v1: only a bare field name
    ("TW_Hya\nSPW3\n229.95~229.96GHz\n", 1),
    ("Field: X\nSpectralWindow: 3\n229.95~229.96GHz LSRK\n", 2),
    ("Field: X\nSpectralWindow: 3\nFlags: LOWSPREAD\n229.95~229.96GHz LSRK\n", 3),  # flags without spw names
    ("Field: X\nSpectralWindow: 3 X1#ALMA_RB_06#BB_1#SW-01#FULL_RES\n229.95~229.96GHz LSRK\n", 3),
])
def test_version_is_the_oldest_form_seen(text, version):
    """frameconv reports the version: bare names → 1, ``Flags:`` or spw names → 3, else 2."""
    assert parse_contdat(text).version == version


def test_v1_field_names_starting_with_a_digit_or_holding_hz():
    """v1 bare names such as 3C279 or HZ43 are field names, not ranges."""
    cd = parse_contdat("3C279\nSPW0\n229.95~229.96GHz\nHZ43\nSPW0\n230.1~230.2GHz\n")
    assert cd.version == 1
    assert [f.name for f in cd.fields] == ["3C279", "HZ43"]
    assert cd.field("HZ43").spw(0).ranges[0].lo_hz == pytest.approx(230.1e9)
    assert cd.field("HZ43").spw(0).ranges[0].frame == "TOPO"


@pytest.mark.parametrize("line, words", [
    ("229.95~229.96GHz LSRK extra", "is not a range"),  # three words after the range
    ("229.95~229.96GHz LSRK2", "is not a range"),  # a word that is not letters only
    ("229.95~229.96 channels LSRK", "unknown frequency unit 'channels'"),
    ("229.95~229.96THz LSRK", "unknown frequency unit 'THz'"),
    ("229.95~1e400GHz LSRK", "a frequency too large to be one"),
    ("1e400~229.95GHz LSRK", "a frequency too large to be one"),
    ("229.95", "not a Field, SpectralWindow"),  # a lone number is neither a range nor a field name
    ("SpectralWindow:", "not a Field, SpectralWindow"),  # no spw id: not a v1 field name either
])
def test_malformed_range_and_block_lines(line, words):
    """Each malformed line is refused with the reason, never read as a range in GHz or as a field name."""
    with pytest.raises(ContDatError) as err:
        parse_contdat(_one_spw(line), path="cont.dat")
    assert err.value.lineno == 4 and words in err.value.problem


def test_a_long_bad_range_is_quoted_up_to_60_characters():
    """The problem text quotes the first 60 characters of a refused range; the whole line is in the message."""
    line = "219.3452433728-219.8069245935GHz LSRK 220.1000000000-220.2000000000GHz LSRK"
    with pytest.raises(ContDatError) as err:
        parse_contdat(_one_spw(line))
    assert err.value.problem == ("'219.3452433728-219.8069245935GHz LSRK 220.1000000000-220.200' "
                                 "is not a range 'a~bGHz [frame]'")
    assert repr(line) in str(err.value)


def test_format_is_the_pipelines_text_with_one_blank_line_after_each_block():
    """The written file, byte for byte: v3 spw line, Flags, %.10f GHz ranges, blank lines, final newline."""
    cd = ContDat(fields=[ContField("TW_Hya", spws=[
        ContSpw(25, "X1913589666#ALMA_RB_06#BB_1#SW-01#FULL_RES", flags=["ALLCONT"],
                ranges=[ContRange(219.3452433728e9, 219.8069245935e9, "LSRK"), ContRange(220.1e9, 220.2e9, "LSRK")]),
        ContSpw(27, keyword="NONE")])])
    assert format_contdat(cd) == ("Field: TW_Hya\n\n"
                                  "SpectralWindow: 25 X1913589666#ALMA_RB_06#BB_1#SW-01#FULL_RES\n"
                                  "Flags: ALLCONT\n"
                                  "219.3452433728~219.8069245935GHz LSRK\n"
                                  "220.1000000000~220.2000000000GHz LSRK\n\n"
                                  "SpectralWindow: 27\n"
                                  "NONE\n\n")


def test_format_of_nothing_is_an_empty_file():
    """No fields: an empty file, not a lone newline."""
    assert format_contdat(ContDat()) == ""


# --------------------------------------------------------------------------- fitspw strings

def test_selection_parsing_channels_steps_and_frequencies():
    rep = parse_selection("0:10~20;30~40^2,3,1~2:5,*:229.1~229.2GHz")
    assert not rep.problems
    a, b, c, d = rep.items
    assert list(a.spw_ids) == [0] and a.chans == [(10, 20, 1), (30, 40, 2)]
    assert list(b.spw_ids) == [3] and b.chans is None
    assert list(c.spw_ids) == [1, 2] and c.chans == [(5, 5, 1)]
    assert d.spw_ids is None and d.freqs == [(229.1e9, 229.2e9)]
    assert any("every channel of spw 3" in w for w in rep.warnings)


@pytest.mark.parametrize("text, words", [
    ("0:3821~2839", "reversed"),
    ("<your channel selection here>", "placeholder"),
    ("0:<chans>", "placeholder"),
    ("2~1:5~9", "reversed"),
    (":5~9", "no spw"),
    ("0:5~", "not a channel range"),
    ("0:10~20,,1", "empty item"),
])
def test_selection_refusals(text, words):
    rep = parse_selection(text)
    assert rep.problems and any(words in p for p in rep.problems), rep.problems


def test_spw_less_than_is_syntax_not_a_placeholder():
    assert not parse_selection("<2:5~9").problems


def test_fitspec_dictionary_checks():
    good = {"0": {"17,19": {"chan": "8~120", "fitorder": 1}}, "1": "NONE"}
    assert check_fitspec_dict(good) == []
    bad = {"0": {"17": {"chan": "120~8", "fitorder": -1}}, "x": {}, "2": "ALL", "3": {"5": {"chans": "1"}}}
    problems = " | ".join(check_fitspec_dict(bad))
    for words in ("reversed", "fitorder must be an integer >= 0", "field key 'x'", "must be 'NONE'", "expected {"):
        assert words in problems


# --------------------------------------------------------------------------- property: write → read

from hypothesis import given, settings, strategies as st  # noqa: E402


_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_+\-.]{0,15}", fullmatch=True)
_ranges = st.lists(st.tuples(st.floats(84e9, 950e9), st.floats(0, 2e9)), max_size=4)


@st.composite
def _contdats(draw):
    cd = ContDat()
    for fname in draw(st.lists(_names, min_size=1, max_size=3, unique=True)):
        f = ContField(name=fname)
        for sid in draw(st.lists(st.integers(0, 60), min_size=1, max_size=4, unique=True)):
            rs = draw(_ranges)
            s = ContSpw(spw_id=sid, name=draw(st.one_of(st.just(""), st.just(f"X1#ALMA_RB_06#BB_1#SW-{sid:02d}#FULL_RES"))),
                        ranges=[ContRange(lo, lo + w, draw(st.sampled_from(["LSRK", "TOPO", "BARY"]))) for lo, w in rs])
            if not rs:
                s.keyword = draw(st.sampled_from(["NONE", "ALL"]))
            f.spws.append(s)
        cd.fields.append(f)
    return cd


@settings(max_examples=60, deadline=None)
@given(_contdats())
def test_any_written_contdat_reads_back(cd):
    back = parse_contdat(format_contdat(cd))
    _assert_same(back.to_dict(), cd.to_dict())


# --------------------------------------------------------------------------- fuzz: only documented errors, bounded sizes

from almatools.plugins.frames import selection as selmod  # noqa: E402
from almatools.plugins.frames.contdat import MAX_CONTDAT_BYTES  # noqa: E402

# pieces of real cont.dat files and of what goes wrong in them, glued at random
_CONTDAT_TOKENS = ["Field: ", "Field:", "TW_Hya", "'TW Hya'", "SpectralWindow: ", "SPW", "25", "0", "99999999999",
                   " X1913589666#ALMA_RB_06#BB_1#SW-01#FULL_RES", "Flags: ", "ALLCONT", "LOWBANDWIDTH", "NONE", "ALL",
                   "219.3452433728", "~", "GHz", "MHz", "Hz", "THz", " LSRK", " TOPO", " LSRX", " SOURCE", ";", ",",
                   "\n", "\r\n", "\r", "\t", " ", "  ", "#", ".", "e", "E+400", "1e-5", "-", "nan", "inf", "é", "\x00",
                   "\u2028", "\x0b", ":", "<", ">"]


@pytest.mark.fuzz
@given(st.one_of(st.text(max_size=400),
                 st.lists(st.sampled_from(_CONTDAT_TOKENS), max_size=80).map("".join)))
def test_contdat_reader_raises_only_its_own_error(text):
    try:
        cd = parse_contdat(text, path="fuzz.dat")
    except ContDatError as exc:
        assert str(exc).startswith("fuzz.dat, line ") and exc.lineno >= 1
        return
    for f in cd.fields:  # what it accepts is well formed: finite, ordered ranges in known frames
        assert f.name
        for s in f.spws:
            assert s.spw_id >= 0 and not (s.keyword and s.ranges)
            for r in s.ranges:
                assert 0 <= r.lo_hz <= r.hi_hz < math.inf and r.frame in {"REST", "LSRK", "LSRD", "BARY", "GEO", "TOPO",
                                                                          "GALACTO", "LGROUP", "CMB", "SOURCE"}
    assert parse_contdat(format_contdat(cd)).to_dict().keys() == cd.to_dict().keys()


def test_contdat_reader_refuses_fifos_directories_huge_and_binary_files(tmp_path):
    import os
    import threading
    from almatools.errors import InputFileError, ResourceLimitError
    fifo = tmp_path / "cont.dat"
    os.mkfifo(fifo)
    done = threading.Event()

    def read():
        with pytest.raises(InputFileError, match="is a FIFO, not a regular file"):
            read_contdat(str(fifo))
        done.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    assert done.is_set()  # refused at once, not blocked waiting for a writer
    with pytest.raises(InputFileError, match="is a directory"):
        read_contdat(str(tmp_path))
    big = tmp_path / "big.dat"
    with open(big, "wb") as fh:  # sparse: the size is checked before anything is read
        fh.truncate(MAX_CONTDAT_BYTES + 1)
    with pytest.raises(ResourceLimitError, match="the bound is 16.0 MiB"):
        read_contdat(str(big))
    binary = tmp_path / "bin.dat"
    binary.write_bytes(b"Field: X\nSpectralWindow: 1\n229.9\xff~230GHz LSRK\n")
    with pytest.raises(InputFileError, match="line 3: is not utf-8 text|: line 3: "):
        read_contdat(str(binary))


_SEL_TOKENS = ["0", "1", "25", "3821", "2839", "9999", "10000", "59999999", "99999999999", "~", ":", ";", ",", "^",
               "2", "*", "<", ">", "<your channel selection here>", "229.948", "GHz", "MHz", "Hz", "e5", ".", "-",
               " ", "  ", "\t", "X1#ALMA_RB_06#BB_1#SW-01#FULL_RES", "nan", "1e400", "é", "\x00"]


@pytest.mark.fuzz
@given(st.one_of(st.text(max_size=300), st.lists(st.sampled_from(_SEL_TOKENS), max_size=60).map("".join)))
def test_selection_parser_never_raises_and_stays_bounded(text):
    rep = parse_selection(text)  # problems are reported, never raised
    pairs = 0
    for it in rep.items:
        if it.spw_ids:
            assert 0 <= it.spw_ids[0] and it.spw_ids[-1] <= selmod.MAX_SPW_ID
        for a, b, step in it.chans or []:
            assert 0 <= a <= b <= selmod.MAX_CHANNEL and step >= 1
        for lo, hi in it.freqs:
            assert math.isfinite(lo) and math.isfinite(hi)
        pairs += (len(it.spw_ids) if it.spw_ids else 1) * max(1, sum((b - a) // s + 1 for a, b, s in it.chans or []))
    assert pairs <= selmod.MAX_CHANNEL_PAIRS
    report = selmod.check_selection(text)  # the MS-less check expands what was parsed
    assert sum(report.nchan_selected.values()) <= selmod.MAX_CHANNEL_PAIRS


@pytest.mark.parametrize("text, words", [
    ("2:1~59999999", "channel 59999999 exceeds the largest allowed, 1,048,575"),
    ("0~99999999999:1~2", "spw id 99999999999 exceeds the largest allowed, 9,999"),
    ("0:" + "9" * 5000, "exceeds the largest allowed"),  # beyond Python's int() digit limit: still a problem
    ("0~9999:0~1048575", "expands to more than"),
    ("1" * 1_000_001, "at most 1,000,000"),
    ("0:229.9~1e400GHz", "not a finite frequency range"),
])
def test_selection_sizes_are_bounded_before_anything_is_expanded(text, words):
    rep = parse_selection(text)
    assert any(words in p for p in rep.problems), rep.problems


def test_selection_channel_counts_of_steps_and_overlaps_against_a_set():
    rng = __import__("random").Random(5)
    for _ in range(300):
        ranges = [(a, a + rng.randrange(0, 40), rng.choice([1, 1, 2, 3, 7])) for a in
                  (rng.randrange(0, 100) for _ in range(rng.randrange(1, 6)))]
        text = "3:" + ";".join(f"{a}~{b}" + (f"^{s}" if s > 1 else "") for a, b, s in ranges)
        rep = selmod.check_selection(text)
        want = {c for a, b, s in ranges for c in range(a, b + 1, s)}
        assert rep.nchan_selected == {3: len(want)}
        assert (any("overlap" in w for w in rep.warnings)) == (sum(len(range(a, b + 1, s)) for a, b, s in ranges)
                                                                > len(want))
        assert set(np.nonzero(selmod.channel_mask(rep.selected[3], 200))[0]) == want
