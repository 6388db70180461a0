"""calunflag on scripts and templates in the real shapes of DOMAIN.md §2 and §10."""

import os
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from almatools.casa_tasks import calunflag
from almatools.errors import TaskParameterError
from plugins.calunflag.edit import restore_original
from plugins.calunflag.scan import find_calls

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


@settings(max_examples=200, deadline=None)
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
    assert r["calibrators"] == {"J0334-4008": ["calibrator", "phase"], "J0423-0120": ["bandpass", "calibrator"],
                                "NGC_1365": ["target"], "Titan": ["calibrator", "flux"]}
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


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("flagdata(),='\"#:~ \n\tTF0123xyz\\[]{}")), max_size=120))
def test_scanner_on_arbitrary_text_either_reads_or_names_a_line(text):
    from plugins.calunflag.scan import ScriptError
    try:
        calls = find_calls("flagdata(" + text, ["flagdata"], "fuzz.py")
    except ScriptError as exc:
        assert str(exc).startswith("fuzz.py:") and int(str(exc).split(":")[1]) >= 1
    else:
        assert all(c.name == "flagdata" and c.end >= c.start for c in calls)
