"""What a Member OUS delivers, from the archive's DataLink service (DOMAIN.md §1.4).

Both layouts the archive has used are read: tar listings advertised as ad-hoc
DataLink services (``service_def="DataLink.<tar>"``) and the older rows with
``semantics="#datalink"`` whose ``access_url`` carries ``ID=<tar>``.

A DataLink document is server data: it is read with a size bound, any parse
failure becomes :class:`DataLinkError` naming the URL, and every file name and
tree path in it passes :mod:`.names` (rows that fail are refused, with the
reason, and the rest is used).
"""

from __future__ import annotations

import fnmatch
import io
import re
import warnings
from dataclasses import asdict, dataclass
from urllib.parse import parse_qs, quote, urlparse

from almatools import log
from almatools.errors import AlmatoolsError
from almatools.example import uid_path

from .names import UnsafeName, name_from_url, tree_path

__all__ = ["Link", "Document", "DataLinkError", "UnknownIdentifier", "fetch_document", "read_document", "resolve",
           "links_from_document", "list_tar", "select", "unique_names", "url_links", "ROLES", "uid_path",
           "MAX_DOCUMENT"]

#: roles in the order the Request Handler lists them; the first three are its default selection
ROLES = ("readme", "product", "auxiliary", "raw", "semipass", "external")
LISTING_TYPE = "application/x-votable+xml;content=datalink"
DATALINK_STANDARD = "ivo://ivoa.net/std/DataLink#links-1.0"
#: a DataLink document larger than this is refused (the largest real ones, for Member OUS with many
#: execution blocks and auxiliary files, are well under 1 MB)
MAX_DOCUMENT = 64 << 20
#: a file larger than this (1 PB) is not a real size
MAX_SIZE = 1 << 50


class DataLinkError(AlmatoolsError):
    """A DataLink answer that is not a usable DataLink document."""


class UnknownIdentifier(DataLinkError):
    """The archive does not know the Member OUS (or tar) asked for."""

    def __init__(self, ident: str, url: str, detail: str):
        self.ident, self.url, self.detail = ident, url, detail
        super().__init__(f"the archive does not know {ident}: {url} answered {detail}")


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
    size_from: str = ""    # "datalink", "HEAD" or "" (unknown)

    @property
    def is_tar(self) -> bool:
        return self.name.endswith(".tar")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Document:
    """A parsed DataLink response: plain-Python rows and the ad-hoc DataLink services (ID -> accessURL)."""

    url: str
    rows: list[dict]
    services: dict[str, str]


# ------------------------------------------------------------------------------------ reading

def fetch_document(session, url: str, ident: str, timeout: float = 120.0) -> Document:
    """GET a DataLink document (at most :data:`MAX_DOCUMENT` bytes) and read it.

    HTTP 404 and documents whose rows only carry errors raise :class:`UnknownIdentifier`;
    5xx raise ``pyvo.dal.DALServiceError`` (so another mirror is tried).
    """
    import pyvo
    with session.get(url, stream=True, timeout=(15, timeout)) as r:
        if r.status_code in (400, 404, 410):
            raise UnknownIdentifier(ident, url, f"HTTP {r.status_code}")
        if r.status_code >= 500:
            raise pyvo.dal.DALServiceError(f"HTTP {r.status_code} from {url}", code=r.status_code, url=url)
        if r.status_code != 200:
            raise DataLinkError(f"DataLink {url} answered HTTP {r.status_code}")
        ctype = r.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if ctype in ("text/html", "application/xhtml+xml"):
            raise DataLinkError(f"DataLink {url} answered with an HTML page, not a DataLink VOTable")
        data = bytearray()
        for block in r.iter_content(1 << 16):
            data += block
            if len(data) > MAX_DOCUMENT:
                raise DataLinkError(f"DataLink {url}: the document exceeds {MAX_DOCUMENT >> 20} MB; refused")
    doc = read_document(bytes(data), url)
    if doc.rows and all(row.get("error_message") for row in doc.rows) and not doc.services:
        raise UnknownIdentifier(ident, url, f"only errors ({doc.rows[0]['error_message'][:200]})")
    return doc


