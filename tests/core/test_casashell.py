"""The casa% prompt for real: casashell started headless with the almatools startup line.

Typed prompt lines are run through IPython's ``run_cell`` (autocall on, as at
the prompt), so ``path = '...'`` followed by ``go calversion`` is exactly what
a user types.  A second script is run with casashell's ``execfile``.  The task
reads the package's example Member OUS, and what each face answers is checked
against the values the example was written with and the files on disk.
"""

import json
import re
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from almatools import example
from almatools.casa_tasks.shell import STARTUP_LINE

pytestmark = [pytest.mark.casa, pytest.mark.shell]

#: what calversion answers, reduced to values that can be checked independently of it
ANSWER = """{'casa_version': r['casa_version'], 'pipeline_version': r['pipeline_version'],
             'calibration_type': r['calibration_type'], 'running_version': r['running_version'],
             'matches': r['matches'], 'evidence': [r['calibration']['file'], r['calibration']['line']]}"""


def expected_answer(mous: Path) -> dict:
    """calversion's answer on the example, from the example's constants, the files and casatools."""
    import casatools
    running = ".".join(re.split(r"[.-]", casatools.version_string()))
    header = f"CASA Version PIPELINE {example.CASA_VERSION}"
    logs = [(p.relative_to(mous).as_posix(), n) for p in sorted((mous / "log").glob("*.log"))
            for n, line in enumerate(p.read_text().splitlines(), 1) if header in line]
    assert len(logs) == 1, logs  # the example has one pipeline log naming the CASA that ran
    return {"casa_version": example.CASA_VERSION, "pipeline_version": example.PIPELINE_VERSION,
            "calibration_type": "pipeline", "running_version": running,
            "matches": running == example.CASA_VERSION, "evidence": list(logs[0])}


def run_casashell(workdir: Path, script: str, home: Path) -> subprocess.CompletedProcess:
    startup = workdir / "startup.py"
    startup.write_text(STARTUP_LINE + "\n")
    (workdir / "script.py").write_text(textwrap.dedent(script))
    env = {**os.environ, "HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "casashell", "--nologger", "--nogui", "--agg", "--startupfile", str(startup),
         "-c", "script.py"], capture_output=True, text=True, cwd=workdir, env=env, timeout=300)


@pytest.fixture(scope="module")
def prompt_session(tmp_path_factory):
    work = tmp_path_factory.mktemp("casashell")
    mous = example.build_member_ous(work / "delivery", images=False)
    (work / "helper.py").write_text(textwrap.dedent(f"""
        r = calversion(path={str(mous)!r})
        results['execfile'] = {ANSWER}
        results['execfile_globals_seen'] = 'results' in globals()
    """))
    out = run_casashell(work, f"""
        import json, io, contextlib
        ip = get_ipython()
        results = {{}}
        def typed(line):
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                ip.run_cell(line)
            return buf.getvalue()
        results['inp_before'] = typed("inp calversion")
        typed("path = {str(mous)!r}")
        results['inp_after'] = typed("inp(calversion)")
        typed("r = go(calversion)")
        r = ip.user_ns['r']
        results['go_result'] = {ANSWER}
        results['last'] = open('calversion.last').read()
        typed("default calversion")
        results['after_default'] = 'path' in ip.user_ns
        typed("tget calversion")
        results['after_tget'] = ip.user_ns.get('path')
        typed("path = '/nonexistent/mous'")
        results['bad_inp'] = typed("inp calversion")
        try:
            ip.user_ns['calversion']()
        except ValueError as exc:
            results['bad_go'] = type(exc).__name__ + ': ' + str(exc)
        results['taskhelp'] = typed("taskhelp()")
        ip.user_ns['results'] = results
        ip.run_cell("execfile('helper.py')")
        results['help'] = ip.user_ns['calversion'].__doc__
        json.dump(results, open('results.json', 'w'))
    """, home=work / "home")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads((work / "results.json").read_text()), mous


def test_inp_lists_the_xml_parameters(prompt_session):
    results, mous = prompt_session
    assert results["inp_before"].splitlines()[0].startswith("# calversion :: ")
    assert any(line.startswith("path ") and "''" in line for line in results["inp_before"].splitlines())
    assert any(line.startswith("path ") and repr(str(mous)) in line for line in results["inp_after"].splitlines())


def test_go_runs_with_prompt_globals_and_writes_last(prompt_session):
    results, mous = prompt_session
    assert results["go_result"] == expected_answer(mous)
    assert re.search(rf"^path\s+= {re.escape(repr(str(mous)))}$", results["last"], re.M)
    assert results["last"].splitlines()[-1].startswith("#calversion( path=")


def test_default_and_tget(prompt_session):
    results, mous = prompt_session
    assert results["after_default"] is False
    assert results["after_tget"] == str(mous)


def test_invalid_global_is_shown_by_inp_and_refused_by_go(prompt_session):
    results, _ = prompt_session
    assert "!! must name an existing file or directory" in results["bad_inp"]
    assert results["bad_go"].startswith("TaskParameterError: calversion: parameter 'path' must name an existing")


def test_taskhelp_lists_almatools_tasks_as_extra_tasks(prompt_session):
    results, _ = prompt_session
    text = results["taskhelp"]
    assert "Extra tasks" in text
    extra = text[text.index("Extra tasks"):]
    assert "calversion :" in extra


def test_execfile_script_calls_tasks(prompt_session):
    results, mous = prompt_session
    assert results["execfile"] == expected_answer(mous)
    assert results["execfile_globals_seen"] is True


def test_plain_python_script_calls_tasks(tmp_path):
    mous = example.build_member_ous(tmp_path / "delivery", images=False)
    script = tmp_path / "pipeline.py"
    script.write_text(textwrap.dedent(f"""
        import json
        from almatools.casa_tasks import calversion
        r = calversion(path={str(mous)!r})
        print(json.dumps({ANSWER}))
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == expected_answer(mous)
