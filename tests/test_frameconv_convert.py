"""frameconv's conversion core (:mod:`almatools.plugins.frames.convert`), one function at a time.

Expected values come from elsewhere: the frame and Doppler codes and every frequency conversion from
CASA's own measures tool (``me.measure``, ``me.tofrequency``, ``me.todoppler``, set up here, call by
call), the velocity conventions from astropy's Doppler equivalencies, times from astropy.time and
hand-counted calendar dates, units from astropy.units, bounds from the documented constants.
"""

import dataclasses
import math

import astropy.units as u
import numpy as np
import pytest
from astropy.time import Time
from hypothesis import given
from hypothesis import strategies as st

from almatools.plugins.frames import convert as cv
from almatools.plugins.frames.convert import FrameError

C = 299792458.0
DIR = ("J2000", "04h33m52.0s", "22d50m30.0s")
T0 = Time("2024-11-15T05:33:44", scale="utc").mjd * 86400.0  # MJD seconds, as the MS TIME column


def casa_factor(me, qa, inframe, outframe, t_s, direction=DIR, obs="ALMA", sysvel=None, f_hz=230e9):
    """f_out / f_in for one frequency and time, asked of CASA measures directly."""
    me.doframe(me.observatory(obs) if isinstance(obs, str) else obs)
    me.doframe(me.direction(*direction))
    if sysvel:
        me.doframe(me.radialvelocity(sysvel[0], qa.quantity(sysvel[1], "m/s")))
    me.doframe(me.epoch("UTC", qa.quantity(t_s, "s")))
    return me.measure(me.frequency(inframe, qa.quantity(f_hz, "Hz")), outframe)["m0"]["value"] / f_hz


# ---- the code lists are CASA's ------------------------------------------------------------------

def test_frames_are_casas_mfrequency_codes_in_casas_order(me):
    codes = me.listcodes(me.frequency("LSRK", "1GHz"))
    assert cv.FRAMES == tuple(str(c) for c in codes["normal"])
    assert set(cv.FRAMES) == {"LSRK", "LSRD", "BARY", "TOPO", "GEO", "GALACTO", "LGROUP", "CMB", "REST"}


def test_dopplers_are_casas_mdoppler_codes(me):
    assert set(cv.DOPPLERS) == {str(c) for c in me.listcodes(me.doppler("RADIO", "0km/s"))["normal"]}
    assert len(cv.DOPPLERS) == 8


def test_speed_of_light_is_astropys():
    from astropy.constants import c
    assert cv.C_M_S == c.to_value(u.m / u.s)


# ---- parse_quantity ------------------------------------------------------------------------------

@pytest.mark.parametrize("unit", ["Hz", "kHz", "MHz", "GHz", "THz"])
def test_every_frequency_unit_scales_as_astropy_says(unit):
    assert cv.parse_quantity(f"1.25{unit}") == pytest.approx((1.25 * u.Unit(unit)).to_value(u.Hz), rel=1e-15)
    assert cv.freq_unit_scale(f" {unit.upper()} ") == u.Unit(unit).to(u.Hz)
    assert cv.unit_kind(unit) == "frequency"


@pytest.mark.parametrize("unit", ["m/s", "km/s"])
def test_every_velocity_unit_scales_as_astropy_says(unit):
    assert cv.parse_quantity(f"-25.5{unit}", "velocity") == pytest.approx(
        (-25.5 * u.Unit(unit)).to_value(u.m / u.s), rel=1e-15)
    assert cv.unit_kind(f" {unit.upper()}") == "velocity"


def test_quantity_number_forms():
    assert cv.parse_quantity(" 230.538 GHz ") == pytest.approx(230.538e9, rel=1e-15)
    assert cv.parse_quantity(".5GHz") == 0.5e9
    assert cv.parse_quantity("+1e3kHz") == 1e6
    assert cv.parse_quantity("-3m/s", kind="velocity") == -3.0


