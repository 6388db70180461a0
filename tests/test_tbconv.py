"""tbconv against astropy, radio-beam, the Planck closed form and independent per-plane numpy,
on CASA images and FITS cubes the tests make with casatools."""

import hashlib
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from astropy import constants as const
from astropy import units as u
from astropy.io import fits
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from almatools.casa_tasks import tbconv
from almatools.casaenv import casatools
from almatools.errors import AlmatoolsError, InputFileError, ResourceLimitError, TaskParameterError
from almatools.plugins.brightness.images import ImageFileError

pytestmark = pytest.mark.casa

NCHAN, NX = 6, 16
F0, DF = 230.0e9, 0.5e9
REST = 230.538e9


def beams_for(nchan, npol):
    """Distinct per-plane beams (arcsec, arcsec, deg)."""
    return [[(1.2 + 0.05 * c + 0.02 * p, 0.6 + 0.03 * c, 10.0 * c) for p in range(npol)] for c in range(nchan)]


def make_casa_cube(path, stokes=("I", "V"), order="freq-last", unit="Jy/beam", per_plane=True, spectral=True,
                   nx=NX, nchan=NCHAN):
    """A cube with known pixels, beams and frequencies, written with the CASA toolkit."""
    ct = casatools()
    cs0, ia = ct.coordsys(), ct.image()
    csys = cs0.newcoordsys(direction=True, spectral=spectral, stokes=list(stokes))
    try:
        names = csys.names()
        if spectral:
            csys.setreferencevalue(value=F0, type="spectral")
            csys.setincrement(value=DF, type="spectral")
            csys.setreferencepixel(value=0, type="spectral")
            csys.setrestfrequency(f"{REST}Hz")
            if order == "stokes-last":  # RA, Dec, Freq, Stokes
                csys.transpose([0, 1, 3, 2])
        csys.setincrement(value=["-0.1arcsec", "0.1arcsec"], type="direction")
        names = csys.names()
        shape = [nx, nx + 3] + [nchan if "Frequency" in n else len(stokes) for n in names[2:]]
        rng = np.random.default_rng(1)
        pixels = rng.normal(0.05, 0.2, shape)  # negative pixels too
        ia.fromarray(outfile=str(path), pixels=pixels, csys=csys.torecord(), overwrite=True)
        ia.setbrightnessunit(unit)
        pixels = ia.getchunk()  # as stored (float32)
        if per_plane and spectral:
            for c, row in enumerate(beams_for(nchan, len(stokes))):
                for p, (bmaj, bmin, bpa) in enumerate(row):
                    ia.setrestoringbeam(major=f"{bmaj}arcsec", minor=f"{bmin}arcsec", pa=f"{bpa}deg",
                                        channel=c, polarization=p)
        elif per_plane:
            ia.setrestoringbeam(major="1.2arcsec", minor="0.6arcsec", pa="0deg")
        ia.done()
        return pixels, names
    finally:
        csys.done()
        cs0.done()


def export_fits(image, fitsfile):
    ia = casatools().image()
    try:
        ia.open(str(image))
        ia.tofits(outfile=str(fitsfile), velocity=False, overwrite=True)
    finally:
        ia.done()


def read_casa(image):
    ia = casatools().image()
    try:
        ia.open(str(image))
        return ia.getchunk(), ia.brightnessunit(), ia.history(list=False)
    finally:
        ia.done()


def expected_kelvin(pixels, names, nstokes):
    """Independent per-plane RJ conversion with astropy's equivalency (CASA array order)."""
    out = np.empty_like(pixels, dtype=float)
    fax = names.index("Frequency")
    sax = names.index("Stokes")
    nchan = pixels.shape[fax]
    for c in range(nchan):
        for p in range(nstokes):
            bmaj, bmin, _ = beams_for(nchan, nstokes)[c][p]
            area = (2 * np.pi / (8 * np.log(2))) * (bmaj * u.arcsec) * (bmin * u.arcsec)
            factor = (1 * u.Jy).to_value(u.K, u.brightness_temperature(F0 * u.Hz + c * DF * u.Hz, beam_area=area))
            idx = [slice(None)] * pixels.ndim
            idx[fax], idx[sax] = c, p
            out[tuple(idx)] = pixels[tuple(idx)] * factor
    return out


# --- values -------------------------------------------------------------------------------------

@pytest.mark.parametrize("freq_ghz, bmaj, bmin", [(230.0, 1.2, 0.6), (97.5, 3.1, 2.2), (345.8, 0.05, 0.04),
                                                  (660.0, 0.3, 0.3)])
def test_rj_values_match_astropy_and_radio_beam(freq_ghz, bmaj, bmin):
    from radio_beam import Beam
    values = [1.0, -0.37, 12.5e-3]
    r = tbconv(values=values, inunit="Jy/beam", freq=f"{freq_ghz}GHz", beam=[f"{bmaj}arcsec", f"{bmin}arcsec"])
    beam = Beam(major=bmaj * u.arcsec, minor=bmin * u.arcsec)
    jtok = beam.jtok(freq_ghz * u.GHz).to_value(u.K)
    astropy = (np.array(values) * u.Jy).to_value(u.K, u.brightness_temperature(freq_ghz * u.GHz, beam_area=beam.sr))
    assert r["approximation"] == "rj" and r["outunit"] == "K"
    np.testing.assert_allclose(r["converted"], astropy, rtol=1e-9)
    np.testing.assert_allclose(r["converted"], np.array(values) * jtok, rtol=1e-9)


