"""cl2image's components (plugins/models/components.py) checked against independent references.

Quantities and directions against astropy's units and angles; the spectral law against a power law
written by hand; shapes, sizes and their refusals against the documented rules (sizes > 0, minor <=
major, major <= 180 deg, position angles folded by 180 deg beyond one turn); tables written here with
astropy; componentlists read back with casatools' componentlist tool and written with it.  Error
messages are checked for the parameter and the component they name.
"""

import math

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import Angle
from astropy.table import Table
from hypothesis import given, settings
from hypothesis import strategies as st

from almatools.casaenv import casatools
from almatools.errors import TaskParameterError
from almatools.plugins.models import components as C

pytestmark = pytest.mark.casa

ARCSEC = math.radians(1 / 3600)
CENTRE = "J2000 10h00m00.0s -30d00m00.0s"
RA0, DEC0 = math.radians(150.0), math.radians(-30.0)


def refused(param, match=""):
    """pytest.raises for a TaskParameterError naming *param* (and matching *match*)."""
    return pytest.raises(TaskParameterError, match=rf"'{param}'.*{match}")


def make(direction=CENTRE, flux=1.0, fluxunit="Jy", freq="230GHz", shape="point", major="", minor="", pa="",
         index=0.0, which=0, label=""):
    return C.make(which, direction, flux, fluxunit, freq, shape, major, minor, pa, index, label)


# ------------------------------------------------------------------------------ quantities and directions

@pytest.mark.parametrize("text,unit,want", [("230GHz", "Hz", 230e9), ("0.5 arcsec", "rad", 0.5 * ARCSEC),
                                            ("30deg", "rad", math.pi / 6), ("1rad", "deg", 180 / math.pi),
                                            (2.5, "Hz", 2.5), (3, "rad", 3.0), ("-2mJy", "Jy", -2e-3)])
def test_quantities_in_the_wanted_unit(text, unit, want):
    assert C._q("p", text, unit, 0) == pytest.approx(want, rel=1e-15)


@pytest.mark.parametrize("text", ["230", "1Jy", "abc", "", True, "1e400GHz", "inf GHz", "nan Hz"])
def test_quantities_that_are_not_frequencies_are_refused(text):
    with refused("freq", "component 3: must be"):
        C._q("freq", text, "Hz", 3)


def test_the_largest_quantity_is_below_1e300():
    assert C._q("freq", 9.99e299, "Hz", 0) == 9.99e299
    assert C._q("freq", -9.99e299, "Hz", 0) == -9.99e299
    for value in (1e300, -1e300, math.inf, math.nan):
        with refused("freq", "component 0: must be a finite quantity"):
            C._q("freq", value, "Hz", 0)


@pytest.mark.parametrize("text,ra,dec", [(CENTRE, "10h", "-30d"), ("10h00m00.0s -30d00m00.0s", "10h", "-30d"),
                                         ("j2000 45deg 10deg", "45d", "10d"), ("J2000 -30deg -30deg", "330d", "-30d"),
                                         ("J2000 23h59m59.9s 89d59m", "23h59m59.9s", "89d59m")])
def test_directions_against_astropy(text, ra, dec):
    got = C._direction("direction", text, 0)
    assert got == pytest.approx((Angle(ra).rad, Angle(dec).rad), abs=1e-12)
    assert 0 <= got[0] < 2 * math.pi


@pytest.mark.parametrize("text", ["B1950 10h -30d", "J2000 10h -30d 5", "10h", "", "GALACTIC 1deg 2deg"])
def test_directions_not_in_j2000_form_are_refused(text):
    with refused("direction", "component 2: give 'J2000 <ra> <dec>'"):
        C._direction("direction", text, 2)


@pytest.mark.parametrize("text", ["J2000 abc def", "J2000 10Jy 5Jy", "J2000 10h"])
def test_directions_casa_cannot_read_are_refused(text):
    with refused("phasecenter", "component 1: not a direction such as"):
        C._direction("phasecenter", text, 1)


# ------------------------------------------------------------------------------ per-component lists

def test_per_component_lists():
    assert C._per_component("x", None, 3, "d") == ["d", "d", "d"]
    assert C._per_component("x", [], 2, 0.0) == [0.0, 0.0]
    assert C._per_component("x", ["a"], 3, "d") == ["a", "a", "a"]
    assert C._per_component("x", ("a", "b", "c"), 3, "d") == ["a", "b", "c"]
    with refused("shape", r"has 2 entries for 3 components \(give 1 or 3\)"):
        C._per_component("shape", ["a", "b"], 3, "d")
    with refused("shape", r"has 4 entries for 3 components"):
        C._per_component("shape", ["a"] * 4, 3, "d")


