"""Which archive mirror to talk to, with failover, and the pyvo services on it."""

from __future__ import annotations

import os

from almatools import log

__all__ = ["MIRRORS", "mirror_urls", "run_with_failover", "ArchiveUnreachable"]

#: the ALMA Regional Centres' archive front ends (DOMAIN.md §1.1), tried in this order
MIRRORS = {"eso": "https://almascience.eso.org", "nrao": "https://almascience.nrao.edu",
           "naoj": "https://almascience.nao.ac.jp"}
#: a base URL (e.g. the local emulator) used instead of the mirrors when set
URL_ENV = "ALMATOOLS_ARCHIVE_URL"


class ArchiveUnreachable(ConnectionError):
    pass


def mirror_urls(service: str = "") -> list[str]:
    """Base URLs to try: *service* (a mirror name, a URL or URLs separated by commas) first, then the other mirrors.

    With ``$ALMATOOLS_ARCHIVE_URL`` set and *service* empty, only that URL.
    """
    service = (service or "").strip()
    if not service:
        env = os.environ.get(URL_ENV, "").strip()
        return [env.rstrip("/")] if env else list(MIRRORS.values())
    if service.lower() in MIRRORS:
        first = MIRRORS[service.lower()]
        return [first] + [u for u in MIRRORS.values() if u != first]
    if service.startswith(("http://", "https://")):  # one URL, or several separated by commas
        return [u.strip().rstrip("/") for u in service.split(",") if u.strip()]
    raise ValueError(f"service {service!r}: use eso, nrao, naoj or a base URL")


def run_with_failover(service: str, call):
    """``call(base_url)`` on each mirror in turn until one answers; returns ``(result, base_url)``."""
    import requests
    import pyvo
    errors = []
    for base in mirror_urls(service):
        try:
            return call(base), base
        except (requests.ConnectionError, requests.Timeout, pyvo.dal.DALProtocolError, OSError) as exc:
            # pyvo wraps transport failures (DALFormatError around a ConnectionError, DALServiceError
            # with an HTTP status); a 4xx answer means the mirror is up and the request is wrong
            status = getattr(getattr(exc, "response", None), "status_code", None) or getattr(exc, "code", None)
            if isinstance(exc, pyvo.dal.DALServiceError) and status and int(status) < 500:
                raise
            errors.append(f"{base}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            log.warn(f"archive at {base} did not answer ({errors[-1]}); trying the next mirror")
    raise ArchiveUnreachable("no ALMA archive mirror answered:\n  " + "\n  ".join(errors))
