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
