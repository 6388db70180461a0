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
