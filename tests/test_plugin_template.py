"""The third-party path, in a throwaway environment of its own.

Each test makes a virtual environment in ``tmp_path`` that shares this
environment's installed packages through symbolic links (so CASA is not
installed again) but not any copy of the template plugin, and installs real
distributions into it with pip.  The project's own environment is never
modified.

* The template (``plugins/template``) is installed, shown in all four faces
  (modular Python, the casa% prompt, an execfile'd script, the command line),
  its own tests (``plugins/template/tests``) are run there, then it is
  uninstalled and shown gone everywhere.
* A distribution whose entry point fails to import is reported, naming the
  plugin, its distribution and the import error, and left out; every other
  plugin and task still loads.
"""

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from almatools.casa_tasks.shell import STARTUP_LINE

TEMPLATE = Path(__file__).resolve().parents[1] / "plugins" / "template"
UID = "uid___A001_X12a3_Xe9"
#: what the template's own distribution installs (left out of the throwaway environment's links)
TEMPLATE_FILES = re.compile(r"^(almatools_uidtools|almatools_plugin_template)\b")


def throwaway_env(root: Path) -> Path:
    """A virtual environment in ``root`` seeing this one's packages except the template; its python.

    Every entry of this environment's site-packages is linked into the new one (``.pth`` files
    included, so the editable almatools install works there too); pip, run by the new
    interpreter, then installs into and uninstalls from the new site-packages only.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    ours = Path(sysconfig.get_paths()["purelib"])
    assert site != ours and site.is_dir() and not any(site.iterdir())
    for entry in ours.iterdir():
        if not TEMPLATE_FILES.match(entry.name) and entry.name != "__pycache__":
            (site / entry.name).symlink_to(entry)
    return python


def env_for(root: Path) -> dict:
    return {**os.environ, "HOME": str(root / "home"), "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1"}


def pip(python: Path, root: Path, *args) -> None:
    out = subprocess.run([str(python), "-m", "pip", *args], capture_output=True, text=True, env=env_for(root))
    assert out.returncode == 0, out.stdout + out.stderr


def install(python: Path, root: Path, project: Path) -> None:
    """pip-install a copy of ``project`` (pip builds in the source tree; the checkout stays untouched)."""
    copy = root / "build" / project.name
    shutil.copytree(project, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    pip(python, root, "install", "--no-deps", "--no-build-isolation", str(copy))


def distributions(python: Path) -> set[str]:
    out = subprocess.run([str(python), "-c", "from importlib.metadata import distributions\n"
                          "print('\\n'.join(d.metadata['Name'] for d in distributions()))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def faces(python: Path, workdir: Path) -> dict:
    """Ask each face of the environment of ``python`` whether almauid is there and what it answers."""
    env = env_for(workdir)
    seen = {}
    modular = subprocess.run(
        [str(python), "-c", "import json\ntry:\n from almatools.casa_tasks import almauid\n"
         f" print(json.dumps(almauid(uids=[{UID!r}])['uids']))\nexcept ImportError as e:\n print('GONE', e)"],
        capture_output=True, text=True, cwd=workdir, env=env)
    seen["modular"] = modular.stdout.strip()
    cli = subprocess.run([str(python), "-m", "almatools", "run", "almauid", "--uids", UID],
                         capture_output=True, text=True, cwd=workdir, env=env)
    seen["cli"] = json.loads(cli.stdout)["uids"] if cli.returncode == 0 else cli.stderr.strip().splitlines()[-1]
    seen["tasks"] = "almauid" in subprocess.run([str(python), "-m", "almatools", "tasks"], capture_output=True,
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
    shell = subprocess.run([str(python), "-m", "casashell", "--nologger", "--nogui", "--agg", "--startupfile",
                            str(workdir / "startup.py"), "-c", "session.py"],
                           capture_output=True, text=True, cwd=workdir, env=env, timeout=300)
    assert shell.returncode == 0, shell.stderr[-2000:]
    seen.update(json.loads((workdir / "faces.json").read_text()))
    return seen


def declared_tests(path: Path) -> list[str]:
    """Names of the test functions in a test file, read from its syntax tree (not from pytest)."""
    tree = ast.parse(path.read_text())
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]


@pytest.mark.casa
@pytest.mark.shell
def test_template_plugin_appears_runs_its_tests_and_disappears(tmp_path):
    python = throwaway_env(tmp_path)
    ours_before = distributions(Path(sys.executable))
    assert "almatools-plugin-template" not in distributions(python)
    install(python, tmp_path, TEMPLATE)
    assert "almatools-plugin-template" in distributions(python)

    here = faces(python, tmp_path)
    archive = ["uid://A001/X12a3/Xe9"]
    assert here == {"modular": json.dumps(archive), "cli": archive, "tasks": True,
                    "prompt": archive, "execfile": archive}

    # the template's own tests, as its author runs them: in the environment it is installed in
    tests = TEMPLATE / "tests" / "test_almauid.py"
    run = subprocess.run([str(python), "-m", "pytest", "-p", "no:cacheprovider", "-rA", "-W", "error",
                          str(tests)], capture_output=True, text=True, cwd=tmp_path, env=env_for(tmp_path))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    passed = sorted(re.findall(r"^PASSED \S+::(test_\w+)", run.stdout, re.M))
    assert passed == sorted(declared_tests(tests)) and len(passed) >= 5
    assert re.search(rf"^=+ {len(passed)} passed in ", run.stdout, re.M), run.stdout[-500:]

    # a third-party task runs in a batch unchanged: the workers find it through its entry point too
    batch = subprocess.run([str(python), "-c", textwrap.dedent(f"""
        import json, almatools
        from almatools.casa_tasks import almauid
        rows = [{{"uids": ["uid://A001/X1465/X3", "uid___A002_Xf1e1d3_X1a2b"]}}, {{"uids": ["uid://A001/X1/X2"]}}]
        r = almatools.batch("almauid", rows, nworkers=1, ledger="u.ledger", outtable="u.ecsv")
        print(json.dumps({{"ok": r["ok"], "batch": r["results"], "loop": [almauid(**row) for row in rows]}}))
    """)], capture_output=True, text=True, cwd=tmp_path, env=env_for(tmp_path), timeout=300)
    assert batch.returncode == 0, batch.stderr[-2000:]
    got = json.loads(batch.stdout.strip().splitlines()[-1])
    assert got["ok"] and got["batch"] == got["loop"]
    assert got["loop"][0]["uids"] == ["uid://A001/X1465/X3", "uid://A002/Xf1e1d3/X1a2b"]

    pip(python, tmp_path, "uninstall", "-y", "almatools-plugin-template")
    gone = faces(python, tmp_path)
    assert gone["modular"].startswith("GONE cannot import name 'almauid' from 'almatools.casa_tasks'")
    assert "no almatools task named 'almauid'" in gone["cli"]
    assert gone["tasks"] is False and gone["prompt"] is None and gone["execfile"] is None
    assert distributions(Path(sys.executable)) == ours_before  # the project's environment never changed


BROKEN_PYPROJECT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "almatools-plugin-broken"
version = "0.3.1"
dependencies = ["almatools"]

[project.entry-points.almatools]
broken = "almatools_broken"

[tool.setuptools]
packages = ["almatools_broken"]
"""

