"""``execute=True``: run the advised tclean call and compare what it achieves with the prediction."""

from __future__ import annotations

import math
import os

import numpy as np

from almatools import log

__all__ = ["run_and_compare", "image_beam", "robust_rms", "TOLERANCE", "FFT_SIZE_WARNING"]

TOLERANCE = 0.10  # the prediction "agrees" within 10 %
FFT_SIZE_WARNING = "is not an efficient imagesize"  # tclean's words for an imsize its FFTs handle slowly


def run_and_compare(result: dict) -> dict:
    """Run ``tclean(**result['tclean']['params'])``; return the achieved beam and rms and their ratios."""
    from casatasks import casalog, tclean
    params = result["tclean"]["params"]
    logfile = casalog.logfile()
    start = os.path.getsize(logfile) if logfile and os.path.exists(logfile) else 0
    log.info(f"running {result['tclean']['call']}")
    failed = []
    try:
        tclean(**params)
    except Exception as exc:  # noqa: BLE001 - tclean's own errors are reported, not re-raised
        failed.append(f"tclean: {type(exc).__name__}: {exc}")
    suffix = ".tt0" if params.get("deconvolver") == "mtmfs" else ""
    name = params["imagename"]
    image, residual, pb = (f"{name}.{kind}{suffix}" for kind in ("image", "residual", "pb"))
    if not failed and not os.path.isdir(image):
        failed.append(f"tclean wrote no {image}")
    out = {"imagename": name, "failed": failed, "ok": not failed}
    tail = _log_since(logfile, start)
    out["fft_size_warning"] = FFT_SIZE_WARNING in tail
    if failed:
        for f in failed:
            log.severe(f)
        return out
    beam = image_beam(image)
    rms = robust_rms(residual, pb if os.path.isdir(pb) else "")
    cube = params.get("specmode") == "cube"
    predicted_beam = result["beam"]["combined"]["briggs"]
    predicted_rms = result["noise"]["cube_channel_jy"] if cube else result["noise"]["combined"]["briggs_jy"]
    out.update({
        "beam": beam, "rms_jy": rms, "predicted_beam": {k: predicted_beam[k] for k in ("major_arcsec",
                                                                                      "minor_arcsec", "pa_deg")},
        "predicted_rms_jy": predicted_rms,
        "major_ratio": beam["major_arcsec"] / predicted_beam["major_arcsec"],
        "minor_ratio": beam["minor_arcsec"] / predicted_beam["minor_arcsec"],
        "rms_ratio": rms / predicted_rms if predicted_rms else math.nan,
    })
    out["beam_agrees"] = all(abs(out[k] - 1) <= TOLERANCE for k in ("major_ratio", "minor_ratio"))
    out["rms_agrees"] = abs(out["rms_ratio"] - 1) <= TOLERANCE
    log.info(f"achieved beam {beam['major_arcsec']:.4g} x {beam['minor_arcsec']:.4g} arcsec (predicted "
             f"{predicted_beam['major_arcsec']:.4g} x {predicted_beam['minor_arcsec']:.4g}: ratios "
             f"{out['major_ratio']:.3f}, {out['minor_ratio']:.3f}); rms {rms * 1e3:.4g} mJy (predicted "
             f"{predicted_rms * 1e3:.4g}: ratio {out['rms_ratio']:.3f})")
    if not out["rms_agrees"]:
        log.warn("the rms differs from the prediction by more than 10 %: weights that are not inverse variances "
                 "(run wtcheck), emission or sidelobes in the residual, or flagged data")
    if out["fft_size_warning"]:
        log.warn(f"tclean reported an imsize its FFTs handle slowly ('{FFT_SIZE_WARNING}')")
    return out


def _log_since(logfile: str, start: int) -> str:
    if not logfile or not os.path.exists(logfile):
        return ""
    with open(logfile, "rb") as fh:
        fh.seek(start)
        return fh.read().decode("utf-8", "replace")


def image_beam(image: str) -> dict:
    """The restoring beam of a CASA image (the median over planes for per-plane beams), arcsec/deg."""
    from almatools.casaenv import casatools
    ct = casatools()
    ia, qa = ct.image(), ct.quanta()
    try:
        ia.open(image)
        rb = ia.restoringbeam()
    finally:
        ia.done()
    if "beams" in rb:
        planes = [b for chan in rb["beams"].values() for b in chan.values()]
    else:
        planes = [rb]

    def arcsec(q):
        return float(qa.convert(q, "arcsec")["value"])

    return {"major_arcsec": float(np.median([arcsec(b["major"]) for b in planes])),
            "minor_arcsec": float(np.median([arcsec(b["minor"]) for b in planes])),
            "pa_deg": float(np.median([float(qa.convert(b["positionangle"], "deg")["value"]) for b in planes]))}


def robust_rms(image: str, pb: str = "", pb_min: float = 0.5) -> float:
    """1.4826 x the median absolute deviation of an image's unmasked pixels (where pb >= *pb_min*),
    per plane, then the median over planes."""
    from almatools.casaenv import casatools
    ia = casatools().image()
    try:
        ia.open(image)
        data = ia.getchunk(dropdeg=False)
        mask = ia.getchunk(getmask=True, dropdeg=False)
    finally:
        ia.done()
    if pb:
        ia = casatools().image()
        try:
            ia.open(pb)
            mask = mask & (ia.getchunk(dropdeg=False) >= pb_min)
        finally:
            ia.done()
    data = data.reshape(data.shape[0], data.shape[1], -1)
    mask = mask.reshape(data.shape)
    values = []
    for k in range(data.shape[2]):
        plane = data[:, :, k][mask[:, :, k]]
        if plane.size:
            values.append(1.4826 * float(np.median(np.abs(plane - np.median(plane)))))
    return float(np.median(values)) if values else math.nan
