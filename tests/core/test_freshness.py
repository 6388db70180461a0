"""CASA's data freshness, checked with real casatools on casadata's real tables and on edited copies of them.

Independent references: astropy-iers-data's leap-second list and IERS Earth-orientation tables
(Bulletin C 72, July 2026), the IERS Bulletin C history, and the physics of the Earth's rotation.
"""

import datetime as dt
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import casadata
import numpy as np
import pytest
from astropy.time import Time
from astropy.utils import iers

from almatools import casaenv, freshness
from almatools.casaenv import casatools

pytestmark = pytest.mark.casa

iers.conf.auto_download = False  # offline: astropy's bundled tables only


def astropy_leap_seconds() -> list[tuple[float, int]]:
    """(MJD, TAI-UTC) of every leap second astropy-iers-data knows."""
    table = iers.LeapSeconds.from_iers_leap_seconds(iers.IERS_LEAP_SECOND_FILE)
    return [(float(row["mjd"]), int(row["tai_utc"])) for row in table]


def casa_tai_utc() -> list[tuple[float, float]]:
    tb = casatools().table()
    tb.open(os.path.join(casadata.datapath, "geodetic", "TAI_UTC"))
    rows = list(zip(tb.getcol("MJD").tolist(), tb.getcol("dUTC").tolist()))
    tb.done()
    return rows


# --------------------------------------------------------------------------- casadata's real tables

def test_real_tables_are_read_as_casacore_reads_them():
    tables = freshness.read_tables()
    assert Path(tables.geodetic) == Path(casadata.datapath) / "geodetic"
    tb = casatools().table()
    tb.open(os.path.join(tables.geodetic, "TAI_UTC"))
    made = dt.datetime.strptime(tb.getkeyword("VS_DATE"), "%Y/%m/%d/%H:%M").replace(tzinfo=dt.timezone.utc)
    tb.close()
    tb.open(os.path.join(tables.geodetic, "IERSpredict"))
    last_predicted = tb.getcol("MJD").max()
    tb.done()
    assert freshness.mjd_to_datetime(tables.tai_utc_made) == made
    assert tables.predicted_until == last_predicted


def test_leap_seconds_of_the_real_table_agree_with_astropy_up_to_its_coverage():
    """What CASA's table lists equals astropy's list, and no leap second astropy knows hides before known_until."""
    tables = freshness.read_tables()
    casa = {mjd: dutc for mjd, dutc in casa_tai_utc() if mjd >= 41317}  # the integer-second era (1972 on)
    ours = {mjd: tai for mjd, tai in astropy_leap_seconds() if mjd < tables.leap_known_until}
    assert casa == ours
    later = [mjd for mjd, _ in astropy_leap_seconds() if tables.last_leap_second < mjd < tables.leap_known_until]
    assert later == []


def test_measured_earth_orientation_agrees_with_iers_c04():
    """The table CASA calls measured is the IERS series astropy bundles (agreement well below 1 ms)."""
    tables = freshness.read_tables()
    tb = casatools().table()
    tb.open(os.path.join(tables.geodetic, "IERSeop97"))
    mjd, dut1 = tb.getcol("MJD"), tb.getcol("dUT1")
    tb.done()
    pick = (mjd > tables.measured_until - 400) & (mjd <= tables.measured_until - 30)
    reference = iers.IERS_B.open(iers.IERS_B_FILE).ut1_utc(Time(mjd[pick], format="mjd", scale="utc")).to_value("s")
    assert np.max(np.abs(dut1[pick] - reference)) < 1e-3  # EOP C04 05 vs 20 series: ~0.2 ms apart


# Bulletin C issue dates of the last three leap seconds (IERS Bulletin C 43, 49, 52)
BULLETINS = [("2012-07-01", "2012-01-05"), ("2015-07-01", "2015-01-05"), ("2017-01-01", "2016-07-06")]


@pytest.mark.parametrize("leap,announced", BULLETINS)
def test_a_table_knows_a_leap_second_only_after_it_was_announced(leap, announced):
    leap = dt.datetime.fromisoformat(leap).replace(tzinfo=dt.timezone.utc)
    announced = dt.datetime.fromisoformat(announced).replace(tzinfo=dt.timezone.utc)
    assert freshness.leap_seconds_known_until(announced - dt.timedelta(days=1)) <= leap
    assert freshness.leap_seconds_known_until(announced + dt.timedelta(days=10)) > leap
    # and never longer than the six months to the next possible instant
    assert freshness.leap_seconds_known_until(announced + dt.timedelta(days=10)) <= leap + dt.timedelta(days=185)


