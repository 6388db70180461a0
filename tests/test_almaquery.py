"""almaquery: the search-box grammar against astroquery's test vectors, escaping, and real TAP queries
against the local emulator (GAVO DaCHS with ALMA's ivoa.obscore)."""

import re

import astropy.units as u
import pytest
from astropy.table import Table
from hypothesis import given, settings
from hypothesis import strategies as st

from almatools.casa_tasks import almaquery
from almatools.errors import TaskParameterError
from almatools.plugins.archive import adql
from almatools.plugins.archive.emulator import MOUSES
from almatools.plugins.archive.service import mirror_urls


# DOMAIN.md §1.3: the exact strings astroquery 0.4.11 writes for these inputs
@pytest.mark.parametrize("column, value, expected", [
    ("frequency", "230..232", "(230.0<=frequency AND frequency<=232.0)"),
    ("frequency", ">0", "frequency>=0.0"),
    ("frequency", "<10|>20|30..40", "(frequency<=10.0 OR frequency>=20.0 OR (30.0<=frequency AND frequency<=40.0))"),
    ("bandwidth", "!(20 .. 30)", "(bandwidth<=20.0 OR bandwidth>=30.0)"),
    ("frequency", 100, "frequency=100"),
])
def test_numeric_grammar_matches_astroquery(column, value, expected):
    assert adql.numeric_clause(column, value) == expected


def test_string_date_and_cone_vectors():
    assert adql.string_clause("target_name", "a|b") == "(target_name='a' OR target_name='b')"
    assert adql.string_clause("proposal_id", "2012.* | 2013.?3*") == \
        "(proposal_id LIKE '2012.%' OR proposal_id LIKE '2013._3%')"
    assert adql.string_clause("pub_abstract", "*50% of the mass*") == r"pub_abstract LIKE '%50\% of the mass%'"
    assert adql.date_clause("t_min", "(01-01-2020 .. 01-02-2020)") == "(58849.0<=t_min AND t_min<=58880.0)"
    assert adql.cone_clause(83.8221, -5.3911, 0.01) == \
        "(INTERSECTS(CIRCLE('ICRS',83.8221,-5.3911,0.01), s_region) = 1)"
    # where astroquery is wrong, on purpose: '?' alone is a wildcard; band 1 does not match 10
    assert adql.string_clause("target_name", "b?c") == "target_name LIKE 'b_c'"
    assert "LIKE '%1%'" not in adql.band_clause("1")


def test_bad_grammar_names_the_parameter(archive):
    with pytest.raises(TaskParameterError, match="parameter 'frequency'.*abc"):
        almaquery(frequency="230..abc", service=archive.url)
    with pytest.raises(TaskParameterError, match="parameter 'band'"):
        almaquery(band="11", service=archive.url)
    with pytest.raises(TaskParameterError, match="parameter 'release_date'.*ISO"):
        almaquery(release_date="30-09-2027", service=archive.url)
    with pytest.raises(TaskParameterError, match="parameter 'source_name'.*could not be resolved"):
        almaquery(source_name="NoSuchSource_almatools_XYZ", service=archive.url)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="|*?", blacklist_categories=("Cs",)), min_size=1))
def test_any_string_stays_inside_its_literal(text):
    clause = adql.string_clause("target_name", text)
    if not text.strip():
        assert clause == ""
        return
    m = re.fullmatch(r"target_name='((?:[^']|'')*)'", clause, re.S)
    assert m, clause  # one literal, nothing after it
    assert m.group(1).replace("''", "'") == text.strip()


def _expected_rows(predicate):
    return sorted((r["member_ous_uid"], r["target_name"]) for m in MOUSES for r in m.rows if predicate(r))


def test_quote_and_semicolon_do_not_change_the_query(archive):
    evil = almaquery(target_name="x'; select * from tap_schema.tables; --", science="any", service=archive.url)
    assert evil["nrows"] == 0 and "'x''; select" in evil["adql"]
    # a real name with a quote is found, by exact match and by wildcard
    for pi in ("O'Brien, C.", "O'Brien*"):
        r = almaquery(pi_name=pi, service=archive.url)
        got = sorted((str(a), str(b)) for a, b in zip(r["observations"]["member_ous_uid"],
                                                       r["observations"]["target_name"]))
        assert got == _expected_rows(lambda row: row["obs_creator_name"] == "O'Brien, C.")
    assert almaquery(service=archive.url, science="any")["nrows"] == sum(len(m.rows) for m in MOUSES)


