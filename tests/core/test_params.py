"""Values at the edges: NaN and infinities, enum spellings, command-line text — generated, not listed."""

import math

import pytest
from hypothesis import given, strategies as st

from almatools.errors import TaskDefinitionError, TaskParameterError
from almatools.params import from_cli_text
from almatools.registry import TaskRegistry, TaskSource, make_plugin_manager
from almatools.taskxml import ParamSpec, parse_task_xml
from sample_tasks import write_sample

EDGE_XML = """<?xml version="1.0" encoding="UTF-8"?>
<casaxml xmlns="http://casa.nrao.edu/schema/psetTypes.html">
<task type="function" name="edgetask" category="testing">
  <shortdescription>Numbers and enums at their edges</shortdescription>
  <input>
    <param type="double" name="tolerance">
      <shortdescription>A bounded fraction</shortdescription>
      <value>0.1</value>
      <allowed kind="range"><value range="min">0.001</value><value range="max">10</value></allowed>
    </param>
    <param type="double" name="freqstep">
      <shortdescription>Any number</shortdescription>
      <value>100.0</value>
    </param>
    <param type="doubleVec" name="values">
      <shortdescription>Numbers</shortdescription>
      <value/>
    </param>
    <param type="any" name="threshold">
      <shortdescription>A number or a quantity string</shortdescription>
      <type>double</type><type>string</type>
      <value type="double">0.0</value>
    </param>
    <param type="double" name="limit" nonfinite="true">
      <shortdescription>inf means no limit</shortdescription>
      <value>inf</value>
    </param>
    <param type="string" name="approximation">
      <shortdescription>rj or planck</shortdescription>
      <value>rj</value>
      <allowed kind="enum" ignorecase="true"><value>rj</value><value>planck</value></allowed>
    </param>
    <param type="string" name="outformat">
      <shortdescription>Output format</shortdescription>
      <value></value>
      <allowed kind="enum" ignorecase="true"><value></value><value>casa</value><value>fits</value></allowed>
    </param>
    <param type="stringVec" name="frames">
      <shortdescription>Frames, case as CASA spells them</shortdescription>
      <value><value>LSRK</value></value>
      <allowed kind="enum" ignorecase="true"><value>LSRK</value><value>BARY</value><value>TOPO</value></allowed>
    </param>
    <param type="string" name="mode">
      <shortdescription>Case matters here</shortdescription>
      <value>a</value>
      <allowed kind="enum"><value>a</value><value>A</value></allowed>
    </param>
  </input>
  <returns type="record"/>
</task>
</casaxml>
"""


def edgetask(tolerance, freqstep, values, threshold, limit, approximation, outformat, frames, mode):
    return dict(tolerance=tolerance, freqstep=freqstep, values=values, threshold=threshold, limit=limit,
                approximation=approximation, outformat=outformat, frames=frames, mode=mode)


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    registry = TaskRegistry(make_plugin_manager(load_entrypoints=False))
    xml = write_sample(tmp_path_factory.mktemp("edge"), EDGE_XML, "edgetask.xml")
    return registry.add(TaskSource(xml=xml, impl=edgetask), plugin="sample")


