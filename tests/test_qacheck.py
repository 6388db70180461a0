"""qacheck on Member OUS trees built from real CASA images (tclean on simulated MSs with known noise),
AQUA reports and QA2 text files in their historical shapes, broken deliveries, and the HTML report in
real headless Chromium."""

import gzip
import math
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from almatools import example
from almatools.casa_tasks import qacheck
from almatools.delivery import (DeliveryError, missing_companions, parse_product_name, read_aqua, read_qa2_text,
                                read_readme)
from almatools.errors import TaskParameterError

M = "uid___A001_X9_X9"
NCHAN, NOISY = 40, (5, 6)
ARTEFACTS = Path(__file__).resolve().parent.parent / "test-artefacts"


def _casa():
    from almatools.casaenv import casatools
    return casatools()


def _stokes_i_sigma(vis: str) -> float:
    """Natural-weighting Stokes I noise of one channel, from the MS itself: 1 / sqrt(sum of WEIGHT over the
    cross-correlation rows and both polarizations) (the dirty image is the weighted mean of the visibilities)."""
    tb = _casa().table()
    try:
        tb.open(vis)
        w, a1, a2, fr = (tb.getcol(c) for c in ("WEIGHT", "ANTENNA1", "ANTENNA2", "FLAG_ROW"))
    finally:
        tb.done()
    keep = (a1 != a2) & ~fr
    return 1.0 / math.sqrt(w[:, keep].sum())


def _image_planes(path: str) -> tuple[np.ndarray, dict]:
    """All pixels [x, y, chan] of a CASA image and its restoring beam(s), read with casatools."""
    ia = _casa().image()
    try:
        ia.open(path)
        data = ia.getchunk()[:, :, 0, :] if len(ia.shape()) == 4 else ia.getchunk()
        beam = ia.restoringbeam()
        cs = ia.coordsys()
        cell = abs(cs.increment(type="direction", format="n")["numeric"][0]) * 180 / math.pi * 3600
        cs.done()
    finally:
        ia.done()
    return data, {"beam": beam, "cell": cell}


