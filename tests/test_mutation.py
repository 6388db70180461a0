"""The mutation-testing run (benchmarks/mutation.py) stays runnable and its report stays honest.

The run itself takes hours and is not part of CI; these tests check its parts: the module map,
the scratch environment that keeps the checkout untouched, the changed-line lookup that picks
each mutant's tests, the score, and that the report in the repository is the one its recorded
results and verdicts give.
"""

import importlib.util
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mutation():
    spec = importlib.util.spec_from_file_location("almatools_mutation", ROOT / "benchmarks" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_computational_module_is_mapped_to_existing_tests(mutation):
    sources = {source for source, _ in mutation.MODULES.values()}
    wanted = {  # issue 23's list
        "plugins/brightness/conversion.py", "plugins/frames/convert.py", "plugins/frames/contdat.py",
        "plugins/frames/selection.py", "plugins/weights/stats.py", "plugins/weights/fix.py",
        "plugins/models/components.py", "plugins/models/grid.py", "plugins/calunflag/scan.py",
        "plugins/calunflag/edit.py", "plugins/calunflag/roles.py", "plugins/calversion/sources.py",
        "plugins/archive/adql.py", "plugins/archive/grammar.py", "plugins/archive/download.py",
        "plugins/archive/unpack.py", "plugins/archive/names.py", "plugins/archive/credentials.py",
        "almatools/registry.py", "plugins/calflux/estimate.py", "almatools/delivery/fluxcsv.py"}
    assert wanted <= sources
    for name, (source, tests) in mutation.MODULES.items():
        assert (ROOT / source).is_file(), name
        assert tests and all((ROOT / t).is_file() and t.startswith("tests/") for t in tests), name


@pytest.mark.parametrize("original, mutated, lines", [
    ("a = 1\nb = 2\nc = 3\n", "a = 1\nb = 3\nc = 3\n", [2]),
    ("a = 1\nb = 2\nc = 3\n", "a = 1\nb = 2\nc = 3\n", []),
    ("if x:\n    y()\nz()\n", "if not x:\n    y()\nz()\n", [1]),
    ("for i in s:\n    f(i)\n", "for i in []:\n    f(i)\n", [1]),
    ("a = (1 +\n     2)\n", "a = (1 -\n     2)\n", [1]),
    ("a = 1\nb = 2\n", "a = 1\n", [2]),  # a deleted line is the line that changed
])
def test_changed_lines_are_the_lines_of_the_original_that_differ(mutation, original, mutated, lines):
    assert mutation.changed_lines(original, mutated) == lines


def test_score_leaves_out_only_equivalent_mutants(mutation, tmp_path, monkeypatch):
    verdicts = tmp_path / "verdicts.toml"
    verdicts.write_text('[[mutant]]\nmodule = "m"\nbefore = "x < 1"\nafter = "x <= 1"\nverdict = "equivalent"\n'
                        'reason = "x is never 1"\n'
                        '[[mutant]]\nmodule = "m"\nbefore = "y = 2"\nafter = "y = 3"\nverdict = "accepted"\n'
                        'reason = "a log width"\n')
    monkeypatch.setattr(mutation, "EQUIVALENTS", verdicts)
    record = {"module": "m", "killed": 17, "survived": 3, "survivors": [
        {"operator": "core/ReplaceComparisonOperator_Lt_LtE", "line": 4, "before": "x < 1", "after": "x <= 1"},
        {"operator": "core/NumberReplacer", "line": 9, "before": "y = 2", "after": "y = 3"},
        {"operator": "core/AddNot", "line": 12, "before": "if z:", "after": "if not z:"}]}
    judged = mutation.judge(record, mutation.judgements())
    assert [s["verdict"] for s in judged] == ["equivalent", "accepted", "gap"]
    relevant, killed, ratio = mutation.score(record, judged)
    assert (relevant, killed) == (19, 17) and ratio == pytest.approx(17 / 19)


def test_a_verdict_needs_a_reason(mutation, tmp_path, monkeypatch):
    verdicts = tmp_path / "verdicts.toml"
    verdicts.write_text('[[mutant]]\nmodule = "m"\nbefore = "a"\nafter = "b"\nverdict = "equivalent"\n')
    monkeypatch.setattr(mutation, "EQUIVALENTS", verdicts)
    with pytest.raises(SystemExit, match="needs verdict equivalent.accepted.killed and a reason"):
        mutation.judgements()


@pytest.mark.parametrize("fields", [
    'verdict = "killed"\nreason = "a test since"\n',                                 # killed without its test
    'verdict = "accepted"\nreason = "a log width"\ntest = "tests/test_x.py::test_y"\n',  # a test on a read one
    'verdict = "fixed"\nreason = "not a verdict"\n'])
def test_a_killed_verdict_and_only_a_killed_one_names_its_test(mutation, tmp_path, monkeypatch, fields):
    verdicts = tmp_path / "verdicts.toml"
    verdicts.write_text('[[mutant]]\nmodule = "m"\nbefore = "a"\nafter = "b"\n' + fields)
    monkeypatch.setattr(mutation, "EQUIVALENTS", verdicts)
    with pytest.raises(SystemExit, match="a killed one the test that kills it"):
        mutation.judgements()


def test_a_survivor_killed_since_its_run_stays_a_survivor_in_the_score_and_names_its_test(mutation, tmp_path,
                                                                                       monkeypatch):
    verdicts = tmp_path / "verdicts.toml"
    verdicts.write_text('[[mutant]]\nmodule = "archive.adql"\nbefore = "x < 1"\nafter = "x <= 1"\n'
                        'verdict = "killed"\nreason = "the bound at 1"\ntest = "tests/test_x.py::test_one"\n')
    monkeypatch.setattr(mutation, "EQUIVALENTS", verdicts)
    record = {"module": "archive.adql", "source": "plugins/archive/adql.py", "date": "2026-12-02", "commit": "abc",
              "seconds": 60, "killed": 9, "survived": 1, "incompetent": 0, "survivors": [
                  {"operator": "core/ReplaceComparisonOperator_Lt_LtE", "line": 4, "before": "x < 1",
                   "after": "x <= 1"}]}
    judged = mutation.judge(record, mutation.judgements())
    assert judged[0]["verdict"] == "killed" and judged[0]["test"] == "tests/test_x.py::test_one"
    assert mutation.score(record, judged) == (10, 9, 0.9)
    report = mutation.write_report({"archive.adql": record})
    assert "| 10 | 9 | 1 | 0 | 0 | 1 | 0 | 90.0 % |" in report
    assert "**killed** since the run, by `tests/test_x.py::test_one`: the bound at 1" in report


def test_apply_survivor_changes_its_line_only_and_refuses_a_changed_source(mutation):
    text = "def f(x):\n    if x < 1:  # edge\n        return 2\r\n    return 3\n"
    survivor = {"line": 2, "before": "if x < 1:  # edge", "after": "if x <= 1:  # edge"}
    assert mutation.apply_survivor(text, survivor) == text.replace("x < 1", "x <= 1")
    assert mutation.apply_survivor(text, {"line": 3, "before": "return 2", "after": "return 3"}) == \
        text.replace("return 2\r\n", "return 3\r\n")
    for moved in ({**survivor, "line": 1}, {**survivor, "line": 9}, {**survivor, "before": "if x < 2:  # edge"}):
        with pytest.raises(ValueError, match="the source changed since the run"):
            mutation.apply_survivor(text, moved)


def test_check_killed_runs_each_verdicts_test_with_its_mutant_applied(mutation, tmp_path, monkeypatch):
    """Real pytest runs in a scratch copy: a test that kills its mutant, one that does not, a moved line."""
    area = "return FWHM_TO_AREA * np.asarray(major_rad, float) * np.asarray(minor_rad, float)"
    rj = "return JY * C ** 2 / (2 * K_B * freq_hz ** 2)"
    source = (ROOT / "plugins/brightness/conversion.py").read_text().splitlines()
    line_area, line_rj = source.index("    " + area) + 1, source.index("    " + rj) + 1
    survivors = [
        {"operator": "core/ReplaceBinaryOperator_Mul_Div", "line": line_area, "before": area,
         "after": area.replace(") * np", ") / np")},
        {"operator": "core/NumberReplacer", "line": line_rj, "before": rj, "after": rj.replace("(2 *", "(3 *")},
        {"operator": "core/NumberReplacer", "line": line_rj + 1, "before": rj, "after": rj.replace("** 2)", "** 3)")}]
    tests = ["tests/test_tbconv.py::test_rj_values_match_astropy_and_radio_beam",
             "tests/test_tbconv.py::test_image_file_errors_are_input_file_errors",  # never computes a factor
             "tests/test_tbconv.py::test_round_trips"]
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"brightness.conversion": {
        "module": "brightness.conversion", "source": "plugins/brightness/conversion.py", "date": "2026-12-02",
        "commit": "abc", "seconds": 1, "killed": 100, "survived": 3, "incompetent": 0, "survivors": survivors}}))
    verdicts = tmp_path / "verdicts.toml"
    verdicts.write_text("".join(
        f'[[mutant]]\nmodule = "brightness.conversion"\nbefore = {json.dumps(s["before"])}\n'
        f'after = {json.dumps(s["after"])}\nverdict = "killed"\nreason = "r"\ntest = "{test}"\n'
        for s, test in zip(survivors, tests)))
    monkeypatch.setattr(mutation, "RESULTS", results)
    monkeypatch.setattr(mutation, "EQUIVALENTS", verdicts)
    problems = mutation.check_killed(["brightness.conversion"])
    assert len(problems) == 2
    assert "survives tests/test_tbconv.py::test_image_file_errors_are_input_file_errors" in problems[0]
    assert f"line {line_rj + 1}" in problems[1] and "the source changed since the run" in problems[1]
    # the checkout is untouched
    assert (ROOT / "plugins/brightness/conversion.py").read_text().splitlines() == source


