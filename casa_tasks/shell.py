"""The casashell face: every almatools task at the ``casa%`` prompt.

One line in ``~/.casa/startup.py`` (``almatools shell-setup --write`` adds it)::

    import almatools.casa_tasks.shell as _almatools_shell; _almatools_shell.install(globals())

casashell runs that file in the prompt's namespace, so ``globals()`` *is* the
prompt.  :func:`install` binds one :class:`ShellTask` per registered task.
A ShellTask satisfies casashell's duck-typed protocol (``inp``, ``go``,
``default``, ``tget``, ``tput``/``saveinputs``) with one generic class — no
generated per-task code — and ends in the same :class:`almatools.task.Task`
call as modular Python, so validation and logging exist once.

Global-parameter style works as in CASA: ``vis = 'x.ms'`` then ``go mytask``
(or ``mytask()``) takes values from the prompt's namespace; a call with any
argument ignores the namespace, like CASA's own tasks.  Scripts (``execfile``
or plain Python) pass explicit arguments.
"""

from __future__ import annotations

import sys
from pathlib import Path

from almatools import limits
from almatools.errors import InputFileError, TaskParameterError
from almatools.io import atomic_write
from almatools.params import literal

__all__ = ["ShellTask", "install", "STARTUP_LINE"]

STARTUP_LINE = "import almatools.casa_tasks.shell as _almatools_shell; _almatools_shell.install(globals())"

_BLUE, _RED, _RESET = "\x1b[34m", "\x1b[31m", "\x1b[0m"


class ShellTask:
    """A task bound to a prompt namespace *ns* (a dict, e.g. ``globals()``)."""

    def __init__(self, task, ns: dict):
        self._task = task
        self._ns = ns
        self.__name__ = task.name
        self.__doc__ = task.__doc__
        self.__signature__ = task.__signature__
        self._info_group_ = task._info_group_
        self._info_desc_ = task._info_desc_

    def __repr__(self) -> str:
        return f"<almatools task {self._task.name} at the casa prompt; inp({self._task.name}) shows its inputs>"

    @property
    def task(self):
        return self._task

    # ----------------------------------------------------------------- values
    def _given_by_prompt(self) -> dict:
        """Parameter values the user set as prompt globals (active parameters only)."""
        spec = self._task.spec
        given = {p.name: self._ns[p.name] for p in spec.params if not p.subparam and p.name in self._ns}
        # subparameters count only where the constraints make them visible
        partial = {**{p.name: p.default for p in spec.params if not p.subparam}, **given}
        for p in spec.params:
            if p.subparam and p.name in self._ns and self._task.active(p, partial):
                given[p.name] = self._ns[p.name]
        return given

    def _current(self) -> tuple[dict, dict]:
        """(values as they would be used, name → error message for invalid ones)."""
        given = self._given_by_prompt()
        values, errors = {}, {}
        for p in [q for q in self._task.spec.params if not q.subparam] + \
                 [q for q in self._task.spec.params if q.subparam]:
            if p.name in given:
                try:  # the value as the task will see it (coerced, canonical enum spelling)
                    values[p.name] = self._task.check(p.name, given[p.name])
                except TaskParameterError as exc:
                    values[p.name] = given[p.name]
                    errors[p.name] = exc.rule
            else:
                values[p.name] = self._task.default_for(p, values)
        return {n: values[n] for n in self._task.spec.names}, errors

    # ----------------------------------------------------------------- the protocol
    def __call__(self, *args, **kwargs):
        if args or kwargs:
            return self._task(*args, **kwargs)
        values = self._task.resolve(self._given_by_prompt())
        self.tput(values=values)
        return self._task.run(values)

    def inp(self, color: bool | None = None) -> None:
        """Print the inputs: ``name = value # description``; blue = not the default, red = invalid."""
        print(self.inp_text(color=color))

    def inp_text(self, color: bool | None = None) -> str:
        if color is None:
            color = bool(getattr(sys.stdout, "isatty", lambda: False)())
        values, errors = self._current()
        spec = self._task.spec
        lines = [f"# {spec.name} :: {spec.shortdescription}"]
        for p in spec.params:
            if not self._task.active(p, values):
                continue
            label = ("     " + p.name) if p.subparam else p.name
            shown = repr(values[p.name])
            default = self._task.default_for(p, values)
            if color and p.name in errors:
                shown_c = _RED + shown + _RESET
            elif color and values[p.name] != default:
                shown_c = _BLUE + shown + _RESET
            else:
                shown_c = shown
            pad = " " * max(0, 20 - len(shown))
            note = f"  !! {errors[p.name]}" if p.name in errors else ""
            lines.append(f"{label:<20}= {shown_c}{pad} # {p.shortdescription}{note}")
        return "\n".join(lines)

    def set_global_defaults(self) -> None:
        """``default(task)``: forget the prompt values of this task's parameters."""
        for name in self._task.spec.names:
            self._ns.pop(name, None)

    def tput(self, outfile: str | None = None, values: dict | None = None) -> str:
        """Write the current inputs to ``<task>.last`` (or *outfile*) in CASA's format.

        *outfile* must name a file: an existing directory is refused
        (:class:`~almatools.errors.OutputPathError`); the file is replaced atomically.
        """
        if values is None:
            values, _ = self._current()
        name = self._task.name
        target = Path(outfile or f"{name}.last")
        width = max((len(k) for k in values), default=0)
        body = [f"{k:<{width}} = {v!r}" for k, v in values.items()]
        body.append(f"#{name}( " + ",".join(f"{k}={v!r}" for k, v in values.items()) + " )")
        atomic_write(target, "\n".join(body) + "\n")
        return str(target)

    saveinputs = tput

    def tget(self, savefile: str | None = None) -> None:
        """Set the prompt values from ``<task>.last`` (or *savefile*, or ``<task>.saved``)."""
        name = self._task.name
        candidates = [savefile] if savefile else [f"{name}.last", f"{name}.saved"]
        for candidate in candidates:
            if candidate and Path(candidate).is_file():
                self._ns.update(read_inputs_file(candidate, self._task.spec.names))
                return
        raise FileNotFoundError(f"{name}: no saved inputs found (looked for {', '.join(map(str, candidates))})")