@pytest.fixture(scope="module")
def sim_delivery(tmp_path_factory):
    """A pipeline-shaped Member OUS: a 40-channel Band 3 cube (noise only, channels 5-6 at 3x the noise)
    and a continuum image of a 30 mJy point source, made by tclean from simulated MSs; FITS products with
    gzipped pbs, a cont.dat whose LSRK ranges leave out channels 15-24, and CASA-image copies."""
    from casatasks import exportfits, tclean
    from almatools.testing import simulate_ms
    work = tmp_path_factory.mktemp("qacheck-sim")
    spw = [("spw0", 100.0e9, 2.0e6, NCHAN)]
    cube_ms = simulate_ms(work / "cube.ms", spw, nant=16, noise_k=20.0, seed=3)
    tb = _casa().table()
    try:  # atmospheric-line-like noise in two channels: the data there x3
        tb.open(cube_ms, nomodify=False)
        for column in ("DATA", "CORRECTED_DATA"):
            d = tb.getcol(column)
            d[:, list(NOISY), :] *= 3
            tb.putcol(column, d)
    finally:
        tb.done()
    tclean(vis=cube_ms, imagename=str(work / "cube"), specmode="cube", imsize=[160, 160], cell="0.8arcsec",
           niter=0, weighting="natural", pbcor=True, outframe="LSRK")
    cont_ms = simulate_ms(work / "cont.ms", [("spw1", 101.0e9, 31.25e6, 64)], nant=16, noise_k=20.0, seed=4,
                          flux_jy=0.03)
    # a coarse cell on purpose: the beam is sampled by fewer than 3 pixels
    tclean(vis=cont_ms, imagename=str(work / "cont"), specmode="mfs", imsize=[64, 64], cell="2.5arcsec",
           niter=500, threshold="0.1mJy", weighting="natural", pbcor=True)
    mous = work / "member" / f"member.{M}"
    (mous / "product").mkdir(parents=True)
    (mous / "calibration").mkdir()
    stem = f"member.{M}.SIM_sci"
    names = {"cube": f"{stem}.spw0.cube.I", "cont": f"{stem}.spw1.cont.I"}
    for key, base in names.items():
        exportfits(imagename=str(work / f"{key}.image.pbcor"), fitsimage=str(mous / "product" / f"{base}.pbcor.fits"))
        exportfits(imagename=str(work / f"{key}.pb"), fitsimage=str(work / f"{key}.pb.fits"))
        with open(work / f"{key}.pb.fits", "rb") as src, gzip.open(mous / "product" / f"{base}.pb.fits.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
    cube, info = _image_planes(str(work / "cube.image"))
    ia = _casa().image()
    ia.open(str(work / "cube.image"))
    cs = ia.coordsys()
    freqs = np.array([cs.toworld([0, 0, 0, k], "n")["numeric"][3] for k in range(NCHAN)])
    cs.done()
    ia.done()
    half = abs(freqs[1] - freqs[0]) / 2
    ranges = [(freqs[0] - half, freqs[14] + half), (freqs[25] - half, freqs[-1] + half)]
    (mous / "calibration" / f"member.{M}.cont.dat").write_text(
        "Field: SIM\n\nSpectralWindow: 0 X1#ALMA_RB_03#BB_1#SW-01#FULL_RES\n"
        + "".join(f"{lo / 1e9:.10f}~{hi / 1e9:.10f}GHz LSRK\n" for lo, hi in ranges) + "\n")
    return {"work": work, "mous": mous, "names": names, "cube_ms": cube_ms, "cont_ms": cont_ms}


def test_measured_noise_is_the_injected_noise_and_noisy_channels_are_found(sim_delivery, tmp_path):
    d = sim_delivery
    r = qacheck(path=str(d["mous"]), outdir=str(tmp_path / "qa"))
    row = next(x for x in r["images"] if x["specmode"] == "cube")
    sigma = _stokes_i_sigma(d["cube_ms"])
    assert row["rms_jy"] == pytest.approx(sigma, rel=0.05)
    assert "line-free channel(s) from member." in row["rms_from"] and row["linefree_channels"] == 30
    # noisy: the two channels with 3x the data noise, and any edge channel the LSRK regridding left with less
    # than half the weight (from tclean's own sum of weights)
    sumwt = _image_planes(str(d["work"] / "cube.sumwt"))[0].ravel()
    edge = {int(k) for k in np.flatnonzero(sumwt < 0.5 * np.median(sumwt))}
    assert set(row["noisy_channels"]) == set(NOISY) | edge
    # peak: the largest pixel of the flat-noise image (image.pbcor x pb = image) over all channels, from casatools
    image, info = _image_planes(str(d["work"] / "cube.image"))
    assert row["peak_jy"] == pytest.approx(float(np.nanmax(image)), rel=1e-6)
    assert row["dr"] == row["peak_jy"] / row["rms_jy"]
    beams = info["beam"]["beams"]
    minor = beams[f"*{NCHAN // 2}"]["*0"]["minor"]["value"]
    assert row["pixels_per_beam"] == pytest.approx(minor / info["cell"], rel=1e-9)
    assert row["band"] == 3 and row["dr_expected"] == 100
    assert r["missing"] == [m for m in r["missing"] if m["missing"] == "mask"] and len(r["missing"]) == 2
    assert r["ok"] and not r["failed"]


def test_continuum_dynamic_range_and_undersampled_beam(sim_delivery, tmp_path):
    d = sim_delivery
    r = qacheck(path=str(d["mous"]), outdir=str(tmp_path / "qa"), include=["*.cont.I.pbcor.fits"], report=False)
    row, = r["images"]
    image, info = _image_planes(str(d["work"] / "cont.image"))
    assert row["peak_jy"] == pytest.approx(float(np.nanmax(image)), rel=1e-6)
    assert row["peak_jy"] == pytest.approx(0.03, rel=0.1)  # the 30 mJy point source
    assert row["dr"] == row["peak_jy"] / row["rms_jy"]
    pix = info["beam"]["minor"]["value"] / info["cell"]
    assert row["pixels_per_beam"] == pytest.approx(pix, rel=1e-9) and pix < 3
    assert row["verdict"] == "problem" and any("undersampled" in x for x in row["reasons"])
    assert not r["report"] and {Path(t).name for t in r["tables"]} == {"inventory.ecsv", "images.ecsv",
                                                                         "channels.ecsv"}


def test_casa_images_read_like_their_fits_copies(sim_delivery, tmp_path):
    d = sim_delivery
    mous = tmp_path / "manual"
    (mous / "product").mkdir(parents=True)
    shutil.copytree(d["work"] / "cont.image.pbcor", mous / "product" / "SIM_cont.image.pbcor")
    shutil.copytree(d["work"] / "cont.pb", mous / "product" / "SIM_cont.pb")
    casa = qacheck(path=str(mous), outdir=str(tmp_path / "a"), report=False)["images"]
    fits = qacheck(path=str(d["mous"]), outdir=str(tmp_path / "b"), report=False, include=["*cont*"])["images"]
    assert len(casa) == len(fits) == 1
    assert casa[0]["pb"] == "SIM_cont.pb"
    for key in ("rms_jy", "peak_jy", "dr", "pixels_per_beam"):
        assert casa[0][key] == pytest.approx(fits[0][key], rel=1e-6), key


# ----------------------------------------------------------------------------------- the example and its report
@pytest.fixture(scope="module")
def example_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("qacheck-example")
    mous = example.build_member_ous(root / "tree")
    return qacheck(path=str(mous), outdir=str(root / "qa")), mous


def test_example_inventory_qa_scores_and_theoretical_rms(example_report):
    r, mous = example_report
    names = example.product_names()
    assert sorted(i["file"] for i in r["inventory"]) == sorted(names.values())
    cube = next(i for i in r["inventory"] if i["file"] == names["cube"])
    assert (cube["target"], cube["spws"], cube["specmode"], cube["kind"], cube["shape"]) == (
        "TW_Hya", ["25"], "cube", "pbcor", [64, 64, 24, 1])
    c = example.CUBE
    assert cube["freq_min_ghz"] == pytest.approx(c["freq0_hz"] / 1e9, rel=1e-12)
    assert cube["freq_max_ghz"] == pytest.approx((c["freq0_hz"] + (c["nchan"] - 1) * c["width_hz"]) / 1e9, rel=1e-12)
    assert r["calibration"]["type"] == "pipeline" and r["calibration"]["casa_version"] == example.CASA_VERSION
    assert r["readme"]["qa2_status"] == "PASS" and r["mous"] == example.MOUS
    aq, = r["aqua"]
    assert aq["layout"] == "representative-score" and len(aq["stages"]) == len(example.AQUA_STAGES)
    lowest = sorted((s for s in example.AQUA_STAGES), key=lambda s: s[1])[0]
    assert (aq["lowest_scores"][0]["task"], aq["lowest_scores"][0]["score"], aq["lowest_scores"][0]["reason"]) == \
        lowest[:3]
    assert aq["topics"] == {"Dataset": 0.9, "Calibration": 0.95, "Imaging": 0.67}
    row = next(x for x in r["images"] if x["file"] == names["cube"])
    # hifa_imageprecheck's estimate for the 24 MHz representative bandwidth, scaled to the 12 MHz channels
    est = example.AQUA_SENSITIVITIES["hifa_imageprecheck"][0]
    assert row["theoretical_jy"] == pytest.approx(est[6] * math.sqrt(est[3] / c["width_hz"]), rel=1e-12)
    # the example's noise before pb correction is noise_jy: measured within 5 % (64 x 64 pixels of white noise)
    assert row["rms_jy"] == pytest.approx(c["noise_jy"], rel=0.05)
    assert row["rms_ratio"] == row["rms_jy"] / row["theoretical_jy"]
    mfs = next(x for x in r["images"] if x["file"] == names["mfs"])
    assert mfs["verdict"] == "problem" and mfs["reasons"][0].startswith(f"rms {mfs['rms_ratio']:.1f}x theoretical")


def test_report_opens_in_headless_chromium_without_errors(example_report, tmp_path):
    from chromium import inspect_page
    r, _ = example_report
    ARTEFACTS.mkdir(exist_ok=True)
    seen = inspect_page(Path(r["report"]), ARTEFACTS / "qacheck-report.png")
    assert seen["errors"] == [] and seen["failed_requests"] == [] and seen["broken_images"] == []
    # every PNG the task wrote is on the page, and loaded with its real width
    widths = {Path(i["src"]).name: i["width"] for i in seen["images"]}
    for plot in r["plots"]:
        with open(plot, "rb") as fh:
            head = fh.read(24)
        assert widths[Path(plot).name] == struct.unpack(">I", head[16:20])[0]
    assert seen["tables"] >= 8 and seen["title"] == f"qacheck: {example.MOUS}"
    with open(ARTEFACTS / "qacheck-report.png", "rb") as fh:
        head = fh.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">I", head[20:24])[0] > 1500  # the whole page


