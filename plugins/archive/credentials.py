"""Which requests may carry the user's archive credentials.

Basic credentials go only to the archive host the user authenticated against (the
base URL almafetch resolved the Member OUS on) and, when that is one of the ALMA
mirrors, to the other documented mirrors; only over https, except to a loopback
address (the local emulator); only for rows that need them (proprietary files, or a
plain URL the archive answered with 401); and never along a redirect to another
host.  URLs that parsers might read differently (user info, backslashes, white
space, non-ASCII host names) never get credentials.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .service import MIRRORS

__all__ = ["CredentialScope", "origin"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ODD = re.compile(r"[\\\s\x00-\x1f\x7f@]")


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of *url*, or None when it is not a plain http(s) URL every parser reads alike."""
    if not isinstance(url, str) or _ODD.search(url.split("#", 1)[0].split("?", 1)[0]):
        return None  # user info ('@'), backslashes and white space are read differently by urllib and urllib3
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme not in _DEFAULT_PORTS or not host or not host.isascii() or parts.username is not None:
        return None
    try:
        from urllib3.util import parse_url
        other = parse_url(url)
    except Exception:  # urllib3 refuses what it cannot parse: so do we
        return None
    port = port or _DEFAULT_PORTS[scheme]
    if (other.host or "").lower().strip("[]") != host.strip("[]") or (other.port or _DEFAULT_PORTS[scheme]) != port:
        return None
    return scheme, host, port


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class CredentialScope:
    """The hosts that may receive *auth* (``(user, password)``), from the archive base URL *base*."""

    base: str
    auth: tuple[str, str] | None = None
    hosts: set = field(init=False)

    def __post_init__(self):
        own = origin(self.base)
        self.hosts = {own[1:]} if own else set()
        mirror_origins = {origin(u) for u in MIRRORS.values()}
        if own in mirror_origins:  # the ALMA mirrors share one user database
            self.hosts |= {o[1:] for o in mirror_origins if o}

    def why_not(self, url: str) -> str:
        """'' when *url* may receive the credentials, else the reason it may not."""
        o = origin(url)
        if o is None:
            return "its URL is not a plain http(s) URL"
        scheme, host, port = o
        if scheme != "https" and not _loopback(host):
            return "credentials are only sent over https"
        if (host, port) not in self.hosts:
            return f"{host}:{port} is not the archive you authenticated against"
        return ""

    def allows(self, url: str) -> bool:
        return not self.why_not(url)

    def for_request(self, url: str, wanted: bool):
        """The ``auth`` to pass for a request to *url*: the credentials when *wanted* and allowed, else None."""
        return self.auth if wanted and self.auth is not None and self.allows(url) else None

    @staticmethod
    def keeps_on_redirect(src: str, dst: str) -> bool:
        """Credentials follow a redirect only to the very same scheme, host and port."""
        a, b = origin(src), origin(dst)
        return a is not None and a == b