def test_flux_tuples():
    assert C._flux_tuple(2.0, 1e-3, 0) == pytest.approx((2e-3, 0.0, 0.0, 0.0))
    assert C._flux_tuple([1, 2, 3, 4], 2.0, 0) == (2.0, 4.0, 6.0, 8.0)
    assert C._flux_tuple((1, 0, 0, -1), 1.0, 0) == (1.0, 0.0, 0.0, -1.0)
    for value in ([1, 2, 3], [1, 2, 3, 4, 5], []):
        with refused("flux", r"component 4: give I or \[I, Q, U, V\]"):
            C._flux_tuple(value, 1.0, 4)
    for value in ("abc", [1, "x", 0, 0], None):
        with refused("flux", "component 4: flux densities must be numbers"):
            C._flux_tuple(value, 1.0, 4)
    for value in (math.inf, [1, 0, math.nan, 0], 1e308):
        with refused("flux", "component 4: flux densities must be finite"):
            C._flux_tuple(value, 10.0, 4)


# ------------------------------------------------------------------------------ one component

def test_a_point_component():
    c = make(flux=[2.0, 0.1, 0.2, 0.3], fluxunit="mJy", freq="100 GHz", index=-0.7, label="a")
    assert (c.ra, c.dec) == pytest.approx((RA0, DEC0), abs=1e-12)
    assert c.flux == pytest.approx((2e-3, 1e-4, 2e-4, 3e-4), rel=1e-15)
    assert (c.freq_hz, c.shape, c.major, c.minor, c.pa_deg, c.index, c.label) == (1e11, "point", 0, 0, 0, -0.7, "a")
    assert c.texts == {"dir": CENTRE, "freq": "100GHz"}
    assert c.frame == "J2000"


@pytest.mark.parametrize("unit,scale", [("Jy", 1.0), ("mJy", 1e-3), ("uJy", 1e-6), ("MJy", 1e6)])
def test_flux_units_against_astropy(unit, scale):
    assert make(flux=3.0, fluxunit=unit).flux[0] == pytest.approx((3.0 * u.Unit(unit)).to_value(u.Jy), rel=1e-15)


@pytest.mark.parametrize("unit", ["K", "bogus", "Jy/beam", "", "m"])
def test_fluxunits_that_are_not_flux_densities_are_refused(unit):
    with refused("fluxunit", "must be a flux-density unit such as Jy or mJy"):
        make(fluxunit=unit)


@pytest.mark.parametrize("shape,kind", [("point", "point"), (" Gaussian ", "Gaussian"), ("GAUSSIAN", "Gaussian"),
                                        ("disk", "disk"), ("Disk", "disk")])
def test_shapes_are_read_whatever_their_case(shape, kind):
    c = make(shape=shape, major="1arcsec", minor="0.5arcsec", pa="10deg")
    assert c.shape == kind
    if kind != "point":
        assert (c.major, c.minor, c.pa_deg) == pytest.approx((ARCSEC, 0.5 * ARCSEC, 10.0), rel=1e-12)
        assert c.texts == {"dir": CENTRE, "freq": "230GHz", "majoraxis": "1arcsec", "minoraxis": "0.5arcsec",
                           "positionangle": "10deg"}
    else:  # a point's axes are not read at all
        assert (c.major, c.minor, c.pa_deg) == (0.0, 0.0, 0.0) and "majoraxis" not in c.texts


@pytest.mark.parametrize("shape", ["ring", "limbdarkeneddisk", ""])
def test_other_shapes_are_refused(shape):
    with refused("shape", "component 5: must be point, gaussian or disk"):
        make(shape=shape, which=5)


@pytest.mark.parametrize("index", ["abc", None, math.inf, math.nan, "nan"])
def test_spectral_index_must_be_a_finite_number(index):
    with refused("spectralindex", "component 0: must be a finite number"):
        make(index=index)


def test_spectral_index_as_text():
    assert make(index="-1.5").index == -1.5


def test_minor_and_position_angle_defaults():
    for empty in ("", None):
        c = make(shape="gaussian", major="2arcsec", minor=empty, pa=empty)
        assert (c.major, c.minor, c.pa_deg) == pytest.approx((2 * ARCSEC, 2 * ARCSEC, 0.0), rel=1e-12)
        assert (c.texts["minoraxis"], c.texts["positionangle"]) == ("2arcsec", "0deg")


@pytest.mark.parametrize("major,minor,param", [("0arcsec", "0arcsec", "majoraxis"), ("-1arcsec", "", "majoraxis"),
                                               ("1arcsec", "0arcsec", "minoraxis"),
                                               ("1arcsec", "-0.5arcsec", "minoraxis"),
                                               ("0arcsec", "1arcsec", "majoraxis")])