def test_the_browser_check_sees_broken_images_and_script_errors(tmp_path):
    from chromium import inspect_page
    page = tmp_path / "bad.html"
    page.write_text('<html><body><table><tr><td>x</td></tr></table><img src="missing.png">'
                    "<script>undefinedFunction();</script></body></html>")
    seen = inspect_page(page, tmp_path / "bad.png")
    assert seen["broken_images"] == ["missing.png"] and seen["tables"] == 1
    assert any("undefinedFunction" in e for e in seen["errors"])


# ----------------------------------------------------------------------------------- broken and partial deliveries
def test_broken_delivery_is_reported_not_crashed(example_report, tmp_path):
    _, src = example_report
    mous = tmp_path / "broken"
    shutil.copytree(src, mous)
    names = example.product_names()
    (mous / "product" / names["cube_pb"]).unlink()  # a cube without its pb
    mfs = mous / "product" / names["mfs"]
    size = mfs.stat().st_size
    with open(mfs, "r+b") as fh:  # a truncated download
        fh.truncate(size - 5000)
    aqua = next((mous / "qa").glob("*aquareport.xml"))
    text = aqua.read_text().replace("<RepresentativeScore", "<Representative").replace("</RepresentativeScore",
                                                                                         "</Representative")
    text = text.replace("<SubScore", "<Sub").replace("</SubScore", "</Sub")
    aqua.write_text(text)
    r = qacheck(path=str(mous), outdir=str(tmp_path / "qa"))
    assert r["ok"] is False
    failed, = r["failed"]
    from astropy.io import fits
    header = fits.getheader(src / "product" / names["mfs"])
    data_end = len(header.tostring()) + 4 * header["NAXIS1"] * header["NAXIS2"]  # float32, one plane
    assert failed["file"] == names["mfs"] and failed["why"] == (
        f"truncated: {size - 5000} bytes, the header describes {data_end} ({data_end - size + 5000} missing); "
        "not read")
    missing = {(m["group"].rsplit(".", 3)[-3], m["missing"], m["severity"]) for m in r["missing"]}
    assert ("spw25", "pb", "error") in missing
    why = [n["why"] for n in r["not_read"] if n["file"] == str(aqua)]
    assert len(why) == 1 and why[0].startswith(f"scores of {len(example.AQUA_STAGES)} stage(s)")
    assert "a layout this reader does not know (pipeline version 2023.1.0.124)" in why[0]
    cube = next(x for x in r["images"] if x["specmode"] == "cube")
    assert cube["pb"] == "" and any("no pb" in x for x in cube["reasons"])
    # the report still shows what could be read
    assert Path(r["report"]).read_text().count("<h3>") == 1


