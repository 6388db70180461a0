"""What the archive emulator publishes: ObsCore rows, DataLink documents and dataPortal files.

Rows are ALMA's ``ivoa.obscore`` (:mod:`.obscore`: one row per Member OUS, target and
spectral window; a seeded catalogue of about 60 Member OUS in every band, 12 m/7 m/TP,
mosaics, public and proprietary, plus the real row astroquery records for M83
(2017.1.00079.S) and the embedded example Member OUS (TW Hya, 2019.1.00001.S, served as
real delivery tars)).
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

from . import obscore

__all__ = ["COLUMNS", "Mous", "MOUSES", "build_site", "uid_path", "RECORDED_MOUS"]

RECORDED_MOUS = obscore.RECORDED_MOUS  # astroquery's recorded DataLink responses
#: the published ObsCore columns (:class:`.obscore.Column`: name, DaCHS type, unit, UCD, utype …)
COLUMNS = obscore.COLUMNS


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


def _mouses() -> list[Mous]:
    """The catalogue's Member OUS (:func:`.obscore.member_ouses`: seeded, realistic, plus the hand-written ones)."""
    return [Mous(**spec) for spec in obscore.member_ouses()]


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
    names = [c.name for c in COLUMNS]
    n = 0
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=names, extrasaction="raise")
        w.writeheader()
        for m in MOUSES:
            for row in m.rows:
                w.writerow({k: ("" if row.get(k) is None else row.get(k, "")) for k in names})
                n += 1
    return n