#: a plugin whose requirement was never installed: importing it fails like a real broken install
BROKEN_INIT = '''\
"""A third-party plugin whose import fails."""
import almatools_missing_requirement  # noqa: F401  (not installed anywhere)
from almatools import hookimpl


@hookimpl
def almatools_register_tasks():
    return []
'''


def listing(python: Path, root: Path, what: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "almatools", what], capture_output=True, text=True, cwd=root,
                          env=env_for(root))


def first_column(text: str) -> list[str]:
    """First column of the CLI's table (header and rule dropped)."""
    return [line.split()[0] for line in text.splitlines()[2:] if line.strip()]


@pytest.mark.casa
def test_a_plugin_that_fails_to_import_is_reported_and_left_out(tmp_path):
    python = throwaway_env(tmp_path)
    before = {what: listing(python, tmp_path, what) for what in ("plugins", "tasks")}
    assert all(out.returncode == 0 and "failed to load" not in out.stderr for out in before.values())

    project = tmp_path / "almatools-plugin-broken"
    (project / "almatools_broken").mkdir(parents=True)
    (project / "pyproject.toml").write_text(BROKEN_PYPROJECT)
    (project / "almatools_broken" / "__init__.py").write_text(BROKEN_INIT)
    install(python, tmp_path, project)
    declared = subprocess.run([str(python), "-c", "from importlib.metadata import entry_points\n"
                               "print([(e.name, e.value, e.dist.name) for e in entry_points(group='almatools')])"],
                              capture_output=True, text=True, check=True).stdout
    assert "('broken', 'almatools_broken', 'almatools-plugin-broken')" in declared  # really installed

    after = {what: listing(python, tmp_path, what) for what in ("plugins", "tasks")}
    warning = ("almatools plugin 'broken' (almatools-plugin-broken 0.3.1, almatools_broken) failed to load: "
               "ModuleNotFoundError: No module named 'almatools_missing_requirement'")
    for what, out in after.items():
        assert out.returncode == 0, out.stderr
        assert warning in out.stderr, f"{what}: {out.stderr}"
        assert out.stdout == before[what].stdout  # the others all load, the broken one is absent
    assert "broken" not in first_column(after["plugins"].stdout)
    builtin = subprocess.run([str(python), "-c", "from importlib.metadata import distribution\n"
                              "print(' '.join(e.name for e in distribution('almatools').entry_points "
                              "if e.group == 'almatools'))"], capture_output=True, text=True, check=True).stdout.split()
    assert set(builtin) <= set(first_column(after["plugins"].stdout)) and len(builtin) >= 8

    # a task of another plugin still runs in that environment, from Python, with the warning shown once
    empty = tmp_path / "empty"
    empty.mkdir()
    call = subprocess.run([str(python), "-c", "from almatools.casa_tasks import calversion\n"
                           f"print(calversion(path={str(empty)!r})['running_version'])"],
                          capture_output=True, text=True, cwd=tmp_path, env=env_for(tmp_path))
    assert call.returncode == 0, call.stderr
    assert call.stderr.count("failed to load") == 1 and warning in call.stderr
    import casatools
    assert call.stdout.split()[-1] == ".".join(re.split(r"[.-]", casatools.version_string()))
