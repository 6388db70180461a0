"""Frequency ranges ⇄ channel selections (plugins/frames/chansel.py) checked against CASA's own reading of them.

The oracle is CASA itself: ``synthesisutils.advisechansel`` (the channels a frequency range selects, and
with ``getfreqrange=True`` the frequencies a channel selection covers) on one small simulated MS, plus
hand-worked channel numbers for ranges that end exactly on a channel centre or edge.  In the MS's own
frame (TOPO) no conversion is involved, so those edge cases are exact in both CASA and the code.
"""

import dataclasses
import os
import shutil

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.casa

DIR = ("J2000", "04h33m52.0s", "22d50m30.0s")
# spw 0: 32 channels of 0.5 MHz going down from 230 GHz (negative width); spw 1: 16 of 1 MHz up from 232 GHz
F0, DF0, N0 = 230.0e9, -0.5e6, 32
F1, DF1, N1 = 232.0e9, 1.0e6, 16
SPECS = {0: (F0, DF0, N0), 1: (F1, DF1, N1)}


def centre0(k):
    return F0 + DF0 * k


def upper0(k):
    return centre0(k) + 0.25e6


def lower0(k):
    return centre0(k) - 0.25e6


CMIN, CMAX = centre0(31), centre0(0)  # lowest and highest channel centre of spw 0


@pytest.fixture(scope="session")
def chansel_ms(tmp_path_factory):
    from almatools.testing import simulate_ms
    d = tmp_path_factory.mktemp("chansel")
    return str(simulate_ms(d / "chansel.ms", [("A", F0, DF0, N0), ("B", F1, DF1, N1)], nant=2, field="TGT",
                           direction=DIR, duration_s=600.0, integration_s=60.0))


@pytest.fixture(scope="session")
def ephem_ms(chansel_ms, tmp_path_factory):
    """The same MS with its field turned into an ephemeris object (Ceres, from CASA's own ephemerides)."""
    import casadata
    from casatasks import fixplanets
    vis = str(tmp_path_factory.mktemp("chansel-ephem") / "ceres.ms")
    shutil.copytree(chansel_ms, vis)
    eph = os.path.join(casadata.datapath, "ephemerides", "JPL-Horizons", "Ceres_59214-62866dUTC_J2000.tab")
    fixplanets(vis=vis, field="TGT", fixuvw=False, direction=eph)
    return vis


@pytest.fixture(scope="session")
def info(chansel_ms):
    from almatools.plugins.frames.msinfo import read_msinfo
    return read_msinfo(chansel_ms)


def _su():
    from almatools.casaenv import casatools
    return casatools().synthesisutils()


def _casa_reply(vis, spw, lo, hi, frame, freqstep=100.0, **extra):
    su = _su()
    try:
        return su.advisechansel(msname=vis, fieldid=0, spwselection=str(spw), freqstart=float(lo), freqend=float(hi),
                                freqstep=float(freqstep), freqframe=frame, **extra)
    finally:
        su.done()


def _casa_chans(vis, spw, lo, hi, frame, freqstep=100.0, **extra):
    """CASA's channels of *spw* for one range: (start, stop) or None."""
    r = _casa_reply(vis, spw, lo, hi, frame, freqstep, **extra)
    got = [(int(st_), int(st_) + int(n) - 1) for s, st_, n in
           zip(np.atleast_1d(r.get("spw", [])), np.atleast_1d(r.get("start", [])), np.atleast_1d(r.get("nchan", [])))
           if int(s) == spw]
    assert len(got) <= 1, r
    return got[0] if got else None


def _casa_freqrange(vis, spw, a, b, frame):
    """CASA's frequency interval (Hz) covered by channels a~b of *spw* over the observation."""
    su = _su()
    try:
        r = su.advisechansel(msname=vis, fieldid=0, spwselection=f"{spw}:{a}~{b}", getfreqrange=True,
                             freqframe=frame)
    finally:
        su.done()
    return r["freqstart"]["value"], r["freqend"]["value"]


