"""Names and paths that come from a server are data, never paths to trust.

A DataLink row decides a file's name (the last segment of its ``access_url``, or a
``Content-Disposition`` header) and, for files inside tars, where it belongs in the
Member OUS tree (``path:`` in the row's description).  Both pass through here before
they touch the disk: a name must be one plain path component, a tree path must stay
inside the tree after normalisation.  Anything else is refused with
:class:`UnsafeName`, naming the value and where it came from.
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import unquote, urlparse

from almatools.errors import AlmatoolsError

__all__ = ["UnsafeName", "file_name", "name_from_url", "name_from_disposition", "tree_path", "INTERNAL_SUFFIXES"]

#: bytes in one path component on Linux file systems
MAX_COMPONENT = 255
#: a tree path is a few directories deep; longer ones are not ALMA's
MAX_PATH = 1024
#: suffixes almafetch uses for its own files next to the downloads
INTERNAL_SUFFIXES = (".part", ".part.json", ".almatools-tmp")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UnsafeName(AlmatoolsError, ValueError):
    """A name or path from a server that would leave its directory, or is not a file name at all."""

    def __init__(self, value: str, source: str, why: str):
        self.value, self.source, self.why = value, source, why
        super().__init__(f"refused the name {value!r} from {source}: it {why}")


def file_name(text: str, source: str) -> str:
    """*text* as one safe path component (a file name directly inside the download directory)."""
    name = str(text)
    why = _component_problem(name)
    if not why and name.startswith("."):
        why = "is a hidden name (starts with '.'), which no archive file has"
    if not why and name.endswith(INTERNAL_SUFFIXES):
        why = f"ends like almafetch's own working files ({', '.join(INTERNAL_SUFFIXES)})"
    if why:
        raise UnsafeName(name, source, why)
    return name


def name_from_url(url: str) -> str:
    """The file name an URL names: its path's last segment, percent-decoded, checked by :func:`file_name`."""
    path = urlparse(url).path
    last = path.rsplit("/", 1)[-1]
    if not last:
        raise UnsafeName(path, url, "names no file (the URL path ends with '/')")
    try:
        decoded = unquote(last, errors="strict")
    except UnicodeDecodeError:
        raise UnsafeName(last, url, "is not valid UTF-8 once percent-decoded") from None
    return file_name(decoded, url)


def name_from_disposition(header: str, source: str) -> str:
    """The ``filename`` of a ``Content-Disposition`` header (RFC 6266), checked by :func:`file_name`; '' when absent."""
    m = re.search(r"filename\*\s*=\s*([^;]*)", header or "", re.I)
    if m:  # RFC 5987: charset'lang'percent-encoded
        value = m.group(1).strip().strip('"')
        charset, _, rest = value.partition("'")
        _, _, encoded = rest.partition("'")
        try:
            return file_name(unquote(encoded, encoding=charset or "utf-8", errors="strict"), source)
        except (LookupError, UnicodeDecodeError):
            raise UnsafeName(value, source, "is not a valid RFC 5987 encoded name") from None
    m = re.search(r'filename\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', header or "", re.I)
    if not m:
        return ""
    value = m.group(1).strip()
    if value.startswith('"'):
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
    return file_name(value, source)


def tree_path(text: str, source: str) -> str:
    """*text* as a relative path inside a Member OUS tree, normalised (``a//b``, ``./a``, ``a/../b``)."""
    raw = str(text)
    why = ""
    if not raw.strip():
        why = "is empty"
    elif _CONTROL.search(raw):
        why = "contains control characters"
    elif "\\" in raw:
        why = "contains a backslash (a Windows path separator)"
    elif raw.startswith("/"):
        why = "is an absolute path"
    elif _utf8_length(raw) is None:
        why = "is not valid UTF-8 text"
    elif _utf8_length(raw) > MAX_PATH:
        why = f"is longer than {MAX_PATH} bytes"
    if why:
        raise UnsafeName(raw, source, why)
    normal = posixpath.normpath(raw)
    if normal == ".." or normal.startswith("../"):
        raise UnsafeName(raw, source, "leaves the Member OUS tree ('..')")
    if normal == ".":
        raise UnsafeName(raw, source, "names the tree itself, not a file in it")
    for part in normal.split("/"):
        problem = _component_problem(part)
        if problem:
            raise UnsafeName(raw, source, f"has a component {part!r} that {problem}")
    return normal


def _component_problem(name: str) -> str:
    """Why *name* is not one plain path component ('' when it is)."""
    if name in ("", ".", ".."):
        return "is not a file name"
    if "/" in name:
        return "contains '/'"
    if "\\" in name:
        return "contains a backslash (a Windows path separator)"
    if _CONTROL.search(name):
        return "contains control characters"
    if name != name.strip():
        return "begins or ends with white space"
    length = _utf8_length(name)
    if length is None:
        return "is not valid UTF-8 text"
    if length > MAX_COMPONENT:
        return f"is longer than {MAX_COMPONENT} bytes"
    return ""


def _utf8_length(text: str) -> int | None:
    """Bytes of *text* on disk (undecodable bytes kept as Python escapes them); None when it has no encoding."""
    try:
        return len(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return None