@pytest.mark.parametrize("text, kind, words", [
    ("abc", "frequency", "is not a number with a unit"),
    ("1.2.3GHz", "frequency", "is not a number with a unit"),
    ("230", "frequency", "the unit must be one of ['ghz', 'hz', 'khz', 'mhz', 'thz'] for a frequency"),
    ("230km/s", "frequency", "for a frequency"),
    ("5GHz", "velocity", "the unit must be one of ['km/s', 'm/s'] for a velocity"),
    ("1e400GHz", "frequency", "is not a finite frequency"),
    ("1e300THz", "frequency", "is not a finite frequency"),  # finite as written, infinite in Hz
    ("1e400km/s", "velocity", "is not a finite velocity"),
    ("299792458m/s", "velocity", "is not slower than light"),  # exactly c
    ("-299792.458km/s", "velocity", "is not slower than light"),
])
def test_quantity_refusals_quote_the_text(text, kind, words):
    with pytest.raises(FrameError) as err:
        cv.parse_quantity(text, kind)
    assert words in str(err.value) and repr(text) in str(err.value)


def test_just_below_light_is_a_velocity_and_light_speed_is_a_frequency():
    assert cv.parse_quantity("299792457.9m/s", "velocity") == 299792457.9
    assert cv.parse_quantity("-299792457.9m/s", "velocity") == -299792457.9
    assert cv.parse_quantity("299792458Hz") == C  # the light-speed bound is for velocities only


def test_unit_kinds_and_refusal():
    assert cv.unit_kind("") == "dimensionless" and cv.unit_kind("  ") == "dimensionless"
    with pytest.raises(FrameError, match=r"unit 'Jy' is not one of \['ghz', 'hz', 'khz', 'mhz', 'thz', "
                                         r"'km/s', 'm/s'\] or ''"):
        cv.unit_kind("Jy")


# ---- epochs --------------------------------------------------------------------------------------

def mjd(iso):
    return Time(iso, scale="utc").mjd


@pytest.mark.parametrize("text, iso", [
    ("2024/11/15/05:33:44", "2024-11-15T05:33:44"),
    ("2024-11-15T05:33:44.25", "2024-11-15T05:33:44.25"),
    ("2024/11/15 05:33:44.5", "2024-11-15T05:33:44.5"),
    ("2024-11-15 05:33:07", "2024-11-15T05:33:07"),
    ("2024/1/5/5:3:4", "2024-01-05T05:03:04"),
    ("2024/11/15/05:33", "2024-11-15T05:33:00"),  # seconds default to 0
    ("2024/11/15", "2024-11-15T00:00:00"),  # hours and minutes too
    ("2024-11-15", "2024-11-15T00:00:00"),
    ("  2024/11/15/23:59:59  ", "2024-11-15T23:59:59"),
    ("J2024.5", "J2024.5"),  # not the calendar pattern: astropy reads it
    ("2024:320:05:33:44", "2024:320:05:33:44"),  # astropy's year:day-of-year
])
def test_calendar_forms_equal_astropy(text, iso):
    got = cv.parse_epochs(text)
    assert got.shape == (1,)
    assert got[0] == pytest.approx(Time(iso, scale="utc").mjd * 86400.0, abs=1e-5)


@pytest.mark.parametrize("text, days", [
    ("60629.25", 60629.25), ("MJD 60629.25", 60629.25), ("mjd60629", 60629.0), (" +60629. ", 60629.0),
    ("MjD  60629.75", 60629.75),
])
def test_mjd_forms(text, days):
    assert cv.parse_epochs(text)[0] == days * 86400.0


def test_mjd_60629_is_2024_11_15():
    # counted by hand: MJD 60000 is 2023-02-25; 365 days to 2024-02-25, then 264 more (2024 is a leap year)
    assert cv.parse_epochs("2024/11/15")[0] == 60629 * 86400.0
    assert cv.mjd_seconds_to_iso([60629 * 86400.0 + 20024.5]) == ["2024-11-15T05:33:44.500"]
    assert cv.mjd_seconds_to_iso(60000 * 86400.0) == ["2023-02-25T00:00:00.000"]


def test_numbers_are_mjd_days_checked_against_the_range():
    assert cv._epoch_to_mjd(60629) == 60629.0
    assert cv._epoch_to_mjd(60629.5) == 60629.5
    # a number is range-checked as a number, never read as text ('nan', '1e+20' are not times)
    for bad in (float("nan"), 1e20, 1e-5):
        with pytest.raises(FrameError, match="outside the years 1900-2200"):
            cv._epoch_to_mjd(bad)


