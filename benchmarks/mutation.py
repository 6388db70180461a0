"""Mutation testing of the computational modules:  python benchmarks/mutation.py [MODULE ...]

Runs cosmic-ray (``pip install -e ".[mutation]"``) over each named module (default: every module
in :data:`MODULES`; ``--list`` shows them) and records the figures in
``benchmarks/mutation-results.json``, from which ``benchmarks/mutation-report.md`` is rewritten.
A mutant is *killed* when the module's tests fail (or time out) with it applied; a surviving
mutant is either a test gap to close or, once a person has read it, *equivalent* (no input can
tell it from the original) or *accepted* (a gap judged not worth closing), each with its reason
in ``benchmarks/mutation-equivalents.toml``; a gap closed after the run by a new test is judged
*killed*, naming that test, which ``--check-killed`` runs with the mutant applied.  The score is
killed / (mutants - equivalent); the target is >= 90 % in each module.

Why it is shaped like this:

* The checkout is never touched.  Mutants are written into a scratch copy of the working tree
  (tracked and untracked, not ignored files), imported through a throwaway virtual environment
  that reuses this one's packages and maps ``almatools.*`` onto the copy, like the editable
  install does onto the checkout.  A developer can go on editing and testing while a run goes.
* Each mutant runs only the tests that exercise it.  The module's test files (``MODULES``) run
  once unmutated under coverage with one context per test; a mutant then first runs, with
  ``-x`` and fastest first, the tests that executed the changed lines, and only if they all
  pass every other test of those files that ran any line of the module or started a process
  (code run in subprocesses is invisible to coverage).  A test that does neither cannot meet
  a mutant of code that runs when called; a mutant of a line run only at import (a definition,
  a default, a constant) runs the full test files, since a test can see it without running a
  line of the module (a dataclass's generated methods, a constant it reads).
* A test taking PER_TEST_FACTOR times its unmutated duration (at least PER_TEST_FLOOR seconds)
  fails as timed out, like a run over its time-out: a mutant that makes a transfer wait out its
  retries costs seconds, not the minutes of the whole run's time-out.
* A mutant that changes only annotations never evaluated (``from __future__ import annotations``)
  is not tested: it survives any test that does not read annotations, and running the full test
  files for each (``int | None`` → ``int & None``) would cost minutes apiece.  It is recorded as
  surviving, to be judged like any survivor.
* The operator set is mutmut-like: one replacement per operator (``+``→``-``, ``<``→``<=`` …),
  boolean, number (n±1), loop, ``not``, break/continue and exception-handler mutations;
  cosmic-ray's arbitrary variable replacement/insertion and decorator removal are left out.
* Two cores are shared: a run's mutants go one at a time (``--part`` splits a module over the cores); a
  module takes minutes to hours.
  Interrupted (Ctrl-C), a run records what it has done so far as a *partial* figure, which the
  report shows as such (so many of so many mutants run); ``--record WORK`` does the same for a
  run going on in another process (its scratch ``work/<module>`` directory).  Both also keep the
  outcomes in ``benchmarks/mutation-progress/<module>.json``; the module's next run carries them
  over and runs only the mutants left, as long as the module's source is byte-identical (its
  SHA-256 is kept), so a module whose run takes longer than a sitting (archive.download) is
  completed over several.  ``--part K/N`` runs only the k-th of n shares of the mutants left (by a
  hash of each mutant's name): n parts started at once use n cores, each merges its outcomes into
  the kept file (under a lock), and the last to finish records the whole figure.  The carried
  outcomes were measured with the tests of their own commit (every sitting's commit is in the
  record; its minutes are the sittings' added up); tests added since can only kill more, so a
  carried survivor is at worst one a later test would kill.  A complete run removes the file.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "mutation-results.json"
REPORT = ROOT / "benchmarks" / "mutation-report.md"
EQUIVALENTS = ROOT / "benchmarks" / "mutation-equivalents.toml"
#: an interrupted run's outcomes, one file per module, carried into the module's next run
PROGRESS = ROOT / "benchmarks" / "mutation-progress"
TARGET = 0.90
#: address-space bound of each test run in the test server: a mutant that appends in an endless
#: loop fails with MemoryError in seconds instead of taking the shared machine's memory
MEMORY_LIMIT = 4 * 2**30
#: a test running this many times longer than it did unmutated (and at least PER_TEST_FLOOR seconds)
#: is stopped and fails: a mutant that makes a download wait out its retries is killed in seconds,
#: not at the whole run's time-out (4 x the baseline run, minutes)
PER_TEST_FACTOR, PER_TEST_FLOOR = 5.0, 20.0

#: module name -> (source file, the test files that exercise it).  Test files, not test names: a
#: mutant's relevant tests inside them are found by coverage at run time.
MODULES: dict[str, tuple[str, list[str]]] = {
    # calscripts: calunflag and calversion
    "calunflag.scan": ("plugins/calunflag/scan.py", ["tests/test_calunflag_scan.py", "tests/test_calunflag.py"]),
    "calunflag.edit": ("plugins/calunflag/edit.py", ["tests/test_calunflag_edit.py", "tests/test_calunflag.py"]),
    "calunflag.roles": ("plugins/calunflag/roles.py", ["tests/test_calunflag_roles.py", "tests/test_calunflag.py"]),
    "calunflag.ppr": ("plugins/calunflag/ppr.py", ["tests/test_calunflag.py"]),
    "calversion.sources": ("plugins/calversion/sources.py", ["tests/test_calversion.py"]),
    # query: the ADQL builder and almaquery's grammar
    # adql: the builder's own tests (an independent ADQL evaluator) and the grammar's; test_almaquery.py's
    # searches of the local TAP server take ten minutes a run, so a surviving mutant would cost that much
    # (leaving them out can only lower the score)
    "archive.adql": ("plugins/archive/adql.py", ["tests/test_almaquery_adql.py", "tests/test_almaquery_grammar.py"]),
    # grammar: its own rules at their edges and the builder's tests (every line of it runs there); not
    # test_almaquery.py, for the same ten minutes a surviving mutant
    "archive.grammar": ("plugins/archive/grammar.py", ["tests/test_almaquery_grammar.py", "tests/test_almaquery_adql.py"]),
    # fetch: download, unpack, server names, credentials, integrity
    # download: its loopback unit tests first; test_almafetch.py's end-to-end runs would start the archive
    # emulator's servers for every surviving mutant (30 s each), and leaving tests out can only lower the score
    "archive.download": ("plugins/archive/download.py",
                         ["tests/test_almafetch_download.py", "tests/test_almafetch_transfer.py",
                          "tests/test_almafetch_servers.py"]),
    # unpack: its own tests only; test_almafetch.py's end-to-end runs would start the archive emulator's
    # servers for every mutant (30 s each), and leaving tests out can only lower the score
    "archive.unpack": ("plugins/archive/unpack.py",
                       ["tests/test_almafetch_unpack_edges.py", "tests/test_almafetch_unpack.py"]),
    # names, credentials, integrity: their own tests and the loopback-server ones; not test_almafetch.py (as unpack)
    "archive.names": ("plugins/archive/names.py", ["tests/test_almafetch_names.py", "tests/test_almafetch_servers.py"]),
    "archive.credentials": ("plugins/archive/credentials.py",
                            ["tests/test_almafetch_names.py", "tests/test_almafetch_servers.py"]),
    "archive.integrity": ("plugins/archive/integrity.py",
                          ["tests/test_almafetch_integrity.py", "tests/test_almafetch_transfer.py"]),
    # core: the registry
    "core.registry": ("almatools/registry.py", ["tests/core/test_registry_edges.py", "tests/core/test_registry.py",
                                                  "tests/test_plugin_template.py"]),
    # calflux: estimates, and the delivery readers it shares
    "calflux.estimate": ("plugins/calflux/estimate.py", ["tests/test_calflux.py"]),
    "delivery.fluxcsv": ("almatools/delivery/fluxcsv.py", ["tests/test_delivery.py", "tests/test_calflux.py"]),
    "delivery.fluxscale": ("almatools/delivery/fluxscale.py", ["tests/test_delivery.py", "tests/test_calflux.py"]),
    "delivery.listobs": ("almatools/delivery/listobs.py", ["tests/test_delivery.py", "tests/test_calflux.py"]),
    "delivery.scripts": ("almatools/delivery/scripts.py", ["tests/test_delivery.py", "tests/test_calflux.py"]),
    "delivery.aqua": ("almatools/delivery/aqua.py", ["tests/test_delivery.py"]),
    # weights and frames
    "frames.convert": ("plugins/frames/convert.py", ["tests/test_frameconv_convert.py", "tests/test_frameconv.py"]),
    "frames.contdat": ("plugins/frames/contdat.py", ["tests/test_contdat.py", "tests/test_frameconv.py"]),
    "frames.selection": ("plugins/frames/selection.py", ["tests/test_frameconv_selection.py", "tests/test_frameconv.py",
                                                         "tests/test_contdat.py"]),
    "frames.chansel": ("plugins/frames/chansel.py", ["tests/test_chansel.py", "tests/test_frameconv.py", "tests/test_contdat.py"]),
    "weights.stats": ("plugins/weights/stats.py", ["tests/test_wtcheck_stats.py", "tests/test_wtcheck.py"]),
    "weights.fix": ("plugins/weights/fix.py", ["tests/test_wtcheck_fix.py", "tests/test_wtcheck.py"]),
    # brightness and models
    "brightness.conversion": ("plugins/brightness/conversion.py", ["tests/test_tbconv.py"]),
    "brightness.images": ("plugins/brightness/images.py", ["tests/test_tbconv_images.py", "tests/test_tbconv.py"]),
    "models.components": ("plugins/models/components.py", ["tests/test_cl2image_components.py", "tests/test_cl2image.py"]),
    "models.grid": ("plugins/models/grid.py", ["tests/test_cl2image_grid.py", "tests/test_cl2image.py"]),
}

#: cosmic-ray operators kept (everything else is filtered out before the run): one replacement
#: per binary and comparison operator, as mutmut does, plus the structural mutations that model
#: real slips (a negation lost or added, a constant off by one, a loop never entered, a handler
#: that no longer catches).
KEPT_OPERATORS = {
    *(f"core/ReplaceBinaryOperator_{a}_{b}" for a, b in [
        ("Add", "Sub"), ("Sub", "Add"), ("Mul", "Div"), ("Div", "Mul"), ("FloorDiv", "Div"),
        ("Mod", "FloorDiv"), ("Pow", "Mul"), ("BitOr", "BitAnd"), ("BitAnd", "BitOr"),
        ("BitXor", "BitOr"), ("LShift", "RShift"), ("RShift", "LShift")]),
    *(f"core/ReplaceComparisonOperator_{a}_{b}" for a, b in [
        ("Eq", "NotEq"), ("NotEq", "Eq"), ("Lt", "LtE"), ("LtE", "Lt"), ("Gt", "GtE"), ("GtE", "Gt"),
        ("Is", "IsNot"), ("IsNot", "Is")]),  # cosmic-ray has no in/not-in replacement
    "core/ReplaceUnaryOperator_USub_UAdd", "core/ReplaceUnaryOperator_Delete_Not",
    "core/ReplaceUnaryOperator_Delete_USub", "core/ReplaceUnaryOperator_Delete_Invert",
    "core/AddNot", "core/ReplaceTrueWithFalse", "core/ReplaceFalseWithTrue", "core/ReplaceAndWithOr",
    "core/ReplaceOrWithAnd", "core/ReplaceBreakWithContinue", "core/ReplaceContinueWithBreak",
    "core/NumberReplacer", "core/ZeroIterationForLoop", "core/ExceptionReplacer",
}

#: pytest options of every run: no cache written into the copy, quiet, the CI hypothesis profile
PYTEST = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-W", "ignore"]

# --------------------------------------------------------------------------------------------------
# the scratch copy and its virtual environment

_FINDER = '''\
"""Maps almatools.* onto the scratch copy, as the editable install maps it onto the checkout."""
import sys
from importlib.machinery import ModuleSpec, PathFinder
from importlib.util import spec_from_file_location

MAPPING = {mapping!r}


class _MutationFinder:
    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname in MAPPING:
            folder = MAPPING[fullname]
            init = folder + "/__init__.py"
            try:
                open(init).close()
            except OSError:  # a folder without __init__.py (xml/): a namespace package
                spec = ModuleSpec(fullname, None, is_package=True)
                spec.submodule_search_locations = [folder]
                return spec
            return spec_from_file_location(fullname, init, submodule_search_locations=[folder])
        parent = fullname.rpartition(".")[0]
        if parent in MAPPING:
            return PathFinder.find_spec(fullname, [MAPPING[parent]])
        return None


sys.meta_path.insert(0, _MutationFinder)
'''


def package_dirs() -> dict[str, str]:
    """``almatools.*`` import name -> folder, from pyproject's ``[tool.setuptools] package-dir``."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return dict(pyproject["tool"]["setuptools"]["package-dir"])


