"""Every registered almatools task, importable like CASA's own.

>>> from almatools.casa_tasks import calversion
>>> calversion(mous='2019.1.00001.S/science_goal.uid___A001_X1_X1/group.uid___A001_X1_X2/member.uid___A001_X1_X3')

The names are looked up in the task registry on first access (module
``__getattr__``), so importing this module loads no plugin and starts no
CASA tool.  ``batch`` (:func:`almatools.batch`) runs any of them once per
row of an input table.  ``dir()`` and tab completion list every task; casashell's
``tasks``/``taskhelp`` list them under "Extra tasks" once
:func:`almatools.casa_tasks.shell.install` has run.
"""


_SUBMODULES = {"shell"}


def __getattr__(name: str):
    if name in _SUBMODULES:  # `from almatools.casa_tasks import shell` must not build the registry
        import importlib
        return importlib.import_module(f"{__name__}.{name}")
    if name == "batch":  # the batch engine, beside the tasks it runs (not a task itself)
        from almatools.batch import batch
        return batch
    if name.startswith("__"):
        if name == "__all__":
            from almatools.registry import get_registry
            return get_registry().names()
        raise AttributeError(name)
    from almatools.registry import get_registry
    registry = get_registry()
    if name in registry:
        return registry.get(name)
    raise AttributeError(f"module 'almatools.casa_tasks' has no task {name!r}; "
                         f"registered tasks: {', '.join(registry.names())}")


def __dir__():
    from almatools.registry import get_registry
    return sorted(set(globals()) | set(get_registry().names()) | {"batch"})