@pytest.mark.filterwarnings("ignore:ERFA function")  # astropy calls years before 1960 dubious (no leap seconds)
def test_mjd_range_bounds_are_inclusive():
    lo, hi = cv.MJD_RANGE
    assert (lo, hi) == (mjd("1900-01-01"), mjd("2200-01-01"))
    assert cv.parse_epochs(str(lo))[0] == lo * 86400.0
    assert cv.parse_epochs(str(hi))[0] == hi * 86400.0
    assert cv.parse_epochs("1900/01/01")[0] == lo * 86400.0
    for bad in (lo - 0.5, hi + 0.5):
        with pytest.raises(FrameError, match=r"outside the years 1900-2200 \(MJD 15020-124593\)"):
            cv.parse_epochs(str(bad))
    with pytest.raises(FrameError, match=r"'1899/12/31' is outside the years 1900-2200"):
        cv.parse_epochs("1899/12/31")
    with pytest.raises(FrameError, match="outside"):
        cv.parse_epochs("2200-01-01T00:00:01")


@pytest.mark.parametrize("text", ["nan", "yesterday", "2024/13/01", "2024/11/15/25:00:00", "2024/11/15/05:33:44~x",
                                  "2024/11/15~2024/11/16~2024/11/17"])
def test_what_is_not_a_time_is_refused_with_the_accepted_forms(text):
    with pytest.raises(FrameError, match=r"is not a time \(use 'YYYY/MM/DD/hh:mm:ss', ISO "
                                         r"'YYYY-MM-DDThh:mm:ss' or an MJD in days\)"):
        cv.parse_epochs(text)


@pytest.mark.parametrize("text", ["", "   "])
def test_no_time(text):
    with pytest.raises(FrameError, match="^no time given$"):
        cv.parse_epochs(text)


def test_range_sampling_includes_both_ends():
    a, b = mjd("2024-11-15T00:00:00"), mjd("2024-11-15T06:00:00")
    got = cv.parse_epochs("2024/11/15/00:00:00~2024/11/15/06:00:00", 4)
    assert got == pytest.approx(a * 86400.0 + np.array([0.0, 7200.0, 14400.0, 21600.0]), rel=1e-15)  # every 2 h
    assert got[-1] == b * 86400.0
    # a range has two samples at least, whatever ntimes says
    for n in (None, 0, 1, 2):
        got = cv.parse_epochs("60629~60630") if n is None else cv.parse_epochs("60629~60630", n)
        assert got.tolist() == [60629 * 86400.0, 60630 * 86400.0]
    assert cv.parse_epochs("60629 ~ 60630", 3).tolist() == [60629 * 86400.0, 60629.5 * 86400.0, 60630 * 86400.0]


def test_a_zero_length_range_is_allowed_a_reversed_one_is_not():
    assert cv.parse_epochs("60629.5~60629.5", 3).tolist() == [60629.5 * 86400.0] * 3
    with pytest.raises(FrameError, match=r"time range '60630~60629' ends before it starts"):
        cv.parse_epochs("60630~60629")


def test_ntimes_bound_is_inclusive():
    assert cv.MAX_NTIMES == 10_000
    assert len(cv.parse_epochs("60629~60630", 10_000)) == 10_000
    with pytest.raises(FrameError, match=r"^ntimes=10001 samples more than 10,000 times$"):
        cv.parse_epochs("60629~60630", 10_001)


# ---- directions ----------------------------------------------------------------------------------

def same_direction(a, b):
    return a["refer"] == b["refer"] and all(
        a[k]["value"] == pytest.approx(b[k]["value"], abs=1e-12) for k in ("m0", "m1"))


@pytest.mark.parametrize("text, want", [
    ("J2000 04h33m52.0s 22d50m30.0s", ("J2000", "04h33m52.0s", "22d50m30.0s")),
    ("04h33m52.0s, 22d50m30.0s", ("J2000", "04h33m52.0s", "22d50m30.0s")),  # J2000 by default
    ("icrs 68.47deg 22.84deg", ("ICRS", "68.47deg", "22.84deg")),
    ("GALACTIC 180deg -20deg", ("GALACTIC", "180deg", "-20deg")),
    ("J2000 10deg 90deg", ("J2000", "10deg", "90deg")),  # the poles are directions
    ("J2000 10deg -90deg", ("J2000", "10deg", "-90deg")),
    ("J2000 4.5h 22deg", ("J2000", "67.5deg", "22deg")),  # a longitude in hours of time
    ("J2000 3600s 22deg", ("J2000", "15deg", "22deg")),
])
def test_directions_equal_casas(me, text, want):
    assert same_direction(cv.parse_direction(me, text), me.direction(*want))