def test_planck_against_closed_form_and_the_domain_example():
    r = tbconv(values=[1.0], inunit="Jy/beam", freq="230GHz", beam=["1.2arcsec", "0.6arcsec"], approximation="planck")
    rj = tbconv(values=[1.0], inunit="Jy/beam", freq="230GHz", beam=["1.2arcsec", "0.6arcsec"])
    assert round(rj["converted"][0], 3) == 32.087 and round(r["converted"][0], 3) == 37.334
    nu = 230e9 * u.Hz
    omega = np.pi * (1.2 * u.arcsec) * (0.6 * u.arcsec) / (4 * np.log(2))
    intensity = (1 * u.Jy / omega.to(u.sr)).to(u.W / u.m ** 2 / u.Hz / u.sr) * u.sr
    closed = (const.h * nu / const.k_B / np.log(1 + 2 * const.h * nu ** 3 / (const.c ** 2 * intensity))).to_value(u.K)
    assert r["converted"][0] == pytest.approx(closed, rel=1e-12)
    assert r["approximation"] == "planck"


@pytest.mark.parametrize("approximation", ["rj", "planck"])
def test_round_trips(approximation):
    kelvin = np.array([0.5, 3.7, 30.0, 300.0, -2.0, 0.0])
    if approximation == "rj":
        kelvin = np.append(kelvin, 1e-3)  # a Planck 1 mK at 345 GHz is an intensity below float64's range
    kw = dict(freq="345GHz", beam=["0.8arcsec", "0.5arcsec", "45deg"], approximation=approximation)
    jy = tbconv(values=list(kelvin), inunit="K", **kw)
    assert jy["outunit"] == "Jy/beam"
    back = tbconv(values=jy["converted"], inunit="Jy/beam", **kw)["converted"]
    np.testing.assert_allclose(back, kelvin, rtol=1e-12, atol=1e-15)


def test_jy_per_sr_and_per_pixel():
    freq = 115.27 * u.GHz
    r = tbconv(values=[1e9], inunit="Jy/sr", freq="115.27GHz")
    assert r["converted"][0] == pytest.approx((1e9 * u.Jy / u.sr).to_value(u.K, u.brightness_temperature(freq)),
                                              rel=1e-9)
    pix = tbconv(values=[2e-3], inunit="Jy/pixel", outunit="Jy/beam", cell="0.1arcsec",
                 beam=["1.0arcsec", "1.0arcsec"])
    assert pix["converted"][0] == pytest.approx(2e-3 * (np.pi / (4 * np.log(2))) / 0.01, rel=1e-12)



def test_kelvin_and_jy_per_beam_to_jy_per_pixel():
    """Output in Jy/pixel: the pixel's solid angle from cell, against astropy's equivalency on that area."""
    freq, pixel = 230 * u.GHz, (0.1 * u.arcsec) ** 2
    r = tbconv(values=[1.0, 25.0], inunit="K", outunit="Jy/pixel", freq="230GHz", cell="0.1arcsec")
    expected = (np.array([1.0, 25.0]) * u.K).to_value(u.Jy, u.brightness_temperature(freq, beam_area=pixel))
    np.testing.assert_allclose(r["converted"], expected, rtol=1e-9)
    beam = np.pi / (4 * np.log(2)) * (1.2 * u.arcsec) * (0.6 * u.arcsec)
    b = tbconv(values=[0.5], inunit="Jy/beam", outunit="Jy/pixel", cell="0.1arcsec", beam=["1.2arcsec", "0.6arcsec"],
               freq="230GHz")
    assert b["converted"][0] == pytest.approx(0.5 * (pixel / beam).to_value(u.dimensionless_unscaled), rel=1e-12)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_planck_at_exactly_one_kelvin_and_one_jansky_per_steradian(sign):
    """The Planck forms at values of exactly ±1 (the zero guard must test for zero only), against astropy's
    BlackBody for K → Jy/sr and the closed-form inverse for Jy/sr → K (negative values keep their sign)."""
    from astropy.modeling.models import BlackBody
    nu = 345 * u.GHz
    to_sr = tbconv(values=[sign], inunit="K", outunit="Jy/sr", freq="345GHz", approximation="planck")["converted"][0]
    blackbody = BlackBody(temperature=1 * u.K)(nu).to_value(u.Jy / u.sr)
    assert to_sr == pytest.approx(sign * blackbody, rel=1e-9)
    to_k = tbconv(values=[sign], inunit="Jy/sr", freq="345GHz", approximation="planck")["converted"][0]
    intensity = (1 * u.Jy / u.sr).to(u.W / u.m ** 2 / u.Hz / u.sr) * u.sr
    closed = (const.h * nu / const.k_B / np.log(1 + 2 * const.h * nu ** 3 / (const.c ** 2 * intensity))).to_value(u.K)
    assert to_k == pytest.approx(sign * closed, rel=1e-12)


# --- images -------------------------------------------------------------------------------------

@pytest.mark.parametrize("order", ["freq-last", "stokes-last"])
def test_casa_cube_with_per_plane_beams_plane_by_plane(tmp_path, order):
    pixels, names = make_casa_cube(tmp_path / "cube.image", order=order)
    r = tbconv(imagename=str(tmp_path / "cube.image"))
    assert r["outfile"] == str(tmp_path / "cube.image.K") and r["beams"] == NCHAN * 2 and r["nplanes"] == NCHAN * 2
    out, bunit, history = read_casa(tmp_path / "cube.image.K")
    assert bunit == "K" and any("tbconv: Jy/beam -> K (Rayleigh-Jeans)" in h for h in history)
    np.testing.assert_allclose(out, expected_kelvin(pixels, names, 2), rtol=2e-7)
    back = tbconv(imagename=str(tmp_path / "cube.image.K"))
    np.testing.assert_allclose(read_casa(back["outfile"])[0], pixels, rtol=1e-6, atol=1e-7)


