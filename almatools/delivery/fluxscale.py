"""Calibrator flux densities in QA2 text files and CASA logs of manual calibrations.

Manual deliveries (Cycle 0–4) keep, in ``qa/`` text files and in CASA logs, the
lines CASA's ``fluxscale`` and ``setjy`` print:

* ``Flux density for J1147-3812 in SpW=0 (freq=2.30e+11 Hz) is: 1.2345 +/- 0.0056 (SNR = 220.4, N = 40)``
  (CASA ≥ 4.3; earlier versions omit ``(freq=... Hz)``), ``... is: INSUFFICIENT DATA``;
* ``Found reference field(s): J1058+0133`` and ``Found transfer field(s): J1126-3828 J1147-3812``;
* ``J1058+0133 (fld ind 0) spw 0  [I=3.02, Q=0, U=0, V=0] Jy @ 2.3e+11Hz, (user-specified)`` (setjy).

The reference fields' values are the model (what the calibration assumed); the
transfer fields' values were measured.  Frequencies missing from old-style lines
come from the listobs summary in the same text when it has one.  One pass, line by line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .fluxes import MEASURED, MODEL, CalibratorFlux
from .listobs import Listobs, read_listobs

__all__ = ["FluxscaleText", "read_fluxscale_text"]

# a number whose parts cannot overlap (no backtracking blow-up on long digit runs)
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_FLUXSCALE = re.compile(r"Flux density for (\S+) in SpW=(\d+)(?: \(freq=(" + _NUM + r") Hz\))? is:\s*(" + _NUM
                        + r")\s*\+/-\s*(" + _NUM + r")(?:\s*\(SNR\s*=\s*(" + _NUM + r")\s*,\s*N\s*=\s*(\d+)\))?")
_INSUFFICIENT = re.compile(r"Flux density for (\S+) in SpW=(\d+).*INSUFFICIENT DATA")
_REFERENCE = re.compile(r"Found reference field\(s\):\s*(.*)$")
_TRANSFER = re.compile(r"Found transfer field\(s\):\s*(.*)$")
_SETJY = re.compile(r"(?<!\S)(\S++) \(fld ind (\d+)\) spw (\d+)\s+\[I=(" + _NUM + r"), Q=(" + _NUM + r"), U=(" + _NUM
                    + r"), V=(" + _NUM + r")\] Jy @ (" + _NUM + r")\s*Hz(?:, \(([^)]*)\))?")


@dataclass
class FluxscaleText:
    """What a QA2 text file or CASA log says about calibrator fluxes.

    :param fluxes: fluxscale results (kind ``measured``) and setjy models (kind ``model``).
    :param reference: fields fluxscale used as flux reference.
    :param insufficient: ``(field, spw)`` pairs fluxscale could not measure.
    :param listobs: the listobs summary in the same text (empty when there is none).
    """

    label: str
    fluxes: list = field(default_factory=list)
    reference: list = field(default_factory=list)
    transfer: list = field(default_factory=list)
    insufficient: list = field(default_factory=list)
    listobs: Listobs | None = None


def read_fluxscale_text(text: str, label: str = "qa2.txt") -> FluxscaleText:
    """The fluxscale and setjy lines of *text*, each with its line number."""
    out = FluxscaleText(label)
    out.listobs = read_listobs(text, label)
    ms = out.listobs.ms
    for number, line in enumerate(text.splitlines(), 1):
        if "Flux density for" in line:
            m = _FLUXSCALE.search(line)
            if m:
                spw = m.group(2)
                freq = float(m.group(3)) if m.group(3) else None
                if freq is None and spw in out.listobs.spws:
                    freq = out.listobs.spws[spw].centre_hz
                extra = {}
                if m.group(6):
                    extra = {"snr": float(m.group(6)), "n": int(m.group(7))}
                out.fluxes.append(CalibratorFlux(
                    field=m.group(1), field_id="", spw=spw, flux_jy=float(m.group(4)), error_jy=abs(float(m.group(5))),
                    freq_hz=freq, spix=None, ms=ms, kind=MEASURED, origin="fluxscale", where=f"{label}:{number}",
                    extra=extra))
                continue
            m = _INSUFFICIENT.search(line)
            if m:
                out.insufficient.append((m.group(1), m.group(2)))
            continue
        m = _REFERENCE.search(line)
        if m:
            out.reference += [n for n in m.group(1).replace(",", " ").split() if n not in out.reference]
            continue
        m = _TRANSFER.search(line)
        if m:
            out.transfer += [n for n in m.group(1).replace(",", " ").split() if n not in out.transfer]
            continue
        if "(fld ind" in line:
            m = _SETJY.search(line)
            if m and float(m.group(4)) >= 0:
                out.fluxes.append(CalibratorFlux(
                    field=m.group(1), field_id=m.group(2), spw=m.group(3), flux_jy=float(m.group(4)), error_jy=None,
                    freq_hz=float(m.group(8)) or None, spix=None, ms=ms, kind=MODEL,
                    origin=f"setjy ({m.group(9) or 'model'})", where=f"{label}:{number}",
                    extra={"standard": m.group(9) or ""}))
    return out