def test_solar_system_bodies(me):
    assert cv.parse_direction(me, "mars")["refer"] == "MARS"
    assert cv.parse_direction(me, "SUN")["refer"] == "SUN"


@pytest.mark.parametrize("text, words", [
    ("FOO", "is not a direction"),
    ("FOO 1deg 2deg", "is not a direction"),
    ("J2000 1deg 2deg 3deg", "is not a direction"),
    ("", "is not a direction"),
    ("J2000 12x 0deg", "'12x' is not a finite angle"),
    ("J2000 nan 0deg", "'nan' is not a finite angle"),
    ("J2000 infdeg 0deg", "'infdeg' is not a finite angle"),
    ("J2000 1e400deg 0deg", "'1e400deg' is not a finite angle"),  # CASA: the largest double
    ("J2000 -1e300h 0deg", "'-1e300h' is not a finite angle"),
    ("J2000 10m 0deg", "'10m' is not a finite angle"),  # a length
    ("J2000 0deg 5Jy", "'5Jy' is not a finite angle"),
    ("J2000 0deg 90.001deg", "the latitude '90.001deg' is not an angle within ±90 degrees"),
    ("J2000 0deg -90.001deg", "within ±90 degrees"),
    ("J2000 0deg 7h", "within ±90 degrees"),  # 105 degrees
])
def test_direction_refusals(me, text, words):
    with pytest.raises(FrameError) as err:
        cv.parse_direction(me, text)
    assert words in str(err.value) and repr(text) in str(err.value)


# ---- sites ---------------------------------------------------------------------------------------

def test_site_names_and_coordinates():
    assert cv.Site.parse("ALMA") == cv.Site() == cv.Site("ALMA", None, None, None)
    assert cv.Site.parse("") == cv.Site("ALMA")
    assert cv.Site.parse(" SMA ") == cv.Site("SMA")
    s = cv.Site.parse("-67.755deg, -23.029deg, 5050m")
    assert (s.name, s.lon_deg, s.lat_deg, s.height_m) == ("-67.755deg, -23.029deg, 5050m", -67.755, -23.029, 5050.0)
    assert cv.Site.parse("1,2,3") == cv.Site("1,2,3", 1.0, 2.0, 3.0)


def test_site_is_immutable_and_hashable():
    s = cv.Site.parse("ALMA")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.name = "VLA"
    assert len({s, cv.Site("ALMA")}) == 1


@pytest.mark.parametrize("text", ["360,90,-10000", "-360,-90,100000", "360.0deg,0deg,0m"])
def test_site_bounds_are_inclusive(text):
    assert cv.Site.parse(text).lon_deg is not None


@pytest.mark.parametrize("text", ["360.5,0,0", "-360.5,0,0", "0,90.5,0", "0,-90.5,0", "0,0,-10000.5", "0,0,100000.5"])
def test_site_beyond_bounds(text):
    with pytest.raises(FrameError, match=r"longitude must lie within ±360 deg, latitude within ±90 deg and height "
                                         r"within -10 km to 100 km"):
        cv.Site.parse(text)


@pytest.mark.parametrize("text", ["e,e,e", "1,2", "1,2,nan"])
def test_site_with_commas_must_be_coordinates(text):
    with pytest.raises(FrameError, match=r"is neither a name known to CASA nor 'lon_deg,lat_deg,height_m'"):
        cv.Site.parse(text)


def test_site_measures_equal_casas(me):
    assert cv.Site.parse("alma").measure(me) == me.observatory("ALMA")
    want = me.position("WGS84", "-67.755deg", "-23.029deg", "5050m")
    got = cv.Site.parse("-67.755,-23.029,5050").measure(me)
    assert got["refer"] == want["refer"]
    assert all(got[k]["value"] == pytest.approx(want[k]["value"], rel=1e-12) for k in ("m0", "m1", "m2"))