def test_fits_and_casa_paths_agree_and_keep_header_beams_and_nans(tmp_path):
    pixels, names = make_casa_cube(tmp_path / "cube.image", order="stokes-last")
    export_fits(tmp_path / "cube.image", tmp_path / "cube.fits")
    with fits.open(tmp_path / "cube.fits", mode="update") as hdul:  # blank a corner, as pbcor images are
        hdul[0].data[:, :, :3, :3] = np.nan
    before = hashlib.sha256((tmp_path / "cube.fits").read_bytes()).hexdigest()
    r = tbconv(imagename=str(tmp_path / "cube.fits"))
    assert r["outfile"] == str(tmp_path / "cube.K.fits") and r["format"] == "fits"
    assert hashlib.sha256((tmp_path / "cube.fits").read_bytes()).hexdigest() == before  # input untouched
    casa = tbconv(imagename=str(tmp_path / "cube.image"))
    with fits.open(tmp_path / "cube.fits") as src, fits.open(tmp_path / "cube.K.fits") as dst:
        assert dst[0].header["BUNIT"] == "K" and "tbconv" in str(dst[0].header["HISTORY"])
        for key in src[0].header:
            if key not in ("BUNIT", "HISTORY", "COMMENT", ""):
                assert dst[0].header[key] == src[0].header[key], key
        assert dst["BEAMS"].data.tobytes() == src["BEAMS"].data.tobytes()
        nan = np.isnan(src[0].data)
        src_data = src[0].data.copy()
        assert nan.sum() == NCHAN * 2 * 9 and np.array_equal(np.isnan(dst[0].data), nan)
        fits_k = dst[0].data
    casa_k = read_casa(casa["outfile"])[0]  # CASA order [x, y, freq, stokes]; FITS numpy order reversed
    np.testing.assert_allclose(np.where(nan, 0, fits_k), np.where(nan, 0, casa_k.T), rtol=1e-6)
    brightest = np.nanargmax(np.where(nan, np.nan, src_data))
    assert r["peak"]["Jy/beam"] == pytest.approx(float(src_data.flat[brightest]), rel=1e-7)
    assert r["peak"]["K"] == pytest.approx(float(fits_k.flat[brightest]), rel=1e-6)


# --- streaming in blocks: the module the task runs is the one patched, and the path is proven to run ---

def streaming_module():
    """The images module the registered task uses (``almatools.plugins.brightness``; the checkout's
    ``plugins`` package is another module object, and patching it changes nothing)."""
    from almatools.plugins.brightness import images, task_tbconv
    assert task_tbconv.images is images
    return images


