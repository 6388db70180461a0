"""cl2image's image grid (plugins/models/grid.py) checked against independent references.

good_size against a brute-force search for even 2-3-5 smooth numbers; the SIN offsets and the mean
direction against astropy's SkyCoord (offset frames, cartesian means); the derived cell and image size
against the documented rules computed by hand (a fifth of the smallest extended component or beam,
extent + 3 major axes + 16 pixels, the 2**16 refusal); coordinate systems and template grids against
what casatools' coordsys reports for the same record or image.  Error messages are checked for the
parameter they name.
"""

import bisect
import math

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from hypothesis import given
from hypothesis import strategies as st

from almatools.casaenv import casatools
from almatools.errors import TaskParameterError
from almatools.plugins.models import grid as G
from almatools.plugins.models.components import Component

pytestmark = pytest.mark.casa

ARCSEC = math.radians(1 / 3600)
RA0, DEC0 = math.radians(150.0), math.radians(-30.0)
CENTRE = "J2000 10h00m00.0s -30d00m00.0s"  # = (RA0, DEC0)


def point(ra, dec, freq=230e9):
    return Component(ra, dec, (1.0, 0.0, 0.0, 0.0), freq)


def gauss(ra, dec, major, minor, freq=230e9):
    return Component(ra, dec, (1.0, 0.0, 0.0, 0.0), freq, "Gaussian", major, minor)


def grid(components, imsize=(), cell=(), phasecenter="", nchan=1, start="", width="", stokes="I",
         outframe="LSRK", beam_minor=None, beam_major=None):
    return G.grid_from_parameters(components, list(imsize), list(cell), phasecenter, nchan, start, width, stokes,
                                  outframe, beam_minor, beam_major)


def refused(param, match=""):
    """pytest.raises for a TaskParameterError naming *param* (and matching *match*)."""
    return pytest.raises(TaskParameterError, match=rf"'{param}'.*{match}")


# ------------------------------------------------------------------------------ good_size

#: every even 2**a 3**b 5**c up to 2**21, built by multiplication (not by factoring, as good_size does)
SMOOTH_EVEN = sorted(2**a * 3**b * 5**c for a in range(1, 22) for b in range(14) for c in range(10)
                     if 2**a * 3**b * 5**c <= 2**21)


def brute_good_size(n):
    """The first even 2-3-5 smooth number >= max(n, 8)."""
    return SMOOTH_EVEN[bisect.bisect_left(SMOOTH_EVEN, max(n, 8))]


def test_good_size_equals_the_table_of_smooth_numbers_up_to_3000():
    for n in range(-3, 3001):
        assert G.good_size(n) == brute_good_size(n), n


@given(st.floats(min_value=-10, max_value=5e5, allow_nan=False))
def test_good_size_of_any_real_is_the_next_smooth_even_number(n):
    assert G.good_size(n) == brute_good_size(n)


def test_good_size_examples():
    assert [G.good_size(n) for n in (0, 7, 8, 9, 10.5, 11, 17, 64, 65, 100, 241, 65536)] == \
        [8, 8, 8, 10, 12, 12, 18, 64, 72, 100, 250, 65536]


# ------------------------------------------------------------------------------ offsets and directions

@given(st.floats(0, 2 * math.pi), st.floats(-1.5, 1.5), st.floats(-0.5, 0.5), st.floats(-0.5, 0.5))
def test_offsets_are_the_direction_cosines_of_the_astropy_offset_frame(ra0, dec0, dra, ddec):
    dec = max(-1.5, min(1.5, dec0 + ddec))
    c = point(ra0 + dra, dec)
    (x, y), = G._offsets([c], ra0, dec0)
    frame = SkyCoord(ra0 * u.rad, dec0 * u.rad).skyoffset_frame()
    off = SkyCoord(c.ra * u.rad, c.dec * u.rad).transform_to(frame)
    lon, lat = off.lon.rad, off.lat.rad
    # a SIN projection's l, m: the east and north direction cosines in the offset frame
    assert x == pytest.approx(math.cos(lat) * math.sin(lon), abs=1e-12)
    assert y == pytest.approx(math.sin(lat), abs=1e-12)


def test_offsets_of_several_components_by_hand():
    comps = [point(RA0, DEC0), point(RA0 + 0.01, 0.0), point(RA0, DEC0 - 0.02)]
    got = list(G._offsets(comps, RA0, DEC0))
    assert got[0] == pytest.approx((0.0, 0.0), abs=1e-15)
    # (RA0 + 0.01, 0) from (RA0, -30 deg): x = sin 0.01, y = sin(30 deg) cos 0.01
    assert got[1] == pytest.approx((math.sin(0.01), 0.5 * math.cos(0.01)), abs=1e-15)
    assert got[2] == pytest.approx((0.0, -math.sin(0.02)), abs=1e-15)


def mean_direction(comps):
    sc = SkyCoord([c.ra for c in comps] * u.rad, [c.dec for c in comps] * u.rad)
    v = sc.cartesian.xyz.value.sum(axis=1)
    m = SkyCoord(x=v[0], y=v[1], z=v[2], representation_type="cartesian").spherical
    return m.lon.rad % (2 * math.pi), m.lat.rad


