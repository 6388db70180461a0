"""almatools.delivery: the shared readers of delivery files, on every shape their formats have had.

Each reader is checked against an independent reading of the same text (the csv module, ElementTree,
plain string handling in the test) and fed generated, hostile input (marked ``fuzz``): a reader
either returns what it can read or raises :class:`DeliveryError` (or the scanner's ScriptError)
naming the file — never anything else.
"""

import csv
import io
import os
import re
import tarfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from almatools import example
from almatools.delivery import (DeliveryError, MemberOUS, read_aqua, read_fluxcsv, read_fluxscale_text,
                                read_listobs, read_text, setjy_calls, setjy_fluxes, tar_texts)
from almatools.delivery.fluxcsv import render
from almatools.errors import AlmatoolsError

MS = "uid___A002_Xca8fbf_X5733.ms"
ROW = (f'{MS},0,23,1.7632620185868495,0.0,0.0,0.0,-0.285,0.0,0.0,"# field=J1517-2422 intents=AMPLITUDE,BANDPASS '
       'origin=DB age=-1.0 queried_at=2022-01-12 19:23:17 UTC"')

# every layout flux.csv has had (DOMAIN.md §6.3) with the same two calibrator values
FORMATS = {
    "current": ("ms,field,spw,I,Q,U,V,spix,uvmin,uvmax,comment\n" + ROW + "\n"
                f'{MS},1,23,0.5,0.0,0.0,0.0,-0.6,0.0,0.0,"# field=J1427-4206 intents=PHASE origin=DB age=3.0 '
                'queried_at=2022-01-12 19:23:17 UTC"\n'),
    "spix": ("ms,field,spw,I,Q,U,V,spix,comment\n"
             f'{MS},0,23,1.7632620185868495,0.0,0.0,0.0,-0.285,"# field=J1517-2422 intents=AMPLITUDE,BANDPASS '
             'origin=DB age=-1.0 queried_at=2022-01-12 19:23:17 UTC"\n'
             f'{MS},1,23,0.5,0.0,0.0,0.0,-0.6,"# field=J1427-4206 intents=PHASE origin=DB age=3.0 '
             'queried_at=2022-01-12 19:23:17 UTC"\n'),
    "legacy": ("ms,field,spw,I,Q,U,V,comment\n"
               f"{MS},0,23,1.7632620185868495,0,0,0,'J1517-2422' intent=AMPLITUDE,BANDPASS\n"
               f"{MS},1,23,0.5,0,0,0,'J1427-4206' intent=PHASE\n"),
    "cycle7-draft": ("ms,field,spw,I,Q,U,V,spix,origin,query_date,age,comment\n"
                     f"{MS},0,23,1.7632620185868495,0,0,0,-0.285,DB,2022-01-12 19:23:17 UTC,-1,"
                     "'J1517-2422' intent=AMPLITUDE,BANDPASS\n"
                     f"{MS},1,23,0.5,0,0,0,-0.6,DB,2022-01-12 19:23:17 UTC,3,'J1427-4206' intent=PHASE\n"),
    "headerless": (f"{MS},0,23,1.7632620185868495,0,0,0,-0.285,# field=J1517-2422 intents=AMPLITUDE\n"
                   f"{MS},1,23,0.5,0,0,0\n"),
}


