"""The built-in almatools plugins, one package per capability.

Each registers its tasks with one ``@hookimpl almatools_register_tasks`` and is
declared as an entry point of the ``almatools`` distribution, exactly as a
third-party plugin is (see ``plugins/README.md`` and ``plugins/template/``).
"""
