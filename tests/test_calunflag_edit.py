"""calunflag's decisions on each flag and its reversible edits, on scripts and templates written here.

Expected actions follow from the header intents each test writes (CALIBRATE_FLUX → a flux calibrator,
OBSERVE_TARGET → a science target); expected lines and texts from the text the test builds.
"""

import ast
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from almatools.plugins.calunflag.edit import (CALL_NAMES, apply_edits, restore_original, scan_script,
                                              scan_template)
from almatools.plugins.calunflag.roles import ROLES, FieldRoles, roles_from_script
from almatools.plugins.calunflag.scan import ScriptError, find_calls

PATH = "uid___A002_X1_X2.ms.scriptForCalibration.py"
TEMPLATE = "uid___A002_X1_X2.flagtemplate.txt"
HEADER = "# CALIBRATE_FLUX: Titan\n# CALIBRATE_BANDPASS: J1058+0133\n# OBSERVE_TARGET: TW_Hya\n"
UNDO = "; to undo delete this line and the '#calunflag#' prefixes below"


def line_of(text, fragment, nth=0):
    return [i + 1 for i, line in enumerate(text.split("\n")) if fragment in line][nth]


def scan(text, want_roles=ROLES, want_fields=(), keep_atmospheric=False, fluxcalflag="applyflags", roles=None):
    """The findings (by line) and calls of a script whose roles come from its own header and calls."""
    if roles is None:
        roles = roles_from_script(PATH, text, find_calls(text, CALL_NAMES, PATH), FieldRoles())
    findings, calls = scan_script(PATH, text, roles, set(want_roles), set(want_fields), keep_atmospheric, fluxcalflag)
    return {f.line: f for f in findings}, calls


def only(text, **kw):
    findings, _ = scan(text, **kw)
    assert len(findings) == 1, findings
    return next(iter(findings.values()))


def flag(**args):
    """A one-line flagdata call with these arguments (values are written as given)."""
    return "flagdata(" + ", ".join(f"{k}={v}" for k, v in {"vis": "'x.ms'", "mode": "'manual'", **args}.items()) + ")"


# ---- what the decision rests on -----------------------------------------------------------------

@pytest.mark.parametrize("count, more", [(1, ""), (3, ""), (4, "; and 1 more"), (5, "; and 2 more")])
def test_the_evidence_shown_is_the_first_three_statements(count, more):
    text = "# CALIBRATE_FLUX: Titan\n" * count + flag(field="'Titan'", spw="'0:10~20'") + "\n"
    f = only(text)
    statements = [f"flux (header: {PATH}:{n} '# CALIBRATE_FLUX: Titan')" for n in range(1, count + 1)]
    assert (f.action, f.role) == ("comment", "flux")
    assert f.evidence == "; ".join(statements[:3]) + more


def test_expressions_are_quoted_to_60_characters():
    spw = "spw_selection_for_the_flux_calibrator_lines_of_this_block + ':10~20'"
    intent = "intents_of_the_calibrators_observed_in_this_execution_block[0]"
    assert len(spw) > 61 and len(intent) > 61
    f = only(HEADER + flag(field="'Titan'", spw=spw))
    assert (f.action, f.reason) == ("keep", f"spw is the Python expression {spw[:60]!r}, not read")
    f = only(HEADER + flag(intent=intent, spw="'0:10~20'"))
    assert (f.action, f.reason) == ("keep", f"intent is the Python expression {intent[:60]!r}, not read")


@pytest.mark.parametrize("args, action, role, reason", [
    (dict(intent="'*CALIBRATE_AMPLI*'", spw="'0:10~20'"), "comment", "flux",
     "spectral-line flag on calibrators by intent '*CALIBRATE_AMPLI*'"),
    (dict(intent="'*AMPLI*'", spw="'0'"), "keep", "", "a priori intent flag (no channel or frequency range)"),
    (dict(intent="'*AMPLI*'", spw="edgeSpw + ':0~3'"), "keep", "",
     "a priori intent flag (no channel or frequency range)"),
    # a field given with the intent decides: here the science target
    (dict(field="'TW_Hya'", intent="'*AMPLI*'", spw="'0:10~20'"), "keep", "target", "field TW_Hya is a science target"),
    (dict(field="'Titan'", intent="'*TARGET*'", spw="'0:10~20'"), "comment", "flux",
     "spectral-line flag on a calibrator"),
    (dict(field="'Titan'", spw="'0:10~20'", mode="'shadow'"), "keep", "",
     "mode='shadow' flag (not a channel selection)"),
    (dict(field="'Titan'", spw="'0:10~20'", autocorr="True"), "keep", "", "a priori flag (autocorrelations)"),
    (dict(field="'Titan'", spw="'0:10~20'", autocorr="False"), "comment", "flux", "spectral-line flag on a calibrator"),
])
def test_flag_decisions(args, action, role, reason):
    f = only(HEADER + flag(**args) + "\n")
    assert (f.action, f.role, f.reason) == (action, role, reason)


