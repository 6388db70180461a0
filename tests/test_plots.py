"""Every picture almatools draws is readable, and almaquery's pictures show what the table holds.

One parametrised test renders each plot from real inputs (the archive emulator, the Source
Catalogue file the emulator writes, simulated MSs, the example Member OUS) and checks the
saved PNG: no panel is blank, and no two text elements overlap or leave the figure
(:func:`almatools.plotting.layout_problems`, measured with matplotlib's renderer on the figure
as it was saved).  The figures are caught by wrapping ``almatools.plotting.save`` — every task
saves through it, so a plot that bypasses the shared style fails here for want of a figure.

The bundled line list is checked against two catalogues CASA ships (Splatalogue and the
Lovas/NIST recommended frequencies), and the sky frequencies against astropy's optical
Doppler equivalency.
"""

from __future__ import annotations

import csv
import gzip
import os
import re
import sqlite3
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from almatools import example, lines, plotting
from almatools.casa_tasks import almaquery, calflux, frameconv, imadvise, qacheck, wtcheck
from almatools.errors import TaskParameterError
from almatools.testing import simulate_ms

CASADATA = Path(__import__("casadata").__file__).parent / "__data__"
M83 = dict(position="13h37m00.9s -29d51m56s", radius="5arcmin", frequency="230..232", vsys=513)


# ------------------------------------------------------------------------------------------ line list

def test_every_line_is_splatalogue_s_value_and_agrees_with_lovas_nist():
    """rest_ghz is the Splatalogue entry (to 1 kHz) of the species named; Lovas/NIST agrees to 0.3 MHz."""
    db = sqlite3.connect(f"file:{CASADATA / 'ephemerides' / 'splatalogue.db'}?mode=ro", uri=True)
    lovas: dict[str, list[float]] = {}
    with gzip.open(CASADATA / "catalogs" / "lines" / "Lovas_NIST.csv.gz", "rt", errors="replace") as fh:
        for fields in csv.reader(fh, delimiter=";"):
            try:
                lovas.setdefault(fields[0], []).append(float(fields[2]))
            except (IndexError, ValueError):
                continue
    all_lines = lines.lines()
    assert len(all_lines) >= 60 and len({ln.name for ln in all_lines}) == len(all_lines)
    compared = 0
    for ln in all_lines:
        mhz = ln.rest_ghz * 1e3
        hits = db.execute("SELECT m.orderedfreq FROM main m JOIN species s ON m.species_id = s.species_id "
                          "WHERE s.s_name = ? AND m.orderedfreq BETWEEN ? AND ?",
                          (ln.splatalogue, mhz - 0.001, mhz + 0.001)).fetchall()
        assert hits, f"{ln.name}: no {ln.splatalogue} entry at {mhz:.4f} MHz in Splatalogue"
        if ln.lovas:
            nearest = min(abs(f - mhz) for f in lovas[ln.lovas])
            assert nearest <= 0.3, f"{ln.name}: Lovas/NIST's nearest {ln.lovas} line is {nearest:.3f} MHz away"
            compared += 1
    assert compared >= 50  # the second catalogue covers most of the list (not the atomic fine-structure lines)


def test_line_list_covers_what_the_issue_names():
    names = " ".join(ln.name for ln in lines.lines())
    for species in ("CO ", "13CO", "C18O", "C17O", "HCO+", "HCN", "HNC", "CS ", "SiO", "N2H+", "H2CO", "CH3OH",
                    "CN ", "[CI]", "[CII]"):
        assert species in names, species


@given(vsys=st.floats(-3000, 3000), z=st.floats(0, 12))
def test_sky_frequencies_follow_astropy_s_optical_doppler_and_redshift(vsys, z):
    co = next(ln for ln in lines.lines() if ln.name == "CO 2-1")
    expected = (vsys * u.km / u.s).to(u.GHz, equivalencies=u.doppler_optical(co.rest_ghz * u.GHz)).value
    assert lines.sky_ghz(co, lines.redshift(vsys_kms=vsys)) == pytest.approx(expected, rel=1e-12)
    assert lines.sky_ghz(co, lines.redshift(z=z)) == pytest.approx(co.rest_ghz / (1 + z), rel=1e-14)


# ------------------------------------------------------------------------------------------ almaquery

def _windows(support: str) -> list[tuple[float, float]]:
    """The windows of a frequency_support text, read here with a regular expression (not coverage.py)."""
    return [(float(a), float(b)) for a, b in re.findall(r"\[([0-9.]+)\.\.([0-9.]+)GHz", support)]


def _polygon(stcs: str) -> list[tuple[float, float]]:
    nums = [float(x) for x in stcs.split()[2:]]
    return list(zip(nums[0::2], nums[1::2]))


