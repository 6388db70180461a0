"""calversion on Member OUS trees and single files shaped like every real variant (DOMAIN.md §10)."""

import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from almatools import example
from almatools.casa_tasks import calversion
from almatools.errors import TaskParameterError


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def tgz(path, members):
    """A .tgz holding {name: text}."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def mous_tree(tmp_path, files):
    """A bare Member OUS directory with the given {relative path: text}."""
    root = tmp_path / "member.uid___A001_X1_X2"
    for sub in ("calibration", "log", "product", "qa", "raw", "script"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        write(root / rel, text)
    return root


PIN = """\
# ALMA Data Reduction Script
import re
if re.search('^{v}', casadef.casa_version) == None:
 sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING THE SCRIPT: {v}')
print 'python 2 is fine'
open('SCRIPT_WAS_RUN', 'w')
"""
CU_PIN = """\
import re
if re.search('^{v}', '.'.join([str(i) for i in cu.version().tolist()[:-1]])) == None:
 sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING THE SCRIPT: {v}')
"""
COMMENTED_PIN = """\
import re
#if re.search('^{v}', casadef.casa_version) == None:
# sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING THE SCRIPT: {v}')
"""
MINIMUM = """\
if casadef.casa_version < '{v}' :
    sys.exit('Please use CASA version greater than or equal to {v} with this script')