def test_sizes_must_be_positive(major, minor, param):
    with refused(param, "component 0: Gaussian sizes must be > 0") as e:
        make(shape="gaussian", major=major, minor=minor)
    assert e.value.value == (major if param == "majoraxis" else minor)  # the value of the parameter named


def test_minor_larger_than_major_is_refused_beyond_rounding():
    with refused("minoraxis", r"component 0: the minor axis is larger than the major axis \(1arcsec\)"):
        make(shape="disk", major="1arcsec", minor="1.000001arcsec")
    # equal axes, and a difference of rounding (1e-13 relative), are accepted
    assert make(shape="disk", major="1arcsec", minor="1arcsec").minor == pytest.approx(ARCSEC)
    major = ARCSEC
    assert make(shape="disk", major=major, minor=major * (1 + 1e-13)).minor == major * (1 + 1e-13)
    assert make(shape="disk", major=major, minor=major * (1 + 1e-12)).minor == major * (1 + 1e-12)  # the bound
    with refused("minoraxis"):
        make(shape="disk", major=major, minor=major * (1 + 1e-11))


def test_major_axis_at_most_half_the_sky():
    assert C.MAX_SIZE_RAD == math.pi
    assert make(shape="gaussian", major=math.pi, minor=1.0).major == math.pi
    with refused("majoraxis", "component 0: larger than 180 deg"):
        make(shape="gaussian", major=math.pi * (1 + 1e-15), minor=1.0)
    with refused("majoraxis", "larger than 180 deg"):
        make(shape="gaussian", major="181deg", minor="1deg")


@pytest.mark.parametrize("pa,want,text", [("359deg", 359.0, "359deg"), ("-359deg", -359.0, "-359deg"),
                                          ("360deg", 0.0, "0.0deg"), ("400deg", 40.0, "40.0deg"),
                                          ("-400deg", -40.0, "-40.0deg"), ("-360deg", -0.0, "-0.0deg"),
                                          ("725deg", 5.0, "5.0deg"), (f"{2 * math.pi}rad", 0.0, None)])
def test_position_angles_beyond_one_turn_fold_by_180_deg(pa, want, text):
    c = make(shape="gaussian", major="1arcsec", minor="1arcsec", pa=pa)
    assert c.pa_deg == pytest.approx(want, abs=1e-9)
    if text is not None:
        assert c.texts["positionangle"] == text


def test_a_frequency_below_one_hertz_is_still_positive():
    assert make(freq="0.5Hz").freq_hz == 0.5


@pytest.mark.parametrize("freq", ["0GHz", "-1GHz", 0.0])
def test_frequency_must_be_positive(freq):
    with refused("freq", "component 0: the frequency must be > 0"):
        make(freq=freq)


@given(st.floats(1e6, 1e13), st.floats(-4, 4), st.floats(1e6, 1e13), st.floats(1e-6, 1e3))
def test_flux_at_is_a_power_law(freq0, index, freq, flux):
    c = C.Component(0.0, 0.0, (flux, 0.0, 0.0, 0.0), freq0, index=index)
    assert c.flux_at(freq) == pytest.approx(flux * math.exp(index * math.log(freq / freq0)), rel=1e-9)


def test_flux_at_examples():
    c = C.Component(0.0, 0.0, (2.0, 5.0, 6.0, 7.0), 100e9, index=-1.0)
    assert c.flux_at(200e9) == pytest.approx(1.0) and c.flux_at(100e9) == 2.0 and c.flux_at(50e9) == pytest.approx(4)
    assert C.Component(0.0, 0.0, (2.0, 0, 0, 0), 100e9, index=2.0).flux_at(300e9) == pytest.approx(18.0)


def test_component_defaults():
    c = C.Component(1.0, 2.0, (1.0, 0, 0, 0), 1e9)
    assert (c.shape, c.major, c.minor, c.pa_deg, c.index, c.label, c.texts, c.frame) == \
        ("point", 0.0, 0.0, 0.0, 0.0, "", {}, "J2000")


# ------------------------------------------------------------------------------ from the task's parameters

def test_no_directions_is_an_empty_model():
    assert C.from_parameters([], [], "Jy", [], [], [], [], [], []) == []
    assert C.from_parameters(None, "", "Jy", None, None, None, None, None, None) == []


@pytest.mark.parametrize("flux,freq,shape", [([1.0], [], []), ([], ["230GHz"], []), ([], [], ["point"]), (1.0, [], [])])
def test_anything_without_directions_is_refused(flux, freq, shape):
    with refused("direction", "give one direction per component"):
        C.from_parameters([], flux, "Jy", freq, shape, [], [], [], [])