@pytest.fixture(scope="module")
def m83(archive, tmp_path_factory):
    """The guide's search: M83, 230-232 GHz, drawn with lines at M83's cz = 513 km/s."""
    out = tmp_path_factory.mktemp("m83")
    caught = []
    real = plotting.save
    plotting.save = lambda fig, path: caught.append((fig, path)) or real(fig, path)
    try:
        r = almaquery(service=archive.url, plotfile=str(out / "m83.png"), **M83)
    finally:
        plotting.save = real
    return r, dict((Path(p).name, f) for f, p in caught)


def test_m83_lines_covered_are_those_inside_the_windows(m83):
    r, _ = m83
    table = r["observations"]
    assert r["nmous"] == 2 and len(r["lines"]) == 2
    z = 513 / 299792.458
    for entry in r["lines"]:
        rows = table[[str(x) == entry["member_ous_uid"] for x in table["member_ous_uid"]]]
        windows = _windows(str(rows[0]["frequency_support"]))
        expected = [ln.name for ln in lines.lines()
                    if any(lo <= ln.rest_ghz / (1 + z) <= hi for lo, hi in windows)]
        assert sorted(entry["lines"]) == sorted(expected)
        assert {"CO 2-1", "13CO 2-1", "C18O 2-1"} <= set(entry["lines"])


def test_m83_footprints_are_each_s_region_once_on_celestial_axes(m83):
    from matplotlib.patches import Polygon
    r, figs = m83
    fig = figs["m83.png"]
    ax = fig.axes[0]
    regions = {(str(row["member_ous_uid"]), str(row["s_region"])) for row in r["observations"]}
    outlines = [p for p in ax.patches if isinstance(p, Polygon) and p.get_facecolor()[3] == 0
                and p.get_linestyle() in ("-", "solid")]  # the filled copies and the dashed cone left out
    assert len(outlines) == len(regions) == 2  # one row per spw, one outline per footprint
    drawn = sorted(np.round(p.get_xy()[:-1], 6).tolist() for p in outlines)
    expected = sorted(np.round(_polygon(s), 6).tolist() for _, s in regions)
    assert drawn == expected
    wcs = ax.wcs
    x_east, _ = wcs.world_to_pixel_values(204.30, -29.8657)
    x_west, _ = wcs.world_to_pixel_values(204.20, -29.8657)
    assert x_east < x_west  # RA increases to the left
    assert ax.coords[0].get_format_unit() == u.hourangle and ax.coords[1].get_format_unit() == u.deg
    texts = [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]
    assert any("search cone (radius 5′)" in t for t in texts) and any(t == "2′" for t in texts)


def test_m83_spectra_bars_are_the_windows_and_lines_sit_at_their_sky_frequencies(m83):
    from matplotlib.patches import Rectangle
    r, figs = m83
    fig = figs["m83.spectra.png"]
    ax = fig.axes[0]
    bars = sorted((round(p.get_x(), 6), round(p.get_x() + p.get_width(), 6)) for p in ax.patches
                  if isinstance(p, Rectangle) and p.get_height() < 1)
    expected = []
    for mous in sorted({str(x) for x in r["observations"]["member_ous_uid"]}):
        row = next(x for x in r["observations"] if str(x["member_ous_uid"]) == mous)
        expected += [(round(a, 6), round(b, 6)) for a, b in _windows(str(row["frequency_support"]))]
    assert bars == sorted(expected)
    top = ax.child_axes[0]  # the secondary x axis naming the lines
    ticks = dict(zip([t.get_text() for t in top.get_xticklabels()], top.get_xticks()))
    for name in ("CO 2-1", "13CO 2-1", "C18O 2-1"):
        rest = next(ln.rest_ghz for ln in lines.lines() if ln.name == name)
        assert ticks[name] == pytest.approx((513 * u.km / u.s).to(
            u.GHz, equivalencies=u.doppler_optical(rest * u.GHz)).value, rel=1e-12)
    assert "Band 6" in ax.get_xlabel()
    assert any("searched: 230–232 GHz" in t.get_text() for t in fig.legends[0].get_texts())


def test_vsys_and_z_are_exclusive_and_plot_files_are_not_replaced(archive, tmp_path):
    with pytest.raises(TaskParameterError, match="'z'.*vsys.*or z, not both"):
        almaquery(service=archive.url, target_name="M83", vsys=500, z=0.1)
    (tmp_path / "p.spectra.png").write_bytes(b"mine")
    with pytest.raises(TaskParameterError, match="'plotfile' exists.*p.spectra.png"):
        almaquery(service=archive.url, target_name="M83", plotfile=str(tmp_path / "p.png"))
    assert (tmp_path / "p.spectra.png").read_bytes() == b"mine"


# ------------------------------------------------------------------------------------------ every plot