def test_the_report_in_the_repository_is_the_recorded_one(mutation):
    results = mutation.load_results()
    assert mutation.REPORT.read_text() == mutation.write_report(results)
    # every verdict is about a mutant that a recorded run saw survive (no stale verdicts); a module not run
    # yet, or run only partly, may have verdicts written ahead, from mutants checked by hand, which its first
    # whole run then confirms
    seen = {(m, s["before"], s["after"]) for m, r in results.items() for s in r["survivors"]}
    for entry in tomllib.loads(mutation.EQUIVALENTS.read_text()).get("mutant", []):
        assert entry["module"] in mutation.MODULES
        if entry["module"] in results and not results[entry["module"]].get("unrun"):
            assert (entry["module"], entry["before"], entry["after"]) in seen, entry



def test_a_record_waits_for_the_lock_and_keeps_what_another_run_wrote_meanwhile(mutation, tmp_path, monkeypatch):
    import threading
    monkeypatch.setattr(mutation, "RESULTS", tmp_path / "results.json")
    monkeypatch.setattr(mutation, "REPORT", tmp_path / "report.md")
    monkeypatch.setattr(mutation, "PROGRESS", tmp_path / "progress")

    def record(module, killed):
        return {"module": module, "source": mutation.MODULES[module][0], "date": "2026-12-03", "commit": "abc",
                "seconds": 1, "killed": killed, "survived": 0, "incompetent": 0, "survivors": []}
    with mutation._ProgressLock():  # another run, in the middle of recording its module
        mine = threading.Thread(target=mutation.store_results, args=([record("frames.chansel", 7)],))
        mine.start()
        mine.join(0.5)
        assert mine.is_alive()  # waits for the other run to finish writing
        mutation.RESULTS.write_text(json.dumps({"core.registry": record("core.registry", 5)}))
    mine.join(30)
    results = json.loads(mutation.RESULTS.read_text())
    assert {m: r["killed"] for m, r in results.items()} == {"frames.chansel": 7, "core.registry": 5}
    assert mutation.REPORT.read_text() == mutation.write_report(results)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["progress", "report.md", "results.json"]  # no temp left