def test_lists_of_one_apply_to_every_component():
    comps = C.from_parameters([CENTRE, "J2000 10h00m01s -30d00m00s"], [0.5], "mJy", ["100GHz"], ["gaussian"],
                              ["1arcsec"], ["0.5arcsec"], ["30deg"], [-1.0])
    assert len(comps) == 2
    for c in comps:
        assert (c.flux[0], c.freq_hz, c.shape, c.index) == (pytest.approx(5e-4), 1e11, "Gaussian", -1.0)
        assert (c.major, c.minor, c.pa_deg) == pytest.approx((ARCSEC, 0.5 * ARCSEC, 30.0))
    assert comps[1].ra - comps[0].ra == pytest.approx(math.radians(15 / 3600), rel=1e-9)


def test_per_component_values_and_defaults():
    comps = C.from_parameters([CENTRE, CENTRE, CENTRE], [1.0, [2.0, 0.5, 0, 0], 3.0], "Jy",
                              ["100GHz", "200GHz", "300GHz"], ["point", "disk", "point"], ["", "2arcsec", ""],
                              [], ["", "10deg", ""], [0.0, 1.0, 2.0])
    assert [c.flux[0] for c in comps] == [1.0, 2.0, 3.0] and comps[1].flux == (2.0, 0.5, 0.0, 0.0)
    assert [c.freq_hz for c in comps] == [1e11, 2e11, 3e11]
    assert [c.shape for c in comps] == ["point", "disk", "point"]
    assert comps[1].minor == comps[1].major == pytest.approx(2 * ARCSEC)
    assert [c.index for c in comps] == [0.0, 1.0, 2.0]
    # defaults: point, flat spectrum; the flux has none
    c, = C.from_parameters([CENTRE], [1.0], "Jy", ["1GHz"], [], [], [], [], [])
    assert (c.flux, c.shape, c.index) == ((1.0, 0.0, 0.0, 0.0), "point", 0.0)
    with refused("flux", "has 0 entries for 1 directions"):
        C.from_parameters([CENTRE], [], "Jy", ["1GHz"], [], [], [], [], [])
    c, = C.from_parameters([CENTRE], 0.25, "Jy", ["1GHz"], None, None, None, None, None)
    assert c.flux[0] == 0.25


def test_flux_count_must_match_the_directions():
    with refused("flux", r"has 2 entries for 3 directions \(give 1 or 3\)"):
        C.from_parameters([CENTRE] * 3, [1.0, 2.0], "Jy", ["1GHz"], [], [], [], [], [])


def test_a_reference_frequency_is_needed():
    with refused("freq", "give the components' reference frequency"):
        C.from_parameters([CENTRE], [1.0], "Jy", [], [], [], [], [], [])


def test_errors_name_the_component():
    with refused("freq", "component 1: must be a quantity in Hz"):
        C.from_parameters([CENTRE, CENTRE], [1.0], "Jy", ["1GHz", "1Jy"], [], [], [], [], [])


# ------------------------------------------------------------------------------ tables

def test_csv_with_directions_and_default_units(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("Direction,flux,freq,shape,majoraxis,minoraxis,positionangle,spectralindex,label\n"
                    f"{CENTRE},2,230e9,gaussian,1.5,1,30,-0.5,first\n"
                    "J2000 10h00m01s -30d00m00s,3,1e11,point,,,,,\n")
    a, b = C.from_table(path, "mJy")
    assert (a.ra, a.dec) == pytest.approx((RA0, DEC0), abs=1e-12)
    assert a.flux[0] == pytest.approx(2e-3) and a.freq_hz == 230e9 and a.shape == "Gaussian"
    assert (a.major, a.minor, a.pa_deg, a.index, a.label) == \
        (pytest.approx(1.5 * ARCSEC), pytest.approx(ARCSEC), pytest.approx(30.0), -0.5, "first")
    assert b.flux[0] == pytest.approx(3e-3) and b.freq_hz == 1e11 and b.shape == "point" and b.index == 0.0


def test_csv_columns_mixing_numbers_and_quantities(tmp_path):
    # astropy reads such a column as text: its bare numbers still take the column's default unit
    path = tmp_path / "m.csv"
    path.write_text("ra,dec,flux,freq,majoraxis,shape\n"
                    "150.0,-30.0,1.5,230GHz,0.5arcmin,gaussian\n"
                    "02h30m00.0s,-30.0,2mJy,1e11,1.5,disk\n")
    a, b = C.from_table(path, "mJy")
    assert (a.ra, a.dec, b.ra) == pytest.approx((RA0, DEC0, math.radians(37.5)), rel=0, abs=1e-12)
    assert (a.flux[0], b.flux[0]) == pytest.approx((1.5e-3, 2e-3), rel=1e-12)
    assert (a.freq_hz, b.freq_hz) == pytest.approx((230e9, 1e11), rel=1e-12)
    assert (a.major, b.major) == pytest.approx((30 * ARCSEC, 1.5 * ARCSEC), rel=1e-12)


_CELLS = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                   st.sampled_from(["", "1.5", "-0", "2mJy", "1e400", "3GHz", "0.5arcmin", "02h30m00.0s", "nan",
                                    "5 furlongs", "x", "1,2", '"q"', "\u00b5Jy", "1e-400"]),
                   st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12))


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(_CELLS, _CELLS, _CELLS, _CELLS), min_size=1, max_size=3),
       unit=st.sampled_from([None, "deg", "hourangle", "Jy", "GHz", "K", "arcsec", "m"]))