def test_refusals_name_the_parameter(tmp_path, example_report):
    r, mous = example_report
    with pytest.raises(TaskParameterError, match="path"):
        qacheck(path=str(tmp_path / "nothing"))
    with pytest.raises(TaskParameterError, match="already holds a qacheck report"):
        qacheck(path=str(mous), outdir=str(Path(r["outdir"])))
    (tmp_path / "afile").write_text("x")
    with pytest.raises(TaskParameterError, match="outdir"):
        qacheck(path=str(mous), outdir=str(tmp_path / "afile"))
    with pytest.raises(TaskParameterError, match="pbmin"):
        qacheck(path=str(mous), pbmin=1.5)


# ----------------------------------------------------------------------------------- readers, in historical shapes
#: an AQUA report as Cycle 5-7 pipelines wrote it (Python 2 pipeline): Stage Score attributes, Metric children,
#: SensitivityEstimates with Number=, no Intent, and no Theoretical/Observed attributes
AQUA_CYCLE5 = """<?xml version="1.0" ?>
<PipelineAquaReport>
  <ProjectStructure>
    <ProposalCode>2017.1.00001.S</ProposalCode>
    <ProcessingRequestEntityId>Undefined</ProcessingRequestEntityId>
    <ProcessingProcedure>Undefined</ProcessingProcedure>
    <OusEntityId>uid://A001/X1284/X1ef1</OusEntityId>
    <OusPartId>Undefined</OusPartId>
    <OusStatusEntityId>uid://A001/X1284/X1ef2</OusStatusEntityId>
    <ExecBlockId>uid://A002/Xc7111c/X3979</ExecBlockId>
  </ProjectStructure>
  <QaSummary>
    <ReportDate>2018-02-11 09:12:55</ReportDate>
    <ProcessingTime>2:05:11</ProcessingTime>
    <CasaVersion>5.1.1-5</CasaVersion>
    <PipelineVersion>40896 (Pipeline-CASA51-P2-B)</PipelineVersion>
    <FinalScore>Undefined</FinalScore>
  </QaSummary>
  <QaPerStage>
    <Stage Name="hifa_importdata" Number="1" Score="1.0"/>
    <Stage Name="hifa_flagdata" Number="2" Score="0.945">
      <Metric Asdm="uid___A002_Xc7111c_X3979" Name="%TotalDataFlagged" QaScore="0.945" Value="5.500"/>
    </Stage>
    <Stage Name="hifa_wvrgcalflag" Number="9" Score="0.33">
      <Metric Asdm="uid___A002_Xc7111c_X3979" Name="PhaseRmsRatio" QaScore="0.33" Value="0.950"/>
    </Stage>
    <Stage Name="hif_makeimages" Number="20" Score="None"/>
  </QaPerStage>
  <QaPerTopic>
    <Dataset Score="1.0">
      <Stage Name="hifa_importdata" Number="1" Score="1.0"/>
      <ImageSensitivity>
        <SensitivityEstimates Number="18" Origin="hifa_imageprecheck" Score="1.0">
          <Sensitivity Array="12m" BandwidthHz="1875000000.0" BeamMajArcsec="0.51" BeamMinArcsec="0.43" BeamPosAngDeg="-81.2" BwMode="mfs" CellXArcsec="0.09" CellYArcsec="0.09" Field="Elias_29" MsSpwId="16,18,20,22" Robust="0.5" SensitivityJyPerBeam="3.1e-05" UVTaper="[]"/>
        </SensitivityEstimates>
      </ImageSensitivity>
    </Dataset>
    <Flagging Score="0.945"/>
    <Calibration Score="0.33"/>
    <Imaging Score="Undefined"/>
  </QaPerTopic>
</PipelineAquaReport>
"""


