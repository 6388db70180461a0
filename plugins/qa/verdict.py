"""Per-image expectations (theoretical rms, expected dynamic range, beam sampling) and the verdict.

Numbers (DOMAIN.md §11, the primer's chapters 6 and 8):

* expected dynamic range without self-calibration: ~100 in Bands 3–8, ~50 in Bands 9–10;
* a beam sampled by 5–8 pixels across its minor axis; fewer than 3 undersamples it;
* rms within 1.2 × the theoretical value is as promised; above 1.5 × it is a problem whose likely
  cause depends on the source: a source bright enough for self-calibration (peak ≥ 20 × the
  theoretical rms) limits the dynamic range through residual calibration errors (self-calibration,
  primer §8.6); a faint one points at the data (flagging, weather, line emission in "line-free"
  channels).
"""

from __future__ import annotations

import math
import re

from almatools.plugins.calflux.bands import band_of

__all__ = ["expected_dr", "expected_rms", "verdict", "RMS_OK", "RMS_BAD", "SELFCAL_SNR"]

RMS_OK, RMS_BAD = 1.2, 1.5
#: peak / theoretical rms from which self-calibration is worth trying
SELFCAL_SNR = 20.0
C_KM_S = 299_792.458
_LEVELS = {"ok": 0, "warning": 1, "problem": 2}


def expected_dr(freq_hz: float) -> tuple[int | None, int | None]:
    """(band, expected dynamic range) at *freq_hz*."""
    band = band_of(freq_hz) if freq_hz and math.isfinite(freq_hz) else None
    if band is None:
        return None, None
    return band, 50 if band >= 9 else 100


def _same_name(a: str, b: str) -> bool:
    """Field names as the pipeline writes them in products (quotes dropped, odd characters as _)."""
    def norm(s):
        return re.sub(r"[^A-Za-z0-9+\-.]", "_", s.strip().strip('"'))
    return bool(a) and norm(a) == norm(b)


def _bandwidth_hz(value_unit, rep_freq_hz: float | None) -> float | None:
    if not value_unit:
        return None
    value, unit = value_unit
    scale = {"hz": 1.0, "khz": 1e3, "mhz": 1e6, "ghz": 1e9}.get(unit.lower())
    if scale:
        return value * scale
    if unit.lower() == "km/s" and rep_freq_hz:
        return value / C_KM_S * rep_freq_hz
    return None


def expected_rms(product, image, channel_hz: float, aquas: list, qa2s: list) -> dict | None:
    """The rms the delivery promised for this image, from the AQUA report or the QA2 text.

    :returns: ``{"jy", "source", "scaled_from"}`` or None.  Cube values given for another bandwidth are
        scaled by sqrt(bandwidth / channel width) (radiometer equation).
    """
    spws = set(product.spws)
    cube = product.specmode in ("cube", "repBW")
    candidates = []
    for report in aquas:
        for s in report.sensitivities:
            if s["theoretical_jy"] is None or not _same_name(s["field"], product.target):
                continue
            entry_spws = {x.strip() for x in s["spw"].split(",") if x.strip()}
            same_spw = entry_spws == spws
            same_mode = s["bwmode"].lower() == product.specmode.lower() or (
                not cube and s["bwmode"].lower() in ("cont", "mfs", "aggbw"))
            if not (same_spw or (not cube and same_mode)):
                continue
            rank = (0 if s["origin"] == "hif_makeimages" else 1) + (0 if same_mode else 2)
            candidates.append((rank, s))
    if candidates:
        _, s = min(candidates, key=lambda c: c[0])
        jy, note = s["theoretical_jy"], ""
        if cube and s["bandwidth_hz"] and channel_hz and abs(s["bandwidth_hz"] - channel_hz) > 1e-3 * channel_hz:
            jy *= math.sqrt(s["bandwidth_hz"] / channel_hz)
            note = f"scaled from {s['bandwidth_hz'] / 1e6:.4g} MHz to the {channel_hz / 1e6:.4g} MHz channels"
        return {"jy": jy, "source": f"AQUA {s['origin']} theoretical", "where": s["where"], "scaled": note,
                "pipeline_observed_jy": s["observed_jy"]}
    for q in qa2s:
        rms = q.rms
        if "goal_rms_jy" not in rms:
            continue
        rep_spw, rep_freq = rms.get("rep_spw"), rms.get("rep_freq_hz")
        # spw ids of manual QA2 texts are the split MS's (renumbered from 0): the frequency decides too
        covers = (rep_spw in spws) or (
            rep_freq is not None and image.freqs_hz.min() - channel_hz <= rep_freq <= image.freqs_hz.max() + channel_hz)
        if not covers:
            continue
        jy, note = rms["goal_rms_jy"], ""
        bw = _bandwidth_hz(rms.get("goal_bandwidth"), rep_freq)
        if cube and bw and channel_hz and abs(bw - channel_hz) > 1e-3 * channel_hz:
            jy *= math.sqrt(bw / channel_hz)
            note = f"scaled from {bw / 1e6:.4g} MHz to the {channel_hz / 1e6:.4g} MHz channels"
        return {"jy": jy, "source": "QA2 sensitivity goal", "where": q.label, "scaled": note,
                "qa2_achieved_jy": rms.get("achieved_rms_jy")}
    return None


