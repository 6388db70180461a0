"""Built-in plugin ``archive``: ``almaquery`` (search the ALMA Science Archive) and ``almafetch``
(download Member OUS data: parallel, resumable, verified, safely unpacked).

:mod:`.grammar` reads the search box, :mod:`.search` maps the archive page's fields to columns,
:mod:`.adql` writes (checked) ADQL, :mod:`.coverage` tests frequencies against spectral windows,
:mod:`.service` picks the mirror,
:mod:`.datalink` resolves what a Member OUS delivers, :mod:`.download` fetches it,
:mod:`.unpack` extracts tars safely, :mod:`.emulator` is the local archive for tests and the demo.
"""

from pathlib import Path

from almatools import DemoStep, TaskSource, builtin_xml, hookimpl

from .task_almafetch import almafetch
from .task_almaquery import almaquery

__all__ = ["almaquery", "almafetch"]


@hookimpl
def almatools_register_tasks():
    return [TaskSource(xml=builtin_xml("almaquery"), impl=almaquery),
            TaskSource(xml=builtin_xml("almafetch"), impl=almafetch)]


@hookimpl
def almatools_demo_steps():
    return [DemoStep(name="archive", run=_demo, order=10)]


def _demo(ctx):
    """Start the local archive emulator, search it, fetch and unpack the example Member OUS.

    The fetched tree replaces the embedded one for the steps that follow.
    """
    from almatools.casa_tasks import almafetch, almaquery
    from .emulator import ArchiveEmulator
    out = ctx.workdir / "archive"
    with ArchiveEmulator(out / "emulator") as emu:
        ctx.echo(f"archive emulator on {emu.url} (TAP: GAVO DaCHS; DataLink and dataPortal: nginx)")
        hits = almaquery(position="11h01m51.9s -34d42m17s", radius="1arcmin", band="6", service=emu.url,
                         outfile=str(out / "twhya.csv"), overwrite=True, plotfile=str(out / "twhya.png"))
        ctx.echo(f"almaquery: {hits['nrows']} row(s), {hits['nmous']} Member OUS; ADQL: {hits['adql']}")
        ctx.echo(f"  tables: {', '.join(hits['outfiles'].values())}; plot: {hits['plotfile']}")
        got = almafetch(queryfile=str(out / "twhya.csv"), service=emu.url, outdir=str(out / "data"), unpack=True)
        ctx.echo(f"almafetch: {got['ndownloaded']} downloaded, {got['npresent']} already complete "
                 f"({got['bytes_downloaded'] / 1e6:.1f} MB in {got['elapsed_s']:.1f} s)")
        again = almafetch(queryfile=str(out / "twhya.csv"), service=emu.url, outdir=str(out / "data"))
        ctx.echo(f"almafetch again: {again['ndownloaded']} downloaded — every file was already complete")
    ctx.mous = Path(got["trees"][0])
    ctx.echo(f"Member OUS tree for the next steps: {ctx.mous}")
