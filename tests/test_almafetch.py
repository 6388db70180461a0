"""almafetch against the local archive emulator: query -> fetch -> unpack, resume after faults,
safe extraction, disk-space and proprietary checks; DataLink parsing of astroquery's recorded responses."""

import hashlib
import random
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from almatools.casa_tasks import almafetch, almaquery
from almatools.errors import TaskParameterError
from almatools.plugins.archive import datalink
from almatools.plugins.archive.emulator import RECORDED_MOUS, Fault, uid_path

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
    """Resets at random points: every file ends byte-identical, each interruption costs at most what was in
    flight (one relay chunk of the proxy), and the restarts were served as HTTP ranges."""
    from almatools.plugins.archive.emulator.faults import RELAY_CHUNK
    mous = "uid://A001/Xreset/X1"
    names = archive.add_bulk_mous(mous, 8, 1_900_000)  # too small to split: one range at a time per file
    sizes = {n: archive.file_path(n).stat().st_size for n in names}
    rng = random.Random(20)
    offsets = [rng.randrange(100_000, 250_000) for _ in range(20)]
    allowance = 20 * RELAY_CHUNK
    assert sum(offsets) > 2 * allowance  # restarting from zero instead of resuming would break the bound below
    archive.faults.clear()
    archive.faults.inject(*[Fault("reset", after=a, method="GET") for a in offsets])
    r = almafetch(uid=[mous], raw=True, service=archive.faulty_url, outdir=str(tmp_path), nstreams=3)
    assert archive.faults.pending() == 0
    gets = [q for q in archive.faults.requests if q.method == "GET" and q.path.startswith("/dataPortal/")]
    resets = [q for q in gets if q.fault == "reset"]
    assert len(resets) == 20  # all twenty really cut a transfer
    assert r["ok"] and r["nfailed"] == 0 and r["ndownloaded"] == r["nfiles"] == 8
    for n in names:
        assert sha256(tmp_path / n) == sha256(archive.file_path(n)), n
    sent = sum(q.body_bytes for q in gets)
    assert sum(sizes.values()) <= sent <= sum(sizes.values()) + allowance
    assert sum(f["attempts"] - 1 for f in r["files"]) == 20
    for cut in resets:  # the next request for the same file asked for the rest only, and got it as a range
        after = next(q for q in gets if q.path == cut.path and q.start > cut.start)
        start = int(after.headers["range"].removeprefix("bytes=").split("-")[0])
        assert start > 0 and after.status == 206


def test_503_and_stalls_are_retried_to_completion(archive, tmp_path):
    archive.faults.clear()
    archive.faults.inject(Fault("503", method="GET"), Fault("503", method="GET"),
                          Fault("stall", after=2000, seconds=4, path="/dataPortal/2018", method="GET"),
                          Fault("503", method="GET"))
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
    for reserve in ("lots", "1.2.3MB", "-1MB", "nan", "1e3MB", "MB"):
        with pytest.raises(TaskParameterError, match=f"parameter 'reserve' is not a size.*got {reserve!r}"):
            almafetch(uid=[EXAMPLE], reserve=reserve, service=archive.url, outdir=str(tmp_path))
    from almatools.plugins.archive.task_almafetch import _bytes
    assert [_bytes(t) for t in ("0", "100MB", "2 GB", "1.5GiB", "512kB", ".5 TB")] == \
        [0, 100 * 10**6, 2 * 10**9, int(1.5 * 2**30), 512_000, 5 * 10**11]
    r = almafetch(project_code="2018.1.00123.S", service=archive.url, outdir=str(tmp_path), dryrun=True)
    assert r["mous"] == [ORION]


def test_content_is_checked_against_the_servers_digest(archive, tmp_path):
    import base64
    import requests
    name = next(n for n, v in sorted(archive.manifest.items()) if v["sized"] and v["public"] and
                n.endswith(".README.txt"))
    mous = archive.manifest[name]["mous"]
    head = requests.head(f"{archive.url}/dataPortal/{name}", timeout=10)
    assert head.headers["Repr-Digest"] == "sha-256=:" + base64.b64encode(
        bytes.fromhex(archive.manifest[name]["sha256"])).decode() + ":"
    assert head.headers["Content-Disposition"] == f'attachment; filename={name}'  # unquoted, as the dataPortal sends it
    served = archive.file_path(name)
    original = served.read_bytes()
    try:  # same size, one byte different: only the digest can tell
        served.write_bytes(original[:-2] + bytes([original[-2] ^ 1]) + original[-1:])
        r = almafetch(uid=[mous], include=["*.README.txt"], service=archive.url, outdir=str(tmp_path), retries=1)
        f = r["files"][0]
        assert f["status"] == "failed" and "SHA-256 differs" in f["error"]
        assert not (tmp_path / name).exists()  # never renamed into place
        assert r["ok"] is False and r["failed"] == [{"name": name, "status": "failed", "error": f["error"]}]
    finally:
        served.write_bytes(original)
    r = almafetch(uid=[mous], include=["*.README.txt"], service=archive.url, outdir=str(tmp_path))
    assert r["ndownloaded"] == 1 and sha256(tmp_path / name) == archive.manifest[name]["sha256"]
    assert r["files"][0]["verified"] == ["size", "sha-256"] and r["ok"] is True and r["failed"] == []