@pytest.mark.parametrize("layout", sorted(FORMATS))
def test_every_fluxcsv_layout_reads_the_same_values(layout):
    table = read_fluxcsv(FORMATS[layout], "flux.csv")
    assert table.layout == layout and table.problems == []
    # the independent reading: the csv module over the data lines, values by position
    expected = [next(csv.reader([line])) for line in FORMATS[layout].splitlines() if line.startswith("uid")]
    assert [(r.ms, r.field, r.spw, r.iquv[0]) for r in table.rows] == \
        [(c[0], c[1], c[2], float(c[3])) for c in expected]
    fluxes = table.fluxes()
    assert fluxes[0].flux_jy == 1.7632620185868495 and fluxes[0].where == "flux.csv:" + \
        str(1 + (layout != "headerless"))
    if layout != "headerless":
        assert fluxes[0].field == "J1517-2422" and "AMPLITUDE" in fluxes[0].intents
        assert fluxes[1].field == "J1427-4206"
    if layout in ("current", "spix", "cycle7-draft", "headerless"):
        assert fluxes[0].spix == -0.285
    if layout in ("current", "spix"):
        assert fluxes[0].origin == "flux.csv origin=DB"
        assert fluxes[0].extra["age"] == "-1.0" and fluxes[0].extra["queried_at"] == "2022-01-12 19:23:17 UTC"
    if layout == "cycle7-draft":
        assert fluxes[0].extra["age"] == "-1" and fluxes[0].origin == "flux.csv origin=DB"


def test_analysisutils_comment_gives_origin_frequency_and_error():
    text = ("ms,field,spw,I,Q,U,V,spix,comment\n"
            f'{MS},0,0,2.71,0,0,0,-0.5713,"# +-0.076398Jy, freq=333.173GHz, spec_index=-0.443796, '
            'Band3/7_separation=1, Band3age=+3, setjy parameters for field J0510+1800"\n')
    f, = read_fluxcsv(text).fluxes()
    # the pipeline's rule: "Jy, freq=" in the comment means origin analysisUtils; age= also matches Band3age=
    assert f.origin == "flux.csv origin=analysisUtils" and f.freq_hz == 333.173e9 and f.error_jy == 0.076398
    assert f.extra["age"] == "+3"


@pytest.mark.parametrize("line, why", [
    (f"{MS},0,23,abc,0,0,0,-0.3,x", "column I is 'abc', not a number"),
    (f"{MS},0,23,-1.0,0,0,0,-0.3,x", "Stokes I is negative"),
    (f"{MS},zero,23,1.0,0,0,0,-0.3,x", "column field is 'zero'"),
    (f"{MS},0,23,1.0", "fewer than the"),
    (f"{MS},0,23,nan,0,0,0,-0.3,x", "not a finite number"),
    (f'{MS},0,23,1.0,0,0,0,-0.3,"unterminated', None),
])
def test_unreadable_lines_are_named_with_file_and_line(line, why):
    text = "ms,field,spw,I,Q,U,V,spix,comment\n" + ROW.replace(",0.0,0.0,\"", ',"', 1) + "\n" + line + "\n"
    table = read_fluxcsv(text, "cal/flux.csv")
    if why is None:  # csv reads an unterminated quote to the end of the line: a readable (odd) comment
        assert len(table.rows) == 2
        return
    assert len(table.rows) == 1 and len(table.problems) == 1
    assert table.problems[0].startswith("cal/flux.csv:3: ") and why in table.problems[0]


def test_render_keeps_other_lines_byte_for_byte_and_upgrades_old_layouts():
    text = FORMATS["current"].replace("\n", "\r\n") + "# a trailing comment line\r\n"
    table = read_fluxcsv(text)
    assert render(table, {}) == text
    new = render(table, {2: {"I": "1.9", "comment": "# field=J1517-2422 origin=calflux"}})
    lines = new.split("\r\n")
    assert lines[0] == text.split("\r\n")[0] and lines[2:] == text.split("\r\n")[2:]
    assert next(csv.reader([lines[1]]))[3] == "1.9" and next(csv.reader([lines[1]]))[7] == "-0.285"
    # an old layout has no spix column: the rewrite uses the spix layout the pipeline reads by name
    old = read_fluxcsv(FORMATS["legacy"])
    rows = list(csv.DictReader(io.StringIO(render(old, {2: {"I": "1.9", "spix": "-0.5"}}))))
    assert [r["I"] for r in rows] == ["1.9", "0.5"] and rows[0]["spix"] == "-0.5" and rows[1]["spix"] == "0.0"
    assert rows[1]["comment"] == "'J1427-4206' intent=PHASE"