def test_unknown_observatory_lists_the_first_twelve_known(me):
    names = sorted(str(n) for n in me.obslist())
    with pytest.raises(FrameError) as err:
        cv.Site("Nowhere").measure(me)
    msg = str(err.value)
    assert msg.startswith("observatory 'Nowhere' is not known to CASA (known: ")
    assert f"(known: {', '.join(names[:12])}, …) — or give 'lon_deg,lat_deg,height_m'" in msg


# ---- frame factors against CASA measures ---------------------------------------------------------

@pytest.mark.parametrize("outframe", ["GEO", "BARY", "LSRK", "LSRD", "GALACTO", "LGROUP", "CMB"])
def test_factor_from_topo_to_every_frame_equals_casa(me, ct, outframe):
    qa = ct.quanta()
    times = [T0, T0 + 3 * 3600.0, T0 + 90 * 86400.0]
    d = me.direction(*DIR)
    got = cv.frame_factors("topo", outframe.lower(), times, d, cv.Site.parse("ALMA"))  # a measures tool of its own
    want = [casa_factor(me, qa, "TOPO", outframe, t) for t in times]
    assert got.shape == (3,)
    np.testing.assert_allclose(got, want, rtol=2e-15, atol=0)
    assert np.ptp(got) > 1e-7  # the times were really used: the observatory moves


def test_factor_back_to_topo_and_between_frames(me, ct):
    qa = ct.quanta()
    d = me.direction(*DIR)
    for a, b in [("LSRK", "TOPO"), ("BARY", "LSRK"), ("CMB", "LGROUP")]:
        got = cv.frame_factors(a, b, T0, d, cv.Site("ALMA"), me=me)
        assert got == pytest.approx([casa_factor(me, qa, a, b, T0)], rel=2e-15)


def test_factor_at_a_site_given_by_coordinates_or_a_position_measure(me, ct):
    qa = ct.quanta()
    pos = me.position("WGS84", "-107.6deg", "34.08deg", "2124m")  # near the VLA
    want = casa_factor(me, qa, "TOPO", "LSRK", T0, obs=pos)
    d = me.direction(*DIR)
    assert cv.frame_factors("TOPO", "LSRK", [T0], d, cv.Site.parse("-107.6,34.08,2124"))[0] == pytest.approx(want,
                                                                                                           rel=2e-15)
    assert cv.frame_factors("TOPO", "LSRK", [T0], d, pos, me=me)[0] == pytest.approx(want, rel=2e-15)
    alma = cv.frame_factors("TOPO", "LSRK", [T0], d, cv.Site("ALMA"), me=me)[0]
    assert abs(alma - want) > 1e-8  # another place on Earth moves differently


@pytest.mark.parametrize("inframe, outframe", [("TOPO", "REST"), ("REST", "LSRK")])
def test_rest_frame_uses_the_source_velocity(me, ct, inframe, outframe):
    qa = ct.quanta()
    d = me.direction(*DIR)
    got = cv.frame_factors(inframe, outframe, [T0], d, cv.Site(), me=me, sysvel=("lsrk", -25000))
    want = casa_factor(me, qa, inframe, outframe, T0, sysvel=("LSRK", -25000.0))
    assert got[0] == pytest.approx(want, rel=2e-15)
    # and the physics: the LSRK frequency Doppler-corrected (relativistically) by -25 km/s, an approaching source
    beta = -25000.0 / C
    to_rest = math.sqrt((1 + beta) / (1 - beta))
    want = casa_factor(me, qa, "TOPO", "LSRK", T0) * to_rest if inframe == "TOPO" else 1 / to_rest
    assert got[0] == pytest.approx(want, rel=1e-12)


def test_rest_needs_the_source_velocity(me):
    with pytest.raises(FrameError, match=r"converting to or from REST needs the source's radial velocity \(sysvel\)"):
        cv.frame_factors("TOPO", "REST", [T0], me.direction(*DIR), cv.Site(), me=me)
    with pytest.raises(FrameError, match="needs the source's radial velocity"):
        cv.frame_factors("REST", "BARY", [T0], me.direction(*DIR), cv.Site(), me=me)


def test_same_frame_is_one_without_asking_casa():
    # no direction, site or sysvel needed: nothing is converted
    assert cv.frame_factors("lsrk", "LSRK", [T0, T0 + 1, T0 + 2], None, None).tolist() == [1.0, 1.0, 1.0]
    assert cv.frame_factors("REST", "rest", T0, None, None).tolist() == [1.0]


