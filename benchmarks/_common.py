"""What several benchmarks share: a CASA set-up of their own for the processes they start, and sizes on disk.

Benchmarks import it as a sibling module (``benchmarks/`` is on ``sys.path`` when ``run.py`` or a
benchmark file is run as a script).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def casa_env() -> dict:
    """``os.environ`` with a fresh HOME and a CASA site config of its own (offline data path, log in HOME):
    measured processes start the way a user's do, without the user's ~/.casa."""
    from almatools import casaenv
    home = Path(tempfile.mkdtemp(prefix="almatools-bench-home-"))
    site = home / "casasiteconfig.py"
    site.write_text(casaenv.site_config_text(logfile=str(home / "casa.log")))
    return {**os.environ, "HOME": str(home), "CASASITECONFIG": str(site)}


def tree_bytes(path: Path) -> int:
    """Bytes of the regular files below *path* (an MS or an image directory)."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
