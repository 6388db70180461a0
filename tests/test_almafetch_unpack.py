"""Safe tar extraction (plugins/archive/unpack.py): generated hostile tars never write outside the target,
never copy a file from outside into it, and never leave a link behind; what is accepted is extracted right."""

import io
import os
import posixpath
import secrets
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from almatools.plugins.archive.unpack import UnsafeArchive, place_file, safe_extract
from tar_members import tar_of

# the world around the target: <base>/outside/sentinel{0,1}, <base>/work/sentinel_w, <base>/work/target
SENTINELS = ("outside/sentinel0", "outside/sentinel1", "work/sentinel_w")
_PLAIN = st.sampled_from(["a", "b", "l", "m", "outside", "work", "target", "sentinel0", "sentinel_w"])
_ODD = st.sampled_from([".", "..", ""])
#: member names: mostly plain components (one odd member refuses the whole tar, and accepted tars are
#: needed too, so that the writer runs), sometimes '.', '..', '' or a leading '/'
CLEAN = st.lists(_PLAIN, min_size=1, max_size=4).map("/".join)
RELATIVE = st.lists(st.one_of(_PLAIN, _PLAIN, _PLAIN, _ODD), min_size=1, max_size=5).map("/".join)
#: link targets: chains through '.', '..' and other links are the point
LINK_PATH = st.lists(st.one_of(_PLAIN, _ODD), min_size=1, max_size=6).map("/".join)


def _names():
    # a weighted choice: 85 % plain names, 10 % with '.', '..' or '//', 5 % absolute
    return st.tuples(st.floats(0, 1), CLEAN, RELATIVE).map(
        lambda t: t[1] if t[0] < 0.85 else t[2] if t[0] < 0.95 else "/" + t[1])


def _targets(base_marker="@BASE@"):
    """Link targets: relative chains through '.', '..' and other links, and absolute paths to the sentinels."""
    absolute = st.sampled_from([f"{base_marker}/{s}" for s in SENTINELS] + [f"{base_marker}/outside",
                                                                            f"{base_marker}/work"])
    return st.one_of(LINK_PATH, LINK_PATH, CLEAN, CLEAN, absolute)


@st.composite
def _tars(draw):
    """Members of a tar: files, directories, and links whose targets are often other members (so that chains
    form: links to links, to '.', through '..') and sometimes paths outside."""
    members = []
    for _ in range(draw(st.integers(1, 10))):
        kind = draw(st.sampled_from(["file", "file", "dir", "sym", "hard"]))
        name = draw(_names())
        if kind == "file":
            members.append((kind, name, draw(st.binary(max_size=24))))
        elif kind == "dir":
            members.append((kind, name, None))
        else:
            earlier = [m[1] for m in members]
            if earlier and draw(st.booleans()):
                other = draw(st.sampled_from(earlier))
                start = posixpath.dirname(name) if kind == "sym" else ""
                target = posixpath.relpath(posixpath.normpath("/" + other), posixpath.normpath("/" + start))
                target = draw(st.sampled_from([target, f"{target}/..", f"./{target}", f"{target}/."]))
            else:
                target = draw(_targets())
            members.append((kind, name, target))
    return members


def _write_tar(path: Path, members, base: Path) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, arg in members:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode = 1_600_000_000, 0o644
            if kind == "file":
                data = b"archive:" + arg  # never the bytes of a sentinel
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            else:
                info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                info.linkname = arg.replace("@BASE@", str(base))
            tar.addfile(info)


def _snapshot(base: Path, target: Path) -> dict:
    """Every path under *base* outside *target*, with its content (files) or its kind."""
    out = {}
    for root, dirs, files in os.walk(base, followlinks=False):
        rootp = Path(root)
        if rootp == target or target in rootp.parents:
            continue
        for name in dirs + files:
            p = rootp / name
            if p == target:
                continue
            out[str(p)] = ("link", os.readlink(p)) if p.is_symlink() else \
                ("dir",) if p.is_dir() else ("file", p.read_bytes())
    return out