def make_scratch(base: Path) -> tuple[Path, Path]:
    """Copy the working tree into ``base/src`` and make ``base/venv`` import almatools from it.

    The venv has no packages of its own: a ``.pth`` line puts this environment's site-packages
    behind its own (so CASA, pytest … are reused, without the checkout's editable finder, whose
    ``.pth`` is not processed there), and a finder installed first maps ``almatools.*`` onto the
    copy.  Returns (copy, python of the venv).
    """
    src = base / "src"
    files = subprocess.run(["git", "ls-files", "-z", "-c", "-o", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        origin = ROOT / name
        if origin.is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, src / name)
    venv = base / "venv"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(venv)],
                   check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    mapping = {name: str(src / folder) for name, folder in package_dirs().items()}
    (site / "_almatools_mutation_finder.py").write_text(_FINDER.format(mapping=mapping))
    (site / "_almatools_mutation.pth").write_text(
        "import _almatools_mutation_finder\n" + sysconfig.get_paths()["purelib"] + "\n")
    check = subprocess.run([str(python), "-c", "import almatools.plugins, casatools; print(almatools.plugins.__file__)"],
                           capture_output=True, text=True, cwd=base)
    if check.returncode or not check.stdout.strip().startswith(str(src)):
        raise SystemExit(f"mutation: the scratch environment does not import the copy:\n{check.stdout}{check.stderr}")
    return src, python