@pytest.mark.parametrize("ras_deg,decs_deg", [([359.0, 1.0], [0.0, 0.0]), ([350.0, 354.0], [10.0, 20.0]),
                                              ([10.0, 30.0, 20.0], [-40.0, -50.0, -60.0]),
                                              ([100.0], [89.0])])
def test_mean_direction_without_phasecenter_is_the_mean_unit_vector(ras_deg, decs_deg):
    comps = [point(math.radians(r), math.radians(d)) for r, d in zip(ras_deg, decs_deg)]
    g = grid(comps, imsize=[16], cell=["0.1arcsec"])
    ra, dec = mean_direction(comps)
    # across RA = 0 the mean of (359, 1) deg is 0 (or 2 pi), never 180
    assert abs(math.remainder(g.ra0 - ra, 2 * math.pi)) < 1e-12
    assert g.dec0 == pytest.approx(dec, abs=1e-12)


def test_mean_direction_of_ra_350_and_354_is_352_not_negative():
    comps = [point(math.radians(350.0), 0.1), point(math.radians(354.0), 0.1)]
    g = grid(comps, imsize=[16], cell=["0.1arcsec"])
    assert g.ra0 == pytest.approx(math.radians(352.0), abs=1e-12)


def test_phasecenter_given_is_used_as_is():
    g = grid([point(0.1, 0.2)], imsize=[16], cell=["0.1arcsec"], phasecenter=CENTRE)
    assert (g.ra0, g.dec0) == pytest.approx((RA0, DEC0), abs=1e-12)
    # without the frame word, J2000 is implied
    g2 = grid([point(0.1, 0.2)], imsize=[16], cell=["0.1arcsec"], phasecenter="-30deg -30deg")
    assert (g2.ra0, g2.dec0) == pytest.approx((math.radians(330.0), DEC0), abs=1e-12)


# ------------------------------------------------------------------------------ cell

def test_one_cell_gives_ra_left_and_dec_up():
    g = grid([point(RA0, DEC0)], imsize=[16], cell=["0.2arcsec"], phasecenter=CENTRE)
    assert (g.dx, g.dy) == pytest.approx((-0.2 * ARCSEC, 0.2 * ARCSEC), rel=1e-12)
    g = grid([point(RA0, DEC0)], imsize=[16], cell=["-0.2arcsec"], phasecenter=CENTRE)
    assert (g.dx, g.dy) == pytest.approx((-0.2 * ARCSEC, 0.2 * ARCSEC), rel=1e-12)


@pytest.mark.parametrize("cell", [["0.2arcsec", "0.3arcsec"], ["-0.2arcsec", "-0.3arcsec"],
                                  ["-0.2arcsec", "0.3arcsec"]])
def test_two_cells_are_the_increments_as_given(cell):
    g = grid([point(RA0, DEC0)], imsize=[16], cell=cell, phasecenter=CENTRE)
    want = [float(c.replace("arcsec", "")) * ARCSEC for c in cell]
    assert [g.dx, g.dy] == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("cell", [["0arcsec"], ["0arcsec", "0.1arcsec"], ["0.1arcsec", "0arcsec"]])
def test_a_zero_cell_is_refused(cell):
    with refused("cell", "pixel sizes must not be zero"):
        grid([point(RA0, DEC0)], imsize=[16], cell=cell, phasecenter=CENTRE)


@pytest.mark.parametrize("param, value, message", [
    ("phasecenter", "J2000 abc def", "parameter 'phasecenter' not a direction such as 'J2000 10h00m00.0s -30d00m00.0s'; "
                                     "got 'J2000 abc def'"),
    ("phasecenter", "B1950 10h -30d", "parameter 'phasecenter' give 'J2000 <ra> <dec>'; got 'B1950 10h -30d'"),
    ("cell", ["5Jy"], "parameter 'cell' must be a quantity in rad or a compatible unit, e.g. '0.5arcsec', '230GHz', "
                      "'30deg'; got '5Jy'"),
    ("start", "1e400GHz", "parameter 'start' must be a finite quantity; got '1e400GHz'"),
    ("width", "3km", "parameter 'width' must be a quantity in Hz or a compatible unit")])
def test_grid_parameter_refusals_name_the_parameter_not_a_component(param, value, message):
    kw = dict(imsize=[16], cell=["0.1arcsec"], phasecenter=CENTRE) | {param: value}
    with pytest.raises(TaskParameterError) as e:
        grid([point(RA0, DEC0)], **kw)
    assert str(e.value).startswith(f"cl2image: {message}") and "component" not in str(e.value)


def test_three_cells_are_refused():
    with refused("cell", "give one size, or the x and y increments"):
        grid([point(RA0, DEC0)], imsize=[16], cell=["1arcsec"] * 3, phasecenter=CENTRE)


def test_derived_cell_is_a_fifth_of_the_smallest_extended_component():
    comps = [point(RA0, DEC0), gauss(RA0, DEC0, 2 * ARCSEC, 1.5 * ARCSEC), gauss(RA0, DEC0, 3 * ARCSEC, 1 * ARCSEC)]
    g = grid(comps, imsize=[16], phasecenter=CENTRE)
    assert (g.dx, g.dy) == pytest.approx((-0.2 * ARCSEC, 0.2 * ARCSEC), rel=1e-12)
    # the point component (minor 0) does not count
    assert g.dy > 0