def test_any_table_is_read_or_refused_clearly(tmp_path_factory, rows, unit):
    # CSV text of any kind, and ECSV columns with any unit: components, or a TaskParameterError
    path = tmp_path_factory.mktemp("t") / "f.csv"
    path.write_text("ra,dec,flux,freq\n" + "".join(
        ",".join('"' + c.replace('"', '""').replace("\n", " ") + '"' for c in r) + "\n" for r in rows))
    try:
        comps = C.from_table(path, "Jy")
    except TaskParameterError as exc:
        assert exc.param in ("complist", "ra", "dec", "flux", "freq", "direction")
    else:
        assert len(comps) == len(rows) and all(math.isfinite(c.ra) and c.freq_hz > 0 for c in comps)
    if unit is not None:
        ecsv = path.with_suffix(".ecsv")
        Table({"ra": [10.0] * u.Unit(unit), "dec": [-30.0] * u.deg, "flux": [1.0] * u.Jy,
               "freq": [1.0] * u.GHz}).write(ecsv, overwrite=True)
        try:
            c, = C.from_table(ecsv, "Jy")
        except TaskParameterError as exc:
            assert exc.param == "ra" and u.Unit(unit).physical_type != "angle"
        else:
            assert c.ra == pytest.approx((10.0 * u.Unit(unit)).to_value(u.rad) % (2 * math.pi), abs=1e-12)