"""
CASA4_LOG = "2016-05-02 10:10:10\tINFO\tcasa::::\tCASA Version {v}-REL (r39762)\n"
CASA6_LOG = ("2023-10-14 10:12:31\tINFO\t::casa\tCASA Version PIPELINE {v}\n"
             "2023-10-14 10:12:35\tINFO\th_init::pipeline.infrastructure.launcher::casa\t"
             "Pipeline version 2023.1.0.124 running on cvpost042\n"
             "2023-10-14 11:40:10\tINFO\thif_applycal::casa\t##### Begin Task: applycal #####\n")
WEBLOG = ("<html><body><table><tr><th>CASA Version</th><td>{v}</td></tr>\n"
          "<tr><th>Pipeline Version</th><td>2022.2.0.64 (Pipeline-CASA64-P1-B)</td></tr></table></body></html>")


@pytest.mark.parametrize("name, text, version, shape, meaning, active, purpose", [
    ("uid___A002_X1_X2.ms.scriptForCalibration.py", PIN.format(v="4.4.0"), "4.4.0", "version-check", "pin", True,
     "calibration"),
    ("uid___A002_X1_X2.ms.scriptForCalibration.py", PIN.format(v="4.1"), "4.1", "version-check", "pin", True,
     "calibration"),
    ("uid___A002_X1_X2.ms.scriptForCalibration.py", CU_PIN.format(v="5.1.1"), "5.1.1", "version-check", "pin", True,
     "calibration"),
    ("scriptForFluxCalibration.py", COMMENTED_PIN.format(v="4.2.2"), "4.2.2", "version-check", "pin", False,
     "calibration"),
    ("scriptForImaging.py", MINIMUM.format(v="4.4.0"), "4.4.0", "version-compare", "minimum", True, "imaging"),
    ("member.uid___A001_X1_X2.README.txt", "Cycle: 3\nCASA version used for reduction: 4.6\nQA2 Result: PASS\n",
     "4.6", "readme", "ran", True, "calibration"),
    ("README", "QA2 Result: PASS\n  CASA version used for reduction: 4.5.3\n", "4.5.3", "readme", "ran", True,
     "calibration"),
    ("casa-20160502-101010.log", CASA4_LOG.format(v="4.7.2"), "4.7.2", "log-header", "ran", True, "unknown"),
    ("casa-20231014-101231.log", CASA6_LOG.format(v="6.5.4.9"), "6.5.4.9", "log-header", "ran", True,
     "calibration"),
    ("t1-1.html", WEBLOG.format(v="6.4.1.12"), "6.4.1.12", "weblog", "ran", True, "calibration"),
])
def test_each_version_shape_in_a_single_file(tmp_path, monkeypatch, name, text, version, shape, meaning, active,
                                             purpose):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "in" / name, text)
    r = calversion(path=str(path))
    assert len(r["sources"]) == 1, r["sources"]
    s = r["sources"][0]
    assert (s["version"], s["shape"], s["meaning"], s["active"], s["purpose"]) == (
        version, shape, meaning, active, purpose)
    assert s["file"] == name and version in text.splitlines()[s["line"] - 1]
    if purpose == "imaging":
        assert r["casa_version"] == "" and r["imaging_version"] == ">=" + version
    else:
        assert r["casa_version"] == version
    assert not (tmp_path / "SCRIPT_WAS_RUN").exists()  # scripts are read, never run
    commented = [p for p in r["pitfalls"] if "commented out" in p]
    assert bool(commented) == (not active)


def test_pipeline_example_mous(tmp_path):
    mous = example.build_member_ous(tmp_path, kind="pipeline", images=False)
    r = calversion(path=str(mous))
    assert r["casa_version"] == example.CASA_VERSION and r["calibration_type"] == "pipeline" and r["pipeline"]
    assert r["pipeline_version"] == example.PIPELINE_VERSION
    assert r["calibration"]["file"].startswith("log/casa-") and r["calibration"]["source"] == "casa-log"
    # the README's two-part "6.5.4" and the weblog (inside qa/*.weblog.tgz) agree with the log
    by_source = {s["source"]: s for s in r["sources"]}
    assert by_source["readme"]["version"] == "6.5.4" and by_source["weblog"]["version"] == "6.5.4.9"
    assert by_source["weblog"]["file"].startswith("qa/") and ".weblog.tgz:" in by_source["weblog"]["file"]
    assert r["disagreements"] == []
    assert r["imaging_version"] == example.CASA_VERSION  # hifa_calimage imaged in the same run
    script = mous / "script"
    assert r["command"]["shell"] == f"cd {script} && casa --pipeline -c member.uid___A001_X1465_X3.scriptForPI.py"
    assert "with pipeline 2023.1.0.124" in r["command"]["casa"]
    assert any("raw is empty" in p for p in r["pitfalls"])


def test_manual_example_mous(tmp_path):
    mous = example.build_member_ous(tmp_path, kind="manual", images=False)
    r = calversion(path=str(mous))
    assert (r["casa_version"], r["calibration_type"], r["pipeline"]) == ("4.7.2", "manual", False)
    assert r["imaging_version"] == ">=4.7.2"
    assert r["command"]["shell"].endswith("&& casa -c member.uid___A001_X1465_X3.scriptForPI.py")
    assert not r["matches"] and "4.7.2" in r["match_note"]
    assert calversion(path=str(mous), casaversion="4.7.2")["matches"]
    assert not calversion(path=str(mous), casaversion="4.7.0")["matches"]


@pytest.mark.parametrize("marker", ["script/member.uid___A001_X1_X2.hifa_calimage.casa_pipescript.py",
                                    "script/member.uid___A001_X1_X2.hifa_calimage.casa_piperestorescript.py",
                                    "script/PPR_uid___A001_X1_X2.xml"])
def test_pipeline_is_recognised_by_each_of_its_scripts(tmp_path, marker):
    mous = mous_tree(tmp_path, {marker: "hifa_restoredata (vis=['uid___A002_X1_X2'], session=['session_1'])\n",
                                "README.txt": "CASA version used for reduction: 5.4.0\n"})
    r = calversion(path=str(mous))
    assert (r["calibration_type"], r["casa_version"]) == ("pipeline", "5.4.0")


def test_disagreeing_sources_are_all_reported_and_the_log_wins(tmp_path):
    mous = mous_tree(tmp_path, {
        "script/uid___A002_X1_X2.ms.scriptForCalibration.py": PIN.format(v="4.3.1"),
        "README.txt": "CASA version used for reduction: 4.4\n",
        "log/casa-20150101-000000.log": CASA4_LOG.format(v="4.4.0") + "bandpass(vis='x.ms')\n",
    })
    r = calversion(path=str(mous))
    assert r["casa_version"] == "4.4.0" and r["calibration"]["source"] == "casa-log"
    assert "actually ran" in r["calibration"]["reason"] and "4.3.1" in r["calibration"]["reason"]
    [d] = r["disagreements"]
    assert d["purpose"] == "calibration" and d["versions"] == ["4.3.1", "4.4.0"]  # 4.4 is the same release as 4.4.0
    assert d["where"]["4.3.1"] == ["script/uid___A002_X1_X2.ms.scriptForCalibration.py:3"]
    assert sorted(d["where"]["4.4.0"]) == ["log/casa-20150101-000000.log:1"]
    assert r["calibration_type"] == "manual"


def test_logs_inside_archives_and_corrupt_archives(tmp_path):
    mous = mous_tree(tmp_path, {"README.txt": "CASA version used for reduction: 4.7\n"})
    tgz(mous / "log" / "member.uid___A001_X1_X2.log.tgz",
        {"logs/casa-20170101-000000.log": CASA4_LOG.format(v="4.7.2") + "gaincal(vis='x')\n"})
    (mous / "qa" / "member.uid___A001_X1_X2.weblog.tgz").write_bytes(b"not a tar archive")
    r = calversion(path=str(mous))
    assert r["casa_version"] == "4.7.2"
    assert r["calibration"]["file"] == "log/member.uid___A001_X1_X2.log.tgz:logs/casa-20170101-000000.log"


def test_pitfalls_it_can_see(tmp_path):
    mous = mous_tree(tmp_path, {
        "script/uid___A002_X1_X2.ms.scriptForCalibration.py": COMMENTED_PIN.format(v="4.2.2"),
        "script/member.uid___A001_X1_X2.scriptForPI.py": "# restore\n",
        "calibration/uid___A002_X1_X2.calibration.tar.gz": "",
        "calibrated/uid___A002_X1_X2.ms.split.cal/table.dat": "",
    })
    r = calversion(path=str(mous))
    pitfalls = "\n".join(r["pitfalls"])
    assert "calibrated already exists" in pitfalls
    assert "uid___A002_X1_X2.calibration.tar.gz is named *.tar.gz" in pitfalls and "uid___A002_X1_X2.calibration.tgz" in pitfalls
    assert "scriptForCalibration.py:2: the CASA version check is commented out" in pitfalls
    assert r["casa_version"] == "4.2.2" and "commented out" in r["calibration"]["reason"]
    assert (mous / "calibration" / "uid___A002_X1_X2.calibration.tar.gz").exists()  # reported, never renamed


def test_running_version_is_the_installed_casa():
    import casatasks
    from almatools.plugins.calversion.task_calversion import _running_version
    assert casatasks.version_string().startswith(_running_version())


def test_refusals_name_the_parameter(tmp_path):
    with pytest.raises(TaskParameterError, match="path") as err:
        calversion(path=str(tmp_path / "missing"))
    assert "missing" in str(err.value)
    other = write(tmp_path / "image.fits", "SIMPLE")
    with pytest.raises(TaskParameterError, match="is not a file that can state a CASA version"):
        calversion(path=str(other))
    with pytest.raises(TaskParameterError, match="casaversion"):
        calversion(path=str(tmp_path), casaversion="latest")


def test_empty_directory_gives_no_version_and_says_so(tmp_path):
    r = calversion(path=str(tmp_path))
    assert (r["casa_version"], r["calibration_type"], r["sources"]) == ("", "unknown", [])
    assert r["match_note"] == "no CASA version found" and r["command"]["shell"] == ""


def test_command_line_json_equals_python_result(tmp_path):
    mous = example.build_member_ous(tmp_path, kind="manual", images=False)
    out = subprocess.run([sys.executable, "-m", "almatools", "run", "calversion", "--path", str(mous),
                          "--json", "result.json"], capture_output=True, text=True, cwd=tmp_path, env=os.environ)
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "result.json").read_text()) == json.loads(json.dumps(calversion(path=str(mous))))


# ---- issue 14: never open what is not a regular file; linear readers; only documented errors ----

def _watchdog(fifos, seconds=20.0):
    """Unblock readers stuck on *fifos* after *seconds*, so a regression fails instead of hanging the suite."""
    import threading
    done, fired = threading.Event(), threading.Event()

    def release():
        if not done.wait(seconds):
            fired.set()
            for fifo in fifos:
                with open(fifo, "wb"):
                    pass
    threading.Thread(target=release, daemon=True).start()
    return done, fired


def test_fifos_in_a_mous_are_reported_never_opened(tmp_path):
    mous = mous_tree(tmp_path, {"log/casa-20160502-101010.log": CASA4_LOG.format(v="4.7.2") + "gaincal(vis='x')\n"})
    fifos = [mous / "README", mous / "script" / "uid___A002_X1_X2.ms.scriptForCalibration.py",
             mous / "qa" / "member.uid___A001_X1_X2.weblog.tgz"]
    for fifo in fifos:
        os.mkfifo(fifo)
    done, fired = _watchdog(fifos)
    try:
        r = calversion(path=str(mous))
        with pytest.raises(TaskParameterError, match="is a FIFO, not a regular file or directory"):
            calversion(path=str(fifos[0]))
    finally:
        done.set()
    assert not fired.is_set(), "a FIFO was opened"
    assert r["casa_version"] == "4.7.2"  # the other sources are still read
    assert r["unread"] == [{"file": "README", "why": "is a FIFO: not opened"},
                           {"file": "qa/member.uid___A001_X1_X2.weblog.tgz", "why": "is a FIFO: not opened"},
                           {"file": "script/uid___A002_X1_X2.ms.scriptForCalibration.py",
                            "why": "is a FIFO: not opened"}]


def test_devices_are_refused_by_name(tmp_path):
    with pytest.raises(TaskParameterError, match="is a device or socket, not a regular file or directory"):
        calversion(path="/dev/null")


@pytest.mark.parametrize("name, text, version", [
    # the version stated after a run of blanks that made the old readers quadratic
    ("t1-1.html", "<th>CASA Version</th>" + " " * 200_000 + "<td>6.4.1.12</td>", "6.4.1.12"),
    ("t1-1.html", "<" * 200_000 + "<th>CASA Version</th><td>6.4.1.12</td>", "6.4.1.12"),
    ("t1-1.html", "<th>CASA&nbsp;Version</th>\n<td>\n6.2.1.7</td>" + "<" * 100_000, "6.2.1.7"),
    ("README", "CASA version used for reduction:" + " " * 200_000 + "5.4.0\n", "5.4.0"),
    ("x.ms.scriptForCalibration.py", "re.search('^4.2.2', '.'.join(" * 40_000 + "\n", None),  # no cu.version(): no pin
    ("x.ms.scriptForCalibration.py", "re.search('^4.2.2', '.'.join(" * 40_000 + "cu.version().tolist())\n", "4.2.2"),
    ("casa-20160502-101010.log", "\tCASA Version 4.7.2-REL" + "-" * 200_000 + "\n", "4.7.2"),
    ("README", "CASA version used for reduction: " + "9" * 5000 + ".1\n", None),  # not a version: no crash
])
def test_hostile_version_lines_are_read_in_one_pass(tmp_path, name, text, version):
    path = tmp_path / name
    path.write_text(text)
    r = calversion(path=str(path))
    assert [s["version"] for s in r["sources"]] == ([version] if version else [])


def test_version_key_never_fails_on_odd_text():
    from almatools.plugins.calversion.sources import version_key
    assert version_key("6.5.4-9") == (6, 5, 4, 9)
    assert version_key("6.5²") == (6,) and version_key("9" * 5000 + ".1") == (1,) and version_key("") == ()


_VERSION_TOKENS = st.sampled_from([
    "CASA Version ", "CASA version used for reduction: ", "re.search('^", "', casadef.casa_version)",
    "'.'.join([str(i) for i in cu.version().tolist()[:-1]])", "casadef.casa_version < '", "USE THE SAME VERSION OF "
    "CASA THAT YOU USED FOR GENERATING THE SCRIPT: ", "4.7.2", "6.5.4-9", "2023.1.0.124", "-REL (r39762)", "PIPELINE ",
    "Pipeline version ", "#", "\n", "\t", " ", ":", "<th>", "</td>", "<", ">", "&nbsp;", "&amp;", "9" * 30, ".", "-",
    "é", "ß", "²", "٣", "\r\n", "\x00"])


@pytest.mark.fuzz
@given(st.lists(st.one_of(_VERSION_TOKENS, st.text(max_size=8)), max_size=60).map("".join),
       st.sampled_from(["readme", "calibration-script", "imaging-script", "casa-log", "weblog"]))
def test_fuzz_version_readers_never_fail_and_point_at_their_line(text, kind):
    from almatools.plugins.calversion.sources import normalise, statements_from_text, version_key
    found = statements_from_text(kind, text, "fuzz")
    lines = text.splitlines()
    for s in found:
        assert 1 <= s.line <= max(1, len(lines)) and len(version_key(s.version)) >= 2
        assert normalise(s.version).count(".") <= 4
        if kind != "weblog":  # a weblog value may sit on a later line than its label
            assert s.version in lines[s.line - 1]
        else:
            assert s.version in text


@pytest.mark.fuzz
@given(st.text(max_size=40), st.one_of(st.none(), st.text(max_size=200)))
def test_fuzz_classify_any_name_and_text(name, text):
    from pathlib import Path
    from almatools.plugins.calversion.sources import classify
    kind = classify(Path(name.replace("/", "_").replace("\x00", "") or "x"), text)
    assert kind in (None, "calibration-script", "fluxcal-script", "imaging-script", "pipeline-script", "ppr", "readme",
                    "casa-log", "weblog", "weblog-archive", "log-archive")


# ---- sources: which delivery file is which, and what each reader takes from it ----

from pathlib import Path  # noqa: E402

from almatools.plugins.calversion import sources  # noqa: E402


@pytest.mark.parametrize("name, kind", [
    ("member.uid___A001_X1_X2.hifa_calimage.casa_pipescript.py", "pipeline-script"),
    ("member.uid___A001_X1_X2.hifa_calimage.casa_piperestorescript.py", "pipeline-script"),
    ("member.uid___A001_X1_X2.scriptForPI.py", "pipeline-script"),
    ("uid___A002_X1_X2.ms.scriptForCalibration.py", "calibration-script"),
    ("uid___A002_X1_X2.ms.scriptForFluxCalibration.py", "fluxcal-script"),
    ("scriptForImaging.py", "imaging-script"),
    ("member.uid___A001_X1_X2.imaging_selfcal.py", "imaging-script"),
    ("PPR_uid___A001_X1_X2.xml", "ppr"),
    ("member.uid___A001_X1_X2.hifa_calimage.pipeline_manifest.xml", None),
    ("member.uid___A001_X1_X2.README.txt", "readme"),
    ("member.uid___A001_X1_X2.hifa_calimage.weblog.tgz", "weblog-archive"),
    ("member.uid___A001_X1_X2.log.tgz", "log-archive"),
    ("member.uid___A001_X1_X2.hifa_calimage.auxproducts.tgz", None),
    ("uid___A002_X1_X2.calibration.tgz", None),
    ("casa-20160502-101010.log", "casa-log"),
    ("member.uid___A001_X1_X2.hifa_calimage.casa_commands.log", "casa-log"),
    ("casapy-20131104-112233.log.1", "casa-log"),
    ("t1-1.html", "weblog"),
    # CASA's other files in a working directory: only its .log files are logs
    ("casa-20160502-101010.last", None),
    ("casa-commands.dat", None),
])
def test_classify_by_delivery_file_name(name, kind):
    """Each real delivery file name maps to its kind without reading the file; pipeline scripts and
    manifests, auxproducts and calibration tables state no version."""
    assert sources.classify(Path(name)) == kind


VERSIONLESS_SELFCAL = """\
# self-calibration of the continuum
gaincal(vis='calibrated_final.ms', caltable='pcal1', solint='inf', calmode='p')
applycal(vis='calibrated_final.ms', gaintable=['pcal1'])
"""
VERSION_PRINT = """\
print('Running in CASA ' + casadef.casa_version)
tclean(vis='calibrated_final.ms', imagename='cont', specmode='mfs')
"""


@pytest.mark.parametrize("name, text, kind", [
    ("uid___A002_X1_X2.ms.scriptForPolCalibration.py",
     PIN.format(v="4.4.0") + "gaincal(vis = 'uid___A002_X1_X2.ms.split', caltable = 'cal.G')\n", "calibration-script"),
    ("scriptForContinuum.py", CU_PIN.format(v="5.1.1") + "tclean(vis='calibrated_final.ms', imagename='cont')\n",
     "imaging-script"),
    ("scriptForContinuum.py", MINIMUM.format(v="4.4.0") + "clean(vis='calibrated_final.ms', imagename='cont')\n",
     "imaging-script"),
    ("uid___A002_X1_X2.ms.scriptForPolCalibration.py", None, None),
    ("scriptForSelfcal.py", VERSIONLESS_SELFCAL, None),
    ("scriptForContinuum.py", VERSION_PRINT, None),
])
def test_classify_an_oddly_named_script_by_its_version_check(name, text, kind):
    """A script not named like the generated ones counts only if it pins a version; its tasks say
    whether it calibrates or images.  Without its text it is nothing."""
    assert sources.classify(Path(name), text) == kind


@pytest.mark.parametrize("name, text, kind", [
    ("member.uid___A001_X1_X2.qa2_notes.txt", "Cycle: 4\nCASA version used for reduction: 4.7.2\nQA2 Result: PASS\n",
     "readme"),
    ("uid___A002_Xa1b2c3_X1f_flagtemplate.txt",
     "# User flagging commands file for the calibration pipeline\nmode='manual' antenna='DA41' reason='QA2:applycal_amp'\n",
     None),
])
def test_classify_a_text_file_by_its_readme_line(name, text, kind):
    """A .txt file is a README when it says which CASA version reduced the data; a flag template is not."""
    assert sources.classify(Path(name), text) == kind


def _summary(found):
    return [(s.line, s.version, s.shape, s.active) for s in found]


CHECK = "if re.search('^{v}', casadef.casa_version) == None:"
EXIT = " sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING THE SCRIPT: {v}')"


@pytest.mark.parametrize("text, expected", [
    # the message posted to the log and then given to sys.exit both repeat the check's version
    ("import re\n" + CHECK.format(v="4.2.2") + "\n"
     " casalog.post('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING THE SCRIPT: 4.2.2', "
     "'SEVERE')\n" + EXIT.format(v="4.2.2") + "\n",
     [(2, "4.2.2", "version-check", True)]),
    # the analyst kept the original check commented out above the active one: both are statements
    ("import re\n#" + CHECK.format(v="4.4.0") + "\n" + CHECK.format(v="4.4.0") + "\n" + EXIT.format(v="4.4.0") + "\n",
     [(2, "4.4.0", "version-check", False), (3, "4.4.0", "version-check", True)]),
    # a join over casadef's parts is not a cu.version() pin, the casadef check after it on the line is
    ("import re\nif re.search('^4.7.2', '.'.join(casadef.casa_version.split('.')[:3])) == None and "
     "re.search('^4.7.2', casadef.casa_version) == None:\n" + EXIT.format(v="4.7.2") + "\n",
     [(2, "4.7.2", "version-check", True)]),
])
def test_script_version_lines_and_their_repeats(text, expected):
    """A sys.exit repeating the version one or two lines below its check is not a second statement;
    a second check is."""
    found = sources.statements_from_text("calibration-script", text, "uid___A002_X1_X2.ms.scriptForCalibration.py")
    assert _summary(found) == expected


def test_readme_calibration_and_imaging_lines():
    """A README naming one version for calibration and another for imaging gives each its purpose."""
    text = ("Project: 2016.1.00001.S\nCycle: 4\n"
            "CASA version used for calibration: 4.7.2\nCASA version used for imaging: 5.1.1\nQA2 Result: PASS\n")
    found = sources.statements_from_text("readme", text, "README")
    assert [(s.line, s.version, s.purpose) for s in found] == [(3, "4.7.2", "calibration"), (4, "5.1.1", "imaging")]


@pytest.mark.parametrize("kind, head, filler", [
    ("calibration-script", "#if re.search('^4.4.0', casadef.casa_version) == None: # ", "#"),
    ("readme", "CASA version used for reduction: 4.6 ", "-"),
    ("casa-log", "2016-05-02 10:10:10\tINFO\tcasa::::\tCASA Version 4.7.2-REL (r39762) ", "*"),
])
def test_quoted_version_line_is_cut_at_500_characters(kind, head, filler):
    """The line quoted with a statement is its message (after the log's last tab) cut to 500 characters."""
    [s] = sources.statements_from_text(kind, head + filler * 600 + "\n", "f")
    message = head.split("\t")[-1]
    assert s.text == message + filler * (500 - len(message))


def _log_summary(found):
    return [(s.line, s.version, s.text, s.pipeline_version) for s in found]


@pytest.mark.parametrize("text, expected", [
    (CASA4_LOG.format(v="4.7.2"), [(1, "4.7.2", "CASA Version 4.7.2-REL (r39762)", "")]),
    # CASA 6 pipeline build: the release comes from h_init's "Pipeline version" line
    (CASA6_LOG.format(v="6.5.4.9"), [(1, "6.5.4.9", "CASA Version PIPELINE 6.5.4.9", "2023.1.0.124")]),
    # a pipeline build whose log never reached h_init: a pipeline ran, which one is unknown
    ("2023-10-14 10:12:31\tINFO\t::casa\tCASA Version PIPELINE 6.5.4.9\n"
     "2023-10-14 10:12:33\tINFO\t::casa\tExecuting scriptForPI.py\n",
     [(1, "6.5.4.9", "CASA Version PIPELINE 6.5.4.9", "unknown")]),
    # the release named in the version line itself
    ("2021-06-01 09:00:00\tINFO\t::casa\tCASA Version 6.2.1.7-pipeline-2021.2.0.128\n",
     [(1, "6.2.1.7", "CASA Version 6.2.1.7-pipeline-2021.2.0.128", "2021.2.0.128")]),
    # two sessions appended to one --logfile: each header keeps its own pipeline
    ("2021-06-01 09:00:00\tINFO\t::casa\tCASA Version 6.2.1.7-pipeline-2021.2.0.128\n"
     "2021-06-01 09:05:00\tINFO\thifa_restoredata::casa\t##### Begin Task: applycal #####\n"
     "2023-10-14 10:12:31\tINFO\t::casa\tCASA Version PIPELINE 6.5.4.9\n",
     [(1, "6.2.1.7", "CASA Version 6.2.1.7-pipeline-2021.2.0.128", "2021.2.0.128"),
      (3, "6.5.4.9", "CASA Version PIPELINE 6.5.4.9", "unknown")]),
])
def test_log_header_version_text_and_pipeline(text, expected):
    """A log header gives the version, the message after the last tab, and the pipeline release when a
    pipeline build ran ('unknown' when its log never names it)."""
    assert _log_summary(sources.statements_from_text("casa-log", text, "casa.log")) == expected


LISTOBS_LINE = "2016-05-02 10:10:11\tINFO\tlistobs::::casa\t  0    J1924-2914  19:24:51.055957 -29.14.30.12106 ICRS\n"


@pytest.mark.parametrize("before, found", [(399, [400]), (400, [])])
def test_only_the_first_400_log_lines_are_read(before, found):
    """The version of a log sits in its first lines: one on line 400 is read, on line 401 not."""
    text = LISTOBS_LINE * before + CASA4_LOG.format(v="4.7.2")
    assert [s.line for s in sources.statements_from_text("casa-log", text, "casa.log")] == found


def _pad(line, size):
    """*size* bytes of repeated *line*, the last one cut short and ended by a newline."""
    line = line.encode()
    return (line * (size // len(line) + 1))[:size - 1] + b"\n"


FLAGDATA_LINE = ("2016-05-02 10:10:11\tINFO\tflagdata::::casa\t  inpfile = ["
                 + "\"mode='manual' antenna='DV07' spw='19:1~7' reason='QA2:spurious'\", " * 40 + "]\n")


@pytest.mark.parametrize("offset, found", [(2**20 - len(CASA4_LOG.format(v="4.7.2")), ["4.7.2"]), (2**20, [])])
def test_only_the_first_mib_of_a_log_is_read(tmp_path, offset, found):
    """A log is read up to its first MiB: a version line ending at byte 2**20 is found, one starting there not."""
    path = tmp_path / "casa-20160502-101010.log"
    path.write_bytes(_pad(FLAGDATA_LINE, offset) + CASA4_LOG.format(v="4.7.2").encode())
    assert [s.version for s in sources.read_statements(path, "casa-log")] == found


TREE_LINE = "|   |-- member.uid___A001_X1_X2.J1924-2914_bp.spw16.mfs.I.pbcor.fits\n"
README_LINE = "CASA version used for reduction: 4.6\n"


@pytest.mark.parametrize("offset, found", [(64 * 2**20 - len(README_LINE), ["4.6"]), (64 * 2**20, [])])
def test_only_the_first_64_mib_of_a_text_file_are_read(tmp_path, offset, found):
    """Other text files are read up to 64 MiB: a README line ending at that byte is found, one starting there not."""
    path = tmp_path / "README"
    path.write_bytes(_pad(TREE_LINE, offset) + README_LINE.encode())
    assert [s.version for s in sources.read_statements(path, "readme")] == found


@pytest.mark.parametrize("size, limit", [(100, 10), (100, 1000), (3 * 2**20, 3 * 2**19)])
def test_read_head_returns_exactly_the_first_bytes(tmp_path, size, limit):
    """read_head gives the first *limit* bytes (all of a smaller file), also across its 1 MiB pieces."""
    data = _pad(LISTOBS_LINE, size)
    path = tmp_path / "casa-20160502-101010.log"
    path.write_bytes(data)
    assert sources.read_head(path, limit) == data[:limit]


WEBLOG_PAGE = """
<!DOCTYPE html>
<html>
<head>
<title>Pipeline Weblog: 2022.1.00001.S</title>
<link rel="stylesheet"
      href="resources/css/pipeline.css">
</head>
<body>
<table class="table table-bordered">
<tr><th>CASA Version</th><td>6.5.4.9</td></tr>
<tr><th>Pipeline Version</th><td>2023.1.0.124 (Pipeline-CASA65-P2-B)</td></tr>
</table></body></html>
"""


def test_weblog_home_page_line_and_pipeline():
    """The weblog home page rendered with a blank first line and a tag over two lines: the CASA Version
    row is on line 11, and the Pipeline Version row gives the release."""
    [s] = sources.statements_from_text("weblog", WEBLOG_PAGE, "t1-1.html")
    assert (s.line, s.version, s.text, s.pipeline_version) == (11, "6.5.4.9", "CASA Version 6.5.4.9", "2023.1.0.124")


def _tgz_tree(path, members):
    """A .tgz as `tar czf` writes it: [(name, text)], a directory where text is None."""
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members:
            info = tarfile.TarInfo(name)
            if text is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                data = text.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


CASA5_PIPELINE_LOG = "2019-03-05 10:10:10\tINFO\t::casa\tCASA Version 5.4.0-70\n"


def test_weblog_archive_reads_only_the_home_page(tmp_path):
    """Of a weblog archive only html/t1-1.html is read: the copy of the CASA log and the stage pages
    beside it are not weblog statements."""
    run = "pipeline-20190305T101010/"
    path = _tgz_tree(tmp_path / "member.uid___A001_X1_X2.hifa_calimage.weblog.tgz", [
        (run, None), (run + "html/", None),
        (run + "html/casa-20190305-101010.log", CASA5_PIPELINE_LOG),
        (run + "html/casa_commands.log", "# hifa_importdata\nimportasdm(asdm='../rawdata/uid___A002_X1_X2')\n"),
        (run + "html/t1-1.html", WEBLOG.format(v="5.4.0-70")),
        (run + "html/stage1/", None),
        (run + "html/stage1/t2-4m_details.html", "<h1>hifa_importdata</h1>\n<p>CASA Version 5.4.0-70</p>\n"),
    ])
    found = sources.read_statements(path, "weblog-archive", "qa/weblog.tgz")
    assert [(s.file, s.version) for s in found] == [
        ("qa/weblog.tgz:pipeline-20190305T101010/html/t1-1.html", "5.4.0-70")]


def test_log_archive_reads_every_casa_log_after_its_directories(tmp_path):
    """A log archive made with tar: its directory entries come first and logs may sit at its top level."""
    path = _tgz_tree(tmp_path / "member.uid___A001_X1_X2.log.tgz", [
        ("logs/", None),
        ("logs/casa-20170101-000000.log", CASA4_LOG.format(v="4.7.2") + "gaincal(vis='x')\n"),
        ("logs/member.uid___A001_X1_X2.scriptForPI.py", "# restore\n"),
        ("casa-20170102-000000.log", CASA4_LOG.format(v="4.7.0")),
    ])
    found = sources.read_statements(path, "log-archive", "log/x.log.tgz")
    assert [(s.file, s.version) for s in found] == [("log/x.log.tgz:logs/casa-20170101-000000.log", "4.7.2"),
                                                    ("log/x.log.tgz:casa-20170102-000000.log", "4.7.0")]


def _blanked_by_regex(text):
    """Independent oracle for _blank_tags: every '<' ... first '>' after it becomes spaces, newlines kept."""
    import re
    return re.sub(r"<[^>]*>", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


@given(st.lists(st.sampled_from(["<td>", "</td>", '<a href="t1-1.html">', "<br/>", "CASA", " 5.6.1-8 ", "\n",
                                 "<", ">", "x", "<span\nclass='v'>", "Pipeline"]), max_size=30).map("".join))
def test_blank_tags_keeps_every_offset_and_newline(text):
    """The weblog reader turns tags into spaces without moving anything: line numbers and match offsets
    of the plain text are those of the HTML (a stray '>' or an unclosed '<' included)."""
    plain = sources._blank_tags(text)
    assert plain == _blanked_by_regex(text)
    assert len(plain) == len(text)
    assert [i for i, c in enumerate(plain) if c == "\n"] == [i for i, c in enumerate(text) if c == "\n"]


def test_weblog_line_after_a_stray_closing_bracket():
    """A '>' with no tag before it is text, and a page may end in a tag: the version is found on its line."""
    text = "<html>\n<p>a > b</p>\nCASA Version 5.6.1-8 &gt;\n<p>see the log</p>"
    found = sources.statements_from_text("weblog", text, "t1-1.html")
    assert [(s.line, s.version, s.text) for s in found] == [(3, "5.6.1-8", "CASA Version 5.6.1-8")]
