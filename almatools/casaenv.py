"""Start CASA offline: point casaconfig at the ``casadata`` package.

casatools refuses to start on a machine without internet until casaconfig
knows where the measures and data live.  casaconfig reads, in order, its
defaults, a *site* config (``$CASASITECONFIG``, ``/opt/casa/casasiteconfig.py``,
or an importable module ``casasiteconfig``) and the user's
``~/.casa/config.py``.  almatools only ever writes site configs:

* :func:`write_site_config` (``almatools casa-setup``) writes
  ``casasiteconfig.py`` into this Python environment's ``site-packages``, so
  every CASA started from this environment — casashell, ``import casatasks``,
  scripts — finds its data offline.  An existing file is left alone unless it
  is one almatools wrote; ``~/.casa/config.py`` is never touched.
* :func:`ensure_configured` is called before almatools imports casatools.  If
  no site or user config exists it writes the same content to a per-user cache
  file and sets ``CASASITECONFIG`` for this process only.  It also moves
  CASA's default log file (``casa-YYYYMMDD-HHMMSS.log`` in the working
  directory) into :func:`log_dir` when almatools is the first to start CASA in
  a process (plain Python, scripts, the command line); a ``logfile`` that a
  config file sets, and casashell's own log, are left alone.

CASA cannot run under ``python -O`` (:func:`refuse_optimized`).  How fresh
CASA's measures tables are is :mod:`almatools.freshness`'s subject.

Nothing here runs at import time.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import sysconfig
from pathlib import Path

from .errors import CasaSetupError
from .io import atomic_write

__all__ = ["site_config_text", "write_site_config", "ensure_configured", "find_existing_config", "log_dir",
           "refuse_optimized", "casatools"]

MARKER = "# Written by almatools (almatools casa-setup)."

#: casaconfig's default log file name, written into the working directory
_DEFAULT_LOG_NAME = re.compile(r"casa-\d{8}-\d{6}\.log")


def refuse_optimized(task: str = "almatools") -> None:
    """Raise :class:`CasaSetupError` under ``python -O`` / ``PYTHONOPTIMIZE``.

    casatools checks its arguments with ``assert`` statements and reads the
    checked values back afterwards; ``-O`` strips the asserts, so casatools
    fails inside its own code (even ``import casatools`` raises ``TypeError``).
    Saying so at the start is better than that traceback.
    """
    if sys.flags.optimize:
        raise CasaSetupError(
            f"{task}: CASA does not work under python -O (or with PYTHONOPTIMIZE set): casatools checks its "
            "arguments with assert statements, which -O removes, so it fails inside its own code. Run Python "
            "without -O and unset PYTHONOPTIMIZE.")


def log_dir() -> Path:
    """Where almatools puts CASA log files that CASA would write into the working directory.

    ``$ALMATOOLS_LOGDIR``, else ``$XDG_STATE_HOME/almatools/logs``, else
    ``~/.local/state/almatools/logs``.
    """
    if os.environ.get("ALMATOOLS_LOGDIR"):
        return Path(os.environ["ALMATOOLS_LOGDIR"]).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "almatools" / "logs"


def site_config_text(logfile: str | None = None, measurespath: str | os.PathLike | None = None) -> str:
    """The content of an almatools site config.

    :param logfile: optional fixed CASA log file (tests and CI use one so no
        ``casa-*.log`` lands in the working directory).
    :param measurespath: where the measures tables (``geodetic/``,
        ``ephemerides/``) are, if not in the casadata package — e.g. a
        user-owned copy kept current with ``python -m casaconfig
        --measurespath DIR --measures-update``.  The rest of CASA's data still
        comes from casadata.
    """
    lines = [
        MARKER,
        "# CASA data and measures come from the casadata package; no network updates.",
        "# Remove this file (or set CASASITECONFIG) to configure CASA differently.",
        "import casadata as _casadata",
        "measurespath = _casadata.datapath",
        "datapath = [_casadata.datapath]",
        "measures_auto_update = False",
        "data_auto_update = False",
    ]
    if measurespath:
        where = os.path.abspath(os.path.expanduser(os.fspath(measurespath)))
        lines[1] = "# CASA data come from the casadata package, measures from the path below; no network updates."
        lines[4] = f"measurespath = {where!r}"
        lines[5] = "datapath = [measurespath, _casadata.datapath]  # measures from measurespath, the rest from casadata"
    if logfile:
        lines.append(f"logfile = {str(logfile)!r}")
    return "\n".join(lines) + "\n"


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def find_existing_config() -> list[str]:
    """Config files casaconfig would read in this process, site first."""
    found = []
    env = os.environ.get("CASASITECONFIG")
    if env:
        found.append(env)
    for candidate in ("/opt/casa/casasiteconfig.py", "/home/casa/casasiteconfig.py"):
        if os.path.isfile(candidate):
            found.append(candidate)
    spec = importlib.util.find_spec("casasiteconfig")
    if spec is not None and spec.origin:
        found.append(spec.origin)
    user = Path("~/.casa/config.py").expanduser()
    if user.is_file():
        found.append(str(user))
    return found


def write_site_config(path: str | os.PathLike | None = None, *, force: bool = False,
                      measurespath: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Write the almatools site config; return ``(path, what_happened)``.

    :param path: where to write; default ``<site-packages>/casasiteconfig.py``.
    :param force: replace a site config that almatools did not write (the old
        one is kept as ``<name>.bak``).
    :param measurespath: measures tables elsewhere than in casadata (see
        :func:`site_config_text`); must hold ``geodetic/TAI_UTC``.
    """
    _require_casadata()
    if measurespath and not (Path(measurespath).expanduser() / "geodetic" / "TAI_UTC").is_dir():
        raise CasaSetupError(f"{measurespath}: no measures tables there (geodetic/TAI_UTC is missing); "
                             f"fetch them first (online): {sys.executable} -m casaconfig --measurespath "
                             f"{measurespath} --measures-update")
    target = Path(path) if path else _site_packages() / "casasiteconfig.py"
    text = site_config_text(measurespath=measurespath)
    if measurespath:
        _link_casadata_dirs(Path(measurespath).expanduser())
    if target.exists():
        old = target.read_text(errors="replace")
        if old == text:
            return target, "unchanged"
        if not old.startswith(MARKER) and not force:
            raise CasaSetupError(
                f"{target} exists and was not written by almatools; it is left as it is. "
                "Use --force to replace it (a .bak copy is kept), or add to it:\n" + text)
        if not old.startswith(MARKER):
            target.with_name(target.name + ".bak").write_text(old)
    atomic_write(target, text)
    return target, "written"


