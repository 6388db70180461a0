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
  file and sets ``CASASITECONFIG`` for this process only.

Nothing here runs at import time.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig
from pathlib import Path

from .errors import CasaSetupError
from .io import atomic_write

__all__ = ["site_config_text", "write_site_config", "ensure_configured", "find_existing_config"]

MARKER = "# Written by almatools (almatools casa-setup)."


def site_config_text(logfile: str | None = None) -> str:
    """The content of an almatools site config.

    :param logfile: optional fixed CASA log file (tests and CI use one so no
        ``casa-*.log`` lands in the working directory).
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


def write_site_config(path: str | os.PathLike | None = None, *, force: bool = False) -> tuple[Path, str]:
    """Write the almatools site config; return ``(path, what_happened)``.

    :param path: where to write; default ``<site-packages>/casasiteconfig.py``.
    :param force: replace a site config that almatools did not write (the old
        one is kept as ``<name>.bak``).
    """
    _require_casadata()
    target = Path(path) if path else _site_packages() / "casasiteconfig.py"
    text = site_config_text()
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


def _require_casadata() -> None:
    if importlib.util.find_spec("casadata") is None:
        raise CasaSetupError("the casadata package is not installed; install it with `pip install casadata`")


def ensure_configured() -> None:
    """Make sure importing casatools in this process works offline.

    Does nothing when casatools is already imported or any site/user config
    exists; otherwise writes the config to the user's cache directory and
    points ``CASASITECONFIG`` at it (for this process and its children).
    """
    if "casatools" in sys.modules or find_existing_config():
        return
    if importlib.util.find_spec("casadata") is None:
        return  # let casatools report its own problem
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "almatools"
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / "casasiteconfig.py"
    text = site_config_text()
    if not target.exists() or target.read_text() != text:
        atomic_write(target, text)
    os.environ["CASASITECONFIG"] = str(target)


def casatools():
    """Import and return the casatools module, configured for offline use.

    CASA's shared log is set up too, so messages of the tools go to the CASA
    log file as in casashell, not to the terminal (a bare casatools prints them).
    """
    ensure_configured()
    import casatools as _ct
    from .log import casalog
    casalog()
    return _ct