def test_sizes_datalink_does_not_give_come_from_head_and_a_rerun_fetches_nothing(archive, tmp_path):
    unsized = sorted({v["mous"] for v in archive.manifest.values() if v["public"] and not v["sized"]})
    mous = unsized[0]
    expected = {n: v["size"] for n, v in archive.manifest.items() if v["mous"] == mous and
                (n.endswith(".tar") or n.endswith(".README.txt"))}
    dry = almafetch(uid=[mous], raw=True, service=archive.url, outdir=str(tmp_path), dryrun=True)
    assert {f["name"]: f["size"] for f in dry["files"]} == expected
    assert {f["size_from"] for f in dry["files"]} == {"HEAD"}
    assert dry["bytes_needed"] == dry["bytes_total"] == sum(expected.values())  # the disk check counts them
    r = almafetch(uid=[mous], raw=True, service=archive.url, outdir=str(tmp_path))
    assert r["ok"] and r["ndownloaded"] == len(expected)
    t0 = time.time()
    again = almafetch(uid=[mous], raw=True, service=archive.url, outdir=str(tmp_path))
    assert again["ndownloaded"] == 0 and again["npresent"] == len(expected) and again["bytes_downloaded"] == 0
    assert not [e for e in archive.access_log() if e["method"] == "GET" and e["end"] >= t0 and
                e["path"].removeprefix("/dataPortal/") in expected]


def test_expand_tarfiles_lists_every_member_of_every_tar(archive, tmp_path):
    for mous in (M83, ORION):  # both DataLink layouts
        r = almafetch(uid=[mous], expand_tarfiles=True, dryrun=True, service=archive.url, outdir=str(tmp_path))
        tars = [f["name"] for f in r["files"] if f["name"].endswith(".tar")]
        assert len(tars) == 2
        for tar in tars:  # independently: what the served tar really holds
            with tarfile.open(archive.file_path(tar)) as t:
                inside = sorted(m.name.split("/member.", 1)[1].split("/", 1)[1] for m in t.getmembers() if m.isfile())
            listed = sorted(m["tree_path"] for m in r["members"] if m["parent"] == tar)
            assert listed == inside


def test_a_plain_list_of_urls_is_fetched_with_names_and_sizes_from_the_server(archive, tmp_path, monkeypatch):
    public = sorted(n for n, v in archive.manifest.items() if v["public"] and n.endswith(".tar"))[:2]
    private = next(n for n, v in sorted(archive.manifest.items()) if not v["public"] and n.endswith(".README.txt"))
    urls = [f"{archive.url}/dataPortal/{n}" for n in public + [private]]
    r = almafetch(urls=urls, service=archive.url, outdir=str(tmp_path / "a"))
    status = {f["name"]: f for f in r["files"]}
    for n in public:
        assert status[n]["status"] == "downloaded" and status[n]["size"] == archive.manifest[n]["size"]
        assert status[n]["size_from"] == "HEAD" and sha256(tmp_path / "a" / n) == archive.manifest[n]["sha256"]
    assert status[private]["status"] == "unauthorized" and r["ok"] is False
    monkeypatch.setenv("ALMATOOLS_ARCHIVE_PASSWORD", archive.password)
    archive.faults.clear()
    urls = [u.replace(archive.url, archive.faulty_url) for u in urls]
    r = almafetch(urls=urls, service=archive.faulty_url, outdir=str(tmp_path / "b"), username=archive.username)
    assert r["ok"] and r["ndownloaded"] == 3
    assert sha256(tmp_path / "b" / private) == archive.manifest[private]["sha256"]
    authorised = {q.path for q in archive.faults.requests if "authorization" in q.headers}
    assert authorised == {f"/dataPortal/{private}"}  # credentials only after the archive asked for them