@pytest.mark.parametrize("block_planes", [0.3, 1.0, 2.5])
def test_fits_streams_in_blocks_and_every_block_gets_its_planes_factor(tmp_path, monkeypatch, block_planes):
    images = streaming_module()
    nx, nchan = 24, 7
    pixels, names = make_casa_cube(tmp_path / "cube.image", order="stokes-last", nx=nx, nchan=nchan)
    export_fits(tmp_path / "cube.image", tmp_path / "cube.fits")
    plane_values, nplanes = nx * (nx + 3), nchan * 2
    block_values = int(plane_values * block_planes)
    monkeypatch.setattr(images, "BLOCK_BYTES", block_values * 4)
    many = tbconv(imagename=str(tmp_path / "cube.fits"), outfile=str(tmp_path / "many.fits"))
    # blocks hold whole planes, or pieces of one plane when a plane does not fit
    expected_blocks = (nplanes * -(-plane_values // block_values) if block_values < plane_values
                       else -(-nplanes // (block_values // plane_values)))
    assert many["method"] == "stream" and many["blocks"] == expected_blocks > 1
    np.testing.assert_allclose(fits.getdata(tmp_path / "many.fits").T, expected_kelvin(pixels, names, 2), rtol=2e-7)
    monkeypatch.setattr(images, "BLOCK_BYTES", 2**30)
    one = tbconv(imagename=str(tmp_path / "cube.fits"), outfile=str(tmp_path / "one.fits"))
    assert one["blocks"] == 1
    assert (tmp_path / "one.fits").read_bytes() == (tmp_path / "many.fits").read_bytes()
    assert one["peak"] == many["peak"] and many["peak"]["Jy/beam"] == pytest.approx(float(pixels.max()), rel=1e-7)


def casa_tiles(image):
    """(tile shape, number of tiles) of a CASA image, read from its table's data-manager record."""
    tb = casatools().table()
    try:
        tb.open(str(image))
        cube = tb.getdminfo()["*1"]["SPEC"]["HYPERCUBES"]["*1"]
        shape, tile = np.array(cube["CubeShape"]), np.array(cube["TileShape"])
    finally:
        tb.done()
    return tile, int(np.prod(-(-shape // tile)))


@pytest.mark.parametrize("approximation", ["rj", "planck"])
def test_casa_image_streams_tile_by_tile_with_edge_tiles(tmp_path, monkeypatch, approximation):
    images = streaming_module()
    pixels, names = make_casa_cube(tmp_path / "cube.image", nx=131, nchan=19)  # CASA cuts it into 66x67x1x10 tiles
    tile, ntiles = casa_tiles(tmp_path / "cube.image")
    assert ntiles > 1 and any(n % t for n, t in zip(pixels.shape, tile))  # several tiles, some of them padded
    monkeypatch.setattr(images, "BLOCK_BYTES", 1)  # one tile per block
    r = tbconv(imagename=str(tmp_path / "cube.image"), approximation=approximation)
    assert r["method"] == "tiles" and r["blocks"] == ntiles
    out = read_casa(r["outfile"])[0]
    if approximation == "rj":
        np.testing.assert_allclose(out, expected_kelvin(pixels, names, 2), rtol=2e-7)
    else:  # every plane against values mode, which is checked against the closed form above
        for c, p in ((0, 0), (9, 1), (10, 0), (18, 1)):  # both sides of the channel tile edge, the last plane
            bmaj, bmin, _ = beams_for(19, 2)[c][p]
            ref = tbconv(values=list(pixels[-3:, :3, p, c].ravel()), inunit="Jy/beam", freq=f"{F0 + c * DF}Hz",
                         beam=[f"{bmaj}arcsec", f"{bmin}arcsec"], approximation="planck")["converted"]
            np.testing.assert_allclose(out[-3:, :3, p, c].ravel(), ref, rtol=2e-6)
        assert r["peak"]["Jy/beam"] == pytest.approx(float(pixels.max()), rel=1e-7)


def test_velocity_axis_fits_uses_rest_frequency(tmp_path):
    nchan = 5
    data = np.ones((nchan, 8, 8), np.float32)
    header = fits.Header()
    header.update(NAXIS=3, CTYPE1="RA---SIN", CRVAL1=165.0, CDELT1=-2.8e-5, CRPIX1=4, CUNIT1="deg",
                  CTYPE2="DEC--SIN", CRVAL2=-34.7, CDELT2=2.8e-5, CRPIX2=4, CUNIT2="deg",
                  CTYPE3="VRAD", CRVAL3=-5000.0, CDELT3=2500.0, CRPIX3=1, CUNIT3="m/s", RESTFRQ=REST,
                  SPECSYS="LSRK", BUNIT="Jy/beam", BMAJ=1.0 / 3600, BMIN=0.5 / 3600, BPA=0.0)
    fits.PrimaryHDU(data, header).writeto(tmp_path / "v.fits")
    r = tbconv(imagename=str(tmp_path / "v.fits"))
    v = (-5000.0 + 2500.0 * np.arange(nchan)) * u.m / u.s
    freqs = v.to(u.Hz, u.doppler_radio(REST * u.Hz))
    area = np.pi / (4 * np.log(2)) * u.arcsec ** 2 * 0.5
    expected = (1 * u.Jy).to_value(u.K, u.brightness_temperature(freqs, beam_area=area))
    got = fits.getdata(tmp_path / "v.K.fits")[:, 0, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert r["freq_hz"]["min"] == pytest.approx(freqs.min().value, rel=1e-12)


def test_cross_format_and_inplace(tmp_path):
    pixels, names = make_casa_cube(tmp_path / "cube.image", order="stokes-last")  # FITS order too
    to_fits = tbconv(imagename=str(tmp_path / "cube.image"), outformat="fits")
    assert to_fits["outfile"] == str(tmp_path / "cube.image.K.fits")
    expected = expected_kelvin(pixels, names, 2)
    np.testing.assert_allclose(fits.getdata(to_fits["outfile"]).T, expected, rtol=2e-7)
    export_fits(tmp_path / "cube.image", tmp_path / "cube.fits")
    to_casa = tbconv(imagename=str(tmp_path / "cube.fits"), outformat="casa", outfile=str(tmp_path / "k.image"))
    np.testing.assert_allclose(read_casa(to_casa["outfile"])[0], expected, rtol=2e-7)
    tbconv(imagename=str(tmp_path / "cube.fits"), inplace=True)
    assert fits.getheader(tmp_path / "cube.fits")["BUNIT"] == "K"
    np.testing.assert_allclose(fits.getdata(tmp_path / "cube.fits").T, expected, rtol=2e-7)


def test_refusals_are_clear(tmp_path):
    make_casa_cube(tmp_path / "nobeam.image", per_plane=False)
    with pytest.raises(TaskParameterError, match=r"'beam'.*has no restoring beam: give one"):
        tbconv(imagename=str(tmp_path / "nobeam.image"))
    ok = tbconv(imagename=str(tmp_path / "nobeam.image"), beam=["1arcsec", "1arcsec"])
    assert ok["beams"] == 1
    make_casa_cube(tmp_path / "model.image", unit="Jy/pixel")
    with pytest.raises(TaskParameterError, match="Jy/pixel.*convolve it with a beam first"):
        tbconv(imagename=str(tmp_path / "model.image"))
    make_casa_cube(tmp_path / "mfs.image", spectral=False, stokes=("I",))
    with pytest.raises(TaskParameterError, match=r"'freq'.*has no spectral axis"):
        tbconv(imagename=str(tmp_path / "mfs.image"))
    assert tbconv(imagename=str(tmp_path / "mfs.image"), freq="230GHz")["freq_hz"]["n"] == 1
    with pytest.raises(TaskParameterError, match="must be > 0"):
        tbconv(values=[1.0], inunit="Jy/beam", freq="230GHz", beam=["0arcsec", "0arcsec"])
    with pytest.raises(TaskParameterError, match="exists; set overwrite=True"):
        tbconv(imagename=str(tmp_path / "mfs.image"), freq="230GHz")
    with pytest.raises(TaskParameterError, match="either imagename or values"):
        tbconv(imagename=str(tmp_path / "mfs.image"), values=[1.0])
    with pytest.raises(TaskParameterError, match="'freq'.*quantity in Hz"):
        tbconv(values=[1.0], inunit="K", freq="230", beam=["1arcsec", "1arcsec"])
    with pytest.raises(ValueError, match="inunit"):
        tbconv(values=[1.0], inunit="mJy", freq="230GHz")


def test_planck_cube_plane_by_plane_equals_values_mode(tmp_path):
    pixels, names = make_casa_cube(tmp_path / "cube.image", order="stokes-last")
    r = tbconv(imagename=str(tmp_path / "cube.image"), approximation="planck")
    out = read_casa(r["outfile"])[0]
    for c, p in ((0, 0), (3, 1), (NCHAN - 1, 1)):
        bmaj, bmin, _ = beams_for(NCHAN, 2)[c][p]
        ref = tbconv(values=list(pixels[:4, :4, c, p].ravel()), inunit="Jy/beam", freq=f"{F0 + c * DF}Hz",
                     beam=[f"{bmaj}arcsec", f"{bmin}arcsec"], approximation="planck")["converted"]
        np.testing.assert_allclose(out[:4, :4, c, p].ravel(), ref, rtol=2e-6)
    assert r["approximation"] == "planck"


# --- hostile and broken files: a clear error naming the file, and nothing left behind -------------

def raw_fits(cards, data: bytes = b"", tail: bytes = b"") -> bytes:
    """A FITS file written card by card (values as FITS text), so headers astropy would refuse to write
    (NAN, T for a length, missing keywords) can be made."""
    text = "".join(key.ljust(80) if value is None else f"{key:<8}= {value:>20}".ljust(80)[:80] for key, value in cards)
    text += "END".ljust(80)
    text += " " * (-len(text) % 2880)
    return text.encode("ascii") + data + b"\0" * (-len(data) % 2880) + tail


GOOD_CARDS = [("SIMPLE", "T"), ("BITPIX", "-32"), ("NAXIS", "3"), ("NAXIS1", "4"), ("NAXIS2", "5"), ("NAXIS3", "3"),
              ("CTYPE1", "'RA---SIN'"), ("CRVAL1", "165.0"), ("CDELT1", "-2.8E-05"), ("CRPIX1", "2.0"),
              ("CUNIT1", "'deg'"), ("CTYPE2", "'DEC--SIN'"), ("CRVAL2", "-34.7"), ("CDELT2", "2.8E-05"),
              ("CRPIX2", "3.0"), ("CUNIT2", "'deg'"), ("CTYPE3", "'FREQ'"), ("CRVAL3", "2.3E+11"),
              ("CDELT3", "1.0E+09"), ("CRPIX3", "1.0"), ("CUNIT3", "'Hz'"), ("BUNIT", "'Jy/beam'"),
              ("BMAJ", "2.777777777777778E-04"), ("BMIN", "1.388888888888889E-04"), ("BPA", "0.0")]
GOOD_DATA = (np.arange(60.0).reshape(3, 5, 4) / 10 - 2.0).astype(">f4")


def only(directory, *names):
    """The directory holds exactly these names: no output, no temporary, nothing hidden."""
    assert sorted(p.name for p in directory.iterdir()) == sorted(names)


def test_image_file_errors_are_input_file_errors():
    assert issubclass(ImageFileError, InputFileError)


def test_raw_fits_helper_makes_a_file_astropy_reads_back(tmp_path):
    (tmp_path / "ok.fits").write_bytes(raw_fits(GOOD_CARDS, GOOD_DATA.tobytes()))
    assert np.array_equal(fits.getdata(tmp_path / "ok.fits"), GOOD_DATA)
    r = tbconv(imagename=str(tmp_path / "ok.fits"))
    freqs = (230e9 + 1e9 * np.arange(3)) * u.Hz
    area = np.pi / (4 * np.log(2)) * (1.0 * u.arcsec) * (0.5 * u.arcsec)
    factors = (1 * u.Jy).to_value(u.K, u.brightness_temperature(freqs, beam_area=area))
    np.testing.assert_allclose(fits.getdata(tmp_path / "ok.K.fits"), GOOD_DATA * factors[:, None, None], rtol=1e-6)
    assert r["blocks"] == 1


@pytest.mark.fuzz
@given(cut=st.integers(min_value=0, max_value=2 * 2880 - 1))
def test_truncated_fits_is_an_error_naming_the_file_and_leaves_nothing(tmp_path_factory, cut):
    """A file cut anywhere (header, data, the data's padding, the BEAMS extension) is refused."""
    tmp = tmp_path_factory.mktemp("cut")
    beams = fits.BinTableHDU.from_columns([fits.Column(name=n, format=f, unit=un, array=a) for n, f, un, a in (
        ("BMAJ", "1E", "arcsec", [1.0, 1.1, 1.2]), ("BMIN", "1E", "arcsec", [0.5] * 3), ("BPA", "1E", "deg", [0.0] * 3),
        ("CHAN", "1J", None, [0, 1, 2]), ("POL", "1J", None, [0] * 3))], name="BEAMS")
    whole = raw_fits(GOOD_CARDS, GOOD_DATA.tobytes(), beams.header.tostring().encode() + beams.data.tobytes()
                     + b"\0" * (-len(beams.data.tobytes()) % 2880))
    assert len(whole) == 4 * 2880
    path = tmp / "cube.fits"
    path.write_bytes(whole[:len(whole) - 1 - cut])
    if len(whole) - 1 - cut == 2 * 2880:  # cut exactly after the primary HDU: a complete file without BEAMS
        assert tbconv(imagename=str(path))["beams"] == 1
        return
    with pytest.raises(AlmatoolsError, match=r"cube\.fits.*(truncated|cut short)"):
        tbconv(imagename=str(path))
    only(tmp, "cube.fits")


def test_a_file_that_shrinks_while_it_is_read_is_an_error_and_no_output_is_left(tmp_path, monkeypatch):
    images = streaming_module()
    path = tmp_path / "cube.fits"
    data = np.ones((8, 16, 16), ">f4")
    path.write_bytes(raw_fits([("SIMPLE", "T"), ("BITPIX", "-32"), ("NAXIS", "3"), ("NAXIS1", "16"), ("NAXIS2", "16"),
                               ("NAXIS3", "8"), ("BUNIT", "'K'")], data.tobytes()))
    real = images._read_exactly
    calls = []

    def truncate_after_the_first_block(src, values, info):  # another program truncates the file meanwhile
        if calls:
            os.truncate(path, 2880 + 3 * 16 * 16 * 4)
        calls.append(1)
        real(src, values, info)
    monkeypatch.setattr(images, "_read_exactly", truncate_after_the_first_block)
    monkeypatch.setattr(images, "BLOCK_BYTES", 16 * 16 * 4)
    with pytest.raises(ImageFileError, match=r"cube\.fits: is truncated or shrank while it was read"):
        tbconv(imagename=str(path), freq="230GHz", beam=["1arcsec", "1arcsec"])
    only(tmp_path, "cube.fits")


@pytest.mark.parametrize("cards, message", [
    ([("NAXIS", "0")], r"no image data \(NAXIS = 0\)"),
    ([("NAXIS3", "0")], r"NAXIS3 has length 0"),
    ([("NAXIS2", "-5")], r"NAXIS2 = -5"),
    ([("NAXIS1", "T")], r"NAXIS1 = True is not an integer"),
    ([("NAXIS3", "999999999")], r"truncated: its header announces"),
    ([("BITPIX", "-31")], r"BITPIX = -31"),
    ([("BMAJ", "NAN")], r"primary header keyword BMAJ is unreadable"),
    ([("CRPIX3", "''")], r"CRPIX3 = '' is not a number"),
    ([("BMAJ", "0.0")], r"beams must be finite and > 0"),
    ([("BMIN", "-1.0E-04")], r"beams must be finite and > 0"),
    ([("BMAJ", "1.0E+400")], r"BMAJ = inf is not finite"),
    ([("BMAJ", "'big'")], r"BMAJ = 'big' is not a number"),
    ([("CDELT3", "-2.0E+11")], r"gives frequency -170000000000\.0 Hz at pixel 2: frequencies must be finite and > 0"),
    ([("CTYPE3", "'VRAD'"), ("CUNIT3", "'m/s'")], r"velocity axis and the header has no RESTFRQ"),
])
def test_impossible_headers_are_refused_naming_the_file(tmp_path, cards, message):
    replaced = dict(cards)
    path = tmp_path / "bad.fits"
    path.write_bytes(raw_fits([(k, replaced.get(k, v)) for k, v in GOOD_CARDS], GOOD_DATA.tobytes()))
    with pytest.raises(ImageFileError, match=rf"bad\.fits: .*{message}"):
        tbconv(imagename=str(path))
    only(tmp_path, "bad.fits")


def test_a_bad_beam_is_refused_unless_a_beam_is_given(tmp_path):
    make_casa_cube(tmp_path / "cube.image", order="stokes-last")
    export_fits(tmp_path / "cube.image", tmp_path / "cube.fits")
    with fits.open(tmp_path / "cube.fits", mode="update") as hdul:
        hdul["BEAMS"].data["BMAJ"][3] = np.nan  # channel 1, polarization 1 (rows are channel-major per pol)
        chan, pol = int(hdul["BEAMS"].data["CHAN"][3]), int(hdul["BEAMS"].data["POL"][3])
    with pytest.raises(ImageFileError, match=rf"cube\.fits: has the beam nan x .* for channel {chan}, "
                                             rf"polarization {pol} \(1 bad plane\(s\)\)"):
        tbconv(imagename=str(tmp_path / "cube.fits"))
    r = tbconv(imagename=str(tmp_path / "cube.fits"), beam=["1.2arcsec", "0.6arcsec"])  # the user's beam replaces it
    assert r["beams"] == 1
    # a CASA image whose stored per-plane beams hold a NaN (written with the table tool)
    tb = casatools().table()
    try:
        tb.open(str(tmp_path / "cube.image"), nomodify=False)
        info = tb.getkeyword("imageinfo")
        info["perplanebeams"]["*2"]["minor"]["value"] = float("nan")
        tb.putkeyword("imageinfo", info)
    finally:
        tb.done()
    with pytest.raises(ImageFileError, match=r"cube\.image: has the beam .* x nan arcsec.* for channel 2, polarization 0"):
        tbconv(imagename=str(tmp_path / "cube.image"))


def test_beams_table_missing_planes_is_refused(tmp_path):
    make_casa_cube(tmp_path / "cube.image", order="stokes-last")
    export_fits(tmp_path / "cube.image", tmp_path / "cube.fits")
    with fits.open(tmp_path / "cube.fits") as hdul:
        beams = hdul["BEAMS"]
        kept = fits.BinTableHDU(beams.data[beams.data["CHAN"] != 4], header=beams.header, name="BEAMS")
        fits.HDUList([hdul[0], kept]).writeto(tmp_path / "holes.fits")
    with pytest.raises(ImageFileError, match=r"holes\.fits: has no beam for channel 4, polarization 0"):
        tbconv(imagename=str(tmp_path / "holes.fits"))


def test_a_fifo_or_a_directory_that_is_no_image_is_refused_without_waiting(tmp_path):
    os.mkfifo(tmp_path / "pipe.fits")
    signal.alarm(20)  # opening a FIFO for reading would block forever
    try:
        with pytest.raises(ImageFileError, match=r"pipe\.fits: is neither a regular file"):
            tbconv(imagename=str(tmp_path / "pipe.fits"))
    finally:
        signal.alarm(0)
    (tmp_path / "dir.image").mkdir()
    with pytest.raises(ImageFileError, match=r"dir\.image: is a directory that CASA cannot open as an image"):
        tbconv(imagename=str(tmp_path / "dir.image"))


@pytest.mark.fuzz
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(changes=st.dictionaries(
    st.sampled_from(["BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "BMAJ", "BMIN", "BPA", "CRVAL3", "CDELT3",
                     "CRPIX3", "CTYPE3", "CUNIT3", "BUNIT", "CDELT1", "CTYPE1"]),
    st.one_of(st.none(), st.sampled_from(["0", "-1", "1", "2", "3", "4", "7", "999999999", "NAN", "INF", "T", "F",
                                          "1.0E+400", "-1.0E-300", "2.3E+11", "1.0E-04", "''", "'text'", "'VRAD'",
                                          "'WAVE'", "'FREQ'", "'STOKES'", "'K'", "'Jy/pixel'", "'m/s'", "'GHz'",
                                          "-32", "-64", "16"])),
    max_size=4),
    cut=st.sampled_from([0, 0, 0, 1, 100, 2880]))
@example(changes={"NAXIS": "1"}, cut=0)  # WCS keywords of an axis beyond NAXIS (found by the long fuzz run)
def test_generated_fits_headers_convert_correctly_or_are_refused_clearly(tmp_path_factory, changes, cut):
    tmp = tmp_path_factory.mktemp("hdr")
    cards = [(k, changes.get(k, v)) for k, v in GOOD_CARDS if not (k in changes and changes[k] is None)]
    whole = raw_fits(cards, GOOD_DATA.tobytes())
    (tmp / "in.fits").write_bytes(whole[:len(whole) - cut])
    try:
        r = tbconv(imagename=str(tmp / "in.fits"), outfile=str(tmp / "out.fits"))
    except (TaskParameterError, ImageFileError, ResourceLimitError) as exc:
        assert "in.fits" in str(exc) or getattr(exc, "param", None)  # names the file, or the parameter to give
        only(tmp, "in.fits")
        return
    only(tmp, "in.fits", "out.fits")
    header = fits.getheader(tmp / "in.fits")
    src = fits.getdata(tmp / "in.fits").astype(float)
    out = fits.getdata(tmp / "out.fits").astype(float)
    assert out.shape == src.shape and fits.getheader(tmp / "out.fits")["BUNIT"] == r["outunit"]
    planes = src.reshape(src.shape[0], -1) if src.ndim == 3 else src.reshape(1, -1)
    ratio = out.reshape(planes.shape) / np.where(planes == 0, np.nan, planes)
    filled = ~np.isnan(ratio).all(axis=1)  # a header announcing more pixels than written reads the padding's zeros
    assert (out.reshape(planes.shape)[planes == 0] == 0).all()
    np.testing.assert_allclose(np.nanmax(ratio[filled], axis=1), np.nanmin(ratio[filled], axis=1), rtol=1e-6)
    if header.get("CTYPE3") == "FREQ" and header.get("CUNIT3", "Hz") == "Hz" and r["outunit"] == "K" and src.ndim == 3:
        pixel = np.arange(src.shape[0]) + 1 - header.get("CRPIX3", 0.0)  # FITS defaults for missing keywords
        freqs = (header.get("CRVAL3", 0.0) + pixel * header.get("CDELT3", 1.0)) * u.Hz
        area = np.pi / (4 * np.log(2)) * header["BMAJ"] * header["BMIN"] * u.deg ** 2
        factors = (1 * u.Jy).to_value(u.K, u.brightness_temperature(freqs, beam_area=area))
        np.testing.assert_allclose(np.nanmax(ratio[filled], axis=1), factors[filled], rtol=1e-5)


# --- output names, formats and places -------------------------------------------------------------

def test_case_insensitive_format_and_approximation_name_the_output_right(tmp_path):
    pixels, names = make_casa_cube(tmp_path / "cube.image", order="stokes-last")
    r = tbconv(imagename=str(tmp_path / "cube.image"), outformat="FITS", approximation="RJ")
    assert r["format"] == "fits" and r["approximation"] == "rj" and r["outfile"] == str(tmp_path / "cube.image.K.fits")
    assert (tmp_path / "cube.image.K.fits").is_file() and (tmp_path / "cube.image.K.fits").read_bytes()[:9] == b"SIMPLE  ="
    np.testing.assert_allclose(fits.getdata(r["outfile"]).T, expected_kelvin(pixels, names, 2), rtol=2e-7)
    named = tbconv(imagename=str(tmp_path / "cube.image"), outfile=str(tmp_path / "named.FITS"))
    assert named["format"] == "fits" and (tmp_path / "named.FITS").read_bytes()[:9] == b"SIMPLE  ="
    with pytest.raises(TaskParameterError, match=r"'outfile'.*ends in \.fits but outformat='casa'"):
        tbconv(imagename=str(tmp_path / "cube.image"), outfile=str(tmp_path / "x.fits"), outformat="Casa")
    with pytest.raises(TaskParameterError, match="'approximation' must be one of"):
        tbconv(imagename=str(tmp_path / "cube.image"), approximation="wien")


def test_outfile_naming_a_directory_or_the_wrong_kind_is_refused_and_left_alone(tmp_path):
    make_casa_cube(tmp_path / "cube.image", order="stokes-last")
    export_fits(tmp_path / "cube.image", tmp_path / "cube.fits")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "notes.txt").write_text("mine")
    for kwargs in ({}, {"overwrite": True}):
        with pytest.raises(TaskParameterError, match=r"'outfile'.*is an existing directory; give the name"):
            tbconv(imagename=str(tmp_path / "cube.fits"), outfile=str(tmp_path / "results"), **kwargs)
        with pytest.raises(TaskParameterError, match=r"is an existing directory that is not a CASA image"):
            tbconv(imagename=str(tmp_path / "cube.image"), outfile=str(tmp_path / "results"), **kwargs)
    assert (tmp_path / "results" / "notes.txt").read_text() == "mine"
    (tmp_path / "plain.K").write_text("not an image")
    with pytest.raises(TaskParameterError, match=r"is an existing file; a CASA image \(a directory\) cannot replace it"):
        tbconv(imagename=str(tmp_path / "cube.image"), outfile=str(tmp_path / "plain.K"), overwrite=True)
    with pytest.raises(TaskParameterError, match=r"lies inside the input image"):
        tbconv(imagename=str(tmp_path / "cube.image"), outfile=str(tmp_path / "cube.image" / "k.image"))


@pytest.fixture
def small_filesystem(tmp_path):
    """A real 1 MB file system (tmpfs, mounted as root as the project's set-up runs)."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_an_output_that_cannot_fit_is_refused_before_anything_is_written(tmp_path, small_filesystem):
    make_casa_cube(tmp_path / "cube.image", order="stokes-last", nx=200, nchan=8)  # 3.4 MB
    export_fits(tmp_path / "cube.image", tmp_path / "cube.fits")
    for src in ("cube.fits", "cube.image"):
        with pytest.raises(ResourceLimitError, match=r"tbconv: parameter 'outfile' needs [23]\.\d MiB of disk space in "
                                                     r".*small; the bound is 0 B \(free space there minus a"):
            tbconv(imagename=str(tmp_path / src), outfile=str(small_filesystem / "k.out"))
        only(small_filesystem)


# --- interrupted runs: the next run cleans up ------------------------------------------------------

KILLED_RUN = """
import signal, sys
from almatools.casa_tasks import tbconv
from almatools.plugins.brightness import images
images.BLOCK_BYTES = 1  # one tile, or a piece of a plane, at a time
real, written = images._write_all, []
def write_then_wait(dst, data):
    real(dst, data)
    written.append(1)
    if len(written) == 2:
        print("WRITING", flush=True)
        signal.pause()  # killed here, half-way through
images._write_all = write_then_wait
tbconv(imagename=sys.argv[1], outfile=sys.argv[2])
"""


@pytest.mark.parametrize("name", ["cube.fits", "cube.image"])
def test_a_killed_conversion_leaves_a_named_temporary_that_the_next_run_removes(tmp_path, name):
    pixels, names = make_casa_cube(tmp_path / "cube.image", nx=131, nchan=19)  # 16 tiles
    export_fits(tmp_path / "cube.image", tmp_path / "cube.fits")
    out = tmp_path / "out" / ("k.fits" if name.endswith(".fits") else "k.image")
    child = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(tmp_path / name), str(out)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "WRITING"
        leftovers = list(out.parent.glob(f".{out.name}.tbconv-*-{child.pid}.part"))
        assert len(leftovers) == 1  # named after the output, the task and the process
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        child.kill()
    assert leftovers[0].exists() and not out.exists()
    r = tbconv(imagename=str(tmp_path / name), outfile=str(out))
    only(out.parent, out.name)
    data = fits.getdata(out).T.transpose(0, 1, 3, 2) if name.endswith(".fits") else read_casa(out)[0]
    np.testing.assert_allclose(data, expected_kelvin(pixels, names, 2), rtol=2e-7)
    assert r["outfile"] == str(out)


def test_an_output_caught_between_its_two_renames_is_put_back(tmp_path):
    """A CASA image being replaced moves aside first; if the run dies there, the next run restores it."""
    from almatools.io import remove_stale_scratch, scratch_path
    make_casa_cube(tmp_path / "k.image", order="stokes-last")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a process id that no longer runs
    aside = scratch_path(tmp_path / "k.image", "tbconv", "old")
    aside = aside.with_name(aside.name.replace(f"-{os.getpid()}.", f"-{dead.pid}."))
    os.replace(tmp_path / "k.image", aside)
    assert remove_stale_scratch(tmp_path, "tbconv") == [aside]
    only(tmp_path, "k.image")
    assert read_casa(tmp_path / "k.image")[1] == "Jy/beam"
    # a live process's scratch (this one's) is never touched
    mine = scratch_path(tmp_path / "k.image", "tbconv", "part")
    mine.mkdir()
    assert remove_stale_scratch(tmp_path, "tbconv") == [] and mine.is_dir()
    mine.rmdir()
    # what earlier versions left behind is recognised too, when its process is gone
    (tmp_path / f".cube.K.{dead.pid}.tmp.fits").write_bytes(b"SIMPLE  =" + bytes(2871))
    (tmp_path / f".k.image.tmp{dead.pid}").mkdir()
    (tmp_path / f".k.image.tmp{os.getpid()}").mkdir()  # alive: kept
    tbconv(imagename=str(tmp_path / "k.image"), outfile=str(tmp_path / "k.K.image"))
    only(tmp_path, "k.image", "k.K.image", f".k.image.tmp{os.getpid()}")


@pytest.mark.parametrize("approximation", ["rj", "planck"])
def test_an_image_whose_pixels_are_not_in_one_tiled_file_is_converted_by_casa(tmp_path, approximation):
    """A virtual concatenation (imageconcat.json, no table) goes through CASA: copied by subimage, then LEL or
    getchunk/putchunk blocks."""
    pixels, names = make_casa_cube(tmp_path / "cube.image")
    ct = casatools()
    ia, rg = ct.image(), ct.regionmanager()
    try:
        ia.open(str(tmp_path / "cube.image"))
        for name, (c0, c1) in (("a.image", (0, 2)), ("b.image", (3, NCHAN - 1))):
            box = rg.box(blc=[0, 0, 0, c0], trc=[NX - 1, NX + 2, 1, c1])
            ia.subimage(outfile=str(tmp_path / name), region=box).done()
        ia.close()
        ia.imageconcat(outfile=str(tmp_path / "cat.image"), infiles=[str(tmp_path / "a.image"), str(tmp_path / "b.image")],
                       axis=3, mode="nomovevirtual").done()
    finally:
        ia.done()
        rg.done()
    assert not (tmp_path / "cat.image" / "table.dat").exists()
    r = tbconv(imagename=str(tmp_path / "cat.image"), outfile=str(tmp_path / "k.image"), approximation=approximation)
    assert r["method"] == "casa"
    out, bunit, history = read_casa(tmp_path / "k.image")
    assert bunit == "K" and any("tbconv: Jy/beam -> K" in h for h in history)
    if approximation == "rj":
        np.testing.assert_allclose(out, expected_kelvin(pixels, names, 2), rtol=2e-7)
    else:
        bmaj, bmin, _ = beams_for(NCHAN, 2)[4][1]
        ref = tbconv(values=list(pixels[:3, :3, 1, 4].ravel()), inunit="Jy/beam", freq=f"{F0 + 4 * DF}Hz",
                     beam=[f"{bmaj}arcsec", f"{bmin}arcsec"], approximation="planck")["converted"]
        np.testing.assert_allclose(out[:3, :3, 1, 4].ravel(), ref, rtol=2e-6)
