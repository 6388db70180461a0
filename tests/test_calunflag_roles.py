"""calunflag's field roles: literal field selections, the precedence of evidence, and what comments may say.

Every expected value here is read off the input the test writes: the intents of the header lines, the
line a call or a comment sits on, the indices a selection spells out.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from almatools.plugins.calunflag.edit import CALL_NAMES
from almatools.plugins.calunflag.roles import (MAX_FIELD_RANGE, Evidence, FieldRoles, decide,
                                               parse_field_selection, roles_from_names, roles_from_script)
from almatools.plugins.calunflag.scan import Expr, find_calls

LABEL = "x.ms.scriptForCalibration.py"
#: the documented bound: all the field selections of one file name at most this many fields together
BUDGET = 100_000
TOO_MANY = f"is not read: this file's field selections name more than {BUDGET} fields in all"


def line_of(text, fragment, nth=0):
    """1-based number of the *nth* line holding *fragment*."""
    numbers = [i + 1 for i, line in enumerate(text.split("\n")) if fragment in line]
    return numbers[nth]


def read(text, roles=None):
    """The roles a script gives, read the way calunflag reads a script."""
    calls = find_calls(text, CALL_NAMES, LABEL)
    return roles_from_script(LABEL, text, calls, roles if roles is not None else FieldRoles())


def ranges(count, width=MAX_FIELD_RANGE):
    """A selection of exactly *count* field indices (0 .. count-1), in ranges no wider than allowed."""
    parts, lo = [], 0
    while lo < count:
        hi = min(lo + width, count) - 1
        parts.append(f"{lo}~{hi}")
        lo = hi + 1
    return ",".join(parts)


# ---- parse_field_selection -----------------------------------------------------------------------

def test_literal_values_of_every_accepted_type():
    assert (parse_field_selection(3).indices, parse_field_selection(3).names) == (["3"], [])
    s = parse_field_selection(["0", 1, "Titan"])
    assert (s.indices, s.names, s.problem) == (["0", "1"], ["Titan"], "")
    s = parse_field_selection(("J1058+0133", 7))
    assert (s.indices, s.names, s.problem) == (["7"], ["J1058+0133"], "")
    s = parse_field_selection("Titan,,J1058+0133, ,;2")  # empty parts between separators are skipped
    assert (s.indices, s.names, s.problem) == (["2"], ["Titan", "J1058+0133"], "")
    s = parse_field_selection(",0")
    assert (s.indices, s.names, s.problem) == (["0"], [], "")
    s = parse_field_selection("3~3")
    assert (s.indices, s.problem) == (["3"], "")
    s = parse_field_selection("6000~6005")
    assert (s.indices, s.problem) == ([str(i) for i in range(6000, 6006)], "")
    s = parse_field_selection("4~2")
    assert s.problem == "holds the reversed range '4~2'" and not s.indices


@pytest.mark.parametrize("value, problem", [
    (True, "is True, not a field selection"),
    (False, "is False, not a field selection"),
    (None, "is None, not a field selection"),
    ([True, 2], "is list '[True, 2]', not a field selection"),
    ([1.5], "is list '[1.5]', not a field selection"),
])
def test_booleans_none_and_mixed_lists_are_not_selections(value, problem):
    s = parse_field_selection(value)
    assert (s.problem, s.indices, s.names) == (problem, [], [])


def test_long_values_are_quoted_to_their_first_characters():
    expression = "calibrator_fields_for_this_execution_block[0] + ',' + other_fields_of_the_block[1:]"
    assert len(expression) > 61
    assert parse_field_selection(Expr(expression)).problem == \
        f"is the Python expression {expression[:60]!r}, not a literal"
    floats = [0.125] * 20
    assert len(str(floats)) > 61
    assert parse_field_selection(floats).problem == f"is list {str(floats)[:60]!r}, not a field selection"
    digits = "1234567890" * 3
    assert parse_field_selection(digits).problem == f"holds {digits[:20]!r}..., not a field index"
    pattern = "J*" * 40
    assert parse_field_selection(pattern).problem == (
        f"holds {pattern[:60]!r}, not a literal field name or index "
        "(patterns, operators and expressions are not read)")


@pytest.mark.parametrize("value, limit, indices, names, problem", [
    ("0,1", 2, ["0", "1"], [], ""),  # exactly the limit is read
    ("Titan,Mars", 2, [], ["Titan", "Mars"], ""),
    ("Titan,Mars,Venus", 2, [], [], TOO_MANY),
    ("0~1", 2, ["0", "1"], [], ""),
    ("5~6", 2, ["5", "6"], [], ""),
    ("Titan,0~1", 3, ["0", "1"], ["Titan"], ""),
    ("0~2", 2, [], [], TOO_MANY),
    # a selection over the limit stops there: what follows is never looked at
    ("Titan,0,1,J*", 2, [], [], TOO_MANY),
    ("0~2,J*", 2, [], [], TOO_MANY),
    ("Titan,0~1,J*", 2, [], [], TOO_MANY),
    ("3~5,J*", 2, [], [], TOO_MANY),
])
def test_the_limit_counts_names_and_indices(value, limit, indices, names, problem):
    s = parse_field_selection(value, limit)
    assert (s.indices, s.names, s.problem) == (indices, names, problem)


_PART = st.one_of(st.integers(0, 40).map(lambda i: ("index", i, i)),
                  st.tuples(st.integers(0, 30), st.integers(0, 6)).map(lambda t: ("range", t[0], t[0] + t[1])),
                  st.sampled_from(["Titan", "J1058+0133", "NGC_1068", "3c279", "Mars"]).map(lambda n: ("name", n, n)))


@settings(max_examples=150, deadline=None)
@given(st.lists(_PART, max_size=8), st.integers(0, 30), st.sampled_from([",", ";", " , "]))
def test_property_literal_selections_spell_out_their_fields(parts, limit, sep):
    text = sep.join(str(a) if kind != "range" else f"{a}~{b}" for kind, a, b in parts)
    indices = [str(i) for kind, a, b in parts if kind != "name" for i in range(a, b + 1)]
    names = [a for kind, a, b in parts if kind == "name"]
    s = parse_field_selection(text, limit)
    if len(indices) + len(names) <= limit:
        assert (s.indices, s.names, s.problem) == (indices, names, "")
    else:
        assert (s.indices, s.names, s.problem) == ([], [], TOO_MANY)


def test_the_default_limit_is_the_per_file_budget():
    s = parse_field_selection(ranges(BUDGET))
    assert len(s.indices) == BUDGET and s.indices[-1] == str(BUDGET - 1) and s.problem == ""
    assert parse_field_selection(ranges(BUDGET) + ",Titan").problem == TOO_MANY


def test_one_files_selections_share_the_budget():
    roles = FieldRoles()
    assert len(roles.read_selection(ranges(BUDGET)).indices) == BUDGET  # a fresh file has the whole budget
    assert roles.read_selection("Titan").problem == TOO_MANY  # and nothing more
    roles = FieldRoles()
    assert roles.read_selection(ranges(60_000)).problem == ""
    assert roles.read_selection(ranges(50_000)).problem == TOO_MANY
    assert len(roles.read_selection(ranges(40_000)).indices) == 40_000
    roles = FieldRoles()
    assert roles.read_selection("Titan").names == ["Titan"]  # names count too
    assert roles.read_selection(ranges(BUDGET)).problem == TOO_MANY
    assert len(roles.read_selection(ranges(BUDGET - 1)).indices) == BUDGET - 1


# ---- decide: the precedence of evidence ---------------------------------------------------------

def test_the_ms_overrules_a_header_calling_a_field_a_target():
    ms = Evidence("phase", "ms", "intent CALIBRATE_PHASE#ON_SOURCE in x.ms")
    header = Evidence("target", "header", "h:3")
    v = decide("J0336-3616", [ms, header])
    assert (v.roles, v.source, v.evidence) == ({"phase"}, "ms", [ms])
    assert v.conflicts == ["J0336-3616: target (header: h:3) ignored: phase from ms wins"]


def test_a_weak_target_statement_beats_strong_calibrator_evidence_without_an_ms():
    comment, call = Evidence("target", "comment", "x.py:9"), Evidence("calibrator", "call", "x.py:20 gaincal")
    v = decide("NGC1387", [comment, call])
    assert (v.roles, v.source, v.evidence) == ({"target"}, "comment", [comment])
    assert v.conflicts == ["NGC1387: calibrator (call: x.py:20 gaincal) ignored: target from comment wins "
                           "(a science target is never a calibrator)"]


def test_a_field_the_ms_observes_as_target_and_calibrator_is_a_target():
    on_source = Evidence("target", "ms", "intent OBSERVE_TARGET#ON_SOURCE in x.ms")
    phase = Evidence("phase", "ms", "intent CALIBRATE_PHASE#ON_SOURCE in x.ms")
    header = Evidence("target", "header", "x.py:4")
    v = decide("NGC1387", [on_source, phase, header])
    assert (v.roles, v.source, v.evidence) == ({"target"}, "ms", [on_source, header])


# ---- FieldRoles: a field by name or by index ----------------------------------------------------

def test_name_and_index_evidence_are_combined_whichever_key_is_asked():
    roles = FieldRoles()
    roles.set_name("2", "J1058+0133", "the MS x.ms")
    header = Evidence("bandpass", "header", "x.py:5 '# CALIBRATE_BANDPASS: J1058+0133'")
    call = Evidence("bandpass", "call", "x.py:40 bandpass(field='2')")
    roles.add("J1058+0133", header.role, header.source, header.where)
    roles.add("2", call.role, call.source, call.where)
    for key in ("2", "J1058+0133"):
        v = roles.verdict(key)
        assert (v.name, v.roles, v.source, v.evidence) == ("J1058+0133", {"bandpass"}, "header", [header, call])
    # an index with no name has only its own evidence
    roles.add("5", "flux", "call", "x.py:41 setjy(field='5')")
    assert (roles.verdict("5").name, roles.verdict("5").roles) == ("5", {"flux"})


# ---- roles_from_script: header lines and calibration calls ----------------------------------------

def test_header_values_that_are_not_names_are_reported_with_their_line():
    prose = "the phase calibrator observed every ten minutes between the science scans"
    assert len(prose) > 61
    text = ("# CALIBRATE_FLUX: Titan\n"
            "# CALIBRATE_PHASE: J1037-2934, phase*Cal\n"
            f"# OBSERVE_CHECK: {prose}\n")
    roles = read(text)
    assert roles.not_read == [f"{LABEL}:2: 'phase*Cal' in '# CALIBRATE_PHASE' is not a field name",
                              f"{LABEL}:3: {prose[:60]!r} in '# OBSERVE_CHECK' is not a field name"]
    assert roles.declared == {"Titan", "J1037-2934"}
    assert roles.verdict("J1037-2934").roles == {"phase"}


def test_fluxscale_transfer_fields_are_calibrators_without_a_reference():
    text = "fluxscale(vis='x.ms', caltable='x.G', fluxtable='x.F', transfer='1')\n"
    v = read(text).verdict("1")
    assert (v.roles, v.source) == ({"calibrator"}, "call")
    assert [e.where for e in v.evidence] == [f"{LABEL}:1 fluxscale(transfer='1')"]


@pytest.mark.parametrize("length, shown", [(38, "'" + "A" * 38 + "'"), (39, "'" + "A" * 36 + "...")])
def test_call_evidence_quotes_values_up_to_40_characters(length, shown):
    text = f"\n\nsetjy(vis='x.ms', field='{'A' * length}', standard='manual')\n"
    assert [e.where for e in read(text).verdict("A" * length).evidence] == [f"{LABEL}:3 setjy(field={shown})"]


# ---- comments naming fields ---------------------------------------------------------------------

def flag(field, comment, spw="0:10~20"):
    return f"flagdata(vis='x.ms', mode='manual',\n         field='{field}', # {comment}\n         spw='{spw}')\n"


def test_a_comment_names_an_index_with_no_calls_on_it():
    text = "# CALIBRATE_PHASE: J1037-2934\n# OBSERVE_TARGET: TW_Hya\n\n" + flag("2", "J1037-2934")
    roles = read(text)
    assert (roles.names, roles.conflicts) == ({"2": "J1037-2934"}, [])
    assert roles.verdict("2").roles == {"phase"}


def test_the_first_comment_naming_an_index_is_where_its_name_comes_from():
    text = "# CALIBRATE_FLUX: Titan\n\n" + flag("2", "Titan") + "\n" + flag("2", "Titan", "1:5~6")
    roles = read(text)
    first = line_of(text, "# Titan")
    assert roles.names == {"2": "Titan"}
    assert roles.name_sources == {"2": f"comment {LABEL}:{first - 1}"}  # the call starts a line above


@pytest.mark.parametrize("count, more", [(3, ""), (4, " and 1 more"), (5, " and 2 more")])
def test_a_stale_comment_is_reported_at_its_first_three_places(count, more):
    text = "# CALIBRATE_FLUX: Titan\n" + "".join(flag("2", "J0000+0000", f"0:{i}~{i}") for i in range(count))
    places = [f"{LABEL}:{line_of(text, 'J0000+0000', i) - 1}" for i in range(count)]
    roles = read(text)
    assert roles.names == {}
    assert roles.conflicts == [f"field 2: comment at {', '.join(places[:3])}{more} names it 'J0000+0000'; ignored: "
                               "the script's header declares no field of that name (a stale comment?)"]


def test_comments_that_do_not_name_one_field_per_index_are_not_read():
    text = ("# CALIBRATE_BANDPASS: J1058+0133\n# CALIBRATE_FLUX: Titan\n"
            + flag("Titan,2", "J1058+0133")  # a name in the selection: which index is meant?
            + flag("2,3", "J1058+0133")  # two indices, one name
            + flag("4", "the bandpass"))  # prose
    roles = read(text)
    assert (roles.names, roles.conflicts) == ({}, [])


def test_a_reference_comment_is_read_whatever_the_field_argument_holds():
    header = "# CALIBRATE_FLUX: Titan\n# CALIBRATE_PHASE: J1037-2934\n"
    for field in ("", "field='Titan', # the flux calibrator\n", "field='1,2', # flux and phase\n",
                  "field=fluxField, # Titan\n"):
        text = header + f"fluxscale(vis='x.ms', caltable='x.G', fluxtable='x.F',\n          {field}" \
                        "          reference='0', # Titan\n          transfer='1')\n"
        roles = read(text)
        assert roles.names == {"0": "Titan"}, field
        assert roles.verdict("0").roles == {"flux"}


def test_a_name_commented_on_several_indices_names_none_but_a_target_keeps_its_flags():
    text = "# CALIBRATE_FLUX: Titan\n# OBSERVE_TARGET: TW_Hya\n" + flag("3", "TW_Hya") + flag("4", "TW_Hya")
    a, b = line_of(text, "# TW_Hya", 0) - 1, line_of(text, "# TW_Hya", 1) - 1
    roles = read(text)
    assert roles.names == {}
    assert roles.conflicts == [f"'TW_Hya': comments pair it with '3' ({LABEL}:{a}) and '4' ({LABEL}:{b}); "
                               "none used (nothing stronger tells them apart)"]
    for index, where in (("3", a), ("4", b)):
        v = roles.verdict(index)
        assert (v.roles, v.source) == ({"target"}, "comment")
        assert [e.where for e in v.evidence] == [f"{LABEL}:{where}: '# TW_Hya' (declared a science target)"]


def test_an_index_commented_with_several_names_keeps_the_one_its_calls_agree_with():
    text = ("# CALIBRATE_FLUX: Titan\n# CALIBRATE_BANDPASS: J1058+0133\n"
            "setjy(vis='x.ms', field='2', standard='Butler-JPL-Horizons 2012')\n"
            "gaincal(vis='x.ms', caltable='x.G', field='2')\n"
            + flag("2", "Titan") + flag("2", "J1058+0133"))
    titan, bp = line_of(text, "# Titan") - 1, line_of(text, "# J1058+0133") - 1
    roles = read(text)
    assert roles.names == {"2": "Titan"} and roles.name_sources == {"2": f"comment {LABEL}:{titan}"}
    assert roles.conflicts == [f"field 2: comments pair it with 'J1058+0133' ({LABEL}:{bp}) and 'Titan' "
                               f"({LABEL}:{titan}); 'Titan' kept (its calibration calls agree with the header)"]


@pytest.mark.parametrize("name", ["J1058+0133", "Titan", "titan", "Ceres"])
def test_without_a_header_a_comment_may_name_a_calibrator(name):
    text = "\n" + flag("2", name)
    roles = read(text)
    assert (roles.names, roles.conflicts) == ({"2": name}, [])


def test_without_a_header_a_comment_naming_an_unknown_source_is_ignored():
    text = "\n" + flag("2", "NGC1068")
    roles = read(text)
    assert roles.names == {}
    assert roles.conflicts == [f"field 2: comment at {LABEL}:2 names it 'NGC1068'; "
                               "ignored: not a field the MOUS declares nor a calibrator name"]


def test_without_a_header_a_comment_may_name_a_field_the_mous_declares():
    other = read("# OBSERVE_TARGET: NGC1068\n")
    roles = FieldRoles()
    roles.merge_names(other)
    roles = read("\n" + flag("2", "NGC1068"), roles)
    assert (roles.names, roles.conflicts) == ({"2": "NGC1068"}, [])
    assert roles.verdict("2").roles == {"target"}


# ---- roles_from_names: pipeline files -----------------------------------------------------------

def test_pipeline_targets_and_calibrator_names():
    roles = roles_from_names(["J0423-0120", "Titan", "J1924-2914", "bad name*"], {"J1924-2914"}, FieldRoles(),
                             "uid___A001_X1_X2/cont.dat")
    assert {k: [(e.role, e.source, e.where) for e in v] for k, v in roles.evidence.items()} == {
        "J1924-2914": [("target", "header", "a field of uid___A001_X1_X2/cont.dat")],
        "J0423-0120": [("calibrator", "name", "a quasar J-name (calibrator)")],
        "Titan": [("flux", "name", "a solar-system body (flux calibrator)")]}
    assert roles.verdict("J1924-2914").conflicts == []
    default = roles_from_names([], {"NGC1387"}, FieldRoles())
    assert [e.where for e in default.evidence["NGC1387"]] == ["a field of the MOUS cont.dat"]
