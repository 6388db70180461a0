"""Is a downloaded file the file, and all of it?

When neither DataLink nor the server says how large a file is or what its digest is,
only the file can tell: a tar must end with its end-of-archive blocks after the last
member's data, a FITS file must hold every HDU its headers announce, a gzip stream
must reach its trailer with the right CRC.  An HTML page where the archive promised
something else is an error page, whatever the status line said.
"""

from __future__ import annotations

import gzip
import mimetypes
import os
import tarfile
import zlib

from almatools.errors import AlmatoolsError

__all__ = ["IntegrityError", "verify_tar", "verify_fits", "verify_gzip", "format_checks", "expected_type",
           "html_problem", "looks_like_html"]

BLOCK = 512
FITS_BLOCK = 2880
#: at most this many header blocks per HDU (a 28 MB header): more is a damaged file, not ALMA's
MAX_FITS_HEADER_BLOCKS = 10_000


class IntegrityError(AlmatoolsError):
    """A file is incomplete or not what its name and the archive say it is."""


def verify_tar(path: str | os.PathLike) -> None:
    """Every member header readable, every member's data present, then the end-of-archive marker.

    ``tar tf`` (and Python's tarfile) stop quietly at a file cut at a member boundary; a
    complete tar ends with two zero blocks after the last member's data, so a cut is seen.
    """
    size = os.path.getsize(path)
    try:
        with tarfile.open(path, mode="r:") as tar:
            for member in tar:
                if member.isreg() and not member.issparse() and member.offset_data + member.size > size:
                    raise IntegrityError(f"{path}: member {member.name!r} is cut short: the tar is truncated")
            end = tar.offset  # just past the last member's (padded) data
    except (tarfile.TarError, EOFError) as exc:
        raise IntegrityError(f"{path}: not a valid tar ({exc})") from None
    if size < end + 2 * BLOCK:
        raise IntegrityError(f"{path}: the tar ends after {size} bytes without its end-of-archive blocks "
                             "(truncated)")
    with open(path, "rb") as fh:
        fh.seek(end)
        if fh.read(2 * BLOCK) != bytes(2 * BLOCK):
            raise IntegrityError(f"{path}: no end-of-archive marker after the last member (truncated or damaged)")


def verify_fits(path: str | os.PathLike) -> None:
    """Each HDU's header ends with END and its data (BITPIX, NAXISn, PCOUNT, GCOUNT) fits in the file."""
    size = os.path.getsize(path)
    if size == 0 or size % FITS_BLOCK:
        raise IntegrityError(f"{path}: {size} bytes is not a whole number of 2880-byte FITS blocks (truncated?)")
    with open(path, "rb") as fh:
        offset, first = 0, True
        while offset < size:
            fh.seek(offset)
            cards, nblocks = _fits_header(fh, path, first)
            if cards is None:  # special records after the last HDU (FITS 4.0 §3.5)
                return
            data = _fits_data_bytes(cards, path, first)
            offset += nblocks * FITS_BLOCK + _padded(data, FITS_BLOCK)
            if offset > size:
                raise IntegrityError(f"{path}: an HDU announces {data} data bytes the file does not hold (truncated)")
            first = False


def _fits_header(fh, path, first: bool):
    cards: dict[str, str] = {}
    for nblock in range(1, MAX_FITS_HEADER_BLOCKS + 1):
        block = fh.read(FITS_BLOCK)
        if len(block) < FITS_BLOCK:
            raise IntegrityError(f"{path}: a FITS header is cut short (truncated)")
        if nblock == 1:
            key = block[:8]
            if first and key != b"SIMPLE  ":
                raise IntegrityError(f"{path}: does not start with a FITS primary header (SIMPLE)")
            if not first and key != b"XTENSION":
                return None, 0
        for k in range(0, FITS_BLOCK, 80):
            card = block[k:k + 80].decode("ascii", "replace")
            key = card[:8].strip()
            if key == "END":
                return cards, nblock
            if card[8:10] == "= " and key not in cards:
                cards[key] = card[10:].split("/", 1)[0].strip()
    raise IntegrityError(f"{path}: no END card within {MAX_FITS_HEADER_BLOCKS} header blocks")


def _fits_data_bytes(cards: dict, path, first: bool) -> int:
    def integer(key, default=None):
        if key not in cards:
            if default is None:
                raise IntegrityError(f"{path}: FITS header without {key}")
            return default
        try:
            return int(cards[key])
        except ValueError:
            raise IntegrityError(f"{path}: FITS {key} = {cards[key]!r} is not an integer") from None
    bitpix, naxis = integer("BITPIX"), integer("NAXIS")
    if bitpix not in (8, 16, 32, 64, -32, -64) or not 0 <= naxis <= 999:
        raise IntegrityError(f"{path}: FITS BITPIX={bitpix} NAXIS={naxis} are not valid")
    axes = [integer(f"NAXIS{i}") for i in range(1, naxis + 1)]
    if any(a < 0 for a in axes):
        raise IntegrityError(f"{path}: a negative NAXISn")
    groups = first and naxis > 0 and axes[0] == 0 and cards.get("GROUPS", "").upper() == "T"
    count = 1
    for a in axes[1:] if groups else axes:
        count *= a
    if naxis == 0:
        count = 0
    pcount, gcount = integer("PCOUNT", 0), integer("GCOUNT", 1)
    return abs(bitpix) // 8 * gcount * (pcount + count)


def verify_gzip(path: str | os.PathLike) -> None:
    """Decompress to the end: a gzip stream checks its own length and CRC in its trailer."""
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(1 << 22):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        raise IntegrityError(f"{path}: not a complete gzip stream ({exc})") from None


def format_checks(name: str, thorough: bool) -> list[tuple[str, callable]]:
    """The integrity checks a file's name calls for: (label, check); *thorough* adds full-read ones (gzip)."""
    low = name.lower()
    checks = []
    if low.endswith(".tar"):
        checks.append(("tar", verify_tar))
    elif low.endswith((".fits", ".fit", ".fts")):
        checks.append(("fits", verify_fits))
    elif thorough and low.endswith((".gz", ".tgz")):
        checks.append(("gzip", verify_gzip))
    return checks


def expected_type(name: str, declared: str = "") -> str:
    """The media type the archive promised (DataLink's content_type), else the one the name implies."""
    declared = (declared or "").split(";", 1)[0].strip().lower()
    if declared:
        return declared
    low = name.lower()
    if low.endswith((".fits", ".fit", ".fts")):
        return "image/fits"
    guess, _ = mimetypes.guess_type(low)
    return guess or "application/octet-stream"


def html_problem(name: str, declared: str, served: str) -> str:
    """'' unless the server sent an HTML page (by Content-Type) where the archive promised something else."""
    served = (served or "").split(";", 1)[0].strip().lower()
    expected = expected_type(name, declared)
    if served in ("text/html", "application/xhtml+xml") and "html" not in expected:
        return f"the server answered with an HTML page ({served}), not the {expected} file"
    return ""


def looks_like_html(first_bytes: bytes) -> bool:
    """True when a body starts like an HTML document (an error page served as a file)."""
    head = first_bytes[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def _padded(n: int, block: int) -> int:
    return -(-n // block) * block
