"""tbconv's image side (``almatools.plugins.brightness.images``) unit by unit: block partitioning, FITS
structure and header checks, per-channel frequencies and beams of tiny FITS files and CASA images, the
streamed FITS conversion and its rewritten header, and the refusals that name the file.

Expected values come from the files the tests write (header cards, CASA's coordinate system), from
astropy (WCS, spectral equivalencies, brightness_temperature) and radio-beam; never from the module.
The module patched for block sizes is ``almatools.plugins.brightness.images``, the one the task runs.
"""

import io
import math
import os
import re
import warnings

import numpy as np
import pytest
from astropy import constants as const
from astropy import units as u
from astropy.io import fits
from astropy.wcs import WCS
from hypothesis import given, settings
from hypothesis import strategies as st

from almatools.casaimage import TiledPixels
from almatools.casaenv import casatools
from almatools.plugins.brightness import images
from almatools.plugins.brightness.images import ImageFileError, ImageInfo
from almatools.plugins.brightness.task_tbconv import PlaneConverter

pytestmark = pytest.mark.casa

RAD_PER_ARCSEC = (1 * u.arcsec).to_value(u.rad)
RAD_PER_DEG = (1 * u.deg).to_value(u.rad)
MIB = 2**20


# --- helpers --------------------------------------------------------------------------------------

def raw_fits(cards, data: bytes = b"", tail: bytes = b"") -> bytes:
    """A FITS file written card by card (values as FITS text), so that headers astropy would refuse
    to write can be made; the data are padded to 2880 bytes, *tail* follows as it is."""
    text = "".join(key.ljust(80) if value is None else f"{key:<8}= {value:>20}".ljust(80)[:80] for key, value in cards)
    text += "END".ljust(80)
    text += " " * (-len(text) % 2880)
    return text.encode("ascii") + data + b"\0" * (-len(data) % 2880) + tail


def cube_cards(nx=4, ny=5, nchan=3, extra=()):
    """RA, Dec, FREQ (230 GHz + 1 GHz steps from pixel 1), a 1" x 0.5" beam; *extra* replaces or adds cards."""
    cards = [("SIMPLE", "T"), ("BITPIX", "-32"), ("NAXIS", "3"), ("NAXIS1", str(nx)), ("NAXIS2", str(ny)),
             ("NAXIS3", str(nchan)), ("CTYPE1", "'RA---SIN'"), ("CRVAL1", "165.0"), ("CDELT1", "-2.8E-05"),
             ("CRPIX1", "2.0"), ("CUNIT1", "'deg'"), ("CTYPE2", "'DEC--SIN'"), ("CRVAL2", "-34.7"),
             ("CDELT2", "2.8E-05"), ("CRPIX2", "3.0"), ("CUNIT2", "'deg'"), ("CTYPE3", "'FREQ'"),
             ("CRVAL3", "2.3E+11"), ("CDELT3", "1.0E+09"), ("CRPIX3", "1.0"), ("CUNIT3", "'Hz'"),
             ("BUNIT", "'Jy/beam'"), ("BMAJ", "2.777777777777778E-04"), ("BMIN", "1.388888888888889E-04"),
             ("BPA", "0.0")]
    replaced = dict(extra)
    out = [(k, replaced[k] if k in replaced else v) for k, v in cards if not (k in replaced and replaced[k] is None)]
    known = {k for k, _ in cards}
    return out + [(k, v) for k, v in extra if k not in known and v is not None]


def write(path, cards, data: bytes = b"", tail: bytes = b""):
    path.write_bytes(raw_fits(cards, data, tail))
    return path


def beams_hdu(rows, units=("arcsec", "arcsec", "deg"), names=("BMAJ", "BMIN", "BPA", "CHAN", "POL"),
              chan_format="1J", pol_format="1J"):
    """A CASA-style BEAMS table from rows (bmaj, bmin, bpa, chan, pol)."""
    cols = list(zip(*rows)) if rows else [[]] * 5
    fmts = ("1E", "1E", "1E", chan_format, pol_format)
    unit = list(units) + [None, None]
    return fits.BinTableHDU.from_columns(
        [fits.Column(name=n, format=f, unit=un, array=np.array(a)) for n, f, un, a in zip(names, fmts, unit, cols)],
        name="BEAMS")


def hdu_bytes(hdu) -> bytes:
    """An extension HDU as astropy writes it (big-endian data, padded): a file's bytes after its empty primary."""
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
    return buf.getvalue()[2880:]


def info_of(shape, spectral=None, stokes=None, **extra):
    return ImageInfo(path=None, format="fits", shape=tuple(shape), bunit="Jy/beam", spectral_axis=spectral,
                     stokes_axis=stokes, freqs_hz=np.array([1.0]), beams=None, pixel_sr=1.0, extra=extra)


def jtok(freq_hz, bmaj_arcsec, bmin_arcsec):
    """K per Jy/beam (Rayleigh-Jeans) from astropy's equivalency."""
    area = np.pi / (4 * np.log(2)) * (bmaj_arcsec * u.arcsec) * (bmin_arcsec * u.arcsec)
    return (1 * u.Jy).to_value(u.K, u.brightness_temperature(freq_hz * u.Hz, beam_area=area))


class Counter:
    """A progress bar that counts its steps."""

    def __init__(self):
        self.n = 0

    def update(self, k):
        self.n += k


def virtual_concat(parts, out, axis: int) -> None:
    """A virtual concatenation of the CASA images *parts* along *axis* (the pixels stay in the parts)."""
    ia = casatools().image()
    try:
        ia.imageconcat(outfile=str(out), infiles=parts, axis=axis, mode="nomovevirtual").done()
    finally:
        ia.done()


def convert_fits_file(src, dst, bunit_out="K", history=("tbconv: test",), progress=None):
    info = images.read_info(src)
    conv = PlaneConverter(info.bunit, bunit_out, "rj", info.freqs_hz, info.beams, info.nchan, info.npol)
    return images.convert_fits(info, dst, conv, bunit_out, list(history), progress)


# --- blocks: how many and how they cut the data ---------------------------------------------------

