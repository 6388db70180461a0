"""almatools — CASA tasks for mining the ALMA Science Archive, as pluggy plugins.

The public API for plugin authors::

    from almatools import hookimpl, TaskSource

    @hookimpl
    def almatools_register_tasks():
        return [TaskSource(xml=Path(__file__).with_name("mytask.xml"), impl=mytask)]

Users call tasks from :mod:`almatools.casa_tasks` (modular, like ``casatasks``),
at the ``casa%`` prompt (``almatools shell-setup --write``), or from the shell
(``almatools run <task> --param value``); many calls of one task at once with
:func:`almatools.batch` (``almatools batch <task> --inputs table.csv``).  Importing this package loads no
plugin, starts no CASA tool and writes no file.
"""

from .errors import (AlmatoolsError, AlmatoolsWarning, CasaSetupError, PluginError,
                     TaskDefinitionError, TaskParameterError)
from .registry import TaskRegistry, TaskSource, builtin_xml, get_registry, hookimpl, make_plugin_manager
from .demo import DemoContext, DemoStep
from .batch import batch  # the function; its modules: from almatools.batch import ledger, mms, …

__version__ = "0.1.0"

__all__ = [
    "hookimpl", "TaskSource", "batch", "TaskRegistry", "DemoStep", "DemoContext", "builtin_xml", "get_registry",
    "make_plugin_manager", "AlmatoolsError", "AlmatoolsWarning", "CasaSetupError", "PluginError",
    "TaskDefinitionError", "TaskParameterError", "__version__",
]