def read_document(data: bytes, url: str) -> Document:
    """Parse DataLink VOTable bytes; any failure is a :class:`DataLinkError` naming *url*."""
    import pyvo
    from astropy.io.votable import parse
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            votable = parse(io.BytesIO(data), verify="ignore")
            results = pyvo.dal.adhoc.DatalinkResults(votable, url=url)
            rows = _plain_rows(results.to_table())
            services = _services(results)
    except pyvo.dal.DALQueryError as exc:
        raise DataLinkError(f"DataLink {url} reports an error: {str(exc)[:300]}") from None
    except Exception as exc:  # the VOTable parser's many exception types, for bytes a server controls
        raise DataLinkError(f"DataLink {url}: not a readable DataLink VOTable ({type(exc).__name__}: "
                            f"{str(exc)[:200]})") from None
    return Document(url, rows, services)


def _plain_rows(table) -> list[dict]:
    """The rows as plain str/int/bool/None, column by column (numpy 2's string ufuncs break astroquery's
    filters on these columns; per-row access of a masked table is slow)."""
    columns = {}
    for c in table.colnames:
        col = table[c]
        values = col.tolist()  # masked entries come as None
        mask = getattr(col, "mask", None)
        if mask is not None and getattr(mask, "shape", ()) == (len(values),):
            values = [None if m else v for v, m in zip(values, mask.tolist())]
        columns[c] = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]
    return [dict(zip(columns, values)) for values in zip(*columns.values())] if columns else []


def _services(results) -> dict[str, str]:
    """ad-hoc DataLink services: ID -> accessURL."""
    out = {}
    for svc in results.iter_adhocservices():
        params = {p.name: p.value for p in svc.params}
        std = _text(params.get("standardID", ""))
        if std.startswith(DATALINK_STANDARD.split("#")[0]) and svc.ID:
            out[str(svc.ID)] = _text(params.get("accessURL", ""))
    return out


def _text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if hasattr(v, "item") and not isinstance(v, str):
        v = v.item()
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


# --------------------------------------------------------------------------------- rows -> links

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


def _size(v) -> int | None:
    """content_length as a size: a whole number of bytes, 0 < n < 1 PB; None otherwise (ALMA writes -1)."""
    try:
        n = int(str(v).strip()) if not isinstance(v, bool) and v is not None else None
    except ValueError:
        return None
    return n if n is not None and 0 < n < MAX_SIZE else None


def _link(row: dict, mous: str, url: str, role: str = "", **extra) -> Link:
    """The file a DataLink row points to; its role from the row's semantics unless given. Raises UnsafeName."""
    name = name_from_url(url)
    description = _text(row.get("description"))
    size = _size(row.get("content_length"))
    return Link(mous=mous, name=name, url=url,
                role=role or _role(_text(row.get("semantics")).strip(), description, name),
                size=size, readable=_bool(row.get("readable", True)),
                content_type=_text(row.get("content_type")).strip(),
                description=description, size_from="datalink" if size else "", **extra)


def unique_names(links: list[Link]) -> list[Link]:
    """*links* without repeats of a file name (the first one kept): one file may be reached several ways."""
    first: dict[str, Link] = {}
    for link in links:
        first.setdefault(link.name, link)
    return list(first.values())


def _datalink_url(base: str, ident: str) -> str:
    return f"{base}/datalink/sync?ID={quote(ident, safe='')}"


def links_from_document(doc: Document, mous: str, refused: list | None = None) -> tuple[list[Link], list[str]]:
    """The files a Member OUS document offers (README, tars, raw data) and the errors its rows report."""
    links, errors, listings = [], [], {}
    for row in doc.rows:
        if row.get("error_message"):
            errors.append(f"{mous}: {_text(row['error_message'])}")
            continue
        semantics = _text(row.get("semantics")).strip()
        ctype = _text(row.get("content_type")).strip()
        url = _text(row.get("access_url")).strip()
        sdef = _text(row.get("service_def")).strip()
        if semantics == "#cutout":
            continue
        if sdef in doc.services:  # current layout: the tar's listing is an ad-hoc service
            listing = doc.services[sdef]
            listings[_id_of(listing) or sdef.removeprefix("DataLink.")] = listing
            continue
        if semantics == "#datalink" or ctype.startswith(LISTING_TYPE):  # older layout
            ident = _id_of(url)
            if ident:
                listings[ident] = url
            continue
        if url:
            try:
                links.append(_link(row, mous, url))
            except UnsafeName as exc:
                _refuse(refused, exc, mous)
    for link in links:
        link.listing = listings.get(link.name, "")
    return links, errors


