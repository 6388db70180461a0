"""The exact rules for names from servers (plugins/archive/names.py) and for which URLs get credentials
(plugins/archive/credentials.py): each limit at the limit and one past it, each refusal's reason, and the
parsers' agreement checked against urllib and urllib3 themselves.  test_almafetch_servers.py fuzzes the
same functions with hostile text and real servers; these pin the boundaries the fuzzing only samples."""

import pytest
from urllib.parse import urlsplit

from almatools.plugins.archive import names
from almatools.plugins.archive.credentials import CredentialScope, origin
from almatools.plugins.archive.names import (UnsafeName, file_name, name_from_disposition, name_from_url,
                                             tree_path)
from almatools.plugins.archive.service import MIRRORS


def _why(fn, *args) -> str:
    with pytest.raises(UnsafeName) as info:
        fn(*args)
    return info.value.why


# ------------------------------------------------------------------------------------------ file_name

@pytest.mark.parametrize("text, why", [
    ("", "is not a file name"), (".", "is not a file name"), ("..", "is not a file name"),
    ("a/b", "contains '/'"), ("a\\b", "contains a backslash"), ("a\x00b", "contains control characters"),
    ("a\x1fb", "contains control characters"), ("a\x7fb", "contains control characters"),
    ("a\nb", "contains control characters"), (" a", "begins or ends with white space"),
    ("a\t", "contains control characters"), ("a ", "begins or ends with white space"),
    ("a\u00a0", "begins or ends with white space"),  # a no-break space is white space too
    ("\ud800x", "is not valid UTF-8 text"), ("é" * 128, "is longer than 255 bytes"), ("a" * 256, "is longer than 255 bytes"),
    (".hidden", "is a hidden name"), ("x.part", "ends like almafetch's own working files"),
    ("x.part.json", "ends like almafetch's own working files"), ("x.almatools-tmp", "ends like almafetch's"),
])
def test_file_names_refused_with_their_reason(text, why):
    with pytest.raises(UnsafeName) as info:
        file_name(text, "row 7")
    assert why in info.value.why
    assert info.value.value == text and info.value.source == "row 7"
    assert str(info.value) == f"refused the name {text!r} from row 7: it {info.value.why}"


@pytest.mark.parametrize("text", ["a" * 255, "é" * 127 + "a", "x.tar", "a b", "\u00e9t\u00e9.fits", "x.part2",
                                  "part", "x.", "a..b", "~", "\x80-less"])
def test_file_names_kept_as_they_are(text):
    assert file_name(text, "row") == text


def test_undecodable_bytes_count_as_the_bytes_they_were():
    # surrogateescape: one byte on disk per escaped byte, so 255 escaped bytes fit and 256 do not
    assert file_name("\udcff" * 255, "row") == "\udcff" * 255
    assert "longer than 255 bytes" in _why(file_name, "\udcff" * 256, "row")


# --------------------------------------------------------------------------------- names from servers

@pytest.mark.parametrize("url, name", [
    ("https://h/dataPortal/member.uid___A001_X1_X2.tar", "member.uid___A001_X1_X2.tar"),
    ("https://h/a/b%20c.fits?x=1#y", "b c.fits"), ("https://h/a/%C3%A9.txt", "é.txt"),
])
def test_name_from_url(url, name):
    assert name_from_url(url) == name


@pytest.mark.parametrize("url, why", [
    ("https://h/a/", "names no file"), ("https://h/a/%2e%2e", "is not a file name"),
    ("https://h/a/%2F", "contains '/'"), ("https://h/a/%ff.tar", "is not valid UTF-8 once percent-decoded"),
])
def test_name_from_url_refusals(url, why):
    with pytest.raises(UnsafeName) as info:
        name_from_url(url)
    assert why in info.value.why and info.value.source == url


@pytest.mark.parametrize("header, name", [
    ('attachment; filename="a b.tar"', "a b.tar"), ("attachment; filename=x.fits; size=3", "x.fits"),
    ('attachment; FILENAME = "q\\"uote.txt"', 'q"uote.txt'), ('attachment; filename="a\\\\b"', None),
    ("attachment; filename*=UTF-8''%C3%A9t%C3%A9.tar", "été.tar"),
    ("attachment; filename*=iso-8859-1'en'%E9.tar; filename=fallback.tar", "é.tar"),
    ("attachment; filename*=''plain.tar", "plain.tar"), ("inline", ""), ("", ""), (None, ""),
])
def test_name_from_content_disposition(header, name):
    if name is None:  # an escaped backslash is still a backslash
        assert "backslash" in _why(name_from_disposition, header, "the header")
    else:
        assert name_from_disposition(header, "the header") == name


@pytest.mark.parametrize("header", ["attachment; filename*=UTF-8''%FF.tar", "attachment; filename*=nosuchcharset''%41"])
def test_an_undecodable_extended_name_is_refused(header):
    with pytest.raises(UnsafeName, match="not a valid RFC 5987 encoded name"):
        name_from_disposition(header, "the header")


# ---------------------------------------------------------------------------------------- tree paths

@pytest.mark.parametrize("text, normal", [
    ("a/b", "a/b"), ("a//b", "a/b"), ("./a", "a"), ("a/../b", "b"), ("a/./b/", "a/b"), ("a/b/../../c", "c"),
    ("x" * 255 + "/y", "x" * 255 + "/y"), ("/".join(["d" * 100] * 10) + "/" + "e" * 14, None),
])
def test_tree_paths_normalised(text, normal):
    assert len(text.encode()) <= 1024
    assert tree_path(text, "row") == (normal or text)


