"""What servers say is data: names and paths from DataLink, DataLink documents themselves, and which hosts
get the user's credentials — generated hostile inputs, and real servers that record what they receive."""

import hashlib
import posixpath
import random
import socket
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from almatools.casa_tasks import almafetch
from almatools.plugins.archive import datalink
from almatools.plugins.archive.credentials import CredentialScope, origin
from almatools.plugins.archive.emulator import FaultProxy
from almatools.plugins.archive.emulator.catalog import _votable
from almatools.plugins.archive.emulator.server import URL_PLACEHOLDER
from almatools.plugins.archive.names import (UnsafeName, file_name, name_from_disposition, name_from_url,
                                             tree_path)
from almatools.plugins.archive.service import MIRRORS

#: fragments hostile names are made of: traversal, separators of both kinds, encodings of them, NUL and
#: controls, white space, unicode look-alikes, very long runs
FRAGMENTS = ["..", ".", "/", "\\", "%2e%2e", "%2f", "%2F", "%5c", "%00", "\x00", "\n", "\r", "\t", " ", "~", "\u2215",
             "\uff0e\uff0e", "..\\", "../", "/etc/passwd", "C:\\", "a" * 300, "member.uid___A001_X1_X2.README.txt",
             "product", ".part", ".hidden", "\udcff"]
HOSTILE = st.sampled_from(FRAGMENTS)
HOSTILE_TEXT = st.lists(st.one_of(HOSTILE, st.text(max_size=8)), min_size=1, max_size=8).map("".join)


def _inside(root: str, rel: str) -> bool:
    return posixpath.normpath(posixpath.join(root, rel)).startswith(root + "/")


@pytest.mark.fuzz
@given(HOSTILE_TEXT)
def test_server_names_and_tree_paths_never_leave_their_directory(text):
    try:
        name = file_name(text, "a test row")
    except UnsafeName as exc:
        assert "a test row" in str(exc) and exc.why
    else:
        assert "/" not in name and "\\" not in name and name not in ("", ".", "..") and not name.startswith(".")
        assert all(ord(c) >= 32 and c != "\x7f" for c in name) and len(name.encode("utf-8", "surrogateescape")) <= 255
        assert _inside("/outdir", name) and posixpath.dirname(posixpath.join("/outdir", name)) == "/outdir"
    try:
        rel = tree_path(text, "a test row")
    except UnsafeName as exc:
        assert "a test row" in str(exc)
    else:
        assert _inside("/tree", rel) and not rel.startswith("/") and ".." not in rel.split("/")
        assert all(ord(c) >= 32 for c in rel) and "\\" not in rel


@pytest.mark.fuzz
@given(HOSTILE_TEXT, st.sampled_from(["http://h/dataPortal/", "https://h/a/b/", "http://h/"]))
def test_names_from_urls_and_content_disposition_are_single_safe_components(text, prefix):
    for make in (lambda: name_from_url(prefix + quote(text, safe="/%", errors="surrogateescape")),
                 lambda: name_from_disposition(f'attachment; filename="{text}"', "a header"),
                 lambda: name_from_disposition(f"attachment; filename={text}", "a header"),  # the dataPortal's form
                 lambda: name_from_disposition(f"attachment; filename*=UTF-8''{quote(text, errors='surrogateescape')}", "a header")):
        try:
            name = make()
        except UnsafeName:
            continue
        assert name == "" or (file_name(name, "check") == name and _inside("/outdir", name))


