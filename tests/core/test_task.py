"""Binding, coercion, validation, constraints, logging and help of a Task built from XML."""

import inspect
import subprocess
import sys

import pytest

from almatools.errors import TaskParameterError
from almatools.registry import TaskRegistry, TaskSource, make_plugin_manager
from sample_tasks import sampletask, write_sample


@pytest.fixture
def task(tmp_path):
    registry = TaskRegistry(make_plugin_manager(load_entrypoints=False))
    return registry.add(TaskSource(xml=write_sample(tmp_path), impl=sampletask), plugin="sample")


@pytest.fixture
def vis(tmp_path):
    path = tmp_path / "data.ms"
    path.mkdir()
    return str(path)


def test_defaults_come_from_the_xml(task, vis):
    result = task(vis=vis)
    assert result == dict(vis=vis, mode="summary", hdkey="", niter=10, threshold=0.5, verbose=False,
                          spws=[0, 1], fitspec="", options={})


def test_positional_in_xml_order_and_keywords_bind_alike(task, vis):
    assert task(vis, "get", niter=3) == task(vis=vis, mode="get", niter=3)
    assert task(vis, "get", niter=3)["niter"] == 3


def test_coercion(task, vis):
    r = task(vis=vis, niter=4.0, threshold=2, spws=3, fitspec={"0": "1~2"})
    assert r["niter"] == 4 and type(r["niter"]) is int
    assert r["threshold"] == 2.0 and type(r["threshold"]) is float
    assert r["spws"] == [3]
    assert r["fitspec"] == {"0": "1~2"}
    import numpy as np
    assert task(vis=vis, spws=np.array([4, 5]))["spws"] == [4, 5]


def test_constraint_sets_subparameter_default(task, vis):
    assert task(vis=vis, mode="get")["hdkey"] == "beammajor"
    # mode ignores case and is normalised first, so the constraint sees 'get'
    assert task(vis=vis, mode=" GET")["hdkey"] == "beammajor"
    assert task(vis=vis, mode="get", hdkey="bunit")["hdkey"] == "bunit"


@pytest.mark.parametrize("kwargs,param,rule", [
    (dict(niter=-1), "niter", "must lie in [0.0, 1000.0]"),
    (dict(niter=2.5), "niter", "must be an integer"),
    (dict(niter=True), "niter", "must be an integer"),
    (dict(mode="everything"), "mode", "must be one of ['summary', 'get']"),
    (dict(threshold="big"), "threshold", "must be a number"),
    (dict(verbose="yes"), "verbose", "must be True or False"),
    (dict(spws=["a"]), "spws", "must be a list of int values"),
    (dict(fitspec=3), "fitspec", "must be of type string or record"),
    (dict(options=[1]), "options", "must be a dictionary"),
])
def test_bad_values_raise_valueerror_naming_task_param_rule_value(task, vis, kwargs, param, rule):
    with pytest.raises(TaskParameterError) as info:
        task(vis=vis, **kwargs)
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.task, err.param) == ("sampletask", param)
    message = str(err)
    assert message.startswith(f"sampletask: parameter '{param}' ")
    assert rule in message and repr(kwargs[param]) in message


def test_ignorecase_enum_reaches_the_implementation_in_the_xml_spelling(task, vis):
    assert task(vis=vis, mode="SUMMARY")["mode"] == "summary"
    assert task(vis=vis, mode="Get ")["mode"] == "get"


def test_mustexist(task, tmp_path):
    with pytest.raises(TaskParameterError, match=r"'vis' must name an existing file or directory \(it is empty\)"):
        task()
    with pytest.raises(TaskParameterError, match="does not exist"):
        task(vis=str(tmp_path / "missing.ms"))


def test_unknown_parameter_is_named(task, vis):
    with pytest.raises(TaskParameterError, match="'nitre' is not a parameter of this task"):
        task(vis=vis, nitre=3)
    with pytest.raises(TypeError, match="sampletask: too many positional arguments"):
        task(vis, "get", "", 1, 0.1, False, [0], "", {}, "extra")


def test_signature_and_help_come_from_the_xml(task):
    sig = inspect.signature(task)
    assert list(sig.parameters) == ["vis", "mode", "hdkey", "niter", "threshold", "verbose", "spws",
                                    "fitspec", "options"]
    assert sig.parameters["niter"].default == 10
    doc = inspect.getdoc(task)
    assert doc.startswith("A sample task exercising the XML dialect")
    assert "niter : int, default 10" in doc and "Range: 0.0 .. 1000.0" in doc
    assert "hdkey : string, default '' (subparameter of mode)" in doc
    assert "When mode = 'get': hdkey='beammajor'" in doc
    assert "Allowed: 'summary', 'get'" in doc
    assert "sampletask(vis='x.ms', mode='get')" in doc
    import pydoc
    rendered = pydoc.render_doc(task, renderer=pydoc.plaintext)
    assert "Iterations" in rendered and "beammajor" in rendered


def test_implementation_exception_propagates_with_task_named(tmp_path, vis):
    def sampletask_failing(vis, mode, hdkey, niter, threshold, verbose, spws, fitspec, options):
        raise RuntimeError("disk on fire")
    registry = TaskRegistry(make_plugin_manager(load_entrypoints=False))
    task = registry.add(TaskSource(xml=write_sample(tmp_path), impl=sampletask_failing))
    with pytest.raises(RuntimeError, match="disk on fire") as info:
        task(vis=vis)
    assert "(raised in almatools task 'sampletask')" in info.value.__notes__


def test_casalog_lines(task, vis, casa_log_file):
    task(vis=vis, niter=7)
    text = casa_log_file.read_text()
    begin = text.rfind("##### Begin Task: sampletask")
    assert begin >= 0
    chunk = text[begin:]
    lines = chunk.splitlines()
    assert "sampletask::::" in lines[0] or "sampletask" in lines[0]
    assert any(f"sampletask( vis='{vis}', mode='summary'" in line and "niter=7" in line for line in lines)
    assert any("Elapsed time:" in line for line in lines)
    assert any("##### End Task: sampletask" in line for line in lines)
    origin_lines = [line for line in lines[:4] if "\t" in line]
    assert all(line.split("\t")[2].startswith("sampletask") for line in origin_lines)


def test_validation_holds_under_python_O(tmp_path):
    code = f"""
import sys
sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r})
from pathlib import Path
from almatools.registry import TaskRegistry, TaskSource, make_plugin_manager
from almatools.errors import TaskParameterError
from sample_tasks import sampletask, write_sample
registry = TaskRegistry(make_plugin_manager(load_entrypoints=False))
task = registry.add(TaskSource(xml=write_sample(Path({str(tmp_path)!r})), impl=sampletask))
try:
    task(vis={str(tmp_path)!r}, niter=-5)
except TaskParameterError as exc:
    print("REFUSED", exc)
else:
    print("ACCEPTED")
print("casatools imported:", "casatools" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "REFUSED sampletask: parameter 'niter' must lie in [0.0, 1000.0]; got -5" in out.stdout
