"""Parallel, resumable, verified downloads; one large file is split into ranges over the streams.

Scheduling.  ``nstreams`` workers (the archive asks for at most five connections)
take whole files first.  A worker with nothing left to start splits the largest
range still in flight in two (HTTP Range, ``If-Range`` on the file's validator)
and fetches the second half, so a single 2 GB tar is soon fetched over all five
connections and the last seconds of a batch are shared too.  Never more than
``nstreams`` connections go to one host.

On disk.  A file is written into ``<name>.part`` with ``pwrite`` at each range's
offset (no second copy is assembled) and renamed only after it is verified.  A
split file's ranges are recorded in ``<name>.part.json`` (every MB and on each
split), so a killed run resumes every range where it stopped; an unsplit
``.part`` is its own record (its length).  The ``.part`` is locked (``flock``)
while a run writes it: a second almafetch into the same directory waits for the
first one's files instead of fighting over them.

Verification.  Size (DataLink, else HEAD/Content-Length/Content-Range), SHA-256
when the server sends ``Repr-Digest``/``Digest``, every range's ``Content-Range``
and validator, the format's own integrity (tar end-of-archive, FITS HDU sizes,
and gzip trailers when nothing else is known), and never an HTML page where the
archive promised a file.  A file nothing can vouch for is reported
``unverified`` and left as ``.part``, never as downloaded.

Errors.  5xx, resets and stalls (read timeouts) are retried with exponential
backoff, keeping what arrived; a file proven wrong starts again from zero.
Credentials follow :mod:`.credentials`.
"""

from __future__ import annotations

import base64
import contextvars
import fcntl
import hashlib
import json
import os
import random
import re
import secrets
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

from almatools import log

from . import integrity
from .credentials import CredentialScope, origin
from .names import UnsafeName, name_from_disposition

__all__ = ["Downloader", "DownloadError", "Item", "Outcome", "Probe", "is_complete", "partial_bytes", "CHUNK"]

CHUNK = 1 << 20
#: a range is split only when both halves keep at least this many bytes
SPLIT_MIN = 1 << 20
#: ... and only when it still needs longer than this at its current rate
SPLIT_SECONDS = 0.5
#: a request asks for at most this many seconds of data at the streams' current rate
MAX_REQUEST_SECONDS = 4.0
#: ... or this many bytes while no rate is known yet
DEFAULT_WINDOW = 64 << 20
CHECKPOINT_BYTES = 1 << 20
CHECKPOINT_SECONDS = 1.0
MAX_REDIRECTS = 10
STATE_SUFFIX = ".part.json"


class DownloadError(RuntimeError):
    """The bytes received are proven wrong: the file starts again from zero."""


class _Fatal(RuntimeError):
    """Retrying cannot help (404, a size the archive contradicts): the file fails now."""


class AuthRequired(_Fatal):
    pass


class _Abandoned(Exception):
    """The file was restarted or concluded by another worker meanwhile: this range's work is void."""


class _Retry(Exception):
    """A transient failure (5xx, reset, stall): what arrived is kept, the range is asked again later."""


class _AskAgain(Exception):
    """The archive challenged a plain request (401): the range is asked again at once, with credentials.
    That is HTTP authentication, not a failed try, so it neither counts against ``retries`` nor waits."""


@dataclass
class Item:
    """One file to fetch. *needs_auth*: True (proprietary), False (public), None (credentials after a 401)."""

    url: str
    dest: str
    size: int | None = None
    needs_auth: bool | None = False
    content_type: str = ""


@dataclass
class Outcome:
    name: str
    path: str
    status: str  # downloaded | present | failed | unauthorized | unverified
    size: int = 0
    transferred: int = 0
    attempts: int = 0
    error: str = ""
    verified: list = field(default_factory=list)
    requests: int = 0


@dataclass
class Probe:
    """What a HEAD request says about a file."""

    status: int = 0
    size: int | None = None
    content_type: str = ""
    ranges: bool = False
    filename: str = ""
    needs_auth: bool | None = None
    error: str = ""