def _expected_files(members) -> dict[str, bytes] | None:
    """What a correct extraction of a link-free, well-formed tar gives: path -> last content (an independent model)."""
    files, dirs = {}, set()
    for kind, name, arg in members:
        if kind in ("sym", "hard") or name.startswith("/"):
            return None
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts or not parts:
            return None
        path = "/".join(parts)
        parents = {"/".join(parts[:i]) for i in range(1, len(parts))}
        if parents & set(files) or (kind == "file" and (path in dirs or any(f.startswith(path + "/") for f in files))):
            return None  # a file where a directory is needed: the extraction must refuse
        dirs |= parents
        if kind == "dir":
            if path in files:
                return None
            dirs.add(path)
        else:
            files[path] = b"archive:" + arg
    return files


@pytest.mark.fuzz
@given(members=_tars(),
       planted=st.lists(st.tuples(RELATIVE, _targets()), max_size=1))
def test_generated_tars_never_escape_copy_from_outside_or_leave_links(members, planted):
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        target = base / "work" / "target"
        target.mkdir(parents=True)
        (base / "outside").mkdir()
        secrets_by_path = {s: secrets.token_bytes(32) for s in SENTINELS}
        for rel, content in secrets_by_path.items():
            (base / rel).write_bytes(content)
        planted_links = set()
        for rel, link in planted:  # links someone else left in the target: never to be written through
            parts = [p for p in rel.split("/") if p not in ("", ".", "..")]
            if parts:
                p = target.joinpath(*parts)
                if not os.path.lexists(p) and p.parent.is_dir() and not p.parent.is_symlink():
                    os.symlink(link.replace("@BASE@", str(base)) or ".", p)
                    planted_links.add(p)
        tar = base / "work" / "x.tar"
        _write_tar(tar, members, base)
        before = _snapshot(base, target)
        try:
            safe_extract(tar, target)
            accepted = True
        except UnsafeArchive:
            accepted = False
        after = _snapshot(base, target)
        assert after == before, "something outside the target changed"
        for rel, content in secrets_by_path.items():
            assert (base / rel).read_bytes() == content
        for root, dirs, files in os.walk(target, followlinks=False):
            for name in dirs + files:
                p = Path(root) / name
                if p.is_symlink():
                    assert p in planted_links, f"extraction left a link: {p}"
                    continue
                if p.is_file():
                    assert p.read_bytes() not in secrets_by_path.values(), f"{p} has the bytes of a file outside"
        expected = _expected_files(members)
        if expected is not None and not planted_links:
            assert accepted, "a well-formed tar without links was refused"
            for rel, content in expected.items():
                assert (target / rel).read_bytes() == content


@pytest.mark.parametrize("entries, why", [
    ([("file", "../escaped.txt", b"x")], "'..'"),
    ([("file", "/tmp/almatools-absolute-escape.txt", b"x")], "absolute"),
    ([("sym", "p/link", "../../outside")], "outside the target"),
    ([("sym", "p/link", "/etc/passwd")], "absolute path"),
    ([("hard", "p/hard", "../outside")], "outside the target"),
    ([("chr", "p/dev", "")], "device"),
    ([("fifo", "p/fifo", "")], "FIFO"),
    # the chain of the issue: a link to '.', a link through it to '..', a file under the second
    ([("sym", "l1", "."), ("sym", "l2", "l1/.."), ("file", "l2/escaped", b"x")], "symbolic link in the same"),
    # ... and a hard link resolved through that chain copies nothing from outside
    ([("sym", "l1", "."), ("sym", "l2", "l1/.."), ("hard", "h", "l2/sentinel")], "outside the target"),
    # '..' above the target is outside, even when a member of the same name exists at the top
    ([("file", "a", b"top"), ("sym", "p/x", "../../a")], "outside the target"),
    ([("sym", "a", "b"), ("sym", "b", "a")], "more than 40 links"),
    ([("dir", "d", None), ("sym", "l", "d")], "to a directory"),
    ([("sym", "dangling", "nowhere")], "not in the archive"),
])
def test_escaping_tar_members_are_refused_and_nothing_is_written(tmp_path, entries, why):
    (tmp_path / "sentinel").write_bytes(b"outside")
    tar = tar_of(tmp_path / "evil.tar", [("file", "p/ok.txt", b"ok\n")] + entries)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(UnsafeArchive, match=why) as exc:
        safe_extract(tar, tmp_path / "target")
    assert "evil.tar" in str(exc.value) and "nothing was extracted" in str(exc.value)
    assert sorted(os.listdir(tmp_path)) == before  # not even the target directory
    assert not os.path.exists("/tmp/almatools-absolute-escape.txt")