@pytest.mark.fuzz
@given(st.text(alphabet=st.sampled_from(list("ms,fieldpwIQUVx0123456789.-+e\"'#\n\r =:_AJ")), max_size=400))
def test_fluxcsv_reader_on_generated_text(text):
    try:
        table = read_fluxcsv(text, "f.csv")
    except DeliveryError as exc:
        assert str(exc).startswith("f.csv:")
        return
    lines = text.splitlines()
    for r in table.rows:
        assert r.iquv[0] >= 0 and all(v == v for v in r.iquv) and r.field.isdigit() and r.spw.isdigit()
        assert 1 <= r.line <= len(lines)
    for p in table.problems:
        assert re.match(r"^f\.csv:\d+: ", p)
    if table.has_header:
        assert render(table, {}) == "".join(text.splitlines(keepends=True))
    table.fluxes()


LISTOBS_OLD = """\
           MeasurementSet Name:  /data/uid___A002_X1_X2.ms.split      MS Version 2
   Observed from   02-Mar-2017/10:10:10.5   to   02-Mar-2017/11:20:00.0 (UTC)
  Date        Timerange (UTC)          Scan  FldId FieldName             nRows     SpwIds   Average Interval(s)    ScanIntent
  02-Mar-2017/10:10:10.5 - 10:15:00.0     1      0 J0423-0120               1000  [0,1]  [6.05, 6.05] [CALIBRATE_BANDPASS#ON_SOURCE,CALIBRATE_FLUX#ON_SOURCE]
              10:20:00.0 - 10:21:00.0     2      1 J0241-0815                200  [0,1]  [6.05, 6.05] [CALIBRATE_PHASE#ON_SOURCE]
Fields: 2
  ID   Code Name                RA               Decl           Epoch        nRows
  0         J0423-0120          04:23:15.800730 -01.20.33.06550 J2000       1000
  1    none J0241-0815          02:41:04.798500 -08.15.20.75180 J2000        200
Spectral Windows:  (2 unique spectral windows and 1 unique polarization setups)
  SpwID  #Chans Frame Ch1(MHz)    ChanWid(kHz)TotBW(kHz)  Ref(MHz)    Corrs
  0         128 TOPO  305409.5    15625       2000000     305409.5    XX  YY
  1         128 TOPO  307209.5    15625       2000000     307209.5    XX  YY
"""


def test_listobs_reads_dates_fields_intents_and_spw_centres():
    lo = read_listobs(example.LISTOBS, "listobs.txt")
    assert lo.ms == "uid___A002_Xf1e1d3_X1a2b.ms" and lo.start.isoformat() == "2020-01-01T02:24:00+00:00"
    assert lo.fields == {"0": "J1058+0133", "1": "J1126-3828", "2": "TW_Hya", "3": "J1147-3812"}
    assert lo.intents["J1058+0133"] == {"CALIBRATE_BANDPASS", "CALIBRATE_FLUX", "CALIBRATE_WVR"}
    assert lo.spws["25"].centre_hz == 230031.5050e6 and lo.spws["27"].nchan == 128
    old = read_listobs(LISTOBS_OLD)
    assert old.ms == "uid___A002_X1_X2.ms.split" and old.end.isoformat() == "2017-03-02T11:20:00+00:00"
    assert old.start.microsecond == 500000 and old.fields["0"] == "J0423-0120"
    # no CtrFreq column: the centre from the first channel and the width
    assert old.spws["1"].centre_hz == pytest.approx(307209.5e6 + 127 / 2 * 15625e3)


