"""tbconv against astropy, radio-beam, the Planck closed form and independent per-plane numpy,
on CASA images and FITS cubes the tests make with casatools."""

import hashlib

import numpy as np
import pytest
from astropy import constants as const
from astropy import units as u
from astropy.io import fits

from almatools.casa_tasks import tbconv
from almatools.casaenv import casatools
from almatools.errors import TaskParameterError

pytestmark = pytest.mark.casa

NCHAN, NX = 6, 16
F0, DF = 230.0e9, 0.5e9
REST = 230.538e9


def beams_for(nchan, npol):
    """Distinct per-plane beams (arcsec, arcsec, deg)."""
    return [[(1.2 + 0.05 * c + 0.02 * p, 0.6 + 0.03 * c, 10.0 * c) for p in range(npol)] for c in range(nchan)]


def make_casa_cube(path, stokes=("I", "V"), order="freq-last", unit="Jy/beam", per_plane=True, spectral=True):
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
        shape = [NX, NX] + [NCHAN if "Frequency" in n else len(stokes) for n in names[2:]]
        rng = np.random.default_rng(1)
        pixels = rng.normal(0.05, 0.2, shape)  # negative pixels too
        ia.fromarray(outfile=str(path), pixels=pixels, csys=csys.torecord(), overwrite=True)
        ia.setbrightnessunit(unit)
        pixels = ia.getchunk()  # as stored (float32)
        if per_plane and spectral:
            for c, row in enumerate(beams_for(NCHAN, len(stokes))):
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
    for c in range(NCHAN):
        for p in range(nstokes):
            bmaj, bmin, _ = beams_for(NCHAN, nstokes)[c][p]
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


def test_multi_block_streaming_equals_one_block(tmp_path, monkeypatch):
    from plugins.brightness import images
    make_casa_cube(tmp_path / "cube.image", order="stokes-last")
    export_fits(tmp_path / "cube.image", tmp_path / "cube.fits")
    one = tbconv(imagename=str(tmp_path / "cube.fits"), outfile=str(tmp_path / "one.fits"))
    monkeypatch.setattr(images, "BLOCK_BYTES", NX * 4)  # one image row per block
    many = tbconv(imagename=str(tmp_path / "cube.fits"), outfile=str(tmp_path / "many.fits"))
    assert (tmp_path / "one.fits").read_bytes() == (tmp_path / "many.fits").read_bytes()
    assert one["peak"] == many["peak"]


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
