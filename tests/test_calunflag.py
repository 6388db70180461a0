"""calunflag on scripts and templates in the real shapes of DOMAIN.md §2 and §10."""

import os
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from almatools.casa_tasks import calunflag
from almatools.errors import TaskParameterError
from almatools.plugins.calunflag.edit import restore_original
from almatools.plugins.calunflag.scan import ScriptError, find_calls

EB = "uid___A002_Xa4dcb9_X8ac"

STEP_TITLES = """\
step_title = {0: 'Import of the ASDM',
              1: 'Fix of SYSCAL table times',
              2: 'Fix of the planets positions (fixplanets)',
              3: 'listobs',
              4: 'A priori flagging',
              10: 'Listobs, and save original flags',
              11: 'Initial flagging',
              12: 'Putting a model for the flux calibrator(s)',
              13: 'Bandpass calibration'}
"""

MANUAL = STEP_TITLES + f"""
try:
  print 'List of steps to be executed ...', mysteps
  thesteps = mysteps
except:
  print 'global variable mysteps not set.'

# CALIBRATE_AMPLI: Titan
# CALIBRATE_BANDPASS: J1058+0133
# CALIBRATE_FLUX: Titan
# CALIBRATE_PHASE: J1037-2934
# OBSERVE_TARGET: TW_Hya

# A priori flagging
mystep = 4
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')
  flagdata(vis = '{EB}.ms', mode = 'manual', autocorr = T, flagbackup = F)
  flagdata(vis = '{EB}.ms', mode = 'manual', intent = '*POINTING*,*ATMOSPHERE*', flagbackup = F)

# Initial flagging
mystep = 11
if(mystep in thesteps):
  casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')
  print 'Step (', mystep, ') ', step_title[mystep]

  flagdata(vis = '{EB}.ms.split', mode = 'shadow', flagbackup = F)

  # Flagging atmospheric line(s)

  flagdata(vis = '{EB}.ms.split',
    mode = 'manual',
    spw = '1:6623~7679',
    field = '1', #Titan
    flagbackup = F)

  # Flagging atmospheric line(s)

  flagdata(vis = '{EB}.ms.split',
    mode = 'manual',
    spw = '1:6623~7679',
    field = '1', #Titan
    flagbackup = F)

  #FLAGS on flux calibrator, lines which are absent in model
  flagdata(vis='{EB}.ms.split', field = '1',
        spw='0:2165~2185,1:2260~2280;2909~2915',
           mode='manual', flagbackup = F)

  flagdata(vis = '{EB}.ms.split.tsys', mode = 'manual', spw = '9:0~3;124~127', flagbackup = F)

  flagdata(vis = '{EB}.ms.split', mode = 'manual', field = '', spw = '0:1100~1110', flagbackup = F)

  flagdata(vis = '{EB}.ms.split', mode = 'manual', antenna = 'DA41', field = '1', spw = '0:100~200')

  flagdata(vis = '{EB}.ms.split', mode = 'manual', field = 'J1058+0133', spw = '0,1', flagbackup = F)

  flagdata(vis = '{EB}.ms.split.cal', mode = 'manual', field = 'TW_Hya', spw = '1:3000~3050', flagbackup = F)

#  flagdata(vis = '{EB}.ms.split',
#    mode = 'manual',
#    spw = '0:1~10',
#    field = '1')

# Putting a model for the flux calibrator(s)
mystep = 12
if(mystep in thesteps):
  setjy(vis = '{EB}.ms.split',
    field = '1', # Titan
    spw = '0,1',
    standard = 'Butler-JPL-Horizons 2012')
"""

# the flagdata calls of MANUAL in order: autocorr, intent, shadow, Titan, Titan again (an exact duplicate
# block), the analyst's multi-spw flag, Tsys edges, field='' , antenna, whole spws, target, commented out
FLAGDATA_LINES = [i + 1 for i, line in enumerate(MANUAL.splitlines()) if line.lstrip("# ").startswith("flagdata(")]
ACTIONS = ["keep", "keep", "keep", "comment", "comment", "comment", "keep", "keep", "keep", "keep", "keep", "keep"]
EXPECTED = dict(zip(FLAGDATA_LINES, ACTIONS))
TITAN, _, MULTI, TSYS, ALL, ANTENNA, WHOLE, TARGET, COMMENTED = FLAGDATA_LINES[3:]


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode())
    return path


@pytest.fixture
def manual(tmp_path):
    return write(tmp_path / "script" / f"{EB}.ms.scriptForCalibration.py", MANUAL)


def test_manual_script_findings_exactly(manual):
    r = calunflag(path=str(manual), dryrun=True)
    got = {f["line"]: f["action"] for f in r["findings"] if f["kind"] == "flagdata"}
    assert got == EXPECTED
    f = {f["line"]: f for f in r["findings"]}
    assert len(FLAGDATA_LINES) == 12
    assert (f[TITAN]["field"], f[TITAN]["role"], f[TITAN]["spw"]) == ("Titan", "flux", "1:6623~7679")
    assert f[TITAN]["step"] == "11 Initial flagging"  # by the title, although numbers shifted
    assert f[MULTI]["spw"] == "0:2165~2185,1:2260~2280;2909~2915"
    assert "Tsys" in f[TSYS]["reason"] and "all fields" in f[ALL]["reason"]
    assert "antenna" in f[ANTENNA]["reason"] and "no channel" in f[WHOLE]["reason"]
    assert "target" in f[TARGET]["reason"] and "inactive" in f[COMMENTED]["reason"]
    assert r["changes"] == 3 and r["files"] == {}  # dryrun writes nothing
    assert not any(p.name.endswith(".diff") for p in manual.parent.iterdir())


def test_edited_copy_diff_restore_and_idempotence(manual):
    r = calunflag(path=str(manual))
    edited = manual.with_name(f"{EB}.ms.scriptForCalibration.calunflag.py")
    assert r["files"][str(manual)]["edited"] == str(edited)
    new = edited.read_text()
    assert restore_original(new) == MANUAL  # un-commenting the marked lines gives the original back
    assert manual.read_text() == MANUAL  # the original is untouched
    assert "print 'Step (', mystep" in new and "flagbackup = F)" in new  # Python 2 stays Python 2
    assert (edited.parent / (edited.name + ".diff")).read_text().count("\n-  flagdata(") == 3
    again = calunflag(path=str(edited), dryrun=True)
    assert again["changes"] == 0  # re-running on an edited file changes nothing
    before = edited.read_bytes()
    calunflag(path=str(manual))  # same result again: allowed without overwrite, identical bytes
    assert edited.read_bytes() == before
    assert "mysteps = [11, 12, 13]" in r["command"]["manual"]
    assert "flagmanager(vis='uid___A002_Xa4dcb9_X8ac.ms.split', mode='restore', versionname='Original')" in \
        r["command"]["manual"]


def test_edited_python3_script_still_compiles(tmp_path):
    script = write(tmp_path / "x.ms.scriptForCalibration.py", textwrap.dedent(f"""\
        # CALIBRATE_FLUX: Titan
        if True:
            flagdata(vis='{EB}.ms.split', mode='manual', field='Titan',
                     spw='0:10~20')
        x = 1
        """))
    calunflag(path=str(script))
    compile(script.with_name("x.ms.scriptForCalibration.calunflag.py").read_text(), "edited", "exec")


def test_options_roles_fields_and_atmospheric(manual):
    assert calunflag(path=str(manual), dryrun=True, roles=["bandpass"])["changes"] == 0
    assert calunflag(path=str(manual), dryrun=True, fields=["Titan"])["changes"] == 3
    kept = calunflag(path=str(manual), dryrun=True, keepatmospheric=True)
    assert {f["line"] for f in kept["findings"] if f["action"] == "comment"} == {MULTI}
    with pytest.raises(TaskParameterError, match="unknown role"):
        calunflag(path=str(manual), roles=["science"])


PIPESCRIPT = """\
context = h_init()
try:
    hifa_importdata(vis=['uid___A002_X1_X2'], session=['session_1'])
    hifa_flagdata(pipelinemode="automatic")
    hifa_fluxcalflag(pipelinemode="automatic")
    hif_rawflagchans(pipelinemode="automatic")
    # hif_fluxcalflag(pipelinemode="automatic")
finally:
    h_save()
"""


@pytest.mark.parametrize("choice, expected", [
    ("applyflags", '    hifa_fluxcalflag(pipelinemode="automatic", applyflags=False)  #calunflag+'),
    ("comment", "    pass  #calunflag: removed hifa_fluxcalflag")])
