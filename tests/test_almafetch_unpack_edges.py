"""Edges of the safe tar extractor (plugins/archive/unpack.py): the modes and mtimes it writes, its limits at
exactly the limit and one over (checked against the kernel's own), the messages naming the offending path,
its budget of resolution steps, its cache of directory descriptors, and the helpers it exports."""

import errno
import io
import os
import stat
import tarfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from almatools.plugins.archive import unpack
from almatools.plugins.archive.unpack import NoFollowTree, UnsafeArchive, place_file, plan_extraction, safe_extract
from tar_members import tar_of


def _mode(path) -> int:
    st_ = os.stat(path, follow_symlinks=False)
    assert stat.S_ISREG(st_.st_mode), f"{path} is not a regular file"
    return stat.S_IMODE(st_.st_mode)


def _open_fds() -> list[str]:
    return sorted(os.listdir("/proc/self/fd"))


def _no_temporaries(root: Path) -> None:
    for _, _, files in os.walk(root):
        assert not [f for f in files if f.endswith(".almatools-tmp")]


# ----------------------------------------------------------------------------------- modes and mtimes

@pytest.mark.parametrize("member_mode, expected", [
    (0o640, 0o640),     # owner rw, group r: kept as is
    (0o755, 0o755),     # an executable keeps all its x bits, the others' x bit too
    (0o750, 0o750),
    (0o700, 0o700),
    (0o444, 0o644),     # read-only for everyone: the owner can write the file it extracted
    (0o400, 0o600),
    (0o000, 0o600),
    (0o4755, 0o755),    # setuid dropped
    (0o2750, 0o750),    # setgid dropped
    (0o1644, 0o644),    # sticky dropped
    (0o7755, 0o755),
    (0o666, 0o644),     # nobody else may write what was extracted, as with tarfile's 'data' filter
    (0o777, 0o755),
    (0o610, 0o600),     # others may execute only what the owner may
])
def test_a_member_is_written_with_its_permission_bits_plus_owner_read_write(tmp_path, member_mode, expected):
    tar = tar_of(tmp_path / "m.tar", [("file", "p/data.bin", b"bytes", member_mode)])
    assert safe_extract(tar, tmp_path / "t") == ["p/data.bin"]
    assert _mode(tmp_path / "t" / "p" / "data.bin") == expected
    assert (tmp_path / "t" / "p" / "data.bin").read_bytes() == b"bytes"


def test_a_0o7777_member_loses_setuid_setgid_and_sticky_bits(tmp_path):
    tar = tar_of(tmp_path / "m.tar", [("file", "all", b"x", 0o7777)])
    safe_extract(tar, tmp_path / "t")
    mode = _mode(tmp_path / "t" / "all")
    assert mode & 0o7000 == 0
    assert mode & 0o755 == 0o755  # what tarfile's 'data' filter keeps is kept


def _data_filter_mode(member_mode: int, dest: Path) -> int:
    info = tarfile.TarInfo("f")
    info.mode = member_mode
    return tarfile.data_filter(info, str(dest)).mode


@settings(max_examples=60, deadline=None)
@given(mode=st.integers(0, 0o7777))
def test_modes_are_those_of_tarfiles_data_filter(tmp_path_factory, mode):
    tmp = tmp_path_factory.mktemp("mode")
    tar = tar_of(tmp / "m.tar", [("file", "f", b"x", mode)])
    safe_extract(tar, tmp / "t")
    got = _mode(tmp / "t" / "f")
    reference = _data_filter_mode(mode, tmp)
    assert got & 0o7000 == 0, "no setuid, setgid or sticky bit on an extracted file"
    assert got & 0o600 == 0o600, "the owner can read and write what was extracted"
    assert got & reference == reference, "a bit tarfile's data filter keeps was dropped"
    assert got & ~(mode | 0o600) == 0, "a permission bit the member does not have was added"
    assert got == reference


def test_a_link_is_materialised_with_the_mode_of_the_file_it_names(tmp_path):
    tar = tar_of(tmp_path / "l.tar", [("file", "p/run.sh", b"#!/bin/sh\n", 0o750),
                                    ("sym", "p/latest.sh", "run.sh", 0o777),
                                    ("hard", "p/copy.sh", "p/run.sh", 0o644),
                                    ("file", "p/notes", b"n", 0o640),
                                    ("sym", "p/notes.lnk", "notes", 0o777)])
    safe_extract(tar, tmp_path / "t")
    p = tmp_path / "t" / "p"
    assert [_mode(p / n) for n in ("run.sh", "latest.sh", "copy.sh", "notes", "notes.lnk")] == \
        [0o750, 0o750, 0o750, 0o640, 0o640]