# --------------------------------------------------------------------------- overlap rule, exact edges (TOPO)

OVERLAP_EDGES = [
    # (what, lo, hi, freqstep, channels): freqstep/2 pads each side, so lo = x + 50 puts the interval's start on x
    ("covers the spw", CMIN - 1e6, CMAX + 1e6, 100.0, (0, 31)),
    ("starts just above the lowest centre", CMIN + 0.1e6, CMAX + 1e6, 100.0, (0, 31)),
    ("starts exactly on the lowest centre", CMIN + 50, CMAX + 1e6, 100.0, None),
    ("starts exactly on the highest centre", CMAX + 50, CMAX + 1e6, 100.0, None),
    ("ends exactly on the lowest centre", CMIN - 1e6, CMIN - 50, 100.0, None),
    ("ends exactly on the highest centre", CMIN - 1e6, CMAX - 50, 100.0, None),
    ("below the spw, ending inside channel 31 under its centre", CMIN - 1e6, CMIN - 0.1e6, 100.0, None),
    ("starts on channel 21's upper edge: 21 is out", upper0(21) + 50, centre0(10), 100.0, (10, 20)),
    ("ends on channel 10's lower edge: 10 is out", centre0(20), lower0(10) - 50, 100.0, (11, 20)),
    ("wholly above", 300e9, 301e9, 100.0, None),
    # the padding alone brings a channel in, or not
    ("padding reaches channel 21 (1 kHz step)", upper0(21) + 490, centre0(10), 1000.0, (10, 21)),
    ("padding misses channel 21 (1 kHz step)", upper0(21) + 510, centre0(10), 1000.0, (10, 20)),
    ("padding reaches channel 9 (1 kHz step)", centre0(12), lower0(9) - 490, 1000.0, (9, 12)),
    ("padding misses channel 9 (1 kHz step)", centre0(12), lower0(9) - 510, 1000.0, (10, 12)),
    ("no padding", upper0(21) + 1, lower0(9) - 1, 0.0, (10, 20)),
]


@pytest.mark.parametrize("what, lo, hi, freqstep, want", OVERLAP_EDGES, ids=[c[0] for c in OVERLAP_EDGES])
def test_overlap_rule_at_exact_edges_equals_casa(what, lo, hi, freqstep, want, info, chansel_ms):
    from almatools.plugins.frames.chansel import range_to_channels
    got = range_to_channels(info, 0, 0, lo, hi, "TOPO", "overlap", freqstep)
    assert got.chans == want
    assert _casa_chans(chansel_ms, 0, lo, hi, "TOPO", freqstep) == want
    # the MS-frame interval: the range padded by half a step each side (no conversion in TOPO)
    assert (got.ms_lo_hz, got.ms_hi_hz) == (lo - freqstep / 2, hi + freqstep / 2)
    assert (got.lo_hz, got.hi_hz, got.frame, got.notes) == (lo, hi, "TOPO", [])


@pytest.mark.parametrize("lo, hi, want", [
    (upper0(21) + 49.8, centre0(10), (10, 21)),  # 100 Hz step: start 0.2 Hz under channel 21's top edge
    (upper0(21) + 50.3, centre0(10), (10, 20)),  # ... 0.3 Hz above it
    (centre0(12), lower0(9) - 49.8, (9, 12)),
    (centre0(12), lower0(9) - 50.3, (10, 12)),
])
def test_default_freqstep_is_the_pipelines_100_hz(lo, hi, want, info, chansel_ms):
    from almatools.plugins.frames.chansel import range_to_channels
    got = range_to_channels(info, 0, 0, lo, hi, "TOPO")
    assert got.chans == want
    assert _casa_chans(chansel_ms, 0, lo, hi, "TOPO", freqstep=100.0) == want
    assert got.ms_lo_hz == pytest.approx(lo - 50.0, abs=1e-4) and got.ms_hi_hz == pytest.approx(hi + 50.0, abs=1e-4)