FLUXSCALE = """\
2022-05-26 14:45:29 INFO fluxscale\t Found reference field(s): J0423-0120
2022-05-26 14:45:29 INFO fluxscale\t Found transfer field(s):  J0241-0815
2022-05-26 14:45:30 INFO fluxscale\t Flux density for J0241-0815 in SpW=0 (freq=3.06409e+11 Hz) is: 0.401371 +/- 0.00596604 (SNR = 67.276, N = 40)
2022-05-26 14:45:30 INFO fluxscale\t Flux density for J0241-0815 in SpW=1 is: 0.401411 +/- 0.00596048 (SNR = 67.3455, N = 40)
2022-05-26 14:45:30 INFO fluxscale\t Flux density for J0241-0815 in SpW=2 is: INSUFFICIENT DATA
2022-05-26 14:40:01 INFO setjy\t  J0423-0120 (fld ind 0) spw 0  [I=1.1339, Q=0, U=0, V=0] Jy @ 3.0541e+11Hz, (user-specified)
"""


def test_fluxscale_text_reads_results_reference_and_models():
    found = read_fluxscale_text(LISTOBS_OLD + FLUXSCALE, "qa2.txt")
    assert found.reference == ["J0423-0120"] and found.transfer == ["J0241-0815"]
    assert found.insufficient == [("J0241-0815", "2")]
    measured = [f for f in found.fluxes if f.kind == "measured"]
    assert [(f.spw, f.flux_jy, f.error_jy) for f in measured] == [("0", 0.401371, 0.00596604),
                                                                 ("1", 0.401411, 0.00596048)]
    assert measured[0].freq_hz == 3.06409e11  # stated on the line
    assert measured[1].freq_hz == found.listobs.spws["1"].centre_hz  # old CASA: from the listobs
    line = next(n for n, t in enumerate((LISTOBS_OLD + FLUXSCALE).splitlines(), 1) if "SpW=0 (freq" in t)
    assert measured[0].where == f"qa2.txt:{line}" and measured[0].extra == {"snr": 67.276, "n": 40}
    model, = [f for f in found.fluxes if f.kind == "model"]
    assert (model.field, model.field_id, model.flux_jy, model.freq_hz) == ("J0423-0120", "0", 1.1339, 3.0541e11)


SETJY_LOG = """\
2015-03-02 10:01:00 INFO setjy\t  Titan (fld ind 3) spw 1  [I=0.95125, Q=0, U=0, V=0] Jy @ 2.3302e+11Hz, (Butler-JPL-Horizons 2012)
2015-03-02 10:01:00 INFO setjy\t  J0423-0120 (fld ind 2) spw 5  [I=0, Q=0, U=0, V=0] Jy @ 2.3302e+11Hz
2015-03-02 10:01:00 INFO setjy\t  J0241-0815 (fld ind 1) spw 4  [I=-1, Q=0, U=0, V=0] Jy @ 2.3302e+11Hz, (user-specified)
2015-03-02 10:02:00 INFO fluxscale\t Flux density for J0241-0815 in SpW=4 is: 0.4014 +/- 0.0060
"""


def test_setjy_lines_keep_field_index_spw_and_standard_and_old_fluxscale_lines_have_no_snr():
    found = read_fluxscale_text(SETJY_LOG, "casa.log")
    models = [(f.field, f.field_id, f.spw, f.flux_jy, f.freq_hz, f.origin, f.extra, f.where)
              for f in found.fluxes if f.kind == "model"]
    assert models == [
        ("Titan", "3", "1", 0.95125, 2.3302e11, "setjy (Butler-JPL-Horizons 2012)",
         {"standard": "Butler-JPL-Horizons 2012"}, "casa.log:1"),
        # no standard named; a model of 0 Jy is still what the calibration assumed
        ("J0423-0120", "2", "5", 0.0, 2.3302e11, "setjy (model)", {"standard": ""}, "casa.log:2")]
    # a negative I is no flux density (setjy's fluxdensity=-1 means 'look it up'): left out.  A fluxscale line
    # without '(SNR = ..., N = ...)' is read, with no extra
    measured, = [f for f in found.fluxes if f.kind == "measured"]
    assert (measured.field, measured.spw, measured.flux_jy, measured.error_jy, measured.extra) == \
        ("J0241-0815", "4", 0.4014, 0.0060, {})


