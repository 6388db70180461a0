"""almaquery against the local archive (GAVO DaCHS serving a realistic ivoa.obscore): every field and
grammar form returns exactly the rows an independent filter of the served rows selects
(tests/alma_reference.py), frequency means coverage by the spectral windows, positions match
spherical geometry computed here, results page, and the written tables keep units and UCDs."""

import unicodedata
from datetime import date

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import alma_reference as ref
from almatools.casa_tasks import almaquery
from almatools.errors import TaskParameterError
from almatools.plugins.archive import task_almaquery
from almatools.plugins.archive.service import mirror_urls
from almatools.testing import colour_pixels, png_rgb


@pytest.fixture(scope="module")
def served(archive):
    """Every row the emulator serves, read with pyvo and no constraint."""
    import pyvo
    table = pyvo.dal.TAPService(f"{archive.url}/tap").run_sync("select * from ivoa.obscore", maxrec=100000).to_table()
    return ref.rows_of(table)


def found(archive, **kw):
    kw.setdefault("science", "any")
    return ref.table_keys(almaquery(service=archive.url, **kw)["observations"])


def expected(served, predicate):
    return ref.keys(r for r in served if predicate(r))


def _day(text):
    return ref.mjd(text), ref.mjd(text) + 1.0


# Each case: the search, and what it means, written against the served rows.
CASES = [
    (dict(target_name="(Orion_KL|OMC-2)"), lambda r: r["target_name"] in ("Orion_KL", "OMC-2")),
    (dict(target_name="TW*"), lambda r: r["target_name"].startswith("TW")),
    (dict(target_name="?RC+10216"), lambda r: ref.exact(r["target_name"], "?RC+10216")),
    (dict(target_name="!(*_N|*_S)", project_code="2014.*"),
     lambda r: not r["target_name"].endswith(("_N", "_S")) and r["proposal_id"].startswith("2014.")),
    (dict(project_code="(2017.* | 2018.*)"), lambda r: r["proposal_id"][:5] in ("2017.", "2018.")),
    (dict(project_code="201?.1.*"), lambda r: ref.exact(r["proposal_id"], "201?.1.*")),
    (dict(pi_name="o'brien"), lambda r: "o'brien" in r["pi_name"].lower()),
    (dict(pi_name="CORTÉS|koda"), lambda r: ref.contains(r["pi_name"], "cortés") or ref.contains(r["pi_name"], "koda")),
    (dict(project_title="rings|OUTFLOWS"), lambda r: ref.contains(r["obs_title"], "rings")
     or ref.contains(r["obs_title"], "outflows")),
    (dict(project_abstract="50% of the mass"), lambda r: ref.contains(r["proposal_abstract"], "50% of the mass")),
    (dict(proposal_authors="hacar"), lambda r: ref.contains(r["proposal_authors"], "hacar")),
    (dict(science_keyword="molecular clouds", scientific_category="!(local*)"),
     lambda r: ref.contains(r["science_keyword"], "molecular clouds")
     and not ref.contains(r["scientific_category"], "local*")),
    (dict(bibcode="2021ApJ*"), lambda r: ref.exact(r["bib_reference"], "2021ApJ*")),
    (dict(pub_title="reveals"), lambda r: ref.contains(r["pub_title"], "reveals")),
    (dict(first_author="example|pérez"), lambda r: ref.contains(r["first_author"], "example")
     or ref.contains(r["first_author"], "pérez")),
    (dict(authors="other, b"), lambda r: ref.contains(r["authors"], "other, b")),
    (dict(pub_abstract="are resolved"), lambda r: ref.contains(r["pub_abstract"], "are resolved")),
    (dict(publication_year="2016..2019"), lambda r: r["publication_year"] is not None
     and 2016 <= r["publication_year"] <= 2019),
    (dict(spatial_resolution="<0.5"), lambda r: r["spatial_resolution"] <= 0.5),
    (dict(largest_angular_scale=">20arcsec"), lambda r: r["spatial_scale_max"] >= 20),
    (dict(field_of_view=">1arcmin"), lambda r: r["s_fov"] >= (1 * u.arcmin).to_value(u.deg)),
    (dict(field_of_view="30..60"), lambda r: 30 / 3600 <= r["s_fov"] <= 60 / 3600),
    (dict(bandwidth="<1"), lambda r: r["bandwidth"] <= 1e9),
    (dict(bandwidth="1800..1900MHz"), lambda r: 1.8e9 <= r["bandwidth"] <= 1.9e9),
    (dict(spectral_resolution="<2MHz"), lambda r: r["spectral_resolution"] <= 2e6),
    (dict(spectral_resolution="!(100..1000)"), lambda r: not 1e5 <= r["spectral_resolution"] <= 1e6),
    (dict(integration_time=">1h|<300"), lambda r: r["t_exptime"] >= 3600 or r["t_exptime"] <= 300),
    (dict(line_sensitivity="<1"), lambda r: r["sensitivity_10kms"] <= 1),
    (dict(continuum_sensitivity="<50uJy/beam"), lambda r: r["cont_sensitivity_bandwidth"] <= 0.05),
    (dict(water_vapour="<0.5"), lambda r: r["pwv"] <= 0.5),
    (dict(observation_date="2018-12-28"), lambda r: _day("2018-12-28")[0] <= r["t_min"] < _day("2018-12-28")[1]),
    (dict(observation_date="28-12-2018"), lambda r: _day("2018-12-28")[0] <= r["t_min"] < _day("2018-12-28")[1]),
    (dict(observation_date=date(2018, 12, 28)), lambda r: _day("2018-12-28")[0] <= r["t_min"] < _day("2018-12-28")[1]),
    (dict(observation_date="2015-01-01..2015-12-31|<2014-01-01"),
     lambda r: ref.mjd("2015-01-01") <= r["t_min"] < ref.mjd("2016-01-01") or r["t_min"] < ref.mjd("2014-01-02")),
    (dict(release_date="2020-11-01"), lambda r: r["obs_release_date"].startswith("2020-11-01")),
    (dict(release_date=">2026-01-01"), lambda r: ref.iso_datetime(r["obs_release_date"]) >= ref.iso_datetime("2026-01-01")),
    (dict(release_date="01-06-2020|!(>2015-01-01)"), lambda r: r["obs_release_date"].startswith("2020-06-01")
     or ref.iso_datetime(r["obs_release_date"]) < ref.iso_datetime("2015-01-01")),
    (dict(band="1|10"), lambda r: r["band_list"] in ("1", "10")),
    (dict(band=[3, 7]), lambda r: r["band_list"] in ("3", "7")),
    (dict(band="1"), lambda r: r["band_list"] == "1"),
    (dict(polarisation="Full|Single"), lambda r: r["pol_states"] in ("/XX/XY/YX/YY/", "/XX/")),
    (dict(project_type="L|too"), lambda r: r["proposal_id"].endswith((".L", ".T"))),
    (dict(array="7m"), lambda r: ":CM" in r["antenna_arrays"]),
    (dict(array="TP|!(12m)"), lambda r: ":PM" in r["antenna_arrays"] or not (":DA" in r["antenna_arrays"]
                                                                              or ":DV" in r["antenna_arrays"])),
    (dict(mosaic=True, qa2="fail"), lambda r: r["is_mosaic"] == "T" and r["qa2_passed"] == "F"),
    (dict(public=False), lambda r: r["data_rights"] == "Proprietary"),
    (dict(science="calibration"), lambda r: r["science_observation"] == "F"),
    (dict(science="science", band="6"), lambda r: r["science_observation"] == "T" and r["band_list"] == "6"),
    (dict(mous="uid___A001_X1300_X3 | uid://A001/X1295/X35"),
     lambda r: r["member_ous_uid"] in ("uid://A001/X1300/X3", "uid://A001/X1295/X35")),
    (dict(gous=["uid://A001/X1465/X2"]), lambda r: r["group_ous_uid"] == "uid://A001/X1465/X2"),
    # frequency: coverage by the spectral windows in frequency_support
    (dict(frequency="230.538"), lambda r: ref.covers(r["frequency_support"], 230.538, 230.538)),
    (dict(frequency=230.538), lambda r: ref.covers(r["frequency_support"], 230.538, 230.538)),
    (dict(frequency="1.3mm"), lambda r: ref.covers(r["frequency_support"], *[(1.3 * u.mm).to_value(
        u.GHz, equivalencies=u.spectral())] * 2)),
    (dict(frequency=[345.796 * u.GHz, 115271.2 * u.MHz]), lambda r: ref.covers(r["frequency_support"], 345.796, 345.796)
     or ref.covers(r["frequency_support"], 115.2712, 115.2712)),
    (dict(frequency="<50|>900"), lambda r: ref.covers(r["frequency_support"], 0, 50)
     or ref.covers(r["frequency_support"], 900, 1e9)),
    (dict(frequency="100..101"), lambda r: ref.covers(r["frequency_support"], 100, 101)),
    (dict(frequency="!(84..950)"), lambda r: not ref.covers(r["frequency_support"], 84, 950)),
    (dict(frequency="!(230.538) ", band="6"), lambda r: r["band_list"] == "6"
     and not ref.covers(r["frequency_support"], 230.538, 230.538)),
    (dict(frequency="230..240", frequency_mode="central"), lambda r: 230 <= r["frequency"] <= 240),
]