def test_pipescript_fluxcalflag(tmp_path, choice, expected):
    script = write(tmp_path / "member.uid___A001_X1_X2.hifa_calimage.casa_pipescript.py", PIPESCRIPT)
    r = calunflag(path=str(script), fluxcalflag=choice)
    actions = [(f["line"], f["kind"], f["action"]) for f in r["findings"]]
    assert actions == [(5, "hifa_fluxcalflag", choice), (7, "hif_fluxcalflag", "keep")]
    new = script.with_name("member.uid___A001_X1_X2.hifa_calimage.casa_pipescript.calunflag.py").read_text()
    assert any(line.startswith(expected) for line in new.splitlines())
    assert restore_original(new) == PIPESCRIPT
    compile(new, "pipescript", "exec")
    assert "full recalibration from the ASDMs" in r["command"]["pipeline"]


TEMPLATE = """\
mode='manual' field='Titan' spw='17:100~200;300~350' reason='Flux_calibrator_atmospheric_line'
mode='manual' field='J0542-0913' spw='25:230.513~230.525GHz,33:220.380~220.386GHz' reason='QA2:applycal_amp'
mode='manual' field='J0542-0913' spw='25:230.513~230.525GHz,33:220.380~220.386GHz' reason='QA2:applycal_amp'
mode='manual' antenna='DV02;DV03&DA51' spw='22,24:150~175' reason='QA2:applycal_amplitude_frequency'   \n\
mode='manual' field='TW_Hya' spw='27:232.100~232.110GHz' reason='Tsys problems'
mode='manual' field='J0542-0913' spw='25' reason='QA2:bad_spw'
"""


def test_flag_template_without_header(tmp_path):
    mous = tmp_path / "member.uid___A001_X1_X2"
    write(mous / "calibration" / "member.uid___A001_X1_X2.cont.dat", "Field: TW_Hya\n\nSpectralWindow: 27\nALL\n")
    template = write(mous / "calibration" / "uid___A002_X1_X2.flagtemplate.txt", TEMPLATE)
    r = calunflag(path=str(mous))
    got = [(f["line"], f["action"]) for f in r["findings"]]
    assert got == [(1, "comment"), (2, "comment"), (3, "comment"), (4, "keep"), (5, "keep"), (6, "keep")]
    assert "science target" in r["findings"][4]["reason"] and "reason='Tsys problems'" in r["findings"][4]["reason"]
    new = template.with_name("uid___A002_X1_X2.flagtemplate.calunflag.txt").read_text()
    assert restore_original(new) == TEMPLATE  # trailing spaces and all
    live = [line for line in new.splitlines() if line.strip() and not line.startswith("#")]
    assert len(live) == 3


def test_inplace_keeps_a_byte_identical_backup(manual):
    original = manual.read_bytes()
    r = calunflag(path=str(manual), inplace=True)
    backup = manual.with_name(manual.name + ".calunflag.bak")
    assert r["files"][str(manual)]["backup"] == str(backup) and backup.read_bytes() == original
    assert restore_original(manual.read_text()) == MANUAL
    assert calunflag(path=str(manual), inplace=True)["changes"] == 0  # idempotent in place too
    assert backup.read_bytes() == original


def test_outdir(manual, tmp_path):
    r = calunflag(path=str(manual.parent.parent), outdir=str(tmp_path / "edited"))
    assert (tmp_path / "edited" / f"{EB}.ms.scriptForCalibration.calunflag.py").is_file()
    assert r["changes"] == 3


@pytest.mark.parametrize("text, where", [
    ("flagdata(vis='a.ms', field='1',\n  spw='0:1~2'\n\nx = 1\n", ":1: unbalanced parentheses"),
    ("x = 1\nflagdata(vis='a.ms\n", ":2: unterminated string"),
])
def test_malformed_scripts_are_refused_naming_file_and_line(tmp_path, text, where):
    script = write(tmp_path / "bad.ms.scriptForCalibration.py", text)
    with pytest.raises(TaskParameterError, match=where):
        calunflag(path=str(script))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.ms.scriptForCalibration.py"]


def test_binary_junk_is_refused(tmp_path):
    junk = tmp_path / "junk.ms.scriptForCalibration.py"
    junk.write_bytes(b"flagdata(\x00\x01\x02\xff\xfe")
    with pytest.raises(TaskParameterError, match="junk.ms.scriptForCalibration.py:1: .*binary"):
        calunflag(path=str(junk))


@pytest.mark.casa
def test_field_indices_resolved_from_the_ms(tmp_path):
    """A script that names fields only by index: roles come from the MS's intents."""
    from almatools.casaenv import casatools
    from almatools.testing import simulate_ms
    vis = str(tmp_path / f"{EB}.ms.split")
    simulate_ms(vis, [("SPW0", 230e9, 1e6, 16)], field="J1058+0133", duration_s=120)
    ct = casatools()
    sm, me = ct.simulator(), ct.measures()
    try:  # add a target field with its own intents
        sm.openfromms(vis)
        sm.setfield(sourcename="TW_Hya", sourcedirection=me.direction("J2000", "11h01m51.9s", "-34d42m17.0s"))
        sm.settimes(integrationtime="60s", usehourangle=True, referencetime=me.epoch("utc", "2024/11/15/00:00:00"))
        sm.observe("TW_Hya", "SPW0", starttime="200s", stoptime="320s", state_obs_mode="OBSERVE_TARGET#ON_SOURCE")
    finally:
        sm.done()
        me.done()
    tb = ct.table()
    try:
        tb.open(vis + "/STATE", nomodify=False)
        modes = list(tb.getcol("OBS_MODE"))
        tb.putcol("OBS_MODE", ["CALIBRATE_FLUX#ON_SOURCE" if m != "OBSERVE_TARGET#ON_SOURCE" else m for m in modes])
    finally:
        tb.done()
    script = write(tmp_path / f"{EB}.ms.scriptForCalibration.py", textwrap.dedent(f"""\
        flagdata(vis='{EB}.ms.split', mode='manual', field='0', spw='0:3~5')
        flagdata(vis='{EB}.ms.split', mode='manual', field='1', spw='0:3~5')
        """))
    blind = calunflag(path=str(script), dryrun=True)
    assert [f["action"] for f in blind["findings"]] == ["keep", "keep"]
    assert "not known as a calibrator" in blind["findings"][0]["reason"]
    r = calunflag(path=str(script), vis=vis, dryrun=True)
    assert [(f["field"], f["role"], f["action"]) for f in r["findings"]] == [
        ("J1058+0133", "flux", "comment"), ("TW_Hya", "target", "keep")]


_KEYS = st.sampled_from(["vis", "mode", "spw", "field", "flagbackup", "reason"])
_VALUES = {"vis": "'x.ms.split'", "mode": "'manual'", "spw": "'0:1~2;5~6,1:3~4'", "field": "'2'",
           "flagbackup": "F", "reason": "'a (b), c'"}


@pytest.mark.fuzz
@given(keys=st.lists(_KEYS, min_size=1, max_size=6, unique=True),
       spaces=st.lists(st.sampled_from(["", " ", "  ", "\n    ", "\n\t"]), min_size=12, max_size=12),
       comments=st.lists(st.sampled_from(["", " #Titan", " # x (y", "  # 'q'"]), min_size=6, max_size=6))
def test_scanner_never_crashes_on_generated_calls(keys, spaces, comments):
    pieces = []
    for k, key in enumerate(keys):
        sep = "," if k < len(keys) - 1 else ""
        comment = comments[k] if "\n" in spaces[2 * k + 1] or k == len(keys) - 1 else ""
        pieces.append(f"{spaces[2 * k]}{key}{spaces[2 * k + 1].replace(chr(10), '')}={_VALUES[key]}{sep}"
                      + (f"{comment}\n" if comment else ""))
    text = "x = 'flagdata('\nflagdata(" + "".join(pieces) + ")\n"
    [call] = find_calls(text, ["flagdata"])
    assert set(call.args) == set(keys)
    assert call.args.get("field", "2") == "2" and call.args.get("flagbackup", False) is False


# ---- fixtures in the real shapes of DOMAIN.md §10, stored under tests/data/calunflag/ ----

DATA = Path(__file__).parent / "data" / "calunflag"
CYCLE2 = "uid___A002_X9d13e5_X1a0.ms.scriptForCalibration.py"  # CASA 4.2.2, Python 2, fixplanets step
CASA6 = "uid___A002_Xc1a2b3_X4d5.ms.scriptForCalibration.py"  # CASA 6 shape, fields by index only
OLDPIPE = "member.uid___A001_X2d6_X41.hif_calimage.casa_pipescript.py"
OLDTEMPLATE = "uid___A002_Xa1b2c3_X1f_flagtemplate.txt"  # old name, unquoted and intent-only lines


def _copy(name, dest):
    return write(dest / name, (DATA / name).read_text())


def _lines_of(text, *needles):
    """1-based line numbers of the lines holding each needle (first occurrence after the previous)."""
    lines, out, after = text.splitlines(), [], 0
    for needle in needles:
        after = next(i for i in range(after, len(lines)) if needle in lines[i]) + 1
        out.append(after)
    return out