# --------------------------------------------------------------------------- inside rule, exact edges (TOPO)

@pytest.mark.parametrize("lo, hi, want", [
    (lower0(20), upper0(10), (10, 20)),  # edges exactly on the range's ends are inside
    (lower0(20) + 1, upper0(10), (10, 19)),
    (lower0(20), upper0(10) - 1, (11, 20)),
    (lower0(20) + 1, lower0(20) + 0.4e6, None),  # narrower than a channel
])
def test_inside_rule_at_exact_edges(lo, hi, want, info, chansel_ms):
    from almatools.plugins.frames.chansel import range_to_channels
    got = range_to_channels(info, 0, 0, lo, hi, "TOPO", "inside", freqstep=1000.0)
    assert got.chans == want
    assert (got.ms_lo_hz, got.ms_hi_hz) == (lo, hi)  # no padding in the inside rule
    if want:  # CASA's reading of the selected channels lies within the range, exactly
        f_lo, f_hi = _casa_freqrange(chansel_ms, 0, *want, "TOPO")
        assert lo <= f_lo and f_hi <= hi


def test_unknown_partial_rule_is_an_error(info):
    from almatools.plugins.frames.chansel import range_to_channels
    with pytest.raises(ValueError, match=r"unknown partial-channel rule 'edges'; known: overlap, advisechansel, inside"):
        range_to_channels(info, 0, 0, CMIN, CMAX, "TOPO", "edges")


# --------------------------------------------------------------------------- converted frames: properties

@st.composite
def _any_range(draw):
    """A range around and across a spw (up to 24 of its channels wide), anywhere from 3 MHz below to 3 MHz above."""
    spw = draw(st.sampled_from([0, 1]))
    f, df, n = SPECS[spw]
    lo_all, hi_all = min(f, f + df * (n - 1)), max(f, f + df * (n - 1))
    lo = lo_all - 3e6 + draw(st.floats(0, 1)) * (hi_all - lo_all + 6e6)
    return spw, draw(st.sampled_from(["LSRK", "BARY"])), lo, lo + draw(st.floats(0, 24)) * abs(df)


@given(case=_any_range())
def test_overlap_rule_equals_advisechansel_in_converted_frames(case, info, chansel_ms):
    from almatools.plugins.frames.chansel import range_to_channels
    spw, frame, lo, hi = case
    assert range_to_channels(info, 0, spw, lo, hi, frame).chans == _casa_chans(chansel_ms, spw, lo, hi, frame)


@given(spw=st.sampled_from([0, 1]), frame=st.sampled_from(["LSRK", "BARY"]), u=st.floats(0, 1), w=st.floats(2.5, 12))
def test_inside_rule_is_the_widest_run_casa_reads_within_the_range(spw, frame, u, w, info, chansel_ms):
    """Every chosen channel lies (over the whole observation, as CASA converts it) inside the range; the
    channels next to the run do not; and the run is part of what the overlap rule selects."""
    from almatools.plugins.frames.chansel import range_to_channels
    n, width = SPECS[spw][2], abs(SPECS[spw][1])
    s_lo, s_hi = _casa_freqrange(chansel_ms, spw, 0, n - 1, frame)
    lo = s_lo + u * (s_hi - s_lo - w * width)
    hi = lo + w * width
    got = range_to_channels(info, 0, spw, lo, hi, frame, "inside")
    assert got.chans is not None
    a, b = got.chans
    tol = 1.0  # Hz: CASA's and numpy's arithmetic differ by far less
    f_lo, f_hi = _casa_freqrange(chansel_ms, spw, a, b, frame)
    assert lo - tol <= f_lo and f_hi <= hi + tol
    for c in (a - 1, b + 1):
        if 0 <= c < n:
            c_lo, c_hi = _casa_freqrange(chansel_ms, spw, c, c, frame)
            assert not (lo + tol <= c_lo and c_hi <= hi - tol), c
    over = range_to_channels(info, 0, spw, lo, hi, frame, "overlap").chans
    assert over[0] <= a and b <= over[1]


