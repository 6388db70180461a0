"""The ``almatools`` command line.

::

    almatools tasks                      every task, with the plugin and distribution providing it
    almatools plugins                    every plugin, its distribution and its tasks
    almatools run TASK --param value …   run a task (``--help`` renders the XML help)
    almatools help TASK                  the task's help
    almatools batch TASK --inputs T.csv  one call of TASK per row of T (.csv/.ecsv/.json), resumable;
                                         --engine mpi under mpirun/mpicasa (see `almatools batch TASK --help`)
    almatools demo [--workdir DIR]       run every task on the embedded example
    almatools casa-setup                 configure CASA for offline use (site config)
    almatools casa-setup --check [--vis MS …] [--epoch TIME …]
                                         are CASA's leap-second and Earth-orientation tables
                                         current enough for these data? (effects computed)
    almatools shell-setup [--write]      the ~/.casa/startup.py line for the casa% prompt
    almatools check-xml FILE …           validate task XML files

Exit status of `almatools run`:
    0  the task finished and reported no failure
    1  the task raised an error (the message names what was wrong)
    2  bad command line or parameter value (nothing was run)
    3  the task finished but reported failures: its result has "ok": false
       or a non-empty "failed" entry (e.g. files that could not be fetched)
`almatools batch` exits the same way (3 when any input failed; the others still ran).
`almatools casa-setup --check` exits 3 when results for the data given can be
affected by out-of-date tables, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main", "reported_failures", "EXIT_OK", "EXIT_ERROR", "EXIT_USAGE", "EXIT_FAILURES"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_FAILURES = 0, 1, 2, 3

_RUN_EPILOG = """exit status: 0 the task finished and reported no failure; 1 the task raised an error;
2 bad command line or parameter value (nothing was run); 3 the task finished but
reported failures (its result has "ok": false or a non-empty "failed" entry)."""


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*["-" * w for w in widths])]
    lines += [fmt.format(*map(str, r)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def cmd_tasks(args) -> int:
    from .registry import get_registry
    rows = [[t.name, t.plugin, t.distribution, t.spec.shortdescription] for t in get_registry()]
    print(_table(rows, ["task", "plugin", "distribution", "description"]))
    return 0


def cmd_plugins(args) -> int:
    from .registry import get_registry
    reg = get_registry()
    dists = getattr(reg.pm, "almatools_distributions", {})
    rows = []
    for name, plugin in sorted(reg.pm.list_name_plugin()):
        tasks = [t.name for t in reg if t.plugin == name]
        hooks = [h.name for h in reg.pm.get_hookcallers(plugin) or []]
        rows.append([name, dists.get(name, ""), ", ".join(tasks) or "-", ", ".join(sorted(hooks))])
    print(_table(rows, ["plugin", "distribution", "tasks", "hooks"]))
    return 0


def _task_parser(task) -> argparse.ArgumentParser:
    from .task import render_doc
    parser = argparse.ArgumentParser(
        prog=f"almatools run {task.name}", description=render_doc(task.spec), epilog=_RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    for p in task.spec.params:
        parser.add_argument(f"--{p.name}", metavar=p.type.upper(), default=argparse.SUPPRESS,
                            help=f"{p.shortdescription} (default {p.default!r})")
    parser.add_argument("--json", dest="_json", metavar="FILE", default=argparse.SUPPRESS,
                        help="also write the result dictionary to FILE as JSON")
    return parser


def reported_failures(result) -> str:
    """Why a task's result counts as failed (``"ok": False``, a non-empty ``"failed"``), or ``""``."""
    if not isinstance(result, dict):
        return ""
    reasons = []
    if result.get("ok") is False:
        reasons.append('"ok": false')
    failed = result.get("failed")
    if failed:
        count = f"{len(failed)} " if hasattr(failed, "__len__") and not isinstance(failed, str) else ""
        reasons.append(f'{count}"failed"')
    return " and ".join(reasons)


def _error_text(exc: BaseException) -> str:
    """The message and the notes almatools adds (which task failed inside which), without a traceback."""
    return "\n".join([f"almatools: {exc}"] + [f"  {note}" for note in getattr(exc, "__notes__", [])])