def test_a_hostile_datalink_document_is_refused_row_by_row_and_nothing_leaves_outdir(archive, tmp_path):
    """A Member OUS whose DataLink rows name files with '..', absolute paths, encoded separators and
    descriptions whose 'path:' leaves the tree, next to good rows: the good files come, each bad row is
    refused with the reason, nothing is written outside outdir, and the result says ok=False."""
    rng = random.Random(14)
    good = next(n for n, v in archive.manifest.items() if v["public"] and n.endswith(".README.txt"))
    fits = next(n for n, v in archive.manifest.items() if v["public"] and n.endswith(".pbcor.fits"))
    mous, tar = "uid://A001/Xhostile/X1", "2019.1.99999.S_uid___A001_Xhostile_X1_001_of_001.tar"
    bad_names = ["..", "%2e%2e", "..%2F..%2Fescaped.txt", "%2Fetc%2Fpasswd", "x%00y", "%0Aevil", ".hidden",
                 "a.tar.part"] + ["".join(rng.choice(["..", "%2F", "%5C", "%2e"]) for _ in range(4)) for _ in range(4)]
    rows = [(mous, f"{URL_PLACEHOLDER}/dataPortal/{good}", "", "", "#documentation", "README", "text/plain", -1,
             "true"), (mous, f"{URL_PLACEHOLDER}/dataPortal/{tar}", "", "", "#this", "products", "application/x-tar",
                       -1, "true"),
            (mous, "", f"DataLink.{tar}", "", "#this", "listing", datalink.LISTING_TYPE, "", "true")]
    rows += [(mous, f"{URL_PLACEHOLDER}/dataPortal/{n}", "", "", "#this", "bad", "application/fits", 10, "true")
             for n in bad_names]
    archive.add_datalink(mous, rows, [(f"DataLink.{tar}", f"{URL_PLACEHOLDER}/datalink/sync?ID={tar}")])
    bad_paths = ["../../../escaped.fits", "/tmp/almatools-escape.fits", "product/../../x.fits", "..",
                 "product\\..\\..\\x.fits", "./../x.fits"]
    members = [(tar, f"{URL_PLACEHOLDER}/dataPortal/{fits}", "", "", "#this", f"type: product. path: {p}",
                "image/fits", -1, "true") for p in bad_paths]
    archive.add_datalink(tar, members)
    out = tmp_path / "deep" / "out"
    around = set(tmp_path.rglob("*"))
    r = almafetch(uid=[mous], include=["*.README.txt", "*.pbcor.fits"], service=archive.url, outdir=str(out),
                  unpack=True)
    assert r["ok"] is False
    refused = [f for f in r["failed"] if f["status"] == "refused"]
    assert len(refused) == len(bad_names) + len(bad_paths)
    assert all("refused the name" in f["error"] for f in refused)
    assert {f["url"].rsplit("/", 1)[-1] for f in refused if "dataPortal" in f["url"]} >= set(bad_names)
    assert [f["name"] for f in r["files"]] == [good]
    assert hashlib.sha256((out / good).read_bytes()).hexdigest() == archive.manifest[good]["sha256"]
    assert set(tmp_path.rglob("*")) - around <= {tmp_path / "deep", out, *out.rglob("*")}
    assert not any(p.name in ("escaped.txt", "escaped.fits", "passwd") for p in tmp_path.rglob("*"))


# ------------------------------------------------------------------------------------ DataLink documents

#: row text: mostly characters XML allows (so most documents parse and their rows are used), sometimes not
_XML_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cn", "Co")), max_size=30)
_HOSTILE_XML = st.lists(st.one_of(st.sampled_from([f for f in FRAGMENTS if not any(c in f for c in "\x00\udcff\r")]),
                                  _XML_TEXT), min_size=1, max_size=6).map("".join)
_ROW_TEXT = st.one_of(_XML_TEXT, _HOSTILE_XML, st.just(""))
_ROW = st.tuples(_ROW_TEXT, st.one_of(st.just(f"{URL_PLACEHOLDER}/dataPortal/"), _ROW_TEXT).flatmap(
    lambda p: _ROW_TEXT.map(lambda t: p + t)), _ROW_TEXT, st.one_of(st.just(""), _ROW_TEXT),
    st.sampled_from(["#this", "#auxiliary", "#progenitor", "#documentation", "#cutout", "#datalink", ""]),
    _ROW_TEXT, st.sampled_from(["application/x-tar", "text/plain", datalink.LISTING_TYPE, "image/fits", ""]),
    st.one_of(st.integers(-2, 2**62), st.just(""), st.just(-1)), st.sampled_from(["true", "false", "", "T"]))


@st.composite
def _documents(draw):
    """DataLink documents as the emulator writes them, with generated rows, then sometimes damaged."""
    rows = draw(st.lists(_ROW, max_size=6))
    services = draw(st.lists(st.tuples(_ROW_TEXT, _ROW_TEXT), max_size=2))
    text = _votable(rows, services)
    data = text.encode("utf-8", "surrogateescape")
    damage = draw(st.sampled_from(["none", "none", "none", "truncate", "flip", "insert"]))
    if damage != "none" and data:
        at = draw(st.integers(0, len(data) - 1))
        if damage == "truncate":
            data = data[:at]
        elif damage == "flip":
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
        else:
            data = data[:at] + draw(st.binary(min_size=1, max_size=20)) + data[at:]
    return data


