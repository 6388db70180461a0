"""cl2image against the toolkit sequence it replaces, flux conservation, spectral index, pixel
positions for both RA increment signs, FITS export, tables, templates and refusals."""

import math

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from almatools.casa_tasks import cl2image
from almatools.casaenv import casatools
from almatools.errors import TaskParameterError
from plugins.models import TWO_GAUSSIANS

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