def test_planes_counts_blocks_of_one_mebibyte_with_four_bytes_per_pixel_by_default():
    assert images.BLOCK_BYTES == MIB
    assert images.planes(info_of((1,))) == 1
    assert images.planes(info_of((MIB // 4,))) == 1  # exactly one block
    assert images.planes(info_of((MIB // 4 + 1,))) == 2  # one pixel more: a second, partial block
    assert images.planes(info_of((512, 512, 3))) == 3
    assert images.planes(info_of((MIB // 8,), itemsize=8)) == 1
    assert images.planes(info_of((MIB // 8 + 1,), itemsize=8)) == 2
    assert images.planes(info_of((MIB // 2,), itemsize=2)) == 1
    assert images.planes(info_of((0, 4))) == 1  # never fewer than one step


def test_planes_follows_the_patched_block_size(monkeypatch):
    monkeypatch.setattr(images, "BLOCK_BYTES", 100)
    assert images.planes(info_of((25,))) == 1
    assert images.planes(info_of((26,))) == 2
    assert images.planes(info_of((5, 10))) == 2
    assert images.planes(info_of((5, 11))) == 3


@settings(max_examples=100)  # a small space: 100 layouts cover every branch
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), axes=st.data(), capacity=st.integers(1, 130))
def test_runs_cover_every_pixel_once_in_order_with_its_channel_and_polarization(shape, axes, capacity):
    n = len(shape)
    spectral = axes.draw(st.one_of(st.none(), st.integers(0, n - 1)))
    stokes = axes.draw(st.one_of(st.none(), st.integers(0, n - 1).filter(lambda a: a != spectral)))
    runs = images._Runs(info_of(shape, spectral, stokes))
    buffer = np.empty(capacity)
    chans, pols, sizes = [], [], []
    for view, chan, pol in runs.blocks(buffer):
        assert np.shares_memory(view, buffer) and view.size <= capacity
        sizes.append(view.size)
        chans.append(np.broadcast_to(chan, view.shape).ravel())
        pols.append(np.broadcast_to(pol, view.shape).ravel())
    total = math.prod(shape)
    # FITS order: NAXIS1 varies fastest, so pixel k sits at unravel_index(k, shape, order="F")
    where = np.unravel_index(np.arange(total), shape, order="F")
    want_chan = where[spectral] if spectral is not None else np.zeros(total, int)
    want_pol = where[stokes] if stokes is not None else np.zeros(total, int)
    assert sum(sizes) == total
    np.testing.assert_array_equal(np.concatenate(chans), want_chan)
    np.testing.assert_array_equal(np.concatenate(pols), want_pol)
    # blocks hold whole runs (the pixels below the first channel/pol axis) or pieces of one run
    first = min([a for a in (spectral, stokes) if a is not None], default=n)
    run = math.prod(shape[:first])
    if run <= capacity:
        per = capacity // run
        assert sizes == [per * run] * (len(sizes) - 1) + [sizes[-1]] and len(sizes) == -(-(total // run) // per)
    else:
        assert sizes == ([capacity] * (run // capacity) + ([run % capacity] if run % capacity else [])) * (total // run)


def test_runs_of_a_cube_are_planes_with_their_channel_and_polarization():
    runs = images._Runs(info_of((3, 2, 4, 2), spectral=2, stokes=3))  # x, y, chan, pol
    blocks = list(runs.blocks(np.empty(6 * 3)))  # three planes per block
    assert [b[0].shape for b in blocks] == [(3, 6), (3, 6), (2, 6)]
    assert [list(b[1].ravel()) for b in blocks] == [[0, 1, 2], [3, 0, 1], [2, 3]]
    assert [list(b[2].ravel()) for b in blocks] == [[0, 0, 0], [0, 1, 1], [1, 1]]
    pieces = list(runs.blocks(np.empty(4)))  # a plane of 6 in pieces of 4 and 2
    assert [p[0].size for p in pieces[:4]] == [4, 2, 4, 2] and len(pieces) == 16
    assert [(int(p[1]), int(p[2])) for p in pieces[:4:2]] == [(0, 0), (1, 0)]
    assert [(int(p[1]), int(p[2])) for p in pieces[-2:]] == [(3, 1), (3, 1)]


def test_runs_without_spectral_or_stokes_axis_are_the_whole_image():
    runs = images._Runs(info_of((4, 5)))
    (view, chan, pol), = runs.blocks(np.empty(20))
    assert view.shape == (1, 20) and chan.ravel().tolist() == [0] and pol.ravel().tolist() == [0]
    assert [v.size for v, _, _ in runs.blocks(np.empty(7))] == [7, 7, 6]


# --- FITS structure: headers, sizes and what follows the primary HDU ------------------------------

GOOD = np.arange(60, dtype=">f4").reshape(3, 5, 4)


def test_a_good_cube_is_described_from_its_header(tmp_path):
    path = write(tmp_path / "c.fits", cube_cards(extra=[("SPECSYS", "'LSRK'"), ("BPA", "30.0")]), GOOD.tobytes())
    info = images.read_info(path)
    assert (info.format, info.shape, info.bunit, info.spectral_axis, info.stokes_axis) == \
        ("fits", (4, 5, 3), "Jy/beam", 2, None)
    np.testing.assert_allclose(info.freqs_hz, [230e9, 231e9, 232e9], rtol=1e-15)
    assert info.spectral_note == "FREQ axis, frame LSRK"
    np.testing.assert_allclose(info.beams, [[[1.0 * RAD_PER_ARCSEC, 0.5 * RAD_PER_ARCSEC, 30.0]]], rtol=1e-12)
    assert info.pixel_sr == pytest.approx((2.8e-5 * RAD_PER_DEG) ** 2, rel=1e-9, abs=0)
    assert info.nbytes == 2 * 2880 == os.path.getsize(path)
    assert info.extra["data_loc"] == 2880 and info.extra["data_bytes"] == 240 and info.extra["primary_end"] == 5760
    assert info.extra["size"] == 5760 and info.extra["bitpix"] == -32 and info.extra["itemsize"] == 4
    assert type(info.extra["itemsize"]) is int and type(images.planes(info)) is int
    assert info.extra["scaled"] is False and info.extra["beam_error"] is None
    assert (info.nchan, info.npol) == (3, 1)


def test_header_defaults_bunit_spaces_bpa_and_frame(tmp_path):
    cards = cube_cards(extra=[("BPA", None), ("BUNIT", "'  K  '"), ("BITPIX", "-64")])
    info = images.read_info(write(tmp_path / "d.fits", cards, GOOD.astype(">f8").tobytes()))
    assert info.bunit == "K" and info.beams[0, 0, 2] == 0.0 and info.spectral_note == "FREQ axis, frame unknown"
    assert info.extra["itemsize"] == 8 and info.extra["data_bytes"] == 480
    none = images.read_info(write(tmp_path / "e.fits", cube_cards(extra=[("BUNIT", None)]), GOOD.tobytes()))
    assert none.bunit == ""


def test_stokes_and_spectral_axes_in_either_order(tmp_path):
    data = np.zeros((3, 2, 2, 2), ">f4")  # numpy order: chan, stokes, y, x
    cards = cube_cards(nx=2, ny=2, extra=[("NAXIS", "4"), ("NAXIS3", "2"), ("NAXIS4", "3"), ("CTYPE3", "'STOKES'"),
                                          ("CRVAL3", "1.0"), ("CDELT3", "1.0"), ("CRPIX3", "1.0"), ("CUNIT3", "''"),
                                          ("CTYPE4", "'FREQ'"), ("CRVAL4", "1.0E+11"), ("CDELT4", "-2.0E+09"),
                                          ("CRPIX4", "2.0"), ("CUNIT4", "'Hz'")])
    info = images.read_info(write(tmp_path / "s.fits", cards, data.tobytes()))
    assert (info.spectral_axis, info.stokes_axis, info.nchan, info.npol) == (3, 2, 3, 2)
    np.testing.assert_allclose(info.freqs_hz, [1.02e11, 1.0e11, 0.98e11], rtol=1e-15)


def test_an_image_without_spectral_or_celestial_axes(tmp_path):
    cards = [("SIMPLE", "T"), ("BITPIX", "-32"), ("NAXIS", "2"), ("NAXIS1", "3"), ("NAXIS2", "2"), ("BUNIT", "'K'")]
    info = images.read_info(write(tmp_path / "p.fits", cards, bytes(24)))
    assert info.spectral_axis is None and info.stokes_axis is None and np.isnan(info.freqs_hz).all()
    assert len(info.freqs_hz) == 1 and info.spectral_note == "" and math.isnan(info.pixel_sr) and info.beams is None
    assert (info.nchan, info.npol) == (1, 1)


def test_scaled_data_is_flagged(tmp_path):
    for extra, scaled in (([("BSCALE", "1.0"), ("BZERO", "0.0")], False), ([("BSCALE", "2.0")], True),
                          ([("BZERO", "1.0")], True)):
        info = images.read_info(write(tmp_path / "b.fits", cube_cards(extra=extra), GOOD.tobytes()))
        assert info.extra["scaled"] is scaled, extra


@pytest.mark.parametrize("ctype, cunit, crval, cdelt, doppler", [
    ("VRAD", "m/s", -5000.0, 2500.0, u.doppler_radio),
    ("VOPT", "m/s", -5000.0, 2500.0, u.doppler_optical),
    ("FELO-HEL", "m/s", 1000.0, 2500.0, u.doppler_optical),
    ("VELO", "m/s", -5000.0, 2500.0, u.doppler_relativistic),
    ("VELO", "km/s", -5.0, 2.5, u.doppler_relativistic),
])
def test_velocity_axes_become_frequencies_through_the_rest_frequency(tmp_path, ctype, cunit, crval, cdelt, doppler):
    rest = 230.538e9
    cards = cube_cards(extra=[("CTYPE3", f"'{ctype}'"), ("CUNIT3", f"'{cunit}'"), ("CRVAL3", repr(crval)),
                              ("CDELT3", repr(cdelt)), ("RESTFRQ", repr(rest))])
    info = images.read_info(write(tmp_path / "v.fits", cards, GOOD.tobytes()))
    v = (crval + cdelt * np.arange(3)) * u.Unit(cunit)
    np.testing.assert_allclose(info.freqs_hz, v.to_value(u.Hz, doppler(rest * u.Hz)), rtol=1e-9)
    assert info.spectral_note.startswith(f"{ctype} axis")


def test_restfreq_spelling_and_wavelength_axes(tmp_path):
    cards = cube_cards(extra=[("CTYPE3", "'VRAD'"), ("CUNIT3", "'m/s'"), ("RESTFREQ", "1.0E+11"), ("CRVAL3", "0.0"),
                              ("CDELT3", "1000.0")])
    info = images.read_info(write(tmp_path / "r.fits", cards, GOOD.tobytes()))
    np.testing.assert_allclose(info.freqs_hz, 1e11 * (1 - np.array([0.0, 1e3, 2e3]) / const.c.value), rtol=1e-12)
    cards = cube_cards(extra=[("CTYPE3", "'WAVE'"), ("CUNIT3", "'m'"), ("CRVAL3", "1.0E-03"), ("CDELT3", "1.0E-04")])
    info = images.read_info(write(tmp_path / "w.fits", cards, GOOD.tobytes()))
    np.testing.assert_allclose(info.freqs_hz, const.c.value / np.array([1.0e-3, 1.1e-3, 1.2e-3]), rtol=1e-12)


@pytest.mark.parametrize("extra, message", [
    ([("CTYPE3", "'VRAD'"), ("CUNIT3", "'m/s'")],
     r"the spectral axis VRAD is a velocity axis and the header has no RESTFRQ"),
    ([("CTYPE3", "'ZOPT'"), ("CUNIT3", "''"), ("CRVAL3", "0.1"), ("CDELT3", "0.1"), ("RESTFRQ", "1.0E+11")],
     r"unsupported spectral axis type ZOPT"),
    ([("CTYPE3", "'VRAD'"), ("CUNIT3", "'m/s'"), ("CRVAL3", "2.9E+08"), ("CDELT3", "1.0E+07"), ("RESTFRQ", "1.0E+11")],
     r"spectral axis VRAD gives frequency -?[0-9.e+]+ Hz at pixel 1: frequencies must be finite and > 0"),
    ([("CDELT3", "-1.15E+11")], r"spectral axis FREQ gives frequency 0\.0 Hz at pixel 2"),
    ([("CRVAL3", "0.0"), ("CDELT3", "1.0")], r"spectral axis FREQ gives frequency 0\.0 Hz at pixel 0"),
    ([("CTYPE3", "'FREQ-LOG'"), ("CRVAL3", "-1.0E+09")], r"its spectral axis cannot be evaluated \(ValueError: "),
    ([("CTYPE3", "'FREQ-LOG'"), ("CRVAL3", "1.0E+09"), ("CDELT3", "1.0E+12")],
     r"spectral axis FREQ-LOG gives frequency inf Hz at pixel 1: frequencies must be finite and > 0"),
    ([("CRPIX3", "'x'")], r"primary header keyword CRPIX3 = 'x' is not a number"),
    ([("PC3_3", "'x'")], r"primary header keyword PC3_3 = 'x' is not a number"),
    ([("CD1_1", "T")], r"primary header keyword CD1_1 = True is not a number"),
    ([("CROTA2", "'x'")], r"primary header keyword CROTA2 = 'x' is not a number"),
    ([("CRVAL1", "'x'")], r"primary header keyword CRVAL1 = 'x' is not a number"),
    ([("CDELT2", "'x'")], r"primary header keyword CDELT2 = 'x' is not a number"),
    ([("RESTFRQ", "'x'")], r"primary header keyword RESTFRQ = 'x' is not a number"),
    ([("RESTFREQ", "'x'")], r"primary header keyword RESTFREQ = 'x' is not a number"),
    ([("CTYPE1", "'RA---XYZ'")], r"its WCS keywords cannot be read \("),
])
def test_spectral_and_wcs_refusals_name_the_file_and_keyword(tmp_path, extra, message):
    path = write(tmp_path / "bad.fits", cube_cards(extra=extra), GOOD.tobytes())
    with pytest.raises(ImageFileError, match=rf"bad\.fits: {message}"):
        images.read_info(path)


def test_wcs_keywords_of_an_alternate_description_are_not_checked(tmp_path):
    # only the primary description's numbers must be numbers (CRVAL3A is another WCS's)
    path = write(tmp_path / "a.fits", cube_cards(extra=[("CRVAL3A", "'text'"), ("XPC1_1", "'text'")]), GOOD.tobytes())
    assert images.read_info(path).shape == (4, 5, 3)


@pytest.mark.parametrize("cards, message", [
    ([("SIMPLE", "F")], r"primary header does not say SIMPLE = T"),
    ([("GROUPS", "T")], r"holds random groups \(visibilities\), not an image"),
    ([("NAXIS", "0")], r"the primary HDU has no image data \(NAXIS = 0\)"),
    ([("NAXIS2", "0")], r"axis NAXIS2 has length 0: the image holds no pixels"),
    ([("NAXIS1", "-1")], r"primary header has NAXIS1 = -1"),
    ([("NAXIS", "-1")], r"primary header has NAXIS = -1 \(allowed: 0 to 999\)"),
    ([("NAXIS", "1000")], r"primary header has NAXIS = 1000 \(allowed: 0 to 999\)"),
    ([("NAXIS", "4")], r"primary header has no NAXIS4"),
    ([("BITPIX", "24")], r"primary header has BITPIX = 24 \(allowed: 8, 16, 32, 64, -32, -64\)"),
    ([("BITPIX", "T")], r"primary header keyword BITPIX = True is not an integer"),
    ([("BITPIX", "-32.0")], r"primary header keyword BITPIX = -32\.0 is not an integer"),
    ([("BITPIX", None)], r"primary header has no BITPIX"),
    ([("PCOUNT", "-1")], r"primary header has PCOUNT = -1, GCOUNT = 1"),
    ([("GCOUNT", "-1")], r"primary header has PCOUNT = 0, GCOUNT = -1"),
    ([("BMAJ", "NAN")], r"primary header keyword BMAJ is unreadable: .*BMAJ    = .*NAN"),
    ([("NAXIS3", "37")], r"is truncated: its header announces 2960 bytes of data \(4 x 5 x 37 pixels\) ending at "
                         r"byte 8640, the file has 5760"),
])
def test_impossible_primary_headers_are_refused_naming_the_file(tmp_path, cards, message):
    path = write(tmp_path / "bad.fits", cube_cards(extra=cards), GOOD.tobytes())
    with pytest.raises(ImageFileError, match=rf"bad\.fits: {message}"):
        images.read_info(path)


def test_pcount_and_gcount_enter_the_data_size(tmp_path):
    # GCOUNT x (PCOUNT + pixels) values: 2 x (10 + 60) x 4 bytes = 560, in one 2880-byte block
    cards = cube_cards(extra=[("PCOUNT", "10"), ("GCOUNT", "2")])
    info = images.read_info(write(tmp_path / "g.fits", cards, bytes(560)))
    assert info.extra["data_bytes"] == 560 and info.extra["primary_end"] == 5760
    cards = cube_cards(extra=[("PCOUNT", "0"), ("GCOUNT", "0")])
    assert images.read_info(write(tmp_path / "z.fits", cards, bytes(240))).extra["data_bytes"] == 0


def test_data_ending_exactly_at_the_end_of_the_file_is_complete(tmp_path):
    # 720 values of 4 bytes fill one block exactly: no padding, the file ends where the data end
    data = np.ones((1, 36, 20), ">f4")
    cards = cube_cards(nx=20, ny=36, nchan=1)
    whole = raw_fits(cards, data.tobytes())
    assert len(whole) == 2 * 2880
    (tmp_path / "x.fits").write_bytes(whole)
    assert images.read_info(tmp_path / "x.fits").extra["primary_end"] == 5760
    # a fourth plane still fits in the padding of three: the header is what the file holds
    assert images.read_info(write(tmp_path / "p.fits", cube_cards(nchan=4), GOOD.tobytes())).shape == (4, 5, 4)
    (tmp_path / "x.fits").write_bytes(whole[:-1])
    with pytest.raises(ImageFileError, match=r"x\.fits: is truncated: .* ending at byte 5760, the file has 5759"):
        images.read_info(tmp_path / "x.fits")


def test_what_is_not_fits_is_refused(tmp_path):
    (tmp_path / "n.fits").write_bytes(b"SIMPLE =  T" + b" " * 3000)  # '=' not in column 9
    with pytest.raises(ImageFileError, match=r"n\.fits: is not a FITS file \(no SIMPLE card\) nor a CASA image"):
        images.read_info(tmp_path / "n.fits")
    with pytest.raises(ImageFileError, match=r"missing\.fits: cannot be read \(No such file or directory\)"):
        images.read_info(tmp_path / "missing.fits")
    os.mkfifo(tmp_path / "pipe.fits")
    with pytest.raises(ImageFileError, match=r"pipe\.fits: is neither a regular file \(FITS\) nor a directory"):
        images.read_info(tmp_path / "pipe.fits")


# --- FITS headers: reading them block by block ----------------------------------------------------

def header_blocks(ncards_before_end: int) -> bytes:
    text = "".join(f"COMMENT {i}".ljust(80) for i in range(ncards_before_end)) + "END".ljust(80)
    return (text + " " * (-len(text) % 2880)).encode()


@pytest.mark.parametrize("ncards, blocks", [(0, 1), (35, 1), (36, 2), (71, 2), (72, 3)])
def test_end_is_found_on_any_card_of_any_block(tmp_path, ncards, blocks):
    raw = b"\0" * 2880 + header_blocks(ncards) + b"x" * 100  # the header starts at a later HDU's offset
    (tmp_path / "h").write_bytes(raw)
    with open(tmp_path / "h", "rb") as fh:
        header, data = images._read_header(fh, tmp_path / "h", 2880, "extension 1")
    assert data == 2880 + blocks * 2880 and len(header.get("COMMENT", [])) == ncards


def test_end_inside_a_card_is_not_the_end(tmp_path):
    # "END     " at byte 10 of a card is text, not the END card: the header goes on to the next block
    card = ("COMMENT xEND     " + "y").ljust(80)
    raw = (card * 36).encode() + header_blocks(0)
    (tmp_path / "h").write_bytes(raw)
    with open(tmp_path / "h", "rb") as fh:
        _, data = images._read_header(fh, tmp_path / "h", 0, "primary")
    assert data == 5760


def test_a_header_cut_short_says_where(tmp_path):
    raw = header_blocks(40)[:2880 + 100]
    (tmp_path / "h.fits").write_bytes(b"\0" * 2880 + raw)
    with open(tmp_path / "h.fits", "rb") as fh:
        with pytest.raises(ImageFileError, match=r"h\.fits: extension 2 header is cut short at byte 5860 \(the file "
                                                 r"is truncated or not FITS\)"):
            images._read_header(fh, tmp_path / "h.fits", 2880, "extension 2")


def test_a_header_without_end_in_the_first_thousand_blocks_is_refused(tmp_path):
    assert images.MAX_HEADER_BLOCKS == 1000
    (tmp_path / "ok").write_bytes(header_blocks(999 * 36 + 35))  # END is the last card of block 1000
    with open(tmp_path / "ok", "rb") as fh:
        _, data = images._read_header(fh, tmp_path / "ok", 0, "primary")
    assert data == 1000 * 2880
    (tmp_path / "long").write_bytes(header_blocks(1000 * 36))  # END opens block 1001
    with open(tmp_path / "long", "rb") as fh:
        with pytest.raises(ImageFileError, match=r"long: primary header has no END card in its first 1000 blocks"):
            images._read_header(fh, tmp_path / "long", 0, "primary")


def test_unparseable_and_unreadable_cards_are_named(tmp_path):
    raw = ("COMMENT ok".ljust(80) + "BAD     = 'unclosed".ljust(80)).encode() + header_blocks(0)[:-160]
    (tmp_path / "u").write_bytes(raw)
    with open(tmp_path / "u", "rb") as fh:
        with pytest.raises(ImageFileError, match=r"u: primary header keyword BAD is unreadable: .*BAD  .*unclosed"):
            images._read_header(fh, tmp_path / "u", 0, "primary")
    (tmp_path / "b").write_bytes(b"COMMENT \xff".ljust(80) + header_blocks(0)[:-80])
    with open(tmp_path / "b", "rb") as fh:
        with pytest.raises(ImageFileError, match=r"b: primary header cannot be parsed \("):
            images._read_header(fh, tmp_path / "b", 0, "primary")


def card_header(**cards):
    return fits.Header(list(cards.items()))


def test_card_types_defaults_and_messages():
    h = card_header(N=3, T=True, F=2.5, I=7, S="text")
    p = "f.fits"
    assert images._card(h, "N", p, int) == 3 and type(images._card(h, "I", p, float)) is float
    assert images._card(h, "MISSING", p, int, default=0) == 0 and images._card(h, "S", p, str) == "text"
    assert images._card(h, "MISSING", p, float, default=1.5) == 1.5
    for key, kind, message in (("MISSING", int, "extension 3 header has no MISSING"),
                               ("T", int, "extension 3 header keyword T = True is not an integer"),
                               ("F", int, "extension 3 header keyword F = 2.5 is not an integer"),
                               ("T", float, "extension 3 header keyword T = True is not a number"),
                               ("S", float, "extension 3 header keyword S = 'text' is not a number")):
        with pytest.raises(ImageFileError, match=rf"^f\.fits: {message}$"):
            images._card(h, key, p, kind, what="extension 3")
    big = fits.Header.fromstring("BIG     =              1.0E400".ljust(80) + "END".ljust(80))
    with pytest.raises(ImageFileError, match=r"^f\.fits: primary header keyword BIG = inf is not finite$"):
        images._card(big, "BIG", p, float)
    nan = fits.Header.fromstring("NAN     =                  NAN".ljust(80) + "END".ljust(80))
    with pytest.raises(ImageFileError, match=r"^f\.fits: primary header keyword NAN is unreadable: .*NAN"):
        images._card(nan, "NAN", p, float)


def test_hdu_data_bytes_from_bitpix_axes_pcount_and_gcount():
    for bitpix in (8, 16, 32, 64, -32, -64):
        h = card_header(BITPIX=bitpix, NAXIS=2, NAXIS1=3, NAXIS2=5)
        assert images._hdu_data_bytes(h, "f", "primary") == (abs(bitpix) // 8 * 15, (3, 5))
    assert images._hdu_data_bytes(card_header(BITPIX=8, NAXIS=2, NAXIS1=3, NAXIS2=0), "f", "p") == (0, (3, 0))
    assert images._hdu_data_bytes(card_header(BITPIX=8, NAXIS=0, PCOUNT=7), "f", "p") == (7, ())
    assert images._hdu_data_bytes(card_header(BITPIX=16, NAXIS=1, NAXIS1=4, PCOUNT=3, GCOUNT=5), "f", "p") == (70, (4,))
    assert images._hdu_data_bytes(card_header(BITPIX=-64, NAXIS=999, **{f"NAXIS{i}": 1 for i in range(1, 1000)}),
                                  "f", "p")[0] == 8
    for bad, message in ((dict(BITPIX=0), "BITPIX = 0"), (dict(BITPIX=-8), "BITPIX = -8"),
                         (dict(NAXIS=1000), "NAXIS = 1000"), (dict(NAXIS=-1), "NAXIS = -1"),
                         (dict(NAXIS1=-1), "NAXIS1 = -1"), (dict(NAXIS2=-3), "NAXIS2 = -3"),
                         (dict(PCOUNT=-1), "PCOUNT = -1, GCOUNT = 1"), (dict(GCOUNT=-1), "PCOUNT = 0, GCOUNT = -1")):
        cards = dict(BITPIX=8, NAXIS=2, NAXIS1=3, NAXIS2=5) | bad
        with pytest.raises(ImageFileError, match=rf"^f: extension 2 header has {message}"):
            images._hdu_data_bytes(card_header(**cards), "f", "extension 2")


# --- FITS extensions: walked and checked against the file's size ----------------------------------

def cube_with(tmp_path, tail: bytes, name="e.fits"):
    return write(tmp_path / name, cube_cards(), GOOD.tobytes(), tail)


def test_trailing_zeros_or_spaces_are_tolerated_and_anything_else_is_refused(tmp_path):
    assert images.read_info(cube_with(tmp_path, b"\0" * 2880)).extra["size"] == 3 * 2880
    assert images.read_info(cube_with(tmp_path, b" " * 100 + b"\0" * 7)).nbytes == 2 * 2880 + 107
    with pytest.raises(ImageFileError, match=r"e\.fits: has 2880 bytes after HDU 0 \(byte 5760\) that are not a "
                                             r"FITS extension"):
        images.read_info(cube_with(tmp_path, b"\0" * 2879 + b"x"))
    table = hdu_bytes(beams_hdu([(1.0, 0.5, 0.0, 0, 0)]))
    with pytest.raises(ImageFileError, match=r"e\.fits: has 1 bytes after HDU 1 \(byte 11520\)"):
        images.read_info(cube_with(tmp_path, table + b"j"))


def test_trailing_bytes_beyond_sixteen_mebibytes_are_refused_unread(tmp_path):
    path = cube_with(tmp_path, b"")
    with open(path, "r+b") as fh:  # sparse zeros: exactly 16 MiB after the primary HDU are read and accepted
        fh.truncate(2 * 2880 + 16 * MIB)
    assert images.read_info(path).extra["size"] == 2 * 2880 + 16 * MIB
    with open(path, "r+b") as fh:
        fh.truncate(2 * 2880 + 16 * MIB + 1)
    with pytest.raises(ImageFileError, match=rf"has {16 * MIB + 1} bytes after HDU 0 \(byte 5760\)"):
        images.read_info(path)


def test_extensions_are_walked_and_a_cut_one_is_refused(tmp_path):
    one = hdu_bytes(beams_hdu([(1.0, 0.5, 0.0, 0, 0)]))
    two = hdu_bytes(fits.ImageHDU(np.zeros(3, ">f4"), name="OTHER"))
    info = images.read_info(cube_with(tmp_path, one + two))
    assert info.extra["size"] == 5760 + len(one) + len(two) and info.beams.shape == (1, 1, 3)
    for cut, message in ((4, r"is truncated: extension 1 is cut short at byte 5764"),
                         (9, r"is truncated: extension 1 is cut short at byte 5769"),
                         (10, r"extension 1 header is cut short at byte 5770"),
                         (len(one) - 1, rf"is truncated: extension 1 \(BEAMS\) needs bytes up to 11520, the file "
                                        rf"has {5760 + len(one) - 1}"),
                         (len(one) + 5, r"is truncated: extension 2 is cut short")):
        with pytest.raises(ImageFileError, match=rf"e\.fits: {message}"):
            images.read_info(cube_with(tmp_path, (one + two)[:cut]))
    with pytest.raises(ImageFileError, match=r"e\.fits: has 4 bytes after HDU 0 \(byte 5760\)"):
        images.read_info(cube_with(tmp_path, b"XTEX"))


# --- beams: header cards and the BEAMS table ----------------------------------------------------

def test_beam_errors_wait_until_a_beam_is_needed(tmp_path):
    for extra, message in (([("BMAJ", None)], r"primary header has no BMAJ"),
                           ([("BMIN", None)], r"primary header has no BMIN"),
                           ([("BPA", "'x'")], r"primary header keyword BPA = 'x' is not a number"),
                           ([("BMIN", "0.0")], r"has the beam 1 x 0 arcsec, PA 0 deg for channel 0, polarization 0 "
                                               r"\(1 bad plane\(s\)\): beams must be finite and > 0")):
        info = images.read_info(write(tmp_path / "q.fits", cube_cards(extra=extra), GOOD.tobytes()))
        assert info.beams is None and str(info.extra["beam_error"]).startswith(str(tmp_path / "q.fits"))
        assert re.fullmatch(message, info.extra["beam_error"].problem), info.extra["beam_error"].problem
    none = images.read_info(write(tmp_path / "n.fits", cube_cards(extra=[("BMAJ", None), ("BMIN", None),
                                                                         ("BPA", None)]), GOOD.tobytes()))
    assert none.beams is None and none.extra["beam_error"] is None


def test_beams_table_gives_each_plane_its_beam_in_its_units(tmp_path):
    data = np.zeros((2, 3, 2, 2), ">f4")  # numpy order: stokes, chan, y, x
    cards = cube_cards(nx=2, ny=2, extra=[("NAXIS", "4"), ("NAXIS4", "2"), ("CTYPE4", "'STOKES'"), ("CRVAL4", "1.0"),
                                          ("CDELT4", "1.0"), ("CRPIX4", "1.0"), ("BMAJ", None), ("BMIN", None)])
    rows = [(1.0 + c + 10 * p, 0.5 + c, 5.0 * c + p, c, p) for p in range(2) for c in range(3)]
    for units, scale in ((("arcsec", "arcsec", "deg"), RAD_PER_ARCSEC), (("deg", "deg", "deg"), RAD_PER_DEG),
                         (("degree", "DEGREE", "deg"), RAD_PER_DEG), (("arcmin", "arcmin", "deg"), 60 * RAD_PER_ARCSEC),
                         (("mas", "mas", "deg"), RAD_PER_ARCSEC / 1000), (("rad", "rad", "deg"), 1.0),
                         (("", "", ""), RAD_PER_ARCSEC)):
        path = write(tmp_path / "t.fits", cards, data.tobytes(), hdu_bytes(beams_hdu(rows, units)))
        info = images.read_info(path)
        assert info.beams.shape == (3, 2, 3) and info.extra["beam_error"] is None, units
        for bmaj, bmin, bpa, c, p in rows:
            np.testing.assert_allclose(info.beams[c, p], [bmaj * scale, bmin * scale, bpa], rtol=1e-6)


def test_beams_table_with_one_row_serves_every_plane_and_lowercase_names_count(tmp_path):
    tail = hdu_bytes(beams_hdu([(2.0, 1.0, 0.0, 0, 0)], names=("bmaj", "bmin", "bpa", "chan", "pol")))
    info = images.read_info(write(tmp_path / "o.fits", cube_cards(extra=[("BMAJ", None), ("BMIN", None)]),
                                  GOOD.tobytes(), tail))
    np.testing.assert_allclose(info.beams, [[[2.0 * RAD_PER_ARCSEC, RAD_PER_ARCSEC, 0.0]]], rtol=1e-7)


@pytest.mark.parametrize("rows, kwargs, message", [
    ([], {}, r"its BEAMS table is empty"),
    ([(1.0, 0.5, 0.0, 0, 0)], {"names": ("BMAJ", "BMIN", "X", "CHAN", "Y")},
     r"its BEAMS table lacks the column\(s\) BPA, POL"),
    ([(1.0, 0.5, 0.0, 0, 0)], {"units": ("furlong", "arcsec", "deg")},
     r"unknown angle unit 'furlong' of BMAJ in the BEAMS table"),
    ([(1.0, 0.5, 0.0, c, 0) for c in range(2)], {},
     r"its BEAMS table covers channels 0-1 and polarizations 0-0; "
     r"the image has 3 channel\(s\) and 1 polarization\(s\)"),
    ([(1.0, 0.5, 0.0, c, 0) for c in range(4)], {}, r"its BEAMS table covers channels 0-3 and polarizations 0-0"),
    ([(1.0, 0.5, 0.0, c, c % 2) for c in range(3)], {},
     r"its BEAMS table covers channels 0-2 and polarizations 0-1; the image "
                                                        r"has 3 channel\(s\) and 1 polarization\(s\)"),
    ([(1.0, 0.5, 0.0, -1, 0), (1.0, 0.5, 0.0, 0, 0)], {}, r"its BEAMS table covers channels 0-0"),
    ([(1.0, 0.5, 0.0, 0, -1), (1.0, 0.5, 0.0, 0, 0)], {}, r"its BEAMS table covers channels 0-0 and polarizations 0-0"),
    ([(1.0, 0.5, 0.0, 0.5, 0), (1.0, 0.5, 0.0, 0, 0)], {"chan_format": "1E"}, r"its BEAMS table covers channels 0-0"),
    ([(1.0, 0.5, 0.0, c + 0.0, 0) for c in range(2)] + [(1.0, 0.5, 0.0, np.nan, 0)], {"chan_format": "1E"},
     r"its BEAMS table covers channels 0--2"),
    ([(1.0, 0.5, 0.0, 0, 0), (1.0, 0.5, 0.0, 2, 0)], {}, r"has no beam for channel 1, polarization 0 \(1 bad plane"),
    ([(1.0, -0.5, 0.0, 0, 0)], {}, r"has the beam 1 x -0\.5 arcsec, PA 0 deg for channel 0"),
])
def test_bad_beams_tables_are_reported_naming_the_file(tmp_path, rows, kwargs, message):
    tail = hdu_bytes(beams_hdu(rows, **kwargs))
    info = images.read_info(write(tmp_path / "bt.fits", cube_cards(extra=[("BMAJ", None), ("BMIN", None)]),
                                  GOOD.tobytes(), tail))
    error = info.extra["beam_error"]
    assert info.beams is None and error.path == str(tmp_path / "bt.fits")
    assert re.match(message, error.problem), error.problem  # the problem itself, not wrapped in another


def test_an_unreadable_beams_table_is_reported(tmp_path):
    hdu = fits.BinTableHDU.from_columns([fits.Column(name=n, format="3A", array=np.array(["abc"]))
                                         for n in ("BMAJ", "BMIN", "BPA", "CHAN", "POL")], name="BEAMS")
    info = images.read_info(write(tmp_path / "bt.fits", cube_cards(), GOOD.tobytes(), hdu_bytes(hdu)))
    assert info.beams is None
    assert "bt.fits: its BEAMS table cannot be read (ValueError" in str(info.extra["beam_error"])


def test_check_beams_names_the_first_bad_plane_and_counts_them():
    good = [1e-6, 5e-7, 0.0]
    images._check_beams("x", np.array([[good, good]]))
    cases = (([[good, [np.nan] * 3]], r"has no beam for channel 0, polarization 1 \(1 bad plane"),
             ([[good, good], [[1e-6, 1e-6, np.inf], [0.0, 1e-6, 0]]],
              r"has the beam 0\.206265 x 0\.206265 arcsec, PA inf deg for channel 1, polarization 0 \(2 bad"),
             ([[[1e-6, 0.0, 10.0]]],
              r"has the beam 0\.206265 x 0 arcsec, PA 10 deg for channel 0, polarization 0 \(1 "),
             ([[[-1e-6, 1e-6, 10.0]]], r"has the beam -0\.206265 x"))
    for beams, message in cases:
        with pytest.raises(ImageFileError, match=rf"^x: {message}.*: beams must be finite and > 0$"):
            images._check_beams("x", np.array(beams))


def test_check_beam_planes_accepts_one_or_all_and_refuses_others():
    for shape in ((1, 1), (4, 1), (1, 2), (4, 2)):
        images._check_beam_planes("x", np.zeros(shape + (3,)), (5, 5, 2, 4), 3, 2)
    images._check_beam_planes("x", np.zeros((1, 1, 3)), (5, 5), None, None)
    for shape, want in (((3, 2), "4 x 2"), ((4, 3), "4 x 2"), ((2, 1), "4 x 2")):
        with pytest.raises(ImageFileError, match=rf"^x: has per-plane beams for {shape[0]} channel\(s\) x {shape[1]} "
                                                 rf"polarization\(s\); the image has {want}$"):
            images._check_beam_planes("x", np.zeros(shape + (3,)), (5, 5, 2, 4), 3, 2)
    with pytest.raises(ImageFileError, match=r"the image has 1 x 1$"):
        images._check_beam_planes("x", np.zeros((2, 1, 3)), (5, 5), None, None)


# --- FITS conversion: streamed, header rewritten, extensions copied -----------------------------

def cube_with_beams(tmp_path, name="cube.fits", bitpix=-32):
    """4 x 5 pixels x 3 channels x 2 Stokes with one beam per plane; returns (path, data, rows)."""
    dtype = ">f4" if bitpix == -32 else ">f8"
    data = (np.random.default_rng(3).normal(0.05, 0.2, (2, 3, 5, 4))).astype(dtype)
    data[0, 0, 0, 0] = np.nan
    cards = cube_cards(extra=[("BITPIX", str(bitpix)), ("NAXIS", "4"), ("NAXIS4", "2"), ("CTYPE4", "'STOKES'"),
                              ("CRVAL4", "1.0"), ("CDELT4", "1.0"), ("CRPIX4", "1.0"), ("BMAJ", None), ("BMIN", None),
                              ("BPA", None), ("OBJECT", "'src'")])
    rows = [(1.0 + 0.1 * c + 0.05 * p, 0.5 + 0.02 * c, 5.0 * c, c, p) for p in range(2) for c in range(3)]
    path = write(tmp_path / name, cards, data.tobytes(), hdu_bytes(beams_hdu(rows)))
    return path, data, rows


def expected_k(data, rows):
    """Independent RJ conversion: each (pol, chan) plane times radio-beam's Beam.jtok (of the beam as the
    table stores it: float32)."""
    from radio_beam import Beam
    out = data.astype(float)
    for bmaj, bmin, _, c, p in rows:
        beam = Beam(major=float(np.float32(bmaj)) * u.arcsec, minor=float(np.float32(bmin)) * u.arcsec)
        out[p, c] *= beam.jtok((230e9 + 1e9 * c) * u.Hz).to_value(u.K)
    return out


@pytest.mark.filterwarnings("error::RuntimeWarning")  # a clean conversion warns of nothing
@pytest.mark.parametrize("block_values", [7, 20, 40, 50, 10**6])
def test_fits_conversion_in_blocks_of_any_size_gives_the_same_file(tmp_path, monkeypatch, block_values):
    path, data, rows = cube_with_beams(tmp_path)
    monkeypatch.setattr(images, "BLOCK_BYTES", 10**9)
    convert_fits_file(path, tmp_path / "one.fits")
    monkeypatch.setattr(images, "BLOCK_BYTES", block_values * 4)
    bar = Counter()
    stats = convert_fits_file(path, tmp_path / "many.fits", progress=bar)
    plane, nplanes = 20, 6
    blocks = (nplanes * -(-plane // block_values) if block_values < plane
              else -(-nplanes // min(nplanes, block_values // plane)))
    assert stats == {"method": "stream", "blocks": blocks} and bar.n == blocks
    assert (tmp_path / "many.fits").read_bytes() == (tmp_path / "one.fits").read_bytes()
    np.testing.assert_allclose(fits.getdata(tmp_path / "many.fits"), expected_k(data, rows), rtol=2e-7)


def test_fits_output_rewrites_bunit_adds_history_and_copies_the_rest(tmp_path):
    path, data, rows = cube_with_beams(tmp_path)
    stats = convert_fits_file(path, tmp_path / "k.fits", history=["tbconv: from cübe", "second line"])
    assert stats == {"method": "stream", "blocks": 1}
    raw_in, raw_out = path.read_bytes(), (tmp_path / "k.fits").read_bytes()
    assert len(raw_out) % 2880 == 0
    with fits.open(path) as src, fits.open(tmp_path / "k.fits") as dst:
        h = dst[0].header
        assert h["BUNIT"] == "K" and list(h["HISTORY"]) == ["tbconv: from c?be", "second line"]
        assert [k for k in h if k != "HISTORY"] == list(src[0].header)
        for key in src[0].header:
            if key != "BUNIT":
                assert h[key] == src[0].header[key], key
        data_end = len(h.tostring()) + data.nbytes
        assert raw_out[data_end:data_end + (-data.nbytes % 2880)] == bytes(-data.nbytes % 2880)  # zero padding
        assert raw_out[-(len(raw_in) - 5760):] == raw_in[5760:]  # BEAMS byte for byte
        assert dst[1].name == "BEAMS" and len(dst) == 2
        out = dst[0].data
    assert np.isnan(out[0, 0, 0, 0]) and np.isnan(out).sum() == 1
    np.testing.assert_allclose(out, expected_k(data, rows), rtol=2e-7)
    back = convert_fits_file(tmp_path / "k.fits", tmp_path / "back.fits", bunit_out="Jy/beam")
    assert back["blocks"] == 1 and fits.getheader(tmp_path / "back.fits")["BUNIT"] == "Jy/beam"
    np.testing.assert_allclose(fits.getdata(tmp_path / "back.fits"), data, rtol=1e-6, atol=1e-7)


def test_double_precision_fits_stays_double(tmp_path, monkeypatch):
    path, data, rows = cube_with_beams(tmp_path, bitpix=-64)
    monkeypatch.setattr(images, "BLOCK_BYTES", 8 * 20)  # one plane of doubles per block
    assert convert_fits_file(path, tmp_path / "k.fits")["blocks"] == 6
    out = fits.getdata(tmp_path / "k.fits")
    assert out.dtype == np.dtype(">f8")
    np.testing.assert_allclose(out, expected_k(data, rows), rtol=1e-12)


def test_a_small_block_never_exceeds_the_data(tmp_path, monkeypatch):
    # the buffer is the data's size when the data are smaller than a block, and at least one value
    path, data, rows = cube_with_beams(tmp_path)
    monkeypatch.setattr(images, "BLOCK_BYTES", 1)
    assert convert_fits_file(path, tmp_path / "k.fits")["blocks"] == 120
    np.testing.assert_allclose(fits.getdata(tmp_path / "k.fits"), expected_k(data, rows), rtol=2e-7)


@pytest.mark.parametrize("extra", [[("BITPIX", "16")], [("BITPIX", "8")], [("BSCALE", "2.0")], [("BZERO", "1.0")]])
def test_integer_or_scaled_fits_is_refused(tmp_path, extra):
    path = write(tmp_path / "i.fits", cube_cards(extra=extra), GOOD.tobytes())
    info = images.read_info(path)
    conv = PlaneConverter("Jy/beam", "K", "rj", info.freqs_hz, info.beams, info.nchan, info.npol)
    with pytest.raises(ImageFileError, match=r"i\.fits: integer or scaled \(BSCALE/BZERO\) FITS data; convert it"):
        images.convert_fits(info, tmp_path / "o.fits", conv, "K", [])
    assert not (tmp_path / "o.fits").exists()


# --- low-level reading and writing ---------------------------------------------------------------

class Trickle:
    """A file that reads or writes at most *n* bytes a call."""

    def __init__(self, data=b"", n=3):
        self.data, self.n, self.pos, self.out = data, n, 0, bytearray()

    def readinto(self, view):
        chunk = self.data[self.pos:self.pos + min(self.n, len(view))]
        view[:len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)

    def read(self, k):
        chunk = self.data[self.pos:self.pos + min(self.n, k)]
        self.pos += len(chunk)
        return chunk

    def write(self, view):
        self.out += bytes(view[:self.n])
        return min(self.n, len(view))

    def tell(self):
        return self.pos


def test_reads_and_writes_go_on_until_every_byte_is_moved():
    values = np.arange(5, dtype=">f4")
    src = Trickle(values.tobytes() + b"tail", n=3)
    got = np.empty(5, ">f4")
    images._read_exactly(src, got, info_of((5,)))
    np.testing.assert_array_equal(got, values)
    dst = Trickle(n=3)
    images._write_all(dst, values)
    assert bytes(dst.out) == values.tobytes()
    src, dst = Trickle(b"abcdefgh", n=3), Trickle(n=2)
    assert images._copy_exactly(src, dst, 7) == 7 and bytes(dst.out) == b"abcdefg"
    src, dst = Trickle(b"abc", n=2), Trickle(n=5)
    assert images._copy_exactly(src, dst, 10) == 3 and bytes(dst.out) == b"abc"
    assert images._copy_exactly(Trickle(b"abc"), Trickle(), 0) == 0


def test_a_short_read_says_how_many_bytes_are_missing(tmp_path):
    info = info_of((4,))
    info.path = tmp_path / "s.fits"
    with pytest.raises(ImageFileError, match=r"s\.fits: is truncated or shrank while it was read: the data end at "
                                             r"byte 10, 6 bytes short of what its header announces"):
        images._read_exactly(Trickle(bytes(10), n=4), np.empty(4, ">f4"), info)


# --- CASA images ----------------------------------------------------------------------------------

def casa_image(path, shape=(4, 5, 2, 3), spectral_unit="Hz", ref=230e9, inc=0.5e9, refpix=0.0,
               direction_unit="arcsec", cell=0.1, pixeltype="f", beams=None, unit="Jy/beam", order=None,
               spectral=True, stokes=("I", "V")):
    """A tiny CASA image made with the toolkit; spectral values are given in *spectral_unit*."""
    ct = casatools()
    cs0, ia = ct.coordsys(), ct.image()
    cs = cs0.newcoordsys(direction=True, spectral=spectral, stokes=list(stokes) if stokes else [])
    try:
        if spectral:
            cs.setunits(type="spectral", value=spectral_unit)
            cs.setreferencevalue(type="spectral", value=[ref])
            cs.setincrement(type="spectral", value=[inc])
            cs.setreferencepixel(type="spectral", value=[refpix])
        cs.setunits(type="direction", value=[direction_unit, direction_unit])
        cs.setincrement(type="direction", value=[-cell, cell])
        if order is not None:
            cs.transpose(order)
        ia.fromshape(str(path), list(shape), csys=cs.torecord(), overwrite=True, type=pixeltype)
        if pixeltype == "f":
            ia.setbrightnessunit(unit)
        for (c, p), (bmaj, bmin, bpa) in (beams or {}).items():
            ia.setrestoringbeam(major=f"{bmaj}arcsec", minor=f"{bmin}arcsec", pa=f"{bpa}deg", channel=c,
                                polarization=p)
    finally:
        ia.done()
        cs.done()
        cs0.done()
    if pixeltype != "f":  # the image tool sets no unit on double images: the table tool does
        tb = casatools().table()
        try:
            tb.open(str(path), nomodify=False)
            tb.putkeyword("units", unit)
        finally:
            tb.done()
    return path


def tree_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


PLANE_BEAMS = {(c, p): (1.0 + 0.1 * c + 0.03 * p, 0.5 + 0.02 * c, 10.0 * c + p) for c in range(3) for p in range(2)}


@pytest.mark.parametrize("spectral_unit, scale", [("Hz", 1.0), ("kHz", 1e3), ("MHz", 1e6), ("GHz", 1e9)])
def test_casa_frequencies_per_channel_in_hz_whatever_the_axis_unit(tmp_path, spectral_unit, scale):
    path = casa_image(tmp_path / "c.image", spectral_unit=spectral_unit, ref=230e9 / scale, inc=-0.5e9 / scale,
                      refpix=1.0)
    info = images.read_info(path)
    np.testing.assert_allclose(info.freqs_hz, [230.5e9, 230e9, 229.5e9], rtol=1e-12)
    assert info.spectral_note == "frequency axis, frame LSRK" and info.format == "casa"


def test_casa_image_axes_beams_units_and_sizes(tmp_path):
    path = casa_image(tmp_path / "c.image", beams=PLANE_BEAMS, unit=" Jy/beam ", pixeltype="d")
    info = images.read_info(path)
    assert (info.shape, info.spectral_axis, info.stokes_axis, info.nchan, info.npol) == ((4, 5, 2, 3), 3, 2, 3, 2)
    assert info.bunit == "Jy/beam" and info.extra["itemsize"] == 8 and info.nbytes == tree_bytes(path)
    assert info.extra["beam_error"] is None and info.extra["pixels"] is not None
    for (c, p), (bmaj, bmin, bpa) in PLANE_BEAMS.items():
        np.testing.assert_allclose(info.beams[c, p], [bmaj * RAD_PER_ARCSEC, bmin * RAD_PER_ARCSEC, bpa], rtol=1e-9)
    assert info.pixel_sr == pytest.approx((0.1 * RAD_PER_ARCSEC) ** 2, rel=1e-12, abs=0)
    assert images.planes(info) == 1


@pytest.mark.parametrize("unit, cell, rad", [("arcsec", 0.2, RAD_PER_ARCSEC), ("arcmin", 0.5, 60 * RAD_PER_ARCSEC),
                                             ("deg", 1e-3, RAD_PER_DEG), ("rad", 1e-6, 1.0)])
def test_casa_pixel_solid_angle_in_any_direction_unit(tmp_path, unit, cell, rad):
    info = images.read_info(casa_image(tmp_path / "c.image", direction_unit=unit, cell=cell))
    assert info.pixel_sr == pytest.approx((cell * rad) ** 2, rel=1e-12, abs=0)


def test_casa_angle_names_cover_casas_own_spellings():
    assert images._TO_RAD["'"] == images._TO_RAD["arcmin"] == pytest.approx(60 * RAD_PER_ARCSEC, rel=1e-15, abs=0)
    assert images._TO_RAD['"'] == images._TO_RAD["arcsec"] == pytest.approx(RAD_PER_ARCSEC, rel=1e-15, abs=0)
    assert images._TO_RAD["mas"] == pytest.approx(RAD_PER_ARCSEC / 1000, rel=1e-15, abs=0)
    assert images._TO_RAD["deg"] == pytest.approx(RAD_PER_DEG, rel=1e-15, abs=0) and images._TO_RAD["rad"] == 1.0


def test_casa_axes_in_another_order_and_without_a_spectral_axis(tmp_path):
    path = casa_image(tmp_path / "t.image", shape=(4, 5, 3, 2), order=[0, 1, 3, 2])
    info = images.read_info(path)
    assert (info.spectral_axis, info.stokes_axis, info.nchan, info.npol) == (2, 3, 3, 2)
    np.testing.assert_allclose(info.freqs_hz, [230e9, 230.5e9, 231e9], rtol=1e-12)
    flat = images.read_info(casa_image(tmp_path / "m.image", shape=(4, 5, 1), spectral=False, stokes=("I",)))
    assert flat.spectral_axis is None and flat.stokes_axis == 2 and np.isnan(flat.freqs_hz).all()
    assert len(flat.freqs_hz) == 1 and flat.spectral_note == "" and flat.beams is None
    assert flat.extra["beam_error"] is None and flat.bunit == "Jy/beam"


def test_casa_negative_frequencies_are_refused(tmp_path):
    path = casa_image(tmp_path / "n.image", ref=1e9, inc=-1e9, refpix=0.0)
    with pytest.raises(ImageFileError, match=r"n\.image: its spectral axis gives frequencies -1000000000\.0-1000000000"
                                             r"\.0 \(Hz\): they must be finite and > 0 Hz"):
        images.read_info(path)


def test_casa_beams_for_the_wrong_planes_are_reported_when_needed(tmp_path):
    path = casa_image(tmp_path / "c.image", beams=PLANE_BEAMS)
    tb = casatools().table()
    try:  # the stored beams claim 2 channels for a 3-channel image
        tb.open(str(path), nomodify=False)
        imageinfo = tb.getkeyword("imageinfo")
        imageinfo["perplanebeams"]["nChannels"] = 2
        imageinfo["perplanebeams"]["nStokes"] = 3
        tb.putkeyword("imageinfo", imageinfo)
    finally:
        tb.done()
    info = images.read_info(path)
    assert info.beams is None
    assert str(info.extra["beam_error"]) == (f"{path}: has per-plane beams for 2 channel(s) x 3 polarization(s); "
                                             "the image has 3 x 2")


def virtual_image(tmp_path, beams=PLANE_BEAMS):
    """A concatenation of two tiny images that is no paged image (read through the image tool)."""
    parts = []
    for k, chans in enumerate(((0, 1), (2,))):
        sub = {(i, p): beams[(c, p)] for i, c in enumerate(chans) for p in range(2)} if beams else None
        parts.append(str(casa_image(tmp_path / f"p{k}.image", shape=(4, 5, 2, len(chans)), ref=230e9 + 0.5e9 * chans[0],
                                    beams=sub)))
    virtual_concat(parts, tmp_path / "cat.image", axis=3)
    return tmp_path / "cat.image"


def test_a_virtual_image_is_read_through_the_image_tool_with_its_plane_beams(tmp_path):
    info = images.read_info(virtual_image(tmp_path))
    assert info.extra["pixels"] is None and info.extra["why"] == "not a paged image" and info.extra["itemsize"] == 4
    assert (info.shape, info.spectral_axis, info.stokes_axis, info.bunit) == ((4, 5, 2, 3), 3, 2, "Jy/beam")
    np.testing.assert_allclose(info.freqs_hz, [230e9, 230.5e9, 231e9], rtol=1e-12)
    assert info.nbytes == tree_bytes(tmp_path / "cat.image") and info.extra["beam_error"] is None
    for (c, p), (bmaj, bmin, bpa) in PLANE_BEAMS.items():
        np.testing.assert_allclose(info.beams[c, p], [bmaj * RAD_PER_ARCSEC, bmin * RAD_PER_ARCSEC, bpa], rtol=1e-9)


def test_a_virtual_image_without_beams_and_a_directory_that_is_no_image(tmp_path):
    info = images.read_info(virtual_image(tmp_path, beams=None))
    assert info.beams is None and info.extra["beam_error"] is None
    (tmp_path / "empty.image").mkdir()
    with pytest.raises(ImageFileError, match=r"empty\.image: is a directory that CASA cannot open as an image \("):
        images.read_info(tmp_path / "empty.image")


def test_tile_indices_give_each_pixel_its_plane_clipped_at_the_edge():
    info = info_of((3, 2, 5, 2), spectral=2, stokes=3)
    layout = TiledPixels(file=None, shape=(3, 2, 5, 2), tile=(2, 2, 2, 1), dtype=np.dtype("<f4"))
    origins = layout.origins(0, layout.ntiles)
    chan, pol = images._tile_indices(info, layout, origins)
    tiles = (len(origins),) + layout.tile_numpy_shape
    chan, pol = np.broadcast_to(chan, tiles), np.broadcast_to(pol, tiles)
    for k, origin in enumerate(origins):  # numpy order inside a tile: pol, chan, y, x
        for dc in range(2):
            assert (chan[k, :, dc] == min(origin[2] + dc, 4)).all()
        assert (pol[k] == origin[3]).all()
    none = info_of((3, 2))
    flat = TiledPixels(file=None, shape=(3, 2), tile=(2, 2), dtype=np.dtype("<f4"))
    c, p = images._tile_indices(none, flat, flat.origins(0, 2))
    assert c.shape == p.shape == (2, 1, 1) and not c.any() and not p.any()


def test_along_shapes_values_for_one_axis():
    assert images._along(4, 2, np.arange(3)).shape == (1, 1, 3, 1)
    assert images._along(2, 0, np.arange(5)).ravel().tolist() == [0, 1, 2, 3, 4]


def kelvin_planes(pixels, beams=PLANE_BEAMS, f0=230e9, df=0.5e9):
    """pixels [x, y, pol, chan] (CASA order) in K, plane by plane with astropy."""
    out = pixels.astype(float)
    for (c, p), (bmaj, bmin, _) in beams.items():
        out[:, :, p, c] *= jtok(f0 + c * df, bmaj, bmin)
    return out


def fill(path, seed=5):
    ia = casatools().image()
    try:
        ia.open(str(path))
        pixels = np.random.default_rng(seed).normal(0.1, 0.3, ia.shape()).astype(np.float32)
        ia.putchunk(pixels)
        return pixels
    finally:
        ia.done()


def read_back(path):
    ia = casatools().image()
    try:
        ia.open(str(path))
        return ia.getchunk(), ia.brightnessunit(), ia.history(list=False)
    finally:
        ia.done()


@pytest.mark.parametrize("approximation", ["rj", "planck"])
def test_casa_image_is_converted_tile_by_tile(tmp_path, approximation):
    path = casa_image(tmp_path / "c.image", beams=PLANE_BEAMS)
    pixels = fill(path)
    info = images.read_info(path)
    conv = PlaneConverter("Jy/beam", "K", approximation, info.freqs_hz, info.beams, info.nchan, info.npol)
    bar = Counter()
    stats = images.convert_casa(info, tmp_path / "k.image", conv, "K", ["tbconv: test line"], bar)
    assert stats == {"method": "tiles", "blocks": 1} and bar.n == 1
    out, bunit, history = read_back(tmp_path / "k.image")
    assert bunit == "K" and any("tbconv: test line" in h for h in history)
    if approximation == "rj":
        np.testing.assert_allclose(out, kelvin_planes(pixels), rtol=2e-7)
    else:  # Planck: hv/k / ln(1 + 2hv^3/(c^2 I)), I the intensity in the beam
        nu = (230e9 + 0.5e9 * np.arange(3)) * u.Hz
        for (c, p), (bmaj, bmin, _) in PLANE_BEAMS.items():
            omega = (np.pi / (4 * np.log(2)) * bmaj * bmin * u.arcsec ** 2).to(u.sr)
            inten = (pixels[:, :, p, c].astype(float) * u.Jy / omega).to(u.W / u.m ** 2 / u.Hz / u.sr) * u.sr
            ratio = (2 * const.h * nu[c] ** 3 / (const.c ** 2 * np.abs(inten))).to_value(u.dimensionless_unscaled)
            t = (const.h * nu[c] / const.k_B).to_value(u.K) / np.log1p(ratio) * np.sign(pixels[:, :, p, c])
            np.testing.assert_allclose(out[:, :, p, c], t, rtol=2e-6)


@pytest.mark.parametrize("approximation", ["rj", "planck"])
def test_a_virtual_image_is_converted_by_casa(tmp_path, monkeypatch, approximation):
    cat = virtual_image(tmp_path)
    pixels = np.concatenate([fill(tmp_path / "p0.image", 1), fill(tmp_path / "p1.image", 2)], axis=3)
    info = images.read_info(cat)
    conv = PlaneConverter("Jy/beam", "K", approximation, info.freqs_hz, info.beams, info.nchan, info.npol)
    monkeypatch.setattr(images, "BLOCK_BYTES", 4 * 4 * 5 * 2 * 2)  # two channels (all pols) per getchunk block
    bar = Counter()
    stats = images.convert_casa(info, tmp_path / "k.image", conv, "K", ["tbconv: via casa"], bar)
    assert stats == {"method": "casa", "blocks": 1 if approximation == "rj" else 2}
    assert bar.n == (0 if approximation == "rj" else 2)
    out, bunit, history = read_back(tmp_path / "k.image")
    assert bunit == "K" and any("tbconv: via casa" in h for h in history)
    if approximation == "rj":
        np.testing.assert_allclose(out, kelvin_planes(pixels), rtol=2e-7)
    else:  # Planck is always above RJ for positive intensities, and each plane has its own factor
        rj = kelvin_planes(pixels)
        assert ((out > rj) == (pixels > 0)).all()
    assert not list(tmp_path.glob("*factors*")) and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("block_bytes, blocks", [(479, 2), (480, 1), (320, 2), (319, 3)])
def test_casa_chunks_hold_as_many_whole_channels_as_a_block_holds(tmp_path, monkeypatch, block_bytes, blocks):
    # a channel of the 4 x 5 x 2 x 3 virtual cube is 4 x 5 x 2 float pixels: 160 bytes
    cat = virtual_image(tmp_path, beams=PLANE_BEAMS)
    info = images.read_info(cat)
    conv = PlaneConverter("Jy/beam", "K", "planck", info.freqs_hz, info.beams, info.nchan, info.npol)
    monkeypatch.setattr(images, "BLOCK_BYTES", block_bytes)
    assert images.convert_casa(info, tmp_path / "k.image", conv, "K", ["h"]) == {"method": "casa", "blocks": blocks}


def test_a_virtual_image_with_a_degenerate_axis_keeps_it(tmp_path):
    parts = [str(casa_image(tmp_path / f"d{k}.image", shape=(4, 5, 1, 2), ref=230e9 + 1e9 * k, stokes=("I",),
                            beams={(0, 0): (1.0, 0.5, 0.0), (1, 0): (1.5, 0.7, 0.0)})) for k in range(2)]
    cubes = [fill(p, k) for k, p in enumerate(parts)]
    virtual_concat(parts, tmp_path / "cat.image", axis=3)
    info = images.read_info(tmp_path / "cat.image")
    conv = PlaneConverter("Jy/beam", "K", "rj", info.freqs_hz, info.beams, info.nchan, info.npol)
    images.convert_casa(info, tmp_path / "k.image", conv, "K", ["h"])
    out = read_back(tmp_path / "k.image")[0]
    assert out.shape == (4, 5, 1, 4)
    beams = {(c, 0): b for c, b in enumerate(((1.0, 0.5, 0.0), (1.5, 0.7, 0.0)) * 2)}  # 230, 230.5, 231, 231.5 GHz
    np.testing.assert_allclose(out, kelvin_planes(np.concatenate(cubes, axis=3), beams), rtol=2e-7)


def test_planck_tiles_find_the_peak_of_an_all_negative_image_not_of_the_padding(tmp_path):
    path = tmp_path / "neg.image"
    beams = {(c, p): (1.2, 0.6, 0.0) for c in range(19) for p in range(2)}
    casa_image(path, shape=(131, 131, 2, 19), beams=beams)
    ia = casatools().image()
    try:
        ia.open(str(path))
        pixels = -np.abs(np.random.default_rng(4).normal(0.1, 0.3, ia.shape())).astype(np.float32) - 0.01
        ia.putchunk(pixels)
    finally:
        ia.done()
    info = images.read_info(path)
    assert info.extra["pixels"].ntiles == 16
    conv = PlaneConverter("Jy/beam", "K", "planck", info.freqs_hz, info.beams, info.nchan, info.npol)
    images.convert_casa(info, tmp_path / "k.image", conv, "K", ["h"])
    assert conv.peak["in"] == pytest.approx(float(pixels.max()), rel=1e-7, abs=0) and conv.peak["out"] < 0


def test_a_virtual_image_named_with_a_quote_is_converted_block_by_block(tmp_path, monkeypatch):
    cat = virtual_image(tmp_path)
    pixels = np.concatenate([fill(tmp_path / "p0.image", 1), fill(tmp_path / "p1.image", 2)], axis=3)
    info = images.read_info(cat)
    conv = PlaneConverter("Jy/beam", "K", "rj", info.freqs_hz, info.beams, info.nchan, info.npol)
    monkeypatch.setattr(images, "BLOCK_BYTES", 1)  # one channel per block
    stats = images.convert_casa(info, tmp_path / "it's.image", conv, "K", ["h"])
    assert stats == {"method": "casa", "blocks": 3}
    np.testing.assert_allclose(read_back(tmp_path / "it's.image")[0], kelvin_planes(pixels), rtol=2e-7)


# --- more edges: axes beyond NAXIS, tables, shrinking files, tiles ---------------------------------

def test_wcs_cards_of_an_axis_beyond_naxis_describe_no_pixel(tmp_path):
    # a degenerate Stokes axis described by CTYPE4 but absent from the data (NAXIS = 3) is no Stokes axis
    cards = cube_cards(extra=[("CTYPE4", "'STOKES'"), ("CRVAL4", "1.0"), ("CDELT4", "1.0"), ("CRPIX4", "1.0")])
    info = images.read_info(write(tmp_path / "d.fits", cards, GOOD.tobytes()))
    assert info.stokes_axis is None and info.spectral_axis == 2 and info.npol == 1


def test_beams_table_units_per_column_and_bad_polarization_numbers(tmp_path):
    cards = cube_cards(extra=[("BMAJ", None), ("BMIN", None)])
    rows = [(0.02 + 0.01 * c, 0.5 + c, 3.0, c, 0) for c in range(3)]
    info = images.read_info(write(tmp_path / "u.fits", cards, GOOD.tobytes(),
                                  hdu_bytes(beams_hdu(rows, units=("arcmin", "arcsec", "deg")))))
    for bmaj, bmin, bpa, c, _ in rows:
        np.testing.assert_allclose(info.beams[c, 0], [bmaj * 60 * RAD_PER_ARCSEC, bmin * RAD_PER_ARCSEC, bpa],
                                   rtol=1e-6)
    for pols, message in (([0.0, 0.5, 0.0], r"covers channels 0-2 and polarizations 0-0;"),
                          ([0.0, np.nan, 0.0], r"covers channels 0-2 and polarizations 0--2;")):
        rows = [(1.0, 0.5, 0.0, c, pols[c]) for c in range(3)]
        tail = hdu_bytes(beams_hdu(rows, pol_format="1E"))
        info = images.read_info(write(tmp_path / "p.fits", cards, GOOD.tobytes(), tail))
        assert info.beams is None and re.match(f"its BEAMS table {message}", info.extra["beam_error"].problem)


def test_check_beams_shows_a_partly_missing_beam_by_its_values():
    with pytest.raises(ImageFileError, match=r"^x: has the beam nan x 0\.206265 arcsec, PA 0 deg for channel 0, "
                                             r"polarization 0 \(1 bad plane\(s\)\)"):
        images._check_beams("x", np.array([[[np.nan, 1e-6, 0.0]]]))


def test_extensions_that_shrink_before_they_are_copied_are_an_error(tmp_path):
    path, data, rows = cube_with_beams(tmp_path)
    info = images.read_info(path)
    conv = PlaneConverter(info.bunit, "K", "rj", info.freqs_hz, info.beams, info.nchan, info.npol)
    size = path.stat().st_size
    os.truncate(path, size - 100)  # another program cuts the BEAMS table after the file was read
    with pytest.raises(ImageFileError, match=rf"cube\.fits: shrank while it was read: {size - 5760} bytes of "
                                             rf"extensions expected after byte 5760, {size - 5860} read"):
        images.convert_fits(info, tmp_path / "k.fits", conv, "K", [])


def test_a_virtual_image_with_one_beam_for_all_planes(tmp_path):
    parts = []
    for k in range(2):
        p = casa_image(tmp_path / f"s{k}.image", shape=(4, 5, 2, 1), ref=230e9 + 0.5e9 * k)
        ia = casatools().image()
        try:
            ia.open(str(p))
            ia.setrestoringbeam(major="1.5arcsec", minor="0.7arcsec", pa="20deg")
        finally:
            ia.done()
        parts.append(str(p))
    virtual_concat(parts, tmp_path / "cat.image", axis=3)
    info = images.read_info(tmp_path / "cat.image")
    assert info.extra["pixels"] is None and info.nchan == 2
    np.testing.assert_allclose(info.beams.reshape(-1, 3)[0], [1.5 * RAD_PER_ARCSEC, 0.7 * RAD_PER_ARCSEC, 20.0],
                               rtol=1e-9)
    assert (info.beams == info.beams.reshape(-1, 3)[0]).all()


def test_casa_zero_frequency_is_refused(tmp_path):
    path = casa_image(tmp_path / "z.image", ref=0.0, inc=1e9)
    with pytest.raises(ImageFileError, match=r"z\.image: its spectral axis gives frequencies 0\.0-2000000000\.0 "
                                             r"\(Hz\): they must be finite and > 0 Hz"):
        images.read_info(path)


def test_casa_image_without_direction_axes_has_no_pixel_size(tmp_path):
    ct = casatools()
    cs0, ia = ct.coordsys(), ct.image()
    cs = cs0.newcoordsys(direction=False, spectral=True, stokes=["I"])
    try:
        ia.fromshape(str(tmp_path / "s.image"), [1, 3], csys=cs.torecord())
    finally:
        ia.done()
        cs.done()
        cs0.done()
    info = images.read_info(tmp_path / "s.image")
    assert math.isnan(info.pixel_sr) and (info.stokes_axis, info.spectral_axis) == (0, 1) and info.nchan == 3


def test_casa_image_size_leaves_out_symbolic_links(tmp_path):
    path = casa_image(tmp_path / "c.image")
    before = images.read_info(path).nbytes
    assert before == tree_bytes(path)
    (tmp_path / "big").write_bytes(bytes(10_000))
    (path / "link").symlink_to(tmp_path / "big")
    (path / "subdir").mkdir()
    assert images.read_info(path).nbytes == before


@pytest.fixture(scope="module")
def tiled_cube(tmp_path_factory):
    """131 x 131 pixels x 2 Stokes x 19 channels: CASA stores it in 66 x 66 x 1 x 10 tiles (174,240 bytes, six
    to a 1 MiB block), edge tiles padded."""
    path = tmp_path_factory.mktemp("tiles") / "t.image"
    beams = {(c, p): (1.2 + 0.05 * c + 0.02 * p, 0.6 + 0.03 * c, 10.0 * c) for c in range(19) for p in range(2)}
    casa_image(path, shape=(131, 131, 2, 19), beams=beams)
    pixels = fill(path, 7)
    info = images.read_info(path)
    layout = info.extra["pixels"]
    assert layout.tile == (66, 66, 1, 10) and layout.ntiles == 16
    return path, pixels, beams, layout


@pytest.mark.filterwarnings("error::RuntimeWarning")  # a clean conversion warns of nothing
@pytest.mark.parametrize("tiles_per_block, blocks", [(None, 3), (1, 16), (3, 6), (16, 1), (15, 2)])
def test_casa_tiles_are_streamed_in_blocks_of_whole_tiles(tmp_path, monkeypatch, tiled_cube, tiles_per_block, blocks):
    path, pixels, beams, layout = tiled_cube
    if tiles_per_block is not None:
        monkeypatch.setattr(images, "BLOCK_BYTES", tiles_per_block * layout.tile_bytes + layout.tile_bytes - 1)
    info = images.read_info(path)
    conv = PlaneConverter("Jy/beam", "K", "rj", info.freqs_hz, info.beams, info.nchan, info.npol)
    bar = Counter()
    assert images.convert_casa(info, tmp_path / "k.image", conv, "K", ["h"], bar) == {"method": "tiles",
                                                                                       "blocks": blocks}
    assert bar.n == blocks
    np.testing.assert_allclose(read_back(tmp_path / "k.image")[0], kelvin_planes(pixels, beams, df=0.5e9), rtol=2e-7)


def test_casa_tiles_planck_converts_every_pixel_of_edge_tiles(tmp_path, monkeypatch, tiled_cube):
    path, pixels, beams, layout = tiled_cube
    monkeypatch.setattr(images, "BLOCK_BYTES", 1)
    info = images.read_info(path)
    conv = PlaneConverter("Jy/beam", "K", "planck", info.freqs_hz, info.beams, info.nchan, info.npol)
    images.convert_casa(info, tmp_path / "k.image", conv, "K", ["h"])
    out = read_back(tmp_path / "k.image")[0]
    for c, p in ((0, 0), (9, 1), (10, 0), (18, 1)):  # both sides of the channel tile edge, the last plane
        bmaj, bmin, _ = beams[(c, p)]
        nu = (230e9 + 0.5e9 * c) * u.Hz
        omega = (np.pi / (4 * np.log(2)) * bmaj * bmin * u.arcsec ** 2).to(u.sr)
        for xs, ys in ((slice(0, 3), slice(0, 3)), (slice(64, 68), slice(64, 68)), (slice(128, 131), slice(127, 131))):
            jy = pixels[xs, ys, p, c].astype(float)
            inten = (np.abs(jy) * u.Jy / omega).to(u.W / u.m ** 2 / u.Hz / u.sr) * u.sr
            ratio = (2 * const.h * nu ** 3 / (const.c ** 2 * inten)).to_value(u.dimensionless_unscaled)
            t = (const.h * nu / const.k_B).to_value(u.K) / np.log1p(ratio) * np.sign(jy)
            np.testing.assert_allclose(out[xs, ys, p, c], t, rtol=2e-6)


def test_casa_planck_on_a_continuum_image_without_a_spectral_axis(tmp_path, monkeypatch):
    # an I and a V image joined virtually (so CASA converts it); the frequency is the freq parameter's
    parts = [casa_image(tmp_path / f"{s}.image", shape=(4, 5, 1), spectral=False, stokes=(s,)) for s in "IV"]
    pixels = np.concatenate([fill(p, k) for k, p in enumerate(parts)], axis=2)
    virtual_concat([str(p) for p in parts], tmp_path / "mfs.image", axis=2)
    info = images.read_info(tmp_path / "mfs.image")
    assert info.spectral_axis is None and info.stokes_axis == 2 and info.extra["pixels"] is None
    bmaj, bmin = 1.2, 0.6
    beams = np.array([[[bmaj * RAD_PER_ARCSEC, bmin * RAD_PER_ARCSEC, 0.0]]])
    conv = PlaneConverter("Jy/beam", "K", "planck", np.array([230e9]), beams, info.nchan, info.npol)
    monkeypatch.setattr(images, "BLOCK_BYTES", 1)
    assert images.convert_casa(info, tmp_path / "k.image", conv, "K", ["h"]) == {"method": "casa", "blocks": 1}
    out = read_back(tmp_path / "k.image")[0]
    nu = 230e9 * u.Hz
    omega = (np.pi / (4 * np.log(2)) * bmaj * bmin * u.arcsec ** 2).to(u.sr)
    inten = (np.abs(pixels.astype(float)) * u.Jy / omega).to(u.W / u.m ** 2 / u.Hz / u.sr) * u.sr
    ratio = (2 * const.h * nu ** 3 / (const.c ** 2 * inten)).to_value(u.dimensionless_unscaled)
    expected = (const.h * nu / const.k_B).to_value(u.K) / np.log1p(ratio) * np.sign(pixels)
    assert out.shape == (4, 5, 2)
    np.testing.assert_allclose(out, expected, rtol=2e-6)


def test_a_virtual_image_without_stokes_is_converted_by_casa_plane_by_plane(tmp_path, monkeypatch):
    parts, cubes = [], []
    for k in range(2):
        p = casa_image(tmp_path / f"n{k}.image", shape=(4, 5, 2), ref=230e9 + 1e9 * k, stokes=(),
                       beams={(0, 0): (1.0 + k, 0.5, 0.0), (1, 0): (1.5 + k, 0.7, 0.0)})
        cubes.append(fill(p, k))
        parts.append(str(p))
    virtual_concat(parts, tmp_path / "cat.image", axis=2)
    info = images.read_info(tmp_path / "cat.image")
    assert info.stokes_axis is None and info.spectral_axis == 2 and info.nchan == 4
    conv = PlaneConverter("Jy/beam", "K", "planck", info.freqs_hz, info.beams, info.nchan, info.npol)
    monkeypatch.setattr(images, "BLOCK_BYTES", 1)
    assert images.convert_casa(info, tmp_path / "k.image", conv, "K", ["h"]) == {"method": "casa", "blocks": 4}
    out = read_back(tmp_path / "k.image")[0]
    pixels = np.concatenate(cubes, axis=2)
    freqs = [230e9, 230.5e9, 231e9, 231.5e9]
    for c, (bmaj, bmin) in enumerate(((1.0, 0.5), (1.5, 0.7), (2.0, 0.5), (2.5, 0.7))):
        nu = freqs[c] * u.Hz
        omega = (np.pi / (4 * np.log(2)) * bmaj * bmin * u.arcsec ** 2).to(u.sr)
        jy = pixels[:, :, c].astype(float)
        inten = (np.abs(jy) * u.Jy / omega).to(u.W / u.m ** 2 / u.Hz / u.sr) * u.sr
        ratio = (2 * const.h * nu ** 3 / (const.c ** 2 * inten)).to_value(u.dimensionless_unscaled)
        t = (const.h * nu / const.k_B).to_value(u.K) / np.log1p(ratio) * np.sign(jy)
        np.testing.assert_allclose(out[:, :, c], t, rtol=2e-6)


def test_a_leftover_factor_image_of_this_process_is_replaced(tmp_path):
    """The LEL factor image has a scratch name holding the process id; one left by an earlier, killed
    run with the same id is overwritten, not an error."""
    from almatools.io import scratch_path
    cat = virtual_image(tmp_path)
    pixels = np.concatenate([fill(tmp_path / "p0.image", 1), fill(tmp_path / "p1.image", 2)], axis=3)
    leftover = scratch_path(tmp_path / "k.image", "tbconv", "factors")
    casa_image(leftover, shape=(4, 5, 2, 3))
    info = images.read_info(cat)
    conv = PlaneConverter("Jy/beam", "K", "rj", info.freqs_hz, info.beams, info.nchan, info.npol)
    assert images.convert_casa(info, tmp_path / "k.image", conv, "K", ["h"]) == {"method": "casa", "blocks": 1}
    np.testing.assert_allclose(read_back(tmp_path / "k.image")[0], kelvin_planes(pixels), rtol=2e-7)
    assert not leftover.exists()



def test_image_info_defaults():
    info = ImageInfo(path=None, format="fits", shape=(2, 3), bunit="K", spectral_axis=None, stokes_axis=None,
                     freqs_hz=np.array([1.0]), beams=None, pixel_sr=1.0)
    assert info.spectral_note == "" and info.nbytes == 0 and info.extra == {}
    assert info.extra is not ImageInfo(None, "fits", (1,), "K", None, None, np.array([1.0]), None, 1.0).extra


def test_a_beams_table_of_an_image_without_spectral_axis_has_one_channel(tmp_path):
    cards = [("SIMPLE", "T"), ("BITPIX", "-32"), ("NAXIS", "2"), ("NAXIS1", "3"), ("NAXIS2", "2"), ("BUNIT", "'K'")]
    one = images.read_info(write(tmp_path / "o.fits", cards, bytes(24), hdu_bytes(beams_hdu([(2.0, 1.0, 5.0, 0, 0)]))))
    np.testing.assert_allclose(one.beams, [[[2.0 * RAD_PER_ARCSEC, RAD_PER_ARCSEC, 5.0]]], rtol=1e-7)
    rows = [(2.0, 1.0, 5.0, c, 0) for c in range(2)]
    two = images.read_info(write(tmp_path / "t.fits", cards, bytes(24), hdu_bytes(beams_hdu(rows))))
    assert two.beams is None and two.extra["beam_error"].problem.startswith(
        "its BEAMS table covers channels 0-1 and polarizations 0-0; the image has 1 channel(s) and 1 polarization(s)")


def test_casa_pixel_solid_angle_with_different_units_and_cells_per_axis(tmp_path):
    path = casa_image(tmp_path / "c.image")
    ia = casatools().image()
    try:
        ia.open(str(path))
        cs = ia.coordsys()
        cs.setunits(type="direction", value=["arcmin", "arcsec"])
        cs.setincrement(type="direction", value=[-0.01, 0.5])  # 0.6" x 0.5"
        ia.setcoordsys(cs.torecord())
        cs.done()
    finally:
        ia.done()
    assert images.read_info(path).pixel_sr == pytest.approx(0.6 * 0.5 * RAD_PER_ARCSEC ** 2, rel=1e-12, abs=0)


def test_a_paged_image_whose_pixel_file_is_not_plain_tiles_is_described_without_it(tmp_path):
    path = casa_image(tmp_path / "c.image")
    with open(path / "table.f0_TSM0", "ab") as fh:  # one byte more than its tiles: not streamed, read by CASA
        fh.write(b"\0")
    info = images.read_info(path)
    assert info.extra["pixels"] is None and "table.f0_TSM0 holds" in info.extra["why"]
    assert info.extra["itemsize"] == 4 and info.shape == (4, 5, 2, 3) and info.format == "casa"


def masked_image(path):
    casa_image(path, beams=PLANE_BEAMS)
    pixels = fill(path)
    ia = casatools().image()
    try:
        ia.open(str(path))
        ia.calcmask(mask=f'"{path}" > 0', name="positive")
        mask = ia.getchunk(getmask=True)
    finally:
        ia.done()
    assert 0 < mask.sum() < mask.size
    return pixels, mask


def test_casa_tiles_keep_the_mask_and_symbolic_links_and_note_no_peak(tmp_path):
    """Every file but the image's own pixel file is copied as it is (the mask's pixel file, of the same
    name in its subtable, too); RJ tiles keep no peak (edge tiles hold padding)."""
    path = tmp_path / "c.image"
    pixels, mask = masked_image(path)
    (tmp_path / "notes.txt").write_text("notes")
    (path / "notes").symlink_to(tmp_path / "notes.txt")
    info = images.read_info(path)
    conv = PlaneConverter("Jy/beam", "K", "rj", info.freqs_hz, info.beams, info.nchan, info.npol)
    images.convert_casa(info, tmp_path / "k.image", conv, "K", ["h"])
    ia = casatools().image()
    try:
        ia.open(str(tmp_path / "k.image"))
        out, out_mask = ia.getchunk(), ia.getchunk(getmask=True)
    finally:
        ia.done()
    assert (out_mask == mask).all() and (tmp_path / "k.image" / "notes").is_symlink()
    np.testing.assert_allclose(out, kelvin_planes(pixels), rtol=2e-7)
    assert conv.peak == {"in": -math.inf, "out": -math.inf}


def test_peaks_are_noted_where_every_pixel_is_an_image_pixel(tmp_path, monkeypatch):
    # FITS streaming and CASA Planck tiles and chunks see only image pixels: the brightest and its K value
    path, data, rows = cube_with_beams(tmp_path)
    info = images.read_info(path)
    conv = PlaneConverter(info.bunit, "K", "rj", info.freqs_hz, info.beams, info.nchan, info.npol)
    monkeypatch.setattr(images, "BLOCK_BYTES", 4 * 20)
    images.convert_fits(info, tmp_path / "k.fits", conv, "K", [])
    top = np.unravel_index(np.nanargmax(data), data.shape)
    assert conv.peak["in"] == float(data[top])
    assert conv.peak["out"] == pytest.approx(expected_k(data, rows)[top], rel=2e-7, abs=0)
    image = tmp_path / "c.image"
    casa_image(image, beams=PLANE_BEAMS)
    pixels = fill(image)
    info = images.read_info(image)
    conv = PlaneConverter("Jy/beam", "K", "planck", info.freqs_hz, info.beams, info.nchan, info.npol)
    images.convert_casa(info, tmp_path / "k.image", conv, "K", ["h"])
    top = np.unravel_index(np.argmax(pixels), pixels.shape)
    assert conv.peak["in"] == pytest.approx(float(pixels[top]), rel=1e-7, abs=0)
    assert conv.peak["out"] == pytest.approx(float(read_back(tmp_path / "k.image")[0][top]), rel=1e-6, abs=0)
    cat = virtual_image(tmp_path)
    pixels = np.concatenate([fill(tmp_path / "p0.image", 1), fill(tmp_path / "p1.image", 2)], axis=3)
    info = images.read_info(cat)
    conv = PlaneConverter("Jy/beam", "K", "planck", info.freqs_hz, info.beams, info.nchan, info.npol)
    images.convert_casa(info, tmp_path / "v.image", conv, "K", ["h"])
    assert conv.peak["in"] == pytest.approx(float(pixels.max()), rel=1e-7, abs=0)


def test_beams_table_with_one_polarization_serves_every_polarization(tmp_path):
    data = np.zeros((2, 3, 2, 2), ">f4")  # numpy order: stokes, chan, y, x
    cards = cube_cards(nx=2, ny=2, extra=[("NAXIS", "4"), ("NAXIS4", "2"), ("CTYPE4", "'STOKES'"), ("CRVAL4", "1.0"),
                                          ("CDELT4", "1.0"), ("CRPIX4", "1.0"), ("BMAJ", None), ("BMIN", None)])
    rows = [(1.0 + c, 0.5, 0.0, c, 0) for c in range(3)]
    info = images.read_info(write(tmp_path / "p.fits", cards, data.tobytes(), hdu_bytes(beams_hdu(rows))))
    assert info.beams.shape == (3, 1, 3) and info.extra["beam_error"] is None
    np.testing.assert_allclose(info.beams[:, 0, 0], np.array([1.0, 2.0, 3.0]) * RAD_PER_ARCSEC, rtol=1e-7)


def test_a_header_with_two_rest_frequencies_uses_the_one_wcslib_takes(tmp_path):
    cards = cube_cards(extra=[("CTYPE3", "'VRAD'"), ("CUNIT3", "'m/s'"), ("CRVAL3", "0.0"), ("CDELT3", "1000.0"),
                              ("RESTFRQ", "1.0E+11"), ("RESTFREQ", "2.0E+11")])
    path = write(tmp_path / "two.fits", cards, GOOD.tobytes())
    with warnings.catch_warnings():  # astropy's notes on non-standard cards are not the point here
        warnings.simplefilter("ignore")
        rest = WCS(fits.getheader(path), naxis=3).wcs.restfrq
    assert rest in (1e11, 2e11)
    v = np.array([0.0, 1e3, 2e3]) * u.m / u.s
    np.testing.assert_allclose(images.read_info(path).freqs_hz, v.to_value(u.Hz, u.doppler_radio(rest * u.Hz)),
                               rtol=1e-12)