@pytest.mark.parametrize("mtime", [0, 1, 1_234_567_890, 1_600_000_000.5, 2**33 - 1, 1_700_000_000.25])
def test_a_member_keeps_its_mtime_exactly(tmp_path, mtime):
    tar = tar_of(tmp_path / "m.tar", [("file", "p/f", b"x", 0o644, mtime), ("file", "g", b"y", 0o600, 86_400)])
    safe_extract(tar, tmp_path / "t")
    assert os.stat(tmp_path / "t" / "p" / "f").st_mtime == mtime
    assert os.stat(tmp_path / "t" / "g").st_mtime == 86_400


def test_a_path_named_twice_gets_the_last_members_bytes_mode_and_mtime(tmp_path):
    tar = tar_of(tmp_path / "m.tar", [("file", "p/f", b"first", 0o755, 1_000_000_000),
                                    ("file", "p/g", b"g", 0o644, 1_100_000_000),
                                    ("file", "p/f", b"second", 0o640, 1_200_000_000)])
    assert safe_extract(tar, tmp_path / "t") == ["p/g", "p/f"]
    f = tmp_path / "t" / "p" / "f"
    assert (f.read_bytes(), _mode(f), os.stat(f).st_mtime) == (b"second", 0o640, 1_200_000_000)


@settings(max_examples=30, deadline=None)
@given(members=st.dictionaries(st.sampled_from(["a", "b", "d/a", "d/e/f", "x.fits"]),
                               st.tuples(st.binary(max_size=64), st.integers(0, 0o7777), st.integers(0, 2**33 - 1)),
                               min_size=1))
def test_every_extracted_file_has_its_members_bytes_mode_and_mtime(tmp_path_factory, members):
    tmp = tmp_path_factory.mktemp("tree")
    tar = tar_of(tmp / "m.tar", [("file", n, data, mode, mtime) for n, (data, mode, mtime) in members.items()])
    assert sorted(safe_extract(tar, tmp / "t")) == sorted(members)
    for name, (data, mode, mtime) in members.items():
        p = tmp / "t" / name
        assert p.read_bytes() == data
        reference = _data_filter_mode(mode, tmp)
        assert _mode(p) & 0o7000 == 0 and _mode(p) & 0o600 == 0o600
        assert _mode(p) & reference == reference and _mode(p) & ~(mode | 0o600) == 0
        assert os.stat(p).st_mtime == mtime
    _no_temporaries(tmp / "t")


# ----------------------------------------------------------------------------------- the writer's own defaults

def test_nofollowtree_write_defaults_to_0o644_and_the_current_time(tmp_path):
    before = time.time()
    with NoFollowTree(tmp_path / "root") as tree:
        tree.write(("a", "b.txt"), io.BytesIO(b"hello"))
        tree.write(("c.txt",), io.BytesIO(b"c"), 0o750, 1_500_000_000)
    after = time.time()
    b = tmp_path / "root" / "a" / "b.txt"
    assert b.read_bytes() == b"hello" and _mode(b) == 0o644
    assert before - 2 <= os.stat(b).st_mtime <= after + 2
    c = tmp_path / "root" / "c.txt"
    assert (_mode(c), os.stat(c).st_mtime) == (0o750, 1_500_000_000)
    _no_temporaries(tmp_path / "root")


def test_nofollowtree_write_replaces_a_file_of_the_same_name(tmp_path):
    with NoFollowTree(tmp_path) as tree:
        tree.write(("f",), io.BytesIO(b"old" * 1000), 0o600, 1)
        tree.write(("f",), io.BytesIO(b"new"), 0o644, 2)
    assert (tmp_path / "f").read_bytes() == b"new"
    assert (_mode(tmp_path / "f"), os.stat(tmp_path / "f").st_mtime) == (0o644, 2)


@pytest.mark.parametrize("source_mode", [0o755, 0o640, 0o700, 0o400, 0o644])
def test_place_file_keeps_the_sources_permission_bits_and_mtime(tmp_path, source_mode):
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    os.chmod(src, source_mode)
    os.utime(src, ns=(1_234_567_890_500_000_000, 1_234_567_890_500_000_000))
    expected_mtime = 1_234_567_890.5
    place_file(src, tmp_path / "root", "p/q/moved.bin")
    dst = tmp_path / "root" / "p" / "q" / "moved.bin"
    assert dst.read_bytes() == b"payload"
    assert _mode(dst) == source_mode | 0o600
    assert os.stat(dst).st_mtime == expected_mtime


@pytest.mark.parametrize("relative, message", [
    ("../x", "'../x' has '..' in its path"),
    ("/etc/x", "'/etc/x' has an absolute path"),
    ("p/" + "n" * 256, "has a component longer than 255 bytes"),
    ("", "'' names no file"),
    ("./.", "'./.' names no file"),
])
def test_place_file_refuses_a_path_that_is_not_a_plain_relative_one(tmp_path, relative, message):
    src = tmp_path / "src.bin"
    src.write_bytes(b"x")
    with pytest.raises(UnsafeArchive) as exc:
        place_file(src, tmp_path / "root", relative)
    assert message in str(exc.value)
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------------- name limits