@pytest.mark.parametrize("inframe, outframe, bad", [("TOPO", "LSR", "LSR"), ("FOO", "LSRK", "FOO"),
                                                    ("undefined", "TOPO", "UNDEFINED")])
def test_unknown_frames_are_named(inframe, outframe, bad):
    with pytest.raises(FrameError, match=rf"^unknown spectral frame '{bad}'; known: REST, LSRK, LSRD, BARY, GEO, "
                                         r"TOPO, GALACTO, LGROUP, CMB$"):
        cv.frame_factors(inframe, outframe, [T0], None, None)


def test_a_callers_measures_tool_is_left_open_with_the_frame_set(me, ct):
    qa = ct.quanta()
    d = me.direction(*DIR)
    fac = cv.frame_factors("TOPO", "LSRK", [T0], d, cv.Site(), me=me)
    # the tool still converts, in the frame frame_factors set (a closed tool would have forgotten it)
    res = me.measure(me.frequency("TOPO", qa.quantity(230e9, "Hz")), "LSRK")
    assert res["m0"]["value"] / 230e9 == pytest.approx(fac[0], rel=2e-15)


def test_convert_frequencies_is_an_outer_product():
    got = cv.convert_frequencies([[1.0, 2.0], [3.0, 4.0]], [1.0, 0.5, 2.0])
    assert got.shape == (3, 2, 2)
    assert got.tolist() == [[[1, 2], [3, 4]], [[0.5, 1], [1.5, 2]], [[2, 4], [6, 8]]]


# ---- Doppler conventions -------------------------------------------------------------------------

ASTROPY = {"RADIO": u.doppler_radio, "OPTICAL": u.doppler_optical, "Z": u.doppler_optical,
           "RELATIVISTIC": u.doppler_relativistic, "BETA": u.doppler_relativistic, "TRUE": u.doppler_relativistic}
F0 = 230.538e9


@given(v=st.floats(-0.9 * C, 0.9 * C), doppler=st.sampled_from(sorted(ASTROPY)))
def test_velocity_to_frequency_equals_astropy(v, doppler):
    want = (v * u.m / u.s).to_value(u.Hz, equivalencies=ASTROPY[doppler](F0 * u.Hz))
    assert cv.velocity_to_frequency(v, doppler.lower(), F0) == pytest.approx(want, rel=1e-12, abs=1e-3)
    assert cv.velocity_to_frequency(v / 1e3, doppler, F0, "km/s") == pytest.approx(want, rel=1e-12, abs=1e-3)
    assert cv.velocity_to_frequency(v / C, doppler, F0, "") == pytest.approx(want, rel=1e-12, abs=1e-3)