def _refuse(refused: list | None, exc: UnsafeName, mous: str) -> None:
    log.severe(f"{mous}: {exc}")
    if refused is not None:
        refused.append({"name": str(exc.value), "url": exc.source, "mous": mous, "status": "refused",
                        "error": str(exc)})


def resolve(session, base: str, mous: str, refused: list | None = None) -> tuple[list[Link], list[str]]:
    """The files of *mous* (top level: README, tars, raw data) and the DataLink errors reported."""
    doc = fetch_document(session, _datalink_url(base, mous), mous)
    return links_from_document(doc, mous, refused)


def _id_of(url: str) -> str:
    values = parse_qs(urlparse(url).query).get("ID")
    return values[0] if values else ""


def _bool(v) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "t", "1")
    return True if v is None else bool(v)


_TREE_DIRS = {"product": "product", "calibration": "calibration", "script": "script", "qa": "qa", "log": "log",
              "documentation": "log"}


def _tree_path(name: str, description: str, role: str, source: str) -> str:
    """Where a member of a tar belongs in the Member OUS tree: ``path:`` of its description, checked, or by kind."""
    m = re.search(r"path:\s*(\S+)", description)
    if m:
        return tree_path(m.group(1), f"the description of {name} in {source}")
    m = re.search(r"type:\s*(\w+)", description)
    kind = (m.group(1).lower() if m else "")
    if kind not in _TREE_DIRS:
        kind = ("product" if role == "product" else "log" if name.endswith(".log.tgz")
                else "calibration" if ".calibration" in name or name.endswith(".cont.dat")
                else "script" if name.endswith(".py") else "qa")
    return f"{_TREE_DIRS[kind]}/{name}"


def list_tar(session, tar: Link, refused: list | None = None) -> list[Link]:
    """The files inside *tar*, from its DataLink listing (empty when the service gives none)."""
    if not tar.listing:
        return []
    doc = fetch_document(session, tar.listing, tar.name)
    return members_from_document(doc, tar, refused)


def members_from_document(doc: Document, tar: Link, refused: list | None = None) -> list[Link]:
    members = []
    for row in doc.rows:
        url = _text(row.get("access_url")).strip()
        if not url or _text(row.get("semantics")) == "#cutout" or row.get("error_message"):
            continue
        try:
            member = _link(row, tar.mous, url, tar.role, parent=tar.name)
            member.tree_path = _tree_path(member.name, member.description, tar.role, doc.url)
        except UnsafeName as exc:
            _refuse(refused, exc, tar.mous)
            continue
        members.append(member)
    return members


def select(session, links: list[Link], roles: set[str], include: list[str], exclude: list[str],
           refused: list | None = None) -> list[Link]:
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
            inner = list_tar(session, link, refused)
            if not inner and link.listing == "":
                log.warn(f"{link.name}: the archive lists no contents; include patterns cannot choose inside it")
            chosen += [m for m in inner if matches(m.name, include) and not matches(m.name, exclude)]
    whole = {link.name for link in chosen if link.is_tar}  # a member of a tar taken whole comes with it
    return unique_names([link for link in chosen if not (link.parent and link.parent in whole)])


def url_links(urls: list[str]) -> list[Link]:
    """Links for a plain list of URLs (e.g. dataPortal URLs from a download script); sizes come from HEAD.

    A URL whose path names no safe file gets an empty name and the reason in its description: the
    server's ``Content-Disposition`` may still name it (else it is refused after the HEAD request).
    """
    out = []
    for url in urls:
        url = url.strip()
        if not url:
            continue
        try:
            out.append(Link(mous="", name=name_from_url(url), url=url, role="url", size=None))
        except UnsafeName as exc:
            out.append(Link(mous="", name="", url=url, role="url", size=None, description=str(exc)))
    return out