def _part(dest) -> Path:
    return Path(f"{dest}.part")


def _state(dest) -> Path:
    return Path(f"{dest}{STATE_SUFFIX}")


def is_complete(dest: str | os.PathLike, size: int | None) -> bool:
    """True when *dest* is in place (it was verified before its rename) with the archive's size, if known."""
    try:
        have = os.lstat(dest)
    except FileNotFoundError:
        return False
    return have.st_size == size if size is not None else True


def partial_bytes(dest: str | os.PathLike) -> int:
    """Bytes of *dest* already received by an interrupted download (resumed, not fetched again)."""
    state = _read_state(_state(dest))
    if state:
        return max(0, state["size"] - sum(end - pos for pos, end in state["segments"]))
    try:
        return os.lstat(_part(dest)).st_size
    except FileNotFoundError:
        return 0


def _read_state(path: Path) -> dict | None:
    try:
        with open(path, "rb") as fh:
            state = json.loads(fh.read(1 << 22))
        size = int(state["size"])
        segments = [(int(a), int(b)) for a, b in state["segments"]]
        if size < 0 or any(not 0 <= a <= b <= size for a, b in segments):
            return None
        return dict(state, size=size, segments=segments)
    except (OSError, ValueError, KeyError, TypeError):
        return None


class _Segment:
    """Bytes [pos, end) of a file still to fetch (end None: to the end of an unknown size).

    A worker fetches it with requests for [pos, asked) at a time; a split takes a part beyond
    *asked*, so no connection is ever cut and no byte is fetched twice.
    """

    __slots__ = ("pos", "end", "asked", "busy", "started", "got")

    def __init__(self, pos: int, end: int | None):
        self.pos, self.end, self.asked, self.busy, self.started, self.got = pos, end, pos, False, 0.0, 0

    @property
    def done(self) -> bool:
        return self.end is not None and self.pos >= self.end

    def rate(self, now: float) -> float | None:
        elapsed = now - self.started
        return self.got / elapsed if self.got and elapsed > 0.2 else None


class _File:
    """One destination being fetched by this run (it holds the ``.part`` lock)."""

    def __init__(self, item: Item):
        self.item = item
        self.final, self.part, self.state = Path(item.dest), _part(item.dest), _state(item.dest)
        self.name = self.final.name
        self.size = item.size
        self.size_known = item.size is not None
        self.host = (origin(item.url) or ("", item.url, 0))[1:]
        self.fd: int | None = None
        self.lock = threading.Lock()
        self.segments: list[_Segment] = []
        self.ranged: bool | None = None
        self.validator = self.digest = ""
        self.auth_wanted = bool(item.needs_auth)
        self.generation = 0
        self.attempts = self.transferred = self.requests = 0
        self.not_before = 0.0
        self.framed = False  # an unknown-size body ended where its own framing said (length or chunks)
        self.finishing = self.waited = False
        self.size_from_server = False  # the server stated the whole size (Content-Length of a 200, Content-Range)
        self.outcome: Outcome | None = None
        self.since_checkpoint, self.last_checkpoint = 0, time.monotonic()

    def complete(self) -> bool:
        return bool(self.segments) and all(s.done for s in self.segments)

    def busy(self) -> bool:
        return any(s.busy for s in self.segments)


