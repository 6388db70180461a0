"""almafetch: the archive's Request Handler and download script as a CASA task."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import sys
import time
from pathlib import Path

from almatools import log
from almatools.errors import TaskParameterError

from . import datalink
from .adql import quote, uid_clause
from .download import Downloader, is_complete, partial_bytes
from .service import run_with_failover
from .unpack import UnsafeArchive, safe_extract

TASK = "almafetch"
PASSWORD_ENV = "ALMATOOLS_ARCHIVE_PASSWORD"
_SIZE = re.compile(r"^\s*([0-9.]+)\s*([kMGT]?)i?B?\s*$", re.I)


def almafetch(uid=None, project_code="", queryfile="", service="", outdir=".", readme=True, product=True,
              auxiliary=True, raw=False, semipass=False, external=False, include=None, exclude=None,
              dryrun=False, unpack=False, nstreams=5, reserve="100MB", force=False, username="",
              retries=8, timeout=60.0):
    """Download Member OUS data; see ``xml/almafetch.xml``."""
    import requests
    outdir = Path(outdir or ".")
    roles = {r for r, on in (("readme", readme), ("product", product), ("auxiliary", auxiliary), ("raw", raw),
                             ("semipass", semipass), ("external", external)) if on}
    mouses = _mous_list(uid or [], project_code, queryfile, service)
    session = requests.Session()
    links, errors, base = [], [], ""
    for mous in mouses:
        (found, errs), base = run_with_failover(service, lambda b: datalink.resolve(session, b, mous))
        errors += errs
        chosen = datalink.select(session, found, roles, list(include or []), list(exclude or []))
        log.info(f"{mous}: {len(found)} file(s) offered, {len(chosen)} chosen")
        links += chosen
    for e in errors:
        log.warn(f"DataLink: {e}")
    links = datalink.unique_names(links)  # the same file may be reached from several inputs

    auth, proprietary = None, []
    closed = [link for link in links if not link.readable]
    if closed:
        auth = _credentials(username, base)
        if auth is None:
            proprietary = _release_dates({link.mous for link in closed}, base)
            for mous, date in proprietary.items():
                log.warn(f"{mous} is proprietary until {date or 'an unknown date'}: its files are listed, not "
                         f"fetched; give username= (password in ${PASSWORD_ENV}, the keyring or at the prompt)")
    fetchable = [link for link in links if link.readable or auth is not None]

    listing = [dict(link.as_dict(), dest=str(_dest(outdir, link))) for link in links]
    to_get = [link for link in fetchable if not is_complete(_dest(outdir, link), link.size)]
    need = sum((link.size or 0) - partial_bytes(_dest(outdir, link)) for link in to_get)
    total = sum(link.size or 0 for link in links)
    existing = next(p for p in (outdir.resolve(), *outdir.resolve().parents) if p.exists())
    free = shutil.disk_usage(existing).free  # outdir itself is only created when something is written
    keep = _bytes(reserve)
    _log_listing(links, total, need, free)
    result = {"mous": mouses, "service": base, "files": listing, "nfiles": len(links), "bytes_total": total,
              "bytes_needed": need, "disk_free": free, "proprietary": proprietary, "errors": errors}
    if need + keep > free and not force:
        raise TaskParameterError(TASK, "outdir", str(outdir),
                                 f"has {_human(free)} free but the download needs {_human(need)} plus "
                                 f"reserve={reserve}: free some space, choose another outdir, select fewer files "
                                 f"(include/exclude, raw=False) or set force=True")
    if dryrun:
        result["dryrun"] = True
        return result

    outdir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with log.progress(total=need, desc="almafetch", unit="B") as bar:
        dl = Downloader(nstreams=nstreams, retries=retries, timeout=timeout, auth=auth, progress=bar)
        outcomes = dl.fetch_all([(link.url, str(_dest(outdir, link)), link.size, not link.readable)
                                 for link in fetchable])
    elapsed = time.monotonic() - start
    status = {o.name: o for o in outcomes}
    for item in result["files"]:
        o = status.get(item["name"])
        item["status"] = o.status if o else "proprietary"
        item["attempts"] = o.attempts if o else 0
        if o and o.error:
            item["error"] = o.error
    failed = [o for o in outcomes if o.status in ("failed", "unauthorized")]
    result.update(bytes_downloaded=dl.transferred, elapsed_s=elapsed,
                  rate_MBps=dl.transferred / 1e6 / elapsed if elapsed > 0 else 0.0,
                  ndownloaded=sum(o.status == "downloaded" for o in outcomes),
                  npresent=sum(o.status == "present" for o in outcomes), nfailed=len(failed))
    log.info(f"almafetch: {result['ndownloaded']} downloaded, {result['npresent']} already complete, "
             f"{len(failed)} failed; {_human(dl.transferred)} in {elapsed:.1f} s")
    for o in failed:
        log.severe(f"{o.name}: {o.status}: {o.error} (run almafetch again to resume)")
    if unpack and not failed:
        result["trees"] = _unpack(outdir, fetchable)
    elif unpack:
        log.warn("not unpacking: some files failed; run almafetch again to complete them first")
    return result


# ------------------------------------------------------------------------------------------ inputs

def _mous_list(uids, project_code: str, queryfile: str, service: str) -> list[str]:
    out = []
    uids = [uids] if isinstance(uids, str) else list(uids)
    for u in uids:
        if u.strip():
            try:
                out += re.findall(r"'([^']+)'", uid_clause("member_ous_uid", u))
            except ValueError as exc:
                raise TaskParameterError(TASK, "uid", u, "is not a Member OUS uid like uid://A001/X1465/X3") from exc
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
        out += [str(u) for u in table["member_ous_uid"]]
    if queryfile:
        if not os.path.exists(queryfile):
            raise TaskParameterError(TASK, "queryfile", queryfile, "does not exist")
        from astropy.table import Table
        fmt = {".csv": "ascii.csv", ".tsv": "ascii.tab"}.get(Path(queryfile).suffix.lower(), "votable")
        try:
            table = Table.read(queryfile, format=fmt)
        except Exception as exc:
            raise TaskParameterError(TASK, "queryfile", queryfile, f"cannot be read as {fmt} ({exc})") from None
        if "member_ous_uid" not in table.colnames:
            raise TaskParameterError(TASK, "queryfile", queryfile, "has no member_ous_uid column (is it an "
                                     "almaquery result?)")
        out += [str(u) for u in table["member_ous_uid"]]
    unique = list(dict.fromkeys(out))
    if not unique:
        raise TaskParameterError(TASK, "uid", uids, "give Member OUS uid(s), a project_code or a queryfile")
    return unique


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
    m = _SIZE.match(str(text))
    if not m:
        raise TaskParameterError(TASK, "reserve", text, "is not a size such as '100MB' or '2GB'")
    return int(float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}[m.group(2).lower()])


def _human(n: float) -> str:
    for scale, unit in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


def _log_listing(links, total: int, need: int, free: int) -> None:
    log.info(f"{'file':70s} {'role':10s} {'size':>10s}")
    for link in links:
        flag = "" if link.readable else "  (proprietary)"
        log.info(f"{link.name[:70]:70s} {link.role:10s} {_human(link.size or 0):>10s}{flag}")
    log.info(f"{len(links)} file(s), {_human(total)}; still to download {_human(need)}; {_human(free)} free")


def _unpack(outdir: Path, links) -> list[str]:
    """Tars into the standard tree; README and single files into their Member OUS directory."""
    trees = {}
    for link in links:
        if link.is_tar:
            path = outdir / link.name
            try:
                names = safe_extract(path, outdir)
            except UnsafeArchive as exc:
                raise TaskParameterError(TASK, "unpack", str(path), str(exc)) from None
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
            log.warn(f"{link.name}: no tar of {link.mous} was unpacked, so its tree is unknown; left in {outdir}")
            continue
        rel = link.tree_path or link.name
        target = Path(tree) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(outdir / link.name, target)
    for mous, tree in trees.items():
        for sub in ("calibration", "log", "product", "qa", "raw", "script"):
            (Path(tree) / sub).mkdir(exist_ok=True)
        log.info(f"{mous}: {tree}")
    return sorted(set(trees.values()))
