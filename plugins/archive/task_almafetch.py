"""almafetch: the archive's Request Handler and download script as a CASA task."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import sys
import time
from pathlib import Path

from almatools import limits, log
from almatools.errors import TaskParameterError

from . import datalink
from .adql import quote, uid_clause
from .credentials import CredentialScope
from .download import Downloader, Item, is_complete, partial_bytes
from .service import mirror_urls, run_with_failover
from .unpack import UnsafeArchive, place_file, safe_extract

TASK = "almafetch"
PASSWORD_ENV = "ALMATOOLS_ARCHIVE_PASSWORD"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]?)(i?)b?\s*$", re.I)


def almafetch(uid=None, project_code="", queryfile="", urls=None, service="", outdir=".", readme=True, product=True,
              auxiliary=True, raw=False, semipass=False, external=False, include=None, exclude=None,
              expand_tarfiles=False, dryrun=False, unpack=False, nstreams=5, reserve="100MB", force=False,
              username="", retries=8, timeout=60.0):
    """Download Member OUS data; see ``xml/almafetch.xml``."""
    import requests
    keep = _bytes(reserve)
    outdir = Path(outdir or ".")
    roles = {r for r, on in (("readme", readme), ("product", product), ("auxiliary", auxiliary), ("raw", raw),
                             ("semipass", semipass), ("external", external)) if on}
    url_list = [u for u in ([urls] if isinstance(urls, str) else list(urls or [])) if str(u).strip()]
    mouses = _mous_list(uid or [], project_code, queryfile, service, required=not url_list)
    session = requests.Session()
    links, errors, refused, base = [], [], [], ""
    for mous, source in mouses.items():
        try:
            (found, errs), base = run_with_failover(service, lambda b: datalink.resolve(session, b, mous, refused))
        except datalink.UnknownIdentifier as exc:
            raise TaskParameterError(TASK, source, mous, f"names a Member OUS the archive does not know ({exc.url} "
                                     f"answered {exc.detail})") from None
        errors += errs
        chosen = datalink.select(session, found, roles, list(include or []), list(exclude or []), refused)
        log.info(f"{mous}: {len(found)} file(s) offered, {len(chosen)} chosen")
        links += chosen
    for e in errors:
        log.warn(f"DataLink: {e}")
    links += datalink.url_links(url_list)
    scope_base = base or mirror_urls(service)[0]

    auth, proprietary = None, []
    closed = [link for link in links if not link.readable]
    if closed or (url_list and username):
        auth = _credentials(username, scope_base)
        if auth is None and closed:
            proprietary = _release_dates({link.mous for link in closed}, scope_base)
            for mous, date in proprietary.items():
                log.warn(f"{mous} is proprietary until {date or 'an unknown date'}: its files are listed, not "
                         f"fetched; give username= (password in ${PASSWORD_ENV}, the keyring or at the prompt)")
    downloader = Downloader(nstreams=nstreams, retries=retries, timeout=timeout, scope=CredentialScope(scope_base, auth))
    links = _sizes_and_names(downloader, links, outdir, refused, can_authenticate=auth is not None)
    fetchable = [link for link in links if link.readable or auth is not None]

    listing = [dict(link.as_dict(), dest=str(_dest(outdir, link))) for link in links]
    to_get = [link for link in fetchable if not is_complete(_dest(outdir, link), link.size)]
    need = sum((link.size or 0) - partial_bytes(_dest(outdir, link)) for link in to_get)
    unsized = [link.name for link in to_get if link.size is None]
    total = sum(link.size or 0 for link in links)
    existing = next(p for p in (outdir.resolve(), *outdir.resolve().parents) if p.exists())
    free = shutil.disk_usage(existing).free  # outdir itself is only created when something is written
    _log_listing(links, total, need, free)
    if unsized:
        log.warn(f"{len(unsized)} file(s) of unknown size (the archive and the server give none): the disk check "
                 f"cannot count them: {', '.join(unsized[:5])}{' ...' if len(unsized) > 5 else ''}")
    result = {"mous": list(mouses), "service": base, "files": listing, "nfiles": len(links), "bytes_total": total,
              "bytes_needed": need, "disk_free": free, "proprietary": proprietary, "errors": errors}
    if expand_tarfiles:
        result["members"] = _members(session, links, refused)
    if need + keep > free and not force:
        raise TaskParameterError(TASK, "outdir", str(outdir),
                                 f"has {_human(free)} free but the download needs {_human(need)} plus "
                                 f"reserve={reserve}: free some space, choose another outdir, select fewer files "
                                 f"(include/exclude, raw=False) or set force=True")
    if dryrun:
        result.update(dryrun=True, failed=refused, ok=not refused)
        return result

    outdir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with log.progress(total=need, desc="almafetch", unit="B") as bar:
        downloader.progress = bar
        outcomes = downloader.fetch_all([Item(link.url, str(_dest(outdir, link)), link.size,
                                              None if link.role == "url" and link.readable else not link.readable,
                                              link.content_type) for link in fetchable])
    elapsed = time.monotonic() - start
    status = {o.name: o for o in outcomes}
    for item in result["files"]:
        o = status.get(item["name"])
        item["status"] = o.status if o else "proprietary"
        item["attempts"] = o.attempts if o else 0
        item["verified"] = o.verified if o else []
        if o and o.error:
            item["error"] = o.error
    failed = [o for o in outcomes if o.status in ("failed", "unauthorized", "unverified")]
    transferred = downloader.transferred
    result.update(bytes_downloaded=transferred, elapsed_s=elapsed,
                  rate_MBps=transferred / 1e6 / elapsed if elapsed > 0 else 0.0,
                  ndownloaded=sum(o.status == "downloaded" for o in outcomes),
                  npresent=sum(o.status == "present" for o in outcomes), nfailed=len(failed),
                  failed=refused + [{"name": o.name, "status": o.status, "error": o.error} for o in failed])
    log.info(f"almafetch: {result['ndownloaded']} downloaded, {result['npresent']} already complete, "
             f"{len(failed)} failed; {_human(transferred)} in {elapsed:.1f} s")
    for o in failed:
        log.severe(f"{o.name}: {o.status}: {o.error} (run almafetch again to resume)")
    if unpack and not failed:
        result["trees"] = _unpack(outdir, [link for link in fetchable if status[link.name].status in
                                           ("downloaded", "present")], result["failed"])
    elif unpack:
        log.warn("not unpacking: some files failed; run almafetch again to complete them first")
    result["ok"] = not result["failed"]
    return result


def _sizes_and_names(downloader: Downloader, links, outdir: Path, refused: list, can_authenticate: bool) -> list:
    """HEAD every file DataLink gave no size for (and every plain URL, for its name); drop the refused ones.

    Proprietary files are asked about only with credentials (without, they are listed, not fetched).
    """
    unknown = [link for link in links if link.size is None and (link.readable or can_authenticate)]
    probes = downloader.probe_all([Item(link.url, str(outdir / (link.name or "unnamed")), None,
                                        None if link.role == "url" else not link.readable, link.content_type)
                                   for link in unknown])
    for link, probe in zip(unknown, probes):
        if probe.size:
            link.size, link.size_from = probe.size, "HEAD"
        if link.role == "url":
            link.name = probe.filename or link.name
            link.readable = not probe.needs_auth
            link.content_type = link.content_type or probe.content_type.split(";", 1)[0].strip()
        if probe.error:
            log.warn(f"{link.name or link.url}: {probe.error}")
    kept = []
    for link in links:
        if not link.name:
            refused.append({"name": "", "url": link.url, "mous": "", "status": "refused", "error": link.description})
            log.severe(link.description)
        else:
            kept.append(link)
    return datalink.unique_names(kept)


def _members(session, links, refused: list) -> list[dict]:
    """Every member of every tar selected (astroquery's ``expand_tarfiles``), from the tars' DataLink listings."""
    members = []
    for link in links:
        if link.is_tar:
            inner = datalink.list_tar(session, link, refused)
            for m in inner:
                log.info(f"  {link.name} :: {m.tree_path or m.name} ({_human(m.size or 0)})")
            members += [m.as_dict() for m in inner]
    return members


# ------------------------------------------------------------------------------------------ inputs

#: an almaquery result file larger than this is not read (the whole ALMA archive is ~100 MB as CSV)
MAX_QUERYFILE = 1 << 30


def _mous_list(uids, project_code: str, queryfile: str, service: str, required: bool = True) -> dict[str, str]:
    """The Member OUS to fetch, each with the parameter that named it."""
    out: dict[str, str] = {}

    def add(text, param):
        try:
            found = re.findall(r"'([^']+)'", uid_clause("member_ous_uid", str(text)))
        except ValueError:
            raise TaskParameterError(TASK, param, text, "is not a Member OUS uid like uid://A001/X1465/X3") from None
        for u in found:
            out.setdefault(u, param)
    uids = [uids] if isinstance(uids, str) else list(uids)
    for u in uids:
        if u.strip():
            add(u, "uid")
    if project_code:
        import pyvo
        code = project_code.strip()
        if not re.fullmatch(r"\d{4}\.[A-Z0-9]\.\d{5}\.[A-Z]", code):
            raise TaskParameterError(TASK, "project_code", project_code, "is not an ALMA project code "
                                     "(like 2019.1.00001.S)")
        q = f"select distinct member_ous_uid from ivoa.obscore where proposal_id={quote(code)}"
        table, _ = run_with_failover(service, lambda b: pyvo.dal.TAPService(f"{b}/tap").run_sync(q).to_table())
        if not len(table):
            raise TaskParameterError(TASK, "project_code", code, "has no Member OUS in the archive")
        for u in table["member_ous_uid"]:
            add(u, "project_code")
    if queryfile:
        for u in _queryfile_uids(queryfile):
            add(u, "queryfile")
    if not out and required:
        raise TaskParameterError(TASK, "uid", uids, "give Member OUS uid(s), a project_code, a queryfile or urls")
    return out


def _queryfile_uids(queryfile: str) -> list[str]:
    """The member_ous_uid column of an almaquery result (VOTable, CSV, TSV): a regular file of bounded size."""
    import io
    from astropy.table import Table
    if not os.path.exists(queryfile):
        raise TaskParameterError(TASK, "queryfile", queryfile, "does not exist")
    data = limits.read_bytes(queryfile, MAX_QUERYFILE)  # a FIFO or a device is refused, not waited on
    fmt = {".csv": "ascii.csv", ".tsv": "ascii.tab"}.get(Path(queryfile).suffix.lower(), "votable")
    try:
        table = Table.read(io.BytesIO(data), format=fmt)
    except Exception as exc:
        raise TaskParameterError(TASK, "queryfile", queryfile, f"cannot be read as {fmt} ({exc})") from None
    if "member_ous_uid" not in table.colnames:
        raise TaskParameterError(TASK, "queryfile", queryfile, "has no member_ous_uid column (is it an "
                                 "almaquery result?)")
    return [str(u) for u in table["member_ous_uid"] if str(u).strip() and str(u) != "--"]


def _credentials(username: str, base: str):
    """(user, password) from $ALMATOOLS_ARCHIVE_PASSWORD, the keyring or a prompt; never logged or stored."""
    if not username:
        return None
    password = os.environ.get(PASSWORD_ENV)
    if not password:
        try:
            import keyring
            password = keyring.get_password(f"almatools:{base}", username)
        except Exception:  # no keyring backend on this machine
            password = None
    if not password and sys.stdin is not None and sys.stdin.isatty():
        password = getpass.getpass(f"ALMA archive password for {username}: ")
    if not password:
        raise TaskParameterError(TASK, "username", username, f"needs a password: set ${PASSWORD_ENV}, store it "
                                 f"in the keyring (service 'almatools:{base}') or run interactively")
    return (username, password)


def _release_dates(mouses: set[str], base: str) -> dict[str, str]:
    import pyvo
    q = ("select distinct member_ous_uid, obs_release_date from ivoa.obscore where "
         + uid_clause("member_ous_uid", sorted(mouses)))
    try:
        table = pyvo.dal.TAPService(f"{base}/tap").run_sync(q).to_table()
    except Exception as exc:
        log.warn(f"release dates unavailable ({exc})")
        return {m: "" for m in mouses}
    out = {m: "" for m in mouses}
    for row in table:
        out[str(row["member_ous_uid"])] = str(row["obs_release_date"])[:10]
    return out


# ---------------------------------------------------------------------------------------- helpers

def _dest(outdir: Path, link) -> Path:
    return outdir / link.name


def _bytes(text: str) -> int:
    """'100MB', '2 GB', '1.5GiB', '0' as bytes (k, M, G, T, P: powers of 1000; with i: of 1024)."""
    m = _SIZE.match(str(text))
    if not m:
        raise TaskParameterError(TASK, "reserve", text, "is not a size such as '100MB', '2GB' or '1.5GiB'")
    power = "kmgtp".find(m.group(2).lower()) + 1
    return int(float(m.group(1)) * (1024 if m.group(3) else 1000) ** power)


def _human(n: float) -> str:
    for scale, unit in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


def _log_listing(links, total: int, need: int, free: int) -> None:
    log.info(f"{'file':70s} {'role':10s} {'size':>10s}")
    for link in links:
        flag = "" if link.readable else "  (proprietary)"
        size = _human(link.size) if link.size is not None else "unknown"
        log.info(f"{link.name[:70]:70s} {link.role:10s} {size:>10s}{flag}")
    log.info(f"{len(links)} file(s), {_human(total)}; still to download {_human(need)}; {_human(free)} free")


def _unpack(outdir: Path, links, failed: list) -> list[str]:
    """Tars into the standard tree; README and single files into their Member OUS directory.

    A tar refused by the safe extraction, or a file that cannot be placed, goes to *failed*; the rest
    is unpacked.
    """
    trees = {}
    for link in links:
        if link.is_tar:
            path = outdir / link.name
            try:
                names = safe_extract(path, outdir)
            except UnsafeArchive as exc:
                log.severe(f"not unpacked: {exc}")
                failed.append({"name": link.name, "status": "refused", "error": str(exc)})
                continue
            member_dirs = {n.split("/member.", 1)[0] + "/member." + n.split("/member.", 1)[1].split("/", 1)[0]
                           for n in names if "/member." in n}
            for d in member_dirs:
                trees[link.mous] = str(outdir / d)
            log.info(f"unpacked {link.name}: {len(names)} file(s)")
    for link in links:
        if link.is_tar:
            continue
        tree = trees.get(link.mous)
        if tree is None:
            log.warn(f"{link.name}: no tar of {link.mous or 'its Member OUS'} was unpacked, so its tree is unknown; "
                     f"left in {outdir}")
            continue
        try:
            place_file(outdir / link.name, tree, link.tree_path or link.name)
        except (UnsafeArchive, OSError) as exc:
            log.severe(f"{link.name} not placed in {tree}: {exc}")
            failed.append({"name": link.name, "status": "refused", "error": str(exc)})
    for mous, tree in trees.items():
        for sub in ("calibration", "log", "product", "qa", "raw", "script"):
            (Path(tree) / sub).mkdir(exist_ok=True)
        log.info(f"{mous}: {tree}")
    return sorted(set(trees.values()))
