"""Text parsers grow linearly: each parser's time on an input 8x larger, against 8x its time on the smaller one.

Every reader of text that a user, a file or a server controls is listed in ``TARGETS`` as
``(name, make_input(n) -> input, parse(input))``; ``make_input`` builds a realistic input of
about *n* units (lines, items).  The anchor is eight times the time for *n* units, measured in
the same run, so the ratio is 1 for a linear parser and 8 for a quadratic one.  Target <= 2.
``benchmarks/fuzz.py`` runs this after the long fuzz run; add a row whenever you add a reader.
"""

from __future__ import annotations

import time


def _contdat(n: int) -> str:
    spws = "\n".join(f"SpectralWindow: {k} ALMA_RB_06#BB_{k % 4 + 1}#SW-01#FULL_RES\n"
                     + "\n".join(f"{230 + k * 0.01 + j * 1e-4:.10f}~{230 + k * 0.01 + (j + 0.5) * 1e-4:.10f}GHz LSRK"
                                 for j in range(4)) + "\n"
                     for k in range(max(1, n // 5)))
    return "Field: TW_Hya\n\n" + spws


def _parse_contdat(text: str):
    from almatools.plugins.frames.contdat import parse_contdat
    return parse_contdat(text)


def _selection(n: int) -> str:
    return ",".join(f"{k}:{k * 10}~{k * 10 + 5}" for k in range(n))


def _parse_selection(text: str):
    from almatools.plugins.frames.selection import parse_selection
    return parse_selection(text)


def _contdat_hostile(n: int) -> list[str]:
    """cont.dat texts whose one bad line (of about 10 n characters) makes a backtracking pattern quadratic."""
    k = 10 * n
    body = ["1" + " " * k + "~2GHz x!", "1~2" + " " * k + "x!", "1~2GHz" + "a" * k + "!", "1" * k + "x~2GHz",
            "1~2" + "GHz " * (k // 4) + "LSRK", "1.5~2.5GHz;" * (k // 11) + "3~4 GHz LSRX", "Field: " + "<" * k]
    return ["Field: X\nSpectralWindow: 1\n" + line + "\n" for line in body]


def _parse_contdat_hostile(texts: list[str]):
    from almatools.plugins.frames.contdat import ContDatError, parse_contdat
    for text in texts:
        try:
            parse_contdat(text)
        except ContDatError:
            pass


def _selection_hostile(n: int) -> str:
    """Items that make backtracking patterns quadratic, about 3 n characters each (at 8 n, seven of them stay
    below the selection's 1,000,000-character bound)."""
    k = 3 * n
    return ",".join(["1" + " " * k + "x", "0:" + "1" * k + "x", "<" + "a" * k, "0:1~2" + " " * k + "^x",
                     "229" + " " * k + "~230GHz!", "0:" + ";".join(["5~9"] * (k // 4)), "9" * k + ":1~2"])


def _fluxcsv(n: int) -> str:
    from almatools.example import FLUX_CSV
    header, *rows = FLUX_CSV.splitlines()
    return header + "\n" + "\n".join(rows[k % len(rows)] for k in range(n)) + "\n"


def _parse_fluxcsv(text: str):
    from almatools.delivery import read_fluxcsv
    return read_fluxcsv(text).fluxes()


def _listobs(n: int) -> str:
    from almatools.example import LISTOBS
    head, _, rest = LISTOBS.partition("Fields:")
    scans = [line for line in head.splitlines() if " - " in line and "[" in line]
    return head + "\n".join(scans[k % len(scans)] for k in range(n)) + "\nFields:" + rest


def _parse_listobs(text: str):
    from almatools.delivery import read_listobs
    return read_listobs(text)


def _qa2(n: int) -> str:
    return "\n".join(f"2017-03-02 10:40:02 INFO fluxscale\t Flux density for J1126-3828 in SpW={k % 4} "
                     f"(freq=2.3{k % 10}e+11 Hz) is: 0.51{k % 10} +/- 0.004 (SNR = 128.0, N = 40)" for k in range(n))


def _parse_qa2(text: str):
    from almatools.delivery import read_fluxscale_text
    return read_fluxscale_text(text)


def _aqua(n: int) -> str:
    from almatools.example import AQUA_REPORT
    head, sep, tail = AQUA_REPORT.partition("        </FluxMeasurements>")
    lines = [line for line in head.splitlines() if "<FluxMeasurement " in line]
    body = head[:head.index(lines[0])] + "\n".join(lines[k % len(lines)] for k in range(n)) + "\n"
    return body + sep + tail


def _parse_aqua(text: str):
    from almatools.delivery import read_aqua
    return read_aqua(text)


def _catalogue(n: int) -> str:
    return "source,aliases,date,frequency,flux,error,band\n" + "".join(
        f"J{k % 40:04d}-0001,QSO B{k % 40:04d},20{10 + k % 10}-0{1 + k % 9}-1{k % 10},{91.46 if k % 2 else 343.48},"
        f"{1 + k % 7 / 10},{0.05 if k % 13 else ''},{3 if k % 2 else 7}\n" for k in range(n))


def _parse_catalogue(text: str):
    import tempfile
    from almatools.plugins.calflux.catalogue import Catalogue
    with tempfile.NamedTemporaryFile("w", suffix=".csv") as fh:
        fh.write(text)
        fh.flush()
        return Catalogue.read(fh.name)


def _votable(n: int) -> bytes:
    from almatools.plugins.archive.emulator.sourcecat import SourceCatalogue, votable
    from almatools.plugins.archive.emulator.sourcecat_data import generate
    answer = SourceCatalogue(generate(nsources=1)).flux("J0006-0623", 58000, 230e9)
    answer["Verbose"] = "measurement used; " * (40 * n)  # the one field a server may make long
    return votable(answer).encode()


def _parse_votable(data: bytes):
    from almatools.plugins.calflux.service import parse_flux_votable
    return parse_flux_votable(data)


def _setjy(n: int) -> str:
    call = ("  setjy(vis = 'uid___A002_X1_X2.ms.split', standard = 'manual', field = '0', # J1058+0133\n"
            "    fluxdensity = [2.3, 0, 0, 0], spix = -0.6, reffreq = '224.99GHz')\n")
    return "# CALIBRATE_FLUX: J1058+0133\n" + call * max(1, n // 10)  # a call is ~10 items of work


def _parse_setjy(text: str):
    from almatools.delivery import setjy_calls
    return setjy_calls(text, "script.py")


_LAST_NAMES = [f"param{k}" for k in range(16)]


def _inputs_file(n: int) -> str:
    """A .last file of n lines (CASA's `name = repr` lines, long lists among them), written to a temp file."""
    import atexit
    import os
    import tempfile
    values = ["'uid___A002_Xf1e1d3_X1a2b.ms'", "[0, 1, 2, 3]", "230.538e9", "True", "{'a': [1.5, 2.5]}",
              repr([f"field{j}" for j in range(8)])]
    lines = [f"{_LAST_NAMES[k % 16]:<12} = {values[k % len(values)]}" for k in range(n)]
    fd, path = tempfile.mkstemp(suffix=".last")
    atexit.register(os.unlink, path)
    with open(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n#task( ... )\n")
    return path


def _parse_inputs_file(path: str):
    from almatools.casa_tasks.shell import read_inputs_file
    return read_inputs_file(path, _LAST_NAMES)


def _cli_values(n: int) -> str:
    return ",".join(f"{230 + k * 1e-3:.6f}" for k in range(n))


def _parse_cli_values(text: str):
    from almatools.params import from_cli_text
    from almatools.taskxml import ParamSpec
    return from_cli_text(ParamSpec("values", "doubleVec", []), text), \
        from_cli_text(ParamSpec("values", "doubleVec", []), "[" + text + "]")


def _batch_table(suffix: str):
    """An input table of the batch engine: n rows of tbconv calls (lists, quoted cells), as a temp file."""
    def make(n: int) -> str:
        import atexit
        import os
        import tempfile
        rows = [{"values": [1.0 + k, 2.5], "freq": f"{230 + k % 7}GHz", "beam": ["1arcsec", "0.5arcsec"],
                 "approximation": "rj"} for k in range(n)]
        fd, path = tempfile.mkstemp(suffix=suffix)
        atexit.register(os.unlink, path)
        with open(fd, "w") as fh:
            if suffix == ".json":
                import json
                fh.write(json.dumps(rows))
            else:
                fh.write("values,freq,beam,approximation\n" + "".join(
                    f'"{r["values"][0]},2.5",{r["freq"]},"1arcsec,0.5arcsec",rj\n' for r in rows))
        return path
    return make


def _parse_batch_table(path: str):
    from almatools.batch import inputs
    from almatools.registry import get_registry
    return inputs.read_inputs(path, get_registry().get("tbconv"))


def _numbers(n: int) -> str:
    forms = ["{a}..{b}", "<{a}GHz", ">{a}", "!({a}..{b}MHz)", "({a}|{b})", "{a}e0"]
    return " | ".join(forms[k % len(forms)].format(a=100 + k % 500, b=101 + k % 500) for k in range(n))


def _parse_numbers(text: str):
    from almatools.plugins.archive import grammar, search
    return grammar.parse_numbers(text, search.FREQUENCY.reader())


def _texts(n: int) -> str:
    return "|".join(f"(20{k % 25:02d}.* | Orion_{k}?)" if k % 3 else f"!(CO(2-1) in disk {k})" for k in range(n))


def _parse_texts(text: str):
    from almatools.plugins.archive import grammar
    return grammar.parse_text(text)


def _dates(n: int) -> str:
    return "|".join(f"2{k % 10:03d}-0{k % 9 + 1}-1{k % 9}..2030-01-01" if k % 2 else f"<{k % 28 + 1:02d}-12-2019"
                    for k in range(n))


def _parse_dates(text: str):
    from almatools.plugins.archive import grammar
    return grammar.parse_dates(text)


def _positions(n: int) -> str:
    return " | ".join(f"{k % 360}.5 -{k % 89}.25, {k % 5 + 1}arcmin" if k % 2 else f"galactic {k % 10}..{k % 10 + 1} <-1"
                      for k in range(n))


def _parse_positions(text: str):
    from almatools.plugins.archive import grammar, search
    return grammar.parse(text, lambda s: search._position_atom(s, 0.1))


def _support(n: int) -> str:
    return " U ".join(f"[{100 + k * 0.01:.2f}..{101.88 + k * 0.01:.2f}GHz,1952.95kHz,8mJy/beam@10km/s,"
                      f"360.2uJy/beam@native, XX YY]" for k in range(n))


def _parse_support(text: str):
    from almatools.plugins.archive.coverage import parse_support
    return parse_support(text)


def _datalink(n: int) -> bytes:
    """A DataLink document of an auxiliary tar listing with *n* rows, as the archive writes it."""
    from almatools.plugins.archive.emulator.catalog import _votable
    tar = "2019.1.00001.S_uid___A001_X1465_X3_auxiliary.tar"
    rows = [(tar, f"https://almascience.eso.org/dataPortal/member.uid___A001_X1465_X3.file{k:06d}.tgz", "", "",
             "#auxiliary", f"Download dataset of type: calibration, and class: CALIBRATION. path: calibration/"
             f"file{k:06d}.tgz", "application/gzip", 10_000 + k, "true") for k in range(n)]
    return _votable(rows, []).encode()


def _parse_datalink(data: bytes):
    from almatools.plugins.archive import datalink
    doc = datalink.read_document(data, "https://almascience.eso.org/datalink/sync?ID=x")
    tar = datalink.Link("uid://A001/X1465/X3", "x.tar", "https://almascience.eso.org/dataPortal/x.tar", "auxiliary",
                        None)
    return datalink.members_from_document(doc, tar)


def _angle(n: int) -> list[str]:
    return [f"{(k % 97) * 0.37 + 0.01:.4g}{('arcsec', 'arcmin', 'deg', 'mas')[k % 4]}" for k in range(n)]


def _parse_angles(texts: list[str]):
    from almatools.plugins.imaging.rules import parse_angle
    return [parse_angle(t) for t in texts]


#: (name, make_input(n), parse(input)); n is the size of the small input
TARGETS = [
    ("flux.csv reader", _fluxcsv, _parse_fluxcsv),
    ("listobs reader", _listobs, _parse_listobs),
    ("QA2 text (fluxscale) reader", _qa2, _parse_qa2),
    ("AQUA report reader", _aqua, _parse_aqua),
    ("calibrator catalogue CSV reader", _catalogue, _parse_catalogue),
    ("flux-service VOTable parser", _votable, _parse_votable),
    ("setjy calls in scripts", _setjy, _parse_setjy),
    ("cont.dat reader", _contdat, _parse_contdat),
    ("cont.dat reader, hostile lines", _contdat_hostile, _parse_contdat_hostile),
    ("spw:channel selection parser", _selection, _parse_selection),
    ("spw:channel selection parser, hostile items", _selection_hostile, _parse_selection),
    (".last/.saved inputs file reader", _inputs_file, _parse_inputs_file),
    ("command-line value parser (doubleVec)", _cli_values, _parse_cli_values),
    ("almaquery numeric search grammar (alternatives)", _numbers, _parse_numbers),
    ("almaquery text search grammar (groups, !)", _texts, _parse_texts),
    ("almaquery date search grammar", _dates, _parse_dates),
    ("almaquery position grammar (cones, ranges)", _positions, _parse_positions),
    ("frequency_support reader (archive rows)", _support, _parse_support),
    ("DataLink document reader", _datalink, _parse_datalink),
    ("batch input table reader (.csv)", _batch_table(".csv"), _parse_batch_table),
    ("batch input table reader (.json)", _batch_table(".json"), _parse_batch_table),
    ("imadvise sourcesize angles", _angle, _parse_angles),
]


# ---- calunflag (scripts, flag templates, PPRs) and calversion (README, scripts, CASA logs, weblogs) ----
# Realistic inputs of about n lines (n blocks for the fast readers, so that even the small input is larger
# than the CPU caches), and hostile ones that made earlier readers quadratic: one long line of strings,
# runs of blanks after a keyword, unclosed tags.

_CAL_BLOCK = """\
# CALIBRATE_AMPLI:
# CALIBRATE_PHASE: J0336-3616
# Línea de absorción en el calibrador de fase (CO 2-1) — Überprüfung
mystep = {k}
if(mystep in thesteps):
  flagdata(vis = 'uid___A002_Xc6c0d5_X2a1b.ms.split',
    mode = 'manual',
    field = '1', # J0336-3616
    spw = '1:1203~1211;1300~1310',
    flagbackup = False)
  gaincal(vis = 'uid___A002_Xc6c0d5_X2a1b.ms.split', caltable = 'x.phase_int', field = '0~2', # J0334-4008,J0336-3616,J0340-3547
    solint = 'int', refant = 'DV02', gaintable = ['a.bandpass', 'b.tsys'])
#  flagdata(vis = 'x.ms.split', field = '2', spw = '0:1~2')  # don't: it's the target
"""


def _calibration_script(n: int) -> str:
    return "".join(_CAL_BLOCK.format(k=k) for k in range(max(1, n // 14)))


def _hostile_script(n: int) -> str:
    return ("x = [" + "'a', " * n + "]\n# " + "don't " * n + "\n" + "flagdata(vis='x', field='0~9', spw='0:1~2')\n"
            * max(1, n // 50) + "y = '" + " " * n + "'\n")


def _scan_calls(text: str):
    from almatools.plugins.calunflag.edit import CALL_NAMES
    from almatools.plugins.calunflag.scan import find_calls
    return find_calls(text, CALL_NAMES)


def _roles_and_findings(text: str):
    from almatools.plugins.calunflag.edit import scan_script
    from almatools.plugins.calunflag.roles import FieldRoles, roles_from_script
    roles = roles_from_script("bench.py", text, _scan_calls(text), FieldRoles())
    return scan_script("bench.py", text, roles, {"flux", "bandpass", "phase", "check", "polarization"}, set(),
                       False, "applyflags")


def _flag_template(n: int) -> str:
    return "".join(f"mode='manual' field='J0542-0913' spw='25:230.{k % 1000:03d}~230.525GHz,33:{k}~{k + 5}' "
                   f"reason='QA2:applycal_amplitude_frequency'\n" for k in range(n))


def _scan_template(text: str):
    from almatools.plugins.calunflag.edit import scan_template
    from almatools.plugins.calunflag.roles import FieldRoles
    return scan_template("bench.flagtemplate.txt", text, FieldRoles(), {"flux"}, set())


def _ppr(n: int) -> str:
    command = ("<ProcessingCommand>\n  <Command xmlns=\"\">{}</Command>\n  <ParameterSet>\n"
               "  </ParameterSet>\n</ProcessingCommand>\n")
    return "<ProcessingProcedure>\n" + "".join(command.format("hifa_fluxcalflag" if k % 7 == 0 else "hif_refant")
                                               for k in range(n)) + "<!-- unclosed " + "<" * n


def _scan_ppr(text: str):
    from almatools.plugins.calunflag.ppr import scan_ppr
    return scan_ppr("PPR_bench.xml", text, "applyflags")


def _version_reader(kind: str):
    def parse(text: str):
        from almatools.plugins.calversion.sources import statements_from_text
        return statements_from_text(kind, text, "bench")
    return parse


def _readme(n: int) -> str:
    return "".join(f"Cycle: {k % 10}\nCASA version used for reduction: 4.{k % 8}.{k % 3}\nQA2 Result: PASS\n"
                   f"CASA version used for {' ' * (k % 50)}\n" for k in range(n))


def _version_script(n: int) -> str:
    pin = ("if re.search('^5.1.1', '.'.join([str(i) for i in cu.version().tolist()[:-1]])) == None:\n"
           " sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING THE SCRIPT: 5.1.1')\n"
           "#if casadef.casa_version < '4.4.0' :\n")
    return pin * max(1, n // 6) + "re.search('1.1', '.'.join(" * max(1, n // 2) + "\n"


def _casa_log(n: int) -> str:
    # a log is read only up to its first 400 lines: its size grows with the length of the lines
    width = max(1, n // 8)
    return "".join(f"2016-05-02 10:10:{k % 60:02d}\tINFO\tcasa::::\tCASA Version 4.7.2-REL (r39762)"
                   f"{' ' * width}Pipeline version {' ' * width}\n" for k in range(400))


def _weblog(n: int) -> str:
    rows = "".join(f"<tr><th>Observation {k}</th><td>uid://A002/X{k:x}/X1</td></tr>\n" for k in range(n // 2))
    return (f"<html><body><table>{rows}<tr><th>CASA Version</th><td>6.5.4.9</td></tr>\n"
            f"<tr><th>Pipeline Version</th><td>2023.1.0.124</td></tr></table>\n"
            "CASA Version" + " " * n + "Pipeline Version :" + "\n" * (n // 2) + "<" * n + "</body></html>")


TARGETS += [
    ("calunflag script scanner", _calibration_script, _scan_calls),
    ("calunflag script scanner, hostile (long lines, prose quotes)", _hostile_script, _scan_calls),
    ("calunflag roles and findings of a script", _calibration_script, _roles_and_findings),
    ("calunflag flag-template scanner", _flag_template, _scan_template),
    ("calunflag PPR reader", _ppr, _scan_ppr),
    ("calversion README reader", _readme, _version_reader("readme")),
    ("calversion script version reader", _version_script, _version_reader("calibration-script")),
    ("calversion CASA log reader", _casa_log, _version_reader("casa-log")),
    ("calversion weblog reader (with unclosed tags, long blank runs)", _weblog, _version_reader("weblog")),
]


def _best_time(parse, data, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        parse(data)
        best = min(best, time.perf_counter() - t0)
    return best



# --- tbconv's FITS header reader and cl2image's component table reader (files: made under a temporary directory) ---

def _scratch_file(name: str, data: bytes) -> str:
    import atexit
    import shutil
    import tempfile
    global _SCRATCH
    if "_SCRATCH" not in globals():
        _SCRATCH = tempfile.mkdtemp(prefix="almatools-bench-parsers-")
        atexit.register(shutil.rmtree, _SCRATCH, True)
    path = f"{_SCRATCH}/{name}"
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def _fits_cube(n: int) -> str:
    """A FITS cube whose header has n/4 HISTORY cards (as long CASA histories are) and a BEAMS table of n rows."""
    import numpy as np
    from astropy.io import fits
    header = fits.Header()
    header.update(CTYPE1="RA---SIN", CRVAL1=165.0, CDELT1=-2.8e-5, CRPIX1=2, CUNIT1="deg", CTYPE2="DEC--SIN",
                  CRVAL2=-34.7, CDELT2=2.8e-5, CRPIX2=2, CUNIT2="deg", CTYPE3="FREQ", CRVAL3=2.3e11, CDELT3=1e6,
                  CRPIX3=1, CUNIT3="Hz", BUNIT="Jy/beam", CASAMBM=True)
    for k in range(n // 4):
        header.add_history(f"imager step {k}: a line as tclean writes, {k * 7 % 1000} iterations")
    beams = fits.BinTableHDU.from_columns([
        fits.Column(name="BMAJ", format="1E", unit="arcsec", array=np.full(n, 1.0)),
        fits.Column(name="BMIN", format="1E", unit="arcsec", array=np.full(n, 0.5)),
        fits.Column(name="BPA", format="1E", unit="deg", array=np.zeros(n)),
        fits.Column(name="CHAN", format="1J", array=np.arange(n)),
        fits.Column(name="POL", format="1J", array=np.zeros(n, int))], name="BEAMS")
    import io
    out = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(np.zeros((n, 2, 2), np.float32), header), beams]).writeto(out)
    return _scratch_file(f"cube{n}.fits", out.getvalue())


def _read_fits_cube(path: str):
    from almatools.plugins.brightness.images import read_info
    return read_info(path)


def _component_table(n: int) -> str:
    """A CSV component table of n/10 rows (each row is parsed by CASA's quanta and measures)."""
    rows = ["direction,flux,freq,shape,majoraxis,minoraxis,positionangle,spectralindex"]
    for k in range(n // 10):
        rows.append(f"J2000 10h00m{k % 60:02d}.{k % 1000:03d}s -30d{k % 60:02d}m00.0s,{0.1 + k % 7},230GHz,"
                    f"{('point', 'gaussian', 'disk')[k % 3]},{0.4 + k % 5 / 10}arcsec,{0.1 + k % 3 / 10}arcsec,"
                    f"{k % 180}deg,{(k % 9 - 4) / 2}")
    return _scratch_file(f"components{n}.csv", ("\n".join(rows) + "\n").encode())


def _read_component_table(path: str):
    from pathlib import Path
    from almatools.plugins.models.components import from_table
    return from_table(Path(path), "Jy")


TARGETS += [
    ("tbconv FITS header and BEAMS table reader", _fits_cube, _read_fits_cube),
    ("cl2image CSV/ECSV component table reader", _component_table, _read_component_table),
]


def run(quick: bool = False) -> list[dict]:
    n = 500 if quick else 5000
    rows = []
    for name, make, parse in TARGETS:
        small, large = make(n), make(8 * n)
        parse(small)  # imports and caches outside the timing
        t_small, t_large = _best_time(parse, small), _best_time(parse, large)
        anchor = 8 * t_small
        rows.append(dict(metric=f"{name}: 8x input vs 8 x time of 1x (s)", value=t_large, anchor=anchor,
                         ratio=t_large / anchor, target="<= 2 (linear)", ok=t_large / anchor <= 2))
    return rows


# ---- qacheck's delivery readers (almatools.delivery: product names, README, QA2 text, whole AQUA report) ----
def _product_names(n: int) -> list[str]:
    # 8 names per unit: at n = 5000 the small input's 5,000 names were read from CPU caches (6.7 us a name,
    # against a flat 10 us from 40,000 to 320,000), so the row measured cache size, not growth
    n *= 8
    kinds = ("cube.I.pbcor.fits", "cube.I.pb.fits.gz", "cube.I.mask.fits.gz", "cont.I.tt0.pbcor.fits",
             "cont.I.alpha.error.fits")
    return [f"member.uid___A001_X1_X{k % 97}.Src{k % 13}_sci.spw{k % 40}.{kinds[k % 5]}" for k in range(n)]


def _parse_products(names: list[str]):
    from almatools.delivery import missing_companions, parse_product_name
    return missing_companions([parse_product_name(n) for n in names])


def _readme(n: int) -> str:
    return "ALMA Member ObsUnitSet README\n=============================\nQA2 Status: PASS\n\nNOTES\n=====\n" + "".join(
        f"Note line {k}: spw {k % 4} has an atmospheric line near {230 + k % 7}.1 GHz\n" for k in range(n))


def _parse_readme_qa(text: str):
    from almatools.delivery import read_readme
    return read_readme(text)


def _qa2_text(n: int) -> str:
    from almatools.example import QA2_TEXT
    head, sep, tail = QA2_TEXT.partition("RMS AND BEAM SIZE")
    eb = [line for line in head.splitlines() if line.startswith(" uid___")][0]
    return head + "\n".join(eb for _ in range(n)) + "\n" + sep + tail


def _parse_qa2_text(text: str):
    from almatools.delivery import read_qa2_text
    return read_qa2_text(text)


def _aqua_full(n: int) -> str:
    from almatools.example import AQUA_REPORT
    head, sep, tail = AQUA_REPORT.partition("  </QaPerStage>")
    start = head.index("    <Stage ")
    stages = head[start:].split("    </Stage>\n")[:-1]
    return head[:start] + "".join(stages[k % len(stages)] + "    </Stage>\n" for k in range(n)) + sep + tail


TARGETS += [
    ("product names and missing companions", _product_names, _parse_products),
    ("README QA2 status and notes", _readme, _parse_readme_qa),
    ("QA2 text file (tables, RMS section, fluxscale)", _qa2_text, _parse_qa2_text),
    ("AQUA report, whole (stages, topics, sensitivities)", _aqua_full, _parse_aqua),
]
