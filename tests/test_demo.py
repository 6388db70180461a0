"""The main job: ``almatools demo`` runs every built-in task on the embedded example.

Run exactly as the README says (the console script, in a fresh working
directory), and checked through CASA's own log: every task the built-in
plugins register must have logged a ``Begin Task`` line during the demo.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from almatools import casaenv
from almatools.registry import TaskRegistry, make_plugin_manager


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    (work / "logs").mkdir()
    log = work / "logs" / "casa-demo.log"
    site = work / "casasiteconfig.py"
    site.write_text(casaenv.site_config_text(logfile=str(log)))
    env = {**os.environ, "HOME": str(work / "home"), "CASASITECONFIG": str(site)}
    (work / "home").mkdir()
    exe = shutil.which("almatools", path=str(Path(sys.executable).parent)) or "almatools"
    out = subprocess.run([exe, "demo", "--workdir", str(work / "out")], capture_output=True, text=True,
                         cwd=work, env=env, timeout=1500)
    return out, log.read_text() if log.exists() else "", work


def test_demo_succeeds_and_every_step_finishes(demo_run):
    out, _, work = demo_run
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    started = re.findall(r"^=== demo: (\S+) ===$", out.stdout, re.M)
    finished = re.findall(r"^--- (\S+): done in ", out.stdout, re.M)
    assert started == finished and {"example", "calversion"} <= set(started)
    assert "demo finished; outputs in" in out.stdout
    assert not any(work.glob("*.last")) and not any(work.glob("casa-*.log"))  # outputs go to --workdir


def test_demo_runs_every_built_in_task(demo_run):
    out, casalog_text, _ = demo_run
    registry = TaskRegistry(make_plugin_manager())
    built_in = sorted(t.name for t in registry if t.distribution.startswith("almatools "))
    ran = set(re.findall(r"##### Begin Task: (\w+)", casalog_text))
    assert built_in and not set(built_in) - ran, f"tasks the demo never ran: {sorted(set(built_in) - ran)}"


def test_demo_works_on_the_embedded_member_ous(demo_run):
    out, _, work = demo_run
    from almatools import example
    mous = example.member_ous_dir(work / "out" / "example")
    assert sorted(p.name for p in mous.iterdir() if p.is_dir()) == [
        "calibration", "log", "product", "qa", "raw", "script"]
    assert f"calibrated with CASA {example.CASA_VERSION} (pipeline, pipeline {example.PIPELINE_VERSION})" in out.stdout