NONFINITE = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("bad", NONFINITE, ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("param,wrap", [("tolerance", None), ("freqstep", None), ("threshold", None),
                                        ("values", lambda v: [1.0, v])])
def test_nan_and_infinities_are_refused_naming_the_parameter(task, param, wrap, bad):
    with pytest.raises(TaskParameterError) as info:
        task(**{param: wrap(bad) if wrap else bad})
    assert info.value.param == param
    assert "NaN and infinities are not accepted" in str(info.value)
    if wrap:
        assert f"element 1 is {bad!r}" in str(info.value)


def test_numpy_nan_and_text_nan_from_the_command_line_are_refused(task):
    import numpy as np
    with pytest.raises(TaskParameterError, match="'values' must be finite numbers"):
        task(values=np.array([1.0, np.nan]))
    spec = task.spec.param("freqstep")
    for text in ("nan", "inf", "-Infinity", "1e400"):  # 1e400 overflows to inf when read
        with pytest.raises(TaskParameterError, match="finite"):
            task(freqstep=from_cli_text(spec, text))


def test_the_xml_can_allow_nonfinite_values(task):
    assert task()["limit"] == math.inf
    assert math.isnan(task(limit=math.nan)["limit"])


def test_a_nonfinite_default_needs_the_xml_to_allow_it(tmp_path):
    text = EDGE_XML.replace('name="limit" nonfinite="true"', 'name="limit"')
    with pytest.raises(TaskDefinitionError, match="<param name='limit'> <value>: default inf must be a finite"):
        parse_task_xml(write_sample(tmp_path, text, "edgetask.xml"))


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_range_checked_doubles_accept_exactly_the_finite_values_in_range(task, x):
    expected = math.isfinite(x) and 0.001 <= x <= 10  # the rule, restated independently
    try:
        got = task(tolerance=x)["tolerance"]
    except TaskParameterError:
        assert not expected
    else:
        assert expected and got == x


def _respell(rng, word: str) -> str:
    """*word* in random upper/lower case with surrounding spaces, as users type it."""
    cased = "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in word)
    return " " * rng.randint(0, 2) + cased + " " * rng.randint(0, 2)


@given(st.randoms(use_true_random=False), st.sampled_from(["rj", "planck"]), st.sampled_from(["", "casa", "fits"]),
       st.lists(st.sampled_from(["LSRK", "BARY", "TOPO"]), min_size=1, max_size=4))
def test_ignorecase_enums_reach_the_implementation_in_the_xml_spelling(task, rng, approx, fmt, frames):
    r = task(approximation=_respell(rng, approx), outformat=_respell(rng, fmt),
             frames=[_respell(rng, f) for f in frames])
    assert (r["approximation"], r["outformat"], r["frames"]) == (approx, fmt, frames)


def test_case_sensitive_enums_keep_their_case(task):
    assert task(mode="A")["mode"] == "A" and task(mode="a")["mode"] == "a"
    with pytest.raises(TaskParameterError, match="must be one of"):
        task(mode="b")


def test_known_failures_from_the_issue(task):
    """approximation='RJ' and outformat='FITS' used to reach the implementation as typed."""
    r = task(approximation="RJ", outformat="FITS")
    assert (r["approximation"], r["outformat"]) == ("rj", "fits")


CLI_SPECS = [ParamSpec("s", "string", ""), ParamSpec("p", "path", ""), ParamSpec("i", "int", 0),
             ParamSpec("d", "double", 0.0), ParamSpec("b", "bool", False), ParamSpec("r", "record", {}),
             ParamSpec("iv", "intVec", []), ParamSpec("dv", "doubleVec", []), ParamSpec("sv", "stringVec", []),
             ParamSpec("bv", "boolVec", []), ParamSpec("a", "any", "", accepts=("int", "string")),
             ParamSpec("ar", "any", "", accepts=("record", "string")), ParamSpec("an", "any", "")]

# text shaped like what people type: numbers, lists, literals, nesting, and plain noise
_CLI_TEXT = st.one_of(
    st.text(),
    st.text(alphabet="[](){}'\",:-+.0123456789eEinfatrueslNI_ ~xj\\", max_size=60),
    st.integers(min_value=0, max_value=3000).map(lambda n: "[" * n + "1" + "]" * n),
    st.integers(min_value=0, max_value=3000).map(lambda n: "-" * n + "1"),
    st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                 lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=4), c, max_size=3)).map(repr),
)


@pytest.mark.fuzz
@given(st.sampled_from(CLI_SPECS), _CLI_TEXT)
def test_cli_value_parser_returns_a_value_or_a_valueerror(spec, text):
    try:
        value = from_cli_text(spec, text)
    except ValueError as exc:
        assert str(exc)
        return
    if spec.type in ("string", "path"):
        assert value == text
    elif spec.type == "int":
        assert isinstance(value, int)
    elif spec.type == "double":
        assert isinstance(value, float)
    elif spec.type == "bool":
        assert isinstance(value, bool)
    elif spec.type.endswith("Vec"):
        assert isinstance(value, list)
