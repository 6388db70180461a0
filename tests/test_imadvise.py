"""imadvise against what CASA itself does with the same simulated data.

The MSs (Band 3, two spws of different widths, radiometer noise with weights
that are inverse variances) are made by almatools.testing.simulate_ms: 12 m
compact and extended, 7 m, a 7-pointing Nyquist mosaic, and Hanning-smoothed
channels.  Beams are compared with the restoring beam tclean fits to the PSF
it makes; noise with the rms of tclean's dirty images of the pure-noise data
and with CASA's own imager.apparentsens; image sizes with
synthesisutils.getOptimumSize and tclean's log.
"""

import ast
import math
import os
import shutil

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from almatools.casa_tasks import imadvise
from almatools.casaenv import casatools
from almatools.errors import TaskParameterError
from almatools.plugins.imaging import rules
from almatools.plugins.imaging.execute import FFT_SIZE_WARNING, image_beam
from almatools.testing import simulate_ms

pytestmark = pytest.mark.casa

ARCSEC = math.pi / 180 / 3600
SPWS = [("NARROW", 100.0e9, 7.8125e6, 16), ("WIDE", 101.5e9, 31.25e6, 8)]  # 125 and 250 MHz wide
NOISE_K = 2e4
TARGET = ("J2000", "11h01m51.9s", "-34d42m17.0s")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("imadvise")


def _ms(work, name, **kw):
    path = work / name
    if not path.exists():
        simulate_ms(path, kw.pop("spws", SPWS), noise_k=kw.pop("noise_k", NOISE_K), **kw)
    return str(path)


@pytest.fixture(scope="module")
def compact(work):
    """12 m, 16 antennas over C-1 (baselines to ~160 m), two hours."""
    return _ms(work, "compact12m.ms", array="alma.cycle10.1.cfg", nant=16, antennas="spread", duration_s=7200,
               integration_s=60, seed=1)


@pytest.fixture(scope="module")
def extended(work):
    """12 m, 12 antennas over C-4 (baselines to ~780 m), one hour."""
    return _ms(work, "extended12m.ms", array="alma.cycle10.4.cfg", nant=12, antennas="spread", duration_s=3600,
               integration_s=60, seed=2)


@pytest.fixture(scope="module")
def aca(work):
    return _ms(work, "aca7m.ms", array="7m", nant=10, duration_s=7200, integration_s=60, seed=3)


NYQUIST = 0.511  # ALMA's hexagonal mosaic spacing in primary-beam FWHMs


def hexagon(centre=TARGET, freq_hz=100e9):
    """The centre and six pointings at Nyquist spacing around it."""
    from astropy.coordinates import SkyCoord
    import astropy.units as u
    c = SkyCoord(centre[1], centre[2], frame="fk5")
    spacing = NYQUIST * rules.pb_fwhm(freq_hz, 12.0) * u.rad
    points = [c] + [c.directional_offset_by(a * u.deg, spacing) for a in range(0, 360, 60)]
    return [("J2000", f"{p.ra.deg}deg", f"{p.dec.deg}deg") for p in points]


@pytest.fixture(scope="module")
def mosaic(work):
    return _ms(work, "mosaic12m.ms", array="alma.cycle10.1.cfg", nant=12, antennas="spread", duration_s=5040,
               integration_s=60, pointings=hexagon(), seed=4)


def tclean_beam(r, name, weighting, **extra):
    """Run the advised tclean call with niter=0 and return the restoring beam it fits, and the log it wrote."""
    from casatasks import casalog, tclean
    params = {**r["tclean"]["params"], "imagename": name, "niter": 0, "weighting": weighting, **extra}
    start = os.path.getsize(casalog.logfile())
    tclean(**params)
    with open(casalog.logfile(), encoding="utf-8", errors="replace") as fh:
        fh.seek(start)
        logged = fh.read()
    return image_beam(f"{name}.psf"), logged


def mad_rms(values):
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def read_image(name):
    ia = casatools().image()
    try:
        ia.open(name)
        return ia.getchunk().squeeze()
    finally:
        ia.done()