@pytest.mark.parametrize("kwargs, meaning", CASES, ids=[str(c[0]) for c in CASES])
def test_every_field_selects_what_an_independent_filter_selects(archive, served, kwargs, meaning):
    want = expected(served, lambda r: meaning(r) and (kwargs.get("science") != "science"
                                                       or r["science_observation"] == "T"))
    assert found(archive, **kwargs) == want


def test_the_catalogue_makes_every_case_meaningful(served):
    """Each search above selects some rows but not all (else it could not fail)."""
    for kwargs, meaning in CASES:
        n = sum(bool(meaning(r)) for r in served)
        assert 0 < n < len(served), kwargs


def test_coverage_finds_what_the_central_frequency_misses(archive, served):
    """A line inside a spectral window but away from the tuned frequency (astroquery issue #2097)."""
    tw = [r for r in served if r["target_name"] == "TW_Hya"]
    centre = tw[0]["frequency"]  # the middle of the set-up: between the two sidebands
    assert not ref.covers(tw[0]["frequency_support"], centre, centre)
    co = found(archive, frequency="230.538", target_name="TW_Hya")
    assert co == ref.keys(tw) and found(archive, frequency="230.538", target_name="TW_Hya",
                                        frequency_mode="central") == []
    assert found(archive, frequency=f"{centre}", target_name="TW_Hya") == []
    assert found(archive, frequency=f"{centre - 1e-6}..{centre + 1e-6}", target_name="TW_Hya",
                 frequency_mode="central") == ref.keys(tw)
    # over the whole catalogue, the two meanings disagree on many rows
    cover = set(expected(served, lambda r: ref.covers(r["frequency_support"], 230, 232)))
    central = set(expected(served, lambda r: 230 <= r["frequency"] <= 232))
    assert cover - central and central - cover