def verdict(row: dict) -> tuple[str, list[str]]:
    """``(level, reasons)`` for one measured image; level ``ok``, ``warning`` or ``problem``."""
    reasons, level = [], "ok"

    def add(lv: str, text: str):
        nonlocal level
        reasons.append(text)
        if _LEVELS[lv] > _LEVELS[level]:
            level = lv

    ratio, dr, dr_exp = row.get("rms_ratio"), row.get("dr"), row.get("dr_expected")
    drtext = f"DR {dr:.0f}" if dr is not None and math.isfinite(dr) else "DR unknown"
    if ratio is not None and math.isfinite(ratio):
        snr_theory = row["peak_jy"] / row["theoretical_jy"] if row.get("theoretical_jy") else 0.0
        if ratio > RMS_BAD:
            if snr_theory >= SELFCAL_SNR:
                add("problem", f"rms {ratio:.1f}x theoretical and {drtext}: consider self-calibration, §8.6")
            else:
                add("problem", f"rms {ratio:.1f}x theoretical with no source bright enough to self-calibrate: "
                               "check flagging, weather (PWV) and line emission in the line-free channels")
        elif ratio > RMS_OK:
            add("warning", f"rms {ratio:.2f}x theoretical (within {RMS_BAD}x)")
        else:
            add("ok", f"rms {ratio:.2f}x theoretical")
    else:
        add("warning", "no theoretical rms in the AQUA report or QA2 text to compare with")
    if dr is not None and math.isfinite(dr) and dr_exp:
        if dr >= dr_exp:
            add("warning" if ratio and ratio > RMS_OK else "ok",
                f"{drtext} at or above the ~{dr_exp} reached without self-calibration"
                + (": dynamic-range limited, self-calibration may help (§8.6)" if ratio and ratio > RMS_OK else ""))
    pix = row.get("pixels_per_beam")
    if pix is not None and math.isfinite(pix):
        if pix < 3:
            add("problem", f"beam sampled by {pix:.1f} pixels: undersampled, re-image with a cell of beam/5")
        elif pix < 5:
            add("warning", f"beam sampled by {pix:.1f} pixels (5-8 recommended)")
    if row.get("noisy_channels"):
        chans = row["noisy_channels"]
        shown = ", ".join(str(c) for c in chans[:12]) + (" ..." if len(chans) > 12 else "")
        add("warning", f"{len(chans)} noisy channel(s) ({shown}): atmospheric lines or band edges")
    ar = row.get("ar_goal_arcsec")
    beam = row.get("beam_arcsec")
    if ar and beam:
        geo = math.sqrt(beam[0] * beam[1])
        if not ar[0] * 0.999 <= geo <= ar[1] * 1.001:
            add("warning", f"beam {geo:.3g} arcsec (geometric mean) outside the requested {ar[0]:.3g}-{ar[1]:.3g} "
                           "arcsec")
    for note in row.get("notes", []):
        add("warning", note)
    return level, reasons