@pytest.mark.fuzz
@given(_documents())
def test_datalink_reader_returns_safe_links_or_a_clear_error(data):
    url = "http://127.0.0.1:9/datalink/sync?ID=uid%3A%2F%2FA001%2FX1%2FX1"
    try:
        doc = datalink.read_document(data, url)
    except datalink.DataLinkError as exc:
        assert url in str(exc)
        return
    refused = []
    links, errors = datalink.links_from_document(doc, "uid://A001/X1/X1", refused)
    tar = datalink.Link("uid://A001/X1/X1", "x.tar", "http://h/x.tar", "product", None)
    members = datalink.members_from_document(doc, tar, refused)
    for link in links + members:
        assert file_name(link.name, "check") == link.name
        assert link.size is None or 0 < link.size < datalink.MAX_SIZE
        assert isinstance(link.readable, bool)
    for m in members:
        assert _inside("/tree", m.tree_path)
    assert all(f["status"] == "refused" and f["error"] for f in refused)


def test_unknown_member_ous_is_named_with_the_url_asked(archive, tmp_path):
    from almatools.errors import TaskParameterError
    with pytest.raises(TaskParameterError, match=r"parameter 'uid' names a Member OUS the archive does not know "
                                                 r"\(http://127\.0\.0\.1:\d+/datalink/sync\?ID=uid%3A%2F%2FA001%2F"
                                                 r"X9999%2FX9 answered HTTP 404\); got 'uid://A001/X9999/X9'"):
        almafetch(uid=["uid://A001/X9999/X9"], service=archive.url, outdir=str(tmp_path))
    # a service that answers an HTML page (a portal's error page) is named as such, not as a VOTable error
    archive.add_datalink("uid://A001/X9999/X8", [])
    page = archive.root / "www" / "datalink" / (quote("uid://A001/X9999/X8", safe="") + ".xml")
    page.write_text("<html><body>Maintenance</body></html>")
    with pytest.raises(datalink.DataLinkError, match="not a readable DataLink VOTable"):
        almafetch(uid=["uid://A001/X9999/X8"], service=archive.url, outdir=str(tmp_path))


# ---------------------------------------------------------------------------------------- credentials

_HOSTS = st.sampled_from(["almascience.eso.org", "almascience.nrao.edu", "almascience.nao.ac.jp", "127.0.0.1",
                          "localhost", "127.0.0.2", "[::1]", "evil.example", "almascience.eso.org.evil.example",
                          "almascience.eso.org.", "ALMASCIENCE.ESO.ORG", "192.0.2.2", "xn--almscience-z3a.org",
                          "almascíence.eso.org", ""])
_TRICKS = st.sampled_from(["", "@evil.example", "\\@evil.example", "%40evil.example", ":443@evil.example",
                           "\\", " ", "#@evil.example", "?@evil.example", "\t", ":99999", ":-1", ":8443", ":80",
                           ":443", ":0"])


@pytest.mark.fuzz
@given(st.sampled_from(["https", "http", "HTTPS", "ftp", "file", ""]), st.sampled_from(["", "user:pw@", "u@"]),
       _HOSTS, _TRICKS, st.sampled_from(["", "/dataPortal/x.tar", "/a/../b", "/%2e%2e/x"]),
       st.sampled_from(["https://almascience.eso.org", "http://127.0.0.1:8080", "https://archive.example"]))
def test_credentials_only_reach_the_archive_over_https_whatever_the_url(scheme, userinfo, host, trick, path, base):
    import requests
    url = f"{scheme}://{userinfo}{host}{trick}{path}"
    scope = CredentialScope(base, ("alice", "secret"))
    if scope.for_request(url, True) is None:
        return
    # independently of almatools: where would requests really send this URL?
    prepared = urlsplit(requests.Request("GET", url).prepare().url)
    port = prepared.port or {"http": 80, "https": 443}[prepared.scheme]
    own = urlsplit(base)
    allowed = {(own.hostname, own.port or {"http": 80, "https": 443}[own.scheme])}
    if own.hostname in {urlsplit(m).hostname for m in MIRRORS.values()}:
        allowed |= {(urlsplit(m).hostname, 443) for m in MIRRORS.values()}
    assert (prepared.hostname, port) in allowed
    assert prepared.scheme == "https" or prepared.hostname in ("127.0.0.1", "localhost", "::1")
    assert not prepared.username and not scope.why_not(url)