def _link_casadata_dirs(measurespath: Path) -> None:
    """Make *measurespath* look like complete CASA data to casaconfig: link casadata's other folders into it.

    casaconfig reports measures-only folders as "not casarundata" (SEVERE, at
    every start); links to casadata's ``alma``, ``nrao`` … folders avoid that.
    Existing entries are never replaced.
    """
    import casadata
    for entry in Path(casadata.datapath).iterdir():
        link = measurespath / entry.name
        if entry.is_dir() and entry.name not in ("geodetic", "ephemerides") and not os.path.lexists(link):
            link.symlink_to(entry, target_is_directory=True)


def _require_casadata() -> None:
    if importlib.util.find_spec("casadata") is None:
        raise CasaSetupError("the casadata package is not installed; install it with `pip install casadata`")


def ensure_configured() -> None:
    """Make sure importing casatools in this process works offline and logs where the user can find it.

    Does nothing when casatools is already imported.  Without any site/user
    config, writes the config to the user's cache directory and points
    ``CASASITECONFIG`` at it (for this process and its children).  Then moves
    CASA's default log file out of the working directory (:func:`log_dir`).
    """
    if "casatools" in sys.modules:
        return
    if not find_existing_config() and importlib.util.find_spec("casadata") is not None:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "almatools"
        cache.mkdir(parents=True, exist_ok=True)
        target = cache / "casasiteconfig.py"
        text = site_config_text()
        if not target.exists() or target.read_text() != text:
            atomic_write(target, text)
        os.environ["CASASITECONFIG"] = str(target)
    _route_default_logfile()


def _route_default_logfile() -> None:
    """Point casaconfig's *default* log file (a new ``casa-*.log`` in the working directory) into :func:`log_dir`.

    casatools and casatasks open ``casaconfig.config.logfile`` when they are
    imported, so changing it before that moves the file.  A log file a config
    sets (``logfile = ...``) keeps its place.
    """
    try:
        from casaconfig import config
    except Exception:  # no casaconfig: casatools will report it
        return
    name = getattr(config, "logfile", None)
    if not name or getattr(config, "nologfile", False):
        return
    here = os.path.realpath(os.getcwd())
    if os.path.realpath(os.path.dirname(name)) != here or not _DEFAULT_LOG_NAME.fullmatch(os.path.basename(name)):
        return
    target = log_dir()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # no place of our own: CASA's default stays
    config.logfile = str(target / os.path.basename(name))


def casatools():
    """Import and return the casatools module, configured for offline use.

    CASA's shared log is set up too, so messages of the tools go to the CASA
    log file as in casashell, not to the terminal (a bare casatools prints them).
    Under ``python -O`` raises :class:`CasaSetupError` (see :func:`refuse_optimized`).
    """
    refuse_optimized()
    ensure_configured()
    import casatools as _ct
    from .log import casalog
    casalog()
    return _ct
