"""frameconv against CASA itself (measures, ms.cvelfreqs, advisechansel, mstransform, uvcontsub)
and astropy, on MSs simulated here."""

import math
import os
import re

import numpy as np
import pytest

from almatools.errors import ResourceLimitError, TaskParameterError

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


def _advisechansel_channels(vis, spw, lo_hz, hi_hz, frame="LSRK"):
    """CASA's own answer for one range: (start, stop) or None."""
    from almatools.casaenv import casatools
    su = casatools().synthesisutils()
    try:
        r = su.advisechansel(msname=str(vis), fieldid=0, spwselection=str(spw), freqstart=lo_hz, freqend=hi_hz,
                             freqstep=100.0, freqframe=frame)
    finally:
        su.done()
    for s, start, n in zip(np.atleast_1d(r["spw"]), np.atleast_1d(r["start"]), np.atleast_1d(r["nchan"])):
        if int(s) == spw and int(n) > 0:
            return int(start), int(start) + int(n) - 1
    return None


def test_contdat_to_fitspec_matches_spws_by_name_per_ms(mss, contfile):
    from almatools.plugins.frames.contdat import read_contdat
    r = _fc(mode="contdat", contfile=contfile, vis=[str(m) for m in mss])
    assert r["version"] == 3
    cd = read_contdat(contfile)
    for vis, spw_of_name in ((mss[0], {BB1: 0, BB2: 1}), (mss[1], {BB1: 1, BB2: 0})):  # EB b: opposite order
        res = r["ms"][str(vis)]
        # the expected selection from CASA's advisechansel, range by range, in the cont.dat's order
        expected = {}
        for cspw in cd.field("TGT").spws:
            if cspw.name not in spw_of_name:
                continue
            sid = spw_of_name[cspw.name]
            chans = [c for c in (_advisechansel_channels(vis, sid, rg.lo_hz, rg.hi_hz) for rg in cspw.ranges) if c]
            expected[sid] = ";".join(f"{a}~{b}" for a, b in dict.fromkeys(chans))
        assert {int(k): v["chan"] for k, v in res["fields"]["TGT"]["spws"].items()} == expected
        assert {int(k): v["cont_spw"] for k, v in res["fields"]["TGT"]["spws"].items()} == \
            {spw_of_name[BB1]: 25, spw_of_name[BB2]: 27}
        assert res["fitspec"] == ",".join(f"{sid}:{expected[sid]}" for sid in sorted(expected))
        assert res["fitspec_dict"] == {"0": {str(sid): {"chan": expected[sid], "fitorder": 1} for sid in expected}}
        assert res["fitspw"] == res["fitspec"]
        assert res["fields"]["TGT"]["not_in_contdat"] == []
    # months apart, the same LSRK ranges land on different TOPO channels
    assert r["ms"][str(mss[0])]["fields"]["TGT"]["spws"]["0"]["chan"] != \
        r["ms"][str(mss[1])]["fields"]["TGT"]["spws"]["1"]["chan"]
    # reported, not dropped: the unobserved field, the spw the MSs lack, the range outside its spw
    missing = " | ".join(r["missing"])
    assert "NOT_OBSERVED" in missing and "BB_3" in missing and "231.5000000000~231.6000000000GHz LSRK" in missing
    assert len(r["missing"]) == 6  # three per MS


def test_fitspw_frequencies_select_the_same_channels_in_casa(mss, contfile, ct):
    """The frequency form given for uvcontsub_old selects, through CASA's MSSelection, what the channel form does."""
    vis = str(mss[0])
    res = _fc(mode="contdat", contfile=contfile, vis=[vis])["ms"][vis]
    ms = ct.ms()
    try:
        ms.open(vis)
        picked = {}
        for text in (res["fitspw"], res["fitspw_freq"]):
            ms.msselect({"spw": text})
            picked[text] = np.asarray(ms.msselectedindices()["channel"]).tolist()
            ms.reset()
    finally:
        ms.close()
    want = [[int(sid), *map(int, part.split("~")), 1] for item in res["fitspw"].split(",")
            for sid, chans in [item.split(":")] for part in chans.split(";")]
    assert picked[res["fitspw"]] == want
    assert picked[res["fitspw_freq"]] == want


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


