"""frameconv against CASA itself (measures, ms.cvelfreqs, advisechansel, mstransform, uvcontsub)
and astropy, on MSs simulated here."""

import math
import os

import numpy as np
import pytest

from almatools.errors import TaskParameterError

pytestmark = pytest.mark.casa

C = 299792458.0
DIR = ("J2000", "04h33m52.0s", "22d50m30.0s")
DIRSTR = " ".join(DIR)
BB1 = "X1#ALMA_RB_06#BB_1#SW-01#FULL_RES"
BB2 = "X1#ALMA_RB_06#BB_2#SW-01#FULL_RES"
SPWS = [(BB1, 230.0e9, -0.5e6, 128), (BB2, 232.0e9, 1.0e6, 64)]


def _simulate(path, spws, refdate):
    # these tests need named spws in a chosen order, negative channel widths and dates months apart
    from almatools.testing import simulate_ms
    return simulate_ms(path, spws, field="TGT", direction=DIR, refdate=refdate, duration_s=1800.0,
                       integration_s=60.0)


@pytest.fixture(scope="session")
def mss(tmp_path_factory):
    d = tmp_path_factory.mktemp("frameconv")
    a = _simulate(d / "eb_a.ms", SPWS, "2024/11/15/00:00:00")
    # same spw names in the opposite order, tuned 20 MHz lower: months later the observatory's motion
    # moves the LSRK band by ~+22 MHz at this direction, and ALMA tunes each EB to keep the LSRK setup
    b = _simulate(d / "eb_b.ms", [(n, f - 20e6, w, c) for n, f, w, c in SPWS[::-1]], "2025/04/20/00:00:00")
    return a, b


@pytest.fixture(scope="module")
def ct():
    from almatools.casaenv import casatools
    return casatools()


@pytest.fixture
def me(ct):
    tool = ct.measures()
    yield tool
    tool.done()


def _fc(**kw):
    from almatools.casa_tasks import frameconv
    return frameconv(**kw)


def _per_point(me, ct, f_hz, t_s, inframe, outframe, obs="ALMA"):
    qa = ct.quanta()
    me.doframe(me.observatory(obs))
    me.doframe(me.direction(*DIR))
    me.doframe(me.epoch("UTC", qa.quantity(t_s, "s")))
    return me.measure(me.frequency(inframe, qa.quantity(f_hz, "Hz")), outframe)["m0"]["value"]


# --------------------------------------------------------------------------- values mode

@pytest.mark.parametrize("inframe, outframe", [("TOPO", "GEO"), ("TOPO", "BARY"), ("TOPO", "LSRK"), ("TOPO", "LSRD"),
                                               ("TOPO", "GALACTO"), ("TOPO", "LGROUP"), ("TOPO", "CMB"),
                                               ("LSRK", "TOPO"), ("BARY", "LSRK")])
def test_values_equal_a_per_point_me_measure_loop(inframe, outframe, me, ct):
    freqs = [84.1, 230.0, 345.796]
    r = _fc(mode="values", values=freqs, unit="GHz", inframe=inframe, outframe=outframe,
            epoch="2024/11/15/05:00:00~2024/11/15/09:00:00", ntimes=3, direction=DIRSTR)
    got = np.array(r["frequency_hz"])
    assert got.shape == (3, 3)
    t0 = 60629.0 + 5 / 24
    for i, t in enumerate(np.array([t0, t0 + 2 / 24, t0 + 4 / 24]) * 86400):
        for j, f in enumerate(freqs):
            want = _per_point(me, ct, f * 1e9, t, inframe, outframe)
            assert abs(got[i, j] - want) < 1e-3, (i, j, got[i, j] - want)  # far below the 1 Hz required
    assert r["times"][0] == "2024-11-15T05:00:00.000"