def test_an_unreadable_field_is_named_in_the_finding():
    f = only(HEADER + flag(field="'J*'", spw="'0:10~20'"))
    assert (f.action, f.field) == ("keep", "J*")
    assert f.reason.startswith("field holds 'J*', not a literal field name or index")


def test_a_flag_sharing_its_line_with_other_code_is_left_for_the_user():
    on_all = only(HEADER + "x = 1; " + flag(field="''", spw="'0:10~20'"))
    assert (on_all.action, on_all.reason) == ("keep", "applies to all fields (field='')")
    titan = only(HEADER + "x = 1; " + flag(field="'Titan'", spw="'0:10~20'"))
    assert (titan.action, titan.reason) == ("keep", "shares its lines with other code: edit it by hand")
    after = only(HEADER + flag(field="'Titan'", spw="'0:10~20'") + "; y = 2")
    assert (after.action, after.reason) == ("keep", "shares its lines with other code: edit it by hand")
    commented = only(HEADER + flag(field="'Titan'", spw="'0:10~20'") + "#Titan")  # a comment right after ')'
    assert commented.action == "comment"


@pytest.mark.parametrize("applyflags, want_fields, action, reason", [
    ("False", (), "keep", "already applyflags=False"),
    ("True", (), "applyflags", "pipeline flagging of solar-system flux-calibrator lines"),
    ("True", ("Titan",), "applyflags", "pipeline flagging of solar-system flux-calibrator lines"),
    ("True", ("J1058+0133",), "keep", "flags flux calibrators only; none among fields=['J1058+0133']"),
])
def test_fluxcalflag_decisions(applyflags, want_fields, action, reason):
    text = HEADER + f"hifa_fluxcalflag(pipelinemode='automatic', applyflags={applyflags})\n"
    f = only(text, want_fields=want_fields)
    assert (f.line, f.kind, f.action, f.reason) == (4, "hifa_fluxcalflag", action, reason)


# ---- flags on Tsys tables -----------------------------------------------------------------------

def tsys(spw, vis="'uid___A002_X1_X2.ms.tsys'"):
    return f"flagdata(vis={vis}, mode='manual', spw={spw}, flagbackup=False)"


_TSYS_EXPR = "tsys_spws_of_this_execution_block_for_the_edge_channels + ':0~3'"


@pytest.mark.parametrize("spw, what", [
    ("'9:0~3,11:0~3'", "edge channels 0~3 of spws 9,11"),
    ("'9,11:0~3'", "all of spw 9; edge channels 0~3 of spw 11"),
    ("'9:127'", "edge channels 127 of spw 9"),
    ("'9:60~63'", "edge channels 60~63 of spw 9"),  # the last channels of a 64-channel spw
    ("'9:100~127'", "edge channels 100~127 of spw 9"),
    ("'9:28~31'", "channels 28~31 of spw 9"),  # 32 channels: no ALMA Tsys spw is that narrow
    ("'9:100~126'", "channels 100~126 of spw 9"),
    ("'9:230.5~231GHz'", "channels 230.5~231GHz of spw 9"),
    ("'9:0~3;60~66'", "edge and inner channels 0~3;60~66 of spw 9"),
    (_TSYS_EXPR, f"spw {_TSYS_EXPR[:60]} (a Python expression)"),
])
def test_tsys_reasons(spw, what):
    f = only(tsys(spw))
    assert (f.action, f.reason) == ("keep", f"flags the Tsys table uid___A002_X1_X2.ms.tsys, not visibilities: {what}")


def test_tsys_table_is_named_without_its_folders():
    f = only(tsys("'9'", vis="'../calibrated/working/uid___A002_X1_X2.ms.tsys'"))
    assert f.reason == "flags the Tsys table uid___A002_X1_X2.ms.tsys, not visibilities: all of spw 9"


