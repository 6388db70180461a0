"""``almatools demo``: run every registered task on embedded example data.

Each plugin contributes steps through the ``almatools_demo_steps`` hook.
Steps run in increasing ``order`` in one working directory and share a
:class:`DemoContext`; the first step (order 0, below) builds the embedded
Member OUS tree that later steps work on.  The archive plugin's step
(order 10) replaces it by a tree fetched from the local archive emulator
when that is available.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

__all__ = ["DemoStep", "DemoContext", "run_demo"]


@dataclass
class DemoContext:
    """What demo steps share.

    :param workdir: the demo's working directory (all outputs go here).
    :param mous: the Member OUS directory the steps work on.
    :param data: free-form results steps leave for later steps.
    """

    workdir: Path
    mous: Path | None = None
    data: dict = field(default_factory=dict)
    echo: Callable[[str], None] = print


@dataclass(frozen=True)
class DemoStep:
    """One step of ``almatools demo``: *run(ctx)* calls tasks and prints what they did."""

    name: str
    run: Callable[[DemoContext], None]
    order: int = 50


def run_demo(workdir: str | Path, echo: Callable[[str], None] = print, only: list[str] | None = None) -> DemoContext:
    """Run every demo step of every plugin; returns the shared context."""
    from .registry import get_registry

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = DemoContext(workdir=workdir, echo=echo)
    registry = get_registry()
    steps = []
    for result in registry.pm.hook.almatools_demo_steps():
        steps.extend(result or ())
    steps.sort(key=lambda s: (s.order, s.name))
    failures = []
    for step in steps:
        if only and step.name not in only:
            continue
        echo(f"\n=== demo: {step.name} ===")
        start = time.perf_counter()
        try:
            step.run(ctx)
        except Exception as exc:
            failures.append(step.name)
            echo(f"!!! demo step {step.name!r} failed: {type(exc).__name__}: {exc}")
        else:
            echo(f"--- {step.name}: done in {time.perf_counter() - start:.1f} s")
    ctx.data["failures"] = failures
    return ctx
