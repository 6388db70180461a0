"""Reading delivery files as text, safely: regular files only, bounded in size, any encoding.

Every reader of :mod:`almatools.delivery` goes through here, so the rules hold once:
FIFOs, devices and directories are refused before anything is read (opening a FIFO
would block), a file larger than its bound is refused before it is read, a member
of a tar archive is read only when it is a regular file within its bound, and text
is decoded as UTF-8 with a Latin-1 fallback (old scripts carry stray accented
characters) while NUL bytes mark binary data.
"""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from almatools.errors import AlmatoolsError

__all__ = ["DeliveryError", "TextFile", "MAX_TEXT_BYTES", "MAX_MEMBERS", "read_text", "decode", "tar_texts"]

#: the largest text file any delivery reader reads (flux.csv, scripts, listobs, QA2 text, AQUA XML)
MAX_TEXT_BYTES = 64 * 2**20
#: the most members looked at in one tar archive (a weblog has a few thousand)
MAX_MEMBERS = 200_000


class DeliveryError(AlmatoolsError):
    """A delivery file that cannot be read as it should; the message names the file (and line)."""


@dataclass(frozen=True)
class TextFile:
    """The text of one delivery file and how to name it in messages.

    :param label: the path, or ``archive.tgz:member`` for a file inside a tar archive.
    :param text: its decoded text.
    """

    label: str
    text: str


def decode(data: bytes, label: str) -> str:
    """*data* as text: UTF-8, else Latin-1; NUL bytes (binary data) are refused naming the line."""
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise DeliveryError(f"{label}:{line}: binary data (NUL byte), not a text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_text(path: str | os.PathLike, limit: int = MAX_TEXT_BYTES) -> TextFile:
    """The text of the regular file *path*, refused (naming it) when it is not one or exceeds *limit* bytes.

    The checks are :mod:`almatools.limits`' (non-blocking open, regular files only, size bounded before
    and while reading); their refusals come back as :class:`DeliveryError` with the same message.
    """
    from almatools import limits
    from almatools.errors import InputFileError, ResourceLimitError
    try:
        data = limits.read_bytes(path, limit)
    except (InputFileError, ResourceLimitError) as exc:
        raise DeliveryError(str(exc)) from None
    return TextFile(str(path), decode(data, str(path)))


def tar_texts(path: str | os.PathLike, wanted: Callable[[str], bool], limit: int = MAX_TEXT_BYTES,
              max_members: int = MAX_MEMBERS) -> Iterator[TextFile]:
    """The text of each regular member of the tar archive *path* whose name *wanted* accepts.

    The archive is read as a stream, front to back, once (linear in its size); members that are
    not regular files or exceed *limit* are refused naming them; an archive of more than
    *max_members* members is refused.  Member names are only labels here: nothing is extracted.
    """
    from almatools import limits
    from almatools.errors import InputFileError
    path = Path(path)
    try:
        fh = limits.open_regular(path)
    except InputFileError as exc:
        raise DeliveryError(str(exc)) from None
    try:
        with fh, tarfile.open(fileobj=fh, mode="r|*") as tar:
            for count, member in enumerate(tar, 1):
                if count > max_members:
                    raise DeliveryError(f"{path}: more than {max_members} members; refused")
                if not wanted(member.name):
                    continue
                label = f"{path}:{member.name}"
                if not member.isreg():
                    raise DeliveryError(f"{label}: not a regular file inside the archive; refused")
                if member.size > limit:
                    raise DeliveryError(f"{label}: {member.size} bytes, more than the {limit} bytes allowed")
                data = tar.extractfile(member).read(limit + 1)
                yield TextFile(label, decode(data, label))
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DeliveryError(f"{path}: not a readable tar archive ({type(exc).__name__}: {exc})") from None
