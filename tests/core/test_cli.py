"""The shell face: almatools run/help/tasks, casa-setup and shell-setup."""

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
