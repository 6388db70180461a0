"""almafetch's downloader (archive.download) against real HTTP servers on loopback, fast.

Each server is a ``ThreadingHTTPServer`` on 127.0.0.1 or 127.0.0.2 (two "hosts") serving byte ranges
as RFC 9110 says, with answers a test queues for the next request to a path (a status, a cut body, a
lying Content-Length, a wrong Content-Range, an HTML page).  It records every request it receives
(method, headers, status, body bytes sent, start and end), so what is checked is what the server saw:
the Range asked, the bytes sent, how many requests and when, and which ones carried credentials.
Expected values come from the files the tests write and from RFC 9110 / RFC 9530 / RFC 7617, not
from the module.  The end-to-end runs through the archive emulator are in test_almafetch_transfer.py,
whose overlap and range-coverage helpers are reused here.
"""

import base64
import hashlib
import io
import json
import os
import re
import tarfile
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from almatools.plugins.archive import download
from almatools.plugins.archive.credentials import CredentialScope
from almatools.plugins.archive.download import (CHUNK, DownloadError, Downloader, Item, _content_range, _File,
                                                _read_state, _Segment, _sha256_from, is_complete, partial_bytes)
from test_almafetch_transfer import _max_overlap, _ranges_cover_exactly, _span

MiB = 1 << 20
USER, PASSWORD = "alice", "s3cret"
#: RFC 7617: Basic base64("user:password")
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


def payload(n: int, seed: int = 1) -> bytes:
    """n bytes that are not HTML and differ at every offset mod 251 (a misplaced range shows)."""
    return bytes((i * 7 + seed) % 251 for i in range(n))


# ------------------------------------------------------------------------------------------ the servers

@dataclass
class Served:
    """One request as the server saw it (attribute names as test_almafetch_transfer's helpers read them)."""

    method: str
    path: str
    headers: dict
    status: int = 0
    body_bytes: int = 0
    start: float = 0.0
    end: float = 0.0


@dataclass
class Resource:
    body: bytes
    content_type: str = "application/octet-stream"
    ranges: bool = True        # serves Range requests (else 200 with the whole body)
    length: bool = True        # sends Content-Length (else a close-delimited body)
    chunked: bool = False      # Transfer-Encoding: chunked
    etag: str = ""
    digest: str = ""           # the Repr-Digest header's value
    extra: dict = field(default_factory=dict)