def test_the_real_tables_on_data_they_cover():
    tables = freshness.read_tables()
    report = freshness.check(epochs=["2024/11/15/00:00:00~2024/11/15/01:00:00"])
    v = report["observations"][0]
    assert report["affected"] is False and v["ut1"] == "measured" and v["leap_seconds"] == "covered"
    assert report["effects"] == {}
    made = freshness.mjd_to_datetime(tables.tai_utc_made)
    now = dt.datetime.now(dt.timezone.utc)
    assert report["casa_warns_out_of_date"] == ((now - made).total_seconds() > 180 * 86400)  # MeasTable::dUTC
    assert report["data_given"] is True and "no result is affected" in report["summary"]


# --------------------------------------------------------------------------- the effects, against physics

OMEGA = 7.2921150e-5  # Earth's rotation rate (rad/s), IERS conventions


def _alma_distance_from_axis(me) -> float:
    from astropy.coordinates import EarthLocation
    import astropy.units as u
    site = me.observatory("ALMA")
    loc = EarthLocation.from_geodetic(site["m0"]["value"] * u.rad, site["m1"]["value"] * u.rad,
                                      site["m2"]["value"] * u.m)
    return math.hypot(loc.x.to_value(u.m), loc.y.to_value(u.m))


def test_time_error_rates_against_the_earths_rotation_and_astropy():
    ct = casatools()
    me = ct.measures()
    try:
        site = me.observatory("ALMA")
        # rotation: the hour angle moves at the sidereal rate, 15.0411"/s of UT1
        rates = freshness.time_error_rates(me, 60629.1, (0.0, 0.0), site)
        assert rates["angle_arcsec"] == pytest.approx(math.degrees(OMEGA) * 3600 * 1.00000, rel=2e-5)
        # TOPO->GEO velocity changes at most by omega^2 * rho * cos(dec) per second (over hour angles)
        rho = _alma_distance_from_axis(me)
        for dec in (0.0, -0.6):
            samples = [freshness.time_error_rates(me, 60629.0 + k / 96.0, (1.0, dec), site)["geo_m_s"]
                       for k in range(96)]
            assert max(samples) == pytest.approx(OMEGA ** 2 * rho * math.cos(dec), rel=5e-3)
        # GEO->LSRK: the change of the Earth's barycentric velocity along the line of sight, by astropy's
        # ephemeris (the LSR offset is constant)
        from astropy.coordinates import SkyCoord, get_body_barycentric_posvel
        import astropy.units as u
        los = SkyCoord(1.0 * u.rad, -0.6 * u.rad, frame="fk5", equinox="J2000").icrs.cartesian.xyz.value
        for k in range(6):
            t = 60629.0 + k * 40.0
            ours = freshness.time_error_rates(me, t, (1.0, -0.6), site)["bary_m_s"]
            _, vel = get_body_barycentric_posvel("earth", Time([t, t + 1 / 86400.0], format="mjd", scale="utc"))
            projected = los @ vel.xyz.to_value(u.m / u.s)
            assert ours == pytest.approx(abs(projected[1] - projected[0]), rel=0.02, abs=2e-5)
    finally:
        me.done()


# --------------------------------------------------------------------------- edited copies, run by CASA itself