def test_aqua_cycle5_layout_and_pl2025_sensitivities():
    r = read_aqua(AQUA_CYCLE5, "old.xml")
    assert r.layout == "stage-score" and not r.not_read
    assert [(s["number"], s["name"], s["score"]) for s in r.stages] == [
        (1, "hifa_importdata", 1.0), (2, "hifa_flagdata", 0.945), (9, "hifa_wvrgcalflag", 0.33),
        (20, "hif_makeimages", None)]
    assert r.stages[1]["metrics"] == [{"name": "%TotalDataFlagged", "value": "5.500", "units": "",
                                       "asdm": "uid___A002_Xc7111c_X3979", "score": 0.945}]
    low = r.lowest_scores(2)
    assert [(x["task"], x["score"]) for x in low] == [("hifa_wvrgcalflag", 0.33), ("hifa_flagdata", 0.945)]
    assert r.topics == {"Dataset": 1.0, "Flagging": 0.945, "Calibration": 0.33, "Imaging": None}
    s, = r.sensitivities
    assert (s["origin"], s["field"], s["spw"], s["bwmode"], s["theoretical_jy"], s["observed_jy"]) == (
        "hifa_imageprecheck", "Elias_29", "16,18,20,22", "mfs", 3.1e-05, None)
    assert s["beam_arcsec"] == [0.51, 0.43, -81.2] and r.pipeline_version.startswith("40896")
    # pipeline 2025: both values named; N/A stays unknown
    new = AQUA_CYCLE5.replace('SensitivityJyPerBeam="3.1e-05"', 'SensitivityJyPerBeam="3.1e-05" '
                              'TheoreticalSensitivityJyPerBeam="2.9e-05" ObservedSensitivityJyPerBeam="N/A" '
                              'ImageName="oussid.s18_0.Elias_29_sci.spw16_18_20_22.cont.I.iter1.image"')
    s, = read_aqua(new).sensitivities
    assert (s["theoretical_jy"], s["observed_jy"]) == (2.9e-05, None) and s["image"].endswith(".iter1.image")


def test_aqua_refusals_name_the_file():
    with pytest.raises(DeliveryError, match="x.xml: the root element is <Other>"):
        read_aqua("<Other/>", "x.xml")
    with pytest.raises(DeliveryError, match="x.xml: not well-formed XML"):
        read_aqua("<PipelineAquaReport>", "x.xml")
    with pytest.raises(DeliveryError, match="document type declaration"):
        read_aqua('<!DOCTYPE x [<!ENTITY a "b">]><PipelineAquaReport/>', "x.xml")
    assert read_aqua("<PipelineAquaReport/>").not_read == ["stage scores: the report has no <QaPerStage> element"]


#: the text of a Cycle 6 QA2 report: title-case headings, other column spellings, mas and uJy
QA2_REPORT_TEXT = """QA2 Report for Member ObsUnitSet uid://A001/X1284/X1ef2 (2018.1.00001.S)

RMS and beam size at representative frequency
  Representative frequency : 345.796 GHz (spw 25)
  Requested sensitivity: 250 uJy/beam over 30 MHz
  Requested resolution: 90 - 150 mas
  Achieved sensitivity: 0.31 mJy/beam over 30 MHz
  Synthesized beam: 112 x 88 mas, PA -72.5 deg
  Maximum recoverable scale: 1.42 arcsec

Execution blocks
  ASDM                        Ant  Start               ToS   Elevation  PWV   minBaseline[m]  maxBaseline[m]  MRS  AR
  uid___A002_Xd1ff61_X5b2e     43  2018-10-02T04:11:00  48.4  62.0       0.52  15.1            2516.8          1.42  0.11
  uid___A002_Xd20b17_X2d5       45  2018-10-03T03:58:00  48.4  59.7       0.61  15.1            2516.8          1.38  0.11
"""