def test_the_scratch_environment_imports_the_copy_not_the_checkout(mutation, tmp_path):
    src, python = mutation.make_scratch(tmp_path)
    assert (src / "plugins" / "calunflag" / "ppr.py").read_text() == (ROOT / "plugins/calunflag/ppr.py").read_text()
    out = subprocess.run([str(python), "-c", "import almatools, almatools.plugins.calunflag.ppr as p, "
                          "almatools.casa_tasks as c, numpy; print(almatools.__file__, p.__file__, c.__file__)"],
                         capture_output=True, text=True, cwd=tmp_path, check=True)
    files = out.stdout.split()
    assert files == [str(src / "almatools" / "__init__.py"), str(src / "plugins" / "calunflag" / "ppr.py"),
                     str(src / "casa_tasks" / "__init__.py")]
    assert python.parent.parent == tmp_path / "venv" and not (tmp_path / "venv" / "bin" / "pip").exists()


def test_import_time_lines_are_module_and_class_bodies_and_function_headers(mutation):
    source = "\n".join([
        "import os",                               # 1
        "LIMIT = 4",                               # 2
        "@dataclass(frozen=True)",                 # 3
        "class A:",                                # 4
        "    x: int = 0",                          # 5
        "    def f(self, y: int | None = None,",   # 6
        "          z=1):",                         # 7
        "        return y",                        # 8
        "def g():",                                # 9
        '    """doc"""',                           # 10
        "    return LIMIT",                        # 11
    ]) + "\n"
    assert mutation.import_time_lines(source) == {1, 2, 3, 4, 5, 6, 7, 9}