def test_credential_scope_is_not_vacuous():
    mirror = CredentialScope("https://almascience.eso.org", ("a", "b"))
    assert mirror.allows("https://almascience.nrao.edu/dataPortal/x.tar")  # a documented mirror
    assert not mirror.allows("http://almascience.eso.org/dataPortal/x.tar")
    assert "only sent over https" in mirror.why_not("http://almascience.eso.org/dataPortal/x.tar")
    assert not mirror.allows("https://almascience.eso.org.evil.example/x")
    local = CredentialScope("http://127.0.0.1:8080", ("a", "b"))
    assert local.allows("http://127.0.0.1:8080/dataPortal/x") and not local.allows("http://127.0.0.1:8081/x")
    assert not local.allows("https://almascience.eso.org/x")  # the emulator's user is not the archive's
    assert origin("http://evil.example\\@127.0.0.1:8080/x") is None


def _non_loopback_address() -> str:
    """An address of this machine that is not loopback ('' when it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.123", 9))  # no packet is sent: this only picks the route's source address
            address = s.getsockname()[0]
        except OSError:
            return ""
    return "" if address.startswith("127.") else address


def test_credentials_go_only_to_the_archive_host_over_https_or_loopback_and_only_for_proprietary_rows(
        archive, tmp_path, monkeypatch):
    """Recording proxies in front of the emulator's nginx see every Authorization header: the archive host
    gets it only for proprietary files; another host, a redirect to it and a plain-http archive never do."""
    monkeypatch.setenv("ALMATOOLS_ARCHIVE_PASSWORD", archive.password)
    other = FaultProxy(archive.nginx_port, bind="127.0.0.2")
    plain_host = _non_loopback_address()
    plain = FaultProxy(archive.nginx_port, bind=plain_host) if plain_host else None
    try:
        archive.faults.clear()
        private = sorted(n for n, v in archive.manifest.items() if not v["public"])
        public = next(n for n, v in archive.manifest.items() if v["public"] and n.endswith(".README.txt"))
        mous = "uid://A001/Xcred/X1"
        proxied = archive.faulty_url  # the archive the user authenticates against, recording every request
        rows = [(mous, f"{proxied}/dataPortal/{private[0]}", "", "", "#this", "own host", "", -1, "false"),
                (mous, f"{proxied}/dataPortal/{public}", "", "", "#documentation", "public", "text/plain", -1, "true"),
                (mous, f"{other.url}/dataPortal/{private[1]}", "", "", "#this", "other host", "", -1, "false"),
                (mous, f"{proxied}/redirect/{other.host}:{other.port}/dataPortal/{private[2]}", "", "", "#this",
                 "redirected to the other host", "", -1, "false")]
        if plain:
            rows.append((mous, f"{plain.url}/dataPortal/{private[3]}", "", "", "#this", "plain http", "", -1, "false"))
        archive.add_datalink(mous, rows)
        r = almafetch(uid=[mous], service=proxied, outdir=str(tmp_path / "a"), username=archive.username, raw=True)
        status = {f["name"]: f["status"] for f in r["files"]}
        assert status[private[0]] == "downloaded" and status[public] == "downloaded"
        assert status[private[1]] == status[private[2]] == "unauthorized"
        assert r["ok"] is False and {f["name"] for f in r["failed"]} >= {private[1], private[2]}
        seen = [(q.method, q.path, "authorization" in q.headers) for q in archive.faults.requests]
        with_auth = {p for m, p, a in seen if a}
        assert with_auth == {f"/dataPortal/{private[0]}", f"/redirect/{other.host}:{other.port}/dataPortal/{private[2]}"}
        assert any(p == f"/dataPortal/{public}" for m, p, a in seen)  # asked, without credentials
        assert other.requests and not any("authorization" in q.headers for q in other.requests)
        assert {q.path for q in other.requests} >= {f"/dataPortal/{private[1]}", f"/dataPortal/{private[2]}"}
        if plain:
            assert status[private[3]] == "unauthorized" and plain.requests
            assert not any("authorization" in q.headers for q in plain.requests)
            # the whole archive over plain http (not loopback): credentials are never sent, and it says why
            r = almafetch(uid=["uid://A001/X2000/X3"], service=plain.url, outdir=str(tmp_path / "b"),
                          username=archive.username)
            assert {f["status"] for f in r["files"]} == {"unauthorized"}
            assert all("only sent over https" in f["error"] for f in r["failed"])
            assert not any("authorization" in q.headers for q in plain.requests)
        else:  # no non-loopback address on this machine: the decision itself
            assert "only sent over https" in CredentialScope("http://192.0.2.2:80", ("a", "b")).why_not(
                "http://192.0.2.2:80/dataPortal/x")
    finally:
        other.close()
        if plain:
            plain.close()