def test_qa2_text_both_generations():
    q = read_qa2_text(example.QA2_TEXT, "manual.txt")
    assert q.shape == "manual QA2 text (Cycle 0-4)" and q.ms == f"{example.uid_path(example.EXECBLOCKS[0])}.ms.split"
    assert [(s["spw"], s["nchan"], s["bandwidth_mhz"], s["poln"]) for s in q.spws] == [
        ("0", 3840, 937.5, "XX YY"), ("1", 128, 2000.0, "XX YY")]
    eb, = q.execution_blocks
    assert (eb["min_baseline_m"], eb["max_baseline_m"], eb["ar_arcsec"], eb["mrs_arcsec"], eb["pwv_mm"]) == (
        15.1, 460.0, 0.58, 5.1, 1.12)
    assert q.rms == {"rep_freq_hz": 230.538e9, "rep_spw": "0", "goal_rms_jy": pytest.approx(6.0e-3),
                     "goal_bandwidth": [1.0, "km/s"], "ar_goal_arcsec": [0.4, 0.8],
                     "achieved_rms_jy": pytest.approx(2.1e-3), "achieved_bandwidth": [12.0, "MHz"],
                     "beam_arcsec": [0.62, 0.47, 80.0]}
    assert [(f.field, f.spw, f.flux_jy) for f in q.fluxes][:2] == [("J1058+0133", "0", 1.312), ("J1058+0133", "1", 1.307)]
    r = read_qa2_text(QA2_REPORT_TEXT, "report.txt")
    assert r.shape == "QA2 report text (Cycle 5+)" and not r.not_read
    assert [(e["eb"], e["nant"], e["max_baseline_m"], e["mrs_arcsec"], e["ar_arcsec"]) for e in r.execution_blocks] == [
        ("uid___A002_Xd1ff61_X5b2e", 43, 2516.8, 1.42, 0.11), ("uid___A002_Xd20b17_X2d5", 45, 2516.8, 1.38, 0.11)]
    assert r.rms["goal_rms_jy"] == pytest.approx(250e-6) and r.rms["ar_goal_arcsec"] == pytest.approx([0.09, 0.15])
    assert r.rms["beam_arcsec"] == pytest.approx([0.112, 0.088, -72.5]) and r.rms["mrs_arcsec"] == 1.42
    unknown = read_qa2_text("QA2 summary\nall good, see the PDF\n", "qa2.txt")
    assert unknown.shape == "" and unknown.not_read.startswith("none of the sections of a QA2 text file")


def test_manual_delivery_uses_the_qa2_goal_and_mrs(tmp_path):
    mous = example.build_member_ous(tmp_path / "m", "manual")
    (mous / "qa" / "uid___A002_X1_X1.qa2.txt").write_text("nothing a QA2 file has\n")
    r = qacheck(path=str(mous), outdir=str(tmp_path / "qa"), report=False)
    assert r["calibration"]["type"] == "manual" and r["calibration"]["casa_version"] == example.MANUAL_CASA_VERSION
    assert r["qa2"][0]["shape"] == "manual QA2 text (Cycle 0-4)" and not r["aqua"]
    assert [n["file"].rsplit("/", 1)[-1] for n in r["not_read"]] == ["uid___A002_X1_X1.qa2.txt"]
    cube = next(x for x in r["images"] if x["specmode"] == "cube")
    # the goal, 6 mJy/beam over 1 km/s at 230.538 GHz (768.98 kHz), scaled to the 12 MHz channels
    goal_hz = 1.0 / 299792.458 * 230.538e9
    assert cube["theoretical_jy"] == pytest.approx(6.0e-3 * math.sqrt(goal_hz / 12.0e6), rel=1e-9)
    assert cube["theoretical_from"].startswith("QA2 sensitivity goal") and cube["qa2_achieved_jy"] == pytest.approx(2.1e-3)
    assert cube["mrs_arcsec"] == 5.1 and cube["ar_goal_arcsec"] == [0.4, 0.8]


def test_readme_shapes():
    old = read_readme("ALMA project 2015.1.00123.S\nCycle: 3\nQA2 Result: SEMIPASS (sensitivity 1.3x the goal)\n"
                      "CASA version used for reduction: 4.5.3\n\nComments from the reducer:\n  The phase "
                      "calibrator is weak.\n  Spw 2 has an atmospheric line.\n", "README")
    assert (old.qa2_status, old.qa2_detail, old.cycle, old.qa2_line) == (
        "SEMIPASS", "sensitivity 1.3x the goal", "3", "README:3")
    assert old.notes == [{"heading": "Comments from the reducer", "where": "README:6",
                          "text": "The phase calibrator is weak.\nSpw 2 has an atmospheric line."}]
    new = read_readme("ALMA Member ObsUnitSet README\n=============================\nA brief description.\n\n"
                      "HOW TO\n======\n* Get the FITS products\n\nQA NOTES\n========\nQA2 Status: Pass\n"
                      "The target cube in spw 25 is dynamic-range limited.\n\nFILES\n=====\nproduct/...\n",
                      "member.README.txt")
    assert new.qa2_status == "PASS" and [n["heading"] for n in new.notes] == ["QA NOTES"]
    assert "dynamic-range limited" in new.notes[0]["text"] and "product/" not in new.notes[0]["text"]
    assert read_readme("nothing here\n").qa2_status == ""