ANNOTATED = """from __future__ import annotations
import os
@dataclass
class Part:
    end: int | None = None
    def rate(self, now: float, *rest: int, key: str | None = None, **kw: dict) -> float | None:
        total: int | None = 0
        return None if self.end is None else now | 1
"""


@pytest.mark.parametrize("before, after, same", [
    ("end: int | None = None", "end: int & None = None", True),          # a field's annotation
    ("now: float,", "now: float | None,", True),                         # an argument's
    ("*rest: int,", "*rest: str,", True),                                # *args'
    ("key: str | None = None", "key: str & None = None", True),          # a keyword-only argument's
    ("**kw: dict", "**kw: list", True),                                  # **kwargs'
    ("-> float | None:", "-> float & None:", True),                      # the return's
    ("total: int | None = 0", "total: int & None = 0", True),            # a local's
    ("end: int | None = None", "end: int | None = 1", False),            # a default is evaluated
    ("total: int | None = 0", "total: int | None = 1", False),           # so is an annotated assignment's value
    ("now | 1", "now & 1", False),                                       # code
])
def test_only_unevaluated_annotation_mutants_skip_their_tests(mutation, tmp_path, before, after, same):
    test = tmp_path / "test_x.py"
    test.write_text("def test_x():\n    pass\n")
    mutated = ANNOTATED.replace(before, after, 1)
    assert mutated != ANNOTATED
    assert mutation.only_unevaluated_annotations_differ(ANNOTATED, mutated, [test]) is same
    # evaluated annotations (no __future__ import), or tests that read annotations: the tests run
    eager = ANNOTATED.replace("from __future__ import annotations\n", "")
    assert mutation.only_unevaluated_annotations_differ(eager, eager.replace(before, after, 1), [test]) is False
    test.write_text("import inspect\ndef test_x():\n    inspect.signature(f)\n")
    assert mutation.only_unevaluated_annotations_differ(ANNOTATED, mutated, [test]) is False