class Downloader:
    """Fetch files over *nstreams* connections; credentials only where *scope* allows (:mod:`.credentials`)."""

    def __init__(self, nstreams: int = 5, retries: int = 8, timeout: float = 60.0, scope: CredentialScope | None = None,
                 backoff: float = 0.5, progress=None, max_per_host: int | None = None):
        self.nstreams, self.retries, self.timeout = max(1, nstreams), retries, timeout
        self.scope, self.backoff, self.progress = scope, backoff, progress
        self.max_per_host = max_per_host or self.nstreams
        self._local = threading.local()
        self._count_lock = threading.Lock()
        self.transferred = 0

    # --------------------------------------------------------------------------- HTTP
    def _session(self):
        import requests
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
            s.headers["User-Agent"] = "almatools-almafetch"
        return s

    def _request(self, method: str, url: str, headers: dict, wanted: bool):
        """One request with redirects followed by hand: credentials only where the scope allows, never across hosts."""
        for _ in range(MAX_REDIRECTS + 1):
            auth = self.scope.for_request(url, wanted) if self.scope is not None else None
            r = self._session().request(method, url, headers=headers, auth=auth or _NO_AUTH, stream=True,
                                        timeout=(15, self.timeout), allow_redirects=False)
            location = r.headers.get("Location")
            if r.status_code in (301, 302, 303, 307, 308) and location:
                r.close()
                target = urljoin(url, location)
                if not CredentialScope.keeps_on_redirect(url, target):
                    wanted = False
                url = target
                continue
            return r, url
        raise _Fatal(f"more than {MAX_REDIRECTS} redirects from {url}")

    def _count(self, n: int) -> None:
        with self._count_lock:
            self.transferred += n
            if self.progress is not None:
                self.progress.update(n)

    # -------------------------------------------------------------------------- probes
    def probe_all(self, items: list[Item]) -> list[Probe]:
        """HEAD every item (in parallel): sizes DataLink did not give, names, range support."""
        if not items:
            return []
        with ThreadPoolExecutor(max_workers=self.nstreams) as pool:
            futures = [pool.submit(contextvars.copy_context().run, self.probe, it) for it in items]
            return [f.result() for f in futures]

    def probe(self, item: Item) -> Probe:
        """HEAD *item*'s URL; transient failures (5xx, resets) are retried a few times with backoff."""
        import requests
        wanted = bool(item.needs_auth)
        tries = min(self.retries, 3) + 1
        for attempt in range(tries):
            try:
                r, url = self._request("HEAD", item.url, {"Accept-Encoding": "identity"}, wanted)
                r.close()
                if r.status_code == 401 and item.needs_auth is None and not wanted and \
                        self._may_authenticate(item.url):
                    wanted = True
                    r, url = self._request("HEAD", item.url, {"Accept-Encoding": "identity"}, wanted)
                    r.close()
                if not (r.status_code >= 500 or r.status_code == 429) or attempt == tries - 1:
                    break
                why = f"HTTP {r.status_code}"
            except _Fatal as exc:
                return Probe(error=f"HEAD {item.url}: {exc}")
            except (requests.RequestException, OSError) as exc:
                if attempt == tries - 1:
                    return Probe(error=f"HEAD {item.url}: {type(exc).__name__}: {exc}")
                why = type(exc).__name__
            delay = min(self.backoff * 2 ** attempt, 10.0) * (0.5 + random.random())
            log.warn(f"HEAD {item.url}: {why}; retry {attempt + 1}/{tries - 1} in {delay:.1f} s")
            time.sleep(delay)
        probe = Probe(status=r.status_code, content_type=r.headers.get("Content-Type", ""),
                      ranges=r.headers.get("Accept-Ranges", "").strip().lower() == "bytes",
                      needs_auth=wanted if r.status_code < 400 else item.needs_auth)
        if r.status_code >= 400:
            probe.error = f"HEAD {item.url}: HTTP {r.status_code}"
            return probe
        html = integrity.html_problem(Path(item.dest).name, item.content_type, probe.content_type)
        if html:
            probe.error = f"HEAD {item.url}: {html}"
            return probe
        length = r.headers.get("Content-Length", "")
        if length.isdigit():
            probe.size = int(length)
        try:
            probe.filename = name_from_disposition(r.headers.get("Content-Disposition", ""), url)
        except UnsafeName as exc:
            probe.error = str(exc)
        return probe

    def _may_authenticate(self, url: str) -> bool:
        return self.scope is not None and self.scope.auth is not None and self.scope.allows(url)

    # ------------------------------------------------------------------------- fetching
    def fetch_all(self, items: list[Item]) -> list[Outcome]:
        """Fetch *items*; one outcome per item, in order."""
        files = [_File(it) for it in items]
        self._queue = deque(files)
        self._active: list[_File] = []
        self._elsewhere: list[_File] = []
        self._cv = threading.Condition()
        try:
            with ThreadPoolExecutor(max_workers=self.nstreams) as pool:
                # each worker runs in a copy of the caller's context: its log lines keep the task's origin
                workers = [pool.submit(contextvars.copy_context().run, self._worker) for _ in range(self.nstreams)]
                for future in workers:
                    future.result()
        finally:
            for f in files:
                self._release(f)
        return [f.outcome or Outcome(f.name, str(f.final), "failed", error="not attempted") for f in files]

    def _worker(self) -> None:
        while True:
            with self._cv:
                unit = self._next_unit()
                while unit == "wait":
                    self._cv.wait(0.2)
                    unit = self._next_unit()
            if unit is None:
                return
            f, seg = unit
            try:
                if seg is None:
                    self._finish(f)
                else:
                    self._fetch_range(f, seg)
            except (_Abandoned, _AskAgain):
                pass  # the range is free again below; an _AskAgain range now goes with credentials
            except _Retry as exc:
                self._failed_try(f, str(exc), restart=False)
            except DownloadError as exc:
                self._failed_try(f, str(exc), restart=True)
            except AuthRequired as exc:
                self._conclude(f, "unauthorized", str(exc))
            except (_Fatal, integrity.IntegrityError) as exc:
                self._conclude(f, "failed", str(exc))
            except Exception as exc:  # a bug or an OS error: this file fails, the others go on
                self._conclude(f, "failed", f"{type(exc).__name__}: {exc}")
            finally:
                with self._cv:
                    if seg is not None:
                        seg.busy = False
                    else:
                        f.finishing = False
                    self._cv.notify_all()

    def _next_unit(self):
        """(file, range) to fetch, (file, None) to verify and rename, 'wait', or None when all is done."""
        now = time.monotonic()
        busy_hosts: dict = {}
        for f in self._active:
            for s in f.segments:
                if s.busy:
                    busy_hosts[f.host] = busy_hosts.get(f.host, 0) + 1

        def room(f):
            return busy_hosts.get(f.host, 0) < self.max_per_host
        for f in list(self._active):
            if f.outcome is not None:
                if not f.busy() and not f.finishing:
                    self._active.remove(f)
                    self._release(f)
                continue
            if f.complete() and not f.busy() and not f.finishing:
                f.finishing = True
                return f, None
            if now < f.not_before or not room(f):
                continue
            for s in f.segments:
                if not s.busy and not s.done:
                    return self._take(f, s, now)
        for waiting in (self._elsewhere, self._queue):
            for f in list(waiting):
                if not room(f):
                    continue
                waiting.remove(f)
                try:
                    opened = self._open(f)
                except OSError as exc:  # e.g. a link where the .part should be: never written through
                    f.outcome = Outcome(f.name, str(f.final), "failed", error=f"cannot write {f.part}: {exc}")
                    log.severe(f"{f.name}: failed: {f.outcome.error}")
                    continue
                if opened == "elsewhere":
                    self._elsewhere.append(f)
                    continue
                if opened == "again":
                    self._queue.appendleft(f)
                    return "wait"
                if f.outcome is None:
                    self._active.append(f)
                    if f.complete():
                        f.finishing = True
                        return f, None
                    return self._take(f, f.segments[0], now)
        stolen = self._split(now, room)
        if stolen:
            return stolen
        if self._active or self._elsewhere or self._queue:
            return "wait"
        return None

    def _take(self, f: _File, s: _Segment, now: float):
        s.busy, s.started, s.got = True, now, 0
        return f, s

    def _split(self, now: float, room):
        """Split the range in flight with the most left beyond its current request; return the far part."""
        best = None
        for f in self._active:
            if f.outcome is not None or not f.ranged or not room(f):
                continue
            for s in f.segments:
                if not s.busy or s.end is None:
                    continue
                rate = s.rate(now)
                if rate and (s.end - s.pos) / rate < SPLIT_SECONDS:
                    continue  # about to finish anyway
                cut = max(s.asked, s.pos + (s.end - s.pos) // 2)
                if s.end - cut >= SPLIT_MIN and (best is None or s.end - cut > best[2]):
                    best = (f, s, s.end - cut)
        if best is None:
            return None
        f, s, _ = best
        with f.lock:
            cut = max(s.asked, s.pos + (s.end - s.pos) // 2)
            if s.end - cut < SPLIT_MIN:
                return None
            new = _Segment(cut, s.end)
            s.end = cut
            f.segments.append(new)
            self._checkpoint(f)  # a split file must be recorded before any byte lands past the first hole
        return self._take(f, new, now)

    def _window(self) -> int:
        """Bytes one request asks for: a share of what is left in all, at most ~4 s at the streams' rate.

        Requests end where a split may begin, so splits never cut a connection; small windows at
        the end of a batch let every stream finish at about the same time.
        """
        with self._cv:
            left = sum((s.end - max(s.pos, s.asked)) for f in self._active if f.outcome is None
                       for s in f.segments if s.end is not None)
            left += sum(f.size or 0 for f in self._queue)
            rates = [r for f in self._active for s in f.segments if s.busy for r in [s.rate(time.monotonic())] if r]
        ceiling = int(max(rates) * MAX_REQUEST_SECONDS) if rates else DEFAULT_WINDOW
        return max(SPLIT_MIN, min(left // (2 * self.nstreams), max(ceiling, SPLIT_MIN)))

    # ----------------------------------------------------------------- one file on disk
    def _open(self, f: _File) -> str:
        """Lock and load *f*'s partial state; 'ok', 'elsewhere' (another run holds it) or 'again'."""
        if is_complete(f.final, f.size):
            f.outcome = Outcome(f.name, str(f.final), "present", os.lstat(f.final).st_size)
            return "ok"
        f.final.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f.part, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if not f.waited:
                f.waited = True
                log.info(f"{f.name}: another almafetch is downloading it into this directory; waiting for it")
            return "elsewhere"
        try:
            named = os.lstat(f.part)
        except FileNotFoundError:
            named = None
        mine = os.fstat(fd)
        if named is None or (named.st_ino, named.st_dev) != (mine.st_ino, mine.st_dev):
            os.close(fd)  # the other run renamed it while we opened it: look again
            return "again"
        if is_complete(f.final, f.size):  # finished by another run a moment ago
            os.unlink(f.part)
            os.close(fd)
            f.outcome = Outcome(f.name, str(f.final), "present", os.lstat(f.final).st_size)
            return "ok"
        f.fd = fd
        self._load(f, mine.st_size)
        return "ok"

    def _load(self, f: _File, have: int) -> None:
        state = _read_state(f.state)
        st = os.fstat(f.fd)
        if state is None and f.state.exists() or state and (state.get("part") != [st.st_dev, st.st_ino] or
                                                            f.size is not None and state["size"] != f.size):
            state = None  # a record of another .part, or the archive's size changed: start again
            os.ftruncate(f.fd, 0)
            have = 0
        if state:
            f.size, f.size_from_server = state["size"], True
            f.validator, f.digest, f.ranged = state.get("validator", ""), state.get("digest", ""), True
            f.segments = [_Segment(a, b) for a, b in state["segments"] if a < b] or [_Segment(f.size, f.size)]
            return
        f.state.unlink(missing_ok=True)
        if f.size is not None and have > f.size:
            os.ftruncate(f.fd, 0)
            have = 0
        f.segments = [_Segment(have, f.size)]

    def _checkpoint(self, f: _File) -> None:
        """Record the ranges still missing (call with f.lock held); only split files need it."""
        if not f.ranged or f.size is None or f.fd is None:
            return
        st = os.fstat(f.fd)
        state = {"url": f.item.url, "size": f.size, "validator": f.validator, "digest": f.digest,
                 "part": [st.st_dev, st.st_ino],  # a record of this very .part, not of one deleted since
                 "segments": [[s.pos, s.end] for s in f.segments if not s.done]}
        tmp = f.state.with_name(f".{f.state.name}.{secrets.token_hex(6)}.almatools-tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh)
        os.replace(tmp, f.state)
        f.since_checkpoint, f.last_checkpoint = 0, time.monotonic()

    def _restart(self, f: _File) -> None:
        """Throw away what *f* has and start it again from byte 0 (f.lock held)."""
        f.generation += 1
        if f.fd is not None:
            os.ftruncate(f.fd, 0)
        f.state.unlink(missing_ok=True)
        f.ranged, f.validator, f.digest, f.framed = None, "", "", False
        if not f.size_known:
            f.size, f.size_from_server = None, False
        f.segments = [_Segment(0, f.size)]

    def _release(self, f: _File) -> None:
        with f.lock:
            if f.fd is not None:
                os.close(f.fd)  # releases the lock; a .part not renamed stays for the next run
                f.fd = None

    # ------------------------------------------------------------------------ one range
    def _fetch_range(self, f: _File, seg: _Segment) -> None:
        """Fetch *seg* with as many requests (of :meth:`_window` bytes) as it takes, on one connection."""
        generation = f.generation
        while True:
            window = self._window() if f.ranged is not False and seg.end is not None else None
            with f.lock:  # the request's end is fixed under the lock a split takes, so a split starts after it
                if seg.done or f.outcome is not None or f.generation != generation:
                    return
                start, end = seg.pos, seg.end
                if end is None:
                    stop = None
                else:
                    stop = min(end, start + window) if window else end
                seg.asked = stop if stop is not None else start
            self._one_request(f, seg, generation, start, stop)
            with f.lock:
                if f.ranged is not True and not seg.done:
                    return  # one request was the whole answer; what is missing is a retry's business
    def _one_request(self, f: _File, seg: _Segment, generation: int, start: int, stop: int | None) -> None:
        import requests
        import urllib3
        headers = {"Accept-Encoding": "identity"}
        if stop is not None and (f.size is not None or start):
            headers["Range"] = f"bytes={start}-{stop - 1}"
        elif start:
            headers["Range"] = f"bytes={start}-"
        if "Range" in headers and f.validator:
            headers["If-Range"] = f.validator
        try:
            r, _ = self._request("GET", f.item.url, headers, f.auth_wanted)
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema) as exc:
            raise _Fatal(f"{f.item.url}: {exc}") from None
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Retry(f"{type(exc).__name__}: {exc}") from None
        f.requests += 1
        with r:
            whole = self._check_answer(f, r, start, stop, generation, "Range" in headers)
            if not whole:
                with self._cv:  # the file takes ranges: idle streams may split it now
                    self._cv.notify_all()
            try:
                self._receive(f, seg, r, generation, None if whole else stop)
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                raise _Retry(f"{type(exc).__name__} at byte {seg.pos}") from None

    def _check_answer(self, f: _File, r, start: int, end: int | None, generation: int, ranged: bool) -> bool:
        """Status, type, Content-Range and validator of a response before any of its bytes is kept.

        Returns True when the answer is the whole file (200), False for the range asked (206).
        """
        code = r.status_code
        if code in (401, 403):
            if code == 401 and f.item.needs_auth is None and not f.auth_wanted and self._may_authenticate(f.item.url):
                f.auth_wanted = True
                raise _AskAgain()
            why = self.scope.why_not(f.item.url) if self.scope is not None and self.scope.auth else ""
            raise AuthRequired(f"HTTP {code}: the archive wants credentials for {f.item.url}"
                               + (f" (not sent: {why})" if why else ""))
        if code in (404, 410):
            raise _Fatal(f"HTTP {code} for {f.item.url}")
        if code == 416:
            raise DownloadError(f"HTTP 416: the server has no byte {start} (the file changed?)")
        if code >= 500 or code in (408, 429):
            raise _Retry(f"HTTP {code}")
        if code not in (200, 206):
            raise _Fatal(f"HTTP {code} for {f.item.url}")
        html = integrity.html_problem(f.name, f.item.content_type, r.headers.get("Content-Type", ""))
        if html:
            raise DownloadError(html)
        validator = r.headers.get("ETag", "") if not r.headers.get("ETag", "").startswith("W/") else ""
        validator = validator or r.headers.get("Last-Modified", "")
        digest = r.headers.get("Repr-Digest") or r.headers.get("Digest") or ""
        with f.lock:
            if generation != f.generation:
                raise _Abandoned()
            if f.validator and validator and validator != f.validator:
                raise DownloadError("the file changed on the server while it was being fetched")
            f.validator = f.validator or validator
            f.digest = f.digest or digest
            if code == 206:
                first, last, total = _content_range(r.headers.get("Content-Range", ""))
                if first != start or (end is not None and last != end - 1):
                    raise DownloadError(f"asked bytes {start}-{'' if end is None else end - 1}, the server sent "
                                        f"{r.headers.get('Content-Range')!r}")
                self._learn_size(f, total)
                f.ranged = True
                return False
            # 200: the whole file, from byte 0
            length = r.headers.get("Content-Length", "")
            if ranged and (start > 0 or len(f.segments) > 1):
                if f.ranged:
                    raise DownloadError("the server stopped honouring byte ranges (the file changed?)")
                self._restart(f)
                raise _Retry("the server does not serve byte ranges: fetching the file whole")
            f.ranged = False
            if length.isdigit():
                self._learn_size(f, int(length))
            return True

    def _learn_size(self, f: _File, total: int | None) -> None:
        if total is None:
            return
        if f.size is not None and total != f.size:
            if f.size_known:
                raise _Fatal(f"the server says {total} bytes, the archive {f.size} bytes")
            raise DownloadError(f"the server now says {total} bytes, not {f.size}")
        f.size, f.size_from_server = total, True
        for s in f.segments:
            if s.end is None:
                s.end = total

    def _receive(self, f: _File, seg: _Segment, r, generation: int, stop: int | None) -> None:
        """Write the body at its offset until the request's range is done or the body ends."""
        raw = r.raw
        got = 0
        while True:
            data = raw.read1(CHUNK, decode_content=False)
            if not data:
                break
            got += len(data)
            self._count(len(data))
            with f.lock:
                if generation != f.generation or f.outcome is not None:
                    return  # restarted or given up meanwhile: these bytes belong to nothing
                if seg.pos == 0 and got == len(data) and integrity.looks_like_html(data) and \
                        "html" not in integrity.expected_type(f.name, f.item.content_type):
                    raise DownloadError("the server sent an HTML page instead of the file")
                limit = seg.end if stop is None else stop if seg.end is None else min(stop, seg.end)
                n = len(data) if limit is None else min(len(data), limit - seg.pos)
                if n > 0:
                    os.pwrite(f.fd, data[:n], seg.pos)
                    seg.pos += n
                    seg.got += n
                    f.transferred += n
                    f.since_checkpoint += n
                    if f.since_checkpoint >= CHECKPOINT_BYTES or \
                            time.monotonic() - f.last_checkpoint >= CHECKPOINT_SECONDS:
                        self._checkpoint(f)
                if limit is not None and seg.pos >= limit:
                    return
        with f.lock:
            if seg.end is None:  # unknown size: the body's end is the file's end, if its framing says so
                f.framed = "chunked" in r.headers.get("Transfer-Encoding", "").lower()
                seg.end = seg.asked = seg.pos
                f.size = seg.pos
            else:
                raise _Retry(f"connection closed at byte {seg.pos} of {seg.end}")

    # ------------------------------------------------------------------- verify, rename
    def _finish(self, f: _File) -> None:
        """Verify the complete ``.part`` and rename it into place."""
        have = os.fstat(f.fd).st_size
        verified = []
        if f.size is not None and (f.size_known or f.size_from_server):
            if have != f.size:
                raise DownloadError(f"size {have} B, expected {f.size} B")
            verified.append("size")
        elif f.framed:
            verified.append("chunked")
        sha = _sha256_from(f.digest)
        if sha:
            h = hashlib.sha256()
            with open(f"/proc/self/fd/{f.fd}", "rb") as fh:
                for block in iter(lambda: fh.read(CHUNK), b""):
                    h.update(block)
            if h.digest() != sha:
                raise DownloadError("SHA-256 differs from the archive's")
            verified.append("sha-256")
        with open(f"/proc/self/fd/{f.fd}", "rb") as fh:
            if "html" not in integrity.expected_type(f.name, f.item.content_type) and \
                    integrity.looks_like_html(fh.read(512)):
                raise DownloadError("the file is an HTML page, not the file the archive lists")
        for label, check in integrity.format_checks(f.name, thorough=not verified):
            try:
                check(f"/proc/self/fd/{f.fd}")
            except integrity.IntegrityError as exc:
                raise DownloadError(str(exc).replace(f"/proc/self/fd/{f.fd}", f.name)) from None
            verified.append(label)
        if not verified:
            self._conclude(f, "unverified", "nothing could confirm it is complete: the archive gives no size or "
                           "digest and the server sent no length; kept as .part")
            return
        os.replace(f.part, f.final)
        f.state.unlink(missing_ok=True)
        self._conclude(f, "downloaded", "", verified)

    def _failed_try(self, f: _File, why: str, restart: bool) -> None:
        with self._cv, f.lock:
            if f.outcome is not None:
                return
            f.attempts += 1
            if restart:
                self._restart(f)
            else:
                self._checkpoint(f)
            if f.attempts > self.retries:
                f.generation += 1
                f.outcome = Outcome(f.name, str(f.final), "failed", 0, f.transferred, f.attempts, why,
                                    requests=f.requests)
                log.severe(f"{f.name}: {why}; giving up after {f.attempts} tries (run almafetch again to resume)")
                return
            delay = min(self.backoff * 2 ** (f.attempts - 1), 30.0) * (0.5 + random.random())
            f.not_before = time.monotonic() + delay
        log.warn(f"{f.name}: {why}; retry {f.attempts}/{self.retries} in {delay:.1f} s")

    def _conclude(self, f: _File, status: str, error: str, verified=()) -> None:
        with self._cv, f.lock:
            if f.outcome is not None:
                return
            f.generation += 1
            size = f.size or 0
            f.outcome = Outcome(f.name, str(f.final), status, size if status == "downloaded" else 0, f.transferred,
                                f.attempts + 1, error, list(verified), f.requests)
            if status == "downloaded":
                return
        log.severe(f"{f.name}: {status}: {error}")


class _NoAuth:
    """An explicit 'no credentials' (so requests does not add ~/.netrc ones where almafetch chose none)."""

    def __call__(self, request):
        return request


_NO_AUTH = _NoAuth()


def _content_range(header: str) -> tuple[int, int, int | None]:
    m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", header or "")
    if not m:
        raise DownloadError(f"a 206 answer without a valid Content-Range ({header!r})")
    total = None if m.group(3) == "*" else int(m.group(3))
    return int(m.group(1)), int(m.group(2)), total


def _sha256_from(header: str) -> bytes:
    """``sha-256=:base64:`` (RFC 9530) or ``SHA-256=base64`` (RFC 3230)."""
    for item in (header or "").split(","):
        algo, _, value = item.strip().partition("=")
        if algo.lower() == "sha-256" and value:
            try:
                return base64.b64decode(value.strip(":"), validate=True)
            except ValueError:
                return b""
    return b""