def test_cycle2_python2_script_exact_findings(tmp_path):
    script = _copy(CYCLE2, tmp_path)
    text = script.read_text()
    r = calunflag(path=str(script), dryrun=True)
    calls = [i + 1 for i, line in enumerate(text.splitlines()) if line.lstrip("# ").startswith("flagdata(")]
    assert [f["line"] for f in r["findings"]] == calls  # every flagdata call, active or commented out
    autocorr, intent, shadow, titan1, titan2, multi, spike, tsys, antenna, commented, target = calls
    got = [(f["step"], f["field"], f["spw"], f["action"]) for f in r["findings"]]
    assert got == [
        ("4 A priori flagging", "", "1~24", "keep"),  # autocorrelations
        ("4 A priori flagging", "", "", "keep"),  # pointing/sideband/atmosphere intents
        ("11 Initial flagging", "", "", "keep"),  # shadow
        ("11 Initial flagging", "Titan", "2:0~2731", "comment"),  # 'atmospheric' = Titan's lines
        ("11 Initial flagging", "Titan", "2:0~2731", "comment"),  # an exact duplicate block
        ("11 Initial flagging", "J0423-0120", "0:2165~2185,1:2260~2280;2909~2915", "comment"),
        ("11 Initial flagging", "", "3:1915~1925", "keep"),  # WVR LO spike on all sources
        ("11 Initial flagging", "", "9:0~3;124~127,11:0~3;124~127", "keep"),  # Tsys edges
        ("11 Initial flagging", "J0334-4008", "1:1000~1200", "keep"),  # one antenna
        ("11 Initial flagging", "Titan", "1:0~104", "keep"),  # commented out
        ("16 Gain calibration", "3", "1:3000~3050", "keep")]  # the target, on the .cal MS
    assert "inactive" in r["findings"][9]["reason"] and "Tsys" in r["findings"][7]["reason"]
    roles = {f["line"]: f["role"] for f in r["findings"]}
    assert "flux" in roles[titan1] and "bandpass" in roles[multi]
    # names learned from the inline comments of setjy/bandpass/gaincal (field = '0~2', # a,b,c)
    assert r["field_names"] == {CYCLE2: {"2": "Titan", "0": "J0423-0120", "1": "J0334-4008"}}
    # roles from the header's intent lines (the strongest evidence here); the calls agree with them
    assert r["calibrators"] == {"J0334-4008": ["phase"], "J0423-0120": ["bandpass"], "Titan": ["flux"]}
    assert r["targets"] == ["NGC_1365"] and r["conflicts"] == [] and r["not_read"] == []
    assert r["fields"]["Titan"]["source"] == "header"
    header_line = _lines_of(text, "# CALIBRATE_FLUX: Titan")[0]
    assert f"flux (header: {CYCLE2}:{header_line} '# CALIBRATE_FLUX: Titan')" in r["fields"]["Titan"]["evidence"]
    assert r["changes"] == 3
    # numbers shifted by the fixplanets step: the recipe starts at 'Initial flagging' = 11
    assert "mysteps = [11, 12, 13, 14, 15, 16, 17, 18, 19]" in r["command"]["manual"]
    only_flux = calunflag(path=str(script), dryrun=True, roles=["flux"])
    assert [f["line"] for f in only_flux["findings"] if f["action"] == "comment"] == [titan1, titan2]
    by_index = calunflag(path=str(script), dryrun=True, fields=["0"])
    assert [f["line"] for f in by_index["findings"] if f["action"] == "comment"] == [multi]


def test_cycle2_edit_is_reversible_idempotent_and_stays_python2(tmp_path):
    script = _copy(CYCLE2, tmp_path)
    original = script.read_bytes()
    r = calunflag(path=str(script))
    edited = Path(r["files"][str(script)]["edited"])
    new = edited.read_text()
    assert restore_original(new).encode() == original
    assert new.count("\n#calunflag#   flagdata(") == 3 and new.count("pass  #calunflag: removed") == 3
    assert "print 'Step ', mystep, step_title[mystep]" in new  # not converted
    diff = Path(r["files"][str(script)]["diff"]).read_text()
    assert diff.count("\n-  flagdata(") == 3
    assert diff.count("\n+#calunflag#") == 5 + 5 + 3  # the three calls, line by line
    assert calunflag(path=str(edited), dryrun=True)["changes"] == 0


def test_old_pipescript_and_old_template_in_a_mous(tmp_path):
    mous = tmp_path / "member.uid___A001_X2d6_X41"
    pipe = _copy(OLDPIPE, mous / "script")
    template = _copy(OLDTEMPLATE, mous / "calibration")
    write(mous / "calibration" / "member.uid___A001_X2d6_X41.cont.dat", "Field: NGC_1365\n\nSpectralWindow: 17\nALL\n")
    r = calunflag(path=str(mous), fluxcalflag="comment")
    got = [(Path(f["file"]).name, f["line"], f["kind"], f["action"]) for f in r["findings"]]
    assert got == [(OLDTEMPLATE, 1, "template", "comment"),  # unquoted, older pipeline
                   (OLDTEMPLATE, 2, "template", "comment"),  # hifa_fluxcalflag's own shape (field and intent)
                   (OLDTEMPLATE, 3, "template", "comment"),  # by intent only: intent='*AMPLI*'
                   (OLDTEMPLATE, 4, "template", "keep"),  # a priori pointing intent, no channels
                   (OLDTEMPLATE, 5, "template", "keep"),  # a whole spw
                   (OLDTEMPLATE, 6, "template", "comment"),
                   (OLDTEMPLATE, 7, "template", "comment"),  # duplicate line
                   (OLDTEMPLATE, 8, "template", "keep"),  # the science target (from cont.dat)
                   (OLDPIPE, 6, "hif_fluxcalflag", "comment"),
                   (OLDPIPE, 7, "hifa_fluxcalflag", "keep")]  # commented out in place: inactive
    assert "reason='Flux_calibrator_atmospheric_line'" in r["findings"][0]["reason"]
    assert "science target" in r["findings"][7]["reason"]
    new_template = template.with_name("uid___A002_Xa1b2c3_X1f_flagtemplate.calunflag.txt").read_text()
    assert restore_original(new_template) == template.read_text()  # trailing spaces kept
    new_pipe = pipe.with_name(OLDPIPE.replace(".py", ".calunflag.py")).read_text()
    compile(new_pipe, OLDPIPE, "exec")
    assert "#calunflag#     hif_fluxcalflag(" in new_pipe and restore_original(new_pipe) == pipe.read_text()
    assert calunflag(path=str(mous), dryrun=True, roles=["phase"])["changes"] == 0  # not a flux flag


# ---- real CASA: roles from an MS's intents, then the edited script's flagdata calls run on it ----

def _simulate_three_fields(vis):
    """4 antennas, one 16-channel spw; fields 0 bandpass (J1924-2914), 1 flux (Titan), 2 target."""
    import casadata
    from casatasks.private import simutil
    from almatools.casaenv import casatools
    ct = casatools()
    cfg = str(Path(casadata.datapath) / "alma" / "simmos" / "alma.cycle10.1.cfg")
    x, y, z, d, pad, _a, _t, pos = simutil.simutil().readantenna(cfg)
    sm, me = ct.simulator(), ct.measures()
    fields = [("J1924-2914", "19h24m51.06s", "-29d14m30.1s", "CALIBRATE_BANDPASS#ON_SOURCE"),
              ("Titan", "19h30m00.00s", "-21d00m00.0s", "CALIBRATE_FLUX#ON_SOURCE,CALIBRATE_AMPLI#ON_SOURCE"),
              ("TW_Hya", "19h40m00.00s", "-25d00m00.0s", "OBSERVE_TARGET#ON_SOURCE")]
    try:
        sm.open(vis)
        sm.setconfig(telescopename="ALMA", x=x[:4], y=y[:4], z=z[:4], dishdiameter=list(d[:4]), mount=["alt-az"],
                     antname=list(pad[:4]), padname=list(pad[:4]), coordsystem="global", referencelocation=pos)
        sm.setspwindow(spwname="SPW0", freq="230GHz", deltafreq="1MHz", freqresolution="1MHz", nchannels=16,
                       stokes="XX YY")
        sm.setfeed(mode="perfect X Y")
        for name, ra, dec, _ in fields:
            sm.setfield(sourcename=name, sourcedirection=me.direction("J2000", ra, dec))
        sm.setlimits(shadowlimit=0.001, elevationlimit="8.0deg")
        sm.setauto(autocorrwt=0.0)
        sm.settimes(integrationtime="60s", usehourangle=True, referencetime=me.epoch("utc", "2024/11/15/00:00:00"))
        for k, (name, _, _, intent) in enumerate(fields):
            sm.observe(name, "SPW0", starttime=f"{120 * k}s", stoptime=f"{120 * k + 120}s", state_obs_mode=intent)
    finally:
        sm.done()
        me.done()
    return vis