@pytest.fixture(scope="module")
def contsub_case(tmp_path_factory):
    """One spw (BB1, 128 channels of -0.5 MHz) with a sloped continuum, a line at channel 65 and 0.01 Jy noise,
    and a cont.dat whose LSRK ranges keep clear of the line (computed here with CASA measures)."""
    from almatools.casaenv import casatools
    from almatools.testing import simulate_ms
    d = tmp_path_factory.mktemp("contsub")
    noise_k = 0.01 * math.sqrt(2 * 0.5e6 * 60)  # sigma = 0.01 Jy
    vis = simulate_ms(d / "cs.ms", SPWS[:1], field="TGT", direction=DIR, refdate="2024/11/15/00:00:00",
                      duration_s=1800.0, integration_s=60.0, noise_k=noise_k, seed=5)
    c = np.arange(128)
    continuum = 2.0 + 1.0 * c / 127
    line = 1.0 * np.exp(-0.5 * ((c - 65) / (4 / 2.3548)) ** 2)
    ct = casatools()
    tb = ct.table()
    try:
        tb.open(vis, nomodify=False)
        for col in ("DATA", "CORRECTED_DATA"):
            tb.putcol(col, tb.getcol(col) + (continuum + line)[None, :, None])
        t0 = tb.getcol("TIME").min()
    finally:
        tb.done()
    me = ct.measures()
    qa = ct.quanta()
    try:
        me.doframe(me.observatory("ALMA"))
        me.doframe(me.direction(*DIR))
        me.doframe(me.epoch("UTC", qa.quantity(t0, "s")))

        def lsrk(f):
            return me.measure(me.frequency("TOPO", qa.quantity(f, "Hz")), "LSRK")["m0"]["value"]
        freq = 230.0e9 - 0.5e6 * c  # decreasing: channel c's frequency
        # line-free channel blocks 5~45 and 85~122, shrunk by two channels for the drift over 30 minutes
        ranges = [(lsrk(freq[b - 2]), lsrk(freq[a + 2])) for a, b in ((5, 45), (85, 122))]
    finally:
        me.done()
    contfile = d / "cont.dat"
    contfile.write_text(f"Field: TGT\n\nSpectralWindow: 25 {BB1}\n" +
                        "".join(f"{lo / 1e9:.10f}~{hi / 1e9:.10f}GHz LSRK\n" for lo, hi in ranges))
    return str(vis), str(contfile), line


def _mean_spectrum(vis):
    from almatools.casaenv import casatools
    tb = casatools().table()
    try:
        tb.open(vis)
        col = "CORRECTED_DATA" if "CORRECTED_DATA" in tb.colnames() else "DATA"
        data = tb.getcol(col)
    finally:
        tb.done()
    return data.mean(axis=(0, 2)), data.shape[0] * data.shape[2]


@pytest.mark.slow
def test_uvcontsub_with_the_converted_selections_removes_the_continuum_and_keeps_the_line(contsub_case, tmp_path):
    import shutil
    from casatasks import uvcontsub, uvcontsub_old
    vis, contfile, line = contsub_case
    res = _fc(mode="contdat", contfile=contfile, vis=[vis])["ms"][vis]
    fit = np.zeros(128, bool)
    for part in res["fitspec"].split(":")[1].split(";"):
        a, b = map(int, part.split("~"))
        fit[a:b + 1] = True
    assert not fit[55:76].any() and fit[10:40].all() and fit[90:118].all()  # the line is not fitted
    outputs = []
    for i, spec in enumerate((res["fitspec"], res["fitspec_dict"])):
        out = str(tmp_path / f"sub{i}.ms")
        uvcontsub(vis=vis, outputvis=out, fitspec=spec, fitorder=1)
        outputs.append(out)
    work = tmp_path / "old"
    work.mkdir()
    for i, fitspw in enumerate((res["fitspw"], res["fitspw_freq"])):
        copy = str(work / f"eb{i}.ms")
        shutil.copytree(vis, copy)
        cwd = os.getcwd()
        try:
            os.chdir(work)
            uvcontsub_old(vis=copy, field="TGT", fitspw=fitspw, fitorder=1)
        finally:
            os.chdir(cwd)
        outputs.append(copy + ".contsub")
    for out in outputs:
        mean, n = _mean_spectrum(out)
        noise = 0.01 * math.sqrt(2) / math.sqrt(n)  # complex mean over n visibilities
        # a first-order fit removes the sloped continuum: line-free channels average to zero ...
        assert np.abs(mean[fit]).max() < 5 * noise + 1e-3, out
        # ... and the line is kept (its peak 1 Jy, within the noise and the fit's error)
        np.testing.assert_allclose(mean.real[55:76], line[55:76], atol=8 * noise + 2e-3, err_msg=out)
        assert abs(mean.imag).max() < 5 * noise + 1e-3


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


