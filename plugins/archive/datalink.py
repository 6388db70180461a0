"""What a Member OUS delivers, from the archive's DataLink service (DOMAIN.md §1.4).

Both layouts the archive has used are read: tar listings advertised as ad-hoc
DataLink services (``service_def="DataLink.<tar>"``) and the older rows with
``semantics="#datalink"`` whose ``access_url`` carries ``ID=<tar>``.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import asdict, dataclass
from urllib.parse import parse_qs, quote, urlparse

from almatools import log
from almatools.example import uid_path

__all__ = ["Link", "resolve", "list_tar", "select", "unique_names", "ROLES", "uid_path"]

#: roles in the order the Request Handler lists them; the first three are its default selection
ROLES = ("readme", "product", "auxiliary", "raw", "semipass", "external")
LISTING_TYPE = "application/x-votable+xml;content=datalink"
DATALINK_STANDARD = "ivo://ivoa.net/std/DataLink#links-1.0"


@dataclass
class Link:
    """One downloadable file."""

    mous: str
    name: str
    url: str
    role: str
    size: int | None
    readable: bool = True
    content_type: str = ""
    description: str = ""
    parent: str = ""       # the tar this file sits in, when it was chosen from a tar listing
    tree_path: str = ""    # where it belongs in the Member OUS tree (members of tars)
    listing: str = ""      # for tars: the DataLink URL listing their contents

    @property
    def is_tar(self) -> bool:
        return self.name.endswith(".tar")

    def as_dict(self) -> dict:
        return asdict(self)


def _role(semantics: str, description: str, name: str) -> str:
    text = f"{semantics} {description}".lower()
    if "semipass" in text:
        return "semipass"
    if "external" in text:
        return "external"
    if semantics == "#progenitor" or name.endswith(".asdm.sdm.tar"):
        return "raw"
    if semantics == "#documentation" and "readme" in name.lower():
        return "readme"
    if semantics == "#this":
        return "product"
    return "auxiliary"


def _link(row: dict, mous: str, url: str, role: str = "", **extra) -> Link:
    """The file a DataLink row points to; its role from the row's semantics unless given."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    description = row.get("description") or ""
    size = row.get("content_length")
    return Link(mous=mous, name=name, url=url,
                role=role or _role((row.get("semantics") or "").strip(), description, name),
                size=int(size) if size not in (None, "") and int(size) > 0 else None,
                readable=_bool(row.get("readable", True)), content_type=(row.get("content_type") or "").strip(),
                description=description, **extra)


def unique_names(links: list[Link]) -> list[Link]:
    """*links* without repeats of a file name (the first one kept): one file may be reached several ways."""
    first: dict[str, Link] = {}
    for link in links:
        first.setdefault(link.name, link)
    return list(first.values())


def _fetch(session, url: str):
    import pyvo
    return pyvo.dal.adhoc.DatalinkResults.from_result_url(url, session=session)


def _datalink_url(base: str, ident: str) -> str:
    return f"{base}/datalink/sync?ID={quote(ident, safe='')}"


def _rows(results) -> list[dict]:
    """Plain-Python rows (numpy 2's string ufuncs break astroquery's filters on these columns)."""
    table = results.to_table()
    out = []
    for r in table:
        row = {}
        for c in table.colnames:
            v = r[c]
            row[c] = None if (hasattr(v, "mask") and bool(v.mask)) or v is None else (
                v.decode() if isinstance(v, bytes) else v)
        out.append(row)
    return out


def _services(results) -> dict[str, str]:
    """ad-hoc DataLink services: ID → accessURL."""
    out = {}
    for svc in results.iter_adhocservices():
        params = {p.name: p.value for p in svc.params}
        std = params.get("standardID", "")
        std = std.decode() if isinstance(std, bytes) else str(std)
        if std.startswith(DATALINK_STANDARD.split("#")[0]):
            url = params.get("accessURL", "")
            out[svc.ID] = url.decode() if isinstance(url, bytes) else str(url)
    return out


def resolve(session, base: str, mous: str) -> tuple[list[Link], list[str]]:
    """The files of *mous* (top level: README, tars, raw data) and the DataLink errors reported."""
    results = _fetch(session, _datalink_url(base, mous))
    services = _services(results)
    links, errors, listings = [], [], {}
    for row in _rows(results):
        if row.get("error_message"):
            errors.append(f"{mous}: {row['error_message']}")
            continue
        semantics = (row.get("semantics") or "").strip()
        ctype = (row.get("content_type") or "").strip()
        url = (row.get("access_url") or "").strip()
        sdef = (row.get("service_def") or "").strip()
        if semantics == "#cutout":
            continue
        if sdef in services:  # current layout: the tar's listing is an ad-hoc service
            listing = services[sdef]
            listings[_id_of(listing) or sdef.removeprefix("DataLink.")] = listing
            continue
        if semantics == "#datalink" or ctype.startswith(LISTING_TYPE):  # older layout
            ident = _id_of(url)
            if ident:
                listings[ident] = url
            continue
        if url:
            links.append(_link(row, mous, url))
    for link in links:
        link.listing = listings.get(link.name, "")
    return links, errors


def _id_of(url: str) -> str:
    values = parse_qs(urlparse(url).query).get("ID")
    return values[0] if values else ""


def _bool(v) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "t", "1")
    return True if v is None else bool(v)


_TREE_DIRS = {"product": "product", "calibration": "calibration", "script": "script", "qa": "qa", "log": "log",
              "documentation": "log"}


def _tree_path(name: str, description: str, role: str) -> str:
    m = re.search(r"path:\s*(\S+)", description)
    if m:
        return m.group(1)
    m = re.search(r"type:\s*(\w+)", description)
    kind = (m.group(1).lower() if m else "")
    if kind not in _TREE_DIRS:
        kind = ("product" if role == "product" else "log" if name.endswith(".log.tgz")
                else "calibration" if ".calibration" in name or name.endswith(".cont.dat")
                else "script" if name.endswith(".py") else "qa")
    return f"{_TREE_DIRS[kind]}/{name}"


def list_tar(session, tar: Link) -> list[Link]:
    """The files inside *tar*, from its DataLink listing (empty when the service gives none)."""
    if not tar.listing:
        return []
    results = _fetch(session, tar.listing)
    members = []
    for row in _rows(results):
        url = (row.get("access_url") or "").strip()
        if not url or (row.get("semantics") or "") == "#cutout" or row.get("error_message"):
            continue
        member = _link(row, tar.mous, url, tar.role, parent=tar.name)
        member.tree_path = _tree_path(member.name, member.description, tar.role)
        members.append(member)
    return members


def select(session, links: list[Link], roles: set[str], include: list[str], exclude: list[str]) -> list[Link]:
    """The files to fetch: chosen roles, include/exclude patterns (fnmatch on file names), no duplicates.

    With *include* patterns, a tar whose own name does not match is opened (its DataLink listing)
    and only its matching members are taken.
    """
    def matches(name, patterns):
        return any(fnmatch.fnmatch(name, p) for p in patterns)
    chosen = []
    for link in links:
        if link.role not in roles or matches(link.name, exclude):
            continue
        if not include or matches(link.name, include):
            chosen.append(link)
        elif link.is_tar:
            inner = list_tar(session, link)
            if not inner and link.listing == "":
                log.warn(f"{link.name}: the archive lists no contents; include patterns cannot choose inside it")
            chosen += [m for m in inner if matches(m.name, include) and not matches(m.name, exclude)]
    whole = {link.name for link in chosen if link.is_tar}  # a member of a tar taken whole comes with it
    return unique_names([link for link in chosen if not (link.parent and link.parent in whole)])