# --------------------------------------------------------------------------- beams

@pytest.mark.parametrize("config", ["compact", "extended", "aca", "combined", "mosaic"])
def test_predicted_beams_match_tclean(config, request, work):
    vis = {"combined": ["compact", "aca"]}.get(config, [config])
    # heterogeneous mosaic gridding is tclean's slowest: one spw is enough to compare the beams
    r = imadvise(vis=[request.getfixturevalue(v) for v in vis], spw="1" if config == "combined" else "")
    assert r["gridder"]["value"] == ("mosaic" if config in ("combined", "mosaic") else "standard")
    for weighting in ("natural", "briggs"):
        beam, logged = tclean_beam(r, str(work / f"beam_{config}_{weighting}"), weighting, calcres=False)
        predicted = r["beam"]["combined"][weighting]
        assert beam["major_arcsec"] == pytest.approx(predicted["major_arcsec"], rel=0.10)
        assert beam["minor_arcsec"] == pytest.approx(predicted["minor_arcsec"], rel=0.10)
        if beam["major_arcsec"] > 1.2 * beam["minor_arcsec"]:  # the orientation of an elongated beam, too
            assert abs((beam["pa_deg"] - predicted["pa_deg"] + 90) % 180 - 90) < 10
        assert FFT_SIZE_WARNING not in logged  # the advised imsize is one tclean's FFTs like
    # the cell samples the Briggs beam's minor axis 5 times (never fewer; 2 significant digits cost < 10 %)
    cell = float(r["cell"]["value"].removesuffix("arcsec"))
    assert 5.0 <= r["beam"]["combined"]["briggs"]["minor_arcsec"] / cell < 5.5
    if config == "combined":
        assert set(r["beam"]) >= {"12m", "7m"} and r["arrays"] == ["12m", "7m"]
        assert r["beam"]["7m"]["briggs"]["major_arcsec"] > 3 * r["beam"]["12m"]["briggs"]["major_arcsec"]


def test_the_imsize_check_can_fail(compact, work):
    """The log check above would see tclean's complaint about an inefficient size."""
    r = imadvise(vis=[compact])
    _, logged = tclean_beam(r, str(work / "odd_size"), "natural", calcres=False, imsize=[r["imsize"]["value"][0] + 7])
    assert FFT_SIZE_WARNING in logged


@pytest.mark.fuzz
@given(st.integers(min_value=1, max_value=30000))
def test_optimum_size_is_casas(n):
    su = casatools().synthesisutils()
    try:
        assert rules.optimum_size(n) == su.getOptimumSize(n)
    finally:
        su.done()


# --------------------------------------------------------------------------- noise

def test_noise_matches_dirty_images_and_apparentsens(compact, work):
    from casatasks import tclean
    r = imadvise(vis=[compact])
    im = casatools().imager()
    for weighting in ("natural", "briggs"):
        predicted = r["noise"]["combined"][f"{weighting}_jy"]
        name = str(work / f"noise_{weighting}")
        # twice the advised size: more independent beams in the rms (the dirty image's noise is flat)
        tclean(**{**r["tclean"]["params"], "imagename": name, "niter": 0, "weighting": weighting,
                  "imsize": [2 * n for n in r["imsize"]["value"]], "pbcor": False})
        assert mad_rms(read_image(f"{name}.image")) == pytest.approx(predicted, rel=0.10)
        try:  # CASA's own calculation from the same weights and grid
            im.selectvis(vis=compact)
            im.defineimage(nx=r["imsize"]["value"][0], ny=r["imsize"]["value"][1], cellx=r["cell"]["value"],
                           celly=r["cell"]["value"], mode="mfs")
            im.weight(type=weighting, rmode="norm", robust=r["robust"]) if weighting == "briggs" else \
                im.weight(type="natural")
            assert im.apparentsens()[1] == pytest.approx(predicted, rel=0.02)
        finally:
            im.done()
    # per spw: the spws' widths differ by 4 (and their channel counts by 2): so do their weights
    spws = {s["spw"]: s for s in r["noise"]["per_spw"]}
    assert spws[0]["natural_jy"] / spws[1]["natural_jy"] == pytest.approx(math.sqrt(2.0), rel=0.02)
    for spw in (0, 1):
        name = str(work / f"noise_spw{spw}")
        tclean(**{**r["tclean"]["params"], "imagename": name, "niter": 0, "spw": str(spw),
                  "imsize": [2 * n for n in r["imsize"]["value"]], "pbcor": False})
        assert mad_rms(read_image(f"{name}.image")) == pytest.approx(spws[spw]["briggs_jy"], rel=0.10)
    assert r["threshold"]["jy"] == pytest.approx(3 * r["noise"]["combined"]["briggs_jy"])