def test_derived_cell_takes_the_beam_when_it_is_smaller():
    comps = [gauss(RA0, DEC0, 2 * ARCSEC, 1.5 * ARCSEC)]
    g = grid(comps, imsize=[16], phasecenter=CENTRE, beam_minor=0.5 * ARCSEC, beam_major=0.6 * ARCSEC)
    assert (g.dx, g.dy) == pytest.approx((-0.1 * ARCSEC, 0.1 * ARCSEC), rel=1e-12)
    g = grid(comps, imsize=[16], phasecenter=CENTRE, beam_minor=10 * ARCSEC, beam_major=12 * ARCSEC)
    assert (g.dx, g.dy) == pytest.approx((-0.3 * ARCSEC, 0.3 * ARCSEC), rel=1e-12)


def test_derived_cell_of_points_alone_is_a_fifth_of_the_beam_or_a_tenth_arcsec():
    g = grid([point(RA0, DEC0)], imsize=[16], phasecenter=CENTRE, beam_minor=1.0 * ARCSEC, beam_major=2 * ARCSEC)
    assert (g.dx, g.dy) == pytest.approx((-0.2 * ARCSEC, 0.2 * ARCSEC), rel=1e-12)
    for beam in (None, 0.0):
        g = grid([point(RA0, DEC0)], imsize=[16], phasecenter=CENTRE, beam_minor=beam)
        assert (g.dx, g.dy) == pytest.approx((-0.1 * ARCSEC, 0.1 * ARCSEC), rel=1e-12)


# ------------------------------------------------------------------------------ imsize

def test_one_imsize_is_square_and_two_are_nx_ny():
    g = grid([point(RA0, DEC0)], imsize=[10], cell=["1arcsec"], phasecenter=CENTRE)
    assert (g.nx, g.ny) == (10, 10)
    g = grid([point(RA0, DEC0)], imsize=[10, 7], cell=["1arcsec"], phasecenter=CENTRE)
    assert (g.nx, g.ny) == (10, 7)
    g = grid([point(RA0, DEC0)], imsize=[1, 1], cell=["1arcsec"], phasecenter=CENTRE)
    assert (g.nx, g.ny) == (1, 1)


@pytest.mark.parametrize("imsize", [[0], [-4], [10, 0], [0, 10], [-1, 10]])
def test_imsize_must_be_positive(imsize):
    with refused("imsize", "must be positive"):
        grid([point(RA0, DEC0)], imsize=imsize, cell=["1arcsec"], phasecenter=CENTRE)


def test_three_imsizes_are_refused():
    with refused("imsize", r"give \[n\] or \[nx, ny\]"):
        grid([point(RA0, DEC0)], imsize=[8, 8, 8], cell=["1arcsec"], phasecenter=CENTRE)


def expected_side(comps, ra0, dec0, cell, beam_major=0.0):
    """The documented rule, offsets from astropy: 2 (extent + 3 major) / cell + 16, made a good size."""
    frame = SkyCoord(ra0 * u.rad, dec0 * u.rad).skyoffset_frame()
    extent = 0.0
    for c in comps:
        off = SkyCoord(c.ra * u.rad, c.dec * u.rad).transform_to(frame)
        extent = max(extent, abs(math.cos(off.lat.rad) * math.sin(off.lon.rad)), abs(math.sin(off.lat.rad)))
    extent += 3 * max([c.major for c in comps] + [beam_major])
    return brute_good_size(2 * extent / cell + 16)


@pytest.mark.parametrize("offsets_arcsec", [[(30.0, 0.0)], [(-30.0, 2.0)], [(1.0, -45.0)], [(3.0, 50.0), (-20, 4)]])
def test_derived_imsize_holds_every_component(offsets_arcsec):
    comps = [point(RA0 + dx * ARCSEC / math.cos(DEC0), DEC0 + dy * ARCSEC) for dx, dy in offsets_arcsec]
    g = grid(comps, cell=["0.5arcsec"], phasecenter=CENTRE)
    n = expected_side(comps, RA0, DEC0, 0.5 * ARCSEC)
    assert (g.nx, g.ny) == (n, n)


def test_derived_imsize_adds_three_major_axes_of_component_or_beam():
    comps = [gauss(RA0, DEC0, 4 * ARCSEC, 2 * ARCSEC), point(RA0, DEC0 + 10 * ARCSEC)]
    # extent 10 + 3 x 4 = 22 arcsec; 2 x 22 / 1 + 16 = 60 -> 60
    assert grid(comps, cell=["1arcsec"], phasecenter=CENTRE).nx == 60
    # a larger beam counts instead: 10 + 3 x 6 = 28 -> 72 -> 72
    assert grid(comps, cell=["1arcsec"], phasecenter=CENTRE, beam_major=6 * ARCSEC).nx == 72
    # a smaller beam does not
    assert grid(comps, cell=["1arcsec"], phasecenter=CENTRE, beam_major=3 * ARCSEC).nx == 60