# --------------------------------------------------------------------------------------------------
# which tests run which lines

_CONTEXT_PLUGIN = '''\
"""pytest plugin: one coverage context per test, so each line knows the tests that ran it."""
import json
import os
import subprocess
import sys
import coverage
import pytest

_cov = coverage.Coverage(data_file=os.environ["MUTATION_COVERAGE"], include=[os.environ["MUTATION_SOURCE"]])
_durations = {}
# tests that start processes (subprocess, multiprocessing, os.fork): coverage does not see into them,
# so such a test may run the module without showing it
_spawners = set()
_current = [""]
_popen_init = subprocess.Popen.__init__
_fork = os.fork


def _noting_popen_init(self, *args, **kwargs):
    _spawners.add(_current[0])
    return _popen_init(self, *args, **kwargs)


def _noting_fork():
    _spawners.add(_current[0])
    return _fork()


subprocess.Popen.__init__ = _noting_popen_init
os.fork = _noting_fork


def pytest_configure(config):
    _cov.start()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _cov.switch_context(item.nodeid)
    _current[0] = item.nodeid
    yield
    _current[0] = ""
    _cov.switch_context("")


def pytest_runtest_logreport(report):
    _durations[report.nodeid] = _durations.get(report.nodeid, 0.0) + report.duration


def pytest_unconfigure(config):
    _cov.stop()
    _cov.save()
    with open(os.environ["MUTATION_DURATIONS"], "w") as fh:
        json.dump(_durations, fh)
    with open(os.environ["MUTATION_SPAWNERS"], "w") as fh:
        json.dump(sorted(_spawners), fh)
    # what the tests imported outside almatools and the tests themselves: the test server imports it once
    root = str(config.rootpath)
    outside = [m for m, mod in list(sys.modules.items())
               if not (getattr(mod, "__file__", None) or "").startswith(root)
               and not m.startswith(("almatools", "conftest", "mutation_", "coverage", "__main__"))]
    with open(os.environ["MUTATION_IMPORTS"], "w") as fh:
        json.dump(outside, fh)
'''


def covering_tests(src: Path, python: Path, work: Path, module: str) -> tuple[dict[int, list[str]], dict, float]:
    """Run the module's test files once, unmutated: line -> test ids that ran it, each test's
    duration, and the run's duration.

    Exits when the tests fail without a mutant (a run on a red baseline says nothing).
    """
    source, tests = MODULES[module]
    (work / "mutation_contexts.py").write_text(_CONTEXT_PLUGIN)
    env = dict(os.environ, MUTATION_COVERAGE=str(work / "coverage.db"), MUTATION_SOURCE=str(src / source),
               MUTATION_DURATIONS=str(work / "durations.json"), MUTATION_IMPORTS=str(work / "imports.json"),
               MUTATION_SPAWNERS=str(work / "spawners.json"),
               PYTHONPATH=str(work), PYTHONDONTWRITEBYTECODE="1")
    start = time.monotonic()
    run = subprocess.run([str(python), *PYTEST, "-p", "mutation_contexts", *tests], cwd=src, env=env,
                         capture_output=True, text=True)
    took = time.monotonic() - start
    if run.returncode != 0:
        raise SystemExit(f"mutation: {module}: the tests fail without any mutant; fix them first:\n"
                         f"{run.stdout[-4000:]}{run.stderr[-2000:]}")
    import coverage
    data = coverage.CoverageData(basename=str(work / "coverage.db"))
    data.read()
    lines: dict[int, set[str]] = {}
    for measured in data.measured_files():
        for line, contexts in (data.contexts_by_lineno(measured) or {}).items():
            lines.setdefault(line, set()).update(contexts)
    # "" is the context of import and collection: such a line is not owned by particular tests
    durations = json.loads((work / "durations.json").read_text())
    return {line: sorted(c) if "" not in c else [] for line, c in lines.items()}, durations, took


# --------------------------------------------------------------------------------------------------
# the test command cosmic-ray runs for each mutant


def changed_lines(original: str, mutated: str) -> list[int]:
    """1-based lines of ``original`` that the mutation replaced."""
    changed = []
    matcher = difflib.SequenceMatcher(a=original.splitlines(), b=mutated.splitlines(), autojunk=False)
    for tag, i1, i2, _, _ in matcher.get_opcodes():
        if tag != "equal":
            changed.extend(range(i1 + 1, max(i2, i1 + 1) + 1))
    return changed