def test_aqua_report_reads_imported_and_derived_fluxes():
    report = read_aqua(example.AQUA_REPORT, "aqua.xml")
    assert report.ous == example.MOUS and report.pipeline_version == example.PIPELINE_VERSION
    import xml.etree.ElementTree as ET
    root = ET.fromstring(example.AQUA_REPORT)
    expected = [(g.get("Origin"), m.get("Field"), m.get("MsSpwId"), float(m.get("FluxJy")))
                for g in root.iter("FluxMeasurements") if g.get("Origin") for m in g.iter("FluxMeasurement")]
    assert [(f.origin, f.field, f.spw, f.flux_jy) for f in report.fluxes] == expected
    assert {f.kind for f in report.fluxes if f.origin == "hifa_gfluxscale"} == {"measured"}
    with pytest.raises(DeliveryError, match="document type declaration"):
        read_aqua('<!DOCTYPE x [<!ENTITY a "aaaa">]><PipelineAquaReport>&a;</PipelineAquaReport>', "evil.xml")
    with pytest.raises(DeliveryError, match="x.xml: the root element is <html>"):
        read_aqua("<html/>", "x.xml")


SETJY_SCRIPT = """\
# CALIBRATE_AMPLI: J0423-0120
# CALIBRATE_FLUX: J0423-0120
# CALIBRATE_PHASE: J0241-0815
mystep = 11
if(mystep in thesteps):
  print 'Step ', mystep
  setjy(vis = 'uid___A002_X1_X2.ms.split',
    standard = 'manual',
    field = '0', # J0423-0120
    fluxdensity = [1.1339, 0, 0, 0],
    spix = -0.545,
    reffreq = '305.41GHz')
  #setjy(vis = 'old.ms', field = 'J0423-0120', standard = 'manual', fluxdensity = [9.9, 0, 0, 0])
  setjy(vis = 'uid___A002_X1_X2.ms.split', field = 'Titan', standard = 'Butler-JPL-Horizons 2012')
  setjy(vis = 'uid___A002_X1_X2.ms.split', field = 'J0241-0815', fluxdensity = myflux)
"""


def test_setjy_calls_in_a_manual_script():
    calls = setjy_calls(SETJY_SCRIPT, "s.py")
    assert [(c.names, c.active, c.standard) for c in calls] == [
        (["J0423-0120"], True, "manual"), (["J0423-0120"], False, "manual"),
        (["Titan"], True, "Butler-JPL-Horizons 2012"), (["J0241-0815"], True, "Perley-Butler 2017")]
    assert calls[0].fluxdensity == [1.1339, 0, 0, 0] and calls[0].spix == -0.545 and calls[0].reffreq_hz == 305.41e9
    assert calls[3].problems == ["fluxdensity='myflux' is not a literal number or list"]
    f, = setjy_fluxes(calls)  # only active calls with numbers
    assert (f.field, f.flux_jy, f.freq_hz, f.where) == ("J0423-0120", 1.1339, 305.41e9, "s.py:7")


@pytest.mark.fuzz
@given(st.text(max_size=300))
def test_text_readers_on_generated_text(text):
    lo = read_listobs(text, "l.txt")
    assert all(s.centre_hz > 0 for s in lo.spws.values())
    found = read_fluxscale_text(text, "q.txt")
    assert all(f.where.startswith("q.txt:") and f.flux_jy == f.flux_jy for f in found.fluxes)
    try:
        read_aqua(text, "a.xml")
    except DeliveryError as exc:
        assert str(exc).startswith("a.xml:")
    try:
        for c in setjy_calls(text, "s.py"):
            assert c.where.startswith("s.py:")
    except AlmatoolsError as exc:  # the scanner's ScriptError names the file and line
        assert str(exc).startswith("s.py:")


