"""almafetch against the local archive emulator: query -> fetch -> unpack, resume after faults,
safe extraction, disk-space and proprietary checks; DataLink parsing of astroquery's recorded responses."""

import hashlib
import io
import os
import random
import shutil
import tarfile
from pathlib import Path

import pytest

from almatools.casa_tasks import almafetch, almaquery
from almatools.errors import TaskParameterError
from almatools.plugins.archive import datalink
from almatools.plugins.archive.emulator import RECORDED_MOUS, Fault, uid_path
from almatools.plugins.archive.unpack import UnsafeArchive, safe_extract

EXAMPLE = "uid://A001/X1465/X3"
M83 = "uid://A001/X1295/X35"
ORION = "uid://A001/X1300/X3"


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_recorded_datalink_responses_are_read_in_full(archive):
    import requests
    s = requests.Session()
    links, errors = datalink.resolve(s, archive.url, RECORDED_MOUS)
    assert not errors
    by_role = {}
    for link in links:
        by_role.setdefault(link.role, []).append(link)
    # astroquery's alma-datalink.xml: README, product tar, auxiliary tar, 4 ASDM tars (+2 listing rows)
    assert [len(by_role[r]) for r in ("readme", "product", "auxiliary", "raw")] == [1, 1, 1, 4]
    assert by_role["product"][0].size == 556278784
    product = by_role["product"][0]
    assert product.listing.startswith(archive.url + "/datalink/sync?ID=")
    members = datalink.list_tar(s, product)
    assert len(members) == 6 and all(m.parent == product.name for m in members)  # 8 rows minus 2 #cutout
    assert sum(m.name.endswith("pbcor.fits") for m in members) == 2
    chosen = datalink.select(s, links, {"readme", "product", "auxiliary"}, ["*.pbcor.fits"], [])
    assert sorted(c.name for c in chosen) == sorted(m.name for m in members if m.name.endswith("pbcor.fits"))
    aux = datalink.list_tar(s, by_role["auxiliary"][0])
    assert len(aux) == 48 and {m.tree_path.split("/")[0] for m in aux} >= {"calibration", "script", "qa", "log"}


def test_query_fetch_unpack_gives_the_standard_tree_and_a_rerun_fetches_nothing(archive, tmp_path):
    hits = tmp_path / "hits.csv"
    almaquery(position="11h01m51.9s -34d42m17s", radius="30arcsec", service=archive.url, outfile=str(hits))
    out = tmp_path / "data"
    r = almafetch(queryfile=str(hits), service=archive.url, outdir=str(out), unpack=True)
    assert r["mous"] == [EXAMPLE] and r["nfailed"] == 0
    assert sorted(f["role"] for f in r["files"]) == ["auxiliary", "product", "readme"]  # the default selection
    for f in r["files"]:
        assert sha256(out / f["name"]) == archive.manifest[f["name"]]["sha256"]
    tree = out / "2019.1.00001.S" / "science_goal.uid___A001_X1465_X1" / "group.uid___A001_X1465_X2" / \
        "member.uid___A001_X1465_X3"
    assert r["trees"] == [str(tree)]
    assert {p.name for p in tree.iterdir() if p.is_dir()} == {"calibration", "log", "product", "qa", "raw", "script"}
    assert (tree / "member.uid___A001_X1465_X3.README.txt").exists()
    cube = tree / "product" / "member.uid___A001_X1465_X3.TW_Hya_sci.spw25.cube.I.pbcor.fits"
    assert sha256(cube) == archive.manifest[cube.name]["sha256"]  # the single-file copy the archive also serves
    again = almafetch(queryfile=str(hits), service=archive.url, outdir=str(out))
    assert again["bytes_downloaded"] == 0 and again["npresent"] == 3 and again["ndownloaded"] == 0
    assert not list(out.glob("*.part"))