def only_unevaluated_annotations_differ(original: str, mutated: str, tests: list[Path]) -> bool:
    """True when the mutant changes nothing but annotations that are never evaluated.

    Under ``from __future__ import annotations`` an annotation is kept as a string and runs no
    code, so a mutant such as ``str | None`` → ``str & None`` survives every test that does not
    read annotations (``__annotations__``, ``get_type_hints``, ``inspect.signature``); when one
    of the module's test files mentions those, the tests run as for any mutant.
    """
    import ast

    def skeleton(source: str) -> str | None:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            return None
        if not any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
                   and any(alias.name == "annotations" for alias in node.names) for node in tree.body):
            return None
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                node.returns = None
            elif isinstance(node, ast.arg):
                node.annotation = None
            elif isinstance(node, ast.AnnAssign):
                node.annotation = ast.Constant(None)
        return ast.dump(tree)
    if original == mutated or any(re.search(r"__annotations__|get_type_hints|signature\(", t.read_text())
                                  for t in tests):
        return False
    before = skeleton(original)
    return before is not None and before == skeleton(mutated)


def import_time_lines(source: str) -> set[int]:
    """1-based lines run when the module is imported: module and class bodies, and the headers of
    functions (decorators, defaults, annotations), whichever test first imported the module."""
    import ast
    lines: set[int] = set()

    def visit(body) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                start = min([d.lineno for d in node.decorator_list] + [node.lineno])
                lines.update(range(start, node.body[0].lineno))
                if isinstance(node, ast.ClassDef):
                    visit(node.body)
            else:
                lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    visit(ast.parse(source).body)
    return lines


def run_tests_for_mutant(work: Path) -> int:
    """Exit status for cosmic-ray: 0 if every relevant test passes with the mutant applied."""
    state = json.loads((work / "state.json").read_text())
    source = Path(state["source"])
    original = (work / "pristine.py").read_text()
    mutated = source.read_text()
    if only_unevaluated_annotations_differ(original, mutated, [work.parents[1] / "src" / t for t in state["tests"]]):
        return 0  # it survives whatever the tests do, so they are not run (the full files, minutes a mutant)
    lines = changed_lines(original, mutated)
    covering = state["covering"]
    # a line run at import (by the syntax, or by coverage's import context []) is owned by whichever test
    # imported the module first, and a test may see it without running a line of the module (a dataclass's
    # generated methods, a constant read, annotations): the full files run
    if set(lines) & import_time_lines(original) or any(covering.get(str(line)) == [] for line in lines):
        return 1 if pytest_status(work, ["-x", *state["tests"]]) not in (0, 5) else 0
    owners: set[str] = set()
    for line in lines:
        tests = covering.get(str(line))
        if not tests:  # not run by any test: no test owns it
            owners = set()
            break
        owners.update(tests)
    if owners:  # fastest first: with -x a killed mutant costs the time to its first failing test
        durations = state.get("durations", {})
        if pytest_status(work, ["-x", *sorted(owners, key=lambda t: durations.get(t, 0.0))]) != 0:
            return 1
    if "spawners" not in state:  # a run begun before spawners were recorded
        deselect = [arg for test in sorted(owners) for arg in ("--deselect", test)]
        return 1 if pytest_status(work, ["-x", *deselect, *state["tests"]]) not in (0, 5) else 0
    # then every other test that ran any line of the module, and every test that starts processes
    # (coverage cannot see into them); a test that does neither cannot meet the mutant
    durations = state.get("durations", {})
    touching = {t for tests in covering.values() for t in tests} | set(state["spawners"])
    rest = sorted(touching - owners - {""}, key=lambda t: durations.get(t, 0.0))
    return 1 if rest and pytest_status(work, ["-x", *rest]) != 0 else 0


def pytest_status(work: Path, args: list[str]) -> int:
    """pytest's exit status for *args*, from the module's test server (or a fresh process without one)."""
    sock = work / "server.sock"
    if not sock.exists():
        return subprocess.run([sys.executable, *PYTEST, *args], env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    import socket
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(sock))
        client.sendall(json.dumps(args).encode() + b"\n")
        return int(client.makefile().readline())


# --------------------------------------------------------------------------------------------------
# the test server: pytest, conftest, CASA and every third-party module already imported, one fork a run


