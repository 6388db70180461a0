"""frameconv's channel-selection checks (:mod:`almatools.plugins.frames.selection`).

Expected values are read off the selection text by hand (which spws, which channels, how many),
counted by brute force over Python sets, or asked of CASA's MSSelection on a tiny simulated MS.
The bounds are the documented constants, tried at the bound and one past it.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from almatools.plugins.frames import selection as sel
from almatools.plugins.frames.msinfo import MsInfo, SpwInfo
from almatools.plugins.frames.selection import check_fitspec_dict, check_selection, parse_selection

EVERY = "a continuum fit over all channels includes any line emission"


def msinfo(*nchans, path="x.ms", fields=(0, 1)):
    """An MsInfo of spws 0, 1, … with the given channel counts (only what the checks read)."""
    spws = {i: SpwInfo(i, f"spw{i}", np.linspace(230e9, 231e9, n), np.full(n, 1e6), "TOPO")
            for i, n in enumerate(nchans)}
    return MsInfo(path=path, spws=spws, fields={f: None for f in fields}, telescope="ALMA", antenna0_itrf=(0, 0, 0))


def brute(ranges):
    """Distinct channels of [(start, stop, step)], listed one by one."""
    return {c for a, b, s in ranges for c in range(a, b + 1, max(s, 1))}


# ---- parsing: what is selected -------------------------------------------------------------------

def test_spw_ids_ranges_and_channels():
    r = parse_selection(" 0:5~9;20~30^2 , 1~3:7, 4:0~0^0 ")
    assert (r.problems, r.warnings) == ([], [])
    assert [(i.text, i.spw, i.spw_ids, i.chans, i.freqs) for i in r.items] == [
        ("0:5~9;20~30^2", "0", range(0, 1), [(5, 9, 1), (20, 30, 2)], []),
        ("1~3:7", "1~3", range(1, 4), [(7, 7, 1)], []),
        ("4:0~0^0", "4", range(4, 5), [(0, 0, 1)], []),  # step 0 counts as 1
    ]
    assert parse_selection("2~2:1 ~ 4 ^ 3").items[0].spw_ids == range(2, 3)
    assert parse_selection("2~2:1 ~ 4 ^ 3").items[0].chans == [(1, 4, 3)]


@pytest.mark.parametrize("spw", ["*", "<3", "> 3", "BB_1*", "X1#ALMA_RB_06#BB_1#SW-01#FULL_RES", "spw.a-b?"])
def test_names_and_patterns_are_left_to_the_ms(spw):
    r = parse_selection(f"{spw}:5~9")
    assert r.problems == [] and r.items[0].spw_ids is None and r.items[0].chans == [(5, 9, 1)]


def test_frequency_ranges_in_hz():
    r = parse_selection("230~231GHz, 0:230100MHz~230.2GHz;1.5~2.5e3 khz;7")
    assert r.problems == []
    assert r.items[0].spw_ids is None and r.items[0].freqs == [(230e9, 231e9)] and r.items[0].chans is None
    assert r.items[1].freqs == [(230.1e9, 230.2e9), (1.5e3, 2.5e6)] and r.items[1].chans == [(7, 7, 1)]
    only = parse_selection("0:230.1~230.1GHz").items[0]  # a zero-width range is not reversed
    assert (only.chans, only.freqs) == ([], [(230.1e9, 230.1e9)])
    assert parse_selection("0:1~2THz").items[0].freqs == [(1e12, 2e12)]
    assert parse_selection("0:1~2Hz").items[0].freqs == [(1.0, 2.0)]


def test_bare_spws_warn_that_every_channel_is_selected():
    r = parse_selection("2,3:")
    assert r.problems == []
    assert r.warnings == [f"'2' selects every channel of spw 2: {EVERY}",
                          f"'3:' selects every channel of spw 3: {EVERY}"]
    assert [i.chans for i in r.items] == [None, None]


@pytest.mark.parametrize("text", ["", "   ", None])
def test_the_empty_selection_warns(text):
    r = parse_selection(text)
    assert r.problems == [] and r.items == []
    assert r.warnings == [f"the empty selection selects every channel of every spw: {EVERY}"]


# ---- parsing: what cannot be right ---------------------------------------------------------------

@pytest.mark.parametrize("text, placeholder", [
    ("<your channel selection here>", "<your channel selection here>"),
    ("0:5~9,<spw>", "<spw>"),
    ("<1>,< >", "< >"),  # digits alone are not a placeholder, a blank is
    ("<1>,<_>", "<_>"),
])
def test_placeholders(text, placeholder):
    r = parse_selection(text)
    assert r.problems == [f"{text!r} contains placeholder text {placeholder!r}, not a selection: replace it by "
                          "spw:channel ranges"]
    assert r.items == [] and r.warnings == []


@pytest.mark.parametrize("text", ["<2:5~9", "> 2:5~9", "<2,>5"])
def test_casa_comparisons_are_not_placeholders(text):
    assert parse_selection(text).problems == []


@pytest.mark.parametrize("text, problem", [
    ("0,,1:5", "'0,,1:5' has an empty item between commas"),
    (":5~9", "':5~9' has no spw before ':' (write '*:5~9' for all spws)"),
    ("3~1:5", "'3~1:5': the spw range 3~1 is reversed (CASA refuses it)"),
    ("0 1:5", "'0 1:5': '0 1' is not a spw id, range, name or frequency range"),
    ("0:9~5", "'0:9~5': the channel range 9~5 is reversed (start 9 > end 5); CASA refuses it — did you mean 5~9?"),
    ("0:230.2~230.1GHz", "'0:230.2~230.1GHz': the frequency range 230.2~230.1GHz is reversed"),
    ("0:1e400~1GHz", "'0:1e400~1GHz': '1e400~1GHz' is not a finite frequency range"),
    ("1e400~1GHz", "'1e400~1GHz': '1e400~1GHz' is not a finite frequency range"),
    ("0:1~1e400GHz", "'0:1~1e400GHz': '1~1e400GHz' is not a finite frequency range"),
    ("10000~3", "'10000~3': spw id 10000 exceeds the largest allowed, 9,999"),
    ("0:abc", "'0:abc': 'abc' is not a channel range 'a~b' or a frequency range 'a~bGHz'"),
    ("0:" + "x" * 45, f"'0:{'x' * 45}': '{'x' * 40}' is not a channel range 'a~b' or a frequency range 'a~bGHz'"),
])
def test_problems_name_the_item(text, problem):
    assert parse_selection(text).problems == [problem]


def test_a_bad_item_does_not_hide_the_others():
    r = parse_selection("0,,1:5~9;9~5;6,:3,2")
    assert len(r.problems) == 3
    assert [(i.spw, i.chans) for i in r.items] == [("0", None), ("1", [(5, 9, 1), (6, 6, 1)]), ("2", None)]
    r = parse_selection("10000,3~1,1e400~1GHz,0 1,2")  # each kind of bad spw, then a good one
    assert len(r.problems) == 4 and [i.spw for i in r.items] == ["2"]
    r = parse_selection("1:5~9;1048576;1~1e400GHz;2~1GHz;6")  # each kind of bad channel range, then a good one
    assert len(r.problems) == 3
    assert (r.items[0].chans, r.items[0].freqs) == ([(5, 9, 1), (6, 6, 1)], [])


def test_long_frequency_ranges_are_quoted_to_forty_characters():
    rng = "1e400~1." + "0" * 35 + "GHz"
    assert parse_selection(f"0:{rng}").problems == [f"'0:{rng}': {rng[:40]!r} is not a finite frequency range"]


# ---- bounds --------------------------------------------------------------------------------------

def test_spw_id_bound():
    assert sel.MAX_SPW_ID == 9_999
    assert parse_selection("9999:0").items[0].spw_ids == range(9999, 10000)
    assert parse_selection("0~9999:0").items[0].spw_ids == range(0, 10000)
    assert parse_selection("10000:0").problems == ["'10000:0': spw id 10000 exceeds the largest allowed, 9,999"]
    assert parse_selection("0~10000").problems == ["'0~10000': spw id 10000 exceeds the largest allowed, 9,999"]
    # more digits than the bound has, even if the value is small
    assert parse_selection("00001").problems == ["'00001': spw id 00001 exceeds the largest allowed, 9,999"]
    assert parse_selection("0001").items[0].spw_ids == range(1, 2)


def test_channel_and_step_bounds():
    assert sel.MAX_CHANNEL == 1_048_575
    assert parse_selection("0:1048575").items[0].chans == [(1048575, 1048575, 1)]
    assert parse_selection("0:0~1048575^1048575").items[0].chans == [(0, 1048575, 1048575)]
    assert parse_selection("0:1048576").problems == [
        "'0:1048576': channel 1048576 exceeds the largest allowed, 1,048,575"]
    assert parse_selection("0:0~1048576").problems == [
        "'0:0~1048576': channel 1048576 exceeds the largest allowed, 1,048,575"]
    assert parse_selection("0:0~5^1048576").problems == [
        "'0:0~5^1048576': channel step 1048576 exceeds the largest allowed, 1,048,575"]


def test_long_numbers_are_shortened_to_twenty_digits():
    d20, d21 = "9" * 20, "9" * 21
    assert parse_selection(d20).problems == [f"{d20!r}: spw id {d20} exceeds the largest allowed, 9,999"]
    assert parse_selection(d21).problems == [f"{d21!r}: spw id {d20}… exceeds the largest allowed, 9,999"]


def test_selection_length_bound():
    assert sel.MAX_SELECTION_CHARS == 1_000_000
    ok = parse_selection("x" * 1_000_000)  # a (long) name pattern
    assert ok.problems == [] and len(ok.items) == 1
    assert parse_selection(" " + "x" * 1_000_000 + " ").problems == []  # counted after stripping
    assert parse_selection("x" * 1_000_001).problems == [
        "the selection is 1,000,001 characters long; at most 1,000,000 are accepted"]


TOO_BIG = ("expands to more than 100,000 (item, spw) pairs or 16,777,216 (spw, channel) pairs, "
           "the largest accepted")


def test_spw_items_bound():
    at = ",".join(["0~9999"] * 10)  # 10 x 10,000 spws
    r = parse_selection(at)
    assert r.problems == [] and len(r.items) == 10
    r = parse_selection(at + ",7")
    assert r.problems == [f"{(at + ',7')[:60]!r}… {TOO_BIG}"] and r.items == []
    # a name counts as one spw
    names = ",".join(["0~9999"] * 9 + ["0~9998", "*"])
    assert parse_selection(names).problems == []
    assert parse_selection(names + ",BB_1").problems == [f"{(names + ',BB_1')[:60]!r}… {TOO_BIG}"]


@pytest.mark.parametrize("text, ok", [
    ("0~15:0~1048575", True),  # 16 x 2**20 channels: exactly the bound
    ("0~16:0~1048575", False),
    ("0~31:0~1048575^2", True),  # 32 x 524,288
    ("0~32:0~1048575^2", False),
    ("0~15:0~1048574,0~15", True),  # 16 x 1,048,575 + 16 bare spws counted one channel each
    ("0~15:0~1048574,0~16", False),
    ("0~15:1~1048575,0~15", True),  # channels counted from the first selected, not from 0
    ("0~15:1~1048575,0~16", False),
    (",".join(["*:0~1048575"] * 16), True),
    (",".join(["*:0~1048575"] * 17), False),
])
def test_channel_pairs_bound(text, ok):
    r = parse_selection(text)
    if ok:
        assert r.problems == [] and r.items
    else:
        assert r.problems == [f"{text[:60]!r}{'…' if len(text) > 60 else ''} {TOO_BIG}"] and r.items == []


@pytest.mark.parametrize("width", [59, 60, 61])
def test_too_big_quotes_sixty_characters(width):
    text = " " * (width - 14) + "0~16:0~1048575"  # the text as given, blanks included
    assert len(text) == width
    assert parse_selection(text).problems == [f"{text[:60]!r}{'…' if width > 60 else ''} {TOO_BIG}"]


# ---- counting channels ---------------------------------------------------------------------------

@pytest.mark.parametrize("ranges, n", [
    ([], 0),
    ([(0, 4, 1), (5, 9, 1)], 10),  # touching
    ([(0, 4, 1), (6, 9, 1)], 9),  # a gap of one
    ([(0, 9, 1), (2, 5, 1)], 10),  # contained
    ([(3, 3, 5)], 1),
    ([(0, 10, 2)], 6),
    ([(0, 10, 2), (1, 9, 2)], 11),
    ([(0, 10, 2), (4, 6, 1)], 7),
    ([(0, 20, 5), (8, 12, 1)], 9),  # stepped channels below, inside and above a plain range
    ([(8, 20, 4), (8, 10, 1)], 6),  # a stepped channel on a plain range's first channel
    ([(0, 10, 0)], 11),
    ([(0, 2, 1), (5, 9, 1), (6, 7, 1)], 8),  # contained in the last of two merged ranges
    ([(0, 12, 4), (8, 12, 1)], 7),  # a stepped channel on a plain range's last channel
])
def test_union_size_by_hand(ranges, n):
    assert sel._union_size(ranges) == n == len(brute(ranges))


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(0, 4)).map(
    lambda t: (min(t[0], t[1]), max(t[0], t[1]), t[2])), max_size=6))
def test_union_size_and_mask_count_distinct_channels(ranges):
    assert sel._union_size(ranges) == len(brute(ranges))
    want = np.zeros(50, bool)
    want[[c for c in brute(ranges) if c < 50]] = True
    assert sel.channel_mask(ranges, 50).tolist() == want.tolist()


def test_without_an_ms_the_selection_is_read_off_the_text():
    r = check_selection("0:5~9;20~30^2;8~12,1~2:3,*:4,5,230~231GHz")
    assert r.problems == []
    assert r.selected == {0: [[5, 9, 1], [20, 30, 2], [8, 12, 1]], 1: [[3, 3, 1]], 2: [[3, 3, 1]]}
    assert r.nchan_selected == {0: 5 + 6 + 3, 1: 1, 2: 1} and r.nchan_total == {}
    assert r.warnings == [f"'5' selects every channel of spw 5: {EVERY}",
                          f"'230~231GHz' selects every channel of spw 230~231GHz: {EVERY}",
                          "spw 0: channel ranges overlap"]


def test_overlap_warning_only_when_ranges_share_channels():
    assert check_selection("0:0~4;5~9").warnings == []
    assert check_selection("0:0~4;4~9").warnings == ["spw 0: channel ranges overlap"]
    assert check_selection("0:0~10^2;1~9^2").warnings == []
    assert check_selection("0:0~9^2").warnings == []  # 0, 2, 4, 6, 8: five channels, not 5.5
    assert check_selection("0:0~10^2;2~2").warnings == ["spw 0: channel ranges overlap"]


# ---- against an MS's spws ------------------------------------------------------------------------

def test_spws_the_ms_lacks():
    r = check_selection("0:1,3~4:2", msinfo(10, 20, 30))
    assert r.problems == ["'3~4:2': spw 3 is not in x.ms (it has spws 0,1,2)",
                          "'3~4:2': spw 4 is not in x.ms (it has spws 0,1,2)"]
    assert r.selected == {}


@pytest.mark.parametrize("text, problem", [
    ("1:0~19", None),  # the last channel
    ("1:0~20", "'1:0~20': channel 20 is beyond the last channel (19) of spw 1; CASA would silently clip the range "
               "to 0~19"),
    ("1:25~30", "'1:25~30': channel 30 is beyond the last channel (19) of spw 1; CASA would silently clip the range "
                "to 19~19"),
    ("1:19~19", None),
    ("1:20", "'1:20': channel 20 is beyond the last channel (19) of spw 1; CASA would silently clip the range to "
             "19~19"),
])
def test_channels_beyond_the_spw(text, problem):
    r = check_selection(text, msinfo(10, 20), ms_select=lambda t: [[1, 0, 0, 1]])
    assert r.problems == ([problem] if problem else [])


def test_problems_of_the_text_come_before_the_ms():
    r = check_selection("0:5~9,0:9~5,7", msinfo(10))
    assert r.problems == ["'0:9~5': the channel range 9~5 is reversed (start 9 > end 5); CASA refuses it — did you "
                          "mean 5~9?"]
    # what the text selects is still reported, without the MS's channel counts
    assert r.selected == {0: [[5, 9, 1]]} and r.nchan_selected == {0: 5} and r.nchan_total == {}


def test_what_casa_selects_is_reported():
    asked = []

    def ms_select(text):
        asked.append(text)
        return [[0, 5, 9, 1], [0, 20, 30, 2], [1, 0, 19, 1]]

    r = check_selection("0:5~9;20~30^2,1", msinfo(40, 20), ms_select)
    assert asked == ["0:5~9;20~30^2,1"]
    assert r.problems == []
    assert r.selected == {0: [[5, 9, 1], [20, 30, 2]], 1: [[0, 19, 1]]}
    assert r.nchan_selected == {0: 11, 1: 20} and r.nchan_total == {0: 40, 1: 20}
    # spw 1 was asked for bare: its own warning, not a second one
    assert r.warnings == [f"'1' selects every channel of spw 1: {EVERY}"]


def test_a_step_of_zero_from_casa_counts_as_one():
    r = check_selection("0:2~5", msinfo(10), lambda t: [[0, 2, 5, 0]])
    assert r.nchan_selected == {0: 4} and r.warnings == []


def test_every_channel_of_a_spw_by_ranges_is_warned():
    r = check_selection("0:0~9", msinfo(10, 20), lambda t: [[0, 0, 9, 1]])
    assert r.warnings == ["spw 0: every channel is selected"]
    r = check_selection("0:0~8", msinfo(10, 20), lambda t: [[0, 0, 8, 1]])
    assert r.warnings == [] and r.nchan_selected == {0: 9}
    # a frequency selection that covers the spw is not bare: warned
    r = check_selection("0:229~232GHz", msinfo(10), lambda t: [[0, 0, 9, 1]])
    assert r.warnings == ["spw 0: every channel is selected"]


def test_the_empty_selection_with_an_ms_selects_every_channel():
    r = check_selection("  ", msinfo(10, 20), lambda t: pytest.fail("CASA is not asked about an empty selection"))
    assert r.problems == []
    assert r.selected == {0: [[0, 9, 1]], 1: [[0, 19, 1]]}
    assert r.nchan_selected == {0: 10, 1: 20} == r.nchan_total
    assert r.warnings == [f"the empty selection selects every channel of every spw: {EVERY}",
                          "spw 0: every channel is selected", "spw 1: every channel is selected"]


def test_casa_refusing_or_selecting_nothing():
    def refuse(text):
        raise RuntimeError("Spw Expression: No match found for 7\nmore detail")

    r = check_selection("BB_9", msinfo(10), refuse)
    assert r.problems == ["CASA's MSSelection refuses 'BB_9': Spw Expression: No match found for 7"]
    assert r.selected == {}
    r = check_selection("BB_9", msinfo(10, path="a.ms"), lambda t: [])
    assert r.problems == ["'BB_9' selects nothing in a.ms"] and r.selected == {}


def test_report_as_a_dictionary():
    r = check_selection("1:2~3,0:1", msinfo(10, 20), lambda t: [[1, 2, 3, 1], [0, 1, 1, 1]])
    assert r.to_dict() == {"selection": "1:2~3,0:1", "ok": True, "problems": [], "warnings": [],
                           "selected": {"0": [[1, 1, 1]], "1": [[2, 3, 1]]},
                           "nchan_selected": {"0": 1, "1": 2}, "nchan_total": {"0": 10, "1": 20}}
    assert parse_selection("0:9~5").to_dict()["ok"] is False


# ---- CASA's MSSelection on a tiny MS -------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_ms(tmp_path_factory):
    from almatools.testing import simulate_ms
    return simulate_ms(tmp_path_factory.mktemp("sel") / "t.ms", [("A", 230e9, 1e6, 16), ("B", 231e9, 1e6, 8)],
                       nant=2, duration_s=60.0, integration_s=60.0)


def test_casa_ms_select_is_msselection(tiny_ms):
    run = sel.casa_ms_select(str(tiny_ms))
    assert run("0:2~5;8~12^2,1") == [[0, 2, 5, 1], [0, 8, 12, 2], [1, 0, 7, 1]]
    assert run("1:3") == [[1, 3, 3, 1]]
    assert run("7") == []  # no such spw: MSSelection selects nothing (and warns)
    assert run("1:3") == [[1, 3, 3, 1]]  # the MS was closed and reopens
    with pytest.raises(RuntimeError):
        sel.casa_ms_select(str(tiny_ms) + ".missing")("0")


# ---- fitspec dictionaries ------------------------------------------------------------------------

def test_good_fitspec_dictionaries():
    spec = {"0": {"0": {"chan": "5~9;20~30", "fitorder": 1}, " 0 , 1 ": {"chan": "", "fitorder": 0}},
            "0,1": "NONE", "1": " none ", "2": {"1": {"chan": "3"}, "0": {}}}
    assert check_fitspec_dict(spec) == []
    assert check_fitspec_dict(spec, msinfo(40, 20, fields=(0, 1, 2))) == []


@pytest.mark.parametrize("spec, problem", [
    ({"a": "NONE"}, "field key 'a' is not a field id or comma-separated ids"),
    ({"0,": "NONE"}, "field key '0,' is not a field id or comma-separated ids"),
    ({"0": "all"}, "field '0': a string entry must be 'NONE', got 'all'"),
    ({"0": [1]}, "field '0': expected a dictionary of spws, got list"),
    ({"0": {"x": {}}}, "field '0': spw key 'x' is not a spw id or comma-separated ids"),
    ({"0": {"1": []}}, "field '0' spw '1': expected {'chan': str, 'fitorder': int}, got []"),
    ({"0": {"1": {"chan": "1", "order": 1}}},
     "field '0' spw '1': expected {'chan': str, 'fitorder': int}, got {'chan': '1', 'order': 1}"),
    ({"0": {"1": {"fitorder": -1}}}, "field '0' spw '1': fitorder must be an integer >= 0, got -1"),
    ({"0": {"1": {"fitorder": True}}}, "field '0' spw '1': fitorder must be an integer >= 0, got True"),
    ({"0": {"1": {"fitorder": 1.0}}}, "field '0' spw '1': fitorder must be an integer >= 0, got 1.0"),
    ({"0": {"1": {"chan": 5}}}, "field '0' spw '1': chan must be a string, got 5"),
    ({"0": {"1": {"chan": "9~5"}}}, "field '0': '1:9~5': the channel range 9~5 is reversed (start 9 > end 5); CASA "
                                    "refuses it — did you mean 5~9?"),
])
def test_fitspec_problems(spec, problem):
    assert check_fitspec_dict(spec) == [problem]


def test_fitspec_problems_go_on_past_the_first():
    spec = {"a": "NONE", "0": "x", "4": [1],
            "1": {"y": {}, "5": [], "6": {"chan": 5}, "2": {"chan": "1~2", "fitorder": -2}, "7": {"chan": "3~1"}},
            "3": {"1": {"chan": "7"}}}
    assert check_fitspec_dict(spec) == [
        "field key 'a' is not a field id or comma-separated ids",
        "field '0': a string entry must be 'NONE', got 'x'",
        "field '4': expected a dictionary of spws, got list",
        "field '1': spw key 'y' is not a spw id or comma-separated ids",
        "field '1' spw '5': expected {'chan': str, 'fitorder': int}, got []",
        "field '1' spw '6': chan must be a string, got 5",
        "field '1' spw '2': fitorder must be an integer >= 0, got -2",
        "field '1': '7:3~1': the channel range 3~1 is reversed (start 3 > end 1); CASA refuses it — did you "
        "mean 1~3?"]


def test_fitspec_against_the_ms():
    info = msinfo(10, 20, path="m.ms", fields=(0, 1))
    spec = {"0,5": {"0,1": {"chan": "0~15", "fitorder": 1}, "2": {"chan": "", "fitorder": 0}}}
    assert check_fitspec_dict(spec, info) == [
        "field 5 (key '0,5') is not in m.ms",
        "field '0,5': '0:0~15': channel 15 is beyond the last channel (9) of spw 0; CASA would silently clip the "
        "range to 0~9",
        "field '0,5': '2': spw 2 is not in m.ms (it has spws 0,1)"]


def test_format_channel_ranges():
    assert sel.format_channel_ranges([(55, 119), (16, 48), (3, 3)]) == "55~119;16~48;3"
    assert sel.format_channel_ranges([]) == ""