def test_an_annotation_mutant_survives_when_its_tests_run(mutation, tmp_path):
    # the premise of the shortcut, on real imports: evaluated, 'float & None' fails (a TypeError at
    # import); kept as a string, the mutated module behaves as the original does
    import importlib.util
    plain = ANNOTATED.replace("@dataclass\n", "")
    mutated = plain.replace("-> float | None:", "-> float & None:")

    def load(name, text):
        (tmp_path / f"{name}.py").write_text(text)
        spec = importlib.util.spec_from_file_location(name, tmp_path / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    with pytest.raises(TypeError, match="unsupported operand"):
        load("eager", mutated.replace("from __future__ import annotations\n", ""))
    for name, text in (("original", plain), ("mutant", mutated)):
        part = load(name, text).Part()
        assert part.rate(6) is None
        part.end = 4
        assert part.rate(6) == 7
    (tmp_path / "test_x.py").write_text("")
    assert mutation.only_unevaluated_annotations_differ(plain, mutated, [tmp_path / "test_x.py"])


def test_per_test_limits_scale_the_unmutated_duration_with_a_floor(mutation):
    durations = {"t.py::quick": 0.5, "t.py::slow": 30.0}
    assert mutation.per_test_limit(durations, "t.py::quick") == mutation.PER_TEST_FLOOR
    assert mutation.per_test_limit(durations, "t.py::slow") == 30.0 * mutation.PER_TEST_FACTOR
    assert mutation.per_test_limit(durations, "t.py::new") is None


def test_a_test_over_its_limit_fails_and_the_run_goes_on_in_seconds(tmp_path):
    # in a fresh process, as the test server's child runs pytest: a sleeping test and one waiting on a
    # thread are stopped at their limit; a test without an unmutated duration has none
    (tmp_path / "test_slow.py").write_text(
        "import threading, time\n"
        "def test_sleeps():\n    time.sleep(60)\n"
        "def test_waits_on_a_thread():\n    t = threading.Thread(target=time.sleep, args=(60,), daemon=True)\n"
        "    t.start()\n    t.join()\n"
        "def test_unmeasured():\n    time.sleep(1.0)\n")
    script = (
        "import importlib.util, sys, time, pytest\n"
        f"spec = importlib.util.spec_from_file_location('m', {str(ROOT / 'benchmarks' / 'mutation.py')!r})\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "m.PER_TEST_FLOOR = 0.5\n"
        "durations = {'test_slow.py::test_sleeps': 0.01, 'test_slow.py::test_waits_on_a_thread': 0.01}\n"
        "t0 = time.monotonic()\n"
        "status = pytest.main(['-q', '-p', 'no:cacheprovider', 'test_slow.py'], plugins=[m.per_test_timeout(durations)])\n"
        "print('STATUS', int(status), 'SECONDS', time.monotonic() - t0)\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    status, seconds = out.stdout.split("STATUS ")[1].split(" SECONDS ")
    assert int(status) == 1 and float(seconds) < 20, out.stdout
    assert "2 failed, 1 passed" in out.stdout, out.stdout
    assert "FAILED test_slow.py::test_sleeps - TimeoutError" in out.stdout
    assert "FAILED test_slow.py::test_waits_on_a_thread - TimeoutError" in out.stdout
    assert "over 0 s, 5 x its unmutated time" in out.stdout


def test_an_interrupted_run_is_reported_as_partial(mutation, tmp_path, monkeypatch):
    monkeypatch.setattr(mutation, "EQUIVALENTS", tmp_path / "none.toml")
    whole = {"module": "core.registry", "source": "almatools/registry.py", "date": "2026-12-02", "commit": "abc",
             "seconds": 600, "killed": 9, "survived": 1, "incompetent": 0,
             "survivors": [{"operator": "core/AddNot", "line": 3, "before": "if a:", "after": "if not a:"}]}
    report = mutation.write_report({"core.registry": whole})
    assert "| 90.0 % | yes | 2026-12-02 (abc, 10 min) |" in report and "partly" not in report
    report = mutation.write_report({"core.registry": {**whole, "unrun": 15}})
    assert "| 90.0 % | yes (partial: 10 of 25 mutants run) |" in report
    assert "over 1 of" in report and "(1 of them partly: an interrupted run's mutants so far)." in report


def _session(mutation, tmp_path, name, source):
    """A real cosmic-ray session over a small module, as a run's init makes it."""
    module = tmp_path / "mod.py"
    module.write_text(source)
    config = tmp_path / "cr.toml"
    config.write_text(f'[cosmic-ray]\nmodule-path = "{module}"\ntimeout = 10\nexcluded-modules = []\n'
                      'test-command = "true"\n[cosmic-ray.distributor]\nname = "local"\n')
    session = tmp_path / name
    mutation.cr_cli("cosmic-ray", "init", str(config), str(session), cwd=tmp_path)
    return session


def _run(mutation, session, outcome_of):
    """Run the session's pending mutants the way cosmic-ray exec records them: outcome_of(key) for each."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in db.pending_work_items:
            key = mutation._job_key(item)
            test = outcome_of(key)
            if test is not None:
                db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.NORMAL, test_outcome=test,
                                                      diff=f"--- a\n+++ b\n-before {key}\n+after {key}\n"))


SOURCE = "def f(a, b):\n    if a < b:\n        return a + 1\n    return b * 2\n"


def test_an_interrupted_runs_outcomes_carry_into_the_next_run_of_the_same_source(mutation, tmp_path, monkeypatch):
    from cosmic_ray.work_item import TestOutcome
    monkeypatch.setattr(mutation, "PROGRESS", tmp_path / "progress")
    first = _session(mutation, tmp_path, "first.sqlite", SOURCE)
    todo = mutation.carry_progress("core.registry", first, SOURCE)
    total = todo["total"]
    assert todo == {"total": total, "carried": 0, "aside": 0, "pending": total} and total > 6
    assert mutation.session_outcomes(first)[0] == {}
    run = {}

    def first_five(key):  # the first sitting is interrupted after five mutants, the first of them surviving
        if len(run) < 5:
            run[key] = TestOutcome.SURVIVED if not run else TestOutcome.KILLED
            return run[key]
    _run(mutation, first, first_five)
    assert len(mutation.session_outcomes(first)[0]) == 5
    record = mutation.conclude("core.registry", first, SOURCE, "sitting-1", "abc", 30.4, total)
    assert record["unrun"] == total - 5 and record["killed"] == 4 and record["survived"] == 1
    assert record["commit"] == "abc" and record["seconds"] == 30
    kept = tmp_path / "progress" / "core.registry.json"
    assert kept.is_file()

    second = _session(mutation, tmp_path, "second.sqlite", SOURCE)  # a new sitting: a fresh session
    todo = mutation.carry_progress("core.registry", second, SOURCE)
    assert todo == {"total": total, "carried": 5, "aside": 0, "pending": total - 5}
    carried = mutation.session_outcomes(second)[0]
    assert {k: o["test"] for k, o in carried.items()} == {k: t.value for k, t in run.items()}  # same mutants, outcomes
    _run(mutation, second, lambda key: TestOutcome.KILLED)  # the sitting runs the rest: all killed
    record = mutation.conclude("core.registry", second, SOURCE, "sitting-2", "def", 45.0, total)
    assert "unrun" not in record and record["killed"] == total - 1 and record["survived"] == 1
    assert record["commit"] == "abc, def" and record["seconds"] == 75
    (survivor,) = [k for k, t in run.items() if t == TestOutcome.SURVIVED]
    assert record["survivors"] == [{"operator": survivor.split("#")[0], "line": int(survivor.split("@")[1].split(":")[0]),
                                    "before": f"before {survivor}", "after": f"after {survivor}"}]
    assert not kept.exists()  # complete: nothing left to carry


def test_parts_run_disjoint_shares_and_the_last_to_finish_records_the_whole(mutation, tmp_path, monkeypatch):
    from cosmic_ray.work_item import TestOutcome
    monkeypatch.setattr(mutation, "PROGRESS", tmp_path / "progress")
    one = _session(mutation, tmp_path, "one.sqlite", SOURCE)
    two = _session(mutation, tmp_path, "two.sqlite", SOURCE)
    todo1 = mutation.carry_progress("core.registry", one, SOURCE, (1, 2))
    todo2 = mutation.carry_progress("core.registry", two, SOURCE, (2, 2))
    total = todo1["total"]
    assert todo2["total"] == total and todo1["pending"] + todo2["pending"] == total
    assert todo1["pending"] == todo2["aside"] and todo2["pending"] == todo1["aside"] and min(todo1["pending"], todo2["pending"]) > 0
    _run(mutation, one, lambda key: TestOutcome.KILLED)
    _run(mutation, two, lambda key: TestOutcome.KILLED)
    ran1, ran2 = mutation.session_outcomes(one)[0], mutation.session_outcomes(two)[0]
    assert not set(ran1) & set(ran2) and len(ran1) + len(ran2) == total  # disjoint, and together every mutant
    record = mutation.conclude("core.registry", one, SOURCE, "part-1", "abc", 10.0, total)
    assert record["unrun"] == len(ran2)  # the other part has not finished
    record = mutation.conclude("core.registry", two, SOURCE, "part-2", "abc", 12.0, total)
    assert "unrun" not in record and record["killed"] == total and record["commit"] == "abc" and record["seconds"] == 22
    assert not (tmp_path / "progress" / "core.registry.json").exists()


def test_kept_outcomes_of_a_changed_source_are_not_carried(mutation, tmp_path, monkeypatch):
    from cosmic_ray.work_item import TestOutcome
    monkeypatch.setattr(mutation, "PROGRESS", tmp_path / "progress")
    first = _session(mutation, tmp_path, "first.sqlite", SOURCE)
    total = mutation.carry_progress("core.registry", first, SOURCE)["total"]
    _run(mutation, first, lambda key: TestOutcome.KILLED if "Replace" in key else None)
    assert mutation.conclude("core.registry", first, SOURCE, "s1", "abc", 1.0, total).get("unrun")
    changed = SOURCE.replace("a + 1", "a - 1")
    second = _session(mutation, tmp_path, "second.sqlite", changed)
    todo = mutation.carry_progress("core.registry", second, changed)
    assert todo["carried"] == 0 and todo["pending"] == todo["total"]  # nothing set: the run starts over


def test_kept_progress_is_that_of_a_recorded_partial_run(mutation):
    # the next sitting carries these outcomes over: they must be the ones the report's partial figure counts
    import json
    for kept in sorted(mutation.PROGRESS.glob("*.json")) if mutation.PROGRESS.is_dir() else []:
        progress, record = json.loads(kept.read_text()), mutation.load_results()[kept.stem]
        assert progress["module"] == kept.stem and record.get("unrun"), kept.name
        assert len(progress["outcomes"]) == record["killed"] + record["survived"] + record["incompetent"], kept.name
        assert progress["total"] == len(progress["outcomes"]) + record["unrun"], kept.name
        assert sum(o["test"] == "survived" for o in progress["outcomes"].values()) == record["survived"], kept.name
        assert mutation._record(kept.stem, progress["outcomes"], progress["total"], progress["sittings"]) == \
            {**record, "date": mutation._dt.date.today().isoformat()}, kept.name
