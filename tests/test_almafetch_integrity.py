"""What almafetch checks in a downloaded file when neither DataLink nor the server gave its size or digest
(plugins/archive/integrity.py): tars written by Python's tarfile, FITS files written by astropy, gzip streams
written by gzip, each whole and cut at every block boundary, with the expected end of each computed here from
the formats' own rules (512-byte tar blocks, 2880-byte FITS blocks); and the HTML-error-page checks."""

import gzip
import io
import os
import tarfile

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st

from almatools.plugins.archive import integrity
from almatools.plugins.archive.integrity import (IntegrityError, expected_type, format_checks, html_problem,
                                                 looks_like_html, verify_fits, verify_gzip, verify_tar)


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------------------------- tar

def _ustar(sizes) -> tuple[bytes, int]:
    """A USTAR tar of files of *sizes* and the offset just past the last member's padded data (by hand:
    one 512-byte header per member, its data padded to 512)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for k, n in enumerate(sizes):
            info = tarfile.TarInfo(f"m{k}.bin")
            info.size = n
            tar.addfile(info, io.BytesIO(bytes((k + i) % 251 + 1 for i in range(n))))
    end = sum(512 + -(-n // 512) * 512 for n in sizes)
    return buf.getvalue(), end


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from([0, 1, 511, 512, 513, 1024, 1500]), min_size=1, max_size=4))
def test_a_tar_passes_whole_and_fails_at_every_cut_before_its_end_blocks(tmp_path_factory, sizes):
    data, end = _ustar(sizes)
    tmp = tmp_path_factory.mktemp("tar")
    verify_tar(_write(tmp / "whole.tar", data))
    # the end-of-archive marker is two zero blocks after the data; tarfile pads to a 10240-byte record after it
    verify_tar(_write(tmp / "marker.tar", data[:end + 1024]))
    for cut in sorted({0, 1, 511, 512, end - 1, end, end + 511, end + 512, end + 1023} & set(range(len(data)))):
        if cut < end + 1024:
            with pytest.raises(IntegrityError, match="cut.tar"):
                verify_tar(_write(tmp / "cut.tar", data[:cut]))


def test_a_member_cut_inside_its_data_is_named(tmp_path):
    data, _ = _ustar([100, 3000])
    with pytest.raises(IntegrityError, match=r"member 'm1.bin' is cut short"):
        verify_tar(_write(tmp_path / "t.tar", data[:512 + 512 + 512 + 2000]))


@pytest.mark.parametrize("sizes", [[100, 600], [100, 512]])
def test_a_tar_cut_at_a_member_boundary_lacks_its_end_of_archive_blocks(tmp_path, sizes):
    data, end = _ustar(sizes)
    for cut in (end, end + 1023):  # the last member's data is all there (with [.., 512], to the file's last byte)
        with pytest.raises(IntegrityError, match=f"ends after {cut} bytes without its end-of-archive"):
            verify_tar(_write(tmp_path / "t.tar", data[:cut]))


def test_anything_but_zeros_where_the_end_of_archive_blocks_belong_is_damage(tmp_path):
    data, end = _ustar([100])
    for where in (end, end + 1023):  # the first and the last byte of the two blocks
        damaged = bytearray(data)
        damaged[where] = 1  # not a header tarfile can read: it stops there, as at the end
        with pytest.raises(IntegrityError, match="no end-of-archive marker after the last member"):
            verify_tar(_write(tmp_path / "t.tar", bytes(damaged)))


def test_a_pax_tar_with_long_names_and_links(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, n in (("d/" + "x" * 150 + ".fits", 3000), ("é.txt", 5)):
            info = tarfile.TarInfo(name)
            info.size = n
            tar.addfile(info, io.BytesIO(b"a" * n))
        link = tarfile.TarInfo("l")
        link.type, link.linkname = tarfile.SYMTYPE, "é.txt"
        tar.addfile(link)
    data = buf.getvalue()
    verify_tar(_write(tmp_path / "t.tar", data))
    with pytest.raises(IntegrityError, match="cut short"):
        verify_tar(_write(tmp_path / "t.tar", data[:1024 + 1024 + 2000]))


def test_bytes_that_are_no_tar(tmp_path):
    with pytest.raises(IntegrityError, match="not a valid tar"):
        verify_tar(_write(tmp_path / "t.tar", b"<html>502 Bad Gateway</html>" + bytes(2000)))


# ---------------------------------------------------------------------------------------------- FITS

def _hdus():
    """FITS files astropy writes: an image, an extension after an empty primary, a table with a heap
    (PCOUNT > 0), random groups (NAXIS1 = 0, GROUPS = T, GCOUNT), and every BITPIX."""
    image = fits.HDUList([fits.PrimaryHDU(np.arange(7 * 11, dtype=">f4").reshape(7, 11))])
    ext = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones((3, 5, 700), dtype=">i2"))])
    col = fits.Column(name="v", format="PJ()", array=np.array([np.arange(n, dtype=np.int32) for n in (900, 1, 40)],
                                                              dtype=object))
    heap = fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([col])])
    groups = fits.HDUList([fits.GroupsHDU(fits.GroupData(np.ones((300, 1, 1, 3), ">f4"), parnames=["UU", "VV"],
                                                          pardata=[np.zeros(300), np.ones(300)], bitpix=-32))])
    many = fits.HDUList([fits.PrimaryHDU(np.arange(1000, dtype=dt)) for dt in (">u1",)]
                        + [fits.ImageHDU(np.arange(1000, dtype=dt)) for dt in (">i2", ">i4", ">i8", ">f4", ">f8")])
    return {"image": image, "ext": ext, "heap": heap, "groups": groups, "many": many}


@pytest.mark.parametrize("kind", ["image", "ext", "heap", "groups", "many"])
def test_fits_whole_passes_and_a_cut_inside_any_hdu_fails(tmp_path, kind):
    path = tmp_path / "f.fits"
    _hdus()[kind].writeto(path)
    data = path.read_bytes()
    verify_fits(path)
    with fits.open(path) as hdul:  # astropy's own account of where each HDU's data ends
        last = hdul[-1]
        ends = [h.fileinfo()["datLoc"] + -(-h.size // 2880) * 2880 for h in hdul]
        assert ends[-1] == len(data), "astropy and the file disagree: the test's own premise"
        assert last.size > 0
    for cut in set(range(2880, len(data), 2880)) - set(ends):  # a cut between HDUs leaves a valid FITS file
        with pytest.raises(IntegrityError, match="truncated"):
            verify_fits(_write(tmp_path / "cut.fits", data[:cut]))


def test_fits_size_must_be_whole_blocks(tmp_path):
    path = tmp_path / "f.fits"
    _hdus()["image"].writeto(path)
    data = path.read_bytes()
    for bad in (b"", data[:-1], data + b"\0"):
        with pytest.raises(IntegrityError, match=f"{len(bad)} bytes is not a whole number of 2880-byte"):
            verify_fits(_write(tmp_path / "b.fits", bad))


def _header(*cards: str, blocks: int = 1, end: bool = True) -> bytes:
    text = "".join(c.ljust(80) for c in cards) + ("END".ljust(80) if end else "")
    return text.ljust(blocks * 2880).encode("ascii")


def test_special_records_after_the_last_hdu_are_allowed(tmp_path):
    head = _header("SIMPLE  =                    T", "BITPIX  =                    8", "NAXIS   =                    0")
    verify_fits(_write(tmp_path / "s.fits", head + b"SPECIAL RECORD".ljust(2880)))


def test_a_first_block_that_is_no_primary_header(tmp_path):
    head = _header("XTENSION= 'IMAGE   '", "BITPIX  =                    8", "NAXIS   =                    0")
    with pytest.raises(IntegrityError, match="does not start with a FITS primary header"):
        verify_fits(_write(tmp_path / "x.fits", head))


@pytest.mark.parametrize("cards, message", [
    (["BITPIX  =                    7", "NAXIS   =                    0"], "BITPIX=7 NAXIS=0 are not valid"),
    (["BITPIX  =                    8", "NAXIS   =                 1000"], "BITPIX=8 NAXIS=1000 are not valid"),
    (["BITPIX  =                    8", "NAXIS   =                   -1"], "BITPIX=8 NAXIS=-1 are not valid"),
    (["BITPIX  =                    8", "NAXIS   =                    1", "NAXIS1  =                   -1"],
     "a negative NAXISn"),
    (["BITPIX  =                    8", "NAXIS   =                    2", "NAXIS1  =                    4"],
     "FITS header without NAXIS2"),
    (["NAXIS   =                    0"], "FITS header without BITPIX"),
    (["BITPIX  =                  8.5", "NAXIS   =                    0"], r"FITS BITPIX = '8.5' is not an integer"),
])
def test_headers_that_cannot_describe_data(tmp_path, cards, message):
    with pytest.raises(IntegrityError, match=message):
        verify_fits(_write(tmp_path / "h.fits", _header("SIMPLE  =                    T", *cards)))


def test_data_size_follows_bitpix_naxis_pcount_gcount(tmp_path):
    # BITPIX 16, 10 x 3 values, GCOUNT 2, PCOUNT 5: 2 * 2 * (5 + 30) = 140 bytes of data, one block
    cards = ["SIMPLE  =                    T", "BITPIX  =                   16", "NAXIS   =                    2",
             "NAXIS1  =                   10", "NAXIS2  =                    3"]
    ext = ["XTENSION= 'BINTABLE'", "BITPIX  =                   16", "NAXIS   =                    2",
           "NAXIS1  =                   10", "NAXIS2  =                    3", "PCOUNT  =                    5",
           "GCOUNT  =                    2"]
    whole = _header(*cards) + bytes(2880) + _header(*ext) + bytes(2880)
    verify_fits(_write(tmp_path / "d.fits", whole))
    # 1440 * 2 = 2880 bytes is one block exactly; one value more needs a second
    big = ext[:3] + ["NAXIS1  =                 1440", "NAXIS2  =                    1", "PCOUNT  =                    0",
                     "GCOUNT  =                    1"]
    verify_fits(_write(tmp_path / "e.fits", _header(*cards) + bytes(2880) + _header(*big) + bytes(2880)))
    bigger = big[:3] + ["NAXIS1  =                 1441"] + big[4:]
    with pytest.raises(IntegrityError, match="announces 2882 data bytes"):
        verify_fits(_write(tmp_path / "f.fits", _header(*cards) + bytes(2880) + _header(*bigger) + bytes(2880)))
    gcount = ext[:-1] + ["GCOUNT  =                   83"]  # 2 * 83 * 35 = 5810 bytes: three blocks
    with pytest.raises(IntegrityError, match="announces 5810 data bytes"):
        verify_fits(_write(tmp_path / "g.fits", _header(*cards) + bytes(2880) + _header(*gcount) + bytes(2 * 2880)))
    verify_fits(_write(tmp_path / "g.fits", _header(*cards) + bytes(2880) + _header(*gcount) + bytes(3 * 2880)))


def test_naxis_zero_has_no_data_whatever_naxisn_says_but_pcount_still_counts(tmp_path):
    head = _header("SIMPLE  =                    T", "BITPIX  =                  -64", "NAXIS   =                    0",
                   "NAXIS1  =                 9999")
    verify_fits(_write(tmp_path / "z.fits", head))
    # an extension with no array but a one-byte heap: 1 * 1 * (1 + 0) bytes, one block the file must hold
    ext = _header("XTENSION= 'BINTABLE'", "BITPIX  =                    8", "NAXIS   =                    0",
                  "PCOUNT  =                    1", "GCOUNT  =                    1")
    with pytest.raises(IntegrityError, match="announces 1 data bytes"):
        verify_fits(_write(tmp_path / "p.fits", head + ext))
    verify_fits(_write(tmp_path / "p.fits", head + ext + bytes(2880)))


def test_groups_count_only_from_the_primary_and_only_with_groups_t(tmp_path):
    # NAXIS1 = 0 with GROUPS = T: the data are GCOUNT * (PCOUNT + NAXIS2 * NAXIS3) values
    groups = ["SIMPLE  =                    T", "BITPIX  =                  -32", "NAXIS   =                    3",
              "NAXIS1  =                    0", "NAXIS2  =                    3", "NAXIS3  =                    2",
              "GROUPS  =                    T", "PCOUNT  =                    4", "GCOUNT  =                   72"]
    # 4 * 72 * (4 + 6) = 2880 bytes: one block
    verify_fits(_write(tmp_path / "g.fits", _header(*groups) + bytes(2880)))
    with pytest.raises(IntegrityError, match="announces 2880 data bytes"):
        verify_fits(_write(tmp_path / "g.fits", _header(*groups)))
    # without GROUPS = T, NAXIS1 = 0 makes the array empty: PCOUNT alone, 4 * 72 * 4 bytes
    plain = groups[:6] + ["GROUPS  =                    F"] + groups[7:]
    with pytest.raises(IntegrityError, match="announces 1152 data bytes"):
        verify_fits(_write(tmp_path / "p.fits", _header(*plain)))
    # NAXIS = 1 with GROUPS = T: groups of no array values (an empty product is one), 1 * 800 * (3 + 1) bytes
    one = ["SIMPLE  =                    T", "BITPIX  =                    8", "NAXIS   =                    1",
           "NAXIS1  =                    0", "GROUPS  =                    T", "PCOUNT  =                    3",
           "GCOUNT  =                  800"]
    with pytest.raises(IntegrityError, match="announces 3200 data bytes"):
        verify_fits(_write(tmp_path / "o.fits", _header(*one) + bytes(2880)))


def test_the_most_axes_fits_allows(tmp_path):
    # from NAXIS100 on, the keyword fills all eight columns
    axes = [f"NAXIS{i:<3d}=                    1" for i in range(1, 1000)]
    head = _header("SIMPLE  =                    T", "BITPIX  =                    8", "NAXIS   =                  999",
                   *axes, blocks=28)
    verify_fits(_write(tmp_path / "a.fits", head + bytes(2880)))  # one byte of data
    with pytest.raises(IntegrityError, match="announces 1 data bytes"):
        verify_fits(_write(tmp_path / "a.fits", head))


def test_the_first_value_of_a_repeated_keyword_counts(tmp_path):
    head = _header("SIMPLE  =                    T", "BITPIX  =                    8", "NAXIS   =                    1",
                   "NAXIS1  =                 2880", "NAXIS1  =                 9999")
    verify_fits(_write(tmp_path / "r.fits", head + bytes(2880)))


def test_a_header_over_several_blocks_and_the_header_block_limit(tmp_path, monkeypatch):
    cards = ["SIMPLE  =                    T", "BITPIX  =                    8", "NAXIS   =                    0"]
    long = cards + ["COMMENT " + "c" * 60] * 100  # 104 cards: three blocks
    verify_fits(_write(tmp_path / "l.fits", _header(*long, blocks=3)))
    with pytest.raises(IntegrityError, match="a FITS header is cut short"):
        verify_fits(_write(tmp_path / "c.fits", _header(*long, blocks=3, end=False)))
    monkeypatch.setattr(integrity, "MAX_FITS_HEADER_BLOCKS", 3)
    verify_fits(_write(tmp_path / "l.fits", _header(*long, blocks=3)))  # END in the last allowed block
    longer = cards + ["COMMENT " + "c" * 60] * 140  # 143 cards and END: four blocks, END in the fourth
    with pytest.raises(IntegrityError, match="no END card within 3 header blocks"):
        verify_fits(_write(tmp_path / "n.fits", _header(*longer, blocks=4)))


def test_a_card_value_with_a_comment(tmp_path):
    head = _header("SIMPLE  =                    T / conforms", "BITPIX  =                    8 / bytes",
                   "NAXIS   =                    1 / one axis", "NAXIS1  =                    1 / one byte")
    verify_fits(_write(tmp_path / "c.fits", head + bytes(2880)))
    # free format: the value may begin in column 11 and end in column 80, the card's last
    for value in ("2881".rjust(70), "2881"):
        free = _header("SIMPLE  =                    T", "BITPIX  =                    8",
                       "NAXIS   =                    1", "NAXIS1  = " + value)
        with pytest.raises(IntegrityError, match="announces 2881 data bytes"):
            verify_fits(_write(tmp_path / "f.fits", free + bytes(2880)))


# ---------------------------------------------------------------------------------------------- gzip

def test_gzip_whole_passes_cut_or_corrupted_fails(tmp_path):
    rng = np.random.default_rng(5)
    payload = rng.integers(0, 256, 5 << 20, dtype=np.uint8).tobytes()  # more than one 4 MiB read
    data = gzip.compress(payload, compresslevel=1)
    verify_gzip(_write(tmp_path / "g.gz", data))
    for cut in (10, len(data) // 2, len(data) - 9, len(data) - 1):
        with pytest.raises(IntegrityError, match="not a complete gzip stream"):
            verify_gzip(_write(tmp_path / "c.gz", data[:cut]))
    bad_crc = bytearray(data)
    bad_crc[-8] ^= 0xFF
    with pytest.raises(IntegrityError, match="not a complete gzip stream"):
        verify_gzip(_write(tmp_path / "b.gz", bytes(bad_crc)))
    with pytest.raises(IntegrityError, match="not a complete gzip stream"):
        verify_gzip(_write(tmp_path / "h.gz", b"<html>not found</html>"))


# ------------------------------------------------------------------------------- which checks, HTML

@pytest.mark.parametrize("name, thorough, labels", [
    ("a.tar", False, ["tar"]), ("A.TAR", True, ["tar"]), ("x.fits", False, ["fits"]), ("x.FIT", False, ["fits"]),
    ("x.fts", True, ["fits"]), ("x.fits.gz", False, []), ("x.fits.gz", True, ["gzip"]), ("x.tgz", True, ["gzip"]),
    ("x.TGZ", False, []), ("x.tar.gz", True, ["gzip"]), ("x.txt", True, []), ("fits", True, []),
])
def test_format_checks_follow_the_name(name, thorough, labels):
    checks = format_checks(name, thorough)
    assert [label for label, _ in checks] == labels
    expected = {"tar": verify_tar, "fits": verify_fits, "gzip": verify_gzip}
    assert [fn for _, fn in checks] == [expected[label] for label in labels]


@pytest.mark.parametrize("name, declared, expected", [
    ("x.dat", "Application/X-Tar; charset=binary", "application/x-tar"),
    ("x.fits", "", "image/fits"), ("X.FTS", None, "image/fits"), ("x.fit", "  ", "image/fits"),
    ("x.tar", "", "application/x-tar"), ("x.pdf", "", "application/pdf"), ("x.html", "", "text/html"),
    ("x.unknown-ext", "", "application/octet-stream"), ("README", "", "application/octet-stream"),
])
def test_the_expected_type_is_the_declared_one_else_the_names(name, declared, expected):
    assert expected_type(name, declared) == expected


@pytest.mark.parametrize("name, declared, served, problem", [
    ("x.tar", "", "text/html", "an HTML page (text/html), not the application/x-tar file"),
    ("x.tar", "", "TEXT/HTML; charset=utf-8", "an HTML page (text/html), not the application/x-tar file"),
    ("x.fits", "", "application/xhtml+xml", "an HTML page (application/xhtml+xml), not the image/fits file"),
    ("weblog.html", "", "text/html", ""), ("x", "text/html", "text/html", ""),
    ("x", "application/xhtml+xml", "text/html", ""),
    ("x.tar", "", "application/x-tar", ""), ("x.tar", "", "", ""), ("x.tar", "", None, ""),
])
def test_an_html_page_where_a_file_was_promised(name, declared, served, problem):
    found = html_problem(name, declared, served)
    assert (problem in found and found.startswith("the server answered")) if problem else found == ""


@pytest.mark.parametrize("body, html", [
    (b"<!DOCTYPE html><html>", True), (b"\n  <HTML lang=en>", True), (b"<head><title>", True), (b"<body>", True),
    (b" " * 507 + b"<html>", True),      # the tag's last byte is the 512th
    (b" " * 508 + b"<html>", False),     # cut by the 512-byte window
    (b"<?xml version='1.0'?><VOTABLE>", False), (b"SIMPLE  =  T", False), (b"", False), (b"<htm", False),
])
def test_a_body_that_starts_like_html(body, html):
    assert looks_like_html(body) is html