# --------------------------------------------------------------------------- MSs in other frames (#23)

REGRID_FRAMES = ("LSRK", "LSRD", "BARY", "GALACTO", "CMB")


@pytest.fixture(scope="module")
def regridded(mss, tmp_path_factory):
    """EB a's spw 1 regridded by CASA's mstransform into each frame: MSs whose native frame is not TOPO."""
    from casatasks import mstransform
    d = tmp_path_factory.mktemp("regridded")
    out = {}
    for frame in REGRID_FRAMES:
        out[frame] = str(d / f"{frame}.ms")
        mstransform(vis=str(mss[0]), outputvis=out[frame], spw="1", regridms=True, outframe=frame, datacolumn="data")
    return out


@pytest.mark.parametrize("frame", REGRID_FRAMES)
def test_ms_in_another_frame_is_read_in_that_frame(regridded, frame, me, ct):
    """The frame code comes from the MS as CASA wrote it: converting the channels to TOPO and LSRK agrees with
    CASA measures (from the frame CASA was asked for) and with ms.cvelfreqs on that MS."""
    from almatools.plugins.frames.msinfo import read_msinfo
    vis = regridded[frame]
    info = read_msinfo(vis)
    assert info.spws[0].frame == frame
    tb = ct.table()
    try:
        tb.open(os.path.join(vis, "SPECTRAL_WINDOW"))
        native = tb.getcell("CHAN_FREQ", 0)
        tb.close()
        tb.open(vis)
        t0 = tb.getcol("TIME").min()
    finally:
        tb.done()
    for outframe in ("TOPO", "LSRK"):
        got = np.array(_fc(mode="ms", vis=vis, outframe=outframe)["spws"]["0"]["freq_first_hz"])
        want = np.array([_per_point(me, ct, f, t0, frame, outframe) for f in native[::16]])
        assert np.abs(got[::16] - want).max() < 1e-3, (frame, outframe)
        ms = ct.ms()
        try:
            ms.open(vis)
            casa = ms.cvelfreqs(spwids=[0], fieldids=[0], outframe=outframe)
        finally:
            ms.close()
        assert np.abs(got - casa).max() < 1.0, (frame, outframe)
    # the shift really happened: a different frame would have given another answer
    assert np.abs(np.array(_fc(mode="ms", vis=vis, outframe="TOPO")["spws"]["0"]["freq_first_hz"]) - native).max() > 1e5


def test_contdat_in_a_bary_ms_matches_advisechansel(regridded, tmp_path):
    vis = regridded["BARY"]
    p = tmp_path / "c.dat"
    p.write_text("Field: TGT\nSpectralWindow: 0\n232.0100000000~232.0300000000GHz LSRK\n"
                 "232.0400000000~232.0450000000GHz LSRK\n")
    res = _fc(mode="contdat", contfile=str(p), vis=[vis])["ms"][vis]
    want = [_advisechansel_channels(vis, 0, lo, hi) for lo, hi in ((232.01e9, 232.03e9), (232.04e9, 232.045e9))]
    assert res["fields"]["TGT"]["spws"]["0"]["chan"] == ";".join(f"{a}~{b}" for a, b in want)
    assert res["fields"]["TGT"]["spws"]["0"]["freq_ms_frame"].endswith(" BARY")