@pytest.mark.parametrize("name, fields", [
    ("member.uid___A001_X1284_X1ef2.Elias_29_sci.spw16_18_20_22.cont.I.pbcor.fits",
     ("pipeline", "Elias_29", "science", ["16", "18", "20", "22"], "cont", "I", "", "pbcor")),
    ("member.uid___A001_X1284_X1ef2.Elias_29_sci.spw16_18_20_22.cont.I.pb.tt0.fits.gz",
     ("pipeline", "Elias_29", "science", ["16", "18", "20", "22"], "cont", "I", "tt0", "pb")),
    ("member.uid___A001_X1284_X1ef2.Elias_29_sci.spw16_18_20_22.cont.I.alpha.error.fits",
     ("pipeline", "Elias_29", "science", ["16", "18", "20", "22"], "cont", "I", "", "alpha.error")),
    ("member.uid___A001_X1284_X1ef2.J1517-2422_bp.spw16.mfs.I.pbcor.fits",
     ("pipeline", "J1517-2422", "bandpass", ["16"], "mfs", "I", "", "pbcor")),
    ("member.uid___A001_X1284_X1ef2.J1625-2527_ph.spw22.cube.I.mask.fits.gz",
     ("pipeline", "J1625-2527", "phase", ["22"], "cube", "I", "", "mask")),
    ("member.uid___A001_X1284_X1ef2.Elias_29_sci.spw20.cube.I.repBW.pbcor.fits",
     ("pipeline", "Elias_29", "science", ["20"], "repBW", "I", "", "pbcor")),
    ("TW_Hya_CO21.image.pbcor.fits", ("manual", "TW_Hya_CO21", "", [], "", "", "", "pbcor")),
    ("twhya_cont.flux.fits", ("manual", "twhya_cont", "", [], "cont", "", "", "pb")),
    ("NGC1387_spw3_line.residual", ("manual", "NGC1387_spw3_line", "", ["3"], "cube", "", "", "residual")),
])
def test_product_names(name, fields):
    p = parse_product_name(name)
    assert (p.convention, p.target, p.intent, p.spws, p.specmode, p.stokes, p.term, p.kind) == fields


def test_missing_companions():
    stem = "member.uid___A001_X1_X2.T_sci."
    found = missing_companions([parse_product_name(stem + n) for n in (
        "spw25.cube.I.pbcor.fits", "spw25.cube.I.mask.fits.gz", "spw27.cube.I.pbcor.fits", "spw27.cube.I.pb.fits.gz",
        "spw25_27.cont.I.tt0.pbcor.fits", "spw25_27.cont.I.pb.tt0.fits.gz", "spw25_27.cont.I.mask.fits.gz",
        "spw29.cube.I.pb.fits.gz")])
    assert [(f["group"].split(".")[-3], f["missing"], f["severity"]) for f in found] == [
        ("spw25", "pb", "error"), ("spw25_27", "alpha", "warning"), ("spw27", "mask", "warning"),
        ("spw29", "pbcor", "warning")]


# ----------------------------------------------------------------------------------- generated inputs
@pytest.mark.fuzz
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_fuzz_product_names(name):
    p = parse_product_name(name)
    assert p.kind == "unknown" or p.kind in __import__("almatools.delivery.products", fromlist=["x"]).IMAGE_KINDS
    assert p.convention in ("pipeline", "manual") and all(s.isdigit() for s in p.spws)


_README_LINES = st.sampled_from(["QA2 Result: PASS", "QA2 Status: semi-pass", "QA: FAIL", "Cycle: 7", "NOTES",
                                 "=====", "-----", "Comments from the reducer:", "Notes: x", "--- Notes ---",
                                 "Project code: 2019.1.00001.S", "member uid://A001/X1/X2", "", "  free text"])


@pytest.mark.fuzz
@given(st.lists(st.one_of(_README_LINES, st.text(max_size=80)), max_size=60))
def test_fuzz_readme(lines):
    r = read_readme("\n".join(lines))
    assert r.qa2_status in ("", "PASS", "SEMIPASS", "FAIL")
    assert all(len(n["text"]) <= 20_000 and n["text"] for n in r.notes)


_QA2_LINES = st.sampled_from(example.QA2_TEXT.splitlines() + QA2_REPORT_TEXT.splitlines()
                             + ["EXECUTION BLOCKS", "FREQUENCY INFORMATION", " SpwID #Chans", " x 1 2 3",
                                "Achieved rms: 1e999 mJy", "Representative frequency: 1e-400 GHz"])