# --------------------------------------------------------------------------- channels → frequencies

@given(spw=st.sampled_from([0, 1]), frame=st.sampled_from(["LSRK", "BARY", "TOPO"]), data=st.data())
def test_channels_to_ranges_equals_casa_getfreqrange(spw, frame, data, info, chansel_ms):
    from almatools.plugins.frames.chansel import channels_to_ranges
    n = SPECS[spw][2]
    a = data.draw(st.integers(0, n - 1))
    b = data.draw(st.integers(a, n - 1))
    c = data.draw(st.integers(0, n - 1))
    got = channels_to_ranges(info, [0], spw, [(a, b), (c, c)], frame)
    want = [_casa_freqrange(chansel_ms, spw, a, b, frame), _casa_freqrange(chansel_ms, spw, c, c, frame)]
    assert np.allclose(got, want, rtol=0, atol=1.0), (got, want)


@pytest.mark.parametrize("frame", ["LSRK", "BARY", "TOPO"])
@pytest.mark.parametrize("spw", [0, 1])
def test_spw_range_equals_casa_getfreqrange_of_the_whole_spw(spw, frame, info, chansel_ms):
    from almatools.plugins.frames.chansel import spw_range_hz
    want = _casa_freqrange(chansel_ms, spw, 0, SPECS[spw][2] - 1, frame)
    assert np.allclose(spw_range_hz(info, 0, spw, frame), want, rtol=0, atol=1.0)


@pytest.mark.parametrize("chans", [[(-1, 3)], [(5, 4)], [(0, 32)], [(31, 32)], [(2, 3), (40, 41)]])
def test_channels_outside_the_spw_are_an_error(chans, info):
    from almatools.plugins.frames.chansel import channels_to_ranges
    with pytest.raises(ValueError, match=r"channels -?\d+~\d+ are not inside spw 0 \(0~31\) of .*chansel\.ms"):
        channels_to_ranges(info, [0], 0, chans, "LSRK")


def test_single_channel_and_whole_spw_ends(info):
    """a == b and b == nchan - 1 are valid: in TOPO the interval is the channels' own edges."""
    from almatools.plugins.frames.chansel import channels_to_ranges
    got = channels_to_ranges(info, [0], 0, [(5, 5), (0, 31), (31, 31)], "TOPO")
    assert got == [(lower0(5), upper0(5)), (lower0(31), upper0(0)), (lower0(31), upper0(31))]


# --------------------------------------------------------------------------- fields, tools

def test_a_field_without_rows_is_an_error(info):
    from almatools.plugins.frames.chansel import channels_to_ranges, range_to_channels
    from almatools.plugins.frames.msinfo import FieldInfo
    two = dataclasses.replace(info, fields={**info.fields, 1: FieldInfo(1, "EMPTY", "J2000", 0.0, 0.0)},
                              _factor_cache={})
    with pytest.raises(ValueError, match=r"field 1 \(EMPTY\) has no rows in .*chansel\.ms"):
        range_to_channels(two, 1, 0, CMIN, CMAX, "TOPO")
    with pytest.raises(ValueError, match=r"field 1 \(EMPTY\) has no rows"):
        channels_to_ranges(two, [0, 1], 0, [(0, 3)], "LSRK")
    # the observed field still works in the same MS
    assert range_to_channels(two, 0, 0, CMIN - 1e6, CMAX + 1e6, "TOPO").chans == (0, 31)