def test_derived_imsize_at_a_good_size_stays_there():
    # one component at the centre, beam major 8 cells: 2 x 24 + 16 = 64 exactly (65 would give 72)
    cell = 2.0**-20
    g = grid([point(0.5, 0.25)], cell=[cell], phasecenter="J2000 0.5rad 0.25rad", beam_major=8 * cell)
    assert (g.nx, g.ny) == (64, 64)
    # uses the smaller of the two increments
    g = grid([point(0.5, 0.25)], cell=[4 * cell, cell], phasecenter="J2000 0.5rad 0.25rad", beam_major=8 * cell)
    assert (g.nx, g.ny) == (64, 64)
    g = grid([point(0.5, 0.25)], cell=[cell, -4 * cell], phasecenter="J2000 0.5rad 0.25rad", beam_major=8 * cell)
    assert (g.nx, g.ny) == (64, 64)
    # a fraction of a pixel over: 2 x 24.375 + 16 = 64.75 needs 65, so 72 (all exact in binary)
    g = grid([point(0.5, 0.25)], cell=[cell], phasecenter="J2000 0.5rad 0.25rad", beam_major=8.125 * cell)
    assert (g.nx, g.ny) == (72, 72)


def test_derived_imsize_refused_just_beyond_max_derived_pixels():
    assert G.MAX_DERIVED_PIXELS == 65536
    cell = 2.0**-20
    centre = "J2000 0.5rad 0.25rad"
    # 2 x 3 x 10920 cells + 16 = 65536 exactly: allowed
    g = grid([point(0.5, 0.25)], cell=[cell], phasecenter=centre, beam_major=10920 * cell)
    assert (g.nx, g.ny) == (65536, 65536)
    # one more cell of beam: 65542 pixels, refused naming imsize and the bound
    with refused("imsize", r"holding every component would need 6.55e\+04 pixels a side \(more than 65536\): "
                           "give imsize, cell and phasecenter"):
        grid([point(0.5, 0.25)], cell=[cell], phasecenter=centre, beam_major=10921 * cell)


def test_a_component_a_quarter_of_the_sky_away_is_refused():
    # direction cosine 1 at 1 arcsec cells: 2 x 206265 + 16 pixels
    with refused("imsize", r"holding every component would need 4.13e\+05 pixels"):
        grid([point(0.0, 0.0), point(math.pi / 2, 0.0)], cell=["1arcsec"], phasecenter="J2000 0deg 0deg")


def test_derived_imsize_with_derived_cell():
    # cell = 1 arcsec / 5; extent 0 + 3 x 1 arcsec = 15 cells; 2 x 15 + 16 = 46 -> 48
    g = grid([gauss(RA0, DEC0, 1 * ARCSEC, 1 * ARCSEC)], phasecenter=CENTRE)
    assert (g.nx, g.ny, g.dy) == (48, 48, pytest.approx(0.2 * ARCSEC, rel=1e-12))


# ------------------------------------------------------------------------------ the SIN projection's bound

@pytest.mark.parametrize("swap", [False, True])
def test_projection_bound_is_a_direction_cosine_of_one(swap):
    def check(nx, dx):
        args = (nx, 2, dx, 1e-20) if not swap else (2, nx, 1e-20, dx)
        G._check_projection(*args, [nx], ["c"])

    # (n / 2 + 1) |d| = 1 exactly: on the horizon, refused
    with refused("cell", r"with imsize \[2, 2\] the image would span 114.6 x 2.292e-18 deg|"
                         r"with imsize \[2, 2\] the image would span 2.292e-18 x 114.6 deg"):
        check(2, 0.5)
    with refused("cell", "more than the SIN projection holds"):
        check(2, -0.5)
    check(2, 0.49)   # (2/2 + 1) x 0.49 = 0.98
    check(2, -0.49)
    check(6, 0.245)  # (6/2 + 1) x 0.245 = 0.98
    with refused("cell"):
        check(6, 0.25)


def test_projection_bound_takes_both_axes_together():
    G._check_projection(2, 2, 0.35, 0.35, [2], ["c"])  # hypot(0.7, 0.7) = 0.99
    with refused("cell"):
        G._check_projection(2, 2, 0.36, 0.36, [2], ["c"])  # hypot(0.72, 0.72) = 1.02


def test_grid_from_parameters_checks_the_projection():
    with refused("cell", "SIN projection"):
        grid([point(RA0, DEC0)], imsize=[100], cell=["1deg"], phasecenter=CENTRE)
    assert grid([point(RA0, DEC0)], imsize=[100], cell=["1arcmin"], phasecenter=CENTRE).nx == 100


# ------------------------------------------------------------------------------ channels and Stokes

def test_channels_default_to_the_first_component_frequency_and_a_thousandth():
    g = grid([point(RA0, DEC0, 100e9), point(RA0, DEC0, 300e9)], imsize=[8], cell=["1arcsec"], phasecenter=CENTRE,
             nchan=3)
    assert (g.freqs0_hz, g.width_hz, g.nchan) == (100e9, pytest.approx(100e6, rel=1e-15), 3)
    assert g.frequencies() == pytest.approx([100e9, 100.1e9, 100.2e9], rel=1e-15)