def test_online_hanning_smoothing_is_respected(work):
    """Hanning-smoothed channels: their weights promise 8/3 more sensitivity than their sum delivers."""
    from casatasks import tclean
    vis = _ms(work, "hanning.ms", spws=[("H", 100.0e9, 0.9765625e6, 64)], array="alma.cycle10.3.cfg", nant=16,
              antennas="spread", duration_s=3600, integration_s=60, seed=5, hanning=True)
    r = imadvise(vis=[vis])
    spw = r["noise"]["per_spw"][0]
    assert spw["online_smoothing"] == 1
    name = str(work / "hanning_mfs")
    tclean(**{**r["tclean"]["params"], "imagename": name, "niter": 0,
              "imsize": [2 * n for n in r["imsize"]["value"]], "pbcor": False})
    rms = mad_rms(read_image(f"{name}.image"))
    assert rms == pytest.approx(r["noise"]["combined"]["briggs_jy"], rel=0.10)
    naive = r["noise"]["combined"]["briggs_jy"] / spw["smoothing_loss"]  # the weights taken at their word
    assert rms / naive > 1.4
    # one channel alone is what its weight says: EFFECTIVE_BW already counts the smoothing
    name = str(work / "hanning_cube")
    tclean(**{**r["tclean"]["params"], "imagename": name, "niter": 0, "specmode": "cube", "nchan": 8,
              "start": 28, "width": 1, "imsize": [2 * n for n in r["imsize"]["value"]], "pbcor": False})
    cube = read_image(f"{name}.image")
    rms = np.median([mad_rms(cube[:, :, k]) for k in range(cube.shape[2])])
    assert rms == pytest.approx(spw["channel_briggs_jy"], rel=0.10)
    assert "Hanning" in r["averaging"]["channel"][0]["reason"]


def test_mosaic(mosaic, work):
    from casatasks import tclean
    r = imadvise(vis=[mosaic])
    assert r["mosaic"] and r["npointings"] == 7 and r["gridder"]["mosweight"] is True
    # the phase centre is the centre pointing (the hexagon is symmetric)
    from astropy.coordinates import SkyCoord
    import astropy.units as u
    frame, ra, dec = r["phasecenter"]["value"].split()
    centre = SkyCoord(TARGET[1], TARGET[2], frame="fk5")
    assert SkyCoord(ra, dec, frame="fk5").separation(centre).arcsec < 0.01
    # the image spans the pointings plus the primary beam out to pblimit on each side
    fwhm = rules.pb_fwhm(100e9, 12.0)  # the lowest frequency's, where the primary beam is widest
    radius = fwhm / 2 * math.sqrt(math.log(1 / 0.2) / math.log(2))
    spacing = NYQUIST * rules.pb_fwhm(100e9, 12.0)  # north-south; east-west the hexagon is sqrt(3)/2 as wide
    assert r["imsize"]["fov_arcsec"][1] == pytest.approx(2 * (spacing + radius) / ARCSEC, rel=1e-3)
    assert r["imsize"]["fov_arcsec"][0] == pytest.approx(2 * (spacing * math.sqrt(3) / 2 + radius) / ARCSEC,
                                                         rel=1e-3)
    # the centre gains from the six neighbours: independently, with Gaussian beams of the same FWHM
    weights = np.ones(7)
    d = np.array([0.0] + [NYQUIST] * 6)
    gain = math.sqrt(np.sum(weights * np.exp(-8 * math.log(2) * d ** 2)))
    assert r["noise"]["mosaic_gain"] == pytest.approx(gain, rel=0.02)
    assert r["noise"]["mosaic_gain"] == pytest.approx(1.58, rel=0.03)  # the seed's Nyquist factor
    name = str(work / "mosaic_noise")
    tclean(**{**r["tclean"]["params"], "imagename": name, "niter": 0, "weighting": "natural"})
    image, pb = read_image(f"{name}.image"), read_image(f"{name}.pb")
    # flat-noise normalisation: the image's rms is the centre's, where the pointings overlap most
    assert mad_rms(image[pb > 0.5]) == pytest.approx(r["noise"]["combined"]["natural_jy"], rel=0.10)