def test_csv_with_ra_and_dec_in_degrees(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("ra,dec,flux,freq\n150.0,-30.0,1.5,1e9\n-10,45,1,1e9\n")
    a, b = C.from_table(path, "Jy")
    assert (a.ra, a.dec, a.flux[0], a.freq_hz) == (pytest.approx(RA0), pytest.approx(DEC0), 1.5, 1e9)
    assert (b.ra, b.dec) == pytest.approx((math.radians(350.0), math.radians(45.0)), abs=1e-12)
    assert (a.shape, a.label, a.index, b.index) == ("point", "", 0.0, 0.0)  # no spectralindex column: flat


def test_ecsv_takes_the_units_of_its_columns(tmp_path):
    t = Table({"ra": [150.0] * u.deg, "dec": [-1800.0] * u.arcmin, "flux": [500.0] * u.mJy,
               "freq": [0.23] * u.THz, "shape": ["disk"], "majoraxis": [0.02] * u.arcmin,
               "minoraxis": [600.0] * u.mas, "positionangle": [0.5] * u.rad})
    t.write(tmp_path / "c.ecsv")
    c, = C.from_table(tmp_path / "c.ecsv", "Jy")
    assert (c.ra, c.dec) == pytest.approx((RA0, DEC0), abs=1e-12)
    assert (c.flux[0], c.freq_hz, c.shape) == (pytest.approx(0.5), pytest.approx(230e9), "disk")
    assert (c.major, c.minor, c.pa_deg) == pytest.approx((1.2 * ARCSEC, 0.6 * ARCSEC, math.degrees(0.5)), rel=1e-9)


def test_ecsv_units_casa_does_not_know_are_converted_by_astropy(tmp_path):
    # right ascension in hours, as SkyCoord.ra.to(u.hourangle) writes it; CASA's quanta has no 'hourangle'
    ra = Angle("10h01m02.5s")
    t = Table({"ra": [ra.hourangle] * u.hourangle, "dec": [-30.5] * u.deg, "flux": [0.25] * u.Jy,
               "freq": [100.0] * u.GHz, "shape": ["gaussian"], "majoraxis": [2.0] * u.arcsec,
               "minoraxis": [1.0] * u.arcsec, "positionangle": [1.0] * u.hourangle})
    t.write(tmp_path / "h.ecsv")
    c, = C.from_table(tmp_path / "h.ecsv", "Jy")
    assert (c.ra, c.dec) == pytest.approx((ra.rad, math.radians(-30.5)), rel=0, abs=1e-12)
    assert c.pa_deg == pytest.approx(15.0, rel=1e-12) and c.flux[0] == 0.25 and c.freq_hz == pytest.approx(1e11)
    # a unit that does not convert is still refused, naming the column's parameter and the value
    Table({"ra": [150.0] * u.deg, "dec": [-30.0] * u.deg, "flux": [1.0] * u.K, "freq": [1.0] * u.GHz}).write(
        tmp_path / "k.ecsv")
    with refused("flux", "component 0: must be a quantity in Jy"):
        C.from_table(tmp_path / "k.ecsv", "Jy")


@pytest.mark.parametrize("header,missing", [("direction,freq", "flux"), ("direction,flux", "freq"),
                                            ("ra,flux,freq", r"direction \(or ra and dec\)"),
                                            ("dec,flux,freq", r"direction \(or ra and dec\)"),
                                            ("x", r"flux, freq, direction \(or ra and dec\)")])
def test_tables_lacking_columns_are_refused(tmp_path, header, missing):
    path = tmp_path / "c.csv"
    path.write_text(header + "\n" + ",".join(["1"] * len(header.split(","))) + "\n")
    with refused("complist", f"lacks the column\\(s\\) {missing}$|lacks the column\\(s\\) {missing};"):
        C.from_table(path, "Jy")


def test_an_unreadable_table_is_refused(tmp_path):
    path = tmp_path / "c.ecsv"
    path.write_text("not an ecsv file\n")
    with refused("complist", "cannot be read as a CSV/ECSV table"):
        C.from_table(path, "Jy")


def test_a_table_row_error_names_the_row(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text(f"direction,flux,freq\n{CENTRE},1,1e9\n{CENTRE},1,-1e9\n")
    with refused("freq", "component 1: the frequency must be > 0"):
        C.from_table(path, "Jy")


# ------------------------------------------------------------------------------ componentlists

def write_cl(path, adds):
    cl = casatools().componentlist()
    try:
        for kw in adds:
            cl.addcomponent(**kw)
        cl.rename(str(path))
    finally:
        cl.done()


def test_componentlist_is_read_like_casa_wrote_it(tmp_path):
    write_cl(tmp_path / "a.cl", [
        dict(dir=CENTRE, flux=[1.0, 0.1, 0.2, 0.3], fluxunit="mJy", freq="100GHz", shape="point", label="p"),
        dict(dir="J2000 10h00m01s -29d59m00s", flux=2.0, fluxunit="Jy", freq="230GHz", shape="Gaussian",
             majoraxis="1arcsec", minoraxis="0.5arcsec", positionangle="30deg", spectrumtype="spectral index",
             index=-0.7),
        dict(dir=CENTRE, flux=0.5, freq="1GHz", shape="disk", majoraxis="2arcmin", minoraxis="1arcmin",
             positionangle="-10deg")])
    a, b, d = C.from_componentlist(tmp_path / "a.cl")
    assert (a.ra, a.dec) == pytest.approx((RA0, DEC0), abs=1e-12)
    # a list in mJy is read in Jy (CASA keeps the values as float32)
    assert a.flux == pytest.approx((1e-3, 1e-4, 2e-4, 3e-4), rel=1e-7)
    assert (a.freq_hz, a.shape, a.index, a.label, a.frame, a.major) == (1e11, "point", 0.0, "p", "J2000", 0.0)
    assert (b.ra, b.dec) == pytest.approx((Angle("10h00m01s").rad, Angle("-29d59m").rad), abs=1e-12)
    assert (b.flux[0], b.freq_hz, b.shape, b.index) == (2.0, pytest.approx(230e9, rel=1e-15), "Gaussian",
                                                        pytest.approx(-0.7))
    assert (b.major, b.minor, b.pa_deg) == pytest.approx((ARCSEC, 0.5 * ARCSEC, 30.0), rel=1e-9)
    assert (d.shape, d.major, d.minor, d.pa_deg) == ("disk", pytest.approx(120 * ARCSEC), pytest.approx(60 * ARCSEC),
                                                     pytest.approx(-10.0))
    assert d.texts == {}


def test_an_empty_componentlist_has_no_components(tmp_path):
    write_cl(tmp_path / "e.cl", [])
    assert C.from_componentlist(tmp_path / "e.cl") == []


def test_a_missing_componentlist_is_refused(tmp_path):
    with refused("complist", r"cannot be opened as a componentlist \("):
        C.from_componentlist(tmp_path / "none.cl")


def test_componentlist_spectra_other_than_index_are_refused(tmp_path):
    cl = casatools().componentlist()
    try:
        cl.addcomponent(dir=CENTRE, flux=1.0, freq="100GHz")
        cl.addcomponent(dir=CENTRE, flux=1.0, freq="100GHz")
        cl.setspectrum(1, type="plp", index=[1.0, 0.5])
        cl.rename(str(tmp_path / "s.cl"))
    finally:
        cl.done()
    with refused("complist", "component 1 has a 'Power Logarithmic Polynomial' spectrum"):
        C.from_componentlist(tmp_path / "s.cl")


def test_componentlist_with_impossible_values_is_refused(tmp_path):
    write_cl(tmp_path / "n.cl", [dict(dir=CENTRE, flux=1.0, freq="100GHz"),
                                 dict(dir=CENTRE, flux=[math.nan, 0, 0, 0], freq="100GHz")])
    with refused("complist", "component 1 has impossible values"):
        C.from_componentlist(tmp_path / "n.cl")


def record_of(path):
    cl = casatools().componentlist()
    try:
        cl.open(str(path))
        return [dict(flux=list(cl.getfluxvalue(i)), unit=cl.getfluxunit(i), dir=cl.getrefdir(i),
                     shape=dict(cl.getshape(i), type=cl.shapetype(i)), spectrum=cl.getspectrum(i),
                     label=cl.getlabel(i), freq=cl.getspectrum(i)["frequency"]["m0"])
                for i in range(cl.length())]
    finally:
        cl.done()


def test_to_componentlist_round_trip(tmp_path):
    comps = C.from_parameters([CENTRE, "J2000 10h00m01s -29d59m00s", "10h00m02s -30d00m00s"],
                              [[1.0, 0.1, 0.2, 0.3], 2.0, 0.5], "Jy", ["100GHz", "230GHz", "1GHz"],
                              ["point", "gaussian", "disk"], ["", "1arcsec", "2arcmin"], ["", "0.5arcsec", ""],
                              ["", "30deg", "400deg"], [0.0, -0.7, 1.0])
    comps[0].label = "first"
    C.to_componentlist(comps, tmp_path / "o.cl", frame="BARY")
    got = record_of(tmp_path / "o.cl")
    assert len(got) == 3
    assert got[0]["flux"] == pytest.approx([1.0, 0.1, 0.2, 0.3]) and got[0]["label"] == "first"
    assert all(g["unit"] == "Jy" for g in got)
    assert got[0]["shape"]["type"] == "Point" and got[0]["spectrum"]["type"] == "Constant"
    assert (got[0]["dir"]["m0"]["value"], got[0]["dir"]["m1"]["value"]) == pytest.approx((RA0, DEC0), abs=1e-12)
    assert got[0]["freq"]["value"] == pytest.approx(100.0) and got[0]["freq"]["unit"] == "GHz"
    assert all(g["spectrum"]["frequency"]["refer"] == "BARY" for g in got)
    g = got[1]
    assert g["shape"]["type"] == "Gaussian" and g["spectrum"]["type"] == "Spectral Index"
    assert float(np.atleast_1d(g["spectrum"]["index"])[0]) == pytest.approx(-0.7)
    qa = casatools().quanta()
    assert qa.convert(g["shape"]["majoraxis"], "arcsec")["value"] == pytest.approx(1.0, rel=1e-12)
    assert qa.convert(g["shape"]["minoraxis"], "arcsec")["value"] == pytest.approx(0.5, rel=1e-12)
    assert qa.convert(g["shape"]["positionangle"], "deg")["value"] == pytest.approx(30.0, rel=1e-12)
    d = got[2]
    assert d["shape"]["type"] == "Disk" and d["flux"] == pytest.approx([0.5, 0, 0, 0])
    assert qa.convert(d["shape"]["minoraxis"], "arcmin")["value"] == pytest.approx(2.0, rel=1e-12)
    assert qa.convert(d["shape"]["positionangle"], "deg")["value"] == pytest.approx(40.0, rel=1e-12)
    assert (d["dir"]["m0"]["value"], d["dir"]["m1"]["value"]) == \
        pytest.approx((Angle("10h00m02s").rad, DEC0), abs=1e-12)
    # read back by the module itself: the same components
    back = C.from_componentlist(tmp_path / "o.cl")
    for a, b in zip(comps, back):
        assert (b.ra, b.dec, b.freq_hz, b.index, b.major, b.minor) == \
            pytest.approx((a.ra, a.dec, a.freq_hz, a.index, a.major, a.minor), rel=1e-9, abs=1e-12)
        assert b.flux == pytest.approx(a.flux) and b.shape == a.shape


def test_components_without_texts_are_written_from_their_numbers(tmp_path):
    c = C.Component(RA0, DEC0, (1.0, 0, 0, 0), 123.4e9, "Gaussian", 2 * ARCSEC, ARCSEC, 15.0, index=0.5,
                    frame="J2000")
    C.to_componentlist([c], tmp_path / "o.cl")
    g, = record_of(tmp_path / "o.cl")
    assert (g["dir"]["m0"]["value"], g["dir"]["m1"]["value"]) == pytest.approx((RA0, DEC0), abs=1e-15)
    assert g["dir"]["refer"] == "J2000"
    assert g["spectrum"]["frequency"]["refer"] == "LSRK"
    assert casatools().quanta().convert(g["freq"], "Hz")["value"] == pytest.approx(123.4e9, rel=1e-15)
    qa = casatools().quanta()
    assert qa.convert(g["shape"]["majoraxis"], "rad")["value"] == pytest.approx(2 * ARCSEC, rel=1e-12)
    assert qa.convert(g["shape"]["minoraxis"], "rad")["value"] == pytest.approx(ARCSEC, rel=1e-12)
    assert qa.convert(g["shape"]["positionangle"], "deg")["value"] == pytest.approx(15.0, rel=1e-12)
    assert float(np.atleast_1d(g["spectrum"]["index"])[0]) == 0.5


def test_a_direction_text_without_frame_is_written_as_j2000(tmp_path):
    c = C.Component(RA0, DEC0, (1.0, 0, 0, 0), 1e9, texts={"dir": "10h00m00s -30d00m00s"})
    C.to_componentlist([c], tmp_path / "o.cl")
    g, = record_of(tmp_path / "o.cl")
    assert g["dir"]["refer"] == "J2000"
    assert (g["dir"]["m0"]["value"], g["dir"]["m1"]["value"]) == pytest.approx((RA0, DEC0), abs=1e-12)


def test_componentlist_record_with_unit_flux_is_flat_and_one_jansky():
    ct = casatools()
    comps = [make(flux=[2.0, 0.5, 0, 0], index=-2.0, shape="gaussian", major="1arcsec"), make(flux=3.0, index=0.0)]
    rec = C.to_componentlist_record(ct, comps, "LSRK", unit_flux=True)
    assert rec["nelements"] == 2
    for k in range(2):
        comp = rec[f"component{k}"]
        assert list(comp["flux"]["value"].real) == [1.0, 1.0, 1.0, 1.0]
        assert comp["spectrum"]["type"] == "Constant"
    assert rec["component0"]["shape"]["type"] == "Gaussian"
    rec = C.to_componentlist_record(ct, comps, "TOPO")
    assert list(rec["component0"]["flux"]["value"].real) == pytest.approx([2.0, 0.5, 0.0, 0.0])
    assert rec["component0"]["spectrum"]["type"] == "Spectral Index"
    assert float(np.atleast_1d(rec["component0"]["spectrum"]["index"])[0]) == -2.0
    assert rec["component1"]["spectrum"]["type"] == "Constant"
    assert rec["component0"]["spectrum"]["frequency"]["refer"] == "TOPO"


@pytest.mark.parametrize("kw", [dict(freq="0GHz"), dict(freq="-1GHz"),
                                dict(freq="1GHz", shape="gaussian", majoraxis="181deg", minoraxis="1deg",
                                     positionangle="0deg")])
def test_componentlist_frequencies_and_sizes_out_of_bounds_are_refused(tmp_path, kw):
    write_cl(tmp_path / "b.cl", [dict(dir=CENTRE, flux=1.0, **kw)])
    with refused("complist", "component 0 has impossible values"):
        C.from_componentlist(tmp_path / "b.cl")


def test_componentlist_sizes_on_the_bounds_are_read(tmp_path):
    # a circular component (minor = major) and one of 180 deg are allowed
    # and any reference frequency above zero, however low (the bound is 0 Hz, as for the freq parameter)
    write_cl(tmp_path / "b.cl", [dict(dir=CENTRE, flux=1.0, freq="0.5Hz", shape="disk", majoraxis="1arcsec",
                                      minoraxis="1arcsec", positionangle="0deg"),
                                 dict(dir=CENTRE, flux=1.0, freq="1GHz", shape="gaussian", majoraxis="180deg",
                                      minoraxis="1deg", positionangle="0deg")])
    a, b = C.from_componentlist(tmp_path / "b.cl")
    assert a.minor == a.major == pytest.approx(ARCSEC) and b.major == pytest.approx(math.pi)
    assert a.freq_hz == pytest.approx(0.5, rel=1e-12) and b.freq_hz == pytest.approx(1e9, rel=1e-12)