def test_start_and_width_given():
    g = grid([point(RA0, DEC0)], imsize=[8], cell=["1arcsec"], phasecenter=CENTRE, nchan=2, start="1GHz",
             width="-100MHz")
    assert (g.freqs0_hz, g.width_hz) == pytest.approx((1e9, -1e8), rel=1e-15)
    assert g.frequencies() == pytest.approx([1e9, 0.9e9], rel=1e-15)


def test_nchan_must_be_at_least_one():
    assert grid([point(RA0, DEC0)], imsize=[8], cell=["1arcsec"], phasecenter=CENTRE, nchan=1).shape == [8, 8, 1, 1]
    for n in (0, -1):
        with refused("nchan", "must be at least 1"):
            grid([point(RA0, DEC0)], imsize=[8], cell=["1arcsec"], phasecenter=CENTRE, nchan=n)


def test_zero_width_is_refused():
    with refused("width", "must not be zero"):
        grid([point(RA0, DEC0)], imsize=[8], cell=["1arcsec"], phasecenter=CENTRE, width="0Hz")


@pytest.mark.parametrize("nchan,ok", [(2, True), (3, False)])
def test_every_channel_frequency_must_be_positive(nchan, ok):
    # 1 GHz down by 0.5 GHz: channel 2 would be at 0 Hz
    kw = dict(imsize=[8], cell=["1arcsec"], phasecenter=CENTRE, nchan=nchan, start="1GHz", width="-0.5GHz")
    if ok:
        assert grid([point(RA0, DEC0)], **kw).frequencies() == pytest.approx([1e9, 0.5e9])
    else:
        with refused("width", "gives channel frequencies from 1e\\+09 to 0 Hz: all must be > 0") as e:
            grid([point(RA0, DEC0)], **kw)
        assert e.value.value == "-0.5GHz"


@pytest.mark.parametrize("start", ["0Hz", "-0.5Hz", "-1GHz"])
def test_a_start_not_above_zero_is_refused_naming_start(start):
    with refused("start", "all must be > 0") as e:
        # two channels: the second, at start + 1 MHz, is above zero even when the first is not
        grid([point(RA0, DEC0)], imsize=[8], cell=["1arcsec"], phasecenter=CENTRE, nchan=2, start=start, width="1MHz")
    assert e.value.value == start  # the value shown is the start's, not the width's


def test_any_start_above_zero_is_a_frequency():
    # the bound is 0 Hz, not 1 Hz: half a hertz, with channels 0.25 Hz apart, is a grid
    g = grid([point(RA0, DEC0)], imsize=[8], cell=["1arcsec"], phasecenter=CENTRE, nchan=2, start="0.5Hz",
             width="0.25Hz")
    assert g.frequencies() == pytest.approx([0.5, 0.75], rel=1e-15)


def test_channels_beyond_the_largest_double_are_refused_naming_width():
    with refused("width", "all must be > 0"):
        grid([point(RA0, DEC0)], imsize=[8], cell=["1arcsec"], phasecenter=CENTRE, nchan=10**12, start="1e299Hz",
             width="1e299Hz")


@pytest.mark.parametrize("stokes,want", [("I", ["I"]), (" i ", ["I"]), ("IQUV", ["I", "Q", "U", "V"]),
                                         ("iquv", ["I", "Q", "U", "V"])])
def test_stokes(stokes, want):
    g = grid([point(RA0, DEC0)], imsize=[8, 6], cell=["1arcsec"], phasecenter=CENTRE, nchan=5, stokes=stokes)
    assert g.stokes == want and g.shape == [8, 6, len(want), 5]


@pytest.mark.parametrize("stokes", ["Q", "IV", "", "XX"])
def test_other_stokes_are_refused(stokes):
    with refused("stokes", "must be 'I' or 'IQUV'"):
        G._stokes(stokes)


# ------------------------------------------------------------------------------ an empty model

def test_an_empty_model_needs_every_grid_parameter():
    with refused("phasecenter", "no components to derive the grid from: give phasecenter, imsize, cell, start for "
                                r"an empty model \(or give components\)"):
        grid([])
    with refused("imsize", "give imsize, start for"):
        grid([], cell=["1arcsec"], phasecenter=CENTRE)
    with refused("cell", "give cell for"):
        grid([], imsize=[8], phasecenter=CENTRE, start="1GHz")
    with refused("start", "give start for"):
        grid([], imsize=[8], cell=["1arcsec"], phasecenter=CENTRE)
    g = grid([], imsize=[8], cell=["1arcsec"], phasecenter=CENTRE, start="1GHz", nchan=2)
    assert (g.nx, g.freqs0_hz, g.width_hz) == (8, 1e9, pytest.approx(1e6))


# ------------------------------------------------------------------------------ the coordinate system

def cs_of(record):
    cs = casatools().coordsys()
    cs.fromrecord(record)
    return cs


