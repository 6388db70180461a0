"""The casashell face over a plain dict namespace: inp, go, default, tget, tput."""

import pytest

from almatools.casa_tasks.shell import ShellTask, install, read_inputs_file
from almatools.errors import TaskParameterError
from almatools.registry import TaskRegistry, TaskSource, make_plugin_manager
from sample_tasks import sampletask, write_sample


@pytest.fixture
def registry(tmp_path):
    reg = TaskRegistry(make_plugin_manager(load_entrypoints=False))
    reg.add(TaskSource(xml=write_sample(tmp_path), impl=sampletask), plugin="sample")
    return reg


@pytest.fixture
def ns(registry, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    assert install(namespace, registry) == ["sampletask"]
    return namespace


@pytest.fixture
def vis(tmp_path):
    (tmp_path / "x.ms").mkdir()
    return str(tmp_path / "x.ms")


def test_install_binds_shelltasks_and_respects_existing_names(registry):
    ns = {"sampletask": "user's own variable"}
    assert install(ns, registry) == []
    assert ns["sampletask"] == "user's own variable"
    ns = {}
    install(ns, registry)
    assert isinstance(ns["sampletask"], ShellTask)
    # the duck-typed protocol casashell's inp/go/default/tget/tput look for
    assert {"inp", "set_global_defaults", "tget", "tput", "saveinputs"} <= set(dir(ns["sampletask"]))


def test_global_parameter_style(ns, vis, tmp_path):
    ns["vis"] = vis
    ns["mode"] = "get"
    ns["niter"] = 5
    result = ns["sampletask"]()  # what `go sampletask` does
    assert result["vis"] == vis and result["mode"] == "get" and result["niter"] == 5
    assert result["hdkey"] == "beammajor"  # subparameter default from the constraint
    assert (tmp_path / "sampletask.last").is_file()


def test_explicit_arguments_ignore_globals(ns, vis):
    ns["niter"] = 5
    assert ns["sampletask"](vis=vis)["niter"] == 10


def test_inactive_subparameter_global_is_ignored(ns, vis):
    ns.update(vis=vis, mode="summary", hdkey="leftover")
    assert ns["sampletask"]()["hdkey"] == ""


def test_invalid_global_raises_at_go(ns, vis):
    ns.update(vis=vis, niter=-3)
    with pytest.raises(TaskParameterError, match="'niter' must lie in"):
        ns["sampletask"]()


def test_inp_shows_active_parameters_and_marks_changes(ns, vis):
    ns.update(vis=vis, niter=-3)
    text = ns["sampletask"].inp_text(color=False)
    lines = text.splitlines()
    assert lines[0] == "# sampletask :: A sample task exercising the XML dialect"
    assert any(line.startswith("vis ") and repr(vis) in line and "# Input MeasurementSet" in line for line in lines)
    assert not any(line.strip().startswith("hdkey") for line in lines)  # mode='summary' hides it
    assert any(line.startswith("niter") and "!! must lie in" in line for line in lines)
    ns["mode"] = "get"
    text = ns["sampletask"].inp_text(color=True)
    assert "     hdkey" in text and "'beammajor'" in text
    assert "\x1b[31m-3\x1b[0m" in text  # invalid in red
    assert "\x1b[34m'get'\x1b[0m" in text  # non-default in blue


def test_default_clears_globals(ns, vis):
    ns.update(vis=vis, niter=3, unrelated=1)
    ns["sampletask"].set_global_defaults()
    assert "vis" not in ns and "niter" not in ns and ns["unrelated"] == 1


def test_tput_tget_round_trip(ns, vis, tmp_path):
    ns.update(vis=vis, mode="get", niter=42, spws=[3, 4], options={"a": 1.5})
    path = ns["sampletask"].tput()
    text = (tmp_path / "sampletask.last").read_text()
    assert path == "sampletask.last"
    assert f"vis       = {vis!r}" in text and "niter     = 42" in text
    assert text.splitlines()[-1].startswith("#sampletask( vis=")
    ns["sampletask"].set_global_defaults()
    assert "niter" not in ns
    ns["sampletask"].tget()
    assert (ns["vis"], ns["mode"], ns["niter"], ns["spws"], ns["options"]) == (vis, "get", 42, [3, 4], {"a": 1.5})
    ns["sampletask"].saveinputs("saved.inputs")
    assert read_inputs_file(tmp_path / "saved.inputs", ["niter"]) == {"niter": 42}


def test_tget_does_not_execute_the_file(ns, tmp_path):
    (tmp_path / "sampletask.last").write_text("niter = __import__('os').getpid()\n")
    with pytest.raises(ValueError, match="line 1: value of 'niter' is not a literal"):
        ns["sampletask"].tget()


def test_tget_without_file_is_a_clear_error(ns):
    with pytest.raises(FileNotFoundError, match="sampletask: no saved inputs found"):
        ns["sampletask"].tget()


# --------------------------------------------------------------------------- .last files, hostile and careless

from hypothesis import given, strategies as st  # noqa: E402

from almatools.errors import InputFileError, OutputPathError, ResourceLimitError  # noqa: E402
from almatools.casa_tasks import shell as shell_module  # noqa: E402

NAMES = ["vis", "mode", "hdkey", "niter", "threshold", "verbose", "spws", "fitspec", "options"]
_CANARY_CODE = ["__import__('os').system('touch {c}')", "open('{c}', 'w')", "exec(\"open('{c}','w')\")",
                "[open('{c}','w') for _ in 'x']", "(lambda: open('{c}','w'))()"]


_LINE = st.one_of(
    st.builds(lambda k, v: f"{k} = {v!r}", st.sampled_from(NAMES + ["other"]),
              st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=2))),
    st.builds(lambda k, code: f"{k} = {code}", st.sampled_from(NAMES), st.sampled_from(_CANARY_CODE)),
    st.text(), st.just(""), st.just("#sampletask( vis='x.ms' )"),
    st.integers(0, 2000).map(lambda n: "niter = " + "[" * n + "]" * n),
    st.integers(0, 2000).map(lambda n: "niter = " + "-" * n + "1"),
)