def test_the_limits_are_the_kernels(tmp_path):
    assert unpack.MAX_COMPONENT == os.pathconf(tmp_path, "PC_NAME_MAX") == 255
    assert unpack.MAX_NAME == os.pathconf(tmp_path, "PC_PATH_MAX") == 4096
    # the file system itself takes a component of exactly the limit and refuses one more byte
    (tmp_path / ("k" * 255)).write_bytes(b"")
    with pytest.raises(OSError) as exc:
        (tmp_path / ("k" * 256)).write_bytes(b"")
    assert exc.value.errno == errno.ENAMETOOLONG


@pytest.mark.parametrize("component", ["c" * 255, "é" * 127 + "c", "観" * 30 + "c" * 165])
def test_a_component_of_exactly_255_bytes_is_extracted(tmp_path, component):
    assert len(component.encode()) == 255
    tar = tar_of(tmp_path / "n.tar", [("file", f"p/{component}", b"long"), ("dir", f"q/{component}", None)])
    assert safe_extract(tar, tmp_path / "t") == [f"p/{component}"]
    assert (tmp_path / "t" / "p" / component).read_bytes() == b"long"
    assert (tmp_path / "t" / "q" / component).is_dir()
    _no_temporaries(tmp_path / "t")


@pytest.mark.parametrize("component", ["c" * 256, "é" * 128, "観" * 85 + "c", "ab" * 300])
def test_a_component_one_byte_over_255_refuses_the_tar(tmp_path, component):
    name = f"p/{component}/f"
    tar = tar_of(tmp_path / "n.tar", [("file", "p/ok", b"ok"), ("file", name, b"x")])
    with pytest.raises(UnsafeArchive) as exc:
        safe_extract(tar, tmp_path / "t")
    assert str(exc.value) == (f"n.tar: member {name!r} has a component longer than 255 bytes; "
                              "nothing was extracted")
    assert not (tmp_path / "t").exists()


def _name_of_bytes(total: int) -> list[str]:
    """Components of at most 200 bytes whose '/'-joined name is *total* bytes long."""
    parts = []
    while total > 201:
        parts.append(f"{len(parts):03d}".ljust(200, "n"))
        total -= 201
    parts.append("f" * total)
    return parts