def _flagged_channels(vis):
    """field id → sorted channels flagged in every row and correlation (numpy, from the FLAG column)."""
    import numpy as np
    from almatools.casaenv import casatools
    tb = casatools().table()
    try:
        tb.open(vis)
        flag, field = tb.getcol("FLAG"), tb.getcol("FIELD_ID")
    finally:
        tb.done()
    return {int(f): [int(c) for c in np.flatnonzero(flag[:, :, field == f].all(axis=(0, 2)))] for f in set(field)}


@pytest.mark.casa
def test_edited_script_run_in_casa_keeps_only_non_calibrator_flags(tmp_path):
    import shutil
    from casatasks import casalog, flagdata, flagmanager
    vis = _simulate_three_fields(str(tmp_path / "uid___A002_Xc1a2b3_X4d5.ms.split"))
    script = _copy(CASA6, tmp_path)
    blind = calunflag(path=str(script), dryrun=True)
    assert blind["changes"] == 0  # indices only, no header: nothing is known without the MS
    r = calunflag(path=str(script), vis=vis)
    assert [(f["field"], f["role"], f["action"]) for f in r["findings"] if f["field"]] == [
        ("J1924-2914", "bandpass", "comment"), ("Titan", "flux", "comment"), ("TW_Hya", "target", "keep")]
    edited = Path(r["files"][str(script)]["edited"])
    pristine = tmp_path / "pristine.ms"
    shutil.copytree(vis, pristine)

    def run(path):  # the script as CASA would run it (execfile with mysteps), on a fresh copy of the MS
        shutil.rmtree(vis)
        shutil.copytree(pristine, vis)
        cwd = os.getcwd()
        os.chdir(tmp_path)
        try:
            exec(compile(Path(path).read_text(), str(path), "exec"),
                 {"mysteps": [], "flagdata": flagdata, "flagmanager": flagmanager, "casalog": casalog})
        finally:
            os.chdir(cwd)
        return _flagged_channels(vis)

    before = run(script)
    assert before == {0: [0, 2, 3, 15], 1: [0, 5, 6, 7, 8, 9, 15], 2: [0, 12, 13, 15]}
    after = run(edited)
    # the calibrators lost exactly their line flags; the target's flag and the all-field edges stay
    assert after == {0: [0, 15], 1: [0, 15], 2: [0, 12, 13, 15]}


def test_recipe_when_a_line_flag_sits_before_the_split(tmp_path):
    """A flag in 'A priori flagging' is inside the 'Original' version: restoring it cannot help."""
    script = _copy(CASA6, tmp_path)
    r = calunflag(path=str(script), fields=["0"], dryrun=True)  # fields= alone makes no field a calibrator
    assert [f["action"] for f in r["findings"]] == ["keep"] * 5  # unknown fields are never guessed
    write(tmp_path / CASA6, "# CALIBRATE_BANDPASS: J1924-2914\n" + (DATA / CASA6).read_text().replace(
        "field='0'", "field='J1924-2914'"))
    r = calunflag(path=str(script), dryrun=True)
    assert [f["action"] for f in r["findings"]] == ["keep", "comment", "keep", "keep", "keep"]
    assert "step 0 'A priori flagging'" in r["command"]["manual"] and "mysteps = []" in r["command"]["manual"]
    assert "flagmanager" not in r["command"]["manual"]


def test_field_indices_are_per_execution_block(tmp_path):
    """Index '2' is Titan in one EB's script and the target in another's: each script keeps its own."""
    mous = tmp_path / "member.uid___A001_X1_X2"
    _copy(CYCLE2, mous / "script")
    other = "uid___A002_X9d13e5_X2b2.ms.scriptForCalibration.py"
    write(mous / "script" / other, textwrap.dedent("""\
        # CALIBRATE_FLUX: J0423-0120
        # OBSERVE_TARGET: NGC_1365
        setjy(vis='uid___A002_X9d13e5_X2b2.ms.split', field='0', standard='manual', fluxdensity=[1.2, 0, 0, 0])
        flagdata(vis='uid___A002_X9d13e5_X2b2.ms.split', mode='manual', field='2', spw='2:0~2731')
        """))
    r = calunflag(path=str(mous), dryrun=True)
    mine = [(f["field"], f["action"]) for f in r["findings"] if Path(f["file"]).name == other and f["spw"]]
    assert mine == [("2", "keep")]  # not Titan: that index belongs to the other EB
    assert r["calibrators"][f"{other}:field 0"] == ["flux"] and "Titan" in r["calibrators"]
    assert r["changes"] == 3


@pytest.mark.fuzz
@given(st.text(alphabet=st.sampled_from(list("flagdata(),='\"#:~ \n\tTF0123xyz\\[]{}")), max_size=120))
def test_scanner_on_arbitrary_text_either_reads_or_names_a_line(text):
    try:
        calls = find_calls("flagdata(" + text, ["flagdata"], "fuzz.py")
    except ScriptError as exc:
        assert str(exc).startswith("fuzz.py:") and int(str(exc).split(":")[1]) >= 1
    else:
        assert all(c.name == "flagdata" and c.end >= c.start for c in calls)


# ---- issue 16: calibrator roles come from what the script declares ----

CYCLE5 = "uid___A002_Xc6c0d5_X2a1b.ms.scriptForCalibration.py"  # CASA 5.1.1: empty header lines, stale comments
EXPRESSIONS = "uid___A002_X6d0f96_X1de.ms.scriptForCalibration.py"  # Latin-1, fields held in Python variables
PPR = "PPR_uid___A001_X2d6_X41.xml"


def _copy_bytes(name, dest):
    dest.mkdir(parents=True, exist_ok=True)
    (dest / name).write_bytes((DATA / name).read_bytes())
    return dest / name


def test_roles_follow_the_header_not_stale_comments_or_empty_header_lines(tmp_path):
    script = _copy(CYCLE5, tmp_path)
    text = script.read_text()
    r = calunflag(path=str(script), dryrun=True)
    bandpass_flag, phase_flag, check_flag, target_flag = _lines_of(
        text, "CO(3-2) absorption against the bandpass", "same absorption seen on the phase",
        "spike on the check source", "residual atmospheric line in the science target")
    got = {f["line"]: (f["field"], f["role"], f["action"]) for f in r["findings"] if f["spw"].startswith(("1:", "2:", "3:"))}
    assert got == {bandpass_flag + 1: ("J0334-4008", "bandpass,flux", "comment"),
                   phase_flag + 1: ("J0336-3616", "phase", "comment"),  # its comment names the bandpass calibrator
                   check_flag + 1: ("J0340-3547", "check", "comment"),  # its comment names a field of another SB
                   target_flag + 1: ("NGC1387", "target", "keep")}  # in a gaincal on '0~3', still the target
    # the header's empty '# CALIBRATE_AMPLI:' takes nothing from the next line; only declared names appear
    assert r["calibrators"] == {"J0334-4008": ["bandpass", "flux"], "J0336-3616": ["phase"], "J0340-3547": ["check"]}
    assert r["targets"] == ["NGC1387"]
    assert r["field_names"] == {CYCLE5: {"0": "J0334-4008", "1": "J0336-3616", "2": "J0340-3547", "3": "NGC1387"}}
    # each conflict is reported with where it came from
    conflicts = "\n".join(r["conflicts"])
    assert f"field 2: comment at {CYCLE5}:{check_flag + 1} names it 'J0423-0120'; ignored" in conflicts
    # the stale '# J0334-4008' on field 1 loses to field 0, whose setjy and bandpass agree with the header
    assert f"and '1' ({CYCLE5}:{phase_flag + 1}); '0' kept (its calibration calls agree with the header)" in conflicts
    gaincal_all = _lines_of(text, "caltable = 'uid___A002_Xc6c0d5_X2a1b.ms.split.phase_all'")[0] - 1
    assert (f"NGC1387: calibrator (call: {CYCLE5}:{gaincal_all} gaincal(field='0~3')) ignored: target from header "
            "wins (a science target is never a calibrator)") in conflicts
    # the evidence for every role, with file and line
    phase_line = _lines_of(text, "# CALIBRATE_PHASE: J0336-3616")[0]
    assert r["fields"]["J0336-3616"]["evidence"][0] == f"phase (header: {CYCLE5}:{phase_line} '# CALIBRATE_PHASE: J0336-3616')"
    assert {f["line"]: f["evidence"] for f in r["findings"]}[phase_flag + 1].startswith("phase (header:")
    # a flag on the phase calibrator goes with roles=['phase'] and stays with roles=['flux'], whatever its comment
    by_role = {role: [f["line"] for f in calunflag(path=str(script), dryrun=True, roles=[role])["findings"]
                      if f["action"] == "comment"] for role in ("phase", "flux", "check")}
    assert by_role == {"phase": [phase_flag + 1], "flux": [bandpass_flag + 1], "check": [check_flag + 1]}