def test_coordsys_record_as_casa_reads_it():
    ct = casatools()
    g = G.Grid(11, 7, -0.3 * ARCSEC, 0.2 * ARCSEC, RA0, DEC0, 230e9, 2e6, 3, ["I", "Q", "U", "V"], frame="BARY")
    cs = cs_of(g.coordsys_record(ct))
    try:
        assert cs.names() == ["Right Ascension", "Declination", "Stokes", "Frequency"]
        assert cs.stokes() == ["I", "Q", "U", "V"]
        np.testing.assert_allclose(cs.increment(type="direction", format="n")["numeric"],
                                   [-0.3 * ARCSEC, 0.2 * ARCSEC], rtol=1e-12)
        assert cs.units(type="direction") == ["rad", "rad"]
        np.testing.assert_allclose(cs.referencevalue(type="direction", format="n")["numeric"], [RA0, DEC0], rtol=1e-14)
        assert list(cs.referencepixel(type="direction")["numeric"]) == [5.0, 3.0]  # nx // 2, ny // 2
        assert cs.referencecode("spectral")[0] == "BARY"
        assert list(cs.referencepixel(type="spectral")["numeric"]) == [0.0]
        assert G.channel_frequencies(cs, 3, 3) == pytest.approx([230e9, 230.002e9, 230.004e9], abs=1e-3)
        assert cs.restfrequency()["value"][0] == pytest.approx(230e9, abs=1e-3)
        assert cs.restfrequency()["unit"] == "Hz"
    finally:
        cs.done()


def test_coordsys_record_of_a_template_is_the_template_record():
    rec = {"anything": 1}
    g = G.Grid(4, 4, -1.0, 1.0, 0.0, 0.0, math.nan, math.nan, 1, ["I"], template_csys=rec, channel_freqs=[5.0])
    assert g.coordsys_record(casatools()) is rec
    assert g.frequencies() == [5.0]


def test_frequencies_and_shape_of_an_explicit_grid():
    g = G.Grid(4, 6, -1.0, 1.0, 0.0, 0.0, 100.0, -3.0, 4, ["I"])
    assert g.frequencies() == [100.0, 97.0, 94.0, 91.0]
    assert g.shape == [4, 6, 1, 4]
    assert g.frame == "LSRK" and g.template_csys is None


@pytest.mark.parametrize("unit,quantity", [("rad", u.rad), ("deg", u.deg), ("'", u.arcmin), ("arcmin", u.arcmin),
                                           ("arcsec", u.arcsec), ('"', u.arcsec)])
def test_rad_per_unit_against_astropy(unit, quantity):
    assert G.rad_per(unit) == pytest.approx((1 * quantity).to_value(u.rad), rel=1e-15)


# ------------------------------------------------------------------------------ templates

def make_image(path, shape, units=("arcsec", "arcsec", "", "GHz"), stokes=None, inc=(-0.5, 0.25), spec_inc="10MHz",
               spec_ref="100GHz", frame="LSRK"):
    ct = casatools()
    ia = ct.image()
    try:
        ia.fromshape(str(path), shape, overwrite=True)
        if len(shape) == 4:
            cs = ia.coordsys()
            cs.setreferencevalue(["150deg", "-30deg"], type="direction")
            cs.setincrement([f"{inc[0]}arcsec", f"{inc[1]}arcsec"], "direction")
            cs.setreferencecode(frame, type="spectral", adjust=False)
            cs.setreferencevalue(spec_ref, "spectral")
            cs.setreferencepixel(0, "spectral")
            cs.setincrement(spec_inc, "spectral")
            cs.setunits(list(units))
            if stokes:
                cs.setstokes(stokes)
            ia.setcoordsys(cs.torecord())
            cs.done()
        ia.open(str(path))
        cs = ia.coordsys()
        try:
            return cs.torecord(), cs.toworldmany(np.array([[0.0] * shape[3], [0.0] * shape[3], [0.0] * shape[3],
                                                           list(range(shape[3]))], float))["numeric"][3]
        finally:
            cs.done()
    finally:
        ia.done()


@pytest.mark.parametrize("units,scale", [(("arcsec", "arcsec", "", "GHz"), 1e9), (("deg", "deg", "", "Hz"), 1.0),
                                         (("arcmin", "arcmin", "", "MHz"), 1e6), (("rad", "rad", "", "kHz"), 1e3),
                                         (("arcsec", "deg", "", "GHz"), 1e9), (("deg", "arcmin", "", "Hz"), 1.0)])
def test_template_image_grid_is_read_from_its_coordinate_system(tmp_path, units, scale):
    rec, world = make_image(tmp_path / "t.im", [12, 6, 1, 3], units=units, frame="BARY")
    g = G.grid_from_template(tmp_path / "t.im", "", "", "I", [], [])
    assert (g.nx, g.ny, g.nchan, g.stokes, g.frame) == (12, 6, 3, ["I"], "BARY")
    assert g.dx == pytest.approx(-0.5 * ARCSEC, rel=1e-9) and g.dy == pytest.approx(0.25 * ARCSEC, rel=1e-9)
    assert g.ra0 == pytest.approx(math.radians(150), rel=1e-12)
    assert g.dec0 == pytest.approx(math.radians(-30), rel=1e-12)
    assert g.frequencies() == pytest.approx([100e9, 100.01e9, 100.02e9], abs=1e-3)
    assert g.frequencies() == pytest.approx(list(world * scale), abs=1e-3)
    assert g.template_csys["direction0"]["crval"].tolist() == rec["direction0"]["crval"].tolist()
    assert g.shape == [12, 6, 1, 3]
    assert math.isnan(g.freqs0_hz) and math.isnan(g.width_hz)


