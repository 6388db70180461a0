"""Tar files built member by member, for the extractor's tests."""

import io
import tarfile
from pathlib import Path

_TYPES = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE,
          "fifo": tarfile.FIFOTYPE}


def tar_of(path: Path, entries) -> Path:
    """A PAX tar of *entries*: (kind, name, data-or-linkname[, mode[, mtime]]), kind file, dir, sym, hard, chr
    or fifo; the mode defaults to 0o755 for a directory and 0o644 otherwise, the mtime to 2020-09-13."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, arg, *rest in entries:
            info = tarfile.TarInfo(name)
            info.mode = rest[0] if rest else (0o755 if kind == "dir" else 0o644)
            info.mtime = rest[1] if len(rest) > 1 else 1_600_000_000
            if kind == "file":
                info.size = len(arg)
                tar.addfile(info, io.BytesIO(arg))
            else:
                info.type = _TYPES[kind]
                info.linkname = arg or ""
                tar.addfile(info)
    return path
