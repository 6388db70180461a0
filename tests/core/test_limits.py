"""Resource bounds (almatools.limits) and atomic outputs (almatools.io) against the real system."""

import os
import shutil
import threading

import pytest

from almatools import limits
from almatools.errors import InputFileError, OutputPathError, ResourceLimitError
from almatools.io import atomic_path, atomic_write, check_output_file


def test_disk_space_bound_is_the_free_space_minus_the_reserve(tmp_path):
    free = shutil.disk_usage(tmp_path).free  # measured independently
    target = tmp_path / "not" / "yet" / "there.fits"  # the nearest existing parent is used
    limits.check_disk_space(target, free - limits.DISK_RESERVE - 1, subject="parameter 'imsize'")
    with pytest.raises(ResourceLimitError) as info:
        limits.check_disk_space(target, free, subject="cl2image: parameter 'imsize'")
    message = str(info.value)
    assert message.startswith("cl2image: parameter 'imsize' needs ")
    assert f"of disk space in {tmp_path}" in message and "the bound is" in message and "reserve" in message
    assert isinstance(info.value, ValueError)


def test_memory_bound_uses_what_the_kernel_says_is_available():
    with open("/proc/meminfo") as fh:
        meminfo = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh}
    avail = limits.available_memory()
    assert 0 < avail <= meminfo["MemAvailable"]
    limits.check_memory(avail * 0.4, subject="x")
    with pytest.raises(ResourceLimitError, match=r"parameter 'spw' needs .* of memory; the bound is .*50% of the "
                                                 r"memory available now"):
        limits.check_memory(avail * 0.6, subject="parameter 'spw'")


def test_count_bound_names_the_parameter_and_the_bound():
    limits.check_count(100_000, 100_000, subject="x")
    with pytest.raises(ResourceLimitError,
                       match=r"frameconv: parameter 'ntimes' needs 10,000,000 times; the bound is 100,000 times"):
        limits.check_count(10**7, 100_000, subject="frameconv: parameter 'ntimes'", unit="times")


def test_parameter_names_the_running_task():
    from almatools import log
    assert limits.parameter("imsize") == "parameter 'imsize'"
    token = log._task_chain.set(("wtcheck",))
    try:
        assert limits.parameter("spw") == "wtcheck: parameter 'spw'"
    finally:
        log._task_chain.reset(token)


def test_format_bytes():
    assert [limits.format_bytes(n) for n in (0, 1023, 1536, 5 * 2**30, 3 * 2**40)] == \
        ["0 B", "1023 B", "1.5 KiB", "5.0 GiB", "3.0 TiB"]


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "README"
    os.mkfifo(fifo)
    result = {}

    def read():
        try:
            limits.read_text(fifo, 1024)
        except InputFileError as exc:
            result["error"] = str(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    if reader.is_alive():  # unblock the reader before failing, so the test run does not hang
        with open(fifo, "w"):
            pass
        pytest.fail("reading a FIFO blocked")
    assert result["error"] == f"{fifo}: is a FIFO, not a regular file; refused"


@pytest.mark.parametrize("path,problem", [("/dev/null", "is a device or socket, not a regular file"),
                                          ("/", "is a directory")])
def test_devices_and_directories_are_refused(path, problem):
    with pytest.raises(InputFileError, match=problem):
        limits.read_bytes(path, 1024)


def test_file_size_bound_and_decoding(tmp_path):
    f = tmp_path / "x.last"
    f.write_bytes(b"a = 1\n" * 100)
    assert limits.read_text(f, 600) == "a = 1\n" * 100
    with pytest.raises(ResourceLimitError, match=r"file '.*x.last' needs 600 B read into memory; the bound is 599 B"):
        limits.read_text(f, 599)
    f.write_bytes(b"a = 1\nb = '\xff'\n")
    with pytest.raises(InputFileError, match=r"x.last: line 2: is not utf-8 text \(byte 0xff at offset 11\)"):
        limits.read_text(f, 600)
    with pytest.raises(InputFileError, match="cannot be opened"):
        limits.read_text(tmp_path / "missing", 600)


def test_an_output_named_like_an_existing_directory_is_refused_before_any_work(tmp_path):
    (tmp_path / "results").mkdir()
    with pytest.raises(OutputPathError) as info:
        with atomic_path(tmp_path / "results") as tmp:
            pytest.fail("the body must not run")  # the work is not started
    assert str(info.value) == f"{tmp_path / 'results'}: is an existing directory, not a file name; " \
                              "name a file (inside it or elsewhere)"
    assert isinstance(info.value, OSError)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputPathError, match="afile is a file, not a directory"):
        check_output_file(tmp_path / "afile" / "out.csv")
    assert sorted(os.listdir(tmp_path)) == ["afile", "results"]


def test_atomic_path_leaves_nothing_behind_on_error_even_a_directory(tmp_path):
    target = tmp_path / "image.fits"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            os.mkdir(tmp)  # a writer that makes a directory (CASA images are directories)
            (tmp_path / tmp / "table.dat").write_text("partial")
            raise RuntimeError("killed")
    assert sorted(os.listdir(tmp_path)) == ["image.fits"] and target.read_text() == "old"
    atomic_write(target, "new")
    assert target.read_text() == "new"