def test_frame_code_fallback_is_casas_numbering(mss, ct, tmp_path):
    """Without the MEASINFO keyword the codes are read in casacore's MFrequency order, as every MS records it."""
    from almatools.plugins.frames.convert import FRAMES
    from almatools.plugins.frames.msinfo import _frame_codes
    tb = ct.table()
    try:
        tb.open(os.path.join(str(mss[0]), "SPECTRAL_WINDOW"))
        info = tb.getcolkeyword("CHAN_FREQ", "MEASINFO")
        recorded = _frame_codes(tb)
        tb.close()
        bare = str(tmp_path / "bare.tab")  # a hand-made table: a CHAN_FREQ column without MEASINFO
        tb.create(bare, {"CHAN_FREQ": {"valueType": "double", "ndim": 1, "comment": ""}}, nrow=1)
        fallback = _frame_codes(tb)
    finally:
        tb.done()
    written = {int(c): str(t) for c, t in zip(info["TabRefCodes"], info["TabRefTypes"])}
    assert recorded == {k: v for k, v in written.items() if v != "Undefined"}
    assert fallback == recorded and list(FRAMES) == [written[k] for k in range(len(FRAMES))]


def test_undefined_frame_code_is_refused_clearly(mss, tmp_path, ct):
    import shutil
    vis = str(tmp_path / "undef.ms")
    shutil.copytree(str(mss[0]), vis)
    tb = ct.table()
    try:
        tb.open(os.path.join(vis, "SPECTRAL_WINDOW"), nomodify=False)
        tb.putcell("MEAS_FREQ_REF", 0, 64)  # 'Undefined'
    finally:
        tb.done()
    with pytest.raises(TaskParameterError, match=r"(?i)parameter 'vis' cannot be converted: unknown spectral frame "
                                                 r"'UNDEFINED \(code 64\)'"):
        _fc(mode="ms", vis=vis, spw="0", outframe="LSRK")


# --------------------------------------------------------------------------- bounds and hostile values (#14)

@pytest.mark.parametrize("kw, param, words", [
    (dict(direction="J2000 nan nan"), "direction", "not a finite angle"),
    (dict(direction="J2000 infdeg 0deg"), "direction", "not a finite angle"),
    (dict(direction="J2000 10deg 95deg"), "direction", "within ±90"),
    (dict(values=[float("nan")]), "values", "finite"),
    (dict(values=[float("inf"), 230.0]), "values", "finite"),
    (dict(values=[-230.0]), "values", "positive"),
    (dict(restfreq="1e400GHz", unit="km/s", values=[1.0]), "restfreq", "not a finite frequency"),
    (dict(sysvel="1e400km/s", outframe="REST"), "sysvel", "not a finite velocity"),
    (dict(sysvel="400000km/s", outframe="REST"), "sysvel", "slower than light"),
    (dict(observatory="e,e,e"), "observatory", "neither a name known to CASA"),
    (dict(observatory="1,2,nan"), "observatory", "neither a name known to CASA"),
    (dict(observatory="0,100,0"), "observatory", "latitude within ±90"),
    (dict(epoch="99999999999"), "epoch", "outside the years 1900-2200"),
    (dict(epoch="nan"), "epoch", "not a time"),
    (dict(epoch="2024/11/15~2024/11/16", ntimes=10**7), "ntimes", r"10,?000\b"),
    (dict(epoch="2024/11/15~2024/11/16", ntimes=10_000, values=[230.0] * 101), "values",
     "needs 1,010,000 values x times; the bound is 1,000,000"),
    (dict(freqstep=float("nan")), "freqstep", "finite"),
    (dict(freqstep=float("inf")), "freqstep", "finite"),
])
def test_hostile_values_are_refused_with_the_parameter_named(kw, param, words):
    args = dict(mode="values", values=[230.0], epoch="2024/11/15/05:33:44", direction=DIRSTR)
    args.update(kw)
    with pytest.raises((TaskParameterError, ResourceLimitError), match=f"parameter '{param}'") as err:
        _fc(**args)
    assert re.search(words, str(err.value)), str(err.value)


