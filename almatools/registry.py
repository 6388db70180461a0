"""The plugin manager and the task registry.

:func:`make_plugin_manager` builds a pluggy manager whose project name,
``hookimpl`` marker and entry-point group are all ``almatools``.  Built-in
plugins are declared as entry points of the ``almatools`` distribution, the
same way a third party declares its own, so there is exactly one discovery
path.  ``ALMATOOLS_DISABLE_PLUGINS=a,b`` blocks plugins by entry-point name;
``ALMATOOLS_TRACE_PLUGINS=1`` prints every hook call to stderr.

:func:`get_registry` builds the :class:`TaskRegistry` on first use and caches
it; nothing happens at import time.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import inspect
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pluggy

from . import hookspecs
from .errors import AlmatoolsWarning, PluginError, TaskDefinitionError
from .task import Task
from .taskxml import parse_task_xml

__all__ = ["NAME", "hookimpl", "TaskSource", "TaskRegistry", "make_plugin_manager", "get_registry",
           "builtin_xml", "casa_task_names"]

NAME = "almatools"
hookimpl = pluggy.HookimplMarker(NAME)

#: names the casashell prompt already uses for its verbs; a task may not take them
SHELL_VERBS = frozenset({"inp", "go", "default", "tget", "tput", "saveinputs", "taskhelp", "tasks", "help", "exit"})


@dataclass(frozen=True)
class TaskSource:
    """What a plugin returns for each task from ``almatools_register_tasks``.

    :param xml: path (or :mod:`importlib.resources` traversable) of the task XML.
    :param impl: the implementation; its parameter names equal the XML's.
    :param override: allow the task to shadow a CASA task of the same name.
    """

    xml: Any
    impl: Callable
    override: bool = False


def builtin_xml(name: str) -> Path:
    """The XML file of a built-in task: ``xml/<name>.xml``.

    Installed, the ``xml/`` folder ships inside the package (``almatools/xml``);
    in a source checkout (editable install) it is the repository's top-level
    ``xml/``.  It has no ``__init__.py`` on purpose: a package named ``xml`` at
    the repository root would shadow the standard library's.
    """
    here = Path(__file__).resolve().parent
    for folder in (here / "xml", here.parent / "xml"):
        path = folder / f"{name}.xml"
        if path.is_file():
            return path
    raise TaskDefinitionError(f"xml/{name}.xml", "file", f"is not installed (looked in {here / 'xml'} "
                              f"and {here.parent / 'xml'})")


def casa_task_names() -> frozenset[str]:
    """Names of CASA's own tasks (``casatasks.__all__``), read without importing casatasks."""
    mod = sys.modules.get("casatasks")
    if mod is not None and hasattr(mod, "__all__"):
        return frozenset(mod.__all__)
    spec = importlib.util.find_spec("casatasks")
    if spec is None or not spec.origin:
        return frozenset()
    tree = ast.parse(Path(spec.origin).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return frozenset(ast.literal_eval(node.value))
    return frozenset()


def _blocked() -> set[str]:
    return {n.strip() for n in os.environ.get("ALMATOOLS_DISABLE_PLUGINS", "").split(",") if n.strip()}


def _tracing() -> bool:
    return os.environ.get("ALMATOOLS_TRACE_PLUGINS", "") not in ("", "0")


def make_plugin_manager(load_entrypoints: bool = True) -> pluggy.PluginManager:
    """Build a fresh plugin manager (never a module global).

    Loads every entry point of the group ``almatools`` except blocked ones.
    A plugin that fails to import is reported with an :class:`AlmatoolsWarning`
    naming it and its distribution, and left out; the others still load.
    """
    pm = pluggy.PluginManager(NAME)
    pm.add_hookspecs(hookspecs)
    pm.almatools_distributions = {}
    for name in _blocked():
        pm.set_blocked(name)
    if load_entrypoints:
        for ep in importlib.metadata.entry_points(group=NAME):
            if pm.is_blocked(ep.name) or pm.get_plugin(ep.name) is not None:
                continue
            dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "?"
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken third-party plugin must not take the others down
                warnings.warn(f"almatools plugin {ep.name!r} ({dist}, {ep.value}) failed to load: "
                              f"{type(exc).__name__}: {exc}", AlmatoolsWarning, stacklevel=2)
                continue
            pm.register(plugin, name=ep.name)
            pm.almatools_distributions[ep.name] = dist
    pm.check_pending()
    if _tracing():
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    return pm


class TaskRegistry:
    """Tasks by name, with the plugin and distribution that provide each.

    The registry owns the rules: duplicate names and CASA-shadowing names are
    refused here, not by each plugin.
    """

    def __init__(self, pm: pluggy.PluginManager | None = None):
        self.pm = pm if pm is not None else make_plugin_manager()
        self._tasks: dict[str, Task] = {}
        self._casa_names = casa_task_names()
        # Called per implementation (not through pm.hook) so every task keeps the plugin it came from.
        for impl in self.pm.hook.almatools_register_tasks.get_hookimpls():
            plugin = self.pm.get_name(impl.plugin) or repr(impl.plugin)
            dist = getattr(self.pm, "almatools_distributions", {}).get(plugin, "")
            sources = list(impl.function() or ())
            if _tracing():
                sys.stderr.write(f"almatools: plugin {plugin!r} ({dist}) almatools_register_tasks() -> "
                                 f"{len(sources)} task(s)\n")
            for source in sources:
                self.add(source, plugin, dist)

    def add(self, source: TaskSource, plugin: str = "", distribution: str = "") -> Task:
        if not isinstance(source, TaskSource):
            raise PluginError(f"plugin {plugin!r} returned {source!r} from almatools_register_tasks; "
                              "expected almatools.TaskSource(xml=..., impl=...)")
        spec = parse_task_xml(source.xml)
        _check_impl(spec, source.impl)
        if spec.name in self._tasks:
            other = self._tasks[spec.name]
            raise PluginError(f"task {spec.name!r} is registered twice: by plugin {other.plugin!r} "
                              f"({other.distribution}) and by plugin {plugin!r} ({distribution})")
        if spec.name in self._casa_names and not source.override:
            raise PluginError(f"task {spec.name!r} from plugin {plugin!r} would shadow the CASA task of the "
                              "same name; rename it or register it with TaskSource(override=True)")
        if spec.name in SHELL_VERBS:
            raise PluginError(f"task {spec.name!r} from plugin {plugin!r} would shadow the casashell "
                              f"command {spec.name!r}; rename it")
        task = Task(spec, source.impl, plugin=plugin, distribution=distribution)
        self._tasks[spec.name] = task
        return task

    def get(self, name: str) -> Task:
        try:
            return self._tasks[name]
        except KeyError:
            raise KeyError(f"no almatools task named {name!r}; known tasks: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def __iter__(self):
        return iter(self._tasks[n] for n in self.names())

    def __contains__(self, name) -> bool:
        return name in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)


def _check_impl(spec, impl) -> None:
    if not callable(impl):
        raise TaskDefinitionError(spec.source, f"<task name={spec.name!r}>", f"implementation {impl!r} is not callable")
    try:
        sig = inspect.signature(impl)
    except (TypeError, ValueError):
        return
    if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    impl_names = {n for n, p in sig.parameters.items() if p.kind not in (p.VAR_POSITIONAL,)}
    xml_names = set(spec.names)
    if impl_names != xml_names:
        where = f"{getattr(impl, '__module__', '?')}.{getattr(impl, '__qualname__', impl)}"
        raise TaskDefinitionError(
            spec.source, f"<task name={spec.name!r}>",
            f"parameters differ from implementation {where}: only in XML {sorted(xml_names - impl_names)}, "
            f"only in the implementation {sorted(impl_names - xml_names)}")


_registry: TaskRegistry | None = None


def get_registry(refresh: bool = False) -> TaskRegistry:
    """The process-wide registry, built on first call (``refresh=True`` rebuilds it)."""
    global _registry
    if _registry is None or refresh:
        _registry = TaskRegistry()
    return _registry