def test_twenty_random_interruptions_end_byte_identical(archive, tmp_path):
    rng = random.Random(20)
    sizes = [v["size"] for k, v in archive.manifest.items() if v["mous"] in (M83, ORION) and k.endswith(".tar")]
    archive.faults.inject(*[Fault("reset", after=rng.randrange(600, min(sizes))) for _ in range(20)])
    r = almafetch(uid=[M83, ORION], raw=True, service=archive.faulty_url, outdir=str(tmp_path), nstreams=3)
    assert archive.faults.pending() == 0  # all 20 were served
    assert r["nfailed"] == 0 and r["ndownloaded"] == r["nfiles"] == 8  # README, 2 tars, 1 ASDM tar each
    for f in r["files"]:
        assert sha256(tmp_path / f["name"]) == archive.manifest[f["name"]]["sha256"], f["name"]
    assert sum(f["attempts"] for f in r["files"]) >= r["nfiles"] + 1
    # resumed, not restarted: the bytes moved exceed the total by less than what the resets cut
    assert r["bytes_downloaded"] < 2 * r["bytes_total"]


def test_503_and_stalls_are_retried_to_completion(archive, tmp_path):
    archive.faults.inject(Fault("503"), Fault("503"), Fault("stall", after=2000, seconds=4, path="/dataPortal/2018"), Fault("503"))
    r = almafetch(uid=[ORION], service=archive.faulty_url, outdir=str(tmp_path), nstreams=1, timeout=1.0)
    assert archive.faults.pending() == 0 and r["nfailed"] == 0
    for f in r["files"]:
        assert sha256(tmp_path / f["name"]) == archive.manifest[f["name"]]["sha256"]
    assert sum(f["attempts"] - 1 for f in r["files"]) == 4


def test_include_picks_single_files_inside_tars_in_both_datalink_layouts(archive, tmp_path):
    for mous in (M83, ORION):  # M83: the older '#datalink' layout; Orion: ad-hoc services
        r = almafetch(uid=[mous], include=["*.pbcor.fits"], service=archive.url, outdir=str(tmp_path))
        assert [f["name"] for f in r["files"]] == [f"member.{uid_path(mous)}.{'M83' if mous == M83 else 'Orion_KL'}"
                                                   "_sci.spw25.cube.I.pbcor.fits"]
        f = r["files"][0]
        assert f["parent"].endswith("_001_of_001.tar") and sha256(tmp_path / f["name"]) == \
            archive.manifest[f["name"]]["sha256"]
    r = almafetch(uid=[ORION], exclude=["*auxiliary*"], dryrun=True, service=archive.url, outdir=str(tmp_path))
    assert sorted(f["role"] for f in r["files"]) == ["product", "readme"]