def test_tsys_table_reasons_say_what_they_flag(tmp_path):
    script = _copy(CYCLE5, tmp_path)
    text = script.read_text()
    edges, spike, times = _lines_of(text, "# Flagging edge channels", "# flag bad tsys", "timerange=")
    edges, spike, times = edges + 2, spike + 1, times - 2  # the flagdata( lines
    reasons = {f["line"]: f["reason"] for f in calunflag(path=str(script), dryrun=True)["findings"]}
    table = "uid___A002_Xc6c0d5_X2a1b.ms.tsys"
    assert reasons[edges] == (f"flags the Tsys table {table}, not visibilities: edge channels 0~3;124~127 of spws "
                              "17,19,21,23 (its comment: 'Flagging edge channels')")
    assert reasons[spike] == (f"flags the Tsys table {table}, not visibilities: channels 60~66 of spw 19, antenna DV14 "
                              "(its comment: 'flag bad tsys: DV14 spike in spw 19')")
    assert reasons[times] == f"flags the Tsys table {table}, not visibilities: all of spw 21, timerange 01:34:0~01:36:0"


def test_python_expressions_are_never_field_names(tmp_path):
    script = _copy_bytes(EXPRESSIONS, tmp_path)
    text = script.read_bytes().decode("latin-1")
    r = calunflag(path=str(script), dryrun=True)
    assert r["calibrators"] == {"3c279": ["bandpass"], "Ceres": ["flux"], "J1037-295": ["phase"]}
    assert r["targets"] == ["TW_Hya"] and r["conflicts"] == []
    expressions = ["'fluxCalName'", "'bpCalName'", "'calFields'", "\"phaseCalName.replace(' ', '')\"",
                   "\"','.join([bpCalName, phaseCalName]).split(',')\""]
    assert all(any(e in n for n in r["not_read"]) for e in expressions), r["not_read"]
    expression_flag, ceres, target, by_name = _lines_of(text, "field = phaseCalName.strip()", "field = 'Ceres'",
                                                        "field = 'TW_Hya'", "field = 'J1037-295'")
    ceres -= 2  # the call starts two lines above its field argument
    got = {f["line"]: (f["action"], f["reason"]) for f in r["findings"]}
    assert got[expression_flag] == ("keep", "field is the Python expression 'phaseCalName.strip()', not a literal: "
                                            "edit it by hand if it selects a calibrator")
    assert got[ceres][0] == "comment" and got[by_name][0] == "comment" and got[target][0] == "keep"


@pytest.mark.parametrize("empty", ["# CALIBRATE_AMPLI:", "# CALIBRATE_AMPLI: ", "# CALIBRATE_AMPLI:\t", "#CALIBRATE_AMPLI :"])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_an_empty_header_line_names_no_field(tmp_path, empty, newline):
    lines = [empty, "# CALIBRATE_ATMOSPHERE: J1256-0547,J1504+1029,Arp220", "# CALIBRATE_BANDPASS: J1256-0547",
             "# CALIBRATE_FLUX: J1256-0547", "# CALIBRATE_PHASE: J1504+1029", "# OBSERVE_CHECK:",
             "# OBSERVE_TARGET: Arp220", "",
             "flagdata(vis='x.ms.split', mode='manual', field='J1504+1029', spw='0:10~20', flagbackup=False)",
             "flagdata(vis='x.ms.split', mode='manual', field='Arp220', spw='0:10~20', flagbackup=False)"]
    script = tmp_path / "x.ms.scriptForCalibration.py"
    script.write_bytes(newline.join(lines).encode())
    r = calunflag(path=str(script), dryrun=True)
    assert r["calibrators"] == {"J1256-0547": ["bandpass", "flux"], "J1504+1029": ["phase"]}
    assert r["targets"] == ["Arp220"] and r["not_read"] == []
    assert [f["action"] for f in r["findings"]] == ["comment", "keep"]


def test_ppr_fluxcalflag_command_is_reported_never_edited(tmp_path):
    mous = tmp_path / "member.uid___A001_X2d6_X41"
    ppr = _copy(PPR, mous / "script")
    _copy(OLDPIPE, mous / "script")
    before = ppr.read_bytes()
    lines = ppr.read_text().splitlines()
    active = next(i for i, line in enumerate(lines) if ">hifa_fluxcalflag<" in line) + 1
    commented = next(i for i, line in enumerate(lines) if ">hif_fluxcalflag<" in line) + 1
    r = calunflag(path=str(mous))
    mine = [(f["line"], f["end"], f["kind"], f["action"]) for f in r["findings"] if f["file"] == str(ppr)]
    assert mine == [(active, active, "ppr", "report"), (commented, commented, "ppr", "keep")]
    assert "applyflags" in r["findings"][0]["reason"] and "inside an XML comment" in r["findings"][1]["reason"]
    assert f"{PPR}:{active}" in r["command"]["ppr"] and "executeppr(" in r["command"]["ppr"]
    assert ppr.read_bytes() == before and sorted(p.name for p in ppr.parent.iterdir() if "PPR" in p.name) == [PPR]
    assert str(ppr) not in r["files"] and r["changes"] == 1  # the pipescript's hif_fluxcalflag only
    # already switched off in the PPR: kept
    ppr.write_text(ppr.read_text().replace(
        "<Command xmlns=\"\">hifa_fluxcalflag</Command>\n                    <ParameterSet>",
        "<Command xmlns=\"\">hifa_fluxcalflag</Command>\n                    <ParameterSet>\n<Parameter><Keyword xmlns=\"\">"
        "applyflags</Keyword><Value xmlns=\"\">False</Value></Parameter>"))
    again = calunflag(path=str(ppr), dryrun=True)
    assert [(f["action"], f["reason"]) for f in again["findings"]][0] == ("keep", "already applyflags False")
    assert "ppr" not in again["command"]


def test_ppr_applyflags_of_the_next_command_never_switches_this_one_off():
    """A hand-edited PPR that lost a </ProcessingCommand>: the next command's applyflags=False is its own."""
    from almatools.plugins.calunflag.ppr import scan_ppr

    def command(name, applyflags=None):
        parameter = ("" if applyflags is None else
                     f"<Parameter><Keyword>applyflags</Keyword><Value>{applyflags}</Value></Parameter>")
        return f"  <ProcessingCommand>\n    <Command>{name}</Command>\n    <ParameterSet>{parameter}</ParameterSet>\n"

    text = ("<?xml version='1.0' encoding='UTF-8'?>\n<SciPipeRequest><ProcessingProcedure>\n"
            + command("hifa_fluxcalflag")  # its </ProcessingCommand> was lost in an edit
            + command("hif_fluxcalflag", "False") + "  </ProcessingCommand>\n"
            + "</ProcessingProcedure></SciPipeRequest>\n")
    found = [(f.line, f.action) for f in scan_ppr("PPR.xml", text, "applyflags")]
    assert found == [(4, "report"), (7, "keep")]


def test_rerunning_leaves_identical_copies_untouched(manual):
    first = calunflag(path=str(manual))["files"][str(manual)]
    edited, diff = Path(first["edited"]), Path(first["diff"])
    assert first["written"]
    stamps = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (edited, diff)}
    second = calunflag(path=str(manual))["files"][str(manual)]
    assert not second["written"]
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (edited, diff)} == stamps  # not even rewritten
    edited.write_text(edited.read_text() + "# my own note\n")
    with pytest.raises(TaskParameterError, match="exists and differs; set overwrite=True"):
        calunflag(path=str(manual))
    assert calunflag(path=str(manual), overwrite=True)["files"][str(manual)]["written"]
    assert restore_original(edited.read_text()) == MANUAL