def test_cones_match_footprints_by_spherical_geometry(archive, served):
    import random
    rng = random.Random(5)
    polys = [r for r in served if r["is_mosaic"] == "T"]
    centres = SkyCoord([r["s_ra"] for r in served] * u.deg, [r["s_dec"] for r in served] * u.deg)
    for trial in range(4):
        row = rng.choice(polys)
        # a probe just outside a vertex of a mosaic, and a radius that reaches into some footprints
        ra, dec = ref.polygon(row["s_region"])[0]
        probe = SkyCoord(ra * u.deg, dec * u.deg).directional_offset_by(rng.uniform(0, 360) * u.deg, 20 * u.arcsec)
        radius = rng.choice([15, 25, 40]) * u.arcsec
        r_deg = radius.to_value(u.deg)
        sep = probe.separation(centres).deg  # footprints lie within s_fov of their centre: farther ones cannot touch
        near = [r for r, d in zip(served, sep) if d <= r_deg + r["s_fov"]]
        dist = {ref.key(r): ref.distance_to_polygon(probe.ra.deg, probe.dec.deg, r["s_region"]) for r in near}
        assert all(abs(d - r_deg) > 1e-6 for d in dist.values())  # no footprint on the circle: well posed
        want = sorted(k for k, d in dist.items() if d <= r_deg)
        got = found(archive, position=f"{probe.ra.deg} {probe.dec.deg}", radius=f"{radius.value}arcsec")
        assert got == want
        assert found(archive, position=probe, radius=radius) == want  # SkyCoord and Quantity from Python
    # sexagesimal RA is hours (astroquery reads it as degrees); several cones with |
    tw = found(archive, position="11h01m51.9s -34d42m17s", radius="30arcsec")
    assert tw == expected(served, lambda r: r["target_name"] == "TW_Hya")
    assert found(archive, position="11:01:51.9 -34:42:17, 30arcsec") == tw
    both = found(archive, position="11:01:51.9 -34:42:17, 30arcsec | 83.8221 -5.3911, 10arcsec")
    orion = expected(served, lambda r: ref.distance_to_polygon(83.8221, -5.3911, r["s_region"]) <= 10 / 3600)
    assert both == sorted(tw + orion) and orion


