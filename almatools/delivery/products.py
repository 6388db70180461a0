"""Product names: what each image of a delivery is, by the archive's naming conventions.

Pipeline products (Cycle 5 on) are named
``member.<mous uid>.<source>_<intent>.<spws>.<specmode>.<stokes>[.<term>].<type>.fits[.gz]``, e.g.

* ``member.uid___A001_X1465_X3.TW_Hya_sci.spw25.cube.I.pbcor.fits`` — a cube of spw 25;
* ``….TW_Hya_sci.spw25.cube.I.pb.fits.gz`` and ``….mask.fits.gz`` — its primary beam and clean mask;
* ``….TW_Hya_sci.spw25_27.cont.I.pbcor.fits`` — the aggregate continuum (``mfs`` for one spw's);
* ``….TW_Hya_sci.spw25_27.cont.I.tt0.pbcor.fits``, ``….cont.I.alpha.fits``, ``….alpha.error.fits`` — mtmfs;
* ``….J1058+0133_bp.spw25.mfs.I.pbcor.fits`` — a calibrator image (``_bp``, ``_ph``, ``_amp``, ``_check``, ``_pol``);
* ``repBW`` (a cube at the representative bandwidth), ``iter1``, ``selfcal`` … as extra tokens.

Manual deliveries (Cycle 0–4) name images freely (``TW_Hya_CO21.image.pbcor.fits``,
``twhya_cont.image.fits``, ``….flux.fits`` for the primary beam of CASA ≤ 4.2): their kind,
spw and spectral mode are read from the tokens that are there, and the rest stays unknown.

:func:`parse_product_name` never fails: a name it cannot place gets kind ``"unknown"``.
:func:`missing_companions` lists what a delivery should have and does not (a cube without its
``.pb``, an mtmfs ``tt0`` without its ``alpha``).  Nothing here reads the files.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

__all__ = ["Product", "parse_product_name", "is_image_name", "missing_companions", "IMAGE_KINDS"]

#: the last token(s) of a name → the kind of image (longest first)
_KINDS = (("alpha.error", "alpha.error"), ("image.pbcor", "pbcor"), ("pbcor", "pbcor"), ("pb", "pb"),
          ("flux", "pb"), ("mask", "mask"), ("psf", "psf"), ("residual", "residual"), ("model", "model"),
          ("sumwt", "sumwt"), ("weight", "weight"), ("alpha", "alpha"), ("beta", "beta"), ("image", "image"),
          ("im", "image"))
IMAGE_KINDS = sorted({k for _, k in _KINDS})
_INTENTS = {"sci": "science", "bp": "bandpass", "ph": "phase", "amp": "amplitude", "check": "check",
            "pol": "polarization", "polleak": "polarization leakage", "flux": "flux", "di": "diffgain"}
_SPECMODES = {"cube": "cube", "mfs": "mfs", "cont": "cont", "repbw": "repBW", "continuum": "cont", "line": "cube"}
_STOKES = re.compile(r"^(I|Q|U|V|IQUV|IV|QU|XX|YY|XXYY|RR|LL|RRLL)$")
_TERM = re.compile(r"^tt(\d)$")
_SPW = re.compile(r"^spw(\d+(?:[_-]\d+)*)$", re.I)
_SPW_ANY = re.compile(r"spw_?(\d+(?:[_-]\d+)*)", re.I)
_MOUS = re.compile(r"^(?:member\.)?(uid___[A-Za-z0-9]+_[A-Za-z0-9]+_[A-Za-z0-9]+)\.")
#: a name longer than this is not looked at (nothing real is near it; keeps every pass bounded)
MAX_NAME = 1024


@dataclass
class Product:
    """One product file or CASA image directory, as its name describes it.

    :param name: the file name.
    :param convention: ``"pipeline"`` (the Cycle 5+ scheme) or ``"manual"`` (anything else).
    :param target: source name (``""`` when the name does not say).
    :param intent: ``science``, ``bandpass``, ``phase`` … (pipeline names), else ``""``.
    :param spws: spw ids in the name, as strings.
    :param specmode: ``cube``, ``mfs``, ``cont``, ``repBW`` or ``""``.
    :param stokes: ``I``, ``IQUV`` … or ``""``.
    :param term: Taylor term of an mtmfs image (``tt0``, ``tt1``) or ``""``.
    :param kind: one of :data:`IMAGE_KINDS` or ``"unknown"``.
    :param group: the name without kind, term and suffix: an image and its pb/mask share it.
    :param extra: tokens the name has beyond these (``iter1``, ``selfcal``, ``manual`` …).
    """

    name: str
    convention: str = "manual"
    mous: str = ""
    target: str = ""
    intent: str = ""
    spws: list = field(default_factory=list)
    specmode: str = ""
    stokes: str = ""
    term: str = ""
    kind: str = "unknown"
    compressed: bool = False
    group: str = ""
    extra: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def is_image_name(name: str) -> bool:
    """Whether *name* looks like an image product (FITS, gzipped FITS, or a CASA image directory's name)."""
    low = name.lower()
    if low.endswith((".fits", ".fits.gz", ".fit", ".fts")):
        return True
    return bool(re.search(r"\.(image|image\.pbcor|pbcor|pb|flux|mask|psf|residual|model|alpha|alpha\.error|"
                          r"tt\d|im)$", low))


def _strip_suffix(name: str) -> tuple[str, bool]:
    low = name.lower()
    for suffix, compressed in ((".fits.gz", True), (".fits", False), (".fit", False), (".fts", False), (".gz", True)):
        if low.endswith(suffix):
            return name[: len(name) - len(suffix)], compressed
    return name, False


def _kind_of(tokens: list[str]) -> tuple[str, int]:
    """The kind named by the last token(s), and how many tokens it used."""
    low = [t.lower() for t in tokens]
    for text, kind in _KINDS:
        parts = text.split(".")
        if len(low) >= len(parts) and low[-len(parts):] == parts:
            return kind, len(parts)
    return "unknown", 0


def parse_product_name(name: str) -> Product:
    """What the file name *name* (no directory) says about the image; see the module docstring."""
    name = str(name).rsplit("/", 1)[-1][:MAX_NAME]
    stem, compressed = _strip_suffix(name)
    out = Product(name=name, compressed=compressed)
    m = _MOUS.match(stem)
    if m:
        out.mous = m.group(1)
        stem = stem[m.end():]
    tokens = [t for t in stem.split(".") if t]
    # tt0/tt1 stand before or after the kind (….I.tt0.pbcor, ….I.pb.tt0)
    term_at = next((i for i, t in enumerate(tokens) if _TERM.match(t.lower())), None)
    if term_at is not None:
        out.term = tokens.pop(term_at).lower()
    out.kind, used = _kind_of(tokens)
    body = tokens[: len(tokens) - used]
    pipeline = bool(m) and len(body) >= 3 and bool(_SPW.match(body[1])) and body[2].lower() in _SPECMODES
    if pipeline:
        _pipeline_fields(out, body)
    else:
        _manual_fields(out, body)
    out.group = ".".join(([out.mous] if out.mous else []) + body)
    return out


def _pipeline_fields(out: Product, body: list[str]) -> None:
    out.convention = "pipeline"
    source = body[0]
    head, sep, tail = source.rpartition("_")
    if sep and tail.lower() in _INTENTS:
        out.target, out.intent = head, _INTENTS[tail.lower()]
    else:
        out.target = source
    out.spws = re.split(r"[_-]", _SPW.match(body[1]).group(1))
    out.specmode = _SPECMODES[body[2].lower()]
    rest = body[3:]
    if rest and _STOKES.match(rest[0]):
        out.stokes = rest[0]
        rest = rest[1:]
    for t in rest:
        if t.lower() == "repbw":
            out.specmode = "repBW"
        else:
            out.extra.append(t)


def _manual_fields(out: Product, body: list[str]) -> None:
    """Free-form names: take what the tokens say, leave the rest empty."""
    joined = ".".join(body)
    spw = _SPW_ANY.search(joined)
    if spw:
        out.spws = re.split(r"[_-]", spw.group(1))
    words = [w.lower() for w in re.split(r"[._\-]", joined) if w]
    # free names carry no reliable Stokes label (a lone "v" or "u" is as likely a word), so none is read
    out.specmode = next((_SPECMODES[w] for w in words if w in _SPECMODES), "")
    if body and body[0].lower() not in _SPECMODES and not _SPW_ANY.fullmatch(body[0]):
        out.target = body[0]  # the best a free name offers: its first part (``TW_Hya_CO21``)
    out.extra = body[1:]


def _base_kind(kind: str) -> str:
    return "image" if kind in ("pbcor", "image") else kind


def missing_companions(products: list[Product]) -> list[dict]:
    """What is expected next to each image and is not there.

    * every primary-beam corrected image (``pbcor``) needs its primary beam (``pb``): without it the
      flat-noise image cannot be recovered and the rms cannot be measured where it is meant to be;
    * a pipeline ``pbcor`` science image has its clean ``mask`` (missing: the image may not be cleaned);
    * an mtmfs ``tt0`` image comes with its spectral index (``alpha``);
    * a ``pb`` or ``mask`` without any image of its group is an orphan.

    :returns: ``[{"group", "have", "missing", "severity", "why"}]`` (severity ``error`` or ``warning``).
    """
    by_group: dict[str, set] = {}
    first: dict[str, Product] = {}
    for p in products:
        by_group.setdefault(p.group, set()).add(p.kind)
        first.setdefault(p.group, p)
    out = []
    for group, kinds in sorted(by_group.items()):
        sample = first[group]
        have = sorted(kinds)
        if "pbcor" in kinds and "pb" not in kinds:
            out.append(dict(group=group, have=have, missing="pb", severity="error",
                            why="a primary-beam corrected image without its .pb: the noise cannot be measured on the "
                                "flat-noise image (pbcor x pb) nor inside pb >= 0.5"))
        if ("pbcor" in kinds and "mask" not in kinds and sample.convention == "pipeline"
                and sample.intent == "science"):
            out.append(dict(group=group, have=have, missing="mask", severity="warning",
                            why="no clean mask: the image may not have been cleaned (or the mask was not delivered)"))
        if sample.term == "tt0" and "pbcor" in kinds and "alpha" not in kinds:
            out.append(dict(group=group, have=have, missing="alpha", severity="warning",
                            why="an mtmfs tt0 image without its spectral-index image (.alpha)"))
        if kinds and kinds <= {"pb", "mask", "psf", "sumwt", "weight"}:
            out.append(dict(group=group, have=have, missing="pbcor", severity="warning",
                            why=f"{'/'.join(have)} without the image it belongs to"))
    return out