@pytest.mark.casa
def test_the_ms_is_the_strongest_evidence(tmp_path):
    """Header and comments that contradict the MS lose to it, and each contradiction is reported."""
    vis = _simulate_three_fields(str(tmp_path / "uid___A002_Xc1a2b3_X4d5.ms.split"))  # 0 bandpass, 1 flux, 2 target
    script = write(tmp_path / "uid___A002_Xc1a2b3_X4d5.ms.scriptForCalibration.py", textwrap.dedent("""\
        # CALIBRATE_PHASE: J1924-2914
        # CALIBRATE_FLUX: Titan
        # OBSERVE_TARGET: TW_Hya
        flagdata(vis='uid___A002_Xc1a2b3_X4d5.ms.split', mode='manual', field='0', spw='0:2~3')
        flagdata(vis='uid___A002_Xc1a2b3_X4d5.ms.split', mode='manual',
                 field='1', # J1924-2914
                 spw='0:5~9')
        flagdata(vis='uid___A002_Xc1a2b3_X4d5.ms.split', mode='manual', field='2', spw='0:12~13')
        """))
    r = calunflag(path=str(script), vis=vis, dryrun=True)
    assert r["calibrators"] == {"J1924-2914": ["bandpass"], "Titan": ["flux"]} and r["targets"] == ["TW_Hya"]
    assert r["fields"]["J1924-2914"]["source"] == "ms"
    assert r["field_names"][script.name] == {"0": "J1924-2914", "1": "Titan", "2": "TW_Hya"}
    conflicts = "\n".join(r["conflicts"])
    assert f"field 1: comment at {script.name}:5 names it 'J1924-2914'; ignored: the MS {vis} calls it 'Titan'" in conflicts
    assert (f"J1924-2914: phase (header: {script.name}:1 '# CALIBRATE_PHASE: J1924-2914') ignored: bandpass from ms "
            "wins") in conflicts
    actions = lambda **kw: [f["action"] for f in calunflag(path=str(script), vis=vis, dryrun=True, **kw)["findings"]]
    assert actions(roles=["bandpass"]) == ["comment", "keep", "keep"]
    assert actions(roles=["phase"]) == ["keep", "keep", "keep"]
    assert actions() == ["comment", "comment", "keep"]


# a random mixture of header lines, comments and calls, in any order
_CALIBRATORS = ["J0334-4008", "J0336-3616", "J1256-0547", "J1504+1029", "Titan", "Ceres", "3c279", "J0423-0120"]
_TARGETS = ["NGC1387", "Arp220", "TW_Hya", "SDP.81", "ESO_358-16"]
_UNDECLARED = ["J2253+1608", "J0006-0623", "Mars", "J1924-2914"]
_INTENTS = {"flux": "CALIBRATE_FLUX", "bandpass": "CALIBRATE_BANDPASS", "phase": "CALIBRATE_PHASE",
            "check": "OBSERVE_CHECK", "target": "OBSERVE_TARGET"}


@st.composite
def _declared_script(draw):
    """(script text, {field name: (index, roles)}, [(flag block id, field name, referenced by, stale name)])."""
    cals = draw(st.lists(st.sampled_from(_CALIBRATORS), min_size=1, max_size=4, unique=True))
    targets = draw(st.lists(st.sampled_from(_TARGETS), min_size=1, max_size=2, unique=True))
    roles = {n: set(draw(st.sampled_from([("flux",), ("bandpass",), ("phase",), ("check",), ("bandpass", "flux")])))
             for n in cals}
    roles.update({t: {"target"} for t in targets})
    names = draw(st.permutations(cals + targets))
    index = {n: i for i, n in enumerate(names)}
    blocks = [f"# {_INTENTS[role]}: {n}" for n in names for role in sorted(roles[n])]
    blocks += [f"# {intent}:{pad}" for intent, pad in draw(st.lists(st.tuples(
        st.sampled_from(["CALIBRATE_AMPLI", "CALIBRATE_FOCUS", "CALIBRATE_DIFFGAIN", "OBSERVE_CHECK"]),
        st.sampled_from(["", " ", "\t"])), max_size=3))]
    by_index = sorted(cals, key=index.get)
    blocks.append(f"gaincal(vis='x.ms.split', caltable='x.phase_int',\n    field = '{','.join(str(index[n]) for n in by_index)}',"
                  f" # {','.join(by_index)}\n    solint = 'int', calmode = 'p')")
    for n in cals:
        if "flux" in roles[n]:
            blocks.append(f"setjy(vis='x.ms.split', field = '{index[n]}', # {n}\n    standard = 'manual')")
        if "bandpass" in roles[n]:
            blocks.append(f"bandpass(vis='x.ms.split', caltable='x.bandpass', field = '{index[n]}', # {n}\n"
                          "    solint = 'inf')")
    blocks += ["gaincal(vis='x.ms.split', field = phaseCalName.replace(' ', ''), solint = 'inf')",
               "fluxscale(vis='x.ms.split', reference = fluxCalName, transfer = ','.join([a, b]).split(','))",
               f"# Note: {', '.join(names)} (see the QA2 report); don't trust the old comments"]
    flags = []
    for n in names:
        by = draw(st.sampled_from(["index", "name"]))
        others = [c for c in cals if c != n]
        comment = draw(st.sampled_from(["", n] + _UNDECLARED + others))
        flags.append((len(blocks), n, by, comment))
        selection = str(index[n]) if by == "index" else n
        blocks.append(f"flagdata(vis = 'x.ms.split', mode = 'manual',\n    field = '{selection}',"
                      + (f" # {comment}" if comment else "") + "\n    spw = '0:10~20', flagbackup = False)")
    order = draw(st.permutations(range(len(blocks))))
    text = "\n\n".join(blocks[k] for k in order) + "\n"
    return text, {n: (index[n], roles[n]) for n in names}, flags


@pytest.mark.fuzz
@given(_declared_script(), st.sampled_from([[], ["flux"], ["bandpass"], ["phase"], ["check"]]))
def test_property_roles_follow_the_declarations_in_any_order(generated, wanted):
    import tempfile
    text, truth, flags = generated
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "uid___A002_X1_X2.ms.scriptForCalibration.py"
        script.write_text(text)
        r = calunflag(path=str(script), dryrun=True, roles=wanted)
    lines = text.splitlines()
    findings = {f["line"]: f for f in r["findings"]}
    for _, name, by, comment in flags:
        selection = f"field = '{truth[name][0] if by == 'index' else name}',"
        line = next(i + 1 for i, t in enumerate(lines) if t.startswith("flagdata(")
                    and lines[i + 1].startswith(f"    {selection}") and (comment in lines[i + 1]))
        finding, true_roles = findings[line], truth[name][1]
        if "target" in true_roles:
            assert finding["action"] == "keep", (name, finding)  # a science target is never unflagged
        elif finding["action"] == "comment":  # never a wrong removal: the role asked for is a true role
            assert not wanted or set(wanted) & true_roles, (name, true_roles, finding)
            assert finding["evidence"]
        elif not wanted:  # with every role asked for, every calibrator's flag goes
            pytest.fail(f"calibrator {name} kept: {finding}")
    declared = set(truth)
    assert all(k in declared or k.startswith(f"{script.name}:field ") for k in r["fields"]), r["fields"]
    assert all(k in declared - set(r["targets"]) or k.startswith(f"{script.name}:field ") for k in r["calibrators"])
    stale = {c for _, _, by, c in flags if by == "index" and c in _UNDECLARED}
    assert all(any(f"names it {c!r}" in x for x in r["conflicts"]) for c in stale)


# ---- issue 14: any language, any encoding, never lose the original, bounded work ----

NON_ASCII = """\
# Calibración de fase — señal débil; ¡ojo con la línea de CO!
# Überprüfung: Flüsse der Kalibratoren (Größenordnung 1 Jy)
# 校准说明 · ラインフラグ
größe = 'Flußkalibrator'
print('Schritt ', 'ñ', "é")
#  flagdata(vis = 'x.ms.split', field = 'Titan', spw = '0:1~2')  # auskommentiert, Grüße
"""


def test_non_ascii_letters_anywhere_change_nothing(tmp_path):
    plain = write(tmp_path / "a" / f"{EB}.ms.scriptForCalibration.py", MANUAL)
    mixed = write(tmp_path / "b" / f"{EB}.ms.scriptForCalibration.py", NON_ASCII + MANUAL)
    base = calunflag(path=str(plain), dryrun=True)["findings"]
    got = calunflag(path=str(mixed), dryrun=True)["findings"]
    shift = NON_ASCII.count("\n")
    assert got[0]["line"] == 6 and got[0]["action"] == "keep" and "inactive" in got[0]["reason"]
    assert [(f["line"] - shift, f["action"], f["field"]) for f in got[1:]] == [
        (f["line"], f["action"], f["field"]) for f in base]
    r = calunflag(path=str(mixed))
    assert Path(r["files"][str(mixed)]["edited"]).read_bytes().decode("utf-8").startswith(NON_ASCII)


def test_latin1_script_is_edited_byte_for_byte(tmp_path):
    script = _copy_bytes(EXPRESSIONS, tmp_path)
    original = script.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        original.decode("utf-8")  # really Latin-1
    r = calunflag(path=str(script))
    edited = Path(r["files"][str(script)]["edited"]).read_bytes()
    assert r["changes"] == 2
    assert restore_original(edited.decode("latin-1")).encode("latin-1") == original
    original_lines = original.split(b"\n")
    commented = [line[len(b"#calunflag# "):] for line in edited.split(b"\n") if line.startswith(b"#calunflag# ")]
    assert commented and all(line in original_lines for line in commented)
    untouched = [line for line in edited.split(b"\n") if b"calunflag" not in line]
    assert untouched == [line for line in original_lines if line not in commented]  # byte-identical, in order
    assert b"# L\xednea de absorci\xf3n" in edited  # still Latin-1, not re-encoded as UTF-8
    diff = Path(r["files"][str(script)]["diff"]).read_bytes()
    assert diff.decode("latin-1").count("\n+#calunflag# ") == len(commented)