def test_coordinate_ranges_select_field_centres(archive, served):
    assert found(archive, position="83..84 -6..-5") == expected(
        served, lambda r: 83 <= r["s_ra"] <= 84 and -6 <= r["s_dec"] <= -5)
    assert found(archive, position="350..10 <0") == expected(  # RA wraps through 0
        served, lambda r: (r["s_ra"] >= 350 or r["s_ra"] <= 10) and r["s_dec"] <= 0)
    assert found(archive, position="galactic 0..1 -0.5..0.5") == expected(
        served, lambda r: 0 <= r["gal_longitude"] <= 1 and -0.5 <= r["gal_latitude"] <= 0.5)
    gal = SkyCoord(83.8221 * u.deg, -5.3911 * u.deg).galactic
    assert found(archive, position=f"galactic {gal.l.deg} {gal.b.deg}, 10arcsec") == expected(
        served, lambda r: ref.distance_to_polygon(83.8221, -5.3911, r["s_region"]) <= 10 / 3600)


def test_results_are_read_page_by_page(archive, served, monkeypatch):
    monkeypatch.setattr(task_almaquery, "PAGE_ROWS", 200)
    r = almaquery(service=archive.url, science="any", frequency="!(84..950)")
    assert ref.table_keys(r["observations"]) == expected(served, lambda x: not ref.covers(x["frequency_support"], 84, 950))
    assert r["nscanned"] == len(served) and not r["truncated"]
    r = almaquery(service=archive.url, science="any", maxrec=150)
    assert r["nrows"] == 150 and r["truncated"] and len(set(ref.table_keys(r["observations"]))) == 150


# A literal _ or % cannot be escaped in ADQL on every server (the ALMA archive's Oracle has no default LIKE
# escape, so the backslash PostgreSQL reads as one would be a character to match): almaquery sends them as
# wildcards, which select more on the server (IRC+10216 has "C+1" where "*C_1*" wants "C_1"), and keeps
# exactly the rows meant.
UNDERSCORE_CASES = [
    (dict(target_name="*C_1*"), lambda r: ref.exact(r["target_name"], "*C_1*")),
    (dict(target_name="!(*C_1*)"), lambda r: not ref.exact(r["target_name"], "*C_1*")),
    (dict(target_name="(Orion_KL|NGC_2*|*C_1*_?)"), lambda r: r["target_name"] == "Orion_KL"
     or ref.exact(r["target_name"], "NGC_2*") or ref.exact(r["target_name"], "*C_1*_?")),
    (dict(project_abstract="0% of the", target_name="!(*_N)"),
     lambda r: ref.contains(r["proposal_abstract"], "0% of the") and not ref.exact(r["target_name"], "*_N")),
]


@pytest.mark.parametrize("kwargs, meaning", UNDERSCORE_CASES, ids=[str(c[0]) for c in UNDERSCORE_CASES])
def test_literal_underscore_and_percent_are_matched_exactly(archive, served, casa_log_file, kwargs, meaning):
    r = almaquery(service=archive.url, science="any", **kwargs)
    assert "\\" not in r["adql"]
    assert ref.table_keys(r["observations"]) == expected(served, meaning)
    assert r["nscanned"] > r["nrows"] > 0  # the server's wildcard reading found more: the exact test mattered
    param = next(iter(kwargs))
    assert f"{param}: '_' and '%' are matched exactly by almatools after the query" in casa_log_file.read_text()


