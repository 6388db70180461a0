"""What the archive emulator publishes: ObsCore rows, DataLink documents and dataPortal files.

Rows follow ALMA's ``ivoa.obscore`` (DOMAIN.md §1.2): the real row astroquery
records for M83 (2017.1.00079.S), the embedded example Member OUS (TW Hya,
2019.1.00001.S, served as real delivery tars), and rows in the same shape for
further projects: a Band 3 mosaic, a 7 m Band 7 project, a proprietary
Band 7 project released in the future, and a calibrator-only row.
DataLink documents use the current layout (ad-hoc ``DataLink.<tar>`` services)
except for one MOUS in the older ``#datalink`` layout; the recorded DataLink
responses astroquery ships are served for their MOUS (``uid://A001/X12a3/Xe9``)
with the host rewritten.  Data files are synthetic tars with ALMA's names
and directory structure, made on the fly.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from almatools.example import uid_path

__all__ = ["COLUMNS", "Mous", "MOUSES", "build_site", "uid_path", "RECORDED_MOUS"]

#: (name, DaCHS type, unit) of the published ObsCore columns, in ALMA's order
COLUMNS = [
    ("obs_publisher_did", "text", ""), ("obs_collection", "text", ""), ("facility_name", "text", ""),
    ("instrument_name", "text", ""), ("obs_id", "text", ""), ("dataproduct_type", "text", ""),
    ("calib_level", "integer", ""), ("target_name", "text", ""), ("s_ra", "double precision", "deg"),
    ("s_dec", "double precision", "deg"), ("s_fov", "double precision", "deg"), ("s_region", "spoly", "deg"),
    ("s_resolution", "double precision", "arcsec"), ("t_min", "double precision", "d"),
    ("t_max", "double precision", "d"), ("t_exptime", "double precision", "s"),
    ("em_min", "double precision", "m"), ("em_max", "double precision", "m"),
    ("pol_states", "text", ""), ("access_url", "text", ""), ("access_format", "text", ""),
    ("proposal_id", "text", ""), ("data_rights", "text", ""), ("band_list", "text", ""),
    ("em_resolution", "double precision", "m"), ("bandwidth", "double precision", "GHz"),
    ("antenna_arrays", "text", ""), ("is_mosaic", "text", ""), ("obs_release_date", "text", ""),
    ("spatial_resolution", "double precision", "arcsec"), ("frequency_support", "text", "GHz"),
    ("frequency", "double precision", "GHz"), ("velocity_resolution", "double precision", "m/s"),
    ("obs_creator_name", "text", ""), ("pub_title", "text", ""), ("first_author", "text", ""),
    ("publication_year", "integer", ""), ("proposal_abstract", "text", ""), ("schedblock_name", "text", ""),
    ("sensitivity_10kms", "double precision", "mJy/beam"),
    ("cont_sensitivity_bandwidth", "double precision", "mJy/beam"), ("pwv", "double precision", "mm"),
    ("group_ous_uid", "text", ""), ("member_ous_uid", "text", ""), ("asdm_uid", "text", ""),
    ("obs_title", "text", ""), ("type", "text", ""), ("scan_intent", "text", ""),
    ("science_observation", "text", ""), ("spatial_scale_max", "double precision", "arcsec"),
    ("qa2_passed", "text", ""), ("bib_reference", "text", ""), ("science_keyword", "text", ""),
    ("scientific_category", "text", ""), ("spectral_resolution", "double precision", "Hz"),
]

RECORDED_MOUS = "uid://A001/X12a3/Xe9"  # astroquery's recorded DataLink responses



@dataclass
class Mous:
    """One Member OUS: its ObsCore rows and the files of its delivery."""

    project: str
    sgous: str
    gous: str
    mous: str
    ebs: list[str]
    rows: list[dict]
    public: bool = True
    release: str = "2020-01-01T00:00:00.000"
    layout: str = "adhoc"  # or "legacy": #datalink rows with ID= in access_url
    example: bool = False  # the embedded example: real delivery files
    files: dict = field(default_factory=dict)  # set by build_site: role -> [(name, size)]


def _square(ra: float, dec: float, half: float) -> str:
    return (f"Polygon ICRS {ra - half:.6f} {dec - half:.6f} {ra + half:.6f} {dec - half:.6f} "
            f"{ra + half:.6f} {dec + half:.6f} {ra - half:.6f} {dec + half:.6f}")


def _row(m: dict, **kw) -> dict:
    c = 299792458.0
    f = kw["frequency"]
    bw = kw.get("bw", 1.875)
    row = dict(obs_collection="ALMA", facility_name="JAO", instrument_name="ALMA", dataproduct_type="cube",
               calib_level=2, s_fov=0.0165, s_resolution=kw.get("res", 0.5), t_exptime=3000.0,
               em_min=c / ((f + bw / 2) * 1e9), em_max=c / ((f - bw / 2) * 1e9), pol_states="/XX/YY/",
               access_format="text/html", em_resolution=c / (f * 1e9) / 1e5, bandwidth=bw * 1e9,
               is_mosaic="F", spatial_resolution=kw.get("res", 0.5), velocity_resolution=1270.0,
               pub_title="", first_author="", publication_year=None, sensitivity_10kms=1.1,
               cont_sensitivity_bandwidth=0.05, pwv=1.2, type="S", scan_intent="TARGET",
               science_observation="T", spatial_scale_max=5.0, qa2_passed="T", bib_reference="",
               spectral_resolution=kw.get("chanwidth_hz", 1.953e6), t_min=58849.1, t_max=58849.2,
               antenna_arrays="A001:DA44 A002:DA45 J504:DV02")
    row.update(m)
    row.update({k: v for k, v in kw.items() if k not in ("bw", "res", "chanwidth_hz")})
    half = kw.get("half", 0.004)
    row["s_region"] = kw.get("s_region") or _square(row["s_ra"], row["s_dec"], half)
    row["frequency_support"] = (f"[{f - bw / 2:.2f}..{f + bw / 2:.2f}GHz,{row['spectral_resolution'] / 1e3:.2f}kHz,"
                                "1.1mJy/beam@10km/s,50uJy/beam@native, XX YY]")
    row["obs_id"] = row["member_ous_uid"]
    row["access_url"] = f"http://almascience.org/aq?member_ous_id={row['member_ous_uid']}"
    return row


def _mouses() -> list[Mous]:
    from almatools import example as ex
    out = []
    common = dict(obs_publisher_did=f"ADS/JAO.ALMA#{ex.PROJECT}", proposal_id=ex.PROJECT, data_rights="Public",
                  obs_release_date="2020-11-01T00:00:00.000", obs_creator_name="Example, A.",
                  obs_title="CO(2-1) in the TW Hya disk", proposal_abstract="We map CO(2-1) in TW Hya.",
                  science_keyword="Disks around low-mass stars", scientific_category="Disks and planet formation",
                  group_ous_uid=ex.GOUS, member_ous_uid=ex.MOUS, asdm_uid=ex.EXECBLOCKS[0],
                  schedblock_name="TW_Hya_a_06_TM1", band_list="6", target_name=ex.TARGET,
                  pub_title="The TW Hya disk in CO", first_author="Example, A.", publication_year=2021,
                  bib_reference="2021ApJ...900....1E")
    out.append(Mous(ex.PROJECT, ex.SGOUS, ex.GOUS, ex.MOUS, list(ex.EXECBLOCKS), example=True,
                    release="2020-11-01T00:00:00.000",
                    rows=[_row(common, s_ra=165.46625, s_dec=-34.704722, frequency=230.4),
                          _row(common, s_ra=165.46625, s_dec=-34.704722, frequency=232.0, bw=2.0,
                               chanwidth_hz=15.625e6)]))
    # the real row astroquery records (tests/data/alma-onerow.txt), as published
    m83 = dict(obs_publisher_did="ADS/JAO.ALMA#2017.1.00079.S", proposal_id="2017.1.00079.S",
               data_rights="Public", obs_release_date="2020-03-03T03:20:58.000", obs_creator_name="Koda, Jin",
               obs_title="Molecular gas in M83", proposal_abstract="Giant molecular clouds across M83.",
               science_keyword="Galaxy structure & evolution", scientific_category="Local Universe",
               group_ous_uid="uid://A001/X1295/X34", member_ous_uid="uid://A001/X1295/X35",
               asdm_uid="uid://A002/Xd74c3f/Xcf20", schedblock_name="M83_e_03_TM1", band_list="3",
               target_name="M83", is_mosaic="T", s_fov=0.1650122764060855, t_min=58480.431262, t_max=58488.51627)
    poly = ("Polygon ICRS 204.319476 -29.894283 204.314307 -29.893360 204.174614 -29.893832 204.159606 "
            "-29.886181 204.153471 -29.877399 204.157057 -29.856075 204.152987 -29.849020 204.155142 -29.845057 "
            "204.159570 -29.842949 204.165241 -29.843807 204.183416 -29.843187 204.297720 -29.843831 204.302372 "
            "-29.842863 204.307818 -29.845083 204.310143 -29.850046 204.314283 -29.849063 204.334321 -29.849727 "
            "204.337744 -29.852341 204.343021 -29.861027 204.339032 -29.868522 204.342934 -29.888997 204.337052 "
            "-29.894104")
    out.append(Mous("2017.1.00079.S", "uid://A001/X1295/X33", "uid://A001/X1295/X34", "uid://A001/X1295/X35",
                    ["uid://A002/Xd74c3f/Xcf20"], release="2020-03-03T03:20:58.000", layout="legacy",
                    rows=[_row(m83, s_ra=204.24712522989094, s_dec=-29.868853678162907, frequency=113.29, res=1.578,
                               s_region=poly)]))
    # a 7 m Band 7 project with two sources
    seven = dict(obs_publisher_did="ADS/JAO.ALMA#2018.1.00123.S", proposal_id="2018.1.00123.S",
                 data_rights="Public", obs_release_date="2020-06-01T00:00:00.000", obs_creator_name="O'Brien, C.",
                 obs_title="Dust in Orion cores", proposal_abstract="7 m survey of Orion cores; 50% of the mass.",
                 science_keyword="Inter-Stellar Medium (ISM)/Molecular clouds", scientific_category="ISM",
                 group_ous_uid="uid://A001/X1300/X2", member_ous_uid="uid://A001/X1300/X3",
                 asdm_uid="uid://A002/Xe0a0a0/X11", schedblock_name="Orion_a_07_7M", band_list="7",
                 antenna_arrays="N601:CM01 N602:CM02 N603:CM03")
    out.append(Mous("2018.1.00123.S", "uid://A001/X1300/X1", "uid://A001/X1300/X2", "uid://A001/X1300/X3",
                    ["uid://A002/Xe0a0a0/X11"], release="2020-06-01T00:00:00.000",
                    rows=[_row(seven, target_name="Orion_KL", s_ra=83.8221, s_dec=-5.3911, frequency=343.5, res=4.5),
                          _row(seven, target_name="OMC-2", s_ra=83.85, s_dec=-5.17, frequency=343.5, res=4.5)]))
    # proprietary, released in the future
    prop = dict(obs_publisher_did="ADS/JAO.ALMA#2025.1.00999.S", proposal_id="2025.1.00999.S",
                data_rights="Proprietary", obs_release_date="2027-09-30T00:00:00.000",
                obs_creator_name="Secret, P.", obs_title="Proprietary Band 7 mosaic",
                proposal_abstract="Not yet public.", science_keyword="Galaxy structure & evolution",
                scientific_category="Local Universe", group_ous_uid="uid://A001/X2000/X2",
                member_ous_uid="uid://A001/X2000/X3", asdm_uid="uid://A002/X1100aa/X22",
                schedblock_name="NGC253_b_07_TM2", band_list="7", target_name="NGC253", is_mosaic="T")
    out.append(Mous("2025.1.00999.S", "uid://A001/X2000/X1", "uid://A001/X2000/X2", "uid://A001/X2000/X3",
                    ["uid://A002/X1100aa/X22"], public=False, release="2027-09-30T00:00:00.000",
                    rows=[_row(prop, s_ra=11.888, s_dec=-25.288, frequency=345.8, half=0.01)]))
    # a calibrator-only row in the Band 3 project of the recorded DataLink responses
    cal = dict(obs_publisher_did="ADS/JAO.ALMA#2017.1.01185.S", proposal_id="2017.1.01185.S",
               data_rights="Public", obs_release_date="2019-05-01T00:00:00.000", obs_creator_name="Cloud, F.",
               obs_title="The 50 km/s cloud", proposal_abstract="Band 3 lines toward the Galactic centre.",
               science_keyword="Inter-Stellar Medium (ISM)/Molecular clouds", scientific_category="ISM",
               group_ous_uid="uid://A001/X12a3/Xe8", member_ous_uid=RECORDED_MOUS,
               asdm_uid="uid://A002/Xd28a9e/X71b8", schedblock_name="50_kms_c_03_TM1", band_list="3")
    out.append(Mous("2017.1.01185.S", "uid://A001/X12a3/Xe7", "uid://A001/X12a3/Xe8", RECORDED_MOUS,
                    ["uid://A002/Xd28a9e/X71b8"], release="2019-05-01T00:00:00.000", layout="recorded",
                    rows=[_row(cal, target_name="50_kms_cloud", s_ra=266.2208, s_dec=-28.9939, frequency=90.5,
                               is_mosaic="T", half=0.02),
                          _row(cal, target_name="J1744-3116", s_ra=266.0890, s_dec=-31.2717, frequency=90.5,
                               science_observation="F", scan_intent="CALIBRATE_PHASE")]))
    return out


MOUSES = _mouses()


# ---------------------------------------------------------------------------------------------- files

def _synthetic(name: str, size: int) -> bytes:
    """Deterministic bytes for a file name (no compression can hide a wrong byte)."""
    seed = hashlib.sha256(name.encode()).digest()
    out = bytearray()
    block = seed
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:size])


def fits_header(nbytes: int, extra: tuple[str, ...] = ()) -> bytes:
    """A FITS primary header for *nbytes* of 8-bit data in one axis (blocks of 2880 bytes)."""
    cards = ["SIMPLE  =                    T", "BITPIX  =                    8", "NAXIS   =                    1",
             f"NAXIS1  = {nbytes:20d}", "ORIGIN  = 'almatools archive emulator'", *extra, "END"]
    text = "".join(c.ljust(80) for c in cards)
    return text.encode("ascii").ljust(-(-len(text) // 2880) * 2880, b" ")


def _fits(name: str, size: int) -> bytes:
    """A real FITS file of about *size* bytes whose data are :func:`_synthetic` bytes (so every byte is checked)."""
    data = _synthetic(name, size)
    return fits_header(len(data)) + data + bytes(-len(data) % 2880)


def _gzip(name: str, size: int) -> bytes:
    """A real gzip stream (mtime 0, so deterministic) of *size* synthetic bytes."""
    import gzip
    return gzip.compress(_synthetic(name, size), mtime=0)


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path, data in members.items():
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), 1_600_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _delivery_files(m: Mous, workdir: Path) -> dict[str, dict[str, bytes]]:
    """The delivery of *m* by role: relative path in the MOUS tree -> bytes."""
    if m.example:
        from almatools.example import build_member_ous
        tree = build_member_ous(workdir / "example-build", "pipeline")
        files = {p.relative_to(tree).as_posix(): p.read_bytes() for p in sorted(tree.rglob("*")) if p.is_file()}
    else:
        M = uid_path(m.mous)
        files = {f"member.{M}.README.txt": f"README of Member OUS {m.mous} ({m.project}).\n".encode(),
                 f"product/member.{M}.{m.rows[0]['target_name']}_sci.spw25.cube.I.pbcor.fits":
                     _fits(m.mous + "cube", 300_000),
                 f"product/member.{M}.{m.rows[0]['target_name']}_sci.spw25.cube.I.pb.fits.gz":
                     _gzip(m.mous + "pb", 60_000),
                 f"script/member.{M}.scriptForPI.py": b"# scriptForPI\n",
                 f"qa/member.{M}.qa2_report.html": b"<html>QA2 PASS</html>\n",
                 f"log/member.{M}.{m.project}_{M}.log.tgz": _gzip(m.mous + "log", 5_000)}
        for eb in m.ebs:
            files[f"calibration/{uid_path(eb)}.calibration.tgz"] = _gzip(eb + "cal", 40_000)
            files[f"script/{uid_path(eb)}.ms.scriptForCalibration.py"] = b"# scriptForCalibration\n"
    roles = {"readme": {}, "product": {}, "auxiliary": {}}
    for rel, data in files.items():
        top = rel.split("/", 1)[0]
        role = "readme" if rel.endswith("README.txt") else "product" if top == "product" else "auxiliary"
        roles[role][rel] = data
    roles["raw"] = {f"raw/{uid_path(eb)}.asdm.sdm/{part}": _synthetic(eb + part, 20_000)
                    for eb in m.ebs for part in ("ASDM.xml", "Main.xml", "ASDMBinary/uid___A002_X1_X1")}
    return roles


def _tree_prefix(m: Mous) -> str:
    return (f"{m.project}/science_goal.{uid_path(m.sgous)}/group.{uid_path(m.gous)}/"
            f"member.{uid_path(m.mous)}/")


# ----------------------------------------------------------------------------------------- DataLink

_FIELDS = """<FIELD name="ID" datatype="char" arraysize="*" ucd="meta.id;meta.main"/>
<FIELD name="access_url" datatype="char" arraysize="*" ucd="meta.ref.url"/>
<FIELD name="service_def" datatype="char" arraysize="*" ucd="meta.ref"/>
<FIELD name="error_message" datatype="char" arraysize="*" ucd="meta.code.error"/>
<FIELD name="semantics" datatype="char" arraysize="*" ucd="meta.code"/>
<FIELD name="description" datatype="char" arraysize="*" ucd="meta.note"/>
<FIELD name="content_type" datatype="char" arraysize="*" ucd="meta.code.mime"/>
<FIELD name="content_length" datatype="long" ucd="phys.size;meta.file" unit="byte"/>
<FIELD name="readable" datatype="boolean"><DESCRIPTION>the caller is allowed to use this link with the current authenticated identity</DESCRIPTION></FIELD>"""


_QUOTE = {'"': "&quot;"}  # escape() leaves quotes alone; attribute values need them escaped


def _votable(rows: list[tuple], services: list[tuple[str, str]]) -> str:
    trs = "\n".join("<TR>" + "".join(f"<TD>{escape(str(v))}</TD>" if v not in (None, "") else "<TD/>"
                                     for v in r) + "</TR>" for r in rows)
    res = "\n".join(
        f'<RESOURCE type="meta" utype="adhoc:service" ID="{escape(sid, _QUOTE)}">'
        '<PARAM name="standardID" datatype="char" arraysize="*" value="ivo://ivoa.net/std/DataLink#links-1.0"/>'
        f'<PARAM name="accessURL" datatype="char" arraysize="*" value="{escape(url, _QUOTE)}"/></RESOURCE>'
        for sid, url in services)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<VOTABLE xmlns="http://www.ivoa.net/xml/VOTable/v1.3" '
            f'version="1.4"><RESOURCE type="results"><TABLE>{_FIELDS}<DATA><TABLEDATA>\n{trs}\n'
            f'</TABLEDATA></DATA></TABLE></RESOURCE>{res}</VOTABLE>\n')


def _datalink_name(ident: str) -> list[str]:
    """File names nginx looks up for ``ID=<ident>``: as clients percent-encode it, and verbatim."""
    from urllib.parse import quote
    return [quote(ident, safe=""), quote(ident, safe="/:")]


def publishes_sizes(m: Mous) -> bool:
    """Whether the emulator's DataLink gives *m*'s sizes and nginx its files' digests.

    Real DataLink documents sometimes carry no sizes (``content_length`` -1) and the real
    archive sends no digests, so about a third of the Member OUS (chosen by their uid, so
    whatever the catalogue holds) are served that way; never the embedded example.
    """
    return m.example or hashlib.sha256(m.mous.encode()).digest()[0] % 3 != 0


def build_site(root: str | os.PathLike, base_url: str) -> dict:
    """Write the web root (``datalink/``, ``dataPortal/``) and the ObsCore CSV; return a manifest.

    The manifest maps every dataPortal file name to ``{"size", "sha256", "mous", "public", "sized"}``;
    ``sized`` is False for files whose DataLink row has no size and whose server answer no digest.
    """
    root = Path(root)
    portal, dl = root / "www" / "dataPortal", root / "www" / "datalink"
    protected = root / "www" / "dataPortal" / "proprietary"
    for d in (portal, dl, protected):
        d.mkdir(parents=True, exist_ok=True)
    manifest = {}

    def publish(name: str, data: bytes, m: Mous) -> str:
        target = (protected if not m.public else portal) / name
        target.write_bytes(data)
        manifest[name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "mous": m.mous,
                          "public": m.public, "sized": publishes_sizes(m)}
        return f"{base_url}/dataPortal/{name}"

    def write_dl(ident: str, text: str) -> None:
        for name in _datalink_name(ident):
            p = dl / f"{name}.xml"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)

    for m in MOUSES:
        if m.layout == "recorded":
            _serve_recorded(m, base_url, write_dl)
            continue
        roles = _delivery_files(m, root)
        prefix, M = _tree_prefix(m), uid_path(m.mous)
        readable = "true" if m.public else "false"

        def length(data: bytes) -> int:
            return len(data) if publishes_sizes(m) else -1
        rows, services = [], []
        (readme_rel, readme), = roles["readme"].items()
        url = publish(f"member.{M}.README.txt", readme, m)
        rows.append((m.mous, url, "", "", "#documentation", f"Download documentation for ./{m.mous}|README.",
                     "text/plain", length(readme), readable))
        for role, tarname, semantics in (("product", f"{m.project}_{M}_001_of_001.tar", "#this"),
                                         ("auxiliary", f"{m.project}_{M}_auxiliary.tar", "#auxiliary")):
            data = _tar({prefix + rel: b for rel, b in roles[role].items()})
            url = publish(tarname, data, m)
            rows.append((m.mous, url, "", "", semantics, f"Download dataset of type: {role}, and class: N/A.",
                         "application/x-tar", length(data), readable))
            listing_url = f"{base_url}/datalink/sync?ID={tarname}"
            if m.layout == "legacy":
                rows.append((m.mous, listing_url, "", "", "#datalink", f"Contents of {tarname}",
                             "application/x-votable+xml;content=datalink", "", readable))
            else:
                rows.append((m.mous, "", f"DataLink.{tarname}", "", semantics, f"Contents of {tarname}",
                             "application/x-votable+xml;content=datalink", "", readable))
                services.append((f"DataLink.{tarname}", listing_url))
            inner = []
            for rel, b in roles[role].items():
                name = rel.rsplit("/", 1)[-1]
                u = publish(name, b, m)
                kind = rel.split("/", 1)[0]
                inner.append((tarname, u, "", "", semantics, f"Download dataset of type: {kind}, and class: "
                              f"{kind.upper()}. path: {rel}", _media_type(name), length(b), readable))
            write_dl(tarname, _votable(inner, []))
        for eb in m.ebs:
            members = {prefix + rel: b for rel, b in roles["raw"].items() if uid_path(eb) in rel}
            data = _tar(members)
            url = publish(f"{m.project}_{uid_path(eb)}.asdm.sdm.tar", data, m)
            rows.append((m.mous, url, "", "", "#progenitor", "Download raw data of execution block " + eb,
                         "application/x-tar", length(data), readable))
        write_dl(m.mous, _votable(rows, services))
        m.files = {r[4]: r[1] for r in rows}
    return manifest


def _media_type(name: str) -> str:
    """The content_type the archive's DataLink gives a delivery file."""
    low = name.lower()
    return ("image/fits" if low.endswith(".fits") else "application/gzip" if low.endswith((".gz", ".tgz"))
            else "text/html" if low.endswith(".html") else "text/plain" if low.endswith((".txt", ".py", ".dat"))
            else "application/octet-stream")


