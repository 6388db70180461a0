"""Safe tar extraction: the archive is resolved in its own namespace, then written without following links.

1. **Plan** (nothing written yet).  Every member name is split into components and
   checked (no absolute names, no ``..``, no NUL, no over-long components); no
   member may lie under a link or a file of the same archive.  Hard links are
   resolved when they appear, symbolic links at the end, both with the kernel's
   rules (component by component, ``..`` after the link before it is followed, at
   most 40 links) but against the archive's own members, never the disk.  A link
   that ends on a regular file of the archive is *materialised*: written as an
   ordinary file with that member's bytes, read from the tar.  A link that leaves
   the archive, dangles, loops or ends on a directory refuses the tar, as do
   devices, FIFOs and unknown member types.  The bytes to write are checked
   against the free disk space.  One refusal refuses the whole tar, so nothing is
   written.
2. **Write**.  Directories are created and opened one component at a time with
   ``O_NOFOLLOW | O_DIRECTORY`` relative to the directory above, so a link found
   on disk (made by someone else) stops the extraction instead of being followed;
   files are created under a fresh name with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and
   renamed into place (a rename replaces a link, never writes through it).  No
   link is ever created, so nothing is ever opened through one.

Python's own ``tarfile`` extraction filters are not used: 3.11.7's have bypasses of
exactly this class.  ``tarfile`` only reads headers and member data here.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import tarfile
from collections import OrderedDict
from dataclasses import dataclass, field

from almatools.errors import AlmatoolsError

__all__ = ["UnsafeArchive", "safe_extract", "plan_extraction", "place_file", "file_mode", "NoFollowTree"]

MAXSYMLINKS = 40  # Linux's limit on links followed while resolving one path
MAX_COMPONENT = 255
MAX_NAME = 4096
MAX_STEPS = 5_000_000  # path components walked while resolving all links of one tar: bounds the time
COPY_BLOCK = 1 << 20


class UnsafeArchive(AlmatoolsError, ValueError):
    """A tar that could write outside its target, or a target on disk that would be followed."""


# ------------------------------------------------------------------------------- the plan

@dataclass
class _Node:
    kind: str                      # "dir" | "file" | "symlink"
    member: tarfile.TarInfo | None = None   # for files: the member whose bytes it gets
    linkname: str = ""             # for symbolic links
    children: dict = field(default_factory=dict)


@dataclass
class Planned:
    """One thing extraction writes: a directory, or a file with the bytes of *source* (a regular member)."""

    path: tuple[str, ...]
    source: tarfile.TarInfo | None = None
    mode: int = 0o644
    mtime: float = 0.0

    @property
    def name(self) -> str:
        return "/".join(self.path)


class _Refused(Exception):
    pass


def _components(name: str) -> tuple[str, ...]:
    """A member name as components; refuses what no relative path inside the target looks like."""
    if "\x00" in name:
        raise _Refused("has a NUL character in its name")
    if name.startswith("/"):
        raise _Refused("has an absolute path")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME:
        raise _Refused(f"has a name longer than {MAX_NAME} bytes")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise _Refused("has '..' in its path")
    for p in parts:
        if len(p.encode("utf-8", "surrogateescape")) > MAX_COMPONENT:
            raise _Refused(f"has a component longer than {MAX_COMPONENT} bytes")
    return parts


class _Namespace:
    """The tree the archive describes, built member by member, resolved like the kernel would."""

    def __init__(self):
        self.root = _Node("dir")
        self.steps = 0

    def parent_of(self, parts: tuple[str, ...]) -> _Node:
        """The directory *parts* goes in, creating implied directories; no link or file on the way."""
        node = self.root
        for i, p in enumerate(parts[:-1]):
            child = node.children.get(p)
            if child is None:
                child = node.children[p] = _Node("dir")
            elif child.kind == "symlink":
                raise _Refused(f"lies under {'/'.join(parts[:i + 1])!r}, a symbolic link in the same archive")
            elif child.kind != "dir":
                raise _Refused(f"lies under {'/'.join(parts[:i + 1])!r}, a file in the same archive")
            node = child
        return node

    def add(self, parts: tuple[str, ...], node: _Node) -> None:
        if not parts:
            if node.kind != "dir":
                raise _Refused("names the target directory itself")
            return
        parent = self.parent_of(parts)
        old = parent.children.get(parts[-1])
        if old is not None and (old.kind == "dir") != (node.kind == "dir"):
            raise _Refused("appears both as a directory and as a file or link")
        if old is not None and old.kind == "dir":
            return  # a directory named again: keep what is under it
        parent.children[parts[-1]] = node

    def resolve(self, start: tuple[str, ...], target: str, follow_last: bool, budget: list[int]):
        """Where *target*, read from directory *start*, leads: (path, node). Raises _Refused when it escapes."""
        if target.startswith("/"):
            raise _Refused(f"links to the absolute path {target!r}")
        if "\x00" in target:
            raise _Refused("has a NUL character in its link target")
        if len(target.encode("utf-8", "surrogateescape")) > MAX_NAME:
            raise _Refused(f"has a link target longer than {MAX_NAME} bytes")
        path = list(start)
        parts = [p for p in target.split("/") if p not in ("", ".")]
        node = self._lookup(path)
        for i, p in enumerate(parts):
            self.steps += 1
            if self.steps > MAX_STEPS:
                raise _Refused(f"needs more than {MAX_STEPS} steps to resolve the archive's links")
            last = i == len(parts) - 1
            if node is None or node.kind != "dir":
                raise _Refused(f"links through {'/'.join(path) or '.'!r}, which is not a directory of the archive")
            if p == "..":
                if not path:
                    raise _Refused(f"links to {target!r}, outside the target")
                path.pop()
                node = self._lookup(path)
                continue
            child = node.children.get(p)
            if child is None:
                raise _Refused(f"links to {target!r}, which is not in the archive")
            if child.kind == "symlink" and (follow_last or not last):
                budget[0] -= 1
                if budget[0] < 0:
                    raise _Refused(f"links through more than {MAXSYMLINKS} links (a loop?)")
                resolved, child = self.resolve(tuple(path), child.linkname, True, budget)
                path = list(resolved)
            else:
                path.append(p)
            node = child
        return tuple(path), node

    def _lookup(self, path) -> _Node | None:
        node = self.root
        for p in path:
            node = node.children.get(p) if node is not None and node.kind == "dir" else None
        return node


def plan_extraction(tar: tarfile.TarFile, tarname: str) -> list[Planned]:
    """What extracting *tar* writes, in order; raises :class:`UnsafeArchive` naming the first bad member."""
    space = _Namespace()
    order: list[tuple[tuple[str, ...], tarfile.TarInfo]] = []
    links: list[tuple[tuple[str, ...], tarfile.TarInfo, _Node]] = []
    for m in tar.getmembers():
        try:
            parts = _components(m.name)
            if m.isdir():
                space.add(parts, _Node("dir"))
            elif m.isreg():
                space.add(parts, _Node("file", member=m))
            elif m.issym():
                node = _Node("symlink", linkname=m.linkname)
                space.add(parts, node)
                links.append((parts, m, node))
            elif m.islnk():
                # a hard link names a member already in the archive, relative to the target's top
                _, target = space.resolve((), m.linkname, False, [MAXSYMLINKS])
                if target.kind == "symlink":
                    raise _Refused(f"is a hard link to the symbolic link {m.linkname!r}")
                if target.kind != "file":
                    raise _Refused(f"is a hard link to {m.linkname!r}, which is not a file of the archive")
                space.add(parts, _Node("file", member=target.member))
            elif m.ischr() or m.isblk() or m.isfifo():
                raise _Refused("is a device file or FIFO")
            else:
                raise _Refused("is not a file, directory or link")
            order.append((parts, m))
        except _Refused as why:
            raise UnsafeArchive(f"{tarname}: member {m.name!r}{_kind(m)} {why}; nothing was extracted") from None
    for parts, m, node in links:
        try:
            _, target = space.resolve(parts[:-1], m.linkname, True, [MAXSYMLINKS])
        except _Refused as why:
            raise UnsafeArchive(f"{tarname}: member {m.name!r} (a symbolic link) {why}; nothing was extracted") \
                from None
        if target.kind != "file":
            raise UnsafeArchive(f"{tarname}: member {m.name!r} is a symbolic link to a directory; almatools "
                                "writes no links (only links to files, as copies); nothing was extracted")
        node.kind, node.member = "file", target.member  # materialised: a plain file with the target's bytes
    return _final_order(space, order)


def _kind(m: tarfile.TarInfo) -> str:
    return " (a symbolic link)" if m.issym() else " (a hard link)" if m.islnk() else ""


def _final_order(space: _Namespace, order) -> list[Planned]:
    """Each path once, in the order its last member came, with the bytes its node ends up with."""
    last: "OrderedDict[tuple, tarfile.TarInfo]" = OrderedDict()
    for parts, m in order:
        last.pop(parts, None)
        last[parts] = m
    planned = []
    for parts, m in last.items():
        node = space._lookup(parts)
        if not parts or node is None:
            continue
        if node.kind == "dir":
            planned.append(Planned(parts))
        else:
            src = node.member
            planned.append(Planned(parts, source=src, mode=file_mode(src.mode), mtime=m.mtime))
    return planned


# ------------------------------------------------------------------------------- writing

class NoFollowTree:
    """Writes under *root* without ever following a link below it (``O_NOFOLLOW`` at every component)."""

    def __init__(self, root: str | os.PathLike):
        os.makedirs(root, exist_ok=True)
        self.root = os.fspath(root)
        self.root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._dirs: "OrderedDict[tuple, int]" = OrderedDict()

    def close(self) -> None:
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()
        os.close(self.root_fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def directory(self, parts: tuple[str, ...]) -> int:
        """An open descriptor of root/parts, creating directories; refuses links and files on the way."""
        if not parts:
            return self.root_fd
        if parts in self._dirs:
            self._dirs.move_to_end(parts)
            return self._dirs[parts]
        known = len(parts) - 1  # the deepest directory already open (usually the parent)
        while known and parts[:known] not in self._dirs:
            known -= 1
        fd = self._dirs[parts[:known]] if known else self.root_fd
        for depth in range(known, len(parts)):
            name = parts[depth]
            try:
                os.mkdir(name, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            try:
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafeArchive(f"{os.path.join(self.root, *parts[:depth + 1])} exists on disk and is not "
                                        "a directory (a link or a file); refusing to write through it") from None
                raise
            self._dirs[parts[:depth + 1]] = fd
        while len(self._dirs) > 64:  # few descriptors open: members usually come directory by directory
            _, old = self._dirs.popitem(last=False)
            os.close(old)
        return fd

    def write(self, parts: tuple[str, ...], source, mode: int = 0o644, mtime: float | None = None) -> None:
        """root/parts gets the bytes of the file object *source*, atomically; an old file there is replaced."""
        folder = self.directory(parts[:-1])
        # at most 100 bytes of the name (not characters: 100 CJK characters are 300 bytes, past NAME_MAX)
        tmp = f".{os.fsdecode(os.fsencode(parts[-1])[:100])}.{secrets.token_hex(8)}.almatools-tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=folder)
        try:
            with os.fdopen(fd, "wb", closefd=False) as out:
                shutil.copyfileobj(source, out, COPY_BLOCK)
            os.fchmod(fd, mode & 0o777)
            if mtime is not None:
                os.utime(fd, (mtime, mtime))
        except BaseException:
            os.close(fd)
            os.unlink(tmp, dir_fd=folder)
            raise
        os.close(fd)
        try:
            os.replace(tmp, parts[-1], src_dir_fd=folder, dst_dir_fd=folder)
        except IsADirectoryError:
            os.unlink(tmp, dir_fd=folder)
            raise UnsafeArchive(f"{os.path.join(self.root, *parts)} is a directory on disk; a file of that name "
                                "cannot replace it") from None


def safe_extract(tar_path: str | os.PathLike, target: str | os.PathLike) -> list[str]:
    """Extract *tar_path* under *target*; return the files written (relative paths)."""
    tarname = os.path.basename(os.fspath(tar_path))
    try:
        tar = tarfile.open(tar_path, mode="r:")  # plain tars, as the archive serves: members are read in place
    except tarfile.TarError as exc:
        raise UnsafeArchive(f"{tarname}: not a plain (uncompressed) tar ({exc}); nothing was extracted") from None
    with tar:
        try:
            planned = plan_extraction(tar, tarname)
        except (tarfile.TarError, EOFError) as exc:
            raise UnsafeArchive(f"{tarname}: a damaged tar ({exc}); nothing was extracted") from None
        need = sum(p.source.size for p in planned if p.source is not None)
        existing = _existing_parent(os.path.abspath(target))
        free = shutil.disk_usage(existing).free
        if need > free:
            raise UnsafeArchive(f"{tarname}: unpacking writes {need} bytes but {existing} has {free} free; "
                                "nothing was extracted")
        written = []
        with NoFollowTree(target) as tree:
            for p in planned:
                if p.source is None:
                    tree.directory(p.path)
                    continue
                with tar.extractfile(p.source) as src:
                    tree.write(p.path, src, p.mode, p.mtime)
                written.append(p.name)
    return written


def file_mode(mode: int) -> int:
    """The permissions of an extracted file, as tarfile's 'data' filter gives them: no setuid, setgid or
    sticky bit, no write for group and others, the owner may read and write, and group and others may
    execute only what the owner may."""
    mode = mode & 0o755 | 0o600
    return mode if mode & 0o100 else mode & ~0o011


def place_file(source: str | os.PathLike, root: str | os.PathLike, relative: str) -> None:
    """Copy the file *source* to root/relative (a checked relative path) without following links below root."""
    try:
        parts = _components(relative)
    except _Refused as why:
        raise UnsafeArchive(f"{relative!r} {why}") from None
    if not parts:
        raise UnsafeArchive(f"{relative!r} names no file")
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as src, NoFollowTree(root) as tree:
        tree.write(parts, src, file_mode(os.fstat(src.fileno()).st_mode), os.fstat(src.fileno()).st_mtime)


def _existing_parent(path: str) -> str:
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path
