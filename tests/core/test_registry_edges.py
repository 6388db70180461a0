"""Edge cases of the plugin registry: entry-point loading, CASA task names, tracing, the task record.

Entry points are real: each test writes a throwaway ``*.dist-info`` directory (and the plugin
modules it names) into ``tmp_path`` and puts it first on ``sys.path``, so
:func:`importlib.metadata.entry_points` yields its entry points before the built-in ones.
"""

import dataclasses
import importlib.machinery
import importlib.util
import inspect
import sys
import types
import typing
import warnings
from pathlib import Path

import pluggy
import pytest

import almatools.registry as registry_module
from almatools.errors import AlmatoolsWarning, TaskDefinitionError
from almatools.registry import (TaskRegistry, TaskSource, builtin_xml, casa_task_names, hookimpl,
                                make_plugin_manager)
from sample_tasks import write_sample

GOOD_PLUGIN = '''\
from almatools.registry import hookimpl

@hookimpl
def almatools_register_tasks():
    return []
'''


def _distribution(root: Path, dist: str, entry_points: list[tuple[str, str]], modules: dict[str, str]) -> Path:
    """Write ``<dist>-1.0.dist-info`` with the ``almatools`` entry points, in order, plus the modules."""
    root.mkdir(parents=True, exist_ok=True)
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[almatools]\n" + "".join(f"{name} = {value}\n" for name, value in entry_points))
    for module, text in modules.items():
        (root / f"{module}.py").write_text(text)
    return root


