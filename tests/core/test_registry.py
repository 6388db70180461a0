"""The plugin manager and registry: discovery, conflicts, blocking, documentation."""

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import almatools
from almatools import hookspecs
from almatools.errors import PluginError, TaskDefinitionError
from almatools.registry import TaskRegistry, TaskSource, hookimpl, make_plugin_manager
from sample_tasks import SAMPLE_XML, sampletask, write_sample

ROOT = Path(__file__).resolve().parents[2]


def _plugin(xml, impl, **kw):
    class Plugin:
        @hookimpl
        def almatools_register_tasks(self):
            return [TaskSource(xml=xml, impl=impl, **kw)]
    return Plugin()


def _registry(*named_plugins):
    pm = make_plugin_manager(load_entrypoints=False)
    for name, plugin in named_plugins:
        pm.register(plugin, name=name)
    return TaskRegistry(pm)


def test_manager_names_are_all_almatools():
    pm = make_plugin_manager(load_entrypoints=False)
    assert pm.project_name == "almatools"
    assert almatools.hookimpl.project_name == "almatools"
    assert hookspecs.hookspec.project_name == "almatools"


def test_builtin_plugins_come_through_the_entry_point_group():
    from importlib.metadata import entry_points
    eps = {ep.name: ep for ep in entry_points(group="almatools")}
    registry = TaskRegistry(make_plugin_manager())
    builtin = {t.plugin for t in registry if t.distribution.startswith("almatools ")}
    assert builtin and builtin <= set(eps)
    assert registry.get("calversion").plugin == "calversion"


def test_duplicate_task_name_names_both_plugins(tmp_path):
    xml = write_sample(tmp_path)
    with pytest.raises(PluginError, match=r"task 'sampletask' is registered twice: by plugin 'first'.*plugin 'second'"):
        _registry(("first", _plugin(xml, sampletask)), ("second", _plugin(xml, sampletask)))


def test_shadowing_a_casa_task_is_refused_unless_asked(tmp_path):
    xml = write_sample(tmp_path, SAMPLE_XML.replace('name="sampletask"', 'name="tclean"'))
    with pytest.raises(PluginError, match="would shadow the CASA task"):
        _registry(("p", _plugin(xml, sampletask)))
    registry = _registry(("p", _plugin(xml, sampletask, override=True)))
    assert "tclean" in registry


def test_casa_task_names_match_casatasks_all():
    from almatools.registry import casa_task_names
    names = casa_task_names()
    import casatasks
    assert names == frozenset(casatasks.__all__)


def test_shell_verbs_cannot_be_task_names(tmp_path):
    xml = write_sample(tmp_path, SAMPLE_XML.replace('name="sampletask"', 'name="inp"'))
    with pytest.raises(PluginError, match="casashell command 'inp'"):
        _registry(("p", _plugin(xml, sampletask)))


def test_implementation_parameters_must_equal_the_xml(tmp_path):
    def wrong(vis, mode, niter):
        return {}
    with pytest.raises(TaskDefinitionError, match=r"only in XML \['fitspec', 'hdkey'.*only in the implementation \[\]"):
        _registry(("p", _plugin(write_sample(tmp_path), wrong)))


def test_a_hook_returning_garbage_is_a_clear_error(tmp_path):
    class Bad:
        @hookimpl
        def almatools_register_tasks(self):
            return ["sampletask.xml"]
    with pytest.raises(PluginError, match="expected almatools.TaskSource"):
        _registry(("bad", Bad()))


def test_unknown_hook_is_refused():
    class Typo:
        @hookimpl
        def almatools_register_taks(self):
            return []
    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(Typo(), name="typo")
    with pytest.raises(Exception, match="unknown hook 'almatools_register_taks'"):
        pm.check_pending()


def test_disable_plugins(monkeypatch):
    monkeypatch.setenv("ALMATOOLS_DISABLE_PLUGINS", "calversion, nonexistent")
    registry = TaskRegistry(make_plugin_manager())
    assert "calversion" not in registry
    assert registry.pm.is_blocked("calversion")


def test_plugins_cli_lists_plugins_and_distributions():
    out = subprocess.run([sys.executable, "-m", "almatools", "plugins"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^calversion\s+almatools 0\.1\.0\s+calversion\s+.*\balmatools_register_tasks\b", out.stdout, re.M)


def test_trace_plugins(monkeypatch, capfd):
    monkeypatch.setenv("ALMATOOLS_TRACE_PLUGINS", "1")
    TaskRegistry(make_plugin_manager())
    assert "almatools_register_tasks" in capfd.readouterr().err


# ---------------------------------------------------------------- documentation contracts

def test_every_hook_is_documented_here_and_on_the_plugin_page():
    page = (ROOT / "plugins" / "README.md").read_text()
    specs = [n for n in dir(hookspecs) if n.startswith("almatools_")]
    assert specs
    for name in specs:
        fn = getattr(hookspecs, name)
        doc = inspect.getdoc(fn) or ""
        assert len(doc.split()) >= 20, f"hook {name} lacks a docstring"
        assert ":return:" in doc or ":param" in doc, f"hook {name} does not document its result/params"
        heading = f"### `{name}("
        assert heading in page, f"plugins/README.md lacks a section for {name}"


def test_every_registered_task_is_documented():
    registry = TaskRegistry(make_plugin_manager())
    assert len(registry) >= 1
    for task in registry:
        spec = task.spec
        assert spec.shortdescription and len(spec.description.split()) >= 5, f"{spec.name}: task description"
        for p in spec.params:
            assert p.shortdescription, f"{spec.name}: parameter {p.name} has no shortdescription"
            assert p.description, f"{spec.name}: parameter {p.name} has no description"
        assert not re.search(r"^\s*Default\s*:", spec.description, re.M | re.I), \
            f"{spec.name}: defaults belong in <value>, not in prose"


def test_readme_task_table_lists_every_registered_task():
    readme = (ROOT / "README.md").read_text()
    table = dict(re.findall(r"^\| `(\w+)` \| `?([\w.-]+)`? \|", readme, re.M))
    registry = TaskRegistry(make_plugin_manager())
    expected = {t.name: t.plugin for t in registry if t.distribution.startswith("almatools ")}
    assert {k: v for k, v in table.items() if k in expected or v in set(expected.values())} == expected


def test_modular_namespace_lists_and_completes_tasks():
    import almatools.casa_tasks as ct
    from almatools.registry import get_registry
    names = get_registry().names()
    assert set(names) <= set(dir(ct))
    assert ct.__all__ == names
    namespace = {}
    exec("from almatools.casa_tasks import *", namespace)
    assert set(names) <= set(namespace)
    assert ct.calversion is get_registry().get("calversion")
    import pytest
    with pytest.raises(AttributeError, match="has no task 'nosuch'; registered tasks: "):
        ct.nosuch