@pytest.mark.parametrize("text, why", [
    ("", "is empty"), ("  ", "is empty"), ("a/\x01", "contains control characters"), ("a/\x7f", "control"),
    ("a\\b", "contains a backslash"), ("/etc/passwd", "is an absolute path"), ("a/\ud800", "is not valid UTF-8 text"),
    ("a/" + "b" * 1023, "is longer than 1024 bytes"), ("..", "leaves the Member OUS tree"),
    ("a/../..", "leaves the Member OUS tree"), ("../a", "leaves the Member OUS tree"), (".", "names the tree itself"),
    ("a/..", "names the tree itself"), ("a/ b", "has a component ' b' that begins or ends with white space"),
    ("a/" + "c" * 256, "has a component"), ("a/.hidden/..x", None),
])
def test_tree_path_refusals(text, why):
    if why is None:  # a dot-name is fine inside the tree (only a downloaded file's own name may not be hidden)
        assert tree_path(text, "row") == text
        return
    with pytest.raises(UnsafeName) as info:
        tree_path(text, "row")
    assert why in info.value.why


def test_a_tree_path_at_the_byte_limit():
    at = "a/" + "b" * 255 + "/" + "c" * 255 + "/" + "d" * 255
    at = at + "/" + "e" * (1024 - len(at) - 1)
    assert len(at) == 1024 and tree_path(at, "row") == at
    assert f"longer than {names.MAX_PATH} bytes" in _why(tree_path, at + "d", "row")


# -------------------------------------------------------------------------------------------- origins

@pytest.mark.parametrize("url, expected", [
    ("https://almascience.eso.org/dataPortal/x", ("https", "almascience.eso.org", 443)),
    ("HTTPS://AlmaScience.ESO.org:443/x", ("https", "almascience.eso.org", 443)),
    ("http://127.0.0.1:8080/x?y=@z#w@", ("http", "127.0.0.1", 8080)), ("http://h/", ("http", "h", 80)),
    ("https://[::1]:8443/x", ("https", "::1", 8443)), ("http://localhost:1", ("http", "localhost", 1)),
    ("ftp://h/x", None), ("https://user@h/x", None), ("https://u:p@h/x", None), ("https://h\\@evil/x", None),
    ("https://h /x", None), ("https://h\t/x", None), ("https://h:99999/x", None), ("https://h:x/x", None),
    ("https:///x", None), ("https://bücher.example/x", None), ("//h/x", None), (None, None), (b"https://h", None),
    ("https://h:0/x", ("https", "h", 443)),  # port 0 is 'no port' to urllib and urllib3 alike
    ("https://h/x#w@", ("https", "h", 443)),  # an '@' in the fragment is no user info
    # urllib3 (which requests sends through) decodes '%41' in a host to 'a', urllib keeps it: read differently
    ("https://%41/x", None),
    ("https://,%/x", None),  # urllib reads host ',%', urllib3 refuses the URL
])
def test_origin_of_urls(url, expected):
    assert origin(url) == expected
    if expected:  # what urllib itself reads
        parts = urlsplit(url)
        assert (parts.scheme.lower(), parts.hostname) == expected[:2]


# ----------------------------------------------------------------------------------------- the scope

def test_a_mirror_base_admits_every_mirror_over_https_on_its_own_port_only():
    scope = CredentialScope("https://almascience.nrao.edu", ("u", "p"))
    assert scope.hosts == {(urlsplit(u).hostname, 443) for u in MIRRORS.values()}
    for u in MIRRORS.values():
        assert scope.allows(u + "/dataPortal/x") and scope.for_request(u + "/x", True) == ("u", "p")
        assert scope.why_not(u.replace("https", "http") + "/x") == "credentials are only sent over https"
        assert scope.why_not(u + ":8443/x") == f"{urlsplit(u).hostname}:8443 is not the archive you authenticated against"
    assert scope.for_request(MIRRORS["eso"] + "/x", False) is None
    assert CredentialScope(MIRRORS["eso"]).for_request(MIRRORS["eso"] + "/x", True) is None  # no credentials given


def test_another_base_admits_only_itself_and_plain_http_only_on_loopback():
    local = CredentialScope("http://127.0.0.1:8080", ("u", "p"))
    assert local.hosts == {("127.0.0.1", 8080)}
    assert local.allows("http://127.0.0.1:8080/x") and not local.allows(MIRRORS["eso"] + "/x")
    assert local.why_not("http://127.0.0.1:8081/x") == "127.0.0.1:8081 is not the archive you authenticated against"
    assert local.why_not("https://u@127.0.0.1:8080/x") == "its URL is not a plain http(s) URL"
    for host in ("localhost", "[::1]", "127.1.2.3"):
        scope = CredentialScope(f"http://{host}:9", ("u", "p"))
        assert scope.allows(f"http://{host}:9/x"), host
    for host in ("10.0.0.1", "localhost.example", "128.0.0.1", "[::2]", "example.org"):
        scope = CredentialScope(f"http://{host}:9", ("u", "p"))
        assert scope.why_not(f"http://{host}:9/x") == "credentials are only sent over https", host
        assert scope.allows(f"https://{host}:9/x")
    site = CredentialScope("https://archive.example.org", ("u", "p"))
    assert site.hosts == {("archive.example.org", 443)}
    assert not site.allows(MIRRORS["nrao"] + "/x")
    assert CredentialScope("not a url", ("u", "p")).hosts == set()


@pytest.mark.parametrize("src, dst, keeps", [
    ("https://h/a", "https://h/b", True), ("https://h/a", "https://H:443/b", True),
    ("https://h/a", "http://h/b", False), ("https://h/a", "https://h:8443/b", False),
    ("https://h/a", "https://g/b", False), ("https://u@h/a", "https://u@h/b", False), ("x", "x", False),
])
def test_credentials_follow_a_redirect_only_to_the_same_origin(src, dst, keeps):
    assert CredentialScope.keeps_on_redirect(src, dst) is keeps