# --------------------------------------------------------------------------- the rules

def test_the_seeds_time_averaging_example():
    """Band 6, most extended array: FOV 25 arcsec, beam 45 mas -> dt << 25 s (seed §7.4)."""
    limit = rules.time_average_limit(0.045 * ARCSEC, 25 * ARCSEC)
    assert limit == pytest.approx(0.045 / 25 / 7.3e-5, rel=1e-12)
    assert round(limit) == 25


def test_time_averaging_advice_follows_the_formula(extended):
    r = imadvise(vis=[extended])
    t = r["averaging"]["time"]
    beam = r["beam"]["combined"]["briggs"]["minor_arcsec"] * ARCSEC
    fov = 1.13 * 299792458.0 / r["beam"]["combined"]["freq_hz"] / 12.0
    assert t["limit_s"] == pytest.approx(beam / (7.3e-5 * fov), rel=1e-9)
    # 99 % of the peak at the half-power radius: (ln 2 / 3)(omega dt (fov/2) / beam)^2 = 0.01
    dt = math.sqrt(0.03 / math.log(2)) * beam / (7.3e-5 * fov / 2)
    assert t["max_s"] == pytest.approx(dt, rel=1e-9)
    assert t["integration_s"] == 60.0
    assert t["timebin"] == (f"{int(dt // 60) * 60:g}s" if dt >= 120 else "")


def test_chanbin_rule_per_band(work):
    """Baselines <= 500 m: 125 MHz in Bands 3-6, 250 MHz in Bands 7-10, per spw; TDM and FDM widths."""
    spws = [("B3", 90e9, 15.625e6, 128), ("B6", 230e9, 15.625e6, 128), ("B7", 345e9, 0.9765625e6, 64 * 30),
            ("B9", 670e9, 15.625e6, 128), ("B4", 145e9, 0.48828125e6, 3840)]
    vis = _ms(work, "bands.ms", spws=spws, array="alma.cycle10.1.cfg", nant=4, duration_s=300, integration_s=60)
    r = imadvise(vis=[vis])
    assert r["averaging"]["max_baseline_m"] <= 500
    got = {c["name"]: c["chanbin"] for c in r["averaging"]["channel"]}
    assert got == {"B3": 8, "B6": 8, "B7": 256, "B9": 16, "B4": 256}  # 125 or 250 MHz / width
    assert {c["name"]: c["band"] for c in r["averaging"]["channel"]} == {"B3": 3, "B6": 6, "B7": 7, "B9": 9,
                                                                        "B4": 4}