def _read_by_descriptors(root: Path, parts: list[str]) -> bytes:
    """The bytes of root/parts, opened one component at a time (the whole path is longer than PATH_MAX)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for p in parts[:-1]:
            nxt = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
        f = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
        with os.fdopen(f, "rb") as fh:
            return fh.read()
    finally:
        os.close(fd)


def test_a_member_name_of_exactly_4096_bytes_is_extracted(tmp_path):
    parts = _name_of_bytes(4096)
    name = "/".join(parts)
    assert len(name.encode()) == 4096
    tar = tar_of(tmp_path / "n.tar", [("file", name, b"deep")])
    assert safe_extract(tar, tmp_path / "t") == [name]
    assert len(str(tmp_path / "t" / name)) > 4096  # reachable only component by component
    assert _read_by_descriptors(tmp_path / "t", parts) == b"deep"


def test_a_member_name_of_4097_bytes_refuses_the_tar(tmp_path):
    name = "/".join(_name_of_bytes(4097))
    assert len(name.encode()) == 4097
    tar = tar_of(tmp_path / "n.tar", [("file", name, b"deep")])
    with pytest.raises(UnsafeArchive) as exc:
        safe_extract(tar, tmp_path / "t")
    assert str(exc.value) == f"n.tar: member {name!r} has a name longer than 4096 bytes; nothing was extracted"
    assert not (tmp_path / "t").exists()


def _link_target_of_bytes(total: int) -> str:
    """A relative link target of *total* bytes that leads to the top-level file 'f' through 'd/..' hops."""
    hops = "d/../" * ((total - 1) // 5)
    return hops + "/" * (total - 1 - len(hops)) + "f"


def test_a_link_target_of_exactly_4096_bytes_is_followed_and_one_more_byte_refuses(tmp_path):
    target = _link_target_of_bytes(4096)
    assert len(target) == 4096
    tar = tar_of(tmp_path / "ok.tar", [("dir", "d", None), ("file", "f", b"F"), ("sym", "l", target)])
    safe_extract(tar, tmp_path / "t")
    assert not (tmp_path / "t" / "l").is_symlink() and (tmp_path / "t" / "l").read_bytes() == b"F"

    target = _link_target_of_bytes(4097)
    assert len(target) == 4097
    tar = tar_of(tmp_path / "long.tar", [("dir", "d", None), ("file", "f", b"F"), ("sym", "l", target)])
    with pytest.raises(UnsafeArchive) as exc:
        safe_extract(tar, tmp_path / "t2")
    assert str(exc.value) == ("long.tar: member 'l' (a symbolic link) has a link target longer than 4096 bytes; "
                              "nothing was extracted")
    assert not (tmp_path / "t2").exists()


# ----------------------------------------------------------------------------------- link budgets

def _chain(n: int) -> list:
    """Links l0 -> f, l1 -> l0, ..., l{n-1} -> l{n-2}, listed last first (each resolved while all are links)."""
    return [("sym", f"l{k}", f"l{k - 1}" if k else "f") for k in reversed(range(n))]


@pytest.mark.parametrize("followed, accepted", [(40, True), (41, False)])
def test_a_link_target_is_resolved_through_at_most_40_links_like_the_kernel(tmp_path, followed, accepted):
    # the kernel first: a path through `followed` links on disk
    disk = tmp_path / "disk"
    disk.mkdir()
    (disk / "f").write_bytes(b"F")
    for k in range(followed):
        os.symlink(f"l{k - 1}" if k else "f", disk / f"l{k}")
    last = f"l{followed - 1}"
    if accepted:
        assert (disk / last).read_bytes() == b"F"
    else:
        with pytest.raises(OSError) as exc:
            (disk / last).read_bytes()
        assert exc.value.errno == errno.ELOOP
    # the archive: member 'x' links to the same path through the same chain
    tar = tar_of(tmp_path / "c.tar", [("file", "f", b"F"), ("sym", "x", last)] + _chain(followed))
    if accepted:
        written = safe_extract(tar, tmp_path / "t")
        assert sorted(written) == sorted(["f", "x"] + [f"l{k}" for k in range(followed)])
        assert (tmp_path / "t" / "x").read_bytes() == b"F" and not (tmp_path / "t" / "x").is_symlink()
    else:
        with pytest.raises(UnsafeArchive) as exc:
            safe_extract(tar, tmp_path / "t")
        assert str(exc.value) == ("c.tar: member 'x' (a symbolic link) links through more than 40 links "
                                  "(a loop?); nothing was extracted")
        assert not (tmp_path / "t").exists()


def test_a_hard_link_through_a_chain_of_40_links_is_resolved(tmp_path):
    # a directory reached through 40 links ('s0' -> 'd', 's1' -> 's0', ...) holds the hard link's file
    entries = [("dir", "d", None), ("file", "d/f", b"D")]
    # only hard links are resolved while they come, so the chain's links are still links then
    chain = [("sym", f"s{k}", f"s{k - 1}" if k else "d") for k in range(40)]
    tar = tar_of(tmp_path / "h.tar", entries + chain + [("hard", "h", "s39/f")])
    with pytest.raises(UnsafeArchive, match="member 's0' is a symbolic link to a directory"):
        safe_extract(tar, tmp_path / "t")  # the links to a directory refuse it in the end, not the budget
    tar = tar_of(tmp_path / "h2.tar", entries + chain + [("sym", "s40", "s39"), ("hard", "h", "s40/f")])
    with pytest.raises(UnsafeArchive) as exc:
        safe_extract(tar, tmp_path / "t")
    assert "member 'h' (a hard link) links through more than 40 links" in str(exc.value)


def _steps_tar(path: Path, total: int) -> Path:
    """A tar whose links need exactly *total* path components walked to resolve (counted independently).

    Every hop 'd/..' is two components, the final name one.  A link followed while resolving another has its own
    target walked again, so a chain of 40 links s0..s39 (listed last first, so that none is a plain copy yet when
    the others are resolved) and tails t* -> ...s39 multiply the walk; hard links fill up the rest."""
    hops = "d/../" * 818
    per = 2 * 818 + 1                               # components of one target: 818 hops and the last name
    entries = [("dir", "d", None), ("file", "f", b"F"), ("file", "d/f", b"G")]
    chain, steps = [], 0
    for k in range(40):                             # s_k walks its own target and, through s_{k-1}, theirs
        chain.append(("sym", f"s{k:02d}", hops + (f"s{k - 1:02d}" if k else "f")))
        steps += (k + 1) * per
    j = 0
    while total - steps >= 41 * per + 1639 + 2:     # t_j: its target, then the whole chain from s39
        entries.append(("sym", f"t{j:03d}", hops + "s39"))
        steps += 41 * per
        j += 1
    full = "d/../" * 819 + "f"                      # 1639 components, 4096 bytes
    while total - steps > 1639 + 2:
        entries.append(("hard", f"h{j:03d}", full))
        steps += 1639
        j += 1
    rest = total - steps
    last = "d/../" * ((rest - 1) // 2) + "f" if rest % 2 else "d/../" * ((rest - 2) // 2) + "d/f"
    entries.append(("hard", "last", last))
    assert all(len(e[2]) <= 4096 for e in entries if e[0] in ("sym", "hard"))
    return tar_of(path, entries + chain[::-1])


def test_a_tar_needing_exactly_max_steps_is_accepted(tmp_path):
    assert unpack.MAX_STEPS == 5_000_000
    tar = _steps_tar(tmp_path / "s.tar", unpack.MAX_STEPS)
    with tarfile.open(tar) as t:
        planned = plan_extraction(t, "s.tar")
    assert {p.name for p in planned} >= {"f", "d/f", "last", "s00", "s39"}


def test_a_tar_needing_one_step_more_than_max_steps_is_refused(tmp_path):
    tar = _steps_tar(tmp_path / "s.tar", unpack.MAX_STEPS + 1)
    with tarfile.open(tar) as t, pytest.raises(UnsafeArchive) as exc:
        plan_extraction(t, "s.tar")
    # the last link resolved is s00 (the chain comes last first): its last component is the step too many
    assert str(exc.value) == ("s.tar: member 's00' (a symbolic link) needs more than 5000000 steps to resolve "
                              "the archive's links; nothing was extracted")


# ----------------------------------------------------------------------------------- messages naming paths

@pytest.mark.parametrize("kind, what", [("file", "a file"), ("sym", "a symbolic link")])
@pytest.mark.parametrize("member, blocker", [("a/b/c/d", "a/b"), ("a/c", "a"), ("a/b/c/d/e", "a/b/c")])
def test_a_member_under_a_file_or_link_of_the_archive_names_that_path(tmp_path, kind, what, member, blocker):
    first = ("file", blocker, b"x") if kind == "file" else ("sym", blocker, "z")
    tar = tar_of(tmp_path / "u.tar", [("file", "z", b"z"), first, ("file", member, b"y")])
    with pytest.raises(UnsafeArchive) as exc:
        safe_extract(tar, tmp_path / "t")
    assert str(exc.value) == (f"u.tar: member {member!r} lies under {blocker!r}, {what} in the same archive; "
                              "nothing was extracted")


@pytest.mark.parametrize("order", [
    [("dir", "a/b", None), ("file", "a/b", b"x")],
    [("file", "a/b", b"x"), ("dir", "a/b", None)],
    [("dir", "a/b/c", None), ("file", "a/b", b"x")],
    [("file", "b", b"x"), ("dir", "b", None)],
])
def test_a_path_both_a_directory_and_a_file_refuses_the_tar(tmp_path, order):
    tar = tar_of(tmp_path / "b.tar", order)
    with pytest.raises(UnsafeArchive) as exc:
        safe_extract(tar, tmp_path / "t")
    name = order[1][1]
    assert str(exc.value) == (f"b.tar: member {name!r} appears both as a directory and as a file or link; "
                              "nothing was extracted")
    assert not (tmp_path / "t").exists()


def test_a_file_next_to_a_directory_named_like_its_parent_is_extracted(tmp_path):
    tar = tar_of(tmp_path / "ok.tar", [("dir", "a/a", None), ("file", "a/b", b"b"), ("file", "a/a/a", b"aaa"),
                                     ("dir", "a/a", None), ("file", "x/y/x", b"x")])
    assert sorted(safe_extract(tar, tmp_path / "t")) == ["a/a/a", "a/b", "x/y/x"]
    t = tmp_path / "t"
    assert ((t / "a" / "b").read_bytes(), (t / "a" / "a" / "a").read_bytes()) == (b"b", b"aaa")
    assert (t / "a" / "a").is_dir()


@pytest.mark.parametrize("blocker, member, named", [
    ("p/q", "p/q/r/s.txt", "p/q"),
    ("p/q/r", "p/q/r/s/t.txt", "p/q/r"),
    ("p", "p/s.txt", "p"),
])
@pytest.mark.parametrize("as_link", [False, True])
def test_a_file_or_link_on_disk_in_the_way_is_named_in_the_refusal(tmp_path, blocker, member, named, as_link):
    target = tmp_path / "t"
    (target / blocker).parent.mkdir(parents=True, exist_ok=True)
    if as_link:
        (tmp_path / "elsewhere").mkdir()
        os.symlink(tmp_path / "elsewhere", target / blocker)
    else:
        (target / blocker).write_bytes(b"someone else's")
    tar = tar_of(tmp_path / "d.tar", [("file", member, b"y")])
    with pytest.raises(UnsafeArchive) as exc:
        safe_extract(tar, str(target))
    assert str(exc.value) == (f"{os.path.join(str(target), *named.split('/'))} exists on disk and is not a "
                              "directory (a link or a file); refusing to write through it")
    if as_link:
        assert not any((tmp_path / "elsewhere").iterdir())
    else:
        assert (target / blocker).read_bytes() == b"someone else's"


def test_a_directory_on_disk_where_a_file_goes_is_refused_and_no_temporary_is_left(tmp_path):
    target = tmp_path / "t"
    (target / "p" / "x").mkdir(parents=True)
    (target / "p" / "x" / "kept").write_bytes(b"k")
    tar = tar_of(tmp_path / "f.tar", [("file", "p/x", b"file")])
    with pytest.raises(UnsafeArchive) as exc:
        safe_extract(tar, str(target))
    assert str(exc.value) == (f"{os.path.join(str(target), 'p', 'x')} is a directory on disk; a file of that "
                              "name cannot replace it")
    assert sorted(os.listdir(target / "p")) == ["x"]
    assert (target / "p" / "x" / "kept").read_bytes() == b"k"


def test_a_file_that_is_not_a_plain_tar_is_refused_as_such(tmp_path):
    (tmp_path / "junk.tar").write_bytes(os.urandom(3000))
    gz = tmp_path / "data.tar.gz"
    with tarfile.open(gz, "w:gz") as tar:
        info = tarfile.TarInfo("f")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    for path in (tmp_path / "junk.tar", gz):
        with pytest.raises(UnsafeArchive) as exc:
            safe_extract(path, tmp_path / "t")
        assert str(exc.value).startswith(f"{path.name}: not a plain (uncompressed) tar (")
        assert str(exc.value).endswith("); nothing was extracted")
        assert not (tmp_path / "t").exists()


def test_the_plan_of_a_tar_made_from_dot_lists_what_is_written_and_not_the_target_itself(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "a.txt").write_bytes(b"a")
    (src / "b.txt").write_bytes(b"b")
    with tarfile.open(tmp_path / "dot.tar", "w") as tar:
        tar.add(src, arcname=".")  # members '.', './b.txt', './sub', './sub/a.txt' (as `tar -C src .`)
    with tarfile.open(tmp_path / "dot.tar") as tar:
        assert "." in tar.getnames()
        planned = plan_extraction(tar, "dot.tar")
    assert sorted(p.path for p in planned) == [("b.txt",), ("sub",), ("sub", "a.txt")]
    assert all(p.name for p in planned)
    assert {p.name: p.source is None for p in planned} == {"b.txt": False, "sub": True, "sub/a.txt": False}
    assert sorted(safe_extract(tmp_path / "dot.tar", tmp_path / "t")) == ["b.txt", "sub/a.txt"]


# ----------------------------------------------------------------------------------- directory descriptors

def test_many_directories_are_extracted_and_no_descriptor_is_left_open(tmp_path):
    # 150 directories, more than the cache of open directories holds, each visited twice, far apart, and a deep
    # one whose parents are evicted between its visits
    entries = [("file", f"dirs/d{i:03d}/first", f"{i}".encode()) for i in range(150)]
    entries += [("file", f"deep/{'/'.join('abcdefgh')}/one", b"1")]
    entries += [("file", f"dirs/d{i:03d}/second", f"{i}!".encode()) for i in range(149, -1, -1)]
    entries += [("file", f"deep/{'/'.join('abcdefgh')}/two", b"2"), ("file", "deep/a/b/three", b"3")]
    tar = tar_of(tmp_path / "many.tar", entries)
    before = _open_fds()
    written = safe_extract(tar, tmp_path / "t")
    assert _open_fds() == before
    assert len(written) == 303
    for i in range(150):
        d = tmp_path / "t" / "dirs" / f"d{i:03d}"
        assert sorted(os.listdir(d)) == ["first", "second"]
        assert (d / "first").read_bytes() == f"{i}".encode() and (d / "second").read_bytes() == f"{i}!".encode()
    deep = tmp_path / "t" / "deep" / "/".join("abcdefgh")
    assert (deep / "one").read_bytes() == b"1" and (deep / "two").read_bytes() == b"2"
    assert (tmp_path / "t" / "deep" / "a" / "b" / "three").read_bytes() == b"3"


def test_every_descriptor_nofollowtree_hands_out_is_the_directory_asked_for(tmp_path):
    before = _open_fds()
    with NoFollowTree(tmp_path / "root") as tree:
        asked = [("top", f"d{i}") for i in range(100)] + [("top",)] + [("top", f"d{i}", "s") for i in range(100)]
        asked += [("top", f"d{i}") for i in (0, 99, 50, 1)]
        for parts in asked:
            fd = tree.directory(parts)
            assert os.fstat(fd).st_ino == os.stat(tmp_path.joinpath("root", *parts)).st_ino, parts
            assert tree.directory(parts) == fd  # asked again at once: the same open descriptor
        assert tree.directory(()) == tree.root_fd
        assert os.fstat(tree.root_fd).st_ino == os.stat(tmp_path / "root").st_ino
        assert len(_open_fds()) <= len(before) + 1 + 64  # the root and at most 64 cached directories
    assert _open_fds() == before


# ----------------------------------------------------------------------------------- temporaries and sources

def test_a_temporary_name_taken_by_a_link_is_never_written_through(tmp_path, monkeypatch):
    # someone who raced or guessed the temporary name planted a link there: the writer must not open it
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    os.chmod(outside, 0o600)
    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.setattr(unpack.secrets, "token_hex", lambda n: "0" * (2 * n))
    os.symlink(outside, root / f".f.{'0' * 16}.almatools-tmp")
    with NoFollowTree(root) as tree, pytest.raises((OSError, UnsafeArchive)):
        tree.write(("f",), io.BytesIO(b"archive bytes"), 0o777, 0)
    assert outside.read_bytes() == b"precious" and _mode(outside) == 0o600
    assert not os.path.lexists(root / "f")
    # a plain file of that name (not a link) is not overwritten either
    os.unlink(root / f".f.{'0' * 16}.almatools-tmp")
    (root / f".f.{'0' * 16}.almatools-tmp").write_bytes(b"someone else's")
    with NoFollowTree(root) as tree, pytest.raises((OSError, UnsafeArchive)):
        tree.write(("f",), io.BytesIO(b"archive bytes"), 0o644, 0)
    assert (root / f".f.{'0' * 16}.almatools-tmp").read_bytes() == b"someone else's"
    assert not os.path.lexists(root / "f")


def test_place_file_refuses_a_source_that_is_a_link(tmp_path):
    real = tmp_path / "real.bin"
    real.write_bytes(b"real")
    os.symlink(real, tmp_path / "link.bin")
    with pytest.raises(OSError) as exc:
        place_file(tmp_path / "link.bin", tmp_path / "root", "moved.bin")
    assert exc.value.errno == errno.ELOOP
    assert not os.path.lexists(tmp_path / "root" / "moved.bin")
    place_file(real, tmp_path / "root", "moved.bin")
    assert (tmp_path / "root" / "moved.bin").read_bytes() == b"real"


@pytest.mark.parametrize("entries, member, why", [
    ([("file", "f", b"F"), ("sym", "l", "f/x")], "l (a symbolic link)", "links through 'f', which is not a directory"),
    ([("file", "d/f", b"F"), ("sym", "l", "d/f/../f")], "l (a symbolic link)",
     "links through 'd/f', which is not a directory"),
    ([("file", "d/f", b"F"), ("hard", "h", "d/f/g")], "h (a hard link)",
     "links through 'd/f', which is not a directory"),
])
def test_a_link_through_a_file_names_the_file(tmp_path, entries, member, why):
    tar = tar_of(tmp_path / "w.tar", entries)
    with pytest.raises(UnsafeArchive) as exc:
        safe_extract(tar, tmp_path / "t")
    name, kind = member.split(" ", 1)
    assert str(exc.value) == f"w.tar: member {name!r} {kind} {why} of the archive; nothing was extracted"


def test_a_hard_link_to_a_symbolic_link_is_refused_not_followed(tmp_path):
    tar = tar_of(tmp_path / "h.tar", [("file", "d/f", b"F"), ("sym", "d/l", "f"), ("hard", "h", "d/l")])
    with pytest.raises(UnsafeArchive) as exc:
        safe_extract(tar, tmp_path / "t")
    assert str(exc.value) == ("h.tar: member 'h' (a hard link) is a hard link to the symbolic link 'd/l'; "
                              "nothing was extracted")
    assert not (tmp_path / "t").exists()
    # hard links to the file itself, however spelled, are copies of it
    tar = tar_of(tmp_path / "h2.tar", [("file", "d/f", b"F"), ("hard", "h", "d/f"), ("hard", "d/h", "./d//f")])
    assert safe_extract(tar, tmp_path / "t") == ["d/f", "h", "d/h"]
    assert (tmp_path / "t" / "h").read_bytes() == (tmp_path / "t" / "d" / "h").read_bytes() == b"F"


class _FailingSource(io.RawIOBase):
    """A source that gives some bytes, then fails like a disk or a network read can."""

    def __init__(self, error: BaseException):
        self.error, self.sent = error, False

    def readable(self):
        return True

    def readinto(self, buffer):
        if not self.sent:
            self.sent = True
            buffer[:4] = b"part"
            return 4
        raise self.error


@pytest.mark.parametrize("error", [OSError(errno.EIO, "Input/output error"), KeyboardInterrupt()])
def test_a_write_that_fails_midway_leaves_nothing_behind(tmp_path, error):
    root = tmp_path / "root"
    before = _open_fds()
    with NoFollowTree(root) as tree:
        tree.write(("p", "old"), io.BytesIO(b"old"))
        with pytest.raises(type(error)):
            tree.write(("p", "new"), io.BufferedReader(_FailingSource(error)), 0o644, 5)
        with pytest.raises(type(error)):
            tree.write(("p", "old"), io.BufferedReader(_FailingSource(error)), 0o644, 5)
    assert _open_fds() == before
    assert sorted(os.listdir(root / "p")) == ["old"]
    assert (root / "p" / "old").read_bytes() == b"old"


@pytest.mark.parametrize("umask", [0o022, 0o000, 0o077])
def test_directories_are_created_rwxr_xr_x_within_the_umask(tmp_path, umask):
    tar = tar_of(tmp_path / "d.tar", [("dir", "open", None, 0o777), ("file", "implied/deeper/f", b"f"),
                                    ("dir", "closed", None, 0o700)])
    old = os.umask(umask)
    try:
        safe_extract(tar, tmp_path / "t")
    finally:
        os.umask(old)
    for d in ("open", "implied", "implied/deeper", "closed"):
        assert stat.S_IMODE(os.stat(tmp_path / "t" / d).st_mode) == 0o755 & ~umask, d


class _Spy(io.RawIOBase):
    """A source that, while it is being copied, records the permission bits of the temporaries in *folder*."""

    def __init__(self, folder: Path, data: bytes):
        self.folder, self.data, self.seen = folder, data, []

    def readable(self):
        return True

    def readinto(self, buffer):
        self.seen += [stat.S_IMODE(os.stat(self.folder / n).st_mode) for n in os.listdir(self.folder)
                      if n.endswith(".almatools-tmp")]
        n = min(len(buffer), len(self.data))
        buffer[:n], self.data = self.data[:n], self.data[n:]
        return n


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_a_file_being_written_is_readable_by_its_owner_only_until_it_is_complete(tmp_path, umask):
    # proprietary data: nobody else may read a partly written file, whatever the umask and the final mode
    (tmp_path / "p").mkdir()
    spy = _Spy(tmp_path / "p", b"proprietary" * 10)
    old = os.umask(umask)
    try:
        with NoFollowTree(tmp_path) as tree:
            tree.write(("p", "cube.fits"), io.BufferedReader(spy, buffer_size=16), 0o755, 7)
    finally:
        os.umask(old)
    assert spy.seen and set(spy.seen) == {0o600}
    assert (tmp_path / "p" / "cube.fits").read_bytes() == b"proprietary" * 10
    assert (_mode(tmp_path / "p" / "cube.fits"), os.stat(tmp_path / "p" / "cube.fits").st_mtime) == (0o755, 7)


def test_a_file_whose_first_100_characters_are_222_bytes_is_extracted(tmp_path):
    # 254 bytes in all (within the limit); its first 100 characters take 222 bytes, the 101st two more
    name = "観" * 61 + "a" * 39 + "é" * 16
    assert (len(name.encode()), len(name[:100].encode()), len(name[:101].encode())) == (254, 222, 224)
    tar = tar_of(tmp_path / "u.tar", [("file", f"p/{name}", b"x")])
    assert safe_extract(tar, tmp_path / "t") == [f"p/{name}"]
    assert (tmp_path / "t" / "p" / name).read_bytes() == b"x"
    _no_temporaries(tmp_path / "t")


def test_a_file_under_a_directory_with_a_long_multibyte_name_is_extracted(tmp_path):
    # 85 three-byte characters: 255 bytes, the longest component a directory may have
    top, mid = "観" * 85, "é" * 127
    tar = tar_of(tmp_path / "u.tar", [("file", f"{top}/{mid}/f", b"f"), ("file", f"{top}/g", b"g")])
    assert safe_extract(tar, tmp_path / "t") == [f"{top}/{mid}/f", f"{top}/g"]
    assert (tmp_path / "t" / top / mid / "f").read_bytes() == b"f"
    assert (tmp_path / "t" / top / "g").read_bytes() == b"g"


def test_a_long_multibyte_name_is_extracted_like_any_other(tmp_path):
    """A 225-byte name of 75 three-byte characters is within NAME_MAX; its temporary name must be too
    (it was cut at 100 characters, 300 bytes: ENAMETOOLONG half-way, after earlier members were written)."""
    name = "\u89b3" * 75
    assert len(name.encode()) == 225
    tar = tar_of(tmp_path / "m.tar", [("file", "first.txt", b"1"), ("file", f"p/{name}", b"2")])
    assert safe_extract(tar, tmp_path / "t") == ["first.txt", f"p/{name}"]
    assert (tmp_path / "t" / "p" / name).read_bytes() == b"2"
    assert not [p for p in (tmp_path / "t").rglob("*") if p.name.endswith(".almatools-tmp")]