@pytest.fixture
def fresh_modules(monkeypatch):
    """Forget, after the test, the throwaway plugin modules it imported."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("edge_"):
            del sys.modules[name]


def _load(monkeypatch, *roots: Path) -> tuple[pluggy.PluginManager, list[warnings.WarningMessage]]:
    """make_plugin_manager() with ``roots`` first on sys.path (in that order); its warnings."""
    for root in reversed(roots):
        monkeypatch.syspath_prepend(str(root))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pm = make_plugin_manager()   # this line is where a load warning must point
    return pm, caught


# ---------------------------------------------------------------- entry points

def test_blocked_entry_point_is_not_even_imported_and_later_ones_load(tmp_path, monkeypatch, fresh_modules):
    root = _distribution(tmp_path, "edgeblock", [("edgeblocked", "edge_block_broken:plugin"),
                                                 ("edgeafterblock", "edge_block_good")],
                         {"edge_block_broken": "raise RuntimeError('blocked plugin was imported')\n",
                          "edge_block_good": GOOD_PLUGIN})
    monkeypatch.setenv("ALMATOOLS_DISABLE_PLUGINS", " edgeblocked ,")
    pm, caught = _load(monkeypatch, root)
    assert [str(w.message) for w in caught if "edgeblocked" in str(w.message)] == []
    assert "edge_block_broken" not in sys.modules
    assert pm.is_blocked("edgeblocked")
    assert "edgeblocked" not in pm.almatools_distributions
    # the one after the blocked one still loads, and so do the built-in plugins after it
    assert pm.get_plugin("edgeafterblock") is sys.modules["edge_block_good"]
    assert pm.almatools_distributions["edgeafterblock"] == "edgeblock 1.0"
    assert pm.get_plugin("calversion") is not None


def test_entry_point_name_already_registered_is_skipped_and_later_ones_load(tmp_path, monkeypatch,
                                                                            fresh_modules):
    first = _distribution(tmp_path / "a", "edgefirst", [("edgedup", "edge_dup_first")],
                          {"edge_dup_first": GOOD_PLUGIN})
    second = _distribution(tmp_path / "b", "edgesecond", [("edgedup", "edge_dup_second"),
                                                          ("edgeafterdup", "edge_dup_after")],
                           {"edge_dup_second": GOOD_PLUGIN, "edge_dup_after": GOOD_PLUGIN})
    pm, caught = _load(monkeypatch, first, second)
    assert pm.get_plugin("edgedup") is sys.modules["edge_dup_first"]
    assert pm.almatools_distributions["edgedup"] == "edgefirst 1.0"
    assert "edge_dup_second" not in sys.modules
    assert pm.get_plugin("edgeafterdup") is sys.modules["edge_dup_after"]
    assert pm.almatools_distributions["edgeafterdup"] == "edgesecond 1.0"
    assert pm.get_plugin("calversion") is not None


def test_broken_plugin_warning_names_it_and_points_at_the_caller(tmp_path, monkeypatch, fresh_modules):
    root = _distribution(tmp_path, "edgebroken", [("edgebroken", "edge_broken_mod:plugin"),
                                                  ("edgeafterbroken", "edge_broken_good")],
                         {"edge_broken_mod": "raise RuntimeError('boom at import')\n",
                          "edge_broken_good": GOOD_PLUGIN})
    pm, caught = _load(monkeypatch, root)
    mine = [w for w in caught if "edgebroken" in str(w.message)]
    assert len(mine) == 1
    w = mine[0]
    assert w.category is AlmatoolsWarning
    assert str(w.message) == ("almatools plugin 'edgebroken' (edgebroken 1.0, edge_broken_mod:plugin) failed "
                              "to load: RuntimeError: boom at import")
    # stacklevel: the warning is attributed to whoever called make_plugin_manager(), i.e. _load() here
    assert Path(w.filename).resolve() == Path(__file__).resolve()
    load_source, load_start = inspect.getsourcelines(_load)
    call_line = load_start + next(i for i, text in enumerate(load_source) if "pm = make_plugin_manager()" in text)
    assert w.lineno == call_line
    assert pm.get_plugin("edgebroken") is None and "edgebroken" not in pm.almatools_distributions
    assert pm.get_plugin("edgeafterbroken") is sys.modules["edge_broken_good"]


# ---------------------------------------------------------------- CASA task names

def _casatasks_source(tmp_path: Path, text: str) -> importlib.machinery.ModuleSpec:
    path = tmp_path / "casatasks_stub.py"
    path.write_text(text)
    return importlib.util.spec_from_file_location("casatasks", path)


def test_casa_names_from_an_imported_module_with_all(monkeypatch):
    mod = types.ModuleType("casatasks")   # imported, no __spec__: __all__ is all there is to read
    mod.__all__ = ["alpha", "beta"]
    monkeypatch.setitem(sys.modules, "casatasks", mod)
    assert casa_task_names() == frozenset({"alpha", "beta"})


def test_casa_names_read_from_the_source_when_the_module_has_no_all(tmp_path, monkeypatch):
    mod = types.ModuleType("casatasks")
    mod.__spec__ = _casatasks_source(tmp_path, "import os\nversion = '6'\nother: list = []\n"
                                               "__all__ = ['gamma', 'delta']\nlater = 1\n")
    monkeypatch.setitem(sys.modules, "casatasks", mod)
    assert casa_task_names() == frozenset({"gamma", "delta"})


def test_casa_names_empty_when_the_source_has_no_all(tmp_path, monkeypatch):
    mod = types.ModuleType("casatasks")
    mod.__spec__ = _casatasks_source(tmp_path, "import os\nnames = ['x']\n")
    monkeypatch.setitem(sys.modules, "casatasks", mod)
    assert casa_task_names() == frozenset()


def test_casa_names_empty_when_casatasks_cannot_be_found(monkeypatch):
    monkeypatch.setitem(sys.modules, "casatasks", None)   # import blocked: find_spec() is None
    assert importlib.util.find_spec("casatasks") is None
    assert casa_task_names() == frozenset()


def test_casa_names_empty_when_casatasks_has_no_origin(monkeypatch):
    mod = types.ModuleType("casatasks")
    mod.__spec__ = importlib.machinery.ModuleSpec("casatasks", None)   # e.g. a namespace package
    monkeypatch.setitem(sys.modules, "casatasks", mod)
    assert casa_task_names() == frozenset()


# ---------------------------------------------------------------- built-in XML

def test_missing_builtin_xml_names_both_folders_looked_in():
    here = Path(registry_module.__file__).resolve().parent
    with pytest.raises(TaskDefinitionError) as info:
        builtin_xml("edge_no_such_task")
    err = info.value
    assert err.source == "xml/edge_no_such_task.xml"
    assert err.element == "file"
    assert err.problem == f"is not installed (looked in {here / 'xml'} and {here.parent / 'xml'})"


def test_builtin_xml_found_in_one_of_the_two_folders():
    here = Path(registry_module.__file__).resolve().parent
    path = builtin_xml("calversion")
    assert path.is_file()
    assert path in (here / "xml" / "calversion.xml", here.parent / "xml" / "calversion.xml")


# ---------------------------------------------------------------- the task record and the API

def test_task_source_is_immutable_and_hashable():
    source = TaskSource(xml="a.xml", impl=print)
    with pytest.raises(dataclasses.FrozenInstanceError):
        source.override = True
    assert source.override is False
    assert hash(source) == hash(TaskSource(xml="a.xml", impl=print))


def test_public_annotations_resolve():
    # `from __future__ import annotations` keeps them as strings; documentation and type tools evaluate them
    hints = typing.get_type_hints(TaskRegistry.__init__)
    assert hints == {"pm": typing.Optional[pluggy.PluginManager]}
    assert typing.get_type_hints(make_plugin_manager)["return"] is pluggy.PluginManager


# ---------------------------------------------------------------- tracing

def _plugin_with_no_tasks():
    class Plugin:
        @hookimpl
        def almatools_register_tasks(self):
            return []
    return Plugin()


@pytest.mark.parametrize("value, traced", [(None, False), ("", False), ("0", False), ("1", True), ("yes", True)])
def test_trace_plugins_switches_pluggy_tracing(monkeypatch, capfd, value, traced):
    if value is None:
        monkeypatch.delenv("ALMATOOLS_TRACE_PLUGINS", raising=False)
    else:
        monkeypatch.setenv("ALMATOOLS_TRACE_PLUGINS", value)
    pm = make_plugin_manager(load_entrypoints=False)
    pm.register(_plugin_with_no_tasks(), name="edgetrace")
    capfd.readouterr()
    assert pm.hook.almatools_register_tasks() == [[]]
    err = capfd.readouterr().err
    assert ("almatools_register_tasks [hook]" in err) is traced


# ---------------------------------------------------------------- implementations without a signature

class _BadSignature:
    """Callable, but inspect.signature() raises TypeError (its __signature__ is not a Signature)."""
    __signature__ = "not a signature"

    def __call__(self, *args, **kwargs):
        return {}


@pytest.mark.parametrize("impl, error", [(_BadSignature(), TypeError), (next, ValueError)],
                         ids=["TypeError", "ValueError"])
def test_implementation_without_a_readable_signature_is_accepted(tmp_path, impl, error):
    with pytest.raises(error):
        inspect.signature(impl)
    pm = make_plugin_manager(load_entrypoints=False)
    registry = TaskRegistry(pm)
    task = registry.add(TaskSource(xml=write_sample(tmp_path), impl=impl), "edgeplugin", "edgedist 1.0")
    assert registry.get("sampletask") is task
    assert task.impl is impl
    assert list(inspect.signature(task).parameters)[:2] == ["vis", "mode"]