@pytest.mark.fuzz
@given(st.lists(st.tuples(st.sampled_from(["J0423-0120", "3C 279", "J1058+0133"]), st.integers(0, 40),
                          st.one_of(st.floats(-10, 1e3), st.just(float("nan"))), st.floats(0, 1),
                          st.sampled_from(["", "1e11", "x"])),
                max_size=20))
def test_fluxscale_lines_generated(entries):
    """Generated fluxscale lines are read back exactly (or left out when malformed)."""
    text = "".join(f"INFO fluxscale\t Flux density for {n} in SpW={s}" + (f" (freq={f} Hz)" if f else "") +
                   f" is: {v!r} +/- {e!r} (SNR = 10.0, N = 4)\n" for n, s, v, e, f in entries)
    got = read_fluxscale_text(text, "q").fluxes
    good = [(n, str(s), v, e) for n, s, v, e, f in entries if v == v and f != "x" and "3C 279" != n]
    assert [(g.field, g.spw, g.flux_jy, g.error_jy) for g in got] == good


def test_text_files_refuse_fifos_devices_and_size(tmp_path, monkeypatch):
    fifo = tmp_path / "flux.csv"
    os.mkfifo(fifo)
    with pytest.raises(DeliveryError, match="not a regular file"):
        read_text(fifo)
    with pytest.raises(DeliveryError, match="not a regular file"):
        read_text("/dev/zero")
    big = tmp_path / "big.txt"
    big.write_text("x" * 100)
    with pytest.raises(DeliveryError, match=r"big.txt' needs 100 B read into memory; the bound is 99 B"):
        read_text(big, limit=99)
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"a\nb\x00c")
    with pytest.raises(DeliveryError, match=r"nul.txt:2: binary data"):
        read_text(nul)
    latin = tmp_path / "l.py"
    latin.write_bytes("# caf\xe9\n".encode("latin-1"))
    assert read_text(latin).text == "# caf\xe9\n"


def test_tar_members_are_read_as_a_stream_and_bounded(tmp_path):
    path = tmp_path / "a.auxproducts.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("x/flux.csv", FORMATS["current"].encode()), ("x/big/flux.csv", b"y" * 500)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("x/link/flux.csv")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    got = tar_texts(path, lambda n: n == "x/flux.csv")
    assert [t.label for t in got] == [f"{path}:x/flux.csv"]
    with pytest.raises(DeliveryError, match="x/big/flux.csv: 500 bytes, more than the 400"):
        list(tar_texts(path, lambda n: n.endswith("flux.csv"), limit=400))
    with pytest.raises(DeliveryError, match="x/link/flux.csv: not a regular file inside the archive"):
        list(tar_texts(path, lambda n: "link" in n))
    with pytest.raises(DeliveryError, match="more than 2 members"):
        list(tar_texts(path, lambda n: False, max_members=2))
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(b"not a tar")
    with pytest.raises(DeliveryError, match="bad.tgz: not a readable tar archive"):
        list(tar_texts(bad, lambda n: True))


def test_member_ous_finds_the_example_files(tmp_path):
    mous = MemberOUS(example.build_member_ous(tmp_path, images=False))
    fluxcsv, = mous.flux_csvs()
    assert fluxcsv.label.endswith(".auxproducts.tgz:flux.csv") and fluxcsv.text == example.FLUX_CSV
    assert [t.label.rsplit("/", 2)[-2] for t in mous.listobs_texts()] == ["uid___A002_Xf1e1d3_X1a2b.ms"]
    aqua, = mous.aqua_reports()
    assert aqua.text == example.AQUA_REPORT and mous.calibration_scripts() == []
    manual = MemberOUS(example.build_member_ous(tmp_path / "m", "manual", images=False))
    assert [p.name for p in manual.calibration_scripts()] == ["uid___A002_Xf1e1d3_X1a2b.ms.scriptForCalibration.py"]