def cmd_run(args, extra: list[str]) -> int:
    from .errors import AlmatoolsError, TaskParameterError
    from . import params
    from .registry import get_registry
    try:
        task = get_registry().get(args.task)
    except KeyError as exc:
        print(f"almatools: {exc.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    ns = vars(_task_parser(task).parse_args(extra))
    json_out = ns.pop("_json", None)
    values = {}
    for name, text in ns.items():
        spec = task.spec.param(name)
        try:
            values[name] = params.from_cli_text(spec, text)
        except ValueError as exc:
            print(f"almatools: {TaskParameterError(task.name, name, text, str(exc))}", file=sys.stderr)
            return EXIT_USAGE
    if json_out:
        from .io import check_output_file
        try:
            check_output_file(json_out)
        except AlmatoolsError as exc:
            print(f"almatools: --json {exc}", file=sys.stderr)
            return EXIT_USAGE
    _console_log()
    try:
        result = task(**values)
    except TaskParameterError as exc:
        print(_error_text(exc), file=sys.stderr)
        return EXIT_USAGE
    except (AlmatoolsError, ValueError, OSError, RuntimeError) as exc:  # errors about the input or the system
        print(_error_text(exc), file=sys.stderr)
        _say_where_the_log_is()
        return EXIT_ERROR  # anything else is a bug: its traceback is shown
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if json_out:
        from .io import atomic_write
        atomic_write(json_out, text + "\n")
    failures = reported_failures(result)
    if failures:
        print(f"almatools: {task.name} finished but reported failures ({failures}); exit status {EXIT_FAILURES}",
              file=sys.stderr)
        _say_where_the_log_is()
        return EXIT_FAILURES
    return EXIT_OK


_BATCH_OPTIONS = ("inputs", "engine", "nworkers", "ledger", "table", "no_retry_failed", "disk_budget",
                  "host_connections")


def _batch_parser(task) -> argparse.ArgumentParser:
    """`almatools batch TASK`: the batch's options, then the task's parameters as values shared by every call."""
    parser = argparse.ArgumentParser(
        prog=f"almatools batch {task.name}", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"Run {task.name} once per row of an input table (columns: {task.name}'s parameters); "
        "every row is validated before anything runs; a ledger makes the batch resumable (a rerun runs only "
        "what is not done); results go to one ECSV table and a JSON file of the per-call results.",
        epilog=_RUN_EPILOG.replace("the task finished", "the batch finished").replace(
            "its result has", "an input failed or its result has") +
        "\n\nMPI: mpirun -n N almatools batch TASK --inputs T --engine mpi   (rank 0 is the client, "
        "ranks 1..N-1 are casampi's servers)")
    b = parser.add_argument_group("batch options")
    b.add_argument("--inputs", required=True, metavar="TABLE", help="input table: .csv, .ecsv or .json")
    b.add_argument("--engine", choices=("local", "mpi"), default="local",
                   help="local: worker processes on this machine (default); mpi: casampi's servers (mpirun)")
    b.add_argument("--nworkers", type=int, metavar="N", help="local workers (default: one per core)")
    b.add_argument("--ledger", metavar="FILE", help="ledger file (default <inputs>.<task>.ledger)")
    b.add_argument("--table", metavar="FILE", help="results table, ECSV (default <inputs>.<task>.results.ecsv)")
    b.add_argument("--no-retry-failed", action="store_true", help="do not run inputs again that failed before")
    b.add_argument("--disk-budget", metavar="SIZE", help="almafetch: the most the batch may download, e.g. 500GB")
    b.add_argument("--host-connections", type=int, metavar="N",
                   help="almafetch: connections per archive host shared by all running calls")
    b.add_argument("--json", dest="_json", metavar="FILE", help="also write the batch summary as JSON")
    t = parser.add_argument_group(f"{task.name} parameters shared by every call (a column of the table wins)")
    for p in task.spec.params:
        if p.name in _BATCH_OPTIONS or p.name == "json":
            continue  # such a parameter can still be given in the input table
        t.add_argument(f"--{p.name}", metavar=p.type.upper(), default=argparse.SUPPRESS,
                       help=f"{p.shortdescription} (default {p.default!r})")
    return parser


def cmd_batch(args, extra: list[str]) -> int:
    """`almatools batch TASK --inputs T …` (under mpirun with --engine mpi, servers never return from here)."""
    from .errors import AlmatoolsError, TaskParameterError
    from . import params
    from .registry import get_registry
    try:
        task = get_registry().get(args.task)
    except KeyError as exc:
        print(f"almatools: {exc.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    ns = vars(_batch_parser(task).parse_args(extra))
    options = {name: ns.pop(name) for name in _BATCH_OPTIONS}
    json_out = ns.pop("_json")
    shared = {}
    for name, text in ns.items():
        try:
            shared[name] = params.from_cli_text(task.spec.param(name), text)
        except ValueError as exc:
            print(f"almatools: {TaskParameterError(task.name, name, text, str(exc))}", file=sys.stderr)
            return EXIT_USAGE
    _console_log()
    from .batch import batch
    try:
        summary = batch(task, options["inputs"], shared=shared, engine=options["engine"],
                        nworkers=options["nworkers"], ledger=options["ledger"], outtable=options["table"],
                        retry_failed=not options["no_retry_failed"], disk_budget=options["disk_budget"],
                        host_connections=options["host_connections"])
    except TaskParameterError as exc:
        print(_error_text(exc), file=sys.stderr)
        return EXIT_USAGE
    except (AlmatoolsError, ValueError, OSError, RuntimeError) as exc:
        print(_error_text(exc), file=sys.stderr)
        return EXIT_ERROR
    brief = {k: v for k, v in summary.items() if k != "results"}
    print(json.dumps(brief, indent=2, default=str))
    if json_out:
        from .io import atomic_write
        atomic_write(json_out, json.dumps(summary, indent=2, default=str) + "\n")
    if summary["failed"]:
        for f in summary["failed"]:
            print(f"almatools: {f['where']}: {f['error']}", file=sys.stderr)
        print(f"almatools: batch of {task.name}: {len(summary['failed'])} of {summary['ninputs']} input(s) failed "
              f"(see {summary['ledger']}); exit status {EXIT_FAILURES}", file=sys.stderr)
        return EXIT_FAILURES
    return EXIT_OK


def _say_where_the_log_is() -> None:
    from . import log
    where = log.logfile()
    if where:
        print(f"almatools: the CASA log is {where}", file=sys.stderr)


def _console_log() -> None:
    """On the command line, show the CASA log on the terminal too."""
    from . import log
    cl = log.casalog()
    if cl is not None:
        cl.showconsole(True)
    else:
        import logging
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def cmd_help(args) -> int:
    from .registry import get_registry
    try:
        task = get_registry().get(args.task)
    except KeyError as exc:
        print(f"almatools: {exc.args[0]}", file=sys.stderr)
        return 2
    _task_parser(task).print_help()
    return 0


def cmd_casa_setup(args) -> int:
    from . import casaenv
    from .errors import AlmatoolsError
    if args.check:
        return _casa_check(args)
    if args.print:
        print(casaenv.site_config_text(measurespath=args.measurespath), end="")
        return 0
    try:
        path, what = casaenv.write_site_config(args.path, force=args.force, measurespath=args.measurespath)
    except AlmatoolsError as exc:
        print(f"almatools: {exc}", file=sys.stderr)
        return 1
    print(f"CASA site config {what}: {path}")
    user = Path("~/.casa/config.py").expanduser()
    if user.exists():
        print(f"note: your {user} is read after it and may override these settings (it was not changed)")
    return 0


def _casa_check(args) -> int:
    """``casa-setup --check``: the measures tables against the data given (see :mod:`almatools.freshness`)."""
    from . import freshness
    from .errors import AlmatoolsError
    try:
        report = freshness.check(vis=args.vis or (), epochs=args.epoch or (),
                                 freqs_hz=[args.freq * 1e9] if args.freq else (), measurespath=args.measurespath)
    except (AlmatoolsError, ValueError, RuntimeError) as exc:
        print(f"almatools: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(freshness.format_report(report))
    from . import log
    if log.logfile():
        print(f"\nCASA log of this process: {log.logfile()}")
    if args.json:
        from .io import atomic_write
        atomic_write(args.json, json.dumps(report, indent=2, default=str) + "\n")
    return EXIT_FAILURES if report["affected"] else EXIT_OK


def _startup_path(arg: str | None) -> Path:
    return Path(arg or "~/.casa/startup.py").expanduser()


def cmd_shell(args) -> int:
    from almatools.casa_tasks.shell import STARTUP_LINE
    target = _startup_path(args.startupfile)
    if not args.write:
        print(STARTUP_LINE)
        print(f"# add this line to {target} (or run: almatools shell-setup --write)", file=sys.stderr)
        return 0
    text = target.read_text() if target.exists() else ""
    if STARTUP_LINE in text.splitlines():
        print(f"{target}: already set up")
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    if text and not text.endswith("\n"):
        text += "\n"
    from .io import atomic_write
    atomic_write(target, text + "# almatools tasks at the casa% prompt\n" + STARTUP_LINE + "\n")
    print(f"{target}: added the almatools line")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo
    ctx = run_demo(args.workdir, only=args.only)
    failures = ctx.data.get("failures", [])
    if failures:
        print(f"\ndemo finished with failing steps: {', '.join(failures)}")
        return 1
    print(f"\ndemo finished; outputs in {ctx.workdir}")
    return 0


def cmd_check_xml(args) -> int:
    from .errors import TaskDefinitionError
    from .taskxml import parse_task_xml
    status = 0
    for f in args.files:
        try:
            spec = parse_task_xml(f)
        except TaskDefinitionError as exc:
            print(f"FAIL {exc}")
            status = 1
        else:
            print(f"ok   {f}: task {spec.name} ({len(spec.params)} parameters)")
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="almatools", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("tasks", help="list every registered task").set_defaults(func=cmd_tasks)
    sub.add_parser("plugins", help="list every plugin").set_defaults(func=cmd_plugins)
    run = sub.add_parser("run", help="run a task: almatools run TASK --param value ...", add_help=False)
    run.add_argument("task")
    run.set_defaults(func=lambda args: cmd_run(args, []))
    bt = sub.add_parser("batch", help="run a task once per row of an input table: almatools batch TASK --inputs "
                        "T.csv ...", add_help=False)
    bt.add_argument("task")
    bt.set_defaults(func=lambda args: cmd_batch(args, []))
    h = sub.add_parser("help", help="show a task's help")
    h.add_argument("task")
    h.set_defaults(func=cmd_help)
    demo = sub.add_parser("demo", help="run every task on the embedded example")
    demo.add_argument("--workdir", default="almatools-demo", help="working directory (default ./almatools-demo)")
    demo.add_argument("--only", nargs="*", help="run only these demo steps")
    demo.set_defaults(func=cmd_demo)
    cs = sub.add_parser("casa-setup", help="configure CASA to start offline from the casadata package; "
                        "--check: are its measures tables current enough for your data?",
                        epilog="--check exits 3 when results for the data given can be affected by out-of-date "
                        "tables, 0 otherwise, 2 on bad arguments.")
    cs.add_argument("--path", help="write the site config here (default: this environment's site-packages)")
    cs.add_argument("--force", action="store_true", help="replace a site config almatools did not write (keeps .bak)")
    cs.add_argument("--print", action="store_true", help="print the config instead of writing it")
    cs.add_argument("--measurespath", metavar="DIR",
                    help="measures tables from DIR (kept current with `python -m casaconfig --measurespath DIR "
                    "--measures-update`) instead of casadata's; with --check: check the tables in DIR")
    cs.add_argument("--check", action="store_true",
                    help="report the age and coverage of the leap-second and Earth-orientation tables against "
                    "the dates of the data given, whether results can be affected, by how much, and how to update")
    cs.add_argument("--vis", nargs="+", metavar="MS", help="with --check: MeasurementSets whose dates to check")
    cs.add_argument("--epoch", nargs="+", metavar="TIME",
                    help="with --check: observation times (YYYY/MM/DD/hh:mm:ss, ISO, MJD; 'start~stop')")
    cs.add_argument("--freq", type=float, metavar="GHZ",
                    help="with --check --epoch: the frequency the results concern (default 950 GHz, a bound)")
    cs.add_argument("--json", metavar="FILE", help="with --check: also write the report as JSON")
    cs.set_defaults(func=cmd_casa_setup)
    ss = sub.add_parser("shell-setup", help="put almatools tasks at the casa%% prompt")
    ss.add_argument("--write", action="store_true", help="append the line to the startup file (idempotent)")
    ss.add_argument("--startupfile", help="startup file (default ~/.casa/startup.py)")
    ss.set_defaults(func=cmd_shell)
    cx = sub.add_parser("check-xml", help="validate task XML files")
    cx.add_argument("files", nargs="+")
    cx.set_defaults(func=cmd_check_xml)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # `run TASK ...`: everything after the task name belongs to the task's own parser
    if len(argv) >= 2 and argv[0] in ("run", "batch"):
        args = parser.parse_args(argv[:2])
        return (cmd_run if argv[0] == "run" else cmd_batch)(args, argv[2:])
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