class Origin:
    """A loopback HTTP server: files by path, a request log, one-shot answers queued per path."""

    def __init__(self, host: str = "127.0.0.1", rate: float = 0, port: int = 0):
        self.files: dict[str, Resource] = {}
        self.queued: dict[str, deque] = defaultdict(deque)
        self.log: list[Served] = []
        self.rate = rate  # bytes per second per connection (0: as fast as it goes)
        self.lock = threading.Lock()
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                origin.answer(self)

            do_HEAD = do_GET

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that went away (a cut test, a refused range) is no news

        self.httpd = Server((host, port), Handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def add(self, path: str, body: bytes, **kw) -> str:
        self.files[path] = Resource(body, **kw)
        return self.url + path

    def then(self, path: str, *answers) -> None:
        """Answer the next requests to *path* with *answers* (functions of handler and record), in order."""
        self.queued[path].extend(answers)

    def gets(self, path: str) -> list[Served]:
        return [q for q in self.log if q.method == "GET" and q.path == path]

    def answer(self, h) -> None:
        rec = Served(h.command, h.path, {k.lower(): v for k, v in h.headers.items()}, start=time.monotonic())
        with self.lock:
            self.log.append(rec)
            hook = self.queued[h.path].popleft() if self.queued[h.path] else None
        try:
            (hook or serve)(self, h, rec)
        except OSError:
            h.close_connection = True
        finally:
            rec.end = time.monotonic()

    def send(self, h, rec, data: bytes) -> None:
        step = 16384
        t0 = time.monotonic()
        for i in range(0, len(data), step):
            if self.rate:
                due = t0 + i / self.rate - time.monotonic()
                if due > 0:
                    time.sleep(due)
            piece = data[i:i + step]
            h.wfile.write(piece)
            rec.body_bytes += len(piece)


def status(code: int, **headers):
    """An empty answer with *code* and *headers*."""
    def hook(origin, h, rec):
        rec.status = code
        h.send_response(code)
        for k, v in headers.items():
            h.send_header(k.replace("_", "-"), v)
        h.send_header("Content-Length", "0")
        h.end_headers()
    return hook


def serve(origin, h, rec, cut: int | None = None, length: int | None = None, content_range: str | None = None,
          code: int | None = None):
    """The file's answer (RFC 9110 ranges); *cut*: close after that many body bytes; *length*: the
    Content-Length to claim; *content_range*: the Content-Range to claim; *code*: the status to claim."""
    res = origin.files.get(h.path)
    if res is None:
        return status(404)(origin, h, rec)
    body, size = res.body, len(res.body)
    part, rng = body, None
    m = re.fullmatch(r"bytes=(\d+)-(\d*)", h.headers.get("Range", "")) if res.ranges else None
    if m:
        a = int(m.group(1))
        b = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        if a >= size:
            return status(416, Content_Range=f"bytes */{size}")(origin, h, rec)
        if res.etag and h.headers.get("If-Range") not in (None, res.etag):
            m = None  # RFC 9110 13.1.5: a changed validator gets the whole file
        else:
            part, rng = body[a:b + 1], f"bytes {a}-{b}/{size}"
    rec.status = code or (206 if rng else 200)
    h.send_response(rec.status)
    h.send_header("Content-Type", res.content_type)
    if res.ranges:
        h.send_header("Accept-Ranges", "bytes")
    if rng or content_range:
        h.send_header("Content-Range", content_range if content_range is not None else rng)
    if res.etag:
        h.send_header("ETag", res.etag)
    if res.digest:
        h.send_header("Repr-Digest", res.digest)
    for k, v in res.extra.items():
        h.send_header(k, v)
    if res.chunked:
        h.send_header("Transfer-Encoding", "chunked")
    elif res.length or length is not None:
        h.send_header("Content-Length", str(len(part) if length is None else length))
    if (not res.length and not res.chunked) or cut is not None or length is not None:
        h.send_header("Connection", "close")
        h.close_connection = True
    h.end_headers()
    if h.command == "HEAD":
        return
    data = part if cut is None else part[:cut]
    if length is not None:
        data = data[:length]
    if res.chunked:
        for i in range(0, len(data), 65536):
            piece = data[i:i + 65536]
            h.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            rec.body_bytes += len(piece)
        h.wfile.write(b"0\r\n\r\n")
        return
    origin.send(h, rec, data)


def cut(n):
    return lambda o, h, r: serve(o, h, r, cut=n)


def lie(length):
    return lambda o, h, r: serve(o, h, r, length=length)


@pytest.fixture
def origin():
    o = Origin()
    yield o
    o.close()


@pytest.fixture
def other():
    """A second host: another loopback address, so another origin for the credential rules."""
    o = Origin("127.0.0.2")
    yield o
    o.close()


def fetch(dl: Downloader, items, limit: float = 20.0):
    """fetch_all, failed (not hung) if it takes longer than *limit* seconds."""
    box = []
    t = threading.Thread(target=lambda: box.append(dl.fetch_all(items)), daemon=True)
    t.start()
    t.join(limit)
    assert not t.is_alive(), "fetch_all did not end"
    return box[0]


def quick(**kw) -> Downloader:
    kw.setdefault("backoff", 0.0)
    kw.setdefault("timeout", 5.0)
    return Downloader(**kw)


class Said:
    """The downloader's log lines, by level."""

    def __init__(self, monkeypatch):
        self.lines = defaultdict(list)
        for level in ("info", "warn", "severe"):
            monkeypatch.setattr(download.log, level, lambda text, level=level: self.lines[level].append(text))


@pytest.fixture(autouse=True)
def said(monkeypatch):
    """Every test keeps the downloader's log lines (and none goes to CASA's log)."""
    return Said(monkeypatch)


# ----------------------------------------------------------------------------------- pure helpers

@pytest.mark.parametrize("header, expected", [
    ("bytes 0-9/100", (0, 9, 100)),
    ("  bytes 5-5/6 ", (5, 5, 6)),
    ("bytes 10-19/*", (10, 19, None)),
])
def test_content_range_parses_rfc9110_forms(header, expected):
    assert _content_range(header) == expected


@pytest.mark.parametrize("header", ["", "bytes */100", "bytes 1-/9", "items 0-1/2", "bytes 0-1/2 x", None])
def test_content_range_refuses_other_forms_naming_the_header(header):
    with pytest.raises(DownloadError, match=re.escape(repr(header))):
        _content_range(header)


def test_sha256_from_reads_rfc9530_and_rfc3230_headers():
    digest = hashlib.sha256(b"abc").digest()
    b64 = base64.b64encode(digest).decode()
    assert _sha256_from(f"sha-256=:{b64}:") == digest
    assert _sha256_from(f"SHA-256={b64}") == digest
    assert _sha256_from(f"md5=xyz, sha-512=:AAAA:, sha-256=:{b64}:") == digest
    assert _sha256_from(f"sha-256=:{b64}:, sha-256=:AAAA:") == digest  # the first one
    assert _sha256_from("sha-256=:not base64!:") == b""
    assert _sha256_from("sha-256=:AAAA!:") == b""  # strictly base64: not the 3 bytes of 'AAAA'
    assert _sha256_from("sha-256=") == b""
    assert _sha256_from("sha-512=:AAAA:") == b""
    assert _sha256_from("") == b"" and _sha256_from(None) == b""


def test_is_complete_compares_the_size_when_known(tmp_path):
    p = tmp_path / "f.bin"
    assert not is_complete(p, None) and not is_complete(p, 0)
    p.write_bytes(b"12345")
    assert is_complete(p, 5) and is_complete(p, None)
    assert not is_complete(p, 4) and not is_complete(p, 6)


def _write_state(dest, size, segments, pad=0, **extra):
    Path(f"{dest}.part.json").write_text(" " * pad + json.dumps(dict(size=size, segments=segments, **extra)))


def test_partial_bytes_from_the_record_else_the_part_length(tmp_path):
    dest = tmp_path / "f.bin"
    assert partial_bytes(dest) == 0
    Path(f"{dest}.part").write_bytes(b"x" * 7)
    assert partial_bytes(dest) == 7
    _write_state(dest, 100, [[10, 30], [50, 60]])  # 30 bytes missing of 100
    assert partial_bytes(dest) == 70
    _write_state(dest, 100, [[0, 100], [0, 100]])  # overlapping records: never negative
    assert partial_bytes(dest) == 0


@pytest.mark.parametrize("size, segments, ok", [
    (100, [[0, 100]], True), (100, [[0, 0], [100, 100]], True), (0, [], True), (100, [], True),
    (-1, [], False), (100, [[-1, 5]], False), (100, [[6, 5]], False), (100, [[0, 101]], False),
])
def test_read_state_accepts_only_segments_inside_the_file(tmp_path, size, segments, ok):
    _write_state(tmp_path / "f", size, segments)
    state = _read_state(tmp_path / "f.part.json")
    assert (state is not None) == ok
    if ok:
        assert state["size"] == size and state["segments"] == [tuple(s) for s in segments]


def test_read_state_refuses_garbage_and_reads_up_to_four_mib(tmp_path):
    p = tmp_path / "f.part.json"
    for text in ["", "{", "[]", '{"size": 1}', '{"size": "x", "segments": []}', '{"size": 1, "segments": [[0]]}']:
        p.write_text(text)
        assert _read_state(p) is None, text
    assert _read_state(tmp_path / "missing.json") is None
    _write_state(tmp_path / "f", 10, [[0, 10]], pad=3 * MiB)  # 3 MiB of leading blanks: still read whole
    assert _read_state(p)["segments"] == [(0, 10)]
    _write_state(tmp_path / "f", 10, [[0, 10]], pad=4 * MiB)  # the record lies beyond the 4 MiB read
    assert _read_state(p) is None


def test_segment_done_and_rate():
    s = _Segment(10, 20)
    assert not s.done
    s.pos = 19
    assert not s.done
    s.pos = 20
    assert s.done
    assert not _Segment(5, None).done and _Segment(0, 0).done
    s = _Segment(0, 100)
    s.started, s.got = 0.0, 50
    assert s.rate(0.2) is None                    # no rate within the first 0.2 s
    assert s.rate(0.25) == pytest.approx(200.0)   # 50 B in 0.25 s
    s.got = 0
    assert s.rate(1.0) is None


def test_downloader_defaults():
    dl = Downloader()
    assert (dl.nstreams, dl.retries, dl.timeout, dl.backoff, dl.max_per_host) == (5, 8, 60.0, 0.5, 5)
    assert Downloader(nstreams=0).nstreams == 1 and Downloader(nstreams=-3).max_per_host == 1
    assert Downloader(nstreams=3, max_per_host=2).max_per_host == 2
    assert download.CHUNK == MiB and download.MAX_REDIRECTS == 10 and download.STATE_SUFFIX == ".part.json"


# --------------------------------------------------------------- the request window and the split rule

def _sched(dl, files, queue=()):
    """Give *dl* the scheduler state fetch_all makes, with *files* active and *queue* waiting."""
    dl._cv = threading.Condition()
    dl._active, dl._queue, dl._elsewhere = list(files), deque(queue), []


def _file(tmp_path, segments, name="f.bin", size=None, ranged=True):
    f = _File(Item(f"http://127.0.0.1:9/{name}", str(tmp_path / name), size))
    f.segments = [_Segment(a, b) for a, b in segments]
    f.ranged = ranged
    return f


def test_window_is_a_share_of_what_is_left_between_one_mib_and_four_seconds(tmp_path):
    dl = Downloader(nstreams=5)
    f = _file(tmp_path, [(0, 100 * MiB)])
    _sched(dl, [f])
    assert dl._window() == 10 * MiB                     # 100 MiB / (2 * 5)
    f.segments[0].asked = 40 * MiB                      # asked already: not left to share
    assert dl._window() == 6 * MiB
    _sched(dl, [f], queue=[_File(Item("http://h/g", str(tmp_path / "g"), 40 * MiB)),
                           _File(Item("http://h/u", str(tmp_path / "u"), None))])
    assert dl._window() == 10 * MiB                     # 60 + 40 (+ 0 for an unknown size) MiB / 10
    _sched(dl, [_file(tmp_path, [(0, 100 * MiB + 7)])])
    assert dl._window() == 10 * MiB and isinstance(dl._window(), int)  # whole bytes: 104857607 // 10
    _sched(dl, [_file(tmp_path, [(0, 5 * MiB)])])
    assert dl._window() == MiB                          # never below SPLIT_MIN
    _sched(dl, [_file(tmp_path, [(0, 20000 * MiB)])])
    assert dl._window() == 64 * MiB                     # no rate yet: DEFAULT_WINDOW
    f = _file(tmp_path, [(0, 20000 * MiB)])
    s = f.segments[0]
    s.busy, s.started, s.got = True, time.monotonic() - 1000.0, 3 * MiB * 1000  # 3 MiB/s
    _sched(dl, [f])
    assert dl._window() == pytest.approx(12 * MiB, rel=1e-3)  # 4 s at 3 MiB/s
    s.got = 1000 * MiB // 10                            # 0.1 MiB/s: 0.4 MiB in 4 s, raised to SPLIT_MIN
    assert dl._window() == MiB
    g = _file(tmp_path, [(0, 20000 * MiB)], name="g.bin")
    g.outcome = download.Outcome("g", "g", "failed")    # a concluded file's bytes are not left
    _sched(dl, [g, _file(tmp_path, [(0, 30 * MiB)], name="h.bin"), _file(tmp_path, [(0, None)], name="u.bin")])
    assert dl._window() == 3 * MiB


def test_split_takes_the_far_half_of_the_largest_busy_range(tmp_path):
    dl = Downloader(nstreams=5)
    f = _file(tmp_path, [(0, 10 * MiB), (20 * MiB, 24 * MiB)])
    for s in f.segments:
        s.busy, s.started = True, time.monotonic()
    f.segments[0].asked = MiB
    _sched(dl, [f])
    got = dl._split(time.monotonic(), lambda f: True)
    assert got[0] is f and (got[1].pos, got[1].end) == (5 * MiB, 10 * MiB) and got[1].busy
    assert f.segments[0].end == 5 * MiB and len(f.segments) == 3
    # the part already asked is never split off: the cut is after it
    f.segments[0].asked = 4 * MiB
    got = dl._split(time.monotonic(), lambda f: True)
    assert (got[1].pos, got[1].end) == (5 * MiB + 5 * MiB // 2, 10 * MiB)  # the new 5 MiB range, halved


@pytest.mark.parametrize("end, asked, splits", [
    (2 * MiB, 0, True),              # both halves 1 MiB: split
    (2 * MiB - 1, 0, True),          # the far half gets the odd byte: still 1 MiB
    (2 * MiB - 2, 0, False),         # the far half would be 1 byte short of SPLIT_MIN
    (3 * MiB, 2 * MiB, True),        # the cut goes after what is asked: exactly 1 MiB left
    (3 * MiB, 2 * MiB + 1, False),
])
def test_split_needs_one_mib_beyond_the_cut(tmp_path, end, asked, splits):
    dl = Downloader()
    f = _file(tmp_path, [(0, end)])
    s = f.segments[0]
    s.busy, s.started, s.asked = True, time.monotonic(), asked
    _sched(dl, [f])
    got = dl._split(time.monotonic(), lambda f: True)
    assert (got is not None) == splits
    if splits:
        assert got[1].end == end and got[1].pos == max(asked, end // 2) and s.end == got[1].pos


def test_split_skips_ranges_about_to_finish_unranged_files_idle_ranges_and_full_hosts(tmp_path):
    dl = Downloader()
    now = time.monotonic()

    def busy_file(ranged=True, rate=None, busy=True, end=8 * MiB, outcome=None):
        f = _file(tmp_path, [(0, end)], ranged=ranged)
        s = f.segments[0]
        s.busy, s.started = busy, now - 1.0
        s.got = rate or 0
        f.outcome = outcome
        return f
    # 8 MiB left at 16 MiB/s is exactly 0.5 s: still split; at 17 MiB/s it ends sooner: not
    for rate, splits in [(16 * MiB, True), (17 * MiB, False), (None, True)]:
        f = busy_file(rate=rate, end=16 * MiB)
        f.segments[0].pos = f.segments[0].asked = 8 * MiB
        _sched(dl, [f])
        got = dl._split(now, lambda f: True)
        assert (got is not None) == splits, rate
        if splits:
            assert (got[1].pos, got[1].end) == (12 * MiB, 16 * MiB)
    for f in [busy_file(ranged=None), busy_file(ranged=False), busy_file(busy=False), busy_file(end=None),
              busy_file(outcome=download.Outcome("f", "f", "failed"))]:
        _sched(dl, [f])
        assert dl._split(now, lambda f: True) is None
    _sched(dl, [busy_file()])
    assert dl._split(now, lambda f: False) is None


def test_split_looks_past_files_and_ranges_it_skips(tmp_path):
    dl = Downloader()
    now = time.monotonic()
    unranged = _file(tmp_path, [(0, 8 * MiB)], name="u.bin", ranged=None)
    unranged.segments[0].busy = True
    f = _file(tmp_path, [(0, 4 * MiB), (4 * MiB, 8 * MiB), (8 * MiB, 16 * MiB)])
    idle, ending, big = f.segments
    ending.busy, ending.started, ending.got = True, now - 1.0, 100 * MiB  # 4 MiB at 100 MiB/s: ends soon
    big.busy = True
    _sched(dl, [unranged, f])
    got = dl._split(now, lambda f: True)
    assert got[0] is f and (got[1].pos, got[1].end) == (12 * MiB, 16 * MiB)


def test_split_prefers_the_range_with_most_left(tmp_path):
    dl = Downloader()
    now = time.monotonic()
    a = _file(tmp_path, [(0, 4 * MiB)], name="a.bin")
    b = _file(tmp_path, [(0, 6 * MiB)], name="b.bin")
    c = _file(tmp_path, [(0, 5 * MiB)], name="c.bin")
    for f in (a, b, c):
        f.segments[0].busy = True
    _sched(dl, [a, b, c])
    got = dl._split(now, lambda f: True)
    assert got[0] is b and (got[1].pos, got[1].end) == (3 * MiB, 6 * MiB)
    d, e = _file(tmp_path, [(0, 4 * MiB)], name="d.bin"), _file(tmp_path, [(0, 4 * MiB)], name="e.bin")
    d.segments[0].busy = e.segments[0].busy = True
    _sched(dl, [d, e])
    assert dl._split(now, lambda f: True)[0] is d  # a tie: the first found


# ------------------------------------------------------------------------------------ whole downloads

def test_a_file_of_known_size_comes_in_one_range_request(origin, tmp_path):
    body = payload(300_000)
    url = origin.add("/d/a.bin", body)
    seen = []

    class Progress:
        def update(self, n):
            seen.append(n)
    dl = quick(progress=Progress())
    out, = fetch(dl, [Item(url, str(tmp_path / "a.bin"), len(body))])
    assert (out.status, out.size, out.transferred, out.attempts, out.requests) == ("downloaded", 300_000, 300_000, 1, 1)
    assert out.verified == ["size"] and out.error == "" and out.name == "a.bin" and out.path == str(tmp_path / "a.bin")
    assert (tmp_path / "a.bin").read_bytes() == body
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / "a.bin").st_mode & 0o777 == 0o644 & ~umask
    q, = origin.gets("/d/a.bin")
    assert q.headers["range"] == "bytes=0-299999" and q.status == 206 and q.body_bytes == 300_000
    assert q.headers["accept-encoding"] == "identity" and q.headers["user-agent"] == "almatools-almafetch"
    assert "authorization" not in q.headers
    assert sum(seen) == 300_000 and dl.transferred == 300_000


def test_a_file_of_unknown_size_is_asked_whole_and_sized_by_content_length(origin, tmp_path):
    body = payload(200_000)
    url = origin.add("/a.bin", body)
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"))])
    assert out.status == "downloaded" and out.size == 200_000 and out.verified == ["size"]
    q, = origin.gets("/a.bin")
    assert "range" not in q.headers and q.status == 200
    assert (tmp_path / "a.bin").read_bytes() == body


def test_an_empty_file_of_known_size(origin, tmp_path):
    url = origin.add("/e.bin", b"")
    out, = fetch(quick(), [Item(url, str(tmp_path / "e.bin"), 0)])
    assert out.status == "downloaded" and out.size == 0 and (tmp_path / "e.bin").read_bytes() == b""
    url = origin.add("/one.bin", b"\x01")
    out, = fetch(quick(retries=0), [Item(url, str(tmp_path / "one.bin"), 1)])
    assert out.status == "downloaded" and out.size == 1 and (tmp_path / "one.bin").read_bytes() == b"\x01"


def test_a_complete_file_is_present_and_not_asked(origin, tmp_path):
    url = origin.add("/a.bin", payload(10))
    (tmp_path / "a.bin").write_bytes(payload(10))
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"), 10)])
    assert (out.status, out.size, out.transferred, out.attempts, out.requests, out.error, out.verified) == \
        ("present", 10, 0, 0, 0, "", []) and origin.log == []
    assert fetch(quick(), []) == []


def test_a_partial_file_resumes_at_its_length(origin, tmp_path):
    body = payload(500_000)
    url = origin.add("/a.bin", body)
    Path(f"{tmp_path}/a.bin.part").write_bytes(body[:123_456])
    dl = quick()
    out, = fetch(dl, [Item(url, str(tmp_path / "a.bin"), len(body))])
    assert out.status == "downloaded" and out.transferred == 500_000 - 123_456 and dl.transferred == out.transferred
    q, = origin.gets("/a.bin")
    assert q.headers["range"] == "bytes=123456-499999" and q.body_bytes == 500_000 - 123_456
    assert (tmp_path / "a.bin").read_bytes() == body


def test_a_partial_file_of_unknown_size_asks_an_open_range(origin, tmp_path):
    body = payload(50_000)
    url = origin.add("/a.bin", body)
    Path(f"{tmp_path}/a.bin.part").write_bytes(body[:1000])
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"))])
    assert out.status == "downloaded" and out.size == 50_000 and out.verified == ["size"]
    q, = origin.gets("/a.bin")
    assert q.headers["range"] == "bytes=1000-" and q.body_bytes == 49_000
    assert (tmp_path / "a.bin").read_bytes() == body


def test_a_part_longer_than_the_file_starts_again(origin, tmp_path):
    body = payload(1000)
    url = origin.add("/a.bin", body)
    Path(f"{tmp_path}/a.bin.part").write_bytes(b"z" * 1001)
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"), 1000)])
    assert out.status == "downloaded" and origin.gets("/a.bin")[0].headers["range"] == "bytes=0-999"
    assert (tmp_path / "a.bin").read_bytes() == body
    Path(f"{tmp_path}/b.bin.part").write_bytes(body)   # exactly the size: nothing more to ask
    url = origin.add("/b.bin", body)
    out, = fetch(quick(), [Item(url, str(tmp_path / "b.bin"), 1000)])
    assert out.status == "downloaded" and origin.gets("/b.bin") == [] and out.transferred == 0


def test_a_recorded_split_file_resumes_only_its_missing_ranges(origin, tmp_path):
    body = payload(3 * MiB)
    url = origin.add("/s.bin", body, etag='"v1"')
    part = tmp_path / "s.bin.part"
    have = bytearray(len(body))
    holes = [(100, 200_000), (MiB, MiB + 5000), (3 * MiB - 10, 3 * MiB)]
    at = 0
    for a, b in holes:  # everything but the holes is already there
        have[at:a] = body[at:a]
        at = b
    part.write_bytes(bytes(have))
    st = os.stat(part)
    _write_state(tmp_path / "s.bin", len(body), [list(h) for h in holes] + [[5, 5]], part=[st.st_dev, st.st_ino],
                 validator='"v1"')
    dl = quick()
    out, = fetch(dl, [Item(url, str(tmp_path / "s.bin"), len(body))])
    assert out.status == "downloaded" and (tmp_path / "s.bin").read_bytes() == body
    gets = origin.gets("/s.bin")
    assert sorted(_span(q) for q in gets) == holes
    assert all(q.headers["if-range"] == '"v1"' and q.status == 206 for q in gets)
    missing = sum(b - a for a, b in holes)
    assert sum(q.body_bytes for q in gets) == missing == out.transferred
    assert not (tmp_path / "s.bin.part.json").exists() and not part.exists()


def test_a_record_of_another_part_or_size_is_ignored(origin, tmp_path):
    body = payload(100_000)
    url = origin.add("/s.bin", body)
    for name, part_id, size in [("a.bin", [0, 0], len(body)), ("b.bin", None, len(body) + 1)]:
        part = tmp_path / f"{name}.part"
        part.write_bytes(b"\0" * len(body))
        st = os.stat(part)
        _write_state(tmp_path / name, size, [[0, 10]], part=part_id or [st.st_dev, st.st_ino])
        out, = fetch(quick(), [Item(url, str(tmp_path / name), len(body))])
        assert out.status == "downloaded" and (tmp_path / name).read_bytes() == body
        assert origin.log[-1].headers["range"] == "bytes=0-99999" and origin.log[-1].body_bytes == len(body)
    (tmp_path / "c.bin.part").write_bytes(body[:10])
    (tmp_path / "c.bin.part.json").write_text("not json")  # a broken record: start from zero
    out, = fetch(quick(), [Item(url, str(tmp_path / "c.bin"), len(body))])
    assert out.status == "downloaded" and origin.log[-1].headers["range"] == "bytes=0-99999"
    assert not (tmp_path / "c.bin.part.json").exists()


def test_a_recorded_file_with_nothing_missing_is_just_verified(origin, tmp_path):
    body = payload(2000)
    url = origin.add("/s.bin", body)
    part = tmp_path / "s.bin.part"
    part.write_bytes(body)
    st = os.stat(part)
    _write_state(tmp_path / "s.bin", len(body), [[7, 7]], part=[st.st_dev, st.st_ino])
    out, = fetch(quick(), [Item(url, str(tmp_path / "s.bin"))])
    assert out.status == "downloaded" and out.size == 2000 and origin.log == []


def test_a_large_file_is_split_over_the_streams(origin, tmp_path):
    origin.rate = 2 * MiB
    body = payload(4 * MiB)
    url = origin.add("/big.bin", body, etag='"e"')
    records = []
    dl = quick()
    item = Item(url, str(tmp_path / "big.bin"), len(body))
    t = threading.Thread(target=lambda: records.append(dl.fetch_all([item])), daemon=True)
    t.start()
    state = None
    while t.is_alive():
        try:
            state = state or json.loads((tmp_path / "big.bin.part.json").read_text())
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    out, = records[0]
    assert out.status == "downloaded" and out.attempts == 1 and (tmp_path / "big.bin").read_bytes() == body
    gets = origin.gets("/big.bin")
    assert len(gets) >= 4 and all(q.status == 206 for q in gets)
    assert _ranges_cover_exactly(gets, len(body)) and sum(q.body_bytes for q in gets) == len(body)
    assert all(b - a <= MiB for a, b in map(_span, gets))     # a window is 4 MiB / 10, raised to 1 MiB
    assert _max_overlap(gets) >= 2
    assert all(q.headers.get("if-range") == '"e"' for q in gets[1:] if _span(q)[0] > 0)
    st = os.stat(tmp_path / "big.bin")
    assert state["size"] == len(body) and state["url"] == url and state["part"] == [st.st_dev, st.st_ino]
    assert state["validator"] == '"e"' and len(state["segments"]) >= 2
    assert out.requests == len(gets)


def test_five_streams_by_default_never_more(origin, tmp_path):
    origin.rate = 256 * 1024
    items = [Item(origin.add(f"/{k}.bin", payload(192 * 1024, k)), str(tmp_path / f"{k}.bin"), 192 * 1024)
             for k in range(6)]
    outs = fetch(Downloader(backoff=0.0), items)
    assert [o.status for o in outs] == ["downloaded"] * 6
    assert [o.name for o in outs] == [f"{k}.bin" for k in range(6)]  # in the order asked
    assert _max_overlap(origin.log) == 5
    for k in range(6):
        assert (tmp_path / f"{k}.bin").read_bytes() == payload(192 * 1024, k)


def test_streams_per_host_are_capped_and_hosts_add_up(origin, tmp_path):
    other = Origin("127.0.0.2", port=origin.httpd.server_address[1])  # another host, the same port
    origin.rate = other.rate = 256 * 1024
    items = [Item(o.add(f"/{k}.bin", payload(192 * 1024)), str(tmp_path / f"{o is origin}{k}.bin"), 192 * 1024)
             for o in (origin, other) for k in range(3)]  # the first host's files first: the third waits
    outs = fetch(quick(nstreams=4, max_per_host=2), items)
    assert all(o.status == "downloaded" for o in outs)
    assert _max_overlap(origin.log) == 2 and _max_overlap(other.log) == 2
    assert _max_overlap(origin.log + other.log) == 4
    other.close()


def test_two_streams_when_asked(origin, tmp_path):
    origin.rate = 256 * 1024
    items = [Item(origin.add(f"/{k}.bin", payload(192 * 1024)), str(tmp_path / f"{k}.bin"), 192 * 1024)
             for k in range(3)]
    assert all(o.status == "downloaded" for o in fetch(quick(nstreams=2), items))
    assert _max_overlap(origin.log) == 2


# ------------------------------------------------------------------------------ failures and retries

def test_a_cut_body_is_resumed_from_the_last_byte(origin, tmp_path, said):
    body = payload(400_000)
    url = origin.add("/a.bin", body)
    origin.then("/a.bin", cut(150_000))
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"), len(body))])
    assert out.status == "downloaded" and out.attempts == 2 and out.requests == 2 and out.transferred == len(body)
    first, second = origin.gets("/a.bin")
    assert first.body_bytes == 150_000 and second.headers["range"] == "bytes=150000-399999"
    assert second.body_bytes == 250_000
    assert (tmp_path / "a.bin").read_bytes() == body
    assert said.lines["warn"] == [said.lines["warn"][0]] and "a.bin: " in said.lines["warn"][0] \
        and "at byte 150000" in said.lines["warn"][0] and "retry 1/8 in 0.0 s" in said.lines["warn"][0]


def test_a_body_shorter_than_its_content_length_is_retried_from_where_it_stopped(origin, tmp_path, said):
    body = payload(100_000)
    url = origin.add("/a.bin", body)
    origin.then("/a.bin", lie(60_000))  # says 60000 and sends 60000: a clean end short of the range
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"), len(body))])
    assert out.status == "downloaded" and out.attempts == 2
    assert origin.gets("/a.bin")[1].headers["range"] == "bytes=60000-99999"
    assert "connection closed at byte 60000 of 100000" in said.lines["warn"][0]


def test_bytes_beyond_the_range_asked_are_not_written(origin, tmp_path):
    body = payload(10_000)
    url = origin.add("/a.bin", body)

    def overlong(o, h, r):  # the range asked, its Content-Range, then 4000 bytes of junk more
        if not h.headers["Range"].startswith("bytes=0-"):
            return serve(o, h, r)
        r.status = 206
        h.send_response(206)
        h.send_header("Content-Range", "bytes 0-999/10000")
        h.send_header("Content-Length", "5000")
        h.end_headers()
        o.send(h, r, body[:1000] + b"J" * 4000)
    origin.then("/a.bin", overlong, overlong)
    part = tmp_path / "a.bin.part"
    part.write_bytes(b"\0" * 1000 + body[1000:5000] + b"\0" * 5000)
    st = os.stat(part)
    _write_state(tmp_path / "a.bin", len(body), [[0, 1000], [5000, 10_000]], part=[st.st_dev, st.st_ino])
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"), len(body))])
    assert out.status == "downloaded" and out.transferred == 6000 and (tmp_path / "a.bin").read_bytes() == body
    assert sorted(q.body_bytes for q in origin.gets("/a.bin")) == [5000, 5000]


def test_a_ranged_file_answered_whole_starts_again(origin, tmp_path, said):
    body = payload(300_000)
    url = origin.add("/a.bin", body)

    def whole(o, h, r):  # this once the server ignores Range
        o.files["/a.bin"].ranges = False
        serve(o, h, r)
        o.files["/a.bin"].ranges = True
    origin.then("/a.bin", cut(1000), whole)
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"), len(body))])
    assert out.status == "downloaded" and out.attempts == 3 and (tmp_path / "a.bin").read_bytes() == body
    assert "the server stopped honouring byte ranges (the file changed?)" in said.lines["warn"][1]
    assert [q.headers["range"] for q in origin.gets("/a.bin")] == ["bytes=0-299999", "bytes=1000-299999",
                                                                   "bytes=0-299999"]


@pytest.mark.parametrize("retries", [0, 2])
def test_5xx_is_retried_retries_times_then_fails_naming_the_error(origin, tmp_path, said, retries):
    url = origin.add("/a.bin", payload(100))
    origin.then("/a.bin", *[status(503)] * 10)
    out, = fetch(quick(retries=retries), [Item(url, str(tmp_path / "a.bin"), 100)])
    assert (out.status, out.attempts, out.error, out.size) == ("failed", retries + 1, "HTTP 503", 0)
    assert len(origin.gets("/a.bin")) == retries + 1 == out.requests
    assert not (tmp_path / "a.bin").exists()
    assert said.lines["severe"] == [f"a.bin: HTTP 503; giving up after {retries + 1} tries (run almafetch again "
                                    f"to resume)"]
    assert len(said.lines["warn"]) == retries


@pytest.mark.parametrize("code", [500, 502, 504, 408, 429])
def test_transient_codes_are_retried(origin, tmp_path, code):
    body = payload(1000)
    url = origin.add("/a.bin", body)
    origin.then("/a.bin", status(code))
    out, = fetch(quick(retries=1), [Item(url, str(tmp_path / "a.bin"), 1000)])
    assert out.status == "downloaded" and out.attempts == 2 and len(origin.gets("/a.bin")) == 2


@pytest.mark.parametrize("code, state", [(404, "failed"), (410, "failed"), (401, "unauthorized"),
                                         (403, "unauthorized"), (204, "failed"), (300, "failed"), (400, "failed")])
def test_final_codes_fail_at_once_naming_the_url(origin, tmp_path, said, code, state):
    url = origin.add("/a.bin", payload(100))
    origin.then("/a.bin", status(code))
    out, = fetch(quick(retries=3), [Item(url, str(tmp_path / "a.bin"), 100)])
    assert out.status == state and out.attempts == 1 and f"HTTP {code}" in out.error and url in out.error
    assert len(origin.gets("/a.bin")) == 1
    assert said.lines["severe"] == [f"a.bin: {state}: {out.error}"] and said.lines["warn"] == []


def test_a_missing_file_is_one_failure_among_good_ones(origin, tmp_path):
    good = origin.add("/g.bin", payload(10))
    outs = fetch(quick(), [Item(origin.url + "/missing.bin", str(tmp_path / "m.bin"), 10),
                           Item(good, str(tmp_path / "g.bin"), 10)])
    assert [o.status for o in outs] == ["failed", "downloaded"]
    assert outs[0].error == f"HTTP 404 for {origin.url}/missing.bin"


def test_416_starts_the_file_again(origin, tmp_path, said):
    body = payload(1000)
    url = origin.add("/a.bin", body)
    Path(f"{tmp_path}/a.bin.part").write_bytes(body[:500])
    origin.then("/a.bin", status(416))
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"), 1000)])
    assert out.status == "downloaded" and out.attempts == 2
    first, second = origin.gets("/a.bin")
    assert first.headers["range"] == "bytes=500-999" and second.headers["range"] == "bytes=0-999"
    assert "HTTP 416: the server has no byte 500" in said.lines["warn"][0]


def test_a_server_without_ranges_sends_the_file_whole_again(origin, tmp_path, said):
    body = payload(5000)
    url = origin.add("/a.bin", body, ranges=False)
    Path(f"{tmp_path}/a.bin.part").write_bytes(body[:2000])
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"), 5000)])
    assert out.status == "downloaded" and out.attempts == 2 and (tmp_path / "a.bin").read_bytes() == body
    first, second = origin.gets("/a.bin")
    assert first.headers["range"] == "bytes=2000-4999" and second.headers["range"] == "bytes=0-4999"
    assert "does not serve byte ranges" in said.lines["warn"][0]
    # from byte 0 a whole answer is what was asked
    out, = fetch(quick(retries=0), [Item(url, str(tmp_path / "b.bin"), 5000)])
    assert out.status == "downloaded" and out.attempts == 1


def test_a_changed_validator_starts_the_file_again(origin, tmp_path, said):
    body = payload(300_000)
    url = origin.add("/a.bin", body, etag='"one"')
    origin.then("/a.bin", cut(100_000))

    def changed(o, h, r):  # replaced meanwhile: If-Range '"one"' gets the new file whole
        o.files["/a.bin"].etag = '"two"'
        serve(o, h, r)
    origin.then("/a.bin", changed)
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"), len(body))])
    assert out.status == "downloaded" and out.attempts == 3  # the cut, the change, then the new file
    gets = origin.gets("/a.bin")
    assert gets[1].headers["if-range"] == '"one"' and gets[1].headers["range"] == "bytes=100000-299999"
    assert "the file changed on the server while it was being fetched" in said.lines["warn"][1]
    assert gets[2].headers["range"] == "bytes=0-299999" and "if-range" not in gets[2].headers
    assert (tmp_path / "a.bin").read_bytes() == body


def test_a_weak_etag_is_no_validator_and_last_modified_is(origin, tmp_path):
    body = payload(300_000)
    url = origin.add("/w.bin", body, etag='W/"weak"')
    origin.then("/w.bin", cut(1000))
    assert fetch(quick(), [Item(url, str(tmp_path / "w.bin"), len(body))])[0].status == "downloaded"
    assert "if-range" not in origin.gets("/w.bin")[1].headers
    lm = "Wed, 21 Oct 2015 07:28:00 GMT"
    url = origin.add("/m.bin", body, extra={"Last-Modified": lm})
    origin.then("/m.bin", cut(1000))
    assert fetch(quick(), [Item(url, str(tmp_path / "m.bin"), len(body))])[0].status == "downloaded"
    assert origin.gets("/m.bin")[1].headers["if-range"] == lm


def test_a_wrong_content_range_is_refused_naming_what_was_asked(origin, tmp_path, said):
    body = payload(1000)
    url = origin.add("/a.bin", body)
    origin.then("/a.bin", lambda o, h, r: serve(o, h, r, content_range="bytes 1-999/1000"),
                lambda o, h, r: serve(o, h, r, content_range="bytes 0-998/1000"),
                lambda o, h, r: serve(o, h, r, content_range=""))
    out, = fetch(quick(retries=2), [Item(url, str(tmp_path / "a.bin"), 1000)])
    assert out.status == "failed" and out.attempts == 3
    assert said.lines["warn"][0].endswith("asked bytes 0-999, the server sent 'bytes 1-999/1000'; retry 1/2 in 0.0 s")
    assert "the server sent 'bytes 0-998/1000'" in said.lines["warn"][1]
    assert "a 206 answer without a valid Content-Range ('')" in out.error


def test_the_archives_size_wins_over_the_servers(origin, tmp_path):
    url = origin.add("/a.bin", payload(1000))
    out, = fetch(quick(retries=3), [Item(url, str(tmp_path / "a.bin"), 999)])
    assert out.status == "failed" and out.attempts == 1
    assert out.error == "the server says 1000 bytes, the archive 999 bytes"
    url = origin.add("/b.bin", payload(1000), ranges=False)
    out, = fetch(quick(retries=3), [Item(url, str(tmp_path / "b.bin"), 1001)])
    assert out.status == "failed" and out.error == "the server says 1000 bytes, the archive 1001 bytes"


def test_a_size_the_server_changes_restarts_the_file(origin, tmp_path, said):
    body = payload(300_000)
    url = origin.add("/a.bin", body)
    origin.then("/a.bin", cut(1000),
                lambda o, h, r: serve(o, h, r, content_range="bytes 1000-299999/400000"))
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"))])
    assert out.status == "downloaded" and out.attempts == 3
    assert "the server now says 400000 bytes, not 300000" in said.lines["warn"][1]
    assert origin.gets("/a.bin")[2].headers.get("range") is None  # from zero, size unknown again


def test_an_unknown_size_and_a_close_delimited_body_is_unverified(origin, tmp_path, said):
    body = payload(5000)
    url = origin.add("/a.bin", body, length=False)
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"))])
    assert out.status == "unverified" and out.size == 0 and "nothing could confirm" in out.error
    assert not (tmp_path / "a.bin").exists() and (tmp_path / "a.bin.part").read_bytes() == body
    assert said.lines["severe"] == [f"a.bin: unverified: {out.error}"]


def test_a_chunked_body_vouches_for_its_end(origin, tmp_path):
    body = payload(150_000)
    url = origin.add("/a.bin", body, chunked=True)
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"))])
    assert out.status == "downloaded" and out.verified == ["chunked"] and out.size == 150_000
    assert (tmp_path / "a.bin").read_bytes() == body


def _tar(n_members=2) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for k in range(n_members):
            data = payload(3000 + k)
            info = tarfile.TarInfo(f"m{k}.bin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_a_tar_with_no_size_is_vouched_for_by_its_end_of_archive(origin, tmp_path):
    body = _tar()
    url = origin.add("/x.tar", body, length=False, content_type="application/x-tar")
    out, = fetch(quick(), [Item(url, str(tmp_path / "x.tar"))])
    assert out.status == "downloaded" and out.verified == ["tar"]
    url = origin.add("/y.tar", body[:2048], length=False, content_type="application/x-tar")
    out, = fetch(quick(retries=0), [Item(url, str(tmp_path / "y.tar"))])
    assert out.status == "failed" and "y.tar" in out.error and "/proc/self" not in out.error


def test_a_wrong_size_at_the_end_fails(origin, tmp_path, said):
    body = payload(4000)
    url = origin.add("/a.bin", body)
    part = tmp_path / "a.bin.part"
    part.write_bytes(body)
    st = os.stat(part)
    _write_state(tmp_path / "a.bin", 5000, [[4000, 4000]], part=[st.st_dev, st.st_ino])
    out, = fetch(quick(retries=0), [Item(url, str(tmp_path / "a.bin"))])
    # the record says 5000 bytes and nothing missing: the .part's 4000 are caught before the rename
    assert out.status == "failed" and out.error == "size 4000 B, expected 5000 B"


def _digest(body):
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


def test_the_servers_sha256_is_checked(origin, tmp_path, said):
    body = payload(70_000)
    url = origin.add("/a.bin", body, digest=_digest(body))
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"), len(body))])
    assert out.status == "downloaded" and out.verified == ["size", "sha-256"]
    url = origin.add("/b.bin", body, digest=_digest(body + b"x"))
    out, = fetch(quick(retries=1), [Item(url, str(tmp_path / "b.bin"), len(body))])
    assert out.status == "failed" and out.attempts == 2 and out.error == "SHA-256 differs from the archive's"
    second = origin.gets("/b.bin")[1]
    assert second.headers["range"] == "bytes=0-69999"  # the bytes were thrown away
    assert not (tmp_path / "b.bin").exists()
    url = origin.add("/c.bin", body, digest=_digest(body), length=False, ranges=False)
    out, = fetch(quick(), [Item(url, str(tmp_path / "c.bin"))])
    assert out.status == "downloaded" and out.verified == ["sha-256"]


def test_a_sha256_digest_larger_than_a_chunk_is_read_whole(origin, tmp_path):
    body = payload(CHUNK + 12345)
    url = origin.add("/a.bin", body, digest=_digest(body))
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"), len(body))])
    assert out.status == "downloaded" and "sha-256" in out.verified


@pytest.mark.parametrize("name, ctype, ok", [("a.bin", "text/html; charset=utf-8", False),
                                               ("a.bin", "application/xhtml+xml", False),
                                               ("a.html", "text/html", True)])
def test_an_html_page_by_content_type(origin, tmp_path, name, ctype, ok):
    body = payload(1000)
    url = origin.add("/" + name, body, content_type=ctype)
    out, = fetch(quick(retries=0), [Item(url, str(tmp_path / name), 1000)])
    assert (out.status == "downloaded") == ok
    if not ok:
        assert "HTML page" in out.error


def test_an_html_page_by_its_first_bytes(origin, tmp_path):
    page = b"  <!DOCTYPE html><html><body>busy</body></html>" + b" " * 500
    url = origin.add("/a.bin", page)
    out, = fetch(quick(retries=0), [Item(url, str(tmp_path / "a.bin"), len(page))])
    assert out.status == "failed" and out.error == "the server sent an HTML page instead of the file"
    url = origin.add("/b.html", page)
    out, = fetch(quick(retries=0), [Item(url, str(tmp_path / "b.html"), len(page))])
    assert out.status == "downloaded"
    out, = fetch(quick(retries=0), [Item(url, str(tmp_path / "c.bin"), len(page), content_type="text/html")])
    assert out.status == "downloaded"
    # an HTML start in a resumed range is data: only a body starting at byte 0 is checked
    body = payload(1000) + page
    url = origin.add("/d.bin", body)
    (tmp_path / "d.bin.part").write_bytes(body[:1000])
    assert fetch(quick(retries=0), [Item(url, str(tmp_path / "d.bin"), len(body))])[0].status == "downloaded"


def test_an_html_file_found_only_at_the_end_is_refused(origin, tmp_path):
    page = b"<html><body>busy</body></html>"
    url = origin.add("/a.bin", page)
    (tmp_path / "a.bin.part").write_bytes(page[:10])  # the start came in an earlier run
    out, = fetch(quick(retries=0), [Item(url, str(tmp_path / "a.bin"), len(page))])
    assert out.status == "failed" and out.error == "the file is an HTML page, not the file the archive lists"


def test_a_connection_refused_is_retried_then_fails(tmp_path, said):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there
    out, = fetch(quick(retries=1), [Item(f"http://127.0.0.1:{port}/a.bin", str(tmp_path / "a.bin"), 10)])
    assert out.status == "failed" and out.attempts == 2 and "ConnectionError" in out.error


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/a.bin", "127.0.0.1/a.bin", "http://"])
def test_an_unusable_url_fails_at_once_naming_it(tmp_path, url):
    out, = fetch(quick(retries=5), [Item(url, str(tmp_path / "a.bin"), 10)])
    assert out.status == "failed" and out.attempts == 1 and out.error.startswith(f"{url}: ")


def test_a_symlinked_part_is_never_written_through(origin, tmp_path):
    url = origin.add("/a.bin", payload(10))
    target = tmp_path / "elsewhere"
    target.write_bytes(b"keep")
    (tmp_path / "a.bin.part").symlink_to(target)
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"), 10)])
    assert out.status == "failed" and out.error.startswith(f"cannot write {tmp_path / 'a.bin.part'}: ")
    assert (out.attempts, out.transferred, out.size) == (0, 0, 0)
    assert target.read_bytes() == b"keep" and origin.log == []


def test_a_part_locked_by_another_run_is_waited_for(origin, tmp_path, said):
    import fcntl
    body = payload(1000)
    url = origin.add("/a.bin", body)
    part = tmp_path / "a.bin.part"
    fd = os.open(part, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)

    def other_run():  # finishes the file and lets go, as a second almafetch would
        time.sleep(0.5)
        os.pwrite(fd, body, 0)
        os.replace(part, tmp_path / "a.bin")
        os.close(fd)
    t = threading.Thread(target=other_run)
    t.start()
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"), 1000)])
    t.join()
    assert out.status == "present" and origin.log == []
    assert said.lines["info"] == ["a.bin: another almafetch is downloading it into this directory; waiting for it"]


def test_a_retry_waits_for_its_backoff(origin, tmp_path):
    url = origin.add("/a.bin", payload(10))
    origin.then("/a.bin", status(503))
    out, = fetch(quick(backoff=0.3, retries=1), [Item(url, str(tmp_path / "a.bin"), 10)])
    first, second = origin.gets("/a.bin")
    # 0.3 s times 0.5 .. 1.5, then the next of the idle streams' 0.2 s looks
    assert out.status == "downloaded" and 0.15 <= second.start - first.start <= 1.1


@pytest.mark.parametrize("jitter, attempts, delay", [
    (0.5, 0, 10.0), (0.5, 1, 20.0), (0.5, 2, 30.0), (0.5, 5, 30.0),   # 10 s doubling, capped at 30 s
    (0.0, 0, 5.0), (0.999, 1, 29.98),                                 # times 0.5 .. 1.5
])
def test_backoff_doubles_with_jitter_and_is_capped_at_thirty_seconds(tmp_path, monkeypatch, said, jitter, attempts,
                                                                      delay):
    monkeypatch.setattr(download.random, "random", lambda: jitter)
    dl = Downloader(backoff=10.0, retries=9)
    _sched(dl, [])
    f = _file(tmp_path, [(0, 10)])
    f.attempts = attempts
    before = time.monotonic()
    dl._failed_try(f, "why", restart=False)
    assert f.attempts == attempts + 1 and f.outcome is None
    assert delay <= f.not_before - before <= delay + 0.05
    assert said.lines["warn"] == [f"f.bin: why; retry {attempts + 1}/9 in {delay:.1f} s"]


# ------------------------------------------------------------------------------ redirects, credentials

def _scope(o):
    return CredentialScope(o.url, (USER, PASSWORD))


def test_credentials_go_to_the_archive_only_for_rows_that_need_them(origin, tmp_path):
    url = origin.add("/p.bin", payload(100))
    dl = quick(scope=_scope(origin))
    outs = fetch(dl, [Item(url, str(tmp_path / "p.bin"), 100, needs_auth=True),
                      Item(url, str(tmp_path / "q.bin"), 100, needs_auth=False),
                      Item(url, str(tmp_path / "r.bin"), 100)])  # public unless said
    assert [o.status for o in outs] == ["downloaded"] * 3
    auth = sorted(q.headers.get("authorization", "") for q in origin.gets("/p.bin"))
    assert auth == ["", "", BASIC]


def test_no_netrc_credentials_are_added(origin, tmp_path, home):
    url = origin.add("/p.bin", payload(100))
    netrc = home / ".netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    try:
        out, = fetch(quick(), [Item(url, str(tmp_path / "p.bin"), 100, needs_auth=True)])
    finally:
        netrc.unlink()
    assert out.status == "downloaded" and "authorization" not in origin.gets("/p.bin")[0].headers


def test_credentials_and_cookies_never_follow_a_redirect_to_another_host(origin, other, tmp_path):
    body = payload(2000)
    there = other.add("/x/p.bin", body)
    origin.add("/p.bin", body)
    # a redirect crossing hosts, with a cookie of the archive's
    origin.then("/p.bin", status(302, Location=there, Set_Cookie="session=abc; Path=/"))
    # the same host: credentials kept; a relative Location is resolved against the URL
    origin.then("/q.bin", status(307, Location="/p.bin"))
    dl = quick(scope=_scope(origin))
    outs = fetch(dl, [Item(origin.url + "/p.bin", str(tmp_path / "p.bin"), 2000, needs_auth=True)])
    assert outs[0].status == "downloaded" and (tmp_path / "p.bin").read_bytes() == body
    first, = origin.gets("/p.bin")
    landed, = other.gets("/x/p.bin")
    assert first.headers["authorization"] == BASIC
    assert "authorization" not in landed.headers and "cookie" not in landed.headers
    outs = fetch(dl, [Item(origin.url + "/q.bin", str(tmp_path / "q.bin"), 2000, needs_auth=True)])
    assert outs[0].status == "downloaded"
    hop, = origin.gets("/q.bin")
    final = origin.gets("/p.bin")[-1]
    assert hop.headers["authorization"] == BASIC and final.headers["authorization"] == BASIC


def test_credentials_never_follow_a_redirect_even_to_a_host_the_scope_allows(origin, other, tmp_path):
    """Two hosts sharing one user database (as the ALMA mirrors do): each gets the credentials when asked
    directly, but a redirect from one to the other drops them."""
    scope = _scope(origin)
    scope.hosts.add(("127.0.0.2", other.httpd.server_address[1]))
    there = other.add("/p.bin", payload(100))
    origin.then("/p.bin", status(301, Location=there))
    outs = fetch(quick(scope=scope), [Item(origin.url + "/p.bin", str(tmp_path / "a.bin"), 100, needs_auth=True),
                                      Item(there, str(tmp_path / "b.bin"), 100, needs_auth=True)])
    assert [o.status for o in outs] == ["downloaded", "downloaded"]
    assert origin.log[0].headers["authorization"] == BASIC
    assert sorted(q.headers.get("authorization", "") for q in other.log) == ["", BASIC]


def test_credentials_are_not_sent_to_a_host_outside_the_scope(origin, other, tmp_path, said):
    url = other.add("/p.bin", payload(100))
    other.then("/p.bin", status(401))
    out, = fetch(quick(scope=_scope(origin)), [Item(url, str(tmp_path / "p.bin"), 100, needs_auth=True)])
    assert out.status == "unauthorized" and "authorization" not in other.gets("/p.bin")[0].headers
    assert out.error == (f"HTTP 401: the archive wants credentials for {url} (not sent: 127.0.0.2:"
                         f"{other.httpd.server_address[1]} is not the archive you authenticated against)")


def test_a_401_on_a_plain_url_is_asked_again_with_credentials(origin, tmp_path, said):
    url = origin.add("/p.bin", payload(100))
    origin.then("/p.bin", status(401, WWW_Authenticate='Basic realm="alma"'))
    # the challenge answered is HTTP authentication, not a failed try: it works with retries=0
    out, = fetch(quick(scope=_scope(origin), retries=0), [Item(url, str(tmp_path / "p.bin"), 100, needs_auth=None)])
    first, second = origin.gets("/p.bin")
    assert "authorization" not in first.headers and second.headers["authorization"] == BASIC
    assert out.status == "downloaded" and out.attempts == 1 and (tmp_path / "p.bin").read_bytes() == payload(100)
    out, = fetch(quick(retries=0), [Item(url, str(tmp_path / "r.bin"), 100, needs_auth=None)])
    assert out.status == "downloaded" and "authorization" not in origin.log[-1].headers
    origin.then("/p.bin", status(401), status(401))
    out, = fetch(quick(scope=_scope(origin), retries=3), [Item(url, str(tmp_path / "q.bin"), 100, needs_auth=None)])
    assert out.status == "unauthorized" and out.attempts == 1 and out.error == f"HTTP 401: the archive wants " \
        f"credentials for {url}"


def test_a_401_without_credentials_to_send_is_final(origin, tmp_path):
    url = origin.add("/p.bin", payload(100))
    for scope in (None, CredentialScope(origin.url, None)):
        origin.then("/p.bin", status(401))
        out, = fetch(quick(scope=scope, retries=3), [Item(url, str(tmp_path / "p.bin"), 100, needs_auth=None)])
        assert out.status == "unauthorized" and out.attempts == 1 and out.error.endswith(url)
    origin.then("/p.bin", status(403))
    out, = fetch(quick(scope=_scope(origin), retries=3), [Item(url, str(tmp_path / "p.bin"), 100, needs_auth=None)])
    assert out.status == "unauthorized" and len(origin.gets("/p.bin")) == 3


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_redirects_are_followed(origin, tmp_path, code):
    body = payload(100)
    origin.add("/t.bin", body)
    origin.then("/r.bin", status(code, Location="/t.bin"))
    out, = fetch(quick(), [Item(origin.url + "/r.bin", str(tmp_path / "a.bin"), 100)])
    assert out.status == "downloaded" and out.requests == 1


def test_a_redirect_without_location_is_final(origin, tmp_path):
    origin.then("/r.bin", status(302))
    out, = fetch(quick(retries=3), [Item(origin.url + "/r.bin", str(tmp_path / "a.bin"), 100)])
    assert out.status == "failed" and out.error == f"HTTP 302 for {origin.url}/r.bin"


@pytest.mark.parametrize("hops, ok", [(10, True), (11, False)])
def test_at_most_ten_redirects(origin, tmp_path, hops, ok):
    origin.add("/end.bin", payload(100))
    for k in range(hops):
        origin.then(f"/r{k}", status(302, Location=f"/r{k + 1}" if k + 1 < hops else "/end.bin"))
    out, = fetch(quick(retries=2), [Item(origin.url + "/r0", str(tmp_path / "a.bin"), 100)])
    assert (out.status == "downloaded") == ok
    assert len(origin.log) == 11  # ten redirects and the file, or eleven redirects
    if not ok:
        assert out.error == f"more than 10 redirects from {origin.url}/end.bin" and out.attempts == 1


# ------------------------------------------------------------------------------------------ HEAD probes

def test_probe_reads_size_type_ranges_and_name(origin):
    url = origin.add("/a.bin", payload(1234), content_type="application/x-tar",
                     extra={"Content-Disposition": 'attachment; filename="real.tar"'})
    p = quick().probe(Item(url, "/nowhere/a.tar"))
    assert (p.status, p.size, p.content_type, p.ranges, p.filename, p.needs_auth, p.error) == \
        (200, 1234, "application/x-tar", True, "real.tar", False, "")
    q, = origin.log
    assert q.method == "HEAD" and q.headers["accept-encoding"] == "identity"
    origin.files["/a.bin"].ranges = False
    origin.files["/a.bin"].length = False
    origin.files["/a.bin"].extra = {}
    p = quick().probe(Item(url, "/nowhere/a.tar"))
    assert p.ranges is False and p.size is None and p.filename == ""


def test_probe_accept_ranges_bytes_only(origin):
    url = origin.add("/a.bin", payload(10), ranges=False, extra={"Accept-Ranges": " Bytes "})
    assert quick().probe(Item(url, "/x/a.bin")).ranges is True
    origin.files["/a.bin"].extra = {"Accept-Ranges": "none"}
    assert quick().probe(Item(url, "/x/a.bin")).ranges is False


def test_probe_errors_name_the_url(origin, said):
    url = origin.url + "/none.bin"
    p = quick().probe(Item(url, "/x/none.bin", needs_auth=None))
    assert p.error == f"HEAD {url}: HTTP 404" and p.status == 404 and p.needs_auth is None and p.size is None
    url = origin.add("/h.bin", payload(10), content_type="text/html")
    p = quick().probe(Item(url, "/x/h.bin"))
    assert p.error.startswith(f"HEAD {url}: the server answered with an HTML page")
    url = origin.add("/n.bin", payload(10), extra={"Content-Disposition": 'attachment; filename=".."'})
    assert quick().probe(Item(url, "/x/n.bin")).error != ""
    for k in range(11):
        origin.then(f"/loop{k}", status(302, Location=f"/loop{k + 1}"))
    p = quick().probe(Item(origin.url + "/loop0", "/x/l.bin"))
    assert p.error == f"HEAD {origin.url}/loop0: more than 10 redirects from {origin.url}/loop11"
    assert (p.status, p.size, p.content_type, p.ranges, p.filename, p.needs_auth) == (0, None, "", False, "", None)


def test_probe_retries_5xx_at_most_three_times(origin, said, monkeypatch):
    monkeypatch.setattr(download.random, "random", lambda: 0.5)
    url = origin.add("/a.bin", payload(10))
    origin.then("/a.bin", *[status(503)] * 10)
    p = quick(backoff=0.01).probe(Item(url, "/x/a.bin"))
    assert p.status == 503 and p.error == f"HEAD {url}: HTTP 503" and len(origin.log) == 4
    assert said.lines["warn"] == [f"HEAD {url}: HTTP 503; retry {k}/3 in 0.0 s" for k in (1, 2, 3)]
    origin.queued.clear()
    origin.log.clear()
    origin.then("/a.bin", status(429))
    p = quick(retries=1).probe(Item(url, "/x/a.bin"))
    assert p.status == 200 and p.size == 10 and len(origin.log) == 2
    origin.then("/a.bin", status(500))
    p = quick(retries=0).probe(Item(url, "/x/a.bin"))
    assert p.status == 500 and len(origin.log) == 3


def test_probe_backoff_doubles_and_is_capped_at_ten_seconds(origin, monkeypatch):
    slept = []
    monkeypatch.setattr(download.random, "random", lambda: 0.25)  # the jitter factor 0.5 + 0.25
    monkeypatch.setattr(download.time, "sleep", slept.append)
    url = origin.add("/a.bin", payload(10))
    origin.then("/a.bin", *[status(502)] * 3)
    quick(backoff=3.0).probe(Item(url, "/x/a.bin"))
    assert slept == pytest.approx([3.0 * 0.75, 6.0 * 0.75, 10.0 * 0.75])  # 3 s doubling, capped at 10 s


def test_probe_of_a_refused_connection(tmp_path, said, monkeypatch):
    import socket
    monkeypatch.setattr(download.time, "sleep", lambda s: None)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    url = f"http://127.0.0.1:{port}/a.bin"
    p = quick(retries=1).probe(Item(url, "/x/a.bin"))
    assert p.error.startswith(f"HEAD {url}: ConnectionError: ") and len(said.lines["warn"]) == 1
    assert said.lines["warn"][0].startswith(f"HEAD {url}: ConnectionError; retry 1/1")


def test_probe_asks_again_with_credentials_after_a_401(origin, other):
    url = origin.add("/p.bin", payload(10))
    origin.then("/p.bin", status(401))
    p = quick(scope=_scope(origin)).probe(Item(url, "/x/p.bin", needs_auth=None))
    assert p.needs_auth is True and p.size == 10
    first, second = origin.log
    assert "authorization" not in first.headers and second.headers["authorization"] == BASIC
    # outside the scope, or a public row: no second request
    url2 = other.add("/p.bin", payload(10))
    other.then("/p.bin", status(401))
    p = quick(scope=_scope(origin)).probe(Item(url2, "/x/p.bin", needs_auth=None))
    assert p.status == 401 and p.needs_auth is None and len(other.log) == 1
    origin.then("/p.bin", status(401))
    p = quick(scope=_scope(origin)).probe(Item(url, "/x/p.bin", needs_auth=False))
    assert p.status == 401 and p.needs_auth is False and len(origin.log) == 3
    p = quick(scope=_scope(origin)).probe(Item(url, "/x/p.bin", needs_auth=True))
    assert p.needs_auth is True and origin.log[-1].headers["authorization"] == BASIC
    p = quick(scope=_scope(origin)).probe(Item(url, "/x/p.bin", needs_auth=None))
    assert p.needs_auth is False and "authorization" not in origin.log[-1].headers


def test_probe_all_keeps_the_order(origin):
    assert quick().probe_all([]) == []
    items = [Item(origin.add(f"/{k}.bin", payload(k + 1)), f"/x/{k}.bin") for k in range(7)]
    assert [p.size for p in quick(nstreams=3).probe_all(items)] == list(range(1, 8))


@pytest.fixture(scope="module")
def shared():
    o = Origin()
    yield o
    o.close()


@settings(max_examples=40)
@given(st.integers(0, 2000), st.integers(0, 2000))
def test_any_resume_point_ends_byte_identical(shared, tmp_path_factory, have, size):
    """Whatever a .part holds (shorter, as long, or longer than the file), the result is the file."""
    tmp = tmp_path_factory.mktemp("r")
    body = payload(size, seed=3)
    path = f"/{have}-{size}.bin"
    url = shared.add(path, body)
    (tmp / "a.bin.part").write_bytes(body[:have] if have <= size else b"y" * have)
    out, = fetch(quick(retries=0), [Item(url, str(tmp / "a.bin"), size)])
    assert out.status == "downloaded" and (tmp / "a.bin").read_bytes() == body
    assert out.transferred == sum(q.body_bytes for q in shared.gets(path)) == (size - have if have <= size else size)


# --------------------------------------------------------------------------- records, odd answers

def test_a_failed_run_records_exactly_what_is_missing(origin, tmp_path):
    body = payload(300_000)
    url = origin.add("/a.bin", body, etag='"v"')
    origin.then("/a.bin", cut(100_000))
    out, = fetch(quick(retries=0), [Item(url, str(tmp_path / "a.bin"), len(body))])
    assert out.status == "failed" and out.transferred == 100_000
    state = json.loads((tmp_path / "a.bin.part.json").read_text())
    st = os.stat(tmp_path / "a.bin.part")
    assert state == {"url": url, "size": 300_000, "validator": '"v"', "digest": "",
                     "part": [st.st_dev, st.st_ino], "segments": [[100_000, 300_000]]}
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / "a.bin.part.json").st_mode & 0o777 == 0o644 & ~umask
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left
    assert partial_bytes(tmp_path / "a.bin") == 100_000
    out, = fetch(quick(retries=0), [Item(url, str(tmp_path / "a.bin"), len(body))])
    assert out.status == "downloaded" and origin.log[-1].headers["range"] == "bytes=100000-299999"
    assert origin.log[-1].headers["if-range"] == '"v"' and (tmp_path / "a.bin").read_bytes() == body


def _recorded_positions(url, dest: Path, size: int) -> list[int]:
    """Fetch *url* with one stream, watching its .part.json record: the first range's positions it held, in order."""
    t = threading.Thread(target=lambda: quick(nstreams=1).fetch_all([Item(url, str(dest), size)]), daemon=True)
    t.start()
    seen = []
    while t.is_alive():
        try:
            pos = json.loads(dest.with_name(dest.name + ".part.json").read_text())["segments"][0][0]
            if not seen or seen[-1] != pos:
                seen.append(pos)
        except (OSError, ValueError, IndexError):
            pass
        time.sleep(0.001)
    t.join()
    return seen


def test_the_record_is_written_every_mib(origin, tmp_path):
    origin.rate = 4 * MiB
    body = payload(2 * MiB)
    url = origin.add("/a.bin", body)
    seen = _recorded_positions(url, tmp_path / "a.bin", len(body))
    assert (tmp_path / "a.bin").read_bytes() == body
    # the first record once 1 MiB has come, the end of the first of two requests (a second's record: later)
    assert seen and MiB <= seen[0] < MiB + 256 * 1024, seen


def test_a_size_the_server_leaves_open_is_not_learnt(origin, tmp_path):
    body = payload(3000)
    url = origin.add("/a.bin", body)
    origin.then("/a.bin", lambda o, h, r: serve(o, h, r, content_range="bytes 0-2999/*"))
    out, = fetch(quick(retries=0), [Item(url, str(tmp_path / "a.bin"), 3000)])
    assert out.status == "downloaded" and out.verified == ["size"]


def test_a_validator_the_server_stops_sending_is_no_change(origin, tmp_path):
    body = payload(300_000)
    url = origin.add("/a.bin", body, etag='"v"')

    def unlabelled(o, h, r):
        o.files["/a.bin"].etag = ""
        serve(o, h, r)
    origin.then("/a.bin", cut(1000), unlabelled)
    out, = fetch(quick(retries=1), [Item(url, str(tmp_path / "a.bin"), len(body))])
    assert out.status == "downloaded" and out.attempts == 2


def test_probe_retries_500_and_reports_400(origin):
    url = origin.add("/a.bin", payload(10))
    origin.then("/a.bin", status(500))
    p = quick(retries=1).probe(Item(url, "/x/a.bin"))
    assert p.status == 200 and p.size == 10 and len(origin.log) == 2
    origin.then("/a.bin", status(400), status(399))
    p = quick(retries=1).probe(Item(url, "/x/a.bin", needs_auth=None))
    assert (p.status, p.needs_auth, p.error, len(origin.log)) == (400, None, f"HEAD {url}: HTTP 400", 3)
    p = quick(retries=1).probe(Item(url, "/x/a.bin", needs_auth=None))
    assert (p.status, p.needs_auth, p.error) == (399, False, "")


def test_the_record_is_also_written_every_second(origin, tmp_path):
    origin.rate = 256 * 1024
    body = payload(400 * 1024)
    url = origin.add("/a.bin", body)
    seen = _recorded_positions(url, tmp_path / "a.bin", len(body))
    # less than a MiB in all: the record comes after a second, about 256 KiB in
    assert seen and 160 * 1024 <= seen[0] <= 360 * 1024, seen


def test_probe_asks_with_credentials_once(origin):
    url = origin.add("/p.bin", payload(10))
    origin.then("/p.bin", status(401), status(503), status(401))
    p = quick(scope=_scope(origin), retries=3).probe(Item(url, "/x/p.bin", needs_auth=None))
    assert (p.status, p.needs_auth, len(origin.log)) == (401, None, 3)
    assert [q.headers.get("authorization") for q in origin.log] == [None, BASIC, BASIC]


def test_an_os_error_fails_that_file_only(origin, tmp_path):
    body = payload(100)
    url = origin.add("/a.bin", body)
    (tmp_path / "a.bin").mkdir()
    (tmp_path / "a.bin" / "x").write_bytes(b"")  # a directory in the way of the rename
    outs = fetch(quick(), [Item(url, str(tmp_path / "a.bin"), 100), Item(url, str(tmp_path / "b.bin"), 100)])
    assert outs[0].status == "failed" and outs[0].error.startswith("IsADirectoryError: ")
    assert outs[1].status == "downloaded"


def test_missing_directories_are_made(origin, tmp_path):
    url = origin.add("/a.bin", payload(100))
    out, = fetch(quick(), [Item(url, str(tmp_path / "x" / "y" / "a.bin"), 100)])
    assert out.status == "downloaded" and (tmp_path / "x" / "y" / "a.bin").read_bytes() == payload(100)


def test_gzip_is_read_through_only_when_nothing_else_vouches(origin, tmp_path):
    import gzip
    good = gzip.compress(payload(50_000))
    url = origin.add("/a.gz", good, length=False, content_type="application/gzip")
    out, = fetch(quick(retries=0), [Item(url, str(tmp_path / "a.gz"))])
    assert out.status == "downloaded" and out.verified == ["gzip"]
    url = origin.add("/b.gz", good[:-8], length=False, content_type="application/gzip")
    out, = fetch(quick(retries=0), [Item(url, str(tmp_path / "b.gz"))])
    assert out.status == "failed" and "b.gz" in out.error
    url = origin.add("/c.gz", good[:-8], content_type="application/gzip")
    out, = fetch(quick(retries=0), [Item(url, str(tmp_path / "c.gz"), len(good) - 8)])
    assert out.status == "downloaded" and out.verified == ["size"]  # the size vouches: no full read


def test_a_stall_is_retried_from_the_last_byte(origin, tmp_path, said):
    body = payload(200_000)
    url = origin.add("/a.bin", body)

    def stall(o, h, r):  # 1000 bytes, then nothing for longer than the read timeout
        r.status = 206
        h.send_response(206)
        h.send_header("Content-Range", f"bytes 0-{len(body) - 1}/{len(body)}")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        o.send(h, r, body[:1000])
        h.wfile.flush()
        time.sleep(1.0)
        h.close_connection = True
    origin.then("/a.bin", stall)
    out, = fetch(quick(timeout=0.3), [Item(url, str(tmp_path / "a.bin"), len(body))])
    assert out.status == "downloaded" and out.attempts == 2 and (tmp_path / "a.bin").read_bytes() == body
    assert origin.gets("/a.bin")[1].headers["range"] == "bytes=1000-199999"
    assert "at byte 1000;" in said.lines["warn"][0]


def test_ranges_in_flight_when_the_file_restarts_are_dropped(origin, tmp_path):
    old, body = payload(10_000, seed=5), payload(10_000)
    url = origin.add("/a.bin", old, etag='"v1"')

    def by_range(o, h, r):  # the first range finds the file replaced; the second answers late, from the old
        if h.headers["Range"] == "bytes=0-999":  # one, while the restarted request still waits for its answer
            o.files["/a.bin"] = Resource(body, etag='"v2"')
            return serve(o, h, r)
        if h.headers["Range"] == "bytes=0-9999":
            time.sleep(0.6)
            return serve(o, h, r)
        time.sleep(0.3)
        part = old[5000:]
        r.status = 206
        h.send_response(206)
        h.send_header("Content-Range", "bytes 5000-9999/10000")
        h.send_header("ETag", '"v1"')
        h.send_header("Content-Length", str(len(part)))
        h.end_headers()
        o.send(h, r, part)
    origin.then("/a.bin", by_range, by_range, by_range)
    part = tmp_path / "a.bin.part"
    part.write_bytes(b"\0" * 1000 + old[1000:5000] + b"\0" * 5000)
    st = os.stat(part)
    _write_state(tmp_path / "a.bin", len(body), [[0, 1000], [5000, 10_000]], part=[st.st_dev, st.st_ino],
                 validator='"v1"')
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"), len(body))])
    # one failure (the change); the late answer from the old file is dropped, not a second one
    assert out.status == "downloaded" and out.attempts == 2 and (tmp_path / "a.bin").read_bytes() == body
    assert sorted(q.headers["range"] for q in origin.gets("/a.bin")) == ["bytes=0-999", "bytes=0-9999",
                                                                        "bytes=5000-9999"]


def test_a_split_file_resumed_on_a_server_that_stopped_serving_ranges_starts_again(origin, tmp_path, said):
    body = payload(10_000)
    url = origin.add("/a.bin", body, ranges=False)
    part = tmp_path / "a.bin.part"
    part.write_bytes(b"\0" * 1000 + body[1000:5000] + b"\0" * 5000)
    st = os.stat(part)
    _write_state(tmp_path / "a.bin", len(body), [[1000, 1000], [5000, 10_000]], part=[st.st_dev, st.st_ino])
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"), len(body))])
    assert out.status == "downloaded" and out.attempts == 2 and (tmp_path / "a.bin").read_bytes() == body
    assert "the server stopped honouring byte ranges (the file changed?)" in said.lines["warn"][0]


def test_a_server_without_ranges_is_never_split(origin, tmp_path):
    origin.rate = 8 * MiB
    body = payload(3 * MiB)
    url = origin.add("/a.bin", body, ranges=False)
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"), len(body))])
    assert out.status == "downloaded" and out.attempts == 1 and (tmp_path / "a.bin").read_bytes() == body
    q, = origin.gets("/a.bin")  # asked as a first window of 1 MiB, answered whole, taken whole
    assert q.headers["range"] == f"bytes=0-{MiB - 1}" and q.status == 200 and q.body_bytes == 3 * MiB


def test_a_one_byte_part_on_a_server_without_ranges_starts_again(origin, tmp_path):
    body = payload(5000)
    url = origin.add("/a.bin", body, ranges=False)
    (tmp_path / "a.bin.part").write_bytes(body[:1])
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"), len(body))])
    assert out.status == "downloaded" and out.attempts == 2 and (tmp_path / "a.bin").read_bytes() == body


def _overlong(body, junk):
    """Answers a range with its Content-Range, then *junk* more bytes (and a Content-Length that says so)."""
    def hook(o, h, r):
        a, b = (h.headers["Range"].removeprefix("bytes=").split("-") + [""])[:2]
        a, b = int(a), int(b) if b else len(body) - 1
        r.status = 206
        h.send_response(206)
        h.send_header("Content-Range", f"bytes {a}-{b}/{len(body)}")
        h.send_header("Content-Length", str(b + 1 - a + len(junk)))
        h.end_headers()
        o.send(h, r, body[a:b + 1] + junk)
    return hook


def test_a_request_takes_no_byte_beyond_its_window(origin, tmp_path):
    body = payload(3 * MiB)
    url = origin.add("/a.bin", body)
    origin.then("/a.bin", _overlong(body, b"J" * 100_000))
    # one stream: windows of half what is left, at least 1 MiB: 1.5 MiB, 1 MiB, the last 0.5 MiB
    out, = fetch(quick(nstreams=1), [Item(url, str(tmp_path / "a.bin"), len(body))])
    assert out.status == "downloaded" and out.attempts == 1 and (tmp_path / "a.bin").read_bytes() == body
    assert [q.headers["range"] for q in origin.gets("/a.bin")] == [f"bytes=0-{3 * MiB // 2 - 1}",
                                                                   f"bytes={3 * MiB // 2}-{5 * MiB // 2 - 1}",
                                                                   f"bytes={5 * MiB // 2}-{3 * MiB - 1}"]


def test_an_open_range_takes_no_byte_beyond_the_size_it_learns(origin, tmp_path):
    body = payload(50_000)
    url = origin.add("/a.bin", body)
    origin.then("/a.bin", _overlong(body, b"J" * 1000))
    (tmp_path / "a.bin.part").write_bytes(body[:1000])
    out, = fetch(quick(retries=0), [Item(url, str(tmp_path / "a.bin"))])
    assert out.status == "downloaded" and (tmp_path / "a.bin").read_bytes() == body


def test_a_content_encoding_is_not_undone(origin, tmp_path):
    """A .gz served with Content-Encoding: gzip (a common server slip) is the .gz the archive lists."""
    import gzip
    data = gzip.compress(payload(20_000))
    url = origin.add("/a.gz", data, content_type="application/gzip", extra={"Content-Encoding": "gzip"})
    out, = fetch(quick(retries=0), [Item(url, str(tmp_path / "a.gz"), len(data))])
    assert out.status == "downloaded" and (tmp_path / "a.gz").read_bytes() == data


def test_an_rfc3230_digest_is_checked_too(origin, tmp_path):
    body = payload(5000)
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    url = origin.add("/a.bin", body, extra={"Digest": f"SHA-256={wrong}"})
    out, = fetch(quick(retries=0), [Item(url, str(tmp_path / "a.bin"), len(body))])
    assert out.status == "failed" and out.error == "SHA-256 differs from the archive's"
    right = base64.b64encode(hashlib.sha256(body).digest()).decode()
    url = origin.add("/b.bin", body, extra={"Digest": f"SHA-256={right}"})
    out, = fetch(quick(retries=0), [Item(url, str(tmp_path / "b.bin"), len(body))])
    assert out.status == "downloaded" and out.verified == ["size", "sha-256"]


def test_a_file_that_shrank_is_fetched_into_an_emptied_part(origin, tmp_path):
    body = payload(300_000)
    url = origin.add("/a.bin", body)

    def shrink(o, h, r):
        o.files["/a.bin"] = Resource(body[:100_000])
        serve(o, h, r)  # 416: no byte 200000 any more
    origin.then("/a.bin", cut(200_000), shrink)
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"))])
    assert out.status == "downloaded" and out.size == 100_000 and (tmp_path / "a.bin").read_bytes() == body[:100_000]


def test_a_part_that_cannot_be_trusted_is_emptied(origin, tmp_path):
    """A .part longer than the file, or with a record of another .part: emptied before the first request,
    so even a run that fails leaves nothing stale to resume from."""
    url = origin.url + "/gone.bin"
    (tmp_path / "a.bin.part").write_bytes(b"stale" * 100)
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"), 10)])
    assert out.status == "failed" and (tmp_path / "a.bin.part").stat().st_size == 0
    (tmp_path / "b.bin.part").write_bytes(b"stale" * 100)
    _write_state(tmp_path / "b.bin", 500, [[0, 10]], part=[0, 0])
    out, = fetch(quick(), [Item(url, str(tmp_path / "b.bin"), 500)])
    assert out.status == "failed" and (tmp_path / "b.bin.part").stat().st_size == 0


def test_a_restarted_file_of_unknown_size_is_still_unverified(origin, tmp_path):
    body = payload(5000)
    url = origin.add("/a.bin", body, length=False)
    origin.then("/a.bin", _html_once)  # an error page first: the file starts again
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"))])
    assert out.status == "unverified" and out.attempts == 2
    assert (tmp_path / "a.bin.part").read_bytes() == body


def _html_once(o, h, r):
    page = b"<html><body>busy</body></html>"
    r.status = 200
    h.send_response(200)
    h.send_header("Content-Type", "application/octet-stream")
    h.send_header("Content-Length", str(len(page)))
    h.end_headers()
    o.send(h, r, page)


def test_an_unranged_file_leaves_no_record(origin, tmp_path):
    body = payload(300_000)
    url = origin.add("/a.bin", body, ranges=False)
    origin.then("/a.bin", cut(1000))
    out, = fetch(quick(retries=0), [Item(url, str(tmp_path / "a.bin"), len(body))])
    assert out.status == "failed" and not (tmp_path / "a.bin.part.json").exists()
    assert (tmp_path / "a.bin.part").stat().st_size == 1000


def test_a_file_waiting_out_its_backoff_does_not_hold_up_the_others(origin, tmp_path, monkeypatch):
    monkeypatch.setattr(download.random, "random", lambda: 0.5)
    url_a = origin.add("/a.bin", payload(100))
    origin.then("/a.bin", status(503))
    body = payload(10_000)
    url_b = origin.add("/b.bin", body)
    part = tmp_path / "b.bin.part"
    part.write_bytes(b"\0" * 1000 + body[1000:5000] + b"\0" * 1000 + body[6000:9000] + b"\0" * 1000)
    st = os.stat(part)
    _write_state(tmp_path / "b.bin", 10_000, [[0, 1000], [5000, 6000], [9000, 10_000]], part=[st.st_dev, st.st_ino])
    outs = fetch(quick(nstreams=1, backoff=0.5), [Item(url_a, str(tmp_path / "a.bin"), 100),
                                                  Item(url_b, str(tmp_path / "b.bin"), 10_000)])
    assert [o.status for o in outs] == ["downloaded", "downloaded"]
    # one stream: b's three ranges all come while a waits its 0.5 s, in the file's order
    assert [q.path for q in origin.log] == ["/a.bin", "/b.bin", "/b.bin", "/b.bin", "/a.bin"]
    assert [q.headers["range"] for q in origin.gets("/b.bin")] == ["bytes=0-999", "bytes=5000-5999",
                                                                  "bytes=9000-9999"]


def test_a_range_still_arriving_when_its_file_restarts_writes_nothing_more(origin, tmp_path):
    size = 200_000
    old, body = payload(size, seed=5), payload(size)
    url = origin.add("/a.bin", old, etag='"v1"')

    def by_range(o, h, r):
        if h.headers["Range"] == "bytes=0-999":  # the file is replaced once the other range has begun
            time.sleep(0.15)
            o.files["/a.bin"] = Resource(body, etag='"v2"')
            return serve(o, h, r)
        if h.headers["Range"] == f"bytes=0-{size - 1}":  # the restarted request: after the old range is sent
            time.sleep(1.2)
            return serve(o, h, r)
        part = old[5000:]  # the old file's range, in ten pieces over a second
        r.status = 206
        h.send_response(206)
        h.send_header("Content-Range", f"bytes 5000-{size - 1}/{size}")
        h.send_header("ETag", '"v1"')
        h.send_header("Content-Length", str(len(part)))
        h.end_headers()
        step = len(part) // 10 + 1
        for i in range(0, len(part), step):
            h.wfile.write(part[i:i + step])
            h.wfile.flush()
            r.body_bytes += len(part[i:i + step])
            time.sleep(0.1)
    origin.then("/a.bin", by_range, by_range, by_range)
    part = tmp_path / "a.bin.part"
    part.write_bytes(b"\0" * 1000 + old[1000:5000] + b"\0" * (size - 5000))
    st = os.stat(part)
    _write_state(tmp_path / "a.bin", size, [[0, 1000], [5000, size]], part=[st.st_dev, st.st_ino], validator='"v1"')
    out, = fetch(quick(), [Item(url, str(tmp_path / "a.bin"), size)])
    assert out.status == "downloaded" and out.attempts == 2 and (tmp_path / "a.bin").read_bytes() == body
    # kept: the new file whole, and of the old range only what came before the change (two or three pieces)
    assert size <= out.transferred < size + 100_000