@pytest.mark.parametrize("above, note", [
    ("# c1\n# c2\n# c3\n# c4\n# c5\n", "c3 c4 c5"),  # the last three comment lines, in order
    ("# first\n", "first"),  # a comment on the file's first line
    ("# far\n" + "\n" * 4, "far"),  # blank lines are skipped up to five lines above
    ("# too far\n" + "\n" * 5, ""),
    ("x = 1\n# a\n\n#   b  \n", "a b"),
])
def test_the_comment_above_a_tsys_flag(above, note):
    text = above + tsys("'9'") + "\n"
    f = only(text)
    suffix = f" (its comment: {note!r})" if note else ""
    assert f.line == line_of(text, "flagdata(")
    assert f.reason == "flags the Tsys table uid___A002_X1_X2.ms.tsys, not visibilities: all of spw 9" + suffix


def test_a_comment_at_the_end_of_the_file_is_not_above_the_first_line():
    f = only(tsys("'9'") + "\nx = 1\n# the end")
    assert f.reason == "flags the Tsys table uid___A002_X1_X2.ms.tsys, not visibilities: all of spw 9"


# ---- flag templates -----------------------------------------------------------------------------

def template_roles():
    roles = FieldRoles()
    roles.set_name("2", "Titan", "the MS x.ms")
    roles.add("Titan", "flux", "ms", "intent CALIBRATE_FLUX#ON_SOURCE in x.ms")
    roles.add("TW_Hya", "target", "ms", "intent OBSERVE_TARGET#ON_SOURCE in x.ms")
    return roles


@pytest.mark.parametrize("line, field, action, reason", [
    ("mode='manual' field='Titan' spw='17:100~200' reason='atm#1'", "Titan", "comment",
     "spectral-line flag on a calibrator (reason='atm#1')"),
    ("mode='manual' field='Titan' #note spw='17:100~200'", "Titan", "comment", "spectral-line flag on a calibrator"),
    ("mode='manual' field='2' spw='17:100~200'", "Titan", "comment", "spectral-line flag on a calibrator"),
    ("mode='manual' antenna='DA41' field='Titan' spw='17:100~200'", "Titan", "keep",
     "not a field/channel flag (antenna or other mode)"),
    ("mode='shadow' field='Titan' spw='17:100~200'", "Titan", "keep",
     "not a field/channel flag (antenna or other mode)"),
    ("mode='manual' field='TW_Hya' spw='17:100~200'", "TW_Hya", "keep", "field TW_Hya is a science target"),
])
def test_template_lines(line, field, action, reason):
    text = "# flag template\n\n" + line + "\n"
    findings = scan_template(TEMPLATE, text, template_roles(), set(ROLES), set())
    assert [(f.line, f.field, f.action, f.reason) for f in findings] == [(3, field, action, reason)]


def test_template_errors_name_the_line():
    text = "mode='manual' field='Titan' spw='17:100~200'\n\nmode='manual' field='Titan spw='17:1~2'\n"
    with pytest.raises(ScriptError, match=rf"^{TEMPLATE}:3: cannot read this flag command"):
        scan_template(TEMPLATE, text, template_roles(), set(ROLES), set())


def test_template_edit_note_and_restore():
    text = "# flag template\nmode='manual' field='2' spw='17:100~200' reason='atmospheric line'\n"
    findings = scan_template(TEMPLATE, text, template_roles(), set(ROLES), set())
    edited = apply_edits(text, findings)
    assert edited.split("\n") == [
        "# flag template",
        "#calunflag: removed template on Titan (flux) spw 17:100~200: spectral-line flag on a calibrator "
        "(reason='atmospheric line')" + UNDO,
        "#calunflag# mode='manual' field='2' spw='17:100~200' reason='atmospheric line'", ""]
    assert restore_original(edited) == text


# ---- the edits ----------------------------------------------------------------------------------

