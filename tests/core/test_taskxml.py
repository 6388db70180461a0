"""CASA task XML parsing: the dialect, and refusals naming file and element."""

import importlib.util
from pathlib import Path

import pytest

from almatools.errors import TaskDefinitionError
from almatools.taskxml import parse_task_xml
from sample_tasks import SAMPLE_XML, write_sample


def test_sample_parses_every_construct(tmp_path):
    spec = parse_task_xml(write_sample(tmp_path))
    assert spec.name == "sampletask"
    assert spec.category == "testing, almatools"
    assert spec.shortdescription == "A sample task exercising the XML dialect"
    assert spec.names == ["vis", "mode", "hdkey", "niter", "threshold", "verbose", "spws", "fitspec", "options"]
    p = {p.name: p for p in spec.params}
    assert p["vis"].type == "path" and p["vis"].mustexist and p["vis"].default == ""
    assert p["mode"].allowed == ("summary", "get") and p["mode"].ignorecase
    assert p["hdkey"].subparam and p["hdkey"].default == ""
    assert p["niter"].default == 10 and p["niter"].range == (0.0, 1000.0)
    assert p["threshold"].default == 0.5 and isinstance(p["threshold"].default, float)
    assert p["verbose"].default is False
    assert p["spws"].type == "intVec" and p["spws"].default == [0, 1]
    assert p["fitspec"].accepts == ("string", "record") and p["fitspec"].default == ""
    assert p["options"].default == {}
    (cond,) = spec.constraints
    assert (cond.param, cond.op, cond.value, cond.defaults) == ("mode", "equals", "get", {"hdkey": "beammajor"})
    assert spec.returns == "record"
    assert "sampletask(vis='x.ms'" in spec.example


@pytest.mark.parametrize("old,new,element,problem", [
    ('<value>10</value>\n      <allowed kind="range">', '<value>5000</value>\n      <allowed kind="range">',
     "<param name='niter'> <value>", "must lie in [0.0, 1000.0]"),
    ('<value>summary</value>', '<value>everything</value>', "<param name='mode'> <value>", "must be one of"),
    ('type="double" name="threshold"', 'type="quaternion" name="threshold"', "<param name='threshold'>",
     "unknown type 'quaternion'"),
    ('<value>0.5</value>', '<value>half</value>', "<param name='threshold'> <value>", "'half' is not a number"),
    ('<equals value="get">', '<equals value="get"><bogus/>', "<equals value='get'>", "unknown element <bogus>"),
    ('<when param="mode">', '<when param="nomode">', "<when param='nomode'>", "names no declared parameter"),
    ('<default param="hdkey">', '<default param="nokey">', "<default param='nokey'>", "names no declared parameter"),
    ('name="verbose"', 'name="threshold"', "<param name='threshold'>", "is declared twice"),
    ('<shortdescription>Iterations', '<unknown/><shortdescription>Iterations', "<param name='niter'>",
     "unknown element <unknown>"),
    ('name="sampletask"', 'name="Sample Task"', "<task name>", "lower-case Python identifier"),
])
def test_bad_definitions_name_file_and_element(tmp_path, old, new, element, problem):
    assert old in SAMPLE_XML
    path = write_sample(tmp_path, SAMPLE_XML.replace(old, new, 1))
    with pytest.raises(TaskDefinitionError) as info:
        parse_task_xml(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert element in message and problem in message, message


def test_malformed_xml_names_line(tmp_path):
    path = write_sample(tmp_path, SAMPLE_XML.replace("</input>", "</inptu>"))
    with pytest.raises(TaskDefinitionError, match=r"sampletask.xml: line \d+: malformed XML"):
        parse_task_xml(path)


def test_missing_file(tmp_path):
    with pytest.raises(TaskDefinitionError, match="cannot be read"):
        parse_task_xml(tmp_path / "absent.xml")


CASA_XML = Path(importlib.util.find_spec("casatasks").submodule_search_locations[0]) / "__xml__"

# Defects in CASA 6.7.0.31's own XML that this parser reports (each verified by reading the file).
CASA_DEFECTS = {
    "gencal.xml": "default '' must be one of",           # caltype default is not an allowed value
    "imbaseline.xml": "<default param='fftmethod'>",      # constraint on a parameter that does not exist
    "imval.xml": "unknown element <bogus_output>",
    "sdcal.xml": "unknown element <kwarg>",
    "sdintimaging.xml": "<default param='doweight'>",
    "tclean.xml": "<default param='doweight'>",
    "simalma.xml": "unknown element <needs>",
    "specfit.xml": "<default param='pampest'>",           # '' for a double/doubleVec parameter
}


def test_casas_own_task_xml_parses_or_its_defect_is_named():
    files = sorted(CASA_XML.glob("*.xml"))
    assert len(files) >= 120
    failures = {}
    for f in files:
        try:
            spec = parse_task_xml(f)
        except TaskDefinitionError as exc:
            failures[f.name] = str(exc)
        else:
            assert spec.name and spec.params is not None
    assert sorted(failures) == sorted(CASA_DEFECTS)
    for name, fragment in CASA_DEFECTS.items():
        assert fragment in failures[name] and failures[name].startswith(str(CASA_XML / name))


def test_casa_constraint_literals_are_read_as_python_literals():
    spec = parse_task_xml(CASA_XML / "imhead.xml")
    hdkey = spec.conditions_for("hdkey")
    assert hdkey and all(isinstance(c.defaults["hdkey"], str) for c in hdkey)
