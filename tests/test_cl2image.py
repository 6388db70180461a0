"""cl2image against the toolkit sequence it replaces, flux conservation, spectral index, pixel
positions for both RA increment signs, FITS export, tables, templates and refusals."""

import math

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from astropy.table import Table
from astropy.wcs import WCS

from almatools.casa_tasks import cl2image
from almatools.casaenv import casatools
from almatools.errors import ResourceLimitError, TaskParameterError
from almatools.plugins.models import TWO_GAUSSIANS

pytestmark = pytest.mark.casa

CENTRE = "J2000 10h00m00.0s -30d00m00.0s"


def pixels(image):
    ia = casatools().image()
    try:
        ia.open(str(image))
        return ia.getchunk(), ia.brightnessunit()
    finally:
        ia.done()


def toolkit_two_gaussians(path):
    """The toolkit sequence cl2image replaces (CASA's simulation recipe, with two Gaussians)."""
    ct = casatools()
    cl, ia, qa = ct.componentlist(), ct.image(), ct.quanta()
    try:
        cl.addcomponent(dir="J2000 10h00m00.0s -30d00m00.0s", flux=1.0, fluxunit="Jy", freq="230GHz",
                        shape="Gaussian", majoraxis="0.5arcsec", minoraxis="0.3arcsec", positionangle="45deg")
        cl.addcomponent(dir="J2000 10h00m00.2s -30d00m01.5s", flux=0.5, fluxunit="Jy", freq="230GHz",
                        shape="Gaussian", majoraxis="0.8arcsec", minoraxis="0.8arcsec", positionangle="0deg")
        ia.fromshape(str(path), [256, 256, 1, 1], overwrite=True)
        cs = ia.coordsys()
        cs.setunits(["rad", "rad", "", "Hz"])
        cell_rad = qa.convert(qa.quantity("0.1arcsec"), "rad")["value"]
        cs.setincrement([-cell_rad, cell_rad], "direction")
        cs.setreferencevalue([qa.convert("10h", "rad")["value"], qa.convert("-30deg", "rad")["value"]],
                             type="direction")
        cs.setreferencevalue("230GHz", "spectral")
        cs.setincrement("1GHz", "spectral")
        ia.setcoordsys(cs.torecord())
        ia.setbrightnessunit("Jy/pixel")
        ia.modify(cl.torecord(), subtract=False)
        cs.done()
        return ia.getchunk()
    finally:
        ia.done()
        cl.done()


def test_two_gaussians_equal_the_toolkit_sequence_pixel_by_pixel(tmp_path):
    expected = toolkit_two_gaussians(tmp_path / "toolkit.im")
    r = cl2image(imagename=str(tmp_path / "model.im"), **TWO_GAUSSIANS)
    got, unit = pixels(tmp_path / "model.im")
    assert r["method"] == "footprint"
    assert unit == "Jy/pixel" and got.shape == expected.shape == (256, 256, 1, 1)
    assert np.abs(got - expected).max() <= 1e-6 * expected.max()
    assert r["flux"][0]["image_jy"] == pytest.approx(1.5, rel=1e-4)
    assert r["flux"][0]["image_jy"] == pytest.approx(float(got.sum(dtype=np.float64)), rel=1e-12)
    assert (tmp_path / "model.cl").is_dir() and (tmp_path / "model.fits").is_file()
    toolkit = cl2image(imagename=str(tmp_path / "tk.im"), method="toolkit", **TWO_GAUSSIANS)
    assert toolkit["method"] == "toolkit" and np.array_equal(pixels(tmp_path / "tk.im")[0], expected)


def test_total_flux_conserved_for_points_gaussians_and_disks(tmp_path):
    r = cl2image(imagename=str(tmp_path / "m.im"), imsize=[200], cell=["0.05arcsec"], phasecenter=CENTRE,
                 direction=[CENTRE, "J2000 10h00m00.1s -30d00m01.0s", "J2000 09h59m59.9s -29d59m59.0s"],
                 flux=[1.0, 0.5, 0.2], freq=["230GHz"], shape=["point", "gaussian", "disk"],
                 majoraxis=["", "0.5arcsec", "0.4arcsec"], minoraxis=["", "0.3arcsec", "0.4arcsec"],
                 positionangle=["", "30deg", "0deg"])
    got, _ = pixels(tmp_path / "m.im")
    assert float(got.sum(dtype=np.float64)) == pytest.approx(1.7, rel=1e-4)
    assert r["flux"][0]["components_jy"] == pytest.approx(1.7, rel=1e-12)
    assert r["warnings"] == []