def test_rest_frame_uses_the_source_velocity(me, ct):
    qa = ct.quanta()
    r = _fc(mode="values", values=[230.0], inframe="TOPO", outframe="REST", epoch="2024/11/15/05:33:44",
            direction=DIRSTR, sysvel="LSRK 10km/s")
    me.doframe(me.observatory("ALMA"))
    me.doframe(me.direction(*DIR))
    me.doframe(me.epoch("utc", "2024/11/15/05:33:44"))
    me.doframe(me.radialvelocity("LSRK", qa.quantity(10, "km/s")))
    want = me.measure(me.frequency("TOPO", qa.quantity(230e9, "Hz")), "REST")["m0"]["value"]
    assert abs(r["frequency_hz"][0][0] - want) < 1e-3
    # and it is the relativistic Doppler shift of the LSRK frequency
    lsrk = _per_point(me, ct, 230e9, 60629.0 * 86400 + 5 * 3600 + 33 * 60 + 44, "TOPO", "LSRK")
    b = 1e4 / C
    assert r["frequency_hz"][0][0] == pytest.approx(lsrk * math.sqrt((1 + b) / (1 - b)), abs=1e-2)
    with pytest.raises(TaskParameterError, match="sysvel"):
        _fc(mode="values", values=[230.0], outframe="REST", epoch="2024/11/15/05:33:44", direction=DIRSTR)


@pytest.mark.parametrize("doppler", ["RADIO", "OPTICAL", "Z", "BETA", "RELATIVISTIC", "TRUE", "RATIO", "GAMMA"])
def test_velocity_conventions_against_their_formulas_and_casa(doppler, me, ct):
    qa = ct.quanta()
    f0 = 230.538e9
    v = {"RATIO": [0.9999e3 * C / 1e3], "GAMMA": [1.00005 * C / 1e3]}.get(doppler, [-25.0, 0.0, 1234.5])
    r = _fc(mode="values", values=v, unit="km/s", doppler=doppler, restfreq="230.538GHz", inframe="LSRK",
            outframe="LSRK", outunit="Hz", epoch="2024/11/15/05:33:44", direction=DIRSTR)
    got = np.array(r["values"][0])
    beta = np.array(v) * 1e3 / C
    formula = {"RADIO": lambda: f0 * (1 - beta), "OPTICAL": lambda: f0 / (1 + beta), "Z": lambda: f0 / (1 + beta),
               "BETA": lambda: f0 * np.sqrt((1 - beta) / (1 + beta)),
               "TRUE": lambda: f0 * np.sqrt((1 - beta) / (1 + beta)),
               "RELATIVISTIC": lambda: f0 * np.sqrt((1 - beta) / (1 + beta)), "RATIO": lambda: f0 * beta,
               "GAMMA": lambda: f0 * (beta - np.sqrt(beta ** 2 - 1))}[doppler]()
    np.testing.assert_allclose(got, formula, rtol=1e-12)
    if doppler not in ("RATIO", "GAMMA"):  # CASA's MDoppler takes these as dimensionless ratios
        for vi, fi in zip(v, got):
            casa = me.tofrequency("LSRK", me.doppler(doppler, qa.quantity(vi, "km/s")), qa.quantity(f0, "Hz"))
            assert casa["m0"]["value"] == pytest.approx(fi, rel=1e-12)
    back = _fc(mode="values", values=list(got), unit="Hz", doppler=doppler, restfreq="230.538GHz", inframe="LSRK",
               outframe="LSRK", outunit="km/s", epoch="2024/11/15/05:33:44", direction=DIRSTR)
    np.testing.assert_allclose(back["values"][0], v, rtol=1e-9, atol=1e-9)


def test_velocity_across_frames_matches_casa(me, ct):
    """-25 km/s RADIO LSRK for CO(2-1) → TOPO frequency, as me.tofrequency + me.measure do it."""
    qa = ct.quanta()
    r = _fc(mode="values", values=[-25.0], unit="km/s", doppler="RADIO", restfreq="230.538GHz", inframe="LSRK",
            outframe="TOPO", outunit="GHz", epoch="2024/11/15/05:33:44", direction=DIRSTR)
    f_lsrk = me.tofrequency("LSRK", me.doppler("RADIO", qa.quantity(-25, "km/s")), qa.quantity(230.538, "GHz"))
    me.doframe(me.observatory("ALMA"))
    me.doframe(me.direction(*DIR))
    me.doframe(me.epoch("utc", "2024/11/15/05:33:44"))
    want = me.measure(f_lsrk, "TOPO")["m0"]["value"]
    assert abs(r["values"][0][0] * 1e9 - want) < 1e-3