def serve(work: Path) -> None:
    """Answer test runs for one module's mutants until killed (run by the scratch venv, cwd = copy).

    Starting Python, pytest, CASA, astropy, matplotlib … for each mutant costs far more than most
    test runs (20 s against 1-2 s on a loaded machine).  This process imports the tests' conftest
    (which configures CASA offline and imports casatools) and every module outside almatools that
    the unmutated run imported, then forks a child per request: the child forgets every almatools
    module, so the mutated source is imported afresh from disk, and runs pytest in-process.  The
    server itself never runs a test, so no state passes from one mutant to the next.
    """
    import importlib
    import resource
    import signal
    import socket
    sys.dont_write_bytecode = True
    state = json.loads((work / "state.json").read_text())
    sys.path.insert(0, str(Path("tests").resolve()))
    import conftest  # noqa: F401  (HOME, CASA's site config, hypothesis profiles, casatools)
    for name in state.get("preimport", []):
        try:
            importlib.import_module(name)
        except BaseException:  # a module that only imports in some contexts: the child imports it itself
            pass
    import pytest
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(work / "server.sock.new"))
    server.listen(1)
    os.replace(work / "server.sock.new", work / "server.sock")  # clients see the socket only once it listens
    timeout = state["timeout"]
    while True:
        conn, _ = server.accept()
        with conn:
            args = json.loads(conn.makefile().readline())
            pid = os.fork()
            if pid == 0:  # the child: fresh almatools, pytest in-process, its status as exit code
                server.close()
                resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
                os.setpgid(0, 0)
                signal.signal(signal.SIGTERM, _interrupt)  # a time-out lets fixtures stop their servers
                for name in [m for m in sys.modules if m == "almatools" or m.startswith("almatools.")]:
                    del sys.modules[name]
                log = os.open(work / "last-run.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)  # for a look
                os.dup2(log, 1)
                os.dup2(log, 2)
                try:
                    status = int(pytest.main([*PYTEST[2:], *args], plugins=[per_test_timeout(state["durations"])]))
                except BaseException:
                    status = 3
                os._exit(status)
            deadline = time.monotonic() + timeout
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    code = os.waitstatus_to_exitcode(status)
                    break
                if time.monotonic() > deadline:  # a mutant that loops: killed by its time-out
                    _stop(pid)
                    code = 124
                    break
                time.sleep(0.05)
            conn.sendall(f"{code}\n".encode())


# --------------------------------------------------------------------------------------------------
# one module


def cr_cli(*args: str, cwd: Path) -> None:
    exe = Path(sys.executable).parent / args[0]
    subprocess.run([str(exe), *args[1:]], cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def run_module(module: str, base: Path, src: Path, python: Path, commit: str,
               part: tuple[int, int] | None = None) -> dict:
    """Run cosmic-ray over *module* in the scratch copy *src*, made from the checkout at *commit*
    (with *part* ``(k, n)``, only the k-th of n shares of the mutants left)."""
    import cosmic_ray.plugins
    source, tests = MODULES[module]
    work = base / "work" / module
    work.mkdir(parents=True)
    print(f"== {module}: measuring which tests run which lines of {source}", flush=True)
    covering, durations, took = covering_tests(src, python, work, module)
    timeout = round(max(120.0, 4 * took))
    (work / "pristine.py").write_text((src / source).read_text())
    state = {
        "commit": commit,
        "source": str(src / source), "tests": tests, "durations": durations, "timeout": timeout,
        "preimport": json.loads((work / "imports.json").read_text()),
        "spawners": json.loads((work / "spawners.json").read_text()),
        "covering": {str(k): v for k, v in covering.items()}}
    known = set(cosmic_ray.plugins.operator_names())
    if KEPT_OPERATORS - known:
        raise SystemExit(f"mutation: cosmic-ray has no operator(s) {sorted(KEPT_OPERATORS - known)}")
    excluded = [f"^{re.escape(name)}$" for name in sorted(known - KEPT_OPERATORS)]
    config = work / "cosmic-ray.toml"
    config.write_text(
        "[cosmic-ray]\n"
        f"module-path = {json.dumps(str(src / source))}\n"
        f"timeout = {3 * timeout}\n"  # the server times each of the (up to two) pytest runs out itself
        "excluded-modules = []\n"
        f"test-command = {json.dumps(f'{python} {Path(__file__).resolve()} --run-tests {work}')}\n"
        "[cosmic-ray.distributor]\nname = \"local\"\n"
        "[cosmic-ray.filters.operators-filter]\n"
        f"exclude-operators = {json.dumps(excluded)}\n")
    session = work / "session.sqlite"
    cr_cli("cosmic-ray", "init", str(config), str(session), cwd=src)
    cr_cli("cr-filter-operators", str(session), str(config), cwd=src)
    cr_cli("cr-filter-pragma", str(session), cwd=src)
    sitting = base.name  # this run; its time and commit are kept beside the other sittings
    todo = carry_progress(module, session, (src / source).read_text(), part)
    # read by the test server, and by --record of this run from another process
    (work / "state.json").write_text(json.dumps({**state, "sitting": sitting, "total": todo["total"]}))
    print(f"   {todo['pending']} of {todo['total']} mutants to run" +
          (f"; {todo['carried']} carried over" if todo["carried"] else "") +
          (f"; {todo['aside']} left to the other parts" if todo["aside"] else "") +
          f"; baseline tests {took:.0f} s, timeout {timeout} s", flush=True)
    start = time.monotonic()
    server = start_server(work, src, python)
    try:
        if pytest_status(work, tests) != 0:  # the same tests, unmutated, through the server and its limits
            # some tests need a process of their own (CASA's log file, servers they start): then every
            # run starts a fresh pytest, which is slower but never wrong
            print(f"   the tests do not pass in the test server (see {work / 'last-run.log'} with --keep); "
                  "running each mutant in a fresh process", flush=True)
            server.kill()
            (work / "server.sock").unlink()
        cr_cli("cosmic-ray", "exec", str(config), str(session), cwd=src)
    except KeyboardInterrupt:
        print(f"   interrupted: recording the {module} mutants run so far as a partial figure", flush=True)
    finally:
        server.kill()
        server.wait()
    if (src / source).read_text() != (work / "pristine.py").read_text():
        # an interrupted mutant may be left applied in the scratch copy; the figures are still the session's
        (src / source).write_text((work / "pristine.py").read_text())
    return conclude(module, session, (work / "pristine.py").read_text(), sitting, commit,
                    time.monotonic() - start, todo["total"])


def _job_key(item) -> str:
    """A mutant's name that is the same in every session made from the same source and operators."""
    m = item.mutations[0]
    return f"{m.operator_name}#{m.occurrence}@{m.start_pos[0]}:{m.start_pos[1]}"


def _sha256(text: str) -> str:
    import hashlib
    return hashlib.sha256(text.encode()).hexdigest()


def _share(key: str, n: int) -> int:
    """Which of n parts a mutant belongs to: a hash of its key, the same in every process."""
    return int(_sha256(key)[:8], 16) % n


class _ProgressLock:
    """Two parts of one module may conclude at once: their read-merge-write of the kept file is serialised."""

    def __enter__(self):
        import fcntl
        PROGRESS.mkdir(exist_ok=True)
        self.fh = open(PROGRESS / ".lock", "w")
        fcntl.flock(self.fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.fh.close()  # releases the lock


def _read_progress(module: str, sha: str) -> dict:
    """The kept outcomes of *module*'s earlier sittings of the source whose SHA-256 is *sha* (else none)."""
    path = PROGRESS / f"{module}.json"
    kept = json.loads(path.read_text()) if path.exists() else None
    if kept and kept["source_sha256"] != sha:
        print(f"   {path.name}: {module}'s source changed since commit(s) "
              f"{', '.join(dict.fromkeys(s['commit'] for s in kept['sittings']))}; starting over", flush=True)
        kept = None
    return kept or {"outcomes": {}, "sittings": []}


def session_outcomes(session: Path) -> tuple[dict, int]:
    """({job key: outcome} of the mutants run in *session*, the number of mutants it holds)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome
    outcomes, filtered = {}, 0
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome in (WorkerOutcome.SKIPPED, WorkerOutcome.NO_TEST):
                filtered += 1  # the operator and pragma filters: not mutants of the run
                continue
            outcome = {"worker": result.worker_outcome.value,
                       "test": result.test_outcome.value if result.test_outcome else None}
            if result.test_outcome == TestOutcome.SURVIVED:
                outcome["diff"] = result.diff  # the report's before/after; a killed mutant needs none
            outcomes[_job_key(item)] = outcome
        return outcomes, db.num_work_items - filtered


def carry_progress(module: str, session: Path, source_text: str, part: tuple[int, int] | None = None) -> dict:
    """Prepare a new *session*: set the outcomes kept by earlier sittings of the same source, and with
    *part* ``(k, n)`` set aside the mutants left that belong to the other parts (:func:`_share`).

    Returns ``{"total", "carried", "aside", "pending"}`` (mutants of the module, outcomes set from the
    kept file, mutants removed from this session, mutants this run will run)."""
    import sqlite3

    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkResult
    kept = _read_progress(module, _sha256(source_text))["outcomes"]
    _, total = session_outcomes(session)
    carried, aside = 0, []
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in db.pending_work_items:
            key = _job_key(item)
            if key in kept:
                db.set_result(item.job_id, WorkResult(worker_outcome=kept[key]["worker"], test_outcome=kept[key]["test"],
                                                      diff=kept[key].get("diff"), output="carried over"))
                carried += 1
            elif part and _share(key, part[1]) != part[0] - 1:
                aside.append(item.job_id)
    if aside:  # cosmic-ray has no API to drop a job; its two tables hold it
        with sqlite3.connect(session) as con:
            for table in ("mutation_specs", "work_items"):
                con.executemany(f"DELETE FROM {table} WHERE job_id = ?", [(j,) for j in aside])
    return {"total": total, "carried": carried, "aside": len(aside), "pending": _pending(session)}


def conclude(module: str, session: Path, source_text: str, sitting: str, commit: str, seconds: float,
             total: int) -> dict:
    """The module's record from this run's outcomes and those kept by other sittings (earlier ones, or
    other parts going on now), and the kept file brought up to date: removed once every mutant has run."""
    outcomes, _ = session_outcomes(session)
    sha = _sha256(source_text)
    from almatools.io import atomic_write  # here, not at the top: the per-mutant processes must not import almatools
    path = PROGRESS / f"{module}.json"
    with _ProgressLock():
        kept = _read_progress(module, sha)
        merged = {**kept["outcomes"], **outcomes}
        sittings = [s for s in kept["sittings"] if s["id"] != sitting] + [
            {"id": sitting, "commit": commit, "seconds": round(seconds)}]
        record = _record(module, merged, total, sittings)
        if record.get("unrun"):
            atomic_write(path, json.dumps({"module": module, "source_sha256": sha, "total": total, "sittings": sittings,
                                           "outcomes": dict(sorted(merged.items()))}, indent=0) + "\n")
        else:
            path.unlink(missing_ok=True)
    return record


def per_test_limit(durations: dict[str, float], nodeid: str) -> float | None:
    """Seconds test *nodeid* may take with a mutant (None: it has no unmutated duration, no limit)."""
    took = durations.get(nodeid)
    return None if took is None else max(PER_TEST_FLOOR, PER_TEST_FACTOR * took)


def per_test_timeout(durations: dict[str, float]):
    """pytest plugin for the test server's runs: a test over its :func:`per_test_limit` fails with
    TimeoutError, raised in the main thread by SIGALRM (the run's own time-out still holds)."""
    import signal

    import pytest

    class PerTestTimeout:
        @pytest.hookimpl(wrapper=True)
        def pytest_runtest_protocol(self, item, nextitem):
            limit = per_test_limit(durations, item.nodeid)
            if limit is None:
                return (yield)

            def expire(signum, frame):
                raise TimeoutError(f"{item.nodeid}: over {limit:.0f} s, {PER_TEST_FACTOR:g} x its unmutated time")
            previous = signal.signal(signal.SIGALRM, expire)
            signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                return (yield)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
    return PerTestTimeout()


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # pytest tears the session's fixtures down (the archive emulator's servers)


def _stop(pid: int, grace: float = 30.0) -> None:
    """End a test run: SIGTERM (fixtures tear down), then SIGKILL to its process group."""
    import signal
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0]:
            break
        time.sleep(0.2)
    else:
        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def start_server(work: Path, src: Path, python: Path) -> subprocess.Popen:
    """Start the module's test server and wait until it listens."""
    server = subprocess.Popen([str(python), str(Path(__file__).resolve()), "--serve", str(work)], cwd=src,
                              env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"), stdout=subprocess.DEVNULL,
                              stderr=open(work / "server.log", "w"))
    while not (work / "server.sock").exists():
        if server.poll() is not None:
            raise SystemExit(f"mutation: the test server stopped: {(work / 'server.log').read_text()[-3000:]}")
        time.sleep(0.2)
    return server


def _pending(session: Path) -> int:
    from cosmic_ray.work_db import WorkDB, use_db
    with use_db(str(session), WorkDB.Mode.open) as db:
        return db.num_work_items - db.num_results


def _mutant_key(diff: str) -> tuple[str, str]:
    """(removed line, added line) of a one-line mutation, stripped: stable across line shifts."""
    minus = [l[1:].strip() for l in diff.splitlines() if l.startswith("-") and not l.startswith("---")]
    plus = [l[1:].strip() for l in diff.splitlines() if l.startswith("+") and not l.startswith("+++")]
    return " / ".join(minus), " / ".join(plus)


def _record(module: str, outcomes: dict, total: int, sittings: list[dict]) -> dict:
    """The figures of *outcomes* ({job key: outcome}) out of *total* mutants, run over *sittings*."""
    counts = {"killed": 0, "survived": 0, "incompetent": 0}
    survivors = []
    for key, outcome in outcomes.items():
        if outcome["worker"] != "normal" or outcome["test"] == "incompetent":
            counts["incompetent"] += 1
        elif outcome["test"] == "killed":
            counts["killed"] += 1
        else:
            counts["survived"] += 1
            before, after = _mutant_key(outcome["diff"])
            survivors.append({"operator": key.split("#")[0], "line": int(key.split("@")[1].split(":")[0]),
                              "before": before, "after": after})
    record = {"module": module, "source": MODULES[module][0], "date": _dt.date.today().isoformat(),
              "commit": ", ".join(dict.fromkeys(s["commit"] for s in sittings)),  # a run over several sittings
              "seconds": sum(s["seconds"] for s in sittings), **counts,
              "survivors": sorted(survivors, key=lambda s: (s["line"], s["operator"], s["before"], s["after"]))}
    if total > len(outcomes):  # an interrupted run: its figure covers the mutants run (in random order)
        record["unrun"] = total - len(outcomes)
    return record


def record_partial(work: Path) -> dict:
    """The figures so far of the run whose scratch module directory is *work* (it may still be going)."""
    module, session = work.name, work / "session.sqlite"
    if module not in MODULES or not session.is_file():
        raise SystemExit(f"mutation: {work} is not a run's work/<module> directory (no session.sqlite)")
    state = json.loads((work / "state.json").read_text())
    total = state["total"] if "total" in state else session_outcomes(session)[1]
    return conclude(module, session, (work / "pristine.py").read_text(), state.get("sitting", work.parent.parent.name),
                    state.get("commit", "unknown"), time.time() - (work / "pristine.py").stat().st_mtime, total)


def _commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                            capture_output=True, text=True).stdout.splitlines()
    # the run's own records (results, report, verdicts, kept progress) are not code under test
    own = {p.relative_to(ROOT).as_posix() for p in (RESULTS, REPORT, EQUIVALENTS)}
    dirty = [line for line in status if line[3:] not in own and not line[3:].startswith("benchmarks/mutation-progress/")]
    return head + ("+changes" if dirty else "")


# --------------------------------------------------------------------------------------------------
# the report


#: what a read survivor is: *equivalent* (no input tells it from the original), *accepted* (a gap judged
#: not worth closing), or *killed*: a test added after the module's run kills it (``test`` names it, and
#: ``--check-killed`` applies the mutant and runs that test).  A killed one counts as a survivor until the
#: module's next run, which kills it and so drops its verdict.
VERDICTS = ("equivalent", "accepted", "killed")


def judgements() -> list[dict]:
    """The read survivors: ``[[mutant]]`` tables with module, before, after, verdict, reason (and test)."""
    if not EQUIVALENTS.exists():
        return []
    entries = tomllib.loads(EQUIVALENTS.read_text()).get("mutant", [])
    for entry in entries:
        if (entry.get("verdict") not in VERDICTS or not entry.get("reason")
                or (entry["verdict"] == "killed") != bool(entry.get("test"))):
            raise SystemExit(f"{EQUIVALENTS.name}: every [[mutant]] needs verdict equivalent|accepted|killed and a "
                             f"reason, and a killed one the test that kills it (only a killed one): {entry}")
    return entries


def judge(record: dict, entries: list[dict]) -> list[dict]:
    """The record's survivors, each with its verdict ('gap' when nobody has judged it)."""
    judged = []
    for s in record["survivors"]:
        match = next((e for e in entries if e["module"] == record["module"] and e["before"] == s["before"]
                      and e["after"] == s["after"] and e.get("operator", s["operator"]) == s["operator"]), None)
        judged.append({**s, "verdict": match["verdict"] if match else "gap",
                       "reason": match["reason"] if match else "not yet judged: a test gap until shown otherwise",
                       **({"test": match["test"]} if match and "test" in match else {})})
    return judged


def score(record: dict, judged: list[dict]) -> tuple[int, int, float]:
    """(non-equivalent mutants, killed, killed / non-equivalent)."""
    equivalent = sum(1 for s in judged if s["verdict"] == "equivalent")
    relevant = record["killed"] + record["survived"] - equivalent
    return relevant, record["killed"], (record["killed"] / relevant if relevant else 1.0)


def write_report(results: dict) -> str:
    entries = judgements()
    rows, details = [], []
    all_relevant = all_killed = partials = 0
    for module in [m for m in MODULES if m in results]:
        record = results[module]
        judged = judge(record, entries)
        relevant, killed, ratio = score(record, judged)
        all_relevant += relevant
        all_killed += killed
        counts = {v: sum(1 for s in judged if s["verdict"] == v) for v in (*VERDICTS, "gap")}
        run = record["killed"] + record["survived"]
        unrun = record.get("unrun", 0)
        partial = f" (partial: {run} of {run + unrun + record['incompetent']} mutants run)" if unrun else ""
        partials += bool(unrun)
        rows.append(f"| {module} | `{record['source']}` | {run} | {killed} | "
                    f"{record['survived']} | {counts['equivalent']} | {counts['accepted']} | {counts['killed']} | "
                    f"{counts['gap']} | "
                    f"{100 * ratio:.1f} % | {('yes' if ratio >= TARGET else '**no**') + partial} | {record['date']} "
                    f"({record['commit']}, {record['seconds'] // 60} min) |")
        if judged:
            details.append(f"\n### {module}\n")
            details.extend(f"- line {s['line']} `{s['operator'].split('/')[-1]}`: `{s['before']}` → "
                           f"`{s['after']}` — " + (f"**killed** since the run, by `{s['test']}`" if "test" in s
                                                    else f"**{s['verdict']}**") + f": {s['reason']}" for s in judged)
    missing = [m for m in MODULES if m not in results]
    overall = f"{100 * all_killed / all_relevant:.1f} %" if all_relevant else "n/a"
    text = [
        "# Mutation testing report",
        "",
        "Written by `python benchmarks/mutation.py` (cosmic-ray; see its docstring for the operator set and",
        "how each mutant runs only the tests that exercise it); figures from `benchmarks/mutation-results.json`,",
        "verdicts on survivors from `benchmarks/mutation-equivalents.toml`. Score = killed / (mutants −",
        f"equivalent); target ≥ {100 * TARGET:.0f} % per module. Timings are on a 2-core machine shared with other",
        "work, so a run's minutes are only indicative. *Killed since*: survivors of a module's run that a test",
        "added after it kills (`python benchmarks/mutation.py --check-killed` applies each and runs that test);",
        "they count as survivors in the score until the module's next run.",
        "",
        f"**Overall: {all_killed} of {all_relevant} non-equivalent mutants killed ({overall})** over "
        f"{len(MODULES) - len(missing)} of {len(MODULES)} modules"
        + (f" ({partials} of them partly: an interrupted run's mutants so far)." if partials else "."),
        "",
        "| module | source | mutants | killed | survived | equivalent | accepted | killed since | not judged | score "
        "| ≥ 90 % | run |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
        *rows,
    ]
    if missing:
        text += ["", "Not run yet: " + ", ".join(missing) + "."]
    if details:
        text += ["", "## Surviving mutants", *details]
    return "\n".join(text) + "\n"


def load_results() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def store_results(records: list[dict]) -> dict:
    """Record *records* (one per module) in the results and rewrite the report; return the results.

    Runs of different modules in other terminals may finish at the same moment: the read-update-write
    happens under the progress lock, so neither loses the other's record, and each file is replaced
    whole, so a reader never sees half of one.
    """
    from almatools.io import atomic_write  # here, not at the top: the per-mutant processes must not import almatools
    with _ProgressLock():
        results = load_results()
        results.update((record["module"], record) for record in records)
        atomic_write(RESULTS, json.dumps(results, indent=1, sort_keys=True) + "\n")
        atomic_write(REPORT, write_report(results))
    return results


# --------------------------------------------------------------------------------------------------
# survivors that tests added since their run kill


def apply_survivor(text: str, survivor: dict) -> str:
    """*text* (the module's source) with a recorded survivor applied: its line, which must still read the
    survivor's *before*, reads its *after* (same indentation).  ValueError when the line reads otherwise."""
    lines = text.splitlines(keepends=True)
    n = survivor["line"]
    line = lines[n - 1] if 0 < n <= len(lines) else ""
    if line.strip() != survivor["before"]:
        raise ValueError(f"line {n} reads {line.strip()!r}, not the survivor's {survivor['before']!r}: the source "
                         "changed since the run (or the mutant spans lines); re-run the module")
    indent = line[:len(line) - len(line.lstrip())]
    lines[n - 1] = indent + survivor["after"] + line[len(line.rstrip("\r\n")):]
    return "".join(lines)


def check_killed(modules: list[str], timeout: float = 1800.0) -> list[str]:
    """Apply each survivor of *modules* judged *killed* to a scratch copy and run the test its verdict
    names: it must pass without the mutant and fail with it.  Returns the problems (none: all hold)."""
    results, entries = load_results(), judgements()
    todo = [(m, s) for m in modules if m in results for s in judge(results[m], entries) if s["verdict"] == "killed"]
    problems: list[str] = []
    if not todo:
        return problems
    base = Path(tempfile.mkdtemp(prefix="almatools-mutation-check-"))
    try:
        src, python = make_scratch(base)
        passes: dict[str, int] = {}

        def status(test: str) -> int:
            try:
                return subprocess.run([str(python), *PYTEST, "-x", test], cwd=src, timeout=timeout,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
            except subprocess.TimeoutExpired:
                return -1  # a mutant that hangs its test is killed, as in a run
        for module, s in todo:
            what = f"{module} line {s['line']} `{s['before']}` → `{s['after']}`"
            path = src / MODULES[module][0]
            pristine = path.read_text()
            try:
                mutated = apply_survivor(pristine, s)
            except ValueError as exc:
                problems.append(f"{what}: {exc}")
                continue
            if s["test"] not in passes:
                passes[s["test"]] = status(s["test"])
            if passes[s["test"]] != 0:
                problems.append(f"{what}: {s['test']} does not pass without the mutant (pytest status "
                                f"{passes[s['test']]})")
                continue
            path.write_text(mutated)
            try:
                rc = status(s["test"])
            finally:
                path.write_text(pristine)
            print(f"   {what}: {'killed' if rc not in (0, 5) else 'SURVIVES'} by {s['test']}", flush=True)
            if rc in (0, 5):
                problems.append(f"{what}: survives {s['test']}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="modules to run (default: all; see --list)")
    parser.add_argument("--list", action="store_true", help="list the modules and their test files")
    parser.add_argument("--report", action="store_true", help="only rewrite the report from the recorded results")
    parser.add_argument("--part", metavar="K/N", help="run only the k-th of n shares of each module's mutants left "
                        "(run the n parts at once, one per core; the last to finish records the whole figure)")
    parser.add_argument("--check-killed", action="store_true",
                        help="check the survivors judged killed (default: of every module): each verdict's test passes, "
                        "and fails with the mutant applied")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy (to read cosmic-ray's session)")
    parser.add_argument("--record", metavar="WORK", nargs="+",
                        help="record the figures so far of runs going on elsewhere (their scratch work/<module> dirs)")
    parser.add_argument("--run-tests", metavar="WORK", help=argparse.SUPPRESS)  # cosmic-ray's test command
    parser.add_argument("--serve", metavar="WORK", help=argparse.SUPPRESS)  # the module's test server
    args = parser.parse_args(argv)
    if args.run_tests:
        return run_tests_for_mutant(Path(args.run_tests))
    if args.serve:
        serve(Path(args.serve))
        return 0
    if args.list:
        for name, (source, tests) in MODULES.items():
            print(f"{name:<24} {source:<40} {' '.join(tests)}")
        return 0
    if args.record:
        store_results([record_partial(Path(work)) for work in args.record])
        args.modules = [Path(w).name for w in args.record]
        args.report = True
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; known: {', '.join(MODULES)}")
    if args.check_killed:
        problems = check_killed(args.modules or list(MODULES))
        print("mutation: " + ("; ".join(problems) if problems else "every survivor judged killed is killed"))
        return 1 if problems else 0
    part = None
    if args.part:
        k, _, n = args.part.partition("/")
        if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
            parser.error(f"--part {args.part}: expected K/N with 1 <= K <= N, e.g. 1/2")
        part = (int(k), int(n))
    if not args.report:
        base = Path(tempfile.mkdtemp(prefix="almatools-mutation-"))
        try:
            commit = _commit()  # of the checkout as it is copied: later edits are not in the copy
            src, python = make_scratch(base)
            for module in args.modules or list(MODULES):
                record = run_module(module, base, src, python, commit, part)
                store_results([record])
                print(f"   killed {record['killed']}, survived {record['survived']}, "
                      f"incompetent {record['incompetent']} ({record['seconds']} s)", flush=True)
                if record.get("unrun"):
                    break  # interrupted: the modules after it are not started
        finally:
            if args.keep:
                print(f"mutation: scratch copy kept in {base}")
            else:
                shutil.rmtree(base, ignore_errors=True)
    results = store_results([])  # the report of the recorded results and the present verdicts
    short = []
    for module in args.modules or list(MODULES):
        if module in results:
            _, _, ratio = score(results[module], judge(results[module], judgements()))
            if ratio < TARGET:
                short.append(f"{module} {100 * ratio:.1f} %")
    print(f"mutation: report in {REPORT.relative_to(ROOT)}" + (f"; below {100 * TARGET:.0f} %: {', '.join(short)}"
                                                             if short else ""))
    return 1 if short else 0


if __name__ == "__main__":
    sys.exit(main())