def test_a_negated_underscore_term_is_tested_on_every_page(archive, served, monkeypatch):
    """NOT of the server's wider reading would drop wanted rows (IRC+10216), so the negation is tested only
    here, on the rows of every page; maxrec counts the rows the archive returned (nscanned)."""
    monkeypatch.setattr(task_almaquery, "PAGE_ROWS", 200)
    wanted = expected(served, lambda x: not ref.exact(x["target_name"], "*C_1*"))
    r = almaquery(service=archive.url, science="any", target_name="!(*C_1*)")
    assert "target_name IS NOT NULL" in r["adql"] and "NOT (" not in r["adql"]
    assert ref.table_keys(r["observations"]) == wanted and any(k[2].startswith("IRC+10216") for k in wanted)
    assert r["nscanned"] == len(served) and not r["truncated"]
    r = almaquery(service=archive.url, science="any", target_name="!(*C_1*)", maxrec=300)
    assert r["nscanned"] == 300 and r["truncated"] and 0 < r["nrows"] <= 300
    assert set(ref.table_keys(r["observations"])) <= set(wanted)


def test_projects_and_publications_views(archive, served):
    r = almaquery(service=archive.url, project_code="201*", science="any")
    rows = [x for x in served if x["proposal_id"].startswith("201")]
    assert sorted(r["projects"]["proposal_id"]) == sorted({x["proposal_id"] for x in rows})
    assert sorted(r["publications"]["bib_reference"]) == sorted({x["bib_reference"] for x in rows if x["bib_reference"]})


def coverage_panel_shows_each_project(png, table):
    """The spectral-coverage picture as a person sees it: the bars of each Member OUS (or project, when
    there are more Member OUS than colours) in their own palette colour, stacked in table order from the
    top, and no palette colour that stands for nothing."""
    from almatools import plotting
    from almatools.plugins.archive import pictures
    pixels = png_rgb(png)
    gs = [g for g in pictures.groups(table) if g.windows]
    assert 2 <= len(gs) <= pictures.MAX_GROUPS
    keys, _by = pictures.colour_keys(gs)
    bands = sorted({g.band for g in gs}, key=lambda b: (b is None, b or 0))
    rows, row = {}, 0  # each window's bar, counted from the top of the picture (bands stacked in order)
    for band in bands:
        for g in (g for g in gs if g.band == band):
            for _ in g.windows:
                rows.setdefault(keys[id(g)] % len(plotting.PALETTE), []).append(row)
                row += 1
    used = sorted(rows)
    mean_row, mean_y = {}, {}
    for c in used:
        if plotting.PALETTE[c] == "#000000":
            continue  # black is also the text
        ys, _ = np.nonzero(colour_pixels(pixels, plotting.PALETTE[c], tolerance=1))
        assert ys.size > 10, f"no bars in {plotting.PALETTE[c]}"
        mean_row[c], mean_y[c] = np.mean(rows[c]), ys.mean()
    assert len(mean_row) >= 2
    assert sorted(mean_row, key=mean_row.get) == sorted(mean_y, key=mean_y.get)
    for c in set(range(len(plotting.PALETTE))) - set(used):
        if plotting.PALETTE[c] != "#000000":
            assert colour_pixels(pixels, plotting.PALETTE[c], tolerance=1).sum() == 0, plotting.PALETTE[c]


@pytest.mark.parametrize("ext, fmt", [(".csv", "ascii.csv"), (".tsv", "ascii.tab"), (".xml", "votable")])
def test_tables_written_and_counted(archive, tmp_path, ext, fmt):
    out = tmp_path / f"hits{ext}"
    r = almaquery(project_code="2019.1.*|2018.1.*", science="any", service=archive.url, outfile=str(out),
                  plotfile=str(tmp_path / "hits.png") if ext == ".xml" else "")
    obs = Table.read(out, format=fmt)
    assert len(obs) == r["nrows"] and ref.table_keys(obs) == ref.table_keys(r["observations"])
    projects = Table.read(r["outfiles"]["projects"], format=fmt)
    assert sorted(projects["proposal_id"]) == sorted(set(str(p) for p in obs["proposal_id"]))
    assert str(obs["s_region"][0]).startswith("Polygon ICRS")
    if ext == ".xml":
        coverage_panel_shows_each_project(r["plotfiles"]["spectra"], r["observations"])
    with pytest.raises(TaskParameterError, match="exists"):
        almaquery(project_code="2019.1.00001.S", service=archive.url, outfile=str(out))


