"""The third-party path stays open: the template plugin in all four faces, then uninstalled.

The template (``plugins/template``) is installed into this environment by
``.ci/setup``.  This test shows its task in modular Python, at the casa%
prompt, in an execfile'd script and on the command line, uninstalls the
distribution, shows the task gone everywhere, and reinstalls it.
"""

import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

from almatools.casa_tasks.shell import STARTUP_LINE

TEMPLATE = Path(__file__).resolve().parents[1] / "plugins" / "template"
UID = "uid___A001_X12a3_Xe9"


def pip(*args):
    out = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def installed() -> bool:
    try:
        distribution("almatools-plugin-template")
        return True
    except PackageNotFoundError:
        return False


def faces(workdir: Path) -> dict:
    """Ask each face whether almauid is there and what it answers."""
    env = {**os.environ, "HOME": str(workdir / "home")}
    seen = {}
    modular = subprocess.run(
        [sys.executable, "-c", "import json\ntry:\n from almatools.casa_tasks import almauid\n"
         f" print(json.dumps(almauid(uids=[{UID!r}])['uids']))\nexcept ImportError as e:\n print('GONE', e)"],
        capture_output=True, text=True, cwd=workdir, env=env)
    seen["modular"] = modular.stdout.strip()
    cli = subprocess.run([sys.executable, "-m", "almatools", "run", "almauid", "--uids", UID],
                         capture_output=True, text=True, cwd=workdir, env=env)
    seen["cli"] = json.loads(cli.stdout)["uids"] if cli.returncode == 0 else cli.stderr.strip().splitlines()[-1]
    seen["tasks"] = "almauid" in subprocess.run([sys.executable, "-m", "almatools", "tasks"], capture_output=True,
                                                 text=True, cwd=workdir, env=env).stdout
    (workdir / "startup.py").write_text(STARTUP_LINE + "\n")
    (workdir / "script.py").write_text(f"result = almauid(uids=[{UID!r}])\n")
    (workdir / "session.py").write_text(textwrap.dedent(f"""
        import json
        ip = get_ipython()
        out = {{'prompt': None, 'execfile': None}}
        if 'almauid' in ip.user_ns:
            ip.run_cell("uids = [{UID!r}]")
            ip.run_cell("r = go(almauid)")
            out['prompt'] = ip.user_ns['r']['uids']
            ip.run_cell("execfile('script.py')")
            out['execfile'] = ip.user_ns['result']['uids']
        json.dump(out, open('faces.json', 'w'))
    """))
    shell = subprocess.run([sys.executable, "-m", "casashell", "--nologger", "--nogui", "--agg", "--startupfile",
                            str(workdir / "startup.py"), "-c", "session.py"],
                           capture_output=True, text=True, cwd=workdir, env=env, timeout=300)
    assert shell.returncode == 0, shell.stderr[-2000:]
    seen.update(json.loads((workdir / "faces.json").read_text()))
    return seen


@pytest.mark.casa
@pytest.mark.shell
def test_template_plugin_appears_and_disappears(tmp_path):
    if not installed():
        pip("install", "--no-deps", "--no-build-isolation", str(TEMPLATE))
    try:
        here = faces(tmp_path)
        archive = ["uid://A001/X12a3/Xe9"]
        assert here == {"modular": json.dumps(archive), "cli": archive, "tasks": True,
                        "prompt": archive, "execfile": archive}
        pip("uninstall", "-y", "almatools-plugin-template")
        gone = faces(tmp_path)
        assert gone["modular"].startswith("GONE cannot import name 'almauid' from 'almatools.casa_tasks'")
        assert "no almatools task named 'almauid'" in gone["cli"]
        assert gone["tasks"] is False and gone["prompt"] is None and gone["execfile"] is None
    finally:
        if not installed():
            pip("install", "--no-deps", "--no-build-isolation", str(TEMPLATE))
