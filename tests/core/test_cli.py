"""The shell face: almatools run/help/tasks, casa-setup and shell-setup."""

import json
import os
import subprocess
import sys

import pytest

from almatools import casaenv
from almatools.casa_tasks.shell import STARTUP_LINE


def almatools(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "almatools", *args], capture_output=True, text=True,
                          cwd=cwd, env=env)


def test_tasks_lists_every_task_with_plugin_and_distribution():
    out = almatools("tasks")
    assert out.returncode == 0, out.stderr
    from almatools.registry import TaskRegistry, make_plugin_manager
    for task in TaskRegistry(make_plugin_manager()):
        assert any(line.split()[:2] == [task.name, task.plugin] for line in out.stdout.splitlines()), task.name


def test_run_help_renders_the_xml():
    out = almatools("run", "calversion", "--help")
    assert out.returncode == 0
    assert "--path" in out.stdout and "Parameters" in out.stdout


def test_run_bad_value_names_task_parameter_and_value(tmp_path):
    out = almatools("run", "calversion", "--path", str(tmp_path / "nope"))
    assert out.returncode == 2
    assert "calversion: parameter 'path' must name an existing file or directory" in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_task():
    out = almatools("run", "nosuchtask")
    assert out.returncode == 2 and "no almatools task named 'nosuchtask'" in out.stderr


def test_cli_text_coercion():
    from almatools.params import from_cli_text
    from almatools.taskxml import ParamSpec
    assert from_cli_text(ParamSpec("n", "intVec", []), "1,2, 3") == [1, 2, 3]
    spec = ParamSpec("flag", "bool", False)
    assert from_cli_text(spec, "true") is True and from_cli_text(spec, "F") is False
    with pytest.raises(ValueError):
        from_cli_text(spec, "maybe")
    assert from_cli_text(ParamSpec("r", "record", {}), '{"a": 1}') == {"a": 1}
    assert from_cli_text(ParamSpec("v", "doubleVec", []), "[1, 2.5]") == [1.0, 2.5]
    assert from_cli_text(ParamSpec("a", "any", "", accepts=("int", "string")), "7") == 7
    assert from_cli_text(ParamSpec("a", "any", "", accepts=("int", "string")), "0~3") == "0~3"


def test_casa_setup_writes_site_config_and_never_touches_user_config(tmp_path):
    home = tmp_path / "home"
    (home / ".casa").mkdir(parents=True)
    user_config = home / ".casa" / "config.py"
    user_config.write_text("# mine\nmeasurespath = '/somewhere'\n")
    target = tmp_path / "site" / "casasiteconfig.py"
    target.parent.mkdir()
    env = {**os.environ, "HOME": str(home)}
    out = almatools("casa-setup", "--path", str(target), env=env)
    assert out.returncode == 0, out.stderr
    assert "written" in out.stdout and "may override" in out.stdout
    assert target.read_text() == casaenv.site_config_text()
    assert user_config.read_text() == "# mine\nmeasurespath = '/somewhere'\n"
    assert "unchanged" in almatools("casa-setup", "--path", str(target), env=env).stdout
    # a foreign site config is left alone unless forced, and then backed up
    target.write_text("# the site admin's\n")
    out = almatools("casa-setup", "--path", str(target), env=env)
    assert out.returncode == 1 and "was not written by almatools" in out.stderr
    assert target.read_text() == "# the site admin's\n"
    assert almatools("casa-setup", "--path", str(target), "--force", env=env).returncode == 0
    assert target.with_name("casasiteconfig.py.bak").read_text() == "# the site admin's\n"


