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


def test_statwt_fix_and_restore(pair, tmp_path):
    _, _, old = pair
    o = copy(old, tmp_path / "o.ms")
    original = columns(o)
    wtcheck(vis=[o], fix=True, method="statwt")
    after = wtcheck(vis=[o])
    assert all(g["ratio"] == pytest.approx(1.0, rel=0.1) for g in after["groups"])  # statwt: 1/variance
    wtcheck(vis=[o], restore=True)
    back = columns(o)
    assert all(np.array_equal(back[c], original[c]) for c in original)  # FLAG too


def test_read_only_and_held_open_are_refused(pair, tmp_path):
    _, modern, _ = pair
    ro = copy(modern, tmp_path / "ro.ms")
    for root, dirs, files in os.walk(ro):
        for name in files + dirs:
            os.chmod(os.path.join(root, name), 0o555 if name in dirs else 0o444)
    os.chmod(ro, 0o555)
    try:
        with pytest.raises(TaskParameterError, match="is read-only"):
            wtcheck(vis=[ro], fix=True)
    finally:
        for root, dirs, files in os.walk(ro):
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
    held = copy(modern, tmp_path / "held.ms")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from almatools.casaenv import casatools; tb = casatools().table(); "
         f"tb.open({held!r}, nomodify=False, lockoptions={{'option': 'permanent'}}); print('open', flush=True); "
         "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(TaskParameterError, match="held open by another process"):
            wtcheck(vis=[held], fix=True)
        # even reading would wait forever for a permanent write lock: refused, not hung
        with pytest.raises(TaskParameterError, match="held open for writing by another process"):
            wtcheck(vis=[held])
    finally:
        holder.communicate("")
    assert "WTCHECK_ORIG_WEIGHT" not in columns(held, ("WTCHECK_ORIG_WEIGHT",))


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