def test_crlf_script_keeps_crlf_on_every_line(tmp_path):
    script = tmp_path / f"{EB}.ms.scriptForCalibration.py"
    script.write_bytes(MANUAL.replace("\n", "\r\n").encode())
    r = calunflag(path=str(script))
    edited = Path(r["files"][str(script)]["edited"]).read_bytes()
    assert r["changes"] == 3 and edited.count(b"\n") == edited.count(b"\r\n")
    assert restore_original(edited.decode()).encode() == script.read_bytes()


def test_inplace_reruns_never_lose_the_original(manual):
    original = manual.read_bytes()
    first = calunflag(path=str(manual), inplace=True, roles=["bandpass"])  # nothing to change: no backup needed
    assert first["files"] == {} and not list(manual.parent.glob("*.bak*"))
    calunflag(path=str(manual), inplace=True, keepatmospheric=True)  # removes only the analyst's flag
    once = manual.read_bytes()
    backup = manual.with_name(manual.name + ".calunflag.bak")
    assert backup.read_bytes() == original and once != original
    r = calunflag(path=str(manual), inplace=True, overwrite=True)  # now the two Titan blocks as well
    second = manual.with_name(manual.name + ".calunflag.bak.1")
    assert r["files"][str(manual)]["backup"] == str(second)
    assert backup.read_bytes() == original and second.read_bytes() == once  # the first backup is kept
    assert restore_original(manual.read_text()) == MANUAL
    calunflag(path=str(manual), inplace=True, overwrite=True)  # nothing left to change: nothing new written
    assert sorted(p.name for p in manual.parent.glob("*.bak*")) == [backup.name, second.name]


@pytest.mark.parametrize("selection, readable", [("0~9999", True), ("0~10000", False), ("0~3000000000", False),
                                                 ("5~2", False), ("9" * 5000, False), ("J*", False),
                                                 ("Titan, 2", True), ("'Titan'", False)])
def test_field_selections_are_bounded_and_literal(tmp_path, selection, readable):
    script = write(tmp_path / "x.ms.scriptForCalibration.py", textwrap.dedent(f"""\
        # CALIBRATE_FLUX: Titan
        gaincal(vis='x.ms.split', field = "{selection}", solint = 'int')
        flagdata(vis='x.ms.split', mode = 'manual', field = "{selection}", spw = '0:1~2')
        """))
    r = calunflag(path=str(script), dryrun=True)
    [flag] = r["findings"]
    if readable:  # every field it names is a calibrator (the header's Titan, the gaincal's indices): it goes
        assert flag["action"] == "comment" and r["not_read"] == []
    else:  # neither the flag nor the gaincal is read as a field selection; the reason says why
        assert flag["action"] == "keep" and flag["reason"].startswith("field holds ")
        assert r["not_read"] == [f"x.ms.scriptForCalibration.py:2 gaincal(field=...): the value {flag['reason'][6:]}"
                                 .rsplit(": edit it by hand", 1)[0]]


def _watchdog(fifo: Path, seconds: float = 20.0):
    """Unblock a reader stuck on *fifo* after *seconds* (so a regression fails instead of hanging)."""
    import threading
    fired = threading.Event()

    def release():
        if not done.wait(seconds):
            fired.set()
            with open(fifo, "wb"):
                pass
    done = threading.Event()
    threading.Thread(target=release, daemon=True).start()
    return done, fired


def test_fifos_and_devices_are_never_opened(tmp_path):
    mous = tmp_path / "member.uid___A001_X1_X2"
    _copy(CASA6, mous / "script")
    fifo = mous / "script" / "uid___A002_Xffff_X1.ms.scriptForCalibration.py"
    os.mkfifo(fifo)
    os.mkfifo(mous / "script" / "uid___A002_Xffff_X1.flagtemplate.txt")
    done, fired = _watchdog(fifo)
    try:
        r = calunflag(path=str(mous), dryrun=True)
        with pytest.raises(TaskParameterError, match="is a FIFO, not a regular file or directory"):
            calunflag(path=str(fifo))
    finally:
        done.set()
    assert not fired.is_set()
    assert sorted(Path(s["file"]).name for s in r["skipped"]) == ["uid___A002_Xffff_X1.flagtemplate.txt",
                                                                  fifo.name]
    assert all("FIFO" in s["why"] for s in r["skipped"]) and len(r["findings"]) == 5


def test_oversized_script_is_refused_before_reading_it_all(tmp_path, monkeypatch):
    from almatools.plugins.calunflag import scan
    monkeypatch.setattr(scan, "MAX_SCRIPT_BYTES", 1000)
    script = write(tmp_path / "x.ms.scriptForCalibration.py", "x = 1\n" * 200)
    with pytest.raises(TaskParameterError, match="needs 1.2 KiB read into memory; the bound is 1000 B: delivered"):
        calunflag(path=str(script))


# ---- fuzz: the script scanner, the template scanner, the PPR reader and field selections ----

_SCRIPT_TOKENS = st.sampled_from([
    "flagdata(", "setjy(", "gaincal(", "fluxscale(", "hifa_fluxcalflag(", ")", "(", "[", "]", "{", "}", ",", "=",
    "'", '"', "'''", '"""', "\\", "#", "# ", "#calunflag# ", "\n", "\r\n", "\t", " ", "  ", "field = '", "spw = '0:1~2'",
    "vis = 'x.ms.tsys'", "mode = 'manual'", "0~3000000000", "# CALIBRATE_PHASE:", "# OBSERVE_TARGET: ", "J1058+0133",
    "Titan", "phaseCalName", ".replace(' ', '')", "T", "F", "mystep = 3", "step_title = {0: 'a'", "é", "ß", "校",
    "\u2028", "\x0c", "\x1b", "¡", "print 'x'"])
_SCRIPTS = st.lists(st.one_of(_SCRIPT_TOKENS, st.text(max_size=6)), max_size=80).map("".join)


@pytest.mark.fuzz
@given(_SCRIPTS)
def test_fuzz_script_scanner_reads_or_names_the_line(text):
    try:
        calls = find_calls(text, ["flagdata", "setjy", "gaincal", "fluxscale", "hifa_fluxcalflag"], "fuzz.py")
    except ScriptError as exc:
        assert str(exc).startswith("fuzz.py:") and 1 <= int(str(exc).split(":")[1]) <= text.count("\n") + 1
        return
    lines = text.split("\n")
    assert [(c.start, c.column) for c in calls] == sorted((c.start, c.column) for c in calls)
    for c in calls:
        assert 0 <= c.start <= c.end < len(lines) and c.text.startswith(c.name) and c.text.endswith(")")
        assert lines[c.start][c.column:].startswith(c.name) or not c.active


@pytest.mark.fuzz
@given(_SCRIPTS, st.sampled_from(["applyflags", "comment"]))
def test_fuzz_script_edits_are_always_reversible(text, fluxcalflag):
    """Whatever the script, calunflag's edits undo to the exact original (or it names the line it cannot read)."""
    from almatools.plugins.calunflag.edit import apply_edits, scan_script
    from almatools.plugins.calunflag.roles import ROLES, FieldRoles, roles_from_script
    if "calunflag" in text:
        return  # a line already carrying calunflag's marks is restored, by design
    try:
        calls = find_calls(text, ["flagdata", "setjy", "gaincal", "fluxscale", "bandpass", "applycal"], "fuzz.py")
        roles = roles_from_script("fuzz.py", text, calls, FieldRoles())
        findings, calls = scan_script("fuzz.py", text, roles, set(ROLES), set(), False, fluxcalflag)
    except ScriptError:
        return
    assert restore_original(apply_edits(text, findings, calls)) == text


_TEMPLATE_TOKENS = st.sampled_from([
    "mode='manual'", "mode=manual", "field='Titan'", "field=J0542-0913", "field='0~3000000000'", "spw='17:100~200;300~350'",
    "spw='25:230.513~230.525GHz'", "intent='*AMPLI*'", "antenna='DV02;DV03&DA51'", "reason='Tsys problems'",
    "reason=\"Flux_calibrator_atmospheric_line\"", " ", "  ", "\n", "#", "'", '"', "=", "é", "\\", "\t"])