def _serve_recorded(m: Mous, base_url: str, write_dl) -> None:
    """astroquery's recorded DataLink responses, pointing at the emulator (their files are not served)."""
    from importlib.resources import files
    data = files("astroquery.alma.tests") / "data"
    hosts = ("https://almascience.org", "https://2022jun.asa-test.hq.eso.org")

    def rewrite(text: str) -> str:
        for h in hosts:
            text = text.replace(h, base_url)
        return text
    write_dl(m.mous, rewrite((data / "alma-datalink.xml").read_text()))
    M = uid_path(m.mous)
    write_dl(f"{m.project}_{M}_001_of_001.tar", rewrite((data / "alma-datalink-recurse-this.xml").read_text()))
    write_dl(f"{m.project}_{M}_auxiliary.tar", rewrite((data / "alma-datalink-recurse-aux.xml").read_text()))


def write_obscore_csv(path: str | os.PathLike) -> int:
    """All rows as the CSV DaCHS imports; returns the row count."""
    import csv
    names = [c[0] for c in COLUMNS]
    n = 0
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=names, extrasaction="raise")
        w.writeheader()
        for m in MOUSES:
            for row in m.rows:
                w.writerow({k: ("" if row.get(k) is None else row.get(k, "")) for k in names})
                n += 1
    return n