def _evil_tar(path, member, kind="file", linkname=""):
    with tarfile.open(path, "w") as tar:
        ok = tarfile.TarInfo("2019.1.00001.S/ok.txt")
        ok.size = 3
        tar.addfile(ok, io.BytesIO(b"ok\n"))
        info = tarfile.TarInfo(member)
        if kind == "file":
            info.size = 5
            tar.addfile(info, io.BytesIO(b"evil\n"))
        else:
            info.type = {"sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE, "dev": tarfile.CHRTYPE}[kind]
            info.linkname = linkname
            tar.addfile(info)


@pytest.mark.parametrize("member, kind, linkname, why", [
    ("../escaped.txt", "file", "", "'..'"),
    ("/tmp/almatools-absolute-escape.txt", "file", "", "absolute"),
    ("2019.1.00001.S/link", "sym", "../../outside", "symbolic link"),
    ("2019.1.00001.S/link", "sym", "/etc/passwd", "symbolic link"),
    ("2019.1.00001.S/hard", "hard", "../outside", "hard link"),
    ("2019.1.00001.S/dev", "dev", "", "device"),
])
def test_escaping_tar_members_are_refused_and_nothing_is_written(tmp_path, member, kind, linkname, why):
    tar, target = tmp_path / "evil.tar", tmp_path / "target"
    _evil_tar(tar, member, kind, linkname)
    before = set(os.listdir(tmp_path))
    with pytest.raises(UnsafeArchive, match=why):
        safe_extract(tar, target)
    assert set(os.listdir(tmp_path)) == before | {"target"} and not any(target.rglob("*"))
    assert not os.path.exists("/tmp/almatools-absolute-escape.txt")


def test_short_disk_space_is_caught_before_any_byte(archive, tmp_path):
    free = shutil.disk_usage(tmp_path).free
    need = 10_676_157_891  # README + both tars + 4 ASDM tars of the recorded MOUS
    # keep all but (need - 1 GB) free: the download cannot fit
    reserve = f"{free - need + 10**9}B"
    with pytest.raises(TaskParameterError, match="parameter 'outdir'.*free but the download needs 10.68 GB"):
        almafetch(uid=[RECORDED_MOUS], raw=True, service=archive.url, outdir=str(tmp_path / "d"), reserve=reserve)
    assert not (tmp_path / "d").exists()  # nothing written, not even the directory
    r = almafetch(uid=[RECORDED_MOUS], raw=True, service=archive.url, outdir=str(tmp_path / "d"), dryrun=True,
                  force=True)
    assert r["bytes_needed"] == need and r["dryrun"]


def test_proprietary_rows_need_credentials_which_are_never_logged(archive, tmp_path, monkeypatch, casa_log_file):
    r = almafetch(uid=["uid://A001/X2000/X3"], service=archive.url, outdir=str(tmp_path))
    assert r["proprietary"] == {"uid://A001/X2000/X3": "2027-09-30"}
    assert r["ndownloaded"] == 0 and {f["status"] for f in r["files"]} == {"proprietary"}
    assert not any(tmp_path.iterdir())
    monkeypatch.delenv("ALMATOOLS_ARCHIVE_PASSWORD", raising=False)
    with pytest.raises(TaskParameterError, match="needs a password"):
        almafetch(uid=["uid://A001/X2000/X3"], service=archive.url, outdir=str(tmp_path), username="alice")
    monkeypatch.setenv("ALMATOOLS_ARCHIVE_PASSWORD", "wrong-password")
    r = almafetch(uid=["uid://A001/X2000/X3"], service=archive.url, outdir=str(tmp_path), username="alice")
    assert r["nfailed"] == 3 and {f["status"] for f in r["files"]} == {"unauthorized"}
    monkeypatch.setenv("ALMATOOLS_ARCHIVE_PASSWORD", archive.password)
    r = almafetch(uid=["uid://A001/X2000/X3"], service=archive.url, outdir=str(tmp_path), username=archive.username)
    assert r["ndownloaded"] == 3
    for f in r["files"]:
        assert sha256(tmp_path / f["name"]) == archive.manifest[f["name"]]["sha256"]
    assert archive.password not in casa_log_file.read_text()
    assert not any(archive.password.encode() in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())


def test_bad_inputs_name_the_parameter(archive, tmp_path):
    with pytest.raises(TaskParameterError, match="parameter 'uid'"):
        almafetch(uid=["not-a-uid"], service=archive.url, outdir=str(tmp_path))
    with pytest.raises(TaskParameterError, match="parameter 'project_code'"):
        almafetch(project_code="2019.1.1.S", service=archive.url, outdir=str(tmp_path))
    with pytest.raises(TaskParameterError, match="parameter 'reserve'"):
        almafetch(uid=[EXAMPLE], reserve="lots", service=archive.url, outdir=str(tmp_path))
    r = almafetch(project_code="2018.1.00123.S", service=archive.url, outdir=str(tmp_path), dryrun=True)
    assert r["mous"] == [ORION]


def test_content_is_checked_against_the_servers_digest(archive, tmp_path):
    import requests
    name = "member.uid___A001_X1300_X3.README.txt"
    head = requests.head(f"{archive.url}/dataPortal/{name}", timeout=10)
    assert head.headers["Repr-Digest"] == "sha-256=:" + __import__("base64").b64encode(
        bytes.fromhex(archive.manifest[name]["sha256"])).decode() + ":"
    served = archive.file_path(name)
    original = served.read_bytes()
    try:  # same size, one byte different: only the digest can tell
        served.write_bytes(original[:-2] + bytes([original[-2] ^ 1]) + original[-1:])
        r = almafetch(uid=[ORION], include=["*.README.txt"], service=archive.url, outdir=str(tmp_path), retries=1)
        f = r["files"][0]
        assert f["status"] == "failed" and "SHA-256 differs" in f["error"]
        assert not (tmp_path / name).exists()  # never renamed into place
    finally:
        served.write_bytes(original)
    r = almafetch(uid=[ORION], include=["*.README.txt"], service=archive.url, outdir=str(tmp_path))
    assert r["ndownloaded"] == 1 and sha256(tmp_path / name) == archive.manifest[name]["sha256"]