def test_votable_output_keeps_units_ucds_and_serves_astroquery_and_pyvo_users(archive, tmp_path):
    """The written VOTable is what the archive sent: astroquery's get_enhanced_table reads it as if it were."""
    import pyvo
    from astropy.io.votable import parse
    from astroquery.alma import get_enhanced_table
    out = tmp_path / "m83.xml"
    almaquery(mous="uid://A001/X1295/X35|uid://A001/X1465/X3", service=archive.url, outfile=str(out))
    fields = {f.name: f for f in parse(str(out)).get_first_table().fields}
    direct = pyvo.dal.TAPService(f"{archive.url}/tap").run_sync("select top 1 * from ivoa.obscore")
    for f in direct.fielddescs:  # every column with the unit, UCD, utype and xtype the archive gave it
        mine = fields[f.name]
        assert (str(mine.unit or ""), mine.ucd, mine.utype, mine.xtype) == (str(f.unit or ""), f.ucd, f.utype, f.xtype)
    enhanced = get_enhanced_table(pyvo.dal.DALResults(parse(str(out))))
    m83 = enhanced[[str(x) == "uid://A001/X1295/X35" for x in enhanced["member_ous_uid"]]][0]
    assert type(m83["s_region"]).__name__ == "PolygonSkyRegion" and m83["s_ra"].unit == u.deg
    assert m83["s_region"].contains(SkyCoord(204.25 * u.deg, -29.87 * u.deg), _dummy_wcs())


def _dummy_wcs():
    from astropy.wcs import WCS
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [204.25, -29.87]
    w.wcs.cdelt = [-1e-4, 1e-4]
    return w


def test_quote_and_semicolon_do_not_change_the_query(archive, served):
    evil = almaquery(target_name="x'; select * from tap_schema.tables; --", science="any", service=archive.url)
    assert evil["nrows"] == 0 and "'x''; select" in evil["adql"]
    for text in ("a\\' OR 1=1 --", "a\\", "x\ny", "NUL\x00", "tab\tin", "a\u2028b"):
        with pytest.raises(TaskParameterError, match="parameter 'target_name'.*(backslash|control|line break)"):
            almaquery(target_name=text, service=archive.url)
    assert found(archive) == ref.keys(served)
    # % and _ are literal characters, not ADQL wildcards (the wildcard reading would find rows)
    assert found(archive, project_abstract="1_% of") == []
    assert any(ref.contains(r["proposal_abstract"], "1?% of") for r in served)


def test_bad_values_name_the_parameter(archive):
    for kwargs, pattern in [
            (dict(frequency="230..abc"), "'frequency'.*abc"), (dict(frequency="(230"), "'frequency'.*never closed"),
            (dict(frequency="1e400"), "'frequency'.*finite"), (dict(frequency="nan"), "'frequency'.*not a number"),
            (dict(frequency="232..230"), "'frequency'.*empty range"), (dict(band="11"), "'band'"),
            (dict(bandwidth="2 parsec"), "'bandwidth'.*GHz"), (dict(release_date="30-02-2027"), "'release_date'.*calendar"),
            (dict(position="1 2 3"), "'position'.*two coordinates"), (dict(radius="-1arcmin", position="1 2"), "'radius'"),
            (dict(public="maybe"), "'public'"), (dict(frequency_mode="edge"), "'frequency_mode'"),
            (dict(spatial_resolution=True), "'spatial_resolution'.*boolean"),
            (dict(source_name="NoSuchSource_almatools_XYZ"), "'source_name'.*could not be resolved")]:
        with pytest.raises(TaskParameterError, match=pattern):
            almaquery(service=archive.url, **kwargs)


def test_failover_to_the_next_mirror(archive, served):
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    r = almaquery(project_code="2019.1.00001.S", service=f"{dead},{archive.url}")
    assert r["service"] == f"{archive.url}/tap"
    assert r["nrows"] == sum(x["proposal_id"] == "2019.1.00001.S" for x in served) == 4
    assert mirror_urls("nrao")[0] == "https://almascience.nrao.edu" and len(mirror_urls("nrao")) == 3