@pytest.mark.fuzz
@given(st.lists(st.one_of(_QA2_LINES, st.text(max_size=120)), max_size=80))
def test_fuzz_qa2_text(lines):
    q = read_qa2_text("\n".join(lines), "f.txt")
    assert bool(q.shape) != bool(q.not_read)
    assert all(isinstance(r.get("spw", "0"), str) for r in q.spws)


_AQUA_PIECES = st.sampled_from([
    '<Stage Number="1" Name="a" Score="0.5"/>', '<Stage Number="x" Name="b"/>', '<Stage Name="c" Score="nan"/>',
    '<Stage Number="2" Name="d"><RepresentativeScore Score="1e9" Reason="r"><Metric Name="m" Value="v"/>'
    '</RepresentativeScore><SubScore Score="-1" Reason="s"/></Stage>',
    '<Sensitivity Field="f" MsSpwId="1" SensitivityJyPerBeam="N/A" BeamMajArcsec="inf"/>',
    '<FluxMeasurement FluxJy="x" FrequencyGHz="-1"/>', "<Other/>", "text", "&amp;", "<![CDATA[x]]>"])


@pytest.mark.fuzz
@given(st.lists(_AQUA_PIECES, max_size=30), st.lists(_AQUA_PIECES, max_size=30), st.text(max_size=40))
def test_fuzz_aqua(stages, sens, junk):
    text = (f"<PipelineAquaReport><QaPerStage>{''.join(stages)}</QaPerStage><QaPerTopic><Imaging Score='{junk}'>"
            f"<ImageSensitivity><ImageSensitivities Origin='hif_makeimages'>{''.join(sens)}</ImageSensitivities>"
            "</ImageSensitivity></Imaging></QaPerTopic></PipelineAquaReport>")
    try:
        r = read_aqua(text, "f.xml")
    except DeliveryError as exc:
        assert str(exc).startswith("f.xml: ")
        return
    assert all(s["score"] is None or 0 <= s["score"] <= 1 for s in r.stages)
    assert all(x["score"] is not None for x in r.lowest_scores(10))


def test_topo_contdat_is_converted_to_the_image_frame(sim_delivery, tmp_path):
    """A cont.dat in TOPO (v1 files have no frame) against an LSRK cube: the ranges move by the LSRK/TOPO
    factor at the observation, which CASA measures give independently here."""
    from astropy.io import fits
    d = sim_delivery
    mous = tmp_path / f"member.{M}"
    shutil.copytree(d["mous"], mous)
    cube = mous / "product" / f"{d['names']['cube']}.pbcor.fits"
    h = fits.getheader(cube)
    freqs = h["CRVAL3"] + (np.arange(NCHAN) + 1 - h["CRPIX3"]) * h["CDELT3"]
    half = abs(h["CDELT3"]) / 2
    lo, hi = freqs[10] - half, freqs[29] + half  # as TOPO numbers
    (mous / "calibration" / f"member.{M}.cont.dat").write_text(
        f"Field: SIM\n\nSpectralWindow: 0\n{lo / 1e9:.10f}~{hi / 1e9:.10f}GHz TOPO\n")
    ct = _casa()
    me, qa = ct.measures(), ct.quanta()
    try:
        from astropy.time import Time
        me.doframe(me.observatory("ALMA"))
        me.doframe(me.direction("J2000", f"{h['CRVAL1']}deg", f"{h['CRVAL2']}deg"))
        me.doframe(me.epoch("UTC", qa.quantity(Time(h["DATE-OBS"], scale="utc").mjd, "d")))
        factor = me.measure(me.frequency("TOPO", qa.quantity(100e9, "Hz")), "LSRK")["m0"]["value"] / 100e9
    finally:
        me.done()
    inside = (freqs - half >= lo * factor - 1e-6 * half) & (freqs + half <= hi * factor + 1e-6 * half)
    unconverted = (freqs - half >= lo - 1e-6 * half) & (freqs + half <= hi + 1e-6 * half)
    assert inside.sum() != unconverted.sum() or (inside != unconverted).any()  # the conversion matters here
    r = qacheck(path=str(mous), outdir=str(tmp_path / "qa"), include=["*cube*"], report=False)
    row, = r["images"]
    assert row["linefree_channels"] == int(inside.sum())
    assert "converted from TOPO to LSRK at the observation date" in row["rms_from"]
    from astropy.table import Table
    channels = Table.read(tmp_path / "qa" / "channels.ecsv")
    assert {int(c["channel"]) for c in channels if c["linefree"]} == {int(k) for k in np.flatnonzero(inside)}