def test_a_field_observed_once_is_enough(info):
    """One integration gives one time: the frame factor is still computed (TOPO: no conversion)."""
    from almatools.plugins.frames.chansel import range_to_channels
    t0 = info._time[0]
    once = dataclasses.replace(info, _time=info._time[info._time == t0], _field_id=info._field_id[info._time == t0],
                               _spw_of_row=info._spw_of_row[info._time == t0], _target_row=None, _factor_cache={})
    assert once.times(0).size == 1
    assert range_to_channels(once, 0, 0, upper0(21) + 50, centre0(10), "TOPO").chans == (10, 20)


class _Spy:
    """A measures tool that counts calls to done()."""

    def __init__(self, tool):
        self._tool, self.done_calls = tool, 0

    def done(self):
        self.done_calls += 1
        return self._tool.done()

    def __getattr__(self, name):
        return getattr(self._tool, name)


def test_a_callers_measures_tool_is_left_open(chansel_ms):
    from almatools.casaenv import casatools
    from almatools.plugins.frames.chansel import channels_to_ranges, range_to_channels, spw_range_hz
    from almatools.plugins.frames.msinfo import read_msinfo
    lo, hi = centre0(25), centre0(5)
    want = range_to_channels(read_msinfo(chansel_ms), 0, 0, lo, hi, "LSRK").chans
    assert want == _casa_chans(chansel_ms, 0, lo, hi, "LSRK")
    spy = _Spy(casatools().measures())
    try:
        fresh = read_msinfo(chansel_ms)  # no cached factors: the conversion goes through the caller's tool
        assert range_to_channels(fresh, 0, 0, lo, hi, "LSRK", me=spy).chans == want
        channels_to_ranges(read_msinfo(chansel_ms), [0], 0, [(0, 3)], "BARY", me=spy)
        spw_range_hz(read_msinfo(chansel_ms), 0, 1, "LSRK", me=spy)
        assert spy.done_calls == 0
    finally:
        spy.done()


# --------------------------------------------------------------------------- the advisechansel rule, SOURCE frame

def test_advisechansel_rule_keeps_the_spw_asked_for(info, chansel_ms):
    """CASA answers for every spw the range touches, whatever spw is selected: the asked one is kept."""
    from almatools.plugins.frames.chansel import range_to_channels
    lo, hi = centre0(20) + 0.1e6, F1 + 3.0e6  # channels 0~20 of spw 0 and 0~3 of spw 1
    reply = _casa_reply(chansel_ms, 1, lo, hi, "TOPO")
    assert list(np.atleast_1d(reply["spw"])) == [0, 1]  # spw 0 first, although spw 1 was asked for
    for spw, want in ((1, (0, 3)), (0, (0, 20))):
        got = range_to_channels(info, 0, spw, lo, hi, "TOPO", "advisechansel")
        assert got.chans == want
        assert got.notes == [] and got.ms_lo_hz is None
        assert range_to_channels(info, 0, spw, lo, hi, "TOPO", "overlap").chans == want
    assert range_to_channels(info, 0, 1, 300e9, 301e9, "TOPO", "advisechansel").chans is None


def test_source_frame_goes_to_casa_with_the_field_ephemeris(ephem_ms):
    from almatools.plugins.frames.chansel import range_to_channels
    from almatools.plugins.frames.msinfo import read_msinfo
    lo, hi = 229.97e9, 230.03e9
    want = _casa_chans(ephem_ms, 0, lo, hi, "SOURCE", ephemtable="TRACKFIELD")
    assert want == (0, 31)
    assert _casa_reply(ephem_ms, 0, lo, hi, "SOURCE") == {}  # without the ephemeris CASA selects nothing
    for partial in ("overlap", "inside", "advisechansel"):
        got = range_to_channels(read_msinfo(ephem_ms), 0, 0, lo, hi, "source", partial)
        assert got.frame == "SOURCE" and got.chans == want
        assert got.notes == ["SOURCE frame: channels from CASA's advisechansel with the field's ephemeris"]