def test_contdat_files_that_are_not_regular_or_too_large_are_refused(mss, tmp_path):
    import threading
    from almatools.errors import InputFileError
    from almatools.plugins.frames import contdat as cdmod
    fifo = tmp_path / "fifo.dat"
    os.mkfifo(fifo)
    errors = []
    t = threading.Thread(target=lambda: errors.append(pytest.raises(InputFileError, _fc, mode="contdat",
                                                                    contfile=str(fifo), vis=[str(mss[0])])),
                         daemon=True)
    t.start()
    t.join(10)
    assert errors and str(fifo) in str(errors[0].value) and "is a FIFO, not a regular file" in str(errors[0].value)
    many = tmp_path / "many.dat"  # small on disk, too many ranges to convert
    many.write_text("Field: TGT\nSpectralWindow: 0\n" + "229.95~229.96GHz LSRK\n" * 10_001)
    with pytest.raises(ResourceLimitError, match=r"parameter 'contfile' needs 20,002 ranges x MSs; the bound is "
                                                 r"20,000 ranges x MSs"):
        _fc(mode="contdat", contfile=str(many), vis=[str(m) for m in mss])
    assert cdmod.MAX_CONTDAT_BYTES == 16 * 2**20


@pytest.mark.parametrize("fitspec, words", [
    ("2:1~59999999", "exceeds the largest allowed, 1,048,575"),
    ("0~99999999999:1~2", "exceeds the largest allowed, 9,999"),
    ("0~9999:0~1048575", "expands to more than"),
])
def test_huge_channel_selections_are_refused_without_allocating(mss, fitspec, words):
    import tracemalloc
    tracemalloc.start()
    try:
        with pytest.raises(TaskParameterError, match="parameter 'fitspec'") as err:
            _fc(mode="selection", fitspec=fitspec, vis=str(mss[0]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert words in str(err.value) and peak < 50 * 2**20


def test_drift_memory_is_linear_in_times_plus_channels():
    """2000 times x 50,000 channels would be 800 MB as one array; the track never forms it."""
    import tracemalloc
    from almatools.plugins.frames.msinfo import FieldInfo, SpwInfo
    from almatools.plugins.frames.msmode import SpwTrack
    nchan, ntimes = 50_000, 2000
    spw = SpwInfo(id=0, name="W", chan_freq=230e9 + 1e3 * np.arange(nchan), chan_width=np.full(nchan, 1e3),
                  frame="TOPO")
    factors = 1 + 1e-6 * np.sin(np.linspace(0, 3, ntimes))
    tracemalloc.start()
    try:
        track = SpwTrack(spw, FieldInfo(0, "TGT", "J2000", 0.0, 0.0), "LSRK", 60629 * 86400.0 + 60.0 * np.arange(ntimes), factors)
        s = track.summary()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20
    full = np.multiply.outer(factors[::100], spw.chan_freq[::1000])  # an independent spot check on a subgrid
    np.testing.assert_array_equal(np.array(s["freq_min_hz"])[::1000], np.minimum(full.min(axis=0),
                                                                                   spw.chan_freq[::1000] * factors.min()))
    assert s["drift_hz_max"] == pytest.approx(spw.chan_freq[-1] * (factors.max() - factors.min()), rel=1e-9)


from hypothesis import given, strategies as st  # noqa: E402

_SEL_PIECES = ["0", "1", "2", "127", "128", "63", "64", "99999", "~", ":", ";", ",", "^", "3", "*", "<", ">", " ",
               BB1, "229.948", "229.958", "GHz", "MHz", ".", "-", "e9", "<chans>", "nan", "1e400", "é"]


@pytest.mark.fuzz
@given(st.one_of(st.lists(st.sampled_from(_SEL_PIECES), min_size=1, max_size=25).map("".join), st.text(max_size=60)))
def test_spw_selections_against_a_real_ms_give_masks_or_documented_errors(mss, text):
    """What wtcheck's spw= does with any string, CASA's MSSelection included: channel masks inside the MS's
    spws, or a TaskParameterError naming 'spw' — nothing else, however hostile the string."""
    from almatools.plugins.weights.task_wtcheck import _channel_selection
    vis = str(mss[0])
    try:
        masks = _channel_selection(vis, text)
    except TaskParameterError as exc:
        assert exc.param == "spw" and vis in str(exc)
        return
    if masks is None:
        assert not text.strip()
        return
    assert set(masks) <= {0, 1} and all(m.shape == ((128,) if s == 0 else (64,)) for s, m in masks.items())