@pytest.mark.fuzz
@given(st.one_of(st.binary(max_size=400), st.lists(_LINE, max_size=8).map("\n".join).map(str.encode)))
def test_inputs_file_reader_never_executes_and_never_crashes(scratch, data):
    folder = scratch
    canary = folder / "CANARY"
    text = data.replace(b"{c}", str(canary).encode())
    (folder / "sampletask.last").write_bytes(text)
    try:
        values = read_inputs_file(folder / "sampletask.last", NAMES)
    except (InputFileError, ResourceLimitError) as exc:
        assert str(folder / "sampletask.last") in str(exc)
    else:
        assert set(values) <= set(NAMES)
    assert not canary.exists()


_VALUE = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                      | st.text(), lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c,
                                                                                      max_size=3), max_leaves=8)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """One folder for every generated input of a test (each input overwrites the same file)."""
    return tmp_path_factory.mktemp("generated")


@pytest.fixture(scope="module")
def shared_task(tmp_path_factory):
    reg = TaskRegistry(make_plugin_manager(load_entrypoints=False))
    return reg.add(TaskSource(xml=write_sample(tmp_path_factory.mktemp("xml")), impl=sampletask), plugin="sample")


@given(st.dictionaries(st.sampled_from(NAMES), _VALUE, min_size=1))
def test_tput_then_read_gives_back_every_value(scratch, shared_task, values):
    folder = scratch
    task = ShellTask(shared_task, {})
    path = task.tput(str(folder / "saved.last"), values=values)
    assert read_inputs_file(path, NAMES) == values


def test_binary_and_non_utf8_inputs_files_name_the_file_and_line(ns, tmp_path):
    last = tmp_path / "sampletask.last"
    last.write_bytes(b"niter = 3\nvis = '\xe9t\xe9.ms'\n")  # Latin-1, not UTF-8
    with pytest.raises(InputFileError, match=r"sampletask.last: line 2: is not utf-8 text"):
        ns["sampletask"].tget()
    last.write_bytes(b"\x00\x01\x02ELF")
    with pytest.raises(InputFileError, match=r"sampletask.last: is not a task inputs file \(it holds NUL bytes"):
        ns["sampletask"].tget()
    last.write_text("niter = 3\nthis is prose\n")
    with pytest.raises(InputFileError, match=r"line 2: not a task inputs file: expected 'name = value'"):
        ns["sampletask"].tget()


def test_oversized_and_fifo_inputs_files_are_refused(ns, tmp_path):
    big = tmp_path / "big.last"
    with open(big, "wb") as fh:
        fh.truncate(shell_module.MAX_INPUTS_FILE + 1)
    with pytest.raises(ResourceLimitError, match="big.last' needs 4.0 MiB read into memory; the bound is 4.0 MiB"):
        ns["sampletask"].tget(str(big))
    import os
    os.mkfifo(tmp_path / "fifo.last")
    with pytest.raises(InputFileError, match="is a FIFO, not a regular file"):
        read_inputs_file(tmp_path / "fifo.last", NAMES)


def test_saveinputs_into_a_directory_is_a_clear_error(ns, vis, tmp_path):
    (tmp_path / "inputs").mkdir()
    ns.update(vis=vis, niter=5)
    with pytest.raises(OutputPathError, match=r"inputs: is an existing directory, not a file name"):
        ns["sampletask"].saveinputs(str(tmp_path / "inputs"))
    assert list((tmp_path / "inputs").iterdir()) == []


def test_tput_writes_the_values_the_task_will_use(ns, vis, tmp_path):
    import numpy as np
    ns.update(vis=vis, mode=" GET", spws=np.array([3, 4]), threshold=np.float32(0.5))
    ns["sampletask"].tput()
    assert read_inputs_file(tmp_path / "sampletask.last", NAMES) | {} == {
        "vis": vis, "mode": "get", "hdkey": "beammajor", "niter": 10, "threshold": 0.5, "verbose": False,
        "spws": [3, 4], "fitspec": "", "options": {}}