@given(f=st.floats(0.2 * F0, 1.8 * F0), doppler=st.sampled_from(sorted(ASTROPY)))
def test_frequency_to_velocity_equals_astropy(f, doppler):
    want = (f * u.Hz).to_value(u.m / u.s, equivalencies=ASTROPY[doppler](F0 * u.Hz))
    assert cv.frequency_to_velocity(f, doppler, F0) == pytest.approx(want, rel=1e-12, abs=1e-4)
    assert cv.frequency_to_velocity(f, doppler, F0, " KM/S") == pytest.approx(want / 1e3, rel=1e-12, abs=1e-7)
    assert cv.frequency_to_velocity(f, doppler, F0, "") == pytest.approx(want / C, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("doppler", ["RADIO", "OPTICAL", "Z", "RATIO", "BETA", "TRUE", "RELATIVISTIC", "GAMMA"])
def test_every_convention_equals_casa_both_ways(me, ct, doppler):
    qa = ct.quanta()
    rest = qa.quantity(F0, "Hz")
    values = [1.0, 1.25, 3.0] if doppler == "GAMMA" else [0.6, 0.9, 1.4] if doppler == "RATIO" else [-0.3, 0.0, 0.4]
    for x in values:  # dimensionless values, as CASA reads a Doppler quantity without a unit (scaled by c)
        want = me.tofrequency("LSRK", me.doppler(doppler, qa.quantity(x, "")), rest)["m0"]["value"]
        assert cv.velocity_to_frequency([x], doppler, F0, "")[0] == pytest.approx(want, rel=1e-13)
        assert cv.velocity_to_frequency([x * C], doppler, F0)[0] == pytest.approx(want, rel=1e-13)
        back = me.todoppler(doppler, me.frequency("LSRK", qa.quantity(want, "Hz")), rest)["m0"]["value"]
        assert cv.frequency_to_velocity([want], doppler, F0)[0] == pytest.approx(back, rel=1e-12, abs=1e-6)
        assert cv.frequency_to_velocity([want], doppler, F0, "")[0] == pytest.approx(back / C, rel=1e-12, abs=1e-14)


def test_hand_values_of_each_convention():
    # r = f/f0 = 0.8 read in each convention
    assert cv.frequency_to_velocity(0.8, "RADIO", 1.0, "") == pytest.approx(0.2, rel=1e-15)
    assert cv.frequency_to_velocity(0.8, "OPTICAL", 1.0, "") == pytest.approx(0.25, rel=1e-15)
    assert cv.frequency_to_velocity(0.8, "RATIO", 1.0, "") == pytest.approx(0.8, rel=1e-15)
    assert cv.frequency_to_velocity(0.8, "BETA", 1.0, "") == pytest.approx(0.36 / 1.64, rel=1e-15)
    assert cv.frequency_to_velocity(0.8, "GAMMA", 1.0, "") == pytest.approx(1.64 / 1.6, rel=1e-15)
    assert cv.velocity_to_frequency(0.25, "Z", 2.0, "") == pytest.approx(1.6, rel=1e-15)
    assert cv.velocity_to_frequency(0.8, "RATIO", 2.0, "") == pytest.approx(1.6, rel=1e-15)
    assert cv.velocity_to_frequency(1.64 / 1.6, "GAMMA", 2.0, "") == pytest.approx(1.6, rel=1e-14)


def test_gamma_is_at_least_one():
    # γ = 1 is at rest (r = 1); below 1 is no Lorentz factor
    assert cv.velocity_to_frequency([1.0], "gamma", F0, "").tolist() == [F0]
    assert cv.velocity_to_frequency([C], "GAMMA", F0).tolist() == [F0]
    with pytest.raises(FrameError, match=r"^a GAMMA Doppler value must be >= c \(it is c·γ\)$"):
        cv.velocity_to_frequency([1.5, 0.999], "GAMMA", F0, "")


@pytest.mark.parametrize("fn", [cv.velocity_to_frequency, cv.frequency_to_velocity])
def test_unknown_convention_is_named(fn):
    with pytest.raises(FrameError, match=r"^unknown Doppler convention 'LSR'; known: RADIO, OPTICAL, Z, RATIO, BETA, "
                                         r"TRUE, RELATIVISTIC, GAMMA$"):
        fn([1.0], "LSR", F0)


def test_unknown_velocity_unit_is_named():
    with pytest.raises(FrameError, match=r"^velocity unit 'GHz' not one of \['km/s', 'm/s'\] or '' \(dimensionless\)$"):
        cv.velocity_to_frequency([1.0], "RADIO", F0, "GHz")


@pytest.mark.parametrize("factor", [1.0, 1.0001, 0.9999, 0.5, 2.0])
def test_relative_speed_is_the_relativistic_velocity_of_the_factor(factor):
    want = (factor * F0 * u.Hz).to_value(u.m / u.s, equivalencies=u.doppler_relativistic(F0 * u.Hz))
    assert cv.relative_speed_m_s(factor) == pytest.approx(want, rel=1e-12, abs=1e-6)


@pytest.mark.parametrize("factor", [float("inf"), float("nan"), -float("inf")])
def test_relative_speed_of_no_factor_is_nan(factor):
    assert math.isnan(cv.relative_speed_m_s(factor))


def test_the_task_reads_a_longitude_in_hours_as_its_angle():
    # the bug this guards against: casacore's me.direction returns {} for '4.5h', and the conversion went on
    # silently without the source direction
    from almatools.casa_tasks import frameconv
    args = dict(mode="values", values=[230.0], epoch="2024/11/15/05:33:44", inframe="TOPO", outframe="LSRK")
    hours = frameconv(direction="J2000 4.5h 22deg", **args)
    degrees = frameconv(direction="J2000 67.5deg 22deg", **args)
    assert hours["values"] == degrees["values"]