def _measures_copy(root: Path, *, tai_made=None, drop_leaps_from=None, extend_predicted_to=None) -> Path:
    """A copy of casadata's measures with TAI_UTC and IERSpredict edited, usable as CASA's measurespath."""
    root.mkdir()
    shutil.copytree(Path(casadata.datapath) / "geodetic", root / "geodetic")
    (root / "ephemerides").symlink_to(Path(casadata.datapath) / "ephemerides", target_is_directory=True)
    tb = casatools().table()
    try:
        tb.open(str(root / "geodetic" / "TAI_UTC"), nomodify=False)
        if drop_leaps_from is not None:
            tb.removerows([int(r) for r in np.flatnonzero(tb.getcol("MJD") >= drop_leaps_from)])
        if tai_made is not None:
            tb.putkeyword("VS_DATE", tai_made.strftime("%Y/%m/%d/%H:%M"))
        tb.close()
        if extend_predicted_to is not None:  # real Earth orientation from astropy's IERS-A, as an update would add
            tb.open(str(root / "geodetic" / "IERSpredict"), nomodify=False)
            first = int(tb.getcol("MJD").max()) + 1
            mjd = np.arange(first, extend_predicted_to + 1, dtype=float)
            a = iers.IERS_A.open(iers.IERS_A_FILE)
            t = Time(mjd, format="mjd", scale="utc")
            x, y = (v.to_value("arcsec") for v in a.pm_xy(t))
            columns = {"MJD": mjd, "x": x, "y": y, "dUT1": a.ut1_utc(t).to_value("s"),
                       "Dx": np.full(mjd.size, 0.01), "Dy": np.full(mjd.size, 0.01),
                       "DdUT1": np.full(mjd.size, 0.01)}
            start = tb.nrows()
            tb.addrows(mjd.size)
            for name in tb.colnames():
                tb.putcol(name, columns.get(name, np.zeros(mjd.size)), start, mjd.size)
            tb.putkeyword("VS_DATE", (tai_made or dt.datetime.now()).strftime("%Y/%m/%d/%H:%M"))
            tb.close()
    finally:
        tb.done()
    return root


def _run_with_measures(tmp_path: Path, measures: Path, code: str) -> tuple[dict, str]:
    """Run *code* in a Python whose CASA reads *measures*; return its JSON output and its CASA log."""
    config = tmp_path / f"site-{measures.name}.py"
    config.write_text(casaenv.site_config_text(logfile=str(tmp_path / f"casa-{measures.name}.log"),
                                               measurespath=measures))
    env = {**os.environ, "CASASITECONFIG": str(config)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1]), (tmp_path / f"casa-{measures.name}.log").read_text()


DIRECTION = "J2000 11h01m51.9s -34d42m17.0s"
CONVERT = """
import json, casatools
from almatools import freshness
me = casatools.measures()
def rv(epoch, frame):
    me.doframe(me.observatory("ALMA")); me.doframe(me.source(me.direction(*{direction!r}.split())))
    me.doframe(me.epoch("utc", epoch))
    return me.measure(me.radialvelocity("TOPO", "0m/s"), frame)["m0"]["value"]
epoch = {epoch!r}
report = freshness.check(epochs=[epoch], freqs_hz=[230e9], directions=[{direction!r}])
tai = me.measure(me.epoch("utc", epoch), "tai")["m0"]["value"]
utc = me.epoch("utc", epoch)["m0"]["value"]
print(json.dumps({{"report": report, "tai_utc_s": (tai - utc) * 86400, "lsrk": rv(epoch, "LSRK"),
                  "geo": rv(epoch, "GEO"), "measurespath": casatools.ctsys.measurespath()}}))
"""


def test_a_stale_table_is_caught_and_the_second_it_misses_is_real(tmp_path):
    """TAI_UTC as it was in March 2016: data of June 2017 lie after a leap second it cannot know."""
    made = dt.datetime(2016, 3, 1)
    stale = _measures_copy(tmp_path / "stale", tai_made=made, drop_leaps_from=57754)
    epoch = "2017/06/01/04:00:00"
    got, casa_log = _run_with_measures(tmp_path, stale, CONVERT.format(epoch=epoch, direction=DIRECTION))
    assert got["measurespath"] == str(stale)
    v = got["report"]["observations"][0]
    assert got["report"]["affected"] is True and v["leap_seconds"] == "possibly missing"
    # it knew Bulletin C 51 (January 2016: no leap second in June), not C 52 (July 2016: one in December)
    assert got["report"]["tables"]["TAI_UTC"]["known_until"] == "2017-01-01 00:00 UTC"
    # the risk is real: astropy's list has the 2016-12-31 leap second, and CASA with this table misses it
    truth = Time("2017-06-01T04:00:00", scale="utc")
    assert (truth.tai.mjd - truth.utc.mjd) * 86400 == pytest.approx(37.0, abs=1e-6)
    assert got["tai_utc_s"] == pytest.approx(36.0, abs=1e-6)
    # the effect the check computed equals what the missing second does to CASA's own conversion
    me = casatools().measures()
    try:
        me.doframe(me.observatory("ALMA"))
        me.doframe(me.source(me.direction(*DIRECTION.split())))
        me.doframe(me.epoch("utc", epoch))
        right = me.measure(me.radialvelocity("TOPO", "0m/s"), "LSRK")["m0"]["value"]
    finally:
        me.done()
    effect = v["leap_second_effect"]
    assert abs(got["lsrk"] - right) == pytest.approx(effect["velocity_m_s"], rel=0.01)
    assert effect["frequency_hz"] == pytest.approx(230e9 * effect["velocity_m_s"] / 299792458.0, rel=1e-12)
    assert "Leap second table TAI_UTC seems out-of-date" in casa_log  # CASA's own line stays