@pytest.mark.fuzz
@given(st.lists(st.one_of(_TEMPLATE_TOKENS, st.text(max_size=5)), max_size=40).map("".join))
def test_fuzz_flag_template_scanner(text):
    from almatools.plugins.calunflag.edit import apply_edits, scan_template
    from almatools.plugins.calunflag.roles import ROLES, FieldRoles
    try:
        findings = scan_template("fuzz.flagtemplate.txt", text, FieldRoles(), set(ROLES), set())
    except ScriptError as exc:
        assert str(exc).startswith("fuzz.flagtemplate.txt:")
        return
    lines = text.split("\n")
    assert all(lines[f.line - 1].strip() and not lines[f.line - 1].strip().startswith("#") for f in findings)
    if "calunflag" not in text:
        assert restore_original(apply_edits(text, findings)) == text


_PPR_TOKENS = st.sampled_from([
    "<ProcessingCommand>", "</ProcessingCommand>", "<Command xmlns=\"\">", "<Command>", "</Command>", "hifa_fluxcalflag",
    "hif_fluxcalflag", "_fluxcalflag", "<ParameterSet>", "<Keyword xmlns=\"\">applyflags</Keyword>",
    "<Value xmlns=\"\">False</Value>", "<!--", "-->", "<", ">", "\n", " ", "é"])


@pytest.mark.fuzz
@given(st.lists(st.one_of(_PPR_TOKENS, st.text(max_size=5)), max_size=50).map("".join))
def test_fuzz_ppr_reader_points_at_the_command(text):
    from almatools.plugins.calunflag.ppr import scan_ppr
    lines = text.split("\n")
    for f in scan_ppr("PPR_fuzz.xml", text, "applyflags"):
        assert "fluxcalflag" in lines[f.line - 1] and f.line <= f.end <= len(lines)
        assert f.action in ("report", "keep")


@pytest.mark.fuzz
@given(st.one_of(st.text(max_size=60), st.integers(), st.lists(st.one_of(st.integers(), st.text(max_size=5)), max_size=5),
                 st.builds(lambda t: __import__("almatools.plugins.calunflag.scan", fromlist=["Expr"]).Expr(t),
                           st.text(max_size=20)),
                 st.from_regex(r"\A[0-9]{1,12}[ \t]*~[ \t]*[0-9]{1,12}(,[0-9]{1,4})?\Z")))
def test_fuzz_field_selections_are_literal_and_bounded(value):
    from almatools.plugins.calunflag.roles import MAX_FIELD_WORK, parse_field_selection
    selection = parse_field_selection(value)
    assert not (selection.problem and (selection.indices or selection.names))
    assert len(selection.indices) + len(selection.names) <= MAX_FIELD_WORK
    assert all(i.isdigit() and str(int(i)) == i for i in selection.indices)
    assert all(n.strip() == n and n and "'" not in n and "(" not in n and "*" not in n for n in selection.names)


# ---- the PPR reader against an XML parser, on generated well-formed PPRs ----
_WS = st.sampled_from(["", " ", "\n", "\n    ", "\t", "\r\n  "])
_OTHER_COMMANDS = ["hifa_importdata", "hifa_bandpass", "hifa_gfluxscale", "hif_makeimlist"]
_EMPTY_COMMENT = st.sampled_from(["", "<!---->", "<!-- -->"])  # '<!---->' is a whole (empty) comment


@st.composite
def _ppr_document(draw):
    """A well-formed PPR and, for each fluxcalflag command name in it, (offset, name, expected action).

    Items: commands (fluxcalflag or others, with or without applyflags), whole commands inside
    comments, and the command names in prose elsewhere; the document may open with a comment.
    """
    parts, expected = [], []

    def add(text):
        parts.append(text)

    lead = draw(st.sampled_from(["", "prose", "command"]))  # a comment may open the file, before the root
    if lead == "prose":
        add("<!-- " + draw(st.sampled_from(["PPR", "hifa_fluxcalflag off?", "x"])) + " -->" + draw(_WS))
    elif lead == "command":
        expected.append((len("<!--<ProcessingCommand><Command>"), "hifa_fluxcalflag", "keep"))
        add("<!--<ProcessingCommand><Command>hifa_fluxcalflag</Command></ProcessingCommand>-->" + draw(_WS))
    add('<SciPipeRequest xmlns="Alma/pipelinescience/SciPipeRequest">' + draw(_WS) + "<ProcessingProcedure>")
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["command", "commented", "prose"]))
        name = draw(st.sampled_from(["hifa_fluxcalflag", "hif_fluxcalflag", *_OTHER_COMMANDS]))
        applyflags = draw(st.sampled_from([None, "False", "false", "True", " FALSE "]))
        ws = [draw(_WS) for _ in range(6)]
        if kind == "prose":
            add(f'{ws[0]}<Comment xmlns="">run {name} before hifa_bandpass</Comment>{draw(_EMPTY_COMMENT)}')
            continue
        add(f"{ws[0]}{'<!--' + ws[1] if kind == 'commented' else ''}<ProcessingCommand>{ws[2]}<Command xmlns=\"\">")
        if name.endswith("_fluxcalflag"):
            off = kind == "commented" or (applyflags is not None and applyflags.strip().lower() == "false")
            expected.append((len("".join(parts)), name, "keep" if off else "report"))
        add(f"{name}</Command>{ws[3]}<ParameterSet>")
        if draw(st.booleans()):  # a parameter whose value names a command (it is no command)
            add(f"{ws[4]}<Parameter><Keyword xmlns=\"\">note</Keyword><Value xmlns=\"\">after hifa_fluxcalflag"
                "</Value></Parameter>")
        if applyflags is not None:
            add(f"{ws[4]}<Parameter><Keyword xmlns=\"\">applyflags</Keyword><Value xmlns=\"\">{applyflags}</Value>"
                "</Parameter>")
        add(f"</ParameterSet>{ws[5]}</ProcessingCommand>{ws[1] + '-->' if kind == 'commented' else ''}")
    add("</ProcessingProcedure></SciPipeRequest>\n")
    return "".join(parts), expected


@pytest.mark.fuzz
@given(_ppr_document(), st.sampled_from(["applyflags", "comment"]))
def test_ppr_reader_agrees_with_an_xml_parser(document, fluxcalflag):
    import xml.etree.ElementTree as ET
    from almatools.plugins.calunflag.ppr import scan_ppr
    text, expected = document
    # the XML parser (which drops comments) sees exactly the active commands the generator meant
    root = ET.fromstring(text)
    ns = "{Alma/pipelinescience/SciPipeRequest}"
    active = []
    for command in root.iter(f"{ns}ProcessingCommand"):
        name = command.find("Command").text
        if name.endswith("_fluxcalflag"):
            values = [p.find("Value").text for p in command.iter(f"{ns}Parameter")
                      if p.find("Keyword").text == "applyflags"]
            active.append("keep" if values and values[0].strip().lower() == "false" else "report")
    findings = scan_ppr("PPR_x.xml", text, fluxcalflag)
    assert [f.action for f in findings if "comment" not in f.reason] == active
    want = [(text.count("\n", 0, offset) + 1, action) for offset, _, action in expected]
    assert [(f.line, f.action) for f in findings] == want
    assert [f.reason.startswith("inside an XML comment") for f in findings] == [_commented(text, offset)
                                                                                for offset, _, _ in expected]


@pytest.mark.parametrize("distance, found", [(200, True), (201, False)])
def test_a_command_tag_is_looked_for_up_to_200_characters_back(distance, found):
    """The reader looks back 200 characters from a command name for its <Command ...> tag (a bound that
    keeps the scan linear); a tag with long attributes and whitespace within it is read, beyond it not."""
    from almatools.plugins.calunflag.ppr import scan_ppr
    tag = '<Command xmlns="" ' + "a" * 120 + '="">'
    text = "<ProcessingCommand>" + tag + "\n" * (distance - len(tag)) + "hifa_fluxcalflag</Command></ProcessingCommand>"
    assert len(text[text.index("<Command"):text.index("hifa_")]) == distance
    assert [f.action for f in scan_ppr("PPR_x.xml", text, "applyflags")] == (["report"] if found else [])


def test_a_truncated_ppr_still_reports_its_last_command():
    """A PPR cut short (a partial download) after a command's name: the command is still reported."""
    from almatools.plugins.calunflag.ppr import scan_ppr
    text = (DATA / PPR).read_text()
    at = text.index("hifa_fluxcalflag</Command>")
    cut = text[:text.index("<ParameterSet>", at) + len("<ParameterSet>")]
    assert "</ProcessingCommand" not in cut[at:]
    findings = scan_ppr("PPR_cut.xml", cut, "applyflags")
    assert [(f.line, f.action) for f in findings] == [(cut.count("\n", 0, at) + 1, "report")]


def _commented(text, offset):
    """Whether *offset* lies between a '<!--' and its '-->' (a plain scan, independent of ppr.py)."""
    inside = False
    i = 0
    while i < offset:
        if not inside and text.startswith("<!--", i):
            inside, i = True, i + 4
        elif inside and text.startswith("-->", i):
            inside, i = False, i + 3
        else:
            i += 1
    return inside