def test_links_to_files_are_written_as_copies_of_the_archive_member(tmp_path):
    tar = tar_of(tmp_path / "ok.tar", [
        ("file", "p/product/cube.fits", b"FITS bytes"),
        ("sym", "p/product/latest.fits", "cube.fits"),
        ("sym", "p/qa/cube.fits", "../product/latest.fits"),   # a chain of two links, through '..'
        ("hard", "p/script/copy.fits", "p/product/cube.fits"),
    ])
    written = safe_extract(tar, tmp_path / "t")
    assert sorted(written) == sorted(["p/product/cube.fits", "p/product/latest.fits", "p/qa/cube.fits",
                                      "p/script/copy.fits"])
    for rel in written:
        p = tmp_path / "t" / rel
        assert not p.is_symlink() and p.read_bytes() == b"FITS bytes"


def test_a_link_planted_on_disk_is_never_written_through(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "t"
    (target / "p").mkdir(parents=True)
    os.symlink(outside, target / "p" / "product")  # left by someone else
    os.symlink(outside / "f.txt", target / "p" / "f.txt")
    tar = tar_of(tmp_path / "ok.tar", [("file", "p/product/cube.fits", b"x"), ("file", "p/f.txt", b"y")])
    with pytest.raises(UnsafeArchive, match="not a directory .a link or a file.; refusing to write through it"):
        safe_extract(tar, target)
    assert not any(outside.iterdir())
    # a file name that is a link on disk is replaced by the file, not written through
    tar = tar_of(tmp_path / "ok2.tar", [("file", "p/f.txt", b"y")])
    safe_extract(tar, target)
    assert not (target / "p" / "f.txt").is_symlink() and (target / "p" / "f.txt").read_bytes() == b"y"
    assert not any(outside.iterdir())
    with pytest.raises(UnsafeArchive, match="not a directory"):
        place_file(tmp_path / "ok.tar", target, "p/product/moved.tar")
    assert not any(outside.iterdir())


def test_a_tar_whose_members_would_not_fit_on_disk_is_refused_before_writing(tmp_path):
    # a complete tar of one 1 TiB member, as a sparse file: tiny on disk, far more than the disk holds unpacked
    info = tarfile.TarInfo("p/huge.bin")
    info.size = 1 << 40
    with open(tmp_path / "bomb.tar", "wb") as fh:
        fh.write(info.tobuf(tarfile.GNU_FORMAT))
        fh.seek(512 + info.size)
        fh.write(bytes(1024))
    with pytest.raises(UnsafeArchive, match=r"writes 1099511627776 bytes but .* free"):
        safe_extract(tmp_path / "bomb.tar", tmp_path / "t")
    assert not (tmp_path / "t").exists()
    # a truncated tar is refused as damaged, not half unpacked
    with open(tmp_path / "cut.tar", "wb") as fh:
        fh.write(info.tobuf(tarfile.GNU_FORMAT) + b"x" * 100)
    with pytest.raises(UnsafeArchive, match="damaged tar"):
        safe_extract(tmp_path / "cut.tar", tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_a_realistic_delivery_tar_is_extracted_byte_identical(tmp_path):
    tree = "2019.1.00001.S/science_goal.uid___A001_X1_X1/group.uid___A001_X1_X2/member.uid___A001_X1_X3"
    files = {f"{tree}/product/cube.fits": os.urandom(5000), f"{tree}/script/scriptForPI.py": b"# PI\n",
             f"{tree}/qa/weblog.tgz": os.urandom(3000)}
    tar = tar_of(tmp_path / "d.tar", [("dir", tree, None)] + [("file", k, v) for k, v in files.items()])
    written = safe_extract(tar, tmp_path / "t")
    assert sorted(written) == sorted(files)
    for rel, data in files.items():
        assert (tmp_path / "t" / rel).read_bytes() == data
    assert posixpath.commonpath(written) == tree