def test_a_fresh_table_gives_the_all_clear_and_the_ut1_error_it_removes_is_within_the_bound(tmp_path):
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    fresh = _measures_copy(tmp_path / "fresh", tai_made=now - dt.timedelta(days=10),
                           extend_predicted_to=int(Time(now).mjd) + 60)
    epoch = "2026/08/01/04:00:00"
    got, casa_log = _run_with_measures(tmp_path, fresh, CONVERT.format(epoch=epoch, direction=DIRECTION))
    v = got["report"]["observations"][0]
    assert got["report"]["affected"] is False
    assert v["leap_seconds"] == "covered" and v["ut1"] == "predicted"
    assert "seems out-of-date" not in casa_log and got["report"]["casa_warns_out_of_date"] is False
    # with casadata's own tables the same epoch is beyond the Earth-orientation tables (CASA uses UT1 = UTC)
    stale = freshness.check(epochs=[epoch], freqs_hz=[230e9], directions=[DIRECTION])
    s = stale["observations"][0]
    assert stale["affected"] is True and s["ut1"] == "none"
    me = casatools().measures()
    try:
        me.doframe(me.observatory("ALMA"))
        me.doframe(me.source(me.direction(*DIRECTION.split())))
        me.doframe(me.epoch("utc", epoch))
        geo_stale = me.measure(me.radialvelocity("TOPO", "0m/s"), "GEO")["m0"]["value"]
    finally:
        me.done()
    dut1 = abs(iers.IERS_A.open(iers.IERS_A_FILE).ut1_utc(Time("2026-08-01T04:00:00")).to_value("s"))
    actual = abs(got["geo"] - geo_stale)  # what the UT1 error of the old tables does, by CASA itself
    assert actual == pytest.approx(s["rates_per_second"]["geo_m_s"] * dut1, rel=0.02)
    assert actual < s["ut1_effect"]["velocity_m_s"]  # and the bound the check states holds


def test_casa_setup_measurespath_points_casa_at_a_user_copy(tmp_path):
    copy = _measures_copy(tmp_path / "mine")
    site = tmp_path / "site" / "casasiteconfig.py"
    site.parent.mkdir()
    missing = subprocess.run([sys.executable, "-m", "almatools", "casa-setup", "--path", str(site),
                              "--measurespath", str(tmp_path / "nothing")], capture_output=True, text=True)
    assert missing.returncode == 1
    assert (f"geodetic/TAI_UTC is missing); fetch them first (online): {sys.executable} -m casaconfig "
            f"--measurespath {tmp_path / 'nothing'} --measures-update") in missing.stderr
    out = subprocess.run([sys.executable, "-m", "almatools", "casa-setup", "--path", str(site),
                          "--measurespath", str(copy)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    code = ("import casatools, json; from almatools import freshness; "
            "print(json.dumps([casatools.ctsys.measurespath(), freshness.read_tables().geodetic]))")
    env = {**os.environ, "CASASITECONFIG": str(site), "ALMATOOLS_LOGDIR": str(tmp_path / "logs")}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1]) == [str(copy), str(copy / "geodetic")]
    assert "SEVERE" not in run.stdout + run.stderr and "casarundata" not in run.stdout + run.stderr
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("casa-*.log"))
    assert "SEVERE" not in logs


# --------------------------------------------------------------------------- the faces

