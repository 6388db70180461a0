"""wtcheck on MSs simulated with known noise and weights, and on real VLA data (NGC5921 from casadata)."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from almatools.casa_tasks import wtcheck
from almatools.casaenv import casatools
from almatools.errors import TaskParameterError
from almatools.testing import radiometer_sigma, simulate_ms

pytestmark = pytest.mark.casa

SPWS = [("NARROW", 230.0e9, 0.5e6, 64), ("WIDE", 232.0e9, 2.0e6, 32)]
NOISE_K = 2e4
CALWT = 1e-4


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A 12 m MS calibrated the modern way and a 7 m MS with CASA <= 4.2.1 weights (10 s and 6 s integrations)."""
    work = tmp_path_factory.mktemp("wt")
    modern = simulate_ms(work / "modern12m.ms", SPWS, array="12m", nant=5, duration_s=900, integration_s=6,
                         noise_k=NOISE_K, weights="modern", seed=1)
    old = simulate_ms(work / "old7m.ms", SPWS, array="7m", nant=5, duration_s=900, integration_s=10,
                      noise_k=NOISE_K, weights="casa421", calwt_factor=CALWT, seed=2)
    return work, modern, old


def columns(vis, names=("WEIGHT", "SIGMA", "FLAG")):
    tb = casatools().table()
    try:
        tb.open(vis)
        return {c: tb.getcol(c) for c in names if c in tb.colnames()}
    finally:
        tb.done()


def copy(src, dst):
    shutil.copytree(src, dst)
    return str(dst)


def first_row_copy(vis, out) -> str:
    """A copy of *vis* holding its first row only (a group of one row)."""
    tb = casatools().table()
    try:
        tb.open(str(vis))
        q = tb.selectrows([0])
        q.copy(str(out), deep=True).done()
        q.done()
    finally:
        tb.done()
    return str(out)