def test_template_stokes_planes_are_kept(tmp_path):
    make_image(tmp_path / "t.im", [8, 8, 4, 2])
    g = G.grid_from_template(tmp_path / "t.im", "", "", "I", [], [])
    assert g.stokes == ["I", "Q", "U", "V"] and g.shape == [8, 8, 4, 2]


def test_template_with_other_stokes_planes_is_refused(tmp_path):
    make_image(tmp_path / "t.im", [8, 8, 2, 1], stokes=["XX", "YY"])
    with refused("template", r"has Stokes planes \['XX', 'YY'\]; component models have I, Q, U and V only"):
        G.grid_from_template(tmp_path / "t.im", "", "", "I", [], [])


def test_template_without_stokes_and_frequency_is_refused(tmp_path):
    ia = casatools().image()
    try:
        ia.fromshape(str(tmp_path / "t.im"), [8, 8], overwrite=True)
    finally:
        ia.done()
    with refused("template", r"has axes \['Right Ascension', 'Declination'\]; a template needs RA, Dec, Stokes, "
                             "Frequency in that order"):
        G.grid_from_template(tmp_path / "t.im", "", "", "I", [], [])


def test_template_with_frequency_before_stokes_is_refused(tmp_path):
    ct = casatools()
    ia = ct.image()
    try:
        ia.fromshape(str(tmp_path / "a.im"), [8, 8, 1, 2], overwrite=True)
        ia.transpose(outfile=str(tmp_path / "t.im"), order="0132").done()
    finally:
        ia.done()
    with refused("template", r"has axes \['Right Ascension', 'Declination', 'Frequency', 'Stokes'\]"):
        G.grid_from_template(tmp_path / "t.im", "", "", "I", [], [])


def test_template_without_ra_dec_first_is_refused(tmp_path):
    ct = casatools()
    ia = ct.image()
    try:
        ia.fromshape(str(tmp_path / "a.im"), [8, 8, 1, 2], overwrite=True)
        ia.transpose(outfile=str(tmp_path / "t.im"), order="1023").done()
    finally:
        ia.done()
    with refused("template", "needs RA and Dec as its first two axes"):
        G.grid_from_template(tmp_path / "t.im", "", "", "I", [], [])


def test_a_template_that_is_not_an_image_is_refused(tmp_path):
    (tmp_path / "t.im").mkdir()
    with refused("template", "cannot be opened as an image"):
        G.grid_from_template(tmp_path / "t.im", "", "", "I", [], [])


# ------------------------------------------------------------------------------ MS templates

@pytest.fixture(scope="module")
def vis(tmp_path_factory):
    from almatools.testing import simulate_ms
    path = tmp_path_factory.mktemp("ms") / "t.ms"
    return simulate_ms(path, [("SPW0", 230.0e9, 10e6, 4), ("SPW1", 240.0e9, 20e6, 1)], field="TW_Hya",
                       duration_s=120.0)


def lsrk(vis, spw):
    ms = casatools().ms()
    try:
        ms.open(vis)
        return list(ms.cvelfreqs(spwids=[spw], outframe="LSRK"))
    finally:
        ms.done()


@pytest.mark.parametrize("field", ["TW_Hya", "0", ""])
def test_ms_template_gives_the_field_centre_and_lsrk_channels(vis, field):
    from pathlib import Path
    g = G.grid_from_template(Path(vis), field, "0", "iquv", [64, 32], ["0.2arcsec"])
    want = SkyCoord("11h01m51.9s", "-34d42m17.0s")
    assert (g.ra0, g.dec0) == pytest.approx((want.ra.rad, want.dec.rad), abs=1e-9)
    assert (g.nx, g.ny, g.dx, g.dy) == (64, 32, pytest.approx(-0.2 * ARCSEC), pytest.approx(0.2 * ARCSEC))
    freqs = lsrk(vis, 0)
    assert g.frequencies() == pytest.approx(freqs, abs=1e-3) and g.nchan == 4
    assert g.width_hz == pytest.approx(freqs[1] - freqs[0], abs=1e-6)
    assert (g.stokes, g.frame) == (["I", "Q", "U", "V"], "LSRK")


def test_ms_template_with_one_channel_and_one_imsize(vis):
    from pathlib import Path
    g = G.grid_from_template(Path(vis), "", "1", "I", [16], ["-0.1arcsec"])
    assert (g.nx, g.ny, g.dx, g.dy) == (16, 16, pytest.approx(-0.1 * ARCSEC), pytest.approx(0.1 * ARCSEC))
    assert g.frequencies() == pytest.approx(lsrk(vis, 1), abs=1e-3) and g.width_hz == 1e6


def test_ms_template_takes_imsize_and_cell_as_the_parameters_do(vis):
    # two cell values are the signed x and y increments, as cl2image.xml says for every grid
    from pathlib import Path
    g = G.grid_from_template(Path(vis), "", "0", "I", [16, 8], ["0.3arcsec", "-0.1arcsec"])
    assert (g.nx, g.ny, g.dx, g.dy) == (16, 8, pytest.approx(0.3 * ARCSEC), pytest.approx(-0.1 * ARCSEC))
    with refused("imsize", r"give \[n\] or \[nx, ny\]"):
        G.grid_from_template(Path(vis), "", "0", "I", [16, 8, 4], ["0.1arcsec"])
    with refused("imsize", "must be positive"):
        G.grid_from_template(Path(vis), "", "0", "I", [16, 0], ["0.1arcsec"])
    with refused("cell", "give one size, or the x and y increments"):
        G.grid_from_template(Path(vis), "", "0", "I", [16], ["0.1arcsec"] * 3)
    with refused("cell", "pixel sizes must not be zero"):
        G.grid_from_template(Path(vis), "", "0", "I", [16], ["0.1arcsec", "0arcsec"])
    with refused("cell", "with imsize"):  # 4000 x 1 deg would wrap the sky
        G.grid_from_template(Path(vis), "", "0", "I", [4000], ["1deg"])