@pytest.fixture(scope="module")
def ms_2024(tmp_path_factory):
    from almatools.testing import simulate_ms
    return simulate_ms(tmp_path_factory.mktemp("fresh") / "a.ms", [("SPW0", 230e9, 1e6, 4)], duration_s=300,
                       noise_k=1.0)


def test_casa_setup_check_on_the_command_line(ms_2024, tmp_path, capsys):
    from almatools.cli import main

    def run(*args):
        status = main(["casa-setup", "--check", *args])
        return status, capsys.readouterr()
    status, out = run("--vis", ms_2024)
    assert status == 0, out.err
    assert f"{ms_2024}: 2024-11-15" in out.out and "can results be affected: no" in out.out
    status, out = run("--epoch", "2026/08/01/04:00:00", "--freq", "230", "--json", str(tmp_path / "check.json"))
    assert status == 3, out.err
    report = json.loads((tmp_path / "check.json").read_text())
    assert report["affected"] is True
    assert f"{sys.executable} -m casaconfig --measurespath " in out.out and "--measures-update" in out.out
    effect = report["observations"][0]["leap_second_effect"]
    assert f"{freshness._fmt_hz(effect['frequency_hz'])} at 230 GHz" in out.out
    status, out = run("--epoch", "2024/13/45")
    assert status == 2 and "'2024/13/45' is not a time" in out.err


def test_task_results_carry_one_casa_data_entry(ms_2024):
    from almatools.casa_tasks import frameconv, wtcheck
    old = frameconv(mode="values", values=[230.538], unit="GHz", inframe="LSRK", outframe="TOPO",
                    epoch="2024/11/15/12:00:00", direction=DIRECTION)["casa_data"]
    assert old["affected"] is False and old["effects"] == {}
    late = frameconv(mode="values", values=[230.538], unit="GHz", inframe="LSRK", outframe="TOPO",
                     epoch="2026/08/01/04:00:00", direction=DIRECTION)["casa_data"]
    assert late["affected"] is True and late["update"][0].endswith("--measures-update")
    direct = freshness.check(epochs=["2026/08/01/04:00:00"], freqs_hz=[230.538e9], directions=[DIRECTION])
    assert late["effects"]["leap_second_effect"]["frequency_hz"] == \
        pytest.approx(direct["effects"]["leap_second_effect"]["frequency_hz"], rel=1e-9)
    assert wtcheck(vis=[ms_2024])["casa_data"]["affected"] is False


def test_explained_once_in_plain_words(casa_log_file, ms_2024):
    freshness._explained.clear()
    before = casa_log_file.stat().st_size
    first = freshness.result_entry(vis=[ms_2024])
    freshness.result_entry(vis=[ms_2024])
    with open(casa_log_file, encoding="utf-8") as fh:
        fh.seek(before)
        new = fh.read()
    assert new.count("CASA's leap-second table (TAI_UTC) was made on") == 1
    warns = first["tables"]["casa_warns_out_of_date"]
    assert ("it does not mean that results are wrong" in new) == warns
    line = next(x for x in new.splitlines() if "CASA's leap-second table (TAI_UTC) was made on" in x)
    assert line.split("\t")[1] == ("WARN" if warns else "INFO")


# --------------------------------------------------------------------------- where CASA's log goes

ROUTING = """
import os, sys
sys.modules['casasiteconfig'] = None   # no site config in site-packages: casaconfig's defaults
from almatools.casa_tasks import calversion
calversion(path={mous!r})
from almatools import log
print(log.logfile())
"""


def test_plain_python_leaves_no_casa_log_in_the_working_directory(tmp_path):
    from almatools import example
    mous = example.build_member_ous(tmp_path / "data", kind="manual", images=False)
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CASASITECONFIG", "ALMATOOLS_LOGDIR")}
    env |= {"HOME": str(tmp_path / "home"), "XDG_STATE_HOME": str(tmp_path / "state")}
    out = subprocess.run([sys.executable, "-c", ROUTING.format(mous=str(mous))], capture_output=True, text=True,
                         cwd=work, env=env)
    assert out.returncode == 0, out.stderr
    logfile = Path(out.stdout.splitlines()[-1])
    assert logfile.parent == tmp_path / "state" / "almatools" / "logs"
    assert logfile.name.startswith("casa-") and "Begin Task: calversion" in logfile.read_text()
    assert list(work.iterdir()) == []