def test_site_config_starts_casa_offline_from_clean_home(tmp_path):
    config = tmp_path / "casasiteconfig.py"
    config.write_text(casaenv.site_config_text(logfile=str(tmp_path / "casa.log")))
    code = ("import casatools; me = casatools.measures(); "
            "print(me.doframe(me.observatory('ALMA')), casatools.ctsys.getpath())")
    env = {**os.environ, "HOME": str(tmp_path / "clean"), "CASASITECONFIG": str(config)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    import casadata
    assert out.stdout.startswith("True") and casadata.datapath in out.stdout


def test_modular_use_configures_casa_itself(tmp_path):
    """Without any config, almatools writes one to the cache dir before importing casatools."""
    env = {k: v for k, v in os.environ.items() if k != "CASASITECONFIG"} | {"HOME": str(tmp_path)}
    # Hide a casasiteconfig.py that `almatools casa-setup` may have put in site-packages (CI
    # does): a None entry in sys.modules makes find_spec, and so casaconfig, see no such module.
    code = ("import sys; sys.modules['casasiteconfig'] = None; "
            "from almatools.casaenv import casatools; ct = casatools(); import os; "
            "print(os.environ['CASASITECONFIG']); print(ct.measures().doframe(ct.measures().observatory('ALMA')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    path, ok = out.stdout.split()[:2]
    assert path == str(tmp_path / ".cache" / "almatools" / "casasiteconfig.py") and ok == "True"


def test_shell_setup_is_idempotent(tmp_path):
    startup = tmp_path / "startup.py"
    startup.write_text("print('mine')")
    for _ in range(2):
        out = almatools("shell-setup", "--write", "--startupfile", str(startup))
        assert out.returncode == 0
    text = startup.read_text()
    assert text.startswith("print('mine')\n") and text.count(STARTUP_LINE) == 1
    assert almatools("shell-setup").stdout.strip() == STARTUP_LINE


# --------------------------------------------------------------------------- exit status

FILESIZE_XML = """<?xml version="1.0" encoding="UTF-8"?>
<casaxml xmlns="http://casa.nrao.edu/schema/psetTypes.html">
<task type="function" name="filesize" category="testing">
  <shortdescription>Sizes of files; unreadable ones are reported as failed</shortdescription>
  <input>
    <param type="pathVec" name="paths"><shortdescription>files</shortdescription><value/></param>
    <param type="bool" name="strict"><shortdescription>ok=False on any failure</shortdescription>
      <value>False</value></param>
  </input>
  <returns type="record"/>
</task>
</casaxml>
"""


def filesize(paths, strict):
    """A task following the convention: what could not be done goes into "failed", the run goes on."""
    sizes, failed = {}, []
    for p in paths:
        try:
            sizes[p] = os.path.getsize(p)
        except OSError as exc:
            failed.append(f"{p}: {exc.strerror}")
    result = {"sizes": sizes, "failed": failed}
    if strict:
        result["ok"] = not failed
    return result


@pytest.fixture
def cli_registry(tmp_path, monkeypatch):
    from almatools import registry as reg
    from almatools.registry import TaskRegistry, TaskSource, make_plugin_manager
    fresh = TaskRegistry(make_plugin_manager(load_entrypoints=False))
    (tmp_path / "filesize.xml").write_text(FILESIZE_XML)
    fresh.add(TaskSource(xml=tmp_path / "filesize.xml", impl=filesize), plugin="sample")
    monkeypatch.setattr(reg, "_registry", fresh)
    return fresh


def test_failures_in_the_result_give_exit_status_3(cli_registry, tmp_path, capsys):
    from almatools.cli import EXIT_FAILURES, main
    good = tmp_path / "good.txt"
    good.write_text("12345")
    assert main(["run", "filesize", "--paths", str(good)]) == 0
    capsys.readouterr()
    status = main(["run", "filesize", "--paths", f"{good},{tmp_path / 'gone.txt'}", "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr()
    assert status == EXIT_FAILURES == 3
    assert json.loads(out.out) == json.loads((tmp_path / "r.json").read_text())  # the result is still written
    assert json.loads(out.out)["sizes"] == {str(good): 5}
    assert 'filesize finished but reported failures (1 "failed"); exit status 3' in out.err
    assert main(["run", "filesize", "--paths", str(tmp_path / "gone.txt"), "--strict", "true"]) == 3
    assert '"ok": false and 1 "failed"' in capsys.readouterr().err


def test_reported_failures_convention():
    from almatools.cli import reported_failures
    assert reported_failures({"ok": True, "failed": []}) == ""
    assert reported_failures({"failed": {}}) == ""
    assert reported_failures({"ok": False}) == '"ok": false'
    assert reported_failures({"failed": {"a": "b", "c": "d"}}) == '2 "failed"'
    assert reported_failures({"ok": 0}) == ""  # only the boolean False counts
    assert reported_failures([1, 2]) == ""


def test_json_into_a_directory_is_refused_before_the_task_runs(cli_registry, tmp_path, capsys):
    from almatools.cli import main
    (tmp_path / "out").mkdir()
    assert main(["run", "filesize", "--paths", str(tmp_path), "--json", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"almatools: --json {tmp_path / 'out'}: is an existing directory, not a file name" in err
    assert list((tmp_path / "out").iterdir()) == []


def test_a_task_error_exits_1_with_the_message_and_no_traceback(tmp_path):
    bad = tmp_path / "cont.dat"
    bad.write_bytes(b"\x00\x01 not a cont.dat at all \xff\n")
    out = almatools("run", "frameconv", "--mode", "contdat", "--contfile", str(bad), cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    lines = out.stderr.splitlines()
    first = next(k for k, line in enumerate(lines) if line.startswith("almatools: "))
    assert lines[first].startswith(f"almatools: {bad}") and "Traceback" not in out.stderr
    assert lines[first + 1] == "  (raised in almatools task 'frameconv')"
    assert lines[first + 2].startswith("almatools: the CASA log is ")


def test_exit_statuses_are_in_the_help():
    for args in (["run", "calversion", "--help"], ["--help"]):
        out = almatools(*args)
        assert out.returncode == 0
        text = " ".join(out.stdout.split())
        assert "3 the task finished but reported failures" in text.replace(" :", ":") or \
            "3 the task finished but reported failures" in text
