"""almatools-plugin-template: one task, ``almauid``, registered with one hook.

Copy this folder to start a plugin: rename the package, the entry point in
``pyproject.toml``, the XML and the implementation; keep the shape.
"""

from pathlib import Path

from almatools import TaskSource, hookimpl

from .task_almauid import almauid


@hookimpl
def almatools_register_tasks():
    return [TaskSource(xml=Path(__file__).with_name("almauid.xml"), impl=almauid)]
