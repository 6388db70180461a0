"""Safe tar extraction: every member is checked before anything is written.

Refused: absolute paths, ``..`` components, links whose target leaves the
target directory, device files and FIFOs.  One bad member refuses the whole
tar, so nothing lands outside the target and no half-unpacked tree is left.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath

from almatools.io import atomic_path

__all__ = ["UnsafeArchive", "safe_extract", "check_members"]


class UnsafeArchive(ValueError):
    pass


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def check_members(tar: tarfile.TarFile, target: Path, tarname: str) -> list[tarfile.TarInfo]:
    members = tar.getmembers()
    for m in members:
        pure = PurePosixPath(m.name)
        why = ""
        if pure.is_absolute() or m.name.startswith(("/", "\\")):
            why = "has an absolute path"
        elif ".." in pure.parts:
            why = "has '..' in its path"
        elif not _inside(target, target / pure):
            why = "points outside the target"
        elif m.ischr() or m.isblk() or m.isfifo() or m.isdev():
            why = "is a device file or FIFO"
        elif m.issym():
            dest = (target / pure).parent / m.linkname
            if os.path.isabs(m.linkname) or not _inside(target, dest):
                why = f"is a symbolic link to {m.linkname!r}, outside the target"
        elif m.islnk():
            if os.path.isabs(m.linkname) or ".." in PurePosixPath(m.linkname).parts or \
                    not _inside(target, target / m.linkname):
                why = f"is a hard link to {m.linkname!r}, outside the target"
        elif not (m.isfile() or m.isdir()):
            why = "is not a file, directory or link"
        if why:
            raise UnsafeArchive(f"{tarname}: member {m.name!r} {why}; nothing was extracted")
    return members


def safe_extract(tar_path: str | os.PathLike, target: str | os.PathLike) -> list[str]:
    """Extract *tar_path* under *target*; return the files written (relative paths)."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    with tarfile.open(tar_path, mode="r:*") as tar:
        members = check_members(tar, target, os.path.basename(str(tar_path)))
        for m in members:
            out = target / PurePosixPath(m.name)
            if m.isdir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            if m.issym():
                if out.is_symlink() or out.exists():
                    out.unlink()
                os.symlink(m.linkname, out)
            elif m.islnk():
                shutil.copy2(target / m.linkname, out)
            else:
                with atomic_path(out) as tmp, tar.extractfile(m) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                os.chmod(out, (m.mode & 0o777) | 0o600)
            written.append(m.name)
    return written