def test_a_commented_flagdata_keeps_python_valid_and_says_what_it_removed():
    text = HEADER + "if True:\n    flagdata(vis='x.ms', mode='manual', field='Titan',\n             spw='0:10~20')\n"
    findings, calls = scan(text)
    edited = apply_edits(text, list(findings.values()), calls)
    ast.parse(edited)
    assert edited.split("\n")[4:] == [
        "    pass  #calunflag: removed flagdata on Titan (flux) spw 0:10~20: spectral-line flag on a calibrator" + UNDO,
        "#calunflag#     flagdata(vis='x.ms', mode='manual', field='Titan',",
        "#calunflag#              spw='0:10~20')", ""]
    assert edited.split("\n")[:4] == text.split("\n")[:4]
    assert restore_original(edited) == text


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_fluxcalflag_switched_to_applyflags_false(newline):
    text = newline.join(["try:", "    hifa_fluxcalflag(pipelinemode='automatic', threshold=0.75)",
                         "    hifa_fluxcalflag(applyflags=True, threshold=0.75)", "finally:", "    h_save()", ""])
    findings, calls = scan(text)
    edited = apply_edits(text, list(findings.values()), calls, newline=newline)
    note = ("    #calunflag: switched to applyflags=False: hifa_fluxcalflag: pipeline flagging of solar-system "
            "flux-calibrator lines" + UNDO)
    assert edited.split(newline) == [
        "try:",
        note, "#calunflag#     hifa_fluxcalflag(pipelinemode='automatic', threshold=0.75)",
        "    hifa_fluxcalflag(pipelinemode='automatic', threshold=0.75, applyflags=False)  #calunflag+",
        note, "#calunflag#     hifa_fluxcalflag(applyflags=True, threshold=0.75)",
        "    hifa_fluxcalflag(threshold=0.75, applyflags=False)  #calunflag+",
        "finally:", "    h_save()", ""]
    ast.parse(edited)
    assert restore_original(edited) == text
    # only the note's own first word changes, whatever the reason says
    reworded = [dataclasses.replace(f, reason="lines removed from the model") for f in findings.values()]
    first = apply_edits(text, reworded, calls, newline=newline).split(newline)[1]
    assert first == ("    #calunflag: switched to applyflags=False: hifa_fluxcalflag: lines removed from the model"
                     + UNDO)


_FIELDS = {"'Titan'": "comment", "'J1058+0133'": "comment", "'TW_Hya'": "keep", "''": "keep", "'Ti*'": "keep"}
_SPWS = {"'0:10~20'": True, "'1:100~120;300~310'": True, "'0'": False, "'0,1'": False}


@st.composite
def _scripts(draw):
    """A script of flag blocks and other lines; returns (text pieces, {piece index: expected action})."""
    pieces, expected = [HEADER.rstrip("\n")], {}
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flag", "flag2", "code", "comment", "blank"]))
        indent = draw(st.sampled_from(["", "    "]))
        if kind in ("flag", "flag2"):
            field, spw = draw(st.sampled_from(sorted(_FIELDS))), draw(st.sampled_from(sorted(_SPWS)))
            action = _FIELDS[field] if _SPWS[spw] else "keep"
            sep = "\n" + indent + "         " if kind == "flag2" else " "
            body = f"flagdata(vis='x.ms', mode='manual', field={field},{sep}spw={spw}, flagbackup=False)"
            if indent:
                pieces.append("if True:")
            expected[len(pieces)] = action
            pieces.append(indent + body)
        elif kind == "code":
            pieces.append("x = 'flagdata(' + \"é\"  # not a call")
        elif kind == "comment":
            pieces.append("# a flux calibrator line (CO 3-2)")
        else:
            pieces.append("")
    return pieces, expected


@settings(max_examples=60, deadline=None)
@given(_scripts(), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_property_edits_touch_only_the_calibrator_flags_and_undo_exactly(script, newline, final_newline):
    pieces, expected = script
    text = newline.join(p.replace("\n", newline) for p in pieces) + (newline if final_newline else "")
    findings, calls = scan(text)
    starts, commented, line = {}, set(), 0  # 0-based first line of each piece
    for k, piece in enumerate(pieces):
        if k in expected:
            starts[line + 1] = expected[k]
            if expected[k] == "comment":
                commented |= set(range(line, line + piece.count("\n") + 1))
        line += piece.count("\n") + 1
    assert {n: f.action for n, f in findings.items()} == starts
    edited = apply_edits(text, list(findings.values()), calls, newline=newline)
    assert restore_original(edited) == text
    ast.parse(edited)
    # every line outside the commented flags is byte-identical and in order, the flags' lines only prefixed
    original, lines = text.split("\n"), edited.split("\n")
    assert [ln for ln in lines if "#calunflag" not in ln] == [ln for i, ln in enumerate(original) if i not in commented]
    assert [ln[len("#calunflag# "):] for ln in lines if ln.startswith("#calunflag# ")] == \
        [ln for i, ln in enumerate(original) if i in commented]
    notes = [ln for ln in lines if "#calunflag: " in ln]
    assert len(notes) == len([a for a in starts.values() if a == "comment"])
    assert all(ln.endswith("\r") == (newline == "\r\n") for ln in notes)  # inserted lines end as the file's do