# ------------------------------------------------------------------------------- generated attacks

_HOSTILE = st.sampled_from(list("'%_*?|()!\"; -\\\x00\n\t\u2028é∑😀 ") + ["''", "--", "%%", "\\'", "' OR '1'='1"])


@st.composite
def _literal(draw, values):
    """A string built from real values of the catalogue and hostile pieces, without the grammar's operators."""
    pieces = draw(st.lists(st.one_of(st.sampled_from(values), _HOSTILE, st.text(max_size=4)), min_size=1, max_size=4))
    text = "".join(pieces)
    if draw(st.booleans()):
        value = draw(st.sampled_from(values))
        k = draw(st.integers(0, max(0, len(value) - 1)))
        text = value[k:k + draw(st.integers(1, 12))]
    return text


_TEXT_FIELDS = {"target_name": ("target_name", "exact"), "project_code": ("proposal_id", "exact"),
                "bibcode": ("bib_reference", "exact"), "pi_name": ("pi_name", "contains"),
                "project_title": ("obs_title", "contains"), "project_abstract": ("proposal_abstract", "contains"),
                "proposal_authors": ("proposal_authors", "contains"), "science_keyword": ("science_keyword", "contains"),
                "scientific_category": ("scientific_category", "contains"), "pub_title": ("pub_title", "contains"),
                "first_author": ("first_author", "contains"), "authors": ("authors", "contains"),
                "pub_abstract": ("pub_abstract", "contains")}
_OPERATORS = set("|()!*?")


@pytest.mark.fuzz
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_any_string_parameter_counts_what_python_counts(archive, served, data):
    """Every text field, given hostile text (quotes, %, _, backslashes, control characters, Unicode), either
    refuses it naming the parameter or returns exactly the rows a Python filter of all rows selects."""
    param = data.draw(st.sampled_from(sorted(_TEXT_FIELDS)))
    column, mode = _TEXT_FIELDS[param]
    values = sorted({str(r[column]) for r in served if r[column]}) or ["x"]
    texts = data.draw(st.lists(_literal(values).map(lambda t: "".join(ch for ch in t if ch not in _OPERATORS))
                               .filter(str.strip), min_size=1, max_size=3))
    value = texts if len(texts) > 1 else texts[0]
    refused = any(ch == "\\" or unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for t in texts for ch in t.strip())
    try:
        got = found(archive, **{param: value})
    except TaskParameterError as exc:
        assert refused and f"parameter '{param}'" in str(exc), exc
        return
    assert not refused

    def meaning(r):
        return any((ref.exact if mode == "exact" else ref.contains)(r[column], t.strip()) for t in texts)
    assert got == expected(served, meaning)


# ----------------------------------------------------------------------------------- the emulator

