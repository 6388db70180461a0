"""Parallel, resumable, verified downloads.

Every file is written to ``<name>.part`` and renamed only after it is
verified (size; SHA-256 when the server sends a ``Digest``/``Repr-Digest``
header; ``tar`` integrity for tars).  An interrupted ``.part`` is resumed with
an HTTP Range request; a file already complete is never fetched again, so
running the same fetch twice is the completion check.  5xx answers, resets and
stalls (read timeouts) are retried with exponential backoff.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from almatools import log

__all__ = ["Downloader", "DownloadError", "verify_tar", "is_complete", "partial_bytes"]

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    pass


class AuthRequired(DownloadError):
    pass


@dataclass
class Outcome:
    name: str
    path: str
    status: str  # downloaded | present | failed | unauthorized
    size: int = 0
    transferred: int = 0
    attempts: int = 0
    error: str = ""


def _part(dest: str | os.PathLike) -> Path:
    return Path(f"{dest}.part")


def is_complete(dest: str | os.PathLike, size: int | None) -> bool:
    """True when *dest* is already there with the archive's size: such a file is never fetched again."""
    dest = Path(dest)
    return size is not None and dest.exists() and dest.stat().st_size == size


def partial_bytes(dest: str | os.PathLike) -> int:
    """Bytes of *dest* already received by an interrupted download (resumed, not fetched again)."""
    part = _part(dest)
    return part.stat().st_size if part.exists() else 0


def verify_tar(path: str | os.PathLike) -> None:
    """Read every member header to the end (what ``tar tf`` checks); raise on a damaged tar."""
    try:
        with tarfile.open(path, mode="r:") as tar:
            for _ in tar:
                pass
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DownloadError(f"{path}: not a valid tar ({exc})") from None


class Downloader:
    """Fetch files with *nstreams* parallel connections; *auth* is ``(user, password)`` or None."""

    def __init__(self, nstreams: int = 5, retries: int = 8, timeout: float = 60.0, auth=None,
                 backoff: float = 0.5, progress=None):
        self.nstreams, self.retries, self.timeout = nstreams, retries, timeout
        self.auth, self.backoff, self.progress = auth, backoff, progress
        self._local = threading.local()
        self._lock = threading.Lock()
        self.transferred = 0

    def _session(self):
        import requests
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
            s.headers["User-Agent"] = "almatools-almafetch"
        return s

    def _count(self, n: int) -> None:
        with self._lock:
            self.transferred += n
            if self.progress is not None:
                self.progress.update(n)

    def fetch_all(self, items: list[tuple[str, str, int | None, bool]]) -> list[Outcome]:
        """*items*: (url, destination path, expected size or None, needs auth)."""
        with ThreadPoolExecutor(max_workers=max(1, self.nstreams)) as pool:
            return list(pool.map(lambda it: self.fetch(*it), items))

    def fetch(self, url: str, dest: str, size: int | None, needs_auth: bool = False) -> Outcome:
        final, part = Path(dest), _part(dest)
        if is_complete(final, size):
            return Outcome(final.name, str(final), "present", size)
        final.parent.mkdir(parents=True, exist_ok=True)
        attempts, transferred, last = 0, 0, ""
        while attempts <= self.retries:
            attempts += 1
            try:
                got, digest = self._get(url, final, size, needs_auth)
                transferred += got
                total = part.stat().st_size
                if size is not None and total != size:
                    raise DownloadError(f"size {total} B, the archive says {size} B")
                self._verify(part, final.name, digest)
                os.replace(part, final)
                return Outcome(final.name, str(final), "downloaded", total, transferred, attempts)
            except AuthRequired as exc:
                return Outcome(final.name, str(final), "unauthorized", 0, transferred, attempts, str(exc))
            except _Retry as exc:
                transferred += exc.got
                last = str(exc)
            except DownloadError as exc:  # verified wrong: start this file again from zero
                last = str(exc)
                part.unlink(missing_ok=True)
            delay = min(self.backoff * 2 ** (attempts - 1), 30.0) * (0.5 + random.random())
            log.warn(f"{final.name}: {last}; retry {attempts}/{self.retries} in {delay:.1f} s")
            time.sleep(delay)
        return Outcome(final.name, str(final), "failed", 0, transferred, attempts, last)

    def _get(self, url: str, dest: Path, size: int | None, needs_auth: bool) -> tuple[int, str]:
        """Append what is missing of *dest* to its ``.part`` file; returns (bytes received, digest header)."""
        import requests
        import urllib3
        part, have = _part(dest), partial_bytes(dest)
        if size is not None and have > size:
            part.unlink()
            have = 0
        if size is not None and have == size:
            return 0, ""
        headers = {"Range": f"bytes={have}-"} if have else {}
        got = 0
        try:
            with self._session().get(url, headers=headers, stream=True, timeout=(15, self.timeout),
                                     auth=self.auth if needs_auth or self.auth else None) as r:
                if r.status_code in (401, 403):
                    raise AuthRequired(f"HTTP {r.status_code}: the archive wants credentials for {url}")
                if r.status_code == 416 and have:  # nothing past what we have: start again
                    part.unlink()
                    raise _Retry("range not satisfiable; restarting", 0)
                if r.status_code >= 500:
                    raise _Retry(f"HTTP {r.status_code}", 0)
                if r.status_code == 404:
                    raise DownloadError(f"HTTP 404 for {url}")
                r.raise_for_status()
                mode = "ab" if r.status_code == 206 else "wb"  # 200: the server ignored Range
                if r.status_code == 206:
                    start = int(r.headers.get("Content-Range", "bytes 0-").split()[1].split("-")[0])
                    if start != have:
                        raise DownloadError(f"server resumed at byte {start}, not {have}")
                with open(part, mode) as fh:
                    # read1: whatever has arrived, so an interruption loses nothing already received
                    while chunk := r.raw.read1(CHUNK):
                        fh.write(chunk)
                        got += len(chunk)
                        self._count(len(chunk))
                digest = r.headers.get("Repr-Digest") or r.headers.get("Digest") or ""
                if "Content-Length" in r.headers and got < int(r.headers["Content-Length"]):
                    raise _Retry(f"connection closed after {got} of {r.headers['Content-Length']} B", got)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Retry(f"{type(exc).__name__} after {got} B", got) from None
        if size is None and r.status_code == 206:
            total = int(r.headers.get("Content-Range", "/0").rsplit("/", 1)[-1] or 0)
            if total and part.stat().st_size != total:
                raise _Retry("incomplete", got)
        return got, digest

    @staticmethod
    def _verify(part: Path, name: str, digest: str) -> None:
        sha = _sha256_from(digest)
        if sha:
            h = hashlib.sha256()
            with open(part, "rb") as fh:
                for block in iter(lambda: fh.read(CHUNK), b""):
                    h.update(block)
            if h.digest() != sha:
                raise DownloadError(f"{name}: SHA-256 differs from the archive's")
        if name.endswith(".tar"):
            verify_tar(part)


class _Retry(Exception):
    def __init__(self, message: str, got: int):
        super().__init__(message)
        self.got = got


def _sha256_from(header: str) -> bytes:
    """``sha-256=:base64:`` (RFC 9530) or ``SHA-256=base64`` (RFC 3230)."""
    for item in header.split(","):
        algo, _, value = item.strip().partition("=")
        if algo.lower() == "sha-256" and value:
            try:
                return base64.b64decode(value.strip(":"))
            except ValueError:
                return b""
    return b""
