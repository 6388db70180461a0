"""``setjy`` calls in manual calibration scripts: the flux densities a manual calibration assumed.

Scripts are read as text, never run (they are often Python 2), with the call
scanner of :mod:`almatools.plugins.calunflag.scan`; field indices (``field='2'``)
are resolved to names from the script's header comments and inline comments
(``# CALIBRATE_FLUX: J1058+0133``, ``field = '2', # Titan``) as calunflag does.

Generated scripts set quasar flux calibrators with ``standard='manual'``::

    setjy(vis = 'uid___A002_X1.ms.split', standard = 'manual', field = 'J0538-4405',
      fluxdensity = [1.4547, 0, 0, 0], spix = -0.5713, reffreq = '106.6GHz')

and solar-system bodies with a model (``standard = 'Butler-JPL-Horizons 2012'``),
which carries no flux density to compare with a quasar catalogue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .fluxes import MODEL, CalibratorFlux

__all__ = ["SetjyCall", "setjy_calls", "setjy_fluxes", "parse_frequency", "header_intents"]

_FREQ = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?\d+)?)\s*(Hz|kHz|MHz|GHz|THz)?\s*$", re.I)
_SCALE = {"hz": 1.0, "khz": 1e3, "mhz": 1e6, "ghz": 1e9, "thz": 1e12}
_HEADER_INTENT = re.compile(r"^#\s*((?:CALIBRATE|OBSERVE)_[A-Z_]+)\s*:\s*(.+?)\s*$", re.M)


def header_intents(text: str) -> dict[str, set]:
    """Field name → intents from a manual script's header comments (``# CALIBRATE_FLUX: J1058+0133``)."""
    out: dict[str, set] = {}
    for m in _HEADER_INTENT.finditer(text):
        for name in m.group(2).split(","):
            if name.strip():
                out.setdefault(name.strip(), set()).add(m.group(1))
    return out


@dataclass
class SetjyCall:
    """One ``setjy`` call as written.

    :param field: the field selection as written (``'2'``, ``'J1058+0133'``).
    :param names: the field names it selects (indices resolved when the script says how).
    :param spw: the spw selection (``''``: all).
    :param standard: the flux standard (``manual`` when flux densities are given).
    :param fluxdensity: ``[I, Q, U, V]`` in Jy, None when not given (or -1: from the standard).
    :param spix: spectral index (None: not given).
    :param reffreq_hz: reference frequency of fluxdensity and spix, Hz (None: not given).
    :param problems: what could not be read (a variable instead of a number, ...).
    """

    vis: str
    field: str
    names: list
    spw: str
    standard: str
    fluxdensity: list | None
    spix: float | None
    reffreq_hz: float | None
    line: int
    active: bool
    where: str
    problems: list = field(default_factory=list)


def parse_frequency(value) -> float | None:
    """``'233.0GHz'``, ``'1.2e11'`` (Hz), ``'106.6 GHz'`` → Hz; None when it is not a frequency."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if value > 0 else None
    m = _FREQ.match(str(value))
    if not m:
        return None
    hz = float(m.group(1)) * _SCALE[(m.group(2) or "Hz").lower()]
    return hz if hz > 0 else None


def _number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


def setjy_calls(text: str, label: str = "script") -> list[SetjyCall]:
    """Every ``setjy`` call of a calibration script, active or commented out, with its fields resolved."""
    from almatools.plugins.calunflag.roles import FieldRoles, roles_from_script
    from almatools.plugins.calunflag.scan import find_calls
    calls = find_calls(text, ("setjy", "bandpass", "gaincal", "fluxscale", "flagdata"), label)
    roles = roles_from_script(label, text, calls, FieldRoles())
    out = []
    for call in (c for c in calls if c.name == "setjy"):
        args = call.args
        problems = []
        fieldsel = str(args.get("field", ""))
        names = []
        if fieldsel:
            verdicts, why = roles.lookup(args["field"])  # indices resolved from the header and comments
            names = [v.name for v in verdicts]
            if why:
                problems.append(f"field={fieldsel!r} {why}")
        flux = args.get("fluxdensity")
        fluxdensity = None
        if isinstance(flux, (list, tuple)) and flux and all(_number(v) is not None for v in flux):
            fluxdensity = [float(v) for v in list(flux)[:4]] + [0.0] * (4 - min(len(flux), 4))
        elif _number(flux) is not None:
            fluxdensity = None if float(flux) < 0 else [float(flux), 0.0, 0.0, 0.0]
        elif flux is not None:
            problems.append(f"fluxdensity={str(flux)!r} is not a literal number or list")
        spix = args.get("spix")
        if isinstance(spix, (list, tuple)):
            spix = spix[0] if spix else None
        if spix is not None and _number(spix) is None:
            problems.append(f"spix={str(spix)!r} is not a literal number")
            spix = None
        reffreq = args.get("reffreq")
        reffreq_hz = parse_frequency(reffreq) if reffreq not in (None, "") else None
        if reffreq not in (None, "") and reffreq_hz is None:
            problems.append(f"reffreq={str(reffreq)!r} is not a frequency")
        standard = str(args.get("standard", "Perley-Butler 2017" if fluxdensity is None else "manual"))
        out.append(SetjyCall(vis=str(args.get("vis", "")), field=fieldsel, names=names, spw=str(args.get("spw", "")),
                             standard=standard, fluxdensity=fluxdensity,
                             spix=None if spix is None else float(spix), reffreq_hz=reffreq_hz,
                             line=call.start + 1, active=call.active, where=f"{label}:{call.start + 1}",
                             problems=problems))
    return out


def setjy_fluxes(calls: list[SetjyCall]) -> list[CalibratorFlux]:
    """The flux densities active ``setjy`` calls set (one record per field; spw as selected)."""
    out = []
    for c in calls:
        if not c.active or c.fluxdensity is None:
            continue
        for name in c.names or [c.field]:
            out.append(CalibratorFlux(
                field="" if name.isdigit() else name, field_id=name if name.isdigit() else "", spw=c.spw,
                flux_jy=c.fluxdensity[0], error_jy=None, freq_hz=c.reffreq_hz, spix=c.spix,
                ms=c.vis, kind=MODEL, origin=f"setjy standard={c.standard}", where=c.where,
                # CASA's setjy takes reffreq='1GHz' when none is given
                extra={"reffreq_hz": c.reffreq_hz or 1e9, "standard": c.standard}))
    return out