def test_the_emulator_serves_a_realistic_catalogue(archive, served):
    import collections
    from importlib.resources import files
    mouses = {r["member_ous_uid"] for r in served}
    assert len(served) >= 200 and len(mouses) >= 60
    assert {r["band_list"] for r in served} == {str(b) for b in range(1, 11)}
    kinds = {(":DA" in r["antenna_arrays"] or ":DV" in r["antenna_arrays"], ":CM" in r["antenna_arrays"],
              ":PM" in r["antenna_arrays"]) for r in served}
    assert {(True, False, False), (False, True, False), (False, False, True)} <= kinds  # 12 m, 7 m, TP
    assert {r["data_rights"] for r in served} == {"Public", "Proprietary"}
    assert any(r["science_observation"] == "F" and r["scan_intent"].startswith("CALIBRATE") for r in served)
    assert all(r["s_region"].startswith("Polygon ICRS") for r in served)
    assert any(r["is_mosaic"] == "T" and len(ref.polygon(r["s_region"])) > 4 for r in served)
    targets = collections.defaultdict(set)
    for r in served:
        targets[r["member_ous_uid"]].add(r["target_name"])
    assert sum(len(t) > 1 for t in targets.values()) >= 10  # several targets per Member OUS
    by_target = collections.defaultdict(list)
    for r in served:
        by_target[(r["member_ous_uid"], r["target_name"])].append(r)
    between = 0
    for rows in by_target.values():
        support = {r["frequency_support"] for r in rows}
        assert len(support) == 1  # the whole set-up on every row of a target
        wins = ref.windows(rows[0]["frequency_support"])
        assert 4 <= len(wins) <= 16
        for r in rows:  # each row is one window of it (to the support's 10 MHz rounding)
            lo, hi = ref.C / r["em_max"] / 1e9, ref.C / r["em_min"] / 1e9
            assert any(abs(lo - a) < 0.006 and abs(hi - b) < 0.006 for a, b in wins), (r["obs_id"], lo, hi)
        f = rows[0]["frequency"]
        between += (min(a for a, _ in wins) < f < max(b for _, b in wins)) and not ref.covers(support.pop(), f, f)
    assert between >= len(by_target) // 2  # the tuned frequency usually lies between the sidebands
    # galactic coordinates agree with astropy's
    sample = served[::37]
    gal = SkyCoord([r["s_ra"] for r in sample] * u.deg, [r["s_dec"] for r in sample] * u.deg).galactic
    for r, g in zip(sample, gal):
        assert abs((r["gal_longitude"] - g.l.deg + 180) % 360 - 180) < 0.01 and abs(r["gal_latitude"] - g.b.deg) < 0.01
    # astroquery's recorded real row is served as recorded
    rec = Table.read(str(files("astroquery.alma.tests") / "data" / "alma-onerow.txt"), format="ascii")[0]
    m83 = next(r for r in served if r["member_ous_uid"] == "uid://A001/X1295/X35")
    for name in ("frequency_support", "em_min", "em_max", "s_ra", "obs_creator_name", "antenna_arrays", "lastModified"):
        assert str(m83[name]) == str(rec[name]).removeprefix("b'").removesuffix("'"), name


def test_tap_metadata_async_jobs_and_vosi_use_the_public_url(archive):
    import pyvo
    import requests
    service = pyvo.dal.TAPService(f"{archive.url}/tap")
    columns = {c.name.lower(): c for c in service.tables["ivoa.obscore"].columns}  # ADQL names: any case
    for name in ("pi_name", "t_resolution", "em_res_power", "gal_longitude", "gal_latitude", "authors", "pub_abstract",
                 "proposal_authors", "lastModified", "frequency_support", "s_region"):
        assert name.lower() in columns, name
    assert columns["s_region"].utype == "obscore:Char.SpatialAxis.Coverage.Support.Area"
    assert columns["frequency"].ucd == "em.freq;obs;meta.main" and str(columns["frequency"].unit) == "GHz"
    assert all(c.ucd for c in columns.values())
    job = service.submit_job("select count(*) as n from ivoa.obscore where band_list='6'")
    try:
        assert job.url.startswith(archive.url + "/")
        job.run()
        job.wait(timeout=60)
        assert job.result_uri.startswith(archive.url + "/")
        assert int(job.fetch_result().to_table()["n"][0]) == len(almaquery(service=archive.url, band="6",
                                                                         science="any")["observations"])
    finally:
        job.delete()
    caps = requests.get(f"{archive.url}/tap/capabilities", timeout=30).text
    assert f"{archive.url}/tap" in caps and "127.0.0.1:" + str(archive.dachs_port) not in caps


def test_the_casa_prompt_takes_variants(archive, served, tmp_path, monkeypatch):
    """At the casa% prompt (global-parameter style) the fields take CASA's types: floats, lists, booleans."""
    from almatools.casa_tasks.shell import install, read_inputs_file
    monkeypatch.chdir(tmp_path)
    ns = {}
    install(ns)
    ns.update(frequency=230.538, band=[6], public=True, science="any", service=archive.url)
    text = ns["almaquery"].inp_text(color=False)
    assert "frequency           = 230.538" in text and "band                = [6]" in text and "!!" not in text
    r = ns["almaquery"]()  # go
    assert ref.table_keys(r["observations"]) == expected(
        served, lambda x: ref.covers(x["frequency_support"], 230.538, 230.538) and x["band_list"] == "6"
        and x["data_rights"] == "Public")
    saved = read_inputs_file(tmp_path / "almaquery.last", ["frequency", "band", "public"])  # what tget reads
    assert saved["frequency"] == 230.538 and saved["band"] == [6] and saved["public"] is True