def test_fields_select_the_rows_an_independent_filter_selects(archive):
    r = almaquery(band="3|7", frequency="<100|>340", public="any", science="any", service=archive.url)
    got = sorted((str(a), str(b)) for a, b in zip(r["observations"]["member_ous_uid"], r["observations"]["target_name"]))
    assert got == _expected_rows(lambda row: row["band_list"] in ("3", "7")
                                 and (row["frequency"] <= 100 or row["frequency"] >= 340))
    r = almaquery(release_date=">2026-01-01", service=archive.url)
    assert set(r["observations"]["data_rights"]) == {"Proprietary"}
    r = almaquery(public="public", science="calibration", service=archive.url)
    assert list(r["observations"]["target_name"]) == ["J1744-3116"]


def test_cone_matches_footprints_computed_independently(archive):
    from astropy.coordinates import SkyCoord
    from matplotlib.path import Path as PolyPath
    from almatools.plugins.archive.task_almaquery import footprints
    # 2.5' east of the M83 mosaic centre: inside its polygon, outside any 1" circle around s_ra/s_dec
    centre = SkyCoord(204.24712522989094, -29.868853678162907, unit="deg")
    probe = centre.directional_offset_by(90 * u.deg, 2.5 * u.arcmin)
    r = almaquery(position=f"{probe.ra.deg} {probe.dec.deg}", radius="1arcsec", service=archive.url)
    m83 = next(m for m in MOUSES if m.mous == "uid://A001/X1295/X35").rows[0]
    inside = PolyPath(footprints(m83["s_region"])[0]).contains_point((probe.ra.deg, probe.dec.deg))
    assert inside and list(r["observations"]["member_ous_uid"]) == ["uid://A001/X1295/X35"]
    # sexagesimal RA is hours (astroquery reads it as degrees)
    tw = almaquery(position="11h01m51.9s -34d42m17s", radius="30arcsec", service=archive.url)
    assert set(tw["observations"]["target_name"]) == {"TW_Hya"} and tw["nmous"] == 1
    assert almaquery(position="11:01:51.9 -34:42:17", radius="30arcsec", service=archive.url)["nrows"] == tw["nrows"]


@pytest.mark.parametrize("ext, fmt", [(".csv", "ascii.csv"), (".tsv", "ascii.tab"), (".xml", "votable")])
def test_tables_written_and_counted(archive, tmp_path, ext, fmt):
    out = tmp_path / f"hits{ext}"
    r = almaquery(project_code="201?.1.*", science="any", service=archive.url, outfile=str(out),
                  plotfile=str(tmp_path / "hits.png"))
    obs = Table.read(out, format=fmt)
    assert len(obs) == r["nrows"] == len(_expected_rows(lambda row: row["proposal_id"].startswith("201")))
    projects = Table.read(r["outfiles"]["projects"], format=fmt)
    assert sorted(projects["proposal_id"]) == sorted(set(str(p) for p in obs["proposal_id"]))
    pubs = Table.read(r["outfiles"]["publications"], format=fmt)
    assert sorted(pubs["bib_reference"]) == sorted({row["bib_reference"] for m in MOUSES for row in m.rows
                                                    if row["bib_reference"] and row["proposal_id"].startswith("201")})
    assert str(obs["s_region"][0]).startswith("Polygon ICRS")
    assert (tmp_path / "hits.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(TaskParameterError, match="exists"):
        almaquery(project_code="2019.1.00001.S", service=archive.url, outfile=str(out))


def test_failover_to_the_next_mirror(archive):
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    r = almaquery(project_code="2019.1.00001.S", service=f"{dead},{archive.url}")
    assert r["service"] == f"{archive.url}/tap" and r["nrows"] == 2
    assert mirror_urls("nrao")[0] == "https://almascience.nrao.edu" and len(mirror_urls("nrao")) == 3