@pytest.fixture(scope="module")
def small_mss(tmp_path_factory):
    work = tmp_path_factory.mktemp("plots-ms")
    spws = [("spw0", 230.0e9, 1.0e6, 64), ("spw1", 232.0e9, 2.0e6, 32)]
    a = simulate_ms(work / "cycle7.ms", spws, array="12m", nant=4, duration_s=300, integration_s=6,
                    noise_k=50.0, weights="modern", seed=11)
    b = simulate_ms(work / "cycle1.ms", spws, array="7m", nant=4, duration_s=300, integration_s=10,
                    noise_k=50.0, weights="casa421", calwt_factor=1e-4, seed=12)
    return a, b


def _almaquery_m83(ctx):
    almaquery(service=ctx["archive"].url, plotfile=str(ctx["out"] / "m83.png"), **M83)


def _almaquery_wide(ctx):
    almaquery(service=ctx["archive"].url, band="7", public=True, plotfile=str(ctx["out"] / "b7.png"))


def _almaquery_highz(ctx):
    almaquery(service=ctx["archive"].url, band="3|4|7", z=4.5, plotfile=str(ctx["out"] / "highz.png"))


def _calflux_estimate(ctx):
    calflux(source=["J1924-2914", "J0510+1800"], freq=["230GHz"], date=["2019-12-12"],
            catalogue=str(ctx["catalogue"]), plotfile=str(ctx["out"] / "estimate.png"))


def _calflux_mous(ctx):
    mous = example.build_member_ous(ctx["out"] / "mous", images=False)
    calflux(mode="mous", path=str(mous), catalogue=str(ctx["catalogue"]), plotfile=str(ctx["out"] / "mous.png"))


def _wtcheck(ctx):
    wtcheck(vis=list(ctx["mss"]), plotfile=str(ctx["out"] / "weights.png"))


def _frameconv(ctx):
    frameconv(mode="ms", vis=ctx["mss"][0], spw="0,1", outframe="LSRK", plotfile=str(ctx["out"] / "drift.png"))


def _imadvise(ctx):
    imadvise(vis=list(ctx["mss"]), robust=0.5, plotfile=str(ctx["out"] / "uv.png"))


QACHECK_PLOTS = 3  # the example's cube and continuum image: a peak map each, the cube's rms per channel


def _qacheck(ctx):
    mous = example.build_member_ous(ctx["out"] / "mous")
    qacheck(path=str(mous), outdir=str(ctx["out"] / "qa"))


PLOTS = {"almaquery M83": (_almaquery_m83, 2), "almaquery all-sky": (_almaquery_wide, 2),
         "almaquery z=4.5": (_almaquery_highz, 2), "calflux estimate": (_calflux_estimate, 1),
         "calflux mous": (_calflux_mous, 1), "wtcheck": (_wtcheck, 1), "frameconv ms": (_frameconv, 1),
         "imadvise": (_imadvise, 1), "qacheck report": (_qacheck, QACHECK_PLOTS)}


@pytest.mark.parametrize("name", list(PLOTS))
def test_every_plot_is_drawn_and_readable(name, archive, catalogue_file, small_mss, tmp_path, monkeypatch):
    make, count = PLOTS[name]
    caught = []
    real = plotting.save
    monkeypatch.setattr(plotting, "save", lambda fig, path: caught.append((fig, path)) or real(fig, path))
    make(dict(archive=archive, catalogue=catalogue_file, mss=small_mss, out=tmp_path))
    assert len(caught) == count, f"{name} saved {len(caught)} figure(s) through almatools.plotting"
    for fig, path in caught:
        assert os.path.getsize(path) > 5000
        assert plotting.blank_axes(fig, path) == [], path
        assert plotting.layout_problems(fig) == [], path
        title = fig._suptitle.get_text() if fig._suptitle else " ".join(a.get_title() for a in fig.axes)
        assert len(title) > 15, f"{path}: no title saying what is shown"
        for ax in fig.axes:
            if ax.get_visible() and ax.axison and ax.get_xlabel():
                assert ax.get_ylabel() or ax.get_yticklabels(), f"{path}: an axis without a label"


def test_layout_check_finds_overlapping_and_clipped_text(tmp_path):
    """The checker itself: two labels drawn on top of each other, and one outside the figure, are found."""
    with plotting.style():
        fig = plotting.figure(4, 3)
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1])
        ax.text(0.5, 0.5, "first label", transform=ax.transAxes)
        ax.text(0.52, 0.5, "second label", transform=ax.transAxes)
        fig.text(0.98, 0.5, "cut off at the edge")
        plotting.save(fig, tmp_path / "bad.png")
    problems = plotting.layout_problems(fig)
    assert any("'first label' overlaps 'second label'" in p for p in problems)
    assert any("'cut off at the edge' leaves the figure" in p for p in problems)
    with plotting.style():
        empty = plotting.figure(4, 3)
        empty.add_subplot().set_title("nothing here")
        plotting.save(empty, tmp_path / "empty.png")
    assert plotting.blank_axes(empty, tmp_path / "empty.png")