def test_convolved_model_is_in_jy_per_beam_and_keeps_the_flux(tmp_path):
    r = cl2image(imagename=str(tmp_path / "m.im"), direction=[CENTRE], flux=[2.0], freq=["100GHz"],
                 imsize=[128], cell=["0.1arcsec"], beam=["1.0arcsec", "0.7arcsec", "20deg"])
    got, unit = pixels(tmp_path / "m.im")
    assert unit == "Jy/beam" and r["unit"] == "Jy/beam"
    beam_pixels = math.pi * 10 * 7 / (4 * math.log(2))
    assert float(got.sum(dtype=np.float64)) / beam_pixels == pytest.approx(2.0, rel=1e-4)
    assert got.max() == pytest.approx(2.0, rel=1e-3)  # a point convolved: its peak in Jy/beam is its flux


def test_spectral_index_plane_by_plane(tmp_path):
    r = cl2image(imagename=str(tmp_path / "m.im"), direction=[CENTRE, "J2000 10h00m00.1s -30d00m00.5s"],
                 flux=[1.0, 0.5], freq=["230GHz"], shape=["point", "gaussian"], majoraxis=["", "0.5arcsec"],
                 spectralindex=[-0.7, 2.0], imsize=[128], cell=["0.1arcsec"], phasecenter=CENTRE,
                 nchan=5, start="220GHz", width="5GHz")
    got, _ = pixels(tmp_path / "m.im")
    for k in range(5):
        nu = 220e9 + 5e9 * k
        expected = 1.0 * (nu / 230e9) ** -0.7 + 0.5 * (nu / 230e9) ** 2.0
        assert float(got[:, :, 0, k].sum(dtype=np.float64)) == pytest.approx(expected, rel=1e-4)
        assert r["flux"][k]["components_jy"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("cell", [["-0.1arcsec", "0.1arcsec"], ["0.1arcsec", "0.1arcsec"]])
def test_point_lands_on_the_right_pixel_for_both_ra_signs(tmp_path, cell):
    source = "J2000 10h00m00.1s -29d59m59.0s"  # 1.30 arcsec east, 1 arcsec north of the centre
    cl2image(imagename=str(tmp_path / "p.im"), direction=[source], flux=[1.0], freq=["230GHz"], imsize=[64],
             cell=cell, phasecenter=CENTRE)
    got, _ = pixels(tmp_path / "p.im")
    x, y = np.unravel_index(np.argmax(got[:, :, 0, 0]), got.shape[:2])
    header = fits.getheader(tmp_path / "p.fits")
    ex, ey = WCS(header).celestial.world_to_pixel_values(150.0 + 1.5 / 3600, -30.0 + 1.0 / 3600)
    assert (x, y) == (round(float(ex)), round(float(ey)))
    east_is_left = cell[0].startswith("-")
    assert (x < 32) == east_is_left and y == 32 + 10  # 1 arcsec north = 10 pixels up


def test_fits_export_matches_the_casa_image(tmp_path):
    cl2image(imagename=str(tmp_path / "m.im"), stokes="IQUV", nchan=3, **{**TWO_GAUSSIANS,
             "flux": [[1.0, 0.1, -0.05, 0.0], [0.5, 0.0, 0.0, 0.02]]})
    got, _ = pixels(tmp_path / "m.im")
    with fits.open(tmp_path / "m.fits") as hdul:
        data, header = hdul[0].data, hdul[0].header
    assert header["BUNIT"] == "Jy/pixel" and header["CTYPE3"] == "FREQ" and header["CTYPE4"] == "STOKES"
    assert header["SPECSYS"] == "LSRK" and header["RESTFRQ"] == pytest.approx(230e9)
    assert np.array_equal(data.T, np.transpose(got, (0, 1, 3, 2)))  # FITS puts Stokes last
    assert float(got[:, :, 1, 0].sum(dtype=np.float64)) == pytest.approx(0.1, rel=1e-4)
    assert float(got[:, :, 3, 0].sum(dtype=np.float64)) == pytest.approx(0.02, rel=1e-4)


def test_table_and_componentlist_inputs_give_the_same_image(tmp_path):
    grid = dict(imsize=[96], cell=["0.1arcsec"], phasecenter=CENTRE)
    lists = dict(direction=[CENTRE, "J2000 10h00m00.1s -30d00m01.0s"], flux=[1.0, 0.5], freq=["230GHz"],
                 shape=["point", "gaussian"], majoraxis=["", "0.5arcsec"], minoraxis=["", "0.3arcsec"],
                 positionangle=["", "30deg"], spectralindex=[0.0, -1.0])
    cl2image(imagename=str(tmp_path / "a.im"), **lists, **grid)
    table = Table({"direction": lists["direction"], "flux": [1.0, 0.5], "freq": ["230GHz", "230GHz"],
                   "shape": ["point", "gaussian"], "majoraxis": [0.0, 0.5], "minoraxis": [0.0, 0.3],
                   "positionangle": [0.0, 30.0], "spectralindex": [0.0, -1.0]})
    table["majoraxis"].unit = table["minoraxis"].unit = "arcsec"
    table["positionangle"].unit = "deg"
    table.write(tmp_path / "c.ecsv")
    table.write(tmp_path / "c.csv", format="ascii.csv")
    cl2image(imagename=str(tmp_path / "b.im"), complist=str(tmp_path / "c.ecsv"), **grid)
    cl2image(imagename=str(tmp_path / "c.im"), complist=str(tmp_path / "c.csv"), **grid)
    cl2image(imagename=str(tmp_path / "d.im"), complist=str(tmp_path / "a.cl"), **grid)
    a = pixels(tmp_path / "a.im")[0]
    for other in "bcd":
        np.testing.assert_allclose(pixels(tmp_path / f"{other}.im")[0], a, rtol=1e-6, atol=1e-9)


def test_template_image_grid_is_copied(tmp_path):
    cl2image(imagename=str(tmp_path / "t.im"), nchan=4, **TWO_GAUSSIANS)
    r = cl2image(imagename=str(tmp_path / "m.im"), template=str(tmp_path / "t.im"),
                 direction=["J2000 10h00m00.05s -30d00m00.5s"], flux=[0.3], freq=["231GHz"])
    ia = casatools().image()
    try:
        ia.open(str(tmp_path / "t.im"))
        t_cs = ia.coordsys().torecord()
        ia.close()
        ia.open(str(tmp_path / "m.im"))
        m_cs, shape = ia.coordsys().torecord(), list(ia.shape())
    finally:
        ia.done()
    assert shape == [256, 256, 1, 4] and r["shape"] == shape
    assert m_cs["direction0"]["crval"].tolist() == t_cs["direction0"]["crval"].tolist()
    assert m_cs["spectral2"]["wcs"] == t_cs["spectral2"]["wcs"]
    assert [f["freq_hz"] for f in r["flux"]] == pytest.approx([230e9, 231e9, 232e9, 233e9])


def test_ms_field_template_uses_its_phase_centre_and_lsrk_channels(tmp_path):
    from almatools.testing import simulate_ms
    vis = simulate_ms(tmp_path / "t.ms", [("SPW0", 230.0e9, 10e6, 8)], field="TW_Hya")
    r = cl2image(imagename=str(tmp_path / "m.im"), template=vis, field="TW_Hya", spw="0", imsize=[64],
                 cell=["0.1arcsec"], direction=["J2000 11h01m51.9s -34d42m17.0s"], flux=[1.0], freq=["230GHz"])
    ct = casatools()
    ms = ct.ms()
    try:
        ms.open(vis)
        lsrk = ms.cvelfreqs(spwids=[0], outframe="LSRK")
    finally:
        ms.done()
    assert [f["freq_hz"] for f in r["flux"]] == pytest.approx(list(lsrk), abs=1.0)
    assert r["phasecenter"]["ra_deg"] == pytest.approx(165.46625, abs=1e-6)
    assert r["phasecenter"]["dec_deg"] == pytest.approx(-34.704722, abs=1e-6)
    got, _ = pixels(tmp_path / "m.im")
    assert np.unravel_index(np.argmax(got[:, :, 0, 0]), (64, 64)) == (32, 32)


def test_warnings_for_components_outside_or_smaller_than_a_pixel(tmp_path):
    r = cl2image(imagename=str(tmp_path / "m.im"), imsize=[32], cell=["0.1arcsec"], phasecenter=CENTRE,
                 direction=[CENTRE, "J2000 10h00m01.0s -30d00m00.0s"], flux=[1.0, 1.0], freq=["230GHz"],
                 shape=["gaussian", "point"], majoraxis=["0.05arcsec", ""])
    assert any("component 1" in w and "outside the image" in w for w in r["warnings"])
    assert any("component 0" in w and "smaller than a pixel" in w for w in r["warnings"])
    assert r["flux"][0]["image_jy"] == pytest.approx(1.0, rel=1e-4)  # only the inside one


def test_refusals(tmp_path):
    base = dict(imagename=str(tmp_path / "m.im"), direction=[CENTRE], flux=[1.0], freq=["230GHz"], imsize=[32],
                cell=["0.1arcsec"])
    with pytest.raises(TaskParameterError, match="minor axis is larger than the major axis"):
        cl2image(**{**base, "shape": ["gaussian"], "majoraxis": ["0.3arcsec"], "minoraxis": ["0.5arcsec"]})
    with pytest.raises(TaskParameterError, match="sizes must be > 0"):
        cl2image(**{**base, "shape": ["disk"], "majoraxis": ["-0.3arcsec"]})
    with pytest.raises(TaskParameterError, match="'fluxunit'"):
        cl2image(**{**base, "fluxunit": "K"})
    with pytest.raises(TaskParameterError, match="'majoraxis'.*quantity in rad"):
        cl2image(**{**base, "shape": ["gaussian"], "majoraxis": ["0.3GHz"]})
    with pytest.raises(TaskParameterError, match="'flux' has 2 entries for 3 directions"):
        cl2image(**{**base, "direction": [CENTRE] * 3, "flux": [1.0, 2.0]})
    with pytest.raises(TaskParameterError, match="must be point, gaussian or disk"):
        cl2image(**{**base, "shape": ["ring"]})
    cl2image(**base)
    with pytest.raises(TaskParameterError, match="exists; set overwrite=True"):
        cl2image(**base)
    assert cl2image(**base, overwrite=True)["ncomponents"] == 1


# --- footprint against the toolkit -----------------------------------------------------------------

NX, NY = 48, 40
CELL = 0.1  # arcsec


def offset_direction(east_arcsec: float, north_arcsec: float) -> str:
    """The direction east and north of CENTRE by the given offsets (SIN projection, as the image's)."""
    from astropy.coordinates import SkyCoord
    import astropy.units as u
    c = SkyCoord(150.0 * u.deg, -30.0 * u.deg).spherical_offsets_by(east_arcsec * u.arcsec, north_arcsec * u.arcsec)
    return f"J2000 {float(c.ra.deg)!r}deg {float(c.dec.deg)!r}deg"


component = st.fixed_dictionaries({
    "shape": st.sampled_from(["point", "gaussian", "disk"]),
    # whole, half and arbitrary pixel offsets: pixel centres, pixel edges, anywhere
    "east": st.one_of(st.integers(-30, 30).map(lambda k: k * CELL / 2), st.floats(-3.0, 3.0)),
    "north": st.one_of(st.integers(-30, 30).map(lambda k: k * CELL / 2), st.floats(-3.0, 3.0)),
    "major": st.one_of(st.sampled_from([0.1, 0.2, 0.4, 1.0]), st.floats(0.03, 1.5)),
    "ratio": st.floats(0.3, 1.0),
    "pa": st.floats(-200.0, 400.0),
    "flux": st.floats(-1.0, 2.0),
    "index": st.floats(-3.0, 3.0),
})


@settings(max_examples=12, deadline=None)  # a property of the renderer, two CASA images per example
@given(comps=st.lists(component, min_size=1, max_size=6), nchan=st.integers(1, 3),
       stokes=st.sampled_from(["I", "IQUV"]), ra_left=st.booleans(),
       polarisation=st.tuples(st.floats(-0.5, 0.5), st.floats(-0.5, 0.5), st.floats(-0.2, 0.2)))
def test_footprint_equals_the_toolkit_on_generated_models(tmp_path_factory, comps, nchan, stokes, ra_left,
                                                          polarisation):
    """Stokes I equals CASA's ia.modify to 1e-6 of the peak.  Q, U and V are checked against the I plane
    (one polarisation fraction for all components): CASA 6.7 itself gives Q and U that change from run
    to run for several polarised Gaussians with spectral indices, so it cannot be the reference there."""
    tmp = tmp_path_factory.mktemp("model")
    fractions = (1.0,) + polarisation
    args = dict(direction=[offset_direction(c["east"], c["north"]) for c in comps],
                flux=[[c["flux"] * f for f in fractions] for c in comps], freq=["230GHz"],
                shape=[c["shape"] for c in comps], majoraxis=[f"{c['major']}arcsec" for c in comps],
                minoraxis=[f"{c['major'] * c['ratio']}arcsec" for c in comps],
                positionangle=[f"{c['pa']}deg" for c in comps], spectralindex=[c["index"] for c in comps],
                imsize=[NX, NY], cell=[f"{'-' if ra_left else ''}{CELL}arcsec", f"{CELL}arcsec"],
                phasecenter=CENTRE, nchan=nchan, start="225GHz", width="5GHz", stokes=stokes, exportfits=False)
    fast = cl2image(imagename=str(tmp / "fast.im"), **args)
    slow = cl2image(imagename=str(tmp / "slow.im"), method="toolkit", **args)
    assert fast["method"] == "footprint" and slow["method"] == "toolkit"
    a, b = pixels(tmp / "fast.im")[0].astype(float), pixels(tmp / "slow.im")[0].astype(float)
    peak = max(np.abs(b[:, :, 0]).max(), 1e-30)
    assert np.abs(a[:, :, 0] - b[:, :, 0]).max() <= 1e-6 * peak
    for s in range(1, a.shape[2]):
        assert np.abs(a[:, :, s] - fractions[s] * a[:, :, 0]).max() <= 1e-6 * peak
    for f, g in zip(fast["flux"], slow["flux"]):
        assert f["image_jy"] == pytest.approx(g["image_jy"], rel=1e-6, abs=1e-6 * peak)
    assert sorted(fast["warnings"]) == sorted(slow["warnings"])


def test_renormalised_components_follow_the_spectral_index_in_every_channel(tmp_path):
    """Disks and sub-pixel Gaussians are rescaled to their exact flux channel by channel, every Stokes
    parameter with the component's own spectrum (one channel's flux used for all would be caught)."""
    freqs = 220e9 + 10e9 * np.arange(5)
    comps = dict(direction=[CENTRE, offset_direction(1.3, -0.7), offset_direction(-1.0, 1.1)],
                 flux=[[1.0, 0.2, -0.1, 0.05], [0.5, 0.0, 0.0, 0.0], [0.3, 0.03, 0.0, -0.02]], freq=["230GHz"],
                 shape=["disk", "gaussian", "disk"], majoraxis=["0.8arcsec", "0.05arcsec", "0.33arcsec"],
                 minoraxis=["0.8arcsec", "0.04arcsec", "0.21arcsec"], positionangle=["0deg", "30deg", "-20deg"],
                 spectralindex=[2.0, -0.7, 3.5], imsize=[64], cell=["0.1arcsec"], phasecenter=CENTRE,
                 nchan=5, start="220GHz", width="10GHz", stokes="IQUV")
    flux = np.array(comps["flux"])
    expected = (freqs[:, None, None] / 230e9) ** np.array(comps["spectralindex"])[None, :, None] * flux[None]
    for method in ("footprint", "toolkit"):
        r = cl2image(imagename=str(tmp_path / f"{method}.im"), method=method, **comps)
        got = pixels(tmp_path / f"{method}.im")[0].astype(float)  # [x, y, stokes, channel]
        np.testing.assert_allclose(got.sum(axis=(0, 1)).T, expected.sum(axis=1), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose([f["image_jy"] for f in r["flux"]], expected[:, :, 0].sum(axis=1), rtol=1e-6)
        for k in range(1, 5):  # each channel is the first channel's pattern, scaled per component
            assert not np.allclose(got[:, :, 0, k], got[:, :, 0, 0])
        disk = got[:, :, 0, :][27:38, 27:38]  # the central disk alone: its shape scales by its own spectrum
        np.testing.assert_allclose(disk[:, :, 3] / disk[:, :, 0].max(), disk[:, :, 0] / disk[:, :, 0].max()
                                   * (freqs[3] / freqs[0]) ** 2.0, atol=1e-6)


# --- empty lists, bounds, hostile values, interruptions --------------------------------------------

def test_an_empty_component_list_makes_an_empty_model_on_an_explicit_grid(tmp_path):
    grid = dict(imsize=[32], cell=["0.1arcsec"], phasecenter=CENTRE, start="230GHz", nchan=2)
    r = cl2image(imagename=str(tmp_path / "empty.im"), **grid)
    got, unit = pixels(tmp_path / "empty.im")
    assert got.shape == (32, 32, 1, 2) and not got.any() and unit == "Jy/pixel"
    assert r["ncomponents"] == 0 and r["warnings"] == ["no components: the model is empty"]
    assert [f["image_jy"] for f in r["flux"]] == [0.0, 0.0]
    Table({"direction": [], "flux": [], "freq": []}, dtype=[str, float, str]).write(tmp_path / "none.csv",
                                                                                   format="ascii.csv")
    assert cl2image(imagename=str(tmp_path / "t.im"), complist=str(tmp_path / "none.csv"), **grid)["ncomponents"] == 0
    with pytest.raises(TaskParameterError, match=r"'phasecenter'.*no components to derive the grid from: give "
                                                 r"phasecenter, imsize, cell, start"):
        cl2image(imagename=str(tmp_path / "nothing.im"))
    assert not (tmp_path / "nothing.im").exists()


def test_a_model_too_large_for_the_disk_is_refused_before_anything_is_written(tmp_path):
    target = tmp_path / "new" / "huge.im"
    with pytest.raises(ResourceLimitError, match=r"cl2image: parameter 'imsize' needs 7\.3 TiB of disk space in "
                                                 r".*; the bound is [\d.]+ [GMT]iB \(free space there minus a"):
        cl2image(imagename=str(target), direction=[CENTRE], flux=[1.0], freq=["230GHz"], imsize=[1000000],
                 cell=["0.001arcsec"])
    assert list(tmp_path.iterdir()) == []  # not even the output directory


def test_work_bounds_are_checked_before_work(tmp_path):
    base = dict(imagename=str(tmp_path / "m.im"), freq=["230GHz"], imsize=[4000], cell=["0.01arcsec"],
                phasecenter=CENTRE, exportfits=False)
    with pytest.raises(ResourceLimitError, match=r"cl2image: component 0 \(disk, 60 arcsec\) sampled exactly needs "
                                                 r"36,\d+,\d+ pixels; the bound is 16,777,216 pixels; use larger cells"):
        cl2image(direction=[CENTRE], flux=[1.0], shape=["disk"], majoraxis=["60arcsec"], **base)
    with pytest.raises(ResourceLimitError, match=r"cl2image: parameter 'imsize' needs 2,080,000,000 pixel evaluations; "
                                                 r"the bound is 2,000,000,000 pixel evaluations"):
        cl2image(direction=[CENTRE] * 130, flux=[1.0], shape=["gaussian"], majoraxis=["1arcsec"], method="toolkit",
                 **base)
    with pytest.raises(TaskParameterError, match=r"'cell'.*the image would span 153 x 153 deg: more than the SIN "
                                                 r"projection holds"):
        cl2image(imagename=str(tmp_path / "m.im"), direction=[CENTRE], flux=[1.0], freq=["230GHz"], imsize=[100],
                 cell=["1.5deg"], phasecenter=CENTRE)
    assert not any(tmp_path.iterdir())


FAULT_RUN = """
import os, signal, sys
from almatools.casa_tasks import cl2image
from almatools.plugins.models import render
real = render._RawTiles.write
def write_then_wait(self, origin, values):
    real(self, origin, values)
    os.write(1, b"WRITING\\n")  # one write: the two writer threads may both get here, print() would interleave
    signal.pause()  # killed here, half-way through
render._RawTiles.write = write_then_wait
cl2image(imagename=sys.argv[1], direction=["J2000 10h00m00.0s -30d00m00.0s"], flux=[1.0], freq=["230GHz"],
         shape=["gaussian"], majoraxis=["2arcsec"], imsize=[512], cell=["0.05arcsec"], nchan=3)
"""


def test_a_killed_run_leaves_a_work_directory_the_next_run_removes(tmp_path):
    import signal
    import subprocess
    import sys
    child = subprocess.Popen([sys.executable, "-c", FAULT_RUN, str(tmp_path / "m.im")], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "WRITING"
        work = list(tmp_path.glob(f".m.im.cl2image-*-{child.pid}.work"))
        assert len(work) == 1 and (work[0] / "model.im").is_dir()
        child.send_signal(signal.SIGKILL)
        child.wait()
    finally:
        child.kill()
    assert work[0].exists() and not (tmp_path / "m.im").exists()
    r = cl2image(imagename=str(tmp_path / "m.im"), direction=[CENTRE], flux=[1.0], freq=["230GHz"], imsize=[64],
                 cell=["0.1arcsec"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.cl", "m.fits", "m.im"]
    assert r["flux"][0]["image_jy"] == pytest.approx(1.0, rel=1e-6)


def test_an_error_half_way_leaves_neither_outputs_nor_the_work_directory(tmp_path, monkeypatch):
    from almatools.plugins.models import render

    def fail(self, ct, image):
        assert image.parent.name.startswith(".m.im.cl2image-")  # the work directory exists at this point
        raise RuntimeError("disk unplugged")
    monkeypatch.setattr(render.FootprintModel, "write", fail)
    with pytest.raises(RuntimeError, match="disk unplugged"):
        cl2image(imagename=str(tmp_path / "m.im"), direction=[CENTRE], flux=[1.0], freq=["230GHz"], imsize=[32],
                 cell=["0.1arcsec"])
    assert list(tmp_path.iterdir()) == []


def test_outputs_that_are_something_else_are_never_replaced(tmp_path):
    import os
    import signal
    base = dict(direction=[CENTRE], flux=[1.0], freq=["230GHz"], imsize=[32], cell=["0.1arcsec"], overwrite=True)
    (tmp_path / "m.im").mkdir()
    (tmp_path / "m.im" / "notes.txt").write_text("mine")
    with pytest.raises(TaskParameterError, match=r"m\.im exists and is not a CASA image: cl2image never replaces it"):
        cl2image(imagename=str(tmp_path / "m.im"), **base)
    assert (tmp_path / "m.im" / "notes.txt").read_text() == "mine"
    (tmp_path / "n.fits").mkdir()
    with pytest.raises(TaskParameterError, match=r"n\.fits exists and is not a FITS file"):
        cl2image(imagename=str(tmp_path / "n.im"), **base)
    os.mkfifo(tmp_path / "list.csv")
    signal.alarm(20)  # reading a FIFO would block forever
    try:
        with pytest.raises(TaskParameterError, match=r"'complist'.*is neither a componentlist nor a regular file"):
            cl2image(imagename=str(tmp_path / "p.im"), complist=str(tmp_path / "list.csv"), imsize=[32],
                     cell=["0.1arcsec"], phasecenter=CENTRE)
    finally:
        signal.alarm(0)


hostile_text = st.one_of(st.sampled_from(["", "0GHz", "-1GHz", "nanGHz", "infGHz", "1e400GHz", "230", "GHz", "230 GHz",
                                          "0.5arcsec", "1e400arcsec", "-0.3arcsec", "0arcsec", "1e-300arcsec", "90deg",
                                          "400deg", "1e300deg", "7rad", "abc", "é", "1 2 GHz", "3e8m"]),
                         st.text(max_size=12))
hostile_number = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                           st.sampled_from([0.0, -1.0, 1e308, -1e308, 1e-320, 1e6, -1e6]))


@pytest.mark.fuzz
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(flux=st.lists(hostile_number, min_size=1, max_size=2), freq=st.lists(hostile_text, max_size=2),
       shape=st.lists(st.one_of(st.sampled_from(["point", "gaussian", "disk", "Gaussian", "DISK"]), st.text(max_size=6)),
                      max_size=2),
       major=st.lists(hostile_text, max_size=2), minor=st.lists(hostile_text, max_size=2),
       pa=st.lists(hostile_text, max_size=2), index=st.lists(hostile_number, max_size=2),
       imsize=st.one_of(st.just([]), st.lists(st.one_of(st.integers(-3, 40), st.sampled_from([10**6, 10**9, 2**31])),
                                              min_size=1, max_size=3)),
       cell=st.lists(hostile_text, max_size=3), nchan=st.one_of(st.integers(-2, 3), st.just(10**9)),
       start=hostile_text, width=hostile_text, fluxunit=st.one_of(st.sampled_from(["Jy", "mJy", "K", "", "Jy/beam"]),
                                                                  st.text(max_size=5)))
def test_generated_component_and_grid_parameters_model_or_are_refused(tmp_path_factory, flux, freq, shape, major,
                                                                      minor, pa, index, imsize, cell, nchan, start,
                                                                      width, fluxunit):
    tmp = tmp_path_factory.mktemp("hostile")
    n = len(flux)
    try:
        r = cl2image(imagename=str(tmp / "m.im"), direction=[CENTRE, "J2000 10h00m00.1s -30d00m00.5s"][:n], flux=flux,
                     fluxunit=fluxunit, freq=freq, shape=shape, majoraxis=major, minoraxis=minor, positionangle=pa,
                     spectralindex=index, imsize=imsize, cell=cell, phasecenter=CENTRE, nchan=nchan, start=start,
                     width=width, exportfits=False)
    except (TaskParameterError, ResourceLimitError) as exc:
        assert str(exc).startswith("cl2image: ")  # names the task and the parameter or component
        assert list(tmp.iterdir()) == []  # nothing written, no hidden work directory
        return
    assert sorted(p.name for p in tmp.iterdir()) == ["m.cl", "m.im"]
    got = pixels(tmp / "m.im")[0]
    assert np.isfinite(got).all()
    for plane in r["flux"]:
        assert np.isfinite(plane["image_jy"]) and np.isfinite(plane["components_jy"])
        assert plane["image_jy"] == pytest.approx(float(got[:, :, 0, plane["channel"]].sum(dtype=np.float64)),
                                                  rel=1e-6, abs=1e-30)


def test_a_pixel_file_that_cannot_be_written_directly_is_written_through_casa(tmp_path, monkeypatch):
    """When the new image's pixel file is not one :mod:`almatools.casaimage` understands, the same tiles go
    through ``putchunk`` (simulated: the layout check says no)."""
    from almatools.plugins.models import render
    direct = cl2image(imagename=str(tmp_path / "a.im"), nchan=3, exportfits=False, **TWO_GAUSSIANS)
    monkeypatch.setattr(render, "tiled_pixels", lambda image: (None, "not a plain tiled file (test)"))
    through = cl2image(imagename=str(tmp_path / "b.im"), nchan=3, exportfits=False, **TWO_GAUSSIANS)
    assert np.array_equal(pixels(tmp_path / "a.im")[0], pixels(tmp_path / "b.im")[0])
    assert [f["image_jy"] for f in through["flux"]] == [f["image_jy"] for f in direct["flux"]]