@pytest.mark.parametrize("frame, astropy_frame", [("GEO", "gcrs"), ("BARY", "icrs"), ("LSRK", "lsrk"), ("LSRD", "lsrd")])
def test_agrees_with_astropy_spectralcoord_within_1_m_s(frame, astropy_frame, me, ct):
    import warnings
    import astropy.units as u
    from astropy.coordinates import EarthLocation, SkyCoord, SpectralCoord
    from astropy.time import Time
    pos = me.measure(me.observatory("ALMA"), "ITRF")  # spherical: lon, lat (rad), radius (m)
    lon, lat, rad = pos["m0"]["value"], pos["m1"]["value"], pos["m2"]["value"]
    loc = EarthLocation.from_geocentric(rad * math.cos(lat) * math.cos(lon), rad * math.cos(lat) * math.sin(lon),
                                        rad * math.sin(lat), unit=u.m)
    when = "2024-11-15T05:33:44"
    r = _fc(mode="values", values=[230.0], inframe="TOPO", outframe=frame, epoch=when, direction=DIRSTR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc = SpectralCoord(230 * u.GHz, observer=loc.get_itrs(obstime=Time(when, scale="utc")),
                           target=SkyCoord("04h33m52.0s", "22d50m30.0s", frame="fk5", equinox="J2000"))
        ap = sc.with_observer_stationary_relative_to(astropy_frame).to_value(u.Hz)
    dv = (r["frequency_hz"][0][0] - ap) / 230e9 * C
    assert abs(dv) < 1.0, f"{frame}: {dv:.3f} m/s"


def test_values_errors_name_the_parameter():
    with pytest.raises(TaskParameterError, match="epoch"):
        _fc(mode="values", values=[230.0], direction=DIRSTR)
    with pytest.raises(TaskParameterError, match="direction"):
        _fc(mode="values", values=[230.0], epoch="2024/11/15/05:33:44")
    with pytest.raises(TaskParameterError, match="restfreq"):
        _fc(mode="values", values=[10.0], unit="km/s", epoch="2024/11/15/05:33:44", direction=DIRSTR)
    with pytest.raises(TaskParameterError, match="observatory"):
        _fc(mode="values", values=[230.0], epoch="2024/11/15/05:33:44", direction=DIRSTR, observatory="Nowhere")
    with pytest.raises(TaskParameterError, match="epoch"):
        _fc(mode="values", values=[230.0], epoch="yesterday", direction=DIRSTR)
    with pytest.raises(TaskParameterError, match="outframe"):
        _fc(mode="values", values=[230.0], outframe="LSRX")


def test_other_observatory_and_coordinates(me, ct):
    r1 = _fc(mode="values", values=[230.0], epoch="2024/11/15/05:33:44", direction=DIRSTR, observatory="VLA",
             outframe="GEO")
    qa = ct.quanta()
    me.doframe(me.observatory("VLA"))
    me.doframe(me.direction(*DIR))
    me.doframe(me.epoch("utc", "2024/11/15/05:33:44"))
    want = me.measure(me.frequency("TOPO", qa.quantity(230e9, "Hz")), "GEO")["m0"]["value"]
    assert abs(r1["frequency_hz"][0][0] - want) < 1e-3
    vla = me.measure(me.observatory("VLA"), "WGS84")
    r2 = _fc(mode="values", values=[230.0], epoch="2024/11/15/05:33:44", direction=DIRSTR, outframe="GEO",
             observatory=f"{math.degrees(vla['m0']['value'])},{math.degrees(vla['m1']['value'])},{vla['m2']['value']}")
    assert abs(r2["frequency_hz"][0][0] - want) < 0.5  # same place, written as WGS84 coordinates


# --------------------------------------------------------------------------- ms mode

@pytest.mark.parametrize("frame", ["LSRK", "BARY"])
def test_ms_mode_first_time_equals_cvelfreqs(mss, frame, ct):
    vis = str(mss[0])
    r = _fc(mode="ms", vis=vis, outframe=frame)
    ms = ct.ms()
    ms.open(vis)
    try:
        for spw in (0, 1):
            want = ms.cvelfreqs(spwids=[spw], fieldids=[0], outframe=frame)
            got = np.array(r["spws"][str(spw)]["freq_first_hz"])
            assert np.abs(got - want).max() < 1.0, np.abs(got - want).max()
    finally:
        ms.close()


def test_single_time_helper_equals_cvelfreqs(mss, ct):
    from almatools.plugins.frames.msmode import first_time_frequencies
    ms = ct.ms()
    ms.open(str(mss[1]))
    try:
        want = ms.cvelfreqs(spwids=[0], fieldids=[0], outframe="LSRK")
    finally:
        ms.close()
    assert np.abs(first_time_frequencies(str(mss[1]), 0, 0, "LSRK") - want).max() < 1.0


def test_ms_mode_equals_an_mstransform_regrid_to_lsrk(mss, tmp_path, ct):
    from casatasks import mstransform
    vis = str(mss[1])
    out = str(tmp_path / "regrid.ms")
    mstransform(vis=vis, outputvis=out, spw="1", regridms=True, outframe="LSRK", datacolumn="data")
    tb = ct.table()
    tb.open(os.path.join(out, "SPECTRAL_WINDOW"))
    want = tb.getcell("CHAN_FREQ", 0)
    ref = tb.getcell("MEAS_FREQ_REF", 0)
    tb.close()
    assert ref == 1  # LSRK
    got = np.array(_fc(mode="ms", vis=vis, spw="1", outframe="LSRK")["spws"]["1"]["freq_first_hz"])
    assert np.abs(got - want).max() < 1.0


def test_ms_mode_drift_table_and_plot(mss, tmp_path, me, ct):
    vis = str(mss[0])
    table, plot = str(tmp_path / "drift.ecsv"), str(tmp_path / "drift.png")
    r = _fc(mode="ms", vis=vis, field="TGT", spw="0", outfile=table, plotfile=plot)
    s = r["spws"]["0"]
    tb = ct.table()
    tb.open(vis)
    t = np.unique(tb.query("DATA_DESC_ID==0").getcol("TIME"))
    tb.close()
    assert s["ntimes"] == t.size
    f_first = _per_point(me, ct, 230e9, t[0], "TOPO", "LSRK")
    f_last = _per_point(me, ct, 230e9, t[-1], "TOPO", "LSRK")
    assert s["freq_min_hz"][0] == pytest.approx(min(f_first, f_last), abs=1e-3)
    assert s["freq_max_hz"][0] == pytest.approx(max(f_first, f_last), abs=1e-3)
    assert s["drift_channels_max"] == pytest.approx(abs(f_last - f_first) / 0.5e6 * (230e9 + 0) / 230e9, rel=1e-3)
    from astropy.table import Table
    tab = Table.read(table, format="ascii.ecsv")
    assert len(tab) == 128 and tab["freq_lsrk_min"].unit == "Hz"
    np.testing.assert_allclose(tab["freq_lsrk_max"], s["freq_max_hz"], rtol=0, atol=1e-3)
    times = Table.read(r["timesfile"], format="ascii.ecsv")
    assert r["timesfile"].endswith("drift.times.ecsv") and len(times) == t.size
    assert times["freq_lsrk_first_channel"][-1] == pytest.approx(f_last, abs=1e-3)
    np.testing.assert_allclose(times["freq_lsrk_last_channel"], times["factor"] * (230e9 - 127 * 0.5e6), rtol=1e-15)
    with open(plot, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(TaskParameterError, match="overwrite"):
        _fc(mode="ms", vis=vis, spw="0", outfile=table)
    _fc(mode="ms", vis=vis, spw="0", outfile=table, overwrite=True)


# --------------------------------------------------------------------------- cont.dat → channel selections

def _ranges(spw, rng, n):
    """n random ranges (up to 25 channels wide) around and across a spw (name, f0, df, nchan)."""
    out = []
    f, w, nch = spw[1], abs(spw[2]), spw[3]
    lo_all, hi_all = min(f, f + spw[2] * (nch - 1)), max(f, f + spw[2] * (nch - 1))
    for _ in range(n):
        lo = lo_all - 3e6 + rng.random() * (hi_all - lo_all + 6e6)
        out.append((lo, lo + rng.random() * 25 * w))
    return out


def test_overlap_rule_reproduces_advisechansel(mss):
    from almatools.plugins.frames.chansel import range_to_channels
    from almatools.plugins.frames.msinfo import read_msinfo
    rng = np.random.default_rng(42)
    compared = 0
    for vis in mss:
        info = read_msinfo(str(vis))
        for sid, spw in info.spws.items():
            spec = next(s for s in SPWS if s[0] == spw.name)
            for lo, hi in _ranges(spec, rng, 12):
                for frame in ("LSRK", "BARY"):
                    ours = range_to_channels(info, 0, sid, lo, hi, frame, "overlap")
                    casa = range_to_channels(info, 0, sid, lo, hi, frame, "advisechansel")
                    assert ours.chans == casa.chans, (vis, sid, lo, hi, frame)
                    compared += ours.chans is not None
    assert compared > 40  # most ranges overlap their spw


def test_domain_example_partial_channels(mss):
    """An LSRK window 10–20 MHz above the spw's lowest LSRK channel: partly covered channels are in."""
    from almatools.plugins.frames.chansel import range_to_channels
    from almatools.plugins.frames.msinfo import read_msinfo
    info = read_msinfo(str(mss[0]))
    low = min(_fc(mode="ms", vis=str(mss[0]), spw="0")["spws"]["0"]["freq_first_hz"])
    over = range_to_channels(info, 0, 0, low + 10e6, low + 20e6, "LSRK", "overlap")
    inside = range_to_channels(info, 0, 0, low + 10e6, low + 20e6, "LSRK", "inside")
    casa = range_to_channels(info, 0, 0, low + 10e6, low + 20e6, "LSRK", "advisechansel")
    assert over.chans == casa.chans
    assert over.chans[1] - over.chans[0] + 1 == 21  # 20 whole channels + the partial ones
    assert over.chans[0] < inside.chans[0] and inside.chans[1] < over.chans[1]


CONTDAT = """Field: TGT

SpectralWindow: 25 {bb1}
Flags: LOWBANDWIDTH
229.9500000000~229.9600000000GHz LSRK
229.9700000000~229.9900000000GHz LSRK
231.5~231.6GHz LSRK

SpectralWindow: 27 {bb2}
232.0100000000~232.0300000000GHz LSRK

SpectralWindow: 29 X1#ALMA_RB_06#BB_3#SW-01#FULL_RES
NONE

Field: NOT_OBSERVED

SpectralWindow: 25 {bb1}
229.95~229.96GHz LSRK
""".format(bb1=BB1, bb2=BB2)


@pytest.fixture
def contfile(tmp_path):
    p = tmp_path / "cont.dat"
    p.write_text(CONTDAT)
    return str(p)


def test_contdat_to_fitspec_matches_spws_by_name_per_ms(mss, contfile):
    r = _fc(mode="contdat", contfile=contfile, vis=[str(m) for m in mss])
    assert r["version"] == 3
    a, b = (r["ms"][str(m)] for m in mss)
    # EB b lists the spws in the opposite order: names map cont.dat spw 25 to MS spw 1 there
    assert set(a["fields"]["TGT"]["spws"]) == {"0", "1"} and set(b["fields"]["TGT"]["spws"]) == {"0", "1"}
    assert a["fields"]["TGT"]["spws"]["0"]["cont_spw"] == 25 and b["fields"]["TGT"]["spws"]["1"]["cont_spw"] == 25
    # months apart, the same LSRK ranges land on different TOPO channels
    assert a["fields"]["TGT"]["spws"]["0"]["chan"] != b["fields"]["TGT"]["spws"]["1"]["chan"]
    assert a["fitspec"] == f"0:{a['fields']['TGT']['spws']['0']['chan']},1:{a['fields']['TGT']['spws']['1']['chan']}"
    assert a["fitspec_dict"] == {"0": {"0": {"chan": a["fields"]["TGT"]["spws"]["0"]["chan"], "fitorder": 1},
                                       "1": {"chan": a["fields"]["TGT"]["spws"]["1"]["chan"], "fitorder": 1}}}
    assert a["fitspw"] == a["fitspec"]
    assert a["fitspw_freq"].startswith("0:229.9") and "GHz" in a["fitspw_freq"]
    # reported, not dropped: the unobserved field, the spw the MSs lack, the range outside its spw
    missing = " | ".join(r["missing"])
    assert "NOT_OBSERVED" in missing and "BB_3" in missing and "231.5000000000~231.6000000000GHz LSRK" in missing
    assert len(r["missing"]) == 6  # three per MS
    assert a["fields"]["TGT"]["not_in_contdat"] == []
    # CASA's own advisechansel gives the same selections
    r2 = _fc(mode="contdat", contfile=contfile, vis=[str(m) for m in mss], partial="advisechansel")
    for m in mss:
        assert r2["ms"][str(m)]["fitspec"] == r["ms"][str(m)]["fitspec"]


def test_contdat_on_a_concatenated_ms_selects_every_eb(mss, contfile, tmp_path):
    """concat keeps one spw per EB (their TOPO tunings differ) under the same name: each gets its channels."""
    from casatasks import concat
    cvis = str(tmp_path / "concat.ms")
    concat(vis=[str(m) for m in mss], concatvis=cvis)
    single = _fc(mode="contdat", contfile=contfile, vis=[str(m) for m in mss])["ms"]
    r = _fc(mode="contdat", contfile=contfile, vis=[cvis])["ms"][cvis]
    spws = r["fields"]["TGT"]["spws"]
    assert len(spws) == 4
    names = {sid: s["name"] for sid, s in spws.items()}
    assert sorted(names.values()) == sorted([BB1, BB1, BB2, BB2])
    # CASA's rule uses every time of the field, so in the concatenated MS each EB's spw gets at least
    # the channels it had alone (concat keeps EB a's spws 0,1 and appends EB b's 0,1 as 2,3)
    def chans(text):
        return {c for part in text.split(";") for c in range(int(part.split("~")[0]), int(part.split("~")[-1]) + 1)}
    for cid, (vis, sid) in {"0": (mss[0], "0"), "1": (mss[0], "1"), "2": (mss[1], "0"), "3": (mss[1], "1")}.items():
        alone = single[str(vis)]["fields"]["TGT"]["spws"][sid]
        assert names[cid] == alone["name"]
        assert chans(spws[cid]["chan"]) >= chans(alone["chan"])
    assert r["fitspec"].count(":") == 4


def test_contdat_v2_raw_ids_and_unknown_spw(mss, tmp_path):
    p = tmp_path / "v2.dat"
    p.write_text("Field: TGT\n\nSpectralWindow: 1\n232.0100~232.0300GHz LSRK\n\nSpectralWindow: 7\n"
                 "229.95~229.96GHz LSRK\n\nSpectralWindow: 0\nALL\n")
    r = _fc(mode="contdat", contfile=str(p), vis=[str(mss[0])])
    res = r["ms"][str(mss[0])]
    assert res["fitspec"].startswith("0,1:")  # ALL: every channel of spw 0
    assert any("no spw 7" in m for m in r["missing"])
    assert res["fields"]["TGT"]["not_in_contdat"] == []
    p.write_text("Field: TGT\nSpectralWindow: 1\n232.0100~232.0300GHz LSRK\n")
    only1 = _fc(mode="contdat", contfile=str(p), vis=[str(mss[0])])["ms"][str(mss[0])]["fields"]["TGT"]
    assert only1["not_in_contdat"] == [f"spw 0 ({BB1})"]


def test_contdat_topo_v1_ranges_are_direct(mss, tmp_path):
    p = tmp_path / "v1.dat"
    p.write_text("TGT\nSPW0\n229.9480~229.9580GHz\n")
    r = _fc(mode="contdat", contfile=str(p), vis=[str(mss[0])])
    # TOPO ranges in a TOPO MS: channels whose edges overlap the range (centres 229.9485..229.9575 → 85~104)
    assert r["ms"][str(mss[0])]["fields"]["TGT"]["spws"]["0"]["chan"] == "84~104"


def test_malformed_contdat_via_the_task_names_the_line(tmp_path, mss):
    from almatools.plugins.frames.contdat import ContDatError
    p = tmp_path / "bad.dat"
    p.write_text("Field: TGT\nSpectralWindow: 0\n229.95~229.96GHz LSRK\n229.97 229.99GHz LSRK\n")
    with pytest.raises(ContDatError, match=r"bad.dat, line 4"):
        _fc(mode="contdat", contfile=str(p), vis=[str(mss[0])])


def test_round_trip_lsrk_channels_lsrk_within_one_channel(mss, contfile, tmp_path):
    from almatools.plugins.frames.contdat import read_contdat
    cd = read_contdat(contfile)
    for vis in mss:
        r = _fc(mode="contdat", contfile=contfile, vis=[str(vis)])
        res = r["ms"][str(vis)]
        drift = _fc(mode="ms", vis=str(vis))["spws"]
        out = str(tmp_path / f"{os.path.basename(str(vis))}.cont.dat")
        back = _fc(mode="tocontdat", vis=str(vis), fitspec=res["fitspec"], outfile=out)
        bd = read_contdat(out)
        for sid, sres in res["fields"]["TGT"]["spws"].items():
            width = 0.5e6 if "BB_1" in sres["name"] else 1.0e6
            tol = width + 2 * drift[sid]["drift_hz_max"] + 100.0
            orig = [r for r in cd.field("TGT").spw(sres["cont_spw"]).ranges if sres["ranges"] and
                    any(e["chans"] and e["range"] == r.as_text() for e in sres["ranges"])]
            got = bd.field("TGT").spw(int(sid)).ranges
            assert len(orig) == len(got)
            # the spw's LSRK coverage over the observation: a range is only kept where the spw has channels
            cov_lo = min(drift[sid]["freq_min_hz"]) - width / 2
            cov_hi = max(drift[sid]["freq_max_hz"]) + width / 2
            for o, g in zip(sorted(orig, key=lambda x: x.lo_hz), sorted(got, key=lambda x: x.lo_hz)):
                lo, hi = max(o.lo_hz, cov_lo), min(o.hi_hz, cov_hi)
                assert g.frame == "LSRK"
                assert g.lo_hz <= lo and g.hi_hz >= hi  # the channels cover the range
                assert lo - g.lo_hz <= tol and g.hi_hz - hi <= tol  # by at most one channel (+drift)
        assert back["outfile"] == out
        with pytest.raises(TaskParameterError, match="overwrite"):
            _fc(mode="tocontdat", vis=str(vis), fitspec=res["fitspec"], outfile=out)


@pytest.mark.slow
def test_selections_are_accepted_by_uvcontsub(mss, contfile, tmp_path):
    from casatasks import uvcontsub, uvcontsub_old
    vis = str(mss[0])
    res = _fc(mode="contdat", contfile=contfile, vis=[vis])["ms"][vis]
    for i, spec in enumerate((res["fitspec"], res["fitspec_dict"])):
        out = str(tmp_path / f"sub{i}.ms")
        uvcontsub(vis=vis, outputvis=out, fitspec=spec, fitorder=1)
        assert os.path.isdir(out)
    import shutil
    work = tmp_path / "old"
    work.mkdir()
    copy = str(work / "eb.ms")
    shutil.copytree(vis, copy)
    cwd = os.getcwd()
    try:
        os.chdir(work)
        uvcontsub_old(vis=copy, field="TGT", fitspw=res["fitspw_freq"], fitorder=1)
        assert os.path.isdir(copy + ".contsub")
        shutil.rmtree(copy + ".contsub")
        uvcontsub_old(vis=copy, field="TGT", fitspw=res["fitspw"], fitorder=1)
        assert os.path.isdir(copy + ".contsub")
    finally:
        os.chdir(cwd)


# --------------------------------------------------------------------------- selection check

def test_selection_mode_reports_what_casa_selects(mss, ct):
    vis = str(mss[0])
    r = _fc(mode="selection", fitspec="0:10~20;40~50^2,1", vis=vis)
    assert r["ok"] and r["selected"] == {"0": [[10, 20, 1], [40, 50, 2]], "1": [[0, 63, 1]]}
    assert r["nchan_selected"] == {"0": 17, "1": 64}
    assert any("every channel of spw 1" in w for w in r["warnings"])
    f = _fc(mode="selection", fitspec="0:229.948~229.958GHz", vis=vis)
    assert f["selected"] == {"0": [[85, 104, 1]]}  # CASA's own MSSelection answer (DOMAIN §4.3)


@pytest.mark.parametrize("text, words", [
    ("0:3821~2839", "reversed"),
    ("<your channel selection here>", "placeholder"),
    ("0:100~200", "beyond the last channel (127)"),
    ("0:10~20,5", "spw 5 is not in"),
    ("0:10~20;zz", "not a channel range"),
])
def test_selection_mode_refuses_what_cannot_be_right(mss, text, words):
    with pytest.raises(TaskParameterError, match="fitspec") as err:
        _fc(mode="selection", fitspec=text, vis=str(mss[0]))
    assert words in str(err.value)


def test_selection_mode_dictionary(mss):
    ok = _fc(mode="selection", fitspec={"0": {"0,1": {"chan": "5~20", "fitorder": 1}}}, vis=str(mss[0]))
    assert ok["ok"]
    with pytest.raises(TaskParameterError, match="spw 3 is not in"):
        _fc(mode="selection", fitspec={"0": {"3": {"chan": "5~20", "fitorder": 1}}}, vis=str(mss[0]))


# --------------------------------------------------------------------------- demo step

@pytest.mark.parametrize("mous_contdat", [None, "Field: TW_Hya\n\nSpectralWindow: 25\n229.95~229.96GHz LSRK\n\n"
                                               "SpectralWindow: 27\nNONE\n"])
def test_demo_step_turns_the_contdat_into_fitspec_and_plots(tmp_path, mous_contdat):
    from almatools.demo import DemoContext
    from almatools.plugins.frames import _demo
    lines = []
    ctx = DemoContext(workdir=tmp_path, echo=lines.append)
    if mous_contdat:  # a Member OUS whose cont.dat has raw spw ids and no names
        ctx.mous = tmp_path / "mous"
        (ctx.mous / "calibration").mkdir(parents=True)
        (ctx.mous / "calibration" / "uid___A001_X1_X2.cont.dat").write_text(mous_contdat)
    _demo.run_demo(ctx)
    text = "\n".join(lines)
    first = "'0:" if mous_contdat is None else "'25:"
    assert text.count(f"uvcontsub fitspec = {first}") == 2 and "reported:" not in text
    with open(ctx.data["frameconv"]["plot"], "rb") as fh:
        assert fh.read(4) == b"\x89PNG"
    assert len(ctx.data["frameconv_ms"]) == 2


def test_default_field_is_the_science_target_by_intent(mss, tmp_path, ct):
    """A calibrator observed first must not become the default field."""
    import shutil
    vis = str(tmp_path / "intents.ms")
    shutil.copytree(str(mss[0]), vis)
    tb = ct.table()
    tb.open(os.path.join(vis, "FIELD"), nomodify=False)
    tb.copyrows(os.path.join(vis, "FIELD"), startrowin=0, nrow=1)
    tb.putcell("NAME", 1, "SCIENCE")
    tb.close()
    tb.open(os.path.join(vis, "STATE"), nomodify=False)
    tb.addrows(2 - tb.nrows())
    tb.putcol("OBS_MODE", np.array(["CALIBRATE_BANDPASS#ON_SOURCE", "OBSERVE_TARGET#ON_SOURCE"]))
    tb.close()
    tb.open(vis, nomodify=False)
    t, dd = tb.getcol("TIME"), tb.getcol("DATA_DESC_ID")
    late = t > np.median(t)
    tb.putcol("FIELD_ID", late.astype(np.int32))
    tb.putcol("STATE_ID", late.astype(np.int32))
    tb.close()
    r = _fc(mode="ms", vis=vis, spw="0")
    assert r["field"] == "SCIENCE"
    assert r["spws"]["0"]["ntimes"] == np.unique(t[late & (dd == 0)]).size  # only the target's times
    tc = _fc(mode="tocontdat", vis=vis, fitspec="0:10~20")
    assert list(tc["contdat"]) == ["SCIENCE"]