def test_chanbin_beyond_500m_is_the_bandwidth_smearing_limit(extended):
    r = imadvise(vis=[extended])
    assert r["averaging"]["max_baseline_m"] > 500
    beam = r["beam"]["combined"]["briggs"]["minor_arcsec"] * ARCSEC
    fov = 1.13 * 299792458.0 / r["beam"]["combined"]["freq_hz"] / 12.0
    for c, (name, f0, width, n) in zip(r["averaging"]["channel"], SPWS):
        freq = f0 + width * (n - 1) / 2
        smear = math.sqrt(0.03 / math.log(2)) * beam / (fov / 2) * freq  # 99 % at the half-power radius
        assert c["smearing_limit_hz"] == pytest.approx(smear, rel=1e-9)
        target = min(smear, 125e6)
        assert c["chanbin"] == max(1, min(n, int(target // width)))


def test_deconvolver_gridder_and_stokes(compact, work):
    r = imadvise(vis=[compact])
    assert r["deconvolver"]["value"] == "hogbom" and r["stokes"]["value"] == "I"
    wide = _ms(work, "wideband.ms", spws=[("LO", 90e9, 62.5e6, 4), ("HI", 104e9, 62.5e6, 4)],
               array="alma.cycle10.1.cfg", nant=6, duration_s=600, integration_s=60)
    w = imadvise(vis=[wide])
    fbw = 2 * (104e9 + 3 * 62.5e6 - 90e9) / (104e9 + 3 * 62.5e6 + 90e9)
    assert w["deconvolver"]["fractional_bandwidth"] == pytest.approx(fbw, rel=1e-9)
    assert w["deconvolver"]["value"] == "mtmfs" and w["tclean"]["params"]["nterms"] == 2
    # a source larger than the MRS: multiscale up to the MRS, and a warning that flux is lost
    mrs = r["mrs"]["combined"]["mrs_arcsec"]
    big = imadvise(vis=[compact], sourcesize=f"{3 * mrs}arcsec")
    assert big["deconvolver"]["value"] == "multiscale"
    scales = big["tclean"]["params"]["scales"]
    assert scales[0] == 0 and all(s * float(big["cell"]["arcsec"]) <= mrs for s in scales)
    assert any("maximum recoverable scale" in x for x in big["warnings"])
    small = imadvise(vis=[compact], sourcesize="0.5arcsec")
    assert small["deconvolver"]["value"] == "hogbom" and not any("recoverable" in x for x in small["warnings"])


def test_mrs_and_resolution_follow_the_handbook(compact):
    r = imadvise(vis=[compact])
    tb = casatools().table()
    try:  # independently: percentiles of every unflagged row's projected baseline
        tb.open(compact)
        uvw = tb.getcol("UVW")
    finally:
        tb.done()
    lengths = np.hypot(uvw[0], uvw[1])
    m = r["mrs"]["combined"]
    assert m["L5_m"] == pytest.approx(np.percentile(lengths, 5), rel=0.01)
    assert m["L80_m"] == pytest.approx(np.percentile(lengths, 80), rel=0.01)
    lam = 299792458.0 / m["freq_hz"]
    assert m["mrs_arcsec"] == pytest.approx(0.983 * lam / m["L5_m"] / ARCSEC, rel=1e-9)
    # the handbook's resolution estimate is close to the predicted Briggs beam
    b = r["beam"]["combined"]["briggs"]
    assert m["resolution_arcsec"] == pytest.approx(math.sqrt(b["major_arcsec"] * b["minor_arcsec"]), rel=0.35)


def test_datacolumn_from_the_column_and_the_name(compact, tmp_path):
    tb = casatools().table()

    def copy(name, corrected):
        path = tmp_path / name
        shutil.copytree(compact, path)
        if not corrected:
            tb.open(str(path), nomodify=False)
            tb.removecols(["CORRECTED_DATA", "MODEL_DATA"])
            tb.done()
        return str(path)

    cases = {"uid___A002_X1_X2.split.cal": (False, "data", False),
             "uid___A002_X1_X3.ms": (True, "corrected", False),
             "uid___A002_X1_X4.ms": (False, "data", True),  # pipeline name, no CORRECTED_DATA
             "calibrated_final.ms": (True, "corrected", True)}  # calibrated split, yet CORRECTED_DATA
    for name, (corrected, value, warned) in cases.items():
        r = imadvise(vis=[copy(name, corrected)])
        assert r["datacolumn"]["value"] == value, name
        assert bool(r["datacolumn"]["warnings"]) is warned, name


def test_merged_sub_ms_surveys_equal_the_whole(mosaic, tmp_path):
    """The per-MS pass is a function of one MS whose results add: a Multi-MS's sub-MSs give the whole.

    The sub-MSs go through the batch engine's Multi-MS mapping (serially here; on casampi's MPI servers
    under mpirun), by the target's name and with pickled arguments and results, as the servers get them.
    """
    import pickle
    from casatasks import partition
    from almatools.batch import mms as multims
    from almatools.plugins.imaging import msmeta, survey
    from almatools.plugins.imaging.psf import GridGeometry
    mms = str(tmp_path / "mosaic.mms")
    partition(vis=mosaic, outputvis=mms, separationaxis="scan", numsubms=3, flagbackup=False)
    ct = casatools()
    meta = msmeta.read_meta(ct, mosaic)
    sel = msmeta.select(ct, meta, "", "")
    plan = survey.SurveyPlan(GridGeometry(du=2000.0, dv=2000.0, nu=200, nv=200), meta.max_baseline(), per_field=True)
    whole = survey.survey_ms(ct, mosaic, sel, meta, plan)
    subs = multims.submss(mms)
    assert len(subs) == 3
    merged = survey.MsSurvey(vis=mosaic)
    parts = multims.map_parts("almatools.plugins.imaging.survey:survey_path", subs, as_json=False,
                              **pickle.loads(pickle.dumps({"selection": sel, "plan": plan})))
    for part in parts:
        merged.merge(pickle.loads(pickle.dumps(part)))
    assert set(merged.grids) == set(whole.grids) and len(whole.grids) == 7
    for key, grid in whole.grids.items():
        np.testing.assert_allclose(merged.grids[key].data, grid.data, rtol=1e-12, atol=0)
    for name in whole.hist:
        np.testing.assert_array_equal(merged.hist[name], whole.hist[name])
    assert merged.spw_weight == pytest.approx(whole.spw_weight, rel=1e-12)
    assert merged.field_weight == pytest.approx(whole.field_weight, rel=1e-12)
    assert merged.rows == whole.rows and merged.intervals == whole.intervals


def test_the_call_and_execute(compact, work):
    name = str(work / "executed")
    r = imadvise(vis=[compact], imagename=name, niter=0, execute=True, plotfile=str(work / "uv.png"))
    call = ast.parse(r["tclean"]["call"], mode="eval").body
    assert call.func.id == "tclean"
    assert {k.arg: ast.literal_eval(k.value) for k in call.keywords} == r["tclean"]["params"]
    x = r["execute"]
    assert x["ok"] and not x["failed"] and x["fft_size_warning"] is False
    assert x["beam"] == image_beam(f"{name}.image")  # what it reports is what tclean wrote
    assert x["beam_agrees"] and abs(x["major_ratio"] - 1) <= 0.1 and abs(x["minor_ratio"] - 1) <= 0.1
    assert abs(x["rms_ratio"] - 1) <= 0.1
    with open(work / "uv.png", "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    for key in ("datacolumn", "cell", "imsize", "gridder", "deconvolver", "phasecenter", "stokes", "noise",
                "threshold", "mrs", "beam"):
        assert r[key]["reason"], key
    # a second run would make tclean continue from these images: refused
    with pytest.raises(TaskParameterError, match="imagename"):
        imadvise(vis=[compact], imagename=name, execute=True)


# --------------------------------------------------------------------------- refusals

def test_bad_inputs_are_refused_by_name(compact, tmp_path):
    not_ms = tmp_path / "empty.ms"
    not_ms.mkdir()
    with pytest.raises(TaskParameterError, match="'vis'.*not a MeasurementSet"):
        imadvise(vis=[str(not_ms)])
    with pytest.raises(TaskParameterError, match="'field'"):
        imadvise(vis=[compact], field="NO_SUCH_SOURCE")
    with pytest.raises(TaskParameterError, match="'spw'"):
        imadvise(vis=[compact], spw="7")
    with pytest.raises(TaskParameterError, match="'sourcesize'"):
        imadvise(vis=[compact], sourcesize="large")
    with pytest.raises(TaskParameterError, match="'mous'"):
        imadvise(vis=[compact], mous=str(tmp_path / "nowhere"))
    from casatasks import flagdata
    fully_flagged = tmp_path / "flagged.ms"
    shutil.copytree(compact, fully_flagged)
    flagdata(vis=str(fully_flagged), mode="manual", flagbackup=False)
    with pytest.raises(TaskParameterError, match="no unflagged data"):
        imadvise(vis=[str(fully_flagged)])


def test_channel_selection_counts_only_the_selected_channels(compact):
    full = imadvise(vis=[compact], spw="0")
    half = imadvise(vis=[compact], spw="0:0~7")
    assert half["tclean"]["params"]["spw"] == "0:0~7"
    ratio = half["noise"]["per_spw"][0]["natural_jy"] / full["noise"]["per_spw"][0]["natural_jy"]
    assert ratio == pytest.approx(math.sqrt(2.0), rel=1e-6)


@pytest.mark.fuzz
@given(st.text(max_size=80))
def test_sourcesize_parser_takes_any_text(text):
    try:
        value = rules.parse_angle(text)
    except ValueError:
        return
    assert 0 < value <= math.pi


@pytest.mark.fuzz
@given(st.floats(min_value=1e-3, max_value=1e4, allow_nan=False), st.sampled_from(["arcsec", "arcmin", "deg", "mas"]))
def test_sourcesize_parser_agrees_with_astropy(number, unit):
    import astropy.units as u
    text = f"{number!r}{unit}"
    expected = (number * u.Unit(unit)).to_value(u.rad)
    if expected > math.pi:
        with pytest.raises(ValueError):
            rules.parse_angle(text)
    else:
        assert rules.parse_angle(text) == pytest.approx(expected, rel=1e-12)


def test_member_ous_gives_the_calibration_and_the_line_free_channels(work, tmp_path):
    """With the example Member OUS: pipeline calibration (calversion) and cont.dat channels (frameconv)."""
    from almatools import example
    from almatools.casa_tasks import frameconv
    from almatools.plugins.imaging._demo import DEMO_SPWS
    mous = example.build_member_ous(tmp_path / "example", images=False)
    vis = _ms(work, f"{example.uid_path(example.EXECBLOCKS[0])}.ms", spws=DEMO_SPWS, array="alma.cycle10.1.cfg",
              nant=6, field=example.TARGET, direction=example.TARGET_DIRECTION, duration_s=600, integration_s=60)
    r = imadvise(vis=[vis], specmode="cont", mous=str(mous))
    assert "pipeline" in r["datacolumn"]["per_ms"][vis]["reason"] and r["datacolumn"]["value"] == "corrected"
    expected = frameconv(mode="contdat", contfile=r["continuum"]["source"], vis=[vis])["ms"][vis]["fitspec"]
    assert r["continuum"]["source"].endswith("cont.dat") and expected
    assert r["tclean"]["params"]["specmode"] == "mfs"
    ms = casatools().ms()

    def channels(text):  # the (spw, channel) pairs CASA's own parser selects
        rows = ms.msseltoindex(vis=vis, spw=text)["channel"]
        return {(int(s), c) for s, a, b, step in rows for c in range(int(a), int(b) + 1, int(step))}
    try:
        selected = channels(expected)
        assert channels(r["tclean"]["params"]["spw"]) == selected
    finally:
        ms.done()
    full = imadvise(vis=[vis], specmode="mfs")
    for cont, every in zip(r["noise"]["per_spw"], full["noise"]["per_spw"]):
        nsel = sum(1 for s, _ in selected if s == cont["spw"])
        nchan = DEMO_SPWS[cont["spw"]][3]
        assert cont["natural_jy"] / every["natural_jy"] == pytest.approx(math.sqrt(nchan / nsel), rel=1e-6)