def test_ratios_match_the_injected_weights(pair):
    work, modern, old = pair
    r = wtcheck(vis=[modern, old], plotfile=str(work / "w.png"))
    g = {(os.path.basename(x["vis"]), x["spw"]): x for x in r["groups"]}
    for spw in (0, 1):
        # modern: WEIGHT = 1/sigma^2 -> weight x variance = 1 (robust estimate: 3 %)
        assert g[("modern12m.ms", spw)]["ratio"] == pytest.approx(1.0, rel=0.03)
        # CASA <= 4.2.1: WEIGHT = constant -> ratio = constant x sigma^2 of the 7 m radiometer noise
        sigma = radiometer_sigma(NOISE_K, SPWS[spw][2], 10, dish_m=7.0)
        assert g[("old7m.ms", spw)]["ratio"] == pytest.approx(CALWT * sigma ** 2, rel=0.03)
        assert g[("modern12m.ms", spw)]["weight_sigma2"] == pytest.approx(1.0, rel=1e-6)
        assert g[("old7m.ms", spw)]["weight_sigma2"] == pytest.approx(CALWT, rel=1e-6)
    # weights carrying 2 dnu dt: W / (2 dnu dt) equal in both spws of the modern MS, not in the old one
    assert g[("modern12m.ms", 0)]["radiometer"] == pytest.approx(g[("modern12m.ms", 1)]["radiometer"], rel=1e-6)
    assert g[("old7m.ms", 0)]["radiometer"] / g[("old7m.ms", 1)]["radiometer"] == pytest.approx(4.0, rel=1e-6)
    assert r["consistent"] is False and r["reference_ratio"] == pytest.approx(1.0, rel=0.03)
    off = {(os.path.basename(o["vis"]), o["spw"]): o["factor"] for o in r["offenders"]}
    assert set(off) == {("old7m.ms", 0), ("old7m.ms", 1)}
    assert off[("old7m.ms", 0)] / off[("old7m.ms", 1)] == pytest.approx(4.0, rel=0.05)  # the missing 2 dnu dt
    assert r["remedy"].startswith("statwt on all MSs") and r["commands"][0].startswith("statwt(vis=")
    assert r["datacolumn"][modern] == "CORRECTED_DATA"
    assert (work / "w.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_factor_per_ms_is_scaled_and_restored_bit_for_bit(pair, tmp_path):
    _, modern, _ = pair
    a = copy(modern, tmp_path / "a.ms")
    b = copy(modern, tmp_path / "b.ms")
    tb = casatools().table()
    try:  # b's weights all 5x too large, as an overall calibration-factor mistake would leave them
        tb.open(b, nomodify=False)
        tb.putcol("WEIGHT", tb.getcol("WEIGHT") * 5.0)
    finally:
        tb.done()
    original = columns(b)
    r = wtcheck(vis=[a, b])
    assert not r["consistent"] and r["remedy"].startswith("scale")
    assert {o["vis"] for o in r["offenders"]} == {b}
    assert all(o["factor"] == pytest.approx(5.0, rel=0.05) for o in r["offenders"])
    assert r["commands"][0] == f"wtcheck(vis={[b]!r}, fix=True, method='scale')"
    fixed = wtcheck(vis=[a, b], fix=True)
    assert set(fixed["fix"][b]["saved"]) == {"WEIGHT", "SIGMA"}
    assert wtcheck(vis=[a, b])["consistent"] is True
    with pytest.raises(TaskParameterError, match="already holds original weights"):
        wtcheck(vis=[b], fix=True)
    wtcheck(vis=[a, b], restore=True)
    back = columns(b)
    assert all(np.array_equal(back[c], original[c]) for c in original)
    with pytest.raises(TaskParameterError, match="holds no weights saved"):
        wtcheck(vis=[b], restore=True)


def ms_files(vis, skip=("HISTORY",)):
    """Size of every file of an MS (statwt's own HISTORY entries aside), and the directory names in it."""
    out = {}
    for root, dirs, files in os.walk(vis):
        rel = os.path.relpath(root, vis)
        if rel.split(os.sep)[0] in skip:
            continue
        out.update({os.path.join(rel, f): os.path.getsize(os.path.join(root, f)) for f in files})
        out.update({os.path.join(rel, d) + "/": 0 for d in dirs})
    return out


def test_statwt_fix_and_restore(pair, tmp_path):
    """statwt flags rows it cannot weight (constant data, fewer than two channels): FLAG changes and comes back."""
    _, _, old = pair
    o = copy(old, tmp_path / "o.ms")
    tb = casatools().table()
    try:
        tb.open(o, nomodify=False)
        n = tb.nrows()
        for col in ("DATA", "CORRECTED_DATA"):  # rows 0-9: a constant spectrum, zero variance
            d = tb.getcol(col, 0, 10)
            d[:] = 1.0 + 0.5j
            tb.putcol(col, d, 0, 10)
        f = tb.getcol("FLAG", 20, 10)  # rows 20-29: one unflagged channel, below statwt's minsamp
        f[:, 1:, :] = True
        tb.putcol("FLAG", f, 20, 10)
    finally:
        tb.done()
    original, files = columns(o), ms_files(o)
    wtcheck(vis=[o], fix=True, method="statwt")
    fixed = columns(o)
    changed = np.nonzero((fixed["FLAG"] != original["FLAG"]).any(axis=(0, 1)))[0]
    assert set(changed) == set(range(10)) | set(range(20, 30))  # statwt really flagged data
    assert fixed["FLAG"][:, :, :10].all() and (fixed["WEIGHT"][:, :10] == 0).all()
    assert os.path.isdir(os.path.join(o, "WTCHECK_BACKUP"))
    after = wtcheck(vis=[o])
    assert all(g["ratio"] == pytest.approx(1.0, rel=0.1) for g in after["groups"])  # statwt: 1/variance
    assert after["backups"][o]["method"] == "statwt" and set(after["backups"][o]["columns"]) == {"WEIGHT", "SIGMA",
                                                                                              "FLAG"}
    wtcheck(vis=[o], restore=True)
    back = columns(o)
    assert set(back) == {"WEIGHT", "SIGMA", "FLAG"} and n == back["FLAG"].shape[2]
    assert all(np.array_equal(back[c], original[c]) for c in original)  # FLAG too
    assert ms_files(o) == files  # the saved table is gone and nothing grew: the MS is its original size


def test_scale_fix_and_restore_leave_the_ms_its_original_size(ngc5921, tmp_path):
    """WEIGHT_SPECTRUM included (NGC5921 has no SIGMA_SPECTRUM): real VLA data keep every byte count."""
    v = copy(ngc5921, tmp_path / "n.ms")
    cols = ("WEIGHT", "SIGMA", "WEIGHT_SPECTRUM", "FLAG")
    original, files = columns(v, cols), ms_files(v, skip=())
    assert set(original) == set(cols)
    fixed = wtcheck(vis=[v], datacolumn="data", fix=True)
    assert set(fixed["fix"][v]["saved"]) == {"WEIGHT", "SIGMA", "WEIGHT_SPECTRUM"}
    assert not np.array_equal(columns(v, ("WEIGHT_SPECTRUM",))["WEIGHT_SPECTRUM"], original["WEIGHT_SPECTRUM"])
    wtcheck(vis=[v], restore=True)
    back = columns(v, cols)
    assert all(np.array_equal(back[c], original[c]) for c in cols)
    assert ms_files(v, skip=()) == files


_KILLED_RUN = """
import sys
from almatools.casa_tasks import wtcheck
from almatools.casaenv import casatools
import casatasks
casatools().table().done()  # CASA started: what follows is the fix or restore itself
print("ready", flush=True)
vis, what = sys.argv[1], sys.argv[2]
wtcheck(vis=[vis], restore=True) if what == "restore" else wtcheck(vis=[vis], fix=True, method=what)
"""


@pytest.mark.slow
def test_killed_fix_and_restore_runs_are_cleaned_up_or_restorable(pair, tmp_path):
    """SIGKILL while the backup is written, right after it is complete (weights being changed) and while a
    restore removes it: the next run removes what is half done, restore brings the original weights back bit
    for bit, and every MS ends with its original files and sizes."""
    import signal
    import time
    _, modern, _ = pair
    base = copy(modern, tmp_path / "base.ms")
    original, files = columns(base, ("WEIGHT", "SIGMA", "FLAG")), ms_files(base)
    restoring = copy(base, tmp_path / "restoring.ms")
    wtcheck(vis=[restoring], fix=True, method="statwt")
    # (MS, what runs, the path whose appearance triggers the kill)
    cases = [(copy(base, tmp_path / "backing_up.ms"), "statwt", "WTCHECK_BACKUP.incomplete"),
             (copy(base, tmp_path / "fixing.ms"), "scale", "WTCHECK_BACKUP"),
             (restoring, "restore", "WTCHECK_BACKUP.restored")]
    procs = [subprocess.Popen([sys.executable, "-c", _KILLED_RUN, v, what], stdout=subprocess.PIPE, text=True,
                              env=os.environ) for v, what, _ in cases]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    pending, deadline = dict(enumerate(cases)), time.monotonic() + 120
    while pending and time.monotonic() < deadline:
        for k, (v, _, trigger) in list(pending.items()):
            if os.path.exists(os.path.join(v, trigger)) or procs[k].poll() is not None:
                procs[k].send_signal(signal.SIGKILL)
                procs[k].communicate()
                pending.pop(k)
        time.sleep(0.001)
    states = []
    for v, what, trigger in cases:
        r = wtcheck(vis=[v])  # reading is always allowed; leftovers are removed
        assert not any(n.endswith((".incomplete", ".restored")) for n in os.listdir(v))
        if v in r["backups"]:
            states.append("complete backup")
            wtcheck(vis=[v], restore=True)
        else:
            states.append(", ".join(r["leftovers_removed"].get(v, [])) or "nothing left")
        back = columns(v, ("WEIGHT", "SIGMA", "FLAG"))
        assert all(np.array_equal(back[c], original[c]) for c in original), (v, what)
        assert ms_files(v) == files, (v, what)
    # the kills landed where they were aimed (a kill can only come later, never earlier)
    assert states[0] in ("WTCHECK_BACKUP.incomplete", "complete backup"), states
    assert states[1] == "complete backup", states
    assert states[2] in ("WTCHECK_BACKUP.restored", "nothing left"), states


@pytest.fixture(scope="module")
def ngc5921(tmp_path_factory):
    import casadata
    from casatasks import importuvfits
    vis = str(tmp_path_factory.mktemp("vla") / "ngc5921.ms")
    importuvfits(fitsfile=os.path.join(casadata.datapath, "demo", "NGC5921.fits"), vis=vis)
    return vis


def test_real_vla_data_recovers_an_injected_factor(ngc5921, tmp_path):
    scaled = copy(ngc5921, tmp_path / "scaled.ms")
    tb = casatools().table()
    try:
        tb.open(scaled, nomodify=False)
        # NGC5921 carries WEIGHT_SPECTRUM: a rescaling reduction changes both, and leaves SIGMA
        tb.putcol("WEIGHT", tb.getcol("WEIGHT") * 4.0)
        tb.putcol("WEIGHT_SPECTRUM", tb.getcol("WEIGHT_SPECTRUM") * 4.0)
    finally:
        tb.done()
    r = wtcheck(vis=[ngc5921, scaled], datacolumn="data")
    by = {(g["vis"], g["field"]): g["ratio"] for g in r["groups"]}
    assert len(by) == 6  # 3 fields x 2 MSs
    for (vis, field), ratio in by.items():
        if vis == scaled:
            assert ratio / by[(ngc5921, field)] == pytest.approx(4.0, rel=0.02), field
    assert all(np.isfinite(g["spread"]) and g["nsamples"] > 10000 for g in r["groups"])
    assert r["datacolumn"][ngc5921] == "DATA"
    assert {g["weight_column"] for g in r["groups"]} == {"WEIGHT_SPECTRUM"}
    # WEIGHT against 1/SIGMA^2: 1 as imported, 4 after the rescaling
    for g in r["groups"]:
        assert g["weight_sigma2"] == pytest.approx(4.0 if g["vis"] == scaled else 1.0, rel=1e-5)
    assert r["consistent"] is False and {o["vis"] for o in r["offenders"]} >= {scaled}


def test_provenance_from_history_and_member_ous(pair, tmp_path):
    from almatools.example import CASA_VERSION, build_member_ous
    _, modern, old = pair
    o = copy(old, tmp_path / "o.ms")
    tb = casatools().table()
    try:  # what a CASA 4.2.1 calibration leaves in HISTORY
        tb.open(os.path.join(o, "HISTORY"), nomodify=False)
        tb.addrows(1)
        row = tb.nrows() - 1
        tb.putcell("MESSAGE", row, "CASA Version 4.2.1 (r29048)")
        tb.putcell("APPLICATION", row, "casa")
        tb.putcell("ORIGIN", row, "applycal")
        tb.putcell("PRIORITY", row, "INFO")
    finally:
        tb.done()
    mous = str(build_member_ous(tmp_path / "mous", "pipeline", images=False))
    r = wtcheck(vis=[modern, o], mous=[mous, ""])
    p = r["provenance"]
    assert p[o]["casa_version"] == "4.2.1" and p[o]["source"].endswith("HISTORY")
    assert p[o]["scheme"].startswith("<=4.2.1")
    assert p[modern]["casa_version"].startswith(CASA_VERSION.rsplit(".", 1)[0]) and p[modern]["pipeline"] is True
    assert p[modern]["scheme"].startswith(">=4.4")
    # the reference is the modern MS's weight x variance; the old MS gets the recalibration remedy too
    modern_ratios = [g["ratio"] for g in r["groups"] if g["vis"] == modern]
    assert r["reference_ratio"] == pytest.approx(float(np.median(modern_ratios)), rel=1e-12)
    assert "recalibrate" in r["remedy"] and o in r["remedy"]
    with pytest.raises(TaskParameterError, match="give one Member OUS per MS"):
        wtcheck(vis=[modern, o], mous=[mous, mous, mous])


# --------------------------------------------------------------------------- lines and continuum slopes (#16)

LINE_CASES = [(peak, fwhm) for peak in (3, 30, 100, 300) for fwhm in (1, 8, 50)]  # peak in sigma, FWHM in channels
NCHAN, LINE_CENTRE = 256, 100.3


def add_source(vis, spw_models, seed=0):
    """Add a point source at the phase centre to DATA and CORRECTED_DATA: per spw, a function
    ``(channels, rows sub-table) -> complex model [chan, row]`` (a line, or a continuum with a slope)."""
    tb = casatools().table()
    try:
        tb.open(vis, nomodify=False)
        for dd, model in enumerate(spw_models):
            sub = tb.query(f"DATA_DESC_ID=={dd}")
            try:
                m = model(np.arange(NCHAN), sub)
                for col in ("DATA", "CORRECTED_DATA"):
                    sub.putcol(col, sub.getcol(col) + m[None, :, :])
            finally:
                sub.done()
    finally:
        tb.done()


def gaussian_line(peak_jy, fwhm):
    def model(c, sub):
        return np.repeat((peak_jy * np.exp(-0.5 * ((c - LINE_CENTRE) / (fwhm / 2.3548)) ** 2))[:, None],
                         sub.nrows(), axis=1).astype(complex)
    return model


def sloped_continuum(lo_jy, hi_jy, nant, seed):
    """A continuum rising from lo to hi across the spw, with antenna delays of up to a turn of phase across it."""
    delay = np.random.default_rng(seed).uniform(-1, 1, nant)

    def model(c, sub):
        turns = delay[sub.getcol("ANTENNA1")] - delay[sub.getcol("ANTENNA2")]
        amp = lo_jy + (hi_jy - lo_jy) * c / (NCHAN - 1)
        return amp[:, None] * np.exp(2j * np.pi * np.outer(c / NCHAN, turns))
    return model


@pytest.fixture(scope="module")
def lines(tmp_path_factory):
    """A 12 m MS with correct weights: one spw per line case (3-300 sigma, 1-50 channels) and one with a slope."""
    work = tmp_path_factory.mktemp("lines")
    spws = [(f"L{k}", 230.0e9 + 0.2e9 * k, 0.5e6, NCHAN) for k in range(len(LINE_CASES) + 1)]
    vis = simulate_ms(work / "lines.ms", spws, array="12m", nant=5, duration_s=300, integration_s=6,
                      noise_k=NOISE_K, weights="modern", seed=7)
    sigma = radiometer_sigma(NOISE_K, 0.5e6, 6)
    add_source(vis, [gaussian_line(p * sigma, w) for p, w in LINE_CASES] + [sloped_continuum(100 * sigma, 300 * sigma,
                                                                                             5, 3)])
    return work, vis


def test_lines_and_slopes_with_correct_weights_are_consistent(lines):
    _, vis = lines
    r = wtcheck(vis=[vis])
    assert r["consistent"] is True and not r["offenders"] and not r["uncertain"] and not r["unreliable"]
    g = {x["spw"]: x for x in r["groups"]}
    for spw, (peak, fwhm) in enumerate(LINE_CASES):
        assert g[spw]["ratio"] == pytest.approx(1.0, abs=0.03), (peak, fwhm)  # weights are 1/sigma^2: R = 1
        if peak >= 30 and fwhm == 1:  # narrow bright lines stand out and are excluded, around the line
            (e,) = g[spw]["excluded"]
            assert e["first"] <= LINE_CENTRE <= e["last"] and e["last"] - e["first"] < 30 and e["sigmas"] > 5
            assert f"channels {e['channels']}" in r["verdict"]
        if g[spw]["excluded"]:
            assert "excluded channels" in g[spw]["note"]
    slope = g[len(LINE_CASES)]
    assert slope["ratio"] == pytest.approx(1.0, abs=0.03) and not slope["excluded"]
    assert slope["slope"]["first"]["significant"] and slope["slope"]["first"]["excess"] > 1  # first differences: x2+
    assert "first differences read" in slope["note"]


def test_wrong_weight_factors_are_recovered_within_3_percent_under_lines(lines, tmp_path):
    vis = copy(lines[1], tmp_path / "lines.ms")  # fix=True below changes both
    wrong = copy(vis, tmp_path / "wrong.ms")
    factors = [0.25, 0.5, 0.8, 1.25, 1.7, 3.0, 8.0]  # weights too small (ratio low) ... too large
    factor_of = {spw: factors[spw % len(factors)] for spw in range(len(LINE_CASES) + 1)}
    tb = casatools().table()
    try:
        tb.open(wrong, nomodify=False)
        spw_of_row = tb.getcol("DATA_DESC_ID")  # one data description per spw here
        w = tb.getcol("WEIGHT")
        tb.putcol("WEIGHT", w * np.array([factor_of[s] for s in spw_of_row])[None, :])
    finally:
        tb.done()
    r = wtcheck(vis=[vis, wrong])
    assert r["reference"].startswith("lines.ms")  # the MS whose spws agree
    got = {(o["vis"], o["spw"]): o for o in r["offenders"]}
    for spw, f in factor_of.items():
        if abs(f - 1) > 0.1:
            assert got[(wrong, spw)]["factor"] == pytest.approx(f, rel=0.03), (spw, LINE_CASES[spw:spw + 1])
        else:
            assert (wrong, spw) not in got
    assert {v for v, _ in got} == {wrong}
    assert len(r["evidence"]) == len(got) and r["verdict"].startswith("NOT consistent") and "Evidence:" in r["verdict"]
    for o in r["offenders"]:  # the evidence names the factor, its error, the samples and the channels
        assert f"x{o['factor']:.4g}" in o["evidence"] and f"{o['nsamples']:,} third differences" in o["evidence"]
        assert o["factor_err"] < 0.02 * o["factor"]
    fixed = wtcheck(vis=[vis, wrong], fix=True)  # one factor per (spw, field): scale
    assert wtcheck(vis=[vis, wrong])["consistent"] is True
    assert fixed["fix"][wrong]["method"] == "scale"


def test_12m_and_7m_with_the_same_bright_line_are_consistent(tmp_path):
    """The issue's case: the same 100 Jy-class line in a 12 m and a 7 m MS with correct weights."""
    spw = [("LINE", 230.0e9, 0.5e6, NCHAN)]
    a = simulate_ms(tmp_path / "a12m.ms", spw, array="12m", nant=5, duration_s=600, integration_s=6,
                    noise_k=NOISE_K, weights="modern", seed=11)
    b = simulate_ms(tmp_path / "b7m.ms", spw, array="7m", nant=5, duration_s=600, integration_s=10,
                    noise_k=NOISE_K, weights="modern", seed=12)
    peak = 300 * radiometer_sigma(NOISE_K, 0.5e6, 6)  # 300 sigma of the 12 m data, ~28 sigma of the 7 m data
    for vis in (a, b):
        add_source(vis, [gaussian_line(peak, 4)])
    r = wtcheck(vis=[a, b])
    assert r["consistent"] is True, r["verdict"]
    assert all(x["ratio"] == pytest.approx(1.0, abs=0.03) and x["excluded"] for x in r["groups"])
    assert r["commands"] == []  # no remedy that would down-weight either


def test_spw_takes_casa_selection_syntax(lines):
    _, vis = lines
    r = wtcheck(vis=[vis], spw="0~2")
    assert sorted(g["spw"] for g in r["groups"]) == [0, 1, 2]
    # the 300 sigma, 1 channel line of spw 9 left out by hand: nothing stands out any more
    r = wtcheck(vis=[vis], spw="9:0~90;110~255,10")
    g = {x["spw"]: x for x in r["groups"]}
    assert set(g) == {9, 10} and g[9]["channels"] == "9:0~90;110~255" and g[9]["excluded"] == []
    assert g[9]["ratio"] == pytest.approx(1.0, abs=0.03)
    assert g[10]["excluded"] and g[10]["channels"] != "10:0~255"  # the 300 sigma, 8 channel line found there
    assert r["fitspw"][vis] == f"9:0~90;110~255,{g[10]['channels']}"  # statwt would use the same channels
    auto = wtcheck(vis=[vis], spw="9")["groups"][0]
    assert auto["excluded"] and auto["channels"] != "9:0~255"
    for bad, words in [("9:200~100", "reversed"), ("9:0~300", "beyond the last channel (255)"),
                       ("99", "spw 99 is not in"), ("<your line-free channels>", "placeholder"),
                       ("2:1~59999999", "exceeds the largest allowed"), ("0~99999999999:1~2", "exceeds the largest")]:
        with pytest.raises(TaskParameterError, match="parameter 'spw'") as err:
            wtcheck(vis=[vis], spw=bad)
        assert words in str(err.value) and vis in str(err.value)


def test_deviations_that_are_not_significant_are_uncertain_not_inconsistent(tmp_path):
    spw = [("FEW", 230.0e9, 0.5e6, 24)]  # 6 blocks of 4 channels, 30 rows: a ratio good to ~5 %
    a = simulate_ms(tmp_path / "a.ms", spw, nant=3, duration_s=60, integration_s=6, noise_k=NOISE_K,
                    weights="modern", seed=21)
    b = copy(a, tmp_path / "b.ms")
    tb = casatools().table()
    try:
        tb.open(b, nomodify=False)
        tb.putcol("WEIGHT", tb.getcol("WEIGHT") * 1.2)
    finally:
        tb.done()
    r = wtcheck(vis=[a, b], tolerance=0.1)
    (u,) = r["uncertain"]  # which of the two is the reference: the one nearer weight x variance = 1
    assert u["factor"] == pytest.approx(1.2 if u["vis"] == b else 1 / 1.2, rel=0.15)
    assert abs(u["factor"] - 1) > 0.1 and abs(u["factor"] - 1) - 0.1 <= 3 * u["factor_err"]
    assert "standard errors beyond the tolerance" in u["why"]
    assert r["consistent"] is None and r["offenders"] == [] and r["verdict"].startswith("undecided")
    assert r["commands"] == [] and r["remedy"] == ""  # no fix offered on evidence this thin


def test_weights_saved_by_earlier_versions_are_restored(pair, tmp_path):
    """Earlier versions kept the originals as WTCHECK_ORIG_* columns of the main table: restore still reads them."""
    _, modern, _ = pair
    v = copy(modern, tmp_path / "legacy.ms")
    original = columns(v)
    tb = casatools().table()
    try:  # what wtcheck(fix=True) of earlier versions left: a copy column, then changed weights
        tb.open(v, nomodify=False)
        for col in ("WEIGHT", "SIGMA"):
            desc = tb.getcoldesc(col)
            desc.pop("dataManagerGroup", None)
            desc["dataManagerType"] = "StandardStMan"
            tb.addcols({f"WTCHECK_ORIG_{col}": desc})
            tb.putcol(f"WTCHECK_ORIG_{col}", tb.getcol(col))
        tb.putcol("WEIGHT", tb.getcol("WEIGHT") * 3.0)
    finally:
        tb.done()
    with pytest.raises(TaskParameterError, match="already holds original weights"):
        wtcheck(vis=[v], fix=True)
    assert sorted(wtcheck(vis=[v], restore=True)["restored"][v]) == ["SIGMA", "WEIGHT"]
    back = columns(v, ("WEIGHT", "SIGMA", "WTCHECK_ORIG_WEIGHT"))
    assert set(back) == {"WEIGHT", "SIGMA"} and all(np.array_equal(back[c], original[c]) for c in back)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(TaskParameterError, match="parameter 'tolerance'"):
            wtcheck(vis=[v], tolerance=bad)


def test_an_ms_without_rows_is_reported_not_crashed_on(pair, tmp_path):
    _, modern, _ = pair
    v = str(tmp_path / "empty.ms")
    tb = casatools().table()
    try:  # the MS's structure, subtables included, without a row of data
        tb.open(modern)
        tb.copy(v, deep=True, norows=True)
    finally:
        tb.done()
    r = wtcheck(vis=[v])
    assert r["groups"] == [] and r["consistent"] is None and r["verdict"].startswith("no group could be measured")
    assert wtcheck(vis=[v], fix=True)["fix"][v]["saved"] == ["WEIGHT", "SIGMA"]  # nothing to scale, nothing lost
    wtcheck(vis=[v], restore=True)


def test_a_fix_that_would_not_fit_on_the_disk_is_refused_before_anything_changes(pair, tmp_path, monkeypatch):
    from almatools.errors import ResourceLimitError
    from almatools.plugins.weights import fix as fixes
    _, modern, _ = pair
    v = copy(modern, tmp_path / "full.ms")
    original, files = columns(v), ms_files(v)
    # as if the saved columns took a billion times their size: more than any disk has
    monkeypatch.setattr(fixes, "SPACE_MARGIN", 1e9)
    with pytest.raises(ResourceLimitError, match=r"wtcheck: parameter 'fix' needs .* of disk space"):
        wtcheck(vis=[v], fix=True)
    back = columns(v)
    assert all(np.array_equal(back[c], original[c]) for c in original) and ms_files(v) == files
