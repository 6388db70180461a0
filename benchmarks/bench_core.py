"""Core overheads: import time and task dispatch, each against its anchor in the same run.

* import: ``import almatools.casa_tasks`` vs ``import casatasks`` in fresh
  interpreters (median of N); target: almatools ≤ 0.5 s.
* dispatch: a registered task call (bind, coerce, validate, casalog
  Begin/End lines) vs calling its implementation directly; target: the
  difference ≤ 5 ms per call.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import casa_env

HERE = Path(__file__).resolve().parent


def _import_time(module: str, env: dict) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                         cwd=tempfile.gettempdir())
    return float(out.stdout.split()[-1])


def run(quick: bool = False) -> list[dict]:
    env = casa_env()
    os.environ.update(HOME=env["HOME"], CASASITECONFIG=env["CASASITECONFIG"])
    reps = 3 if quick else 7
    ours = statistics.median(_import_time("almatools.casa_tasks", env) for _ in range(reps))
    casa = statistics.median(_import_time("casatasks", env) for _ in range(reps))
    results = [dict(metric="import almatools.casa_tasks vs import casatasks (s)", value=ours, anchor=casa,
                    ratio=ours / casa, target=f"{ours:.3f} s <= 0.5 s", ok=ours <= 0.5)]

    sys.path.insert(0, str(HERE.parent / "tests" / "core"))
    from sample_tasks import sampletask, write_sample
    from almatools.registry import TaskRegistry, TaskSource, make_plugin_manager
    workdir = Path(env["HOME"])
    task = TaskRegistry(make_plugin_manager(load_entrypoints=False)).add(
        TaskSource(xml=write_sample(workdir), impl=sampletask))
    kwargs = dict(vis=str(workdir), mode="get", niter=5, spws=[0, 1, 2])
    task(**kwargs)  # warm up: casalog opened once, as in a session
    direct = dict(vis=str(workdir), mode="get", hdkey="beammajor", niter=5, threshold=0.5, verbose=False,
                  spws=[0, 1, 2], fitspec="", options={})
    n = 200 if quick else 2000
    t0 = time.perf_counter()
    for _ in range(n):
        sampletask(**direct)
    t_impl = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for _ in range(n):
        task(**kwargs)
    t_task = (time.perf_counter() - t0) / n
    results.append(dict(metric="task call vs direct implementation call (s/call)", value=t_task, anchor=t_impl,
                        ratio=t_task / t_impl, target=f"overhead {1e3 * (t_task - t_impl):.3f} ms <= 5 ms",
                        ok=(t_task - t_impl) <= 0.005))
    return results
