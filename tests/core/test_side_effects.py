"""Importing almatools does nothing: no plugin loading, no CASA tool, no files."""

import os
import subprocess
import sys

CODE = """
import sys, os, time
start = time.perf_counter()
import almatools, almatools.casa_tasks, almatools.casa_tasks.shell, almatools.cli
elapsed = time.perf_counter() - start
import almatools.registry as r
print("casatools" in sys.modules, "casatasks" in sys.modules, "matplotlib" in sys.modules,
      r._registry is None, sorted(os.listdir(".")))
"""


def test_import_has_no_side_effects(tmp_path):
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, cwd=tmp_path,
                         env={k: v for k, v in os.environ.items() if k != "CASASITECONFIG"} | {"HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "False", "True", "[]"]
    assert os.listdir(tmp_path) == []  # not even a ~/.cache entry (HOME is tmp_path)