#: a .last file holds one line per parameter; anything larger is not one
MAX_INPUTS_FILE = 4 * limits.MiB


def read_inputs_file(path, names) -> dict:
    """Read the ``name = literal`` lines of a ``.last``/``.saved`` file for the parameters *names*.

    Nothing in the file is executed: each value is read with
    ``ast.literal_eval``.  Comment and blank lines are skipped, assignments to
    names that are not parameters are ignored (CASA writes some).  Any other
    content — binary data, text that is not UTF-8, a line that is not an
    assignment, a value that is not a literal, a file larger than
    :data:`MAX_INPUTS_FILE`, a FIFO or device — raises
    :class:`~almatools.errors.InputFileError` (a ``ValueError``) naming the file
    and the line.  Time is linear in the file's size.
    """
    text = limits.read_text(path, MAX_INPUTS_FILE)
    if "\x00" in text:
        raise InputFileError(path, "is not a task inputs file (it holds NUL bytes: binary data)")
    wanted = set(names)
    values = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, equals, value = stripped.partition("=")
        key = key.strip()
        if not equals or not key.isidentifier():
            raise InputFileError(path, f"not a task inputs file: expected 'name = value', got "
                                 f"{_shorten(stripped)!r}", lineno)
        if key not in wanted:
            continue
        try:
            values[key] = literal(value.strip())
        except ValueError:
            raise InputFileError(path, f"value of {key!r} is not a literal: {_shorten(value.strip())!r}",
                                 lineno) from None
    return values


def _shorten(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width] + "…"


def install(ns: dict, registry=None) -> list[str]:
    """Bind every registered task into the prompt namespace *ns*, and ``batch`` (:func:`almatools.batch`).

    At the prompt ``batch(wtcheck, 'inputs.csv')`` runs the task once per row
    (under ``mpicasa``, ``engine='mpi'`` uses casampi's servers).  A name already bound to something that is not an almatools task is left
    alone (and reported).  Also lists the tasks in casashell's
    ``tasks``/``taskhelp`` through ``casashell.extra_task_modules``.

    :return: the names installed.
    """
    if registry is None:
        from almatools.registry import get_registry
        registry = get_registry()
    installed = []
    for task in registry:
        existing = ns.get(task.name)
        if existing is not None and not isinstance(existing, ShellTask):
            print(f"almatools: not installing task {task.name!r}: the name is already used at the prompt "
                  f"({type(existing).__name__})", file=sys.stderr)
            continue
        ns[task.name] = ShellTask(task, ns)
        installed.append(task.name)
    from almatools.batch import batch
    if ns.get("batch") in (None, batch):
        ns["batch"] = batch
    else:
        print(f"almatools: not installing 'batch': the name is already used at the prompt "
              f"({type(ns['batch']).__name__}); use almatools.batch", file=sys.stderr)
    try:
        import casashell
        import almatools.casa_tasks as modular
    except ImportError:
        pass
    else:
        if modular not in casashell.extra_task_modules:
            casashell.extra_task_modules.append(modular)
    return installed
