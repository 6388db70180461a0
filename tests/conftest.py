"""Test set-up shared by every test module.

CASA must start offline and must not see a hand-made configuration, so before
anything imports casatools this file points ``HOME`` at a fresh directory and
``CASASITECONFIG`` at a site config written by almatools itself (the same
content ``almatools casa-setup`` writes), with the CASA log file kept out of
the working directory.
"""

import os
import tempfile
from pathlib import Path

_session_home = Path(tempfile.mkdtemp(prefix="almatools-test-home-"))
os.environ["HOME"] = str(_session_home)
os.environ.pop("XDG_CACHE_HOME", None)
os.environ.setdefault("MPLBACKEND", "Agg")

from almatools import casaenv  # noqa: E402  (after HOME is set)

_site = _session_home / "casasiteconfig.py"
_site.write_text(casaenv.site_config_text(logfile=str(_session_home / "casa-tests.log")))
os.environ["CASASITECONFIG"] = str(_site)

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Property tests and fuzz tests take their budget from a profile, not from the test: "ci" (the default)
# is a fixed, reproducible budget for CI; "fuzz" (benchmarks/fuzz.py) runs >= 10,000 random inputs per
# parser. A test that needs a particular budget sets it with @settings; fuzz tests (marked `fuzz`) do not.
_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True,
                          suppress_health_check=_SLOW, print_blob=True)
settings.register_profile("fuzz", max_examples=10_000, deadline=None, suppress_health_check=_SLOW,
                          print_blob=True)
if os.environ.get("ALMATOOLS_FUZZ_EXAMPLES"):
    settings.register_profile("fuzz", settings.get_profile("fuzz"),
                              max_examples=int(os.environ["ALMATOOLS_FUZZ_EXAMPLES"]))
settings.load_profile(os.environ.get("ALMATOOLS_HYPOTHESIS_PROFILE", "ci"))

# casatools first: importing it after some other compiled packages can crash (radio-beam's lesson)
try:
    import casatools  # noqa: F401,E402
except ImportError:  # the core tests still run; CASA tests fail loudly on their own imports
    pass


@pytest.fixture
def home() -> Path:
    """The clean HOME the tests run with."""
    return _session_home


@pytest.fixture
def casa_log_file() -> Path:
    """The file CASA's logger writes to: asked of casalog, because a process forked after CASA started
    (the mutation run's test server) keeps the log file of its parent's session home."""
    from casatasks import casalog
    return Path(casalog.logfile())


@pytest.fixture(scope="session")
def archive(tmp_path_factory):
    """The local archive emulator (DaCHS TAP + nginx + fault proxy) for the whole session.

    Missing servers fail the tests that need them (with how to install them); they are never skipped.
    """
    from almatools.plugins.archive.emulator import ArchiveEmulator, emulator_available
    why = emulator_available()
    if why:
        pytest.fail(f"the archive emulator cannot start: {why}", pytrace=False)
    emu = ArchiveEmulator(tmp_path_factory.mktemp("archive-emulator")).start()
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def catalogue_file(tmp_path_factory):
    """The Source Catalogue emulator's catalogue as an offline CSV file, written by the emulator (not by calflux)."""
    from almatools.plugins.archive.emulator.sourcecat_data import generate, write_csv
    path = tmp_path_factory.mktemp("cat") / "catalogue.csv"
    write_csv(path, generate())
    return path


@pytest.fixture(scope="module")
def ct():
    """The casatools module (CASA's data path set up)."""
    from almatools.casaenv import casatools
    return casatools()


@pytest.fixture
def me(ct):
    """A measures tool, closed after the test."""
    tool = ct.measures()
    yield tool
    tool.done()