def test_ms_template_of_a_mosaic_name_is_centred_on_its_first_field(tmp_path):
    # ALMA mosaics give every pointing the source's name; like tclean's default phasecenter, the
    # grid takes the first of them (and a field index picks any one)
    from pathlib import Path

    from almatools.testing import simulate_ms
    pointings = [("J2000", "11h01m51.9s", "-34d42m17.0s"), ("J2000", "11h01m53.9s", "-34d42m07.0s")]
    vis = simulate_ms(tmp_path / "m.ms", [("SPW0", 230.0e9, 10e6, 2)], field="MOS", pointings=pointings,
                      duration_s=120.0)
    tb = casatools().table()
    try:
        tb.open(f"{vis}/FIELD", nomodify=False)
        tb.putcol("NAME", np.array(["MOS", "MOS"]))
    finally:
        tb.done()
    first, second = (SkyCoord(ra, dec) for _, ra, dec in pointings)
    g = G.grid_from_template(Path(vis), "MOS", "0", "I", [16], ["0.1arcsec"])
    assert (g.ra0, g.dec0) == pytest.approx((first.ra.rad, first.dec.rad), abs=1e-9)
    g = G.grid_from_template(Path(vis), "1", "0", "I", [16], ["0.1arcsec"])
    assert (g.ra0, g.dec0) == pytest.approx((second.ra.rad, second.dec.rad), abs=1e-9)


def test_ms_template_refusals(vis):
    from pathlib import Path
    # an unknown name and an index beyond the FIELD table (msmetadata raises for both)
    for field in ("NoSuch", "1", "-1"):
        with refused("field", "is not a field of"):
            G.grid_from_template(Path(vis), field, "0", "I", [16], ["0.1arcsec"])
    for spw in ("2", "-1"):
        with refused("spw", "has 2 spws"):
            G.grid_from_template(Path(vis), "", spw, "I", [16], ["0.1arcsec"])
    with refused("imsize", "with an MS template, give imsize and cell"):
        G.grid_from_template(Path(vis), "", "0", "I", [16], [])
    with refused("imsize", "with an MS template, give imsize and cell"):
        G.grid_from_template(Path(vis), "", "0", "I", [], ["0.1arcsec"])


def test_ms_template_right_ascension_is_taken_into_0_to_2pi(tmp_path):
    # msmetadata gives an RA of 20h as -4h (in radians): the grid's RA is 300 deg
    from pathlib import Path

    from almatools.testing import simulate_ms
    vis = simulate_ms(tmp_path / "w.ms", [("SPW0", 100.0e9, 1e6, 2)], direction=("J2000", "20h00m00s", "-40d00m00s"),
                      duration_s=60.0)
    g = G.grid_from_template(Path(vis), "", "", "I", [8], ["1arcsec"])
    assert (g.ra0, g.dec0) == pytest.approx((math.radians(300.0), math.radians(-40.0)), abs=1e-9)
    freqs = lsrk(vis, 0)  # two channels: the width is their difference, not the 1 MHz of a single channel
    assert g.width_hz == pytest.approx(freqs[1] - freqs[0], abs=1e-6) and abs(g.width_hz - 1e6) > 1e-3


def test_an_image_with_a_field_subdirectory_is_still_an_image(tmp_path):
    # only a directory with both FIELD and SPECTRAL_WINDOW is taken for an MS
    make_image(tmp_path / "t.im", [8, 8, 1, 2])
    for sub in ("FIELD", "SPECTRAL_WINDOW"):
        (tmp_path / "t.im" / sub).mkdir()
        assert G.grid_from_template(tmp_path / "t.im", "", "", "I", [], []).shape == [8, 8, 1, 2]
        (tmp_path / "t.im" / sub).rmdir()


def test_a_start_below_one_hertz_with_a_bad_width_shows_the_width():
    # 0.5 Hz is a valid start: the width is what makes channel 1 negative
    with refused("width", "from 0.5 to -0.5 Hz") as e:
        grid([point(RA0, DEC0)], imsize=[8], cell=["1arcsec"], phasecenter=CENTRE, nchan=2, start="0.5Hz",
             width="-1Hz")
    assert e.value.value == "-1Hz"


def test_a_last_channel_just_above_zero_is_accepted():
    # 2 Hz down by 1 Hz: channel 1 at 1 Hz is still > 0
    g = grid([point(RA0, DEC0)], imsize=[8], cell=["1arcsec"], phasecenter=CENTRE, nchan=2, start="2Hz", width="-1Hz")
    assert g.frequencies() == [2.0, 1.0]
